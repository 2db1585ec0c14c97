"""ALBERT: one shared layer group, a factorised embedding, the sentence-order head."""
from .base import Family, register_family


def architecture(t):
    if {"mlm", "sp"} <= t:
        return "AlbertForPreTraining"
    return "AlbertForMaskedLM" if "mlm" in t else "AlbertModel"


register_family(Family(
    "albert", "albert", "Albert", frozenset({"mlm", "sp", "pooler"}), architecture,
    ([("mlm", ("predictions.dense.weight",))],
     [("sp", ("sop_classifier.classifier.weight",)), ("pooler", ("pooler.weight",))])))
