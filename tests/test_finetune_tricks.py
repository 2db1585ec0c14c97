"""The fine-tuning core's knobs: --dropout reaches every dropout of the model, FGM perturbs the word
embedding as its definition says and leaves nothing behind, layer-wise learning-rate decay gives each layer
the documented rate, the schedulers, soft targets."""
import argparse
import math

import pytest
import torch
import torch.nn as nn

from uer_like.config import ModelConfig
from uer_like.finetune import core
from uer_like.finetune.adversarial import FGM
from uer_like.finetune.classification import Classifier
from uer_like.finetune.multiple_choice import MultipleChoice
from uer_like.finetune.mrc import SpanExtractor
from uer_like.finetune.tagging import Tagger
from uer_like.layers.dropout import Dropout

V = 50


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def cfg(**kw):
    d = dict(emb_size=16, hidden_size=16, feedforward_size=32, heads_num=2, layers_num=3, max_seq_length=32,
             dropout=0.5, vocab_size=V)
    d.update(kw)
    return ModelConfig(**d)


def heads(config):
    torch.manual_seed(0)
    return [Classifier(config, V, 3), Tagger(config, V, 4, use_crf=True), SpanExtractor(config, V),
            MultipleChoice(config, V)]


def batch():
    torch.manual_seed(1)
    src = torch.randint(5, V, (2, 9))
    return src, torch.ones_like(src)


def dropouts(model):
    """Every dropout rate in the model: torch's and the library's Dropout modules, and float `dropout`
    attributes (attention's SDPA dropout)."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Dropout, Dropout)):
            out.append((name, m.p))
        elif isinstance(getattr(m, "dropout", None), float):
            out.append((name + ".dropout", m.dropout))
    return out


@pytest.mark.parametrize("model", heads(cfg()), ids=lambda m: type(m).__name__)
def test_set_dropout_reaches_every_dropout(model):
    core.set_dropout(model, 0.3)
    found = dropouts(model)
    assert any(name.startswith("embedding.") for name, _ in found)  # the library's own Dropout is seen
    assert all(p == 0.3 for _, p in found), [x for x in found if x[1] != 0.3]
    assert model.config.dropout == 0.3  # the saved config says what was trained with
    core.set_dropout(model, 0.0)  # then training mode computes exactly what evaluation mode does
    src, seg = batch()
    with torch.no_grad():
        model.train()
        a = model.encode(src, seg)
        model.eval()
        b = model.encode(src, seg)
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------- FGM
def tiny_classifier(**kw):
    torch.manual_seed(0)
    return Classifier(cfg(dropout=0.0, **kw), V, 3)


def clean_grads(model, src, seg, labels):
    model.zero_grad(set_to_none=True)
    model.loss(model(src, seg), labels).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_fgm_perturbation_is_epsilon_along_the_gradient_and_removed():
    model = tiny_classifier()
    src, seg = batch()
    labels = torch.tensor([0, 2])
    word = model.embedding.word.embedding.weight
    before = word.detach().clone()
    g = clean_grads(model, src, seg, labels)["embedding.word.embedding.weight"]
    fgm = FGM(model, epsilon=0.7)
    fgm.attack()
    delta = word.detach() - before
    assert torch.linalg.vector_norm(delta).item() == pytest.approx(0.7, rel=1e-5)
    assert torch.allclose(delta, 0.7 * g / torch.linalg.vector_norm(g), atol=1e-7)
    # every other parameter is untouched (only the word embedding is attacked)
    model.loss(model(src, seg), labels).backward()
    fgm.restore()
    assert torch.equal(word.detach(), before)


def test_fgm_step_adds_the_adversarial_gradient_and_leaves_no_perturbation():
    """One core step with FGM: the gradient is clean + adversarial (the loss at E + r), the weights after a
    zero-learning-rate step are the starting ones (the perturbation is gone)."""
    model = tiny_classifier()
    src, seg = batch()
    labels = torch.tensor([1, 2])
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    ref = tiny_classifier()
    g_clean = clean_grads(ref, src, seg, labels)
    gw = g_clean["embedding.word.embedding.weight"]
    with torch.no_grad():
        ref.embedding.word.embedding.weight.add_(0.5 * gw / torch.linalg.vector_norm(gw))
    g_adv = clean_grads(ref, src, seg, labels)

    class Task:
        @staticmethod
        def loss(m, b):
            return m.loss(m(b["src"], b["seg"]), b["label"])

    args = argparse.Namespace(learning_rate=0.0, weight_decay=0.0, max_grad_norm=1e9, use_adv=True, fgm_epsilon=0.5,
                              layerwise_lr_decay=1.0)
    optimizer, fgm = core.build_training(model, args)
    core.set_lr(optimizer, 0.0)
    dev = torch.device("cpu")
    core.train_step(Task, model, {"src": src, "seg": seg, "label": labels}, optimizer,
                    torch.amp.GradScaler("cuda", enabled=False), args, dev, None, fgm)
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), start[n]), n
        assert torch.allclose(p.grad, g_clean[n] + g_adv[n], atol=1e-6), n


# ---------------------------------------------------------------------------------------------- learning rates
def test_layerwise_lr_decay_gives_each_layer_the_documented_rate():
    model = tiny_classifier()  # 3 layers
    args = argparse.Namespace(learning_rate=1e-3, weight_decay=0.01, layerwise_lr_decay=0.5)
    optimizer, _ = core.build_training(model, args)
    core.set_lr(optimizer, 1e-3)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    expected = {"output_layer": 1e-3, "encoder.transformer.2.": 5e-4, "encoder.transformer.1.": 2.5e-4,
                "encoder.transformer.0.": 1.25e-4, "embedding.": 6.25e-5}
    seen = set()
    for n, p in model.named_parameters():
        key = next(k for k in expected if n.startswith(k))
        seen.add(key)
        assert lr_of[id(p)] == pytest.approx(expected[key]), n
    assert seen == set(expected)
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert id(model.output_layer_2.weight) in decayed and id(model.output_layer_2.bias) not in decayed


def test_training_loop_follows_the_scheduler(monkeypatch):
    """core.train sets the learning rate of each step from training/optim.py's lr_at for --scheduler."""
    from uer_like.finetune import data as D
    from uer_like.training import loop
    model = tiny_classifier()
    src, _ = batch()
    feats = [{"src": src[i % 2].tolist(), "seg": [1] * src.shape[1], "label": i % 3, "example": i} for i in range(8)]

    class Task:
        main_metric = "acc"
        length = staticmethod(lambda f: len(f["src"]))
        to_device = staticmethod(lambda b, d: b)

        @staticmethod
        def collate(fs):
            return {"src": D.pad([f["src"] for f in fs], 0), "seg": D.pad([f["seg"] for f in fs], 0),
                    "label": torch.tensor([f["label"] for f in fs])}

        @staticmethod
        def loss(m, b):
            return m.loss(m(b["src"], b["seg"]), b["label"])

    for scheduler in ("linear", "cosine", "constant"):
        seen = []
        monkeypatch.setattr(loop, "set_lr", lambda opt, lr: (seen.append(lr), [g.update(lr=lr) for g in opt.param_groups]))
        args = argparse.Namespace(learning_rate=1.0, weight_decay=0.0, max_grad_norm=1.0, warmup=0.25, scheduler=scheduler,
                                  epochs_num=2, batch_size=2, max_steps=0, seed=1, no_progress=True, report_steps=100,
                                  output_model_path=None)
        core.train(Task, model, feats, args, torch.device("cpu"), None)
        total, warm = 8, 2
        want = [(s + 1) / warm if s < warm else {"linear": (total - s) / (total - warm),
                                                  "cosine": 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))),
                                                  "constant": 1.0}[scheduler] for s in range(total)]
        assert seen == pytest.approx(want), scheduler


def test_soft_targets_loss_is_uer_py_s():
    """--soft_targets: soft_alpha x MSE(logits, teacher logits) + (1 - soft_alpha) x cross-entropy."""
    from uer_like.finetune.classification import ClassificationTask
    model = tiny_classifier()
    src, seg = batch()
    labels = torch.tensor([2, 0])
    soft = torch.tensor([[1.0, -1.0, 3.0], [0.5, 0.0, -2.0]])
    task = ClassificationTask(argparse.Namespace(soft_alpha=0.3, labels_num=3, seq_length=16), None)
    with torch.no_grad():
        logits = model(src, seg)
        got = task.loss(model, {"src": src, "seg": seg, "label": labels, "soft": soft})
        mse = ((logits - soft) ** 2).mean()
        ce = -torch.log_softmax(logits, -1)[torch.arange(2), labels].mean()
    assert float(got) == pytest.approx(float(0.3 * mse + 0.7 * ce), rel=1e-6)
