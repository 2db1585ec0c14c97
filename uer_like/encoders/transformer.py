"""Transformer encoder: post-LN (BERT) or pre-LN with final layer norm (GPT-2); full, causal or prefix-LM mask
(UniLM; UER-py's causal_with_prefix: segment 1 bidirectional, segment 2 causal, layers/context.py);
ALBERT's factorised embedding projection and cross-layer parameter sharing; a key/value cache for
incremental decoding.

In training (module.training, no cache) the encoder is unpadded when the batch holds padding: the layers
compute on the real tokens only, packed as [n_tokens, hidden], attention on the padded layout (see
layers/context.py); the output is padded again, zeros at padding. `unpad = False` keeps every token.
Evaluation and decoding keep the padded path, so outputs at padding positions stay what they always were.

`first_only=True` returns the first position's output alone, [batch, 1, hidden]: the last layer computes its
attention output, feed-forward and norms for that row only (keys and values still come from every token):
about three quarters of the last layer's products, a fifth of a 4-layer encoder's. Available where
`computes_first_only()` (not while a `trace` records the layers)."""
import torch.nn as nn

from ..config import check_size
from ..errors import ConfigError
from ..layers.context import AttentionContext, KVCache
from ..layers.norms import build_layernorm
from ..layers.transformer import TransformerLayer
from ..registry import ENCODERS, POSITION_SCHEMES


@ENCODERS.register("transformer")
class TransformerEncoder(nn.Module):
    @staticmethod
    def check_config(config, source):
        for key in ("heads_num", "feedforward_size"):
            check_size(config, key, source)
        if config.hidden_size % config.heads_num and config.attention_head_size is None:
            raise ConfigError(f"{source}: hidden_size {config.hidden_size} is not divisible by heads_num "
                              f"{config.heads_num}")
        if config.emb_size != config.hidden_size and not config.factorized_embedding_parameterization:
            raise ConfigError(f"{source}: emb_size {config.emb_size} differs from hidden_size {config.hidden_size}; "
                              "set factorized_embedding_parameterization: true (ALBERT) or make them equal")

    def __init__(self, config):
        super().__init__()
        self.layers_num = config.layers_num
        self.causal = config.mask == "causal"
        self.prefix = config.mask == "causal_with_prefix"
        self.parameter_sharing = config.parameter_sharing
        if config.factorized_embedding_parameterization:
            self.linear = nn.Linear(config.emb_size, config.hidden_size)
        else:
            self.linear = None
        if self.parameter_sharing:
            self.transformer = TransformerLayer(config)
        else:
            self.transformer = nn.ModuleList([TransformerLayer(config) for _ in range(config.layers_num)])
        self.layer_norm = build_layernorm(config) if config.layernorm_positioning == "pre" else None
        # what every layer's position scheme shares (T5's bucket-bias table; UER-py's name), or None
        self.relative_pos_emb = POSITION_SCHEMES.get(config.position_scheme).shared(config)
        self.heads_num = config.heads_num
        self.per_head_size = config.head_size
        self.unpad = True  # in training: compute on real tokens only
        self.trace = None  # a context.EncoderTrace to record per-layer outputs into (distillation), or None

    def init_cache(self, batch_size, max_length, *, dtype, device, padded=True):
        """An empty KVCache for `batch_size` rows of at most `max_length` tokens (see layers/context.py)."""
        return KVCache(self.layers_num, batch_size, self.heads_num, self.per_head_size, max_length, dtype, device,
                       padded=padded)

    def computes_first_only(self):
        """Whether forward(..., first_only=True) is available: a fully visible mask (one row for every query:
        not causal, not the prefix LM's) and position schemes whose attention for the first query alone is that
        row of the full attention (attends_any_queries)."""
        layers = [self.transformer] if self.parameter_sharing else list(self.transformer)
        return (self.trace is None  # a recorded forward (distillation) needs every position of every layer
                and not self.causal and not self.prefix and self.relative_pos_emb is None
                and all(type(layer.self_attn.scheme).attends_any_queries() for layer in layers))

    def forward(self, emb, seg, positions=None, cache=None, first_only=False):
        # emb: [batch, seq, emb_size]; seg: [batch, seq] (0 = padding); positions: [batch | 1, seq] or None
        # (0..seq-1); cache: a KVCache from init_cache (the new tokens follow the cached ones) or None.
        # first_only (only where computes_first_only(), without a cache): -> [batch, 1, hidden], the output at
        # the first position (a classifier's [CLS]); the last layer computes that row alone.
        if first_only and (cache is not None or not self.computes_first_only()):
            raise ValueError("first_only needs a fully visible encoder whose position schemes attend any queries "
                             "(computes_first_only()) and no cache")
        ctx = AttentionContext.build(seg, self.causal, positions, cache, prefix=self.prefix)
        if self.relative_pos_emb is not None:
            ctx.bias = self.relative_pos_emb(ctx)  # once for all layers
        packed = self.unpad and self.training and ctx.unpadded()
        hidden = ctx.unpad(emb) if packed else emb  # [n_tokens, emb_size] when packed
        if self.linear is not None:
            hidden = self.linear(hidden)
        trace = ctx.trace = self.trace
        if trace is not None:
            trace.hidden.append(ctx.pad(hidden))
        for i in range(self.layers_num):
            layer = self.transformer if self.parameter_sharing else self.transformer[i]
            hidden = layer(hidden, ctx, i, first_only and i == self.layers_num - 1)
            if trace is not None:
                trace.hidden.append(ctx.pad(hidden))
        if self.layer_norm is not None:
            hidden = self.layer_norm(hidden)
            if trace is not None:
                trace.hidden[-1] = ctx.pad(hidden)
        return ctx.pad(hidden) if packed else hidden
