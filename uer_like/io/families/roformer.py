"""RoFormer (rotary positions): BERT's layer names, an MLM head only; transformers keeps the rotary sin/cos
table as a (frozen) weight, which an export writes."""
import torch

from . import bert_shaped
from .rules import linear


def rules(cfg):
    r = bert_shaped.embeddings(cfg)
    if cfg.factorized_embedding_parameterization:
        r += linear("embeddings_project", "encoder.linear")
    r += bert_shaped.bert_layers(cfg)
    if "mlm" in cfg.target:
        r += bert_shaped.mlm_head("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
                                  "cls.predictions.bias", "cls.predictions.decoder.weight", "mlm", cfg.tie_weights)
    return r


def config_from_hf(hf, targets, extras, need, act, source):
    d = bert_shaped.config_from_hf(hf, targets, need, act, source, positions=False, embedding_size=True,
                                   extra=dict(position_scheme="rotary", rotary_value=bool(hf.get("rotary_value", False))))
    d["factorized_embedding_parameterization"] = d["emb_size"] != d["hidden_size"]
    return d


def config_to_hf(model, arch, eps):
    c = model.config
    return bert_shaped.config_to_hf(model, arch, eps, "roformer", position_embedding_type=None,
                                    rotary_value=c.rotary_value, embedding_size=c.emb_size)


def export_state(cfg, state):
    from ...layers.positions.rotary import rotary_table

    out = bert_shaped.export_state(cfg, state)
    cos, sin = rotary_table(cfg.max_seq_length, cfg.hidden_size // cfg.heads_num)
    out["encoder.embed_positions.weight"] = torch.cat([sin, cos], dim=-1).to(state["embedding.word.embedding.weight"].dtype)
    return out


def export_rank(c):
    return 10 if bert_shaped.post_ln(c) and c.position_scheme == "rotary" else None


def check_export(c):
    bert_shaped.check_plain(c, "roformer", embeddings=(["seg", "word"], ["word"]))
    bert_shaped.check_heads(c, FAMILY)


FAMILY = bert_shaped.register(
    "roformer", "roformer", "RoFormer", {"mlm"}, lambda t: "RoFormerForMaskedLM" if "mlm" in t else "RoFormerModel",
    ([("mlm", ("cls.predictions.bias", "cls.predictions.transform.dense.weight"))],),
    rules=rules, config_from_hf=config_from_hf, config_to_hf=config_to_hf, export_state=export_state,
    export_rank=export_rank, check_export=check_export, buffers=("encoder.embed_positions.weight",), task_heads=bert_shaped.task_heads())
