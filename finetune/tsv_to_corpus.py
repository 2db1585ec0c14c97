"""Turn a labelled tsv (e.g. book_review_cls.txt: `label<TAB>text` per line, or a dataset tsv with a header)
into a pretraining corpus in the BERT format: one sentence per line, a blank line between documents
(each text is one document, split into sentences after 。！？!? and ……).

    python finetune/tsv_to_corpus.py --input ../shared/data/corpora/book_review_cls.txt \
        --output corpora/book_review_bert.txt
"""
import argparse
import re

SPLIT = re.compile(r"(?<=[。！？!?])|(?<=……)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--column", type=int, default=-1, help="which tab-separated column holds the text (default: last)")
    p.add_argument("--header", action="store_true", help="the first line is a header")
    args = p.parse_args()
    n = 0
    with open(args.input, encoding="utf-8") as f, open(args.output, "w", encoding="utf-8") as out:
        for i, line in enumerate(f):
            if args.header and i == 0:
                continue
            text = line.rstrip("\r\n").split("\t")[args.column].strip()
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


if __name__ == "__main__":
    main()
