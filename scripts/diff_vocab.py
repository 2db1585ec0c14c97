#!/usr/bin/env python
r"""Compare two vocabularies (UER-py's diff_vocab.py): their sizes, the tokens of each that the other lacks,
and the tokens they share.

    python scripts/diff_vocab.py --vocab_1 models/google_zh_vocab.txt --vocab_2 models/my_vocab.txt --show 20

Prints the counts and up to --show tokens of each difference (0: counts only); --output_path writes every
differing token as `vocab_1<TAB>token` (only in vocab_1) or `vocab_2<TAB>token` (only in vocab_2). A
vocabulary is one token per line (Google's format); a token on several lines counts once.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    from uer_like.flags import NONNEG, Parser

    p = Parser(description=__doc__)
    p.add_argument("--vocab_1", required=True)
    p.add_argument("--vocab_2", required=True)
    p.add_argument("--show", type=NONNEG, default=20, help="tokens of each difference printed")
    p.add_argument("--output_path", default=None, help="write every differing token here")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from uer_like.cli import call_checked

    return call_checked(_run, args)


def _run(args):
    from uer_like.errors import DataError
    from uer_like.outputs import atomic_write, check_output_file
    from uer_like.tokenizers.build import diff_vocabs
    from uer_like.tokenizers.vocab import Vocab

    if args.output_path:
        check_output_file(args.output_path, "--output_path", error=DataError)
    v1, v2 = Vocab.load(args.vocab_1, required=()), Vocab.load(args.vocab_2, required=())
    only_1, only_2, both = diff_vocabs(v1, v2)
    print(f"vocab_1: {args.vocab_1}, size: {len(v1.w2i)}")
    print(f"vocab_2: {args.vocab_2}, size: {len(v2.w2i)}")
    for name, toks in (("vocab_1 - vocab_2", only_1), ("vocab_2 - vocab_1", only_2)):
        shown = " ".join(toks[:args.show])
        more = " ..." if len(toks) > args.show else ""
        print(f"{name} = {len(toks)}" + (f": {shown}{more}" if args.show and toks else ""))
    print(f"vocab_1 & vocab_2 = {len(both)}")
    if args.output_path:
        rows = "".join(f"vocab_1\t{t}\n" for t in only_1) + "".join(f"vocab_2\t{t}\n" for t in only_2)
        atomic_write(args.output_path, lambda f: f.write(rows.encode("utf-8")), error=DataError, what="--output_path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
