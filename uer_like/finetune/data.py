"""Fine-tuning data: readers for the three task formats (errors name the file and line, or the example
id), encoding into model inputs, and padding into batches.

Formats (UER-py's):
- classification tsv: header naming the columns (`label`, `text_a`, optional `text_b`), tab-separated,
  integer labels 0..n-1;
- tagging tsv: header `text_a<TAB>label`, space-separated tokens (characters for Chinese) and as many
  space-separated tags (BIO), tag names mapped by a label2id JSON file;
- reading comprehension: SQuAD-style JSON (CMRC 2018), answer_start a character offset into context.
"""
import json
import os
import random

import torch

from ..errors import DataError
from ..tokenizers.bert import BertTokenizer

IGNORE_INDEX = -100


# ====================================================================== reading
def _read_lines(path):
    if not path:
        raise DataError("no data file given")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    lines = raw.split(b"\n")
    out = []
    for i, line in enumerate(lines, 1):
        try:
            out.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{i}: not valid UTF-8 (byte {e.start} of the line)") from None
    return out


def read_tsv(path, required=(), optional=()):
    """-> list of (line_number, {column: value}). The first line is the header naming the columns."""
    lines = _read_lines(path)
    header = lines[0].split("\t")
    header = [h.strip() for h in header]
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}:1: the header {header} lacks the column(s) {', '.join(missing)}; "
                        f"the first line must name the columns (expected {', '.join(list(required) + list(optional))})")
    if len(set(header)) != len(header):
        raise DataError(f"{path}:1: the header {header} names a column twice")
    rows = []
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(f"{path}:{lineno}: expected {len(header)} tab-separated columns ({', '.join(header)}), "
                            f"got {len(fields)}")
        rows.append((lineno, dict(zip(header, fields))))
    if not rows:
        raise DataError(f"{path}: no examples after the header line")
    return rows


def read_classification(path, labeled=True):
    """-> examples {text_a, text_b (or None), label (int or None), where}."""
    rows = read_tsv(path, required=("text_a",) + (("label",) if labeled else ()), optional=("text_b",))
    examples = []
    for lineno, row in rows:
        label = None
        if labeled:
            raw = row["label"].strip()
            try:
                label = int(raw)
            except ValueError:
                raise DataError(f"{path}:{lineno}: label {raw!r} is not an integer class id (labels are 0..n-1)") from None
            if label < 0:
                raise DataError(f"{path}:{lineno}: label {label} is negative (labels are 0..n-1)")
        examples.append({"text_a": row["text_a"], "text_b": row.get("text_b"), "label": label,
                         "where": f"{path}:{lineno}"})
    return examples


def check_labels(examples, labels_num, path):
    for ex in examples:
        if ex["label"] is not None and ex["label"] >= labels_num:
            raise DataError(f"{ex['where']}: label {ex['label']} is outside the {labels_num} classes 0..{labels_num - 1} "
                            f"(learned from the training set or --labels_num)")


def load_label2id(path):
    if not path or not os.path.isfile(path):
        raise DataError(f"label2id file not found: {path} (pass --label2id_path)")
    try:
        with open(path, encoding="utf-8") as f:
            l2i = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(l2i, dict) or not l2i:
        raise DataError(f"{path}: label2id must be a non-empty JSON object {{\"tag\": id}}")
    ids = sorted(l2i.values())
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids) or ids != list(range(len(ids))):
        raise DataError(f"{path}: label2id ids must be the integers 0..{len(l2i) - 1}, each once; got {ids}")
    return l2i


def read_tagging(path, label2id, labeled=True):
    """-> examples {tokens, tags (list of str or None), where}."""
    rows = read_tsv(path, required=("text_a",) + (("label",) if labeled else ()))
    examples = []
    for lineno, row in rows:
        tokens = row["text_a"].split(" ")
        if not row["text_a"].strip():
            raise DataError(f"{path}:{lineno}: empty text_a")
        tags = None
        if labeled:
            tags = row["label"].split(" ")
            if len(tags) != len(tokens):
                raise DataError(f"{path}:{lineno}: {len(tokens)} space-separated tokens in text_a but {len(tags)} tags "
                                "in label (they must match one to one)")
            for j, t in enumerate(tags):
                if t not in label2id:
                    raise DataError(f"{path}:{lineno}: tag {t!r} (token {j + 1}) is not in label2id; "
                                    f"known tags: {', '.join(label2id)}")
        examples.append({"tokens": tokens, "tags": tags, "where": f"{path}:{lineno}"})
    return examples


def read_mrc(path, labeled=True, need_positions=False):
    """SQuAD-style JSON -> examples {qid, question, context, answers [texts], answer_start, answer_text, where}.

    answer_start -1 means "position unknown" (allowed for evaluation, which uses the texts only);
    a non-negative answer_start must point at the answer text in the context."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    try:
        d = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(d, dict) or not isinstance(d.get("data"), list):
        raise DataError(f"{path}: expected a SQuAD-style object {{\"data\": [{{\"paragraphs\": [...]}}]}}")
    examples, seen = [], set()
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
                qid = str(qa.get("id", f"{ai}_{pi}_{qi}"))
                where = f"{path}: question {qid}"
                if qid in seen:
                    raise DataError(f"{where}: the question id appears twice")
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
                        if isinstance(s, bool) or not isinstance(s, int):
                            raise DataError(f"{where}: answers[{k}].answer_start must be an integer, got {s!r}")
                        if s >= 0 and context[s:s + len(a["text"])] != a["text"]:
                            found = context.find(a["text"])
                            hint = (f"; the text occurs at {found}" if found >= 0 else "; the text does not occur in the context")
                            raise DataError(f"{where}: answers[{k}].answer_start {s} does not match the context: expected "
                                            f"{a['text']!r} but the context there reads {context[s:s + len(a['text'])]!r}{hint}")
                        answers.append(a["text"])
                        starts.append(s)
                    if need_positions and starts[0] < 0:
                        raise DataError(f"{where}: answers[0] has no answer_start (training needs the answer's position "
                                        "in the context)")
                examples.append({"qid": qid, "question": qa["question"], "context": context, "answers": answers,
                                 "answer_start": starts[0] if starts else -1,
                                 "answer_text": answers[0] if answers else None, "where": where})
    if not examples:
        raise DataError(f"{path}: no questions")
    return examples


# ====================================================================== encoding
class Encoder:
    """Text -> ids with a uer_like tokenizer (BERT-style [CLS]/[SEP])."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.vocab = tokenizer.vocab
        self.cls_id, self.sep_id, self.pad_id = self.vocab.cls_id, self.vocab.sep_id, self.vocab.pad_id
        self.unk_id = self.vocab.unk_id

    def ids(self, text):
        return self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(text))

    def unit_ids(self, unit):
        """One pre-split unit (a character of a tagging sentence) -> its pieces' ids (never empty)."""
        v = self.vocab.get(unit)
        if v is None and unit.lower() in self.vocab:
            v = self.vocab.get(unit.lower())
        if v is not None:
            return [v]
        ids = self.ids(unit) if unit.strip() else []
        return ids or [self.unk_id]

    def spans(self, text):
        """text -> (ids, [(char_start, char_end)]) with each token's character span in `text`."""
        tok = self.tokenizer
        out_ids, spans = [], []
        if isinstance(tok, BertTokenizer):
            unk = "[UNK]"
            for word, start in tok.basic.tokenize_with_offsets(text):
                if start < 0:
                    start = spans[-1][1] if spans else 0
                pieces = tok.wordpiece.tokenize_word(word)
                pos = start
                for j, p in enumerate(pieces):
                    if p == unk:
                        n = max(len(word) - (pos - start), 1)
                    else:
                        n = len(p[2:]) if p.startswith("##") else len(p)
                    end = min(pos + n, len(text))
                    spans.append((pos, end))
                    out_ids.append(self.vocab.get(p, self.unk_id))
                    pos = end
            return out_ids, spans
        # other tokenizers: one token per non-space character (exact alignment)
        for i, ch in enumerate(text):
            if ch.isspace():
                continue
            out_ids.append(self.unit_ids(ch)[0])
            spans.append((i, i + 1))
        return out_ids, spans


def truncate_pair(a, b, max_len):
    a, b = list(a), list(b)
    while len(a) + len(b) > max_len:
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    return a, b


def encode_classification(examples, enc, seq_length):
    feats = []
    for i, ex in enumerate(examples):
        a = enc.ids(ex["text_a"])
        if ex.get("text_b") is not None:
            b = enc.ids(ex["text_b"])
            a, b = truncate_pair(a, b, seq_length - 3)
            src = [enc.cls_id] + a + [enc.sep_id] + b + [enc.sep_id]
            seg = [1] * (len(a) + 2) + [2] * (len(b) + 1)
        else:
            a = a[:seq_length - 2]
            src = [enc.cls_id] + a + [enc.sep_id]
            seg = [1] * len(src)
        feats.append({"src": src, "seg": seg, "label": ex["label"] if ex["label"] is not None else IGNORE_INDEX,
                      "example": i})
    return feats


def encode_tagging(examples, enc, seq_length, label2id):
    """Each token (unit) -> its pieces; the tag sits on the first piece. Sentences longer than the window
    are cut into consecutive windows, so every token gets a prediction."""
    feats = []
    room = seq_length - 2
    for i, ex in enumerate(examples):
        units = [enc.unit_ids(u) for u in ex["tokens"]]
        start = 0
        while start < len(units):
            src, word_pos, labels = [enc.cls_id], [], []
            j = start
            while j < len(units) and (len(src) - 1 + len(units[j]) <= room or j == start):
                pieces = units[j][:room]
                word_pos.append(len(src))
                labels.append(label2id[ex["tags"][j]] if ex["tags"] is not None else IGNORE_INDEX)
                src.extend(pieces)
                j += 1
            src.append(enc.sep_id)
            feats.append({"src": src, "seg": [1] * len(src), "word_pos": word_pos, "labels": labels,
                          "example": i, "offset": start})
            start = j
    return feats


def encode_mrc(examples, enc, seq_length, doc_stride=128, max_query_length=64, train=False):
    """[CLS] question [SEP] context window [SEP]; windows slide by doc_stride over long contexts.
    Training windows that do not contain the answer point start/end at [CLS] (index 0)."""
    feats = []
    cache = {}
    for i, ex in enumerate(examples):
        q = enc.ids(ex["question"])[:max_query_length]
        key = ex["context"]
        if key not in cache:
            cache[key] = enc.spans(key)
        ctx_ids, ctx_spans = cache[key]
        room = seq_length - len(q) - 3
        if room < 1:
            raise DataError(f"{ex['where']}: seq_length {seq_length} leaves no room for the context after a "
                            f"{len(q)}-token question")
        tok_start = tok_end = None
        if train:
            s = ex["answer_start"]
            e = s + len(ex["answer_text"])
            inside = [k for k, (a, b) in enumerate(ctx_spans) if a < e and b > s]
            if not inside:
                raise DataError(f"{ex['where']}: the answer {ex['answer_text']!r} covers no token of the context")
            tok_start, tok_end = inside[0], inside[-1]
        windows = []
        start = 0
        while True:
            length = min(room, len(ctx_ids) - start)
            windows.append((start, length))
            if start + length >= len(ctx_ids):
                break
            start += min(length, doc_stride)
        for w, (ws, wl) in enumerate(windows):
            src = [enc.cls_id] + q + [enc.sep_id] + ctx_ids[ws:ws + wl] + [enc.sep_id]
            seg = [1] * (len(q) + 2) + [2] * (wl + 1)
            ctx_offset = len(q) + 2
            token_map, max_ctx = {}, {}
            for k in range(wl):
                token_map[ctx_offset + k] = ws + k
                max_ctx[ctx_offset + k] = _is_max_context(windows, w, ws + k)
            f = {"src": src, "seg": seg, "example": i, "token_map": token_map, "max_context": max_ctx,
                 "spans": ctx_spans}
            if train:
                if ws <= tok_start and tok_end < ws + wl:
                    f["start"], f["end"] = tok_start - ws + ctx_offset, tok_end - ws + ctx_offset
                else:
                    f["start"], f["end"] = 0, 0
            feats.append(f)
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


# ====================================================================== batching
def pad(seqs, value):
    n = max(len(s) for s in seqs)
    return torch.tensor([list(s) + [value] * (n - len(s)) for s in seqs], dtype=torch.long)


def collate(feats, pad_id=0):
    """Pad a list of features to the longest in the batch. Keys: src, seg (0 on padding) and whichever
    of label / word_pos+labels / start+end the features have."""
    batch = {"src": pad([f["src"] for f in feats], pad_id), "seg": pad([f["seg"] for f in feats], 0)}
    if "label" in feats[0]:
        batch["label"] = torch.tensor([f["label"] for f in feats], dtype=torch.long)
    if "word_pos" in feats[0]:
        batch["word_pos"] = pad([f["word_pos"] for f in feats], 0)
        batch["word_mask"] = pad([[1] * len(f["word_pos"]) for f in feats], 0).bool()
        batch["labels"] = pad([f["labels"] for f in feats], IGNORE_INDEX)
    if "start" in feats[0]:
        batch["start"] = torch.tensor([f["start"] for f in feats], dtype=torch.long)
        batch["end"] = torch.tensor([f["end"] for f in feats], dtype=torch.long)
    return batch


def batches(feats, batch_size, shuffle=False, rng=None, pad_id=0, bucket=True):
    """Yield (indices, padded batch). With bucket, instances of similar length are batched together (a
    sort within windows of 50 batches when shuffling, a global sort otherwise), which cuts padding;
    the indices say which features each batch holds."""
    order = list(range(len(feats)))
    rng = rng or random
    if shuffle:
        rng.shuffle(order)
    if bucket:
        key = lambda i: len(feats[i]["src"])  # noqa: E731
        if shuffle:
            window = batch_size * 50
            order = [i for k in range(0, len(order), window) for i in sorted(order[k:k + window], key=key)]
        else:
            order = sorted(order, key=key)
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle and bucket:
        rng.shuffle(groups)
    for idx in groups:
        yield idx, collate([feats[j] for j in idx], pad_id)
