"""Make the ZEN fixture with ZEN's own code (sinovation/ZEN): a tiny random ZEN release and reference outputs.

    python tests/data/zen/make_fixture.py --zen_src DIR [--extra_site DIR]

DIR: a checkout of github.com/sinovation/ZEN (the commit is in README.md); its ZEN/ package and
examples/utils_sequence_level_task.py are imported unchanged. --extra_site: a site-packages holding what
those modules import at the top but this computation never calls (boto3, requests, tqdm: downloads;
scipy, scikit-learn: metrics); it is appended to sys.path, so torch and numpy are the running Python's.
Writes, beside this script: release/ (pytorch_model.bin, config.json, vocab.txt, ngram.txt),
reference.npz (inputs and outputs of the release on real sentences) and matches.npz (ZEN's n-gram matches
of corpus lines under the Google Chinese vocabulary).
"""
import argparse
import collections
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "..", "..", "shared", "data")
CORPUS = os.path.join(SHARED, "corpora", "CLUECorpusSmall_bert_sampled.txt")
PAIRS = os.path.join(SHARED, "corpora", "book_review_cls.txt")
GOOGLE_VOCAB = os.path.join(SHARED, "vocab", "google_zh_vocab.txt")

N_NGRAMS = 250          # the n-gram lexicon: the most frequent jieba words of 2+ characters of the corpus head
NGRAM_SOURCE_LINES = 2000
MATCH_LINES = 300       # corpus lines whose matches are recorded (Google vocabulary)
MATCH_SEQ_LENGTH = 128
SEQ_LENGTH = 64         # the model's max_position_embeddings and the reference inputs' length
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
NO_NGRAM_TEXT = "我在那里"  # the words of a corpus line (the second) that match no n-gram: a row without any
EXTRA_NGRAMS = ["iPhone,7", "NBA,5", "两,3"]  # a word piece n-gram, an upper-case one, a 1-token one (never matched)


def corpus_lines(path, n):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(line)
                if len(out) == n:
                    break
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zen_src", required=True)
    ap.add_argument("--extra_site")
    args = ap.parse_args()
    sys.path[:0] = [args.zen_src, os.path.join(args.zen_src, "examples")]
    if args.extra_site:
        sys.path.append(args.extra_site)
    import jieba
    from ZEN.modeling import ZenConfig, ZenForPreTraining
    from ZEN.ngram_utils import ZenNgramDict
    from ZEN.tokenization import BertTokenizer
    import utils_sequence_level_task as U

    U.shuffle = lambda x: None  # ZEN shuffles the matches before its cap; recorded in their pre-shuffle order

    rel = os.path.join(HERE, "release")
    os.makedirs(rel, exist_ok=True)

    # n-gram lexicon: ZEN's ngram.txt format, "ngram,frequency"
    counts = collections.Counter()
    for line in corpus_lines(CORPUS, NGRAM_SOURCE_LINES):
        counts.update(w for w in jieba.lcut(line) if len(w) >= 2 and w.strip() and "," not in w)
    ngram_lines = [f"{w},{c}" for w, c in counts.most_common(N_NGRAMS)] + EXTRA_NGRAMS
    with open(os.path.join(rel, "ngram.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(ngram_lines) + "\n")

    # the reference sentences: corpus lines and one review pair; the model's vocabulary is their characters
    singles = [s[:40] for s in corpus_lines(CORPUS, 60)[::12]]
    reviews = [line.split("\t", 1)[1][:30] for line in corpus_lines(PAIRS, 4)[1:3]]
    examples = [U.InputExample(f"s{i}", s, None, "0") for i, s in enumerate(singles)]
    examples.append(U.InputExample("pair", reviews[0], reviews[1], "0"))
    examples.append(U.InputExample("none", NO_NGRAM_TEXT, None, "0"))  # a row without n-grams
    google = BertTokenizer(GOOGLE_VOCAB, do_lower_case=True)
    chars = []
    for ex in examples:
        for t in google.tokenize(ex.text_a) + (google.tokenize(ex.text_b) if ex.text_b else []):
            if t not in chars:
                chars.append(t)
    for w in [line.rsplit(",", 1)[0] for line in ngram_lines[:60]]:  # most n-grams then tokenise fully
        for t in google.tokenize(w):
            if t not in chars:
                chars.append(t)
    vocab = SPECIALS + chars
    with open(os.path.join(rel, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")

    tokenizer = BertTokenizer(os.path.join(rel, "vocab.txt"), do_lower_case=True)
    ngram_dict = ZenNgramDict(rel, tokenizer=tokenizer)
    torch.manual_seed(0)
    config = ZenConfig(len(vocab), len(ngram_lines) + 1, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=SEQ_LENGTH, num_hidden_word_layers=1,
                       initializer_range=0.2)
    model = ZenForPreTraining(config)
    with torch.no_grad():  # layer norms and biases off their initial ones/zeros, so that every map is exercised
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    torch.save(model.state_dict(), os.path.join(rel, "pytorch_model.bin"))
    config.to_json_file(os.path.join(rel, "config.json"))

    feats = U.convert_examples_to_features(examples, ["0"], SEQ_LENGTH, tokenizer, ngram_dict)
    t = {k: torch.tensor(np.array([getattr(f, k) for f in feats])) for k in
         ("input_ids", "input_mask", "segment_ids", "ngram_ids", "ngram_positions", "ngram_seg_ids", "ngram_masks")}
    with torch.no_grad():
        seq, pooled = model.bert(t["input_ids"], t["ngram_ids"], t["ngram_positions"], token_type_ids=t["segment_ids"],
                                 ngram_token_type_ids=t["ngram_seg_ids"], attention_mask=t["input_mask"],
                                 ngram_attention_mask=t["ngram_masks"].long(), output_all_encoded_layers=False)
        mlm, sp = model.cls(seq, pooled)
    # ZEN pads the n-gram axis to max_ngram_in_seq (128); kept: the first `cols` columns, the rest is padding
    cols = int(t["ngram_masks"].sum(1).max())
    assert not t["ngram_masks"][:, cols:].any() and not t["ngram_positions"][:, :, cols:].any()
    ngram = {k: t[k][..., :cols].numpy().astype(np.uint8 if k == "ngram_positions" else np.int64)
             for k in ("ngram_ids", "ngram_positions", "ngram_seg_ids", "ngram_masks")}
    np.savez_compressed(os.path.join(HERE, "reference.npz"),
                        texts=np.array([json.dumps([ex.text_a, ex.text_b], ensure_ascii=False) for ex in examples]),
                        **{k: t[k].numpy().astype(np.int64) for k in ("input_ids", "input_mask", "segment_ids")},
                        **ngram,
                        ngram_starts=np.array([_starts(f)[:cols] for f in feats], np.int64),
                        ngram_lengths=np.array([f.ngram_lengths[:cols] for f in feats], np.int64),
                        sequence_output=seq[t["input_mask"].bool()].numpy(),  # real tokens, row-major
                        pooled_output=pooled.numpy(), sp_logits=sp.numpy(),
                        mlm_logits_head=mlm[:, :2].numpy())

    # matches of corpus lines under the Google vocabulary (the matcher test; ZEN's truncation to 128 tokens)
    gdict = ZenNgramDict(rel, tokenizer=google)
    lines = corpus_lines(CORPUS, MATCH_LINES)
    gfeats = U.convert_examples_to_features([U.InputExample(str(i), s, None, "0") for i, s in enumerate(lines)], ["0"],
                                            MATCH_SEQ_LENGTH, google, gdict)
    counts = np.array([int(np.asarray(f.ngram_masks).sum()) for f in gfeats], np.int64)
    flat = {k: np.concatenate([np.asarray(getattr(f, k))[:n] for f, n in zip(gfeats, counts)]).astype(np.int64)
            for k in ("ngram_ids", "ngram_lengths", "ngram_seg_ids")}
    flat["ngram_starts"] = np.concatenate([_starts(f)[:n] for f, n in zip(gfeats, counts)]).astype(np.int64)
    np.savez_compressed(os.path.join(HERE, "matches.npz"), counts=counts, seq_length=MATCH_SEQ_LENGTH, **flat)
    print(f"{len(ngram_lines)} n-grams, vocabulary {len(vocab)}, {len(feats)} reference inputs, "
          f"{int(counts.sum())} matches in {len(lines)} lines")


def _starts(feature):
    """Each n-gram's start, read off ZEN's position matrix [seq, max_ngrams] (its first 1 in the column)."""
    m = np.asarray(feature.ngram_positions)
    return np.array([int(m[:, i].argmax()) if m[:, i].any() else 0 for i in range(m.shape[1])], np.int64)


if __name__ == "__main__":
    main()
