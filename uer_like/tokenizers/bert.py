"""Google BERT tokenisation: BasicTokenizer (cleaning, CJK split, lower-casing, accent stripping,
punctuation split) then greedy longest-match WordPiece. Behaves as google-research/bert's
tokenization.py and Hugging Face's BertTokenizer (slow) do."""
import os
import unicodedata

from ..registry import TOKENIZERS
from .unicode_classes import is_control, is_punctuation, is_whitespace  # noqa: F401  (also imported from here)
from .vocab import Vocab


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def lower(text):
    """Character-wise lower-casing, as Hugging Face's tokenizer does (str.lower would make a final
    capital sigma 'ς', where character-wise it is 'σ'; that is the only difference on real text)."""
    return text.lower() if "\u03a3" not in text else "".join(c.lower() for c in text)


def strip_accents(text):
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def split_on_punctuation(text):
    out, cur = [], []
    for ch in text:
        if is_punctuation(ch):
            if cur:
                out.append("".join(cur))
                cur = []
            out.append(ch)
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def basic_units(text, split_cjk=True):
    """Split text as the BasicTokenizer does *before* lower-casing: yields (unit, start, is_cjk) where a
    unit is a CJK character (split_cjk: tokenize_chinese_chars) or a whitespace-delimited run, and start its
    character offset in `text`. Control characters, U+0000 and U+FFFD are dropped; whitespace separates."""
    run, run_start = [], -1
    for i, ch in enumerate(text):
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            continue
        if is_whitespace(ch):
            if run:
                yield "".join(run), run_start, False
                run = []
            continue
        if split_cjk and is_cjk(cp):
            if run:
                yield "".join(run), run_start, False
                run = []
            yield ch, i, True
            continue
        if not run:
            run_start = i
        run.append(ch)
    if run:
        yield "".join(run), run_start, False


class BasicTokenizer:
    """transformers' BasicTokenizer settings: do_lower_case; strip_accents (None: as do_lower_case);
    tokenize_chinese_chars (each CJK character a word of its own)."""

    def __init__(self, do_lower_case=True, strip_accents=None, tokenize_chinese_chars=True):
        self.do_lower_case = do_lower_case
        self.strip_accents = do_lower_case if strip_accents is None else strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars

    def tokenize_with_offsets(self, text):
        """-> list of (token, start): `start` is the token's character offset in `text` when known exactly,
        else -1 (only after a normalisation that changed a run's length)."""
        out = []
        for unit, start, cjk in basic_units(text, self.tokenize_chinese_chars):
            if cjk:
                out.append((unit, start))
                continue
            norm = lower(unit) if self.do_lower_case else unit
            if self.strip_accents:
                norm = strip_accents(norm)
            exact = len(norm) == len(unit)
            off = 0
            for piece in split_on_punctuation(norm):
                out.append((piece, start + off if exact else (start if off == 0 else -1)))
                off += len(piece)
        return out

    def tokenize(self, text):
        return [t for t, _ in self.tokenize_with_offsets(text)]


class WordpieceTokenizer:
    """Greedy longest-match-first. A word longer than max_input_chars_per_word becomes [UNK]: 100 as in
    Hugging Face's BertTokenizer (Google's tokenization.py uses 200; pass it to match that instead)."""

    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize_word(self, word):
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces = []
        start = 0
        while start < len(word):
            end = len(word)
            cur = None
            while start < end:
                sub = word[start:end]
                if start > 0:
                    sub = "##" + sub
                if sub in self.vocab:
                    cur = sub
                    break
                end -= 1
            if cur is None:
                return [self.unk_token]
            pieces.append(cur)
            start = end
        return pieces


@TOKENIZERS.register("bert")
class BertTokenizer:
    """BasicTokenizer + WordPiece over a Google-format vocabulary. strip_accents, tokenize_chinese_chars:
    BasicTokenizer's (a release directory's, release_files.basic_settings)."""

    hf_tokenizer_classes = ("BertTokenizer", "BertTokenizerFast")
    basic_settings = True  # built with a directory's BasicTokenizer settings (tokenizers.tokenizer_from_dir)

    def __init__(self, vocab, do_lower_case=True, strip_accents=None, tokenize_chinese_chars=True, **kwargs):
        self.vocab = vocab if isinstance(vocab, Vocab) else Vocab.load(vocab)
        self.basic = BasicTokenizer(do_lower_case, strip_accents, tokenize_chinese_chars)
        self.wordpiece = WordpieceTokenizer(self.vocab.w2i)

    @classmethod
    def files_in(cls, directory):
        """vocab.txt, else a tokenizer.json of a WordPiece model (transformers 5 saves BERT's so), else None."""
        p = os.path.join(directory, "vocab.txt")
        if os.path.isfile(p):
            return p
        from .release_files import _read

        p = os.path.join(directory, "tokenizer.json")
        model = _read(p).get("model") if os.path.isfile(p) else None
        return p if isinstance(model, dict) and model.get("type") == "WordPiece" else None

    def tokenize(self, text):
        out = []
        for tok in self.basic.tokenize(text):
            out.extend(self.wordpiece.tokenize_word(tok))
        return out

    def tokenize_with_starts(self, text):
        """-> (pieces, starts): starts[i] is the character offset where piece i begins, or -1 for a
        '##' continuation piece (or a piece whose offset normalisation made unknown)."""
        pieces, starts = [], []
        for tok, start in self.basic.tokenize_with_offsets(text):
            for j, p in enumerate(self.wordpiece.tokenize_word(tok)):
                pieces.append(p)
                starts.append(start if j == 0 else -1)
        return pieces, starts

    def encode(self, text):
        return self.vocab.convert_tokens_to_ids(self.tokenize(text))

    def ids(self, text):
        """convert_tokens_to_ids(tokenize(text)) by the C tokenizer (uer_like._native.WordPiece: the same ids, about 40x faster) where it
        gives this class's output, else in Python."""
        native = self._native_wordpiece()
        return native.tokenize(text)[0] if native is not None else self.convert_tokens_to_ids(self.tokenize(text))

    def __getstate__(self):  # the C tokenizer does not pickle; a copy builds its own
        return {k: v for k, v in self.__dict__.items() if k != "_native"}

    def _native_wordpiece(self):
        """The C tokenizer over this vocabulary, built once; None for a subclass, other wordpiece settings, or
        an extension missing or built with other Unicode tables than this Python's (it knows do_lower_case with
        BERT's strip_accents and CJK split only)."""
        wp = self.__dict__.get("_native")
        if wp is None:
            wp = False
            same = (type(self) is BertTokenizer and type(self.basic) is BasicTokenizer
                    and type(self.wordpiece) is WordpieceTokenizer and self.wordpiece.unk_token == "[UNK]"
                    and self.wordpiece.max_input_chars_per_word == 100 and self.wordpiece.vocab is self.vocab.w2i
                    and self.basic.strip_accents == self.basic.do_lower_case and self.basic.tokenize_chinese_chars)
            try:
                from .. import _native  # lazily: the extension is not needed to import the tokenizers
            except ImportError:
                _native = None
            if same and _native is not None and getattr(_native, "UNIDATA_VERSION", None) == unicodedata.unidata_version:
                w2i = self.vocab.w2i
                unk = w2i.get("[UNK]", w2i.get(self.vocab.specials["unk"], 0))  # the id encode gives "[UNK]"
                wp = _native.WordPiece(self.vocab.i2w, unk, bool(self.basic.do_lower_case))
            self._native = wp
        return wp or None

    def convert_tokens_to_ids(self, tokens):
        return self.vocab.convert_tokens_to_ids(tokens)
