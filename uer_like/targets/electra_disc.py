import torch.nn as nn
import torch.nn.functional as F

from ..layers.activations import get_activation
from ..registry import TARGETS


@TARGETS.register("electra_disc")
class ElectraDiscriminatorTarget(nn.Module):
    """ELECTRA's discriminator head (replaced-token detection): linear -> act -> linear to one logit per
    token, as Hugging Face ElectraForPreTraining's `discriminator_predictions` (dense, dense_prediction).

    logits: [batch, seq]. Training: `tgt_rtd` [batch, seq] (1 replaced, 0 original); positions with
    seg == 0 (padding) are ignored."""

    batch_keys = ("tgt_rtd",)

    def __init__(self, config, vocab_size):
        super().__init__()
        self.linear_1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = get_activation(config.hidden_act)
        self.linear_2 = nn.Linear(config.hidden_size, 1)

    def logits(self, hidden, seg=None):
        return self.linear_2(self.act(self.linear_1(hidden))).squeeze(-1)

    def loss(self, hidden, batch):
        labels = batch["tgt_rtd"]
        logits = self.logits(hidden).float()
        mask = (batch["seg"] > 0).to(logits.dtype)
        count = mask.sum()
        loss = (F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none") * mask).sum()
        loss = loss / count.clamp(min=1)
        correct = (((logits > 0).long() == labels.long()).to(logits.dtype) * mask).sum()
        return {"loss": loss, "correct": correct, "count": count}
