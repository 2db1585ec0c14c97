"""Tokenizers by name (`--tokenizer bert|char|space|sentencepiece|xlnet`)."""
from ..registry import TOKENIZERS
from . import bert, simple, spm, word, xlnet  # noqa: F401  (registration)
from .bert import BertTokenizer  # noqa: F401
from .vocab import Vocab  # noqa: F401


def build_tokenizer(name, vocab_path=None, spm_model_path=None, do_lower_case=True):
    """As UER-py: with `spm_model_path` the default `bert` tokenizer is SentencePiece over the model's own
    pieces (the vocabulary file is not used); `char`/`space` split as usual and look the tokens up in the
    model's pieces; `sentencepiece` uses `vocab_path` when given, else the model's pieces."""
    cls = TOKENIZERS.get(name, key="tokenizer")
    if name == "xlnet":  # the vocabulary is the sentencepiece model's own
        return cls(spm_model_path=spm_model_path)
    if spm_model_path and name == "bert":
        return spm.SentencePieceTokenizer(None, spm_model_path=spm_model_path)
    vocab = Vocab.load(vocab_path) if vocab_path else None
    if name == "sentencepiece":
        return cls(vocab, spm_model_path=spm_model_path)
    if spm_model_path:
        vocab = spm.spm_vocab(spm.load_processor(spm_model_path), spm_model_path)
    if vocab is None:
        from ..errors import DataError

        raise DataError(f"the {name} tokenizer needs a vocabulary (--vocab_path)")
    return cls(vocab, do_lower_case=do_lower_case)
