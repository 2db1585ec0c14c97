"""Linear layers laid out for incremental decoding on CPU: `decoding_linears(modules, rows)`.

A decoding step multiplies a few rows (batch x beams) by every weight of the model, so on CPU it is bound by
reading the weights, and how fast they stream depends on their layout. nn.Linear's [out, in] weight streams
at about 11 GB/s on one core of the benchmark machine (benchmarks/README.md, encoder-decoder models):

- one row: a [in, out] copy of the weight (`x @ w_t`, a row times a matrix) streams about 1.3x faster, and
  the vocabulary projection (hidden x 21,128) about 2x, where the layer is at least as tall as it is wide
  (out >= in); a wider one (a feed-forward's second layer, in = 4 x out) streams faster in nn.Linear's own
  [out, in] layout (dot products along the rows: 14-15 against 9-12 GB/s) and keeps it (no copy);
- several rows (4-32): MKL re-packs the whole matrix at every nn.Linear call; a oneDNN weight packed once
  (`torch.ops.mkldnn._reorder_linear_weight`) runs 1.5-2x faster.

`decoding_linears(modules, rows)` is a context manager: inside it, every nn.Linear under `modules` (and a
module's own projections that it declares with `decoding_projections`, e.g. ContextAttention's query rows of
its fused weight) computes through such a copy. The copies are made on first use and kept, one per layout,
for the module's lifetime (a WeakKeyDictionary: they go with the module), so repeated generate calls pay for
the copy once; a weight changed in place since (an optimizer step, load_state_dict) or replaced is copied
again. The cost is memory: a second copy of each weight used while decoding (two when both layouts have been
used). Nothing changes outside the context, on another device, in another dtype than float32, with autograd
on, or (rows 1) for an input of more than one row (a prompt's prefill): there nn.Linear runs as it is.
Results equal nn.Linear's up to float rounding (another summation order).
"""
import contextlib
import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

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


class _DecodingLinear:
    """x -> F.linear(x, weight(), bias()) through a weight copy laid out for `rows` rows (made lazily)."""

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
        if self.rows > 1 or w.size(1) > w.size(0):
            # several rows without oneDNN; or one row through a weight wider than tall (a feed-forward's second
            # layer): nn.Linear's [out, in] layout, one dot product per output, streams faster than a copy
            return lambda x: F.linear(x, w, b)
        w_t = _copy(owner, self.name, "t", 1, params, lambda: w.t().contiguous())

        w_tt = w_t.t()  # F.linear(x, w_tt, b) is addmm(b, x, w_t) (mm without a bias) on the [in, out] copy

        def one_row(x):
            # more than one row (a prefill): nn.Linear's own path
            return F.linear(x, w_tt if x.numel() == x.size(-1) else w, b)
        return one_row

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
    """Within the block, the nn.Linear layers under `modules` (an nn.Module or several) compute through weight
    copies laid out for inputs of `rows` rows (see the module docstring). Meant for decoding under
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
