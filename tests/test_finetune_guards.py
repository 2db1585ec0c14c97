"""Fine-tuning guarded as pretraining is: the non-finite guard (shared with pretraining, training/guard.py),
outputs checked at start, --seq_length too small for a task's input, a stray label, C3 questions whose answer
is ambiguous, a text_b column the model does not read. Through the real command line (finetune/run_*.py in
this process, so that a monkeypatched loss reaches it) where the exit status matters."""
import argparse
import json
import os
import runpy
import sys

import pytest
import torch

from uer_like.errors import ConfigError, TrainingError
from uer_like.finetune import classification as C
from uer_like.finetune import core
from uer_like.finetune import data as D
from uer_like.tokenizers import build_tokenizer
from conftest import DATA, ROOT, VOCAB, need

BOOK = os.path.join(DATA, "datasets", "samples", "book_review")
TINY = ["--config_path", "bert/tiny_config.json", "--vocab_path", VOCAB, "--no_progress", "--threads", "1",
        "--seq_length", "32", "--learning_rate", "1e-3"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


@pytest.fixture(scope="module")
def enc():
    return D.Encoder(build_tokenizer("bert", VOCAB))


def cli(script, argv, capsys):
    """finetune/<script> in this process -> (exit status, stdout, stderr)."""
    old = sys.argv
    sys.argv = [script] + [str(a) for a in argv]
    code = 0
    try:
        runpy.run_path(os.path.join(ROOT, "finetune", script), run_name="__main__")
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


def last_line(err):
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def book(name):
    return need(os.path.join(BOOK, name))


def nan_loss_at(monkeypatch, calls):
    """ClassificationTask.loss returns NaN at these (1-based) calls."""
    real = C.ClassificationTask.loss
    n = []

    def loss(self, model, batch):
        n.append(1)
        value = real(self, model, batch)
        return value * float("nan") if len(n) in calls else value

    monkeypatch.setattr(C.ClassificationTask, "loss", loss)


def nonfinite_in(path):
    from uer_like.io.checkpoint import load_state_dict_file

    return sum(int((~torch.isfinite(v)).sum()) for v in load_state_dict_file(str(path)).values()
               if v.is_floating_point())


def train_argv(tmp_path, *extra):
    return TINY + ["--train_path", book("train.tsv"), "--dev_path", book("dev.tsv"), "--batch_size", 50,
                   "--epochs_num", 3, "--output_model_path", tmp_path / "m.bin", *extra]


# ------------------------------------------------------------------------------------------ non-finite guard
def test_diverged_fine_tuning_stops_with_exit_2_keeping_the_finite_best_model(tmp_path, monkeypatch, capsys, caplog):
    """The loss is NaN from the 6th step on (epoch 2 of 4-step epochs): those steps are skipped and the 3rd
    in a row stops the run with one line naming the step, the learning rate, the fix and the model kept
    (epoch 1's, finite). Before the guard, NaN weights were saved as the model and the run exited 0."""
    nan_loss_at(monkeypatch, range(6, 100))
    code, out, err = cli("run_classifier.py", train_argv(tmp_path, "--max_nonfinite_steps", 3), capsys)
    assert code == 2
    line = last_line(err)
    assert line.startswith("error: the loss or gradient norm was NaN/inf for 3 steps in a row (up to step 8, "
                           "learning rate "), line
    assert "lower --learning_rate" in line and f"the best model so far (epoch 1) is at {tmp_path / 'm.bin'}" in line
    assert "step 6: non-finite loss" in caplog.text and "epoch 1/3" in out and "epoch 2/3" not in out
    assert nonfinite_in(tmp_path / "m.bin") == 0


def test_diverged_from_the_start_writes_no_model(tmp_path, monkeypatch, capsys):
    nan_loss_at(monkeypatch, range(1, 100))
    code, _, err = cli("run_classifier.py", train_argv(tmp_path), capsys)
    assert code == 2 and "5 steps in a row (up to step 5" in last_line(err) and "no model was written" in err
    assert not (tmp_path / "m.bin").exists()


def test_a_single_non_finite_step_is_skipped_and_training_goes_on(tmp_path, monkeypatch, capsys, caplog):
    nan_loss_at(monkeypatch, {3})
    code, _, err = cli("run_classifier.py", train_argv(tmp_path), capsys)
    assert code == 0, err
    assert "step 3: non-finite loss and gradient norm (loss nan, grad norm nan); optimizer step skipped (1 in a row" \
        in caplog.text
    report = json.load(open(tmp_path / "m_report.json"))
    assert [r.get("skipped_steps", 0) for r in report["history"]] == [1, 0, 0]
    assert all(r["train_loss"] == r["train_loss"] for r in report["history"])  # not NaN: skipped steps left out
    assert nonfinite_in(tmp_path / "m.bin") == 0


def test_an_epoch_with_nan_dev_outputs_is_never_the_best(tmp_path, monkeypatch, capsys, caplog):
    """Epoch 1's dev outputs are NaN: before, the first epoch was always "best" (and a NaN metric then stayed
    best for good). When no epoch's are finite, no model is kept and the run fails."""
    real = C.ClassificationTask.outputs
    nan_evaluations = {1}
    n = []

    def outputs(self, model, batch):
        n.append(1)
        res = real(self, model, batch)
        return [o * float("nan") for o in res] if len(n) in nan_evaluations else res

    monkeypatch.setattr(C.ClassificationTask, "outputs", outputs)
    code, _, err = cli("run_classifier.py", train_argv(tmp_path, "--epochs_num", 2), capsys)
    assert code == 0, err
    assert "epoch 1 is not kept: its dev outputs or acc are NaN/inf" in caplog.text
    report = json.load(open(tmp_path / "m_report.json"))
    assert [r.get("best", False) for r in report["history"]] == [False, True] and report["best_epoch"] == 2

    n.clear()
    nan_evaluations.add(2)
    code, _, err = cli("run_classifier.py", train_argv(tmp_path / "all", "--epochs_num", 2), capsys)
    assert code == 2 and last_line(err).startswith("error: no epoch gave a model to keep (epoch 2: its dev outputs "
                                                   "or acc are NaN/inf); no model was written; lower --learning_rate")
    assert not (tmp_path / "all" / "m.bin").exists()


def tiny_task(labels_num=2):
    args = argparse.Namespace(labels_num=labels_num, seq_length=16, soft_targets=False, learning_rate=1e-3,
                              weight_decay=0.0, max_grad_norm=1.0, warmup=0.0, epochs_num=1, batch_size=4,
                              max_steps=0, seed=1, no_progress=True, report_steps=100, output_model_path=None)
    from uer_like.config import load_config

    task = C.ClassificationTask(args, D.Encoder(build_tokenizer("bert", VOCAB)))
    texts = ["好书", "差", "不错啊", "无聊"] * 3
    feats = task.encode([{"text_a": t, "text_b": None, "label": i % 2} for i, t in enumerate(texts)])
    model = task.build_model(load_config("bert/tiny_config.json").replace(vocab_size=21128), 21128)
    return task, args, feats, model


def test_non_finite_weights_before_training_are_named_not_the_learning_rate(tmp_path):
    """NaN weights (a model loaded with them) make every loss NaN: the error says so, not "lower the
    learning rate"."""
    task, args, feats, model = tiny_task()  # 3 steps per epoch
    with torch.no_grad():
        model.output_layer_2.weight[0, 0] = float("nan")
    for epochs, max_steps, says in ((5, 5, "5 steps in a row (up to step 5"),  # the guard stops the run
                                    (2, 10, "no epoch gave a model to keep (epoch 2: it ends in 6 non-finite")):
        run_args = argparse.Namespace(**{**vars(args), "epochs_num": epochs, "max_nonfinite_steps": max_steps,
                                         "output_model_path": str(tmp_path / "m.bin")})
        with pytest.raises(TrainingError) as e:
            core.train(task, model, feats, run_args, torch.device("cpu"), None)
        assert says in str(e.value) and "--learning_rate" not in str(e.value)
        assert "the weights hold 1 NaN/inf values from before these steps" in str(e.value)
        assert not (tmp_path / "m.bin").exists()


@pytest.mark.parametrize("name,value,says", [
    ("epochs_num", 0, "--epochs_num must be >= 1 .*, got 0"), ("batch_size", 0, "--batch_size must be >= 1 .*, got 0"),
    ("batch_size", -2, "--batch_size must be >= 1 .*, got -2"),
    ("learning_rate", float("nan"), "--learning_rate must be finite"),
    ("max_nonfinite_steps", 0, "--max_nonfinite_steps must be >= 1 .*, got 0")])
def test_library_train_refuses_values_the_command_line_refuses(name, value, says):
    task, args, feats, model = tiny_task()
    setattr(args, name, value)
    with pytest.raises(ConfigError, match=says):
        core.train(task, model, feats, args, torch.device("cpu"), None)


def test_max_nonfinite_steps_is_a_fine_tuning_flag_with_pretraining_s_range(capsys):
    code, _, err = cli("run_classifier.py", ["--max_nonfinite_steps", 0], capsys)
    assert code == 2 and "argument --max_nonfinite_steps: must be >= 1 and <= 16777216, got 0" in last_line(err)


# ------------------------------------------------------------------------------------------ outputs at start
def deny_writes_under(monkeypatch, directory):
    """Refuse to create files under `directory` with EACCES, as the kernel would in a read-only directory
    (chmod does not stop root)."""
    import errno

    import uer_like.outputs as O

    real = os.open

    def deny(p, flags, *a, **k):
        if str(p).startswith(str(directory)) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), p)
        return real(p, flags, *a, **k)

    monkeypatch.setattr(O.os, "open", deny)


@pytest.mark.parametrize("flag", ["--output_model_path", "--prediction_path", "--report_path"])
def test_unwritable_output_is_refused_before_training(tmp_path, monkeypatch, capsys, flag):
    ro = tmp_path / "ro"
    ro.mkdir()
    argv = TINY + ["--train_path", book("train.tsv"), "--test_path", book("test.tsv"), "--epochs_num", 1,
                   "--output_model_path", tmp_path / "m.bin", flag, ro / "out"]
    deny_writes_under(monkeypatch, ro)
    code, out, err = cli("run_classifier.py", argv, capsys)
    assert code == 2
    assert last_line(err) == f"error: the directory of {flag} {ro} is not writable: Permission denied"
    assert "training:" not in out


def test_full_disk_is_refused_before_training(tmp_path, monkeypatch, capsys):
    import shutil

    import uer_like.outputs as O

    real = shutil.disk_usage
    monkeypatch.setattr(O.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    code, out, err = cli("run_classifier.py", TINY + ["--train_path", book("train.tsv"), "--output_model_path",
                                                      tmp_path / "m.bin"], capsys)
    assert code == 2 and "training:" not in out
    line = last_line(err)
    assert line.startswith(f"error: the directory of --output_model_path {tmp_path}: No space left on device"), line


def test_output_model_path_naming_a_directory_or_an_input_is_refused_at_start(tmp_path, capsys):
    code, out, err = cli("run_classifier.py", TINY + ["--train_path", book("train.tsv"), "--output_model_path",
                                                      tmp_path], capsys)
    assert code == 2 and "training:" not in out
    assert last_line(err) == (f"error: --output_model_path {tmp_path} is a directory; give a file in it, e.g. "
                              f"{tmp_path / 'model.bin'}")
    test = write(tmp_path, "test.tsv", "label\ttext_a\n0\t好\n1\t差\n")
    code, out, err = cli("run_classifier.py", TINY + ["--train_path", book("train.tsv"), "--output_model_path",
                                                      tmp_path / "m.bin", "--test_path", test, "--prediction_path",
                                                      test], capsys)
    assert code == 2 and "training:" not in out
    assert f"--prediction_path {test} is also --test_path: writing it would overwrite the input" in last_line(err)


def test_fine_tuned_model_files_are_written_atomically(tmp_path, monkeypatch):
    """save_finetuned: the weights, config and task settings each go through outputs.atomic_write."""
    import uer_like.finetune.core as FC
    import uer_like.io.checkpoint as IC
    import uer_like.io.formats.uer as IU

    written = []
    for mod in (FC, IC, IU):
        real = mod.atomic_write
        monkeypatch.setattr(mod, "atomic_write", lambda p, w, _r=real, **k: (written.append(os.path.basename(p)),
                                                                             _r(p, w, **k))[1])
    _, _, _, model = tiny_task()
    core.save_finetuned(model, str(tmp_path / "m.bin"), {"task": "classification"})
    assert sorted(written) == ["m.bin", "m_config.json", "m_finetune.json"]
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_predictions_are_the_whole_file_or_the_previous_one(tmp_path, monkeypatch, capsys):
    """--prediction_path: a write interrupted halfway leaves the previous file whole and no temporary file
    (before: the task wrote the path itself, so an interruption left half the predictions under the final
    name); an uninterrupted one replaces it."""
    train = write(tmp_path, "train.tsv", "label\ttext_a\n" + "0\t好书\n1\t差劲\n" * 4)
    test = write(tmp_path, "test.tsv", "label\ttext_a\n0\t好\n1\t差\n")
    pred = tmp_path / "pred.tsv"
    pred.write_text("previous\n", encoding="utf-8")
    real = C.ClassificationTask.write

    def half_then_interrupted(self, path, *a):
        with open(path, "w", encoding="utf-8") as f:
            f.write("label\n0\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(C.ClassificationTask, "write", half_then_interrupted)
    out = tmp_path / "model"
    out.mkdir()
    argv = TINY + ["--train_path", train, "--test_path", test, "--epochs_num", 1, "--prediction_path", pred,
                   "--output_model_path", out / "m.bin"]
    with pytest.raises(KeyboardInterrupt):
        cli("run_classifier.py", argv, capsys)
    assert pred.read_text(encoding="utf-8") == "previous\n"
    assert sorted(os.listdir(tmp_path)) == ["model", "pred.tsv", "test.tsv", "train.tsv"]
    monkeypatch.setattr(C.ClassificationTask, "write", real)
    code, _, err = cli("run_classifier.py", argv, capsys)
    assert code == 0, err
    assert pred.read_text(encoding="utf-8").splitlines()[0] == "label" and len(pred.read_text().splitlines()) == 3
    assert sorted(os.listdir(tmp_path)) == ["model", "pred.tsv", "test.tsv", "train.tsv"]


# ------------------------------------------------------------------------------------------ --seq_length
@pytest.mark.parametrize("seq_length", [0, 1, 2, 4])
def test_sentence_pairs_need_room_for_a_token_of_each(enc, seq_length):
    ex = [{"text_a": "好书", "text_b": "很好看", "label": 1}]
    with pytest.raises(ConfigError, match=rf"--seq_length {seq_length} is too small for \[CLS\] text_a \[SEP\] "
                                          r"text_b \[SEP\]: at least 5"):
        C.encode_classification(ex, enc, seq_length)
    f = C.encode_classification(ex, enc, 5)[0]
    assert f["seg"] == [1, 1, 1, 2, 2]  # one token of each


@pytest.mark.parametrize("seq_length", [0, 1, 2])
def test_truncation_never_counts_from_the_end(enc, seq_length):
    """a[:seq_length - 2] with seq_length 0 or 1 kept (nearly) everything; now every encoder refuses."""
    from uer_like.finetune import tagging as T

    with pytest.raises(ConfigError, match="--seq_length"):
        C.encode_classification([{"text_a": "好书" * 50, "label": 1}], enc, seq_length)
    with pytest.raises(ConfigError, match="--seq_length"):
        T.encode_tagging([{"tokens": list("北京"), "tags": ["B-LOC", "I-LOC"]}], enc, seq_length,
                         {"O": 0, "B-LOC": 1, "I-LOC": 2})
    with pytest.raises(ValueError):
        D.truncate_pair([1, 2], [3], seq_length - 3)


def c3_doc(choices, answer=None, qid="7-1"):
    q = {"question": "他们在做什么？", "choice": choices}
    if answer is not None:
        q["answer"] = answer
    return [["男：你好。", "女：你好。"], [q], qid]


@pytest.mark.parametrize("script,data,seq_length,layout", [
    ("run_classifier.py", "label\ttext_a\ttext_b\n0\t好\t差\n1\t差\t好\n", 4, "[CLS] text_a [SEP] text_b [SEP]"),
    ("run_c3.py", [c3_doc(["打招呼", "吃饭"], "打招呼")], 6,
     "[CLS] choice [SEP] question [SEP] document [SEP]"),
    ("run_cmrc.py", {"data": [{"paragraphs": [{"context": "他出生于北京。", "qas": [
        {"id": "q1", "question": "他出生于哪里？", "answers": [{"text": "北京", "answer_start": 4}]}]}]}]},
     4, "[CLS] question [SEP] context [SEP]")])
def test_seq_length_below_a_task_s_minimum_is_one_line(tmp_path, capsys, script, data, seq_length, layout):
    path = write(tmp_path, "train" + (".tsv" if isinstance(data, str) else ".json"),
                 data if isinstance(data, str) else json.dumps(data, ensure_ascii=False))
    argv = TINY + ["--train_path", path, "--output_model_path", tmp_path / "m.bin"]
    argv[argv.index("--seq_length") + 1] = seq_length
    code, out, err = cli(script, argv, capsys)
    assert code == 2 and "training:" not in out
    need_ = len(layout.split())
    assert last_line(err) == f"error: --seq_length {seq_length} is too small for {layout}: at least {need_} (the " \
                             "special tokens and one token of each part)"


# ------------------------------------------------------------------------------------------ labels
def test_a_stray_label_is_refused_naming_file_line_and_fix(tmp_path, capsys):
    rows = open(book("train.tsv"), encoding="utf-8").read().splitlines()
    rows[57] = "7\t" + rows[57].split("\t", 1)[1]
    train = write(tmp_path, "train.tsv", "\n".join(rows) + "\n")
    code, out, err = cli("run_classifier.py", TINY + ["--train_path", train, "--output_model_path",
                                                      tmp_path / "m.bin"], capsys)
    assert code == 2 and "training:" not in out
    assert last_line(err) == (f"error: {train}: 8 classes (0..7, from the largest label) but classes 2, 3, 4, 5, 6 "
                              "have no training example (label 7 at line 58): a stray label? Fix the file, or pass "
                              "--labels_num 8 to train 8 classes on purpose")
    code, out, err = cli("run_classifier.py", TINY + ["--train_path", train, "--output_model_path", tmp_path / "m.bin",
                                                      "--labels_num", 8, "--max_steps", 1], capsys)
    assert code == 0 and json.load(open(tmp_path / "m_finetune.json"))["labels_num"] == 8


@pytest.mark.parametrize("flag", ["--train_path", "--dev_path", "--test_path"])
def test_a_label_outside_the_classes_names_file_and_line(tmp_path, capsys, flag):
    bad = write(tmp_path, "bad.tsv", "label\ttext_a\n0\t好\n1\t差\n2\t一般\n")
    files = {"--train_path": book("train.tsv"), "--dev_path": book("dev.tsv"), "--test_path": book("test.tsv")}
    files[flag] = bad
    argv = TINY + ["--labels_num", 2, "--output_model_path", tmp_path / "m.bin"]
    for k, v in files.items():
        argv += [k, v]
    code, out, err = cli("run_classifier.py", argv, capsys)
    assert code == 2 and "training:" not in out
    assert last_line(err).startswith(f"error: {bad}:4: label 2 is outside the 2 classes 0..1")


# ------------------------------------------------------------------------------------------ C3
@pytest.mark.parametrize("docs,says", [
    ([c3_doc(["认真", "马虎", "认真"], "认真")],
     "document 7-1, question 1: the answer '认真' is choice 1 and 3: which one is right is not known"),
    ([c3_doc(["打招呼", "吃饭"], "打招呼"), c3_doc(["打招呼", "吃饭"], qid="8-2")],
     "document 8-2, question 1: no 'answer'"),
    ([c3_doc(["a", "b", "c", "d", "e"], "a")],
     "document 7-1, question 1: 5 choices, more than --max_choices_num 4; pass --max_choices_num 5"),
    ([c3_doc(["打招呼", "吃饭"], "跑步")],
     "document 7-1, question 1: the answer '跑步' is not one of its choices")])
def test_c3_questions_that_cannot_be_scored_right_are_one_line(tmp_path, capsys, docs, says):
    path = write(tmp_path, "c3.json", json.dumps(docs, ensure_ascii=False))
    for flag in ("--train_path", "--test_path"):
        argv = TINY + ["--train_path", path, "--output_model_path", tmp_path / "m.bin"]
        if flag == "--test_path":
            argv += ["--test_path", path]
            ok = write(tmp_path, "ok.json", json.dumps([c3_doc(["是", "否"], "是")]))
            argv[argv.index("--train_path") + 1] = ok
        code, out, err = cli("run_c3.py", argv, capsys)
        assert code == 2 and "training:" not in out
        assert last_line(err).startswith(f"error: {path}: {says}"), last_line(err)


def test_c3_choice_repeated_beside_another_answer_is_read(tmp_path):
    """C3's own data has it (train 47-277: '认真' twice, the answer '马虎'): the label is not in doubt."""
    from uer_like.finetune.multiple_choice import read_c3

    doc = c3_doc(["可爱", "认真", "马虎", "认真"], "马虎")
    path = write(tmp_path, "c3.json", json.dumps([doc], ensure_ascii=False))
    assert read_c3(path)[0]["label"] == 2


# ------------------------------------------------------------------------------------------ text_b
def test_text_b_column_for_a_single_sentence_model_is_refused(tmp_path, capsys):
    pairs = write(tmp_path, "pairs.tsv", "label\ttext_a\ttext_b\n0\t好\t差\n1\t差\t好\n")
    argv = TINY + ["--train_path", book("train.tsv"), "--output_model_path", tmp_path / "m.bin", "--max_steps", 1]
    code, out, err = cli("run_classifier.py", argv + ["--test_path", pairs], capsys)
    assert code == 2 and "training:" not in out
    assert last_line(err) == (f"error: {pairs}: a text_b column, but the model reads single sentences (fine-tuned on "
                              f"{book('train.tsv')}); drop the text_b column (or fine-tune on pairs)")
    code, _, err = cli("run_classifier.py", argv, capsys)
    assert code == 0 and json.load(open(tmp_path / "m_finetune.json"))["text_pair"] is False
    code, _, err = cli("run_classifier.py", ["--load_model_path", tmp_path / "m.bin", "--vocab_path", VOCAB,
                                             "--no_progress", "--test_path", pairs], capsys)
    assert code == 2 and last_line(err) == (f"error: {pairs}: a text_b column, but the model reads single sentences "
                                            f"({tmp_path / 'm_finetune.json'}); drop the text_b column (or fine-tune "
                                            "on pairs)")


def test_a_pair_model_refuses_a_file_without_text_b(tmp_path, capsys):
    pairs = write(tmp_path, "pairs.tsv", "label\ttext_a\ttext_b\n0\t好\t差\n1\t差\t好\n")
    code, out, err = cli("run_classifier.py", TINY + ["--train_path", pairs, "--test_path", book("test.tsv"),
                                                      "--output_model_path", tmp_path / "m.bin"], capsys)
    assert code == 2 and "training:" not in out
    assert last_line(err) == (f"error: {book('test.tsv')}: no text_b column, but the model reads sentence pairs "
                              f"(fine-tuned on {pairs}); add the text_b column")


def test_two_fine_tuning_runs_on_one_output_model_are_refused(tmp_path, capsys):
    """One writer per output: while a run trains into --output_model_path, another run naming it is refused at
    start (they would overwrite each other's "best" model); the lock goes with the run."""
    from uer_like.outputs import OutputLock

    need(BOOK)
    out = tmp_path / "m.bin"
    argv = [*TINY, "--train_path", os.path.join(BOOK, "train.tsv"), "--epochs_num", "1", "--max_steps", "2",
            "--output_model_path", out]
    held = OutputLock(str(tmp_path), "--output_model_path", name=".m.bin.lock").acquire()
    try:
        code, _, err = cli("run_classifier.py", argv, capsys)
    finally:
        held.release()
    assert code == 2
    assert f"in use by another run (PID {os.getpid()}" in last_line(err) and "--output_model_path" in last_line(err)
    assert not out.exists()
    code, _, err = cli("run_classifier.py", argv, capsys)
    assert code == 0, err[-2000:]
    assert out.exists() and not (tmp_path / ".m.bin.lock").exists()
