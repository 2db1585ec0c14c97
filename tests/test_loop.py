"""The training loop pretraining and fine-tuning run on (uer_like/training/loop.py), on a tiny linear model:
gradient accumulation, the non-finite guard, SIGTERM at a step boundary, the hooks' intervals, the report."""
import os
import signal

import pytest
import torch

from uer_like.errors import TrainingError
from uer_like.training.distributed import DistInfo
from uer_like.training.guard import NonfiniteGuard
from uer_like.training.loop import Micro, StepLoop
from uer_like.training.metrics import Report


def data(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g)


def make(total=4, max_nonfinite=5, lr=0.1):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loop = StepLoop(model, opt, torch.amp.GradScaler("cuda", enabled=False), DistInfo(), schedule=lambda s: lr,
                    total_steps=total, max_grad_norm=1e9, guard=NonfiniteGuard(max_nonfinite))
    return model, loop


def mse(model):
    return lambda b: torch.nn.functional.mse_loss(model(b["x"]), b["y"])


def test_accumulated_micro_batches_make_the_update_of_their_union():
    """Two micro-batches of 4 with weight 1/2 (pretraining's accumulation) give the step one batch of 8 gives."""
    x, y = data()
    one, loop1 = make()
    two, loop2 = make()
    loss1, g1, _ = loop1.train_step([Micro({"x": x, "y": y})], mse(one))
    loss2, g2, _ = loop2.train_step([Micro({"x": x[:4], "y": y[:4]}, 0.5), Micro({"x": x[4:], "y": y[4:]}, 0.5)],
                                    mse(two))
    assert loss1.item() == pytest.approx(loss2.item(), abs=1e-6) and g1.item() == pytest.approx(g2.item(), abs=1e-6)
    for a, b in zip(one.parameters(), two.parameters()):
        assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a.grad, b.grad, atol=1e-6)
    assert loop1.step == loop2.step == 1


def test_non_finite_steps_are_skipped_and_a_streak_stops_the_run_naming_what_was_kept():
    x, y = data()
    model, loop = make(total=10, max_nonfinite=2)
    loop.kept = lambda: "the last finite checkpoint is ck.pt"
    calls = []

    def forward(b):
        calls.append(1)
        loss = mse(model)(b)
        return loss * float("nan") if len(calls) >= 2 else loss

    after_first = []
    with pytest.raises(TrainingError, match=r"NaN/inf for 2 steps in a row \(up to step 3, learning rate 0.1\).*"
                                            r"the last finite checkpoint is ck\.pt"):
        loop.run(iter(lambda: [Micro({"x": x, "y": y})], None), forward,
                 after_step=lambda loss, skipped: after_first.append([p.detach().clone() for p in model.parameters()]))
    assert loop.step == 3 and loop.guard.skipped == 2
    for a, b in zip(after_first[0], model.parameters()):  # the skipped steps left the weights as they were
        assert torch.equal(a, b)


def test_hooks_run_at_their_intervals_and_sigterm_stops_at_the_next_boundary_after_a_save():
    x, y = data()
    model, loop = make(total=10)
    seen = []

    def after_step(loss, skipped):
        if loop.step == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # handled by the loop: stop after this step's boundary

    handler = signal.getsignal(signal.SIGTERM)
    stopped = loop.run(iter(lambda: [Micro({"x": x, "y": y})], None), mse(model), after_step=after_step,
                       evaluate=lambda: seen.append(("eval", loop.step)), eval_every=2,
                       save=lambda: seen.append(("save", loop.step, loop.stopping)), save_every=3)
    assert stopped and loop.step == 5
    assert seen == [("eval", 2), ("save", 3, False), ("eval", 4), ("save", 5, True)]
    assert signal.getsignal(signal.SIGTERM) is handler


def test_a_run_ends_with_its_batches_or_at_total_steps_saving_at_the_end():
    x, y = data()
    model, loop = make(total=10)
    saves = []
    assert not loop.run([[Micro({"x": x, "y": y})]] * 3, mse(model), save=lambda: saves.append(loop.step),
                        save_every=100, save_at_end=False)
    assert loop.step == 3 and saves == []  # the batches ended (a fine-tuning epoch), not the run
    assert not loop.run(iter(lambda: [Micro({"x": x, "y": y})], None), mse(model), save=lambda: saves.append(loop.step))
    assert loop.step == 10 and saves == [10]


def test_the_report_line_gives_the_mean_loss_and_grad_norm_of_the_updates_and_the_throughput():
    x, y = data()
    model, loop = make(total=4)
    lines = []
    report = Report(DistInfo(), 4, every=2, say=lines.append)
    losses, norms = [], []

    def after_step(loss, skipped):
        losses.append(loss.item())

    real = loop.train_step

    def train_step(*a):
        out = real(*a)
        norms.append(out[1].item())
        return out

    loop.train_step = train_step
    loop.run(iter(lambda: [Micro({"x": x, "y": y}, 1.0, 10, 8)], None), mse(model), report, after_step=after_step)
    assert len(lines) == 2 and lines[0].startswith("step 2/4 | loss ")
    loss = float(lines[1].split(" | ")[1].split()[1])
    assert loss == pytest.approx(sum(losses[2:]) / 2, abs=1e-4)
    assert float(lines[1].split("grad norm ")[1].split()[0]) == pytest.approx(sum(norms[2:]) / 2, abs=1e-3)
    assert "tokens/s" in lines[1] and "examples/s" in lines[1]
