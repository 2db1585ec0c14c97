"""Char and space tokenizers (UER's `char` and `space`)."""
from ..registry import TOKENIZERS
from .vocab import Vocab


class _Simple:
    def __init__(self, vocab, **kwargs):
        self.vocab = vocab if isinstance(vocab, Vocab) else Vocab.load(vocab)

    @classmethod
    def files_in(cls, directory):
        from .bert import BertTokenizer

        return BertTokenizer.files_in(directory)

    def encode(self, text):
        return self.vocab.convert_tokens_to_ids(self.tokenize(text))

    def convert_tokens_to_ids(self, tokens):
        return self.vocab.convert_tokens_to_ids(tokens)

    def tokenize_with_starts(self, text):
        pieces, starts, pos = [], [], 0
        for p in self.tokenize(text):
            i = text.find(p, pos)
            pieces.append(p)
            starts.append(i)
            pos = i + len(p) if i >= 0 else pos
        return pieces, starts


@TOKENIZERS.register("char")
class CharTokenizer(_Simple):
    """One token per character, whitespace dropped."""

    def tokenize(self, text):
        return [c for c in text.strip() if not c.isspace()]


@TOKENIZERS.register("space")
class SpaceTokenizer(_Simple):
    """Tokens separated by whitespace (pre-segmented corpora)."""

    def tokenize(self, text):
        return text.strip().split()
