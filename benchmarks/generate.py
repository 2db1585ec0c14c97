#!/usr/bin/env python
"""Generation throughput: uer_like.generate against transformers' GPT2LMHeadModel.generate on the same
weights (a random GPT-2 made by transformers, saved, read back with uer_like.load_model) and the same
prompts, greedy, measured in one run with the two interleaved round by round; then uer_like's key/value
cache against its uncached decoding (the whole sequence re-run for every token, as UER-py's generate_lm.py).

    python benchmarks/generate.py                      # GPT-2 mini and distil, batch 1 and 8, 128 new tokens
    python benchmarks/generate.py --sizes gpt2-mini --batch_sizes 8 --rounds 5

tokens/s = generated tokens (batch x new tokens; no end token, every row runs to the end) / wall seconds of
the generate call. Batch 8 uses prompts of 8 different lengths (left-padded on both sides, with an
attention mask for transformers); batch 1 the first of them. Each side's outputs are compared token by token.
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SIZES = {"gpt2-mini": (4, 256, 4), "gpt2-distil": (6, 768, 12)}  # layers, hidden, heads
VOCAB = 21128  # the BERT Chinese vocabulary of UER's GPT-2 models


def make_models(name, tmp):
    import transformers

    import uer_like

    layers, hidden, heads = SIZES[name]
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=1024,
                                  bos_token_id=101, eos_token_id=102)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    d = os.path.join(tmp, name)
    hf.save_pretrained(d)
    return hf, uer_like.load_model(d).eval()


def prompts_for(batch):
    g = torch.Generator().manual_seed(1)
    lengths = [24, 17, 31, 9, 28, 20, 12, 32][:batch] if batch <= 8 else [8 + (i * 7) % 25 for i in range(batch)]
    return [torch.randint(103, VOCAB, (n,), generator=g).tolist() for n in lengths]


def hf_generate(hf, prompts, new):
    s = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (s - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (s - len(p)) + [1] * len(p) for p in prompts])
    with torch.inference_mode():
        out = hf.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                          pad_token_id=0, eos_token_id=None)
    return out[:, s:].tolist()


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--batch_sizes", nargs="+", type=int, default=[1, 8])
    p.add_argument("--new_tokens", type=int, default=128)
    p.add_argument("--cache_new_tokens", type=int, default=256, help="cached vs uncached: new tokens (0: skip)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import transformers

    import uer_like

    torch.set_num_threads(args.threads)
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {args.threads}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, Python {platform.python_version()}")
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    rows = []
    tmp = tempfile.mkdtemp(prefix="gen_bench_")
    for name in args.sizes:
        hf, ours = make_models(name, tmp)
        for batch in args.batch_sizes:
            prompts = prompts_for(batch)
            hf_generate(hf, prompts, 4)  # warm-up both
            uer_like.generate(ours, prompts, 4)
            t_hf, t_us = [], []
            for _ in range(args.rounds):
                t, ref = timed(hf_generate, hf, prompts, args.new_tokens)
                t_hf.append(t)
                t, got = timed(uer_like.generate, ours, prompts, args.new_tokens)
                t_us.append(t)
            n = batch * args.new_tokens
            same = sum(a == b for a, b in zip(ref, got))
            hf_tps, us_tps = n / statistics.median(t_hf), n / statistics.median(t_us)
            rows.append((name, batch, hf_tps, us_tps, us_tps / hf_tps, f"{same}/{batch}"))
            print(f"{name} batch {batch}: transformers {hf_tps:.0f} tok/s, uer_like {us_tps:.0f} tok/s, "
                  f"{us_tps / hf_tps:.2f}x, identical rows {same}/{batch}", flush=True)
        del hf, ours
    print()
    print("| model | batch | transformers generate (tok/s) | uer_like.generate (tok/s) | speed-up | identical outputs |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, batch, h, u, x, same in rows:
        print(f"| {name} | {batch} | {h:.0f} | {u:.0f} | {x:.2f}x | {same} |")

    if args.cache_new_tokens:
        _, ours = make_models("gpt2-mini", tmp)
        print()
        print(f"| gpt2-mini, {args.cache_new_tokens} new tokens | batch | cached (tok/s) | uncached (tok/s) | "
              "speed-up | identical outputs |")
        print("|---|---:|---:|---:|---:|---:|")
        for batch in args.batch_sizes:
            prompts = prompts_for(batch)
            uer_like.generate(ours, prompts, 4, use_cache=False)
            t_c, t_u = [], []
            for _ in range(max(1, args.rounds - 1)):
                t, a = timed(uer_like.generate, ours, prompts, args.cache_new_tokens)
                t_c.append(t)
                t, b = timed(uer_like.generate, ours, prompts, args.cache_new_tokens, use_cache=False)
                t_u.append(t)
            n = batch * args.cache_new_tokens
            c, u = n / statistics.median(t_c), n / statistics.median(t_u)
            same = sum(x == y for x, y in zip(a, b))
            print(f"| uer_like.generate | {batch} | {c:.0f} | {u:.0f} | {c / u:.1f}x | {same}/{batch} |", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
