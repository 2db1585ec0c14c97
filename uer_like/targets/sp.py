import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import TARGETS


@TARGETS.register("sp")
class SpTarget(nn.Module):
    """Sentence prediction (next-sentence for BERT, sentence order for ALBERT) from the first position."""

    batch_keys = ("tgt_sp",)

    def __init__(self, config, vocab_size):
        super().__init__()
        self.linear_1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.linear_2 = nn.Linear(config.hidden_size, 2)

    def logits(self, hidden, seg=None):
        return self.linear_2(torch.tanh(self.linear_1(hidden[:, 0, :])))

    def loss(self, hidden, batch):
        labels = batch["tgt_sp"]
        logits = self.logits(hidden).float()
        loss = F.cross_entropy(logits, labels)
        return {"loss": loss, "correct": (logits.argmax(-1) == labels).sum(),
                "count": labels.new_tensor(labels.numel())}
