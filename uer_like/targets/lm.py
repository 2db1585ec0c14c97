import torch.nn as nn

from ..layers.cross_entropy import linear_cross_entropy
from ..registry import TARGETS


@TARGETS.register("lm")
class LmTarget(nn.Module):
    """Left-to-right LM head (no bias unless has_lmtarget_bias, as UER). tgt_lm: next-token ids, 0 = ignore."""

    batch_keys = ("tgt_lm",)

    def __init__(self, config, vocab_size):
        super().__init__()
        self.output_layer = nn.Linear(config.hidden_size, vocab_size, bias=config.has_lmtarget_bias)
        # T5 with a tied head: the decoder output times hidden_size ** -0.5 before the projection
        self.scale = config.hidden_size ** -0.5 if config.scale_decoder_output else None

    def scaled(self, hidden):
        return hidden * self.scale if self.scale is not None else hidden

    def logits(self, hidden, seg=None):
        return self.output_layer(self.scaled(hidden))

    def loss(self, hidden, batch):
        tgt = batch["tgt_lm"].reshape(-1)
        keep = batch.get("lm_pos")
        flat = self.scaled(hidden).reshape(-1, hidden.size(-1))
        if keep is not None:  # flat positions of real targets, computed by the collator (no sync)
            flat, tgt = flat.index_select(0, keep), tgt.index_select(0, keep)
        loss, correct = linear_cross_entropy(flat, self.output_layer.weight, self.output_layer.bias, tgt, 0)
        return {"loss": loss, "correct": correct, "count": (tgt > 0).sum()}
