"""BERT, and every BERT-architecture release (Chinese RoBERTa-wwm-ext, MacBERT: model_type 'bert'). ERNIE, NEZHA
and Megatron-BERT share its heads (bert_architecture, BERT_TARGET_RULES); fine-tuned models export to its task
classes (BERT_TASK_HEADS)."""
from . import bert_shaped

BERT_TARGETS = frozenset({"mlm", "sp", "cls", "pooler"})
BERT_TARGET_RULES = (
    [("mlm", ("cls.predictions.bias", "cls.predictions.transform.dense.weight"))],
    [("sp", ("cls.seq_relationship.weight",)), ("cls", ("classifier.weight",)), ("pooler", ("pooler.dense.weight",))],
)
BERT_TASK_HEADS = bert_shaped.task_heads(bert_shaped.POOLER_CLASSIFIER["classification"],
                                         bert_shaped.POOLER_CLASSIFIER["multiple_choice"])


def bert_architecture(prefix):
    def architecture(t):
        if {"mlm", "sp"} <= t:
            return f"{prefix}ForPreTraining"
        if "mlm" in t:
            return f"{prefix}ForMaskedLM"
        if "sp" in t:
            return f"{prefix}ForNextSentencePrediction"
        if "cls" in t:
            return f"{prefix}ForSequenceClassification"
        return f"{prefix}Model"

    return architecture


def config_from_hf(hf, targets, extras, need, act, source):
    return bert_shaped.config_from_hf(hf, targets, need, act, source)


def config_to_hf(model, arch, eps):
    return bert_shaped.config_to_hf(model, arch, eps, "bert")


def export_rank(c):
    """BERT's shape with learned positions: the default for it (RoBERTa, ALBERT, ELECTRA and ERNIE rank higher
    for their own features)."""
    return 0 if bert_shaped.post_ln(c) and c.position_scheme == "absolute" else None


def check_export(c):
    bert_shaped.check_plain(c, "Hugging Face")
    bert_shaped.check_heads(c, FAMILY)


FAMILY = bert_shaped.register(
    "bert", "bert", "Bert", BERT_TARGETS, bert_architecture("Bert"), BERT_TARGET_RULES, other_prefixes=("ernie.",),
    bert_like=True, one_pooler=True, rules=bert_shaped.bert_rules, config_from_hf=config_from_hf,
    config_to_hf=config_to_hf, export_rank=export_rank, check_export=check_export, task_heads=BERT_TASK_HEADS)
