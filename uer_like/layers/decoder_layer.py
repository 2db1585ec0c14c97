"""One transformer decoder layer (UER-py's TransformerDecoderLayer): causal self-attention, cross-attention to
the encoder's output (`context_attn`), feed-forward; post-LN (BART) or pre-LN (T5, PEGASUS)."""
import torch.nn as nn

from .attention import ContextAttention, MultiHeadedAttention
from .dropout import Dropout
from .feed_forward import FEED_FORWARD_CLASSES
from .norms import build_layernorm
from .positions import build_scheme


class TransformerDecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        bias = not config.remove_transformer_bias
        attn_bias = bias and not config.remove_attention_bias
        scale = not config.remove_attention_scale
        self.pre_ln = config.layernorm_positioning == "pre"
        self.self_attn = MultiHeadedAttention(config.hidden_size, config.heads_num, config.dropout, bias=attn_bias,
                                              scale=scale, scheme=build_scheme(config), head_size=config.head_size)
        self.context_attn = ContextAttention(config.hidden_size, config.heads_num, config.dropout, bias=attn_bias,
                                             scale=scale, head_size=config.head_size)
        self.feed_forward = FEED_FORWARD_CLASSES[config.feed_forward](
            config.hidden_size, config.feedforward_size, config.hidden_act, bias=bias)
        self.dropout_1, self.dropout_2, self.dropout_3 = (Dropout(config.dropout) for _ in range(3))
        self.layer_norm_1, self.layer_norm_2, self.layer_norm_3 = (build_layernorm(config) for _ in range(3))

    def forward(self, hidden, ctx, index, memory_k, memory_v, memory_mask):
        # hidden: [rows, tgt_len, hidden]; ctx: the decoder's AttentionContext (causal); index: the cache slot;
        # memory_k/v: this layer's projected encoder output [sources, heads, src_len, head_dim]; memory_mask:
        # bool [sources, 1, 1, src_len] (True = a real source token) or None (no padding)
        if self.pre_ln:
            hidden = hidden + self.dropout_1(self.self_attn(self.layer_norm_1(hidden), ctx, index))
            hidden = hidden + self.dropout_2(self.context_attn(self.layer_norm_2(hidden), memory_k, memory_v,
                                                               memory_mask))
            return hidden + self.dropout_3(self.feed_forward(self.layer_norm_3(hidden)))
        query = self.layer_norm_1(hidden + self.dropout_1(self.self_attn(hidden, ctx, index)))
        mid = self.layer_norm_2(query + self.dropout_2(self.context_attn(query, memory_k, memory_v, memory_mask)))
        return self.layer_norm_3(mid + self.dropout_3(self.feed_forward(mid)))
