"""One transformer layer, post-LN (BERT), pre-LN (GPT-2) or Grover's (gpt2-ml): attention on the layer input
without a norm, x = input + attention; the feed-forward reads layer_norm_1(x) and the layer returns
layer_norm_2(x + feed-forward) (Zellers et al. 2019, imcaspar/gpt2-ml train/modeling.py residual_mlp_layer)."""
import torch.nn as nn

from .attention import MultiHeadedAttention
from .dropout import Dropout
from .feed_forward import FEED_FORWARD_CLASSES
from .norms import build_layernorm
from .positions import build_scheme


class TransformerLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        bias = not config.remove_transformer_bias
        self.pre_ln = config.layernorm_positioning == "pre"
        self.grover = config.layernorm_positioning == "grover"
        self.self_attn = MultiHeadedAttention(config.hidden_size, config.heads_num, config.dropout,
                                              bias=bias and not config.remove_attention_bias,
                                              scale=not config.remove_attention_scale, scheme=build_scheme(config),
                                              head_size=config.head_size)
        self.dropout_1 = Dropout(config.dropout)
        self.layer_norm_1 = build_layernorm(config)
        self.feed_forward = FEED_FORWARD_CLASSES[config.feed_forward](
            config.hidden_size, config.feedforward_size, config.hidden_act, bias=bias)
        self.dropout_2 = Dropout(config.dropout)
        self.layer_norm_2 = build_layernorm(config)

    def forward(self, hidden, ctx, index=0, first_only=False):
        # hidden: [batch, seq, hidden] (or packed [n_tokens, hidden], see layers/context.py); ctx: the forward's
        # AttentionContext; index: the layer's cache slot. first_only: the output at the first position alone,
        # [batch, 1, hidden] (attention reads every token; the rest of the layer runs on one row per sequence)
        res = ctx.first_rows(hidden) if first_only else hidden
        if self.pre_ln:
            inter = self.dropout_1(self.self_attn(self.layer_norm_1(hidden), ctx, index, first_only))
            hidden = res + inter
            return hidden + self.dropout_2(self.feed_forward(self.layer_norm_2(hidden)))
        if self.grover:
            hidden = res + self.dropout_1(self.self_attn(hidden, ctx, index, first_only))
            return self.layer_norm_2(hidden + self.dropout_2(self.feed_forward(self.layer_norm_1(hidden))))
        inter = self.layer_norm_1(res + self.dropout_1(self.self_attn(hidden, ctx, index, first_only)))
        return self.layer_norm_2(inter + self.dropout_2(self.feed_forward(inter)))
