"""What the training loop (loop.py) reports, for pretraining and fine-tuning alike: every --report_steps steps
(and at the last) one progress line,

    step 200/1000 | loss 0.4312 | lr 1.8e-05 | grad norm 1.204 | 15,230 tokens/s | 212.5 examples/s

with the losses (pretraining: each target's loss and accuracy, and its `baseline` where the target reports
one; fine-tuning: the mean loss of the steps), the learning rate, the mean gradient norm of the updates and
the throughput since the previous line, summed over the ranks; on a GPU with a known peak, the model FLOPs
utilisation (MFU). The same figures go to tensorboard when a directory is given.

`Report` accumulates on the device and synchronises (two small all-reduces) only at report time.
"""
import time

import torch

from . import distributed as dist_utils

# dense bf16/fp16 peak FLOP/s by device name (MFU)
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "A10": 125e12, "V100": 125e12, "L40": 181e12,
              "4090": 165e12, "3090": 71e12, "T4": 65e12}


def format_report(step, total, losses, lr, grad_norm, tokens_per_s, extra=()):
    """losses: formatted pieces ("loss 0.4312", "mlm loss 2.1 acc 0.41"), or a dict name -> value;
    extra: more pieces after the throughput (e.g. "MFU 41.0%")."""
    if isinstance(losses, dict):
        losses = [f"{name} {value:.4f}" for name, value in losses.items()]
    extra = [extra] if isinstance(extra, str) else list(extra or ())
    parts = [f"step {step}/{total}", *losses, f"lr {lr:.3g}", f"grad norm {grad_norm:.3f}",
             f"{tokens_per_s:,.0f} tokens/s", *extra]
    return " | ".join(parts)


def mfu(tokens_per_s, flops_per_token, device, precision, world=1):
    """Model FLOPs utilisation: tokens/s x FLOPs per token over the peak of `world` GPUs like `device`; None on
    a CPU, for an unknown GPU, or in fp32 (the peaks are bf16/fp16 tensor-core figures)."""
    if device.type != "cuda" or precision == "fp32" or not flops_per_token:
        return None
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_FLOPS.items() if k in name), None)
    return None if peak is None else tokens_per_s * flops_per_token / (peak * world)


class LazyWriter:
    """A tensorboard SummaryWriter created (and tensorboard imported, about a second) at the first scalar."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.writer = None

    def add_scalar(self, *a, **kw):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter  # imported at the first scalar: start-up time

            self.writer = SummaryWriter(self.log_dir)
        self.writer.add_scalar(*a, **kw)

    def close(self):
        if self.writer is not None:
            self.writer.close()


class Report:
    """The figures of the steps since the last line. `add` takes each micro-batch (its output: a loss tensor, or
    the model's dict with a {"loss", "correct", "count"[, "baseline"]} entry per target of `targets`), `add_step`
    each optimizer step, `line` (a collective: every rank calls it) reduces, writes the line with `say` (rank 0;
    None: no line) and the tensorboard scalars, and starts a new window.

    every: the loop writes a line every this many steps and at the last; flops_per_token and precision: for the
    MFU figure (pretraining on a GPU)."""

    def __init__(self, info, total_steps, every, targets=(), say=None, tensorboard_dir=None, flops_per_token=None,
                 precision=None):
        self.info, self.total_steps, self.every, self.targets, self.say = info, total_steps, every, tuple(targets), say
        self.writer = LazyWriter(tensorboard_dir) if info.is_main and tensorboard_dir else None
        self.flops_per_token, self.precision = flops_per_token, precision
        self.start()

    def start(self):
        """Begin a window: the figures and the clock of the next line start here."""
        dev = self.info.device
        # per target: loss, correct, count, and `baseline` (what a trivial predictor gets right, for targets that
        # report one: ELECTRA's discriminator, against predicting "original" everywhere; 0 for the others, which
        # `has_baseline` leaves out of the report)
        self.sums = {t: torch.zeros(4, device=dev, dtype=torch.float64) for t in self.targets}
        self.has_baseline = set()
        self.loss_sum = torch.zeros((), device=dev, dtype=torch.float64)  # of the updates (steps not skipped)
        self.gnorm_sum = torch.zeros((), device=dev, dtype=torch.float64)
        self.updates = self.micro = self.tokens = self.examples = 0
        self.t0 = time.time()

    def add(self, out, tokens=0, examples=0):
        for name, acc in self.sums.items():
            if isinstance(out, dict) and name in out:
                r = out[name]
                base = r.get("baseline")
                if base is not None:
                    self.has_baseline.add(name)
                base = r["count"].new_zeros(()) if base is None else base
                acc += torch.stack([r["loss"].detach().double(), r["correct"].double(), r["count"].double(),
                                    base.double()])
        self.micro += 1
        self.tokens += tokens
        self.examples += examples

    def add_step(self, loss, gnorm, skipped):
        """loss: the step's loss on this rank, each micro-batch's weighted as in backward (the ranks' sum over
        the world size is the global batch's mean)."""
        if not skipped:
            self.loss_sum += loss.detach().double()
            self.gnorm_sum += gnorm.detach().double().to(self.gnorm_sum.device)
            self.updates += 1

    def line(self, step, lr):
        """-> the figures of the window ({"loss"} or {"targets"}, "lr", "grad_norm", "tokens_per_s",
        "examples_per_s"), on every rank (a collective); the line on rank 0."""
        dt = max(time.time() - self.t0, 1e-9)
        dev = self.info.device
        names = list(self.sums)
        flat = torch.stack([self.sums[n] for n in names]) if names else torch.zeros(0, 4, dtype=torch.float64,
                                                                                    device=dev)
        totals = torch.cat([torch.stack([self.loss_sum, self.gnorm_sum]),
                            torch.tensor([self.updates, self.micro, self.tokens, self.examples], dtype=torch.float64,
                                         device=dev)])
        dist_utils.all_reduce_sum(self.info, flat)
        dist_utils.all_reduce_sum(self.info, totals)
        flat = flat.cpu()
        loss_sum, gnorm_sum, updates, micro, tokens, examples = totals.cpu().tolist()
        world = self.info.world_size
        updates, micro = max(updates / world, 1.0), max(micro, 1.0)
        fig = {"lr": lr, "grad_norm": gnorm_sum / world / updates, "tokens_per_s": tokens / dt,
               "examples_per_s": examples / dt, "targets": {}}
        pieces = []
        for i, n in enumerate(names):
            loss, correct, count, base = flat[i].tolist()
            t = fig["targets"][n] = {"loss": loss / micro, "acc": correct / max(count, 1.0)}
            if n in self.has_baseline:
                t["baseline"] = base / max(count, 1.0)
            pieces.append(f"{n} loss {t['loss']:.4f} acc {t['acc']:.4f}"
                          + (f" (baseline {t['baseline']:.4f})" if "baseline" in t else ""))
        if not names:
            fig["loss"] = loss_sum / world / updates
            pieces.append(f"loss {fig['loss']:.4f}")
        extra = [f"{fig['examples_per_s']:,.1f} examples/s"]
        util = mfu(fig["tokens_per_s"], self.flops_per_token, dev, self.precision, world)
        if util is not None:
            extra.append(f"MFU {util:.1%}")
        if self.info.is_main and self.say is not None:
            self.say(format_report(step, self.total_steps, pieces, lr, fig["grad_norm"], fig["tokens_per_s"], extra))
        if self.writer is not None:
            self._scalars(step, fig)
        self.start()
        return fig

    def _scalars(self, step, fig):
        tb = self.writer
        for name, t in fig["targets"].items():
            tb.add_scalar(f"loss/{name}", t["loss"], step)
            tb.add_scalar(f"acc/{name}", t["acc"], step)
            if "baseline" in t:
                tb.add_scalar(f"baseline_acc/{name}", t["baseline"], step)
        if "loss" in fig:
            tb.add_scalar("loss", fig["loss"], step)
        for key in ("lr", "grad_norm", "tokens_per_s", "examples_per_s"):
            tb.add_scalar(key, fig[key], step)

    def close(self):
        if self.writer is not None:
            self.writer.close()
