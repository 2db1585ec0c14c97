"""Released weights in the layouts they were distributed in load with `load_model(dir)`, no config argument:
the pre-2020 PyTorch zip (pytorch_model.bin + bert_config.json, both LayerNorm namings; a config.json without
model_type) and PaddleNLP's model_state.pdparams (config.json or model_config.json). The fixtures in
../shared/fixtures/release_formats were made by transformers and PaddleNLP (see their MADE_BY.md); their
reference.npz holds the hidden states and MLM logits of those implementations."""
import json
import logging
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from conftest import FIXTURES, need
from uer_like import CheckpointError
from uer_like.io import detect_format, load_model, save_model
from uer_like.io import paddle as paddlefmt

TOL = 1e-5
RELEASES = os.path.join(FIXTURES, "release_formats")


def _fixture(name):
    return need(os.path.join(RELEASES, name))


def _copy(src, dst, skip=()):
    """The release directory, its weights linked (not copied), to edit its other files."""
    os.makedirs(dst)
    for n in os.listdir(src):
        if n in skip:
            continue
        if n.endswith((".bin", ".pdparams")):
            os.symlink(os.path.join(src, n), os.path.join(dst, n))
        else:
            shutil.copyfile(os.path.join(src, n), os.path.join(dst, n))
    return str(dst)


def _check_reference(model, d):
    ref = np.load(os.path.join(d, "reference.npz"))
    ids = torch.from_numpy(ref["input_ids"])
    mask = torch.from_numpy(ref["attention_mask"])
    seg = (torch.from_numpy(ref["token_type_ids"]) + 1) * mask
    keep = mask.bool()
    model.eval()
    with torch.no_grad():
        emb = model.embed(ids, seg)
        hidden = model.encode(ids, seg)
        logits = model.target_logits(hidden, seg)
    pos = torch.from_numpy(ref["mlm_positions"])

    def diff(a, b, m):
        return (a - torch.from_numpy(b))[m].abs().max().item()

    diffs = {"embedding": diff(emb, ref["embedding_output"], keep),
             "hidden": diff(hidden, ref["last_hidden_state"], keep)}
    if "mlm" in logits:
        diffs["mlm"] = diff(logits["mlm"][:, pos], ref["mlm_logits"], keep[:, pos])
    if "pooler" in logits:
        diffs["pooler"] = (logits["pooler"] - torch.from_numpy(ref["pooler_output"])).abs().max().item()
    if "nsp_logits" in ref:
        diffs["nsp"] = (logits["sp"] - torch.from_numpy(ref["nsp_logits"])).abs().max().item()
    for k, v in diffs.items():
        assert v <= TOL, f"{d} {k}: max abs diff {v}"
    return diffs


# ---------------------------------------------------------------------------------------------- the fixtures
@pytest.mark.parametrize("name", ["bert_ptzip", "bert_ptzip_gamma"])
def test_pytorch_zip_release_reproduces_its_reference(name, caplog):
    d = _fixture(name)
    assert detect_format(d) == "pt-zip"
    with caplog.at_level(logging.INFO, logger="uer_like"):
        model = load_model(d)
    assert model.load_info.format == "pt-zip" and model.load_info.family == "bert"
    assert set(model.config.target) == {"mlm", "sp"}
    assert model.load_info.vocab_path == os.path.join(d, "vocab.txt")
    assert "read as Hugging Face bert" in caplog.text  # the family inferred, and why, is said
    if name.endswith("gamma"):
        assert "gamma/beta" in caplog.text
    _check_reference(model, d)


def test_released_models_export_and_load_back(tmp_path):
    """A model read from a release layout saves as a Hugging Face directory that loads back identically."""
    for name in ("bert_ptzip_gamma", "ernie_paddle"):
        model = load_model(_fixture(name))
        out = save_model(model, str(tmp_path / name), format="hf")
        again = load_model(out)
        assert again.load_info.family == model.load_info.family
        for k, v in model.state_dict().items():
            assert torch.equal(v, again.state_dict()[k]), (name, k)


def test_paddle_release_reproduces_its_reference():
    d = _fixture("ernie_paddle")
    model = load_model(d)
    assert model.load_info.format == "paddle" and model.load_info.family == "ernie"
    assert "task" in model.config.embedding and model.config.layernorm_eps == 1e-12
    assert set(_check_reference(model, d)) == {"embedding", "hidden", "mlm", "pooler"}


def test_paddle_bare_base_model(tmp_path):
    """ErnieModel.save_pretrained: the base model's names without the `ernie.` prefix, no heads."""
    src = _fixture("ernie_paddle")
    d = _copy(src, tmp_path / "bare", skip=("model_state.pdparams",))
    arrays = paddlefmt.load_pdparams(os.path.join(src, "model_state.pdparams"))
    bare = {k[len("ernie."):]: v for k, v in arrays.items() if k.startswith("ernie.")}
    with open(os.path.join(d, "model_state.pdparams"), "wb") as f:
        pickle.dump(bare, f, protocol=4)
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg["architectures"] = ["ErnieModel"]
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    model = load_model(d)
    assert model.config.target == ["pooler"]
    assert set(_check_reference(model, src)) == {"embedding", "hidden", "pooler"}


def test_paddle_model_config_json_init_args_form(tmp_path):
    """Older PaddleNLP wrote model_config.json: the base model's arguments under init_args, the task class in
    init_class."""
    src = _fixture("ernie_paddle")
    d = _copy(src, tmp_path / "old", skip=("config.json",))
    cfg = json.load(open(os.path.join(src, "config.json")))
    base = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "paddlenlp_version", "fuse")}
    base["init_class"] = "ErnieModel"
    with open(os.path.join(d, "model_config.json"), "w") as f:
        json.dump({"init_args": [base], "init_class": "ErnieForMaskedLM"}, f)
    assert detect_format(d) == "paddle"
    _check_reference(load_model(d), src)


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_paddle_bert_shaped_models_with_the_same_layer_names(kind, tmp_path):
    """PaddleNLP's BertModel / RobertaModel have ERNIE's layer names under their own prefix, and
    BertForPretraining's head keeps the decoder as `decoder_weight` / `decoder_bias`. RoBERTa in the
    model_config.json form (the older PaddleNLP that wrote it numbered Chinese RoBERTa positions from 0, as BERT;
    PaddleNLP 2.8 numbers them from pad_token_id + 1, tests/test_paddle_releases.py). Made from the ERNIE fixture by
    folding the task-type row 0 (task_id 0) into the token-type rows, which computes the same sums; written with
    pickle protocol 2 (paddle.save(protocol=2))."""
    src = _fixture("ernie_paddle")
    d = _copy(src, tmp_path / kind, skip=("model_state.pdparams", "config.json"))
    arrays = paddlefmt.load_pdparams(os.path.join(src, "model_state.pdparams"))
    task = arrays.pop("ernie.embeddings.task_type_embeddings.weight")
    arrays["ernie.embeddings.token_type_embeddings.weight"] += task[0]
    out = {}
    for k, v in arrays.items():
        k = {"cls.predictions.decoder.weight": "cls.predictions.decoder_weight",
             "cls.predictions.decoder.bias": None}.get(k, k)
        if k is not None:
            out[kind + k[len("ernie"):] if k.startswith("ernie.") else k] = v
    out["StructuredToParameterName@@"] = {k: f"param_{i}" for i, k in enumerate(out)}
    with open(os.path.join(d, "model_state.pdparams"), "wb") as f:
        pickle.dump(out, f, protocol=2)
    cfg = json.load(open(os.path.join(src, "config.json")))
    for k in ("use_task_id", "task_id", "task_type_vocab_size"):
        cfg.pop(k)
    cfg.update(model_type=kind, architectures=[f"{kind.capitalize()}ForPretraining"])
    if kind == "roberta":
        for k in ("model_type", "architectures", "paddlenlp_version", "fuse"):
            cfg.pop(k)
        cfg["init_class"] = "RobertaModel"
        json.dump({"init_args": [cfg], "init_class": "RobertaForPretraining"},
                  open(os.path.join(d, "model_config.json"), "w"))
    else:
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    model = load_model(d)
    assert model.load_info.format == "paddle" and model.load_info.family == "bert" and "task" not in model.config.embedding
    _check_reference(model, src)


def test_paddle_sequence_classifier(tmp_path):
    """ErnieForSequenceClassification: `classifier` is a paddle Linear ([in, out]) over the pooled output."""
    src = _fixture("ernie_paddle")
    d = _copy(src, tmp_path / "cls", skip=("model_state.pdparams",))
    arrays = paddlefmt.load_pdparams(os.path.join(src, "model_state.pdparams"))
    arrays = {k: v for k, v in arrays.items() if not k.startswith("cls.")}
    g = np.random.RandomState(0)
    arrays["classifier.weight"] = g.randn(64, 3).astype(np.float32)
    arrays["classifier.bias"] = g.randn(3).astype(np.float32)
    with open(os.path.join(d, "model_state.pdparams"), "wb") as f:
        pickle.dump(arrays, f, protocol=4)
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg.update(architectures=["ErnieForSequenceClassification"], num_classes=3)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    model = load_model(d).eval()
    assert model.config.target == ["cls"] and model.config.labels_num == 3
    ref = np.load(os.path.join(src, "reference.npz"))
    ids, mask = torch.from_numpy(ref["input_ids"]), torch.from_numpy(ref["attention_mask"])
    seg = (torch.from_numpy(ref["token_type_ids"]) + 1) * mask
    with torch.no_grad():
        logits = model.target_logits(model.encode(ids, seg), seg)["cls"]
    expect = ref["pooler_output"] @ arrays["classifier.weight"] + arrays["classifier.bias"]
    assert (logits - torch.from_numpy(expect)).abs().max().item() <= TOL


def test_paddle_config_with_only_what_differs_from_the_defaults(tmp_path):
    """Sizes a config leaves out (PaddleNLP's defaults at save time) are read off the weights."""
    src = _fixture("ernie_paddle")
    d = _copy(src, tmp_path / "diff")
    cfg = json.load(open(os.path.join(src, "config.json")))
    for k in ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "max_position_embeddings",
              "type_vocab_size"):
        del cfg[k]
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    _check_reference(load_model(d), src)


def test_the_weights_file_of_a_release_loads_too():
    for name, weights in (("bert_ptzip", "pytorch_model.bin"), ("ernie_paddle", "model_state.pdparams")):
        d = _fixture(name)
        f = os.path.join(d, weights)
        assert detect_format(f) == detect_format(d)
        model = load_model(f)
        assert model.load_info.vocab_path == os.path.join(d, "vocab.txt")
        _check_reference(model, d)


# ---------------------------------------------------------------------------------------------- detection
def test_paddlenlp_config_with_model_type_is_read_as_paddle_not_hf(tmp_path):
    d = _fixture("ernie_paddle")
    assert json.load(open(os.path.join(d, "config.json")))["model_type"] == "ernie"
    assert detect_format(d) == "paddle"
    # without the .pdparams it is a Hugging Face directory (and one without weights)
    hf = _copy(d, tmp_path / "hf", skip=("model_state.pdparams",))
    assert detect_format(hf) == "hf"


def test_pt_zip_detection_leaves_other_directories_alone(tmp_path):
    d = tmp_path / "uer"
    d.mkdir()
    torch.save({"embedding.word.embedding.weight": torch.zeros(2, 2)}, d / "pytorch_model.bin")
    (d / "config.json").write_text(json.dumps({"emb_size": 2, "layers_num": 1}))  # a UER-format config
    assert detect_format(str(d)) == "uer"
    (d / "config.json").write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 1}))
    assert detect_format(str(d)) == "hf"
    (d / "config.json").write_text(json.dumps({"n_layer": 1, "n_embd": 2}))  # transformers 2.x, no model_type
    assert detect_format(str(d)) == "pt-zip"


# ---------------------------------------------------------------------------------------------- other families
def _small_cases():
    T = pytest.importorskip("transformers")
    small = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 max_position_embeddings=64)
    return {
        "bert": (lambda: T.BertForPreTraining(T.BertConfig(**small)), "prediction_logits"),
        "roberta": (lambda: T.RobertaForMaskedLM(T.RobertaConfig(type_vocab_size=1, **small)), "logits"),
        "albert": (lambda: T.AlbertForMaskedLM(T.AlbertConfig(embedding_size=16, **small)), "logits"),
        "electra": (lambda: T.ElectraForPreTraining(T.ElectraConfig(embedding_size=16, **small)), "logits"),
        "gpt2": (lambda: T.GPT2LMHeadModel(T.GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4,
                                                        n_positions=64)), "logits"),
    }


@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "electra", "gpt2"])
def test_config_json_without_model_type_family_from_names(family, tmp_path, caplog):
    """transformers 2.x era: config.json without model_type beside pytorch_model.bin; the family comes from the
    parameter names (and is said in the log)."""
    make, attr = _small_cases()[family]
    torch.manual_seed(0)
    hf_model = make().eval()
    d = tmp_path / family
    d.mkdir()
    cfg = hf_model.config.to_dict()
    cfg.pop("model_type")
    (d / "config.json").write_text(json.dumps(cfg))
    torch.save({k: v for k, v in hf_model.state_dict().items()}, d / "pytorch_model.bin")
    assert detect_format(str(d)) == "pt-zip"
    with caplog.at_level(logging.INFO, logger="uer_like"):
        model = load_model(str(d)).eval()
    assert f"read as Hugging Face {family}" in caplog.text
    ids = torch.randint(5, 99, (2, 10), generator=torch.Generator().manual_seed(1))
    seg = torch.ones_like(ids)
    with torch.no_grad():
        out = hf_model(input_ids=ids)
        logits = model.target_logits(model.encode(ids, seg), seg)
    name = {"gpt2": "lm", "electra": "electra_disc"}.get(family, "mlm")
    assert (logits[name] - getattr(out, attr)).abs().max().item() <= TOL


# ---------------------------------------------------------------------------------------------- safety
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pdparams_with_a_code_executing_payload_is_refused(tmp_path, monkeypatch):
    src = _fixture("ernie_paddle")
    d = _copy(src, tmp_path / "evil", skip=("model_state.pdparams",))
    marker = tmp_path / "pwned"
    state = {"ernie.embeddings.word_embeddings.weight": np.zeros((2, 2), np.float32), "x": _Payload(str(marker))}
    with open(os.path.join(d, "model_state.pdparams"), "wb") as f:
        pickle.dump(state, f, protocol=4)
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("plain pickle.load used"))
    with pytest.raises(CheckpointError, match="refused to load") as e:
        load_model(d)
    msg = str(e.value)
    assert "\n" not in msg and "model_state.pdparams" in msg and "system" in msg
    assert not marker.exists()


@pytest.mark.parametrize("proto", [0, 2, 4])
def test_pdparams_admits_only_numpy_reconstruction(tmp_path, proto):
    p = tmp_path / "x.pdparams"
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    p.write_bytes(pickle.dumps({"a": a, "b": torch.nn.Linear}, protocol=proto))
    with pytest.raises(CheckpointError, match=r"x\.pdparams: refused to load: .*torch"):
        paddlefmt.load_pdparams(str(p))
    p.write_bytes(pickle.dumps({"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, protocol=proto))
    assert paddlefmt.load_pdparams(str(p))["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    p.write_bytes(pickle.dumps({"a": "text"}, protocol=proto))
    with pytest.raises(CheckpointError, match="not an array"):
        paddlefmt.load_pdparams(str(p))
    p.write_bytes(pickle.dumps({"a": _Codec()}, protocol=proto))  # _codecs.encode only for latin-1 bytes
    with pytest.raises(CheckpointError, match=r"x\.pdparams: refused to load: .*_codecs"):
        paddlefmt.load_pdparams(str(p))


class _Codec:
    def __reduce__(self):
        import _codecs

        return (_codecs.encode, ("text", "rot13"))


def test_pytorch_zip_bin_with_a_payload_is_refused(tmp_path):
    src = _fixture("bert_ptzip")
    d = _copy(src, tmp_path / "evil", skip=("pytorch_model.bin",))
    marker = tmp_path / "pwned"
    torch.save({"bert.embeddings.word_embeddings.weight": torch.zeros(2, 2), "x": _Payload(str(marker))},
               os.path.join(d, "pytorch_model.bin"), _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="refused to load") as e:
        load_model(d)
    assert "\n" not in str(e.value) and "pytorch_model.bin" in str(e.value)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- mismatches
def test_vocab_that_does_not_match_the_weights_is_one_line_naming_both(tmp_path):
    src = _fixture("bert_ptzip")
    d = _copy(src, tmp_path / "vocab")
    with open(os.path.join(d, "vocab.txt"), "a", encoding="utf-8") as f:
        f.write("[extra1]\n[extra2]\n")
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    msg = str(e.value)
    assert "\n" not in msg and os.path.join(d, "vocab.txt") in msg and "21130 tokens" in msg and "21128 rows" in msg


@pytest.mark.parametrize("key,value,shown", [("vocab_size", 21000, "21128"), ("hidden_size", 128, "64"),
                                             ("num_hidden_layers", 3, "2")])
@pytest.mark.parametrize("name,config", [("bert_ptzip", "bert_config.json"), ("ernie_paddle", "config.json")])
def test_config_that_does_not_match_the_weights_is_one_line_naming_both(name, config, key, value, shown, tmp_path):
    src = _fixture(name)
    d = _copy(src, tmp_path / "cfg")
    p = os.path.join(d, config)
    cfg = json.load(open(p))
    cfg[key] = value
    json.dump(cfg, open(p, "w"))
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    msg = str(e.value)
    weights = "pytorch_model.bin" if name == "bert_ptzip" else "model_state.pdparams"
    assert "\n" not in msg and p in msg and weights in msg and str(value) in msg and shown in msg, msg
