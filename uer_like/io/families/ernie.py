"""ERNIE 1.0 / 3.0 (task-type embeddings): BERT's names under `ernie.` (ERNIE 1.0 converted as BERT: `bert.`)."""
from .base import Family, register_family
from .bert import BERT_TARGET_RULES, BERT_TARGETS, bert_architecture

register_family(Family("ernie", "ernie", "Ernie", BERT_TARGETS, bert_architecture("Ernie"), BERT_TARGET_RULES,
                       other_prefixes=("bert.",), bert_like=True, one_pooler=True))
