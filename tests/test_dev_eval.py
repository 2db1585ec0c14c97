"""Held-out evaluation during pretraining (training/evaluation.py): the figures logged at each --eval_steps
match a plain cross-entropy over the dev set, the same weights always get the same figures, evaluation
leaves training bit-identical, best.pt survives rotation and resume, and a --dev_fraction split is never
trained on, resume included."""
import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uer_like.errors import ConfigError, DataError
from uer_like.training import evaluation as E
from uer_like.training.checkpoint import load_checkpoint
from uer_like.training.trainer import TrainArgs, Trainer
from conftest import SAMPLE_CORPUS
from helpers import preprocess

SMALL = {"layers_num": 1, "hidden_size": 32, "emb_size": 32, "feedforward_size": 64}
LINE = re.compile(r"dev step (\d+): mlm loss ([\d.]+), ppl ([\d.]+), acc ([\d.]+) \| (\d+) instances")


def _lines(start, n):
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:200000]
    return "\n".join([l for l in text.split("\n") if len(l) > 20][start:start + n]) + "\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A training dataset (48 documents) and a dev dataset made the same way from 16 other documents."""
    d = tmp_path_factory.mktemp("dev")
    opts = dict(data_processor="mlm", seq_length=32, corpus_format="line", dynamic_masking=True)
    train, _ = preprocess(str(d), _lines(0, 48), **opts)
    dev, _ = preprocess(str(d), _lines(48, 16), name="dev.bin", **opts)
    other, _ = preprocess(str(d), _lines(48, 16), name="dev24.bin", **dict(opts, seq_length=24))
    return {"train": train, "dev": dev, "dev24": other}


def args(data, tmp_path, **kw):
    base = dict(dataset_path=data["train"], config="roberta/tiny_config.json", total_steps=5, batch_size=4,
                save_checkpoint_steps=2, report_steps=5, learning_rate=1e-3, seed=3,
                output_model_path=str(tmp_path / "m.bin"), config_overrides=dict(SMALL))
    base.update(kw)
    return TrainArgs(**base)


def records(tmp_path):
    return [json.loads(l) for l in open(tmp_path / "m_checkpoints" / E.DEV_LOG)]


def test_dev_figures_are_logged_at_each_eval_steps_and_match_a_plain_cross_entropy(data, tmp_path, caplog,
                                                                                 one_torch_thread):
    """Evaluations at steps 2, 4 and the end (5): one log line each with loss, ppl = exp(loss) and masked-token
    accuracy, the same figures in dev_eval.jsonl and tensorboard; the last ones equal F.cross_entropy over
    every masked token of the dev set under the final weights (masks drawn by the Python reference)."""
    import uer_like.training.metrics as T

    scalars = []
    caplog.set_level("INFO", logger="uer_like")
    a = args(data, tmp_path, dev_dataset_path=data["dev"], eval_steps=2, eval_batches=0, precision="fp32",
             tensorboard_dir=str(tmp_path / "tb"))
    real = T.LazyWriter.add_scalar
    T.LazyWriter.add_scalar = lambda self, tag, v, step: scalars.append((tag, v, step))
    try:
        Trainer(a).train()
    finally:
        T.LazyWriter.add_scalar = real
    found = [m.groups() for m in map(LINE.search, caplog.messages) if m]
    assert [int(g[0]) for g in found] == [2, 4, 5]
    recs = records(tmp_path)
    assert [r["step"] for r in recs] == [2, 4, 5]
    for g, r in zip(found, recs):
        t = r["targets"]["mlm"]
        assert float(g[1]) == pytest.approx(t["loss"], abs=1e-4) and float(g[3]) == pytest.approx(t["acc"], abs=1e-4)
        assert t["ppl"] == pytest.approx(math.exp(t["loss"]), rel=1e-12)
        assert int(g[4]) == r["instances"]
    assert {(tag, step) for tag, _, step in scalars} >= {("dev/loss/mlm", 5), ("dev/ppl/mlm", 5), ("dev/acc/mlm", 4)}

    # an independent computation of the last figures: the final weights, the Python masking reference, torch's CE
    import uer_like
    from uer_like.data.dataset import Dataset
    from uer_like.training.batches import Collator

    model = uer_like.load_model(str(tmp_path / "m.bin"), config=str(tmp_path / "m_config.json")).eval()
    ds = Dataset(data["dev"])
    col = Collator(ds, ["mlm"], E.DEV_MASK_SEED)
    losses, hits = [], []
    with torch.no_grad():
        for i in range(len(ds)):
            ids, pos, labels = col.mask(i, 0, ds.instance_ids(i))
            n = len(ids)
            seg = torch.ones(1, n, dtype=torch.long)
            seg[0, int(ds.seg_a_len[i]):] = 2
            logits = model.target_logits(model.encode(torch.tensor(ids)[None], seg))["mlm"][0, pos]
            losses.append(F.cross_entropy(logits, torch.tensor(labels), reduction="none"))
            hits.append(logits.argmax(-1) == torch.tensor(labels))
    losses, hits = torch.cat(losses), torch.cat(hits)
    last = recs[-1]
    assert last["instances"] == len(ds) and last["targets"]["mlm"]["count"] == len(losses)
    assert last["targets"]["mlm"]["loss"] == pytest.approx(losses.double().mean().item(), abs=1e-5)
    assert last["targets"]["mlm"]["acc"] == pytest.approx(hits.double().mean().item(), abs=1e-12)


def test_same_weights_give_identical_figures_and_evaluation_leaves_no_trace(data, tmp_path, one_torch_thread):
    """The checkpoint of step 4 evaluated twice in a new trainer: identical figures, equal to those the run
    logged at step 4; torch's RNG state and the model's mode as they were."""
    Trainer(args(data, tmp_path, total_steps=4, dev_dataset_path=data["dev"], eval_steps=4, eval_batches=3)).train()
    logged = records(tmp_path)[-1]
    t = Trainer(args(data, tmp_path, total_steps=4, dev_dataset_path=data["dev"], eval_batches=3))
    assert t.step == 4
    t.model.train()
    state = torch.get_rng_state()
    first, second = t.evaluate(), t.evaluate()
    assert torch.equal(state, torch.get_rng_state()) and t.model.training
    assert first == second
    assert first["instances"] == 12 and first["targets"] == logged["targets"] and first["loss"] == logged["loss"]
    t.close()


def _trace(path):
    return [json.loads(l) for l in open(path)]


def test_training_with_evaluation_is_bit_identical_to_training_without(data, tmp_path, one_torch_thread):
    """Dropout on (the config's 0.1), an evaluation after every step: the same losses, samples and weights."""
    runs = {}
    for name, kw in (("plain", {}), ("eval", dict(dev_dataset_path=data["dev"], eval_steps=1))):
        out = tmp_path / name
        Trainer(args(data, out, total_steps=4, trace_path=str(out / "trace.jsonl"), **kw)).train()
        runs[name] = (_trace(out / "trace.jsonl"), torch.load(out / "m.bin", weights_only=True))
    (ta, wa), (tb, wb) = runs["plain"], runs["eval"]
    assert [(r["step"], r["ids"], r["loss"], r["lr"]) for r in ta] == [(r["step"], r["ids"], r["loss"], r["lr"])
                                                                       for r in tb]
    assert sorted(wa) == sorted(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert len(records(tmp_path / "eval")) == 4


def test_best_checkpoint_survives_rotation_and_a_worse_resumed_run(data, tmp_path, one_torch_thread):
    """keep_checkpoints 1 and a checkpoint every step: best.pt stays when its step's checkpoint is rotated away;
    a resumed run whose weights are made worse evaluates higher and leaves best.pt as it was."""
    kw = dict(dev_dataset_path=data["dev"], eval_steps=1, save_checkpoint_steps=1, keep_checkpoints=1)
    Trainer(args(data, tmp_path, total_steps=3, **kw)).train()
    ck = tmp_path / "m_checkpoints"
    first = records(tmp_path)
    best_step = min(first, key=lambda r: r["loss"])["step"]
    t = Trainer(args(data, tmp_path, total_steps=5, **kw))
    with torch.no_grad():
        for p in t.model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    t.train()
    recs = records(tmp_path)
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5] and all(r["loss"] > first[best_step - 1]["loss"]
                                                                for r in recs[3:])
    assert sorted(p.name for p in ck.glob("*.pt")) == ["best.pt", "step_000000005.pt"]
    best = load_checkpoint(str(ck / "best.pt"))
    assert best["step"] == best_step and best["dev_figures"]["loss"] == first[best_step - 1]["loss"]
    assert all(r["best_step"] == best_step for r in recs[best_step - 1:])
    assert load_checkpoint(str(ck / "step_000000005.pt"))["dev_best"]["step"] == best_step
    # best.pt holds the weights that scored that loss
    t2 = Trainer(args(data, tmp_path / "again", total_steps=best_step, dev_dataset_path=data["dev"],
                      resume=str(ck / "best.pt")))
    assert t2.evaluate()["loss"] == first[best_step - 1]["loss"]
    assert t2.train() == best_step  # nothing left to train: the final weights are best.pt's (how to export them)
    import uer_like

    assert uer_like.load_model(str(tmp_path / "again" / "m.bin")).config.layers_num == 1


def test_non_finite_dev_loss_or_step_never_makes_a_best_checkpoint(data, tmp_path, monkeypatch, caplog,
                                                                   one_torch_thread):
    """Dev losses 5, 3, nan, inf, 4, 1 (injected) with step 6's gradient norm NaN (a skipped step): best.pt is
    written at steps 1 and 2 only; neither a non-finite dev loss nor a lower one during non-finite steps is best."""
    from uer_like.training.clipping import ClipPlan

    losses = iter([5.0, 3.0, float("nan"), float("inf"), 4.0, 1.0])
    real, real_norm, calls = E.evaluate, ClipPlan.norm, []

    def fake(*a, **k):
        return dict(real(*a, **k), loss=next(losses))

    def norm(self, max_norm):  # the loop's gradient norm (clipping folded into the fused AdamW step or not)
        n = real_norm(self, max_norm)
        calls.append(1)
        return torch.full_like(n, float("nan")) if len(calls) == 6 else n

    monkeypatch.setattr(E, "evaluate", fake)
    monkeypatch.setattr(ClipPlan, "norm", norm)
    caplog.set_level("INFO", logger="uer_like")
    Trainer(args(data, tmp_path, total_steps=6, dev_dataset_path=data["dev"], eval_steps=1, eval_batches=1)).train()
    assert [r["best_step"] for r in records(tmp_path)] == [1, 2, 2, 2, 2, 2]
    assert load_checkpoint(str(tmp_path / "m_checkpoints" / "best.pt"))["step"] == 2
    assert "step 6: the lowest dev loss so far, but no best checkpoint while steps are non-finite" in caplog.text


def test_resume_with_dev_fraction_never_trains_on_a_held_out_instance(data, tmp_path, caplog, monkeypatch,
                                                                     one_torch_thread):
    """A quarter held out; the run stops at step 5 and is resumed (without the flag: the checkpoint's split is
    kept) through an epoch boundary (90 training instances, 11 steps of 8 an epoch): every instance trained on is
    one of the others, and an epoch's worth of them are."""
    import uer_like.training.loop as T

    trace = tmp_path / "trace.jsonl"
    kw = dict(dev_fraction=0.25, eval_steps=3, total_steps=12, trace_path=str(trace), save_checkpoint_steps=5,
              batch_size=8)
    real = T.StepLoop.stop_agreed
    monkeypatch.setattr(T.StepLoop, "stop_agreed", lambda self: self.step == 5 or real(self))
    assert Trainer(args(data, tmp_path, **kw)).train() == 5
    monkeypatch.setattr(T.StepLoop, "stop_agreed", real)
    caplog.set_level("INFO", logger="uer_like")
    t = Trainer(args(data, tmp_path, **dict(kw, dev_fraction=None)))
    assert t.step == 5 and "keeping its held-out split (--dev_fraction 0.25" in caplog.text
    t.train()
    n = len(t.dataset)
    dev, train = E.held_out(n, 0.25, 3)
    assert len(dev) == round(n / 4) and set(dev) | set(train) == set(range(n))
    assert load_checkpoint(str(tmp_path / "m_checkpoints" / "step_000000012.pt"))["dev_split"] == \
        E.split_record(0.25, 3, dev)
    steps = _trace(trace)
    assert sorted({r["step"] for r in steps}) == list(range(1, 13))
    trained = {i for r in steps for ids in r["ids"] for i in ids}
    assert len(train) == 90 and trained <= set(train.tolist()) and not trained & set(dev.tolist())
    assert len(trained) >= 11 * 8
    recs = records(tmp_path)
    assert [r["step"] for r in recs] == [3, 6, 9, 12] and all(r["instances"] == len(dev) for r in recs)


def test_another_dev_fraction_on_resume_is_refused_unless_allowed(data, tmp_path, caplog, one_torch_thread):
    Trainer(args(data, tmp_path, total_steps=2, dev_fraction=0.25)).train()
    for other in (0.5, 0.0):
        with pytest.raises(ConfigError, match=r"trained with --dev_fraction 0.25, now %g: .*--allow_dev_split_change"
                           % other) as e:
            Trainer(args(data, tmp_path, total_steps=4, dev_fraction=other))
        assert "\n" not in str(e.value)
    t = Trainer(args(data, tmp_path, total_steps=4, dev_fraction=0.5, allow_dev_split_change=True))
    assert t.dev_split["fraction"] == 0.5 and "continuing with 0.5" in caplog.text
    t.close()
    Trainer(args(data, tmp_path / "plain", total_steps=2)).train()
    with pytest.raises(ConfigError, match=r"trained with --dev_fraction 0, now 0.25"):
        Trainer(args(data, tmp_path / "plain", total_steps=4, dev_fraction=0.25))


@pytest.mark.parametrize("kw, message", [
    (dict(dev_dataset_path="dev24"), r"does not fit the training dataset .*seq_length 24 \(training: 32\)"),
    (dict(dev_dataset_path="dev", dev_fraction=0.1), r"give one dev set"),
    (dict(eval_steps=10), r"--eval_steps 10 needs a dev set"),
    (dict(dev_fraction=0.95), r"--dev_fraction 0.95 holds out .* fewer than one global batch"),
    (dict(dev_dataset_path="missing"), r"--dev_dataset_path: dataset not found"),
])
def test_a_dev_set_that_does_not_fit_is_refused_in_one_line(data, tmp_path, kw, message):
    if "dev_dataset_path" in kw:
        kw["dev_dataset_path"] = data.get(kw["dev_dataset_path"], str(tmp_path / "missing.bin"))
    with pytest.raises((ConfigError, DataError), match=message) as e:
        Trainer(args(data, tmp_path, batch_size=16, **kw))
    assert "\n" not in str(e.value)


def test_dev_shards_cover_each_batch_once():
    dev = E.DevSet(None, np.arange(23), 4, 0, "x", "x")
    for world in (1, 2, 4):
        got = [tuple(ids) for r in range(world) for ids, counted in dev.shard(r, world) if counted]
        assert sorted(got) == sorted(tuple(b) for b in dev.batches)
        padded = [dev.shard(r, world, same_count=True) for r in range(world)]
        assert len({len(s) for s in padded}) == 1
        assert sorted(tuple(ids) for s in padded for ids, c in s if c) == sorted(got)
    capped = E.DevSet(None, np.arange(23), 4, 2, "x", "x").ids  # --eval_batches 2: 8 of a fixed shuffled order
    assert list(capped) == list(dev.ids[:8]) and sorted(dev.ids) == list(range(23)) and list(capped) != list(range(8))


@pytest.mark.parametrize("config, processor, expect", [
    ("bert/tiny_config.json", "bert", r"dev step 2: mlm loss [\d.]+, ppl [\d.]+, acc [\d.]+ \| sp loss [\d.]+, "
                                      r"acc [\d.]+ \| loss [\d.]+ \| \d+ instances"),
    ("gpt2/tiny_config.json", "lm", r"dev step 2: lm loss [\d.]+, ppl [\d.]+, acc [\d.]+ \| \d+ instances"),
    ("electra/tiny_config.json", "mlm", r"dev step 2: electra_gen loss [\d.]+, ppl [\d.]+, acc [\d.]+ \| "
                                        r"electra_disc loss [\d.]+, acc [\d.]+ \(baseline [\d.]+\) \| loss [\d.]+"),
])
def test_each_target_reports_its_figures(tmp_path, caplog, config, processor, expect, one_torch_thread):
    ds, _ = preprocess(str(tmp_path), _lines(0, 40), data_processor=processor, seq_length=32,
                       dynamic_masking=True)
    caplog.set_level("INFO", logger="uer_like")
    over = dict(SMALL, heads_num=2, generator_hidden_size=16, generator_heads_num=1, generator_feedforward_size=32,
                generator_layers_num=1) if "electra" in config else dict(SMALL)
    Trainer(TrainArgs(dataset_path=ds, config=config, total_steps=2, batch_size=4, dev_fraction=0.2,
                      eval_batches=2, output_model_path=str(tmp_path / "m.bin"), config_overrides=over)).train()
    line = next(m for m in caplog.messages if m.startswith("dev step"))
    assert re.search(expect, line), line
    rec = records(tmp_path)[-1]
    if "electra" in config:
        disc = rec["targets"]["electra_disc"]
        assert 0 <= disc["baseline"] <= 1 and "ppl" not in disc and "ppl" in rec["targets"]["electra_gen"]
        assert rec["loss"] > 50.0 * disc["loss"] * 0.5  # the objective: generator + electra_lambda x discriminator


@pytest.mark.parametrize("layout", ["ddp", "fsdp"])
def test_two_ranks_evaluate_a_shard_each_and_match_one_process(data, tmp_path, layout, one_torch_thread):
    """2 ranks (gloo): each evaluates its batches of the dev set (FSDP: as many forwards on each), the sums are
    all-reduced and rank 0 alone logs; the figures are those of 1 process with the same global batch."""
    import os
    import sys

    from conftest import ROOT
    from test_distributed import launch
    from uer_like.data.dataset import Dataset

    common = dict(total_steps=2, batch_size=4, save_checkpoint_steps=2, report_steps=1, learning_rate=1e-3,
                  seed=3, precision="fp32", deterministic=True, eval_batches=0)
    two = tmp_path / "two"
    cfg = json.load(open(os.path.join(ROOT, "configs", "roberta", "tiny_config.json")))
    cfg.update(SMALL, dropout=0.0)
    (tmp_path / "small.json").write_text(json.dumps(cfg))
    argv = [sys.executable, os.path.join(ROOT, "pretrain.py"), "--config", str(tmp_path / "small.json"),
            "--dataset_path", data["train"], "--dev_dataset_path", data["dev"], "--eval_steps", "1",
            "--output_model_path", str(two / "m.bin"), "--device", "cpu", *[x for k, v in common.items() for x in (f"--{k}", str(v)) if k != "deterministic"], "--deterministic"]
    if layout == "fsdp":
        argv.append("--fsdp")
    results = launch(argv, world=2)
    for code, _, err, _ in results:
        assert code == 0, err[-3000:]
    assert [l for l in results[0][2].splitlines() if "dev step" in l] and \
        not [l for l in results[1][2].splitlines() if "dev step" in l]
    one = tmp_path / "one"
    Trainer(args(data, one, config=str(tmp_path / "small.json"), config_overrides={}, dev_dataset_path=data["dev"],
                 eval_steps=1, accumulation_steps=2, **common)).train()
    a, b = records(one), records(two)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2]
    for ra, rb in zip(a, b):
        assert ra["instances"] == rb["instances"] == len(Dataset(data["dev"]))
        assert ra["targets"]["mlm"]["count"] == rb["targets"]["mlm"]["count"]
        for k in ("loss", "acc", "ppl"):
            assert ra["targets"]["mlm"][k] == pytest.approx(rb["targets"]["mlm"][k], rel=1e-5, abs=1e-6), k


def test_pretrain_command_line_keeps_or_refuses_a_dev_fraction(data, tmp_path, capsys, one_torch_thread):
    """pretrain.py: --dev_fraction and --eval_batches reach the trainer; resuming with another fraction exits 2
    with one line naming --allow_dev_split_change, which then continues."""
    import os

    from conftest import ROOT
    from helpers import run_cli

    cfg = json.load(open(os.path.join(ROOT, "configs", "roberta", "tiny_config.json")))
    cfg.update(SMALL)
    (tmp_path / "small.json").write_text(json.dumps(cfg))
    base = ["--config", tmp_path / "small.json", "--dataset_path", data["train"], "--output_model_path",
            tmp_path / "m.bin", "--batch_size", 4, "--report_steps", 1, "--eval_batches", 1]
    code, err = run_cli("pretrain.py", base + ["--total_steps", 2, "--dev_fraction", 0.25], capsys)
    assert code in (0, None), err[-2000:]
    assert [r["instances"] for r in records(tmp_path)] == [4]  # at the end, one batch of 4
    code, err = run_cli("pretrain.py", base + ["--total_steps", 4, "--dev_fraction", 0.5], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: ") and "--allow_dev_split_change" in last, err[-2000:]
    code, err = run_cli("pretrain.py", base + ["--total_steps", 4, "--dev_fraction", 0.5,
                                               "--allow_dev_split_change"], capsys)
    assert code in (0, None), err[-2000:]
    assert load_checkpoint(str(tmp_path / "m_checkpoints" / "step_000000004.pt"))["dev_split"]["fraction"] == 0.5
