"""Turn a labelled tsv (e.g. book_review_cls.txt: `label<TAB>text` per line, or a dataset tsv with a header)
into a pretraining corpus in the BERT format: one sentence per line, a blank line between documents
(each text is one document, split into sentences after 。！？!? and ……).

    python finetune/tsv_to_corpus.py --input ../shared/data/corpora/book_review_cls.txt \
        --output corpora/book_review_bert.txt
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from uer_like.flags import Int, Parser  # noqa: E402

SPLIT = re.compile(r"(?<=[。！？!?])|(?<=……)")


def build_parser():
    p = Parser(description=__doc__)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--column", type=Int(min=-1000, max=1000), default=-1,
                   help="which tab-separated column holds the text, counted from 0 (negative: from the end)")
    p.add_argument("--header", action="store_true", help="the first line is a header")
    return p


def main():
    args = build_parser().parse_args()
    n = 0
    with open(args.input, encoding="utf-8") as f, open(args.output, "w", encoding="utf-8") as out:
        for i, line in enumerate(f):
            if args.header and i == 0:
                continue
            cols = line.rstrip("\r\n").split("\t")
            if not -len(cols) <= args.column < len(cols):
                print(f"error: {args.input}:{i + 1}: no column {args.column} (--column) in a line of {len(cols)} "
                      "tab-separated column(s)", file=sys.stderr)
                return 2
            text = cols[args.column].strip()
            sents = []
            for s in SPLIT.split(text):
                s = s.strip()
                if not s:
                    continue
                if sents and not any(ch.isalnum() for ch in s):
                    sents[-1] += s  # trailing punctuation stays with its sentence
                else:
                    sents.append(s)
            if not sents:
                continue
            out.write("\n".join(sents) + "\n\n")
            n += 1
    print(f"{n} documents written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
