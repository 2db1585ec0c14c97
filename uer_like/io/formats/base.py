"""The definitions the formats package registers its modules with (its __init__ imports the
modules; they import this, so the registration has no import cycle)."""
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ...errors import CheckpointError
from ...registry import FORMATS


@dataclass(frozen=True)
class Format:
    """One on-disk format. detect(path) -> bool, without reading tensor data; read(path, config=None, **opts)
    -> Weights (opts: tf_model; ignore what does not apply); write(model, path, vocab=None, layout=None) ->
    the path written, None for a read-only format. suffixes: the file endings save_model infers this format
    from; directory: save_model infers it for a directory or a path without an extension. order: detection
    order (lower first; a format claiming a subset of another's paths comes first)."""
    name: str
    detect: Callable[[str], bool]
    read: Callable[..., "Weights"]
    write: Optional[Callable[..., str]] = None
    suffixes: tuple = ()
    directory: bool = False
    order: int = 100


@dataclass
class Weights:
    """What a format's read returns. names: "uer" (UER-py key names, any layout of io/uer.py) or "hf" (a
    Hugging Face family's names, io/hf.py). config: for "uer", the UER config as load_model takes it (a name,
    path, dict, ModelConfig) or None to look beside `path`; for "hf", the HF config dict (with model_type).
    path: the file or directory read, named in messages (a UER directory: its weights file). format: the
    format to report when it is not the detected one (a .bin with Hugging Face names reports "hf").
    vocab_path: the vocabulary found with the weights; tokenizer_dir: the release directory whose tokenizer
    files an HF export copies; ln_dir: where the LayerNorm sidecar of a uer_like HF export may lie."""
    state: dict
    names: str
    path: str
    config: Any = None
    format: Optional[str] = None
    vocab_path: Optional[str] = None
    tokenizer_dir: Optional[str] = None
    ln_dir: Optional[str] = None


@dataclass
class LoadInfo:
    """Where a loaded model came from (model.load_info; None for a model that was not loaded).
    format: the format read (uer, safetensors, hf, tf, ...); path: the file or directory read; names: the key
    names the weights carried ("uer" or "hf"); layout: for UER names, the UER-py era (io/uer.py LAYOUTS);
    family / hf_config / hf_extras: for HF names, the family, the config the model was built from and the
    tensors with no uer_like place (written back on export); vocab_path: the vocabulary found or given;
    tokenizer_dir: the release directory whose tokenizer files an HF export copies; missing / unexpected:
    model tensors left as initialised, checkpoint tensors not used (strict=False)."""
    format: Optional[str] = None
    path: Optional[str] = None
    names: Optional[str] = None
    layout: Optional[str] = None
    family: Optional[str] = None
    hf_config: Optional[dict] = None
    hf_extras: dict = field(default_factory=dict)
    vocab_path: Optional[str] = None
    tokenizer_dir: Optional[str] = None
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)


def load_info_of(model):
    """model.load_info, or None for a module load_model did not make (a fresh Model, a fine-tuning model)."""
    return getattr(model, "load_info", None)


def register_format(fmt):
    """Register a Format (a format module calls this at import); returns it."""
    return FORMATS.register(fmt.name)(fmt)


def formats():
    """The registered formats, in detection order."""
    return sorted((FORMATS.get(n) for n in FORMATS.names()), key=lambda f: (f.order, f.name))


def writable():
    """The names of the formats save_model writes (CLI choices)."""
    return [f.name for f in formats() if f.write is not None]


def get(name):
    return FORMATS.get(name)


def detect(path):
    """The name of the format that claims `path` (the first in detection order)."""
    for f in formats():
        if f.detect(path):
            return f.name
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file or directory")
    raise CheckpointError(f"{path}: no format reads it (formats: {', '.join(FORMATS.names())})")


DEFAULT_WRITE = "safetensors"  # save_model's format for a path no format's suffixes claim


def infer_write_format(path):
    """save_model's format for a path: by its ending, a directory or no extension -> the directory format,
    else DEFAULT_WRITE."""
    low = path.lower()
    cands = [f for f in formats() if f.write is not None]
    for f in cands:
        if f.suffixes and low.endswith(tuple(f.suffixes)):
            return f.name
    if os.path.isdir(path) or not os.path.splitext(low)[1]:
        for f in cands:
            if f.directory:
                return f.name
    return DEFAULT_WRITE
