"""Write a labelled subset of a classification TSV: the header, then the first N data rows after a fixed shuffle.

    python benchmarks/subset_tsv.py --input train.tsv --output train_500.tsv --rows 500 [--seed 1]
    python benchmarks/subset_tsv.py --input dev.tsv --output dev_2000.tsv --rows 2000 --no_shuffle

The shuffle depends only on --seed and the input's rows, so the same command always writes the same file, and
with the same seed the first 500 rows are the first 500 of the 2,000-row subset (the small sets are nested).
Used by benchmarks/pretrain_vs_random.sh's low-resource stages.
"""
import argparse
import random
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="a TSV with a header line (label<TAB>text_a ...)")
    p.add_argument("--output", required=True)
    p.add_argument("--rows", type=int, required=True, help="data rows to keep (the header is always kept)")
    p.add_argument("--seed", type=int, default=1, help="seed of the shuffle (default 1)")
    p.add_argument("--no_shuffle", action="store_true", help="keep the first N rows in file order")
    args = p.parse_args(argv)
    with open(args.input, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines:
        sys.exit(f"--input {args.input}: empty file; give a TSV with a header line")
    header, rows = lines[0], [line for line in lines[1:] if line.strip()]
    if not 0 < args.rows <= len(rows):
        sys.exit(f"--rows {args.rows}: {args.input} has {len(rows)} data rows; give 1 to {len(rows)}")
    if not args.no_shuffle:
        random.Random(args.seed).shuffle(rows)
    with open(args.output, "w", encoding="utf-8") as out:
        out.write("\n".join([header] + rows[:args.rows]) + "\n")
    labels = {}
    for row in rows[:args.rows]:
        labels[row.split("\t", 1)[0]] = labels.get(row.split("\t", 1)[0], 0) + 1
    print(f"{args.output}: {args.rows} of {len(rows)} rows, labels {dict(sorted(labels.items()))}")


if __name__ == "__main__":
    sys.exit(main())
