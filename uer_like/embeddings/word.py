import math

import torch.nn as nn

from ..registry import EMBEDDINGS


@EMBEDDINGS.register("word")
class WordEmbedding(nn.Module):
    """Token embeddings; scaled by sqrt(emb_size) beside sinusoidal positions, as UER-py (and Vaswani et al.)."""

    def __init__(self, config, vocab_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, config.emb_size)
        sinusoidal = {"sinusoidalpos", "sinusoidalpos_concat"} & set(config.embedding + config.tgt_embedding)
        self.scale = math.sqrt(config.emb_size) if sinusoidal else None

    def forward(self, src, seg, positions=None):
        emb = self.embedding(src)
        return emb * self.scale if self.scale is not None else emb
