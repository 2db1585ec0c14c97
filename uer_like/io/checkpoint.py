"""load_model / save_model: format detection and safe loading.

Never unpickles arbitrary objects: `.bin`/`.pt` files go through torch.load(weights_only=True) and
`.safetensors` through safetensors. Loading is strict by default: missing, unexpected and wrongly
shaped tensors are errors naming the keys; `strict=False` loads what matches and prints the rest.
"""
import json
import logging
import os
import pickle

import torch

from ..config import load_config
from ..errors import CheckpointError, ConfigError
from .uer import from_uer_state_dict, to_uer_state_dict

logger = logging.getLogger("uer_like")

CONFIG_NAMES = ("config.json", "uer_config.json")


def load_state_dict_file(path):
    """Read a tensor dict from a .bin/.pt (weights_only pickle) or .safetensors file."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: the checkpoint file is empty")
    if path.endswith(".safetensors") or _is_safetensors(path):
        return _load_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: the pickle contains objects other than tensors ({_first_line(e)}). "
            "Only plain state dicts are loaded (torch.load weights_only=True); convert trusted files with "
            "scripts/convert.py --to safetensors") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {_first_line(e)}") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # a training checkpoint
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict), got {type(obj).__name__}")
    return obj


def _first_line(e):
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _is_safetensors(path):
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _load_safetensors(path):
    try:
        from safetensors.torch import load_file
    except ImportError:  # pragma: no cover
        raise CheckpointError("reading .safetensors needs the safetensors package (pip install safetensors)") from None
    try:
        return load_file(path)
    except Exception as e:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"{path}: malformed safetensors file: {_first_line(e)}") from None


def _find_config(path):
    d = path if os.path.isdir(path) else os.path.dirname(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    cands = [os.path.join(d, stem + "_config.json"), os.path.join(d, stem + ".json")]
    cands += [os.path.join(d, n) for n in CONFIG_NAMES]
    for c in cands:
        if os.path.isfile(c) and os.path.abspath(c) != os.path.abspath(path):
            return c
    return None


def load_model(path, config=None, strict=True, vocab_size=None):
    """Load a model: a UER-format .bin/.pt/.safetensors state dict (config from `config`, or a
    NAME_config.json / config.json beside it)."""
    from ..model import Model

    if config is None:
        config = _find_config(path)
        if config is None:
            raise ConfigError(f"{path}: no config given and none found beside it "
                              "(pass config=..., e.g. 'bert/base_config.json')")
    config = load_config(config)
    state = from_uer_state_dict(load_state_dict_file(path))
    word = state.get("embedding.word.embedding.weight")
    ckpt_vocab = int(word.shape[0]) if word is not None else None
    if vocab_size is not None and ckpt_vocab is not None and vocab_size != ckpt_vocab:
        raise CheckpointError(f"{path}: the checkpoint's word embedding has {ckpt_vocab} rows but the vocabulary "
                              f"has {vocab_size} tokens; use the checkpoint's own vocabulary or resize it")
    n = vocab_size or ckpt_vocab or config.vocab_size
    if not n:
        raise CheckpointError(f"{path}: cannot tell the vocabulary size (no embedding.word.embedding.weight)")
    if config.vocab_size != n:
        config = config.replace(vocab_size=n)
    model = Model(config, n)
    load_into(model, state, strict=strict, source=path)
    return model


def load_into(model, state, strict=True, source="checkpoint"):
    """Copy tensors into a model, checking names and shapes. Returns (missing, unexpected)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own
                  if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if mismatched:
        desc = "; ".join(f"{k}: checkpoint {a} vs model {b}" for k, a, b in mismatched[:10])
        raise CheckpointError(f"{source}: shape mismatch for {len(mismatched)} tensor(s): {desc}")
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        raise CheckpointError(f"{source}: checkpoint does not match the model config: " + "; ".join(parts)
                              + " (pass strict=False to load the matching tensors only)")
    if missing:
        logger.warning("%s: not in the checkpoint, left as initialised: %s", source, ", ".join(missing))
    if unexpected:
        logger.warning("%s: in the checkpoint but not in the model, ignored: %s", source, ", ".join(unexpected))
    with torch.no_grad():
        for k, v in own.items():
            if k in state:
                v.copy_(state[k])
    return missing, unexpected


def save_model(model, path, format="uer"):
    """Save weights. format "uer": UER-py's key names in a torch .bin (tied weights under both names);
    "safetensors": the same names in a .safetensors file, plus the config beside it."""
    state = to_uer_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    if format == "uer":
        torch.save(state, tmp)
    elif format == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous().clone() for k, v in state.items()}, tmp, metadata={"format": "pt"})
    else:
        raise ValueError(f"unknown format {format!r}; valid: uer, safetensors")
    os.replace(tmp, path)
    cfg_path = os.path.splitext(path)[0] + "_config.json"
    with open(cfg_path, "w", encoding="utf-8") as f:
        json.dump(model.config.to_dict(), f, indent=2, ensure_ascii=False)
    return path
