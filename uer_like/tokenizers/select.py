"""Which tokenizer a model directory needs, from its files (a registry walk, no per-family code).

Each registered tokenizer class may declare
- `hf_tokenizer_classes`: the Hugging Face tokenizer_class names (tokenizer_config.json / config.json) it
  stands for, and `hf_model_types`: the config.json model_types whose releases use it;
- `files_in(directory)`: the file it reads in a release directory (None when the directory has none;
  `detect_files`, when given, are the names that select it by files alone),
  and `build(vocab_path, spm_model_path, do_lower_case)` when it is built from something else than a
  one-token-per-line vocabulary.

`detect(directory)` decides, first rule that applies: the directory's tokenizer_class; a UER config's
`tokenizer` key (config.json without a model_type); the config.json model_type; then the files, in the
order of FILE_ORDER (CPM's and XLM-R's sentencepiece models, XLNet's spiece.model, BERT's vocab.txt,
byte-level BPE's tokenizer.json / vocab.json + merges.txt). None: nothing says (the caller's default)."""
import os

from ..registry import TOKENIZERS
from .release_files import describe

# file-based detection order: the first tokenizer whose files_in finds its file wins (a Chinese GPT-2
# release holds vocab.txt and often a tokenizer.json of the same WordPiece vocabulary: BERT comes first)
FILE_ORDER = ("cpm", "xlmr", "xlnet", "bert", "byte_bpe")


def _classes():
    return [(n, TOKENIZERS.get(n)) for n in TOKENIZERS.names()]


def _unless_switched_off(name, cls, info):
    """`disabled_by` = {key: value}: a tokenizer_config.json setting that turns the class's special step
    off (PaddleNLP's RoFormerTokenizer with use_jieba false is BERT's tokenizer) -> "bert"."""
    off = getattr(cls, "disabled_by", {})
    return "bert" if any(k in info and info[k] == v for k, v in off.items()) else name


def detect(directory):
    """The tokenizer name for a release directory (see the module docstring), or None."""
    if not directory or not os.path.isdir(directory):
        return None
    info = describe(directory)
    cls_name = info.get("tokenizer_class")
    if cls_name:
        for name, cls in _classes():
            if cls_name in getattr(cls, "hf_tokenizer_classes", ()):
                return _unless_switched_off(name, cls, info)
    if info.get("tokenizer") in TOKENIZERS:
        return info["tokenizer"]
    mt = info.get("model_type")
    if mt:
        for name, cls in _classes():
            if mt in getattr(cls, "hf_model_types", ()):
                return _unless_switched_off(name, cls, info)
    for name in FILE_ORDER:
        cls = TOKENIZERS.get(name)
        names = getattr(cls, "detect_files", None)
        if names is not None:
            found = any(n in info["files"] for n in names)
        else:
            found = getattr(cls, "files_in", None) is not None and cls.files_in(directory) is not None
        if found and (name != "xlnet" or mt in (None, "xlnet")):
            return name
    return None


def file_in(name, directory):
    """The file tokenizer `name` reads in `directory`, or None."""
    files_in = getattr(TOKENIZERS.get(name, key="tokenizer"), "files_in", None)
    return files_in(directory) if files_in is not None and directory and os.path.isdir(directory) else None


def lm_tokens(tokenizer):
    """(start, end) tokens of a left-to-right LM prompt for this tokenizer: BERT-style vocabularies use
    UER's [CLS] / [SEP]; GPT-2 BPE none / <|endoftext|>; CPM none / <eod>; XLM-R <s> / </s>."""
    return getattr(tokenizer, "lm_start_token", "[CLS]"), getattr(tokenizer, "lm_end_token", "[SEP]")


def padded_rows(n, rows):
    """True when `rows` is `n` rounded up to a multiple of 8, 16, ..., 1024: a release that pads its word
    embedding (Megatron / nanoGPT pad GPT-2's 50,257 to 50,304); the padding rows are never produced."""
    return rows > n and any(rows % m == 0 and rows - n < m for m in (8, 16, 32, 64, 128, 256, 512, 1024))
