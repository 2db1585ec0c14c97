"""Dropout that is cheaper on CPU than torch's (whose Bernoulli sampling dominates there).

Keep decisions come from 16-bit random integers sliced out of 64-bit draws of torch's default generator,
so p is quantised to 1/65536 (0.1 -> 0.100006) and runs stay reproducible and resumable from the saved
RNG state. On other devices it is torch's own dropout."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def fast_dropout(x, p, training=True):
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
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
