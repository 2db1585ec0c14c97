"""torch.distributed set-up for runs launched by torchrun (nccl on GPUs, gloo on CPU), and the start-up
protocol that turns one rank's failure into an error on every rank instead of a wait until the timeout."""
import contextlib
import datetime
import json
import os
import time
import uuid
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import DistributedError, UerLikeError
from .device import resolve_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    cpu_group: object = None  # a gloo group for small host-side collectives (no device synchronisation)
    store: object = None  # the rendezvous key-value store (start-up messages between ranks)

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def enabled(self):
        return self.world_size > 1


TIMEOUT = datetime.timedelta(minutes=30)  # collectives and store operations (pretrain.py --distributed_timeout)
CONNECT_TIMEOUT_ENV = "UER_LIKE_CONNECT_TIMEOUT"  # seconds to reach MASTER_ADDR:MASTER_PORT (default 300)
POLL_S = 0.05
_current = None  # the DistInfo of this process once set up (setup() is idempotent)


def set_timeout(seconds):
    """How long collectives and store operations wait for a rank that does not answer (a frozen worker), from
    the next setup() on; the run then fails on every rank instead of waiting."""
    global TIMEOUT
    TIMEOUT = datetime.timedelta(seconds=float(seconds))


def collective_failure(info, exc):
    """A DistributedError in one line for a failed collective (a rank frozen past the timeout, or gone), or
    None when `exc` is not one."""
    text = str(exc)
    if not info.enabled or not isinstance(exc, RuntimeError) or not any(
            s in text for s in ("Timed out", "timed out", "Connection closed", "Connection reset", "gloo", "NCCL",
                                "c10d")):
        return None
    if "imed out" in text:
        why = (f"another rank did not answer within {TIMEOUT.total_seconds():g}s (frozen or stopped; "
               "pretrain.py --distributed_timeout sets the wait)")
    else:
        why = "another rank is gone (its own log says why)"
    detail = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return DistributedError(f"rank {info.rank}: {why}: {detail[:200]}")


def setup(device_arg="auto"):
    """Join the process group that torchrun describes in the environment (once per process)."""
    global _current
    if _current is not None:
        return _current
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = resolve_device(device_arg).type == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    store = None
    if world > 1 and not dist.is_initialized():
        # Namespace the process group's keys by a generation number: torchrun's agent store outlives the workers
        # it restarts, and keys left by an earlier generation would send new workers to dead peers.
        raw = _connect(rank, world)
        store = dist.PrefixStore(f"uer_like/generation_{_generation(raw, rank, world)}", raw)
        dist.init_process_group("nccl" if use_cuda else "gloo", store=store, rank=rank, world_size=world,
                                timeout=TIMEOUT)
    cpu_group = dist.new_group(backend="gloo") if world > 1 and use_cuda else None
    _current = DistInfo(rank, world, local_rank, device, cpu_group, store)
    return _current


def _connect(rank, world):
    """The TCPStore at MASTER_ADDR:MASTER_PORT (torchrun's agent store, or hosted by rank 0 without torchrun);
    an endpoint that cannot be reached is an error naming it, after a bounded wait."""
    addr, port = os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ.get("MASTER_PORT", "29500"))
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    wait = float(os.environ.get(CONNECT_TIMEOUT_ENV, "300"))
    host = rank == 0 and not agent_store
    try:
        store = dist.TCPStore(addr, port, world, is_master=host, timeout=datetime.timedelta(seconds=wait))
    except (RuntimeError, TimeoutError) as e:  # DistNetworkError, DistStoreError
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        what = (f"hosts the rendezvous store at {addr}:{port}, but not every one of the {world} ranks joined it"
                if host else f"cannot reach the rendezvous store at {addr}:{port}")
        raise DistributedError(f"rank {rank}: {what} (MASTER_ADDR:MASTER_PORT) within {wait:g}s ({detail}); "
                               f"check the address, the port and the firewall, or raise {CONNECT_TIMEOUT_ENV}"
                               ) from None
    store.set_timeout(TIMEOUT)
    return store


def _generation(store, rank, world):
    """A number that every rank of this start agrees on and that no earlier start used.

    torchrun's restart count cannot be it: after one node's worker fails, that node's agent counts a restart
    while the other nodes' agents restart theirs for the membership change, without counting. Instead rank 0
    draws the next number and hands it to each rank that answers a fresh random challenge, so that keys left
    by dead processes of an earlier start are never taken for a live rank."""
    deadline = time.monotonic() + TIMEOUT.total_seconds()
    if rank == 0:
        generation = store.add("uer_like/generation", 1)
        pending = {}
        for r in range(1, world):
            pending[r] = uuid.uuid4().hex
            store.set(f"uer_like/challenge/{r}", pending[r])
        while pending:
            for r, challenge in list(pending.items()):
                answer = f"uer_like/answer/{r}/{challenge}"
                if store.check([answer]):
                    store.set(f"uer_like/generation_of/{store.get(answer).decode()}", str(generation))
                    del pending[r]
            if pending:
                _pause(deadline, f"rank 0: rank(s) {sorted(pending)} did not join")
        return generation
    me, answered = uuid.uuid4().hex, None
    mine = f"uer_like/generation_of/{me}"
    while not store.check([mine]):
        if store.check([f"uer_like/challenge/{rank}"]):
            challenge = store.get(f"uer_like/challenge/{rank}").decode()
            if challenge != answered:
                store.set(f"uer_like/answer/{rank}/{challenge}", me)
                answered = challenge
        _pause(deadline, f"rank {rank}: rank 0 did not answer")
    return int(store.get(mine))


def _pause(deadline, what):
    if time.monotonic() > deadline:
        raise DistributedError(f"{what} within {TIMEOUT.total_seconds():g}s")
    time.sleep(POLL_S)


def _one_line(e):
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if not isinstance(e, UerLikeError) else text


def _wait_keys(info, keys, deadline, what):
    """Wait until every key is in the store; a lost store (its host exited) is a DistributedError."""
    while True:
        try:
            if info.store.check(keys):
                return
        except (RuntimeError, TimeoutError) as e:
            raise DistributedError(f"rank {info.rank}: lost the rendezvous store while {what} (a rank or the "
                                   f"launcher on the first node exited?): {_one_line(e)}") from None
        _pause(deadline, f"rank {info.rank}: no answer from the other ranks while {what}")


def _publish_failure(info, key, e):
    """Tell the other ranks why this one stops, and give them a moment to read it (rank 0 may host the store)."""
    try:
        info.store.set(key, json.dumps({"rank": info.rank, "error": _one_line(e)}))
        seen = [f"{key}/seen/{r}" for r in range(info.world_size) if r != info.rank]
        deadline = time.monotonic() + 10
        while seen and not info.store.check(seen) and time.monotonic() < deadline:
            time.sleep(POLL_S)
    except Exception:  # noqa: BLE001  the store may be gone already: the original error matters
        pass


def _read(info, key):
    value = json.loads(info.store.get(key))
    if "error" in value:
        info.store.set(f"{key}/seen/{info.rank}", "1")
    return value


def run_on_main(info, fn, what):
    """fn() on rank 0 only, while the others wait: its (JSON-able) result is returned on every rank, and its
    exception is raised on every rank as a DistributedError within a moment (not a wait for a collective)."""
    if not info.enabled or info.store is None:  # one process, or a process group set up by the caller
        return fn()
    key = f"run_on_main/{what}"
    if info.is_main:
        try:
            value = fn()
        except BaseException as e:
            _publish_failure(info, key, e)
            raise
        info.store.set(key, json.dumps({"value": value}))
        return value
    _wait_keys(info, [key], time.monotonic() + TIMEOUT.total_seconds(), what)
    result = _read(info, key)
    if "error" in result:
        raise DistributedError(f"rank 0 failed while {what}: {result['error']}")
    return result["value"]


@contextlib.contextmanager
def start_up(info, what="starting"):
    """Set-up that every rank goes through before its first collective. An exception on any rank is raised
    on every rank within a moment, instead of leaving the others in a collective until the timeout.

    The body fills the yielded dict with what every rank must agree on (JSON-able values, e.g. the step it
    resumes from); ranks that start differently stop with an error listing each rank's values."""
    agree = {}
    if not info.enabled or info.store is None:
        yield agree
        return
    key = f"start_up/{what}"
    try:
        yield agree
    except BaseException as e:
        _publish_failure(info, f"{key}/{info.rank}", e)
        raise
    info.store.set(f"{key}/{info.rank}", json.dumps({"agree": agree}))
    keys = [f"{key}/{r}" for r in range(info.world_size)]
    deadline = time.monotonic() + TIMEOUT.total_seconds()
    results = {}
    while len(results) < info.world_size:
        for r in range(info.world_size):
            if r not in results and info.store.check([keys[r]]):
                results[r] = _read(info, keys[r])
                if "error" in results[r]:
                    raise DistributedError(f"rank {r} failed while {what}: {results[r]['error']}")
        if len(results) < info.world_size:
            _wait_keys(info, [k for r, k in enumerate(keys) if r not in results][:1], deadline, what)
    differ = sorted(k for k in agree if any(results[r]["agree"].get(k) != agree[k] for r in results))
    if differ:
        desc = "; ".join(f"{k}: " + ", ".join(f"rank {r} {results[r]['agree'].get(k)!r}" for r in sorted(results))
                         for k in differ)
        raise DistributedError(f"the ranks start differently ({desc}); every rank must see the same files "
                               "(--dataset_path, --checkpoint_dir on a file system that every node shares)")


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


def leave_together(store, rank, world, key="uer_like/teardown", timeout=None):
    """After the last collective of a run that finished on every rank: a barrier, then a meeting on the
    rendezvous store, before any rank closes its gloo connections.

    A gloo barrier alone is not enough: a rank returns from it once it has received its own messages, while
    its last message to a peer may still be on the way, and closing the connection then aborts the peer
    ("terminate called without an active exception"; gloo issue 155). A rank reaches the store only after
    its barrier completed, so once every rank has, every barrier message has arrived. The store's host (rank
    0 when there is no torchrun agent) waits until the others have read the meeting, then leaves last."""
    timeout = TIMEOUT if timeout is None else timeout
    dist.barrier()
    n = store.add(f"{key}/arrived", 1)
    if n == world:
        store.set(f"{key}/all", "1")
    deadline = time.monotonic() + timeout.total_seconds()
    while not store.check([f"{key}/all"]):
        if time.monotonic() > deadline:
            raise DistributedError(f"rank {rank}: the other ranks did not finish within {timeout.total_seconds():g}s")
        time.sleep(0.005)
    store.set(f"{key}/left/{rank}", "1")
    if rank == 0:
        others = [f"{key}/left/{r}" for r in range(1, world)]
        while others and not store.check(others) and time.monotonic() < deadline:
            time.sleep(0.005)


def teardown(info, finished=False):
    """Leave the process group. finished (every rank got here normally): `leave_together` first, so that no
    rank closes its gloo connections while another still uses them (rank 0 saving the final weights after the
    last collective, say). After an error there is no barrier: the other ranks may be gone."""
    global _current
    if info.enabled and dist.is_initialized():
        if finished and info.store is not None:
            leave_together(info.store, info.rank, info.world_size)
        elif finished:  # a process group set up by the caller: no store of ours to meet on
            dist.barrier()
        dist.destroy_process_group()
    _current = None


def on_main(info, fn):
    """fn() on rank 0 (writing a file, say); its result on every rank, or its UerLikeError raised on every
    rank (a collective: every rank calls it, and no rank waits for one that failed)."""
    from ..errors import CheckpointError, ConfigError, DataError, TrainingError

    out = None
    if info.is_main:
        try:
            out = ("ok", fn())
        except UerLikeError as e:
            if not info.enabled:
                raise
            out = ("error", type(e).__name__, str(e))
    out = broadcast_object(info, out)
    if out[0] == "error":
        raise {c.__name__: c for c in (CheckpointError, TrainingError, ConfigError, DataError)}.get(
            out[1], TrainingError)(out[2])
    return out[1]
