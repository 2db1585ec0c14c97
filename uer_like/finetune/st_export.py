"""Write a sentence encoder (a SimCSE model, finetune/simcse.py) as a sentence-transformers directory:

    OUT/config.json, model.safetensors, tokenizer files   the encoder in Hugging Face format (save_model
                                                          format "hf"): sentence-transformers' Transformer module
    OUT/sentence_bert_config.json                         {"max_seq_length": ..., "do_lower_case": false}
    OUT/1_Pooling/config.json                             the Pooling module: the pooling the model was
                                                          trained with (cls, mean, max or last token)
    OUT/modules.json                                      Transformer (path "") then Pooling (path "1_Pooling")

sentence_transformers.SentenceTransformer(OUT).encode(texts) then gives the model's sentence vectors, and so
does transformers' AutoModel on OUT with the pooling rule of OUT/1_Pooling/config.json (`embed_with_transformers`,
which needs no sentence-transformers). The pooling config is written with the long-standing pooling_mode_*
keys, which every sentence-transformers release reads.
"""
import json
import os

import torch

from ..errors import ConfigError
from ..io.checkpoint import load_model, save_model
from ..outputs import atomic_write

# our pooling name -> sentence-transformers' Pooling flag
POOLING_MODES = {"first": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens",
                 "max": "pooling_mode_max_tokens", "last": "pooling_mode_lasttoken"}
ALL_MODES = ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
             "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")
POOLING_DIR = "1_Pooling"


def _write_json(path, obj):
    text = json.dumps(obj, indent=2)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")), error=ConfigError, what=os.path.basename(path))


def export_sentence_transformers(model_path, out_dir, pooling=None, max_seq_length=None, config=None, vocab=None):
    """A sentence encoder (any model uer_like.load_model reads; its pooling from --pooling, else from the
    MODEL_finetune.json beside it, else first) -> a sentence-transformers directory at out_dir. Returns out_dir."""
    from .core import read_finetune_meta

    meta = read_finetune_meta(model_path) if os.path.isfile(model_path) else {}
    pooling = pooling or meta.get("pooling") or "first"
    if pooling not in POOLING_MODES:
        raise ConfigError(f"pooling {pooling!r} has no sentence-transformers Pooling mode; valid: {', '.join(POOLING_MODES)}")
    model = load_model(model_path, config=config, strict=False)
    if model.config.encoder != "transformer" or model.config.mask != "fully_visible":
        raise ConfigError(f"{model_path}: a {model.config.encoder} encoder with a {model.config.mask} mask; the "
                          "sentence-transformers export takes a BERT-style encoder")
    save_model(model, out_dir, format="hf", vocab=vocab)
    hidden = model.config.hidden_size
    length = max_seq_length or meta.get("seq_length") or model.config.max_seq_length
    _write_json(os.path.join(out_dir, "sentence_bert_config.json"), {"max_seq_length": int(length), "do_lower_case": False})
    os.makedirs(os.path.join(out_dir, POOLING_DIR), exist_ok=True)
    _write_json(os.path.join(out_dir, POOLING_DIR, "config.json"),
                {"word_embedding_dimension": hidden, **{m: m == POOLING_MODES[pooling] for m in ALL_MODES},
                 "include_prompt": True})
    _write_json(os.path.join(out_dir, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": POOLING_DIR, "type": "sentence_transformers.models.Pooling"}])
    return out_dir


def read_pooling(out_dir):
    """The pooling mode a sentence-transformers directory's modules.json / Pooling config names."""
    modules = json.load(open(os.path.join(out_dir, "modules.json"), encoding="utf-8"))
    pool = [m for m in modules if m["type"].endswith(".Pooling")]
    if len(pool) != 1:
        raise ConfigError(f"{out_dir}/modules.json: {len(pool)} Pooling modules; expected one")
    cfg = json.load(open(os.path.join(out_dir, pool[0]["path"], "config.json"), encoding="utf-8"))
    modes = [m for m in ALL_MODES if cfg.get(m)]
    if len(modes) != 1 or modes[0] not in POOLING_MODES.values():
        raise ConfigError(f"{out_dir}: pooling {modes}; one of {', '.join(POOLING_MODES.values())} is read here")
    return modes[0]


def embed_with_transformers(out_dir, input_ids, attention_mask):
    """Sentence vectors of a sentence-transformers directory computed with transformers' AutoModel and the
    pooling rule of its Pooling config (what sentence-transformers' Transformer + Pooling modules compute)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(out_dir).eval()
    mode = read_pooling(out_dir)
    with torch.no_grad():
        h = model(input_ids=input_ids, attention_mask=attention_mask,
                  token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
    m = attention_mask.unsqueeze(-1).to(h.dtype)
    if mode == "pooling_mode_cls_token":
        return h[:, 0]
    if mode == "pooling_mode_mean_tokens":
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if mode == "pooling_mode_max_tokens":
        return h.masked_fill(m == 0, -1e9).max(1).values
    last = attention_mask.sum(1) - 1  # right padding
    return h[torch.arange(h.size(0)), last]
