"""Long-document classification (--sliding_window, finetune/windows.py): the windows cover the text, the
pooling is what it says, and a label that only a token past --seq_length decides is learned with windows and
not without them."""
import json
import random

import pytest
import torch

from uer_like.errors import ConfigError, DataError
from uer_like.finetune import data as D
from uer_like.finetune.cli import run
from uer_like.finetune.windows import pool_windows

FILLER = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经"
CUE = {"0": "甲", "1": "乙"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def test_windows_cover_the_text_and_overlap_by_the_stride():
    assert D.windows(5, 8, 4) == [(0, 5)]
    w = D.windows(20, 8, 5)
    assert w == [(0, 8), (5, 8), (10, 8), (15, 5)]
    covered = {i for s, n in w for i in range(s, s + n)}
    assert covered == set(range(20))
    assert D.windows(20, 8, 50) == [(0, 8), (8, 8), (16, 4)]  # a stride past the window: adjacent, no gap


def test_pooling_mean_and_max_per_document():
    logits = torch.tensor([[1.0, 0.0], [3.0, -2.0], [5.0, 1.0], [0.0, 4.0]], requires_grad=True)
    doc = torch.tensor([0, 0, 1, 1])
    assert torch.allclose(pool_windows(logits, doc, "mean"), torch.tensor([[2.0, -1.0], [2.5, 2.5]]))
    mx = pool_windows(logits, doc, "max")
    assert torch.equal(mx, torch.tensor([[3.0, 0.0], [5.0, 4.0]]))
    mx.sum().backward()  # the gradient reaches the window that holds each maximum only
    assert torch.equal(logits.grad, torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))


def write_vocab(path):
    chars = sorted(set(FILLER + "".join(CUE.values())))
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n", encoding="utf-8")
    return str(path)


def write_docs(path, n, seed):
    """Documents of 40 filler characters whose label is the one cue character at position 26..33: past a
    16-token window ([CLS] + 14 characters + [SEP])."""
    rng = random.Random(seed)
    rows = ["label\ttext_a"]
    for i in range(n):
        label = str(i % 2)
        text = [rng.choice(FILLER) for _ in range(40)]
        text[rng.randint(26, 33)] = CUE[label]
        rows.append(label + "\t" + "".join(text))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def train(tmp_path, *extra):
    vocab = write_vocab(tmp_path / "vocab.txt")
    argv = ["--config_path", "bert/tiny_config.json", "--vocab_path", vocab, "--seq_length", "16",
            "--train_path", write_docs(tmp_path / "train.tsv", 160, 1), "--dev_path", write_docs(tmp_path / "dev.tsv", 60, 2),
            "--test_path", write_docs(tmp_path / "test.tsv", 60, 3), "--output_model_path", str(tmp_path / "m.bin"),
            "--epochs_num", "4", "--batch_size", "16", "--learning_rate", "1e-3", "--no_progress", "--seed", "3",
            "--dropout", "0"] + list(extra)
    return run("classification", argv)


def test_a_label_past_seq_length_is_learned_with_windows_only(tmp_path):
    (tmp_path / "cut").mkdir()
    cut = train(tmp_path / "cut")
    assert cut["test"]["acc"] <= 0.7, cut["test"]  # the cue is cut away: chance
    (tmp_path / "win").mkdir()
    win = train(tmp_path / "win", "--sliding_window", "--doc_stride", "7")
    assert win["test"]["acc"] >= 0.95, win["test"]
    meta = json.load(open(tmp_path / "win" / "m_finetune.json"))
    assert meta["sliding_window"] and meta["doc_stride"] == 7 and meta["window_pooling"] == "mean"
    # inference from the saved model windows the same way, without the flags
    pred = tmp_path / "win" / "pred.tsv"
    again = run("classification", ["--load_model_path", str(tmp_path / "win" / "m.bin"), "--vocab_path",
                                   str(tmp_path / "win" / "vocab.txt"), "--test_path", str(tmp_path / "win" / "test.tsv"),
                                   "--prediction_path", str(pred), "--no_progress"])
    assert again["test"]["acc"] == win["test"]["acc"]
    assert len(pred.read_text().splitlines()) == 61  # one prediction per document


def test_max_pooling_learns_too(tmp_path):
    win = train(tmp_path, "--sliding_window", "--doc_stride", "7", "--window_pooling", "max")
    assert win["test"]["acc"] >= 0.95, win["test"]


def test_bad_window_flags_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="--doc_stride applies to --sliding_window only"):
        train(tmp_path, "--doc_stride", "7")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("label\ttext_a\ttext_b\n0\t的一\t是在\n1\t乙的\t是在\n", encoding="utf-8")
    with pytest.raises(DataError, match="--sliding_window windows single texts"):
        train(tmp_path, "--sliding_window", "--train_path", str(pairs), "--dev_path", str(pairs), "--test_path", str(pairs))
