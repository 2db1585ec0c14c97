"""Flags shared by the command-line scripts (UER-py's names), derived from the registries, and the reading of a
script's text input."""
import logging
import os
import sys

from .config import MASKS
from .data.corpus import _BOMS, CORPUS_FORMATS, LINE_POLICIES
from .data.options import DEFAULTS, SENTENCE_SELECTION_STRATEGIES
from .data.processors import DATA_PROCESSOR_NAMES
from .errors import DataError, UerLikeError
from .flags import FRACTION, FRACTION_OPEN, SEED, Int
from .registry import TOKENIZERS


def setup_logging(level="INFO"):
    logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


def add_tokenizer_args(p):
    from . import tokenizers  # noqa: F401

    p.add_argument("--tokenizer", default="bert", choices=TOKENIZERS.names())
    p.add_argument("--vocab_path", default=None, help="WordPiece vocabulary (default models/google_zh_vocab.txt)")
    p.add_argument("--spm_model_path", default=None,
                   help="SentencePiece model: with the default tokenizer its pieces are the vocabulary (as UER-py)")
    p.add_argument("--do_lower_case", default=True, type=_bool, help="lower-case and strip accents (bert tokenizer)")


def add_preprocess_args(p):
    p.add_argument("--corpus_path", required=True)
    p.add_argument("--dataset_path", required=True)
    add_tokenizer_args(p)
    p.add_argument("--data_processor", default=DEFAULTS.data_processor, choices=DATA_PROCESSOR_NAMES)
    p.add_argument("--corpus_format", default=None, choices=CORPUS_FORMATS,
                   help="bert: one sentence per line, blank line between documents; line: one document per line "
                        "(default: bert for the bert/albert processors, line otherwise)")
    p.add_argument("--seq_length", type=Int(min=8), default=DEFAULTS.seq_length)
    p.add_argument("--dup_factor", type=Int(min=1, max=1000), default=DEFAULTS.dup_factor,
                   help="static masking: masked copies of each instance (--dynamic_masking stores none)")
    p.add_argument("--dynamic_masking", action="store_true", help="draw masks per batch at training time")
    p.add_argument("--whole_word_masking", action="store_true", help="mask whole jieba words")
    p.add_argument("--mask_decision", default=DEFAULTS.mask_decision, choices=("word", "token"),
                   help="whether the 80/10/10 [MASK]/random/keep choice is drawn once per word or per token")
    p.add_argument("--mask_prob", type=FRACTION_OPEN, default=DEFAULTS.mask_prob)
    g = p.add_argument_group("masking strategies (one at most; README: Masking strategies)")
    g.add_argument("--span_masking", action="store_true",
                   help="UER-py's span masking: geometric span lengths (of words with --whole_word_masking)")
    g.add_argument("--span_geo_prob", type=FRACTION_OPEN, default=DEFAULTS.span_geo_prob, help="span masking: the geometric parameter, in (0, 1)")
    g.add_argument("--span_max_length", type=Int(min=1, max=512), default=DEFAULTS.span_max_length, help="span masking: the longest span")
    g.add_argument("--ngram_masking", action="store_true", help="n-gram masking (n-grams of words with "
                                                                "--whole_word_masking)")
    g.add_argument("--ngram_probs", type=FRACTION, nargs="+", default=DEFAULTS.ngram_probs,
                   help="probabilities of 1-grams, 2-grams, ... (default: 1/n for 1..3; MacBERT: 0.4 0.3 0.2 0.1)")
    g.add_argument("--macbert_masking", action="store_true",
                   help="MacBERT's MLM as correction: n-grams replaced by similar words (--similar_words_path)")
    g.add_argument("--similar_words_path", default=DEFAULTS.similar_words_path, help="MacBERT: `word<TAB>candidate candidate ...` lines")
    g.add_argument("--pert_masking", action="store_true",
                   help="PERT's permuted LM: chosen tokens shuffled within windows; the target predicts positions")
    g.add_argument("--pert_window", type=Int(min=2, max=4096), default=DEFAULTS.pert_window, help="PERT: tokens move within windows of this size")
    p.add_argument("--short_seq_prob", type=FRACTION, default=DEFAULTS.short_seq_prob)
    p.add_argument("--tgt_seq_length", type=Int(min=8), default=DEFAULTS.tgt_seq_length,
                   help="gsg: the longest target (the gap sentences)")
    p.add_argument("--sentence_selection_strategy", default=DEFAULTS.sentence_selection_strategy,
                   choices=SENTENCE_SELECTION_STRATEGIES,
                   help="gsg: the gap sentences are the first 30%% of a document's (lead) or drawn (random)")
    p.add_argument("--user_dict", default=DEFAULTS.user_dict, help="extra jieba dictionary (word [freq] [tag] lines)")
    p.add_argument("--processes_num", type=Int(min=1, max=1024), default=DEFAULTS.processes_num)
    p.add_argument("--seed", type=SEED, default=DEFAULTS.seed)
    p.add_argument("--invalid_lines", default=DEFAULTS.invalid_lines, choices=LINE_POLICIES,
                   help="what to do with a corpus line that is not UTF-8 or holds NUL bytes")
    p.add_argument("--max_invalid_fraction", type=FRACTION, default=DEFAULTS.max_invalid_fraction,
                   help="fail (writing nothing) when more than this fraction of the corpus lines are invalid "
                        "(not UTF-8, NUL bytes, bad columns): a sign of the wrong encoding or format")
    p.add_argument("--chunk_bytes", type=Int(min=1 << 12, max=1 << 31), default=DEFAULTS.chunk_bytes, help="unit of parallel work (output does not depend "
                                                                    "on --processes_num, but does on this)")
    p.add_argument("--implementation", default=DEFAULTS.implementation, choices=("auto", "native", "python"),
                   help="native C fast path, or the all-Python reference (segmentation by jieba); "
                        "auto: native when built")


def add_model_flags(p):
    """UER-py's model flags, laid over the config (as UER-py's command line overrode its JSON config): they
    name the components of configs from before 2021, which held sizes only
    (`--embedding word_pos_seg --encoder transformer --target bert`)."""
    g = p.add_argument_group("model flags (UER-py's; override the config)")
    g.add_argument("--embedding", default=None, help="word_pos_seg, word_pos, word, word_sinusoidalpos, ...")
    g.add_argument("--encoder", default=None, help="transformer, lstm, gru, rnn, bilstm, bigru, birnn")
    g.add_argument("--target", nargs="+", default=None, help="bert, albert, mlm, lm, bilm, cls, sp (one or more)")
    g.add_argument("--mask", default=None, choices=MASKS)
    g.add_argument("--layernorm_positioning", default=None, choices=("post", "pre"))
    for flag in ("remove_embedding_layernorm", "factorized_embedding_parameterization", "parameter_sharing",
                 "tie_weights", "has_lmtarget_bias", "bidirectional"):
        g.add_argument("--" + flag, action="store_const", const=True, default=None)


def add_load_model_flags(p):
    """A model to load and its tokenizer (UER-py's names; scripts that inspect a model):
    load_model_and_tokenizer(args) reads them."""
    from . import tokenizers  # noqa: F401  (registration)

    p.add_argument("--load_model_path", required=True, help="the model (any format uer_like.load_model reads)")
    p.add_argument("--config_path", default=None, help="UER config of a UER checkpoint (default: the one beside it)")
    p.add_argument("--vocab_path", default=None,
                   help="vocabulary (default: the model directory's tokenizer files, else models/google_zh_vocab.txt)")
    p.add_argument("--spm_model_path", default=None, help="SentencePiece model whose pieces are the vocabulary")
    p.add_argument("--tokenizer", default=None, choices=TOKENIZERS.names(),
                   help="default: the model directory's (uer_like.io.tokenizer.model_tokenizer), else bert")
    add_model_flags(p)


def load_model_and_tokenizer(args, seq_length=None):
    """(model, tokenizer) from the flags of add_load_model_flags: the tokenizer is the model directory's own
    unless the flags name one, its size checked against the word embedding; seq_length is checked against
    the position embedding."""
    from .io import load_model
    from .io.tokenizer import model_tokenizer

    spm_size = None
    if args.spm_model_path and args.tokenizer in (None, "bert", "sentencepiece", "char", "space"):
        from .tokenizers.spm import load_processor

        spm_size = load_processor(args.spm_model_path).GetPieceSize()
    model = load_model(args.load_model_path, config=args.config_path, vocab_size=spm_size, seq_length=seq_length,
                       config_overrides=model_flag_overrides(args))
    return model, model_tokenizer(model, args.tokenizer, args.vocab_path, args.spm_model_path)


def add_threads_arg(p):
    """--threads: CPU threads for torch (apply_threads sets them)."""
    p.add_argument("--threads", type=Int(min=0, max=4096), default=0,
                   help="CPU threads for torch (0: torch's default; 1 is often fastest on a busy machine)")


def apply_threads(args):
    """torch.set_num_threads(--threads); 0 keeps torch's default."""
    if args.threads:
        import torch  # preprocess.py's flags live here too: it starts without torch

        torch.set_num_threads(args.threads)


def read_text_lines(path, what):
    """The lines of a UTF-8 text file given as flag `what` (prompts, texts): a BOM and each line's final \\r
    dropped, nothing after a final newline. One-line errors: no such file, a directory, UTF-16/32 text (by
    its byte-order mark) and bytes that are not UTF-8, named by the file and the line as the corpus readers
    name them, with the iconv command that converts the file."""
    if os.path.isdir(path):
        raise DataError(f"{what} {path} is a directory, not a text file")
    if not os.path.isfile(path):
        raise DataError(f"{what} {path}: no such file")
    with open(path, "rb") as f:
        raw = f.read()
    for bom, enc in _BOMS:
        if raw.startswith(bom):
            raise DataError(f"{what} {path} is {enc} text; it must be UTF-8: convert it with "
                            f"`iconv -f {enc[:6]} -t UTF-8 {path} > {path}.utf8`")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        byte = e.start - (raw.rfind(b"\n", 0, e.start) + 1)
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte {byte} of the line); {what} must be UTF-8 text "
                        f"(from GBK: `iconv -f GBK -t UTF-8 {path} > {path}.utf8`)") from None
    lines = text.removeprefix("\ufeff").split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def model_flag_overrides(args):
    """The model flags given on the command line, as config keys."""
    keys = ("embedding", "encoder", "target", "mask", "layernorm_positioning", "remove_embedding_layernorm",
            "factorized_embedding_parameterization", "parameter_sharing", "tie_weights", "has_lmtarget_bias",
            "bidirectional")
    out = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if isinstance(out.get("target"), list) and len(out["target"]) == 1:
        out["target"] = out["target"][0]  # UER-py's single target strings (bert, albert)
    return out


def _bool(s):
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise ValueError(s)


def call_checked(fn, *args):
    """fn(*args), returning its exit status: a UerLikeError becomes one clear line on stderr and status 2, Ctrl-C
    status 130 (the scripts' `main(argv)` return this, so tests read the status without a subprocess)."""
    try:
        return fn(*args)
    except UerLikeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run_main(fn):
    """Run a script's main; a UerLikeError becomes one clear line on stderr and exit status 2."""
    status = call_checked(fn)
    if status in (2, 130):
        sys.exit(status)
