"""NEZHA (functional relative positions): BERT's names under `nezha.` (NEZHA's own PyTorch code: `bert.`)."""
from .base import Family, register_family
from .bert import BERT_TARGET_RULES, BERT_TARGETS, bert_architecture

register_family(Family("nezha", "nezha", "Nezha", BERT_TARGETS, bert_architecture("Nezha"), BERT_TARGET_RULES,
                       other_prefixes=("bert.",), bert_like=True, one_pooler=True))
