"""What a model directory says about its tokenizer: Hugging Face's tokenizer_config.json,
special_tokens_map.json and config.json (tokenizer_class, model_type, the special tokens), read leniently
(a file that is missing or not JSON says nothing)."""
import json
import os

CONFIG_FILES = ("config.json", "special_tokens_map.json", "tokenizer_config.json")  # later files win
SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "cls_token", "sep_token", "mask_token")


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def token_text(v):
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(v, dict):
        v = v.get("content")
    return v if isinstance(v, str) and v else None


def describe(directory):
    """-> {"tokenizer_class", "model_type", "tokenizer" (a UER config's), SPECIAL_KEYS..., "files"} of a
    directory (empty values where nothing says)."""
    out = {"files": set(os.listdir(directory)) if directory and os.path.isdir(directory) else set()}
    for name in CONFIG_FILES:
        if name not in out["files"]:
            continue
        d = _read(os.path.join(directory, name))
        for k in ("tokenizer_class", "model_type", "clean_up_tokenization_spaces", "use_jieba") + SPECIAL_KEYS:
            if d.get(k) is not None:
                out[k] = token_text(d[k]) if k in SPECIAL_KEYS else d[k]
        if name == "config.json" and "model_type" not in d and isinstance(d.get("tokenizer"), str):
            out["tokenizer"] = d["tokenizer"]  # a UER config saved as config.json
    return out
