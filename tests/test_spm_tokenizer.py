"""--spm_model_path with the default tokenizer, as UER-py: the SentencePiece model's pieces are the vocabulary,
tokens as UER-py's BertTokenizer makes them (its digit-comma quirk included); compared with UER-py's own
output on lines of the shared corpora (tests/data/uer_py_fixtures/spm_tokens.json, made by UER-py 7c1f731)."""
import json
import os
import unicodedata

import numpy as np
import pytest
import torch

from conftest import DATA, need

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "uer_py_fixtures")


@pytest.fixture(scope="module")
def spm_path():
    return need(os.path.join(DATA, "vocab", "cluecorpussmall_spm.model"))


@pytest.fixture(scope="module")
def reference():
    with open(os.path.join(HERE, "spm_tokens.json"), encoding="utf-8") as f:
        return json.load(f)["lines"]


def test_default_tokenizer_with_spm_matches_uer_py(spm_path, reference):
    from uer_like.tokenizers import build_tokenizer

    tok = build_tokenizer("bert", "models/google_zh_vocab.txt", spm_path)  # the vocab file is not used, as UER-py
    assert len(tok.vocab) == 100000 and tok.vocab.cls_id == 2
    quirky = 0
    for rec in reference:
        tokens = tok.tokenize(rec["text"])
        assert tokens == rec["tokens"], (rec["source"], rec["line"])
        assert tok.convert_tokens_to_ids(tokens) == rec["ids"], (rec["source"], rec["line"])
        quirky += tokens != tok.sp.EncodeAsPieces(rec["text"])
    assert quirky >= 4  # lines where UER-py's digit-comma re-encoding changes the pieces
    # offsets for masking: every piece is a unit of its own (as UER-py masks them), starting where its text is
    for rec in reference:
        pieces, starts = tok.tokenize_with_starts(rec["text"])
        assert pieces == rec["tokens"]
        for p, st in zip(pieces, starts):
            bare = p.replace("\u2581", "")
            assert st >= 0 and unicodedata.normalize("NFKC", rec["text"][st:]).startswith(bare), (p, st)


def test_preprocess_and_features_with_spm(spm_path, reference, tmp_path):
    """preprocess.py --spm_model_path (default tokenizer): ids are UER-py's; extract_features reads the same."""
    from helpers import preprocess
    from uer_like.data.dataset import Dataset

    texts = [r["text"] for r in reference if r["source"] != "hand"][:6]
    out, manifest = preprocess(tmp_path, "\n".join(texts) + "\n", spm_model_path=spm_path, vocab_path=None,
                               data_processor="mlm", seq_length=512, dynamic_masking=True)
    assert manifest["vocab"]["size"] == 100000 and manifest["vocab"]["file"] == "cluecorpussmall_spm.model"
    ds = Dataset(out)
    ids = ds.instance_ids(0).tolist()
    assert ds.instance_bits(0).all()  # each SentencePiece token masks on its own, not glued to the previous
    want = reference[[r["text"] for r in reference].index(texts[0])]["ids"]
    assert ids[0] == 2 and ids[1:1 + len(want)] == want[:510]

    import uer_like
    from uer_like.io.features import extract_features

    model = uer_like.build_model("bert/tiny_config.json", vocab_size=100000, emb_size=16, hidden_size=16,
                                 feedforward_size=32, heads_num=2, layers_num=1)
    model.eval()
    rec = [r for r in reference if r["source"] == "hand"][1]
    feats = extract_features(model, [rec["text"]], seq_length=64, pooling="none", spm_model_path=spm_path)
    src = torch.tensor([[2] + rec["ids"] + [3]])
    with torch.no_grad():
        hidden = model.encode(src, torch.ones_like(src))[0].numpy()
    np.testing.assert_allclose(feats[0], hidden, atol=1e-5)
