"""The PyTorch-zip layout of pre-2020 releases: a directory with `pytorch_model.bin` and Google's
`bert_config.json` (no `model_type`), or a `config.json` without `model_type` (the pytorch-transformers /
transformers 2.x era: GPT2-Chinese, CDial-GPT, early ports), plus `vocab.txt`. HFL's Chinese-BERT-wwm / RoBERTa-wwm-ext /
RBT3 / MacBERT PyTorch downloads, brightmart roberta_zh, the CLUE RoBERTa models and many domain BERTs.

`detect(path)` says whether a directory is one; `read(path)` returns its Hugging Face form `(hf_config, state)`:
the config with the `model_type` read off the parameter names (logged, with the reason), LayerNorm
`gamma` / `beta` (pytorch-pretrained-BERT, 2018-2019) renamed to `weight` / `bias`. The Hugging Face loader
(io/hf.py) does the rest, so that nothing about BERT is written twice. The weights are read as every torch
file is (io/safe.py: the pickle is scanned, then loaded with weights_only).
"""
import logging
import os
import re

import torch

from ..config import read_json
from ..errors import CheckpointError, ConfigError
from .safe import read_tensor_file

logger = logging.getLogger("uer_like")

WEIGHTS = "pytorch_model.bin"
GOOGLE_CONFIG = "bert_config.json"
# keys only Google's TF BERT config has (the model never reads them)
_GOOGLE_ONLY = ("directionality", "pooler_fc_size", "pooler_num_attention_heads", "pooler_num_fc_layers",
                "pooler_size_per_head", "pooler_type")
# a config.json of this era has transformers' key names; a UER-format config.json (layers_num, heads_num, ...)
# is not one
_HF_SIZE_KEYS = ("num_hidden_layers", "n_layer")


def _config_file(path):
    """The release's config: bert_config.json, else a config.json without model_type with transformers' names."""
    p = os.path.join(path, GOOGLE_CONFIG)
    if os.path.isfile(p):
        return p
    p = os.path.join(path, "config.json")
    if os.path.isfile(p):
        try:
            cfg = read_json(p)
        except ConfigError:
            return None
        if isinstance(cfg, dict) and "model_type" not in cfg and any(k in cfg for k in _HF_SIZE_KEYS):
            return p
    return None


def _release_dir(path):
    """The release directory of `path`: the directory itself, or the one holding a pytorch_model.bin given."""
    if os.path.isfile(path) and os.path.basename(path) == WEIGHTS:
        return os.path.dirname(os.path.abspath(path))
    return path


def detect(path):
    """A directory with pytorch_model.bin and bert_config.json, or a config.json without model_type, and no
    other known format (a PaddleNLP release or a Hugging Face directory, whose config.json has a model_type);
    or that pytorch_model.bin."""
    path = _release_dir(path)
    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, WEIGHTS)):
        return False
    if os.path.isfile(os.path.join(path, "model_state.pdparams")):
        return False
    hf = os.path.join(path, "config.json")
    if os.path.isfile(hf):
        try:
            cfg = read_json(hf)
        except ConfigError:
            cfg = None
        if isinstance(cfg, dict) and "model_type" in cfg:
            return False
    return _config_file(path) is not None


# ---------------------------------------------------------------------------------------------- families
def _strip(k):
    for p in ("bert.", "roberta.", "albert.", "electra.", "ernie.", "transformer."):
        if k.startswith(p):
            return p[:-1], k[len(p):]
    return None, k


def infer_family(keys):
    """(model_type, why) from a state dict's parameter names."""
    keys = list(keys)
    prefixes = {_strip(k)[0] for k in keys} - {None}

    def has(part):
        return next((k for k in keys if part in k), None)

    k = has("albert_layer_groups")
    if k or "albert" in prefixes:
        return "albert", f"ALBERT's shared layer group ({k or 'the albert. prefix'})"
    k = has("discriminator_predictions") or has("generator_predictions")
    if k or "electra" in prefixes:
        return "electra", f"ELECTRA's names ({k or 'the electra. prefix'})"
    k = has("lm_head.dense.")
    if k or "roberta" in prefixes:
        return "roberta", f"RoBERTa's names ({k or 'the roberta. prefix'})"
    k = has("tokens_embed.weight") or has("positions_embed.weight")
    if k:  # before GPT-2: the same block names
        return "openai-gpt", f"OpenAI GPT's names ({k})"
    k = has(".attn.c_attn.") or has("wte.weight")
    if k:
        return "gpt2", f"GPT-2's names ({k})"
    k = has("embeddings.task_type_embeddings")
    if k:
        return "ernie", f"ERNIE's task-type embeddings ({k})"
    k = has("attention.self.query.")
    if k and has("embeddings.word_embeddings."):
        why = "BERT's names (bert.embeddings..., encoder.layer.N.attention.self.query)"
        return "bert", why
    if any(k.startswith(("embedding.", "encoder.transformer.", "target.")) for k in keys):
        raise CheckpointError("UER-format parameter names (embedding..., encoder.transformer...), not a PyTorch "
                              "release: put the UER config beside it as config.json (UER's form), or give the file "
                              "another name and load it with load_model(FILE, config=...)")
    raise CheckpointError("the parameter names match no known family (bert, roberta, albert, electra, ernie, gpt2, "
                          "openai-gpt): "
                          + ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else ""))


def _rename_layer_norms(state):
    out = {}
    renamed = 0
    for k, v in state.items():
        if ("LayerNorm" in k or "layer_norm" in k or ".ln_" in k or k.startswith("ln_")) and \
                k.endswith((".gamma", ".beta")):
            k = k[: k.rfind(".")] + (".weight" if k.endswith(".gamma") else ".bias")
            renamed += 1
        out[k] = v
    return out, renamed


def _word_embedding(state, family):
    for k, v in state.items():
        if _strip(k)[1] in ("embeddings.word_embeddings.weight", "wte.weight", "tokens_embed.weight"):
            return k, v
    return None, None


_DECODERS = ("cls.predictions.decoder.weight", "lm_head.decoder.weight", "predictions.decoder.weight",
             "generator_lm_head.weight", "lm_head.weight")


# ---------------------------------------------------------------------------------------------- read
def read(path):
    """(hf_config, state): the release in its Hugging Face form (see the module docstring)."""
    path = _release_dir(path)
    cfg_path = _config_file(path)
    if cfg_path is None:
        raise ConfigError(f"{path}: no bert_config.json, nor a config.json without model_type, beside {WEIGHTS}")
    cfg = read_json(cfg_path)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{cfg_path}: expected a JSON object")
    weights = os.path.join(path, WEIGHTS)
    state, renamed = _rename_layer_norms(read_tensor_file(weights))
    try:
        family, why = infer_family(state)
    except CheckpointError as e:
        raise CheckpointError(f"{weights}: {e}") from None
    hf = {k: v for k, v in cfg.items() if k not in _GOOGLE_ONLY}
    hf["model_type"] = family
    wkey, word = _word_embedding(state, family)
    if word is not None and word.dim() == 2:
        if "vocab_size" in cfg and int(cfg["vocab_size"]) != word.shape[0]:
            raise CheckpointError(f"the config and the weights do not match: {cfg_path} says vocab_size "
                                  f"{cfg['vocab_size']} but the word embedding in {weights} ({wkey}) has "
                                  f"{word.shape[0]} rows")
        if "vocab_size" not in cfg:
            hf["vocab_size"] = int(word.shape[0])
        size = cfg.get("hidden_size", cfg.get("n_embd"))
        if family not in ("albert", "electra") and size is not None and int(size) != word.shape[1]:
            raise CheckpointError(f"the config and the weights do not match: {cfg_path} says hidden size {size} but "
                                  f"the word embedding in {weights} ({wkey}) has {word.shape[1]} columns")
    layers = {int(m.group(1)) for m in (re.search(r"(?:^|\.)(?:layer|h)\.(\d+)\.", k) for k in state) if m}
    n = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    if family != "albert" and layers and n is not None and int(n) != max(layers) + 1:
        raise CheckpointError(f"the config and the weights do not match: {cfg_path} says {n} layers but {weights} "
                              f"has {max(layers) + 1}")
    if word is not None and word.dim() == 2:
        if family in ("albert", "electra") and "embedding_size" not in hf:
            hf["embedding_size"] = int(word.shape[1])
        # an output layer stored with values of its own is not tied to the embedding (else it would be dropped)
        dec = next((k for k in _DECODERS if k in state), None)
        if dec is not None and "tie_word_embeddings" not in hf and (
                state[dec].shape != word.shape or not torch.equal(state[dec], word)):
            hf["tie_word_embeddings"] = False
            logger.info("%s: %s differs from the word embedding: an untied output layer", weights, dec)
    logger.info("%s: a PyTorch release with %s and no model_type; read as Hugging Face %s: %s%s", path,
                os.path.basename(cfg_path), family, why,
                f"; {renamed} LayerNorm gamma/beta names read as weight/bias" if renamed else "")
    return hf, state
