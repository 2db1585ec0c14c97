"""SentencePiece tokenizer (`--spm_model_path`), e.g. the word-based Chinese RoBERTa releases."""
import os

from ..errors import DataError
from ..registry import TOKENIZERS
from .vocab import Vocab


@TOKENIZERS.register("sentencepiece")
class SentencePieceTokenizer:
    def __init__(self, vocab=None, spm_model_path=None, **kwargs):
        if not spm_model_path or not os.path.isfile(spm_model_path):
            raise DataError(f"sentencepiece model not found: {spm_model_path} (pass --spm_model_path)")
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor()
        self.sp.Load(spm_model_path)
        if vocab is not None:
            self.vocab = vocab if isinstance(vocab, Vocab) else Vocab.load(vocab)
        else:
            self.vocab = Vocab([self.sp.IdToPiece(i) for i in range(self.sp.GetPieceSize())], spm_model_path)
            missing = [t for t in ("[CLS]", "[SEP]", "[MASK]", "[PAD]") if t not in self.vocab]
            if missing:
                raise DataError(f"{spm_model_path}: the sentencepiece vocabulary lacks {', '.join(missing)}; "
                                "pass a --vocab_path that has them")

    def tokenize(self, text):
        return self.sp.EncodeAsPieces(text)

    def tokenize_with_starts(self, text):
        pieces = self.tokenize(text)
        return pieces, [0 if p.startswith("\u2581") else -1 for p in pieces]

    def encode(self, text):
        return self.vocab.convert_tokens_to_ids(self.tokenize(text))

    def convert_tokens_to_ids(self, tokens):
        return self.vocab.convert_tokens_to_ids(tokens)
