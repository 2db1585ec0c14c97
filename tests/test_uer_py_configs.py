"""Every model config UER-py shipped (vendored in tests/data/uer_py_configs, see its README) loads and builds,
or fails with one line naming a model family uer_like does not have."""
import functools
import glob
import json
import os

import pytest
import torch

from uer_like.config import load_config
from uer_like.errors import ConfigError
from uer_like.model import Model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "data", "uer_py_configs")
FILES = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "*", "models", "**", "*.json"),
                                                               recursive=True))

# Families uer_like does not have, by path: gatedcnn, synthesizer, dual-stream, and the seq2seq configs of 2021
# (a938704), whose t5 / bart / gsg targets held the decoder (since 2022: `decoder: transformer`, which loads).
UNSUPPORTED = ("a938704/models/t5/", "a938704/models/t5-v1_1/", "a938704/models/bart/", "a938704/models/pegasus/",
               "a938704/models/encoder_decoder_config", "088d94e/models/encoder_decoder_config", "/sbert/", "siamese_lstm", "gatedcnn", "cnn_config", "synt_dense")
SEQ2SEQ = ("/t5/", "/t5-v1_1/", "/bart/", "/pegasus/", "/transformer/", "encoder_decoder_config")
INVALID_JSON = {"7c1f731/models/megatron/bert_3.9B_config.json"}  # a trailing comma, as shipped

# Configs without embedding/encoder/target keys took them from command-line flags; these are the flags
# UER-py's README of the time gave with them (and what ALBERT needed then).
FLAT_FLAGS = {
    "albert": dict(target="albert", factorized_embedding_parameterization=True, parameter_sharing=True),
    "rnn_config.json": dict(embedding="word", encoder="lstm", target="lm"),
    "birnn_config.json": dict(embedding="word", encoder="bilstm", target="bilm"),
    "encoder_decoder_config.json": dict(encoder="transformer", decoder="transformer", target="seq2seq"),
}


def flags_for(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        try:
            d = json.load(f)
        except ValueError:
            return {}
    if any(k in d for k in ("embedding", "encoder", "target")):
        return {}
    for key, flags in FLAT_FLAGS.items():
        if key in os.path.basename(rel):
            return flags
    return {}


def test_the_vendored_configs_are_all_there():
    commits = {f.split(os.sep)[0] for f in FILES}
    assert commits == {"5743050", "7c1f731", "a938704", "088d94e"}
    assert len(FILES) > 140


@pytest.mark.parametrize("rel", FILES)
def test_uer_py_config_loads_and_builds_or_names_its_family(rel):
    path = os.path.join(ROOT, rel)
    if rel in INVALID_JSON:
        with pytest.raises(ConfigError, match="not valid JSON"):
            load_config(path)
        return
    flags = flags_for(rel)
    if any(u in "/" + rel for u in UNSUPPORTED):
        with pytest.raises(ConfigError) as e:
            load_config(path, **flags)
        msg = str(e.value)
        assert "model family is not supported" in msg and "\n" not in msg, msg
        return
    cfg = load_config(path, **flags)
    n_params, n_attn = built(json.dumps(cfg.to_dict(), sort_keys=True))
    assert n_params > 0
    assert (cfg.decoder == "transformer") == any(u in "/" + rel for u in SEQ2SEQ)
    if cfg.decoder is not None:  # encoder and decoder self-attention
        assert n_attn == cfg.layers_num + (cfg.decoder_layers_num or cfg.layers_num)
    elif cfg.encoder == "transformer":
        assert n_attn == (1 if cfg.parameter_sharing else cfg.layers_num)


@functools.lru_cache(maxsize=None)
def built(cfg_json):
    """Build once per distinct config (many files repeat across commits), on the meta device (no memory)."""
    cfg = load_config(json.loads(cfg_json))
    with torch.device("meta"):
        model = Model(cfg, 21128)
    return (sum(p.numel() for p in model.parameters()),
            len([k for k in model.state_dict() if k.endswith("self_attn.qkv.weight")]))


def test_bert_base_of_every_era_is_the_same_model():
    """`"target": "bert"` (2021), `["mlm", "sp"]` with "word_pos_seg" (2023) and the lists (2024) agree."""
    cfgs = [load_config(os.path.join(ROOT, c, "models", "bert", "base_config.json"))
            for c in ("a938704", "7c1f731", "5743050")]
    flat = load_config(os.path.join(ROOT, "088d94e", "models", "bert_base_config.json"))
    keys = ("embedding", "encoder", "target", "layers_num", "hidden_size", "heads_num", "feedforward_size", "mask")
    for c in cfgs + [flat]:
        assert {k: getattr(c, k) for k in keys} == {k: getattr(cfgs[-1], k) for k in keys}


def test_legacy_strings_map_to_components():
    c = load_config({"embedding": "word_sinusoidalpos", "encoder": "transformer", "target": "lm",
                     "hidden_size": 64, "emb_size": 64, "heads_num": 2, "feedforward_size": 64})
    assert c.embedding == ["word", "sinusoidalpos"] and c.remove_embedding_layernorm and c.target == ["lm"]
    assert c.data_processor == "lm"
    c = load_config({"embedding": "word_pos", "encoder": "gpt", "target": "lm"})  # 2020: GptEncoder
    assert c.encoder == "transformer" and c.mask == "causal" and c.embedding == ["word", "pos"]
    c = load_config({"target": "albert", "emb_size": 128, "factorized_embedding_parameterization": True})
    assert c.target == ["mlm", "sp"] and c.data_processor == "albert"


def test_training_keys_are_accepted_and_unimplemented_keys_are_errors():
    c = load_config("bert/tiny_config.json", learning_rate=1e-4, seq_length=128, vocab_path="x.txt",
                    span_masking=False)
    assert c.layers_num == 2
    assert load_config("bert/tiny_config.json", span_masking=True).masking_strategy == "span"  # implemented now
    for key, value in (("has_residual_attention", True), ("dynamic_masking", True)):
        with pytest.raises(ConfigError) as e:
            load_config("bert/tiny_config.json", **{key: value})
        assert f"'{key}'" in str(e.value) and "\n" not in str(e.value)
