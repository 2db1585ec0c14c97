import torch
import torch.nn as nn

from ..registry import TARGETS


@TARGETS.register("pooler")
class PoolerTarget(nn.Module):
    """A pooler without a task head: tanh(linear_1(hidden[:, 0])).

    It holds the pooler of a released encoder that was published without its NSP/SOP head (Hugging Face
    BertModel, RobertaModel, AlbertModel), so that loading and exporting it again loses no weights.
    `logits` returns the pooled vector [batch, hidden_size]; it has no loss, and training leaves it out."""

    batch_keys = ()
    inference_only = True  # declared: Model.forward and the collator leave it out

    def __init__(self, config, vocab_size):
        super().__init__()
        self.linear_1 = nn.Linear(config.hidden_size, config.hidden_size)

    def logits(self, hidden, seg=None):
        return torch.tanh(self.linear_1(hidden[:, 0, :]))

    def loss(self, hidden, batch):
        raise ValueError("the pooler target has no loss; add a task target (sp, cls) to train")
