"""UER-format files of every UER-py era (io/uer.py layouts): fixtures made by UER-py's own code at four commits
(tests/data/uer_py_fixtures, see its README) and ../shared/fixtures/uer_2023 load, reproduce UER-py's
embedding, encoder and head outputs, and save back under UER-py's exact key set."""
import json
import logging
import os

import numpy as np
import pytest
import torch

import uer_like
from uer_like.errors import CheckpointError
from conftest import FIXTURES, need

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "uer_py_fixtures")

# name: (layout detected, the UER-py commit that wrote it)
LOCAL = {
    "lstm_lm_2020": ("uer_2023", "2cbb3e1"),           # --embedding word --encoder lstm --target lm (flat config)
    "bert_2021": ("uer_2021", "243dbe1"),              # "target": "bert": target.nsp_linear_1/2 (flat config)
    "albert_2021": ("uer_2021_albert", "243dbe1"),     # "target": "albert": target.sop_linear_1/2 (flat config)
    "albert_2023": ("uer_2023", "7c1f731"),
    "bert_cls_2023": ("uer_2023", "7c1f731"),
    "sinusoidal_lm_2023": ("uer_2023", "7c1f731"),     # word_sinusoidalpos: embedding.pe in the file
    "bilstm_bilm_2023": ("uer_2023", "7c1f731"),
    "lstm_bidirectional_cls_2023": ("uer_2023", "7c1f731"),
    "gru_lm_2023": ("uer_2023", "7c1f731"),
    "bilstm_bilm_2024": ("uer", "5743050"),
}
# The command-line flags UER-py's README gave with the flat configs of the time.
FLAGS = {
    "lstm_lm_2020": {"embedding": "word", "encoder": "lstm", "target": "lm"},
    "bert_2021": {"embedding": "word_pos_seg", "encoder": "transformer", "target": "bert", "tie_weights": True},
    "albert_2021": {"embedding": "word_pos_seg", "encoder": "transformer", "target": "albert",
                    "factorized_embedding_parameterization": True, "parameter_sharing": True},
}
SHARED = {"bert_tiny_2023": "uer_2023", "gpt2_tiny_2023": "uer_2023"}


def paths(name):
    d = HERE if name in LOCAL else need(os.path.join(FIXTURES, "uer_2023"))
    return os.path.join(d, name + ".bin"), os.path.join(d, name + "_config.json"), os.path.join(d, name + "_io.npz")


def check_outputs(model, io_path):
    io = np.load(io_path)
    model.eval()
    src, seg = torch.tensor(io["src"]), torch.tensor(io["seg"])
    with torch.no_grad():
        emb = model.embed(src, seg)
        hidden = model.encode(src, seg)
        logits = model.target_logits(hidden, seg)
    np.testing.assert_allclose(emb.numpy(), io["embedding_output"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(hidden.numpy(), io["encoder_output"], atol=1e-5, rtol=0)
    checked = 0
    for key in io.files:
        if key.endswith("_logits"):
            ref = io[key]
            out = logits[key[: -len("_logits")]].numpy()
            if ref.ndim >= 3:
                out = out[:, : ref.shape[1]]
            np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0, err_msg=key)
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize("name", sorted(LOCAL) + sorted(SHARED))
def test_uer_py_file_loads_with_its_config_and_reproduces_uer_py(name, tmp_path, caplog):
    bin_path, cfg_path, io_path = paths(name)
    layout = LOCAL[name][0] if name in LOCAL else SHARED[name]
    with caplog.at_level(logging.INFO, logger="uer_like"):
        model = uer_like.load_model(bin_path, cfg_path)
    assert model.load_info.layout == layout
    if name in FLAGS:  # a flat config: the components were read off the tensor names, and logged
        assert "read from the checkpoint's tensor names" in caplog.text
    check_outputs(model, io_path)
    # saved back: the layout it came from, UER-py's exact key set and tensors
    out = tmp_path / "back.bin"
    uer_like.save_model(model, str(out))
    ref = torch.load(bin_path, weights_only=True)
    mine = torch.load(out, weights_only=True)
    assert sorted(mine) == sorted(ref)
    for k in ref:
        assert torch.equal(mine[k], ref[k]), k
    # and the config written beside it reloads the same model
    again = uer_like.load_model(str(out))
    assert again.config == model.config and again.load_info.layout == layout


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_flat_config_with_uer_py_flags(name):
    """Configs before 2021 named no components: UER-py's flags (as a CLI passes them) give them."""
    bin_path, cfg_path, io_path = paths(name)
    assert not {"embedding", "encoder", "target"} & set(json.load(open(cfg_path)))
    model = uer_like.load_model(bin_path, cfg_path, config_overrides=FLAGS[name])
    check_outputs(model, io_path)


def test_every_layout_saves_a_2023_model_under_its_own_names(tmp_path):
    """A model saved in each layout reloads identically (the layout is detected again)."""
    bin_path, cfg_path, io_path = paths("bert_2021")
    model = uer_like.load_model(bin_path, cfg_path)
    for layout in ("uer", "uer_2023", "uer_2021", "uer_2021_albert"):
        p = tmp_path / f"{layout}.bin"
        uer_like.save_model(model, str(p), layout=layout)
        keys = set(torch.load(p, weights_only=True))
        assert ("target.nsp_linear_1.weight" in keys) == (layout == "uer_2021")
        assert ("target.sop_linear_1.weight" in keys) == (layout == "uer_2021_albert")
        assert ("embedding.word.embedding.weight" in keys) == (layout == "uer")
        again = uer_like.load_model(str(p))
        assert again.load_info.layout == layout
        check_outputs(again, io_path)
    cfg = json.load(open(tmp_path / "uer_2021_config.json"))
    assert cfg["target"] == "bert" and cfg["embedding"] == "word_pos_seg"  # the form UER-py read then


def test_tied_weight_under_one_name_only_loads(tmp_path):
    bin_path, cfg_path, io_path = paths("gru_lm_2023")
    state = torch.load(bin_path, weights_only=True)
    del state["target.output_layer.weight"]  # tied to embedding.word_embedding.weight
    p = tmp_path / "m.bin"
    torch.save(state, p)
    check_outputs(uer_like.load_model(str(p), cfg_path), io_path)


def test_unknown_names_report_the_closest_layout_and_the_keys_that_differ(tmp_path):
    bin_path, cfg_path, _ = paths("bert_2021")
    state = torch.load(bin_path, weights_only=True)
    state["target.nsp_dense.weight"] = state.pop("target.nsp_linear_1.weight")
    p = tmp_path / "m.bin"
    torch.save(state, p)
    with pytest.raises(CheckpointError) as e:
        uer_like.load_model(str(p), cfg_path, config_overrides=FLAGS["bert_2021"])
    msg = str(e.value)
    assert "closest: uer_2021" in msg and "target.nsp_linear_1.weight" in msg and "target.nsp_dense.weight" in msg
    assert "\n" not in msg
    model = uer_like.load_model(str(p), cfg_path, config_overrides=FLAGS["bert_2021"], strict=False)
    assert model.load_info.missing == ["target.sp.linear_1.weight"]


def test_convert_cli_takes_uer_py_flags_and_a_layout(tmp_path, capsys):
    """scripts/convert.py: a pre-2021 file with its flat config and UER-py's flags, written in the current
    layout, reproduces UER-py's outputs."""
    import importlib.util

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("convert_script", os.path.join(root, "scripts", "convert.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    bin_path, cfg_path, io_path = paths("albert_2021")
    out = tmp_path / "new.bin"
    rc = script.main(["--input", bin_path, "--config", cfg_path, "--embedding", "word_pos_seg", "--encoder",
                      "transformer", "--target", "albert", "--factorized_embedding_parameterization",
                      "--parameter_sharing", "--output", str(out), "--to", "uer", "--layout", "uer"])
    assert rc == 0
    assert "layout uer_2021_albert" in capsys.readouterr().out
    keys = set(torch.load(out, weights_only=True))
    assert "target.sp.linear_1.weight" in keys and "embedding.word.embedding.weight" in keys
    model = uer_like.load_model(str(out))
    assert model.load_info.layout == "uer"
    check_outputs(model, io_path)
