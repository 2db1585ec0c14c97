"""ELECTRA: the discriminator (ElectraForPreTraining) and the generator (ElectraForMaskedLM), separate models."""
from .base import Family, register_family


def architecture(t):
    if "electra_disc" in t:
        return "ElectraForPreTraining"
    if t & {"electra_gen", "mlm"}:
        return "ElectraForMaskedLM"
    return "ElectraModel"


register_family(Family(
    "electra", "electra", "Electra", frozenset({"electra_disc", "electra_gen", "mlm"}), architecture,
    ([("electra_disc", ("discriminator_predictions.dense.weight",))],
     [("electra_gen", ("generator_predictions.dense.weight",))])))
