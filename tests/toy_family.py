"""A toy Hugging Face family in one file, for tests/test_io_registry.py: model_type "toy", a GPT-2 whose
parameters are named toy_* under the base model `toy_model` (ToyLMHeadModel). Importing this module registers
it; nothing else in uer_like/io/ knows of it."""
from uer_like.io.families import Family, gpt2, register_family
from uer_like.io.hf import Rule

NAME = "toy"


def rules(cfg):
    return [Rule(["toy_" + h for h in r.hf], r.internal, r.kind) for r in gpt2.rules(cfg)]


def is_base_key(key):
    return not key.startswith("toy_lm_head.")


def config_to_hf(model, arch, eps):
    return dict(gpt2.config_to_hf(model, arch, eps), model_type=NAME)


FAMILY = register_family(Family(NAME, "toy_model", "Toy", frozenset({"lm"}), lambda t: "ToyLMHeadModel",
                                ([("lm", ())],), rules=rules, is_base_key=is_base_key,
                                config_from_hf=gpt2.config_from_hf, config_to_hf=config_to_hf))
