#!/usr/bin/env python
"""The products of a decoding step: a few rows times every weight of a bart-base-sized decoder (6 layers, d_model
768, feed-forward 3072: 48 matrices, 198 MB of float32, each allocated on its own as a model's parameters are)
and its vocabulary projection (21,128 x 768, 65 MB), through

  - uer_like._kernels.matvec (csrc/kernels/decoding.c) on the [out, in] weights as they are,
  - F.linear (nn.Linear's path: addmm through MKL),
  - oneDNN's weight packed once for the row count (torch.ops.mkldnn._linear_pointwise),

the three interleaved round by round; ms per pass over all 49 weights, the median of the rounds. Together the
weights are far larger than the L3 cache, so every pass reads them from memory, as a decoding step does.

    python benchmarks/decoding_matvec.py                      # rows 1 2 4 8, 5 rounds, 1 thread
    python benchmarks/decoding_matvec.py --rows 1 --rounds 9
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)

SHAPES = [(768, 768)] * 36 + [(3072, 768)] * 6 + [(768, 3072)] * 6 + [(21128, 768)]  # [out, in]


def passes(rows):
    from uer_like.layers.kernels import NATIVE

    torch.manual_seed(0)
    weights = [torch.randn(*s) for s in SHAPES]
    xs = {n: torch.randn(rows, n) for n in (768, 3072)}
    ys = {n: torch.empty(rows, n) for n in (768, 3072, 21128)}
    packed = [torch.ops.mkldnn._reorder_linear_weight(w, rows) for w in weights]

    def native():
        for w in weights:
            NATIVE.matvec(w.data_ptr(), xs[w.size(1)].data_ptr(), 0, ys[w.size(0)].data_ptr(), rows, w.size(0),
                          w.size(1))

    def linear():
        for w in weights:
            F.linear(xs[w.size(1)], w)

    def onednn():
        for w, p in zip(weights, packed):
            torch.ops.mkldnn._linear_pointwise(xs[w.size(1)], p, None, "none", [], "")

    for w in (weights[0], weights[36], weights[42], weights[48]):  # the paths give the same products
        y = torch.empty(rows, w.size(0))
        NATIVE.matvec(w.data_ptr(), xs[w.size(1)].data_ptr(), 0, y.data_ptr(), rows, w.size(0), w.size(1))
        assert (y - F.linear(xs[w.size(1)], w)).abs().max() < 1e-3
    return {"native matvec": native, "F.linear": linear, "oneDNN packed": onednn}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="+", type=int, default=[1, 2, 4, 8])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    mb = sum(a * b for a, b in SHAPES) * 4 / 1e6
    print(f"CPU: {cpu_description()}, {os.cpu_count()} cores, torch threads {args.threads}; torch {torch.__version__}; "
          f"{len(SHAPES)} weights, {mb:.0f} MB; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| rows | native matvec (ms) | F.linear (ms) | oneDNN packed (ms) | native GB/s |")
    print("|---:|---:|---:|---:|---:|")
    with torch.inference_mode():
        for rows in args.rows:
            fns = passes(rows)
            times = {k: [] for k in fns}
            for _ in range(2):
                for fn in fns.values():
                    fn()
            for _ in range(args.rounds):
                for name, fn in fns.items():
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
            med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            print(f"| {rows} | {med['native matvec']:.1f} | {med['F.linear']:.1f} | {med['oneDNN packed']:.1f} | "
                  f"{mb / med['native matvec']:.1f} |")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
