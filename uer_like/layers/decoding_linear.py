"""Linear layers laid out for incremental decoding on CPU: `decoding_linears(modules, rows)`.

A decoding step multiplies a few rows (batch x beams) by every weight of the model, so on CPU it is bound by
reading the weights, and how fast they stream depends on the kernel and the layout (benchmarks/README.md,
encoder-decoder models):

- one or two rows: the native kernel `uer_like._kernels.matvec` (csrc/kernels/decoding.c) reads nn.Linear's
  own [out, in] weight front to back, no copy: about 2x torch's one-row product (addmm through MKL, about
  12 GB/s on one core of the benchmark machine, where the core reads a buffer at 25);
- more rows: MKL re-packs the whole matrix at every nn.Linear call; a oneDNN weight packed once
  (`torch.ops.mkldnn._reorder_linear_weight`) runs 1.5-2x faster.

`decoding_linears(modules, rows)` is a context manager: inside it, every nn.Linear under `modules` (and a
module's own projections that it declares with `decoding_projections`, e.g. ContextAttention's query rows of
its fused weight) computes through that path. The packed copies are made on first use and kept, one per row
count, for the module's lifetime (a WeakKeyDictionary: they go with the module), so repeated generate calls pay
for the packing once; a weight changed in place since (an optimizer step, load_state_dict) or replaced is packed
again. The cost is memory: a second copy of each weight used while decoding several rows. Nothing changes
outside the context, on another device, in another dtype than float32, with autograd on, or (one or two rows)
for an input of more rows (a prompt's prefill) or when the native kernels are not built: there nn.Linear runs
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


# the most rows the native kernel takes: at 4 rows and more oneDNN's packed weight is as fast or faster
# (benchmarks/README.md, encoder-decoder models)
NATIVE_MOST_ROWS = 2


def _native_rows(w, b):
    """x -> F.linear(x, w, b) for up to NATIVE_MOST_ROWS rows through the native kernel (w [out, in] as it is,
    read front to back once); nn.Linear for more rows (a prompt's prefill)."""
    out, width = w.shape
    w_ptr, b_ptr = w.data_ptr(), (b.data_ptr() if b is not None else 0)
    matvec = _kernels.matvec
    most = NATIVE_MOST_ROWS * width

    def few_rows(x):
        n = x.numel()
        if n > most or x.dtype != torch.float32 or not x.is_contiguous() or x.size(-1) != width:
            return F.linear(x, w, b)
        y = x.new_empty(x.shape[:-1] + (out,))
        matvec(w_ptr, x.data_ptr(), b_ptr, y.data_ptr(), n // width, out, width)
        return y
    return few_rows


class _DecodingLinear:
    """x -> F.linear(x, weight(), bias()) through the path for `rows` rows (chosen on the first call)."""

    def __init__(self, owner, name, weight, bias, rows, params):
        self.owner = weakref.ref(owner)
        self.name, self.weight, self.bias, self.rows, self.params = name, weight, bias, rows, params
        self.run = None

    def _make_run(self):
        w, b = self.weight(), self.bias()
        owner, params = self.owner(), self.params()
        if (self.rows <= NATIVE_MOST_ROWS and _kernels is not None and w.is_contiguous()
                and (b is None or b.is_contiguous())):
            return _native_rows(w, b)
        if self.rows > 1 and _mkldnn_available():
            try:
                packed = _copy(owner, self.name, "mkldnn", self.rows, params,
                               lambda: torch.ops.mkldnn._reorder_linear_weight(w, self.rows))
                return lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
            except (AttributeError, RuntimeError):  # a torch build without these oneDNN ops
                pass
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
