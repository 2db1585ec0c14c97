"""Small shared helpers for tests."""
import os

from conftest import VOCAB


def preprocess(tmp_path, corpus_text=None, corpus_path=None, name="ds.bin", **kw):
    from uer_like.data.preprocess import run_preprocess

    if corpus_path is None:
        corpus_path = os.path.join(tmp_path, "corpus.txt")
        with open(corpus_path, "wb") as f:
            f.write(corpus_text if isinstance(corpus_text, bytes) else corpus_text.encode("utf-8"))
    out = os.path.join(tmp_path, name)
    kw.setdefault("vocab_path", VOCAB)
    kw.setdefault("dup_factor", 1)
    manifest = run_preprocess(corpus_path=corpus_path, dataset_path=out, progress=False, **kw)
    return out, manifest
