"""Metrics for the fine-tuning tasks: accuracy (+ per-class P/R/F1), entity-level P/R/F1 for BIO/BIOES
tagging, and CMRC 2018 EM/F1 exactly as the official cmrc2018_evaluate.py computes them."""
import re
from collections import Counter


# ---------------------------------------------------------------------- classification
def classification_metrics(gold, pred, labels_num=None):
    """gold, pred: sequences of int labels -> {"acc", "macro_f1", "per_class": {label: {p, r, f1, support}}}."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    n = len(gold)
    correct = sum(int(g == p) for g, p in zip(gold, pred))
    labels = sorted(set(gold) | set(pred) | (set(range(labels_num)) if labels_num else set()))
    per_class = {}
    for c in labels:
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        n_pred = sum(1 for p in pred if p == c)
        n_gold = sum(1 for g in gold if g == c)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_gold if n_gold else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[c] = {"precision": prec, "recall": rec, "f1": f1, "support": n_gold}
    macro = sum(v["f1"] for v in per_class.values()) / len(per_class) if per_class else 0.0
    return {"acc": correct / n if n else 0.0, "correct": correct, "total": n, "macro_f1": macro,
            "per_class": per_class}


# ---------------------------------------------------------------------- tagging
def get_entities(tags):
    """BIO (or BIOES) tag sequence -> set of (type, start, end) spans, end inclusive.

    An entity starts at B-X (or S-X, or an I-X/E-X that does not continue an entity of type X, as
    conlleval does) and continues over I-X/E-X of the same type; E-X and S-X close it."""
    entities = []
    cur_type, cur_start = None, None

    def close(end):
        nonlocal cur_type, cur_start
        if cur_type is not None:
            entities.append((cur_type, cur_start, end))
        cur_type, cur_start = None, None

    for i, tag in enumerate(tags):
        if tag is None or tag == "O" or "-" not in tag:
            close(i - 1)
            continue
        prefix, typ = tag.split("-", 1)
        prefix = prefix.upper()
        if prefix == "B":
            close(i - 1)
            cur_type, cur_start = typ, i
        elif prefix == "S":
            close(i - 1)
            entities.append((typ, i, i))
        elif prefix in ("I", "M", "E"):
            if cur_type != typ:
                close(i - 1)
                cur_type, cur_start = typ, i
            if prefix == "E":
                close(i)
        else:
            close(i - 1)
    close(len(tags) - 1)
    return set(entities)


def entity_metrics(gold_seqs, pred_seqs):
    """Entity-level micro P/R/F1 over sentences of string tags: a predicted entity counts only when its
    type, start and end all match a gold entity (partial overlaps are wrong)."""
    if len(gold_seqs) != len(pred_seqs):
        raise ValueError(f"{len(gold_seqs)} gold sequences but {len(pred_seqs)} predicted")
    n_gold = n_pred = n_correct = 0
    by_type = {}
    for i, (g, p) in enumerate(zip(gold_seqs, pred_seqs)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        ge, pe = get_entities(g), get_entities(p)
        n_gold += len(ge)
        n_pred += len(pe)
        n_correct += len(ge & pe)
        for kind, ents in (("gold", ge), ("pred", pe), ("correct", ge & pe)):
            for e in ents:
                by_type.setdefault(e[0], Counter())[kind] += 1
    prec = n_correct / n_pred if n_pred else 0.0
    rec = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    per_type = {}
    for t, c in sorted(by_type.items()):
        tp, tr = (c["correct"] / c["pred"] if c["pred"] else 0.0), (c["correct"] / c["gold"] if c["gold"] else 0.0)
        per_type[t] = {"precision": tp, "recall": tr, "f1": 2 * tp * tr / (tp + tr) if tp + tr else 0.0,
                       "support": c["gold"]}
    return {"precision": prec, "recall": rec, "f1": f1, "gold_entities": n_gold, "pred_entities": n_pred,
            "correct_entities": n_correct, "per_type": per_type}


# ---------------------------------------------------------------------- CMRC 2018
# The official evaluation script (cmrc2018_evaluate.py, ymcui/cmrc2018), replicated: the same
# punctuation list (including its two-character '……', which therefore never matches a single
# character), the same mixed segmentation and the same longest-common-*substring* F1.
CMRC_PUNCT = ['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=',
              '，', '。', '：', '？', '！', '“', '”', '；', '’', '《', '》', '……', '·', '、',
              '「', '」', '（', '）', '－', '～', '『', '』']
_CMRC_PUNCT_SET = set(CMRC_PUNCT)
_CJK = re.compile(r'[\u4e00-\u9fa5]')
# Stand-in for nltk.word_tokenize on the non-Chinese runs (nltk needs downloaded data): words and
# numbers (with inner . , ' -) stay whole, other punctuation splits off. Identical on Chinese text.
_WORD = re.compile(r"[A-Za-z0-9\u00C0-\u024F]+(?:[.,'’][A-Za-z0-9\u00C0-\u024F]+)*|[^\sA-Za-z0-9\u00C0-\u024F]")


def _word_tokenize(s):
    return _WORD.findall(s)


def mixed_segmentation(in_str, rm_punc=False):
    in_str = str(in_str).lower().strip()
    segs_out = []
    temp_str = ""
    for char in in_str:
        if rm_punc and char in _CMRC_PUNCT_SET:
            continue
        if _CJK.search(char) or char in _CMRC_PUNCT_SET:
            if temp_str != "":
                segs_out.extend(_word_tokenize(temp_str))
                temp_str = ""
            segs_out.append(char)
        else:
            temp_str += char
    if temp_str != "":
        segs_out.extend(_word_tokenize(temp_str))
    return segs_out


def remove_punctuation(in_str):
    in_str = str(in_str).lower().strip()
    return "".join(ch for ch in in_str if ch not in _CMRC_PUNCT_SET)


def find_lcs(s1, s2):
    """Longest common contiguous run of two token lists -> (run, length), as the official script."""
    m = [[0] * (len(s2) + 1) for _ in range(len(s1) + 1)]
    mmax, p = 0, 0
    for i in range(len(s1)):
        for j in range(len(s2)):
            if s1[i] == s2[j]:
                m[i + 1][j + 1] = m[i][j] + 1
                if m[i + 1][j + 1] > mmax:
                    mmax = m[i + 1][j + 1]
                    p = i + 1
    return s1[p - mmax:p], mmax


def cmrc_f1(answers, prediction):
    """Max over the gold answers of the character-level (mixed segmentation) LCS F1, in [0, 1]."""
    scores = []
    for ans in answers:
        ans_segs = mixed_segmentation(ans, rm_punc=True)
        pred_segs = mixed_segmentation(prediction, rm_punc=True)
        _, lcs_len = find_lcs(ans_segs, pred_segs)
        if lcs_len == 0:
            scores.append(0.0)
            continue
        precision = lcs_len / len(pred_segs)
        recall = lcs_len / len(ans_segs)
        scores.append(2 * precision * recall / (precision + recall))
    return max(scores) if scores else 0.0


def cmrc_em(answers, prediction):
    """1 when the prediction equals a gold answer after lower-casing and removing punctuation."""
    pred = remove_punctuation(prediction)
    return int(any(remove_punctuation(a) == pred for a in answers))


def cmrc_metrics(gold, predictions):
    """gold: {qid: [answer texts]}, predictions: {qid: text} -> {"em", "f1", "avg", "total", "skip"} with
    em/f1 in percent as the official script reports them (a missing prediction scores 0)."""
    f1 = em = 0.0
    skip = 0
    for qid, answers in gold.items():
        if qid not in predictions:
            skip += 1
            continue
        f1 += cmrc_f1(answers, predictions[qid])
        em += cmrc_em(answers, predictions[qid])
    n = len(gold)
    f1 = 100.0 * f1 / n if n else 0.0
    em = 100.0 * em / n if n else 0.0
    return {"em": em, "f1": f1, "avg": (em + f1) / 2, "total": n, "skip": skip}
