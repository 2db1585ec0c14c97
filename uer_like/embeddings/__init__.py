"""Embedding components (one file each, registered by name) and the Embedding that sums them."""
import torch.nn as nn

from ..layers.dropout import Dropout
from ..layers.norms import build_layernorm
from ..registry import EMBEDDINGS
from . import position, segment, sinusoidal, task, word  # noqa: F401  (registration)


class Embedding(nn.Module):
    """Sum of the configured components (`embedding: ["word", "pos", "seg"]`), layer norm, dropout."""

    def __init__(self, config, vocab_size, names=None):
        # names: the components (default: config.embedding; an encoder-decoder's tgt_embedding gives its own)
        super().__init__()
        names = list(config.embedding if names is None else names)
        for name in names:
            self.add_module(name, EMBEDDINGS.get(name, key="embedding")(config, vocab_size))
        self.names = names
        self.layer_norm = None if config.remove_embedding_layernorm else build_layernorm(config, config.emb_size)
        self.dropout = Dropout(config.dropout)

    def forward(self, src, seg, positions=None):
        # src, seg: [batch, seq]; positions: [batch | 1, seq] token positions, or None for 0..seq-1.
        # Every component takes (src, seg, positions) and returns [batch | 1, seq, emb_size].
        emb = None
        for name in self.names:
            e = getattr(self, name)(src, seg, positions)
            emb = e if emb is None else emb + e
        if self.layer_norm is not None:
            emb = self.layer_norm(emb)
        return self.dropout(emb)
