"""CJRC (finetune/cjrc.py): the reader takes CAIL2019's format (YES / NO answers, unanswerable questions with
no answers or empty ones) and names a bad answer field in one line; the metric is the official evaluation's
(checked against the official script's own output on the sample, tests/data/cjrc/official_scores.json); the
answer-type head learns on the generated sample, and the predictions file says "YES", "NO" or ""."""
import json
import os

import pytest

from uer_like.errors import DataError
from uer_like.finetune import cjrc as C
from uer_like.finetune.cli import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "cjrc")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def test_reader_takes_the_answer_types():
    ex = C.read_cjrc(os.path.join(DATA, "train.json"), train=True)
    kinds = {e["answer_type"] for e in ex}
    assert kinds == {"span", "yes", "no", "unknown"}
    for e in ex:
        if e["answer_type"] == "span":
            assert e["context"][e["answer_start"]:].startswith(e["answer_text"])
        else:
            assert e["answer_start"] is None
        if e["answer_type"] == "unknown":
            assert e["answers"] == [""]  # "answers": [] is scored as the official script does, against ""
    dev = C.read_cjrc(os.path.join(DATA, "dev.json"))
    assert all(len(e["answers"]) == 3 for e in dev) and {e["domain"] for e in dev} == {"civil", "criminal"}


def one_question(tmp_path, **qa):
    q = {"id": "1_1", "question": "原告是否再婚？", "is_impossible": "false", **qa}
    d = {"data": [{"domain": "civil", "paragraphs": [{"context": "原告已再婚", "qas": [q]}]}]}
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    return str(p)


@pytest.mark.parametrize("qa, msg", [
    ({"answers": "YES"}, "question 1_1: 'answers' must be a list"),
    ({"answers": [{"answer_start": -1}]}, r"question 1_1: answers\[0\] needs a 'text' string"),
    ({"answers": [{"text": "YES", "answer_start": "x"}]}, r"answers\[0\].answer_start must be an integer"),
    ({"answers": [], "is_impossible": "maybe"}, "is_impossible must be \"true\" or \"false\""),
])
def test_bad_answer_fields_are_one_line(tmp_path, qa, msg):
    with pytest.raises(DataError, match=msg) as e:
        C.read_cjrc(one_question(tmp_path, **qa), train=True)
    assert "\n" not in str(e.value) and "bad.json" in str(e.value)


def test_metric_is_the_official_scripts():
    """official_scores.json: the CAIL2019 evaluate.py's output on dev.json and predictions.json (see
    tests/data/cjrc/README.md); its figures are rounded to one decimal."""
    ref = json.load(open(os.path.join(DATA, "official_scores.json"), encoding="utf-8"))
    preds = {p["id"]: p["answer"] for p in json.load(open(os.path.join(DATA, "predictions.json"), encoding="utf-8"))}
    ex = C.read_cjrc(os.path.join(DATA, "dev.json"))
    m = C.cjrc_metrics([(e["qid"], e["answers"]) for e in ex], preds, {e["qid"]: e["domain"] for e in ex})
    assert round(m["em"], 1) == ref["overall"]["em"] and round(m["f1"], 1) == ref["overall"]["f1"]
    for dom in ("civil", "criminal"):
        assert round(m["domains"][dom]["f1"], 1) == ref[dom]["f1"] and m["domains"][dom]["qas"] == ref[dom]["qas"]
    # hand-worked: empty against empty is 1, three references are each left out in turn
    assert C.question_score([""], "") == (1, 1) and C.question_score([""], "YES") == (0, 0)
    em, f1 = C.question_score(["800元", "抚养费800元", "800元"], "800元")
    assert em == 1.0 and f1 == 1.0
    em, f1 = C.question_score(["抚养费800元", "800元", "费800元"], "800元")
    assert em == pytest.approx(2 / 3)


def vocab(tmp_path):
    chars = set()
    for name in ("train.json", "dev.json"):
        for e in C.read_cjrc(os.path.join(DATA, name)):
            chars |= set(e["context"] + e["question"])
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(c for c in chars if not c.isspace()) \
        + [f"##{d}" for d in "0123456789"]
    p = tmp_path / "vocab.txt"
    p.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return str(p)


def test_answer_type_head_learns_on_the_sample(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"emb_size": 128, "hidden_size": 128, "feedforward_size": 256, "heads_num": 2,
                               "layers_num": 2, "max_seq_length": 256, "dropout": 0.0}), encoding="utf-8")
    pred = tmp_path / "pred.json"
    rep = run("cjrc", ["--config_path", str(cfg), "--vocab_path", vocab(tmp_path), "--seq_length", "96",
                       "--train_path", os.path.join(DATA, "train.json"), "--dev_path", os.path.join(DATA, "dev.json"),
                       "--test_path", os.path.join(DATA, "dev.json"), "--prediction_path", str(pred),
                       "--output_model_path", str(tmp_path / "cjrc.bin"), "--epochs_num", "8", "--batch_size", "8",
                       "--learning_rate", "1e-3", "--precision", "fp32", "--no_progress", "--seed", "3"])
    # always "span" (the most frequent type) scores 0.6; a head that learned nothing stays there
    assert rep["test"]["type_acc"] >= 0.8, rep["test"]
    assert rep["test"]["f1"] >= 70, rep["test"]
    out = json.load(open(pred, encoding="utf-8"))
    assert [set(p) for p in out] == [{"id", "answer"}] * 60  # the official submission format
    answers = {p["id"]: p["answer"] for p in out}
    gold = {e["qid"]: e["answers"][0] for e in C.read_cjrc(os.path.join(DATA, "dev.json"))}
    unknown = [q for q, g in gold.items() if g == ""]
    yes_no = [q for q, g in gold.items() if g in ("YES", "NO")]
    assert sum(answers[q] == "" for q in unknown) >= 0.8 * len(unknown)
    assert sum(answers[q] in ("YES", "NO") for q in yes_no) >= 0.8 * len(yes_no)  # the type; the polarity
    # (which needs the context's cue) is still near chance after these few steps
