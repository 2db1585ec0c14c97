"""ELECTRA pretraining (the `electra` target): a tiny generator + discriminator learns on the bundled corpus
through pretrain.py, resumes exactly after SIGKILL, and its halves export to transformers' ElectraForPreTraining /
ElectraForMaskedLM (same logits) and to UER files."""
import json
import logging
import os
import re
import signal
import sys

import pytest
import torch

from conftest import ROOT, SAMPLE_CORPUS
from helpers import preprocess
from test_resume import assert_same_run, resumed_step, run, run_until_step, torchrun, trace

TINY = {"emb_size": 32, "hidden_size": 64, "feedforward_size": 128, "heads_num": 2, "layers_num": 2,
        "generator_hidden_size": 32, "generator_heads_num": 1, "generator_feedforward_size": 64,
        "generator_layers_num": 1, "max_seq_length": 64, "dropout": 0.1, "embedding": ["word", "pos", "seg"],
        "encoder": "transformer", "layernorm": "torch", "layernorm_eps": 1e-12,
        "factorized_embedding_parameterization": True, "tie_weights": True, "target": ["electra"],
        "data_processor": "mlm"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A dynamic, whole-word-masked mlm dataset of the bundled corpus and the tiny config."""
    d = tmp_path_factory.mktemp("electra")
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:400000]
    lines = [l for l in text.split("\n") if len(l) > 20][:400]
    path, m = preprocess(str(d), "\n".join(lines) + "\n", data_processor="mlm", seq_length=64, corpus_format="line",
                         dynamic_masking=True, whole_word_masking=True)
    assert m["instances"] >= 400
    config = os.path.join(str(d), "electra_tiny.json")
    with open(config, "w") as f:
        json.dump(TINY, f)
    return path, config


def cmd(setup, out, steps, extra=()):
    ds, config = setup
    return [sys.executable, os.path.join(ROOT, "pretrain.py"), "--config", config, "--dataset_path", ds,
            "--output_model_path", os.path.join(out, "model.bin"), "--total_steps", str(steps), "--batch_size", "16",
            "--report_steps", "10", "--learning_rate", "2e-3", "--warmup", "0.1", "--seed", "3", "--precision", "fp32",
            "--deterministic", "--trace_path", os.path.join(out, "trace.jsonl"), *extra]


@pytest.fixture(scope="module")
def trained(setup, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("trained"))
    r = run(cmd(setup, out, 60, ["--save_checkpoint_steps", "1000"]))
    return out, r.stderr


def _eval_batches(setup, model, n=4):
    """The discriminator's accuracy and the all-"original" baseline on n batches (eval mode, fixed seeds)."""
    from uer_like.data.dataset import Dataset
    from uer_like.training.batches import Collator

    ds = Dataset(setup[0])
    collate = Collator(ds, model.config.target, seed=11)
    correct = count = replaced = 0
    model.eval()
    with torch.no_grad():
        for k in range(n):
            out = model(collate(list(range(k * 16, (k + 1) * 16)), 0))["electra_disc"]
            correct += out["correct"].item()
            count += out["count"].item()
            replaced += out["replaced"].item()
    return correct / count, 1 - replaced / count


def test_discriminator_learns_and_generator_loss_falls(setup, trained):
    from uer_like.io import load_model
    from uer_like.model import build_model

    out, stderr = trained
    gen = [float(x) for x in re.findall(r"electra_gen loss ([0-9.]+)", stderr)]
    disc = [float(x) for x in re.findall(r"electra_disc loss [0-9.]+ acc ([0-9.]+)", stderr)]
    assert len(gen) == 6 and len(disc) == 6, stderr[-2000:]
    assert gen[-1] < gen[0] - 0.5, gen  # the generator's MLM loss falls
    # each report names the all-"original" baseline beside the discriminator's accuracy; at the end it is ahead
    logged = [(float(a), float(b)) for a, b in
              re.findall(r"electra_disc loss [0-9.]+ acc ([0-9.]+) \(baseline ([0-9.]+)\)", stderr)]
    assert len(logged) == 6 and all(0.5 < b < 1 for _, b in logged), stderr[-2000:]
    assert logged[-1][0] > logged[-1][1], logged
    model = load_model(os.path.join(out, "model.bin"))
    assert model.config.target == ["electra"]
    acc, baseline = _eval_batches(setup, model)
    torch.manual_seed(0)
    acc0, baseline0 = _eval_batches(setup, build_model(TINY, vocab_size=model.vocab_size))
    # untrained, almost every masked token is replaced (a near-uniform generator); trained, the discriminator
    # beats predicting "original" everywhere, and clearly
    assert 0.5 < baseline < 0.97 and baseline0 < 0.9
    assert acc > baseline + 0.03, (acc, baseline, acc0, baseline0)


def test_sigkill_then_resume_is_identical(setup, tmp_path):
    """ELECTRA's sampling draws from a generator keyed by the step: a run killed at step 5 and resumed from its
    step-4 checkpoint reads, samples and trains exactly as an uninterrupted one."""
    ref, out = str(tmp_path / "ref"), str(tmp_path / "killed")
    extra = ["--save_checkpoint_steps", "2"]
    run(cmd(setup, ref, 8, extra))
    code, _ = run_until_step(cmd(setup, out, 8, extra), 5, out=out)
    assert code == -signal.SIGKILL
    r = run(cmd(setup, out, 8, extra))
    assert resumed_step(r.stderr) is not None
    assert len(trace(ref)) == 8
    assert_same_run(ref, out)


def test_two_processes_match_one(setup, tmp_path):
    """DDP (torchrun, 2 ranks x batch 8, gloo) samples and trains as one process with batch 8 x accumulation 2:
    micro-batch m of a step has the same instances, hence the same sampling seed, either way."""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")

    def c(out, *more):
        args = cmd(setup, out, 6, ["--dropout", "0", "--save_checkpoint_steps", "1000", *more])
        args[args.index("--batch_size") + 1] = "8"
        return args

    run(c(one, "--accumulation_steps", "2"))
    run(torchrun(2) + c(two)[1:])
    assert_same_run(one, two, exact=False)


def _inputs():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 21128, (2, 24), generator=g)
    ids[:, 0] = 101
    mask = torch.ones_like(ids)
    mask[1, 17:] = 0
    types = torch.zeros_like(ids)
    types[:, 12:] = 1
    return ids, mask, types, (types + 1) * mask


def test_export_to_transformers_and_uer(trained, tmp_path):
    transformers = pytest.importorskip("transformers")
    from uer_like.io import load_model, save_model
    from uer_like.targets.electra import electra_parts

    model = load_model(os.path.join(trained[0], "model.bin")).eval()
    hf_dir = str(tmp_path / "hf")
    save_model(model, hf_dir, format="hf")
    disc, gen = electra_parts(model)
    ids, mask, types, seg = _inputs()
    real = mask.bool()
    hd = transformers.ElectraForPreTraining.from_pretrained(os.path.join(hf_dir, "discriminator")).eval()
    hg = transformers.ElectraForMaskedLM.from_pretrained(os.path.join(hf_dir, "generator")).eval()
    with torch.no_grad():
        ours_d = model.target_logits(model.encode(ids, seg), seg)["electra"]
        assert torch.equal(ours_d, disc.eval().target_logits(disc.encode(ids, seg), seg)["electra_disc"])
        theirs_d = hd(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        assert torch.allclose(ours_d[real], theirs_d[real], atol=1e-5)
        ours_g = gen.eval().target_logits(gen.encode(ids, seg), seg)["electra_gen"]
        theirs_g = hg(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        assert torch.allclose(ours_g[real], theirs_g[real], atol=1e-5)
    # the generator's encoder is the trained one, with the shared embedding
    assert torch.equal(gen.embedding.word.embedding.weight, model.embedding.word.embedding.weight)
    assert torch.equal(gen.target.electra_gen.linear_2.weight, gen.embedding.word.embedding.weight)
    # UER files of either half, through scripts/convert.py, load back to the same logits
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import convert

    for part, half, name in (("discriminator", disc, "electra_disc"), ("generator", gen, "electra_gen")):
        path = str(tmp_path / f"{part}.bin")
        assert convert.main(["--input", os.path.join(trained[0], "model.bin"), "--electra_part", part,
                             "--output", path, "--to", "uer"]) == 0
        back = load_model(path).eval()
        assert back.config.target == [name]
        with torch.no_grad():
            assert torch.equal(back.target_logits(back.encode(ids, seg), seg)[name],
                               half.target_logits(half.encode(ids, seg), seg)[name])


def test_configs_and_checks(caplog):
    from uer_like.config import load_config
    from uer_like.errors import ConfigError
    from uer_like.model import build_model, count_parameters
    from uer_like.targets.electra import electra_parts

    # HFL's Chinese ELECTRA-small: 12M discriminator parameters, a 64-wide one-head generator
    small = build_model("electra/small", vocab_size=21128)
    disc, gen = electra_parts(small)
    assert (disc.config.hidden_size, disc.config.heads_num, disc.config.emb_size) == (256, 4, 128)
    assert (gen.config.hidden_size, gen.config.heads_num, gen.config.feedforward_size) == (64, 1, 256)
    assert 12.0e6 < count_parameters(disc) < 12.6e6
    base = load_config("electra/base")
    assert (base.hidden_size, base.generator_hidden_size, base.generator_heads_num) == (768, 256, 4)
    # a generator larger than the discriminator: one warning line
    with caplog.at_level(logging.WARNING, logger="uer_like"):
        build_model(TINY, vocab_size=100)
        assert not [r for r in caplog.records if "larger than the discriminator" in r.getMessage()]
        build_model(dict(TINY, generator_hidden_size=128, generator_heads_num=2), vocab_size=100)
    warned = [r.getMessage() for r in caplog.records if "larger than the discriminator" in r.getMessage()]
    assert len(warned) == 1 and "\n" not in warned[0]
    for bad, words in (({"target": ["electra", "mlm"]}, "remove ['mlm']"),
                       ({"generator_hidden_size": 30, "generator_heads_num": 4}, "not divisible"),
                       ({"electra_lambda": 0}, "electra_lambda"),
                       ({"generator_layers_num": 0}, "generator_layers_num")):
        with pytest.raises(ConfigError, match=re.escape(words)):
            build_model(vocab_size=100, config=dict(TINY, **bad))
