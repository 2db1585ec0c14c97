"""Span-extraction reading comprehension: CMRC 2018, DRCD, SQuAD-style JSON (finetune/run_cmrc.py).

Data: `{"data": [{"paragraphs": [{"context", "qas": [{"id", "question", "answers": [{"text",
"answer_start"}]}]}]}]}`, read as published: the official files have answers whose answer_start is off by
a few characters, paraphrased human answers that do not occur in the context (answer_start -1), several
reference answers per question and question ids that repeat across articles. Training uses each
question's first answer that can be placed in the context: one whose answer_start points at its text is
kept; one that does not is re-anchored to the nearest occurrence of its text within ANCHOR_WINDOW
characters (or, with answer_start -1, to its only occurrence); one that cannot be placed is skipped, and a
question without a placed answer is left out of training. Every re-anchored or skipped answer is counted
and the first ids are logged; nothing stops the run. Evaluation uses all reference answers.
Input: `[CLS] question [SEP] context window [SEP]`, windows sliding by --doc_stride tokens.

Head (parameter names, a file-format contract; UER-py's run_cmrc.py uses the same):
  output_layer.{weight,bias}   [2, hidden]   start and end logits of every token
Loss: the mean of the start and end cross-entropies. Metric: (EM + F1) / 2 of the official CMRC 2018
evaluation script (cmrc2018_evaluate.py), reproduced below. Predictions: a JSON object
{question id: answer text}, the official script's input.
"""
import json
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import DataError
from ..flags import COUNT
from . import data as D
from .models import TaskModel, init_linear
from .tasks import TASKS, Task, logger

ANCHOR_WINDOW = 32  # characters around a wrong answer_start searched for the answer text


# ====================================================================== head
class SpanExtractor(TaskModel):
    task = "mrc"

    def __init__(self, config, vocab_size, backbone=None):
        super().__init__(config, vocab_size, backbone)
        self.output_layer = nn.Linear(config.hidden_size, 2)
        init_linear(self.output_layer)

    def forward(self, src, seg):
        """-> (start_logits, end_logits), each [batch, seq]."""
        logits = self.output_layer(self.encode(src, seg))
        start, end = logits.split(1, dim=-1)
        return start.squeeze(-1), end.squeeze(-1)

    @staticmethod
    def loss(start_logits, end_logits, start, end):
        n = start_logits.size(1)
        start, end = start.clamp(0, n - 1), end.clamp(0, n - 1)
        return (F.cross_entropy(start_logits.float(), start) + F.cross_entropy(end_logits.float(), end)) / 2

# ====================================================================== data
def place_answer(context, text, start, window=ANCHOR_WINDOW):
    """-> (start, how): how is "ok" when context[start:] begins with text, "re-anchored" when the text was
    found near start (or, for start < 0, once in the whole context), else (None, why not)."""
    if not text.strip():
        return None, "empty answer"
    if start >= 0 and context[start:start + len(text)] == text:
        return start, "ok"
    hits = [m.start() for m in re.finditer(re.escape(text), context)]
    if not hits:
        return None, "not in the context"
    if start < 0:
        return (hits[0], "re-anchored") if len(hits) == 1 else (None, "answer_start -1 and several occurrences")
    best = min(hits, key=lambda h: (abs(h - start), h))
    if abs(best - start) <= window:
        return best, "re-anchored"
    return None, f"answer_start {start} is {abs(best - start)} characters from the nearest occurrence"


READ_COUNTS = {  # key in read_mrc.last_counts -> what the log line says
    "re_anchored": "answer(s) re-anchored to the nearest occurrence of their text",
    "skipped_answers": "answer(s) that could not be placed in the context, skipped",
    "later_answer": "question(s) trained on a later reference answer (the first could not be placed)",
    "left_out": "question(s) left out of training (no answer could be placed)",
    "repeated_ids": "question id(s) repeated (predictions are keyed by id: the last one is used for all)",
    "impossible_disagrees": "question(s) whose is_impossible disagrees with the answers (CJRC: the answers are "
                            "used, as the official evaluation does)",
}


class _Tally:
    """Counts of re-anchored / skipped answers with the first few question ids (and why), logged once."""

    def __init__(self):
        self.counts, self.ids = {}, {}

    def add(self, key, qid, why=None):
        self.counts[key] = self.counts.get(key, 0) + 1
        ids = self.ids.setdefault(key, [])
        if len(ids) < 5:
            ids.append(f"{qid} ({why})" if why else qid)

    def report(self, path):
        for key, n in self.counts.items():
            logger.warning("%s: %d %s; first: %s", path, n, READ_COUNTS[key], ", ".join(self.ids[key]))


def read_mrc(path, labeled=True, train=False, window=ANCHOR_WINDOW):
    """SQuAD-style JSON -> examples {qid, question, context, answers [texts], answer_start, answer_text, where}.

    answers: every reference answer's text (for evaluation). answer_start / answer_text: the answer placed in
    the context for training (train=True; see the module docstring), answer_start None when none could be
    placed. Returns the examples; `read_mrc.last_counts` holds the counts of the last call."""
    d = D.read_json(path)
    if not isinstance(d, dict) or not isinstance(d.get("data"), list):
        raise DataError(f"{path}: expected a SQuAD-style object {{\"data\": [{{\"paragraphs\": [...]}}]}}")
    examples, seen, repeated = [], set(), []
    tally = _Tally()
    for ai, article in enumerate(d["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{path}: data[{ai}] has no 'paragraphs' list")
        for pi, para in enumerate(paragraphs):
            pwhere = f"{path}: data[{ai}].paragraphs[{pi}]" + (f" (id {para.get('id')})" if isinstance(para, dict) and para.get("id") else "")
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) or not isinstance(para.get("qas"), list):
                raise DataError(f"{pwhere}: a paragraph needs a 'context' string and a 'qas' list")
            context = para["context"]
            if not context.strip():
                raise DataError(f"{pwhere}: empty context")
            for qi, qa in enumerate(para["qas"]):
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
                    raise DataError(f"{pwhere}: qas[{qi}] needs a 'question' string")
                qid = str(qa.get("id", f"{ai}_{pi}_{qi}")).strip()
                where = f"{path}: question {qid}"
                if qid in seen:
                    repeated.append(qid)
                seen.add(qid)
                answers, starts = [], []
                if labeled:
                    ans = qa.get("answers")
                    if not isinstance(ans, list) or not ans:
                        raise DataError(f"{where}: no 'answers' list (inference on unlabeled data: use --prediction_path "
                                        "without evaluation)")
                    for k, a in enumerate(ans):
                        if not isinstance(a, dict) or not isinstance(a.get("text"), str):
                            raise DataError(f"{where}: answers[{k}] needs a 'text' string")
                        s = a.get("answer_start", -1)
                        if isinstance(s, str) and s.strip().lstrip("-").isdigit():
                            s = int(s)
                        if isinstance(s, bool) or not isinstance(s, int):
                            raise DataError(f"{where}: answers[{k}].answer_start must be an integer, got {s!r}")
                        answers.append(a["text"])
                        starts.append(s)
                ex = {"qid": qid, "question": qa["question"], "context": context, "answers": answers,
                      "answer_start": None, "answer_text": None, "where": where}
                if train and labeled:
                    for k, (text, s) in enumerate(zip(answers, starts)):
                        pos, how = place_answer(context, text, s, window)
                        if pos is None:
                            tally.add("skipped_answers", qid, f"answers[{k}]: {how}")
                            continue
                        if how == "re-anchored":
                            tally.add("re_anchored", qid, f"answers[{k}]: {s} -> {pos}")
                        if k > 0:
                            tally.add("later_answer", qid)
                        ex["answer_start"], ex["answer_text"] = pos, text
                        break
                    if ex["answer_start"] is None:
                        tally.add("left_out", qid)
                examples.append(ex)
    if not examples:
        raise DataError(f"{path}: no questions")
    for qid in repeated:
        tally.add("repeated_ids", qid)
    tally.report(path)
    read_mrc.last_counts = dict(tally.counts)
    return examples


read_mrc.last_counts = {}


# answer types of the CJRC reader (cjrc.py): an example's `answer_type`, a training window's `type` label
ANSWER_TYPES = ("span", "yes", "no", "unknown")


def encode_mrc(examples, enc, seq_length, doc_stride=128, max_query_length=64, train=False):
    """[CLS] question [SEP] context window [SEP] (XLNet: question <sep> window <sep> <cls>); windows slide by
    doc_stride over long contexts. Training windows that do not contain the answer point start/end at the
    classification token ([CLS], index 0; XLNet's <cls>, last); training examples without a placed answer
    (answer_start None) are left out.

    Examples with an `answer_type` (CJRC, cjrc.py; ANSWER_TYPES) also give each training window a `type`
    label (its index in ANSWER_TYPES): a span question's window holding the span is "span" and its other
    windows "unknown" (the answer is not in them); a yes, no or unknown question's windows all carry its type
    and point start/end at the classification token."""
    D.check_seq_length(seq_length, "mrc", enc.pair_specials - 3)
    feats, skipped = [], []
    cache = {}
    for i, ex in enumerate(examples):
        q = enc.ids(ex["question"])[:max_query_length]
        key = ex["context"]
        if key not in cache:
            cache[key] = enc.spans(key)
        ctx_ids, ctx_spans = cache[key]
        room = seq_length - len(q) - enc.pair_specials
        if room < 1:
            raise DataError(f"{ex['where']}: --seq_length {seq_length} leaves no room for the context after a "
                            f"{len(q)}-token question; raise --seq_length above --max_query_length + "
                            f"{enc.pair_specials}, or lower --max_query_length")
        tok_start = tok_end = None
        kind = ex.get("answer_type")
        if train and kind not in (None, "span"):
            pass  # yes / no / unknown: no span to point at
        elif train and ex["answer_start"] is None:
            continue
        elif train:
            s = ex["answer_start"]
            e = s + len(ex["answer_text"])
            inside = [k for k, (a, b) in enumerate(ctx_spans) if a < e and b > s]
            if not inside:  # e.g. an answer of spaces only: nothing to point at
                skipped.append(ex["qid"])
                continue
            tok_start, tok_end = inside[0], inside[-1]
        windows = D.windows(len(ctx_ids), room, doc_stride)
        for w, (ws, wl) in enumerate(windows):
            src, seg, _, ctx_offset = enc.pack(q, ctx_ids[ws:ws + wl])
            token_map, max_ctx = {}, {}
            for k in range(wl):
                token_map[ctx_offset + k] = ws + k
                max_ctx[ctx_offset + k] = _is_max_context(windows, w, ws + k)
            f = {"src": src, "seg": seg, "example": i, "token_map": token_map, "max_context": max_ctx,
                 "spans": ctx_spans}
            if train:
                if tok_start is not None and ws <= tok_start and tok_end < ws + wl:
                    f["start"], f["end"] = tok_start - ws + ctx_offset, tok_end - ws + ctx_offset
                    label = "span"
                else:
                    f["start"] = f["end"] = enc.cls_index(src)
                    label = kind if kind in ("yes", "no") else "unknown"
                if kind is not None:
                    f["type"] = ANSWER_TYPES.index(label)
            feats.append(f)
    if skipped:
        logger.warning("%d training question(s) skipped: the answer covers no token of the context (first: %s)",
                       len(skipped), ", ".join(skipped[:5]))
    return feats


def _is_max_context(windows, cur, pos):
    """Google BERT's rule: a token seen in several windows belongs to the one where it has the most context."""
    best_score, best = None, None
    for w, (start, length) in enumerate(windows):
        end = start + length - 1
        if pos < start or pos > end:
            continue
        score = min(pos - start, end - pos) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best = score, w
    return cur == best


# ====================================================================== metric
# The official CMRC 2018 evaluation (cmrc2018_evaluate.py, ymcui/cmrc2018, squad-style-data/), reproduced:
# the same punctuation list (its two-character '……' never matches a single character), lower-casing, the
# "mixed segmentation" (each character in U+4E00..U+9FA5 and each listed punctuation mark is a token, the
# runs of other characters are split by nltk.word_tokenize), F1 from the longest common *contiguous* token
# run, EM on the punctuation-free strings, the maximum over the reference answers, and every question of
# the reference file counted (a repeated id is scored against the one prediction its id has; a missing
# prediction scores 0). The script is Python 2, so it runs with nltk <= 3.4.5, whose word_tokenize is
# reproduced by word_tokenize() below without nltk.
CMRC_PUNCT = ['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=',
              '，', '。', '：', '？', '！', '“', '”', '；', '’', '《', '》', '……', '·', '、',
              '「', '」', '（', '）', '－', '～', '『', '』']
_CMRC_PUNCT_SET = set(CMRC_PUNCT)
_CJK = re.compile(r'[\u4e00-\u9fa5]')

# nltk 3.4.5's word_tokenize: its TreebankWordTokenizer with the four "improved" rules nltk/tokenize/
# __init__.py inserts (Penn Treebank conventions; nltk is Apache-2.0). Patterns nltk compiled without re.U
# matched ASCII classes only under the Python 2 the official script needs, hence re.ASCII on those.
_A, _U = re.ASCII, 0
_STARTING_QUOTES = [
    (re.compile('([«“‘„]|[`]+)', _U), r' \1 '),
    (re.compile(r'^\"', _A), r'``'),
    (re.compile(r'(``)', _A), r' \1 '),
    (re.compile(r"([ \(\[{<])(\"|\'{2})", _A), r'\1 `` '),
    (re.compile(r"(?i)(\')(?!re|ve|ll|m|t|s|d)(\w)\b", _U), r'\1 \2'),
]
_PUNCTUATION = [
    (re.compile(r'([^\.])(\.)([\]\)}>"\'' '»”’ ' r']*)\s*$', _U), r'\1 \2 \3 '),
    (re.compile(r'([:,])([^\d])', _A), r' \1 \2'),
    (re.compile(r'([:,])$', _A), r' \1 '),
    (re.compile(r'\.\.\.', _A), r' ... '),
    (re.compile(r'[;@#$%&]', _A), r' \g<0> '),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$', _A), r'\1 \2\3 '),
    (re.compile(r'[?!]', _A), r' \g<0> '),
    (re.compile(r"([^'])' ", _A), r"\1 ' "),
]
_PARENS_BRACKETS = (re.compile(r'[\]\[\(\)\{\}\<\>]', _A), r' \g<0> ')
_DOUBLE_DASHES = (re.compile(r'--', _A), r' -- ')
_ENDING_QUOTES = [
    (re.compile('([»”’])', _U), r' \1 '),
    (re.compile(r'"', _A), " '' "),
    (re.compile(r'(\S)(\'\')', _A), r'\1 \2 '),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') ", _A), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", _A), r"\1 \2 "),
]
_CONTRACTIONS = [re.compile(p, _A) for p in (
    r"(?i)\b(can)(not)\b", r"(?i)\b(d)('ye)\b", r"(?i)\b(gim)(me)\b", r"(?i)\b(gon)(na)\b", r"(?i)\b(got)(ta)\b",
    r"(?i)\b(lem)(me)\b", r"(?i)\b(mor)('n)\b", r"(?i)\b(wan)(na)\s", r"(?i) ('t)(is)\b", r"(?i) ('t)(was)\b")]


def treebank_tokenize(text):
    """nltk 3.4.5's improved TreebankWordTokenizer().tokenize (one sentence)."""
    for regexp, sub in _STARTING_QUOTES + _PUNCTUATION + [_PARENS_BRACKETS, _DOUBLE_DASHES]:
        text = regexp.sub(sub, text)
    text = " " + text + " "
    for regexp, sub in _ENDING_QUOTES:
        text = regexp.sub(sub, text)
    for regexp in _CONTRACTIONS:
        text = regexp.sub(r' \1 \2 ', text)
    return text.split()


# Sentence splitting: word_tokenize first splits the text with nltk's pretrained English Punkt model (nltk
# data, not a package). Only a period inside a run can make a difference (the treebank rules split off a
# final period, and "?"/"!" anyway); Punkt ends a sentence at a word ending in "." unless it takes the word
# for an abbreviation, an initial or an ordinal. Approximated here: no break after a known abbreviation, a
# word with an inner period (u.s.), a single letter or a number followed by a lower-case word.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr inc ltd co corp vs etc no fig jan feb mar apr jun jul aug sep sept oct nov dec "
    "mt gen gov sen rep rev col lt capt sgt ft ave blvd dept univ assn bros est approx".split())
_NUMBER = re.compile(r'^-?[\.,]?\d[\d,\.-]*$')


def _sentences(text):
    words = list(re.finditer(r'\S+', text))
    out, start = [], 0
    for i, m in enumerate(words[:-1]):
        w = m.group()
        if not w.endswith('.') or w.endswith('..'):
            continue
        core = w[:-1].lstrip('([{"\'`').lower()
        nxt = words[i + 1].group()
        if core in _ABBREVIATIONS or '.' in core:
            continue
        if (len(core) == 1 and core.isalpha() or _NUMBER.match(core)) and nxt[:1].islower():
            continue
        out.append(text[start:m.end()])
        start = m.end()
    out.append(text[start:])
    return [s for s in out if s.strip()]


def word_tokenize(text):
    """nltk.word_tokenize of nltk 3.4.5 (Punkt sentence splitting approximated, see _sentences)."""
    return [tok for sent in _sentences(text) for tok in treebank_tokenize(sent)]


def mixed_segmentation(in_str, rm_punc=False):
    in_str = str(in_str).lower().strip()
    segs_out = []
    temp_str = ""
    for char in in_str:
        if rm_punc and char in _CMRC_PUNCT_SET:
            continue
        if _CJK.search(char) or char in _CMRC_PUNCT_SET:
            if temp_str != "":
                segs_out.extend(word_tokenize(temp_str))
                temp_str = ""
            segs_out.append(char)
        else:
            temp_str += char
    if temp_str != "":
        segs_out.extend(word_tokenize(temp_str))
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
    """Max over the reference answers of the mixed-segmentation LCS F1, in [0, 1]."""
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
    """1 when the prediction equals a reference answer after lower-casing and removing punctuation."""
    pred = remove_punctuation(prediction)
    return int(any(remove_punctuation(a) == pred for a in answers))


def cmrc_metrics(gold, predictions):
    """gold: the reference questions in file order, as [(qid, [answer texts]), ...] (a repeated id is its own
    question) or a dict {qid: [answer texts]}; predictions: {qid: text}. -> {"em", "f1", "avg", "total",
    "skip"}, em/f1 in percent as the official script reports them (a missing prediction scores 0)."""
    items = list(gold.items()) if isinstance(gold, dict) else list(gold)
    f1 = em = 0.0
    skip = 0
    for qid, answers in items:
        qid = str(qid).strip()
        if qid not in predictions:
            skip += 1
            continue
        f1 += cmrc_f1(answers, str(predictions[qid]))
        em += cmrc_em(answers, str(predictions[qid]))
    n = len(items)
    f1 = 100.0 * f1 / n if n else 0.0
    em = 100.0 * em / n if n else 0.0
    return {"em": em, "f1": f1, "avg": (em + f1) / 2, "total": n, "skip": skip}


def evaluate_files(dataset_path, prediction_path):
    """The official script's computation on its two inputs: the reference JSON and the {id: text} predictions."""
    d = D.read_json(dataset_path)
    gold = [(qa["id"], [a["text"] for a in qa["answers"]]) for art in d["data"] for para in art["paragraphs"]
            for qa in para["qas"]]
    return cmrc_metrics(gold, D.read_json(prediction_path))


# ====================================================================== task
@TASKS.register("mrc")
class MrcTask(Task):
    name = "mrc"
    script = "run_cmrc.py"
    description = "span-extraction reading comprehension (CMRC 2018 / DRCD / SQuAD-style JSON)"
    main_metric = "avg"
    defaults = {"seq_length": 512}

    @staticmethod
    def add_args(g):
        g.add_argument("--doc_stride", type=COUNT, default=None, help="tokens between window starts (default 128)")
        g.add_argument("--max_query_length", type=COUNT, default=None, help="question tokens kept (default 64)")
        g.add_argument("--max_answer_length", type=COUNT, default=None, help="longest answer in tokens (default 50)")

    def __init__(self, args, encoder, meta=None):
        super().__init__(args, encoder, meta)
        for k, v in {"doc_stride": 128, "max_query_length": 64, "max_answer_length": 50}.items():
            if getattr(args, k, None) is None:
                setattr(args, k, self.saved.get(k, v))

    def meta(self):
        return {**super().meta(), "doc_stride": self.args.doc_stride, "max_query_length": self.args.max_query_length,
                "max_answer_length": self.args.max_answer_length}

    def read(self, path, labeled=True, train=False):
        try:
            return read_mrc(path, labeled=labeled, train=train)
        except DataError as e:
            if not labeled or train or "no 'answers'" not in str(e):
                raise
            return read_mrc(path, labeled=False)

    def has_gold(self, examples):
        return all(ex["answers"] for ex in examples)

    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        return SpanExtractor(config, vocab_size, backbone=backbone)

    def encode(self, examples, train=False):
        return encode_mrc(examples, self.enc, self.args.seq_length, self.args.doc_stride,
                          self.args.max_query_length, train=train)

    def collate(self, feats):
        batch = {"src": D.pad([f["src"] for f in feats], self.enc.pad_id), "seg": D.pad([f["seg"] for f in feats], 0)}
        if "start" in feats[0]:
            batch["start"] = torch.tensor([f["start"] for f in feats], dtype=torch.long)
            batch["end"] = torch.tensor([f["end"] for f in feats], dtype=torch.long)
        return batch

    def loss(self, model, batch):
        s, e = model(batch["src"], batch["seg"])
        return model.loss(s, e, batch["start"], batch["end"])

    def outputs(self, model, batch):
        s, e = model(batch["src"], batch["seg"])
        lengths = (batch["seg"] > 0).sum(1).tolist()
        s, e = s.float().cpu(), e.float().cpu()
        return [(s[i, :n], e[i, :n]) for i, n in enumerate(lengths)]

    def decode(self, examples, feats, outputs, n_best=20):
        best = {}
        max_len = self.args.max_answer_length
        for f, (sl, el) in zip(feats, outputs):
            ex_i = f["example"]
            tm, mc = f["token_map"], f["max_context"]
            starts = sl.topk(min(n_best, sl.numel())).indices.tolist()
            ends = el.topk(min(n_best, el.numel())).indices.tolist()
            for s in starts:
                if s not in tm or not mc.get(s, False):
                    continue
                for e in ends:
                    if e not in tm or e < s or tm[e] - tm[s] + 1 > max_len:
                        continue
                    score = float(sl[s] + el[e])
                    if ex_i not in best or score > best[ex_i][0]:
                        best[ex_i] = (score, f["spans"][tm[s]][0], f["spans"][tm[e]][1], True)
        for f, (sl, el) in zip(feats, outputs):  # nothing valid among the n-best: search every pair
            ex_i = f["example"]
            if ex_i in best and best[ex_i][3]:
                continue
            tm, mc = f["token_map"], f["max_context"]
            for s in tm:
                if not mc[s]:
                    continue
                for e in range(s, min(s + max_len, len(sl))):
                    if e not in tm:
                        break
                    score = float(sl[s] + el[e])
                    if ex_i not in best or score > best[ex_i][0]:
                        best[ex_i] = (score, f["spans"][tm[s]][0], f["spans"][tm[e]][1], False)
        preds = []
        for i, ex in enumerate(examples):
            if i in best:
                preds.append(ex["context"][best[i][1]:best[i][2]])
            else:
                preds.append("")
        return preds

    def evaluate(self, examples, preds):
        predictions = {}
        for ex, p in zip(examples, preds):  # as the predictions file: keyed by id, the last one kept
            predictions[ex["qid"]] = p
        return cmrc_metrics([(ex["qid"], ex["answers"]) for ex in examples], predictions)

    def summary(self, m):
        return f"EM {m['em']:.3f} F1 {m['f1']:.3f} (avg {m['avg']:.3f}, {m['total']} questions)"

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({ex["qid"]: p for ex, p in zip(examples, preds)}, f, ensure_ascii=False, indent=2)
            f.write("\n")
