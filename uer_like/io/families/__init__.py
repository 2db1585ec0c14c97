"""Hugging Face families: one module per family, each registering a `Family` in registry.HF_FAMILIES under its
config.json model_type. A new family is one module here plus its name in the import line at the bottom.

A Family declares everything io/hf.py (and io/hf_tasks.py, checkpoint.save_hf) reads per family: its names,
config keys, heads, export checks and tokenizer files; io/hf.py holds no per-family branch. The BERT-shaped
families share bert_shaped.py (BERT's names, config mapping and checks); the rule kinds are in rules.py. The
encoder-decoder families (BART, PEGASUS, T5, mT5) declare their decoder's names, config mapping and export
checks the same way; only they export a model with a decoder.
"""
from .base import Family, register_family, get, names, all_families  # noqa: F401
from . import albert, bart, bert, distilbert, electra, ernie, gpt2, megatron_bert, mpnet, mt5, nezha, openai_gpt, pegasus, roberta, roformer, t5, xlm_roberta, xlnet  # noqa: F401  (registration)
