"""The non-finite guard both training loops share (pretraining: trainer.py; fine-tuning: finetune/core.py).

- `skip_step`: an optimizer step whose loss or gradient norm is NaN/inf is skipped (the weights keep their
  values), with a warning; the caller counts the skipped steps in a row.
- `diverged`: the TrainingError that stops a run after --max_nonfinite_steps such steps in a row: one line
  naming the step, the learning rate, what was kept and the fix (`cause`: NaN/inf weights from before the
  skipped steps are named instead of the learning rate).
- `check_weights_finite`: weights holding NaN/inf are never written (a checkpoint, the final or best model).
- `NonfiniteGuard`: skip_step with its counts kept (the training loop's, loop.py).

Distributed callers pass `reduce`, which sums a tensor over the ranks in place, so that every rank decides
the same.
"""
import logging

import torch

from ..errors import TrainingError

logger = logging.getLogger("uer_like")
FIX = "lower --learning_rate or --max_grad_norm, or check the data"


def skip_step(loss, gnorm, streak, max_steps, step, scaler=None, reduce=None, warn=True):
    """-> (skip, streak): whether step `step`'s optimizer update must be skipped (its loss or gradient norm
    is NaN/inf on any rank), and the number of such steps in a row up to it. With an enabled fp16 grad
    scaler an overflow of the scaled gradients (finite loss) is the scaler's to handle: it skips the step and
    lowers the scale; that counts as non-finite only once the scale is below 1 (the gradients overflow
    unscaled)."""
    flags = torch.stack([(~torch.isfinite(loss.detach().float())).float(),
                         (~torch.isfinite(gnorm.detach().float().to(loss.device))).float()])
    if reduce is not None:
        reduce(flags)
    loss_bad, grad_bad = (v > 0 for v in flags.tolist())
    if not (loss_bad or grad_bad):
        return False, 0
    if scaler is not None and scaler.is_enabled() and not loss_bad and scaler.get_scale() >= 1.0:
        return False, streak  # scaler.step skips it
    streak += 1
    if warn:
        what = " and ".join(w for w, b in (("loss", loss_bad), ("gradient norm", grad_bad)) if b)
        logger.warning("step %d: non-finite %s (loss %s, grad norm %s); optimizer step skipped (%d in a row, "
                       "the run stops at %d: --max_nonfinite_steps)", step, what, f"{loss.item():.4g}",
                       f"{float(gnorm):.4g}", streak, max_steps)
    return True, streak


def count_nonfinite(params, device=None, reduce=None):
    """NaN/inf values in `params` (local shards of DTensors), summed over the ranks with `reduce`."""
    bad = torch.zeros((), dtype=torch.long, device=device)
    for p in params:
        t = p.to_local() if hasattr(p, "to_local") else p
        bad += (~torch.isfinite(t.detach())).sum().to(bad.device)
    if reduce is not None:
        reduce(bad)
    return int(bad.item())


def check_weights_finite(params, what, step, kept, device=None, reduce=None):
    """TrainingError unless every weight is finite: `what` (e.g. "a checkpoint") is then not written;
    `kept` says what the run has on disk (e.g. "the last finite checkpoint: none")."""
    bad = count_nonfinite(params, device, reduce)
    if bad:
        raise TrainingError(f"step {step}: the weights hold {bad} NaN/inf values; not writing {what} ({kept})")


def cause(bad_weights):
    """Why the steps were non-finite, for an error: NaN/inf weights (`bad_weights` values; skipped steps never
    change them, so they were there before: not the learning rate's doing), else divergence."""
    if bad_weights:
        return (f"the weights hold {bad_weights} NaN/inf values from before these steps (the pretrained model's? "
                "load finite weights)")
    return f"the run diverged; {FIX}"


def diverged(streak, step, lr, kept, bad_weights=0):
    """The TrainingError that ends a run after `streak` non-finite steps in a row (up to step `step`, at
    learning rate `lr`); `kept`: what the run leaves on disk; `bad_weights`: the NaN/inf values in the
    weights (cause)."""
    return TrainingError(f"the loss or gradient norm was NaN/inf for {streak} steps in a row (up to step {step}, "
                         f"learning rate {lr:.3g}): {cause(bad_weights)}; {kept}")


class NonfiniteGuard:
    """skip_step with its counts kept: `skip` before each optimizer step, `stopped` after it, `error` to raise
    then. warn: log each skipped step (rank 0 of a distributed run)."""

    def __init__(self, max_steps, scaler=None, reduce=None, warn=True):
        self.max_steps, self.scaler, self.reduce, self.warn = max_steps, scaler, reduce, warn
        self.streak = 0  # non-finite steps in a row, up to now
        self.skipped = 0  # all of them
        self.last_skipped = False

    def skip(self, loss, gnorm, step):
        self.last_skipped, self.streak = skip_step(loss, gnorm, self.streak, self.max_steps, step, self.scaler,
                                                   self.reduce, self.warn)
        self.skipped += self.last_skipped
        return self.last_skipped

    @property
    def stopped(self):
        return self.streak >= self.max_steps

    def error(self, step, lr, kept, params, device=None):
        return diverged(self.streak, step, lr, kept, count_nonfinite(params, device, self.reduce))
