#!/usr/bin/env python
"""Resident memory of a long pretraining run: pretrain.py (README's main job: BERT-tiny on the bundled corpus,
batch 32 x 128) in a child process, its VmRSS read from /proc/<pid>/status at every report line (each
--every steps), its peak from the kernel's count for that child (ru_maxrss of wait4).

    python benchmarks/rss.py                       # 5,000 steps, RSS every 50 steps
    python benchmarks/rss.py --baseline            # the same run with oneDNN's default cache sizes (before the fix)
    python benchmarks/rss.py --steps 1000 --both   # the fixed run, then the baseline, one table

Prints per run: the RSS at step 500 (--flat_from) and at the end, the peak, the smallest and largest sample from
step 500 on, whether the run is flat (no sample from step 500 (--flat_from) on more than 10% (--tolerance) above
the RSS at step 500, and the end within 10% of it either way), and the median tokens/s of the report lines after
the first. Exits 1 when a fixed (non-baseline) run is not flat.

The fix is uer_like/training/memory.py: the trainer caps oneDNN's primitive cache and ideep's computation cache
at 64 entries unless the environment sets them; --baseline sets both to 1,024 (their defaults), which is what
the trainer ran with before.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from machine import cpu_description  # benchmarks/machine.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT = re.compile(r"step (\d+)/(\d+) .*?([\d,]+) tokens/s")
BASELINE_ENV = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024", "LRU_CACHE_CAPACITY": "1024"}


def vm_rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run(args, baseline, out):
    cmd = [sys.executable, os.path.join(ROOT, "pretrain.py"), "--config", args.config, "--total_steps",
           str(args.steps), "--batch_size", str(args.batch_size), "--seq_length", str(args.seq_length),
           "--report_steps", str(args.every), "--save_checkpoint_steps", str(10 ** 9), "--resume", "never",
           "--output_model_path", os.path.join(out, "baseline.bin" if baseline else "fixed.bin")]
    if args.precision:
        cmd += ["--precision", args.precision]
    env = dict(os.environ)
    for k in BASELINE_ENV:  # each run decides these itself
        env.pop(k, None)
    env.pop("DNNL_PRIMITIVE_CACHE_CAPACITY", None)
    if baseline:
        env.update(BASELINE_ENV)
    t0 = time.time()
    child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples, speeds, tail = [], [], []
    for line in child.stderr:
        tail = (tail + [line])[-20:]
        m = REPORT.search(line)
        if m:
            rss = vm_rss_mb(child.pid)
            if rss is not None:
                samples.append((int(m.group(1)), rss))
            speeds.append(float(m.group(3).replace(",", "")))
            if args.verbose:
                print(f"  step {m.group(1)}: {rss:.0f} MB, {m.group(3)} tokens/s", flush=True)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.stderr.write("".join(tail))
        raise SystemExit(f"pretrain.py exited with {child.returncode}")
    return {"samples": samples, "peak": usage.ru_maxrss / 1024, "speeds": speeds, "wall": time.time() - t0}


def summary(r, args):
    samples = r["samples"]
    at = {s: m for s, m in samples}
    start = min((s for s in at if s >= args.flat_from), default=None)
    later = [m for s, m in samples if start is not None and s >= start]
    ref = at.get(start)
    # creep is growth: no sample from step --flat_from on may exceed its RSS by more than --tolerance, and the
    # end must lie within --tolerance of it either way (samples also dip when glibc hands memory back: not creep)
    flat = (bool(later) and max(later) <= (1 + args.tolerance) * ref
            and abs(samples[-1][1] - ref) <= args.tolerance * ref)
    speeds = r["speeds"][1:] or r["speeds"]
    return {"ref_step": start, "ref": ref, "end": samples[-1][1] if samples else None, "peak": r["peak"],
            "lo": min(later) if later else None, "hi": max(later) if later else None, "flat": flat,
            "tokens_s": statistics.median(speeds) if speeds else None, "wall": r["wall"]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="bert/tiny_config.json")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--every", type=int, default=50, help="RSS sample (and report line) every this many steps")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--precision", default=None, help="passed to pretrain.py (default: its own, auto)")
    p.add_argument("--flat_from", type=int, default=500)
    p.add_argument("--tolerance", type=float, default=0.10)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--baseline", action="store_true", help="only the run with oneDNN's default cache sizes")
    g.add_argument("--both", action="store_true", help="the fixed run, then the baseline")
    p.add_argument("--verbose", action="store_true", help="print every sample as it comes")
    args = p.parse_args()
    runs = [("baseline", True)] if args.baseline else [("fixed", False)] + ([("baseline", True)] if args.both else [])
    print(f"machine: {cpu_description()}, {os.cpu_count()} CPUs; {args.config}, batch {args.batch_size} x "
          f"{args.seq_length}, {args.steps} steps, RSS every {args.every} steps", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as out:
        for name, baseline in runs:
            r = run(args, baseline, out)
            s = summary(r, args)
            results.append((name, r, s))
            trace = ", ".join(f"{st}: {m:.0f}" for st, m in r["samples"][::max(1, len(r["samples"]) // 20)])
            print(f"{name}: RSS (MB) at step {trace}", flush=True)
    print(f"| run | RSS at step {args.flat_from} (MB) | RSS at the end (MB) | peak (MB) | from step {args.flat_from}: "
          f"min-max (MB) | flat (growth within {args.tolerance:.0%}) | tokens/s (median) | wall (s) |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    def f(v):
        return "-" if v is None else f"{v:,.0f}"

    for name, r, s in results:
        print(f"| {name} | {f(s['ref'])} | {f(s['end'])} | {f(s['peak'])} | {f(s['lo'])}-{f(s['hi'])} | "
              f"{'yes' if s['flat'] else 'no'} | {f(s['tokens_s'])} | {f(s['wall'])} |")
    bad = [name for name, _, s in results if name == "fixed" and not s["flat"]]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
