"""Fine-tuning and inference on downstream tasks: sentence (pair) classification, token tagging (NER, with
an optional CRF) and span-extraction reading comprehension (CMRC 2018).

    from uer_like.finetune import run
    run("classification", ["--train_path", ..., "--dev_path", ...])

Scripts: finetune/run_classifier.py, finetune/run_ner.py, finetune/run_cmrc.py.
"""
from .cli import main, run
from .crf import CRF
from .metrics import classification_metrics, cmrc_em, cmrc_f1, cmrc_metrics, entity_metrics, get_entities
from .models import Classifier, SpanExtractor, Tagger

__all__ = ["main", "run", "CRF", "classification_metrics", "cmrc_em", "cmrc_f1", "cmrc_metrics", "entity_metrics",
           "get_entities", "Classifier", "SpanExtractor", "Tagger"]
