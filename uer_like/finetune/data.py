"""Shared fine-tuning data helpers: reading files (errors name the file and line), text -> ids with the
model's tokenizer, padding and length-bucketed batches. Each task's own format lives in its module
(classification.py, tagging.py, mrc.py, ...)."""
import json
import os
import random

import torch

from ..errors import ConfigError, DataError
from ..tokenizers import layout
from ..tokenizers.bert import BertTokenizer

IGNORE_INDEX = -100


# ====================================================================== reading
def _read_bytes(path):
    """A data file's bytes; a missing path, a missing file or one with nothing but whitespace is an error."""
    if not path:
        raise DataError("no data file given")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    return raw


def _read_lines(path):
    lines = _read_bytes(path).split(b"\n")
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


def read_json(path):
    """A whole JSON file, with errors naming the file (and the line of a syntax error)."""
    raw = _read_bytes(path)
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None


# ====================================================================== encoding
class Encoder:
    """Text -> ids with a uer_like tokenizer, and the model input layout of its family (`pack`):

    - BERT (the default): `[CLS] a [SEP] (b [SEP])`, segments 1 and 2, padding on the right;
    - RoBERTa (RoBERTa / BART / XLM-R releases: their tokenizer's template): `<s> a </s> (</s> b </s>)`;
    - XLNet (`--tokenizer xlnet`, HFL's convention): `a <sep> (b <sep>) <cls>`, the final <cls> in a segment
      of its own (3), padding on the left where only src/seg are padded (XLNet's attention is relative, so
      the padding side changes no real token's output)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.vocab = tokenizer.vocab
        self.cls_id, self.sep_id, self.pad_id = self.vocab.cls_id, self.vocab.sep_id, self.vocab.pad_id
        self.unk_id = self.vocab.unk_id
        self.layout = getattr(tokenizer, "layout", "bert")
        self.pair_specials = layout.SPECIALS[self.layout]  # special tokens of a packed pair: 3, RoBERTa's 4
        self.pad_left = getattr(tokenizer, "padding_side", "right") == "left"
        # a WordPiece tokenizer's casing (None for the others), saved with a fine-tuned model (Task.meta)
        self.do_lower_case = tokenizer.basic.do_lower_case if isinstance(tokenizer, BertTokenizer) else None
        # a unit missing from the vocabulary is looked up lower-cased unless the tokenizer keeps case
        self.lower_units = self.do_lower_case is not False

    def pack(self, a, b=None):
        """One or two id sequences -> (src, seg, start of a, start of b) in the layout; 2 special tokens for
        one sequence, pair_specials for two (tokenizers/layout.py)."""
        return layout.pack(self.layout, self.cls_id, self.sep_id, a, b)

    def cls_index(self, src):
        """Where the classification token of a packed src is."""
        return layout.cls_index(self.layout, src)

    def ids(self, text):
        if isinstance(self.tokenizer, BertTokenizer):
            return self.tokenizer.ids(text)  # the C tokenizer where it gives the same ids
        return self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(text))

    def unit_ids(self, unit):
        """One pre-split unit (a character of a tagging sentence) -> its pieces' ids (never empty)."""
        v = self.vocab.get(unit)
        if v is None and self.lower_units and unit.lower() in self.vocab:
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


# the input layout of each kind of task (BERT's; XLNet's has as many special tokens, RoBERTa's one more in a
# pair): the smallest --seq_length that keeps a token of every part is the layout's length (check_seq_length)
LAYOUTS = {"single": "[CLS] text_a [SEP]", "pair": "[CLS] text_a [SEP] text_b [SEP]",
           "mrc": "[CLS] question [SEP] context [SEP]", "choice": "[CLS] choice [SEP] question [SEP] document [SEP]"}


def check_seq_length(seq_length, kind, extra=0):
    """ConfigError unless seq_length leaves at least one token of every part of the LAYOUTS[kind] input once
    its special tokens are in: a shorter one would keep nothing of a part (or, as a slice bound, count from
    the end: a[:seq_length - 2] with seq_length 1 keeps all but the last token). extra: the special tokens
    the model's layout adds to a pair beyond BERT's (Encoder.pair_specials - 3)."""
    layout = LAYOUTS[kind]
    need = len(layout.split()) + (extra if kind != "single" else 0)
    if seq_length < need:
        raise ConfigError(f"--seq_length {seq_length} is too small for {layout}: at least {need} (the special "
                          "tokens and one token of each part)")


def truncate_pair(a, b, max_len):
    """Pop from the longer of a and b until they fit max_len tokens together (max_len >= 2: check_seq_length)."""
    if max_len < 2:
        raise ValueError(f"truncate_pair: max_len {max_len} leaves no token of one of the two sequences")
    a, b = list(a), list(b)
    while len(a) + len(b) > max_len:
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    return a, b


def windows(n, room, stride):
    """Overlapping windows over n tokens -> [(start, length)]: at most `room` tokens each, each start `stride`
    tokens (at most a window's length) after the previous, the last one reaching the end; one window (0, n)
    when n <= room. The reading-comprehension reader (mrc.py) and long-document classification (windows.py)
    cut their texts with it."""
    if room < 1 or stride < 1:
        raise ValueError(f"windows: room {room} and stride {stride} must be positive")
    out, start = [], 0
    while True:
        length = min(room, n - start)
        out.append((start, length))
        if start + length >= n:
            return out
        start += min(length, stride)


# ====================================================================== batching
def pad(seqs, value, left=False):
    n = max(len(s) for s in seqs)
    if left:
        return torch.tensor([[value] * (n - len(s)) + list(s) for s in seqs], dtype=torch.long)
    return torch.tensor([list(s) + [value] * (n - len(s)) for s in seqs], dtype=torch.long)


def batches(feats, batch_size, collate, shuffle=False, rng=None, length=None, bucket=True):
    """Yield (indices, batch) with batch = collate([features]). With bucket, features of similar length
    (length(feature), default len(src)) are batched together (a sort within windows of 50 batches when
    shuffling, a global sort otherwise), which cuts padding; the indices say which features each batch holds."""
    order = list(range(len(feats)))
    rng = rng or random
    if shuffle:
        rng.shuffle(order)
    if bucket:
        size = length or (lambda f: len(f["src"]))
        key = lambda i: size(feats[i])  # noqa: E731
        if shuffle:
            window = batch_size * 50
            order = [i for k in range(0, len(order), window) for i in sorted(order[k:k + window], key=key)]
        else:
            order = sorted(order, key=key)
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle and bucket:
        rng.shuffle(groups)
    for idx in groups:
        yield idx, collate([feats[j] for j in idx])
