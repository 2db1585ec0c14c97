"""Point 4: bad input gives clear errors naming the file and line (or the example id); and the readers and
encoders on the real samples."""
import json
import os

import pytest

from uer_like.errors import DataError
from uer_like.finetune import classification as C
from uer_like.finetune import data as D
from uer_like.finetune import mrc as M
from uer_like.finetune import tagging as T
from uer_like.finetune.cli import main
from uer_like.tokenizers import build_tokenizer
from conftest import need

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")
SAMPLES = os.path.join(ROOT, "..", "shared", "data", "datasets", "samples")
L2I = {"O": 0, "B-LOC": 1, "I-LOC": 2, "B-PER": 3, "I-PER": 4, "B-ORG": 5, "I-ORG": 6}


@pytest.fixture(scope="module")
def enc():
    return D.Encoder(build_tokenizer("bert", VOCAB))


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_label_outside_label2id(tmp_path):
    p = write(tmp_path, "ner.tsv", "text_a\tlabel\n北 京\tB-LOC I-LOC\n张 三\tB-PER I-PERSON\n")
    with pytest.raises(DataError, match=rf"{p}:3: tag 'I-PERSON' \(token 2\) is not in label2id"):
        T.read_tagging(p, L2I)


def test_tag_count_mismatch(tmp_path):
    p = write(tmp_path, "ner.tsv", "text_a\tlabel\n北 京 市\tB-LOC I-LOC\n")
    with pytest.raises(DataError, match=rf"{p}:2: 3 space-separated tokens in text_a but 2 tags"):
        T.read_tagging(p, L2I)


def test_wrong_number_of_columns(tmp_path):
    p = write(tmp_path, "cls.tsv", "label\ttext_a\n1\t好书\n0\t不好\t多余\n")
    with pytest.raises(DataError, match=rf"{p}:3: expected 2 tab-separated columns \(label, text_a\), got 3"):
        C.read_classification(p)


def test_classification_label_errors(tmp_path):
    p = write(tmp_path, "cls.tsv", "label\ttext_a\n1\t好书\npos\t不好\n")
    with pytest.raises(DataError, match=rf"{p}:3: label 'pos' is not an integer"):
        C.read_classification(p)
    p = write(tmp_path, "dev.tsv", "label\ttext_a\n1\t好书\n\n5\t不好\n")
    ex = C.read_classification(p)
    with pytest.raises(DataError, match=rf"{p}:4: label 5 is outside the 2 classes 0..1"):
        C.check_labels(ex, 2, p)


def test_missing_header_column(tmp_path):
    p = write(tmp_path, "cls.tsv", "text\tlabel\n好书\t1\n")
    with pytest.raises(DataError, match=rf"{p}:1: the header \['text', 'label'\] lacks the column\(s\) text_a"):
        C.read_classification(p)


def test_empty_files(tmp_path):
    for reader in (C.read_classification, lambda p: T.read_tagging(p, L2I), M.read_mrc):
        p = write(tmp_path, "empty", "")
        with pytest.raises(DataError, match=rf"{p}: the file is empty"):
            reader(p)
    p = write(tmp_path, "header_only.tsv", "label\ttext_a\n")
    with pytest.raises(DataError, match=rf"{p}: no examples after the header line"):
        C.read_classification(p)


def squad(context, answer, start, qid="Q1"):
    return {"data": [{"paragraphs": [{"id": "P1", "context": context,
                                      "qas": [{"id": qid, "question": "哪里？", "answers": [{"text": answer, "answer_start": start}]}]}]}]}


def test_answer_start_mismatch_is_reanchored(tmp_path):
    p = write(tmp_path, "mrc.json", json.dumps(squad("他出生于北京，后来去了上海。", "上海", 3, "TRAIN_7_QUERY_2"), ensure_ascii=False))
    ex = M.read_mrc(p, train=True)[0]  # published files have starts off by a few characters: re-anchored
    assert (ex["answer_start"], ex["answer_text"]) == (11, "上海") and M.read_mrc.last_counts == {"re_anchored": 1}
    p = write(tmp_path, "bad.json", '{"data": [\n  {"paragraphs": [}\n]}')
    with pytest.raises(DataError, match=rf"{p}:2: not valid JSON"):
        M.read_mrc(p)
    p = write(tmp_path, "nopos.json", json.dumps(squad("他出生于北京。", "北京", -1), ensure_ascii=False))
    assert M.read_mrc(p)[0]["answers"] == ["北京"]  # position unknown: fine for evaluation
    assert M.read_mrc(p, train=True)[0]["answer_start"] == 4  # and placed at its only occurrence for training


def test_cli_reports_error_and_exit_code(tmp_path, capsys):
    train = write(tmp_path, "train.tsv", "label\ttext_a\n1\t好书\n0\t不好\tx\n")
    rc = main("classification", ["--config_path", "bert/tiny_config.json", "--train_path", train,
                                 "--output_model_path", str(tmp_path / "m.bin"), "--no_progress"])
    assert rc == 2
    assert f"error: {train}:3: expected 2 tab-separated columns" in capsys.readouterr().err


def test_encode_classification_pair(enc):
    ex = [{"text_a": "好书", "text_b": "很好看", "label": 1}]
    f = C.encode_classification(ex, enc, 8)[0]
    v = enc.vocab
    assert f["src"][0] == v.cls_id and f["src"].count(v.sep_id) == 2 and len(f["src"]) == 8
    assert f["seg"] == [1, 1, 1, 1, 2, 2, 2, 2]
    f = C.encode_classification(ex, enc, 6)[0]  # longest first truncation: a 1, b 2
    assert f["seg"] == [1, 1, 1, 2, 2, 2]


def test_encode_tagging_windows(enc):
    ex = [{"tokens": list("北京欢迎你们"), "tags": ["B-LOC", "I-LOC", "O", "O", "O", "O"]}]
    feats = T.encode_tagging(ex, enc, 5, L2I)  # room for 3 tokens per window
    assert [f["offset"] for f in feats] == [0, 3]
    assert feats[0]["labels"] == [1, 2, 0] and feats[0]["word_pos"] == [1, 2, 3]


def test_mrc_answer_positions_on_sample(enc):
    path = os.path.join(SAMPLES, "cmrc", "train.json")
    need(path)
    examples = M.read_mrc(path, train=True)
    feats = M.encode_mrc(examples, enc, 128, doc_stride=32, train=True)
    spans = {}
    found = set()
    for f in feats:
        ex = examples[f["example"]]
        if f["start"] == 0:
            continue
        if ex["context"] not in spans:
            spans[ex["context"]] = enc.spans(ex["context"])[1]
        sp = spans[ex["context"]]
        a, b = sp[f["token_map"][f["start"]]][0], sp[f["token_map"][f["end"]]][1]
        # the token span recovers the answer text (up to whole-token rounding of English words)
        assert ex["answer_text"] in ex["context"][a:b]
        found.add(f["example"])
    assert len(found) == len(examples)  # every answer lies inside some window
