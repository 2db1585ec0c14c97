"""Point 2: metrics checked against values worked out by hand; the CRF against brute force."""
import itertools
import math

import pytest
import torch

from uer_like.finetune.crf import CRF
from uer_like.finetune.classification import classification_metrics
from uer_like.finetune.mrc import cmrc_em, cmrc_f1, cmrc_metrics, mixed_segmentation
from uer_like.finetune.tagging import entity_metrics, get_entities


def test_accuracy_and_per_class():
    m = classification_metrics([0, 1, 2, 1], [0, 2, 2, 1])
    assert m["acc"] == 0.75 and m["correct"] == 3 and m["total"] == 4
    # class 2: tp 1, predicted 2, gold 1 -> P 0.5, R 1, F1 2/3; class 1: P 1, R 0.5, F1 2/3; class 0: 1
    assert m["per_class"][2]["precision"] == 0.5 and m["per_class"][2]["recall"] == 1.0
    assert m["per_class"][1]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_entities_bio():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC", "B-ORG", "B-ORG", "I-LOC"]
    # a stray I- starts an entity (conlleval); adjacent B-ORG are two entities
    assert get_entities(tags) == {("PER", 0, 1), ("LOC", 3, 5), ("ORG", 6, 6), ("ORG", 7, 7), ("LOC", 8, 8)}
    assert get_entities(["S-PER", "B-LOC", "E-LOC", "O"]) == {("PER", 0, 0), ("LOC", 1, 2)}


def test_entity_f1_partial_entities_do_not_count():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC"],
            ["B-ORG", "I-ORG", "O", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"],   # PER right; LOC cut short: wrong
            ["B-LOC", "I-LOC", "O", "B-PER"]]                # right span, wrong type: wrong; extra PER
    m = entity_metrics(gold, pred)
    # gold 3 entities, predicted 4, correct 1 -> P 1/4, R 1/3, F1 2/7
    assert (m["gold_entities"], m["pred_entities"], m["correct_entities"]) == (3, 4, 1)
    assert m["precision"] == pytest.approx(0.25)
    assert m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(2 / 7)
    assert m["per_type"]["PER"]["precision"] == pytest.approx(0.5)
    assert entity_metrics([["O", "O"]], [["O", "O"]])["f1"] == 0.0


def test_cmrc_segmentation():
    assert mixed_segmentation("iPhone 6s于2015年发布", rm_punc=True) == ["iphone", "6s", "于", "2015", "年", "发", "布"]
    assert mixed_segmentation("《北京》，", rm_punc=True) == ["北", "京"]
    assert mixed_segmentation("《北京》", rm_punc=False) == ["《", "北", "京", "》"]


def test_cmrc_em_f1_by_hand():
    assert cmrc_em(["北京大学"], "北京大学。") == 1          # punctuation-insensitive
    assert cmrc_em(["北京大学"], "北京") == 0
    assert cmrc_f1(["北京大学"], "北京大学。") == 1.0
    assert cmrc_f1(["北京大学"], "北京") == pytest.approx(2 / 3)  # P 1, R 1/2
    # longest common *contiguous* run as the official script: 丙丁 (2), not the subsequence 甲丙丁 (3)
    # P 2/3, R 2/4 -> F1 4/7
    assert cmrc_f1(["甲乙丙丁"], "甲丙丁") == pytest.approx(4 / 7)
    assert cmrc_f1(["iPhone 6s"], "iPhone") == pytest.approx(2 / 3)  # English words are whole tokens
    assert cmrc_f1(["北京", "北京大学"], "北京大学") == 1.0             # max over the gold answers
    assert cmrc_em(["ABC"], "abc") == 1                                 # lower-cased
    assert cmrc_f1(["北京"], "上海") == 0.0
    m = cmrc_metrics({"q1": ["北京大学"], "q2": ["甲乙丙丁"], "q3": ["上海"]}, {"q1": "北京大学", "q2": "甲丙丁"})
    # q3 has no prediction: counts 0. EM (1+0+0)/3, F1 (1 + 4/7 + 0)/3, in percent
    assert m["em"] == pytest.approx(100 / 3)
    assert m["f1"] == pytest.approx(100 * (1 + 4 / 7) / 3)
    assert m["skip"] == 1 and m["avg"] == pytest.approx((m["em"] + m["f1"]) / 2)


def test_crf_against_brute_force():
    torch.manual_seed(0)
    n_tags, t = 3, 4
    crf = CRF(n_tags)
    em = torch.randn(2, t, n_tags)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    tags = torch.tensor([[0, 2, 1, 1], [2, 0, 0, 0]])

    def score(e, path):
        s = crf.start_transitions[path[0]] + e[0, path[0]]
        for i in range(1, len(path)):
            s = s + crf.transitions[path[i - 1], path[i]] + e[i, path[i]]
        return s + crf.end_transitions[path[-1]]

    with torch.no_grad():
        nll = crf(em, tags, mask, reduction="none")
    best = crf.decode(em, mask)
    for b in range(2):
        n = int(mask[b].sum())
        paths = list(itertools.product(range(n_tags), repeat=n))
        scores = torch.stack([score(em[b], p) for p in paths])
        log_z = torch.logsumexp(scores, 0)
        gold = score(em[b], tags[b, :n].tolist())
        assert float(nll[b]) == pytest.approx(float((log_z - gold).detach()), abs=1e-5)
        assert tuple(best[b]) == paths[int(scores.argmax())]
    with torch.no_grad():
        assert math.isclose(float(crf(em, tags, mask)), float(nll.mean()), rel_tol=1e-6)
