"""Fine-tuning and inference on downstream tasks: sentence (pair) classification, token tagging (NER, with
an optional CRF) and span-extraction reading comprehension (CMRC 2018).

    from uer_like.finetune import run
    run("classification", ["--train_path", ..., "--dev_path", ...])

Scripts: finetune/run_classifier.py, finetune/run_ner.py, finetune/run_cmrc.py.
"""
from .cli import main, run  # noqa: F401
from .crf import CRF  # noqa: F401
from .metrics import classification_metrics, cmrc_em, cmrc_f1, cmrc_metrics, entity_metrics, get_entities  # noqa: F401
from .models import Classifier, SpanExtractor, Tagger  # noqa: F401
