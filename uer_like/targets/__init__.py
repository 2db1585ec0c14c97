"""Pretraining targets. Each owns its head, its logits and its loss on a batch.

A target's `loss(hidden, batch)` returns a dict of tensors {"loss", "correct", "count"}; nothing in
it calls .item(), so a training step has no host-device synchronisation.
"""
from . import bilm, cls, lm, mlm, sp  # noqa: F401  (registration)
from . import electra_disc, electra_gen, pooler  # noqa: F401  (registration)
