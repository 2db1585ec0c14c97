"""Format "tf": TensorFlow checkpoints (Google BERT, ALBERT, ELECTRA and the Chinese releases io/tf_releases.py lists): a
checkpoint prefix (model.ckpt), its .index / .meta / .data-* file, or a directory holding one, with its config
json beside it; read only, in pure Python (io/tf_bundle.py reads the tensors, io/tf.py maps their names)."""
import os

from .base import Format, register_format


def detect(path):
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, "checkpoint")) or any(f.endswith(".index") for f in os.listdir(path))
    return path.endswith((".index", ".meta")) or ".data-" in os.path.basename(path) or \
        (not os.path.exists(path) and os.path.exists(path + ".index"))


def read(path, config=None, tf_model=None, **_):
    from ..tf import read_tf_checkpoint

    w = read_tf_checkpoint(path, config=config, which=tf_model)
    w.path = path
    return w


register_format(Format("tf", detect, read, order=30))
