"""NEZHA (functional relative positions): BERT's names under `nezha.` (NEZHA's own PyTorch code: `bert.`)."""
from . import bert_shaped
from .bert import BERT_TARGET_RULES, BERT_TARGETS, bert_architecture


def config_from_hf(hf, targets, extras, need, act, source):
    return bert_shaped.config_from_hf(
        hf, targets, need, act, source, positions=False,  # NEZHA puts positions into attention
        extra=dict(position_scheme="nezha", max_relative_position=int(hf.get("max_relative_position", 64))))


def config_to_hf(model, arch, eps):
    return bert_shaped.config_to_hf(model, arch, eps, "nezha", position_embedding_type=None,
                                    max_relative_position=model.config.max_relative_position)


def export_rank(c):
    return 10 if bert_shaped.post_ln(c) and c.position_scheme == "nezha" else None


def check_export(c):
    bert_shaped.check_plain(c, "nezha", embeddings=(["seg", "word"], ["word"]), projection=False)
    bert_shaped.check_heads(c, FAMILY)


FAMILY = bert_shaped.register(
    "nezha", "nezha", "Nezha", BERT_TARGETS, bert_architecture("Nezha"), BERT_TARGET_RULES, other_prefixes=("bert.",),
    bert_like=True, one_pooler=True, rules=bert_shaped.bert_rules, config_from_hf=config_from_hf,
    config_to_hf=config_to_hf, export_rank=export_rank, check_export=check_export,
    buffers=("relative_positions_encoding.positions_encoding",), task_heads=bert_shaped.task_heads())
