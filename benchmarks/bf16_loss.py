#!/usr/bin/env python
"""bf16 autocast against fp32 on the same run: pretrain.py twice on the bundled corpus (BERT-mini, mlm + sp by
default), the same seed, data order and initial weights, only --precision differing; the per-step losses from
--trace_path compared as curves (means over windows of --window steps, so single-step noise from different
rounding does not dominate).

    python benchmarks/bf16_loss.py                          # 300 steps, batch 16, seq 128, 2 threads each, in turn
    python benchmarks/bf16_loss.py --steps 300 --config bert/mini_config.json --batch_size 32

Prints the windowed curves side by side, the largest relative gap between them and the final windows; exits 1
when the largest gap is over --tolerance (default 0.02). bf16 autocast on CPU is fast only where the CPU has
AVX512_BF16 or AMX: the figures say which CPU they came from.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from machine import cpu_description  # benchmarks/machine.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(precision, args, out):
    trace = os.path.join(out, f"{precision}.jsonl")
    cmd = [sys.executable, os.path.join(ROOT, "pretrain.py"), "--config", args.config, "--total_steps",
           str(args.steps), "--batch_size", str(args.batch_size), "--seq_length", str(args.seq_length),
           "--precision", precision, "--seed", "7", "--report_steps", "50", "--save_checkpoint_steps",
           str(10 ** 9), "--trace_path", trace, "--output_model_path", os.path.join(out, f"{precision}.bin")]
    if args.dataset_path:
        cmd += ["--dataset_path", args.dataset_path]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    sec = time.perf_counter() - t
    steps = {}
    for line in open(trace):
        r = json.loads(line)
        steps[r["step"]] = r["loss"]
    return [steps[k] for k in sorted(steps)], sec


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="bert/mini_config.json")
    p.add_argument("--dataset_path", default=None, help="default: the bundled corpus, preprocessed once")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--window", type=int, default=25)
    p.add_argument("--tolerance", type=float, default=0.02)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as out:
        fp32, t32 = run("fp32", args, out)
        bf16, t16 = run("bf16", args, out)
    w = args.window
    rows = []
    for s in range(0, min(len(fp32), len(bf16)) - w + 1, w):
        a, b = sum(fp32[s:s + w]) / w, sum(bf16[s:s + w]) / w
        rows.append((s + 1, s + w, a, b, abs(b - a) / a))
    print(f"machine: {cpu_description()}; {args.config}, batch {args.batch_size} x {args.seq_length}, {args.steps} steps, "
          f"{args.threads} threads; wall fp32 {t32:.0f} s, bf16 {t16:.0f} s")
    print("| steps | fp32 loss | bf16 loss | gap |")
    print("|---|---:|---:|---:|")
    for lo, hi, a, b, g in rows:
        print(f"| {lo}-{hi} | {a:.4f} | {b:.4f} | {g:.2%} |")
    worst = max(r[4] for r in rows)
    print(f"largest gap {worst:.2%} (tolerance {args.tolerance:.0%}); last window fp32 {rows[-1][2]:.4f}, "
          f"bf16 {rows[-1][3]:.4f}")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
