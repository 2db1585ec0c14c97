"""Pretraining targets. Each owns its head, its logits and its loss on a batch.

A target's `loss(hidden, batch)` returns a dict of tensors {"loss", "correct", "count"}; nothing in
it calls .item(), so a training step has no host-device synchronisation. `batch_keys` names the batch
fields a target needs (the collator builds those). A target whose loss needs more than the shared encoder
output (ELECTRA: a generator, then the encoder again on the corrupted input) defines `model_loss(model,
batch)` instead, and may report its parts under `report_names` (its result's "parts").
"""
from . import bilm, cls, lm, mlm, sp  # noqa: F401  (registration)
from . import electra, electra_disc, electra_gen, pert, pooler  # noqa: F401  (registration)
