"""Pretraining targets. Each owns its head, its logits and its loss on a batch.

A target's `loss(hidden, batch)` returns a dict of tensors {"loss", "correct", "count"}; nothing in
it calls .item(), so a training step has no host-device synchronisation. `batch_keys` names the batch
fields a target needs: the collator builds exactly those through the batch-field registry (data/fields.py) and
refuses at start a field without a builder; a target without a loss (pooler) declares `inference_only = True`.
With the config's tie_weights, the weights a target lists in `tied_weights` become the word embedding's. A target whose loss needs more than the shared encoder
output (ELECTRA: a generator, then the encoder again on the corrupted input) defines `model_loss(model,
batch)` instead, and may report its parts under `report_names` (its result's "parts").
"""
from . import bilm, cls, lm, mlm, sp  # noqa: F401  (registration)
from . import electra, electra_disc, electra_gen, pert, pooler  # noqa: F401  (registration)
