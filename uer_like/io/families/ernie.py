"""ERNIE 1.0 / 3.0 (task-type embeddings): BERT's names under `ernie.` (ERNIE 1.0 converted as BERT: `bert.`;
early ERNIE 3.0 conversions are model_type 'bert' with use_task_id)."""
from . import bert_shaped
from .bert import BERT_TARGET_RULES, BERT_TARGETS, bert_architecture

TASK_EMBEDDINGS = (["pos", "seg", "task", "word"], ["pos", "task", "word"])


def claims(hf):
    return hf.get("model_type") == "bert" and bool(hf.get("use_task_id"))


def config_from_hf(hf, targets, extras, need, act, source):
    d = bert_shaped.config_from_hf(hf, targets, need, act, source)
    if hf.get("use_task_id"):
        d["embedding"] = d["embedding"] + ["task"]
        d["task_type_vocab_size"] = int(hf.get("task_type_vocab_size", 3))
        if extras.get("task_id"):
            d["task_id"] = int(extras["task_id"])
    return d


def config_to_hf(model, arch, eps):
    c = model.config
    hf = bert_shaped.config_to_hf(model, arch, eps, "ernie", use_task_id="task" in c.embedding,
                                  task_type_vocab_size=c.task_type_vocab_size)
    if "task" in c.embedding and c.task_id:
        hf.setdefault("uer_like", {})["task_id"] = c.task_id
    return hf


def export_rank(c):
    """Task types: ERNIE; BERT's shape without them: ERNIE only for a model loaded from an ERNIE release."""
    if not (bert_shaped.post_ln(c) and c.position_scheme == "absolute"):
        return None
    return 5 if "task" in c.embedding else 0


def check_export(c):
    if "task" in c.embedding:
        bert_shaped.check_plain(c, "ERNIE", embeddings=TASK_EMBEDDINGS, projection=False)
    else:
        bert_shaped.check_plain(c, "Hugging Face", projection=False)
    bert_shaped.check_heads(c, FAMILY)


FAMILY = bert_shaped.register(
    "ernie", "ernie", "Ernie", BERT_TARGETS, bert_architecture("Ernie"), BERT_TARGET_RULES, other_prefixes=("bert.",),
    bert_like=True, one_pooler=True, rules=bert_shaped.bert_rules, config_from_hf=config_from_hf,
    config_to_hf=config_to_hf, claims=claims, export_rank=export_rank, default_export=False,
    check_export=check_export, task_heads=bert_shaped.task_heads())
