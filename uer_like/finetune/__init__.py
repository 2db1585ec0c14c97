"""Fine-tuning and inference on downstream tasks, one module per task, registered in tasks.TASKS:
classification, regression and multi_label (finetune/run_classifier.py --task ...), tagging (NER, with an
optional CRF: run_ner.py), mrc (span-extraction reading comprehension, CMRC 2018 / DRCD: run_cmrc.py) and
multiple_choice (C3: run_c3.py), simcse (sentence embeddings: run_simcse.py), siamese (two-tower pair
classification: run_classifier_siamese.py), prompt (MLM-head prompts: run_classifier_prompt.py),
multi_task_classification (one encoder, a head per dataset: run_classifier_mt.py) and text2text (encoder-decoder
models, T5 / BART / PEGASUS: run_text2text.py). model_selection.py runs classification many times: k-fold
cross-validation (run_classifier_cv.py) and a grid search (run_classifier_grid.py). One training core (core.py)
serves them all.

    from uer_like.finetune import run
    run("classification", ["--train_path", ..., "--dev_path", ...])

    from uer_like.finetune import Predictor          # batch inference with a run_classifier.py model
    Predictor("models/classifier.bin").predict(["text one", "text two"])
"""
from .classification import Classifier, classification_metrics
from .cli import main, run
from .crf import CRF
from .mrc import SpanExtractor, cmrc_em, cmrc_f1, cmrc_metrics
from .multi_label import multi_label_metrics
from .multiple_choice import MultipleChoice
from .predict import Predictor
from .regression import pearson, regression_metrics, spearman
from .tagging import Tagger, entity_metrics, get_entities
from .tasks import TASKS, Task, load_tasks, task_names

__all__ = ["main", "run", "CRF", "TASKS", "Task", "load_tasks", "task_names", "classification_metrics",
           "cmrc_em", "cmrc_f1", "cmrc_metrics", "entity_metrics", "get_entities", "multi_label_metrics",
           "pearson", "regression_metrics", "spearman", "Classifier", "MultipleChoice", "SpanExtractor", "Tagger",
           "Predictor"]
