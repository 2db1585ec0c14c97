"""Averaging checkpoints of one architecture (the last checkpoints of a run, or runs from other seeds)."""
import dataclasses
import logging

import torch

from ..errors import CheckpointError
from .checkpoint import load_model

logger = logging.getLogger("uer_like")

# config fields that change no computation at inference (no warning when they differ)
_FREE_FIELDS = {"dropout"}


def _first_difference(base, other, base_name, other_name):
    """One line naming the first tensor that differs in name, shape or dtype, or None."""
    for k, v in base.items():
        if k not in other:
            return f"{other_name} has no tensor {k} (which {base_name} has)"
        w = other[k]
        if tuple(w.shape) != tuple(v.shape):
            return f"tensor {k} is {list(v.shape)} in {base_name} but {list(w.shape)} in {other_name}"
        if w.dtype.is_floating_point != v.dtype.is_floating_point:
            return f"tensor {k} is {v.dtype} in {base_name} but {w.dtype} in {other_name}"
    extra = [k for k in other if k not in base]
    if extra:
        return f"{other_name} has tensor {extra[0]} that {base_name} has not"
    return None


@torch.no_grad()
def average_models(paths, config=None, **load_kwargs):
    """The element-wise mean of the checkpoints at `paths` (any format load_model reads, mixed formats
    allowed; `config` and load_kwargs are passed to each load), as a model of the first one's architecture
    (its load_info and config kept: a config that differs with the same tensors is logged). Floating-point tensors are summed in float64 and cast back to the first model's
    dtype; other tensors (integer buffers) must be equal. Checkpoints whose tensors differ in name or shape
    are refused with a CheckpointError naming the first differing tensor."""
    paths = list(paths)
    if len(paths) < 2:
        raise CheckpointError(f"averaging takes two checkpoints or more, got {len(paths)}")
    first = load_model(paths[0], config=config, **load_kwargs)
    state = first.state_dict()
    sums = {k: v.double().clone() if v.is_floating_point() else v for k, v in state.items()}
    base_cfg = dataclasses.asdict(first.config)
    for path in paths[1:]:
        other = load_model(path, config=config, **load_kwargs)
        ostate = other.state_dict()
        diff = _first_difference(state, ostate, paths[0], path)
        if diff:
            raise CheckpointError(f"cannot average checkpoints of different architectures: {diff}")
        cfg = dataclasses.asdict(other.config)
        changed = [k for k in base_cfg if base_cfg[k] != cfg.get(k) and k not in _FREE_FIELDS]
        if changed:  # same tensors; the average takes the first one's config
            logger.warning("%s and %s have the same tensors but their configs differ in %s; the average keeps %s's",
                           paths[0], path, ", ".join(changed), paths[0])
        for k, v in ostate.items():
            if v.is_floating_point():
                sums[k] += v.double()
            elif not torch.equal(v, sums[k]):
                raise CheckpointError(f"cannot average: the integer tensor {k} differs between {paths[0]} and {path}")
        del other, ostate
    n = len(paths)
    averaged = {k: (v / n).to(state[k].dtype) if v.is_floating_point() else v for k, v in sums.items()}
    first.load_state_dict(averaged)
    return first
