"""Intermediate-layer distillation (finetune/distill.py, TinyBERT): the encoder records what it is asked and
nothing changes without a trace, the layer mapping and its refusals, the total is the weighted sum of its terms,
training on the intermediate terms moves the student's hidden states toward the teacher's, and a run of the
classifier with a teacher ends with a plain classifier."""
import json

import pytest
import torch

from uer_like import build_model, save_model
from uer_like.config import ModelConfig
from uer_like.errors import ConfigError
from uer_like.finetune import distill
from uer_like.finetune.classification import Classifier
from uer_like.finetune.cli import run
from uer_like.finetune.models import TaskModel

V = 40


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def cfg(**kw):
    d = dict(emb_size=32, hidden_size=32, feedforward_size=64, heads_num=2, layers_num=2, max_seq_length=32,
             dropout=0.0, vocab_size=V)
    d.update(kw)
    return ModelConfig(**d)


def batch(seed=1, b=4, s=10):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(5, V, (b, s), generator=g)
    seg = torch.ones_like(src)
    seg[0, 7:] = 0  # padding: the unpadded training path and the masks are exercised
    seg[2, 5:] = 0
    src[seg == 0] = 0
    return {"src": src, "seg": seg, "label": torch.tensor([0, 1, 0, 1])}


def test_trace_records_every_layer_and_changes_nothing():
    torch.manual_seed(0)
    m = TaskModel(cfg(layers_num=3), V)
    b = batch()
    for mode in (m.eval, m.train):  # padded (eval) and unpadded (train) paths
        mode()
        plain = m.encode(b["src"], b["seg"])
        with distill.recording(m.encoder) as tr:
            traced = m.encode(b["src"], b["seg"])
        assert torch.equal(plain, traced)
        assert len(tr.hidden) == 4 and len(tr.scores) == 3
        assert torch.equal(tr.hidden[-1], traced)
        assert tr.scores[0].shape == (4, 2, 10, 10)
        assert m.encoder.trace is None  # the block leaves no trace behind
    # the scores are q k^T / sqrt(d) of layer 1: recomputed from its input
    m.eval()
    with distill.recording(m.encoder) as tr:
        m.encode(b["src"], b["seg"])
    attn = m.encoder.transformer[0].self_attn
    q, k, _ = attn.qkv(tr.hidden[0]).view(4, 10, 3, 2, 16).permute(2, 0, 3, 1, 4)
    assert torch.allclose(tr.scores[0], q @ k.transpose(-1, -2) / 4.0, atol=1e-5)


def test_layer_mapping_and_its_refusals():
    assert distill.layer_map("uniform", 2, 4) == [(1, 2), (2, 4)]  # TinyBERT: g(m) = m x N / M
    assert distill.layer_map("uniform", 3, 12) == [(1, 4), (2, 8), (3, 12)]
    assert distill.layer_map("1:1, 2:3", 2, 4) == [(1, 1), (2, 3)]
    for spec, msg in (("1:5", "outside the student's layers 1..2 or the teacher's 1..4"), ("0:1", "outside"),
                      ("1-2", "is not student:teacher"), ("1:2,1:3", "paired twice"), ("every", "not student:teacher")):
        with pytest.raises(ConfigError, match=msg) as e:
            distill.layer_map(spec, 2, 4)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="fewer than the student's"):
        distill.layer_map("uniform", 4, 2)


def teacher_and_student(projection="auto", **weights):
    torch.manual_seed(0)
    teacher = TaskModel(cfg(hidden_size=48, emb_size=48, feedforward_size=96, layers_num=4), V)
    student = Classifier(cfg(), V, 2)
    d = distill.IntermediateDistiller(teacher, student.config, "uniform", projection, weights)
    return d.attach(student), d


def test_width_mismatch_gets_a_projection_or_a_one_line_refusal():
    student, d = teacher_and_student()
    assert d.projected and student.distill_projection.weight.shape == (48, 32)
    assert not any(k.startswith("distill_projection") for k in student.state_dict())  # never saved
    assert any(n.startswith("distill_projection") for n, _ in student.named_parameters())  # but trained
    with pytest.raises(ConfigError, match="hidden size 32 differs from the teacher's 48") as e:
        teacher_and_student("none")
    assert "\n" not in str(e.value)
    _, d = teacher_and_student("none", hidden=0.0, embedding=0.0)  # attention alone needs no projection
    assert not d.projected
    with pytest.raises(ConfigError, match="2 heads and the teacher 4"):
        distill.IntermediateDistiller(TaskModel(cfg(heads_num=4), V), cfg(), "uniform", "auto", None)


def step_loss(student, d, b):
    with distill.recording(student.encoder) as tr:
        task = student.loss(student(b["src"], b["seg"]), b["label"])
    return d.loss(task, student, tr, b)


def test_total_is_the_weighted_sum_and_the_student_moves_toward_the_teacher():
    student, d = teacher_and_student(task=0.5, hidden=2.0, attention=0.1, embedding=3.0)
    b = batch()
    student.train()
    total, terms = step_loss(student, d, b)
    expect = 0.5 * terms["task"] + 2.0 * terms["hidden"] + 0.1 * terms["attention"] + 3.0 * terms["embedding"]
    assert torch.allclose(total, expect) and all(float(terms[k].detach()) > 0 for k in terms)
    # the hidden term by hand: MSE over real tokens of layer 1 -> teacher layer 2, layer 2 -> teacher layer 4
    t_tr = d.teacher_trace(b, torch.device("cpu"))
    with distill.recording(student.encoder) as s_tr:
        student(b["src"], b["seg"])
    assert all(h.shape[:2] == (4, 10) for h in s_tr.hidden)  # a recorded forward computes every position
    real = b["seg"] > 0
    by_hand = sum(((student.distill_projection(s_tr.hidden[m]) - t_tr.hidden[n]) ** 2).mean(-1)[real].mean()
                  for m, n in [(1, 2), (2, 4)])
    assert torch.allclose(d.terms(student, s_tr, t_tr, b["seg"])["hidden"], by_hand, atol=1e-6)
    # train on the intermediate terms alone: they fall
    student, d = teacher_and_student(task=0.0)
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    first = None
    for i in range(60):
        loss, terms = step_loss(student, d, batch(seed=i % 4))
        first = first or {k: float(v.detach()) for k, v in terms.items()}
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, last = step_loss(student, d, batch(seed=0))
    for k in ("hidden", "attention", "embedding"):
        assert float(last[k].detach()) < 0.5 * first[k], (k, first[k], float(last[k].detach()))


def test_classifier_run_with_a_teacher(tmp_path):
    """End to end: a teacher saved by the framework, a smaller student trained with all terms; the saved model
    is a plain classifier (no projection) that inference loads."""
    vocab = tmp_path / "vocab.txt"
    chars = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(chars)) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    t_cfg = cfg(hidden_size=48, emb_size=48, feedforward_size=96, layers_num=4, vocab_size=25,
                target=["mlm"], max_seq_length=64)
    save_model(build_model(t_cfg), str(tmp_path / "teacher.bin"))
    s_cfg = tmp_path / "student_config.json"
    s_cfg.write_text(json.dumps({"emb_size": 32, "hidden_size": 32, "feedforward_size": 64, "heads_num": 2,
                                 "layers_num": 2, "max_seq_length": 64, "dropout": 0.0}), encoding="utf-8")
    rows = ["label\ttext_a"] + [f"{i % 2}\t{chars[i % 2] * 3}{chars[2 + i % 7]}{chars[10 + i % 5]}" for i in range(40)]
    data = tmp_path / "train.tsv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    model = str(tmp_path / "student.bin")
    rep = run("classification", ["--config_path", str(s_cfg), "--vocab_path", str(vocab), "--train_path", str(data),
                                 "--dev_path", str(data), "--output_model_path", model, "--seq_length", "16",
                                 "--teacher_model_path", str(tmp_path / "teacher.bin"), "--epochs_num", "3",
                                 "--batch_size", "8", "--learning_rate", "1e-3", "--no_progress"])
    losses = [h["train_loss"] for h in rep["history"]]
    assert losses[-1] < losses[0], losses
    again = run("classification", ["--load_model_path", model, "--vocab_path", str(vocab), "--test_path", str(data),
                                   "--no_progress"])
    assert "acc" in again["test"]
    with pytest.raises(ConfigError, match="--distill_layers '3:1'"):
        run("classification", ["--config_path", str(s_cfg), "--vocab_path", str(vocab), "--train_path", str(data),
                               "--output_model_path", model, "--seq_length", "16", "--no_progress",
                               "--teacher_model_path", str(tmp_path / "teacher.bin"), "--distill_layers", "3:1"])
