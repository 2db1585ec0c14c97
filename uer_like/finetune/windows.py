"""Long-document classification (`run_classifier.py --sliding_window`): a text longer than --seq_length is
cut into overlapping windows (data.windows, the reading-comprehension reader's windowing), each window is
classified as `[CLS] window [SEP]`, and the window logits are pooled into the document's (--window_pooling
mean or max). One feature is one document with all its windows; a batch of --batch_size documents holds all
their windows, [n_windows, seq], with `doc` [n_windows] saying whose window each row is.

Training pools too: the loss is the cross-entropy of the pooled document logits (not of each window with the
document's label). The evidence for a label may sit in one window only; labelling every window with it would
teach the others to predict the label from text that does not hold it, while the pooled loss sends the
gradient through the pooling to the windows that matter (max: the top window alone). Training and inference
then compute the same function of the document.
"""
import torch

from . import data as D

POOLINGS = ("mean", "max")


def encode_windows(enc, text, seq_length, stride):
    """One text -> (srcs, segs) of its windows: `[CLS] window [SEP]` of at most seq_length tokens, each
    window starting `stride` tokens after the previous (one window for a short text)."""
    D.check_seq_length(seq_length, "single")
    ids = enc.ids(text)
    srcs, segs = [], []
    for start, length in D.windows(len(ids), seq_length - 2, stride):
        src, seg, _, _ = enc.pack(ids[start:start + length])
        srcs.append(src)
        segs.append(seg)
    return srcs, segs


def collate_windows(feats, pad_id, pad_left=False):
    """Document features (src, seg: a list of windows each) -> src, seg [n_windows, seq] and doc [n_windows],
    the batch row (document) of each window."""
    doc = [i for i, f in enumerate(feats) for _ in f["src"]]
    return {"src": D.pad([s for f in feats for s in f["src"]], pad_id, pad_left),
            "seg": D.pad([g for f in feats for g in f["seg"]], 0, pad_left),
            "doc": torch.tensor(doc, dtype=torch.long)}


def pool_windows(logits, doc, how="mean"):
    """Window logits [n_windows, k] -> document logits [n_docs, k] (doc [n_windows]: each window's document,
    0..n_docs-1, every document with a window): the mean or the element-wise max over its windows."""
    n = int(doc.max()) + 1
    index = doc.unsqueeze(1).expand_as(logits)
    if how == "mean":
        total = logits.new_zeros(n, logits.size(1)).scatter_add(0, index, logits)
        count = torch.bincount(doc, minlength=n).to(logits.dtype).unsqueeze(1)
        return total / count
    if how == "max":
        return logits.new_full((n, logits.size(1)), float("-inf")).scatter_reduce(0, index, logits, "amax")
    raise ValueError(f"pooling {how!r}: valid are {', '.join(POOLINGS)}")
