"""Nothing lost, nothing silently wrong: the non-finite guard, checkpoints that cannot be written or read,
output locations checked at start (pretraining runs in this process, through the real command line where
the exit status matters)."""
import errno
import json
import os
import sys

import pytest
import torch

from uer_like.errors import CheckpointError, TrainingError
from uer_like.training.checkpoint import list_checkpoints, load_checkpoint
from uer_like.training.trainer import TrainArgs, Trainer
from conftest import ROOT, SAMPLE_CORPUS
from helpers import preprocess, run_cli

SMALL = {"layers_num": 1, "hidden_size": 32, "emb_size": 32, "feedforward_size": 64, "heads_num": 2}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("ds")
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:60000]
    lines = [l for l in text.split("\n") if len(l) > 20][:32]
    path, _ = preprocess(str(d), "\n".join(lines) + "\n", data_processor="mlm", seq_length=32,
                         corpus_format="line", dynamic_masking=True)
    return path


def args(ds, out, **kw):
    base = dict(dataset_path=ds, config="roberta/tiny_config.json", total_steps=6, batch_size=4,
                save_checkpoint_steps=2, report_steps=2, learning_rate=1e-3, warmup=0.0,
                output_model_path=str(out / "m.bin"), config_overrides=SMALL, seed=3)
    base.update(kw)
    return TrainArgs(**base)


def cli_argv(ds, out, *extra):
    cfg = out / "small.json"
    if not cfg.exists():
        c = json.load(open(os.path.join(ROOT, "configs", "roberta", "tiny_config.json")))
        c.update(SMALL)
        cfg.write_text(json.dumps(c))
    return ["--config", cfg, "--dataset_path", ds, "--output_model_path", out / "m.bin", "--batch_size", 4,
            "--report_steps", 1, "--warmup", 0, *extra]


# ------------------------------------------------------------------------------------------ non-finite guard
def test_diverging_run_stops_with_the_last_finite_checkpoint_kept(dataset, tmp_path, capsys):
    """--learning_rate 1e6: the loss is NaN from the second step. The run skips those steps, writes no
    checkpoint while they last (so --keep_checkpoints 1 cannot rotate out the finite one), and stops after
    --max_nonfinite_steps with one line and a non-zero exit; no final weights are written."""
    code, err = run_cli("pretrain.py", cli_argv(dataset, tmp_path, "--learning_rate", "1e6", "--total_steps", 20,
                                                "--save_checkpoint_steps", 1, "--keep_checkpoints", 1,
                                                "--max_nonfinite_steps", 3), capsys)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: the loss or gradient norm was NaN/inf for 3 steps in a row"), last
    assert "Traceback" not in err
    ckpts = list_checkpoints(tmp_path / "m_checkpoints")
    assert len(ckpts) == 1 and ckpts[0][1] in last
    ck = load_checkpoint(ckpts[0][1])  # refuses non-finite weights
    assert ck["step"] == ckpts[0][0] < 20
    assert not (tmp_path / "m.bin").exists()


def test_a_non_finite_step_is_skipped_and_training_goes_on(dataset, tmp_path, monkeypatch):
    """One NaN gradient norm (injected at the 3rd step): the optimizer does not step (Adam counts 5 of the 6
    steps), the weights stay finite, the run completes, and the trace marks the skipped step."""
    import uer_like.training.trainer as T

    real = torch.nn.utils.clip_grad_norm_
    calls = []

    def clip(params, max_norm):
        n = real(params, max_norm)
        calls.append(1)
        return torch.full_like(n, float("nan")) if len(calls) == 3 else n

    monkeypatch.setattr(T.torch.nn.utils, "clip_grad_norm_", clip)
    t = Trainer(args(dataset, tmp_path, trace_path=str(tmp_path / "trace.jsonl")))
    assert t.train() == 6
    trace = [json.loads(l) for l in open(tmp_path / "trace.jsonl")]
    assert [r["step"] for r in trace if r.get("skipped")] == [3]
    assert {int(s["step"]) for s in t.optimizer.state_dict()["state"].values()} == {5}
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    assert t.skipped_steps == 1 and load_checkpoint(list_checkpoints(tmp_path / "m_checkpoints")[-1][1])[
        "skipped_steps"] == 1


def test_load_model_refuses_non_finite_weights_unless_asked(tmp_path, caplog):
    import uer_like

    model = uer_like.build_model("roberta/tiny_config.json", vocab_size=100, **SMALL)
    with torch.no_grad():
        model.embedding.word.embedding.weight[3, 0] = float("nan")
        model.embedding.word.embedding.weight[4, :2] = float("inf")
    uer_like.save_model(model, str(tmp_path / "nan.bin"))
    with pytest.raises(uer_like.CheckpointError, match=r"nan\.bin: 2 tensor\(s\) hold NaN/inf values: "
                                                       r"embedding\.word\.embedding\.weight \(3 of 3200 values\), "
                                                       r"target\.mlm\.linear_2\.weight \(3 of 3200 values\)"):
        uer_like.load_model(str(tmp_path / "nan.bin"))
    with caplog.at_level("WARNING", logger="uer_like"):  # to inspect a diverged run's weights
        again = uer_like.load_model(str(tmp_path / "nan.bin"), allow_nonfinite=True)
    assert torch.isnan(again.embedding.word.embedding.weight[3, 0])
    assert "tensor(s) hold NaN/inf values (embedding.word.embedding.weight" in caplog.text and "unusable" in caplog.text


# ------------------------------------------------------------------------------------------ checkpoints
def test_every_checkpoint_corrupt_is_an_error_not_a_fresh_start(dataset, tmp_path):
    Trainer(args(dataset, tmp_path, total_steps=4)).train()
    ckpts = list_checkpoints(tmp_path / "m_checkpoints")
    assert len(ckpts) == 2
    for _, p in ckpts:
        data = open(p, "rb").read()
        open(p, "wb").write(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"none of its 2 checkpoint\(s\) loads .*--resume never"):
        Trainer(args(dataset, tmp_path, total_steps=6))
    assert Trainer(args(dataset, tmp_path, total_steps=6, resume="never")).step == 0


class _FullDisk:
    """A file whose writes fail with ENOSPC after `room` bytes (as a full disk does)."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def write(self, b):
        if self.room < len(b):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.f.write(b)

    def __getattr__(self, k):
        return getattr(self.f, k)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.f.close()


def _fill_disk_after(monkeypatch, room, names):
    import builtins

    import uer_like.outputs as O

    real_open = builtins.open

    def fake_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return _FullDisk(f, room) if "w" in mode and any(n in str(path) for n in names) else f

    monkeypatch.setattr(O, "open", fake_open, raising=False)


def test_disk_full_at_a_checkpoint_keeps_the_previous_one(dataset, tmp_path, monkeypatch):
    """The disk fills while step 4's checkpoint is written (through torch.save's own writer, which wraps the
    OSError in a RuntimeError): one line naming the file and "No space left on device", no partial file,
    step 2's checkpoint intact and used by the next run."""
    Trainer(args(dataset, tmp_path, total_steps=2)).train()
    _fill_disk_after(monkeypatch, 10000, ["step_000000004"])
    with pytest.raises(CheckpointError) as e:
        Trainer(args(dataset, tmp_path, total_steps=6)).train()
    msg = str(e.value)
    assert "\n" not in msg and "step_000000004.pt" in msg and "No space left on device" in msg, msg
    assert sorted(os.listdir(tmp_path / "m_checkpoints")) == ["step_000000002.pt", "tensorboard"] or \
        sorted(os.listdir(tmp_path / "m_checkpoints")) == ["step_000000002.pt"]
    monkeypatch.undo()
    assert Trainer(args(dataset, tmp_path, total_steps=6)).step == 2


def test_disk_full_at_the_final_weights(dataset, tmp_path, monkeypatch, capsys):
    _fill_disk_after(monkeypatch, 1000, ["m.bin"])
    code, err = run_cli("pretrain.py", cli_argv(dataset, tmp_path, "--total_steps", 2, "--save_checkpoint_steps",
                                                2), capsys)
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: could not write weights ") and "m.bin: No space left on device" in last, last
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
    assert [s for s, _ in list_checkpoints(tmp_path / "m_checkpoints")] == [2]


def _read_only(path, monkeypatch):
    """chmod a directory read-only; as root (where chmod does not stop a write) refuse writes under it with
    EACCES instead, as the kernel would for another user."""
    os.chmod(path, 0o555)
    probe = os.path.join(path, ".probe")
    try:
        open(probe, "w").close()
        os.remove(probe)
        blocked = False
    except PermissionError:
        blocked = True
    if not blocked:  # root
        import uer_like.outputs as O

        real = os.open
        prefix = str(path)

        def deny(p, flags, *a, **k):
            if str(p).startswith(prefix) and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), p)
            return real(p, flags, *a, **k)

        monkeypatch.setattr(O.os, "open", deny)


@pytest.mark.parametrize("which", ["checkpoint_dir", "tensorboard_dir", "output_dir"])
def test_read_only_output_location_is_refused_before_training(dataset, tmp_path, monkeypatch, capsys, which):
    ro = tmp_path / "ro"
    ro.mkdir()
    extra = {"checkpoint_dir": ["--checkpoint_dir", ro / "ck"], "tensorboard_dir": ["--tensorboard_dir", ro],
             "output_dir": []}[which]
    argv = cli_argv(dataset, tmp_path, "--total_steps", 2, *extra)
    if which == "output_dir":
        argv[argv.index("--output_model_path") + 1] = ro / "m.bin"
        argv += ["--checkpoint_dir", tmp_path / "ck"]
    _read_only(ro, monkeypatch)
    try:
        code, err = run_cli("pretrain.py", argv, capsys)
    finally:
        os.chmod(ro, 0o755)
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "is not writable: Permission denied" in last and str(ro) in last, last
    assert "step 1" not in err  # refused before any training


# ------------------------------------------------------------------------------------------ dataset body
def _corrupt_id(ds, tmp_path, value=None, flip=None):
    import struct

    from uer_like.data.dataset import Dataset

    d = Dataset(ds)
    s = d.manifest["sections"]["ids"]
    data = bytearray(open(ds, "rb").read())
    item = d.ids.dtype.itemsize
    at = s["offset"] + item * 9
    if value is not None:
        data[at:at + item] = int(value).to_bytes(item, "little")
    else:
        data[at] ^= flip
    p = tmp_path / "corrupt.bin"
    p.write_bytes(bytes(data))
    return str(p), d.manifest["vocab"]["size"]


def test_out_of_vocabulary_id_in_the_body_is_one_line(dataset, tmp_path, capsys):
    """An id past the vocabulary in the data body: not an IndexError in the embedding mid-training but one line
    naming the dataset; --verify_dataset refuses it before the first step."""
    path, v = _corrupt_id(dataset, tmp_path, value=60000)
    code, err = run_cli("pretrain.py", cli_argv(path, tmp_path, "--total_steps", 30, "--save_checkpoint_steps", 100),
                        capsys)
    last = err.strip().splitlines()[-1]
    assert code != 0 and "Traceback" not in err and "IndexError" not in err
    assert path in last and "token id 60000, outside the vocabulary" in last, last
    (tmp_path / "v").mkdir()
    code, err = run_cli("pretrain.py", cli_argv(path, tmp_path / "v", "--total_steps", 30, "--verify_dataset"), capsys)
    last = err.strip().splitlines()[-1]
    assert code != 0 and "Traceback" not in err and path in last and "token id 60000" in last, last
    assert not (tmp_path / "v" / "m_checkpoints").exists() or not os.listdir(tmp_path / "v" / "m_checkpoints")


def test_verify_dataset_finds_a_changed_id(dataset, tmp_path, capsys):
    path, _ = _corrupt_id(dataset, tmp_path, flip=1)
    code, err = run_cli("pretrain.py", cli_argv(path, tmp_path, "--total_steps", 1, "--verify_dataset"), capsys)
    last = err.strip().splitlines()[-1]
    assert code != 0 and "Traceback" not in err
    assert path in last and "section ids does not match its checksum" in last, last
    (tmp_path / "ok").mkdir()
    code, err = run_cli("pretrain.py", cli_argv(dataset, tmp_path / "ok", "--total_steps", 1, "--verify_dataset"),
                        capsys)
    assert code in (0, None), err


# ------------------------------------------------------------------------------------------ preprocess outputs
def _corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text("北京大学在海淀区\n第二行的文字\n" * 5, encoding="utf-8")
    return p


def _pre_argv(corpus, out):
    return ["--corpus_path", corpus, "--dataset_path", out, "--data_processor", "mlm", "--corpus_format", "line",
            "--seq_length", 32, "--dynamic_masking"]


def test_preprocess_refuses_a_directory_or_read_only_place_at_start(tmp_path, monkeypatch, capsys):
    corpus = _corpus(tmp_path)
    code, err = run_cli("preprocess.py", _pre_argv(corpus, tmp_path), capsys)
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"--dataset_path {tmp_path} is a directory" in last, last
    ro = tmp_path / "ro"
    ro.mkdir()
    import uer_like.data.preprocess as P

    def no_work(*a, **k):
        raise AssertionError("processing started")

    monkeypatch.setattr(P, "_init_worker", no_work)
    _read_only(ro, monkeypatch)
    try:
        code, err = run_cli("preprocess.py", _pre_argv(corpus, ro / "ds.bin"), capsys)
    finally:
        os.chmod(ro, 0o755)
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err
    assert str(ro) in last and "is not writable: Permission denied" in last, last


def test_preprocess_removes_the_temporaries_of_killed_runs(tmp_path, capsys):
    import subprocess

    corpus = _corpus(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".ds.bin.tmp-{dead.pid}-0123abcd"
    stale.mkdir()
    (stale / "ids").write_bytes(b"x" * 100)
    alive = tmp_path / f".ds.bin.tmp-{os.getpid()}-0123abcd"  # a live writer's: kept
    alive.mkdir()
    other = tmp_path / f".other.bin.tmp-{dead.pid}-0123abcd"  # another dataset's: not this run's business
    other.mkdir()
    code, err = run_cli("preprocess.py", _pre_argv(corpus, tmp_path / "ds.bin"), capsys)
    assert code in (0, None), err
    assert not stale.exists() and alive.exists() and other.exists()
    assert (tmp_path / "ds.bin").exists()
