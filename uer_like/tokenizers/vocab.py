"""Vocabulary: one token per line (Google BERT format), id = line number; or the WordPiece vocabulary of a
tokenizers-library tokenizer.json (what transformers 5 saves for BERT, without a vocab.txt)."""
import hashlib
import json
import logging
import os

from ..errors import DataError
from ..resources import resolve

logger = logging.getLogger("uer_like")

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
REQUIRED = (PAD, UNK, CLS, SEP, MASK)
# the role of each special token -> its spelling (BERT's); a vocabulary may spell them otherwise (XLNet: <cls>)
BERT_SPECIALS = {"pad": PAD, "unk": UNK, "cls": CLS, "sep": SEP, "mask": MASK}


def wordpiece_json_tokens(text, path):
    """The tokens, by id, of a tokenizer.json whose model is BERT's WordPiece ("##" continuations, words of up
    to 100 characters); anything else is a DataError in one line."""
    try:
        d = json.loads(text)
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    model = d.get("model") if isinstance(d, dict) else None
    kind = model.get("type") if isinstance(model, dict) else None
    if kind != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise DataError(f"{path}: its model is {kind or 'missing'}, not WordPiece; give a vocab.txt (--vocab_path) "
                        "or the tokenizer this file is for (--tokenizer)")
    for key, want in (("continuing_subword_prefix", "##"), ("max_input_chars_per_word", 100)):
        if model.get(key, want) != want:
            raise DataError(f"{path}: WordPiece {key} {model[key]!r}; BERT's tokenizer here has {want!r}")
    table = dict(model["vocab"])
    for t in d.get("added_tokens") or []:
        table.setdefault(t.get("content"), t.get("id"))
    ids = sorted(i for i in table.values() if isinstance(i, int))
    if ids != list(range(len(table))):
        raise DataError(f"{path}: the WordPiece vocabulary's ids are not 0..{len(table) - 1}, each once")
    tokens = [None] * len(table)
    for w, i in table.items():
        tokens[i] = w
    return tokens


class Vocab:
    def __init__(self, tokens, path=None, specials=None):
        self.path = path
        self.specials = dict(BERT_SPECIALS, **(specials or {}))
        self.i2w = list(tokens)
        # a token on several lines maps to its last line, as Google's BERT, transformers and UER-py read a
        # vocabulary (the other lines' ids are never produced; Vocab.load warns)
        self.w2i = {w: i for i, w in enumerate(self.i2w)}

    @classmethod
    def load(cls, path, required=REQUIRED):
        path = resolve(path)  # models/google_zh_vocab.txt works from any directory, installed or not
        if not path or not os.path.isfile(path):
            raise DataError(f"vocabulary file not found: {path}")
        with open(path, "rb") as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: the vocabulary is not UTF-8 (byte {e.start})") from None
        if path.endswith(".json"):
            tokens = wordpiece_json_tokens(text, path)
        else:
            tokens = [line.rstrip("\r") for line in text.split("\n")]
            if tokens and tokens[-1] == "":
                tokens.pop()
            tokens = [t.strip() if t.strip() else t for t in tokens]
        if not tokens:
            raise DataError(f"{path}: the vocabulary is empty")
        vocab = cls(tokens, path)
        if len(vocab.w2i) < len(vocab.i2w):
            seen, dups = {}, []
            for i, w in enumerate(vocab.i2w):
                if w in seen:
                    dups.append(f"{w!r} (lines {seen[w] + 1} and {i + 1})")
                seen[w] = i
            logger.warning("%s: %d token(s) on more than one line, each read with its last line's id as Google's "
                           "BERT, transformers and UER-py read it: %s", path, len(dups), ", ".join(dups[:5]))
        missing = [t for t in required if t not in vocab.w2i]
        if missing:
            raise DataError(f"{path}: the vocabulary lacks the special token(s) {', '.join(missing)}, "
                            f"which {'BERT-style processing needs' if required else 'are required'}")
        vocab.sha256 = hashlib.sha256(raw).hexdigest()
        return vocab

    def __len__(self):
        return len(self.i2w)

    def __contains__(self, w):
        return w in self.w2i

    def get(self, w, default=None):
        return self.w2i.get(w, default)

    def id(self, w):
        return self.w2i[w]

    @property
    def pad_id(self):
        return self.w2i.get(self.specials["pad"], 0)

    @property
    def unk_id(self):
        return self.w2i[self.specials["unk"]]

    @property
    def cls_id(self):
        return self.w2i[self.specials["cls"]]

    @property
    def sep_id(self):
        return self.w2i[self.specials["sep"]]

    @property
    def mask_id(self):
        return self.w2i[self.specials["mask"]]

    def special_ids(self):
        ids = {i for w, i in self.w2i.items() if w.startswith("[") and w.endswith("]")}
        return sorted(ids | {self.w2i[t] for t in self.specials.values() if t in self.w2i})

    def convert_tokens_to_ids(self, tokens):
        unk = self.w2i.get(self.specials["unk"], 0)
        return [self.w2i.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        return [self.i2w[i] for i in ids]
