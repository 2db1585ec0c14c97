"""Nothing lost, nothing silently wrong: the non-finite guard, checkpoints that cannot be written or read,
output locations checked at start (pretraining runs in this process, through the real command line where
the exit status matters)."""
import errno
import json
import os
import sys

import pytest
import torch

from uer_like.errors import CheckpointError, DataError, TrainingError
from uer_like.training.checkpoint import list_checkpoints, load_checkpoint
from uer_like.training.trainer import TrainArgs, Trainer
from conftest import ROOT, SAMPLE_CORPUS
from helpers import preprocess, read_only as _read_only, run_cli

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
def test_diverging_run_stops_with_the_last_finite_checkpoint_kept(dataset, tmp_path, capsys, monkeypatch):
    """A run whose loss turns NaN after its second step (a diverged run; injected, since the flags refuse the
    learning rates that diverge in a few steps). The run skips those steps, writes no checkpoint while they last
    (so --keep_checkpoints 1 cannot rotate out the finite one), and stops after --max_nonfinite_steps with one
    line and a non-zero exit; no final weights are written."""
    from uer_like.model import Model

    real, calls = Model.forward, []

    def diverging(self, batch):
        out = real(self, batch)
        calls.append(1)
        if len(calls) > 2:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(Model, "forward", diverging)
    code, err = run_cli("pretrain.py", cli_argv(dataset, tmp_path, "--total_steps", 20,
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
    from uer_like.training.clipping import ClipPlan

    real = ClipPlan.norm  # the loop's gradient norm (clipping folded into the fused AdamW step or not)
    calls = []

    def norm(self, max_norm):
        n = real(self, max_norm)
        calls.append(1)
        return torch.full_like(n, float("nan")) if len(calls) == 3 else n

    monkeypatch.setattr(ClipPlan, "norm", norm)
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


def _corrupt_offsets(ds, tmp_path, how):
    """A copy of `ds` whose offsets section is changed with its header left intact: `swap` exchanges two inner
    offsets (out of order), `shift` moves every inner offset one token on (the last stays: the header's counts
    still agree)."""
    import numpy as np

    from uer_like.data.dataset import Dataset

    d = Dataset(ds)
    s = d.manifest["sections"]["offsets"]
    data = bytearray(open(ds, "rb").read())
    off = np.frombuffer(bytes(data[s["offset"]:s["offset"] + 8 * s["count"]]), np.int64).copy()
    if how == "swap":
        off[5], off[6] = off[6], off[5]
    else:
        off[1:-1] += 1
    data[s["offset"]:s["offset"] + 8 * s["count"]] = off.tobytes()
    p = tmp_path / f"{how}.bin"
    p.write_bytes(bytes(data))
    return str(p)


@pytest.mark.parametrize("how", ["swap", "shift"])
def test_corrupt_offsets_with_an_intact_header_stop_training(dataset, tmp_path, capsys, how):
    """Offsets out of order, or all shifted by one token, used to train silently on misaligned instances
    unless --verify_dataset was given; the per-batch checks stop the run at the first batch that reads one,
    naming the dataset and the instance."""
    path = _corrupt_offsets(dataset, tmp_path, how)
    code, err = run_cli("pretrain.py", cli_argv(path, tmp_path, "--total_steps", 40, "--save_checkpoint_steps", 100),
                        capsys)
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert path in last and "is malformed" in last and "re-run preprocess.py" in last, last


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


def test_preprocess_on_a_full_disk_leaves_nothing_and_the_next_run_cleans_first(tmp_path, monkeypatch, capsys):
    """ENOSPC while the sections are written (the buffered files then fail to close as well): one line saying so,
    and no hidden .tmp directory left (closing used to raise before the directory was removed). A killed run's
    leftovers are removed before the free-space check, which they would otherwise fail."""
    import subprocess

    import uer_like.data.dataset as D
    import uer_like.outputs as O

    corpus = _corpus(tmp_path)
    real_write = D.DatasetWriter._write

    def full(self, name, arr):
        if name == "labels":
            for f in self.files.values():  # what a full disk leaves: buffers that cannot be flushed
                f.write = lambda b: (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
                f.close = lambda: (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, name, arr)

    monkeypatch.setattr(D.DatasetWriter, "_write", full)
    code, err = run_cli("preprocess.py", _pre_argv(corpus, tmp_path / "ds.bin"), capsys)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert "No space left on device" in err.strip().splitlines()[-1]
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n], os.listdir(tmp_path)
    monkeypatch.setattr(D.DatasetWriter, "_write", real_write)

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".ds.bin.tmp-{dead.pid}-0123abcd"
    stale.mkdir()
    real_check = O.check_writable

    def check(directory, what, **kw):
        assert not stale.exists(), "the free-space check ran before the killed run's files were removed"
        return real_check(directory, what, **kw)

    monkeypatch.setattr(O, "check_writable", check)
    code, err = run_cli("preprocess.py", _pre_argv(corpus, tmp_path / "ds.bin"), capsys)
    assert code in (0, None), err[-2000:]


@pytest.mark.parametrize("layout", ["one_document", "paragraph_per_line"])
def test_sentence_pairs_without_multi_sentence_documents_are_refused(tmp_path, capsys, layout):
    """--data_processor bert on one paragraph per line gave every pair the same sentence-prediction label (sp
    accuracy 0.98-1.0 learning nothing, the only hint "from 1 documents" in the log): refused with the fixes."""
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()
    paragraphs = ["".join(d.split("\n")) for d in text.split("\n\n") if d.strip()][:300]
    corpus = tmp_path / "paragraphs.txt"
    corpus.write_text("\n".join(paragraphs) + "\n", encoding="utf-8")
    fmt = ["--corpus_format", "line"] if layout == "paragraph_per_line" else []
    code, err = run_cli("preprocess.py", ["--corpus_path", corpus, "--dataset_path", tmp_path / "ds.bin",
                                          "--data_processor", "bert", "--seq_length", 64, "--dynamic_masking", *fmt],
                        capsys)
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert "got the same sentence-prediction label" in last and "--data_processor mlm" in last, last
    assert not (tmp_path / "ds.bin").exists()


# ------------------------------------------------------------------------------------------ resume and ownership
def test_resume_refuses_another_dataset_unless_asked(dataset, tmp_path, caplog):
    """A checkpoint records its dataset's header checksum. The same command after the dataset at that path was
    regenerated (another --seq_length), or with another --dataset_path, used to resume silently on other data;
    now it is one line naming both datasets and the ways out. A copy of the same dataset elsewhere resumes, and
    --allow_dataset_change continues on purpose."""
    import shutil

    ds = str(tmp_path / "data" / "ds.bin")
    os.makedirs(os.path.dirname(ds))
    shutil.copy(dataset, ds)
    Trainer(args(ds, tmp_path, total_steps=4)).train()
    copy = str(tmp_path / "copy.bin")
    shutil.copy(ds, copy)
    t = Trainer(args(copy, tmp_path, total_steps=6))  # the same dataset moved: fine
    assert t.step == 4
    t.close()
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:60000]
    lines = [l for l in text.split("\n") if len(l) > 20][:32]
    other, _ = preprocess(str(tmp_path / "data"), "\n".join(lines) + "\n", name="ds.bin", data_processor="mlm",
                          seq_length=24, corpus_format="line", dynamic_masking=True)
    assert other == ds
    with pytest.raises(DataError, match=r"was trained on another dataset .*seq_length 32.* than --dataset_path "
                                        r".*seq_length 24.*--allow_dataset_change"):
        Trainer(args(ds, tmp_path, total_steps=6))
    with caplog.at_level("WARNING", logger="uer_like"):
        t = Trainer(args(ds, tmp_path, total_steps=6, allow_dataset_change=True))
    assert t.step == 4 and "--allow_dataset_change" in caplog.text
    assert t.train() == 6


def test_two_runs_on_one_checkpoint_directory(dataset, tmp_path, caplog):
    """The second run writing the same checkpoint directory is refused at start, naming the first (they used to
    resume from and overwrite each other's checkpoints); once the first ends, the directory is free; a lock file
    left by a killed run is taken over, with a log line."""
    first = Trainer(args(dataset, tmp_path, total_steps=4))
    with pytest.raises(TrainingError, match=rf"is in use by another run \(PID {os.getpid()} on .*another "
                                            r"--output_model_path"):
        Trainer(args(dataset, tmp_path, total_steps=4, seed=11))
    assert first.train() == 4
    assert not (tmp_path / "m_checkpoints" / ".lock").exists()  # removed at release
    (tmp_path / "m_checkpoints" / ".lock").write_text(json.dumps({"pid": 2 ** 22 + 7, "host": "h",
                                                                  "started": "yesterday"}))
    with caplog.at_level("INFO", logger="uer_like"):
        t = Trainer(args(dataset, tmp_path, total_steps=6))
    assert "taking over the lock left by run PID 4194311" in caplog.text
    t.close()


def test_two_processes_on_one_output_path(dataset, tmp_path):
    """The issue's reproduction with real processes: a second pretrain.py started while the first runs on the
    same --output_model_path exits 2 with one line; the first finishes untouched."""
    import subprocess
    import time

    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    argv = [sys.executable, os.path.join(ROOT, "pretrain.py")] + [str(a) for a in cli_argv(dataset, tmp_path)]
    first = subprocess.Popen(argv + ["--total_steps", "400", "--report_steps", "50", "--seed", "1"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "m_checkpoints" / ".lock").exists():
            assert first.poll() is None and time.time() < deadline, first.communicate()[1][-2000:]
            time.sleep(0.1)
        second = subprocess.run(argv + ["--total_steps", "400", "--seed", "2"], env=env, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        last = second.stderr.strip().splitlines()[-1]
        assert last.startswith("error: --checkpoint_dir") and f"in use by another run (PID {first.pid}" in last
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_output_model_path_naming_a_directory_is_refused_at_start(dataset, tmp_path, capsys):
    os.makedirs(tmp_path / "m.bin")
    code, err = run_cli("pretrain.py", cli_argv(dataset, tmp_path, "--total_steps", 2), capsys)
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "--output_model_path" in last and "is an existing directory" in last, last
    assert not list_checkpoints(tmp_path / "m_checkpoints")


def test_training_caps_onednn_shape_caches_and_keeps_what_the_environment_sets(dataset, tmp_path, monkeypatch):
    """Host memory flat over long runs (benchmarks/rss.py): oneDNN's primitive cache and ideep's computation cache
    hold a primitive per tensor shape, 1,024 each by default, and their entries fragment glibc's heap among each
    step's temporaries as batch shapes change. A trainer caps both before its first oneDNN call; values the
    environment sets are kept (the way back to oneDNN's defaults)."""
    from uer_like.training import memory

    for var in memory.ONEDNN_VARS + (memory.IDEEP_VAR,):
        monkeypatch.delenv(var, raising=False)
    Trainer(args(dataset, tmp_path, total_steps=1)).close()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == os.environ["LRU_CACHE_CAPACITY"] == \
        str(memory.CACHE_CAPACITY)
    env = {"LRU_CACHE_CAPACITY": "1024", "DNNL_PRIMITIVE_CACHE_CAPACITY": "1024"}
    assert memory.cap_shape_caches(environ=env) == {"DNNL_PRIMITIVE_CACHE_CAPACITY": "1024",
                                                     "LRU_CACHE_CAPACITY": "1024"}
