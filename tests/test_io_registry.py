"""io/ as registries: the checkpoint formats are registered modules (uer_like/io/formats/), the CLI choices come
from the registry, and a new format is one file (tests/toy_format.py) that load_model / save_model / convert.py
use without any other change; a loaded model carries one declared LoadInfo."""
import importlib
import os
import sys

import pytest
import torch

from uer_like.io import detect_format, load_model, save_model
from uer_like.io import formats
from uer_like.model import build_model
from uer_like.registry import FORMATS

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TINY = dict(emb_size=32, hidden_size=32, layers_num=2, heads_num=4, feedforward_size=37, max_seq_length=64)


@pytest.fixture
def toy():
    """The toy format registered for one test, and unregistered after it."""
    sys.path.insert(0, HERE)
    try:
        mod = importlib.import_module("toy_format")
        if "toy" not in FORMATS:  # imported (and unregistered) by an earlier test
            formats.register_format(mod.FORMAT)
        yield mod
    finally:
        FORMATS.unregister("toy")
        sys.path.remove(HERE)


@pytest.fixture
def toy_family():
    """The toy family registered for one test, and unregistered after it."""
    from uer_like.registry import HF_FAMILIES

    sys.path.insert(0, HERE)
    try:
        mod = importlib.import_module("toy_family")
        if "toy" not in HF_FAMILIES:
            from uer_like.io.families import register_family

            register_family(mod.FAMILY)
        yield mod
    finally:
        HF_FAMILIES.unregister("toy")
        sys.path.remove(HERE)


def _tiny(target="mlm"):
    torch.manual_seed(0)
    return build_model("bert/base_config.json", vocab_size=50, target=[target], **TINY).eval()


def test_built_in_formats_are_registered_in_detection_order():
    assert [f.name for f in formats.formats()] == ["zen", "paddle", "pt-zip", "hf", "tf", "safetensors", "uer"]
    assert formats.writable() == ["hf", "safetensors", "uer"]


def _script(name):
    for d in (ROOT, os.path.join(ROOT, "scripts")):
        if os.path.isfile(os.path.join(d, name + ".py")):
            sys.path.insert(0, d)
            try:
                return importlib.import_module(name)
            finally:
                sys.path.remove(d)
    raise FileNotFoundError(name)


def test_the_cli_choices_are_the_registry(toy):
    convert, pretrain = _script("convert"), _script("pretrain")

    def choices(parser, flag):
        return next(a.choices for a in parser._actions if flag in a.option_strings)

    assert "toy" in choices(convert.build_parser(), "--to")
    assert list(choices(pretrain.build_parser(), "--output_format")) == formats.writable()
    assert "toy" in formats.writable()


def test_a_toy_format_in_one_file_is_detected_written_and_read(toy, tmp_path):
    model = _tiny()
    path = str(tmp_path / "m.toy")
    assert save_model(model, path) == path  # the format inferred from the toy's suffix
    assert os.path.isfile(path) and detect_format(path) == "toy"
    again = load_model(path)
    assert again.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    info = again.load_info
    assert isinstance(info, formats.LoadInfo)
    assert (info.format, info.path, info.names, info.layout) == ("toy", path, "uer", "uer")
    assert info.missing == [] and info.unexpected == [] and info.family is None
    # convert.py takes it both ways, with the built-in formats
    convert = _script("convert")
    assert convert.main(["--input", path, "--output", str(tmp_path / "c.safetensors"), "--to", "safetensors"]) == 0
    assert convert.main(["--input", str(tmp_path / "c.safetensors"), "--output", str(tmp_path / "c"),
                         "--to", "toy"]) == 0  # the format named: written at the path as given
    assert detect_format(str(tmp_path / "c")) == "uer"  # no .toy suffix: its detect does not claim it
    back = load_model(str(tmp_path / "c.safetensors"))
    assert back.load_info.format == "safetensors"
    for k, v in model.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k


def test_an_unregistered_format_is_refused_with_the_registered_ones(tmp_path):
    from uer_like import ConfigError

    with pytest.raises(ConfigError, match="unknown format 'toy'; valid: hf, safetensors, uer"):
        save_model(_tiny(), str(tmp_path / "m.toy"), format="toy")


def test_load_info_is_declared_and_tells_where_a_model_came_from(tmp_path):
    model = _tiny()
    assert model.load_info is None
    save_model(model, str(tmp_path / "m.bin"))
    info = load_model(str(tmp_path / "m.bin")).load_info
    assert (info.format, info.names, info.layout, info.hf_config) == ("uer", "uer", "uer", None)
    save_model(model, str(tmp_path / "hf"), vocab=None)
    info = load_model(str(tmp_path / "hf")).load_info
    assert (info.format, info.names, info.family, info.layout) == ("hf", "hf", "bert", None)
    assert info.hf_config["model_type"] == "bert" and info.tokenizer_dir == str(tmp_path / "hf")
    # one weights file of a Hugging Face directory, beside its config.json: Hugging Face names, reported "hf"
    info = load_model(str(tmp_path / "hf" / "model.safetensors")).load_info
    assert (info.format, info.names, info.family) == ("hf", "hf", "bert")


def test_hugging_face_families_are_registered_modules():
    from uer_like import ConfigError
    from uer_like.io import families, hf

    assert {"albert", "bart", "bert", "distilbert", "electra", "ernie", "gpt2", "megatron-bert", "mpnet", "mt5", "nezha",
            "openai-gpt", "pegasus", "roberta", "roformer", "t5", "xlm-roberta", "xlnet"} <= set(families.names())
    bert = families.get("bert")
    assert (bert.base_prefix, bert.class_prefix, bert.other_prefixes) == ("bert", "Bert", ("ernie.",))
    assert bert.architecture({"mlm", "sp"}) == "BertForPreTraining"
    assert families.get("nezha").architecture({"cls"}) == "NezhaForSequenceClassification"
    assert hf.targets_from_keys("roberta", ["lm_head.dense.weight", "pooler.dense.weight"]) == ["mlm", "pooler"]
    with pytest.raises(ConfigError, match="model_type 'toy' is not supported; supported: albert, bart, bert, distilbert"):
        hf.family_of({"model_type": "toy"})


def test_a_toy_family_in_one_file_exports_and_loads(toy_family, tmp_path):
    """A family with its own names and config keys, registered from one file, goes through save_hf and load_model."""
    import json

    from safetensors import safe_open

    from uer_like.io import save_hf

    torch.manual_seed(0)
    model = build_model("gpt2/tiny_config.json", vocab_size=50, layers_num=2).eval()
    out = save_hf(model, str(tmp_path / "toy"), family="toy")
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "toy" and cfg["architectures"] == ["ToyLMHeadModel"]
    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "toy_model.toy_wte.weight" in keys and "toy_model.toy_h.0.attn.c_attn.weight" in keys
    again = load_model(out)
    assert again.load_info.family == "toy" and again.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
