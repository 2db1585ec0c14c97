"""Parity with UER-py: fixtures made by UER-py's own code load and reproduce its outputs."""
import json
import os

import numpy as np
import pytest
import torch

import uer_like
from uer_like.io.uer import from_uer_state_dict, to_uer_state_dict
from conftest import FIXTURES, need

NAMES = ["bert_tiny", "gpt2_tiny"]


def load(name):
    d = need(os.path.join(FIXTURES, "uer"))
    model = uer_like.load_model(os.path.join(d, name + ".bin"), os.path.join(d, name + "_config.json")).eval()
    io = np.load(os.path.join(d, name + "_io.npz"))
    return d, model, io


@pytest.mark.parametrize("name", NAMES)
def test_outputs_match_uer_py(name):
    d, model, io = load(name)
    src, seg = torch.tensor(io["src"]), torch.tensor(io["seg"])
    with torch.no_grad():
        emb = model.embed(src, seg)
        hidden = model.encode(src, seg)
        logits = model.target_logits(hidden, seg)
    np.testing.assert_allclose(emb.numpy(), io["embedding_output"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(hidden.numpy(), io["encoder_output"], atol=1e-5, rtol=0)
    checked = 0
    for target in ("mlm", "sp", "lm"):
        key = target + "_logits"
        if key in io:
            out = logits[target].numpy()
            ref = io[key]
            if ref.ndim == 3:
                out = out[:, : ref.shape[1]]
            np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize("name", NAMES)
def test_saved_uer_checkpoint_has_uer_py_names_and_shapes(name, tmp_path):
    d, model, _ = load(name)
    ref = torch.load(os.path.join(d, name + ".bin"), weights_only=True)
    out = tmp_path / "model.bin"
    uer_like.save_model(model, str(out), format="uer")
    mine = torch.load(out, weights_only=True)
    assert sorted(mine) == sorted(ref)
    for k in ref:
        assert tuple(mine[k].shape) == tuple(ref[k].shape), k
        assert torch.equal(mine[k], ref[k]), k


def test_qkv_fusion_round_trip_is_exact():
    d = need(os.path.join(FIXTURES, "uer"))
    ref = torch.load(os.path.join(d, "bert_tiny.bin"), weights_only=True)
    back = to_uer_state_dict(from_uer_state_dict(ref))
    assert sorted(back) == sorted(ref)
    assert all(torch.equal(back[k], ref[k]) for k in ref)


@pytest.mark.parametrize("name", NAMES)
def test_fixture_texts_tokenize_as_uer_py(name):
    from uer_like.tokenizers import BertTokenizer
    from conftest import VOCAB

    d = need(os.path.join(FIXTURES, "uer"))
    texts = json.load(open(os.path.join(d, name + "_texts.json"), encoding="utf-8"))
    tok = BertTokenizer(VOCAB)
    for pair, tokens in zip(texts["texts"], texts["tokens"]):
        assert sum((tok.tokenize(t) for t in pair), []) == tokens
    # and the ids are the fixture's src
    io = np.load(os.path.join(d, name + "_io.npz"))
    pair = texts["texts"][1]
    ids = [101] + tok.encode(pair[0]) + [102]
    assert io["src"][1][: len(ids)].tolist() == ids
