"""XLNet (relative attention; HFL's Chinese XLNet): the LM head, or the sequence summary (last token -> tanh ->
logits_proj) of XLNetForSequenceClassification as the cls target."""
from . import Family, register_family


def architecture(t):
    if "lm" in t:
        return "XLNetLMHeadModel"
    return "XLNetForSequenceClassification" if "cls" in t else "XLNetModel"


register_family(Family("xlnet", "transformer", "XLNet", frozenset({"lm", "cls"}), architecture,
                       ([("lm", ("lm_loss.bias",))], [("cls", ("logits_proj.weight",))])))
