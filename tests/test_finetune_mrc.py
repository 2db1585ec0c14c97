"""Reading comprehension on files as published (CMRC 2018 / DRCD): misaligned answer_start, paraphrased
answers that are not in the context (-1), three references per question, a question id repeated across
articles; and EM/F1 exactly as the official cmrc2018_evaluate.py computes them, on hand-worked cases."""
import json
import os

import pytest

from uer_like.finetune import mrc as M
from uer_like.finetune.cli import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")

CTX1 = "《哈利·波特》是英国作家J.K.罗琳创作的小说，第一部于1997年出版。故事发生在霍格沃茨魔法学校。"
CTX2 = "北京大学创办于1898年，初名京师大学堂，是中国近代第一所国立综合性大学。"


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def published():
    """A CMRC-format file with the published files' quirks."""
    return {"version": "v1.0", "data": [
        {"paragraphs": [{"id": "DEV_0", "context": CTX1, "qas": [
            {"id": "DEV_0_QUERY_0", "question": "《哈利·波特》的作者是谁？", "answers": [
                {"text": "J.K.罗琳", "answer_start": 13},    # off by one (it starts at 12)
                {"text": "J.K.罗琳", "answer_start": 12},
                {"text": "英国作家J.K.罗琳", "answer_start": 8}]},
            {"id": "DEV_0_QUERY_1", "question": "第一部什么时候出版？", "answers": [
                {"text": "1997年", "answer_start": 30},       # off by two (it starts at 28)
                {"text": "1997", "answer_start": 28},
                {"text": "一九九七年", "answer_start": -1}]},  # a paraphrase: not in the context
            {"id": "DEV_0_QUERY_2", "question": "故事发生在哪里？", "answers": [
                {"text": "霍格沃茨魔法学院", "answer_start": -1},  # first answer paraphrased: the next is used
                {"text": "霍格沃茨魔法学校", "answer_start": 41},
                {"text": "霍格沃茨", "answer_start": 41}]}]}]},
        {"paragraphs": [{"id": "DEV_1", "context": CTX2, "qas": [
            {"id": "DEV_0_QUERY_0", "question": "北京大学创办于哪一年？", "answers": [  # the id repeats
                {"text": "1898年", "answer_start": 7},
                {"text": "1898年", "answer_start": 7},
                {"text": "1898", "answer_start": 7}]},
            {"id": "DEV_1_QUERY_1", "question": "北京大学最初叫什么？", "answers": [
                {"text": "京师学堂", "answer_start": -1},          # no answer can be placed: left out
                {"text": "京师大学", "answer_start": 90}]}]}]}]}


@pytest.fixture(scope="module")
def published_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("mrc") / "dev.json"
    p.write_text(json.dumps(published(), ensure_ascii=False), encoding="utf-8")
    return str(p)


def test_published_file_is_read_with_documented_counts(published_path, caplog):
    assert CTX1[12:18] == "J.K.罗琳" and CTX1[28:33] == "1997年" and CTX1[41:49] == "霍格沃茨魔法学校"
    ex = M.read_mrc(published_path, train=True)
    assert [e["qid"] for e in ex] == ["DEV_0_QUERY_0", "DEV_0_QUERY_1", "DEV_0_QUERY_2", "DEV_0_QUERY_0",
                                      "DEV_1_QUERY_1"]
    assert [(e["answer_start"], e["answer_text"]) for e in ex] == [
        (12, "J.K.罗琳"), (28, "1997年"), (41, "霍格沃茨魔法学校"), (7, "1898年"), (None, None)]
    # re-anchored: QUERY_0 (13 -> 12), QUERY_1 (30 -> 28); skipped: the paraphrase of QUERY_2 and both answers
    # of DEV_1_QUERY_1 ("京师学堂" is not in the context, "京师大学" is 75 characters from its answer_start)
    assert M.read_mrc.last_counts == {"re_anchored": 2, "skipped_answers": 3, "later_answer": 1, "left_out": 1,
                                      "repeated_ids": 1}
    logged = caplog.text
    assert "2 answer(s) re-anchored" in logged and "DEV_0_QUERY_0 (answers[0]: 13 -> 12)" in logged
    assert "1 question(s) left out of training" in logged and "DEV_1_QUERY_1" in logged
    # evaluation reads every reference answer of every question
    ev = M.read_mrc(published_path)
    assert len(ev) == 5 and all(len(e["answers"]) in (2, 3) for e in ev)


def test_training_proceeds_on_the_published_file(published_path, tmp_path):
    rep = run("mrc", ["--config_path", "bert/tiny_config.json", "--vocab_path", VOCAB, "--train_path", published_path,
                      "--dev_path", published_path, "--epochs_num", "1", "--max_steps", "2", "--batch_size", "4",
                      "--seq_length", "64", "--doc_stride", "32", "--no_progress",
                      "--output_model_path", str(tmp_path / "m.bin")])
    assert rep["train_examples"] == 5 and rep["history"][0]["dev"]["total"] == 5


# ---------------------------------------------------------------------------------------------- official EM/F1
def test_official_em_f1_hand_worked():
    f1, em = M.cmrc_f1, M.cmrc_em
    # punctuation of the script's list is removed before both: 《》 and · go, EM and F1 are 1
    assert em(["《哈利·波特》"], "哈利波特") == 1 and f1(["《哈利·波特》"], "哈利波特") == 1.0
    # ASCII parentheses are not in the list: nltk splits them off as tokens. gold 巴 塞 罗 那 ( barcelona ) (7),
    # prediction 巴 塞 罗 那 (4): LCS 4 -> P 1, R 4/7, F1 8/11; EM 0
    assert f1(["巴塞罗那(Barcelona)"], "巴塞罗那") == pytest.approx(8 / 11)
    assert em(["巴塞罗那(Barcelona)"], "巴塞罗那") == 0
    # English runs are word tokens: iphone 6s | iphone 6s plus -> LCS 2, P 2/3, R 1, F1 4/5
    assert f1(["iPhone 6s"], "iPhone 6s Plus") == pytest.approx(0.8)
    # nltk keeps "dr." whole before a name (an abbreviation, no sentence end) and splits "n't"
    assert M.mixed_segmentation("Dr. Smith说") == ["dr.", "smith", "说"]
    assert M.mixed_segmentation("I don't know") == ["i", "do", "n't", "know"]
    # the em dash is not in the list, and nltk 3.4.5 (the last that runs the Python 2 script) does not split
    # it: 2008——2012 is one token. gold [2008——2012, 年], prediction [2008, 年]: LCS 1 -> F1 1/2
    assert M.mixed_segmentation("2008——2012年", rm_punc=True) == ["2008——2012", "年"]
    assert f1(["2008——2012年"], "2008年") == pytest.approx(0.5)
    # only U+4E00..U+9FA5 count as Chinese: 〇 (U+3007) joins the non-Chinese run. gold 二 〇〇 八 年 (4),
    # prediction 二 〇〇 八 (3): LCS 3 -> P 1, R 3/4, F1 6/7
    assert f1(["二〇〇八年"], "二〇〇八") == pytest.approx(6 / 7)
    # the script's '……' is two characters and never matches one: a single … stays; '-' is removed inside a word
    assert M.remove_punctuation("等等……") == "等等……" and M.remove_punctuation("ω-force") == "ωforce"
    assert f1(["光荣和ω-force"], "光荣和ωforce") == 1.0
    # max over references; the longest common *contiguous* run
    assert f1(["北京", "北京大学"], "北京大学") == 1.0
    assert f1(["甲乙丙丁"], "甲丙丁") == pytest.approx(4 / 7)


def test_official_metrics_count_every_reference_question():
    """A repeated id is two questions of the reference file, both scored against the one prediction its id
    has in the {id: text} predictions file; a missing prediction counts 0."""
    gold = [("Q1", ["北京"]), ("Q2", ["上海", "上海市"]), ("Q1", ["1898年"]), ("Q3", ["广州"])]
    m = M.cmrc_metrics(gold, {"Q1": "北京", "Q2": "上海市"})
    # EM: 1 + 1 + 0 + 0 = 2 of 4; F1: 1 + 1 + 0 + 0
    assert (m["em"], m["f1"], m["total"], m["skip"]) == (50.0, 50.0, 4, 1)


def test_evaluate_files_matches_the_task(published_path, tmp_path):
    preds = {"DEV_0_QUERY_0": "J.K.罗琳", "DEV_0_QUERY_1": "1997", "DEV_0_QUERY_2": "霍格沃茨",
             "DEV_1_QUERY_1": "京师大学堂"}
    p = tmp_path / "pred.json"
    p.write_text(json.dumps(preds, ensure_ascii=False), encoding="utf-8")
    m = M.evaluate_files(published_path, str(p))
    # QUERY_0 EM 1 (and its repeat in DEV_1 gets "J.K.罗琳" against 1898年: 0); QUERY_1 "1997" is a reference:
    # EM 1; QUERY_2 "霍格沃茨" is a reference: 1; DEV_1_QUERY_1: 京师大学堂 vs 京师学堂 (LCS 京师, 2): P 2/5,
    # R 2/4, F1 4/9; vs 京师大学 (LCS 4): P 4/5, R 1, F1 8/9
    assert m["em"] == pytest.approx(100 * 3 / 5)
    assert m["f1"] == pytest.approx(100 * (3 + 8 / 9) / 5)


def test_tokenizer_agrees_with_nltk():
    """word_tokenize reproduces nltk 3.4.5's (the official script is Python 2, so it ran with nltk <= 3.4.5).
    The installed nltk (a newer version) agrees on everything but the later changes, which are the
    hand-worked cases above (em dash) and below (a leading single quote)."""
    nltk = pytest.importorskip("nltk", reason="nltk is in requirements-test.txt")
    t = nltk.tokenize.NLTKWordTokenizer()
    for s in ["iphone 6s plus", 'he said "hello" to me.', "don't stop", "they'll go", "3.5% of $100",
              "a&b; c@d #1", "(barcelona)", "[x] {y} <z>", "what? yes!", "u.s. army", "1,000 km", "hello, world",
              "it's john's", "cannot gonna", "«quoted» text", "‘single’ “double”", "end.", "o'neil", "x...y",
              "a--b", "tom's"]:
        assert M.treebank_tokenize(s) == t.tokenize(s), s
    assert M.treebank_tokenize("'hello' there") == ["'hello", "'", "there"]  # 3.4.5: a quote before a word stays
