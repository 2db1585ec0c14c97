"""Sentence (pair) regression, STS-B style (finetune/run_classifier.py --task regression).

Data: classification's tsv (`label`, `text_a`[, `text_b`]) with a real-valued label.
Head: classification's (output_layer_1, output_layer_2) with one output, the predicted value.
Loss: mean squared error. Metric: Spearman's rank correlation selects the best epoch (as UER-py's
run_regression.py); Pearson's correlation and the MSE are reported too.
Predictions: a tsv with header `label`, one predicted value per line.
"""
import math

import torch
import torch.nn.functional as F

from ..errors import DataError
from .classification import SentenceTask, encode_classification, read_rows
from .data import IGNORE_INDEX
from .tasks import TASKS, Task


def read_regression(path, labeled=True):
    examples = []
    for lineno, row in read_rows(path, labeled):
        where = f"{path}:{lineno}"
        label = None
        if labeled:
            raw = row["label"].strip()
            try:
                label = float(raw)
            except ValueError:
                raise DataError(f"{where}: label {raw!r} is not a number (regression labels are real values)") from None
            if not math.isfinite(label):
                raise DataError(f"{where}: label {raw!r} is not a finite number")
        examples.append({"text_a": row["text_a"], "text_b": row.get("text_b"), "label": label, "where": where})
    return examples


def _ranks(xs):
    """Ranks 1..n with ties given their average rank (as scipy.stats.rankdata)."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x, y):
    """Pearson's r; 0.0 when either side is constant (undefined)."""
    n = len(x)
    if n < 2:
        return 0.0
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0


def spearman(x, y):
    """Spearman's rho: Pearson's r of the ranks (ties averaged)."""
    return pearson(_ranks(x), _ranks(y))


def regression_metrics(gold, pred):
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold values but {len(pred)} predictions")
    n = len(gold)
    mse = sum((g - p) ** 2 for g, p in zip(gold, pred)) / n if n else 0.0
    return {"pearson": pearson(gold, pred), "spearman": spearman(gold, pred), "mse": mse, "total": n}


@TASKS.register("regression")
class RegressionTask(SentenceTask):
    name = "regression"
    description = "sentence (pair) regression, STS-B style (tsv: label as a real number, text_a[, text_b])"
    main_metric = "spearman"

    def outputs_num(self):
        return 1

    def check_inference(self, model_path):
        pass

    def meta(self):
        return {**Task.meta(self), "text_pair": self.text_pair}

    def read_examples(self, path, labeled=True, train=False):
        return read_regression(path, labeled)

    def encode(self, examples, train=False):
        feats = encode_classification(examples, self.enc, self.args.seq_length)
        for f in feats:
            if f["label"] == IGNORE_INDEX:
                f["label"] = float("nan")
        return feats

    def collate_labels(self, feats):
        return torch.tensor([f["label"] for f in feats], dtype=torch.float)

    def loss(self, model, batch):
        return F.mse_loss(model(batch["src"], batch["seg"], **self.model_inputs(model, batch)).float().view(-1),
                          batch["label"])

    def outputs(self, model, batch):
        return model(batch["src"], batch["seg"], **self.model_inputs(model, batch)).float().view(-1).cpu().tolist()

    def decode(self, examples, feats, outputs):
        return [float(o) for o in outputs]

    def evaluate(self, examples, preds):
        return regression_metrics([ex["label"] for ex in examples], preds)

    def summary(self, m):
        return f"Spearman {m['spearman']:.4f}, Pearson {m['pearson']:.4f}, MSE {m['mse']:.4f} ({m['total']} examples)"

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            f.write("label\n")
            for p in preds:
                f.write(f"{p:.6f}\n")
