"""Transformer decoder (UER-py's `decoder: transformer`): the decoder half of BART, PEGASUS and T5.

The decoder reads the target embedding and the encoder's output. Its self-attention is causal and takes the
configured position scheme (T5's bucket bias, with causal buckets and a table of the decoder's own,
`decoder.self_pos_emb`, UER-py's name); cross-attention (`context_attn`) has no position term.

`memory(encoder_output, seg)` projects the encoder's output into every layer's cross-attention keys and
values once per source (a `Memory`); decoding steps reuse it. `init_cache` gives the self-attention's key/value
cache (layers/context.py KVCache; decoder rows hold no padding while decoding).
"""
import torch.nn as nn

from ..layers.context import AttentionContext, KVCache
from ..layers.decoder_layer import TransformerDecoderLayer
from ..layers.norms import build_layernorm
from ..registry import DECODERS, POSITION_SCHEMES


class Memory:
    """The encoder's output as every decoder layer's cross-attention sees it: k[i], v[i] [sources, heads,
    src_len, head_dim] per layer, and mask, bool [sources, 1, 1, src_len] (True = a real source token), or
    None when no source holds padding (every key visible: attention skips the mask)."""

    __slots__ = ("k", "v", "mask")

    def __init__(self, k, v, mask):
        self.k, self.v, self.mask = k, v, mask

    @property
    def sources(self):
        return self.mask.size(0)


@DECODERS.register("transformer")
class TransformerDecoder(nn.Module):
    # the batch fields an encoder-decoder model's forward reads beside src and seg (UER-py's seq2seq batch): the
    # decoder's input tokens and their segments, and the tokens its lm target predicts (Model._seq2seq_forward)
    batch_keys = ("tgt_in", "tgt_seg", "tgt_out")

    def __init__(self, config):
        super().__init__()
        self.layers_num = config.decoder_layers_num or config.layers_num
        self.transformer_decoder = nn.ModuleList([TransformerDecoderLayer(config) for _ in range(self.layers_num)])
        self.layer_norm = build_layernorm(config) if config.layernorm_positioning == "pre" else None
        shared = POSITION_SCHEMES.get(config.position_scheme).shared(config)
        if shared is not None and hasattr(shared, "bidirectional"):
            shared.bidirectional = False  # the decoder's buckets are causal whatever the encoder's are
        self.self_pos_emb = shared
        self.heads_num = config.heads_num
        self.per_head_size = config.head_size

    def init_cache(self, batch_size, max_length, *, dtype, device, padded=False):
        """An empty self-attention KVCache for `batch_size` decoder rows of at most `max_length` tokens."""
        return KVCache(self.layers_num, batch_size, self.heads_num, self.per_head_size, max_length, dtype, device,
                       padded=padded)

    def memory(self, encoder_output, seg, padded=True):
        """encoder_output [sources, src_len, hidden], seg [sources, src_len] (0 = padding) -> Memory.
        padded=False promises that seg holds no padding: the Memory then has no mask (no mask to convert and
        add in every layer's cross-attention of every decoding step; the same result)."""
        kv = [layer.context_attn.memory_kv(encoder_output) for layer in self.transformer_decoder]
        return Memory([k for k, _ in kv], [v for _, v in kv], (seg > 0)[:, None, None, :] if padded else None)

    def forward(self, emb, seg, memory, positions=None, cache=None):
        # emb: [rows, tgt_len, hidden]; seg: [rows, tgt_len] (0 = padding, on the right); memory: a Memory of
        # `sources` rows (rows = sources x beams); positions / cache: as the encoder's (layers/context.py)
        ctx = AttentionContext.build(seg, True, positions, cache)
        if self.self_pos_emb is not None:
            ctx.bias = self.self_pos_emb(ctx)
        hidden = emb
        for i, layer in enumerate(self.transformer_decoder):
            hidden = layer(hidden, ctx, i, memory.k[i], memory.v[i], memory.mask)
        if self.layer_norm is not None:
            hidden = self.layer_norm(hidden)
        return hidden
