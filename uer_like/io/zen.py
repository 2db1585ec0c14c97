"""ZEN's PyTorch release (sinovation/ZEN, e.g. ZEN_pretrain_base): a directory with `pytorch_model.bin`,
`config.json` (or `bert_config.json`) holding ZEN's keys `word_size` and `num_hidden_word_layers`, `vocab.txt`
and `ngram.txt`. Read into the `zen` encoder (encoders/zen.py) with UER names.

ZEN's parameters are pytorch-pretrained-BERT's (`bert.embeddings...`, `bert.encoder.layer.N...`, `bert.pooler`,
`cls.predictions...`, `cls.seq_relationship`; LayerNorm gamma/beta in the oldest files) plus its n-gram part:
  bert.word_embeddings.word_embeddings          -> encoder.ngram_embedding.word
  bert.word_embeddings.token_type_embeddings    -> encoder.ngram_embedding.seg  (a zero padding row first)
  bert.word_embeddings.LayerNorm                -> encoder.ngram_embedding.layer_norm
  bert.encoder.word_layers.N (BERT layers)      -> encoder.ngram_transformer.N
The BERT part goes through io/hf.py's BERT rules (character layers: encoder.transformer.N; heads: mlm, sp,
or the pooler alone), so nothing about BERT is written twice here. Config: ZEN's defaults where its file
is silent (ZenConfig.from_dict: num_hidden_word_layers 6, layer_norm_eps 1e-12), `word_size` checked
against the n-gram embedding.
"""
import logging
import os
import re

from ..config import ModelConfig, read_json
from ..errors import CheckpointError, ConfigError
from . import hf
from .families import bert_shaped
from . import uer as uerfmt
from .pt_zip import WEIGHTS, _rename_layer_norms
from .safe import read_tensor_file

logger = logging.getLogger("uer_like")

CONFIG_FILES = ("config.json", "bert_config.json")
ZEN_KEYS = ("word_size", "num_hidden_word_layers")
ZEN_DEFAULT_WORD_LAYERS = 6  # ZenConfig's default
NGRAM_FILE = "ngram.txt"


def _release_dir(path):
    if os.path.isfile(path) and os.path.basename(path) == WEIGHTS:
        return os.path.dirname(os.path.abspath(path))
    return path


def _config_file(d):
    for name in CONFIG_FILES:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            try:
                cfg = read_json(p)
            except ConfigError:
                continue
            if isinstance(cfg, dict) and any(k in cfg for k in ZEN_KEYS) and "model_type" not in cfg:
                return p
    return None


def detect(path):
    """A directory (or its pytorch_model.bin) with pytorch_model.bin and a config holding ZEN's word_size /
    num_hidden_word_layers."""
    d = _release_dir(path)
    return os.path.isdir(d) and os.path.isfile(os.path.join(d, WEIGHTS)) and _config_file(d) is not None


def _ngram_rules(word_layers):
    rules = [hf.Rule("word_embeddings.word_embeddings.weight", "encoder.ngram_embedding.word.weight"),
             hf.Rule("word_embeddings.token_type_embeddings.weight", "encoder.ngram_embedding.seg.weight", "seg")]
    rules += hf._ln("word_embeddings.LayerNorm", "encoder.ngram_embedding.layer_norm")
    for i in range(word_layers):
        rules += bert_shaped.bert_layer(f"encoder.word_layers.{i}", f"encoder.ngram_transformer.{i}")
    return rules


def read(path, config=None):
    """-> (UER config dict, state with UER names, release directory). config: ZEN's config (a dict or a path)
    in place of the release's own."""
    d = _release_dir(path)
    cfg_path = _config_file(d) if config is None else (config if isinstance(config, str) else "config=")
    cfg = read_json(config) if isinstance(config, str) else dict(config) if config is not None else read_json(cfg_path)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{cfg_path}: expected a JSON object")
    weights = os.path.join(d, WEIGHTS)
    state, renamed = _rename_layer_norms(read_tensor_file(weights))
    canon = hf.canonical_state(state, "bert")
    ngram_part = {k: v for k, v in canon.items() if k.startswith(("word_embeddings.", "encoder.word_layers."))}
    if "word_embeddings.word_embeddings.weight" not in ngram_part:
        raise CheckpointError(f"{weights}: no ZEN n-gram embedding (bert.word_embeddings.word_embeddings.weight) "
                              f"although {cfg_path} has ZEN's keys {', '.join(k for k in ZEN_KEYS if k in cfg)}")
    bert_part = {k: v for k, v in canon.items() if k not in ngram_part}
    rows = int(ngram_part["word_embeddings.word_embeddings.weight"].shape[0])
    if "word_size" in cfg and int(cfg["word_size"]) != rows:
        raise CheckpointError(f"the config and the weights do not match: {cfg_path} says word_size {cfg['word_size']} "
                              f"but the n-gram embedding in {weights} has {rows} rows")
    word_layers = int(cfg.get("num_hidden_word_layers", ZEN_DEFAULT_WORD_LAYERS))
    found = {int(m.group(1)) for m in (re.match(r"encoder\.word_layers\.(\d+)\.", k) for k in ngram_part) if m}
    if found and max(found) + 1 != word_layers:
        raise CheckpointError(f"the config and the weights do not match: {cfg_path} says num_hidden_word_layers "
                              f"{word_layers} but {weights} has {max(found) + 1} n-gram layers")

    hf_cfg = {k: v for k, v in cfg.items() if k not in ZEN_KEYS}
    hf_cfg["model_type"] = "bert"
    targets = hf.targets_from_keys("bert", bert_part)
    _, base = hf.uer_config_from_hf(hf_cfg, targets, source=cfg_path)
    uer_cfg = dict(base.to_dict(), encoder="zen", ngram_vocab_size=rows, ngram_layers_num=word_layers)
    model_cfg = ModelConfig.from_dict(uer_cfg, source=cfg_path)
    internal, unexpected, missing = hf.state_from_hf(bert_part, hf_cfg, "bert", base, source=weights)
    ngram_internal, ngram_unexpected, ngram_missing = hf.state_from_hf(ngram_part, hf_cfg, "bert", base,
                                                                      source=weights, rules=_ngram_rules(word_layers))
    internal.update(ngram_internal)
    out = uerfmt.to_uer_state_dict(internal, "uer", model_cfg)
    # what no rule took stays under its ZEN name, so that a strict load names it as unexpected
    out.update({f"bert.{k}": canon[k] for k in unexpected + ngram_unexpected})
    if missing or ngram_missing:
        logger.warning("%s: ZEN parameters absent from the release: %s", weights, ", ".join(missing + ngram_missing))
    ngram = os.path.join(d, NGRAM_FILE)
    logger.info("%s: a ZEN release (BERT with %d character layers and %d n-gram layers, %d n-gram embedding rows, "
                "targets %s)%s%s", d, base.layers_num, word_layers, rows, targets,
                f"; {renamed} LayerNorm gamma/beta names read as weight/bias" if renamed else "",
                "" if os.path.isfile(ngram) else f"; no {NGRAM_FILE} beside it (feature extraction needs it)")
    return uer_cfg, out, d
