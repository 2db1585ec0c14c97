"""Write the toy text-to-text set of this directory (see README.md): deterministic, pure Python.

    python tests/data/text2text/make_data.py
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
# twelve common characters; the rule maps each to the next one (the last to the first)
ALPHABET = "天地人和春夏秋冬日月山水"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SIZES = {"train.tsv": 1200, "dev.tsv": 50, "test.tsv": 50}


def shift(text):
    return "".join(ALPHABET[(ALPHABET.index(c) + 1) % len(ALPHABET)] for c in text)


def main():
    rng = random.Random(20261207)
    seen = set()
    for name, n in SIZES.items():
        rows = []
        while len(rows) < n:
            src = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(3, 6)))
            if src in seen:  # no source in two files
                continue
            seen.add(src)
            rows.append((src, shift(src)))
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            f.write("text_a\tlabel\n")
            f.writelines(f"{s}\t{t}\n" for s, t in rows)
        if name == "test.tsv":  # the same sources without their targets: inference only
            with open(os.path.join(HERE, "test_nolabel.tsv"), "w", encoding="utf-8") as f:
                f.write("text_a\n")
                f.writelines(f"{s}\n" for s, _ in rows)
    with open(os.path.join(HERE, "vocab.txt"), "w", encoding="utf-8") as f:
        f.writelines(t + "\n" for t in SPECIAL + list(ALPHABET))


if __name__ == "__main__":
    main()
