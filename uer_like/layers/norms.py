"""Layer norms. Parameters are named gamma/beta as in UER checkpoints.

- "normal": UER-py's LayerNorm, gamma * (x - mean) / (std + eps) + beta with the unbiased std, eps 1e-6.
  Every UER-format checkpoint was trained with it.
- "torch": the standard layer norm (biased variance inside the square root), as Google BERT,
  Hugging Face and GPT-2 use; eps from the config (1e-12 for BERT, 1e-5 for GPT-2).
- "t5": RMS norm without mean or bias (T5 / UER "t5").
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import LAYERNORMS


class _UerLayerNormFn(torch.autograd.Function):
    """y = gamma * (x - mean) / (std + eps) + beta, std unbiased, on torch's fused layer-norm kernels.

    With z = (x - mean) / std_b and rstd = 1 / std_b from torch's layer norm (biased std), the UER
    normalisation is xhat = z * inv, inv = 1 / (c + eps * rstd), c = sqrt(n / (n - 1)). The gradient is
    torch's layer-norm backward applied to dy * inv (which also yields d gamma), plus the part through
    inv: z * (sum(dy * gamma * z) * inv^2 * eps * rstd^2 / n). Several times faster on CPU than composing
    mean/std/sub/div in autograd; equal to float rounding (a gradcheck test holds it to the definition)."""

    @staticmethod
    def forward(ctx, x, gamma, beta, eps):
        n = x.shape[-1]
        z, mean, rstd = torch.native_layer_norm(x, (n,), None, None, 1e-30)
        inv = 1.0 / (math.sqrt(n / (n - 1)) + eps * rstd)
        ctx.save_for_backward(x, z, mean, rstd, inv, gamma)
        ctx.eps = eps
        return torch.addcmul(beta, z * inv, gamma)

    @staticmethod
    def backward(ctx, dy):
        x, z, mean, rstd, inv, gamma = ctx.saved_tensors
        n = x.shape[-1]
        dyi = dy * inv
        dx, dgamma, _ = torch.ops.aten.native_layer_norm_backward(dyi, x, (n,), mean, rstd, gamma, None,
                                                                  [True, True, False])
        dot = (dyi * z).matmul(gamma).unsqueeze(-1)  # inv * sum(dy * gamma * z)
        dx = torch.addcmul(dx, z, dot * inv * (ctx.eps / n) * rstd * rstd)
        return dx, dgamma, dy.sum(tuple(range(dy.dim() - 1))), None


@LAYERNORMS.register("normal")
class UerLayerNorm(nn.Module):
    def __init__(self, hidden_size, eps=None):
        super().__init__()
        self.eps = 1e-6 if eps is None else eps
        self.gamma = nn.Parameter(torch.ones(hidden_size))
        self.beta = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x):
        if x.dtype != self.gamma.dtype:  # under autocast: compute in float32
            return _UerLayerNormFn.apply(x.float(), self.gamma, self.beta, self.eps).to(x.dtype)
        return _UerLayerNormFn.apply(x, self.gamma, self.beta, self.eps)


@LAYERNORMS.register("torch")
class TorchLayerNorm(nn.Module):
    def __init__(self, hidden_size, eps=None):
        super().__init__()
        self.eps = 1e-12 if eps is None else eps
        self.gamma = nn.Parameter(torch.ones(hidden_size))
        self.beta = nn.Parameter(torch.zeros(hidden_size))
        self.shape = (hidden_size,)

    def forward(self, x):
        return F.layer_norm(x, self.shape, self.gamma, self.beta, self.eps)


@LAYERNORMS.register("t5")
class T5LayerNorm(nn.Module):
    def __init__(self, hidden_size, eps=None):
        super().__init__()
        self.eps = 1e-6 if eps is None else eps
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x):
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            # torch's fused RMS norm: the same operations in the same order (equal bit for bit), fewer calls
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (self.weight * (x * torch.rsqrt(variance + self.eps))).type_as(x)


def build_layernorm(config, size=None):
    return LAYERNORMS.get(config.layernorm, key="layernorm")(size or config.hidden_size, config.layernorm_eps)
