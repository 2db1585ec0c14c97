"""BERT, and every BERT-architecture release (Chinese RoBERTa-wwm-ext, MacBERT: model_type 'bert'). ERNIE and
NEZHA share its heads (bert_architecture, BERT_TARGET_RULES)."""
from .base import Family, register_family

BERT_TARGETS = frozenset({"mlm", "sp", "cls", "pooler"})
BERT_TARGET_RULES = (
    [("mlm", ("cls.predictions.bias", "cls.predictions.transform.dense.weight"))],
    [("sp", ("cls.seq_relationship.weight",)), ("cls", ("classifier.weight",)), ("pooler", ("pooler.dense.weight",))],
)


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


register_family(Family("bert", "bert", "Bert", BERT_TARGETS, bert_architecture("Bert"), BERT_TARGET_RULES,
                       other_prefixes=("ernie.",), bert_like=True, one_pooler=True))
