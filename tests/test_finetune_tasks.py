"""The task registry and the tasks added on it: multiple choice (C3), regression, multi-label; their
metrics on worked examples, bad input, and the CLI's checks of what it is given."""
import argparse
import json
import os
import re

import pytest
import torch

from uer_like.errors import CheckpointError, DataError
from uer_like.finetune import core
from uer_like.finetune.classification import ClassificationTask
from uer_like.finetune.cli import build_parser, main, run
from uer_like.finetune.multi_label import multi_label_metrics
from uer_like.finetune.multiple_choice import MultipleChoice
from uer_like.finetune.regression import pearson, regression_metrics, spearman
from uer_like.finetune.tasks import TASKS, load_tasks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")
C3 = os.path.join(ROOT, "..", "shared", "data", "datasets", "samples", "c3")
TINY = ["--config_path", "bert/tiny_config.json", "--vocab_path", VOCAB, "--no_progress", "--epochs_num", "1"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


# ---------------------------------------------------------------------------------------------- registry
def test_scripts_and_docs_derive_from_the_registry():
    docs = open(os.path.join(ROOT, "docs", "finetune.md"), encoding="utf-8").read()
    for name in load_tasks().names():
        task = TASKS.get(name)
        assert os.path.isfile(os.path.join(ROOT, "finetune", task.script)), task.script
        assert f"`{name}`" in docs and task.script in docs, name
        group = argparse.ArgumentParser().add_argument_group()
        task.add_args(group)
        for action in group._group_actions:
            assert any(f"`{o}" in docs for o in action.option_strings), f"{name}: {action.option_strings} undocumented"
    assert "--task" in {o for a in build_parser("classification")._actions for o in a.option_strings}


def test_readme_task_table_lists_every_task_with_its_script():
    """The README's table of fine-tuning tasks has a row per registered task: its name, its script and five
    cells (task, script, file format, metric, HF export)."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| `")}
    for name in load_tasks().names():
        row = rows.get(f"`{name}`")
        assert row is not None, f"README's task table has no row for {name}"
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) >= 5 and all(cells), (name, cells)
        assert TASKS.get(name).script in cells[1], (name, cells[1])


# ---------------------------------------------------------------------------------------------- C3
def test_multiple_choice_head_matches_bert_for_multiple_choice():
    transformers = pytest.importorskip("transformers")
    from test_finetune_parity import hf, map_bert, our_config

    ref = hf(transformers.BertForMultipleChoice, num_labels=1)
    state = map_bert(ref.bert)
    state["output_layer_1.weight"], state["output_layer_1.bias"] = ref.bert.pooler.dense.weight, ref.bert.pooler.dense.bias
    state["output_layer_2.weight"], state["output_layer_2.bias"] = ref.classifier.weight, ref.classifier.bias
    ours = MultipleChoice(our_config(), 60)
    ours.load_state_dict(state)
    ours.eval()
    torch.manual_seed(3)
    q, c, n = 2, 3, 10
    src = torch.randint(5, 60, (q, c, n))
    src[:, :, 0] = 2
    seg = torch.ones(q, c, n, dtype=torch.long)
    seg[:, :, 6:] = 2
    seg[0, 1, 8:] = 0  # padding in one choice
    src[0, 1, 8:] = 0
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        r = ref(input_ids=src, attention_mask=(seg > 0).long(), token_type_ids=(seg == 2).long(), labels=labels)
        slot = torch.arange(q * c)
        logits = ours(src.view(-1, n), seg.view(-1, n), slot, q, c)
        loss = torch.nn.functional.cross_entropy(logits, labels)
    assert (logits - r.logits).abs().max() < 1e-5 and abs(float(loss - r.loss)) < 1e-5
    # a question with fewer choices: its missing slots are -inf, never chosen
    with torch.no_grad():
        short = ours(src.view(-1, n)[:5], seg.view(-1, n)[:5], torch.tensor([0, 1, 2, 4, 5]), 2, 4)
    assert torch.isinf(short[0, 3]) and torch.isinf(short[1, 2]) and torch.isfinite(short[1, :2]).all()


def test_c3_train_evaluate_predict(tmp_path):
    if not os.path.isdir(C3):
        pytest.skip("../shared/data/datasets/samples/c3 is not here")
    model, pred = str(tmp_path / "c3.bin"), str(tmp_path / "pred.tsv")
    dev = os.path.join(C3, "dev.json")
    rep = run("multiple_choice", TINY + ["--train_path", os.path.join(C3, "train.json"), "--test_path", dev,
                                         "--prediction_path", pred, "--output_model_path", model,
                                         "--max_steps", "2", "--batch_size", "16", "--seq_length", "48",
                                         "--learning_rate", "1e-3"])
    lines = open(pred, encoding="utf-8").read().splitlines()
    data = json.load(open(dev, encoding="utf-8"))
    questions = [q for doc in data for q in doc[1]]
    assert lines[0] == "pred" and len(lines) == len(questions) + 1 == 110
    preds = [int(x) for x in lines[1:]]
    assert all(0 <= p < len(q["choice"]) for p, q in zip(preds, questions))
    acc = sum(q["choice"][p] == q["answer"] for p, q in zip(preds, questions)) / len(questions)
    assert rep["test"]["acc"] == pytest.approx(acc) and rep["test"]["total"] == 109
    # inference with the saved model on unlabeled questions: the same choices
    unlabeled = [[doc[0], [{k: v for k, v in q.items() if k != "answer"} for q in doc[1]], doc[2]] for doc in data[:6]]
    test = write(tmp_path, "test.json", json.dumps(unlabeled, ensure_ascii=False))
    rep2 = run("multiple_choice", ["--load_model_path", model, "--vocab_path", VOCAB, "--test_path", test,
                                   "--prediction_path", pred, "--no_progress"])
    n6 = sum(len(doc[1]) for doc in data[:6])
    assert "test" not in rep2 and [int(x) for x in open(pred).read().splitlines()[1:]] == preds[:n6]


# ---------------------------------------------------------------------------------------------- metrics
def test_regression_metrics_worked_example():
    gold, pred = [1.0, 2.0, 3.0, 4.0], [1.5, 1.5, 3.5, 5.0]
    # means 2.5 and 2.875; deviations (-1.5 -0.5 0.5 1.5) and (-1.375 -1.375 0.625 2.125)
    # sxy = 2.0625 + 0.6875 + 0.3125 + 3.1875 = 6.25, sxx = 5, syy = 1.890625*2 + 0.390625 + 4.515625 = 8.6875
    assert pearson(gold, pred) == pytest.approx(6.25 / (5 * 8.6875) ** 0.5)
    # ranks of pred with the tie averaged: 1.5 1.5 3 4 -> Pearson of (1 2 3 4) and (1.5 1.5 3 4) = 4.5 / sqrt(5 x 4.5)
    assert spearman(gold, pred) == pytest.approx(4.5 / (5 * 4.5) ** 0.5)
    m = regression_metrics(gold, pred)
    assert m["mse"] == pytest.approx((0.25 + 0.25 + 0.25 + 1.0) / 4) and m["total"] == 4
    assert pearson([1.0, 1.0], [0.0, 2.0]) == 0.0  # constant side: undefined, reported as 0


def test_multi_label_metrics_worked_example():
    gold = [[0, 2], [1], [], [0, 1, 2]]
    pred = [[0], [1, 2], [], [0, 1]]
    m = multi_label_metrics(gold, pred)
    # tp: 0 -> 2, 1 -> 2, 2 -> 0; predicted: 0:2 1:2 2:1; gold: 0:2 1:2 2:2
    # micro P 4/5, R 4/6, F1 2PR/(P+R) = 8/11; per label F1: 1, 1, 0 -> macro 2/3; exact: questions 3 -> 1/4
    assert m["micro_precision"] == pytest.approx(0.8) and m["micro_recall"] == pytest.approx(2 / 3)
    assert m["micro_f1"] == pytest.approx(8 / 11) and m["macro_f1"] == pytest.approx(2 / 3)
    assert m["exact_match"] == pytest.approx(0.25)


def test_regression_and_multi_label_train_and_infer(tmp_path):
    texts = ["很好看的书", "内容一般", "非常差", "还不错吧", "推荐大家读", "浪费时间"]
    reg = write(tmp_path, "reg.tsv", "label\ttext_a\ttext_b\n" + "".join(f"{i * 0.5}\t{t}\t{t[::-1]}\n" for i, t in enumerate(texts)))
    ml = write(tmp_path, "ml.tsv", "label\ttext_a\n" + "".join(f"{lab}\t{t}\n" for lab, t in zip(["0,2", "1", "", "2", "0,1,2", "1"], texts)))
    for task, data, col in (("regression", reg, "spearman"), ("multi_label", ml, "micro_f1")):
        model = str(tmp_path / f"{task}.bin")
        rep = run("classification", TINY + ["--task", task, "--train_path", data, "--dev_path", data, "--test_path", data,
                                            "--max_steps", "2", "--batch_size", "4", "--seq_length", "16",
                                            "--output_model_path", model])
        assert col in rep["history"][0]["dev"] and col in rep["test"]
        pred = str(tmp_path / f"{task}.tsv")
        rep2 = run("classification", ["--load_model_path", model, "--vocab_path", VOCAB, "--test_path", data,
                                      "--prediction_path", pred, "--no_progress"])  # the task comes from the model
        assert rep2["task"] == task and rep2["test"][col] == pytest.approx(rep["test"][col])
        lines = open(pred, encoding="utf-8").read().splitlines()
        assert lines[0] == "label" and len(lines) == 7
        if task == "regression":
            assert all(float(x) == float(x) for x in lines[1:])
        else:
            assert all(re.fullmatch(r"(\d+(,\d+)*)?", x) for x in lines[1:])


# ---------------------------------------------------------------------------------------------- bad input
def one_line_error(capsys, task, argv):
    rc = main(task, argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def c3_doc(choices, answer):
    return [["男：你好。", "女：你好。"], [{"question": "他们在做什么？", "choice": choices, "answer": answer}], "7-1"]


def test_bad_inputs_name_file_line_or_id(tmp_path, capsys):
    p = write(tmp_path, "c3.json", json.dumps([c3_doc(["打招呼", "吃饭"], "打招呼"), c3_doc(["打招呼", "吃饭", "睡觉"], "跑步")],
                                               ensure_ascii=False))
    err = one_line_error(capsys, "multiple_choice", TINY + ["--train_path", p])
    assert f"{p}: document 7-1, question 1: the answer '跑步' is not one of its choices" in err
    p = write(tmp_path, "c3b.json", json.dumps([c3_doc(["打招呼"], "打招呼")], ensure_ascii=False))
    assert f"{p}: document 7-1, question 1: 1 choice(s); a question needs 2 to 4" in \
        one_line_error(capsys, "multiple_choice", TINY + ["--train_path", p])
    p = write(tmp_path, "reg.tsv", "label\ttext_a\n0.5\t好\nhigh\t差\n")
    assert f"{p}:3: label 'high' is not a number" in \
        one_line_error(capsys, "classification", TINY + ["--task", "regression", "--train_path", p])
    p = write(tmp_path, "ml.tsv", "label\ttext_a\n0,1\t好\n2,5\t差\n")
    assert f"{p}:3: label 5 is not one of the 3 classes 0..2" in \
        one_line_error(capsys, "classification", TINY + ["--task", "multi_label", "--labels_num", "3", "--train_path", p])


def test_stray_label_is_refused_naming_empty_classes_its_line_and_the_fix(tmp_path):
    p = write(tmp_path, "train.tsv", "label\ttext_a\n0\t好\n1\t差\n0\t好\n5\t差\n1\t好\n")
    task = ClassificationTask(argparse.Namespace(labels_num=None, seq_length=16, soft_targets=False), None)
    with pytest.raises(DataError) as e:
        task.read(p, train=True)
    assert f"{p}: 6 classes (0..5, from the largest label) but classes 2, 3, 4 have no training example (label 5 " \
           "at line 5)" in str(e.value) and "--labels_num 6 to train 6 classes on purpose" in str(e.value)
    task = ClassificationTask(argparse.Namespace(labels_num=6, seq_length=16, soft_targets=False), None)
    assert len(task.read(p, train=True)) == 5 and task.labels_num == 6  # on purpose


def test_load_model_path_refuses_pretraining_outputs(tmp_path, capsys):
    from uer_like import build_model, save_model
    from uer_like.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    pre = build_model("bert/tiny_config.json", vocab_size=21128)
    weights = save_model(pre, str(tmp_path / "pre.bin"))
    ckpt = save_checkpoint(str(tmp_path / "ckpts"), 5, {"model": pre.state_dict(), "step": 5,
                                                         "config": pre.config.to_dict()})
    test = write(tmp_path, "t.tsv", "label\ttext_a\n1\t好\n")
    for path in (weights, ckpt):
        err = one_line_error(capsys, "classification", ["--load_model_path", path, "--vocab_path", VOCAB,
                                                        "--test_path", test])
        assert "a pretrained model (pretraining heads: mlm, sp)" in err and f"--pretrained_model_path {path}" in err
    config, (emb, _), pooler = core.load_backbone(ckpt, None, 21128)  # and that works: the config is in the file
    assert config.hidden_size == 128 and torch.equal(emb.word.embedding.weight, pre.embedding.word.embedding.weight)
    with pytest.raises(CheckpointError):
        core.load_finetuned(torch.nn.Linear(2, 2), weights)
    assert isinstance(DataError("x"), ValueError)


def test_load_model_path_of_another_task_says_so(tmp_path, capsys):
    from uer_like.config import load_config
    from uer_like.finetune.tagging import Tagger

    config = load_config("bert/tiny_config.json").replace(vocab_size=21128)
    path = str(tmp_path / "ner.bin")
    core.save_finetuned(Tagger(config, 21128, 3), path, {})
    os.remove(str(tmp_path / "ner_finetune.json"))  # no task settings beside it, as a UER-py fine-tuned model
    test = write(tmp_path, "t.tsv", "label\ttext_a\n1\t好\n")
    err = one_line_error(capsys, "classification", ["--load_model_path", path, "--vocab_path", VOCAB, "--test_path",
                                                    test, "--labels_num", "2"])
    assert f"--load_model_path {path}: checkpoint does not match" in err and "missing keys" in err
    assert "strict=False" not in err and "fine-tuned for another task" in err


# ---------------------------------------------------------------------------------------------- causal models
def test_causal_model_classifier_pools_the_last_token(tmp_path, capsys):
    """Under a causal mask the first token sees only itself: pooling it gives every text the same feature. A
    GPT-2 classifier pools the last real token by default, refuses --pooling first in one line, and its HF
    export says that no transformers task class takes it (not that it should pool the first token)."""
    from uer_like.config import read_json
    from uer_like.errors import ConfigError
    from uer_like.io import hf_tasks

    texts = ["很好看的书", "内容一般", "非常差", "还不错吧", "推荐大家读", "浪费时间"]
    data = write(tmp_path, "cls.tsv", "label\ttext_a\n" + "".join(f"{i % 2}\t{t}\n" for i, t in enumerate(texts)))
    gpt = ["--config_path", "gpt2/tiny_config.json", "--vocab_path", VOCAB, "--no_progress", "--epochs_num", "1",
           "--seq_length", "16", "--batch_size", "4"]
    model, pred = str(tmp_path / "gpt_cls.bin"), str(tmp_path / "pred.tsv")
    run("classification", gpt + ["--train_path", data, "--max_steps", "2", "--output_model_path", model])
    assert read_json(str(tmp_path / "gpt_cls_config.json"))["pooling"] == "last"
    run("classification", ["--load_model_path", model, "--vocab_path", VOCAB, "--test_path", data,
                           "--prediction_path", pred, "--output_logits", "--no_progress"])
    logits = [line.split("\t")[1] for line in open(pred, encoding="utf-8").read().splitlines()[1:]]
    assert len(set(logits)) > 1  # the feature depends on the text
    err = one_line_error(capsys, "classification", gpt + ["--train_path", data, "--pooling", "first"])
    assert "--pooling first on a model with a causal mask" in err and "--pooling last" in err
    err = one_line_error(capsys, "multiple_choice", gpt + ["--train_path", os.path.join(C3, "train.json")])
    assert "causal mask" in err
    with pytest.raises(ConfigError, match="a fine-tuned gpt2 model has no transformers task class here"):
        hf_tasks.export_finetuned(model, str(tmp_path / "hf"))
