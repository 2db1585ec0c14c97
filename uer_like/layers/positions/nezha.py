import math

import torch

from ...errors import ConfigError
from ...registry import POSITION_SCHEMES
from ..attention import AttentionScheme
from ..dropout import fast_dropout
from .common import apply_mask, check_relative_config, context_mask


@POSITION_SCHEMES.register("nezha")
class NezhaRelativePositions(AttentionScheme):
    """NEZHA's functional relative positions (Wei et al. 2019).

    For query i and key j the distance j - i is clipped to [-max_relative_position, max_relative_position];
    row (clipped + max_relative_position) of a fixed sinusoidal table [2 * max_relative_position + 1,
    head_dim] is added to the key in the scores and to the value in the output:

        scores[i, j] = q_i . (k_j + R[d_ij]) * scale        out_i = sum_j p_ij (v_j + R[d_ij])

    The table is NEZHA's own (sines at even, cosines at odd dimensions of the row index, in float32 as the
    reference implementation computes it). No parameters, so any sequence length works. The key term is a
    gather from q @ R^T and the value term a scatter of the probabilities into the 2m + 1 distance buckets,
    so memory stays [batch, heads, queries, keys] instead of the reference's [queries, keys, head_dim].
    Its own attention path: the value term needs the probabilities, which SDPA does not return.
    """

    def __init__(self, config):
        super().__init__()
        depth = config.hidden_size // config.heads_num
        self.max_relative = config.max_relative_position
        rows = 2 * self.max_relative + 1
        table = torch.zeros(rows, depth)
        position = torch.arange(0, rows, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, depth, 2).float() * (-math.log(10000.0) / depth))
        table[:, 0::2] = torch.sin(position * div_term)
        table[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("table", table, persistent=False)  # [2m + 1, head_dim]

    @classmethod
    def check_config(cls, config, source):
        check_relative_config(config, source, "nezha")
        if config.max_relative_position < 1:
            raise ConfigError(f"{source}: config key 'max_relative_position' must be positive, got "
                              f"{config.max_relative_position}")
        if (config.hidden_size // config.heads_num) % 2:
            raise ConfigError(f"{source}: position_scheme 'nezha' needs an even head size (hidden_size / heads_num), "
                              f"got {config.hidden_size // config.heads_num}")

    def scores(self, q, k, ctx, scale):
        b, h, sq, _ = q.shape
        m = self.max_relative
        dist = ctx.key_positions[:, None, :] - ctx.query_positions[:, :, None]
        bucket = (dist.clamp(-m, m) + m).unsqueeze(1).expand(b, h, sq, k.size(2))
        q = q.float()
        return (torch.matmul(q, k.float().transpose(-1, -2)) + torch.gather(torch.matmul(q, self.table.t()), -1, bucket)) * scale

    def attend(self, q, k, v, ctx, dropout_p, scale):
        b, h, sq, _ = q.shape
        sk = k.size(2)
        m = self.max_relative
        # bucket of each (query, key) pair: clipped distance key - query, shifted to 0..2m
        dist = ctx.key_positions[:, None, :] - ctx.query_positions[:, :, None]  # [batch | 1, sq, sk]
        bucket = (dist.clamp(-m, m) + m).unsqueeze(1).expand(b, h, sq, sk)
        table = self.table.to(q.dtype)
        scores = torch.matmul(q, k.transpose(-1, -2)) + torch.gather(torch.matmul(q, table.t()), -1, bucket)
        scores = apply_mask(scores * scale, context_mask(ctx, sq, sk, q.device))
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        probs = fast_dropout(probs, dropout_p)
        per_bucket = probs.new_zeros(b, h, sq, 2 * m + 1).scatter_add_(-1, bucket, probs)
        return torch.matmul(probs, v) + torch.matmul(per_bucket, table)
