"""Make the small sentence-similarity sample (STS-style tsv: text_a, text_b, label) and an unlabelled
SimCSE training file from the CLUECorpusSmall sample in ../shared/data (dbiir/UER-py's, one sentence per
line, documents separated by blank lines).

Nobody annotated these pairs: the scores come from the construction, and measure how much of a sentence
survives in its partner (lexical and topical closeness), not meaning as a human would grade it:
  4  the sentence and a copy with 10% of its characters deleted at random
  3  ... 30% deleted
  2  ... 50% deleted
  1  the sentence and another sentence of the same document
  0  the sentence and a sentence of another document
Sentences of 12 to 60 characters; dev.tsv and train.tsv use disjoint documents (train.tsv: text_a only,
for unsupervised SimCSE).

    python tests/data/similarity/make_similarity_sample.py ../shared/data/corpora/CLUECorpusSmall_bert_sampled.txt
"""
import os
import random
import sys

DELETE = {4: 0.1, 3: 0.3, 2: 0.5}


def documents(path):
    docs, cur = [], []
    for line in open(path, encoding="utf-8"):
        s = line.strip().replace("\t", " ")
        if not s:
            if cur:
                docs.append(cur)
            cur = []
        elif 12 <= len(s) <= 60:
            cur.append(s)
    if cur:
        docs.append(cur)
    return [d for d in docs if len(d) >= 2]


def delete(rng, s, frac):
    keep = sorted(rng.sample(range(len(s)), len(s) - max(1, round(frac * len(s)))))
    return "".join(s[i] for i in keep)


def main(corpus, out=os.path.dirname(os.path.abspath(__file__)), dev_docs=100, train_docs=300, seed=13):
    rng = random.Random(seed)
    docs = documents(corpus)
    rng.shuffle(docs)
    dev, train = docs[:dev_docs], docs[dev_docs:dev_docs + train_docs]
    rows = []
    for i, doc in enumerate(dev):
        a, b = rng.sample(doc, 2)
        label = rng.choice([4, 3, 2, 1, 0])
        if label in DELETE:
            b = delete(rng, a, DELETE[label])
        elif label == 0:
            b = rng.choice(dev[(i + 1 + rng.randrange(len(dev) - 1)) % len(dev)])
        rows.append((a, b, label))
    with open(os.path.join(out, "dev.tsv"), "w", encoding="utf-8") as f:
        f.write("text_a\ttext_b\tlabel\n")
        f.writelines(f"{a}\t{b}\t{label}\n" for a, b, label in rows)
    with open(os.path.join(out, "train.tsv"), "w", encoding="utf-8") as f:
        f.write("text_a\n")
        f.writelines(f"{s}\n" for doc in train for s in doc[:2])


if __name__ == "__main__":
    main(sys.argv[1])
