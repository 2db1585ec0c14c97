#!/usr/bin/env python
"""GPU training throughput in one run: BERT-base (mlm + sp) at seq 128 and 512 and GPT-2 base (lm) at seq 1024,
in bf16 autocast, each with and without unpadding and with and without torch.compile; tokens/s (real tokens)
and model FLOPs utilisation against the GPU's peak bf16 rate; then a DDP check on every visible GPU.

    python benchmarks/gpu.py                  # on a CUDA machine; finishes in under 8 minutes (--budget)
    python benchmarks/gpu.py --cpu            # the reduced CPU mode: tiny sizes, a few steps, DDP on 2 gloo ranks
                                              # (torch.compile on CPU takes minutes here: add --no_compile)

Batches are padded as real pretraining batches are: row lengths drawn uniformly from [seq (1 - 2P), seq] with
P = --padding (0.2: about a fifth of the batch is padding, as the bundled corpus at seq 128), the first row
full. MFU = tokens/s x (6 x parameters + 12 x layers x hidden x seq) / peak, the usual estimate (attention
counted at the padded length, which slightly overstates the unpadded runs' work). Peaks are dense bf16 tensor
rates by device name (PEAKS); an unknown device prints MFU as n/a.

The DDP check (torch.multiprocessing.spawn, nccl; gloo on CPU) trains BERT-base seq 128 for a few steps on every
GPU with DistributedDataParallel and checks that all ranks hold identical weights afterwards; it prints the
summed tokens/s and its scaling against one GPU of the table.
"""
import argparse
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# dense bf16 tensor-core peak FLOP/s (no sparsity), by a substring of torch.cuda.get_device_name()
PEAKS = [("B200", 2250e12), ("H200", 989e12), ("GH200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12),
         ("H800", 989e12), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12),
         ("A10G", 70e12), ("A10", 125e12), ("A6000", 155e12), ("4090", 165e12), ("3090", 71e12)]
VOCAB = 21128

# name: (config, layers, hidden, heads, seq, batch); the --cpu mode shrinks all of them
RUNS = [("bert-base seq 128", "bert/base_config.json", 12, 768, 12, 128, 128),
        ("bert-base seq 512", "bert/base_config.json", 12, 768, 12, 512, 32),
        ("gpt2-base seq 1024", "gpt2/base_config.json", 12, 768, 12, 1024, 16)]
CPU_RUNS = [("bert-base seq 128", "bert/base_config.json", 2, 64, 2, 32, 4),
            ("bert-base seq 512", "bert/base_config.json", 2, 64, 2, 64, 2),
            ("gpt2-base seq 1024", "gpt2/base_config.json", 2, 64, 2, 64, 2)]
VARIANTS = [("padded", False, False), ("unpadded", True, False), ("padded+compile", False, True),
            ("unpadded+compile", True, True)]
FIGURES = ("tokens/s", "MFU")


def peak_flops(device):
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS if k in name), None)


def build(config, L, H, A, seq, device):
    from uer_like import build_model

    model = build_model(config, vocab_size=VOCAB, layers_num=L, hidden_size=H, emb_size=H, heads_num=A,
                        feedforward_size=4 * H, max_seq_length=max(seq, 512))
    return model.to(device)


def batches(lm, B, S, n, padding, device, seed=0):
    """n training batches in uer_like's format (as training/batches.py's Collator makes them) and their real
    token counts."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        lo = max(2, int(round(S * (1 - 2 * padding))))
        lengths = torch.randint(lo, S + 1, (B,), generator=g)
        lengths[0] = S
        real = torch.arange(S)[None, :] < lengths[:, None]
        src = torch.where(real, torch.randint(106, VOCAB, (B, S), generator=g), torch.zeros(B, S, dtype=torch.long))
        if lm:
            tgt = torch.where(real, torch.cat([src[:, 1:], torch.zeros(B, 1, dtype=torch.long)], 1), 0)
            tgt[torch.arange(B), lengths - 1] = 0
            b = {"src": src, "seg": real.long(), "tgt_lm": tgt, "lm_pos": (tgt.reshape(-1) > 0).nonzero().squeeze(1)}
        else:
            seg = torch.where(torch.arange(S)[None, :] < (lengths[:, None] // 2), 1, 2) * real
            masked = (torch.rand(B, S, generator=g) < 0.15) & real
            masked[:, 0] = False
            pos = masked.reshape(-1).nonzero().squeeze(1)
            b = {"src": torch.where(masked, 103, src), "seg": seg, "mlm_pos": pos, "mlm_labels": src.reshape(-1)[pos],
                 "tgt_sp": torch.randint(0, 2, (B,), generator=g)}
        out.append(({k: v.to(device) for k, v in b.items()}, int(real.sum())))
    return out


def train_steps(model, opt, data, steps, device, dtype):
    """-> (seconds, real tokens) of `steps` optimizer steps."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t, tokens = time.perf_counter(), 0
    for i in range(steps):
        batch, n = data[i % len(data)]
        with torch.autocast(device.type, dtype=dtype):
            loss = model(batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += n
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t, tokens


def measure(run, variant, args, device, dtype):
    name, config, L, H, A, S, B = run
    _, unpad, compiled = variant
    torch.manual_seed(0)
    model = build(config, L, H, A, S, device).train()
    model.encoder.unpad = unpad
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    step_model = torch.compile(model) if compiled else model
    data = batches("gpt2" in config, B, S, 4, args.padding, device)
    t0 = time.perf_counter()
    train_steps(step_model, opt, data, args.warmup, device, dtype)  # compiles here
    warm = time.perf_counter() - t0
    sec, tokens = train_steps(step_model, opt, data, args.steps, device, dtype)
    tok_s = tokens / sec
    flops = 6 * n_params + 12 * L * H * S
    peak = peak_flops(device)
    mfu = tok_s * flops / peak if peak else None
    del step_model, model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"run": name, "variant": variant[0], "tokens/s": tok_s, "MFU": mfu, "warm-up s": warm,
            "padding": 1 - sum(n for _, n in data) / (len(data) * B * S)}


def _ddp_worker(rank, world, args, init_file, result):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from uer_like.training.distributed import leave_together

    cuda = not args.cpu
    if cuda:
        torch.cuda.set_device(rank)
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    store = dist.FileStore(init_file, world)
    dist.init_process_group("nccl" if cuda else "gloo", store=store, rank=rank, world_size=world)
    try:
        name, config, L, H, A, S, B = (CPU_RUNS if args.cpu else RUNS)[0]
        torch.manual_seed(0)
        model = build(config, L, H, A, S, device).train()
        ddp = DDP(model, device_ids=[rank] if cuda else None)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
        data = batches(False, B, S, 4, args.padding, device, seed=1 + rank)  # each rank its own samples
        dtype = torch.bfloat16 if cuda or args.cpu_bf16 else None
        train_steps(ddp, opt, data, 2, device, dtype)
        sec, tokens = train_steps(ddp, opt, data, args.ddp_steps, device, dtype)
        flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        total = torch.tensor([tokens / sec], device=device, dtype=torch.float64)
        dist.all_reduce(total)
        if rank == 0:
            result.put({"world": world, "tokens/s": total.item(),
                        "identical": all(torch.equal(gathered[0], g) for g in gathered[1:])})
        leave_together(store, rank, world)  # no rank tears down its connections while a peer still uses them
    finally:
        dist.destroy_process_group()


def ddp_check(args):
    import tempfile

    import torch.multiprocessing as mp

    world = torch.cuda.device_count() if not args.cpu else 2
    ctx = mp.get_context("spawn")
    result = ctx.SimpleQueue()
    with tempfile.TemporaryDirectory() as d:  # file rendezvous: no port to race for
        mp.spawn(_ddp_worker, args=(world, args, os.path.join(d, "rendezvous"), result), nprocs=world, join=True)
    return result.get()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="the reduced CPU mode (tiny sizes, a few steps)")
    p.add_argument("--cpu_bf16", action="store_true", help="with --cpu: bf16 autocast as on GPU (default fp32)")
    p.add_argument("--padding", type=float, default=0.2)
    p.add_argument("--steps", type=int, default=None, help="timed steps per variant (GPU 20, CPU 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps, compilation included (GPU 5, CPU 1)")
    p.add_argument("--ddp_steps", type=int, default=None, help="timed DDP steps (GPU 10, CPU 2)")
    p.add_argument("--budget", type=float, default=420.0,
                   help="seconds: variants that would start later are skipped (the DDP check still runs)")
    p.add_argument("--no_compile", action="store_true", help="skip the torch.compile variants (listed as skipped)")
    args = p.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py: no CUDA device; --cpu runs the reduced CPU mode")
    args.steps = args.steps or (2 if args.cpu else 20)
    args.warmup = args.warmup or (1 if args.cpu else 5)
    args.ddp_steps = args.ddp_steps or (2 if args.cpu else 10)
    device = torch.device("cpu") if args.cpu else torch.device("cuda", 0)
    dtype = torch.bfloat16 if (not args.cpu or args.cpu_bf16) else None
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        machine = f"{torch.cuda.get_device_name(device)} x {torch.cuda.device_count()}"
    else:
        import platform

        machine = f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    peak = peak_flops(device)
    print(f"machine: {machine}; torch {torch.__version__}; precision {'bf16' if dtype else 'fp32'}; "
          f"peak {peak / 1e12:.0f} TFLOP/s" if peak else
          f"machine: {machine}; torch {torch.__version__}; precision {'bf16' if dtype else 'fp32'}; peak unknown "
          "(MFU n/a)", flush=True)
    t_start = time.perf_counter()
    rows = []
    for run in (CPU_RUNS if args.cpu else RUNS):
        for variant in VARIANTS:
            if variant[2] and args.no_compile:
                rows.append({"run": run[0], "variant": variant[0], "skipped": "--no_compile"})
            elif time.perf_counter() - t_start > args.budget:
                rows.append({"run": run[0], "variant": variant[0], "skipped": "time budget"})
            else:
                try:
                    rows.append(measure(run, variant, args, device, dtype))
                except Exception as e:  # one failing variant (e.g. a compiler error) must not lose the others
                    rows.append({"run": run[0], "variant": variant[0],
                                 "skipped": f"{type(e).__name__}: {e}"[:160]})
            r = rows[-1]
            print(f"  {r['run']:<20} {r['variant']:<17} " + (
                f"tokens/s {r['tokens/s']:,.0f}  MFU {_pct(r['MFU'])}  (warm-up {r['warm-up s']:.1f} s)"
                if "skipped" not in r else f"skipped: {r['skipped']}"), flush=True)
    print("\n| model | variant | padding | tokens/s | MFU |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['run']} | {r['variant']} | | skipped ({r['skipped']}) | |")
        else:
            print(f"| {r['run']} | {r['variant']} | {r['padding']:.0%} | {r['tokens/s']:,.0f} | {_pct(r['MFU'])} |")
    d = ddp_check(args)
    one = next((r["tokens/s"] for r in rows if r["run"] == rows[0]["run"] and r["variant"] == "unpadded"
                and "skipped" not in r), None)
    scaling = f"{d['tokens/s'] / one:.2f}x one device's unpadded eager run" if one else "n/a"
    print(f"\nDDP: {d['world']} processes, {rows[0]['run']}, tokens/s {d['tokens/s']:,.0f} ({scaling}); "
          f"weights identical on every rank: {'yes' if d['identical'] else 'NO'}")
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return rows, d


def _pct(x):
    return "n/a" if x is None else f"{x:.1%}"


if __name__ == "__main__":
    main()
