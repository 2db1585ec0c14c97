"""Exact resume and distributed training, through the real command line (subprocesses).

Uninterrupted and interrupted runs are compared step by step (loss, learning rate, sample ids) and by
their final weights, on CPU with deterministic settings."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, SAMPLE_CORPUS
from helpers import preprocess

TINY = ["--config", "roberta/tiny_config.json"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """48 instances: with a global batch of 8 an epoch is 6 steps, so 14 steps cross two epoch boundaries."""
    d = tmp_path_factory.mktemp("ds")
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:200000]
    lines = [l for l in text.split("\n") if len(l) > 20][:48]
    path, m = preprocess(str(d), "\n".join(lines) + "\n", data_processor="mlm", seq_length=32,
                         corpus_format="line", dynamic_masking=True)
    assert m["instances"] >= 48
    return path


def cmd(ds, out, steps=14, extra=()):
    return [sys.executable, os.path.join(ROOT, "pretrain.py"), *TINY, "--dataset_path", ds,
            "--output_model_path", os.path.join(out, "model.bin"), "--total_steps", str(steps),
            "--batch_size", "4", "--save_checkpoint_steps", "3", "--report_steps", "5", "--learning_rate", "1e-3",
            "--warmup", "0.2", "--deterministic", "--trace_path", os.path.join(out, "trace.jsonl"),
            "--seed", "5", "--precision", "fp32", *extra]  # fp32: runs on other layouts (FSDP) compare to 1e-5


def trace(out):
    steps = {}
    for line in open(os.path.join(out, "trace.jsonl")):
        r = json.loads(line)
        steps[r["step"]] = r
    return [steps[k] for k in sorted(steps)]


def weights(out):
    return torch.load(os.path.join(out, "model.bin"), weights_only=True)


def assert_same_run(a, b, exact=True):
    ta, tb = trace(a), trace(b)
    assert [r["step"] for r in ta] == [r["step"] for r in tb]
    for ra, rb in zip(ta, tb):
        assert ra["ids"] == rb["ids"], ra["step"]
        assert ra["lr"] == rb["lr"]
        if exact:
            assert ra["loss"] == rb["loss"], ra["step"]
        else:
            assert abs(ra["loss"] - rb["loss"]) < 1e-5, (ra["step"], ra["loss"], rb["loss"])
    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb)
    for k in wa:
        if exact:
            assert torch.equal(wa[k], wb[k]), k
        else:
            assert torch.allclose(wa[k], wb[k], atol=1e-5), k


def _popen(c, **kw):
    # own process group, so that a failed test leaves no worker behind (see _reap)
    return subprocess.Popen(c, env=ENV, text=True, start_new_session=True, **kw)


def _reap(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run(c, timeout=900):
    p = _popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        _reap(p)
    assert p.returncode == 0, err[-3000:]
    return subprocess.CompletedProcess(c, p.returncode, out, err)


def run_until_step(c, step, sig=signal.SIGKILL, out=None):
    """Start a run and send `sig` once its trace reaches `step`."""
    p = _popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        path = os.path.join(out, "trace.jsonl")
        deadline = time.time() + 600  # generous: a busy machine takes minutes to start torch
        while time.time() < deadline and p.poll() is None:
            if os.path.exists(path) and sum(1 for _ in open(path)) >= step:
                os.killpg(p.pid, sig)  # the launcher and every worker, as a node failure or scheduler would
                break
            time.sleep(0.02)
        _, err = p.communicate(timeout=600)
    finally:
        _reap(p)
    return p.returncode, err


def resumed_step(stderr):
    """The step a run resumed at (its log line 'resumed from PATH at step N'), or None."""
    m = re.search(r"resumed from \S+step_0*(\d+)\.pt at step (\d+)", stderr)
    assert m is None or m.group(1) == m.group(2)
    return int(m.group(2)) if m else None


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ref"))
    run(cmd(dataset, out, extra=["--accumulation_steps", "2"]))
    return out


@pytest.mark.parametrize("kill_at", [2, 7, 12])
def test_sigkill_then_resume_is_identical(dataset, reference, tmp_path, kill_at):
    """Killed mid-run (steps 2, 7 and 12 cross checkpoint and epoch boundaries, with accumulation 2)."""
    out = str(tmp_path)
    code, _ = run_until_step(cmd(dataset, out, extra=["--accumulation_steps", "2"]), kill_at, out=out)
    assert code == -signal.SIGKILL
    r = run(cmd(dataset, out, extra=["--accumulation_steps", "2"]))
    if kill_at >= 3:  # checkpoints every 3 steps: it resumed from one (which one depends on when the kill landed)
        assert resumed_step(r.stderr) is not None
    assert_same_run(reference, out)


def test_half_written_checkpoint_is_never_loaded(dataset, reference, tmp_path):
    out = str(tmp_path)
    code, _ = run_until_step(cmd(dataset, out, extra=["--accumulation_steps", "2"]), 8, out=out)
    ck = os.path.join(out, "model_checkpoints")
    # what a kill during a write leaves: a temporary file, and (worse) a truncated file under a final name
    with open(os.path.join(ck, "step_000000009.pt.tmp-999"), "wb") as f:
        f.write(b"PK\x03\x04 partial")
    latest = sorted(os.listdir(ck))
    with open(os.path.join(ck, "step_000000012.pt"), "wb") as f:
        f.write(open(os.path.join(ck, [n for n in latest if n.endswith(".pt")][-1]), "rb").read()[:1000])
    r = run(cmd(dataset, out, extra=["--accumulation_steps", "2"]))
    assert "skipping" in r.stderr and "step_000000012.pt" in r.stderr
    assert_same_run(reference, out)


def test_sigterm_saves_and_exits_cleanly(dataset, reference, tmp_path):
    """SIGTERM: a checkpoint at the next step boundary, then exit status 143 (a run that did not reach
    --total_steps is not a success: a job script must not move on), and the same command resumes exactly."""
    out = str(tmp_path)
    code, err = run_until_step(cmd(dataset, out, extra=["--accumulation_steps", "2"]), 4, sig=signal.SIGTERM,
                               out=out)
    assert code == 143, err[-2000:]
    assert "SIGTERM" in err
    steps = [int(n[5:14]) for n in os.listdir(os.path.join(out, "model_checkpoints")) if n.endswith(".pt")]
    stopped_at = trace(out)[-1]["step"]
    assert stopped_at >= 4 and max(steps) == stopped_at  # saved at the step boundary where it stopped
    run(cmd(dataset, out, extra=["--accumulation_steps", "2"]))
    assert_same_run(reference, out)


def torchrun(nproc, extra=()):
    # a port free now, not one fixed per test process: an earlier run's store (or a socket of it in TIME_WAIT)
    # can still hold a fixed one, and the next torchrun then fails to start
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
            str(free_port()), *extra]


@pytest.fixture(scope="module")
def two_processes(dataset, tmp_path_factory):
    """torchrun, one agent with 2 processes (gloo), 8 steps, dropout off: the reference of the distributed tests."""
    out = str(tmp_path_factory.mktemp("two_processes"))
    run(torchrun(2) + cmd(dataset, out, steps=8, extra=["--dropout", "0"])[1:])
    return out


def test_two_processes_match_one_with_the_same_global_batch(dataset, two_processes, tmp_path):
    """2 ranks x batch 4 (gloo) == 1 rank x batch 4 x accumulation 2, dropout off."""
    one = str(tmp_path)
    run(cmd(dataset, one, steps=8, extra=["--accumulation_steps", "2", "--dropout", "0"]))
    assert_same_run(one, two_processes, exact=False)


def test_checkpoint_from_two_ranks_resumes_on_one(dataset, two_processes, tmp_path):
    """Killed under 2 ranks, resumed on 1 with --global_batch_size: same run as 2 ranks uninterrupted."""
    ref, out = two_processes, str(tmp_path)
    extra = ["--dropout", "0", "--global_batch_size", "8"]
    code, _ = run_until_step(torchrun(2) + cmd(dataset, out, steps=8, extra=extra)[1:], 5, out=out)
    assert code == -signal.SIGKILL  # killed mid-run, not finished before the kill
    r = run(cmd(dataset, out, steps=8, extra=extra))
    assert resumed_step(r.stderr) in (3, 6, 8)  # 8: the kill landed late
    assert_same_run(ref, out, exact=False)


def test_torchrun_restarts_a_killed_worker_and_finishes_the_same(dataset, two_processes, tmp_path):
    ref, out = two_processes, str(tmp_path)
    extra = ["--dropout", "0"]
    p = _popen(torchrun(2, ["--max-restarts", "1"]) + cmd(dataset, out, steps=8, extra=extra)[1:],
               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        path = os.path.join(out, "trace.jsonl")
        killed = False
        deadline = time.time() + 600
        while time.time() < deadline and not killed:
            if os.path.exists(path) and sum(1 for _ in open(path)) >= 4:
                workers = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
                workers = [w for w in workers if "pretrain.py" in open(f"/proc/{w}/cmdline").read()]
                if workers:
                    os.kill(int(workers[-1]), signal.SIGKILL)
                    killed = True
            time.sleep(0.02)
        _, err = p.communicate(timeout=900)
    finally:
        _reap(p)
    assert killed and p.returncode == 0, err[-3000:]
    assert resumed_step(err) in (3, 6, 8)
    assert_same_run(ref, out, exact=False)


def test_fsdp_matches_ddp_and_resumes(dataset, two_processes, tmp_path):
    """--fsdp (2 ranks, gloo, small model) trains like DDP, and a killed FSDP run resumes to the same end."""
    ddp = two_processes
    fsdp, killed = (str(tmp_path / n) for n in ("fsdp", "killed"))
    for d in (fsdp, killed):
        os.makedirs(d)
    extra = ["--dropout", "0"]
    run(torchrun(2) + cmd(dataset, fsdp, steps=8, extra=extra + ["--fsdp"])[1:])
    assert_same_run(ddp, fsdp, exact=False)
    code, _ = run_until_step(torchrun(2) + cmd(dataset, killed, steps=8, extra=extra + ["--fsdp"])[1:], 5, out=killed)
    assert code == -signal.SIGKILL
    r = run(torchrun(2) + cmd(dataset, killed, steps=8, extra=extra + ["--fsdp"])[1:])
    assert resumed_step(r.stderr) in (3, 6, 8)  # 8: the kill landed late
    assert_same_run(fsdp, killed, exact=False)


# ------------------------------------------------------------------------------ two nodes (two torchrun agents)
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent(port, extra=()):
    """One node's torchrun agent: --nnodes 2, one gloo process, c10d rendezvous on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", f"uer_like_{port}", *extra]


def run_two_nodes(c, out, extra=(), kill_at=None, timeout=900):
    """Start two agents on `c`; with kill_at, SIGKILL the second node's worker once the trace reaches that step.
    Returns the agents' stderr, after asserting that both finished with status 0."""
    port = free_port()
    nodes = [_popen(agent(port, extra) + c[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    errs = [""] * 2
    try:
        if kill_at is not None:
            path, killed, deadline = os.path.join(out, "trace.jsonl"), False, time.time() + 600
            while time.time() < deadline and not killed and all(n.poll() is None for n in nodes):
                if os.path.exists(path) and sum(1 for _ in open(path)) >= kill_at:
                    workers = subprocess.run(["pgrep", "-P", str(nodes[1].pid)], capture_output=True,
                                             text=True).stdout.split()
                    workers = [w for w in workers if "pretrain.py" in open(f"/proc/{w}/cmdline").read()]
                    if workers:
                        os.kill(int(workers[0]), signal.SIGKILL)
                        killed = True
                time.sleep(0.02)
            assert killed, "the second node's worker was not killed mid-run"
        deadline = time.time() + timeout
        for i, n in enumerate(nodes):
            _, errs[i] = n.communicate(timeout=max(1, deadline - time.time()))
    finally:
        for n in nodes:
            _reap(n)
    for n, e in zip(nodes, errs):
        assert n.returncode == 0, e[-3000:]
    return errs


def test_two_nodes_match_one_node_with_two_processes(dataset, two_processes, tmp_path):
    out = str(tmp_path)
    run_two_nodes(cmd(dataset, out, steps=8, extra=["--dropout", "0"]), out)
    assert_same_run(two_processes, out, exact=False)


def test_two_nodes_resume_a_killed_worker_from_the_same_checkpoint(dataset, two_processes, tmp_path):
    """One node's worker killed mid-run: both agents restart their workers (--max-restarts), which agree on
    the checkpoint to resume from (a disagreement stops them at start) and finish with the same weights."""
    out = str(tmp_path)
    errs = run_two_nodes(cmd(dataset, out, steps=8, extra=["--dropout", "0"]), out, extra=["--max-restarts", "1"],
                         kill_at=4)
    assert resumed_step("".join(errs)) in (3, 6, 8)
    assert_same_run(two_processes, out, exact=False)


def test_unreachable_rendezvous_fails_naming_the_endpoint():
    """A node whose rendezvous endpoint does not answer stops within a bounded time, naming host and port."""
    port = free_port()
    t0 = time.time()
    p = _popen(agent(port, ["--rdzv_conf", "is_host=false,read_timeout=3"]) + [os.path.join(ROOT, "pretrain.py")],
               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=300)
    finally:
        _reap(p)
    assert p.returncode != 0 and time.time() - t0 < 300
    assert f"127.0.0.1, {port}" in err or f"127.0.0.1:{port}" in err, err[-3000:]
