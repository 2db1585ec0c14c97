#!/usr/bin/env python
"""Minor page faults and time per optimizer step of this project's fine-tuning loop (finetune_speed.py's
uer_like side: BERT-mini on book_review, batch 32, bf16 autocast where the CPU has it), read with
getrusage(RUSAGE_SELF).ru_minflt around each round of --steps steps.

    python benchmarks/step_faults.py                 # as the loop runs it (glibc's malloc settings made by the loop)
    python benchmarks/step_faults.py --glibc_default # the loop's malloc settings left out (before the change)

A fresh buffer that malloc takes from the kernel (mmap, or heap grown past what was trimmed) faults in each of
its pages at first touch; the word-embedding gradient alone is 21 MB (5,300 pages) a step.
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import finetune_speed as fs  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=4, help="the first is a warm-up")
    p.add_argument("--glibc_default", action="store_true", help="leave glibc's malloc settings as they are")
    a = p.parse_args()
    if a.rounds < 2 or a.steps < 1:
        p.error("--rounds must be at least 2 (the first is a warm-up) and --steps at least 1")
    from uer_like.training import loop, memory

    if a.glibc_default:
        loop.keep_freed_memory = lambda: None
    memory.cap_shape_caches()
    from uer_like.finetune.tasks import set_quiet

    set_quiet(True)
    _, ours = fs.our_loop_on_book_review("step_faults_", a.steps)
    rows = []
    for r in range(a.rounds):
        before, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        ours.core.train(ours.task, ours.model, ours.feats, ours.args, ours.device, ours.dtype)
        faults, sec = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"round {r + 1}: {faults / a.steps:,.0f} minor faults/step, {sec / a.steps * 1e3:.1f} ms/step, "
              f"peak RSS {rss:,.0f} MB" + (" (warm-up)" if r == 0 else ""), flush=True)
        if r:
            rows.append((faults / a.steps, sec / a.steps))
    print(f"median: {statistics.median(f for f, _ in rows):,.0f} minor faults/step, "
          f"{statistics.median(s for _, s in rows) * 1e3:.1f} ms/step ({torch.get_num_threads()} threads; "
          f"{'glibc defaults' if a.glibc_default else 'the loop settings'})")


if __name__ == "__main__":
    main()
