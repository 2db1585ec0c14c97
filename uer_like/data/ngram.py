"""ZEN's n-gram lexicon and matching (Diao et al. 2019, sinovation/ZEN): `ngram.txt` in, and for a token
sequence the n-grams of the lexicon it contains, as the batch fields of the `zen` encoder.

`ngram.txt` holds one `ngram,frequency` line per n-gram; n-gram id i is line i (1-based), id 0 is padding
(ZEN's ZenNgramDict). Each n-gram is tokenised with the model's tokenizer (Google BERT over its vocab.txt,
as ZEN does) and keyed by its token ids; a later line with the same tokens takes the key, as in ZEN.

Matching (ZEN's feature conversion, examples/utils_*_level_task.py and create_pre_train_data.py): every
span of 2 to 7 tokens of the sequence, [CLS] and [SEP] included, that is a key of the lexicon; in ZEN's order,
by length, then by start. ZEN shuffles the matches and keeps the first `max_ngram_in_seq`; here the first
`max_ngrams` in that order are kept (deterministic), or a shuffle with a given `random.Random` comes first.
Matching on token ids is matching on ZEN's token strings: the tokenizer's output maps to ids one to one
(an unknown word is the "[UNK]" token in both).

Batch fields (`ngram_inputs`): `ngram_ids`, `ngram_starts`, `ngram_lengths`, int64 [batch, n], n the most
matches of a row (at least 1), padding 0. The encoder builds ZEN's position matrix from starts and lengths
(encoders/zen.py) and the n-gram segments from the token segments at each start (ZEN: sentence A for a
start before the first [SEP] + 1, else B).
"""
import os

import numpy as np

from ..errors import DataError
from ..tokenizers.bert import BertTokenizer
from ..tokenizers.vocab import Vocab
from .fields import register_field

NGRAM_FILE = "ngram.txt"
MIN_LENGTH, MAX_LENGTH = 2, 7  # ZEN matches spans of 2..7 tokens
INPUT_KEYS = ("ngram_ids", "ngram_starts", "ngram_lengths")


class NgramLexicon:
    """table: {tuple of token ids: n-gram id}; size: the rows of the n-gram embedding (lines + 1)."""

    def __init__(self, table, size, path=None):
        self.table = table
        self.size = size
        self.path = path
        self._lengths = sorted({len(k) for k in table if MIN_LENGTH <= len(k) <= MAX_LENGTH})

    @classmethod
    def load(cls, path, vocab, do_lower_case=True):
        """Read `ngram.txt` (or the directory holding it), tokenising each n-gram with Google BERT
        tokenisation over `vocab` (a Vocab or a vocab.txt path)."""
        if os.path.isdir(path):
            path = os.path.join(path, NGRAM_FILE)
        if not os.path.isfile(path):
            raise DataError(f"n-gram lexicon not found: {path} (ZEN's ngram.txt, one 'ngram,frequency' per line)")
        vocab = vocab if isinstance(vocab, Vocab) else Vocab.load(vocab, required=())
        tok = BertTokenizer(vocab, do_lower_case=do_lower_case)
        table = {}
        n = 0
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                text, sep, _freq = line.rpartition(",")
                if not sep or not text:
                    raise DataError(f"{path}:{n}: expected 'ngram,frequency', got {line.rstrip()!r}")
                table[tuple(vocab.convert_tokens_to_ids(tok.tokenize(text)))] = n
        return cls(table, n + 1, path)

    def check_rows(self, rows, what="the model"):
        """Refuse a lexicon with more n-grams than `rows` (the model's ngram_vocab_size) can embed."""
        if self.size > rows:
            raise DataError(f"{self.path}: {self.size - 1} n-grams but {what} has {rows} n-gram embedding rows "
                            f"(ngram_vocab_size); use the model's own ngram.txt or ngram_vocab_size >= {self.size}")
        return self

    def match(self, ids):
        """[(ngram id, start, length)] of the n-grams in the token-id sequence `ids`, in ZEN's order."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        out = []
        get = self.table.get
        for p in self._lengths:
            for q in range(len(ids) - p + 1):
                k = get(tuple(ids[q:q + p]))
                if k is not None:
                    out.append((k, q, p))
        return out


def select(matches, max_ngrams, rng=None):
    """The matches kept: all when they fit; else, after a shuffle with `rng` if given (ZEN shuffles), the first
    max_ngrams."""
    if rng is not None:
        matches = list(matches)
        rng.shuffle(matches)
    return matches[:max_ngrams]


def ngram_inputs(rows, lexicon, max_ngrams, rng=None):
    """The `zen` encoder's batch fields for token-id rows (one list or array per sequence, without padding;
    [CLS] and [SEP] as the model sees them): {"ngram_ids", "ngram_starts", "ngram_lengths"}, int64 numpy
    arrays [len(rows), n]. The one data path of feature extraction, fine-tuning and pretraining."""
    kept = [select(lexicon.match(r), max_ngrams, rng) for r in rows]
    n = max([1] + [len(k) for k in kept])
    out = {key: np.zeros((len(rows), n), np.int64) for key in INPUT_KEYS}
    for b, k in enumerate(kept):
        if k:
            arr = np.asarray(k, np.int64)
            out["ngram_ids"][b, :len(k)] = arr[:, 0]
            out["ngram_starts"][b, :len(k)] = arr[:, 1]
            out["ngram_lengths"][b, :len(k)] = arr[:, 2]
    return out


def input_builder(lexicon, max_ngrams):
    """A function (token-id rows) -> ngram_inputs(rows, lexicon, max_ngrams): what a collator calls."""
    return lambda rows: ngram_inputs(rows, lexicon, max_ngrams)


def _register_inputs():
    """The zen encoder's input fields (its `input_keys`), built in pretraining from the `ngram_inputs` resource
    (input_builder(lexicon, max_ngrams)) on the rows as the model sees them."""
    def builder(key):
        def build(mb):
            rows = [mb.src[b, :n] for b, n in enumerate(mb.lengths)]
            return mb.cached("ngram_inputs", lambda: mb.resources["ngram_inputs"](rows))[key]

        return build

    for key in INPUT_KEYS:
        register_field(key, sources=("tokens",), resources=("ngram_inputs",))(builder(key))


_register_inputs()


def lexicon_for(model, path=None, vocab=None):
    """The n-gram lexicon of a loaded ZEN model: `path` (ngram.txt or its directory), else the ngram.txt beside
    the weights the model was loaded from; tokenised with `vocab`, else the vocabulary found with the weights.
    Its size must be the model's n-gram embedding rows."""
    info = getattr(model, "load_info", None)
    if path is None and info is not None and info.path:
        d = info.path if os.path.isdir(info.path) else os.path.dirname(os.path.abspath(info.path))
        path = os.path.join(d, NGRAM_FILE)
    if path is None:
        raise DataError("a ZEN model needs its n-gram lexicon: pass ngram_path=... (ZEN's ngram.txt)")
    vocab = vocab or (info.vocab_path if info is not None else None)
    if vocab is None:
        raise DataError("the n-gram lexicon is tokenised with the model's vocabulary: pass vocab_path=...")
    return NgramLexicon.load(path, vocab).check_rows(model.config.ngram_vocab_size)
