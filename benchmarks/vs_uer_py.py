#!/usr/bin/env python
"""uer_like against UER-py itself, the same job through each program's own command line: BERT-mini (mlm + sp)
pretrained for --steps steps, batch 32, seq 128, dynamic masking, on the bundled corpus, each program with its
default flags. The datasets are preprocessed once beforehand (not timed); the pretraining commands alternate
round by round and are timed whole (process start to exit: imports, set-up, training, the final save).

    git clone https://github.com/dbiir/UER-py /path/to/UER-py      # its requirements: torch, numpy, ...
    python benchmarks/vs_uer_py.py --uer_py /path/to/UER-py [--steps 40] [--rounds 3]

Columns: uer_like with its default precision (`auto`: bf16 where the CPU has AVX512_BF16 or AMX), uer_like
--precision fp32, UER-py (fp32; CPU mode). Per-step tokens/s: the real (non-padding) tokens per second over the
steps after the first report. UER-py logs tokens/s counting padding (its instances are padded to seq_length at
preprocessing); its real rate is that times the dataset's real-token fraction, measured here on its dataset.
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
CORPUS = os.path.join(ROOT, "corpora", "CLUECorpusSmall_bert_sampled.txt")
VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")


def timed(cmd, cwd):
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return wall, p.stdout + p.stderr


def rates(log, pattern):
    r = [float(x.replace(",", "")) for x in re.findall(pattern, log)]
    return statistics.mean(r[1:]) if len(r) > 1 else (r[0] if r else float("nan"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uer_py", required=True, help="a UER-py checkout")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        ours_ds, uer_ds = os.path.join(d, "ours.bin"), os.path.join(d, "uer.pt")
        timed([py, "preprocess.py", "--corpus_path", CORPUS, "--vocab_path", VOCAB, "--dataset_path", ours_ds,
               "--data_processor", "bert", "--seq_length", "128", "--dynamic_masking"], ROOT)
        timed([py, "preprocess.py", "--corpus_path", CORPUS, "--vocab_path", VOCAB, "--dataset_path", uer_ds,
               "--processes_num", "1", "--data_processor", "bert", "--seq_length", "128", "--dynamic_masking"],
              args.uer_py)
        import pickle  # UER-py's dataset: pickled instances, padded to seq_length; the real-token fraction

        import torch  # only for the thread count printed

        real = total = 0
        with open(uer_ds, "rb") as f:
            while True:
                try:
                    inst = pickle.load(f)
                except EOFError:
                    break
                src, pad = inst[0]  # ((src padded to seq_length, pad count), is_random_next, seg_pos)
                real += len(src) - pad
                total += len(src)
        real_frac = real / total if total else float("nan")
        common = ["--total_steps", str(args.steps), "--report_steps", "10", "--batch_size", "32"]
        cmds = {
            "uer_like (auto)": ([py, "pretrain.py", "--config", "bert/mini_config.json", "--dataset_path", ours_ds,
                                 "--output_model_path", os.path.join(d, "a{r}.bin")] + common, ROOT,
                                r"\| ([\d,]+) tokens/s"),
            "uer_like fp32": ([py, "pretrain.py", "--config", "bert/mini_config.json", "--dataset_path", ours_ds,
                               "--precision", "fp32", "--output_model_path", os.path.join(d, "b{r}.bin")] + common, ROOT,
                              r"\| ([\d,]+) tokens/s"),
            "UER-py": ([py, "pretrain.py", "--dataset_path", uer_ds, "--vocab_path", "models/google_zh_vocab.txt",
                        "--config_path", "models/bert/mini_config.json", "--output_model_path",
                        os.path.join(d, "u{r}.bin"), "--save_checkpoint_steps", "100000", "--data_processor", "bert"]
                       + common, args.uer_py, r"\|\s+([\d.]+) tokens/s"),
        }
        walls = {k: [] for k in cmds}
        tps = {k: [] for k in cmds}
        for r in range(args.rounds):
            for k, (cmd, cwd, pat) in cmds.items():
                w, log = timed([c.format(r=r) for c in cmd], cwd)  # a fresh output each round (no resume)
                walls[k].append(w)
                tps[k].append(rates(log, pat) * (real_frac if k == "UER-py" else 1.0))
                print(f"round {r + 1} {k:<16} wall {w:6.1f} s  real tokens/s {tps[k][-1]:,.0f}", flush=True)
    u_wall, u_tps = statistics.median(walls["UER-py"]), statistics.median(tps["UER-py"])
    print(f"\nmachine: {cpu_description()}; {torch.get_num_threads()} threads; BERT-mini, batch 32 x 128, {args.steps} steps, "
          f"UER-py's real-token fraction {real_frac:.3f}")
    print("| program | wall s (median) | vs UER-py | real tokens/s per step (median) | vs UER-py |")
    print("|---|---:|---:|---:|---:|")
    for k in cmds:
        w, t = statistics.median(walls[k]), statistics.median(tps[k])
        print(f"| {k} | {w:.1f} | {u_wall / w:.2f}x | {t:,.0f} | {t / u_tps:.2f}x |")


if __name__ == "__main__":
    main()
