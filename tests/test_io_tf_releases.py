"""TensorFlow checkpoints of the Chinese releases (NEZHA, NEZHA-Gen, brightmart albert_zh, HFL's XLNet, gpt2-ml), loaded
with `uer_like.load_model(directory)` as the releases ship them (checkpoint files, config json, vocabulary),
against the outputs the releases' own TF modeling code computed for the same checkpoint
(tests/data/tf_releases/: made by make_fixtures.py, see its README). No tensorflow needed: it is made
unimportable here, so the pure-Python reader (io/tf_bundle.py) is what reads the checkpoints. Also the
reader's one-line errors (missing shard, truncated data, compressed index block) and the unknown-scheme error."""
import json
import logging
import os
import shutil
import struct
import sys

import numpy as np
import pytest
import torch

import uer_like
from uer_like import CheckpointError
from uer_like.io import load_model
from uer_like.io.tf_releases import detect_scheme

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tf_releases")

# release dir -> (scheme logged, the target and reference logits, the activation the upstream code computes)
RELEASES = {
    "nezha": ("nezha", "mlm", "mlm_logits", "gelu_fast"),
    "nezha_gen": ("nezha-gen", "lm", "lm_logits", "gelu"),
    "albert_zh": ("albert_zh", "mlm", "mlm_logits", "gelu_fast"),
    "xlnet": ("xlnet", "lm", "lm_logits", "gelu_fast"),
    "gpt2_ml": ("gpt2-ml", "lm", "lm_logits", "gelu"),
}


@pytest.fixture(autouse=True)
def no_tensorflow(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if it were not installed, even where it is


def _inputs(ref, model):
    ids = torch.from_numpy(ref["input_ids"]).long()
    mask = torch.from_numpy(ref["input_mask"]).long() if "input_mask" in ref else torch.ones_like(ids)
    tt = torch.from_numpy(ref["token_type_ids"]).long() if "token_type_ids" in ref else torch.zeros_like(ids)
    return ids, (tt + 1) * mask, mask.bool()


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_release_matches_its_upstream_code(release, caplog):
    scheme, target, ref_key, act = RELEASES[release]
    ref = np.load(os.path.join(DATA, release, "reference.npz"))
    with caplog.at_level(logging.INFO, logger="uer_like"):
        model = load_model(os.path.join(DATA, release)).eval()
    assert f"TF checkpoint of the {scheme} scheme" in caplog.text
    assert model.load_info.format == "tf"
    assert model.config.hidden_act == act
    assert target in model.config.target
    ids, seg, keep = _inputs(ref, model)
    with torch.no_grad():
        hidden = model.encode(ids, seg)
        logits = model.target_logits(hidden, seg)[target]
    dh = float((hidden - torch.from_numpy(ref["hidden"]))[keep].abs().max())
    dl = float((logits - torch.from_numpy(ref[ref_key]))[keep].abs().max())
    assert dh <= 1e-5 and dl <= 1e-5, (release, dh, dl)


def test_release_configs():
    nezha = load_model(os.path.join(DATA, "nezha")).config
    assert nezha.position_scheme == "nezha" and "pos" not in nezha.embedding and nezha.max_relative_position == 64
    albert = load_model(os.path.join(DATA, "albert_zh")).config
    assert albert.parameter_sharing and albert.emb_size == albert.hidden_size == 32
    gen = load_model(os.path.join(DATA, "nezha_gen")).config  # no config shipped: sizes from the shapes
    assert (gen.mask, gen.embedding, gen.target, gen.lm_head_transform, gen.heads_num) == (
        "causal", ["word", "pos"], ["lm"], True, 1)
    yuefu = load_model(os.path.join(DATA, "nezha_gen"), config={"hidden_act": "gelu_new"}).config  # poetry.py's tanh
    assert yuefu.hidden_act == "gelu_fast"
    gpt = load_model(os.path.join(DATA, "gpt2_ml")).config
    assert (gpt.mask, gpt.layernorm_positioning, gpt.layernorm_eps, gpt.tie_weights) == ("causal", "grover", 1e-5, True)


@pytest.mark.parametrize("release", ["gpt2_ml", "nezha_gen"])
def test_causal_release_generates_what_its_upstream_logits_say(release):
    """Greedy decoding (cached and not) starts with the upstream code's argmax after each prompt."""
    ref = np.load(os.path.join(DATA, release, "reference.npz"))
    model = load_model(os.path.join(DATA, release)).eval()
    ids = ref["input_ids"]
    prompts = [ids[0, :5].tolist(), ids[1, :8].tolist()]
    cached = uer_like.generate(model, prompts, 4)
    uncached = uer_like.generate(model, prompts, 4, use_cache=False)
    assert cached == uncached
    assert cached[0][0] == int(ref["lm_logits"][0, 4].argmax()) and cached[1][0] == int(ref["lm_logits"][1, 7].argmax())


def _copy(tmp_path, release="nezha"):
    d = tmp_path / release
    shutil.copytree(os.path.join(DATA, release), d)
    return d


def test_missing_shard_is_one_line(tmp_path):
    d = _copy(tmp_path)
    os.remove(d / "model.ckpt.data-00000-of-00001")
    with pytest.raises(CheckpointError, match=r"model\.ckpt\.data-00000-of-00001: missing data shard 0 of 1"):
        load_model(str(d))


def test_truncated_data_is_one_line(tmp_path):
    d = _copy(tmp_path)
    data = d / "model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model\.ckpt\.data-00000-of-00001: truncated: .* needs bytes"):
        load_model(str(d))


def test_compressed_index_block_is_refused(tmp_path):
    d = _copy(tmp_path)
    index = d / "model.ckpt.index"
    raw = bytearray(index.read_bytes())
    footer = raw[-48:]
    pos, vals = 0, []
    while len(vals) < 4:  # metaindex offset, size, index offset, size (varints)
        v = shift = 0
        while True:
            b = footer[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        vals.append(v)
    raw[vals[2] + vals[3]] = 1  # the index block's compression byte: snappy
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"model\.ckpt\.index: a compressed table block"):
        load_model(str(d))
    assert struct.unpack("<Q", bytes(raw[-8:]))[0] == 0xDB4775248B80FB57


def test_unknown_scheme_lists_names_and_schemes():
    with pytest.raises(CheckpointError) as e:
        detect_scheme({"foo/kernel", "foo/bias", "bar/embedding"}, "x/model.ckpt")
    msg = str(e.value)
    assert "\n" not in msg and "bar/embedding, foo/bias, foo/kernel" in msg
    for s in ("google-bert", "google-albert", "google-electra", "nezha", "nezha-gen", "albert_zh", "xlnet", "gpt2-ml"):
        assert s in msg


@pytest.mark.parametrize("release", ["gpt2_ml", "nezha_gen"])
def test_causal_release_saves_and_reloads(release, tmp_path):
    """The new model options (Grover's layers, the lm head transform) survive uer_like's own format."""
    from uer_like.io import save_model

    model = load_model(os.path.join(DATA, release)).eval()
    path = save_model(model, str(tmp_path / "m.safetensors"))
    again = load_model(path).eval()
    assert again.config == model.config
    ids = torch.from_numpy(np.load(os.path.join(DATA, release, "reference.npz"))["input_ids"]).long()
    seg = torch.ones_like(ids)
    with torch.no_grad():
        assert torch.equal(model.target_logits(model.encode(ids, seg), seg)["lm"],
                           again.target_logits(again.encode(ids, seg), seg)["lm"])


def test_config_mismatch_gives_no_strict_false_hint(tmp_path):
    """A release whose config disagrees with its checkpoint: an error, never a hint to load part of it."""
    d = _copy(tmp_path)
    cfg = json.loads((d / "bert_config.json").read_text())
    cfg["num_hidden_layers"] = 3
    (d / "bert_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        load_model(str(d))
    assert "strict=False" not in str(e.value) and "the TF checkpoint and its config disagree" in str(e.value)


def test_bad_tensor_size_names_the_file():
    """An index entry whose byte size does not fit its shape and dtype is refused, naming the data file."""
    from uer_like.io.tf_bundle import BundleReader

    reader = BundleReader(os.path.join(DATA, "nezha", "model.ckpt"))
    name = "bert/embeddings/word_embeddings"
    assert tuple(reader.tensor(name).shape) == (97, 32)
    reader.entries[name].size += 4
    with pytest.raises(CheckpointError, match=r"model\.ckpt\.data-00000-of-00001: bert/embeddings/word_embeddings "
                                              r"has 12420 bytes but its shape \[97, 32\] of float32 needs 12416"):
        reader.tensor(name)


def test_nezha_gen_scores_with_its_head_transform():
    """uer_like.score reads the lm head's transform too: the upstream log-probabilities of each next token."""
    ref = np.load(os.path.join(DATA, "nezha_gen", "reference.npz"))
    model = load_model(os.path.join(DATA, "nezha_gen")).eval()
    seq = ref["input_ids"][0].tolist()
    got = uer_like.score(model, [seq])[0]
    logp = torch.log_softmax(torch.from_numpy(ref["lm_logits"][0]).double(), -1)
    want = [float(logp[i, seq[i + 1]]) for i in range(len(seq) - 1)]
    assert max(abs(a - b) for a, b in zip(got, want)) <= 1e-5
