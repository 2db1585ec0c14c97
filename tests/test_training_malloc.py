"""glibc's malloc keeps a step's freed memory for the next step (uer_like/training/memory.py keep_freed_memory,
called by the training loop): a step-like pattern of allocations takes its pages from the kernel once, not at
every step; the thresholds stay bounded; the environment's own settings win."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch

from uer_like.training import loop as loop_module
from uer_like.training import memory

glibc = pytest.mark.skipif(memory._glibc() is None, reason="glibc's malloc only (Linux)")

# A step's worth of buffers (30 x 4 MiB from malloc, as torch's CPU allocator takes them, all touched), freed at
# the end, six times, in a fresh process (glibc's state is per process; without torch, which starts quickly).
PROBE = textwrap.dedent("""
    import ctypes, json, resource, sys
    from uer_like.training import memory
    kept = memory.keep_freed_memory() if sys.argv[1] == "keep" else None
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    faults = []
    for step in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        bufs = [libc.malloc(4 << 20) for _ in range(30)]
        for b in bufs:
            ctypes.memset(b, 1, 4 << 20)
        for b in bufs:
            libc.free(b)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps({"kept": kept, "faults": faults}))
""")
PAGES = 30 * (4 << 20) // 4096  # the pages one step touches


def probe(mode, **env):
    import os

    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_a_steps_freed_buffers_serve_the_next_step_without_page_faults():
    default = probe("default")
    kept = probe("keep")
    print(f"minor faults per step of {PAGES} pages: glibc defaults {default['faults']}, kept {kept['faults']}")
    assert kept["kept"] is True
    # glibc's defaults: the first step's blocks are mmapped and go back to the kernel when freed; from the second
    # on they come from the heap, whose freed top (120 MiB, past the dynamic trim threshold of 8 MiB) is trimmed:
    # every step faults in every page again. The loop's settings: the pages are reused from the second step on.
    assert min(default["faults"][1:]) > PAGES // 2, default
    assert sum(kept["faults"][1:]) < PAGES // 20, kept


def test_the_environments_malloc_settings_are_left_alone(monkeypatch):
    for env in ({"MALLOC_TRIM_THRESHOLD_": "1000000"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}):
        monkeypatch.setattr(memory, "_kept", None)
        monkeypatch.setattr(memory, "_glibc", lambda: pytest.fail("mallopt called despite the environment"))
        assert memory.keep_freed_memory(environ=env) is False
    assert memory.keep_freed_memory.__defaults__[:2] == (32 << 20, 256 << 20)  # bounded: see memory.py


def test_the_training_loop_sets_them_before_its_first_step(monkeypatch):
    from uer_like.training.distributed import DistInfo
    from uer_like.training.guard import NonfiniteGuard
    from uer_like.training.loop import Micro, StepLoop

    calls = []
    monkeypatch.setattr(loop_module, "keep_freed_memory", lambda: calls.append("set"))
    model = torch.nn.Linear(3, 1)
    loop = StepLoop(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.amp.GradScaler("cuda", enabled=False),
                    DistInfo(), schedule=lambda s: 0.1, total_steps=2, max_grad_norm=1.0, guard=NonfiniteGuard(3))
    batch = {"x": torch.randn(4, 3), "y": torch.randn(4, 1)}
    loop.run(iter(lambda: [Micro(batch)], None), lambda b: torch.nn.functional.mse_loss(model(b["x"]), b["y"]),
             after_step=lambda loss, skipped: calls.append("step"))
    assert calls == ["set", "step", "step"]
