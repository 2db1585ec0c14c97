"""Multi-task classification (finetune/multi_task.py, run_classifier_mt.py): every head learns its own dataset
from mixed batches, a batch of one dataset leaves the other heads untouched, the saved model predicts per
dataset and with every head (UER-py's format), one head exports to transformers with the same logits, and bad
input is refused in one line."""
import os
import random

import pytest
import torch

from uer_like.config import load_config
from uer_like.finetune import core
from uer_like.finetune.cli import build_parser, main, run
from uer_like.finetune.data import Encoder
from uer_like.finetune.multi_task import MultiTaskClassificationTask, MultiTaskClassifier, split_heads
from uer_like.tokenizers import build_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")
TINY = ["--config_path", "bert/tiny_config.json", "--vocab_path", VOCAB, "--no_progress", "--precision", "fp32",
        "--seq_length", "16", "--threads", "1"]
# the same characters mean opposite things in A and B: a head that read another dataset's rows would fail
X, Y, Z = "天地人山水花草木", "日月星云风雨雪雷", "一二三四五六七八"
RULES = {"A": {X: 0, Y: 1}, "B": {X: 1, Y: 0, Z: 2}}


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def text(rng, chars):
    return "".join(rng.choice(chars) for _ in range(rng.randint(3, 8)))


def write_dataset(root, name, n_train=64, n_dev=24, seed=0):
    rng = random.Random(f"{name}{seed}")
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    rules = list(RULES[name].items())
    for split, n in (("train", n_train), ("dev", n_dev)):
        with open(os.path.join(d, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("label\ttext_a\n")
            for i in range(n):
                chars, label = rules[i % len(rules)]
                f.write(f"{label}\t{text(rng, chars)}\n")
    return d


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("mt")
    a, b = write_dataset(str(root), "A"), write_dataset(str(root), "B")
    model = str(root / "mt.bin")
    rep = run("multi_task_classification", TINY + ["--dataset_path_list", a, b, "--output_model_path", model,
                                                   "--epochs_num", "5", "--batch_size", "8", "--learning_rate", "1e-3",
                                                   "--seed", "3"])
    return root, a, b, model, rep


def test_each_head_learns_its_dataset_from_mixed_batches(trained):
    root, a, b, model, rep = trained
    best = [r for r in rep["history"] if r.get("best")][-1]["dev"]
    assert set(best["datasets"]) == {"0", "1"}
    assert best["datasets"]["0"]["total"] == 24 and best["datasets"]["1"]["total"] == 24
    assert best["datasets"]["0"]["acc"] >= 0.95 and best["datasets"]["1"]["acc"] >= 0.95, best
    assert best["acc"] == pytest.approx((best["datasets"]["0"]["acc"] + best["datasets"]["1"]["acc"]) / 2)


def test_saved_model_predicts_per_dataset_and_with_every_head(trained, tmp_path):
    root, a, b, model, _ = trained
    # --dataset_id: the file is that dataset's, evaluated and predicted by its head (run_classifier.py's format)
    pred_b = str(tmp_path / "b.tsv")
    rep = run("multi_task_classification", ["--load_model_path", model, "--vocab_path", VOCAB, "--no_progress",
                                            "--test_path", os.path.join(b, "dev.tsv"), "--dataset_id", "1",
                                            "--prediction_path", pred_b])
    assert rep["test"]["datasets"]["1"]["acc"] >= 0.95
    by_b = [int(x) for x in open(pred_b, encoding="utf-8").read().split()[1:]]
    assert set(by_b) == {0, 1, 2}
    # no --dataset_id: every head predicts every line, UER-py's `label` = `a|b`, prob vectors joined the same way
    rng = random.Random(9)
    lines = [text(rng, X) for _ in range(4)] + [text(rng, Y) for _ in range(4)]
    test = tmp_path / "t.tsv"
    test.write_text("text_a\n" + "".join(t + "\n" for t in lines), encoding="utf-8")
    pred = str(tmp_path / "all.tsv")
    run("multi_task_classification", ["--load_model_path", model, "--vocab_path", VOCAB, "--no_progress",
                                      "--test_path", str(test), "--prediction_path", pred, "--output_prob"])
    rows = [r.split("\t") for r in open(pred, encoding="utf-8").read().splitlines()]
    assert rows[0] == ["label", "prob"] and len(rows) == 9
    labels = [tuple(int(x) for x in r[0].split("|")) for r in rows[1:]]
    assert labels == [(0, 1)] * 4 + [(1, 0)] * 4  # A's rule and B's rule on the same texts
    for r in rows[1:]:
        pa, pb = r[1].split("|")
        assert len(pa.split()) == 2 and len(pb.split()) == 3
        assert sum(map(float, pb.split())) == pytest.approx(1, abs=1e-5)


def _tiny_task(labels_num_list):
    args = build_parser("multi_task_classification").parse_args(
        TINY + ["--labels_num_list"] + [str(n) for n in labels_num_list] + ["--epochs_num", "1", "--batch_size", "4"])
    args.output_model_path = None
    tok = build_tokenizer("bert", VOCAB)
    task = MultiTaskClassificationTask(args, Encoder(tok))
    cfg = load_config("bert/tiny_config.json", layers_num=1)
    torch.manual_seed(0)
    return task, MultiTaskClassifier(cfg, len(tok.vocab), labels_num_list), args


def _feats(task, rows):
    exs = [{"text_a": t, "text_b": None, "label": y, "dataset": d} for d, t, y in rows]
    return task.encode(exs)


def test_a_batch_of_one_dataset_never_updates_another_head():
    task, model, args = _tiny_task([2, 3])
    rng = random.Random(1)
    feats = _feats(task, [(1, text(rng, Z), 2) for _ in range(8)])  # dataset 1 only
    before = {k: v.clone() for k, v in model.state_dict().items()}
    core.train(task, model, feats, args, torch.device("cpu"), None)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not {k for k in changed if k.startswith(("output_layers_1.0.", "output_layers_2.0."))}
    assert {"output_layers_1.1.weight", "output_layers_2.1.weight"} <= changed  # its own head learned
    assert any(k.startswith("encoder.") for k in changed)  # and the shared encoder


def test_rows_of_a_mixed_batch_go_through_their_own_head():
    task, model, _ = _tiny_task([2, 3])
    model.eval()
    rng = random.Random(2)
    batch = task.collate(_feats(task, [(0, text(rng, X), 0), (1, text(rng, X), 1), (1, text(rng, Z), 2),
                                       (0, text(rng, Y), 1)]))
    with torch.no_grad():
        mixed = model(batch["src"], batch["seg"], batch["dataset"])
        heads = model.all_heads(batch["src"], batch["seg"])
    for r, d in enumerate(batch["dataset"].tolist()):
        n = [2, 3][d]
        torch.testing.assert_close(mixed[r, :n], heads[d][r], rtol=0, atol=1e-6)
        assert torch.isinf(mixed[r, n:]).all()
    # the loss of a mixed batch is the mean of each row's cross-entropy under its own head
    with torch.no_grad():
        loss = task.loss(model, batch)
    ref = torch.stack([torch.nn.functional.cross_entropy(heads[d][r:r + 1], batch["label"][r:r + 1])
                       for r, d in enumerate(batch["dataset"].tolist())]).mean()
    assert float(loss) == pytest.approx(float(ref), abs=1e-6)


def test_one_head_exports_to_transformers_with_the_same_logits(tmp_path):
    transformers = pytest.importorskip("transformers")
    from uer_like.io import hf_tasks

    cfg = load_config("bert/tiny_config.json", layers_num=1, layernorm="torch", layernorm_eps=1e-12)
    torch.manual_seed(4)
    model = MultiTaskClassifier(cfg, 21128, [2, 3]).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("output_layers"):
                p.normal_(0, 0.5)
    path = str(tmp_path / "mt.bin")
    core.save_finetuned(model, path, {"task": "multi_task_classification", "seq_length": 32,
                                      "labels_num_list": [2, 3], "text_pair_list": [False, False],
                                      "datasets": ["A", "B"]})
    single = split_heads(path, str(tmp_path / "b.bin"), 1)
    out = hf_tasks.export_finetuned(single, str(tmp_path / "hf"))
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    g = torch.Generator().manual_seed(0)
    src = torch.randint(100, 8000, (3, 10), generator=g)
    seg = torch.ones_like(src)
    seg[2, 7:], src[2, 7:] = 0, 0
    with torch.no_grad():
        ours = model.all_heads(src, seg)[1]
        theirs = hf(input_ids=src, attention_mask=(seg > 0).long(), token_type_ids=torch.zeros_like(src)).logits
    assert theirs.shape == (3, 3)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)


@pytest.mark.parametrize("case, expect", [
    ("no_dev_in_one", "lack dev.tsv"),
    ("train_path", "--train_path"),
    ("labels_num_list", "--labels_num_list has 1 numbers for 2 datasets"),
    ("not_a_dir", "not a directory"),
])
def test_bad_input_is_one_line(case, expect, tmp_path, capsys):
    a, b = write_dataset(str(tmp_path), "A", 8, 4), write_dataset(str(tmp_path), "B", 8, 4)
    argv = TINY + ["--output_model_path", str(tmp_path / "m.bin"), "--dataset_path_list", a, b]
    if case == "no_dev_in_one":
        os.remove(os.path.join(b, "dev.tsv"))
    elif case == "train_path":
        argv += ["--train_path", os.path.join(a, "train.tsv")]
    elif case == "labels_num_list":
        argv += ["--labels_num_list", "2"]
    else:
        argv += [str(tmp_path / "missing")]
    assert main("multi_task_classification", argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err


def test_dataset_id_beyond_the_heads_is_one_line(trained, capsys):
    root, a, b, model, _ = trained
    assert main("multi_task_classification", ["--load_model_path", model, "--vocab_path", VOCAB, "--no_progress",
                                              "--test_path", os.path.join(a, "dev.tsv"), "--dataset_id", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --dataset_id 2: the model has 2 datasets (0..1)"


def test_runs_on_the_shared_samples_as_uer_py_lays_them_out(tmp_path):
    """../shared/data's sample directories (train.tsv, dev.tsv each) are UER-py's --dataset_path_list layout."""
    samples = os.path.join(ROOT, "..", "shared", "data", "datasets", "samples")
    dirs = [os.path.join(samples, n) for n in ("book_review", "chnsenticorp")]
    if not all(os.path.isdir(d) for d in dirs):
        pytest.skip("../shared/data/datasets/samples is not here")
    rep = run("multi_task_classification", TINY + ["--dataset_path_list", *dirs, "--max_steps", "2",
                                                   "--batch_size", "16", "--output_model_path",
                                                   str(tmp_path / "mt.bin")])
    assert rep["train_examples"] == 200 + 500
    dev = rep["history"][-1]["dev"]["datasets"]
    assert dev["0"]["total"] == 50 and dev["1"]["total"] == 50


def test_split_script_gives_a_classifier_predicting_as_the_head(trained, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("split_multi_task", os.path.join(ROOT, "scripts", "split_multi_task.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    root, a, b, model, _ = trained
    single = str(tmp_path / "b.bin")
    assert script.main(["--load_model_path", model, "--dataset_id", "1", "--output_model_path", single]) == 0
    dev = os.path.join(b, "dev.tsv")
    preds = {}
    for name, argv in (("multi", ["multi_task_classification", "--load_model_path", model, "--dataset_id", "1"]),
                       ("single", ["classification", "--load_model_path", single])):
        out = str(tmp_path / f"{name}.tsv")
        run(argv[0], argv[1:] + ["--vocab_path", VOCAB, "--no_progress", "--precision", "fp32", "--test_path", dev,
                                 "--prediction_path", out, "--output_logits"])
        preds[name] = open(out, encoding="utf-8").read()
    assert preds["multi"] == preds["single"]
    capsys.readouterr()
    assert script.main(["--load_model_path", single, "--dataset_id", "0", "--output_model_path", str(tmp_path / "x.bin")]) == 2
    assert script.main(["--load_model_path", model, "--dataset_id", "5", "--output_model_path", str(tmp_path / "x.bin")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a multi-task classification model" in err[0] and "has 2 datasets (0..1)" in err[1]
