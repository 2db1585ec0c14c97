"""The definitions the families package registers its modules with (its __init__ imports the
modules; they import this, so the registration has no import cycle)."""
from dataclasses import dataclass
from typing import Callable, Optional

from ...registry import HF_FAMILIES


@dataclass(frozen=True)
class Family:
    """name: the model_type; base_prefix: the base model's attribute in the *For* classes (bert., transformer.);
    other_prefixes: base prefixes releases of the family also use; class_prefix: of the *For* class names;
    export_targets: the uer_like targets an export writes as heads; architecture(targets: set) -> the *For*
    class written; target_rules: the heads a checkpoint carries, read off its keys: a list of alternatives
    [(target, marker keys), ...], the first whose markers meet the keys taken (no markers: always);
    bert_like: BERT's layer, pooler and pre-training head names; one_pooler: sp, cls and pooler share the
    family's one pooler on export.
    A family whose names and config keys are not BERT's (GPT-2, XLNet) also gives: rules(cfg) -> its
    io/hf.Rule list (Hugging Face names <-> internal names, both directions); is_base_key(key) -> whether a
    key (without the base prefix) belongs to the base model; config_from_hf(hf, targets, extras, need, act,
    source) -> the uer_like config keys; config_to_hf(model, architecture, eps) -> the config.json entries.
    A family whose tokenizer is a sentencepiece model (XLNet) gives special_ids(processor) -> the config.json
    token ids (pad, bos, eos) that model assigns, written on export in place of any fixed ones.
    Left None, io/hf.py's BERT-shaped mapping applies (with the per-family details it still holds)."""
    name: str
    base_prefix: str
    class_prefix: str
    export_targets: frozenset
    architecture: Callable[[set], str]
    target_rules: tuple = ()
    other_prefixes: tuple = ()
    bert_like: bool = False
    one_pooler: bool = False
    rules: Optional[Callable] = None
    is_base_key: Optional[Callable[[str], bool]] = None
    config_from_hf: Optional[Callable] = None
    config_to_hf: Optional[Callable] = None
    special_ids: Optional[Callable] = None


def register_family(family):
    """Register a Family (a family module calls this at import); returns it."""
    return HF_FAMILIES.register(family.name)(family)


def get(name):
    return HF_FAMILIES.get(name)


def names():
    return HF_FAMILIES.names()
