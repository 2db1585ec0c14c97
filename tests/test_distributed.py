"""Distributed failures: one rank's error at start reaches every rank within seconds (no wait in a collective
until the 30-minute timeout), ranks that would start differently are stopped, and an unreachable
rendezvous is an error naming the endpoint. Plain processes with torchrun's environment variables stand in
for a launcher; tests/test_resume.py runs the real torchrun, multi-node included."""
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import ROOT

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, world=2, timeout=600, **env):
    """Run `args` as `world` ranks (RANK/WORLD_SIZE/MASTER_* as torchrun sets them); for each rank
    (returncode, stdout, stderr, the time it exited)."""
    port = str(free_port())
    procs = [subprocess.Popen(args, env=dict(ENV, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world),
                                             MASTER_ADDR="127.0.0.1", MASTER_PORT=port, **env),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(world)]
    results = [None] * world

    def wait(r):
        out, err = procs[r].communicate(timeout=timeout)
        results[r] = (procs[r].returncode, out, err, time.monotonic())

    threads = [threading.Thread(target=wait, args=(r,)) for r in range(world)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert None not in results, f"a rank was still running after {timeout}s"
    return results


PROTOCOL = textwrap.dedent(r'''
    import json, sys
    from uer_like.errors import DataError, DistributedError
    from uer_like.training import distributed as d

    info = d.setup("cpu")

    def phase(name, fn):
        try:
            fn()
            print(json.dumps([name, "ok", None]), flush=True)
        except DistributedError as e:
            print(json.dumps([name, "DistributedError", str(e)]), flush=True)
        except DataError as e:
            print(json.dumps([name, "DataError", str(e)]), flush=True)

    def rank0_fails_before_answering():
        def prepare():
            raise DataError("corpus.txt: not UTF-8")
        d.run_on_main(info, prepare, "preparing the dataset")

    def rank0_answers():
        assert d.run_on_main(info, lambda: {"path": "ds.bin"}, "preparing again") == {"path": "ds.bin"}

    def rank1_fails_at_start():
        with d.start_up(info, "phase 3"):
            if info.rank == 1:
                raise DataError("ds.bin: ids count 9 does not match the last offset 12")

    def ranks_disagree():
        with d.start_up(info, "phase 4") as agree:
            agree["step"] = 3 if info.rank == 0 else 0

    def ranks_agree():
        with d.start_up(info, "phase 5") as agree:
            agree["step"] = 3

    for name, fn in [("rank0_fails", rank0_fails_before_answering), ("rank0_answers", rank0_answers),
                     ("rank1_fails", rank1_fails_at_start), ("disagree", ranks_disagree), ("agree", ranks_agree)]:
        phase(name, fn)
    d.teardown(info)
''')


def test_one_ranks_failure_at_start_is_every_ranks_error():
    results = launch([sys.executable, "-c", PROTOCOL])
    phases = []
    for code, out, err, _ in results:
        assert code == 0, err[-3000:]
        phases.append({name: (kind, msg) for name, kind, msg in map(json.loads, out.splitlines())})
    r0, r1 = phases
    assert r0["rank0_fails"] == ("DataError", "corpus.txt: not UTF-8")
    assert r1["rank0_fails"] == ("DistributedError", "rank 0 failed while preparing the dataset: corpus.txt: not UTF-8")
    assert r0["rank0_answers"] == r1["rank0_answers"] == ("ok", None)
    assert r0["rank1_fails"] == ("DistributedError", "rank 1 failed while phase 3: ds.bin: ids count 9 does not match "
                                                     "the last offset 12")
    assert r1["rank1_fails"][0] == "DataError"
    for r in (r0, r1):
        kind, msg = r["disagree"]
        assert kind == "DistributedError" and "step: rank 0 3, rank 1 0" in msg and "file system" in msg
        assert r["agree"] == ("ok", None)


def test_rank0_failing_to_prepare_the_default_dataset_stops_every_rank(tmp_path):
    """pretrain.py without --dataset_path: rank 0 preprocesses the bundled corpus while the others wait; when
    it fails, the others exit with its error (they used to poll for the file forever)."""
    cfg = json.load(open(os.path.join(ROOT, "configs", "roberta", "tiny_config.json")))
    cfg.update(data_processor="cls", target=["cls"], labels_num=2)  # the bundled corpus has no label column
    (tmp_path / "cls.json").write_text(json.dumps(cfg))
    args = [sys.executable, os.path.join(ROOT, "pretrain.py"), "--config", str(tmp_path / "cls.json"),
            "--total_steps", "1", "--output_model_path", str(tmp_path / "m.bin")]
    (c0, _, e0, end0), (c1, _, e1, end1) = launch(args)
    assert end1 - end0 < 30  # rank 1 stops right after rank 0 (it used to wait forever)
    why = e0.strip().splitlines()[-1]
    assert c0 == 2 and why.startswith("error: ") and "cls processor" in why, e0[-2000:]
    assert c1 == 2 and e1.strip().splitlines()[-1] == ("error: rank 0 failed while preparing the bundled-corpus "
                                                       "dataset: " + why[len("error: "):])


def test_unreachable_store_is_an_error_naming_the_endpoint(monkeypatch):
    from uer_like.errors import DistributedError
    from uer_like.training import distributed

    monkeypatch.setattr(distributed, "_current", None)  # a run earlier in this process may have set it up
    port = free_port()  # nothing listens there
    for k, v in dict(RANK="1", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                     UER_LIKE_CONNECT_TIMEOUT="1").items():
        monkeypatch.setenv(k, v)
    t0 = time.monotonic()
    with pytest.raises(DistributedError, match=rf"rank 1: cannot reach the rendezvous store at 127\.0\.0\.1:{port} "
                                               r"\(MASTER_ADDR:MASTER_PORT\) within 1s"):
        distributed.setup("cpu")
    assert time.monotonic() - t0 < 30


FROZEN = textwrap.dedent(r'''
    import os, runpy, sys, time
    from uer_like.training import loop as T

    if os.environ["RANK"] == "1":  # from step 3 on, rank 1 is alive but silent (a frozen worker)
        real = T.StepLoop.stop_agreed

        def frozen(self):
            if self.step >= 3:
                time.sleep(600)
            return real(self)

        T.StepLoop.stop_agreed = frozen
    sys.argv = ["pretrain.py"] + sys.argv[1:]
    runpy.run_path(os.path.join(os.environ["PYTHONPATH"], "pretrain.py"), run_name="__main__")
''')


def test_a_frozen_worker_fails_the_run_after_distributed_timeout(tmp_path):
    """A rank that stops answering used to hold the others in a collective for a fixed 30 minutes; with
    --distributed_timeout 5 the waiting rank fails within seconds, with one line saying why and which flag."""
    from helpers import preprocess
    from conftest import SAMPLE_CORPUS

    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:60000]
    lines = [l for l in text.split("\n") if len(l) > 20][:32]
    ds, _ = preprocess(str(tmp_path), "\n".join(lines) + "\n", data_processor="mlm", seq_length=32,
                       corpus_format="line", dynamic_masking=True)
    port = str(free_port())
    procs = [subprocess.Popen(
        [sys.executable, "-c", FROZEN, "--config", "roberta/tiny_config.json", "--dataset_path", ds,
         "--output_model_path", str(tmp_path / f"out{r}" / "m.bin"), "--batch_size", "4", "--total_steps", "50",
         "--report_steps", "1", "--distributed_timeout", "5"],
        env=dict(ENV, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    try:
        _, err = procs[0].communicate(timeout=300)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert procs[0].returncode == 2, err[-3000:]
    assert "step 3/50" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: rank 0: another rank did not answer within 5s") and \
        "--distributed_timeout" in last, last
