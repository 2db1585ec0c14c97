"""Make the tiny DBQA-format sample in this folder from ../shared/data/corpora/CLUECorpusSmall_sampled.txt.

Synthetic questions: for a corpus line split into sentences (at 。！？), one sentence is picked and the question
asks which sentence mentions a four-character piece of it ("哪句话提到了XXXX？"); the line's sentences (up to 5)
are the question's candidates, label 1 for the sentence holding the piece. Run from the repository root:
python tests/data/dbqa/make_sample.py
"""
import os
import random
import re

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "corpora", "CLUECorpusSmall_sampled.txt")


def main():
    rng = random.Random(0)
    questions = []
    for line in open(CORPUS, encoding="utf-8"):
        sents = [s.strip() for s in re.split(r"(?<=[。！？])", line.strip()) if 8 <= len(s.strip()) <= 60]
        if len(sents) < 3:
            continue
        sents = sents[:5]
        k = rng.randrange(len(sents))
        at = rng.randrange(len(sents[k]) - 4)
        piece = sents[k][at:at + 4]
        if "\t" in piece or sum(piece in s for s in sents) != 1:
            continue
        questions.append((f"哪句话提到了{piece}？", [(int(i == k), s) for i, s in enumerate(sents)]))
        if len(questions) == 40:
            break
    for name, qs, first in (("train", questions[:30], 0), ("dev", questions[30:], 30)):
        with open(os.path.join(HERE, f"{name}.tsv"), "w", encoding="utf-8") as f:
            f.write("label\tqid\ttext_a\ttext_b\n")
            for qid, (q, rows) in enumerate(qs, first):
                for label, s in rows:
                    f.write(f"{label}\t{qid}\t{q}\t{s}\n")
        print(name, len(qs), "questions", sum(len(r) for _, r in qs), "rows")


if __name__ == "__main__":
    main()
