"""Model selection (finetune/model_selection.py): k-fold cross-validation (run_classifier_cv.py) predicts every
example once, with the model that did not train on it, and writes UER-py's stacking features; the grid search
(run_classifier_grid.py) runs one training per combination, writes one table row each and keeps the best model;
bad fold counts and missing inputs are refused in one line."""
import math
import os
import random

import numpy as np
import pytest

from uer_like.errors import ConfigError
from uer_like.finetune.cli import main, run
from uer_like.finetune.model_selection import fold_model_path, kfold_ranges

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")
TINY = ["--config_path", "bert/tiny_config.json", "--vocab_path", VOCAB, "--no_progress", "--precision", "fp32",
        "--seq_length", "12", "--threads", "1"]
X, Y = "天地人山水花草木", "日月星云风雨雪雷"


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def write_tsv(path, n, seed=0):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("label\ttext_a\n")
        for i in range(n):
            f.write(f"{i % 2}\t{''.join(rng.choice(Y if i % 2 else X) for _ in range(rng.randint(3, 8)))}\n")
    return str(path)


def probs_of(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    col = lines[0].split("\t").index("prob")
    return np.array([[float(x) for x in line.split("\t")[col].split()] for line in lines[1:]])


def test_kfold_ranges_cover_every_example_once():
    for n, k in [(10, 4), (10, 5), (7, 7), (100, 3)]:
        ranges = kfold_ranges(n, k)
        assert len(ranges) == k and ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, disjoint
        sizes = [e - s for s, e in ranges]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert [e - s for s, e in kfold_ranges(10, 4)] == [3, 3, 2, 2]
    for k in (1, 11):
        with pytest.raises(ConfigError):
            kfold_ranges(10, k)
    assert fold_model_path("models/classifier_model.bin", 2) == "models/classifier_model-fold_2.bin"


def test_cross_validation_predicts_each_example_with_the_model_that_did_not_see_it(tmp_path):
    n, k = 22, 3
    train = write_tsv(tmp_path / "train.tsv", n)
    model, oof, test_feats = str(tmp_path / "m.bin"), str(tmp_path / "oof.npy"), str(tmp_path / "test.npy")
    rep = run("classification_cv", TINY + ["--train_path", train, "--folds_num", str(k), "--epochs_num", "1",
                                           "--batch_size", "4", "--learning_rate", "1e-3", "--output_model_path", model,
                                           "--train_features_path", oof, "--test_path", train,
                                           "--test_features_path", test_feats, "--prediction_path",
                                           str(tmp_path / "ensemble.tsv")])
    folds = rep["folds"]
    # the held-out folds partition the examples; each model trained on all the others
    covered = sorted(j for f in folds for j in range(f["start"], f["end"]))
    assert covered == list(range(n))
    assert [f["train_examples"] for f in folds] == [n - (f["end"] - f["start"]) for f in folds]
    features = np.load(oof)
    assert features.shape == (n, 2) and np.allclose(features.sum(1), 1, atol=1e-5)
    gold = np.arange(n) % 2
    mean_probs = []
    for f in folds:
        assert f["model"] == fold_model_path(model, f["fold"]) and os.path.isfile(f["model"])
        # fold i's model, loaded again, gives fold i's rows of the features, and its held-out accuracy
        pred = str(tmp_path / f"p{f['fold']}.tsv")
        run("classification", ["--load_model_path", f["model"], "--vocab_path", VOCAB, "--no_progress",
                               "--test_path", train, "--prediction_path", pred, "--output_prob", "--precision", "fp32"])
        probs = probs_of(pred)
        mean_probs.append(probs)
        rows = slice(f["start"], f["end"])
        np.testing.assert_allclose(features[rows], probs[rows], atol=2e-6)
        assert f["acc"] == pytest.approx(float((probs[rows].argmax(1) == gold[rows]).mean()))
    accs = [f["acc"] for f in folds]
    assert rep["acc"]["mean"] == pytest.approx(np.mean(accs)) and rep["acc"]["std"] == pytest.approx(np.std(accs))
    # the fold models' mean probabilities on --test_path (UER-py's run_classifier_cv_infer.py)
    np.testing.assert_allclose(np.load(test_feats), np.mean(mean_probs, 0), atol=2e-6)
    ensemble = open(tmp_path / "ensemble.tsv", encoding="utf-8").read().splitlines()
    assert ensemble[0] == "label\tprob" and [int(r.split("\t")[0]) for r in ensemble[1:]] == list(
        np.mean(mean_probs, 0).argmax(1))
    assert os.path.isfile(os.path.splitext(model)[0] + "_cv.json")


def test_grid_search_runs_every_combination_and_keeps_the_best(tmp_path):
    n = 20
    train, dev = write_tsv(tmp_path / "train.tsv", n), write_tsv(tmp_path / "dev.tsv", 10, seed=1)
    model, table = str(tmp_path / "best.bin"), str(tmp_path / "grid.tsv")
    rep = run("classification_grid", TINY + ["--train_path", train, "--dev_path", dev, "--batch_size_list", "4", "8",
                                             "--learning_rate_list", "1e-3", "1e-6", "--epochs_num_list", "1", "2",
                                             "--output_model_path", model, "--results_path", table,
                                             "--test_path", dev])
    lines = [line.split("\t") for line in open(table, encoding="utf-8").read().splitlines()]
    header, rows = lines[0], [dict(zip(lines[0], r)) for r in lines[1:]]
    assert header[:3] == ["batch_size", "learning_rate", "epochs_num"] and len(rows) == 8
    assert [(int(r["batch_size"]), float(r["learning_rate"]), int(r["epochs_num"])) for r in rows] == [
        (b, lr, e) for b in (4, 8) for lr in (1e-3, 1e-6) for e in (1, 2)]
    # each combination trained with its own batch size and epochs
    assert [int(r["steps"]) for r in rows] == [math.ceil(n / int(r["batch_size"])) * int(r["epochs_num"]) for r in rows]
    accs = [float(r["acc"]) for r in rows]
    best = accs.index(max(accs))
    assert [r["best"] for r in rows] == ["1" if i == best else "0" for i in range(8)]
    assert rep["best"]["acc"] == max(r["acc"] for r in rep["results"])
    assert (rep["best"]["batch_size"], rep["best"]["epochs_num"]) == (int(rows[best]["batch_size"]),
                                                                       int(rows[best]["epochs_num"]))
    # the kept model is the best combination's: its dev accuracy again
    assert os.path.isfile(model) and rep["test"]["acc"] == pytest.approx(rep["best"]["acc"])


def test_cross_validation_on_the_shared_book_review_sample(tmp_path):
    train = os.path.join(ROOT, "..", "shared", "data", "datasets", "samples", "book_review", "train.tsv")
    if not os.path.isfile(train):
        pytest.skip("../shared/data/datasets/samples is not here")
    oof = str(tmp_path / "oof.npy")
    rep = run("classification_cv", TINY + ["--train_path", train, "--folds_num", "2", "--max_steps", "1",
                                           "--batch_size", "16", "--output_model_path", str(tmp_path / "m.bin"),
                                           "--train_features_path", oof])
    assert [(f["start"], f["end"]) for f in rep["folds"]] == [(0, 100), (100, 200)]
    features = np.load(oof)
    assert features.shape == (200, 2) and not np.isnan(features).any()


@pytest.mark.parametrize("script, flags, expect", [
    ("classification_cv", ["--folds_num", "7"], "--folds_num 7 is more than the 6 training examples"),
    ("classification_cv", ["--folds_num", "1"], "argument --folds_num: must be >= 2"),
    ("classification_cv", ["--folds_num", "2", "--dev_path", "TRAIN"], "--dev_path"),
    ("classification_cv", ["--folds_num", "2", "--no_features"], "--train_features_path"),
    ("classification_cv", ["--folds_num", "2", "--prediction_path", "p.tsv"], "give --test_path"),
    ("classification_grid", [], "give --train_path and --dev_path"),
    ("classification_grid", ["--learning_rate_list", "0"], "argument --learning_rate_list: must be > 0"),
])
def test_bad_input_is_one_line(script, flags, expect, tmp_path, capsys):
    train = write_tsv(tmp_path / "train.tsv", 6)
    argv = TINY + ["--train_path", train, "--output_model_path", str(tmp_path / "m.bin")]
    if script == "classification_cv" and "--no_features" not in flags:
        argv += ["--train_features_path", str(tmp_path / "f.npy")]
    argv += [train if f == "TRAIN" else f for f in flags if f != "--no_features"]
    status = None
    try:
        status = main(script, argv)
    except SystemExit as e:  # argparse's refusal
        status = e.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err
