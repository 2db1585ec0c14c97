"""torch.distributed set-up for runs launched by torchrun (nccl on GPUs, gloo on CPU)."""
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    cpu_group: object = None  # a gloo group for small host-side collectives (no device synchronisation)

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def enabled(self):
        return self.world_size > 1


def setup(device_arg="auto"):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device_arg == "auto" else device_arg.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        timeout = datetime.timedelta(minutes=30)
        # Namespace the rendezvous keys by torchrun's restart count: after a worker dies and torchrun
        # restarts the group, keys left by the previous generation would send the new workers to dead peers.
        restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                              is_master=rank == 0 and not agent_store, timeout=timeout)
        store = dist.PrefixStore(f"uer_like/generation_{restart}", store)
        dist.init_process_group("nccl" if use_cuda else "gloo", store=store, rank=rank, world_size=world,
                                timeout=timeout)
    cpu_group = dist.new_group(backend="gloo") if world > 1 and use_cuda else None
    return DistInfo(rank, world, local_rank, device, cpu_group)


def barrier(info):
    if info.enabled:
        dist.barrier()


def all_gather_object(info, obj):
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(info, obj):
    if not info.enabled:
        return obj
    lst = [obj]
    dist.broadcast_object_list(lst, src=0)
    return lst[0]


def all_reduce_sum(info, tensor):
    if info.enabled:
        dist.all_reduce(tensor)
    return tensor


def teardown(info):
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
