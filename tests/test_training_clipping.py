"""Gradient clipping folded into the fused AdamW step (uer_like/training/clipping.py), against the path it
replaces: torch.nn.utils.clip_grad_norm_, then the optimizer."""
import pytest
import torch

from uer_like.training import clipping
from uer_like.training.distributed import DistInfo
from uer_like.training.guard import NonfiniteGuard
from uer_like.training.loop import Micro, StepLoop
from uer_like.training.optim import AdamW, Lamb, param_groups

SCALER = torch.amp.GradScaler("cuda", enabled=False)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 16)
        self.lin = torch.nn.Linear(16, 16)
        self.out = torch.nn.Linear(16, 3)

    def forward(self, batch):
        h = torch.tanh(self.lin(self.emb(batch["ids"]).mean(1)))
        return torch.nn.functional.cross_entropy(self.out(h), batch["y"]) * batch.get("mul", 1.0)


def batches(n, mul=1.0):
    g = torch.Generator().manual_seed(1)
    return [{"ids": torch.randint(0, 50, (8, 5), generator=g), "y": torch.randint(0, 3, (8,), generator=g),
             "mul": mul} for _ in range(n)]


def model_and_opt(opt_class=AdamW):
    torch.manual_seed(0)
    model = Tiny()
    return model, opt_class(param_groups(model, 0.01), lr=1e-2, eps=1e-8)


def reference(data, max_norm, opt_class=AdamW):
    """The plain path: clip_grad_norm_, then the optimizer's step -> (model, norms)."""
    model, opt = model_and_opt(opt_class)
    norms = []
    for b in data:
        opt.zero_grad(set_to_none=True)
        model(b).backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        opt.step()
    return model, norms


def looped(data, max_norm, opt_class=AdamW):
    model, opt = model_and_opt(opt_class)
    loop = StepLoop(model, opt, SCALER, DistInfo(), schedule=lambda s: 1e-2, total_steps=len(data),
                    max_grad_norm=max_norm, guard=NonfiniteGuard(3))
    norms = [loop.train_step([Micro(b)], model)[1] for b in data]
    return model, norms, loop


def fused_loop(monkeypatch, data, max_norm):
    """The loop's run, with clip_grad_norm_ refused: the fused path must not scale the gradients in a pass of
    its own."""
    def refuse(*a, **k):
        raise AssertionError("clip_grad_norm_ called on the fused path")
    with monkeypatch.context() as mp:
        mp.setattr(torch.nn.utils, "clip_grad_norm_", refuse)
        return looped(data, max_norm)


def test_active_clipping_folded_into_fused_adamw_matches_clip_then_step(monkeypatch):
    data = batches(6, mul=50.0)  # norms far above max_norm: every step clipped
    ref, ref_norms = reference(data, 0.5)
    got, norms, loop = fused_loop(monkeypatch, data, 0.5)
    assert loop.clip.fused
    assert all(r.item() > 5.0 for r in ref_norms)
    assert torch.equal(norms[0], ref_norms[0])  # the first step: the same gradients, the same norm
    for n, r in zip(norms, ref_norms):
        assert n.item() == pytest.approx(r.item(), rel=1e-5)
    for (name, a), b in zip(got.named_parameters(), ref.parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-7), name  # the clipped gradients stay in place


def test_without_clipping_the_fused_path_gives_the_same_update_to_the_bit(monkeypatch):
    data = batches(5)
    ref, ref_norms = reference(data, 1e6)
    got, norms, loop = fused_loop(monkeypatch, data, 1e6)
    assert loop.clip.fused
    assert all(torch.equal(n, r) for n, r in zip(norms, ref_norms))
    for (name, a), b in zip(got.named_parameters(), ref.parameters()):
        assert torch.equal(a, b), name


def test_guard_sees_the_same_norm_and_skips_a_non_finite_step(monkeypatch):
    data = batches(3)
    data[1] = {**data[1], "mul": float("inf")}
    got, norms, loop = fused_loop(monkeypatch, data, 1.0)
    assert loop.clip.fused and loop.guard.skipped == 1
    assert not torch.isfinite(norms[1]) and torch.isfinite(norms[0]) and torch.isfinite(norms[2])
    assert all(torch.isfinite(p).all() for p in got.parameters())


def test_the_plain_path_stays_where_the_fold_does_not_apply():
    model, adamw = model_and_opt()
    _, lamb = model_and_opt(Lamb)
    params = list(model.parameters())
    assert clipping.folds(adamw, SCALER, params)
    assert not clipping.folds(lamb, SCALER, params)  # no grad_scale in its update
    assert not clipping.folds(torch.optim.AdamW(params, fused=True), SCALER, params)  # torch's own optimizers

    class Fp16Scaler:
        def is_enabled(self):
            return True
    assert not clipping.folds(adamw, Fp16Scaler(), params)  # unscale and overflow skip go through scaler.step

    class Sharded(torch.nn.Parameter):  # FSDP's parameters are DTensors (to_local)
        def to_local(self):
            return self
    assert not clipping.folds(adamw, SCALER, params + [Sharded(torch.zeros(2))])
    with pytest.raises(TypeError, match="Lamb does not take a grad_scale"):
        lamb.step(grad_scale=torch.tensor(2.0))
    data = batches(4, mul=50.0)
    ref, ref_norms = reference(data, 0.5, Lamb)
    got, norms, loop = looped(data, 0.5, Lamb)
    assert not loop.clip.fused
    assert all(torch.equal(n, r) for n, r in zip(norms, ref_norms))
    assert all(torch.equal(a, b) for a, b in zip(got.parameters(), ref.parameters()))
