"""Hugging Face families: one module per family, each registering a `Family` in registry.HF_FAMILIES under its
config.json model_type.

A Family declares what io/hf.py reads per family: the base model's attribute in the *For* classes and the
other prefixes releases use, the class-name prefix, the heads an export writes and the *For* class for a set
of targets, and the heads a checkpoint carries (read off its keys); GPT-2 and XLNet also their parameter-name
rules and their config mapping both ways. The BERT-shaped families' names and config mapping are still
io/hf.py's (build_rules, uer_config_from_hf, hf_config_for).
"""
from .base import Family, register_family, get, names  # noqa: F401
from . import albert, bert, electra, ernie, gpt2, mpnet, nezha, roberta, roformer, xlnet  # noqa: F401  (registration)
