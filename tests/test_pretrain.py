"""pretrain: the loss falls on real text; errors at start name the mismatch; checkpoints are safe."""
import json
import os

import pytest
import torch

from uer_like.errors import CheckpointError, ConfigError, DataError
from uer_like.training.trainer import TrainArgs, Trainer
from conftest import SAMPLE_CORPUS, VOCAB
from helpers import preprocess

TEXT = open(SAMPLE_CORPUS, encoding="utf-8").read()


def corpus(chars):
    t = TEXT[:chars]
    return t[: t.rfind("\n\n") + 2]


@pytest.fixture(scope="module")
def mlm_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("mlm")
    path, _ = preprocess(str(d), corpus(400000), data_processor="mlm", seq_length=64, corpus_format="line",
                         dynamic_masking=True)
    return path


def read_trace(path):
    steps = {}
    for line in open(path):
        r = json.loads(line)
        steps[r["step"]] = r
    return [steps[k] for k in sorted(steps)]


def test_mlm_loss_falls_by_a_third_on_real_text(tmp_path):
    """A tiny model on 96 real documents for 300 steps (many epochs, fresh dynamic masks each time):
    the MLM loss falls from ~9.9 (uniform over 21,128 ids) by more than a third."""
    lines = [l for l in TEXT.split("\n") if len(l) > 40][:96]
    ds, _ = preprocess(str(tmp_path), "\n".join(lines) + "\n", data_processor="mlm", seq_length=64,
                       corpus_format="line", dynamic_masking=True)
    args = TrainArgs(dataset_path=ds, config="roberta/tiny_config.json", total_steps=300, batch_size=16,
                     learning_rate=2e-3, warmup=0.05, report_steps=50, save_checkpoint_steps=1000,
                     output_model_path=str(tmp_path / "m.bin"), trace_path=str(tmp_path / "trace.jsonl"), seed=1)
    Trainer(args).train()
    losses = [r["loss"] for r in read_trace(tmp_path / "trace.jsonl")]
    first, last = sum(losses[:10]) / 10, sum(losses[-20:]) / 20
    assert last < first * 2 / 3, (first, last)
    assert os.path.exists(tmp_path / "m.bin") and os.path.exists(tmp_path / "m_config.json")


def test_dataset_for_another_processor_is_refused(mlm_dataset, tmp_path, caplog):
    args = TrainArgs(dataset_path=mlm_dataset, config="bert/tiny_config.json", total_steps=2,
                     output_model_path=str(tmp_path / "m.bin"))
    caplog.set_level("INFO", logger="uer_like")
    with pytest.raises(DataError, match=r"target 'sp' needs batch field 'tgt_sp', which a dataset made with "
                                        r"data_processor 'mlm' cannot supply.*--data_processor"):
        Trainer(args)
    assert "training on" not in caplog.text  # refused before anything says it would train


def test_dataset_of_another_processor_that_supplies_the_targets_is_used(tmp_path, caplog):
    """A bert dataset (mlm + sp) for a RoBERTa config (mlm): one complete log line, then training."""
    ds, _ = preprocess(str(tmp_path), corpus(20000), data_processor="bert", seq_length=32, dynamic_masking=True)
    args = TrainArgs(dataset_path=ds, config="roberta/tiny_config.json", total_steps=1, batch_size=2,
                     output_model_path=str(tmp_path / "m.bin"))
    with caplog.at_level("INFO", logger="uer_like"):
        Trainer(args).train()
    assert ("config data_processor 'mlm', dataset made with 'bert', which supplies the config's targets (mlm): "
            "training on the dataset's instances") in caplog.text


def test_dataset_with_another_vocabulary_is_refused(mlm_dataset, tmp_path):
    other = tmp_path / "vocab.txt"
    other.write_text(open(VOCAB, encoding="utf-8").read() + "新词\n", encoding="utf-8")
    args = TrainArgs(dataset_path=mlm_dataset, config="roberta/tiny_config.json", total_steps=2,
                     vocab_path=str(other), output_model_path=str(tmp_path / "m.bin"))
    with pytest.raises(DataError, match="another vocabulary.*re-run preprocess.py with --vocab_path"):
        Trainer(args)


def test_seq_length_above_max_seq_length_is_refused(mlm_dataset, tmp_path):
    args = TrainArgs(dataset_path=mlm_dataset, config="roberta/tiny_config.json", total_steps=2,
                     output_model_path=str(tmp_path / "m.bin"), config_overrides={"max_seq_length": 32})
    with pytest.raises(ConfigError, match="seq_length 64 exceeds the model's max_seq_length 32"):
        Trainer(args)


def test_global_batch_not_divisible_is_refused(mlm_dataset, tmp_path):
    args = TrainArgs(dataset_path=mlm_dataset, config="roberta/tiny_config.json", total_steps=2, batch_size=6,
                     global_batch_size=16, output_model_path=str(tmp_path / "m.bin"))
    with pytest.raises(ConfigError, match="not divisible by --batch_size 6"):
        Trainer(args)


def small_args(ds, tmp_path, **kw):
    base = dict(dataset_path=ds, config="roberta/tiny_config.json", total_steps=6, batch_size=4,
                save_checkpoint_steps=2, report_steps=2, output_model_path=str(tmp_path / "m.bin"),
                config_overrides={"layers_num": 1, "hidden_size": 32, "emb_size": 32, "feedforward_size": 64})
    base.update(kw)
    return TrainArgs(**base)


def test_resume_with_another_config_lists_the_differing_keys(mlm_dataset, tmp_path):
    Trainer(small_args(mlm_dataset, tmp_path)).train()
    args = small_args(mlm_dataset, tmp_path, total_steps=8,
                      config_overrides={"layers_num": 2, "hidden_size": 32, "emb_size": 32, "feedforward_size": 64})
    with pytest.raises(ConfigError, match=r"another model config \(layers_num: checkpoint 1 vs now 2\)"):
        Trainer(args)


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(mlm_dataset, tmp_path, caplog):
    Trainer(small_args(mlm_dataset, tmp_path)).train()
    ckdir = tmp_path / "m_checkpoints"
    latest = ckdir / "step_000000006.pt"
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])
    t = Trainer(small_args(mlm_dataset, tmp_path, total_steps=8))
    assert t.step == 4
    assert "skipping" in caplog.text and "step_000000006.pt" in caplog.text


def test_failed_checkpoint_write_stops_the_run(mlm_dataset, tmp_path, monkeypatch):
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("uer_like.training.checkpoint.torch.save", full)
    with pytest.raises(CheckpointError, match="No space left on device"):
        Trainer(small_args(mlm_dataset, tmp_path)).train()
    assert not [f for f in os.listdir(tmp_path / "m_checkpoints") if ".tmp" in f]


def test_uer_py_launcher_flags_point_to_torchrun():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "pretrain.py"), "--world_size", "2", "--gpu_ranks", "0", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "torchrun --nproc_per_node" in r.stderr


def test_pretraining_continues_from_released_weights(mlm_dataset, tmp_path):
    """--pretrained_model_path takes a UER checkpoint: the encoder starts from its weights."""
    import uer_like

    base = uer_like.build_model("roberta/tiny_config.json", vocab_size=21128)
    uer_like.save_model(base, str(tmp_path / "init.bin"), format="uer")
    args = TrainArgs(dataset_path=mlm_dataset, config="roberta/tiny_config.json", total_steps=1,
                     pretrained_model_path=str(tmp_path / "init.bin"), output_model_path=str(tmp_path / "m.bin"))
    t = Trainer(args)
    assert torch.equal(t.model.encoder.transformer[0].self_attn.qkv.weight,
                       base.encoder.transformer[0].self_attn.qkv.weight)


@pytest.mark.parametrize("over", [dict(optimizer="lamb"), dict(scheduler="cosine"), dict(scheduler="constant"),
                                  dict(precision="bf16"), dict(accumulation_steps=2)])
def test_optimizers_schedules_and_precisions_train(mlm_dataset, tmp_path, over):
    args = small_args(mlm_dataset, tmp_path, total_steps=4, learning_rate=1e-3, trace_path=str(tmp_path / "t.jsonl"),
                      **over)
    Trainer(args).train()
    trace = read_trace(tmp_path / "t.jsonl")
    assert len(trace) == 4 and all(r["loss"] == r["loss"] and r["loss"] < 20 for r in trace)
    assert len(trace[0]["ids"]) == args.accumulation_steps


def test_bf16_on_a_cpu_without_bf16_units_is_logged_as_a_warning(mlm_dataset, tmp_path, monkeypatch, caplog):
    import logging

    import uer_like.training.precision as P

    monkeypatch.setattr(P, "cpu_flags", lambda path="/proc/cpuinfo": {"avx2", "fma"})
    with caplog.at_level(logging.INFO, logger="uer_like"):
        t = Trainer(small_args(mlm_dataset, tmp_path, total_steps=1, precision="bf16"))
    assert t.precision == "bf16"  # asked for: still honoured
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "bf16 matrix instructions" in r.message]
    assert len(warned) == 1
    t.close()  # its lock on the checkpoint directory, which the next trainer takes
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="uer_like"):
        Trainer(small_args(mlm_dataset, tmp_path, total_steps=1, precision="auto"))
    assert not [r for r in caplog.records if r.levelno == logging.WARNING and "bf16" in r.message]


def test_learning_rate_is_a_function_of_the_optimizer_step():
    from uer_like.training.optim import lr_at

    assert lr_at(0, 100, 1.0, 0.1) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 0.1) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, 0.1, "linear") == pytest.approx(0.5)
    assert lr_at(55, 100, 1.0, 0.1, "cosine") == pytest.approx(0.5)
    assert lr_at(99, 100, 1.0, 0.1, "constant") == 1.0


def test_lamb_trust_ratio_scales_the_step():
    from uer_like.training.optim import Lamb

    w = torch.nn.Parameter(torch.full((4,), 2.0))
    opt = Lamb([w], lr=0.1, weight_decay=0.0)
    w.grad = torch.tensor([1.0, -1.0, 1.0, -1.0])
    opt.step()
    # Adam's first update is sign(g) (norm 2); trust ratio ||w|| / ||u|| = 4 / 2 = 2
    assert torch.allclose(w.detach(), torch.tensor([1.8, 2.2, 1.8, 2.2]), atol=1e-5)


def test_main_job_default_dataset_is_the_bundled_corpus(tmp_path):
    """pretrain.py with no --dataset_path preprocesses corpora/ into .cache and trains (the README's main job)."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "pretrain.py"), "--config", "bert/tiny_config.json",
                        "--total_steps", "3", "--report_steps", "1", "--batch_size", "4",
                        "--output_model_path", str(tmp_path / "out" / "bert_tiny.bin")],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "mlm loss" in r.stderr and "sp loss" in r.stderr and "tokens/s" in r.stderr
    report_lines = [l for l in r.stderr.splitlines() if "tokens/s" in l]
    assert len(report_lines) == 3 and all(" INFO step " in l for l in report_lines), report_lines  # each once
    assert (tmp_path / "out" / "bert_tiny.bin").exists()
