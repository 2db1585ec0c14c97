"""How a model family lays out one or two token sequences as its input (the tokenizer's `layout`).

- "bert" (every tokenizer but XLNet's): `[CLS] a [SEP] (b [SEP])`, segments 1 and 2;
- "xlnet" (HFL's Chinese XLNet): `a <sep> (b <sep>) <cls>`, the final <cls> in a segment of its own (3).

Both use 2 special tokens for one sequence and 3 for two."""


def pack(layout, cls_id, sep_id, a, b=None):
    """-> (src, seg, start of a, start of b)."""
    sep = [sep_id]
    if layout == "xlnet":
        src = a + sep + (b + sep if b is not None else []) + [cls_id]
        seg = [1] * (len(a) + 1) + ([2] * (len(b) + 1) if b is not None else []) + [3]
        return src, seg, 0, len(a) + 1
    src = [cls_id] + a + sep + (b + sep if b is not None else [])
    seg = [1] * (len(a) + 2) + ([2] * (len(b) + 1) if b is not None else [])
    return src, seg, 1, len(a) + 2


def cls_index(layout, src):
    """Where the classification token of a packed src is."""
    return len(src) - 1 if layout == "xlnet" else 0
