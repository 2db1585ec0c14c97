"""A toy checkpoint format in one file, for tests/test_io_registry.py: NAME.toy is a numpy .npz archive holding
the UER-py-named tensors and the UER config as JSON (key __config__). Importing this module registers it;
nothing else in uer_like/io/ knows of it."""
import io
import json

import numpy as np
import torch

from uer_like.errors import CheckpointError
from uer_like.io.formats import Format, Weights, register_format
from uer_like.io.formats.uer import uer_payload
from uer_like.outputs import atomic_write

NAME = "toy"
CONFIG_KEY = "__config__"


def detect(path):
    return path.endswith(".toy")


def read(path, config=None, **_):
    with np.load(path) as z:
        state = {k: torch.from_numpy(z[k].copy()) for k in z.files if k != CONFIG_KEY}
        stored = json.loads(bytes(z[CONFIG_KEY]).decode("utf-8"))
    return Weights(state, names="uer", path=path, config=config if config is not None else stored)


def write(model, path, vocab=None, layout=None):
    state, cfg_json = uer_payload(model, path, layout)
    arrays = {k: v.float().numpy() for k, v in state.items()}
    arrays[CONFIG_KEY] = np.frombuffer(cfg_json.encode("utf-8"), dtype=np.uint8)

    def dump(f):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        f.write(buf.getvalue())

    atomic_write(path, dump, error=CheckpointError, what="weights")
    return path


FORMAT = register_format(Format(NAME, detect, read, write, suffixes=(".toy",), order=10))
