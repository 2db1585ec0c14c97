"""CJRC (CAIL2019 reading comprehension, legal documents): span answers beside YES / NO answers and
unanswerable questions (`finetune/run_cmrc.py --task cjrc`).

Data (CAIL2019's, SQuAD 2.0-like): `{"data": [{"caseid", "domain": "civil"|"criminal", "paragraphs": [{"context",
"casename", "qas": [{"id", "question", "is_impossible": "true"|"false", "answers": [{"text", "answer_start"}]}]}]}]}`.
An answer is a span of the context, the text "YES" or "NO" (answer_start -1), or empty: `"answers": []` or
answers whose text is "" (unanswerable; the training files give one answer per question, dev and test three).
A question's type comes from its answers (the official evaluation reads only them); an `is_impossible` that
disagrees is counted and logged, not trusted. Training takes each question's first answer that can be used
(a span is placed as mrc.py places it).

Model: mrc.py's span head plus an answer-type head on the classification token's hidden state:
  output_layer.{weight,bias}        [2, hidden]  start and end logits (mrc.py's)
  answer_type_layer.{weight,bias}   [4, hidden]  span / yes / no / unknown (mrc.ANSWER_TYPES)
Loss: the span loss (yes, no and unknown windows point start and end at the classification token, as SQuAD
2.0's no-answer) + the cross-entropy of the window's type. A question's type at inference: span, yes and no
score the highest probability any window gives them, unknown the lowest (an answer exists when some window
finds it; no answer only when none does); a span question takes the best span of mrc.py's decoder.
Metric: EM and F1 of the official CJRC evaluation (CAIL2019 evaluate.py, after CoQA's): answers normalised
to their letters and digits, F1 over characters, an empty answer scores 1 only against an empty prediction,
and with several references each one is left out in turn and the scores averaged; reported in percent, with
per-domain figures and the accuracy of the answer type. Predictions: the official submission format, a JSON
list `[{"id": question id, "answer": text}]`, the text "YES", "NO" or "" for those types.
"""
import json
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import DataError
from . import data as D
from . import mrc as M
from .models import init_linear
from .tasks import TASKS

TYPES = M.ANSWER_TYPES
BOOLEANS = {"true": True, "false": False, True: True, False: False}


# ====================================================================== head
class AnswerTypeSpanExtractor(M.SpanExtractor):
    task = "cjrc"

    def __init__(self, config, vocab_size, backbone=None):
        super().__init__(config, vocab_size, backbone)
        self.answer_type_layer = nn.Linear(config.hidden_size, len(TYPES))
        init_linear(self.answer_type_layer)

    def forward(self, src, seg, cls_index=None):
        """-> (start_logits, end_logits [batch, seq], type_logits [batch, 4]); cls_index [batch]: where the
        classification token is (default 0, BERT's [CLS])."""
        hidden = self.encode(src, seg)
        start, end = self.output_layer(hidden).split(1, dim=-1)
        if cls_index is None:
            cls = hidden[:, 0]
        else:
            cls = hidden[torch.arange(hidden.size(0), device=hidden.device), cls_index]
        return start.squeeze(-1), end.squeeze(-1), self.answer_type_layer(self.dropout(cls))


# ====================================================================== data
def answer_type(text):
    return "yes" if text == "YES" else "no" if text == "NO" else "unknown" if not text.strip() else "span"


def read_cjrc(path, labeled=True, train=False):
    """CJRC JSON -> examples {qid, question, context, answers [texts; [""] for unanswerable], answer_type,
    answer_start, answer_text, domain, where}. answer_type / answer_start / answer_text: what training uses
    (train=True; answer_start None for a non-span type); a question none of whose answers can be used is left
    out of training (counted). Bad fields are one-line DataErrors naming the question."""
    d = D.read_json(path)
    if not isinstance(d, dict) or not isinstance(d.get("data"), list):
        raise DataError(f"{path}: expected a CJRC object {{\"data\": [{{\"paragraphs\": [...], \"domain\": ...}}]}}")
    examples, tally = [], M._Tally()
    for ai, article in enumerate(d["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{path}: data[{ai}] has no 'paragraphs' list")
        domain = article.get("domain") or ""
        for pi, para in enumerate(paragraphs):
            pwhere = f"{path}: data[{ai}].paragraphs[{pi}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) or not isinstance(para.get("qas"), list):
                raise DataError(f"{pwhere}: a paragraph needs a 'context' string and a 'qas' list")
            context = para["context"]
            for qi, qa in enumerate(para["qas"]):
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
                    raise DataError(f"{pwhere}: qas[{qi}] needs a 'question' string")
                qid = str(qa.get("id", f"{ai}_{pi}_{qi}")).strip()
                where = f"{path}: question {qid}"
                ex = {"qid": qid, "question": qa["question"], "context": context, "answers": [], "domain": domain,
                      "answer_type": None, "answer_start": None, "answer_text": None, "where": where}
                if labeled:
                    _read_answers(qa, ex, where, context, train, tally)
                examples.append(ex)
    if not examples:
        raise DataError(f"{path}: no questions")
    tally.report(path)
    return examples


def _read_answers(qa, ex, where, context, train, tally):
    impossible = qa.get("is_impossible", "")
    if impossible != "" and impossible not in BOOLEANS:
        raise DataError(f"{where}: is_impossible must be \"true\" or \"false\", got {impossible!r}")
    answers = qa.get("answers")
    if not isinstance(answers, list):
        raise DataError(f"{where}: 'answers' must be a list of {{\"text\", \"answer_start\"}} (empty: unanswerable), "
                        f"got {type(answers).__name__}")
    texts, starts = [], []
    for k, a in enumerate(answers):
        if not isinstance(a, dict) or not isinstance(a.get("text"), str):
            raise DataError(f"{where}: answers[{k}] needs a 'text' string (a span, \"YES\", \"NO\" or \"\")")
        s = a.get("answer_start", -1)
        if isinstance(s, str) and s.strip().lstrip("-").isdigit():
            s = int(s)
        if isinstance(s, bool) or not isinstance(s, int):
            raise DataError(f"{where}: answers[{k}].answer_start must be an integer, got {s!r}")
        texts.append(a["text"])
        starts.append(s)
    ex["answers"] = texts or [""]  # the official evaluation's reference for "answers": []
    first = answer_type(ex["answers"][0])
    if impossible != "" and BOOLEANS[impossible] != (first == "unknown"):
        tally.add("impossible_disagrees", ex["qid"], f"is_impossible {impossible}, answer type {first}")
    if not train:
        return
    for k, (text, s) in enumerate(zip(ex["answers"], starts or [-1])):
        kind = answer_type(text)
        if kind == "span":
            pos, how = M.place_answer(context, text, s)
            if pos is None:
                tally.add("skipped_answers", ex["qid"], f"answers[{k}]: {how}")
                continue
            if how == "re-anchored":
                tally.add("re_anchored", ex["qid"], f"answers[{k}]: {s} -> {pos}")
            ex["answer_start"], ex["answer_text"] = pos, text
        ex["answer_type"] = kind
        return
    tally.add("left_out", ex["qid"])


# ====================================================================== metric
# The official CJRC evaluation (CAIL2019 阅读理解/evaluate/evaluate.py, CoQA's script adapted), reproduced.
def normalize(s):
    return "".join(ch for ch in s.lower() if ch.isdigit() or ch.isalpha())


def _exact(gold, pred):
    return int(normalize(gold) == normalize(pred))


def _f1(gold, pred):
    g, p = list(normalize(gold)), list(normalize(pred))
    if not g or not p:
        return int(g == p)
    same = sum((Counter(g) & Counter(p)).values())
    if same == 0:
        return 0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def question_score(golds, pred):
    """-> (em, f1) of one question: with several references, the maximum over the others with each left
    out in turn, averaged (CoQA's rule); with one, against it."""
    if len(golds) > 1:
        em = sum(max(_exact(a, pred) for a in golds[:i] + golds[i + 1:]) for i in range(len(golds)))
        f1 = sum(max(_f1(a, pred) for a in golds[:i] + golds[i + 1:]) for i in range(len(golds)))
        return em / len(golds), f1 / len(golds)
    return max(_exact(a, pred) for a in golds), max(_f1(a, pred) for a in golds)


def cjrc_metrics(gold, predictions, domains=None):
    """gold: [(qid, [answer texts])] (an empty list counts as [""]); predictions {qid: text}; domains {qid:
    domain}. -> {"em", "f1", "avg", "total", "skip", "domains": {domain: {"em", "f1", "qas"}}}, em/f1 in
    percent (the official script rounds them to one decimal; here they are not rounded)."""
    em = f1 = 0.0
    skip = 0
    per = {}
    for qid, answers in gold:
        answers = list(answers) or [""]
        dom = (domains or {}).get(qid, "")
        d = per.setdefault(dom, [0.0, 0.0, 0])
        d[2] += 1
        if qid not in predictions:
            skip += 1
            continue
        e, f = question_score(answers, str(predictions[qid]))
        em, f1 = em + e, f1 + f
        d[0], d[1] = d[0] + e, d[1] + f
    n = len(gold)
    em, f1 = (100.0 * em / n, 100.0 * f1 / n) if n else (0.0, 0.0)
    return {"em": em, "f1": f1, "avg": (em + f1) / 2, "total": n, "skip": skip,
            "domains": {k: {"em": 100.0 * v[0] / v[2], "f1": 100.0 * v[1] / v[2], "qas": v[2]} for k, v in per.items()}}


# ====================================================================== task
@TASKS.register("cjrc")
class CjrcTask(M.MrcTask):
    name = "cjrc"
    script = "run_cmrc.py"
    description = "reading comprehension with span, YES / NO and unanswerable questions (CAIL2019 CJRC JSON)"
    main_metric = "avg"

    def read(self, path, labeled=True, train=False):
        return read_cjrc(path, labeled=labeled, train=train)

    def is_labeled(self, path):
        d = D.read_json(path)
        try:
            return any(qa.get("answers") or qa.get("is_impossible") in ("true", True)
                       for art in d["data"] for para in art["paragraphs"] for qa in para["qas"])
        except (KeyError, TypeError, AttributeError):
            return True  # the reader names what is wrong

    def has_gold(self, examples):
        return True

    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        return AnswerTypeSpanExtractor(config, vocab_size, backbone=backbone)

    def collate(self, feats):
        batch = super().collate(feats)
        batch["cls"] = torch.tensor([self.enc.cls_index(f["src"]) for f in feats], dtype=torch.long)
        if "type" in feats[0]:
            batch["type"] = torch.tensor([f["type"] for f in feats], dtype=torch.long)
        return batch

    def loss(self, model, batch):
        s, e, t = model(batch["src"], batch["seg"], batch["cls"])
        return model.loss(s, e, batch["start"], batch["end"]) + F.cross_entropy(t.float(), batch["type"])

    def outputs(self, model, batch):
        s, e, t = model(batch["src"], batch["seg"], batch["cls"])
        lengths = (batch["seg"] > 0).sum(1).tolist()
        s, e, t = s.float().cpu(), e.float().cpu(), torch.softmax(t.float(), -1).cpu()
        return [(s[i, :n], e[i, :n], t[i]) for i, n in enumerate(lengths)]

    def answer_types(self, examples, feats, outputs):
        """-> each example's predicted type: span, yes and no score the highest probability a window gives
        them, unknown the lowest."""
        best = {}
        for f, (_, _, p) in zip(feats, outputs):
            cur = best.get(f["example"])
            if cur is None:
                best[f["example"]] = p.clone()
            else:
                cur[:3] = torch.maximum(cur[:3], p[:3])
                cur[3] = torch.minimum(cur[3], p[3])
        return [TYPES[int(best[i].argmax())] if i in best else "unknown" for i in range(len(examples))]

    def decode(self, examples, feats, outputs, n_best=20):
        spans = super().decode(examples, feats, [(s, e) for s, e, _ in outputs], n_best)
        kinds = self.answer_types(examples, feats, outputs)
        return [{"yes": "YES", "no": "NO", "unknown": ""}.get(k, span) for k, span in zip(kinds, spans)]

    def evaluate(self, examples, preds):
        predictions = {ex["qid"]: p for ex, p in zip(examples, preds)}
        m = cjrc_metrics([(ex["qid"], ex["answers"]) for ex in examples], predictions,
                         {ex["qid"]: ex["domain"] for ex in examples})
        gold_types = [answer_type(ex["answers"][0]) for ex in examples]
        m["type_acc"] = sum(answer_type(p) == g for p, g in zip(preds, gold_types)) / max(1, len(examples))
        return m

    def summary(self, m):
        return (f"EM {m['em']:.3f} F1 {m['f1']:.3f} (avg {m['avg']:.3f}, {m['total']} questions), answer type "
                f"accuracy {m['type_acc']:.3f}")

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            json.dump([{"id": ex["qid"], "answer": p} for ex, p in zip(examples, preds)], f, ensure_ascii=False,
                      indent=2)
            f.write("\n")
