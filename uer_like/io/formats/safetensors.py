"""Format "safetensors": the uer format's key names in a .safetensors file (the project's default), the config
also in its metadata (uer_like_config); NAME_config.json beside it. Hugging Face names beside a config.json
are read as the uer format reads them."""
import os

from ...errors import CheckpointError
from ...outputs import atomic_write
from ..safe import is_safetensors
from .base import Format, register_format
from .uer import read_file, uer_payload, write_config


def detect(path):
    if not os.path.isfile(path):
        return False
    if path.endswith(".safetensors"):
        return True
    try:
        return is_safetensors(path)
    except OSError:
        return False


def read(path, config=None, **_):
    return read_file(path, config)


def write(model, path, vocab=None, layout=None):
    from safetensors.torch import save

    state, cfg_json = uer_payload(model, path, layout)
    blob = {k: v.contiguous().clone() for k, v in state.items()}
    atomic_write(path, lambda f: f.write(save(blob, metadata={"format": "pt", "uer_like_config": cfg_json})),
                 error=CheckpointError, what="weights")
    write_config(path, cfg_json)
    return path


register_format(Format("safetensors", detect, read, write, suffixes=(".safetensors",), order=80))
