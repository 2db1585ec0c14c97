"""Parallelism in one place: how a model is wrapped for the processes torchrun starts, for pretraining
(trainer.py) and fine-tuning (finetune/core.py) alike.

- one process: the model itself (torch.compile'd when asked);
- several processes: DistributedDataParallel (gradients averaged over the ranks in backward), or with fsdp
  FSDP2's fully_shard on each encoder layer and then the whole model (parameters, gradients and optimizer
  state sharded; the optimizer must then be built on the sharded parameters: `on_shard`).

`unwrap` gives back the model whose attributes (config, loss, heads) a task reads; `Forward` is a view that
calls the wrapper (so that DDP synchronises the gradients) and reads every other attribute from the model.
"""
import logging

import torch

logger = logging.getLogger("uer_like")


def wrap(model, info, fsdp=False, compile=False, on_shard=None, find_unused_parameters=False):
    """-> the module to call for training steps. info: distributed.DistInfo; on_shard(model) is called after
    FSDP sharded the model (to build the optimizer on its sharded parameters)."""
    if fsdp:
        if not info.enabled:
            if info.is_main:
                logger.info("--fsdp with one process: training unsharded")
        else:
            from torch.distributed.fsdp import fully_shard

            layers = getattr(getattr(model, "encoder", None), "transformer", None)
            for layer in layers if isinstance(layers, torch.nn.ModuleList) else []:
                fully_shard(layer)
            fully_shard(model)
            if on_shard is not None:
                on_shard(model)
            return torch.compile(model) if compile else model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [info.local_rank] if info.device.type == "cuda" else None
        model = DDP(model, device_ids=ids, find_unused_parameters=find_unused_parameters)
    if compile:
        model = torch.compile(model)
    return model


def unwrap(module):
    """The model inside a DDP / torch.compile wrapper (itself when not wrapped)."""
    module = getattr(module, "_orig_mod", module)  # torch.compile
    return getattr(module, "module", module) if isinstance(module, torch.nn.parallel.DistributedDataParallel) \
        else module


class Forward:
    """A model as a task sees it, its forward through `wrapped` (the DDP wrapper: the gradients of the
    parameters it used are averaged over the ranks in backward), every other attribute the model's own."""

    def __init__(self, wrapped):
        self._wrapped = wrapped
        self._model = unwrap(wrapped)

    def __call__(self, *args, **kwargs):
        return self._wrapped(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)
