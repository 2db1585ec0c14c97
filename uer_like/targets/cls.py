import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers.activations import get_activation
from ..registry import TARGETS
from ..errors import ConfigError


def pool(hidden, seg, pooling):
    if pooling == "first":
        return hidden[:, 0, :]
    mask = (seg > 0).unsqueeze(-1).to(hidden.dtype)
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    if pooling == "max":
        return (hidden + (mask - 1) * 1e4).max(1).values
    if pooling == "last":  # the last real token, whichever side the padding is on (XLNet pads on the left)
        real = (seg > 0).long()
        last = (real * torch.arange(1, seg.size(1) + 1, device=seg.device)).argmax(1)
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    raise ConfigError(f"unknown pooling {pooling!r}; valid: first, mean, max, last")


@TARGETS.register("cls")
class ClsTarget(nn.Module):
    """Sequence classification from the pooled output (UER's cls target): linear_1, cls_act (tanh; DistilBERT's
    relu), linear_2."""

    batch_keys = ("tgt_cls",)

    def __init__(self, config, vocab_size):
        super().__init__()
        self.pooling = config.pooling
        self.act = get_activation(config.cls_act)
        self.linear_1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.linear_2 = nn.Linear(config.hidden_size, config.labels_num)

    def logits(self, hidden, seg=None):
        if seg is None:
            seg = hidden.new_ones(hidden.shape[:2], dtype=torch.long)
        return self.linear_2(self.act(self.linear_1(pool(hidden, seg, self.pooling))))

    def loss(self, hidden, batch):
        labels = batch["tgt_cls"]
        logits = self.logits(hidden, batch["seg"]).float()
        return {"loss": F.cross_entropy(logits, labels), "correct": (logits.argmax(-1) == labels).sum(),
                "count": labels.new_tensor(labels.numel())}
