"""GPT-2: Conv1D layers under `transformer.`, the LM head (GPT2LMHeadModel)."""
from . import Family, register_family

register_family(Family("gpt2", "transformer", "GPT2", frozenset({"lm"}), lambda t: "GPT2LMHeadModel",
                       ([("lm", ())],)))
