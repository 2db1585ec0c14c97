"""Safe loading: malicious pickles are refused without running, broken files and mismatching tensors give
errors naming the problem, loading is strict unless asked otherwise, and the project's own outputs
default to safetensors."""
import json
import logging
import os
import pickle
import re
import struct

import pytest
import torch

from uer_like import CheckpointError
from uer_like.io import load_model, load_state_dict_file, save_model
from uer_like.io.uer import to_uer_state_dict
from uer_like.model import build_model

SIZES = dict(vocab_size=50, hidden_size=32, emb_size=32, feedforward_size=37, heads_num=4, layers_num=2,
             max_seq_length=16)


def _model():
    torch.manual_seed(0)
    return build_model("bert/tiny", **SIZES)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').close()",))


@pytest.mark.parametrize("how", ["torch_zip", "torch_legacy", "raw_pickle_p2", "raw_pickle_p4", "raw_pickle_p0", "eval"])
def test_malicious_pickle_is_refused_without_executing(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    state = {"embedding.word.embedding.weight": torch.zeros(2, 2)}
    payload = _EvalPayload(str(marker)) if how == "eval" else _Payload(str(marker))
    state["x"] = payload
    if how == "torch_zip" or how == "eval":
        torch.save(state, path)
    elif how == "torch_legacy":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    else:
        proto = {"raw_pickle_p2": 2, "raw_pickle_p4": 4, "raw_pickle_p0": 0}[how]
        path.write_bytes(pickle.dumps({"a": payload}, protocol=proto))
    with pytest.raises(CheckpointError, match="refused to load") as e:
        load_model(str(path), config="bert/tiny")
    assert "system" in str(e.value) or "eval" in str(e.value)
    assert not marker.exists()


def test_malicious_pickle_refused_even_if_weights_only_were_bypassed(tmp_path, monkeypatch):
    """Defence in depth: the opcode scan refuses before torch.load is ever called."""
    marker = tmp_path / "pwned"
    torch.save({"x": _Payload(str(marker))}, tmp_path / "evil.pt")
    called = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: called.append(1))
    with pytest.raises(CheckpointError, match="posix.system|nt.system"):
        load_state_dict_file(str(tmp_path / "evil.pt"))
    assert not called and not marker.exists()


def test_truncated_files(tmp_path):
    model = _model()
    save_model(model, str(tmp_path / "m.bin"), format="uer")
    raw = (tmp_path / "m.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(str(tmp_path / "cut.bin"), config=str(tmp_path / "m_config.json"))
    torch.save(to_uer_state_dict(model.state_dict()), tmp_path / "legacy.bin", _use_new_zipfile_serialization=False)
    legacy = load_state_dict_file(str(tmp_path / "legacy.bin"))  # the pre-1.6 format UER-py files often have
    assert torch.equal(legacy["embedding.word.embedding.weight"], model.embedding.word.embedding.weight)
    raw = (tmp_path / "legacy.bin").read_bytes()
    (tmp_path / "legacy_cut.bin").write_bytes(raw[:-100])
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        load_state_dict_file(str(tmp_path / "legacy_cut.bin"))
    save_model(model, str(tmp_path / "m.safetensors"))
    raw = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:-64])
    with pytest.raises(CheckpointError, match="truncated safetensors file: tensor '.*' ends at byte"):
        load_state_dict_file(str(tmp_path / "cut.safetensors"))
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_state_dict_file(str(tmp_path / "empty.bin"))


def test_malformed_safetensors_header(tmp_path):
    body = b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}'  # missing closing brace
    (tmp_path / "badjson.safetensors").write_bytes(struct.pack("<Q", len(body)) + body + b"\0" * 8)
    with pytest.raises(CheckpointError, match="malformed safetensors header: not valid JSON"):
        load_state_dict_file(str(tmp_path / "badjson.safetensors"))
    (tmp_path / "biglen.safetensors").write_bytes(struct.pack("<Q", 10 ** 9) + b"{}")
    with pytest.raises(CheckpointError, match="declares a header of 1000000000 bytes"):
        load_state_dict_file(str(tmp_path / "biglen.safetensors"))
    body = json.dumps({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "span.safetensors").write_bytes(struct.pack("<Q", len(body)) + body + b"\0" * 8)
    with pytest.raises(CheckpointError, match="tensor 'a' of shape \\[3\\] F32 needs 12 bytes"):
        load_state_dict_file(str(tmp_path / "span.safetensors"))


def test_wrong_shape_and_missing_key_name_the_tensor(tmp_path):
    model = _model()
    sd = to_uer_state_dict(model.state_dict())
    bad = dict(sd)
    bad["encoder.transformer.1.feed_forward.linear_1.weight"] = torch.zeros(40, 32)
    torch.save(bad, tmp_path / "shape.bin")
    cfg = str(tmp_path / "cfg.json")
    json.dump(model.config.to_dict(), open(cfg, "w"))
    with pytest.raises(CheckpointError, match=r"encoder\.transformer\.1\.feed_forward\.linear_1\.weight: "
                                              r"checkpoint \(40, 32\) vs model \(37, 32\)"):
        load_model(str(tmp_path / "shape.bin"), config=cfg)
    missing = {k: v for k, v in sd.items() if not k.startswith("target.sp.linear_2")}
    torch.save(missing, tmp_path / "missing.bin")
    with pytest.raises(CheckpointError, match=r"missing keys \(2\): target\.sp\.linear_2\.weight, target\.sp\.linear_2\.bias"):
        load_model(str(tmp_path / "missing.bin"), config=cfg)


def test_strict_by_default_partial_only_on_request(tmp_path, caplog):
    model = _model()
    sd = to_uer_state_dict(model.state_dict())
    partial = {k: v for k, v in sd.items() if not k.startswith("target.")}
    partial["some.extra.tensor"] = torch.zeros(1)
    torch.save(partial, tmp_path / "partial.bin")
    cfg = str(tmp_path / "cfg.json")
    json.dump(model.config.to_dict(), open(cfg, "w"))
    with pytest.raises(CheckpointError, match="missing keys .*unexpected keys \\(1\\): some.extra.tensor"):
        load_model(str(tmp_path / "partial.bin"), config=cfg)
    with caplog.at_level(logging.WARNING, logger="uer_like"):
        m = load_model(str(tmp_path / "partial.bin"), config=cfg, strict=False)
    text = caplog.text
    assert "target.mlm.linear_1.weight" in text and "some.extra.tensor" in text
    assert "target.sp.linear_1.weight" in m.load_info.missing
    assert m.load_info.unexpected == ["some.extra.tensor"]
    assert torch.equal(m.embedding.word.embedding.weight, model.embedding.word.embedding.weight)


def test_hf_unexpected_and_missing_keys_strict(tmp_path, caplog):
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import load_file, save_file

    cfg = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=37, max_position_embeddings=16)
    transformers.BertForMaskedLM(cfg).save_pretrained(tmp_path)
    sd = load_file(str(tmp_path / "model.safetensors"))
    sd.pop("bert.encoder.layer.1.output.dense.bias")
    sd["bert.encoder.layer.1.output.adapter.weight"] = torch.zeros(2)
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing keys \\(1\\): encoder.layer.1.output.dense.bias; "
                                              "unexpected keys \\(1\\): encoder.layer.1.output.adapter.weight"):
        load_model(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="uer_like"):
        load_model(str(tmp_path), strict=False)
    assert "encoder.layer.1.output.dense.bias" in caplog.text and "adapter" in caplog.text


def test_own_outputs_default_to_safetensors(tmp_path):
    model = _model()
    p = save_model(model, str(tmp_path / "model.safetensors"))
    assert open(p, "rb").read(9)[8:9] == b"{"
    os.remove(tmp_path / "model_config.json")  # the config travels in the file's metadata too
    again = load_model(p)
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])
    out = save_model(model, str(tmp_path / "hf_dir"))  # a directory: Hugging Face layout, safetensors weights
    assert sorted(os.listdir(out))[:2] == ["config.json", "model.safetensors"]
    save_model(model, str(tmp_path / "m.bin"), format="uer")  # UER-py's format stays available explicitly
    assert "encoder.transformer.0.self_attn.linear_layers.0.weight" in torch.load(tmp_path / "m.bin", weights_only=True)
    with pytest.raises(ValueError, match="format 'uer' writes a torch pickle"):
        save_model(model, str(tmp_path / "x.safetensors"), format="uer")


def test_hf_shape_mismatch_names_the_hf_tensor(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=37, max_position_embeddings=16)
    transformers.BertForMaskedLM(cfg).save_pretrained(tmp_path)
    c = json.loads((tmp_path / "config.json").read_text())
    c["intermediate_size"] = 40
    (tmp_path / "config.json").write_text(json.dumps(c))
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.0\.intermediate\.dense\.weight: checkpoint \(37, 32\) "
                                              r"vs config \(40, 32\)"):
        load_model(str(tmp_path))


def _retype_safetensors(src, dst, key, dtype):
    """A copy of a safetensors file whose header declares `key` as `dtype` (same bytes: an I32 header over F32
    data reads as integers of about 1e9)."""
    raw = open(src, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header[key]["dtype"] = dtype
    body = json.dumps(header).encode()
    open(dst, "wb").write(struct.pack("<Q", len(body)) + body + raw[8 + n:])
    return str(dst)


def test_a_tensor_of_another_dtype_kind_is_refused_naming_file_key_and_dtypes(tmp_path):
    model = _model()
    save_model(model, str(tmp_path / "m.safetensors"))
    cfg = str(tmp_path / "m_config.json")
    p = _retype_safetensors(tmp_path / "m.safetensors", tmp_path / "i32.safetensors", "embedding.pos.embedding.weight",
                            "I32")
    with pytest.raises(CheckpointError, match=r"i32\.safetensors: wrong dtype for 1 tensor\(s\): "
                                              r"embedding\.pos\.embedding\.weight: checkpoint int32 vs model float32"):
        load_model(p, config=cfg)
    sd = to_uer_state_dict(model.state_dict())
    for name, key, value, found in [
            ("int64", "embedding.pos.embedding.weight", lambda t: (t * 1000).long(), "int64"),
            ("bool", "encoder.transformer.1.feed_forward.linear_1.weight", lambda t: t > 0, "bool"),
            ("complex", "target.mlm.linear_1.bias", lambda t: t.to(torch.complex64), "complex64"),
            # one of the three attention linears, which are joined into one tensor on loading
            ("qkv", "encoder.transformer.0.self_attn.linear_layers.1.weight", lambda t: t.to(torch.int32), "int32")]:
        bad = dict(sd)
        bad[key] = value(bad[key])
        torch.save(bad, tmp_path / f"{name}.bin")
        with pytest.raises(CheckpointError, match=rf"{name}\.bin: wrong dtype for 1 tensor\(s\): \S*"
                                                  rf"{re.escape(key)}\S*: checkpoint {found} vs model float32"):
            load_model(str(tmp_path / f"{name}.bin"), config=cfg)
        with pytest.raises(CheckpointError, match="wrong dtype"):  # partial loads check dtypes too
            load_model(str(tmp_path / f"{name}.bin"), config=cfg, strict=False)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):  # floating precisions convert
        torch.save({k: v.to(dtype) for k, v in sd.items()}, tmp_path / "lower.bin")
        again = load_model(str(tmp_path / "lower.bin"), config=cfg)
        assert again.embedding.word.embedding.weight.dtype == torch.float32
        torch.testing.assert_close(again.embedding.word.embedding.weight,
                                   model.embedding.word.embedding.weight.to(dtype).float(), rtol=0, atol=0)


def test_hf_tensor_of_another_dtype_names_the_hf_keys(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=37, max_position_embeddings=16)
    transformers.BertForMaskedLM(cfg).save_pretrained(tmp_path / "hf")
    st = str(tmp_path / "hf" / "model.safetensors")
    for key, says in [("bert.embeddings.position_embeddings.weight", "embeddings.position_embeddings.weight"),
                      ("bert.encoder.layer.1.attention.self.key.weight",  # joined with query and value on loading
                       "encoder.layer.1.attention.self.query.weight+encoder.layer.1.attention.self.key.weight")]:
        os.replace(_retype_safetensors(st, tmp_path / "x.safetensors", key, "I32"), st)
        with pytest.raises(CheckpointError, match=rf"hf: wrong dtype for 1 tensor\(s\): {re.escape(says)}"
                                                  r"\S*: checkpoint int32 vs model float32"):
            load_model(str(tmp_path / "hf"))
        os.replace(_retype_safetensors(st, tmp_path / "x.safetensors", key, "F32"), st)


def test_non_finite_weights_are_refused_naming_the_first_tensors(tmp_path, caplog):
    model = _model()
    with torch.no_grad():
        model.encoder.transformer[1].feed_forward.linear_1.weight[2, :3] = float("nan")
        model.encoder.transformer[0].layer_norm_2.gamma[5] = float("-inf")
    for name in ("m.bin", "m.safetensors"):
        save_model(model, str(tmp_path / name))
        with pytest.raises(CheckpointError, match=rf"{re.escape(name)}: 2 tensor\(s\) hold NaN/inf values: "
                                                  r"encoder\.transformer\.0\.layer_norm_2\.gamma \(1 of 32 values\), "
                                                  r"encoder\.transformer\.1\.feed_forward\.linear_1\.weight "
                                                  r"\(3 of 1184 values\); these weights are unusable"):
            load_model(str(tmp_path / name))
    with caplog.at_level(logging.WARNING, logger="uer_like"):  # an explicit opt-out, to inspect them
        m = load_model(str(tmp_path / "m.bin"), allow_nonfinite=True)
    assert torch.isnan(m.encoder.transformer[1].feed_forward.linear_1.weight[2, 0])
    assert "2 tensor(s) hold NaN/inf values" in caplog.text
    save_model(model, str(tmp_path / "hf"), format="hf")
    with pytest.raises(CheckpointError, match=r"hf: 2 tensor\(s\) hold NaN/inf values: "
                                              r"encoder\.layer\.0\.output\.LayerNorm\.weight \(1 of 32 values\)"):
        load_model(str(tmp_path / "hf"))


def test_config_that_is_not_json_names_file_line_and_column(tmp_path):
    from uer_like import ConfigError

    model = _model()
    save_model(model, str(tmp_path / "hf"), format="hf")
    text = (tmp_path / "hf" / "config.json").read_text()
    (tmp_path / "hf" / "config.json").write_text(text.replace('"model_type"', "model_type", 1))
    line = text[:text.index('"model_type"')].count("\n") + 1
    with pytest.raises(ConfigError, match=rf"hf/config\.json: not valid JSON: .* at line {line}, column 3$"):
        load_model(str(tmp_path / "hf"))
    save_model(model, str(tmp_path / "m.bin"), format="uer")
    (tmp_path / "m_config.json").write_text('{"emb_size": 32,\n "hidden_size": 32,\n}')
    with pytest.raises(ConfigError, match=r"m_config\.json: not valid JSON: .* at line 3, column 1$"):
        load_model(str(tmp_path / "m.bin"))
    (tmp_path / "m_config.json").write_bytes(b'{"emb_size": "\xff"}')
    with pytest.raises(ConfigError, match=r"m_config\.json: not valid JSON: not UTF-8 text"):
        load_model(str(tmp_path / "m.bin"))
    cfg = json.dumps(model.config.to_dict())
    (tmp_path / "m_config.json").write_bytes(b"\xef\xbb\xbf" + cfg.encode())  # a byte order mark is fine
    load_model(str(tmp_path / "m.bin"))
