"""Multi-head self-attention: one fused QKV projection, a position scheme hook, and `attention` (torch's
scaled_dot_product_attention, or on CPU with dropout the same computation written out).

UER checkpoints name three projections (self_attn.linear_layers.{0,1,2}); io/uer.py splits and joins
the fused weight at the file boundary.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dropout import fast_dropout


def attention(q, k, v, mask=None, is_causal=False, dropout_p=0.0, scale=None):
    """softmax(q k^T x scale + mask) v, dropout on the weights: scaled_dot_product_attention's contract
    (mask: bool, True = may attend, or additive float; is_causal: lower-triangular, aligned top-left).

    On CPU with dropout, torch's SDPA runs its math path: scores materialised, q, k and v copied to fp32
    when they are bf16, and the weights dropped with Bernoulli sampling, the slowest op of a small
    model's training step. The same computation is written out here instead: q k^T in the inputs' dtype,
    the softmax in fp32, the weights back in the inputs' dtype, then `fast_dropout`. A query that may see
    no key gets uniform weights (finite, not NaN). Elsewhere (no dropout, or another device) it is SDPA,
    whose fused kernels win there."""
    if dropout_p == 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p,
                                              is_causal=is_causal, scale=scale)
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = torch.matmul(q, k.transpose(-1, -2))
    if is_causal:
        mask = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril_()
    if mask is None:
        scores = scores.float().mul_(scale)
    else:  # one pass: fp32 bias + scale x scores (the sum promotes to fp32)
        bias = (torch.zeros(mask.shape, device=q.device).masked_fill_(~mask, torch.finfo(torch.float32).min)
                if mask.dtype == torch.bool else mask.float())
        scores = torch.add(bias, scores, alpha=scale)
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    return torch.matmul(fast_dropout(probs, dropout_p), v)


class AttentionScheme(nn.Module):
    """How attention uses token positions: the hook for position schemes.

    The default is this class itself: absolute positions (learned or sinusoidal) are added to the
    embedding before the encoder, so attention leaves q and k alone and runs `attention` (SDPA's contract)
    with the context's mask. A scheme subclasses it (an nn.Module, so it may own parameters, e.g. a
    relative-position bias table) and overrides one or both methods:

    - `transform(q, k, ctx)` -> (q, k): q and k of the new tokens, per head, [batch, heads, seq, head_dim],
      before the keys are cached; `ctx.query_positions` [batch | 1, seq] gives their positions. Rotary
      embeddings rotate q and k here, so the cache holds rotated keys and cached keys are never rotated again.
    - `attend(q, k, v, ctx, dropout_p, scale)` -> [batch, heads, seq, head_dim]: q of the new tokens, k and v
      of every key (cached ones first, [batch, heads, keys, head_dim]); `ctx.mask` (bool, True = may attend,
      [batch, 1, queries | 1, keys], or None), `ctx.is_causal`, `ctx.query_positions` and
      `ctx.key_positions` [batch | 1, keys]. Relative schemes compute attention here: NEZHA adds its
      relative-position tables to the scores and the weighted values, T5 and MPNet pass their bucketed
      bias to SDPA as a float `attn_mask`, XLNet computes its own content and position terms.

    A scheme whose parameters are one set for all layers (T5's bucket-bias table) returns a module from the
    classmethod `shared(config)`: the encoder owns it (`encoder.relative_pos_emb`) and calls it once per
    forward, `ctx.bias = module(ctx)`, before the first layer; every layer's `attend` reads `ctx.bias`.

    A layer receives its scheme as `MultiHeadedAttention(..., scheme=MyScheme(...))`.
    """

    @classmethod
    def shared(cls, config):
        """The module all layers share, owned by the encoder (None: the layers' schemes hold everything)."""
        return None

    @classmethod
    def attends_any_queries(cls):
        """Whether attention for a subset of the query positions gives those rows of the full attention:
        true of a scheme that neither transforms q and k nor attends otherwise than this class (so it never
        reads query positions). The encoder then computes a classifier's last layer for the first token
        alone (TransformerEncoder.forward's first_only)."""
        return cls.transform is AttentionScheme.transform and cls.attend is AttentionScheme.attend

    def transform(self, q, k, ctx):
        return q, k

    def attend(self, q, k, v, ctx, dropout_p, scale):
        return attention(q, k, v, ctx.mask, ctx.is_causal, dropout_p, scale)

    def scores(self, q, k, ctx, scale):
        """The pre-softmax attention scores `attend` computes, before the mask, fp32 [batch, heads, queries,
        keys]: recorded for distillation (context.EncoderTrace), never on the normal path. A scheme with terms
        of its own in the scores (NEZHA's relative positions, T5's bias) overrides it."""
        return torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale


class MultiHeadedAttention(nn.Module):
    def __init__(self, hidden_size, heads_num, dropout, bias=True, scale=True, scheme=None, head_size=None):
        super().__init__()
        self.heads_num = heads_num
        self.per_head_size = head_size or hidden_size // heads_num
        inner = heads_num * self.per_head_size  # hidden_size, unless heads have a size of their own (mT5's d_kv)
        self.inner = inner
        self.qkv = nn.Linear(hidden_size, 3 * inner, bias=bias)
        self.final_linear = nn.Linear(inner, hidden_size, bias=bias)
        self.dropout = dropout
        self.scale = 1.0 / math.sqrt(self.per_head_size) if scale else 1.0
        self.scheme = scheme if scheme is not None else AttentionScheme()

    def forward(self, x, ctx, index=0, first_only=False):
        # x: [batch, seq, hidden], or [n_tokens, hidden] when the forward is unpadded (see layers/context.py:
        # attention itself runs on the padded layout); ctx: the forward's AttentionContext; index: the layer.
        # first_only: only the first position's queries (-> [batch, 1, hidden]; keys and values of every
        # token), for a scheme that leaves q and k alone and attends with the mask (see
        # AttentionScheme.attends_any_queries) and a mask that is one row for all queries (not causal)
        q, k, v = ctx.split_heads(ctx.pad(self.qkv(x)), self.heads_num)  # [batch, heads, seq, per_head]
        if first_only:
            q = q[:, :, :1]
        q, k = self.scheme.transform(q, k, ctx)
        k, v = ctx.keys_values(index, k, v)
        if ctx.trace is not None and ctx.trace.scores is not None:
            ctx.trace.scores.append(self.scheme.scores(q, k, ctx, self.scale))
        out = self.scheme.attend(q, k, v, ctx, self.dropout if self.training else 0.0, self.scale)
        out = ctx.merge_heads(out)
        return self.final_linear(out if first_only else ctx.unpad(out))


class ContextAttention(MultiHeadedAttention):
    """Cross-attention of a decoder layer (UER-py's `context_attn`): queries from the decoder, keys and values
    from the encoder's output ("memory"). The weight is fused as in self-attention, [query; key; value] rows
    (UER files name them linear_layers.0/1/2), so the query rows project the decoder and the key/value rows the
    memory. `memory_kv(memory)` projects the memory once per source; `forward` attends to it.

    The memory may have fewer rows than the queries: beam search keeps one memory per source and
    `rows / sources` beams per source, which attend as one longer query sequence (beams fold into the query
    axis), so the keys and values are never copied per beam."""

    def memory_kv(self, memory):
        # memory: [sources, src_len, hidden] -> k, v [sources, heads, src_len, head_dim]
        w = self.qkv.weight[self.inner:]
        b = self.qkv.bias[self.inner:] if self.qkv.bias is not None else None
        kv = F.linear(memory, w, b)
        n, s, _ = kv.shape
        kv = kv.view(n, s, 2, self.heads_num, -1).permute(2, 0, 3, 1, 4)
        return kv[0], kv[1]

    def project_query(self, x):
        """The query rows of the fused weight applied to the decoder's hidden states x."""
        return F.linear(x, *self._query_weight())

    def _query_weight(self):
        return self.qkv.weight[: self.inner], (self.qkv.bias[: self.inner] if self.qkv.bias is not None else None)

    def decoding_projections(self):
        """The projections beside nn.Linear layers that decoding may lay out for a few rows
        (layers/decoding_linear.py): attribute name -> (weight getter, bias getter)."""
        return {"project_query": (lambda: self._query_weight()[0], lambda: self._query_weight()[1])}

    def forward(self, x, k, v, mask):
        # x: [rows, tgt_len, hidden]; k, v: [sources, heads, src_len, head_dim]; mask: bool [sources, 1, 1, src_len]
        # or None (no padding)
        q = self.project_query(x)
        rows, t, _ = q.shape
        n = k.size(0)
        beams = rows // n
        # [rows, t, heads, d] -> [sources, heads, beams * t, d]
        q = q.view(n, beams, t, self.heads_num, -1).permute(0, 3, 1, 2, 4).reshape(n, self.heads_num, beams * t, -1)
        out = attention(q, k, v, mask, False, self.dropout if self.training else 0.0, self.scale)
        out = out.view(n, self.heads_num, beams, t, -1).permute(0, 2, 3, 1, 4).reshape(rows, t, -1)
        return self.final_linear(out)
