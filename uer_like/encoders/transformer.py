"""Transformer encoder: post-LN (BERT) or pre-LN with final layer norm (GPT-2); full or causal mask;
ALBERT's factorised embedding projection and cross-layer parameter sharing."""
import torch.nn as nn

from ..layers.norms import build_layernorm
from ..layers.transformer import TransformerLayer
from ..registry import ENCODERS


@ENCODERS.register("transformer")
class TransformerEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers_num = config.layers_num
        self.causal = config.mask == "causal"
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

    def forward(self, emb, seg):
        # emb: [batch, seq, emb_size]; seg: [batch, seq] (0 = padding)
        hidden = self.linear(emb) if self.linear is not None else emb
        if self.causal:
            attn_mask, is_causal = None, True
        else:
            attn_mask, is_causal = (seg > 0)[:, None, None, :], False  # [batch, 1, 1, seq]
        for i in range(self.layers_num):
            layer = self.transformer if self.parameter_sharing else self.transformer[i]
            hidden = layer(hidden, attn_mask, is_causal)
        if self.layer_norm is not None:
            hidden = self.layer_norm(hidden)
        return hidden
