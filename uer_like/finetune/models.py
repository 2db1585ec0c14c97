"""Task models: the pretrained backbone (embedding > encoder) plus a task head.

Parameter names follow UER-py's fine-tuning scripts, so UER-py fine-tuned checkpoints load as they are:
- classification: output_layer_1 (dense + tanh on the pooled [CLS], as BERT's pooler) and output_layer_2;
- tagging: output_layer (hidden -> tags), optional crf (transitions);
- span extraction: output_layer (hidden -> 2: start and end logits).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..embeddings import Embedding
from ..registry import ENCODERS
from ..targets.cls import pool
from .crf import CRF
from .data import IGNORE_INDEX


def _init_linear(m):
    nn.init.normal_(m.weight, mean=0.0, std=0.02)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


class TaskModel(nn.Module):
    """embedding + encoder built from a ModelConfig; `encode` is the backbone's forward."""

    def __init__(self, config, vocab_size, backbone=None):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        if backbone is not None:  # (embedding, encoder) of a loaded pretrained model
            self.embedding, self.encoder = backbone
        else:
            self.embedding = Embedding(config, vocab_size)
            self.encoder = ENCODERS.get(config.encoder, key="encoder")(config)
            from ..model import _init_weights

            self.embedding.apply(_init_weights)
            self.encoder.apply(_init_weights)
        self.dropout = nn.Dropout(config.dropout)

    def encode(self, src, seg):
        return self.encoder(self.embedding(src, seg), seg)


class Classifier(TaskModel):
    task = "classification"

    def __init__(self, config, vocab_size, labels_num, backbone=None):
        super().__init__(config, vocab_size, backbone)
        self.labels_num = labels_num
        self.pooling = config.pooling
        self.output_layer_1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.output_layer_2 = nn.Linear(config.hidden_size, labels_num)
        _init_linear(self.output_layer_1)
        _init_linear(self.output_layer_2)

    def forward(self, src, seg):
        """-> logits [batch, labels_num]."""
        hidden = self.encode(src, seg)
        pooled = torch.tanh(self.output_layer_1(pool(hidden, seg, self.pooling)))
        return self.output_layer_2(self.dropout(pooled))

    @staticmethod
    def loss(logits, labels):
        return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)


class Tagger(TaskModel):
    task = "tagging"

    def __init__(self, config, vocab_size, labels_num, use_crf=False, backbone=None):
        super().__init__(config, vocab_size, backbone)
        self.labels_num = labels_num
        self.output_layer = nn.Linear(config.hidden_size, labels_num)
        _init_linear(self.output_layer)
        self.crf = CRF(labels_num) if use_crf else None

    def forward(self, src, seg):
        """-> per-token logits (emissions) [batch, seq, labels_num]."""
        return self.output_layer(self.dropout(self.encode(src, seg)))

    @staticmethod
    def gather(logits, word_pos):
        """Emissions at each token's first piece: [batch, words, labels_num]."""
        return logits.gather(1, word_pos.unsqueeze(-1).expand(-1, -1, logits.size(-1)))

    def loss(self, logits, word_pos, word_mask, labels):
        em = self.gather(logits, word_pos).float()
        if self.crf is not None:
            return self.crf(em, labels, word_mask)
        return F.cross_entropy(em.reshape(-1, em.size(-1)), labels.reshape(-1), ignore_index=IGNORE_INDEX)

    @torch.no_grad()
    def decode(self, logits, word_pos, word_mask):
        em = self.gather(logits, word_pos).float()
        if self.crf is not None:
            return self.crf.decode(em, word_mask)
        best = em.argmax(-1).tolist()
        lengths = word_mask.long().sum(1).tolist()
        return [b[:n] for b, n in zip(best, lengths)]


class SpanExtractor(TaskModel):
    task = "mrc"

    def __init__(self, config, vocab_size, backbone=None):
        super().__init__(config, vocab_size, backbone)
        self.output_layer = nn.Linear(config.hidden_size, 2)
        _init_linear(self.output_layer)

    def forward(self, src, seg):
        """-> (start_logits, end_logits), each [batch, seq]."""
        logits = self.output_layer(self.encode(src, seg))
        start, end = logits.split(1, dim=-1)
        return start.squeeze(-1), end.squeeze(-1)

    @staticmethod
    def loss(start_logits, end_logits, start, end):
        n = start_logits.size(1)
        start, end = start.clamp(0, n - 1), end.clamp(0, n - 1)
        return (F.cross_entropy(start_logits.float(), start) + F.cross_entropy(end_logits.float(), end)) / 2
