#!/usr/bin/env python
"""Generate text with a left-to-right language model (GPT-2, LSTM/GRU LMs), with UER-py's flags.

    python scripts/generate_lm.py --load_model_path output/gpt2_tiny.bin --config_path output/gpt2_tiny_config.json \
        --vocab_path models/google_zh_vocab.txt --test_path beginning.txt --prediction_path generated.txt \
        --seq_length 128 --top_k 70

--test_path: one prompt per line. --prediction_path: one line per prompt, the prompt followed by the text
generated for it (UER-py's convention: [CLS] starts every prompt, the tokens are joined without spaces).
Generation stops at [SEP] or when prompt + new tokens reach --seq_length (the total length, as UER-py; the
[CLS] counts), or after --max_new_tokens new tokens. An empty line generates from [CLS] alone.

Decoding: sampling with --top_k/--top_p/--temperature (UER-py's defaults: top_k 70, temperature 1.0;
--top_k 1 is greedy); --num_beams N > 1 is beam search. --seed makes sampling reproducible (for one
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
    from uer_like.flags import COUNT, GENERATION_RULES as R, Parser  # the ranges uer_like.generate checks

    p = Parser(description=__doc__)
    p.add_argument("--load_model_path", required=True, help="the language model (any format load_model reads)")
    p.add_argument("--config_path", default=None, help="UER config of a UER checkpoint (default: the one beside it)")
    p.add_argument("--vocab_path", default=None,
                   help="vocabulary (default: the model's own vocab.txt, else models/google_zh_vocab.txt)")
    p.add_argument("--spm_model_path", default=None, help="SentencePiece model whose pieces are the vocabulary")
    p.add_argument("--tokenizer", default="bert", choices=("bert", "char", "space"))
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
    p.add_argument("--repetition_penalty", type=R["repetition_penalty"], default=1.0)
    p.add_argument("--num_beams", type=R["num_beams"], default=1,
                   help="> 1: beam search instead of sampling (at most the vocabulary size)")
    p.add_argument("--length_penalty", type=R["length_penalty"], default=1.0,
                   help="beam search: score / new_tokens ** this")
    p.add_argument("--min_new_tokens", type=R["min_new_tokens"], default=0, help="no [SEP] before this many new tokens")
    p.add_argument("--batch_size", type=R["batch_size"], default=8)
    p.add_argument("--seed", type=R["seed"], default=7)
    p.add_argument("--start_token", default="[CLS]", help="put before every prompt ('' for none)")
    p.add_argument("--end_token", default="[SEP]", help="stop after it ('' for never)")
    add_threads_arg(p)
    add_model_flags(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from uer_like.errors import UerLikeError

    try:
        return _run(args)
    except UerLikeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _run(args):
    from uer_like.cli import apply_threads, model_flag_overrides, read_text_lines
    from uer_like.errors import DataError
    from uer_like.outputs import atomic_write, check_output_file

    lines = read_text_lines(args.test_path, "--test_path")
    if not lines:
        raise DataError(f"--test_path {args.test_path} is empty: give one prompt per line (an empty line generates "
                        f"from {args.start_token or 'nothing'})")
    check_output_file(args.prediction_path, "--prediction_path", error=DataError)
    apply_threads(args)

    import torch

    from uer_like.generation import check_lm, generate_text
    from uer_like.io import load_model
    from uer_like.resources import DEFAULT_VOCAB
    from uer_like.tokenizers import build_tokenizer

    spm_size = None
    if args.spm_model_path:
        from uer_like.tokenizers.spm import load_processor

        spm_size = load_processor(args.spm_model_path).GetPieceSize()
    model = load_model(args.load_model_path, config=args.config_path, vocab=args.vocab_path,
                       vocab_size=spm_size, seq_length=args.seq_length, config_overrides=model_flag_overrides(args))
    check_lm(model)
    vocab_path = args.vocab_path or model.load_info.vocab_path
    if vocab_path is None and not args.spm_model_path:
        from uer_like.io import check_vocab

        vocab_path = DEFAULT_VOCAB
        check_vocab(model.embedding.word.embedding.weight.shape[0], vocab_path, args.load_model_path)
    tokenizer = build_tokenizer(args.tokenizer, vocab_path, spm_model_path=args.spm_model_path)
    torch.manual_seed(args.seed)
    sample = args.num_beams == 1
    texts = generate_text(model, tokenizer, lines, seq_length=args.seq_length, max_new_tokens=args.max_new_tokens,
                          batch_size=args.batch_size, start_token=args.start_token or None,
                          end_token=args.end_token or None, tokenizer_name="sentencepiece" if args.spm_model_path
                          else args.tokenizer, source=args.test_path, do_sample=sample, top_k=args.top_k,
                          top_p=args.top_p, temperature=args.temperature, repetition_penalty=args.repetition_penalty,
                          num_beams=args.num_beams, length_penalty=args.length_penalty,
                          min_new_tokens=args.min_new_tokens, option_prefix="--")
    out = "".join(line + text + "\n" for line, text in zip(lines, texts)).encode("utf-8")
    atomic_write(args.prediction_path, lambda f: f.write(out), error=DataError, what="--prediction_path")
    print(f"{len(lines)} prompts -> {args.prediction_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
