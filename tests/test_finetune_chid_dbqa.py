"""ChID (idiom cloze, multiple choice) and DBQA (answer-sentence selection): their metrics on worked examples,
bad input, and end-to-end runs on the small samples in tests/data/chid and tests/data/dbqa."""
import json
import os
import shutil

import pytest
import torch

from uer_like.errors import DataError
from uer_like.finetune.chid import assign_distinct, chid_accuracy, read_chid
from uer_like.finetune.cli import main, run
from uer_like.finetune.multiple_choice import MultipleChoice
from uer_like.finetune.dbqa import rank_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")
CHID = os.path.join(ROOT, "tests", "data", "chid")
DBQA = os.path.join(ROOT, "tests", "data", "dbqa")
TINY = ["--config_path", "bert/tiny_config.json", "--vocab_path", VOCAB, "--no_progress", "--epochs_num", "1",
        "--threads", "1"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


# ---------------------------------------------------------------------------------------------- ChID
def test_chid_accuracy_on_a_crafted_prediction():
    gold = {"#idiom000000#": 3, "#idiom000001#": 0, "#idiom000002#": 9, "#idiom000003#": 5}
    pred = {"#idiom000000#": 3, "#idiom000001#": 1, "#idiom000002#": 9, "#idiom000099#": 5}  # one wrong, one missing
    m = chid_accuracy(gold, pred)
    assert m == {"acc": 0.5, "correct": 2, "total": 4, "missing": 1}
    assert chid_accuracy(gold, dict(gold))["acc"] == 1.0


def test_chid_blanks_of_a_line_use_each_candidate_once():
    # both blanks prefer candidate 0; blank b's margin is larger, so b gets 0 and a its second best, 2
    blanks = [("a", [5.0, 1.0, 4.0]), ("b", [9.0, 0.0, 1.0])]
    assert assign_distinct(blanks) == {"b": 0, "a": 2}


def chid_line(cands, *passages):
    return json.dumps({"candidates": cands, "content": list(passages)}, ensure_ascii=False)


def test_chid_bad_input_is_one_line(tmp_path, capsys):
    idioms = ["一心一意", "千方百计", "自言自语", "实事求是", "与众不同", "不知不觉", "津津有味", "迫不及待", "恍然大悟", "全力以赴"]
    p = write(tmp_path, "nine.json", chid_line(idioms[:9], "他#idiom000001#地工作。") + "\n")
    with pytest.raises(DataError, match=r"nine.json:1: 9 candidates; ChID lines have 10 \(--max_choices_num 10\)"):
        read_chid(p, {"#idiom000001#": 0}, "a.json")
    ok = write(tmp_path, "ok.json", chid_line(idioms, "他#idiom000001#地工作，#idiom000002#。") + "\n")
    ans = write(tmp_path, "ok_answer.json", json.dumps({"#idiom000001#": 0}))
    rc = main("chid", TINY + ["--train_path", ok, "--train_answer_path", ans])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "Traceback" not in err
    assert f"{ok}:1: blank #idiom000002# has no answer in {ans}" in err


def test_chid_trains_and_predicts_the_official_answer_format(tmp_path):
    model, pred = str(tmp_path / "chid.bin"), str(tmp_path / "pred.json")
    dev = os.path.join(CHID, "dev.json")  # its answers: dev_answer.json beside it (CLUE's naming)
    rep = run("chid", TINY + ["--train_path", os.path.join(CHID, "train.json"), "--dev_path", dev, "--test_path", dev,
                              "--prediction_path", pred, "--output_model_path", model, "--batch_size", "8",
                              "--seq_length", "48", "--learning_rate", "1e-3"])
    gold = json.load(open(os.path.join(CHID, "dev_answer.json"), encoding="utf-8"))
    got = json.load(open(pred, encoding="utf-8"))
    assert set(got) == set(gold) and all(isinstance(v, int) and 0 <= v < 10 for v in got.values())
    assert rep["test"]["acc"] == pytest.approx(chid_accuracy(gold, got)["acc"]) and rep["test"]["total"] == len(gold)
    for line in open(dev, encoding="utf-8"):  # default decoding: a line's blanks take different candidates
        tags = [t for p in json.loads(line)["content"] for t in gold if t in p]
        assert len({got[t] for t in tags}) == len(tags)
    # inference with the saved model on the file without answers: predicted only, the same predictions
    bare = str(tmp_path / "test.json")
    shutil.copy(dev, bare)
    rep2 = run("chid", ["--load_model_path", model, "--vocab_path", VOCAB, "--test_path", bare, "--prediction_path",
                        pred, "--no_progress", "--threads", "1"])
    assert "test" not in rep2 and json.load(open(pred, encoding="utf-8")) == got
    # exported as transformers' BertForMultipleChoice: the same scores as the fine-tuned model
    transformers = pytest.importorskip("transformers")
    from uer_like.io import hf_tasks
    out = hf_tasks.export_finetuned(model, str(tmp_path / "hf"))
    hf = transformers.AutoModelForMultipleChoice.from_pretrained(out).eval()
    assert type(hf).__name__ == "BertForMultipleChoice"
    from uer_like.finetune import core
    config, _, _ = core.load_backbone(None, model[:-4] + "_config.json", hf.config.vocab_size)
    ours = core.load_finetuned(MultipleChoice(config, hf.config.vocab_size), model).eval()
    torch.manual_seed(0)
    src = torch.randint(1000, 5000, (2, 3, 12))
    src[..., 0], src[..., 6] = 101, 102
    seg = torch.ones_like(src)
    seg[..., 7:] = 2
    with torch.no_grad():
        ref = hf(input_ids=src, token_type_ids=(seg == 2).long()).logits
        got_logits = ours(src.view(-1, 12), seg.view(-1, 12), torch.arange(6), 2, 3)
    diff = float((got_logits - ref).abs().max())
    print(f"chid export: max abs logit diff vs BertForMultipleChoice {diff:.2e}")
    assert diff < 1e-4


# ---------------------------------------------------------------------------------------------- DBQA
def test_dbqa_map_and_mrr_worked_example():
    groups = [
        ([0, 1, 0, 1], [0.9, 0.8, 0.1, 0.7]),  # ranking 0, 1, 3, 2: answers at ranks 2 and 3 -> RR 1/2, AP (1/2 + 2/3) / 2
        ([1, 0], [0.6, 0.2]),                  # answer first -> RR 1, AP 1
        ([0, 1], [0.5, 0.5]),                  # a tie keeps file order: answer at rank 2 -> RR 1/2, AP 1/2
        ([0, 0, 0], [0.3, 0.2, 0.1]),          # no answer: left out
    ]
    m = rank_metrics(groups)
    assert m["questions"] == 3 and m["no_answer"] == 1
    assert m["mrr"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m["map"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 + 1 / 2) / 3)


def test_dbqa_trains_selects_by_mrr_and_predicts(tmp_path, capsys):
    model, pred = str(tmp_path / "dbqa.bin"), str(tmp_path / "pred.tsv")
    dev = os.path.join(DBQA, "dev.tsv")
    rep = run("dbqa", TINY + ["--train_path", os.path.join(DBQA, "train.tsv"), "--dev_path", dev, "--test_path", dev,
                              "--prediction_path", pred, "--output_model_path", model, "--batch_size", "16",
                              "--seq_length", "64", "--learning_rate", "1e-3", "--epochs_num", "3"])
    rows = [line.split("\t") for line in open(dev, encoding="utf-8").read().splitlines()[1:]]
    out = [line.split("\t") for line in open(pred, encoding="utf-8").read().splitlines()]
    assert out[0] == ["qid", "label", "score"] and len(out) == len(rows) + 1
    # the report's MRR and MAP are those of the prediction file's scores, grouped by qid
    groups = {}
    for (label, qid, _, _), (pqid, _, score) in zip(rows, out[1:]):
        assert pqid == qid
        g = groups.setdefault(qid, ([], []))
        g[0].append(int(label))
        g[1].append(float(score))
    m = rank_metrics(list(groups.values()))
    assert rep["test"]["mrr"] == pytest.approx(m["mrr"], abs=1e-5)
    assert rep["test"]["map"] == pytest.approx(m["map"], abs=1e-5) and rep["test"]["questions"] == 10
    # the saved (best) epoch is the one of the highest dev MRR
    assert len(rep["history"]) == 3
    assert rep["history"][rep["best_epoch"] - 1]["dev"]["mrr"] == max(r["dev"]["mrr"] for r in rep["history"])
    # without a qid column the rows group by the question text; a label other than 0/1 is refused on one line
    p = write(tmp_path, "noqid.tsv", "label\ttext_a\ttext_b\n1\t谁？\t他。\n0\t谁？\t她。\n2\t哪？\t这。\n")
    rc = main("dbqa", TINY + ["--train_path", p])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and f"{p}:4: label '2'; DBQA labels are 1" in err


def test_dbqa_model_exports_as_bert_for_sequence_classification(tmp_path):
    transformers = pytest.importorskip("transformers")
    from uer_like.finetune import core
    from uer_like.finetune.classification import Classifier
    from uer_like.io import hf_tasks

    model = str(tmp_path / "dbqa.bin")
    run("dbqa", TINY + ["--train_path", os.path.join(DBQA, "dev.tsv"), "--output_model_path", model,
                        "--batch_size", "16", "--seq_length", "32", "--max_steps", "1"])
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(
        hf_tasks.export_finetuned(model, str(tmp_path / "hf"))).eval()
    assert type(hf).__name__ == "BertForSequenceClassification" and hf.config.num_labels == 2
    config, _, _ = core.load_backbone(None, model[:-4] + "_config.json", hf.config.vocab_size)
    ours = core.load_finetuned(Classifier(config, hf.config.vocab_size, 2), model).eval()
    torch.manual_seed(0)
    src = torch.randint(1000, 5000, (3, 12))
    src[:, 0], src[:, 6] = 101, 102
    seg = torch.ones_like(src)
    seg[:, 7:] = 2
    with torch.no_grad():
        diff = float((ours(src, seg) - hf(input_ids=src, token_type_ids=(seg == 2).long()).logits).abs().max())
    print(f"dbqa export: max abs logit diff vs BertForSequenceClassification {diff:.2e}")
    assert diff < 1e-4
