"""RoBERTa: BERT's layers, positions offset by padding_idx + 1, its own LM and classification heads
(RobertaClassificationHead: dense -> tanh -> out_proj on <s>, as the cls target)."""
from .base import Family, register_family


def architecture(t):
    if "mlm" in t:
        return "RobertaForMaskedLM"
    return "RobertaForSequenceClassification" if "cls" in t else "RobertaModel"


register_family(Family(
    "roberta", "roberta", "Roberta", frozenset({"mlm", "pooler", "cls"}), architecture,
    ([("mlm", ("lm_head.dense.weight",))],
     [("cls", ("classifier.out_proj.weight",)), ("pooler", ("pooler.dense.weight",))]),
    one_pooler=True))
