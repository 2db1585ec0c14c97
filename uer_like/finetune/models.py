"""The backbone every task model shares: the pretrained (or randomly initialised) embedding > encoder, with
the heads defined in the task modules (classification.py, tagging.py, mrc.py, multiple_choice.py).

Parameter names follow UER-py's fine-tuning scripts (`embedding.*`, `encoder.*`, then the head's
`output_layer*`), so fine-tuned checkpoints are UER-format files; each task module documents its head's
parameter names, which are a file-format contract (loading, export).
"""
import torch.nn as nn

from ..embeddings import Embedding
from ..model import _init_weights
from .. import modules  # registers every encoder a config can name; their config checks
from ..registry import ENCODERS


def init_linear(m):
    nn.init.normal_(m.weight, mean=0.0, std=0.02)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


class TaskModel(nn.Module):
    """embedding + encoder built from a ModelConfig; `encode` is the backbone's forward."""

    task = None

    def __init__(self, config, vocab_size, backbone=None):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        if backbone is not None:  # (embedding, encoder) of a loaded pretrained model
            self.embedding, self.encoder = backbone
        else:
            modules.check_config(config)  # each component validates its own keys, before any tensor is built
            self.embedding = Embedding(config, vocab_size)
            self.encoder = ENCODERS.get(config.encoder, key="encoder")(config)
            self.embedding.apply(_init_weights)
            self.encoder.apply(_init_weights)
        self.dropout = nn.Dropout(config.dropout)

    @property
    def input_keys(self):
        """The batch fields the encoder takes beside src and seg (the zen encoder's n-grams), or ()."""
        return tuple(getattr(self.encoder, "input_keys", ()))

    def encode(self, src, seg, first_only=False, **inputs):
        """src, seg [batch, seq] -> hidden states [batch, seq, hidden]; inputs: the encoder's own fields.
        first_only: only the first position is needed; where the encoder can compute it alone
        (computes_first_only) the result is [batch, 1, hidden], else all positions as without it."""
        emb = self.embedding(src, seg)
        if first_only and getattr(self.encoder, "computes_first_only", lambda: False)():
            return self.encoder(emb, seg, first_only=True, **inputs)
        return self.encoder(emb, seg, **inputs)
