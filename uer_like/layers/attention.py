"""Multi-head self-attention: one fused QKV projection and torch's scaled_dot_product_attention.

UER checkpoints name three projections (self_attn.linear_layers.{0,1,2}); io/uer.py splits and joins
the fused weight at the file boundary.
"""
import math

import torch.nn as nn
import torch.nn.functional as F


class MultiHeadedAttention(nn.Module):
    def __init__(self, hidden_size, heads_num, dropout, bias=True, scale=True):
        super().__init__()
        self.heads_num = heads_num
        self.per_head_size = hidden_size // heads_num
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=bias)
        self.final_linear = nn.Linear(hidden_size, hidden_size, bias=bias)
        self.dropout = dropout
        self.scale = 1.0 / math.sqrt(self.per_head_size) if scale else 1.0

    def forward(self, x, attn_mask=None, is_causal=False):
        # x: [batch, seq, hidden]; attn_mask: bool [batch, 1, 1|seq, seq], True = may attend
        b, s, h = x.shape
        qkv = self.qkv(x).view(b, s, 3, self.heads_num, self.per_head_size).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [batch, heads, seq, per_head]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal and attn_mask is None, scale=self.scale,
        )
        out = out.transpose(1, 2).reshape(b, s, h)
        return self.final_linear(out)
