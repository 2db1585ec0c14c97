"""RoFormer (rotary positions): BERT's layer names, an MLM head only."""
from .base import Family, register_family

register_family(Family(
    "roformer", "roformer", "RoFormer", frozenset({"mlm"}),
    lambda t: "RoFormerForMaskedLM" if "mlm" in t else "RoFormerModel",
    ([("mlm", ("cls.predictions.bias", "cls.predictions.transform.dense.weight"))],)))
