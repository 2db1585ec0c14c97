"""Model selection for classification, as UER-py's scripts: k-fold cross-validation (finetune/run_classifier_cv.py)
and a grid search over batch size, learning rate and epochs (finetune/run_classifier_grid.py). Each is a command
made of ordinary classification runs (cli.run_args on classification.py's task, the one training loop), so every
flag of run_classifier.py applies, and every model written is a run_classifier.py model (inference with it,
Hugging Face export as ...ForSequenceClassification). The number of classes is fixed once from the whole
training file (or --labels_num), so that every fold and trial builds the same head.

Cross-validation: the training file is cut into --folds_num contiguous folds of near-equal size (file order, as
UER-py; the first n mod k folds hold one example more). For fold i a model is trained on the other folds for
--epochs_num epochs (no dev selection: the held-out fold is never seen before it is predicted), saved at
MODEL-fold_i.EXT (UER-py's naming) and evaluated on fold i. Reported: each fold's accuracy and macro-F1, their
mean and standard deviation (over the folds, ddof 0). --train_features_path receives the out-of-fold
probabilities, UER-py's stacking features: a numpy .npy array [examples, classes], row j the softmax of example
j (train-file order) under the model that did not train on it. With --test_path and --test_features_path, the
fold models' mean probabilities on the test file are written there (UER-py's run_classifier_cv_infer.py); with
--load_model_path MODEL (no --train_path), that is done with the fold models MODEL-fold_i.EXT of an earlier run;
--prediction_path then receives the mean's predictions (run_classifier.py's format: `label`, `prob`).

Grid search: every combination of --batch_size_list x --learning_rate_list x --epochs_num_list (in that order,
as UER-py's itertools.product) is trained on --train_path and its final model evaluated on --dev_path. The
results table (one row per combination: its settings, dev accuracy, macro-F1, last training loss, seconds) is
printed and written as a tsv to --results_path (with the training steps taken); the best accuracy (the first on a tie) is reported, and its model
kept at --output_model_path (then --test_path, when given, is evaluated and predicted with it).
"""
import copy
import itertools
import json
import math
import os
import shutil
import tempfile

import numpy as np

from ..errors import ConfigError, DataError, TrainingError
from ..flags import COUNT, LEARNING_RATE, Int
from ..outputs import atomic_write, check_writable
from . import data as D
from .classification import ClassificationTask, classification_metrics, infer_labels_num, read_classification
from .tasks import TASKS, log

BASE_TASK = "classification"
MODEL_FILES = ("", "_config.json", "_finetune.json")  # a fine-tuned model: PATH and the files beside it


# ====================================================================== folds
def kfold_ranges(n, k):
    """-> k contiguous (start, end) ranges covering 0..n-1 once, sizes n // k or n // k + 1 (the larger first)."""
    if k < 2:
        raise ConfigError(f"--folds_num {k}: cross-validation needs at least 2 folds")
    if k > n:
        raise ConfigError(f"--folds_num {k} is more than the {n} training examples: every fold needs one; give "
                          f"--folds_num {n} or fewer")
    sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    starts = np.cumsum([0] + sizes)
    return [(int(starts[i]), int(starts[i + 1])) for i in range(k)]


def fold_model_path(path, i):
    """UER-py's fold model name: models/classifier_model.bin -> models/classifier_model-fold_0.bin."""
    stem, ext = os.path.splitext(path)
    return f"{stem}-fold_{i}{ext}"


# ====================================================================== shared
def _check_common(args):
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("cross-validation and grid search run one process; launch them without torchrun")
    if args.prediction_path and not args.test_path:
        raise ConfigError("--prediction_path writes predictions for --test_path; give --test_path")


def _labels_num(args):
    """The number of classes of every run: --labels_num, else the training file's largest label + 1 (a class
    without an example refused, as run_classifier.py does). -> (labels_num, examples)."""
    examples = read_classification(args.train_path, labeled=True, soft_targets=bool(args.soft_targets))
    if args.labels_num:
        return args.labels_num, examples
    lines = {}
    for ex in examples:
        lines.setdefault(ex["label"], []).append(int(ex["where"].rsplit(":", 1)[1]))
    return infer_labels_num(args.train_path, lines), examples


def _write_rows(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(row[c] for c in header) + "\n")


def read_probs(path, n_classes):
    """The `prob` column of a run_classifier.py prediction file -> float64 array [lines, n_classes]."""
    rows = D.read_tsv(path, required=("prob",))
    probs = np.array([[float(x) for x in row["prob"].split()] for _, row in rows], dtype=np.float64)
    if probs.shape[1:] != (n_classes,):
        raise DataError(f"{path}: {probs.shape[1:]} probabilities per line, expected {n_classes}")
    return probs


def _run(args, argv, **flags):
    """One classification run on a copy of the flags with `flags` changed -> its report."""
    from .cli import run_args  # cli imports the task registry, which imports this module

    a = copy.copy(args)
    for k, v in flags.items():
        setattr(a, k, v)
    return run_args(BASE_TASK, a, argv)


def _save_npy(path, array, flag):
    atomic_write(path, lambda f: np.save(f, array), error=TrainingError, what=flag)


def _write_report(path, report):
    text = json.dumps(report, indent=2, ensure_ascii=False)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")), error=TrainingError, what="report")


# ====================================================================== cross-validation
def run_cross_validation(args, argv=None):
    """The command of run_classifier_cv.py -> its report (folds, mean and std of the metrics)."""
    _check_common(args)
    if not args.train_path:
        if args.load_model_path and args.test_path and args.test_features_path:
            return {"test": fold_ensemble(args, argv, _fold_models(args.load_model_path, args.folds_num))}
        raise ConfigError("run_classifier_cv.py: give --train_path and --train_features_path to cross-validate, or "
                          "--load_model_path, --test_path and --test_features_path to predict with the fold models")
    if not args.train_features_path:
        raise ConfigError("--train_features_path: give the .npy file that receives the out-of-fold probabilities")
    if args.dev_path:
        raise ConfigError("--dev_path: each fold's dev set is the held-out fold of --train_path; drop --dev_path")
    if args.test_path and not args.test_features_path:
        raise ConfigError("--test_path: give --test_features_path for the fold models' mean probabilities on it")
    for flag in ("train_features_path", "test_features_path"):
        path = getattr(args, flag)
        if path and os.path.realpath(path) in {os.path.realpath(p) for p in (args.train_path, args.test_path) if p}:
            raise ConfigError(f"--{flag} {path} is also an input file: writing it would overwrite it; give another path")
        if path:
            check_writable(os.path.dirname(os.path.abspath(path)), f"the directory of --{flag}", error=TrainingError)
    labels_num, examples = _labels_num(args)
    ranges = kfold_ranges(len(examples), args.folds_num)
    rows = D.read_tsv(args.train_path)
    header = list(rows[0][1])
    oof = np.full((len(rows), labels_num), np.nan)
    folds = []
    with tempfile.TemporaryDirectory(prefix="uer_like_cv_") as tmp:
        for i, (start, end) in enumerate(ranges):
            train, held = os.path.join(tmp, f"train_{i}.tsv"), os.path.join(tmp, f"fold_{i}.tsv")
            _write_rows(train, header, [r for j, (_, r) in enumerate(rows) if not start <= j < end])
            _write_rows(held, header, [r for _, r in rows[start:end]])
            log(f"fold {i + 1}/{args.folds_num}: examples {start}..{end - 1} held out ({end - start}), "
                f"{len(rows) - (end - start)} trained on")
            pred = os.path.join(tmp, f"pred_{i}.tsv")
            model = fold_model_path(args.output_model_path, i)
            rep = _run(args, argv, train_path=train, dev_path=None, test_path=held, prediction_path=pred,
                       output_prob=True, output_model_path=model, labels_num=labels_num, report_path=None)
            oof[start:end] = read_probs(pred, labels_num)
            m = rep["test"]
            folds.append({"fold": i, "start": start, "end": end, "acc": m["acc"], "macro_f1": m["macro_f1"],
                          "train_examples": rep["train_examples"], "model": model})
            log(f"fold {i + 1}/{args.folds_num}: acc {m['acc']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    _save_npy(args.train_features_path, oof, "--train_features_path")
    report = {"task": "classification_cv", "folds_num": args.folds_num, "examples": len(rows),
              "labels_num": labels_num, "folds": folds, "train_features_path": args.train_features_path}
    for key in ("acc", "macro_f1"):
        vals = np.array([f[key] for f in folds])
        report[key] = {"mean": float(vals.mean()), "std": float(vals.std())}
    # the out-of-fold predictions together, as one classifier's over the whole training file
    report["out_of_fold"] = {k: v for k, v in classification_metrics(
        [ex["label"] for ex in examples], [int(p) for p in oof.argmax(1)], labels_num).items() if k != "per_class"}
    log(f"cross-validation over {args.folds_num} folds: acc {report['acc']['mean']:.4f} ± {report['acc']['std']:.4f}, "
        f"macro-F1 {report['macro_f1']['mean']:.4f} ± {report['macro_f1']['std']:.4f}; out-of-fold probabilities "
        f"of {len(rows)} examples written to {args.train_features_path}")
    if args.test_path:
        report["test"] = fold_ensemble(args, argv, [f["model"] for f in folds])
    _write_report(args.report_path or os.path.splitext(args.output_model_path)[0] + "_cv.json", report)
    return report


def _fold_models(path, k):
    models = [fold_model_path(path, i) for i in range(k)]
    missing = [m for m in models if not os.path.isfile(m)]
    if missing:
        raise ConfigError(f"--load_model_path {path} with --folds_num {k}: no fold model {missing[0]} (the fold "
                          f"models are {os.path.basename(fold_model_path(path, 0))} ... -fold_{k - 1})")
    return models


def fold_ensemble(args, argv, models):
    """Every fold model predicts --test_path; their mean probabilities go to --test_features_path (.npy
    [lines, classes]). -> the ensemble's metrics when the file is labeled, else {}."""
    probs = []
    with tempfile.TemporaryDirectory(prefix="uer_like_cv_") as tmp:
        for i, model in enumerate(models):
            pred = os.path.join(tmp, f"test_{i}.tsv")
            _run(args, argv, train_path=None, dev_path=None, load_model_path=model, pretrained_model_path=None,
                 prediction_path=pred, output_prob=True, labels_num=None, report_path=None)
            with open(os.path.splitext(model)[0] + "_finetune.json", encoding="utf-8") as f:
                probs.append(read_probs(pred, json.load(f)["labels_num"]))
    mean = np.mean(probs, axis=0)
    _save_npy(args.test_features_path, mean, "--test_features_path")
    log(f"the {len(models)} fold models' mean probabilities on {args.test_path} written to {args.test_features_path}")
    if args.prediction_path:  # run_classifier.py's format: the label of the mean, and the mean as `prob`
        text = "label\tprob\n" + "".join(f"{int(p.argmax())}\t{' '.join(f'{x:.6f}' for x in p)}\n" for p in mean)
        atomic_write(args.prediction_path, lambda f: f.write(text.encode("utf-8")), error=TrainingError,
                     what="--prediction_path")
    if "label" not in D.read_tsv(args.test_path)[0][1]:
        return {}
    gold = [ex["label"] for ex in read_classification(args.test_path)]
    m = classification_metrics(gold, [int(p) for p in mean.argmax(1)], mean.shape[1])
    log(f"test ({args.test_path}), the fold models' mean: acc {m['acc']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    return {k: v for k, v in m.items() if k != "per_class"}


# ====================================================================== grid search
GRID_COLUMNS = ("batch_size", "learning_rate", "epochs_num", "acc", "macro_f1", "train_loss", "steps", "seconds")


FORMATS = {"learning_rate": "{:g}", "acc": "{:.4f}", "macro_f1": "{:.4f}", "train_loss": "{:.4f}", "seconds": "{:.1f}"}


def _cell(row, column):
    return FORMATS.get(column, "{}").format(row[column])


def grid_table(rows):
    """The results as aligned text lines (a header, then one line per combination, the best marked *)."""
    cells = [list(GRID_COLUMNS) + [""]] + [[_cell(r, c) for c in GRID_COLUMNS] + ["*" if r.get("best") else ""]
                                           for r in rows]
    widths = [max(len(c[j]) for c in cells) for j in range(len(cells[0]))]
    return ["  ".join(c.rjust(w) for c, w in zip(line, widths)).rstrip() for line in cells]


def grid_tsv(rows):
    """The results as a tsv: GRID_COLUMNS and `best` (1 for the best combination, else 0)."""
    return "".join("\t".join(line) + "\n" for line in [list(GRID_COLUMNS) + ["best"]] + [
        [_cell(r, c) for c in GRID_COLUMNS] + [str(int(bool(r.get("best"))))] for r in rows])


def run_grid_search(args, argv=None):
    """The command of run_classifier_grid.py -> its report (one row per combination, the best)."""
    _check_common(args)
    if not args.train_path or not args.dev_path:
        raise ConfigError("run_classifier_grid.py: give --train_path and --dev_path (each combination's final model "
                          "is evaluated on --dev_path)")
    check_writable(os.path.dirname(os.path.abspath(args.output_model_path)), "the directory of --output_model_path",
                   error=TrainingError)
    labels_num, _ = _labels_num(args)
    grid = list(itertools.product(args.batch_size_list, args.learning_rate_list, args.epochs_num_list))
    results_path = args.results_path or os.path.splitext(args.output_model_path)[0] + "_grid.tsv"
    log(f"grid search: {len(grid)} combinations ({len(args.batch_size_list)} batch sizes x "
        f"{len(args.learning_rate_list)} learning rates x {len(args.epochs_num_list)} epoch counts)")
    rows, best = [], None
    with tempfile.TemporaryDirectory(prefix="uer_like_grid_") as tmp:
        for i, (batch_size, lr, epochs) in enumerate(grid):
            log(f"combination {i + 1}/{len(grid)}: batch_size {batch_size}, learning_rate {lr:g}, epochs_num {epochs}")
            model = os.path.join(tmp, f"trial_{i}{os.path.splitext(args.output_model_path)[1] or '.bin'}")
            rep = _run(args, argv, batch_size=batch_size, learning_rate=lr, epochs_num=epochs, dev_path=None,
                       test_path=args.dev_path, prediction_path=None, output_model_path=model,
                       labels_num=labels_num, report_path=os.path.join(tmp, f"trial_{i}_report.json"))
            m, hist = rep["test"], rep["history"]
            row = {"batch_size": batch_size, "learning_rate": lr, "epochs_num": epochs, "acc": m["acc"],
                   "macro_f1": m["macro_f1"], "train_loss": hist[-1]["train_loss"], "steps": hist[-1]["steps"],
                   "seconds": round(sum(h["seconds"] for h in hist), 1)}
            rows.append(row)
            log(f"combination {i + 1}/{len(grid)}: dev acc {m['acc']:.4f}, macro-F1 {m['macro_f1']:.4f}")
            if best is None or (math.isfinite(row["acc"]) and row["acc"] > rows[best]["acc"]):
                best = i
                for suffix in MODEL_FILES:  # the best so far is the one kept
                    src = os.path.splitext(model)[0] + suffix if suffix else model
                    dst = os.path.splitext(args.output_model_path)[0] + suffix if suffix else args.output_model_path
                    shutil.copyfile(src, dst)
    rows[best]["best"] = True
    lines = grid_table(rows)
    for line in lines:
        log(line)
    text = grid_tsv(rows)
    atomic_write(results_path, lambda f: f.write(text.encode("utf-8")), error=TrainingError, what="--results_path")
    b = rows[best]
    log(f"best dev acc {b['acc']:.4f}: batch_size {b['batch_size']}, learning_rate {b['learning_rate']:g}, epochs_num "
        f"{b['epochs_num']}; its model saved to {args.output_model_path}; the table written to {results_path}")
    report = {"task": "classification_grid", "labels_num": labels_num, "results": rows,
              "best": {k: b[k] for k in GRID_COLUMNS}, "results_path": results_path}
    if args.test_path:
        rep = _run(args, argv, train_path=None, dev_path=None, load_model_path=args.output_model_path,
                   pretrained_model_path=None, labels_num=None, report_path=None)
        if "test" in rep:
            report["test"] = rep["test"]
    _write_report(args.report_path or os.path.splitext(args.output_model_path)[0] + "_report.json", report)
    return report


# ====================================================================== the scripts' tasks
@TASKS.register("classification_cv")
class ClassificationCVTask(ClassificationTask):
    """run_classifier_cv.py: k-fold cross-validation of classification (its flags and a few of its own)."""

    name = "classification_cv"
    script = "run_classifier_cv.py"
    description = ("k-fold cross-validation of classification (run_classifier.py's tsv); out-of-fold "
                   "probabilities for stacking")
    command = staticmethod(run_cross_validation)

    @staticmethod
    def add_args(g):
        ClassificationTask.add_args(g)
        g.add_argument("--folds_num", type=Int(min=2), default=5, help="the number of folds")
        g.add_argument("--train_features_path", default=None,
                       help="the .npy file receiving the out-of-fold probabilities [examples, classes] (stacking)")
        g.add_argument("--test_features_path", default=None,
                       help="the .npy file receiving the fold models' mean probabilities on --test_path")


@TASKS.register("classification_grid")
class ClassificationGridTask(ClassificationTask):
    """run_classifier_grid.py: a grid search over batch size, learning rate and epochs."""

    name = "classification_grid"
    script = "run_classifier_grid.py"
    description = "grid search of classification over --batch_size_list x --learning_rate_list x --epochs_num_list"
    command = staticmethod(run_grid_search)

    @staticmethod
    def add_args(g):
        ClassificationTask.add_args(g)
        g.add_argument("--batch_size_list", nargs="+", type=COUNT, default=[32, 64], metavar="N",
                       help="the batch sizes tried (replaces --batch_size)")
        g.add_argument("--learning_rate_list", nargs="+", type=LEARNING_RATE, default=[3e-5, 1e-4, 3e-4],
                       metavar="LR", help="the learning rates tried (replaces --learning_rate)")
        g.add_argument("--epochs_num_list", nargs="+", type=COUNT, default=[3, 5, 8], metavar="N",
                       help="the numbers of epochs tried (replaces --epochs_num)")
        g.add_argument("--results_path", default=None,
                       help="the results table (tsv; default: MODEL_grid.tsv beside --output_model_path)")
