"""The tokenizer of a loaded model: the one its directory's files call for (tokenizers/select.py), unless
the caller names one or gives the files; checked against the model's word embedding."""
import logging
import os

from ..errors import CheckpointError
from ..resources import DEFAULT_VOCAB
from ..tokenizers import build_tokenizer, tokenizer_from_dir
from ..tokenizers.select import padded_rows
from .formats import LoadInfo, load_info_of

logger = logging.getLogger("uer_like")


def model_dir(model):
    """The directory whose tokenizer files belong to a loaded model (the release directory, else the
    directory of its weights file), or None."""
    info = load_info_of(model) or LoadInfo()
    if info.tokenizer_dir:
        return info.tokenizer_dir
    return os.path.dirname(os.path.abspath(info.path)) if info.path else None


def model_tokenizer(model, name=None, vocab_path=None, spm_model_path=None, do_lower_case=None,
                    default_vocab=DEFAULT_VOCAB, check=True):
    """The tokenizer for `model`:
    - `vocab_path` / `spm_model_path` given: built from them (`name`, default bert, as UER-py's flags);
    - else the model directory's (model_dir): `name`, else the model config's own tokenizer when it is not
      bert (XLNet, or a UER config naming one), else what the directory's files call for;
    - else bert over the vocabulary load_model found, else `default_vocab` (Google's Chinese vocabulary).
    do_lower_case None: the tokenizer files' directory decides (tokenizers.text_settings), else True.
    check: refuse one whose vocabulary size does not fit the word embedding (check_tokenizer_rows)."""
    info = load_info_of(model) or LoadInfo()
    tok = None
    if vocab_path or spm_model_path:
        tok = build_tokenizer(name or "bert", vocab_path, spm_model_path, do_lower_case)
    else:
        d = model_dir(model)
        own = getattr(model.config, "tokenizer", "bert")
        hint = name or (own if own != "bert" else None)
        if d is not None:
            tok = tokenizer_from_dir(d, hint, do_lower_case)
        if tok is None:
            tok = build_tokenizer(name or own, info.vocab_path or default_vocab, None, do_lower_case)
    if check:
        check_tokenizer_rows(tok, model)
    return tok


def check_tokenizer_rows(tokenizer, model):
    """Refuse, in one line naming both, a tokenizer whose vocabulary size differs from the rows of the
    model's word embedding (check_rows)."""
    info = load_info_of(model) or LoadInfo()
    check_rows(len(tokenizer.vocab), model.embedding.word.embedding.weight.shape[0],
               tokenizer.vocab.path or type(tokenizer).__name__, info.path or "the model")


def check_rows(n, rows, tokenizer_file, weights):
    """A tokenizer of `n` tokens (read from `tokenizer_file`) for a word embedding of `rows` rows (in
    `weights`, a file or a release directory): equal, or more rows when they are `n` rounded up to a
    multiple of 8..1024 (padding, select.padded_rows: accepted and logged); anything else is a
    CheckpointError in one line naming both."""
    if n == rows:
        return
    wfile = weights
    if os.path.isdir(wfile):  # a release directory: name its weights file
        from .formats.hf import weights_in

        try:
            wfile = (weights_in(wfile) or [wfile])[0]
        except CheckpointError:
            pass
    if padded_rows(n, rows):
        logger.info("%s: %d tokens; the word embedding of %s has %d rows (padding, never produced)", tokenizer_file,
                    n, wfile, rows)
        return
    raise CheckpointError(f"the tokenizer {tokenizer_file} has {n} tokens but the word embedding of {wfile} has {rows} "
                          "rows: use the model's own tokenizer files, or resize the model (uer_like.io.resize_vocab)")
