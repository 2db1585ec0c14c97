import torch.nn as nn

from ..registry import EMBEDDINGS


@EMBEDDINGS.register("word")
class WordEmbedding(nn.Module):
    def __init__(self, config, vocab_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, config.emb_size)

    def forward(self, src, seg):
        return self.embedding(src)
