"""Dropout that is cheaper on CPU than torch's (whose Bernoulli sampling dominates there).

On CPU, float32 and bfloat16 tensors go through the native kernel uer_like._kernels.dropout: the keep mask
comes from a counter-based generator keyed by one 64-bit seed drawn from torch's default generator, and the
mask, the scaling and the zeroing are one pass (the backward one more); the mask is kept as bytes for the
backward. Other dtypes, or a build without the kernel, use the same recipe as torch ops: 16-bit random
integers sliced out of 64-bit draws of torch's default generator. Either way p is quantised to 1/65536
(0.1 -> 0.100006) and runs stay reproducible and resumable from the saved RNG state. On other devices it is
torch's own dropout."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .kernels import NATIVE as _kernels


class _NativeDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p):
        x = x.contiguous()
        n = x.numel()
        seed = int(torch.empty((), dtype=torch.int64).random_())
        mask = torch.empty(x.shape, dtype=torch.uint8)
        y = torch.empty_like(x)
        scale = 1.0 / (1.0 - p)
        _kernels.dropout(x.data_ptr(), y.data_ptr(), mask.data_ptr(), int(x.dtype == torch.bfloat16), n, 0, seed,
                         round(p * 65536), scale, torch.get_num_threads())
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: the same product as torch ops, differentiable in grad
            return grad * mask.to(grad.dtype) * ctx.scale, None
        grad = grad.contiguous()
        out = torch.empty_like(grad)
        _kernels.dropout(grad.data_ptr(), out.data_ptr(), mask.data_ptr(), int(grad.dtype == torch.bfloat16),
                         grad.numel(), 1, 0, 0, ctx.scale, torch.get_num_threads())
        return out, None


def fast_dropout(x, p, training=True):
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    if _kernels is not None and x.dtype in (torch.float32, torch.bfloat16):
        return _NativeDropout.apply(x, p)
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2 ** 63, 2 ** 63 - 1)
    r = bits.view(torch.int16)[:n].view(x.shape)
    drop = r < (-32768 + round(p * 65536))
    # zeroed, then scaled: in bf16 the scale is not rounded before it multiplies (1 / 0.9 would become
    # 1.109375, a 0.16% bias on every kept value)
    return x.masked_fill(drop, 0).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
