"""Tokenizers by name (`--tokenizer bert|char|space|sentencepiece|xlnet|word_wordpiece|roformer_word|byte_bpe|xlmr|cpm`),
and the one a model directory needs (`tokenizer_from_dir`, select.py)."""
import os

from ..registry import TOKENIZERS
from . import bert, bpe, cpm, simple, spm, word, xlmr, xlnet  # noqa: F401  (registration)
from .bert import BertTokenizer  # noqa: F401
from .release_files import basic_settings
from .select import detect as detect_tokenizer, file_in, lm_tokens  # noqa: F401
from .vocab import Vocab  # noqa: F401


def text_settings(name, path=None, do_lower_case=None):
    """The keyword settings tokenizer `name` is built with from the file at `path`: for one built on BERT's
    BasicTokenizer (`basic_settings` set: bert, word_wordpiece, roformer_word) the settings of the file's
    directory (release_files.basic_settings: its tokenizer_config.json, else tokenizer.json; lower-casing by
    default, as UER-py), `do_lower_case` winning when given; for the others do_lower_case alone (default True)."""
    cls = TOKENIZERS.get(name, key="tokenizer")
    if getattr(cls, "basic_settings", False):
        from ..resources import resolve

        directory = os.path.dirname(os.path.abspath(resolve(path))) if path else None
        return basic_settings(directory, do_lower_case)
    return {"do_lower_case": True if do_lower_case is None else do_lower_case}


def build_tokenizer(name, vocab_path=None, spm_model_path=None, do_lower_case=None):
    """As UER-py: with `spm_model_path` the default `bert` tokenizer is SentencePiece over the model's own
    pieces (the vocabulary file is not used); `char`/`space` split as usual and look the tokens up in the
    model's pieces; `sentencepiece` uses `vocab_path` when given, else the model's pieces. A tokenizer with
    files of its own (byte_bpe: tokenizer.json or vocab.json; xlmr, cpm: their sentencepiece model) takes
    them as `vocab_path` / `spm_model_path`. do_lower_case None: the vocabulary's directory decides
    (text_settings: a cased release's tokenizer_config.json says do_lower_case false), else True."""
    cls = TOKENIZERS.get(name, key="tokenizer")
    if hasattr(cls, "build"):
        return cls.build(vocab_path=vocab_path, spm_model_path=spm_model_path,
                         do_lower_case=True if do_lower_case is None else do_lower_case)
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
    settings = text_settings(name, vocab_path or spm_model_path, do_lower_case)
    if do_lower_case is None and settings["do_lower_case"] is False:
        _warn_if_caseless(vocab)
    return cls(vocab, **settings)


def _warn_if_caseless(vocab):
    """A directory that says do_lower_case false with a vocabulary of no capital letter (Hugging Face's
    bert-base-chinese: Google pretrained it lower-cased) sends every capital to [UNK], as transformers does:
    say so once, with the flag that lower-cases."""
    if any(w[:1] not in "[<" and w != w.lower() for w in vocab.i2w):  # special tokens ([CLS], <S>) aside
        return
    import logging

    logging.getLogger("uer_like").warning(
        "%s: its directory says do_lower_case false, but the vocabulary has no capital letters: words with capitals "
        "become [UNK] (as in transformers); pass --do_lower_case true to lower-case the text instead", vocab.path)


def tokenizer_from_dir(directory, name=None, do_lower_case=None):
    """The tokenizer of a release directory: `name` (default: select.detect's choice) built from the
    directory's file for it; None when nothing in the directory names a tokenizer. do_lower_case (WordPiece
    tokenizers): None follows the directory (its tokenizer_config.json's do_lower_case, strip_accents,
    tokenize_chinese_chars, as transformers reads them; lower-casing where nothing says, as UER-py); given, it
    wins over the directory."""
    from ..errors import DataError

    name = name or detect_tokenizer(directory)
    if name is None:
        return None
    path = file_in(name, directory)
    if path is None:
        raise DataError(f"{directory}: no file of the {name} tokenizer in the model directory; copy the release's "
                        "tokenizer files there, or pass --vocab_path / --spm_model_path")
    return build_tokenizer(name, path, path if path.endswith(".model") else None, do_lower_case)
