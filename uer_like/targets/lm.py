import torch.nn as nn

from ..layers.cross_entropy import linear_cross_entropy
from ..registry import TARGETS


@TARGETS.register("lm")
class LmTarget(nn.Module):
    """Left-to-right LM head (no bias unless has_lmtarget_bias, as UER). tgt_lm: next-token ids, 0 = ignore."""

    batch_keys = ("tgt_lm",)
    perplexity = True  # the loss is a token-averaged cross-entropy over the vocabulary (dev figures: exp of it)

    def __init__(self, config, vocab_size):
        super().__init__()
        self.output_layer = nn.Linear(config.hidden_size, vocab_size, bias=config.has_lmtarget_bias)

    def logits(self, hidden, seg=None):
        return self.output_layer(hidden)

    def loss(self, hidden, batch):
        tgt = batch["tgt_lm"].reshape(-1)
        keep = batch.get("lm_pos")
        flat = hidden.reshape(-1, hidden.size(-1))
        if keep is not None:  # flat positions of real targets, computed by the collator (no sync)
            flat, tgt = flat.index_select(0, keep), tgt.index_select(0, keep)
        loss, correct = linear_cross_entropy(flat, self.output_layer.weight, self.output_layer.bias, tgt, 0)
        return {"loss": loss, "correct": correct, "count": (tgt > 0).sum()}
