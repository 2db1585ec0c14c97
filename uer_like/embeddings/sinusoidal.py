import math

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..layers.positions.common import check_sequence_length
from ..registry import EMBEDDINGS


# UER-py's position tables, one registered name per era of its config spelling:
#   "embedding": "word_sinusoidalpos" (before July 2023)         -> sinusoidalpos_2019 (legacy_config.py)
#   "embedding": ["word", "sinusoidalpos"] (since July 2023, b80a5e2) -> sinusoidalpos
# Both scale the word embedding by sqrt(emb_size) beside them (embeddings/word.py).
OFFSET_2023 = 2  # UER-py's SinusoidalposEmbedding gives the p-th token table row p + 2


def sinusoidal_2019_table(max_len, dim):
    """[max_len, dim]: UER-py's word_sinusoidalpos (before July 2023; also the table its PEGASUS converter
    writes): sin(p * f_i) in dimension 2i, cos(p * f_i) in 2i + 1, f_i = 10000^(-2i / dim)."""
    pe = torch.zeros(max_len, dim)
    position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float) * -(math.log(10000.0) / dim))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)[:, : dim // 2]
    return pe


def sinusoidal_2023_table(rows, dim):
    """[rows, dim]: UER-py's SinusoidalposEmbedding (since July 2023): half = dim // 2, f_i = exp(-i *
    ln(10000) / (half - 1)), sin(p * f_i) in dimension 2i, cos(p * f_i) in 2i + 1; an odd dim's last column
    is zero (UER-py itself fails on an odd emb_size: it pads with a zero column only after filling the
    interleaved columns, which do not fit)."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float) * -(math.log(10000) / (half - 1)))
    angles = torch.arange(rows, dtype=torch.float).unsqueeze(1) * freq.unsqueeze(0)
    pe = torch.zeros(rows, dim)
    pe[:, 0:2 * half:2] = torch.sin(angles)
    pe[:, 1:2 * half:2] = torch.cos(angles)
    return pe


@EMBEDDINGS.register("sinusoidalpos")
class SinusoidalPositionEmbedding(nn.Module):
    """UER-py's `"embedding": [..., "sinusoidalpos"]` (since July 2023): the n non-padding tokens of a row get
    the table rows 2 .. n + 1 (sinusoidal_2023_table), padding gets zeros; no parameters. Non-padding: seg != 0
    when seg is given, else src != 0, as UER-py. UER-py counts n = seg.sum(-1) and fills the first n positions,
    which is the same for right-padded single-segment rows; for sentence pairs (segment ids 2) it over-counts
    and fails or misaligns, here the p-th non-padding token gets row p + 2 whatever the segments. UER-py also
    zeroes the table row of the [PAD] id, which only reaches a position when that id is 2 or more (row id is
    then position id - 2; with no [PAD] in the vocabulary it zeroes the whole table); here no row is zeroed, as
    with UER-py's usual [PAD] = 0. UER-py's table has max_seq_length rows, so it fails beyond max_seq_length - 2
    tokens; here the formula continues for the two further rows, so that max_seq_length tokens fit."""

    def __init__(self, config, vocab_size):
        super().__init__()
        if config.emb_size < 4:
            raise ConfigError(f"embedding 'sinusoidalpos' needs emb_size >= 4 (its frequencies divide by "
                              f"emb_size // 2 - 1), got {config.emb_size}")
        table = sinusoidal_2023_table(config.max_seq_length + OFFSET_2023, config.emb_size)
        self.register_buffer("pe", table, persistent=False)
        self.max_len = config.max_seq_length

    def forward(self, src, seg, positions=None):
        keep = (seg if seg is not None else src) != 0
        if positions is None:
            check_sequence_length(src.size(1), self.max_len, "sinusoidal position table")
            positions = keep.long().cumsum(1) - 1
        rows = (positions.clamp(min=0) + OFFSET_2023).expand(keep.shape)
        return self.pe[rows] * keep.unsqueeze(-1).to(self.pe.dtype)


@EMBEDDINGS.register("sinusoidalpos_2019")
class Sinusoidal2019PositionEmbedding(nn.Module):
    """UER-py's `"embedding": "word_sinusoidalpos"` (before July 2023): position p gets row p of
    sinusoidal_2019_table, padding included; no parameters."""

    def __init__(self, config, vocab_size):
        super().__init__()
        self.register_buffer("pe", sinusoidal_2019_table(config.max_seq_length, config.emb_size), persistent=False)

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
