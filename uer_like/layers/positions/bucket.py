"""T5's relative-position bucket bias (Raffel et al. 2020), as T5 and MPNet use it.

A learned scalar per head and bucket of the relative distance key_position - query_position is added to
every layer's scaled attention scores:

    scores[h, i, j] = q_i . k_j * scale + B[bucket(pos_j - pos_i), h]

The table B [relative_attention_buckets_num, heads] is one for the whole encoder, shared by all its layers
(`encoder.relative_pos_emb.relative_attention_bias.weight`, UER-py's name); the bias, with the context's
mask folded in, is computed once per forward (`RelativePositionBias`, owned by the encoder through the
scheme's `shared` hook) and every layer's `attend` passes it to scaled_dot_product_attention as a float
mask. Query and key positions are the context's, so with a key/value cache the new tokens' buckets use their
absolute positions. Any sequence length works (distances beyond max_distance share the last bucket).

Buckets (`relative_position_bucket`, T5's `_relative_position_bucket`): bidirectional attention spends half
of the buckets on keys after the query; on each side half of the rest are exact distances 0, 1, ... and the
other half logarithmically wider bins up to max_distance. Unidirectional (causal) attention uses all the
buckets for keys at or before the query. Config: `relative_attention_buckets_num` (UER-py's key, 32),
`relative_attention_max_distance` (128), `relative_attention_bidirectional` (None: from `mask`:
fully_visible is bidirectional, causal is not).
"""
import math

import torch
import torch.nn as nn

from ...errors import ConfigError
from ...registry import POSITION_SCHEMES
from ..attention import AttentionScheme, attention
from .common import apply_mask, context_mask


def relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    """relative_position (key position - query position, integer tensor) -> its bucket in 0..num_buckets - 1,
    exactly as T5 computes it (transformers' T5Attention._relative_position_bucket)."""
    buckets = 0
    if bidirectional:
        num_buckets //= 2
        buckets = (relative_position > 0).to(torch.long) * num_buckets
        n = relative_position.abs()
    else:
        n = -relative_position.clamp(max=0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    # n = 0 gives log(0) here; that lane is not selected below
    large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).to(torch.long)
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, n, large)


def bidirectional_of(config):
    """Whether the buckets tell keys after the query from keys before it (explicit, or by the mask)."""
    if config.relative_attention_bidirectional is not None:
        return config.relative_attention_bidirectional
    return config.mask != "causal"


class RelativePositionBias(nn.Module):
    """The encoder's one bucket-bias table and the per-forward bias it gives every layer."""

    def __init__(self, config):
        super().__init__()
        self.bidirectional = bidirectional_of(config)
        self.num_buckets = config.relative_attention_buckets_num
        self.max_distance = config.relative_attention_max_distance
        self.relative_attention_bias = nn.Embedding(self.num_buckets, config.heads_num)  # [buckets, heads]

    def forward(self, ctx):
        """-> float [batch | 1, heads, queries, keys]: the bias of every (query, key) pair, the context's mask
        folded in (keys a query may not see at the dtype's minimum).

        Decoding (a cache, autograd off) looks the bias up by distance in a table made once per cache
        (`by_distance`) instead of bucketing every (query, key) pair at every step: the same values."""
        dist = ctx.key_positions[:, None, :] - ctx.query_positions[:, :, None]  # [batch | 1, queries, keys]
        if ctx.cache is not None and not torch.is_grad_enabled():
            d = self.max_distance
            table = ctx.cache.memo.get(self)
            if table is None:
                table = ctx.cache.memo[self] = self.by_distance()
            bias = torch.nn.functional.embedding(dist.clamp(-d, d).add_(d), table)
        else:
            bucket = relative_position_bucket(dist, self.bidirectional, self.num_buckets, self.max_distance)
            bias = self.relative_attention_bias(bucket)
        bias = bias.permute(0, 3, 1, 2)  # [batch | 1, heads, queries, keys]
        return apply_mask(bias, context_mask(ctx, dist.size(1), dist.size(2), bias.device))

    def by_distance(self):
        """[2 * max_distance + 1, heads]: the bias of distances -max_distance..max_distance (key position -
        query position). Every distance beyond max_distance falls in the last bucket of its side, so
        clamping a distance into this range gives its bias."""
        d = self.max_distance
        dist = torch.arange(-d, d + 1, device=self.relative_attention_bias.weight.device)
        return self.relative_attention_bias(relative_position_bucket(dist, self.bidirectional, self.num_buckets, d))


@POSITION_SCHEMES.register("relative_position_bucket")
class RelativePositionBuckets(AttentionScheme):
    """A layer's side of the bucket bias: attention with the encoder's per-forward bias (`ctx.bias`) as
    scaled_dot_product_attention's float mask. Absolute positions may be added by the embedding as well
    (MPNet has both)."""

    def __init__(self, config=None):
        super().__init__()

    @classmethod
    def shared(cls, config):
        return RelativePositionBias(config)

    @classmethod
    def check_config(cls, config, source):
        if config.encoder != "transformer":
            raise ConfigError(f"{source}: position_scheme 'relative_position_bucket' needs encoder 'transformer', "
                              f"got {config.encoder!r}")
        buckets, distance = config.relative_attention_buckets_num, config.relative_attention_max_distance
        bidirectional = bidirectional_of(config)
        max_exact = buckets // (4 if bidirectional else 2)  # exact buckets on one side
        if max_exact < 1:
            raise ConfigError(f"{source}: config key 'relative_attention_buckets_num' must be at least "
                              f"{4 if bidirectional else 2} ({'bidirectional' if bidirectional else 'causal'} "
                              f"buckets), got {buckets}")
        if distance <= max_exact:
            raise ConfigError(f"{source}: config key 'relative_attention_max_distance' ({distance}) must exceed the "
                              f"{max_exact} exact-distance buckets of relative_attention_buckets_num {buckets}")

    def attend(self, q, k, v, ctx, dropout_p, scale):
        return attention(q, k, v, ctx.bias.to(q.dtype), dropout_p=dropout_p, scale=scale)

    def scores(self, q, k, ctx, scale):
        return super().scores(q, k, ctx, scale) + ctx.bias.float()  # the mask is in the bias (where it is minimal)
