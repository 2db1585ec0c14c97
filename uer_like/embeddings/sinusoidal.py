import math

import torch
import torch.nn as nn

from ..layers.positions.common import check_sequence_length
from ..registry import EMBEDDINGS


@EMBEDDINGS.register("sinusoidalpos")
class SinusoidalPositionEmbedding(nn.Module):
    """Fixed sine/cosine positions (Vaswani et al.), as UER-py's `word_sinusoidalpos` (before July 2023);
    no parameters. The word embedding is scaled by sqrt(emb_size) beside it (embeddings/word.py)."""

    def __init__(self, config, vocab_size):
        super().__init__()
        dim, max_len = config.emb_size, config.max_seq_length
        pe = torch.zeros(max_len, dim)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float) * -(math.log(10000.0) / dim))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)[:, : dim // 2]
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, src, seg, positions=None):
        if positions is not None:
            return self.pe[positions]
        check_sequence_length(src.size(1), self.pe.size(0), "sinusoidal position table")
        return self.pe[: src.size(1)].unsqueeze(0)


def concat_table(max_len, dim):
    """[max_len, dim]: sin(p * f_i) in the first half of the dimensions, cos(p * f_i) in the second, f_i =
    10000^(-2i / dim) (tensor2tensor's layout, transformers' PEGASUS and Marian), computed in float64."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    freq = torch.pow(torch.tensor(10000.0, dtype=torch.float64), -torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    table = torch.zeros(max_len, dim, dtype=torch.float64)
    half = (dim + 1) // 2
    table[:, :half] = torch.sin(pos * freq)
    table[:, half:] = torch.cos(pos * freq)[:, : dim // 2]
    return table.float()


@EMBEDDINGS.register("sinusoidalpos_concat")
class ConcatSinusoidalPositionEmbedding(nn.Module):
    """Fixed sine/cosine positions with the sines in the first half of the dimensions and the cosines in the
    second (PEGASUS); no parameters. The word embedding is scaled by sqrt(emb_size) beside it."""

    def __init__(self, config, vocab_size):
        super().__init__()
        self.register_buffer("pe", concat_table(config.max_seq_length, config.emb_size), persistent=False)

    def forward(self, src, seg, positions=None):
        if positions is not None:
            return self.pe[positions]
        check_sequence_length(src.size(1), self.pe.size(0), "sinusoidal position table")
        return self.pe[: src.size(1)].unsqueeze(0)
