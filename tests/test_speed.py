"""Training throughput features: unpadded encoder, precision choice, the GPU benchmark's reduced CPU mode.

Unpadding is checked against the padded path itself (the reference: every token computed, as before), in
float32, for loss and every gradient, across the encoder variants it touches."""
import os

import pytest
import torch

from uer_like import build_model

SMALL = dict(layers_num=2, hidden_size=64, emb_size=64, heads_num=4, feedforward_size=128, dropout=0.0,
             max_seq_length=64)


def _padded_batch(kind, B=4, S=24, vocab=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = [S, S - 7, 9, S - 3][:B]
    src = torch.zeros(B, S, dtype=torch.long)
    seg = torch.zeros(B, S, dtype=torch.long)
    for b, n in enumerate(lengths):
        src[b, :n] = torch.randint(5, vocab, (n,), generator=g)
        seg[b, :n // 2] = 1
        seg[b, n // 2:n] = 2
    if kind == "lm":
        tgt = torch.zeros_like(src)
        for b, n in enumerate(lengths):
            tgt[b, :n - 1] = src[b, 1:n]
        seg = (seg > 0).long()
        return {"src": src, "seg": seg, "tgt_lm": tgt}
    pos = torch.cat([torch.tensor([b * S + 1, b * S + 4, b * S + n - 2]) for b, n in enumerate(lengths)])
    return {"src": src, "seg": seg, "mlm_pos": pos, "mlm_labels": src.reshape(-1)[pos],
            "tgt_sp": torch.tensor([0, 1, 1, 0][:B])}


def _loss_and_grads(model, batch, unpad):
    model.encoder.unpad = unpad
    model.zero_grad(set_to_none=True)
    loss = model(batch)["loss"]
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("config,extra,kind", [
    ("bert/base_config.json", {}, "mlm"),
    ("gpt2/base_config.json", {}, "lm"),
    ("albert/base_config.json", {"emb_size": 32}, "mlm"),
    ("nezha/base_config.json", {}, "mlm"),
    ("roformer/base_config.json", {}, "mlm"),
    ("xlnet/base_config.json", {"target": ["mlm"], "mask": "fully_visible"}, "mlm"),
])
def test_unpadded_encoder_gives_the_padded_loss_and_gradients(config, extra, kind):
    torch.manual_seed(0)
    model = build_model(config, vocab_size=300, **{**SMALL, **extra}).train()
    batch = _padded_batch(kind)
    if "sp" not in model.config.target:
        batch.pop("tgt_sp", None)
    ref_loss, ref = _loss_and_grads(model, batch, False)
    calls = []
    layer = model.encoder.transformer if model.config.parameter_sharing else model.encoder.transformer[0]
    h = layer.register_forward_hook(lambda m, i, o: calls.append(tuple(o.shape)))
    loss, got = _loss_and_grads(model, batch, True)
    h.remove()
    n_real = int((batch["seg"] > 0).sum())
    assert calls and calls[0] == (n_real, SMALL["hidden_size"]), calls  # the layers saw only real tokens
    assert torch.allclose(loss, ref_loss, rtol=0, atol=1e-5), (loss, ref_loss)
    assert got.keys() == ref.keys()
    for n in ref:
        assert torch.allclose(got[n], ref[n], rtol=1e-4, atol=1e-5), (n, (got[n] - ref[n]).abs().max())


def test_unpadding_leaves_evaluation_and_full_batches_alone():
    torch.manual_seed(0)
    model = build_model("bert/base_config.json", vocab_size=300, **SMALL)
    batch = _padded_batch("mlm")
    layer = model.encoder.transformer[0]
    shapes = []
    h = layer.register_forward_hook(lambda m, i, o: shapes.append(o.dim()))
    model.eval()
    with torch.no_grad():
        model.encode(batch["src"], batch["seg"])
    model.train()
    full = torch.ones_like(batch["seg"])
    model.encode(batch["src"], full)
    h.remove()
    assert shapes == [3, 3]


@pytest.fixture(scope="module")
def padded_dataset(tmp_path_factory):
    """48 mlm instances of 8 to 31 characters, seq_length 32: every batch holds padding."""
    from conftest import SAMPLE_CORPUS
    from helpers import preprocess

    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:200000]
    lines = [l for l in text.split("\n") if len(l) > 40][:48]
    lines = [l[:8 + (7 * i) % 24] for i, l in enumerate(lines)]
    path, _ = preprocess(str(tmp_path_factory.mktemp("ds")), "\n".join(lines) + "\n", data_processor="mlm",
                         seq_length=32, corpus_format="line", dynamic_masking=True)
    return path


def test_exact_resume_after_sigkill_with_unpadding(padded_dataset, tmp_path_factory):
    """The resume contract with the unpadded encoder (on by default in training): the dataset's batches hold
    padding, a run killed at step 5 and resumed matches an uninterrupted one exactly."""
    import signal

    from test_resume import assert_same_run, cmd, run, run_until_step
    from uer_like.data.dataset import Dataset
    from uer_like.training.batches import Collator

    dataset = padded_dataset
    ds = Dataset(dataset)
    b = Collator(ds, ["mlm"], 5)(list(range(4)), 0)
    assert (b["seg"] == 0).any() and b["n_tokens"] < b["seg"].numel()  # padding to skip
    ref, out = str(tmp_path_factory.mktemp("ref")), str(tmp_path_factory.mktemp("killed"))
    auto = ["--precision", "auto"]  # the default: bf16 on a CPU with AVX512_BF16 or AMX, else fp32
    run(cmd(dataset, ref, steps=8, extra=auto))
    code, _ = run_until_step(cmd(dataset, out, steps=8, extra=auto), 5, out=out)
    assert code == -signal.SIGKILL
    run(cmd(dataset, out, steps=8, extra=auto))
    assert_same_run(ref, out)


def test_fused_head_under_bf16_autocast_multiplies_in_bf16_and_accumulates_in_float32():
    """The reference: the same head written plainly with h and W rounded to bf16 (what the matmuls see),
    logits, softmax and loss in float32 (F.cross_entropy). The fused head under autocast matches it closely,
    and is farther from the float32 head than from it."""
    import torch.nn.functional as F

    from uer_like.layers.cross_entropy import CHUNK_ROWS, linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    n, hid, vocab = CHUNK_ROWS + 300, 48, 500  # two chunks
    h = torch.randn(n, hid, generator=g)
    w = (torch.randn(vocab, hid, generator=g) * 0.3).requires_grad_()
    b = (torch.randn(vocab, generator=g) * 0.1).requires_grad_()
    y = torch.randint(0, vocab, (n,), generator=g)
    y[::7] = -100

    def plain(hh, ww):
        hh = hh.detach().requires_grad_()
        loss = F.cross_entropy(hh @ ww.t() + b, y)
        gh, gw, gb = torch.autograd.grad(loss, (hh, w, b))
        return loss, gh, gw, gb

    ref = plain(h.bfloat16().float(), w.bfloat16().float())
    full = plain(h, w)
    hb = h.bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = linear_cross_entropy(hb, w, b, y)
    assert loss.dtype == torch.float32
    gh, gw, gb = torch.autograd.grad(loss, (hb, w, b))
    assert gh.dtype == torch.bfloat16 and gw.dtype == torch.float32 and gb.dtype == torch.float32
    assert abs(loss.item() - ref[0].item()) < 1e-4 * abs(ref[0].item())
    assert abs(loss.item() - full[0].item()) > abs(loss.item() - ref[0].item())
    for got, want in ((gh.float(), ref[1]), (gw, ref[2]), (gb, ref[3])):
        assert (got - want).abs().max() <= 1e-2 * want.abs().max(), (got - want).abs().max()


def test_precision_auto_follows_the_cpu_flags():
    from uer_like.training.precision import resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, {"avx512f", "amx_bf16", "amx_tile"})[0] == "bf16"
    p, why = resolve_precision("auto", cpu, {"avx512f", "avx512_bf16", "avx512_vnni"})
    assert p == "bf16" and "avx512_bf16" in why
    p, why = resolve_precision("auto", cpu, {"avx2", "avx512f"})
    assert p == "fp32" and "no bf16" in why
    assert resolve_precision("fp32", cpu, {"amx_bf16"})[0] == "fp32"


def test_bf16_asked_for_on_a_cpu_without_bf16_units_is_warned_about():
    from uer_like.training.precision import precision_warning

    cpu = torch.device("cpu")
    assert "35x" in precision_warning("bf16", cpu, {"avx2", "fma", "avx512f"})
    assert precision_warning("bf16", cpu, {"avx2", "avx512_bf16"}) is None
    assert precision_warning("bf16", cpu, {"amx_bf16"}) is None
    assert precision_warning("fp32", cpu, {"avx2"}) is None
    assert precision_warning("bf16", cpu, set()) is None  # flags not readable: nothing to go on


def test_gpu_benchmark_reduced_cpu_mode_names_every_figure(capsys):
    """benchmarks/gpu.py --cpu end to end (tiny sizes, one step each, DDP on two gloo processes): every model,
    variant and figure it reports on a GPU appears in its output."""
    import importlib
    import sys

    from conftest import ROOT

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))  # also for the spawned DDP processes (they import gpu)
    try:
        gpu = importlib.import_module("gpu")
        rows, ddp = gpu.main(["--cpu", "--no_compile", "--steps", "1", "--warmup", "1", "--ddp_steps", "1"])
    finally:
        sys.path.remove(os.path.join(ROOT, "benchmarks"))
    out = capsys.readouterr().out
    for name, *_ in gpu.RUNS:
        for variant, _, compiled in gpu.VARIANTS:
            assert f"| {name} | {variant} |" in out
            row = next(r for r in rows if r["run"] == name and r["variant"] == variant)
            if compiled:
                assert row["skipped"] == "--no_compile"
            else:
                assert row["tokens/s"] > 0 and "MFU" in row
    for figure in gpu.FIGURES:
        assert figure in out
    assert "MFU n/a" in out and "peak unknown" in out  # a CPU has no peak in the table
    assert ddp["world"] == 2 and ddp["identical"]
    assert "DDP: 2 processes" in out and "weights identical on every rank: yes" in out
