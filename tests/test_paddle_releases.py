"""PaddleNLP releases of each family load with `load_model(dir)` (no config argument) and reproduce the outputs
PaddleNLP computes from the same files. The fixtures in tests/data/paddle_releases were written by PaddleNLP
2.8.1's save_pretrained (see their README.md and make_paddle_releases.py)."""
import json
import logging
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from uer_like import CheckpointError, ConfigError
from uer_like.io import detect_format, load_model, save_model
from uer_like.io import paddle as paddlefmt

TOL = 1e-5
DATA = os.path.join(os.path.dirname(__file__), "data", "paddle_releases")

# fixture: (PaddleNLP family read, Hugging Face family built, the heads in reference.npz -> uer_like target)
CASES = {
    "ernie_1.0": ("ernie", "ernie", {"mlm": "mlm"}),
    "ernie_gram": ("ernie_gram", "bert", {"cls": "cls"}),
    "roformer": ("roformer", "roformer", {"mlm": "mlm"}),
    "nezha": ("nezha", "nezha", {"mlm": "mlm", "nsp": "sp"}),
    "electra": ("electra", "electra", {"disc": "electra_disc"}),
    "ppminilm": ("ppminilm", "bert", {"cls": "cls"}),
    "skep": ("skep", "bert", {"cls": "cls"}),
    "bert": ("bert", "bert", {"mlm": "mlm", "nsp": "sp"}),
    "roberta": ("roberta", "roberta", {"mlm": "mlm"}),
    "tinybert": ("tinybert", "bert", {"pooler": "pooler"}),
    "electra_generator": ("electra", "electra", {"mlm": "electra_gen"}),
    "roberta_cls": ("roberta", "roberta", {"cls": "cls"}),
    "ernie_m": ("ernie_m", "roberta", {"cls": "cls"}),
}


def _check(model, ref, heads):
    ids = torch.from_numpy(ref["input_ids"])
    mask = torch.from_numpy(ref["attention_mask"])
    seg = (torch.from_numpy(ref["token_type_ids"]) + 1) * mask
    keep = mask.bool()
    model.eval()
    with torch.no_grad():
        hidden = model.encode(ids, seg)
        logits = model.target_logits(hidden, seg)
    diffs = {"hidden": (hidden - torch.from_numpy(ref["last_hidden_state"]))[keep].abs().max().item()}
    pos = torch.from_numpy(ref["mlm_positions"])
    for head, target in heads.items():
        got, want = logits[target], torch.from_numpy(ref[f"{head}_logits" if head != "pooler" else "pooler_output"])
        if head == "mlm":
            got, m = got[:, pos], keep[:, pos]
            diffs[head] = (got - want)[m].abs().max().item()
        elif head == "disc":
            diffs[head] = (got.reshape(want.shape) - want)[keep].abs().max().item()
        else:
            diffs[head] = (got - want).abs().max().item()
    if "pooler" in logits and "pooler_output" in ref:  # the base model's pooler, where the model keeps it
        diffs["pooler"] = (logits["pooler"] - torch.from_numpy(ref["pooler_output"])).abs().max().item()
    for k, v in diffs.items():
        assert v <= TOL, f"{k}: max abs diff {v}"
    return diffs


@pytest.mark.parametrize("name", sorted(CASES))
def test_paddlenlp_release_reproduces_its_reference(name, caplog):
    d = os.path.join(DATA, name)
    family, hf_family, heads = CASES[name]
    assert detect_format(d) == "paddle"
    with caplog.at_level(logging.INFO, logger="uer_like"):
        model = load_model(d)
    assert model.load_info.format == "paddle" and model.load_info.family == hf_family
    assert f"a PaddleNLP {family} release" in caplog.text  # the family told, and how, is said
    assert model.load_info.vocab_path == os.path.join(d, "vocab.txt")
    assert set(heads.values()) <= set(model.config.target)
    ref = np.load(os.path.join(d, "reference.npz"))
    _check(model, ref, heads)


@pytest.mark.parametrize("name", ["nezha", "roformer", "electra_generator", "ernie_m"])
def test_read_releases_export_as_hugging_face_and_load_back(name, tmp_path):
    """What a PaddleNLP release is read as is a model transformers' family represents: it saves as a Hugging Face
    directory that loads back identically."""
    model = load_model(os.path.join(DATA, name))
    again = load_model(save_model(model, str(tmp_path / name), format="hf"))
    assert again.load_info.family == model.load_info.family and again.config.target == model.config.target
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


@pytest.mark.parametrize("name,base", [("nezha", "NeZhaModel"), ("electra", "ElectraModel"),
                                       ("roformer", "RoFormerModel"), ("ernie_m", "ErnieMModel"), ("skep", "SkepModel")])
def test_bare_base_model(name, base, tmp_path):
    """<Family>Model.save_pretrained writes the base model's names without its prefix (`encoder.layer.0...`)."""
    src = os.path.join(DATA, name)
    d = _copy(src, tmp_path / "bare")
    arrays = paddlefmt.load_pdparams(os.path.join(d, "model_state.pdparams"))
    bare = {k[len(name) + 1:]: v for k, v in arrays.items() if k.startswith(name + ".")}
    with open(os.path.join(d, "model_state.pdparams"), "wb") as f:
        pickle.dump(bare, f, protocol=4)
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg["architectures"] = [base]
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    model = load_model(d)
    assert model.load_info.family == CASES[name][1]
    _check(model, np.load(os.path.join(src, "reference.npz")), {})


def test_layer_norm_eps_is_the_familys_not_the_configs():
    """ERNIE-Gram and SKEP run with 1e-5 (their _init_weights), ERNIE-M with Paddle's default 1e-5, ERNIE and
    NEZHA with 1e-12, whatever the config says; the others with the config's layer_norm_eps."""
    want = {"ernie_gram": 1e-5, "skep": 1e-5, "ernie_m": 1e-5, "ernie_1.0": 1e-12, "nezha": 1e-12, "bert": 1e-12,
            "electra": 1e-12}
    for name, eps in want.items():
        assert load_model(os.path.join(DATA, name)).config.layernorm_eps == eps, name


def _copy(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def test_config_layer_norm_eps_is_followed_where_paddlenlp_follows_it(tmp_path):
    d = _copy(os.path.join(DATA, "bert"), tmp_path / "bert")
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg["layer_norm_eps"] = 1e-5
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    assert load_model(d).config.layernorm_eps == 1e-5
    d = _copy(os.path.join(DATA, "skep"), tmp_path / "skep")
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg["layer_norm_eps"] = 1e-12
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    assert load_model(d).config.layernorm_eps == 1e-5


def test_family_from_init_class_and_from_names(tmp_path):
    """Without model_type: the class name (longest prefix: ErnieGram, not Ernie), then the parameter names."""
    src = os.path.join(DATA, "ernie_gram")
    ref = np.load(os.path.join(src, "reference.npz"))
    d = _copy(src, tmp_path / "by_class")
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg.pop("model_type")
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    model = load_model(d)
    assert model.config.layernorm_eps == 1e-5
    _check(model, ref, {"cls": "cls"})
    cfg.pop("architectures")
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    model = load_model(d)
    assert model.config.layernorm_eps == 1e-5
    _check(model, ref, {"cls": "cls"})


def test_roberta_before_paddlenlp_2_5_has_bert_positions(tmp_path):
    """model_config.json (the older PaddleNLP that wrote it): Chinese RoBERTa (cls_token_id 101) numbered
    positions from 0 as BERT; config.json (PaddleNLP 2.8, the fixture) from pad_token_id + 1."""
    src = os.path.join(DATA, "roberta")
    d = _copy(src, tmp_path / "old")
    cfg = json.load(open(os.path.join(d, "config.json")))
    os.remove(os.path.join(d, "config.json"))
    arch = cfg.pop("architectures")[0]
    cfg.pop("model_type")
    cfg["init_class"] = "RobertaModel"
    json.dump({"init_args": [cfg], "init_class": arch}, open(os.path.join(d, "model_config.json"), "w"))
    old = load_model(d)
    new = load_model(src)
    assert old.load_info.family == "bert" and new.load_info.family == "roberta"
    assert old.config.position_offset == 0 and new.config.position_offset == 1
    ids = torch.tensor([[101, 200, 201, 102]])
    seg = torch.ones_like(ids)
    with torch.no_grad():
        a, b = old.eval().encode(ids, seg), new.eval().encode(ids, seg)
    assert not torch.allclose(a, b, atol=1e-3)


def test_unknown_scheme_is_refused_in_one_line(tmp_path):
    src = os.path.join(DATA, "bert")
    d = _copy(src, tmp_path / "llama")
    arrays = {"llama.layers.0.self_attn.q_proj.weight": np.zeros((2, 2), np.float32),
              "llama.embed_tokens.weight": np.zeros((4, 2), np.float32)}
    with open(os.path.join(d, "model_state.pdparams"), "wb") as f:
        pickle.dump(arrays, f, protocol=4)
    cfg = json.load(open(os.path.join(d, "config.json")))
    for mt in ("llama", None):
        if mt:
            cfg.update(model_type=mt, architectures=["LlamaForCausalLM"])
        else:
            cfg.pop("model_type")
            cfg.pop("architectures")
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
        with pytest.raises(ConfigError) as e:
            load_model(d)
        msg = str(e.value)
        assert "\n" not in msg and "llama.embed_tokens.weight" in msg and "ernie_gram" in msg and "nezha" in msg


def test_known_model_type_with_names_of_another_scheme_is_refused(tmp_path):
    """config says NEZHA, the names are paddle.nn.TransformerEncoder's: refused, naming both."""
    src = os.path.join(DATA, "nezha")
    d = _copy(src, tmp_path / "mixed")
    arrays = paddlefmt.load_pdparams(os.path.join(os.path.join(DATA, "bert"), "model_state.pdparams"))
    arrays = {("nezha." + k[len("bert."):]) if k.startswith("bert.") else k: v for k, v in arrays.items()}
    with open(os.path.join(d, "model_state.pdparams"), "wb") as f:
        pickle.dump(arrays, f, protocol=4)
    with pytest.raises(ConfigError, match=r"model_type 'nezha'.*no parameter has its layer names") as e:
        load_model(d)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["nezha", "skep"])
def test_pooled_classifier_of_a_pretraining_release(name, tmp_path):
    """*ForSequenceClassification of the BERT-shaped families: `classifier` (a paddle Linear, [in, out]) over the
    pooled output. Made from the fixture by replacing its heads with a classifier."""
    src = os.path.join(DATA, name)
    d = _copy(src, tmp_path / "cls")
    arrays = paddlefmt.load_pdparams(os.path.join(d, "model_state.pdparams"))
    arrays = {k: v for k, v in arrays.items() if k.startswith(name + ".")}
    g = np.random.RandomState(0)
    arrays["classifier.weight"] = g.randn(32, 2).astype(np.float32)
    arrays["classifier.bias"] = g.randn(2).astype(np.float32)
    with open(os.path.join(d, "model_state.pdparams"), "wb") as f:
        pickle.dump(arrays, f, protocol=4)
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg.update(architectures=[cfg["architectures"][0].split("For")[0] + "ForSequenceClassification"], num_classes=2)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    model = load_model(d).eval()
    assert model.config.target == ["cls"] and model.config.labels_num == 2
    ref = np.load(os.path.join(src, "reference.npz"))
    expect = ref["pooler_output"] @ arrays["classifier.weight"] + arrays["classifier.bias"]
    _check(model, ref, {})
    ids, mask = torch.from_numpy(ref["input_ids"]), torch.from_numpy(ref["attention_mask"])
    seg = (torch.from_numpy(ref["token_type_ids"]) + 1) * mask
    with torch.no_grad():
        logits = model.target_logits(model.encode(ids, seg), seg)["cls"]
    assert (logits - torch.from_numpy(expect)).abs().max().item() <= TOL


@pytest.mark.parametrize("arch", ["ErnieGramForTokenClassification", "ErnieGramForQuestionAnswering"])
def test_per_token_heads_are_not_read_as_a_sequence_classifier(arch, tmp_path, caplog):
    """A token classifier's `classifier` has the shape of a sequence classifier's; it is dropped (said), never
    loaded as the pooled cls head."""
    src = os.path.join(DATA, "ernie_gram")
    d = _copy(src, tmp_path / "tok")
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg["architectures"] = [arch]
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    with caplog.at_level(logging.WARNING, logger="uer_like"):
        model = load_model(d)
    assert "cls" not in model.config.target and "classifier.weight" in caplog.text and arch in caplog.text
    _check(model, np.load(os.path.join(src, "reference.npz")), {})


def test_tinybert_distillation_projections_are_dropped_and_said(caplog):
    with caplog.at_level(logging.INFO, logger="uer_like"):
        model = load_model(os.path.join(DATA, "tinybert"))
    assert "fit_dense" in caplog.text and not model.load_info.unexpected


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("name", sorted(CASES))
def test_code_executing_payload_refused_on_every_family_path(name, tmp_path, monkeypatch):
    """The restricted unpickler stands before any family's names are looked at."""
    d = _copy(os.path.join(DATA, name), tmp_path / "evil")
    arrays = paddlefmt.load_pdparams(os.path.join(d, "model_state.pdparams"))
    marker = tmp_path / "pwned"
    arrays["x"] = _Payload(str(marker))
    with open(os.path.join(d, "model_state.pdparams"), "wb") as f:
        pickle.dump(arrays, f, protocol=4)
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("plain pickle.load used"))
    with pytest.raises(CheckpointError, match="refused to load") as e:
        load_model(d)
    assert "\n" not in str(e.value) and "system" in str(e.value)
    assert not marker.exists()
