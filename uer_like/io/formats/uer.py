"""Format "uer": UER-py's key names (any era: io/uer.py's layouts) in a torch pickle (.bin/.pt, scanned and read
with weights_only=True), with a UER-format config (config=, NAME_config.json / config.json beside it); or a
directory holding model.safetensors / pytorch_model.bin / model.bin. A weights file whose tensors carry Hugging
Face names is read with the config.json beside it (reported as "hf"). Written with NAME_config.json beside it.

read_file and write_uer are shared with the safetensors format (the same names in another container)."""
import json
import os

from ...errors import CheckpointError, ConfigError
from ...outputs import atomic_write
from ..safe import read_tensor_file
from .base import Format, Weights, load_info_of, register_format
from .hf import first_file, hf_config_arg, hf_config_at

DIR_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.bin")


def is_uer_state(state):
    return any(k.startswith(("embedding.", "encoder.", "target.", "module.embedding.")) for k in state)


def read_file(path, config=None):
    """A weights file: UER names (unless `config` is a Hugging Face config), else Hugging Face names with
    the config given or the config.json beside the file."""
    state = read_tensor_file(path)
    hf_cfg = hf_config_arg(config)
    if is_uer_state(state) and hf_cfg is None:
        return Weights(state, names="uer", path=path, config=config)
    d = os.path.dirname(os.path.abspath(path))
    if hf_cfg is None:
        hf_cfg, _ = hf_config_at(d)
    if hf_cfg is None:
        raise ConfigError(f"{path}: the tensors have Hugging Face names but no config.json with a model_type was given "
                          "or found beside the file (pass config='.../config.json')")
    return Weights(state, names="hf", path=path, config=hf_cfg, format="hf",
                   vocab_path=first_file(d, ("vocab.txt",)), tokenizer_dir=d, ln_dir=d)


def detect(path):
    """Anything that exists and no format before claims (the last in detection order): a directory, a torch
    pickle; what is no checkpoint is refused when read, by its content."""
    return os.path.exists(path)


def read(path, config=None, **_):
    if os.path.isdir(path):
        weights = [os.path.join(path, n) for n in DIR_WEIGHTS if os.path.isfile(os.path.join(path, n))]
        if not weights:
            raise CheckpointError(f"{path}: a directory without a checkpoint (no Hugging Face config.json with a "
                                  "model_type, no TF checkpoint, no model.safetensors / pytorch_model.bin)")
        w = read_file(weights[0], config)
        if w.format is None:
            from .base import detect as detect_format

            w.format = detect_format(weights[0])
        return w
    return read_file(path, config)


def uer_payload(model, path, layout=None):
    """(state dict in UER-py names of `layout`, the config JSON in that era's form) for writing `path`;
    layout default: the layout the model was loaded from, else "uer" ("uer_2023" for UER-py's pre-July-2023
    word_sinusoidalpos table, which only the older layouts hold)."""
    from ...legacy_config import config_for_layout
    from .. import uer as uerfmt

    info = load_info_of(model)
    if layout is None:
        layout = (info.layout if info is not None else None) or "uer"
        try:
            uerfmt.check_sinusoidal_layout(model.config, layout)
        except uerfmt.LayoutError:
            layout = "uer" if layout != "uer" else "uer_2023"
    try:
        uerfmt.check_sinusoidal_layout(model.config, layout)
        state = uerfmt.to_uer_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()}, layout,
                                         model.config)
    except uerfmt.LayoutError as e:
        raise ConfigError(f"{path}: {e}") from None
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"could not create the directory of {path}: {os.strerror(e.errno)}") from None
    return state, json.dumps(config_for_layout(model.config.to_dict(), layout), indent=2, ensure_ascii=False)


def write_config(path, cfg_json):
    """NAME_config.json beside the weights NAME.*"""
    atomic_write(os.path.splitext(path)[0] + "_config.json", lambda f: f.write(cfg_json.encode("utf-8")),
                 error=CheckpointError, what="config")


def write(model, path, vocab=None, layout=None):
    import torch

    if path.lower().endswith(".safetensors"):
        raise ConfigError(f"{path}: format 'uer' writes a torch pickle; use format='safetensors' for a .safetensors "
                          "path, or a .bin path")
    state, cfg_json = uer_payload(model, path, layout)
    atomic_write(path, lambda f: torch.save(state, f), error=CheckpointError, what="weights")
    write_config(path, cfg_json)
    return path


register_format(Format("uer", detect, read, write, suffixes=(".bin", ".pt", ".pth"), order=90))
