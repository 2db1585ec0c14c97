#!/usr/bin/env python
"""Training throughput: uer_like vs Hugging Face transformers, same sizes, batch, sequence length,
optimizer and precision, measured in one run with the two interleaved round by round. The optimizer is AdamW
with torch's fused kernel on every side: transformers' Trainer default (`adamw_torch_fused`, torch >= 2.8), and
the update uer_like's own AdamW (training/optim.py) makes to the bit.

    python benchmarks/train_speed.py                       # BERT-mini (mlm+sp) and GPT-2 mini (lm), CPU fp32
    python benchmarks/train_speed.py --models bert-base --seq_length 512 --batch_size 32 --precision bf16  # GPU MFU
    git worktree add /tmp/before main && python benchmarks/train_speed.py --models bert-mini --baseline /tmp/before
        # this tree against another one (e.g. before a change), both in the same rounds

    python benchmarks/train_speed.py --models bert-mini --padding 0.2 --also padded bf16
        # batches with 20% padding; extra columns: this tree with the padded encoder (unpad off), under bf16

tokens/s counts real tokens (by default the batches have no padding; --padding P gives each row a length
drawn uniformly so that about a fraction P of the batch is padding, the same rows for every side). Both sides train on the same token ids;
uer_like masks 15% of the tokens for MLM and computes vocabulary logits only there (its design), Hugging
Face's BertForPreTraining computes them at every position (its design): that difference is part of
what is measured.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SIZES = {  # name: (layers, hidden, heads, targets)
    "bert-mini": (4, 256, 4, "bert"), "gpt2-mini": (4, 256, 4, "gpt2"),
    "bert-base": (12, 768, 12, "bert"), "gpt2-base": (12, 768, 12, "gpt2"),
}
VOCAB = 21128


def load_baseline(tree):
    """The uer_like package of another source tree, imported as `uer_like_baseline` (the package imports itself
    relatively, so a copy under another name is independent of this tree's)."""
    import importlib
    import shutil
    import tempfile

    src = os.path.join(tree, "uer_like")
    if not os.path.isfile(os.path.join(src, "__init__.py")):
        sys.exit(f"--baseline {tree}: no uer_like package there")
    tmp = tempfile.mkdtemp(prefix="uer_like_baseline_")
    shutil.copytree(src, os.path.join(tmp, "uer_like_baseline"), ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copytree(os.path.join(tree, "configs"), os.path.join(tmp, "configs"))
    sys.path.insert(0, tmp)
    return importlib.import_module("uer_like_baseline")


def uer_model(kind, L, H, A, dropout, package=None):
    import uer_like

    uer_like = package or uer_like
    name = "bert/base_config.json" if kind == "bert" else "gpt2/base_config.json"
    cfg = uer_like.load_config(name, layers_num=L, hidden_size=H, emb_size=H, heads_num=A, feedforward_size=4 * H,
                               dropout=dropout)
    return uer_like.build_model(cfg, vocab_size=VOCAB)


def hf_model(kind, L, H, A, dropout, seq):
    import transformers

    if kind == "bert":
        cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=L, num_attention_heads=A,
                                      intermediate_size=4 * H, hidden_dropout_prob=dropout,
                                      attention_probs_dropout_prob=dropout, max_position_embeddings=512)
        cfg._attn_implementation = "sdpa"
        return transformers.BertForPreTraining(cfg)
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=H, n_layer=L, n_head=A, n_positions=max(1024, seq),
                                  resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
    cfg._attn_implementation = "sdpa"
    return transformers.GPT2LMHeadModel(cfg)


def make_batches(kind, B, S, n, device, padding=0.0):
    """n batches (uer_like's, transformers') and their real token counts. With padding P, row lengths are
    drawn uniformly from [S (1 - 2P), S] (about a fraction P of padding), padded on the right."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        src = torch.randint(106, VOCAB, (B, S), generator=g)
        src[:, 0] = 101
        lo = max(2, int(round(S * (1 - 2 * padding))))
        lengths = torch.randint(lo, S + 1, (B,), generator=g) if padding > 0 else torch.full((B,), S)
        lengths[0] = S  # one full row: the batch keeps its length S
        real = torch.arange(S)[None, :] < lengths[:, None]
        src = torch.where(real, src, torch.zeros_like(src))
        seg = torch.ones(B, S, dtype=torch.long)
        seg[torch.arange(S)[None, :] >= (lengths[:, None] // 2)] = 2
        seg = torch.where(real, seg, torch.zeros_like(seg))
        masked = (torch.rand(B, S, generator=g) < 0.15) & real
        masked[:, 0] = False
        labels = torch.where(masked, src, torch.full_like(src, -100))
        mlm_src = torch.where(masked, torch.full_like(src, 103), src)
        sp = torch.randint(0, 2, (B,), generator=g)
        flat = masked.reshape(-1).nonzero().squeeze(1)
        ours = {"src": mlm_src, "seg": seg, "mlm_pos": flat, "mlm_labels": src.reshape(-1)[flat], "tgt_sp": sp}
        hf = {"input_ids": mlm_src, "token_type_ids": (seg - 1).clamp(min=0), "attention_mask": real.long(),
              "labels": labels, "next_sentence_label": sp}
        if kind == "gpt2":
            tgt = torch.cat([src[:, 1:], torch.zeros(B, 1, dtype=torch.long)], 1)
            ours = {"src": src, "seg": real.long(), "tgt_lm": tgt}
            if padding > 0:
                ours["lm_pos"] = (tgt.reshape(-1) > 0).nonzero().squeeze(1)
            hf = {"input_ids": src, "labels": torch.where(real, src, torch.full_like(src, -100))}
            if padding > 0:
                hf["attention_mask"] = real.long()
        out.append(({k: v.to(device) for k, v in ours.items()}, {k: v.to(device) for k, v in hf.items()},
                    int(real.sum())))
    return out


def step_fn(model, opt, batch, hf, amp):
    with amp():
        loss = model(**batch).loss if hf else model(batch)["loss"]
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def timed(model, opt, batches, hf, amp, steps, device):
    """-> (seconds, real tokens) of `steps` training steps."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    tokens = 0
    for i in range(steps):
        b = batches[i % len(batches)]
        step_fn(model, opt, b[1 if hf else 0], hf, amp)
        tokens += b[2]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, tokens


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["bert-mini", "gpt2-mini"], choices=sorted(SIZES))
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--json", default=None, help="write results here")
    p.add_argument("--padding", type=float, default=0.0, help="about this fraction of each batch is padding")
    p.add_argument("--also", nargs="*", default=[], choices=("padded", "fp32", "bf16"),
                   help="extra columns of this tree in the same rounds: padded (the encoder without unpadding), "
                        "fp32 / bf16 (under that precision instead of --precision)")
    p.add_argument("--no_transformers", action="store_true", help="leave transformers out")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile 3 steps of each side (torch.profiler) and print its top N ops")
    p.add_argument("--baseline", default=None,
                   help="another source tree whose uer_like is timed in the same rounds (e.g. a worktree of main)")
    args = p.parse_args()
    baseline = load_baseline(args.baseline) if args.baseline else None
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    def amp_for(dt):
        return (lambda: torch.autocast(device.type, dtype=dt)) if dt else (lambda: torch.autocast(device.type, enabled=False))

    amp = amp_for(dtype)
    results = []
    for name in args.models:
        L, H, A, kind = SIZES[name]
        torch.manual_seed(0)
        models = {"uer_like": uer_model(kind, L, H, A, args.dropout).to(device)}
        if not args.no_transformers:
            models["transformers"] = hf_model(kind, L, H, A, args.dropout, args.seq_length).to(device)
        if baseline is not None:
            torch.manual_seed(0)
            models["baseline"] = uer_model(kind, L, H, A, args.dropout, baseline).to(device)
        amps = {k: amp for k in models}
        for extra in args.also:
            torch.manual_seed(0)
            m = uer_model(kind, L, H, A, args.dropout).to(device)
            if extra == "padded":
                m.encoder.unpad = False
            amps[extra] = amp if extra == "padded" else amp_for({"bf16": torch.bfloat16, "fp32": None}[extra])
            models[extra] = m
        opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True) for k, m in models.items()}
        if args.compile:
            models = {k: torch.compile(m) for k, m in models.items()}
        batches = make_batches(kind, args.batch_size, args.seq_length, 4, device, args.padding)
        for k, m in models.items():  # warm-up
            m.train()
            timed(m, opts[k], batches, k == "transformers", amps[k], 2, device)
        rates = {k: [] for k in models}
        for _ in range(args.rounds):
            for k, m in models.items():
                t, n = timed(m, opts[k], batches, k == "transformers", amps[k], args.steps, device)
                rates[k].append(n / t)
        row = {"model": name, "batch": args.batch_size, "seq": args.seq_length, "precision": args.precision,
               "padding": sum(b[2] for b in batches) / (len(batches) * args.batch_size * args.seq_length)}
        row["padding"] = round(1 - row["padding"], 3)
        for k in models:
            row[k] = statistics.median(rates[k])
        if "transformers" in row:
            row["ratio"] = row["uer_like"] / row["transformers"]
        for extra in args.also:
            row[f"uer_like_vs_{extra}"] = row["uer_like"] / row[extra]
        if baseline is not None:
            row["baseline_tree"] = args.baseline
            row["vs_baseline"] = row["uer_like"] / row["baseline"]
        if device.type == "cuda":
            n = sum(p.numel() for p in models["uer_like"].parameters())
            flops = 6 * n + 12 * L * H * args.seq_length
            peak = 989e12 if ("H100" in torch.cuda.get_device_name() or "H200" in torch.cuda.get_device_name()) else None
            if peak and args.precision != "fp32":
                row["mfu_uer_like"] = row["uer_like"] * flops / peak
                row["mfu_transformers"] = row["transformers"] * flops / peak
        results.append(row)
        print(json.dumps(row))
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            for k, m in models.items():
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    timed(m, opts[k], batches, k == "transformers", amps[k], 3, device)
                print(f"\nprofile: {name}, {k} (3 steps; self CPU time)")
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile,
                                                max_name_column_width=48))
    machine = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    print(f"\nmachine: {machine}; torch {torch.__version__}")
    if not args.no_transformers:
        print("| model | batch x seq | padding | precision | uer_like tokens/s | transformers tokens/s | ratio |")
        print("|---|---|---:|---|---:|---:|---:|")
        for r in results:
            print(f"| {r['model']} | {r['batch']} x {r['seq']} | {r['padding']:.0%} | {r['precision']} | "
                  f"{r['uer_like']:,.0f} | {r['transformers']:,.0f} | {r['ratio']:.2f}x |")
    for extra in args.also:
        print(f"\n| model | padding | uer_like ({args.precision}, unpadded) tokens/s | uer_like ({extra}) tokens/s | ratio |")
        print("|---|---:|---:|---:|---:|")
        for r in results:
            print(f"| {r['model']} | {r['padding']:.0%} | {r['uer_like']:,.0f} | {r[extra]:,.0f} | "
                  f"{r[f'uer_like_vs_{extra}']:.3f}x |")
    if baseline is not None:
        print(f"\n| model | uer_like (this tree) tokens/s | uer_like ({args.baseline}) tokens/s | ratio |")
        print("|---|---:|---:|---:|")
        for r in results:
            print(f"| {r['model']} | {r['uer_like']:,.0f} | {r['baseline']:,.0f} | {r['vs_baseline']:.3f}x |")
    if args.json:
        json.dump({"machine": machine, "results": results}, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
