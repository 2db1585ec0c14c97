"""Fine-tuning on the training loop's shared pieces: under torchrun (DDP over gloo, two CPU ranks) it gives the
weights one process gives with the same global batch; killed with SIGKILL mid-run, the same command resumes
from its checkpoint and ends with bit-identical weights; --precision bf16 trains; the deprecated --amp and
--fp16 map onto --precision. Tiny model (bert/tiny_config.json), a few dozen steps."""
import json
import math
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT
from test_distributed import free_port
from uer_like.errors import ConfigError
from uer_like.finetune import core
from uer_like.finetune.cli import build_parser, requested_precision, run
from uer_like.io.checkpoint import load_state_dict_file

VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")
SCRIPT = os.path.join(ROOT, "finetune", "run_classifier.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
WORDS = {"1": "好棒赞喜欢爱优秀精彩推荐", "0": "差烂糟讨厌恨失望无聊垃圾"}


def write_tsv(path, n, seed):
    rng = random.Random(seed)
    rows = ["label\ttext_a"]
    for i in range(n):
        label = str(i % 2)
        rows.append(label + "\t" + "".join(rng.choice(WORDS[label]) for _ in range(rng.randint(3, 12))))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    # 29 training examples: the last global batch of 8 splits 3 + 2 over two ranks (weighted shares)
    return {"train": write_tsv(d / "train.tsv", 29, 0), "dev": write_tsv(d / "dev.tsv", 10, 1),
            "big": write_tsv(d / "big.tsv", 64, 2)}


def flags(train, out, *extra, precision="fp32"):
    return ["--config_path", "bert/tiny_config.json", "--vocab_path", VOCAB, "--train_path", train,
            "--output_model_path", out, "--seq_length", "16", "--learning_rate", "1e-3", "--no_progress",
            "--precision", precision, "--seed", "3", *extra]


def weights(path):
    return load_state_dict_file(path)


def _run(cmd, env=None, timeout=600):
    p = subprocess.run(cmd, env=env or ENV, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def test_two_ranks_give_the_weights_of_one_process_with_the_same_global_batch(data, tmp_path):
    one, two = str(tmp_path / "one.bin"), str(tmp_path / "two.bin")
    common = ["--epochs_num", "2", "--dropout", "0", "--dev_path", data["dev"], "--report_steps", "2"]
    single = subprocess.Popen([sys.executable, SCRIPT] + flags(data["train"], one, "--batch_size", "8", *common),
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = str(free_port())
    ranks = [subprocess.Popen([sys.executable, SCRIPT] + flags(data["train"], two, "--batch_size", "4", *common),
                              env=dict(ENV, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                       MASTER_PORT=port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    outs = [p.communicate(timeout=600) for p in [single] + ranks]
    for p, (out, err) in zip([single] + ranks, outs):
        assert p.returncode == 0, err[-3000:]
    assert "batch 8 (4 on each of 2 processes)" in outs[1][0]
    assert outs[2][0].strip() == ""  # rank 1 logs nothing: rank 0 speaks and writes
    assert "step 2/8 | loss" in outs[1][0] and "tokens/s" in outs[1][0]  # the shared report line
    a, b = weights(one), weights(two)
    assert sorted(a) == sorted(b)
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    print(f"two ranks vs one process: max abs weight difference {diff:.3g}")
    assert diff < 1e-5, diff
    # the dev figures rank 0 computed are the single process's
    line = lambda text: [l for l in text.splitlines() if l.startswith("epoch 2/2")][0].split("|")[1]  # noqa: E731
    assert line(outs[0][0]) == line(outs[1][0])


def test_sigkill_mid_run_then_the_same_command_ends_bit_identical(data, tmp_path):
    """Dropout on (the torch RNG state is restored), dev selection on (the best so far is restored), killed
    within an epoch (the shuffle state and the position in the epoch are restored)."""
    ref, killed = str(tmp_path / "ref.bin"), str(tmp_path / "killed.bin")
    extra = ["--epochs_num", "3", "--batch_size", "4", "--dev_path", data["dev"], "--save_checkpoint_steps", "2"]
    _run([sys.executable, SCRIPT] + flags(data["big"], ref, *extra))
    assert not os.path.exists(str(tmp_path / "ref_checkpoints"))  # removed once the run ended
    cmd = [sys.executable, SCRIPT] + flags(data["big"], killed, *extra)
    ckdir = str(tmp_path / "killed_checkpoints")
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and p.poll() is None:
            names = os.listdir(ckdir) if os.path.isdir(ckdir) else []
            if any(n.startswith("step_") and n.endswith(".pt") and int(n[5:14]) >= 6 for n in names):
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == -signal.SIGKILL  # killed mid-run, not finished before the kill
    again = _run(cmd)
    resumed = [l for l in again.stdout.splitlines() if l.startswith("resumed from")]
    assert resumed and int(resumed[0].split(" at step ")[1].split()[0]) >= 6, again.stdout[-2000:]
    a, b = weights(ref), weights(killed)
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not os.path.exists(ckdir)


def test_bf16_fine_tunes(data, tmp_path, capsys):
    torch.set_num_threads(1)
    out = str(tmp_path / "bf16.bin")
    rep = run("classification", flags(data["train"], out, "--epochs_num", "1", "--batch_size", "8", precision="bf16"))
    assert "precision bf16 (asked for with --precision)" in capsys.readouterr().out
    assert math.isfinite(rep["history"][0]["train_loss"])
    w = weights(out)
    assert w and all(torch.isfinite(v).all() for v in w.values() if v.is_floating_point())


@pytest.mark.parametrize("argv, want", [([], "auto"), (["--precision", "bf16"], "bf16"), (["--amp", "off"], "fp32"),
                                        (["--amp", "fp16"], "fp16"), (["--fp16"], "fp16")])
def test_deprecated_amp_and_fp16_map_onto_precision(argv, want):
    p = build_parser("classification")
    assert requested_precision(p.parse_args(argv)) == want
    text = p.format_help()
    assert "deprecated: use --precision" in text and "deprecated (UER-py's flag): use --precision fp16" in text


def test_a_checkpoint_of_another_run_is_refused_naming_the_fix(caplog):
    saved = {"learning_rate": 1e-3, "seed": 3, "global_batch": 8}
    with pytest.raises(ConfigError, match=r"ckpt: the checkpoint was made by another run \(seed: checkpoint 3 vs now "
                                          r"4\); .*--resume never"):
        core._check_resumable("ckpt", saved, {"learning_rate": 1e-3, "seed": 4, "global_batch": 8})
    # a lower learning rate (after a divergence, say) goes on from the checkpoint, with a warning
    core._check_resumable("ckpt", saved, {"learning_rate": 1e-4, "seed": 3, "global_batch": 8})
    assert "learning_rate: checkpoint 0.001 vs now 0.0001" in caplog.text


def test_shards_weight_the_global_mean():
    idx = [10, 11, 12, 13, 14]
    parts = [core.shard(idx, r, 2) for r in range(2)]
    assert [p[0] for p in parts] == [[10, 11, 12], [13, 14]]
    # weight = share x world: DDP's mean over the ranks of weight x (the rank's mean loss) is the global mean
    assert [w for _, w in parts] == pytest.approx([1.2, 0.8])
    assert core.shard([7], 1, 2) == ([7], 0.0)  # a rank left without a feature contributes nothing


def test_sigterm_stops_fine_tuning_at_a_step_boundary_with_status_143_and_the_same_command_resumes(data, tmp_path,
                                                                                                   monkeypatch):
    """The training loop pretraining runs on (training/loop.py) gives fine-tuning its SIGTERM handling: SIGTERM
    within an epoch writes a checkpoint at the next step boundary, the script's main returns 143, and the same
    command ends with the weights and history of a run never stopped."""
    from uer_like.finetune.cli import main
    from uer_like.training import loop

    torch.set_num_threads(1)
    handler = signal.getsignal(signal.SIGTERM)
    ref, stopped = str(tmp_path / "ref.bin"), str(tmp_path / "stopped.bin")
    extra = ["--epochs_num", "2", "--batch_size", "8", "--dev_path", data["dev"]]
    assert main("classification", flags(data["big"], ref, *extra)) == 0
    real, sent = loop.StepLoop.stop_agreed, []

    def stop_agreed(self):  # SIGTERM to this process after step 5 (epoch 1 of 8-step epochs)
        if self.step == 5 and not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self)

    monkeypatch.setattr(loop.StepLoop, "stop_agreed", stop_agreed)
    assert main("classification", flags(data["big"], stopped, *extra)) == loop.STOPPED_EXIT
    ckdir = tmp_path / "stopped_checkpoints"
    assert sorted(os.listdir(ckdir)) == ["step_000000005.pt"] and not os.path.exists(stopped)
    monkeypatch.setattr(loop.StepLoop, "stop_agreed", real)
    assert signal.getsignal(signal.SIGTERM) is handler  # the loop's handler lives as long as training
    assert main("classification", flags(data["big"], stopped, *extra)) == 0
    a, b = weights(ref), weights(stopped)
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert not ckdir.exists()
    history = [[(r["train_loss"], r["dev"]) for r in json.load(open(p[:-4] + "_report.json"))["history"]]
               for p in (ref, stopped)]
    assert history[0] == history[1] and len(history[0]) == 2
