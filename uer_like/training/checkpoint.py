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

logger = logging.getLogger("uer_like")
NAME = re.compile(r"^step_(\d{9})\.pt$")


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
    """Atomic write; raises (never logs and goes on) when the write fails, e.g. on a full disk."""
    os.makedirs(directory, exist_ok=True)
    path = checkpoint_path(directory, step)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CheckpointError(f"could not write checkpoint {path}: {e}") from e
        raise
    for _, old in list_checkpoints(directory)[:-keep_last] if keep_last > 0 else []:
        os.remove(old)
    return path


def load_checkpoint(path):
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "step" not in ckpt:
        raise CheckpointError(f"{path}: not a uer_like training checkpoint")
    return ckpt


def load_latest(directory):
    """The newest checkpoint that loads, or None. Corrupt ones are reported and skipped."""
    for step, path in reversed(list_checkpoints(directory)):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            logger.warning("skipping %s; trying an earlier checkpoint", e)
            continue
        return path, ckpt
    return None
