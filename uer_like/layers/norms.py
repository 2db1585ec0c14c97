"""Layer norms. Parameters are named gamma/beta as in UER checkpoints.

- "normal": UER-py's LayerNorm, gamma * (x - mean) / (std + eps) + beta with the unbiased std, eps 1e-6.
  Every UER-format checkpoint was trained with it.
- "torch": the standard layer norm (biased variance inside the square root), as Google BERT,
  Hugging Face and GPT-2 use; eps from the config (1e-12 for BERT, 1e-5 for GPT-2).
- "t5": RMS norm without mean or bias (T5 / UER "t5").
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import LAYERNORMS


@LAYERNORMS.register("normal")
class UerLayerNorm(nn.Module):
    def __init__(self, hidden_size, eps=None):
        super().__init__()
        self.eps = 1e-6 if eps is None else eps
        self.gamma = nn.Parameter(torch.ones(hidden_size))
        self.beta = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.gamma * (x - mean) / (std + self.eps) + self.beta


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
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (self.weight * (x * torch.rsqrt(variance + self.eps))).type_as(x)


def build_layernorm(config, size=None):
    return LAYERNORMS.get(config.layernorm, key="layernorm")(size or config.hidden_size, config.layernorm_eps)
