#!/usr/bin/env python
r"""Build a WordPiece-style vocabulary from a corpus (UER-py's build_vocab.py).

    python scripts/build_vocab.py --corpus_path corpus.txt --vocab_path models/my_vocab.txt --min_count 5

The vocabulary starts with the special tokens at the ids of Google's BERT vocabularies ([PAD] 0,
[unused1..99] 1-99, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103; --unused_tokens 0: [PAD] 0, [UNK] 1 ...
[MASK] 4), then every token of the corpus seen at least --min_count times, most frequent first.
--tokenizer bert (default): words as BERT's basic tokenizer splits them (each CJK character a word; lower-cased
with --do_lower_case true), plus each of their characters and `##c` continuation pieces, so that WordPiece
spells every corpus word without [UNK]; char: characters; space: whitespace-separated words.
--counts_path: also write `token<TAB>count` for every token of the vocabulary (specials: 0).
The corpus is UTF-8 text read line by line (--workers_num processes, each a part of the file); --vocab_path
is written at once at the end.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    from uer_like.cli import _bool
    from uer_like.flags import Int, Parser
    from uer_like.tokenizers.build import GOOGLE_UNUSED, PRE_TOKENIZERS

    p = Parser(description=__doc__)
    p.add_argument("--corpus_path", required=True)
    p.add_argument("--vocab_path", required=True, help="output: one token per line")
    p.add_argument("--tokenizer", default="bert", choices=sorted(PRE_TOKENIZERS))
    p.add_argument("--do_lower_case", default=True, type=_bool, help="bert: lower-case and strip accents")
    p.add_argument("--min_count", type=Int(min=1), default=1, help="fewest occurrences of a kept token")
    p.add_argument("--workers_num", type=Int(min=1, max=1024), default=1,
                   help="processes counting parts of the corpus (the vocabulary does not depend on it)")
    p.add_argument("--unused_tokens", type=Int(min=0, max=100000), default=GOOGLE_UNUSED,
                   help="[unusedN] tokens after [PAD] (Google's vocabularies: 99)")
    p.add_argument("--counts_path", default=None, help="also write token<TAB>count lines here")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from uer_like.cli import call_checked

    return call_checked(_run, args)


def _run(args):
    from uer_like.errors import DataError
    from uer_like.outputs import atomic_write, check_output_file
    from uer_like.tokenizers.build import count_file, vocab_from_counts

    if not os.path.isfile(args.corpus_path):
        raise DataError(f"--corpus_path {args.corpus_path}: no such file")
    check_output_file(args.vocab_path, "--vocab_path", error=DataError)
    if args.counts_path:
        check_output_file(args.counts_path, "--counts_path", error=DataError)
    counts = count_file(args.corpus_path, args.tokenizer, args.do_lower_case, args.workers_num)
    tokens = vocab_from_counts(counts, args.min_count, args.unused_tokens)
    specials = args.unused_tokens + 5
    if len(tokens) == specials:
        raise DataError(f"--corpus_path {args.corpus_path}: no token occurs {args.min_count} times or more; "
                        "lower --min_count or give a larger corpus")
    data = "".join(t + "\n" for t in tokens).encode("utf-8")
    atomic_write(args.vocab_path, lambda f: f.write(data), error=DataError, what="--vocab_path")
    if args.counts_path:
        rows = "".join(f"{t}\t{counts.get(t, 0) if i >= specials else 0}\n" for i, t in enumerate(tokens))
        atomic_write(args.counts_path, lambda f: f.write(rows.encode("utf-8")), error=DataError, what="--counts_path")
    print(f"{len(tokens)} tokens ({specials} special, {len(tokens) - specials} from the corpus) -> {args.vocab_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
