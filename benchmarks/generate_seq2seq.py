#!/usr/bin/env python
"""Encoder-decoder generation throughput: uer_like.generate against transformers' generate on the same weights
(a random BART or T5 made by transformers, saved, read back with uer_like.load_model) and the same sources, greedy
and 4-beam search, the two interleaved round by round in one process; then uer_like's cached decoding (KV cache,
cross-attention keys/values once per source) against its uncached decoding (the whole target re-run through the
decoder for every new token).

    python benchmarks/generate_seq2seq.py                        # bart-base, batch 1 and 8, greedy and beam 4
    python benchmarks/generate_seq2seq.py --models t5-small --rounds 3 --modes greedy

tokens/s = generated tokens (batch x new tokens; beams not counted; the end token is blocked by
min_new_tokens = max_new_tokens on both sides, so every row runs to the end) / wall seconds of the generate
call, the median over the rounds (the side that runs first alternates round by round). Batch 8 uses sources of 8 different lengths (right-padded, with an attention
mask for transformers); batch 1 the first. Each side's outputs are compared row by row.
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)

VOCAB = 21128  # the BERT Chinese vocabulary of UER's BART and T5 releases
START, EOS, PAD = 101, 102, 0
# name -> (class, config keywords): base-like widths of the released uer/*-chinese-cluecorpussmall models
MODELS = {
    "bart-base": ("BartForConditionalGeneration",
                  dict(d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
                       decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
                       max_position_embeddings=512)),
    "t5-small": ("T5ForConditionalGeneration",
                 dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8)),
    "bart-tiny": ("BartForConditionalGeneration",  # a smoke test of the script
                  dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                       decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                       max_position_embeddings=512)),
}


def make_models(name, tmp):
    import transformers

    import uer_like

    cls, kw = MODELS[name]
    config_cls = transformers.BartConfig if cls.startswith("Bart") else transformers.T5Config
    torch.manual_seed(0)
    cfg = config_cls(vocab_size=VOCAB, pad_token_id=PAD, bos_token_id=START, eos_token_id=EOS,
                     decoder_start_token_id=START, forced_eos_token_id=None, dropout=0.0, **kw)
    hf = getattr(transformers, cls)(cfg).eval()
    with torch.no_grad():  # HF's init (std 0.02) makes a random model repeat one token; wider logits vary more
        for p in hf.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.05)
    d = os.path.join(tmp, name)
    hf.save_pretrained(d)
    return hf, uer_like.load_model(d).eval()


def sources_for(batch):
    g = torch.Generator().manual_seed(1)
    lengths = [48, 33, 61, 18, 56, 40, 24, 64][:batch]
    return [torch.randint(670, 8000, (n - 1,), generator=g).tolist() + [EOS] for n in lengths]


def hf_generate(hf, sources, new, beams, use_cache=True):
    s = max(len(p) for p in sources)
    ids = torch.tensor([p + [PAD] * (s - len(p)) for p in sources])
    mask = torch.tensor([[1] * len(p) + [0] * (s - len(p)) for p in sources])
    with torch.inference_mode():
        out = hf.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                          num_beams=beams, length_penalty=1.0, early_stopping=False, no_repeat_ngram_size=0,
                          eos_token_id=EOS, pad_token_id=PAD, decoder_start_token_id=START,
                          forced_bos_token_id=None, forced_eos_token_id=None, use_cache=use_cache)
    return out[:, 1:].tolist()  # without the start token, as uer_like returns


def us_generate(model, sources, new, beams, use_cache=True):
    import uer_like

    return uer_like.generate(model, sources, new, min_new_tokens=new, num_beams=beams, eos_token_id=EOS,
                             decoder_start_token_id=START, use_cache=use_cache)


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["bart-base"], choices=list(MODELS))
    p.add_argument("--batch_sizes", nargs="+", type=int, default=[1, 8], choices=range(1, 9))
    p.add_argument("--modes", nargs="+", default=["greedy", "beam4"], choices=["greedy", "beam4"])
    p.add_argument("--new_tokens", type=int, default=128)
    p.add_argument("--cache_rounds", type=int, default=1, help="cached vs uncached: rounds (0: skip)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import transformers

    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_description()}, {os.cpu_count()} cores, torch threads {args.threads}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, Python {platform.python_version()}")
    print(f"load average before: {load()}", flush=True)
    rows, cache_rows = [], []
    tmp = tempfile.mkdtemp(prefix="s2s_bench_")
    for name in args.models:
        hf, ours = make_models(name, tmp)
        for mode in args.modes:
            beams = 4 if mode == "beam4" else 1
            for batch in args.batch_sizes:
                sources = sources_for(batch)
                t_warm_hf, _ = timed(hf_generate, hf, sources, 4, beams)  # warm-up both
                # uer_like's first call at a row count also lays out the decoder's weights for it (kept for later
                # calls: layers/decoding_linear.py); its cost shows here
                t_warm_us, _ = timed(us_generate, ours, sources, 4, beams)
                t_hf, t_us = [], []
                for r in range(args.rounds):  # the side that goes first alternates round by round
                    for side in ((0, 1) if r % 2 == 0 else (1, 0)):
                        if side == 0:
                            t, ref = timed(hf_generate, hf, sources, args.new_tokens, beams)
                            t_hf.append(t)
                        else:
                            t, got = timed(us_generate, ours, sources, args.new_tokens, beams)
                            t_us.append(t)
                n = batch * args.new_tokens
                same = sum(a == b for a, b in zip(ref, got))
                hf_tps, us_tps = n / statistics.median(t_hf), n / statistics.median(t_us)
                rows.append((name, mode, batch, hf_tps, us_tps, f"{same}/{batch}"))
                print(f"{name} {mode} batch {batch}: transformers {hf_tps:.1f} tok/s, uer_like {us_tps:.1f} tok/s, "
                      f"{us_tps / hf_tps:.2f}x, identical rows {same}/{batch}; 4-token warm-up call "
                      f"{t_warm_hf * 1e3:.0f} / {t_warm_us * 1e3:.0f} ms; load {load()}", flush=True)
        if args.cache_rounds:
            for batch in args.batch_sizes:
                sources = sources_for(batch)
                us_generate(ours, sources, 4, 1, use_cache=False)
                t_c, t_u = [], []
                for r in range(args.cache_rounds):
                    for cached in ((True, False) if r % 2 == 0 else (False, True)):
                        if cached:
                            t, a = timed(us_generate, ours, sources, args.new_tokens, 1)
                            t_c.append(t)
                        else:
                            t, b = timed(us_generate, ours, sources, args.new_tokens, 1, use_cache=False)
                            t_u.append(t)
                n = batch * args.new_tokens
                c, u = n / statistics.median(t_c), n / statistics.median(t_u)
                same = sum(x == y for x, y in zip(a, b))
                cache_rows.append((name, batch, c, u, f"{same}/{batch}"))
                print(f"{name} greedy batch {batch}: cached {c:.1f} tok/s, uncached {u:.1f} tok/s, {c / u:.1f}x, "
                      f"identical rows {same}/{batch}; load {load()}", flush=True)
        del hf, ours
    print()
    print("| model | decoding | batch | transformers generate (tok/s) | uer_like.generate (tok/s) | speed-up | "
          "identical outputs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, mode, batch, h, u, same in rows:
        print(f"| {name} | {mode} | {batch} | {h:.1f} | {u:.1f} | {u / h:.2f}x | {same} |")
    if cache_rows:
        print()
        print(f"| model, greedy, {args.new_tokens} new tokens | batch | cached (tok/s) | uncached (tok/s) | speed-up | "
              "identical outputs |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, batch, c, u, same in cache_rows:
            print(f"| uer_like.generate, {name} | {batch} | {c:.1f} | {u:.1f} | {c / u:.1f}x | {same} |")
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
