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


# BERT's BasicTokenizer settings: tokenizer_config.json's key -> (BertNormalizer's key in tokenizer.json, default,
# whether null is a value). strip_accents None follows do_lower_case (transformers' BasicTokenizer).
BASIC_SETTINGS = {"do_lower_case": ("lowercase", True, False), "strip_accents": ("strip_accents", None, True),
                  "tokenize_chinese_chars": ("handle_chinese_chars", True, False)}


def _bert_normalizer(directory):
    """The BertNormalizer of the directory's tokenizer.json (top level or in a Sequence), {} when none."""
    norm = _read(os.path.join(directory, "tokenizer.json")).get("normalizer") if directory else None
    parts = norm.get("normalizers", []) if isinstance(norm, dict) and norm.get("type") == "Sequence" else [norm]
    return next((p for p in parts if isinstance(p, dict) and p.get("type") == "BertNormalizer"), {})


def _checked(value, key, nullable, where):
    from ..errors import DataError

    if isinstance(value, bool) or (value is None and nullable):
        return value
    raise DataError(f"{where}: {key} is {json.dumps(value)}; it must be true or false{' (or null)' if nullable else ''}")


def basic_settings(directory, do_lower_case=None):
    """The BasicTokenizer settings of a release directory -> {do_lower_case, strip_accents,
    tokenize_chinese_chars}: each from tokenizer_config.json (which transformers applies), else from the
    BertNormalizer of tokenizer.json when the directory has no tokenizer_config.json (transformers then loads
    tokenizer.json as it is), else the default (lower-casing: UER-py's and transformers' BertTokenizer's).
    `do_lower_case` given (a user's flag) wins over the directory. A value of the wrong type, or a
    tokenizer.json setting that tokenizer_config.json leaves to transformers' default while differing from it
    (the directory says two things), is a DataError in one line."""
    from ..errors import DataError

    has_config = bool(directory) and os.path.isfile(os.path.join(directory, "tokenizer_config.json"))
    config = _read(os.path.join(directory, "tokenizer_config.json")) if has_config else {}
    normalizer = _bert_normalizer(directory) if directory and os.path.isdir(directory) else {}
    out = {}
    for key, (norm_key, default, nullable) in BASIC_SETTINGS.items():
        if key == "do_lower_case" and do_lower_case is not None:
            out[key] = bool(do_lower_case)
        elif key in config:
            out[key] = _checked(config[key], key, nullable, os.path.join(directory, "tokenizer_config.json"))
        elif norm_key in normalizer:
            value = _checked(normalizer[norm_key], norm_key, nullable, os.path.join(directory, "tokenizer.json"))
            if has_config and value != default:
                raise DataError(f"{directory}: tokenizer.json's normalizer has {norm_key} {json.dumps(value)} but "
                                f"tokenizer_config.json has no {key}, which transformers then takes as "
                                f"{json.dumps(default)}; add \"{key}\": {json.dumps(value)} (or the other) to "
                                "tokenizer_config.json")
            out[key] = value
        else:
            out[key] = default
    return out
