#!/usr/bin/env python
"""Generate text with a left-to-right language model (GPT-2, LSTM/GRU LMs), with UER-py's flags.

    python scripts/generate_lm.py --load_model_path output/gpt2_tiny.bin --config_path output/gpt2_tiny_config.json \
        --vocab_path models/google_zh_vocab.txt --test_path beginning.txt --prediction_path generated.txt \
        --seq_length 128 --top_k 70

--test_path: one prompt per line. --prediction_path: one line per prompt, the prompt followed by the text
generated for it (UER-py's convention: [CLS] starts every prompt, the tokens are joined without spaces).
Generation stops at [SEP] or when prompt + new tokens reach --seq_length (the total length, as UER-py; the
[CLS] counts), or after --max_new_tokens new tokens. An empty line generates from [CLS] alone. A prefix LM
(mask causal_with_prefix, pretrained on --data_processor prefixlm) reads each line as its source, [CLS] line
[SEP] (segment 1, attended both ways), and generates its target (segment 2).

The tokenizer is the model directory's own (uer_like.io.tokenizer.model_tokenizer: vocab.txt -> bert,
GPT-2's vocab.json + merges.txt or tokenizer.json -> byte_bpe, CPM -> cpm, ...) unless --tokenizer,
--vocab_path or --spm_model_path name one; its start and end tokens are its own ([CLS]/[SEP] for BERT
vocabularies; none/<|endoftext|> for GPT-2, whose text is decoded by its byte-level decoder; none/<eod> for
CPM). A tokenizer whose size differs from the model's word embedding is refused (padding rows excepted).

Decoding: sampling with --top_k/--top_p/--temperature (UER-py's defaults: top_k 70, temperature 1.0;
--top_k 1 is greedy); --num_beams N > 1 is beam search. The rules transformers' generate applies
(uer_like/logits_processors.py): --repetition_penalty, --no_repeat_ngram_size, --bad_words_ids, --min_length /
--min_new_tokens, --forced_bos_token_id, --forced_eos_token_id; a Hugging Face directory's generation_config.json
(else its config.json) gives the defaults of these and of --num_beams / --length_penalty, as transformers reads
them. --seed makes sampling reproducible (for one
--batch_size). --load_model_path takes anything uer_like.load_model reads: UER .bin files of every UER-py
era (with --config_path), Hugging Face GPT-2 directories (uer/gpt2-chinese-*), safetensors.

Everything is checked before generation starts, each error one line: the options against the model (beams
within its vocabulary), every prompt (UTF-8, named by its line; within --seq_length), the place of
--prediction_path. --prediction_path is written at once at the end: an interrupted run leaves the previous
file, or none. --threads 1 is often fastest on a busy machine.
"""
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    from uer_like.cli import add_model_flags, add_threads_arg
    from uer_like.flags import COUNT, FORCED_TOKEN, GENERATION_RULES as R, Parser, TokenLists  # generate's ranges
    from uer_like.registry import TOKENIZERS
    from uer_like import tokenizers  # noqa: F401  (registration)

    p = Parser(description=__doc__)
    p.add_argument("--load_model_path", required=True, help="the language model (any format load_model reads)")
    p.add_argument("--config_path", default=None, help="UER config of a UER checkpoint (default: the one beside it)")
    p.add_argument("--vocab_path", default=None,
                   help="vocabulary (default: the model directory's tokenizer files, else "
                        "models/google_zh_vocab.txt)")
    p.add_argument("--spm_model_path", default=None, help="SentencePiece model whose pieces are the vocabulary")
    p.add_argument("--tokenizer", default=None, choices=TOKENIZERS.names(),
                   help="default: the model directory's (its tokenizer_config.json / config.json / files: "
                        "vocab.txt -> bert, vocab.json + merges.txt or tokenizer.json -> byte_bpe, "
                        "sentencepiece.bpe.model -> xlmr, ...), else bert")
    p.add_argument("--test_path", required=True, help="prompts, one per line")
    p.add_argument("--prediction_path", required=True, help="output: one line per prompt")
    p.add_argument("--seq_length", type=R["seq_length"], default=128,
                   help="total length: prompt ([CLS] included) + new tokens")
    p.add_argument("--max_new_tokens", type=COUNT, default=None, help="at most this many new tokens per prompt "
                                                                    "(default: up to --seq_length)")
    p.add_argument("--top_k", type=R["top_k"], default=70,
                   help="sample from the k most probable tokens (0: all; 1: greedy)")
    p.add_argument("--top_p", type=R["top_p"], default=1.0, help="nucleus sampling, in (0, 1] (1: off)")
    p.add_argument("--temperature", type=R["temperature"], default=1.0)
    release = " (default: the model's generation_config.json / config.json, else %s)"
    p.add_argument("--repetition_penalty", type=R["repetition_penalty"], default=None, help=release[1:] % "1.0")
    p.add_argument("--num_beams", type=R["num_beams"], default=None,
                   help="> 1: beam search instead of sampling (at most the vocabulary size)" + release % "1")
    p.add_argument("--length_penalty", type=R["length_penalty"], default=None,
                   help="beam search: score / new_tokens ** this" + release % "1.0")
    p.add_argument("--min_new_tokens", type=R["min_new_tokens"], default=None,
                   help="no end token before this many new tokens" + release % "0")
    p.add_argument("--min_length", type=R["min_length"], default=None,
                   help="no end token before prompt + new tokens have this many tokens" + release % "0")
    p.add_argument("--no_repeat_ngram_size", type=R["no_repeat_ngram_size"], default=None,
                   help="no n-gram of this size twice in prompt + new tokens (0: off)" + release % "0")
    p.add_argument("--forced_bos_token_id", type=FORCED_TOKEN, default=None,
                   help="the first new token after a one-token prompt (-1: none)" + release % "none")
    p.add_argument("--forced_eos_token_id", type=FORCED_TOKEN, default=None,
                   help="the last new token when a row reaches its length (-1: none)" + release % "none")
    p.add_argument("--bad_words_ids", type=TokenLists(), default=None,
                   help="token-id sequences never generated, JSON: '[[5], [7, 8]]' ('[]': none)" + release % "none")
    p.add_argument("--batch_size", type=R["batch_size"], default=8)
    p.add_argument("--seed", type=R["seed"], default=7)
    p.add_argument("--start_token", default=None, help="put before every prompt ('' for none; default: the "
                   "tokenizer's: [CLS] for BERT vocabularies, none for GPT-2 BPE and CPM, <s> for XLM-R)")
    p.add_argument("--end_token", default=None, help="stop after it ('' for never; default: the tokenizer's: "
                   "[SEP], <|endoftext|>, <eod> for CPM, </s>)")
    add_threads_arg(p)
    add_model_flags(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from uer_like.cli import call_checked

    return call_checked(_run, args)


def _run(args):
    from uer_like.cli import apply_threads, model_flag_overrides, read_text_lines
    from uer_like.errors import DataError
    from uer_like.outputs import atomic_write, check_output_file

    lines = read_text_lines(args.test_path, "--test_path")
    if not lines:
        raise DataError(f"--test_path {args.test_path} is empty: give one prompt per line (an empty line generates "
                        "from the start token alone)")
    check_output_file(args.prediction_path, "--prediction_path", error=DataError)
    apply_threads(args)

    import torch

    from uer_like.generation import check_lm, decoding_settings, generate_text, release_defaults
    from uer_like.io import load_model
    from uer_like.io.tokenizer import model_tokenizer
    from uer_like.tokenizers import lm_tokens

    spm_size = None
    if args.spm_model_path and args.tokenizer in (None, "bert", "sentencepiece", "char", "space"):
        from uer_like.tokenizers.spm import load_processor

        spm_size = load_processor(args.spm_model_path).GetPieceSize()
    model = load_model(args.load_model_path, config=args.config_path, vocab_size=spm_size, seq_length=args.seq_length,
                       config_overrides=model_flag_overrides(args))
    if getattr(model, "decoder", None) is not None:
        from uer_like.errors import ConfigError

        raise ConfigError(f"{args.load_model_path} is an encoder-decoder model (decoder: {model.config.decoder}): "
                          "generate from it with scripts/generate_seq2seq.py")
    check_lm(model, prefix=True)
    # the model directory's own tokenizer unless named; its size checked against the embedding (one line)
    tokenizer = model_tokenizer(model, args.tokenizer, args.vocab_path, args.spm_model_path)
    start, end = lm_tokens(tokenizer)
    start = start if args.start_token is None else args.start_token
    end = end if args.end_token is None else args.end_token
    release = release_defaults(model)  # a Hugging Face directory's generation settings: defaults of the flags
    if release.get("unsupported"):
        logging.getLogger("uer_like").warning(
            "the model's generation settings ask for %s, which uer_like.generate does not apply: generation runs "
            "without them", ", ".join(f"{k} {v}" for k, v in release["unsupported"].items()))
    settings = decoding_settings(vars(args), release)
    torch.manual_seed(args.seed)
    sample = settings["num_beams"] == 1
    texts = generate_text(model, tokenizer, lines, seq_length=args.seq_length, max_new_tokens=args.max_new_tokens,
                          batch_size=args.batch_size, start_token=start or None, end_token=end or None,
                          tokenizer_name="sentencepiece" if args.spm_model_path and args.tokenizer in (None, "bert")
                          else args.tokenizer or "bert", source=args.test_path, do_sample=sample, top_k=args.top_k,
                          top_p=args.top_p, temperature=args.temperature, option_prefix="--", **settings)
    out = "".join(line + text + "\n" for line, text in zip(lines, texts)).encode("utf-8")
    atomic_write(args.prediction_path, lambda f: f.write(out), error=DataError, what="--prediction_path")
    print(f"{len(lines)} prompts -> {args.prediction_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
