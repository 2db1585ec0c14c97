"""Metrics of generated text against gold text, at the character level (Chinese text has no word boundaries):

- exact_match: the share of predictions equal to their gold text;
- char_bleu: corpus BLEU (0-100) over characters, as sacrebleu's `corpus_bleu(preds, [golds], tokenize="char")`
  computes it (every non-space character a token, n-grams 1-4, brevity penalty, its default "exp" smoothing of
  a zero n-gram count); tests/test_text2text.py checks it against sacrebleu's numbers;
- rouge_l: ROUGE-L F1 over characters, averaged over the examples: LCS / len(pred) and LCS / len(gold), their
  harmonic mean (rouge_score's `fmeasure` for ROUGE-L with characters as tokens); whitespace is not a character.

Pure Python, no dependency: a few hundred dev examples take milliseconds.
"""
import math
from collections import Counter

MAX_ORDER = 4


def chars(text):
    """The tokens of the character-level metrics: every non-space character."""
    return [c for c in text if not c.isspace()]


def exact_match(preds, golds):
    _same_length(preds, golds)
    return sum(p == g for p, g in zip(preds, golds)) / len(golds) if golds else 0.0


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def char_bleu(preds, golds):
    """Corpus BLEU in [0, 100] with one reference per prediction, character tokens (see the module docstring)."""
    _same_length(preds, golds)
    correct, total = [0] * MAX_ORDER, [0] * MAX_ORDER
    sys_len = ref_len = 0
    for p, g in zip(preds, golds):
        p, g = chars(p), chars(g)
        sys_len += len(p)
        ref_len += len(g)
        for n in range(1, MAX_ORDER + 1):
            hyp, ref = _ngrams(p, n), _ngrams(g, n)
            correct[n - 1] += sum(min(c, ref[k]) for k, c in hyp.items())
            total[n - 1] += max(len(p) - n + 1, 0)
    if sys_len == 0 or correct[0] == 0:
        return 0.0
    logs, smooth = [], 1.0
    for n in range(MAX_ORDER):
        if total[n] == 0:  # sacrebleu: a precision left at 0 (its log a huge negative number)
            logs.append(-9999999999.0)
        elif correct[n] == 0:  # "exp" smoothing: 1 / 2^k for the k-th order with no match
            smooth *= 2
            logs.append(math.log(100.0 / (smooth * total[n])))
        else:
            logs.append(math.log(100.0 * correct[n] / total[n]))
    bp = 1.0 if sys_len >= ref_len else math.exp(1 - ref_len / sys_len)
    return bp * math.exp(sum(logs) / MAX_ORDER)


def lcs_length(a, b):
    """Length of the longest common subsequence of two sequences (O(len(a) x len(b)) time, O(len(b)) memory)."""
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0  # row[j - 1] of the previous row
        for j, y in enumerate(b, 1):
            cur = row[j]
            row[j] = prev + 1 if x == y else max(row[j], row[j - 1])
            prev = cur
    return row[-1]


def rouge_l(preds, golds):
    """Mean ROUGE-L F1 over the examples, character tokens; 0 for an example with an empty side."""
    _same_length(preds, golds)
    if not golds:
        return 0.0
    total = 0.0
    for p, g in zip(preds, golds):
        p, g = chars(p), chars(g)
        lcs = lcs_length(p, g)
        if lcs:
            prec, rec = lcs / len(p), lcs / len(g)
            total += 2 * prec * rec / (prec + rec)
    return total / len(golds)


def text_metrics(preds, golds):
    """-> {exact_match, bleu, rouge_l, total}: the fractions in [0, 1] but BLEU in [0, 100], as it is quoted."""
    return {"exact_match": exact_match(preds, golds), "bleu": char_bleu(preds, golds),
            "rouge_l": rouge_l(preds, golds), "total": len(golds)}


def _same_length(preds, golds):
    if len(preds) != len(golds):
        raise ValueError(f"{len(golds)} gold texts but {len(preds)} predictions")
