import torch.nn as nn

from ..registry import EMBEDDINGS


@EMBEDDINGS.register("seg")
class SegmentEmbedding(nn.Module):
    """UER segments: 0 padding, 1 first sentence, 2 second sentence (3 rows)."""

    def __init__(self, config, vocab_size):
        super().__init__()
        self.embedding = nn.Embedding(config.segment_vocab_size, config.emb_size)

    def forward(self, src, seg, positions=None):
        return self.embedding(seg)
