import torch
import torch.nn as nn

from ..layers.cross_entropy import linear_cross_entropy
from ..registry import TARGETS
from ..errors import ConfigError


@TARGETS.register("bilm")
class BilmTarget(nn.Module):
    """Bidirectional LM head (UER-py's bilm target, ELMo-style): the first half of the hidden size is the
    forward direction, predicting the next token, the second half the backward direction, predicting the
    previous one; one output layer (hidden_size / 2 -> vocabulary) serves both, without bias unless
    has_lmtarget_bias. Pairs with a bidirectional recurrent encoder (bilstm, bigru, birnn).

    logits: [batch, seq, 2, vocab] (index 0 forward, 1 backward). Training: `tgt_forward`, `tgt_backward`
    [batch, seq] (0 = ignore); the loss is the sum of both directions' losses, as in UER-py."""

    batch_keys = ("tgt_forward", "tgt_backward")

    def __init__(self, config, vocab_size):
        super().__init__()
        if config.hidden_size % 2:
            raise ConfigError(f"the bilm target needs an even hidden_size, got {config.hidden_size}")
        self.half = config.hidden_size // 2
        self.output_layer = nn.Linear(self.half, vocab_size, bias=config.has_lmtarget_bias)

    def logits(self, hidden, seg=None):
        return torch.stack([self.output_layer(hidden[..., :self.half]), self.output_layer(hidden[..., self.half:])],
                           dim=2)

    def loss(self, hidden, batch):
        w, b = self.output_layer.weight, self.output_layer.bias
        out = {}
        for name, part, key in (("forward", hidden[..., :self.half], "tgt_forward"),
                                ("backward", hidden[..., self.half:], "tgt_backward")):
            tgt = batch[key].reshape(-1)
            loss, correct = linear_cross_entropy(part.reshape(-1, self.half), w, b, tgt, 0)
            out[name] = (loss, correct, (tgt > 0).sum())
        (lf, cf, nf), (lb, cb, nb) = out["forward"], out["backward"]
        return {"loss": lf + lb, "correct": cf + cb, "count": nf + nb}
