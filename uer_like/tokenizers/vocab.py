"""Vocabulary: one token per line (Google BERT format), id = line number."""
import hashlib
import os

from ..errors import DataError
from ..resources import resolve

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
REQUIRED = (PAD, UNK, CLS, SEP, MASK)


class Vocab:
    def __init__(self, tokens, path=None):
        self.path = path
        self.i2w = list(tokens)
        self.w2i = {}
        for i, w in enumerate(self.i2w):
            self.w2i.setdefault(w, i)

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
        tokens = [line.rstrip("\r") for line in text.split("\n")]
        if tokens and tokens[-1] == "":
            tokens.pop()
        if not tokens:
            raise DataError(f"{path}: the vocabulary is empty")
        vocab = cls([t.strip() if t.strip() else t for t in tokens], path)
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
        return self.w2i.get(PAD, 0)

    @property
    def unk_id(self):
        return self.w2i[UNK]

    @property
    def cls_id(self):
        return self.w2i[CLS]

    @property
    def sep_id(self):
        return self.w2i[SEP]

    @property
    def mask_id(self):
        return self.w2i[MASK]

    def special_ids(self):
        return sorted({i for w, i in self.w2i.items() if w.startswith("[") and w.endswith("]")})

    def convert_tokens_to_ids(self, tokens):
        unk = self.w2i.get(UNK, 0)
        return [self.w2i.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        return [self.i2w[i] for i in ids]
