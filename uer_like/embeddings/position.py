import torch
import torch.nn as nn

from ..layers.positions.common import check_sequence_length
from ..registry import EMBEDDINGS


@EMBEDDINGS.register("pos")
class PositionEmbedding(nn.Module):
    """Learned absolute positions; `position_offset` shifts ids (RoBERTa starts at padding_idx + 1)."""

    def __init__(self, config, vocab_size):
        super().__init__()
        self.offset = config.position_offset
        self.max_len = config.max_seq_length
        self.embedding = nn.Embedding(config.max_seq_length + config.position_offset, config.emb_size)

    def forward(self, src, seg, positions=None):
        if positions is not None:
            return self.embedding(positions + self.offset if self.offset else positions)
        seq_len = src.size(1)
        check_sequence_length(seq_len, self.max_len, "position embedding")
        pos = torch.arange(self.offset, self.offset + seq_len, device=src.device)
        return self.embedding(pos).unsqueeze(0)
