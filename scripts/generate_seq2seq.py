#!/usr/bin/env python
"""Generate target text from source text with an encoder-decoder model (BART, PEGASUS, T5, mT5), with UER-py's flags.

    python scripts/generate_seq2seq.py --load_model_path t5-small-chinese-cluecorpussmall/ \
        --test_path sources.txt --prediction_path generated.txt --seq_length 128 --tgt_seq_length 64 --top_k 1

--test_path: one source per line. Each source is encoded as UER-py's generate_seq2seq.py encodes it: the start
token, the line's tokens, the end token ([CLS] ... [SEP] for BERT vocabularies; --source_start_token and
--source_end_token change them, '' for none). A source longer than --seq_length tokens is truncated to its first
--seq_length tokens (as UER-py does), and the number of truncated lines is logged with the first one's line
number; --seq_length itself may not exceed the encoder's position table (an error naming --seq_length).
--ids: each line is a source already tokenised, as space-separated token ids used as they are (nothing added,
nothing truncated: a source longer than --seq_length is an error naming the file and line); the predictions are
then ids too.

--prediction_path: one line per source, the generated target text (tokens joined without spaces, WordPiece's ##
dropped, the end token left out); with --ids, the generated ids separated by spaces, ending with the end token's
id when a row stopped there (what uer_like.generate returns). The decoder starts from --decoder_start_token_id
(default: the model's config.json, else the tokenizer's start token, [CLS]); it generates at most
--tgt_seq_length - 1 tokens (the start token counts, as in UER-py), or --max_new_tokens when smaller, and a row
stops at --end_token (default: the model's config.json eos_token_id, else the tokenizer's end token, [SEP]).

Decoding as scripts/generate_lm.py: sampling with --top_k/--top_p/--temperature (UER-py's defaults: top_k 70,
temperature 1.0; --top_k 1 is greedy); --num_beams N > 1 is beam search. The rules transformers' generate
applies (uer_like/logits_processors.py): --repetition_penalty, --no_repeat_ngram_size, --bad_words_ids,
--min_length / --min_new_tokens, --forced_bos_token_id, --forced_eos_token_id.

A release's generation settings are the defaults of the flags not given, as transformers reads them: its
generation_config.json, else its config.json (fnlp/bart-base-chinese's config.json: num_beams 4,
no_repeat_ngram_size 3): num_beams, length_penalty, the rules above, max_length as --tgt_seq_length,
decoder_start_token_id, eos_token_id. A forced token id of -1 and --bad_words_ids '[]' turn a release's off.
Settings generation does not apply (encoder_no_repeat_ngram_size, suppress_tokens, ...) are named in a warning.
The tokenizer is the model directory's own (uer_like.io.tokenizer.model_tokenizer) unless --tokenizer,
--vocab_path or --spm_model_path name one.

Errors, each one line, before generation starts: a model without a decoder (use scripts/generate_lm.py), an
empty source line (named by its line), ids outside the vocabulary, the options against the model.
"""
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

logger = logging.getLogger("uer_like")


def build_parser():
    from uer_like.cli import add_threads_arg
    from uer_like.flags import COUNT, FORCED_TOKEN, GENERATION_RULES as R, Int, Parser, TokenLists
    from uer_like.registry import TOKENIZERS
    from uer_like import tokenizers  # noqa: F401  (registration)

    p = Parser(description=__doc__)
    p.add_argument("--load_model_path", required=True, help="the encoder-decoder model (any format load_model reads)")
    p.add_argument("--config_path", default=None, help="UER config of a UER checkpoint (default: the one beside it)")
    p.add_argument("--vocab_path", default=None, help="vocabulary (default: the model directory's tokenizer files)")
    p.add_argument("--spm_model_path", default=None, help="SentencePiece model whose pieces are the vocabulary")
    p.add_argument("--tokenizer", default=None, choices=TOKENIZERS.names(),
                   help="default: the model directory's (vocab.txt -> bert, ...), else bert")
    p.add_argument("--test_path", required=True, help="sources, one per line")
    p.add_argument("--prediction_path", required=True, help="output: one line per source")
    p.add_argument("--ids", action="store_true",
                   help="sources are space-separated token ids (used as they are) and predictions are ids")
    p.add_argument("--seq_length", type=R["seq_length"], default=None,
                   help="source length: longer text sources are truncated to it (--ids: an error); default 128, or "
                        "the encoder's position table when smaller")
    p.add_argument("--tgt_seq_length", type=Int(min=2, max=1 << 20), default=None,
                   help="target length, the decoder's start token included: at most tgt_seq_length - 1 new tokens; "
                        "default: the model's generation_config.json / config.json max_length, else 128, or the "
                        "decoder's position table + 1 when smaller")
    p.add_argument("--max_new_tokens", type=COUNT, default=None,
                   help="at most this many new tokens (default: tgt_seq_length - 1)")
    p.add_argument("--top_k", type=R["top_k"], default=70,
                   help="sample from the k most probable tokens (0: all; 1: greedy)")
    p.add_argument("--top_p", type=R["top_p"], default=1.0, help="nucleus sampling, in (0, 1] (1: off)")
    p.add_argument("--temperature", type=R["temperature"], default=1.0)
    p.add_argument("--repetition_penalty", type=R["repetition_penalty"], default=None,
                   help="default: the model's generation_config.json / config.json, else 1.0")
    p.add_argument("--num_beams", type=R["num_beams"], default=None,
                   help="> 1: beam search instead of sampling (at most the vocabulary size; default: the model's "
                        "generation_config.json / config.json num_beams, else 1)")
    p.add_argument("--length_penalty", type=R["length_penalty"], default=None,
                   help="beam search: score / new_tokens ** this (default: the model's, else 1.0)")
    p.add_argument("--min_new_tokens", type=R["min_new_tokens"], default=None,
                   help="no end token before this many new tokens (default: the model's min_new_tokens, else 0)")
    p.add_argument("--min_length", type=R["min_length"], default=None,
                   help="no end token before the decoder's sequence, its start token included, has this many "
                        "tokens (default: the model's min_length, else 0)")
    p.add_argument("--no_repeat_ngram_size", type=R["no_repeat_ngram_size"], default=None,
                   help="no n-gram of this size twice in a target (0: off; default: the model's, else 0)")
    p.add_argument("--forced_bos_token_id", type=FORCED_TOKEN, default=None,
                   help="the first generated token (-1: none; default: the model's, else none)")
    p.add_argument("--forced_eos_token_id", type=FORCED_TOKEN, default=None,
                   help="the token generated last when a target reaches its length (-1: none; default: the "
                        "model's, else none)")
    p.add_argument("--bad_words_ids", type=TokenLists(), default=None,
                   help="token-id sequences never generated, JSON: '[[5], [7, 8]]' ('[]': none; default: the "
                        "model's, else none)")
    p.add_argument("--batch_size", type=R["batch_size"], default=8)
    p.add_argument("--seed", type=R["seed"], default=7)
    p.add_argument("--decoder_start_token_id", type=Int(min=0), default=None,
                   help="the decoder's first token (default: the model's config.json, else the tokenizer's start "
                        "token's id: [CLS] for BERT vocabularies)")
    p.add_argument("--end_token", default=None, help="a row stops after it ('' for never; default: the model's "
                   "config.json eos_token_id, else the tokenizer's end token: [SEP] for BERT vocabularies)")
    p.add_argument("--source_start_token", default=None,
                   help="put before every text source ('' for none; default: the tokenizer's, [CLS])")
    p.add_argument("--source_end_token", default=None,
                   help="put after every text source ('' for none; default: the tokenizer's, [SEP])")
    add_threads_arg(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from uer_like.cli import call_checked

    return call_checked(_run, args)


def read_sources(lines, args, tokenizer, start, end, model_vocab):
    """The source ids of each line (text: start + tokens + end, truncated to --seq_length; --ids: as given)."""
    from uer_like.errors import DataError

    sources, truncated = [], []
    for n, line in enumerate(lines, 1):
        where = f"--test_path {args.test_path} line {n}"
        if not line.strip():
            raise DataError(f"{where} is empty: give one non-empty source per line")
        if args.ids:
            try:
                ids = [int(t) for t in line.split()]
            except ValueError:
                raise DataError(f"{where} is not space-separated token ids (--ids): {line[:40]!r}") from None
            bad = [i for i in ids if not 0 <= i < model_vocab]
            if bad:
                raise DataError(f"{where}: id {bad[0]} is outside the model's vocabulary [0, {model_vocab})")
            if len(ids) > args.seq_length:
                raise DataError(f"{where} has {len(ids)} ids, more than --seq_length {args.seq_length}: shorten it "
                                "or raise --seq_length")
        else:
            ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line))
            ids = ([start] if start is not None else []) + ids + ([end] if end is not None else [])
            if len(ids) > args.seq_length:
                truncated.append(n)
                ids = ids[:args.seq_length]
        sources.append(ids)
    if truncated:
        logger.warning("%d of %d sources are longer than --seq_length %d tokens and were truncated to it (the first: "
                       "line %d)", len(truncated), len(lines), args.seq_length, truncated[0])
    return sources


def _run(args):
    from uer_like.cli import apply_threads, read_text_lines
    from uer_like.errors import ConfigError, DataError
    from uer_like.outputs import atomic_write, check_output_file

    lines = read_text_lines(args.test_path, "--test_path")
    if not lines:
        raise DataError(f"--test_path {args.test_path} is empty: give one source per line")
    check_output_file(args.prediction_path, "--prediction_path", error=DataError)
    apply_threads(args)

    import torch

    import uer_like
    from uer_like.generation import check_options, decoding_settings, detokenize, release_defaults, special_id
    from uer_like.io import load_model
    from uer_like.io.tokenizer import model_tokenizer
    from uer_like.tokenizers import lm_tokens

    spm_size = None
    if args.spm_model_path and args.tokenizer in (None, "bert", "sentencepiece", "char", "space"):
        from uer_like.tokenizers.spm import load_processor

        spm_size = load_processor(args.spm_model_path).GetPieceSize()
    model = load_model(args.load_model_path, config=args.config_path, vocab_size=spm_size)
    if getattr(model, "decoder", None) is None:
        raise ConfigError(f"{args.load_model_path} has no decoder (not an encoder-decoder model): generate from a "
                          "left-to-right language model with scripts/generate_lm.py")
    model_vocab = model.target.lm.output_layer.out_features
    limit = model.config.position_limit
    release = release_defaults(model)  # the release's generation settings: defaults of the flags not given
    if release.get("unsupported"):
        logger.warning("the model's generation settings ask for %s, which uer_like.generate does not apply: "
                       "generation runs without them", ", ".join(f"{k} {v}" for k, v in release["unsupported"].items()))
    settings = decoding_settings(vars(args), release)  # the flags, else the release's, else neutral
    args.num_beams = settings["num_beams"]
    if args.seq_length is None:
        args.seq_length = 128 if limit is None else min(128, limit)
    if args.tgt_seq_length is None:
        default = release.get("max_length", 128)
        args.tgt_seq_length = default if limit is None else min(default, limit + 1)
    check_options({"seq_length": args.seq_length}, model_vocab, limit, "--")
    max_new = args.tgt_seq_length - 1
    if limit is not None and max_new > limit:
        raise ConfigError(f"--tgt_seq_length {args.tgt_seq_length} needs {max_new} decoder positions but the model's "
                          f"position table has {limit} (max_seq_length): use at most {limit + 1}")
    if args.max_new_tokens is not None:
        max_new = min(max_new, args.max_new_tokens)
    tokenizer = model_tokenizer(model, args.tokenizer, args.vocab_path, args.spm_model_path)
    vocab = tokenizer.vocab
    tok_start, tok_end = lm_tokens(tokenizer)
    hf = getattr(getattr(model, "load_info", None), "hf_config", None) or {}
    start = args.decoder_start_token_id
    if start is None:
        start = hf.get("decoder_start_token_id")
    if start is None:
        start = special_id(vocab, tok_start, "the tokenizer's start token", model_vocab)
        if start is None:
            raise ConfigError("the tokenizer has no start token: give --decoder_start_token_id")
    if args.end_token is not None:
        eos = special_id(vocab, args.end_token, "--end_token", model_vocab)
    elif hf.get("eos_token_id") is not None:
        eos = hf["eos_token_id"]
    else:
        eos = special_id(vocab, tok_end, "the tokenizer's end token", model_vocab)
    src_start = special_id(vocab, tok_start if args.source_start_token is None else args.source_start_token,
                          "--source_start_token", model_vocab)
    src_end = special_id(vocab, tok_end if args.source_end_token is None else args.source_end_token,
                        "--source_end_token", model_vocab)
    options = check_options(dict(settings, do_sample=args.num_beams == 1 and args.top_k != 1, top_k=args.top_k,
                                 top_p=args.top_p, temperature=args.temperature, decoder_start_token_id=start,
                                 eos_token_id=eos, batch_size=args.batch_size, max_new_tokens=max_new),
                            model_vocab, None, "--")
    sources = read_sources(lines, args, tokenizer, src_start, src_end, model_vocab)
    batch = options.pop("batch_size")
    max_new = options.pop("max_new_tokens")
    torch.manual_seed(args.seed)
    out = []
    for b in range(0, len(sources), batch):
        for row in uer_like.generate(model, sources[b:b + batch], max_new, **options):
            if args.ids:
                out.append(" ".join(map(str, row)))
                continue
            if eos is not None and row and row[-1] == eos:
                row = row[:-1]
            row = [i for i in row if i < len(vocab)]  # an embedding's padding rows have no token
            decode = getattr(tokenizer, "decode", None)
            out.append(decode(row) if decode is not None else
                       detokenize(vocab.convert_ids_to_tokens(row), args.tokenizer or "bert"))
    data = "".join(line + "\n" for line in out).encode("utf-8")
    atomic_write(args.prediction_path, lambda f: f.write(data), error=DataError, what="--prediction_path")
    print(f"{len(lines)} sources -> {args.prediction_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
