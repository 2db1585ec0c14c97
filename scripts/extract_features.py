#!/usr/bin/env python
"""Text features from released weights (UER, Hugging Face, safetensors or TF checkpoints).

    python scripts/extract_features.py --model hf_dir --input texts.txt --output feats.npy --pooling mean

--input: one text per line (UTF-8); a tab separates a sentence pair. Row i of the output is line i: an
empty line within the text is an error (empty lines at the end are ignored). --output: .npy (pooled,
[n, hidden]) or .npz (--pooling none: one [tokens, hidden] array per line, named f0, f1, ...); the suffix is
added when missing, as numpy does. The input and the place of --output are checked before the model is
loaded, and --output is written at once at the end (an interrupted run leaves the previous file, or none).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    from uer_like.cli import add_model_flags, add_threads_arg
    from uer_like.flags import FEATURE_RULES, Parser

    p = Parser(description=__doc__)
    p.add_argument("--model", required=True, help="checkpoint file or directory")
    p.add_argument("--config", help="UER config for UER checkpoints")
    p.add_argument("--vocab_path", help="vocab.txt (default: the release's own)")
    p.add_argument("--spm_model_path", help="SentencePiece model whose pieces are the vocabulary (word-based "
                                            "releases, as UER-py)")
    p.add_argument("--ngram_path", help="a ZEN model's ngram.txt (default: the one beside the weights)")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--pooling", default="mean", choices=["first", "mean", "max", "last", "none"])
    p.add_argument("--seq_length", type=FEATURE_RULES["seq_length"], default=None,
                   help="longest input in tokens (default: min(128, the model's max_seq_length)); a value above the "
                        "model's position embedding is an error")
    p.add_argument("--batch_size", type=FEATURE_RULES["batch_size"], default=32)
    add_threads_arg(p)
    add_model_flags(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)

    from uer_like.cli import call_checked

    return call_checked(_run, args)


def _run(args):
    import numpy as np

    from uer_like.cli import apply_threads, model_flag_overrides, read_text_lines
    from uer_like.errors import DataError
    from uer_like.outputs import atomic_write, check_output_file

    lines = read_text_lines(args.input, "--input")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(f"--input {args.input} has no text: give one text per line")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(f"{args.input}:{i}: an empty line (row {i} of the output is line {i}): remove it or "
                            "give it text")
    texts = [tuple(line.split("\t", 1)) if "\t" in line else line for line in lines]
    ext = ".npz" if args.pooling == "none" else ".npy"
    output = args.output if args.output.endswith(ext) else args.output + ext
    check_output_file(output, "--output", error=DataError)
    apply_threads(args)

    from uer_like.io import load_model
    from uer_like.io.features import extract_features

    model = load_model(args.model, config=args.config, vocab=args.vocab_path, seq_length=args.seq_length,
                       vocab_size=_spm_size(args.spm_model_path), config_overrides=model_flag_overrides(args))
    if args.seq_length is None:
        args.seq_length = min(128, model.config.max_seq_length)
    feats = extract_features(model, texts, vocab_path=args.vocab_path, seq_length=args.seq_length,
                             pooling=args.pooling, batch_size=args.batch_size, spm_model_path=args.spm_model_path,
                             ngram_path=args.ngram_path)
    if args.pooling == "none":
        write = lambda f: np.savez(f, **{f"f{i}": a for i, a in enumerate(feats)})  # noqa: E731
    else:
        write = lambda f: np.save(f, feats)  # noqa: E731
    atomic_write(output, write, error=DataError, what="--output")
    print(f"{len(texts)} texts -> {output}")
    return 0


def _spm_size(spm_model_path):
    if not spm_model_path:
        return None
    from uer_like.tokenizers.spm import load_processor

    return load_processor(spm_model_path).GetPieceSize()


if __name__ == "__main__":
    sys.exit(main())
