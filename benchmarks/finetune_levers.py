#!/usr/bin/env python
"""What each change to the fine-tuning step is worth, in one process: finetune_speed.py's uer_like side (BERT-mini
on book_review, batch 32, bf16 autocast where the CPU has it), rounds of --steps steps with the changes on and
off in turn (the order rotating every round), the median examples/s of each setting.

    python benchmarks/finetune_levers.py --old_kernels DIR   # DIR holds an earlier build's _kernels*.so

Settings: "now" (as the library runs); "clip_grad_norm_" (clipping as a pass of its own: clipping.folds off);
"old dropout" (the native kernels of the build in --old_kernels, loaded as a module of their own); "neither".
glibc's malloc settings (training/memory.py) are process-wide and on in every setting: benchmarks/step_faults.py
measures them.
"""
import argparse
import glob
import importlib.util
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import finetune_speed as fs  # noqa: E402


def load_kernels(directory):
    path = glob.glob(os.path.join(directory, "_kernels*.so"))[0]
    spec = importlib.util.spec_from_file_location("_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old_kernels", required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=8, help="of each setting, after one warm-up round each")
    a = p.parse_args()
    from machine import cpu_description
    from uer_like.finetune.tasks import set_quiet
    from uer_like.layers import dropout
    from uer_like.training import clipping, memory

    memory.cap_shape_caches()
    set_quiet(True)
    _, ours = fs.our_loop_on_book_review("finetune_levers_", a.steps)
    new, old, folds = dropout._kernels, load_kernels(a.old_kernels), clipping.folds
    settings = {"now": (True, new), "clip_grad_norm_": (False, new), "old dropout": (True, old),
                "neither": (False, old)}
    rates = {k: [] for k in settings}
    names = list(settings)
    for r in range(a.rounds + 1):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fold, kernels = settings[name]
            clipping.folds = folds if fold else (lambda *x: False)
            dropout._kernels = kernels
            t, n = ours.round()
            if r:
                rates[name].append(n / t)
        print(f"round {r + 1}" + (" (warm-up)" if not r else "") + ": " + ", ".join(
            f"{k} {v[-1]:.1f}" for k, v in rates.items() if v and r), flush=True)
    clipping.folds, dropout._kernels = folds, new
    print(f"{cpu_description()}; examples/s, median of {a.rounds} rounds of {a.steps} steps:")
    base = statistics.median(rates["neither"])
    for k, v in rates.items():
        m = statistics.median(v)
        print(f"  {k}: {m:.1f} ({m / base:.3f}x 'neither'; rounds {min(v):.1f}-{max(v):.1f})")


if __name__ == "__main__":
    main()
