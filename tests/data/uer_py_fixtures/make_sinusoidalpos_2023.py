"""Writes sinusoidalpos_2023.npz: UER-py's own `"embedding": ["word", "sinusoidalpos"]` (its Embedding with
WordEmbedding and SinusoidalposEmbedding, since the July 2023 "Modular Embedding" commit b80a5e2) run on
padded single-segment batches.

    git -C UER-py archive 5743050 uer models/special_tokens_map.json | tar -x -C /tmp/uerpy
    python tests/data/uer_py_fixtures/make_sinusoidalpos_2023.py /tmp/uerpy tests/data/uer_py_fixtures/sinusoidalpos_2023.npz

Only torch is needed. For each emb_size E in EVEN_SIZES the npz holds `table_E` (SinusoidalposEmbedding.emb,
[MAX_SEQ_LENGTH, E]), `word_E` (the word embedding's weight), `out_seg_E` = Embedding(src, seg) and
`out_noseg_E` = the same with seg None (eval mode; the embedding layer norm removed, as UER-py's pegasus and
transformer configs do). `src`, `seg` [3, 10]: ids 1..59 of a 60-token vocabulary with [PAD] = 0, right
padding, lengths 10, 7 and 4 (10 = MAX_SEQ_LENGTH - 2, the longest UER-py's offset of 2 allows). An odd
emb_size raises in UER-py (an interleaved table of emb_size // 2 sines into (emb_size + 1) // 2 even columns);
`odd_error` holds its message.
"""
import os
import sys
from types import SimpleNamespace

import numpy as np
import torch

EVEN_SIZES = (16, 8)
ODD_SIZE = 15
MAX_SEQ_LENGTH = 12
VOCAB_SIZE = 60


class _Vocab:
    def get(self, token):
        return {"[PAD]": 0}.get(token)


def _args(emb_size):
    return SimpleNamespace(embedding=["word", "sinusoidalpos"], emb_size=emb_size, max_seq_length=MAX_SEQ_LENGTH,
                           dropout=0.1, remove_embedding_layernorm=True,
                           tokenizer=SimpleNamespace(vocab=_Vocab()))


def main(uer_py, out_path):
    out_path = os.path.abspath(out_path)
    os.chdir(uer_py)  # uer.utils.constants reads models/special_tokens_map.json relative to the working directory
    sys.path.insert(0, uer_py)
    from uer.embeddings import Embedding, SinusoidalposEmbedding, WordEmbedding

    torch.manual_seed(0)
    lengths = [10, 7, 4]
    src = torch.zeros(3, 10, dtype=torch.long)
    seg = torch.zeros(3, 10, dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(1, VOCAB_SIZE, (n,))
        seg[i, :n] = 1
    arrays = {"src": src.numpy(), "seg": seg.numpy(), "max_seq_length": np.array(MAX_SEQ_LENGTH)}
    for emb_size in EVEN_SIZES:
        args = _args(emb_size)
        emb = Embedding(args)
        emb.update(WordEmbedding(args, VOCAB_SIZE), "word")
        emb.update(SinusoidalposEmbedding(args, VOCAB_SIZE), "sinusoidalpos")
        with torch.no_grad():
            emb.word.embedding.weight.normal_(0, 0.3)
        emb.eval()
        with torch.no_grad():
            arrays[f"table_{emb_size}"] = emb.sinusoidalpos.emb.numpy().copy()
            arrays[f"word_{emb_size}"] = emb.word.embedding.weight.numpy().copy()
            arrays[f"out_seg_{emb_size}"] = emb(src, seg).numpy()
            arrays[f"out_noseg_{emb_size}"] = emb(src, None).numpy()
    try:
        SinusoidalposEmbedding(_args(ODD_SIZE), VOCAB_SIZE)
        arrays["odd_error"] = np.array("")
    except RuntimeError as e:
        arrays["odd_error"] = np.array(str(e).splitlines()[0])
    np.savez_compressed(out_path, **arrays)
    print(out_path, {k: v.shape for k, v in arrays.items()}, "odd:", arrays["odd_error"])


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]), sys.argv[2])
