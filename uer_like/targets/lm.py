import torch.nn as nn

from ..layers.activations import get_activation
from ..layers.cross_entropy import linear_cross_entropy
from ..layers.norms import build_layernorm
from ..registry import TARGETS


@TARGETS.register("lm")
class LmTarget(nn.Module):
    """Left-to-right LM head (no bias unless has_lmtarget_bias, as UER). tgt_lm: next-token ids, 0 = ignore,
    unless lm_pos (the collator's: the flat positions that predict a token) says which positions count: then a
    target of id 0 is a real token (GPT-2's '!'). lm_head_transform: linear_1 -> activation -> layer_norm first
    (NEZHA-Gen's head; `transform`)."""

    batch_keys = ("tgt_lm", "lm_pos")
    optional_keys = ("lm_pos",)  # a batch made by hand may leave it out (UER's convention: 0 = padding)
    tied_weights = ("output_layer.weight",)  # tied to the word embedding when the config says tie_weights
    perplexity = True  # the loss is a token-averaged cross-entropy over the vocabulary (dev figures: exp of it)

    def __init__(self, config, vocab_size):
        super().__init__()
        if config.lm_head_transform:
            self.linear_1 = nn.Linear(config.hidden_size, config.hidden_size)
            self.act = get_activation(config.hidden_act)
            self.layer_norm = build_layernorm(config)
        else:
            self.linear_1 = None
        self.output_layer = nn.Linear(config.hidden_size, vocab_size, bias=config.has_lmtarget_bias)
        # T5 with a tied head: the decoder output times hidden_size ** -0.5 before the projection
        self.scale = config.hidden_size ** -0.5 if config.scale_decoder_output else None

    def scaled(self, hidden):
        return hidden * self.scale if self.scale is not None else hidden

    def transform(self, hidden):
        """What the output layer reads: the hidden states, or their transform (lm_head_transform)."""
        if self.linear_1 is None:
            return hidden
        return self.layer_norm(self.act(self.linear_1(hidden)))

    def logits(self, hidden, seg=None):
        return self.output_layer(self.transform(self.scaled(hidden)))

    def loss(self, hidden, batch, ignore_index=0):
        """ignore_index: the target id of positions that predict nothing (0, UER's padding; a caller that marks
        them otherwise, as the seq2seq forward does with -100, passes its own)."""
        tgt = batch["tgt_lm"].reshape(-1)
        keep = batch.get("lm_pos")
        flat = self.scaled(hidden).reshape(-1, hidden.size(-1))
        ignore = ignore_index
        if keep is not None:  # flat positions of real targets, computed by the collator (no sync)
            flat, tgt = flat.index_select(0, keep), tgt.index_select(0, keep)
            ignore = -100  # every selected position is a target, id 0 included
        flat = self.transform(flat)
        loss, correct = linear_cross_entropy(flat, self.output_layer.weight, self.output_layer.bias, tgt, ignore)
        return {"loss": loss, "correct": correct, "count": (tgt != ignore).sum()}
