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
    run(cmd(dataset, ref, steps=8))
    code, _ = run_until_step(cmd(dataset, out, steps=8), 5, out=out)
    assert code == -signal.SIGKILL
    run(cmd(dataset, out, steps=8))
    assert_same_run(ref, out)
