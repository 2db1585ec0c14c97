"""UER-py's two sinusoidal position tables, one name each: `["word", "sinusoidalpos"]` (UER-py since July 2023)
against the output of UER-py's own Embedding(WordEmbedding, SinusoidalposEmbedding)
(tests/data/uer_py_fixtures/sinusoidalpos_2023.npz, see its README), and the pre-2023 `"word_sinusoidalpos"`
string (sinusoidalpos_2019) against its formula; saving writes each table's own era."""
import json
import math
import os

import numpy as np
import pytest
import torch

import uer_like
from uer_like.config import load_config
from uer_like.embeddings import Embedding
from uer_like.errors import ConfigError

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "uer_py_fixtures",
                       "sinusoidalpos_2023.npz")
VOCAB = 60


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURE))


def _embedding(emb_size, max_seq_length, embedding=("word", "sinusoidalpos")):
    cfg = load_config({"embedding": list(embedding), "encoder": "transformer", "target": ["lm"], "mask": "causal",
                       "emb_size": emb_size, "hidden_size": emb_size, "heads_num": 1, "feedforward_size": 8,
                       "layers_num": 1, "max_seq_length": max_seq_length, "remove_embedding_layernorm": True})
    return Embedding(cfg, VOCAB).eval()


@pytest.mark.parametrize("emb_size", [16, 8])
def test_sinusoidalpos_equals_uer_py_2023(ref, emb_size):
    emb = _embedding(emb_size, int(ref["max_seq_length"]))
    with torch.no_grad():
        emb.word.embedding.weight.copy_(torch.from_numpy(ref[f"word_{emb_size}"]))
        src, seg = torch.from_numpy(ref["src"]), torch.from_numpy(ref["seg"])
        got_seg, got_noseg = emb(src, seg), emb(src, None)
    assert (got_seg - torch.from_numpy(ref[f"out_seg_{emb_size}"])).abs().max() <= 1e-6
    assert (got_noseg - torch.from_numpy(ref[f"out_noseg_{emb_size}"])).abs().max() <= 1e-6
    assert (emb.sinusoidalpos(src, seg)[seg == 0] == 0).all()  # padding gets no position
    table = torch.from_numpy(ref[f"table_{emb_size}"])
    # UER-py zeroes the row of [PAD] (id 0), which the offset of 2 never reaches; rows 1.. are the formula
    assert (table[0] == 0).all()
    assert (emb.sinusoidalpos.pe[1:table.size(0)] - table[1:]).abs().max() <= 1e-6


@pytest.mark.parametrize("emb_size", [17, 9])
def test_sinusoidalpos_odd_size_is_the_even_table_and_a_zero_column(ref, emb_size):
    """UER-py fails on an odd emb_size (odd_error); here it is the table of emb_size - 1 (the same emb_size // 2
    frequencies) with a zero last column."""
    assert "must match" in str(ref["odd_error"])
    even = emb_size - 1
    emb = _embedding(emb_size, int(ref["max_seq_length"]))
    src, seg = torch.from_numpy(ref["src"]), torch.from_numpy(ref["seg"])
    with torch.no_grad():
        pos = emb.sinusoidalpos(src, seg)
    word = torch.from_numpy(ref[f"word_{even}"])[src] * math.sqrt(even)
    want = torch.from_numpy(ref[f"out_seg_{even}"]) - word
    assert (pos[..., :even] - want).abs().max() <= 1e-6
    assert (pos[..., even] == 0).all()


def test_sinusoidalpos_positions_argument_gets_the_same_offset(ref):
    """Decoding with a cache passes positions: the p-th token gets table row p + 2 there too; left padding
    gets zeros and the tokens after it count from 0."""
    emb = _embedding(16, 12)
    src, seg = torch.from_numpy(ref["src"]), torch.from_numpy(ref["seg"])
    pos_mod = emb.sinusoidalpos
    full = pos_mod(src, seg)
    positions = (seg.cumsum(1) - 1).clamp(min=0)
    assert torch.equal(pos_mod(src, seg, positions), full)
    for t in range(4):  # one token at a time, as a cached decoding step
        step = pos_mod(src[:, t:t + 1], torch.ones_like(seg[:, t:t + 1]), torch.full((3, 1), t))
        assert torch.equal(step[:, 0], pos_mod.pe[t + 2].expand(3, -1))
    left = torch.cat([torch.zeros(1, 3, dtype=torch.long), src[2:3, :4]], 1)
    out = pos_mod(left, (left != 0).long())
    assert (out[0, :3] == 0).all() and torch.equal(out[0, 3:], full[2, :4])
    with pytest.raises(ConfigError, match="emb_size >= 4"):
        _embedding(3, 12)


def test_word_sinusoidalpos_string_keeps_the_pre_2023_table():
    c = load_config({"embedding": "word_sinusoidalpos", "encoder": "transformer", "target": "lm",
                     "emb_size": 16, "hidden_size": 16, "heads_num": 2, "max_seq_length": 12})
    assert c.embedding == ["word", "sinusoidalpos_2019"]
    emb = Embedding(c, VOCAB)
    p = torch.arange(12, dtype=torch.float)[:, None]
    i = torch.arange(0, 16, 2, dtype=torch.float)
    want = torch.stack([torch.sin(p / 10000 ** (i / 16)), torch.cos(p / 10000 ** (i / 16))], -1).reshape(12, 16)
    src = torch.ones(2, 12, dtype=torch.long)
    assert (emb.sinusoidalpos_2019(src, src)[0] - want).abs().max() <= 1e-5
    new = _embedding(16, 12).sinusoidalpos(src, src)[0]
    assert (new - want).abs().max() > 0.1  # the two eras differ


def _lm(embedding):
    cfg = {"embedding": embedding, "encoder": "transformer", "target": ["lm"], "mask": "causal",
           "emb_size": 16, "hidden_size": 16, "heads_num": 2, "feedforward_size": 32, "layers_num": 1,
           "max_seq_length": 12, "remove_embedding_layernorm": True, "layernorm_positioning": "pre"}
    return uer_like.build_model(load_config(cfg), VOCAB).eval()


def test_saving_writes_the_spelling_of_each_era(tmp_path):
    src = torch.tensor([[5, 6, 7, 8, 0, 0]])
    for embedding, layout, spelling, wrong in ((["word", "sinusoidalpos"], "uer", ["word", "sinusoidalpos"],
                                                "uer_2023"),
                                               (["word", "sinusoidalpos_2019"], "uer_2023", "word_sinusoidalpos",
                                                "uer")):
        m = _lm(embedding)
        path = str(tmp_path / f"{layout}.bin")
        uer_like.save_model(m, path, format="uer")  # the default layout is the table's era
        cfg = json.load(open(str(tmp_path / f"{layout}_config.json")))
        assert cfg["embedding"] == spelling
        keys = torch.load(path, weights_only=True).keys()
        assert ("embedding.pe" in keys) == (layout == "uer_2023")
        back = uer_like.load_model(path).eval()
        assert back.config.embedding == embedding
        with torch.no_grad():
            assert torch.equal(back.embed(src, (src != 0).long()), m.embed(src, (src != 0).long()))
        with pytest.raises(ConfigError, match="save it with layout"):
            uer_like.save_model(m, str(tmp_path / "wrong.bin"), format="uer", layout=wrong)
