"""What one encoder forward tells its layers: the attention context, and the decoding caches.

An encoder builds one `AttentionContext` per forward (`AttentionContext.build(seg, causal, positions,
cache)`) and passes it to every layer. Everything about the layout of the batch lives here, not in the
layers: which keys a query may see (padding, causal order, a prefix LM's source and target segments), the
positions of queries and keys, how the fused QKV projection splits into heads and back, and where the layer's
keys and values are cached.

Positions are absolute token indices, 0-based (a position embedding adds its own `position_offset`).
`positions=None` means 0..seq-1 for every row, as in training.

Incremental decoding (a `KVCache` for transformers, an `RnnState` for LSTM/GRU; both `DecodingCache`s):
a batch of prompts of different lengths is **left-padded** (seg 0 on the left). All rows share the column
index of the cache; each row's padding columns are masked out of attention through `cache.key_mask`, and
each row's positions count its own real tokens, so a prompt gets the same positions it would get alone.

Unpadding (`AttentionContext.unpadded`): in training the encoder computes only on real tokens. The hidden
states travel between layers packed, [n_tokens, hidden] (the rows of seg > 0, row-major); every dense op
(projections, feed-forward, layer norms, dropout) runs on that. Attention alone goes back to the padded
layout for its own step (`ctx.pad` of the fused QKV output, `ctx.unpad` of its merged heads), so masks,
positions and every position scheme see exactly the batch they would see padded, and real tokens get the
same values. Zeros stand in for the padding rows there; padding keys are masked (or, causal with default
positions, come after every real token) so they never reach a real token.
"""
import torch


class DecodingCache:
    """What every decoding cache keeps per column: whether it is a real token and its position.

    length: columns filled so far; max_length: the capacity. key_mask [batch, max_length] (True = a
    real token) exists when the batch may hold padding (`padded=True`); with `padded=False` the caller
    promises there is none and seg's zeros are not looked at (a cheaper decoding step).
    positions [batch, max_length]: the position of each column's token (the key positions attention
    schemes see). memo: what a module computes once per cache rather than at every step (keyed by the
    module: the bucket scheme's bias by distance), valid while the weights stay as they are (one generate
    call).
    """

    def __init__(self, batch_size, max_length, device, padded=True):
        self.batch_size = batch_size
        self.max_length = max_length
        self.length = 0
        self.key_mask = torch.zeros(batch_size, max_length, dtype=torch.bool, device=device) if padded else None
        self.positions = torch.zeros(batch_size, max_length, dtype=torch.long, device=device)
        self.memo = {}

    def default_positions(self, seg):
        """Positions of new tokens when the caller gives none: each row continues its count of real tokens
        (seg > 0), so left padding does not shift a prompt's positions; padding gets position 0."""
        s = seg.size(1)
        if self.key_mask is None:
            return torch.arange(self.length, self.length + s, device=seg.device).unsqueeze(0).expand(seg.size(0), s)
        real = seg > 0
        seen = self.key_mask[:, : self.length].sum(1, keepdim=True)
        return (seen + real.cumsum(1) - 1).clamp_(min=0)

    def append(self, seg, positions):
        """Record s new columns (their padding and positions); returns the first new column."""
        start, s = self.length, seg.size(1)
        end = start + s
        if end > self.max_length:
            raise ValueError(f"the decoding cache holds {self.max_length} tokens; {start} are used and {s} more "
                             "were given")
        if self.key_mask is not None:
            self.key_mask[:, start:end] = seg > 0
        if positions is not None:
            self.positions[:, start:end] = positions
        else:
            self.positions[:, start:end] = torch.arange(start, end, device=seg.device)
        self.length = end
        return start

    def reorder(self, index, start=0):
        """Keep rows `index` (beam search): row i becomes the old row index[i]. Columns before `start` are
        promised equal in the rows that index maps between (a prompt shared by its beams) and stay as they are."""
        n = self.length
        if self.key_mask is not None:
            self.key_mask[:, start:n] = self.key_mask[index, start:n]
        self.positions[:, start:n] = self.positions[index, start:n]


class KVCache(DecodingCache):
    """Preallocated keys and values of every transformer layer for incremental decoding.

    k, v: [layers, batch, heads, max_length, head_dim]; columns 0..length-1 are filled. A position scheme
    that transforms keys (rotary) does so before they are written, so the cache holds transformed keys.
    """

    def __init__(self, layers, batch_size, heads, head_dim, max_length, dtype, device, padded=True):
        super().__init__(batch_size, max_length, device, padded)
        shape = (layers, batch_size, heads, max_length, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self._spare = None  # the second buffer of `reorder`
        self._spare_start = 0

    def reorder(self, index, start=0):
        """Beam search's reorder in one pass: the generated columns are gathered straight into a second buffer
        (allocated at the first reorder, when the shared columns before `start` are copied into it once, and
        again if a later reorder gives another `start`), which then becomes the cache: beam search holds the
        cache twice. Gathering back into the same buffer takes two passes (a gather into a temporary and a copy
        back), and on CPU index_select of a strided slice without `out` runs several times slower than a copy."""
        n = self.length
        if n > start:  # only the columns where the rows differ move (the generated ones)
            if self._spare is None or start != self._spare_start:
                if self._spare is None:
                    self._spare = (torch.empty_like(self.k), torch.empty_like(self.v))
                self._spare[0][:, :, :, :start] = self.k[:, :, :, :start]
                self._spare[1][:, :, :, :start] = self.v[:, :, :, :start]
                self._spare_start = start
            k, v = self._spare
            torch.index_select(self.k[:, :, :, start:n], 1, index, out=k[:, :, :, start:n])
            torch.index_select(self.v[:, :, :, start:n], 1, index, out=v[:, :, :, start:n])
            self._spare = (self.k, self.v)
            self.k, self.v = k, v
        super().reorder(index, start)


class RnnState(DecodingCache):
    """The carried hidden state of an LSTM/GRU encoder (`state`: h, or (h, c); None before the first call)."""

    def __init__(self, batch_size, max_length, device, padded=True):
        super().__init__(batch_size, max_length, device, padded)
        self.state = None

    def reorder(self, index, start=0):
        if self.state is not None:
            self.state = tuple(t.index_select(1, index) for t in self.state) if isinstance(self.state, tuple) \
                else self.state.index_select(1, index)
        super().reorder(index, start)


class EncoderTrace:
    """What one encoder forward records when asked (an encoder's `trace` set to one; distillation reads it):

    hidden: [embedding output (after an ALBERT-style projection), layer 1, ..., layer L], each [batch, seq,
      hidden] on the padded layout (zeros at padding when the forward was unpadded); a pre-LN encoder's last
      entry is after its final layer norm;
    scores: [layer 1, ..., layer L] pre-softmax attention scores [batch, heads, queries, keys] in fp32, before
      the mask (the position scheme's `scores`), or None when not asked (`attentions=False`).
    Recording costs nothing when no trace is set: one attribute test per layer."""

    def __init__(self, attentions=True):
        self.hidden = []
        self.scores = [] if attentions else None


class AttentionContext:
    """One forward's attention facts, shared by every layer.

    mask: bool [batch, 1, queries | 1, keys], True = may attend, or None (no mask);
    is_causal: use scaled_dot_product_attention's own causal mask (only when queries and keys are the same
      tokens: it aligns top-left, so it is never used with cached keys);
    seg: [batch, queries], the segments of the new tokens (0 = padding);
    positions: [batch | 1, queries] query positions, or None for 0..seq-1 (see query_positions);
    cache: the KVCache or None; start: the cache column of the first new token;
    bias: what the encoder's shared position module computed for this forward (a float attention bias
      [batch | 1, heads, queries, keys] for the bucket scheme), or None;
    trace: an EncoderTrace the layers record their attention scores into, or None (the normal path).
    """

    __slots__ = ("seg", "mask", "is_causal", "positions", "cache", "start", "end", "index", "bias", "trace")

    def __init__(self, seg, mask=None, is_causal=False, positions=None, cache=None, start=0, end=0):
        self.seg = seg
        self.mask = mask
        self.is_causal = is_causal
        self.positions = positions
        self.cache = cache
        self.start = start
        self.end = end
        self.bias = None
        self.trace = None  # an EncoderTrace the layers record into, or None
        self.index = None  # [n_tokens] flat (row-major) positions of the real tokens when unpadded

    # ------------------------------------------------------------------ unpadding
    def unpadded(self):
        """Switch this forward to packed hidden states when the batch holds padding: returns True and keeps
        the real tokens' flat positions, or False (nothing to gain: no padding, or a decoding cache, whose
        columns are the padded layout)."""
        if self.cache is not None:
            return False
        real = (self.seg > 0).reshape(-1)
        index = real.nonzero().squeeze(1)
        if index.numel() == real.numel():
            return False
        self.index = index
        return True

    def pad(self, x):
        """Packed [n_tokens, C] -> [batch, seq, C] with zeros at padding; padded input is returned as is."""
        if self.index is None or x.dim() != 2:
            return x
        b, s = self.seg.shape
        # in place into the fresh zeros: index_copy would copy them into a second buffer first
        return x.new_zeros(b * s, x.size(-1)).index_copy_(0, self.index, x).view(b, s, -1)

    def first_rows(self, x):
        """The first position of each sequence, [batch, 1, C], from [batch, seq, C] or packed [n_tokens, C]
        (zeros where that position is padding, as pad gives)."""
        return (x if x.dim() == 3 else self.pad(x))[:, :1]

    def unpad(self, x):
        """[batch, seq, C] -> packed [n_tokens, C] (the real tokens); as is when this forward is not unpadded."""
        if self.index is None:
            return x
        return x.reshape(-1, x.size(-1)).index_select(0, self.index)

    @classmethod
    def build(cls, seg, causal, positions=None, cache=None, prefix=False):
        """seg: [batch, seq] of the new tokens (0 = padding).

        Without a cache: fully visible attention masks padding keys; causal attention uses the causal mask
        alone when positions are the default (padding can then only be on the right, after every real
        token) and adds the padding mask when positions are given (a left-padded batch).
        With a cache: the new tokens see every real cached token and, if causal, the new ones up to themselves.
        prefix (the prefix LM, UER-py's `causal_with_prefix`; `causal` is then ignored): see _prefix_mask.
        """
        if prefix:
            start = 0 if cache is None else cache.append(seg, positions)
            s = seg.size(1)
            if cache is not None and s == 1:  # one new token sees every real cached key and itself
                mask = None if cache.key_mask is None else cache.key_mask[:, None, None, :start + 1]
            else:
                cached = None if cache is None or cache.key_mask is None else cache.key_mask[:, :start]
                mask = _prefix_mask(seg, start, cached)
            return cls(seg, mask, False, positions, cache, start, start + s)
        if cache is None:
            if not causal:
                return cls(seg, (seg > 0)[:, None, None, :], False, positions)
            if positions is None:
                return cls(seg, None, True)
            s = seg.size(1)
            return cls(seg, _causal_padding_mask(seg > 0, 0, s, seg.device), False, positions)
        s = seg.size(1)
        start = cache.append(seg, positions)
        end = start + s
        if cache.key_mask is None:
            if s == 1 or not causal:
                mask = None
            elif start == 0:
                return cls(seg, None, True, positions, cache, start, end)
            else:
                mask = torch.ones(s, end, dtype=torch.bool, device=seg.device).tril_(start)
        elif s == 1 or not causal:
            mask = cache.key_mask[:, None, None, :end]
        else:
            mask = _causal_padding_mask(cache.key_mask[:, :end], start, s, seg.device)
        return cls(seg, mask, False, positions, cache, start, end)

    @property
    def query_positions(self):
        """[batch | 1, queries]: positions of the new tokens (0..seq-1 when none were given)."""
        if self.positions is not None:
            return self.positions
        return torch.arange(self.seg.size(1), device=self.seg.device).unsqueeze(0)

    @property
    def key_positions(self):
        """[batch | 1, keys]: positions of every key, cached ones included."""
        if self.cache is not None:
            return self.cache.positions[:, : self.end]
        return self.query_positions

    # ------------------------------------------------------------------ layout
    @staticmethod
    def split_heads(qkv, heads):
        """Fused projection [batch, seq, 3 * hidden] -> q, k, v, each [batch, heads, seq, head_dim]."""
        b, s, _ = qkv.shape
        # unbind, not three selects: its backward stacks the three gradients, where each select's would write
        # into a zero-filled copy of the whole projection
        return qkv.view(b, s, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)

    @staticmethod
    def merge_heads(out):
        """[batch, heads, seq, head_dim] -> [batch, seq, hidden]."""
        b, _, s, _ = out.shape
        return out.transpose(1, 2).reshape(b, s, -1)

    def keys_values(self, index, k, v):
        """Layer `index`'s keys and values to attend to: the new ones, after the cached ones when decoding
        (the new ones are written into the cache)."""
        cache = self.cache
        if cache is None:
            return k, v
        ck, cv = cache.k[index], cache.v[index]
        ck[:, :, self.start:self.end] = k
        cv[:, :, self.start:self.end] = v
        return ck[:, :, : self.end], cv[:, :, : self.end]


def _causal_padding_mask(key_real, start, s, device):
    """bool [batch, 1, s, start + s]: query i (column start + i) sees real keys up to its own column, and
    always itself, so a padding query never has an empty row (SDPA would return NaN there)."""
    end = start + s
    causal = torch.ones(s, end, dtype=torch.bool, device=device).tril_(start)
    mask = causal & key_real[:, None, None, :end]
    own = torch.arange(s, device=device)
    mask[:, :, own, start + own] = True
    return mask


def _prefix_mask(seg, start, cached_real=None):
    """bool [batch, 1, s, start + s], the prefix LM's mask as UER-py builds it from the segments (uer/encoders/
    transformer_encoder.py, mask "causal_with_prefix"): a segment-1 key (the source) is visible to every query,
    a segment-2 key (the target) to the queries at its column and after, a padding key to none; every query
    also sees itself, so a padding query never has an empty row. So the source attends bidirectionally
    within itself and never to the target (which follows it), and the target sees the whole source and the
    target up to itself.

    seg: [batch, s] segments of the new tokens, at cache columns start..start+s-1; the `start` cached columns
    come before every new token, so each is visible when it is a real token (cached_real [batch, start], None:
    all real)."""
    b, s = seg.shape
    end = start + s
    device = seg.device
    causal = torch.ones(s, end, dtype=torch.bool, device=device).tril_(start)  # key column <= query column
    real = seg > 0
    source = seg == 1
    if start:
        old = cached_real if cached_real is not None else torch.ones(b, start, dtype=torch.bool, device=device)
        real = torch.cat([old, real], 1)
        source = torch.cat([torch.zeros_like(old), source], 1)  # cached keys: visible through `causal & real`
    mask = (causal & real[:, None, None, :]) | source[:, None, None, :]
    own = torch.arange(s, device=device)
    mask[:, :, own, start + own] = True
    return mask
