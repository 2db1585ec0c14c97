"""The training loop, one for pretraining (trainer.py) and fine-tuning (finetune/core.py).

Each optimizer step (`StepLoop.train_step`): the learning rate for the step (a pure function of it), the
step's micro-batches (gradients accumulated; DDP synchronises them on the last one only), the forward under
autocast and the backward through the grad scaler (with the adversary's second pass when there is one: FGM),
unscale and clip (clipping.py: folded into the fused AdamW kernel's pass where it can be; the norm of FSDP's
DTensor gradients gathered), the non-finite guard (guard.py: the update skipped, the streak counted, the run
stopped with one line), the scaler's update, the step counter.

Before the first step (`StepLoop.run`), glibc's malloc is set to keep a step's freed memory for the next
(memory.keep_freed_memory: no page faults for the gradients and activations each step).

At each step boundary (`StepLoop.run`): the progress bar, the report line (metrics.Report, every
report_steps steps and at the last), the caller's hooks at their intervals (evaluate, save a checkpoint),
and SIGTERM: a checkpoint at the next boundary, then `run` returns True (the script exits with
STOPPED_EXIT; the same command resumes).

The caller supplies the batch source (per step, this rank's micro-batches as `Micro`), the forward (batch ->
a loss tensor, or a dict with "loss" and the report's per-target figures) and the hooks; parallelism
(parallel.py), checkpoints (checkpoint.py) and reporting (metrics.py) are their own pieces.
"""
import contextlib
import logging
import signal
import sys
import threading
from typing import NamedTuple

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .clipping import ClipPlan
from .memory import keep_freed_memory
from .optim import set_lr
from .precision import autocast

logger = logging.getLogger("uer_like")
STOPPED_EXIT = 143  # 128 + SIGTERM: what a shell reports for a process the signal ended


class Micro(NamedTuple):
    """One micro-batch of a step on this rank: the batch (on the device), its loss's factor in backward (1 /
    accumulation steps; a rank's share of the global batch x world size), and its tokens and examples (the
    report's throughput)."""
    batch: dict
    weight: float = 1.0
    tokens: int = 0
    examples: int = 0


class Stopped(Exception):
    """SIGTERM stopped the run at a step boundary, its checkpoint written: exit with STOPPED_EXIT and run the
    same command to resume."""


class StepLoop:
    """The step loop of one run. model: its parameters are clipped and guarded; module: what the micro-batches
    go through when it is not the model (the DDP wrapper, whose no_sync is used); schedule(step) -> the
    learning rate of optimizer step `step` (0-based); guard: a guard.NonfiniteGuard; adversary: an object with
    attack() and restore() around a second forward and backward (finetune/adversarial.py's FGM); kept() -> what
    the run has on disk (for the error that stops a diverged run); step: the steps already done (resumed)."""

    def __init__(self, model, optimizer, scaler, info, *, schedule, total_steps, max_grad_norm, guard, dtype=None,
                 module=None, adversary=None, kept=None, step=0):
        self.model, self.optimizer, self.scaler, self.info = model, optimizer, scaler, info
        self.module = module if module is not None else model
        self.schedule, self.total_steps, self.max_grad_norm = schedule, total_steps, max_grad_norm
        self.guard, self.dtype, self.adversary = guard, dtype, adversary
        self.kept = kept or (lambda: "nothing was written")
        self.step = step
        self.clip = None  # clipping.ClipPlan, made at the first step
        self.lr = schedule(step)
        self.report = None  # the metrics.Report of the running `run`
        self.stop_requested = False  # SIGTERM received (this rank)
        self.stopping = False  # ... by some rank, agreed at the last step boundary: `save` writes the last checkpoint

    # ------------------------------------------------------------------ one optimizer step
    def train_step(self, micro_batches, forward):
        """One optimizer step over `micro_batches` (Micro, produced as they are consumed) -> (loss, grad norm,
        skipped): the step's loss on this rank (each micro-batch's weighted as in backward), detached. The
        gradients stay in place until the next step begins."""
        self.lr = self.schedule(self.step)
        set_lr(self.optimizer, self.lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss = torch.zeros((), device=self.info.device)
        it = iter(micro_batches)
        micro = next(it, None)
        while micro is not None:
            following = next(it, None)
            # DDP averages the gradients over the ranks in the backward of the last micro-batch only
            accumulate = following is not None and hasattr(self.module, "no_sync")  # DDP (FSDP2 has no no_sync)
            with self.module.no_sync() if accumulate else contextlib.nullcontext():
                loss += self._forward_backward(micro, forward)
            micro = following
        self.scaler.unscale_(self.optimizer)
        if self.clip is None:
            self.clip = ClipPlan(self.model, self.optimizer, self.scaler)
        gnorm = self.clip.norm(self.max_grad_norm)  # clipped here, or inside the optimizer's pass (clipping.py)
        skipped = self.guard.skip(loss, gnorm, self.step + 1)  # every rank decides the same
        if not skipped:
            self.clip.step()
        self.scaler.update()  # with fp16, an overflow the scaler found lowers the scale
        self.step += 1  # a skipped step still consumes its batch: the data order stays a function of the step
        if self.report is not None:
            self.report.add_step(loss, gnorm, skipped)
        return loss, gnorm, skipped

    def _forward_backward(self, micro, forward):
        with autocast(self.info.device, self.dtype):
            out = forward(micro.batch)
        loss = _weighted(out, micro.weight)
        self.scaler.scale(loss).backward()
        if self.adversary is not None:
            self.adversary.attack()
            with autocast(self.info.device, self.dtype):
                adv = forward(micro.batch)
            self.scaler.scale(_weighted(adv, micro.weight)).backward()
            self.adversary.restore()  # a NaN adversarial loss shows in the gradient norm
        if self.report is not None:
            self.report.add(out, micro.tokens, micro.examples)
        return loss.detach()

    # ------------------------------------------------------------------ the loop
    def run(self, batches, forward, report=None, *, after_step=None, evaluate=None, eval_every=0, save=None,
            save_every=0, save_at_end=True, progress=None):
        """Optimizer steps, one per item of `batches` (an iterable of this rank's micro-batches for each step),
        until total_steps or the end of `batches` -> True when SIGTERM stopped the run (after `save`).

        After each step: after_step(loss, skipped); the diverged-run error after guard.max_steps non-finite
        steps in a row; the progress bar (progress: tqdm's arguments, None: no bar); report's line every
        report.every steps and at the last; evaluate() every eval_every steps and at the last; save() every
        save_every steps, at the last (unless not save_at_end), and when stopping (a SIGTERM on any rank:
        `stopping` is then True)."""
        self.report = report
        self.stopping = False
        keep_freed_memory()  # glibc: a step's freed buffers serve the next step (memory.py)
        bar = self._bar(progress)
        if report is not None:
            report.start()
        try:
            with self.sigterm_stops(), logging_redirect_tqdm() if bar is not None else contextlib.nullcontext():
                it = iter(batches)
                while self.step < self.total_steps:
                    micro_batches = next(it, None)
                    if micro_batches is None:
                        break
                    loss, gnorm, skipped = self.train_step(micro_batches, forward)
                    if after_step is not None:
                        after_step(loss, skipped)
                    if self.guard.stopped:
                        raise self.guard.error(self.step, self.lr, self.kept(), self.model.parameters(),
                                               self.info.device)
                    last = self.step == self.total_steps
                    if bar is not None:
                        bar.update(1)
                    if report is not None and (self.step % report.every == 0 or last):
                        fig = report.line(self.step, self.lr)
                        if bar is not None and "loss" in fig:
                            bar.set_postfix(loss=f"{fig['loss']:.4f}")
                    if evaluate is not None and eval_every and (self.step % eval_every == 0 or last):
                        evaluate()
                    self.stopping = self.stop_agreed()
                    if save is not None and (self.stopping or (last and save_at_end)
                                             or (save_every and self.step % save_every == 0)):
                        save()
                    if self.stopping:
                        self.announce_stop()
                        return True
            return False
        finally:
            self.report = None
            if bar is not None:
                bar.close()

    def _bar(self, progress):
        if progress is None or not self.info.is_main:
            return None
        kw = dict(total=self.total_steps, initial=self.step, dynamic_ncols=True, file=sys.stderr,
                  mininterval=1.0 if sys.stderr.isatty() else 30.0, disable=None)
        kw.update(progress)
        return None if kw["initial"] >= kw["total"] or kw["disable"] is True else tqdm(**kw)

    # ------------------------------------------------------------------ SIGTERM
    @contextlib.contextmanager
    def sigterm_stops(self):
        """While inside, SIGTERM asks the loop to stop at the next step boundary (main thread only: signals
        are delivered there)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, old)

    def _on_sigterm(self, signum, frame):
        if not self.stop_requested and self.info.is_main:
            logger.warning("SIGTERM: saving a checkpoint at the next step boundary, then exiting")
        self.stop_requested = True

    def announce_stop(self):
        if self.info.is_main:
            logger.warning("stopped by SIGTERM at step %d of %d, checkpoint saved (exit status %d); resume by running "
                           "the same command", self.step, self.total_steps, STOPPED_EXIT)

    def stop_agreed(self):
        """Whether any rank received SIGTERM (a collective: every rank calls it at the same boundary)."""
        if not self.info.enabled:
            return self.stop_requested
        # a host-side collective (gloo) so that the check never waits for the GPU
        flag = torch.tensor([1.0 if self.stop_requested else 0.0])
        torch.distributed.all_reduce(flag, group=self.info.cpu_group)
        return bool(flag.item() > 0)


def _weighted(out, weight):
    loss = out["loss"] if isinstance(out, dict) else out
    return loss * weight if weight != 1.0 else loss
