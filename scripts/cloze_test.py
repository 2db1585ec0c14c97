#!/usr/bin/env python
r"""What a model's masked-LM head predicts at each [MASK] of input sentences, with UER-py's flags.

    python scripts/cloze_test.py --load_model_path models/cluecorpussmall_roberta_base_seq512 \
        --test_path cloze_input.txt --prediction_path cloze_output.txt --topn 10

--test_path: one sentence per line, each with one or more [MASK] (the vocabulary's mask token, kept whole).
A sentence is laid out as in pretraining: [CLS] tokens [SEP], segment 1. --prediction_path: for each
sentence, the sentence, then one line per [MASK] (left to right): `[MASK] N` and the --topn most probable
tokens with their probabilities, tab-separated (`token probability`), then an empty line.

--load_model_path takes anything uer_like.load_model reads, with its masked-LM head (a UER pretraining
checkpoint with --config_path, a Hugging Face *ForMaskedLM / *ForPreTraining directory, safetensors).
Everything is checked before the model runs, each error one line: a sentence without [MASK] (named by its
line), one longer than --seq_length, --topn above the vocabulary size, a model without an MLM head.
--prediction_path is written at once at the end.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    from uer_like.cli import add_load_model_flags, add_threads_arg
    from uer_like.flags import COUNT, Int, Parser

    p = Parser(description=__doc__)
    add_load_model_flags(p)
    p.add_argument("--test_path", required=True, help="sentences with [MASK], one per line")
    p.add_argument("--prediction_path", required=True, help="output: the predictions at each [MASK]")
    p.add_argument("--topn", type=COUNT, default=10, help="tokens shown per [MASK] (at most the vocabulary size)")
    p.add_argument("--seq_length", type=Int(min=3), default=None,
                   help="longest sentence in tokens, [CLS] and [SEP] included (default: the model's position "
                        "embedding; more is an error)")
    p.add_argument("--batch_size", type=COUNT, default=64)
    add_threads_arg(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from uer_like.cli import call_checked

    return call_checked(_run, args)


def _run(args):
    from uer_like.cli import apply_threads, read_text_lines
    from uer_like.errors import DataError
    from uer_like.outputs import atomic_write, check_output_file

    lines = read_text_lines(args.test_path, "--test_path")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(f"--test_path {args.test_path} has no sentence: give one sentence with [MASK] per line")
    check_output_file(args.prediction_path, "--prediction_path", error=DataError)
    apply_threads(args)

    from uer_like.cli import load_model_and_tokenizer
    from uer_like.inspection import cloze

    model, tok = load_model_and_tokenizer(args, args.seq_length)
    preds = cloze(model, tok, lines, k=args.topn, seq_length=args.seq_length, batch_size=args.batch_size,
                  where=args.test_path)
    out = []
    for line, masks in zip(lines, preds):
        out.append(line)
        for n, top in enumerate(masks, 1):
            out.append("\t".join([f"[MASK] {n}"] + [f"{t} {p:.6f}" for t, p in top]))
        out.append("")
    data = ("\n".join(out) + "\n").encode("utf-8")
    atomic_write(args.prediction_path, lambda f: f.write(data), error=DataError, what="--prediction_path")
    print(f"{len(lines)} sentences -> {args.prediction_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
