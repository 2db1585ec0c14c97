"""Linear layers laid out for incremental decoding on CPU: `decoding_linears(modules, rows)`.

A decoding step multiplies a few rows (batch x beams) by every weight of the model, so on CPU it is bound by
reading the weights, and how fast they stream depends on the kernel and the layout (benchmarks/README.md,
encoder-decoder models):

- one row: the native kernel `uer_like._kernels.matvec` (csrc/kernels/decoding.c) reads nn.Linear's own
  [out, in] weight front to back, no copy: about 2x torch's one-row product (addmm through MKL, about 12 GB/s
  on one core of the benchmark machine, where the core reads a buffer at 25);
- several rows (4-32): MKL re-packs the whole matrix at every nn.Linear call; a oneDNN weight packed once
  (`torch.ops.mkldnn._reorder_linear_weight`) runs 1.5-2x faster.

`decoding_linears(modules, rows)` is a context manager: inside it, every nn.Linear under `modules` (and a
module's own projections that it declares with `decoding_projections`, e.g. ContextAttention's query rows of
its fused weight) computes through that path. The packed copies are made on first use and kept, one per row
count, for the module's lifetime (a WeakKeyDictionary: they go with the module), so repeated generate calls pay
for the packing once; a weight changed in place since (an optimizer step, load_state_dict) or replaced is packed
again. The cost is memory: a second copy of each weight used while decoding several rows. Nothing changes
outside the context, on another device, in another dtype than float32, with autograd on, or (rows 1) for an
input of more than one row (a prompt's prefill) or when the native kernels are not built: there nn.Linear runs
as it is. Results equal nn.Linear's up to float rounding (another summation order).
"""
import contextlib
import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

from .kernels import NATIVE as _kernels

__all__ = ["decoding_linears"]

# module -> {name: (stamp, hint, weight copy)}; name = attribute + layout
_COPIES = weakref.WeakKeyDictionary()


def _mkldnn_available():
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def _stamp(params):
    """What identifies the weights a copy was made from: each tensor (weakly) and its version counter; None
    when a tensor has no version counter (an inference tensor): then the copy is never reused."""
    try:
        return tuple((weakref.ref(p), p._version) for p in params if p is not None)
    except RuntimeError:
        return None


def _same(stamp, params):
    now = [p for p in params if p is not None]
    return (stamp is not None and len(stamp) == len(now)
            and all(ref() is p and version == p._version for (ref, version), p in zip(stamp, now)))


def _copy(owner, name, layout, hint, params, make):
    """The cached weight copy `name` of `owner` in `layout` (made by make() when missing or stale)."""
    slots = _COPIES.setdefault(owner, {})
    key = name + ":" + layout
    entry = slots.get(key)
    if entry is not None and entry[1] == hint and _same(entry[0], params):
        return entry[2]
    copy = make()
    stamp = _stamp(params)
    if stamp is not None:
        slots[key] = (stamp, hint, copy)
    return copy


def _native_one_row(w, b):
    """x -> F.linear(x, w, b) for one row through the native kernel (w [out, in] as it is, read front to back)."""
    out, width = w.shape
    w_ptr, b_ptr = w.data_ptr(), (b.data_ptr() if b is not None else 0)
    threads = torch.get_num_threads()
    matvec = _kernels.matvec

    def one_row(x):
        if x.numel() != width or x.dtype != torch.float32 or not x.is_contiguous():
            return F.linear(x, w, b)  # more than one row (a prefill)
        y = x.new_empty(x.shape[:-1] + (out,))
        matvec(w_ptr, x.data_ptr(), b_ptr, y.data_ptr(), out, width, threads)
        return y
    return one_row


class _DecodingLinear:
    """x -> F.linear(x, weight(), bias()) through the path for `rows` rows (chosen on the first call)."""

    def __init__(self, owner, name, weight, bias, rows, params):
        self.owner = weakref.ref(owner)
        self.name, self.weight, self.bias, self.rows, self.params = name, weight, bias, rows, params
        self.run = None

    def _make_run(self):
        w, b = self.weight(), self.bias()
        owner, params = self.owner(), self.params()
        if self.rows > 1 and _mkldnn_available():
            try:
                packed = _copy(owner, self.name, "mkldnn", self.rows, params,
                               lambda: torch.ops.mkldnn._reorder_linear_weight(w, self.rows))
                return lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
            except (AttributeError, RuntimeError):  # a torch build without these oneDNN ops
                pass
        if self.rows == 1 and _kernels is not None and w.is_contiguous() and (b is None or b.is_contiguous()):
            return _native_one_row(w, b)
        return lambda x: F.linear(x, w, b)

    def __call__(self, x):
        # the first call makes the function and puts it in its place: later calls go to it directly
        if self.run is None:
            self.run = self._make_run()
            owner = self.owner()
            if owner is not None and getattr(owner, self.name, None) is self:
                setattr(owner, self.name, self.run)
        return self.run(x)


def _usable(weight):
    return weight.device.type == "cpu" and weight.dtype == torch.float32


@contextlib.contextmanager
def decoding_linears(modules, rows):
    """Within the block, the nn.Linear layers under `modules` (an nn.Module or several) compute through the
    path laid out for inputs of `rows` rows (see the module docstring). Meant for decoding under
    torch.inference_mode; with autograd enabled it changes nothing."""
    if isinstance(modules, nn.Module):
        modules = [modules]
    swapped = []
    try:
        if not torch.is_grad_enabled():
            seen = set()
            for root in modules:
                for m in root.modules():
                    if id(m) in seen:
                        continue
                    seen.add(id(m))
                    if type(m) is nn.Linear and _usable(m.weight):
                        m.forward = _DecodingLinear(m, "forward", lambda m=m: m.weight, lambda m=m: m.bias, rows,
                                                    lambda m=m: (m.weight, m.bias))
                        swapped.append((m, "forward"))
                    declared = getattr(m, "decoding_projections", None)
                    if declared is not None:
                        for name, (weight, bias) in declared().items():
                            if _usable(weight()):
                                setattr(m, name, _DecodingLinear(m, name, weight, bias, rows,
                                                                 lambda m=m: tuple(m.parameters())))
                                swapped.append((m, name))
        yield
    finally:
        for m, name in swapped:
            delattr(m, name)
