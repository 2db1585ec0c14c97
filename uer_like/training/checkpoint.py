"""Training checkpoints: full state, written atomically, the last K kept, corrupt ones skipped.

A checkpoint holds the model, optimizer and grad-scaler state, the RNG states of every rank, the
optimizer step (the data position is a pure function of it) and the config. It is written to a
temporary file, fsynced and renamed, so a crash mid-write never leaves a file under a checkpoint name;
a truncated or corrupt file is detected at load time and the previous complete one is used.
"""
import glob
import logging
import os
import random
import re

import torch

from ..errors import CheckpointError
from ..io.checkpoint import load_into
from ..outputs import atomic_write, remove_stale_tmp

logger = logging.getLogger("uer_like")
NAME = re.compile(r"^step_(\d{9})\.pt$")
TMP_PATTERN = r"^step_\d{9}\.pt\.tmp-(?P<pid>\d+)$"  # written by atomic_write
BEST = "best.pt"  # the lowest dev loss so far (trainer: --dev_dataset_path / --dev_fraction)


def rng_state():
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def checkpoint_path(directory, step):
    return os.path.join(directory, f"step_{step:09d}.pt")


def list_checkpoints(directory):
    """(step, path) ascending."""
    out = []
    for p in glob.glob(os.path.join(directory, "step_*.pt")):
        m = NAME.match(os.path.basename(p))
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def save_checkpoint(directory, step, payload, keep_last=3):
    """Atomic write; raises CheckpointError naming the path and the cause (e.g. "No space left on device")
    when the write fails, with the partial file removed and the earlier checkpoints kept. Rotation runs
    only after the new checkpoint is complete."""
    os.makedirs(directory, exist_ok=True)
    remove_stale_tmp(directory, TMP_PATTERN)
    path = checkpoint_path(directory, step)
    atomic_write(path, lambda f: torch.save(payload, f), error=CheckpointError, what="checkpoint")
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    for _, old in list_checkpoints(directory)[:-keep_last] if keep_last > 0 else []:
        if old != path:
            os.remove(old)
    return path


def save_best(directory, payload):
    """The checkpoint of the lowest dev loss, as best.pt beside the step_*.pt rotation (which never removes
    it); written atomically, as save_checkpoint."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, BEST)
    atomic_write(path, lambda f: torch.save(payload, f), error=CheckpointError, what="best checkpoint")
    logger.info("saved the best checkpoint so far by dev loss (step %d) to %s", payload["step"], path)
    return path


def load_checkpoint(path):
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint" + (" (a directory)" if os.path.isdir(path) else ""))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "step" not in ckpt:
        raise CheckpointError(f"{path}: not a uer_like training checkpoint")
    bad = [k for k, v in ckpt["model"].items() if torch.is_tensor(v) and v.is_floating_point()
           and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} tensor(s) hold NaN/inf values ({', '.join(bad[:3])})")
    return ckpt


def load_latest(directory):
    """The newest checkpoint that loads, or None when the directory has none. Corrupt ones are reported and
    skipped; when every one is corrupt that is an error (never a silent start from step 0)."""
    found = list_checkpoints(directory)
    problems = []
    for step, path in reversed(found):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            logger.warning("skipping %s; trying an earlier checkpoint", e)
            problems.append(str(e))
            continue
        return path, ckpt
    if found:
        raise CheckpointError(f"{directory}: none of its {len(found)} checkpoint(s) loads (the newest: "
                              f"{problems[0]}); move them away, or pass --resume never to start again from step 0")
    return None


class CheckpointManager:
    """The checkpoints of one run in `directory`: `resume` finds the one to continue from, `save` writes one
    (only from finite weights and not while non-finite steps are being skipped, so that rotation never removes
    the last good one; the state is gathered on every rank, written by rank 0), `remove` clears them once
    the run's result is written. info: distributed.DistInfo (None: one process)."""

    def __init__(self, directory, keep_last=3, info=None, reduce=None):
        from .distributed import DistInfo

        self.directory, self.keep_last = directory, keep_last
        self.info = info or DistInfo()
        self.reduce = reduce
        self.last = None  # the path of the newest checkpoint written or resumed from

    def resume(self, resume="auto"):
        """-> (path, checkpoint) to continue from, or None: `resume` is auto (the newest that loads, when
        the directory has one), never, or a checkpoint's path."""
        if resume == "never":
            return None
        if resume == "auto":
            found = load_latest(self.directory) if os.path.isdir(self.directory) else None
        else:
            found = resume, load_checkpoint(resume)
        if found is not None:
            self.last = found[0]
        return found

    def restore(self, path, ckpt, model, optimizer, scaler):
        """Put back what every training loop resumes from a checkpoint (save's counterpart): the model's weights
        (strict), the optimizer's state (optimizer None: the caller loads it later, e.g. into FSDP shards), the
        grad scaler's, and this rank's RNG states (rank 0's for a rank the checkpoint had not) -> its step."""
        load_into(model, ckpt["model"], strict=True, source=path)
        if optimizer is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        states, rank = ckpt["rng"], self.info.rank
        set_rng_state(states[rank] if rank < len(states) else states[0])
        return ckpt["step"]

    def save(self, step, payload, params, device=None, streak=0):
        """Write checkpoint `step` (payload(): its dict, called on rank 0 after every rank gathered its RNG
        state into payload's "rng" list); -> its path, or None when skipped (non-finite steps going on)."""
        from . import distributed as dist_utils
        from .guard import check_weights_finite

        if streak:
            if self.info.is_main:
                logger.warning("step %d: no checkpoint while steps are non-finite (the last one: %s)", step,
                               self.last or "none")
            return None
        check_weights_finite(params, "a checkpoint", step, f"the last finite checkpoint: {self.last or 'none'}",
                             device, self.reduce)
        rngs = dist_utils.all_gather_object(self.info, rng_state())

        def write():
            path = save_checkpoint(self.directory, step, dict(payload(), rng=rngs, step=step), self.keep_last)
            logger.info("saved checkpoint %s", path)
            return path

        self.last = dist_utils.on_main(self.info, write)
        return self.last

    def remove(self):
        """Delete the run's checkpoints (and the directory when nothing else is in it), on rank 0."""
        if not self.info.is_main or not os.path.isdir(self.directory):
            return
        for _, path in list_checkpoints(self.directory):
            os.remove(path)
        remove_stale_tmp(self.directory, TMP_PATTERN)
        try:
            os.rmdir(self.directory)
        except OSError:
            pass
