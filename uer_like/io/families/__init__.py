"""Hugging Face families: one module per family, each registering a `Family` in registry.HF_FAMILIES under its
config.json model_type. A new family is one module here plus its name in the import line at the bottom.

A Family declares everything io/hf.py (and io/hf_tasks.py, checkpoint.save_hf) reads per family: its names,
config keys, heads, export checks and tokenizer files; io/hf.py holds no per-family branch. The BERT-shaped
families share bert_shaped.py (BERT's names, config mapping and checks); the rule kinds are in rules.py.
"""
from .base import Family, register_family, get, names, all_families  # noqa: F401
from . import albert, bert, distilbert, electra, ernie, gpt2, megatron_bert, mpnet, nezha, openai_gpt, roberta, roformer, xlm_roberta, xlnet  # noqa: F401  (registration)
