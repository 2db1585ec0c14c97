"""A toy target in one file, for tests/test_batch_fields.py: `toy_first` predicts, from the [CLS] position, the
first token after [CLS] as the model sees it, read from a batch field of its own, `tgt_toy_first`, whose builder
this file registers too. Importing this module registers both; nothing else in uer_like knows of them."""
import torch.nn as nn
import torch.nn.functional as F

from uer_like.data.fields import register_field
from uer_like.registry import TARGETS

NAME, FIELD = "toy_first", "tgt_toy_first"


def build_first_token(mb):
    """[batch] int64: each row's token at position 1 (sources: the tokens every processor supplies)."""
    return mb.src[:, 1].copy()


class ToyFirstTarget(nn.Module):
    batch_keys = (FIELD,)

    def __init__(self, config, vocab_size):
        super().__init__()
        self.output_layer = nn.Linear(config.hidden_size, vocab_size)

    def logits(self, hidden, seg=None):
        return self.output_layer(hidden[:, 0, :])

    def loss(self, hidden, batch):
        labels = batch[FIELD]
        logits = self.logits(hidden).float()
        return {"loss": F.cross_entropy(logits, labels), "correct": (logits.argmax(-1) == labels).sum(),
                "count": labels.new_tensor(labels.numel())}


def register():
    TARGETS.register(NAME)(ToyFirstTarget)
    register_field(FIELD, sources=("tokens",))(build_first_token)


def unregister():
    from uer_like.data.fields import BATCH_FIELDS

    TARGETS.unregister(NAME)
    BATCH_FIELDS.unregister(FIELD)


register()
