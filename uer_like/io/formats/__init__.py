"""Checkpoint formats on disk: one module per format, each registering a `Format` in registry.FORMATS.

    from uer_like.io.formats import Format, Weights, register_format

    def detect(path): return path.endswith(".toy")
    def read(path, config=None, **opts): return Weights(state, names="uer", path=path, config=config_dict)
    def write(model, path, vocab=None, layout=None): ...; return path
    register_format(Format("toy", detect, read, write, suffixes=(".toy",), order=10))

`load_model` asks the formats, in `order`, which one claims the path (`detect`), and builds the model from what
its `read` returns: a `Weights` whose tensors carry UER-py names (io/uer.py's layouts) or Hugging Face names
(io/hf.py's families, with the HF config dict). `save_model` writes through the format's `write`; with no
format given, the one whose `suffixes` end the path (a directory or a path without an extension: the
`directory` format). CLI choices (convert.py --to, pretrain.py --output_format) come from `writable()`.

Built-in: uer (torch pickle .bin/.pt with UER-py names, or a directory holding one), safetensors, hf (a
transformers directory, or one of its weights files beside its config.json), tf (TensorFlow checkpoints of
Google's and the Chinese releases, read only, no tensorflow needed), and the release layouts read into their
Hugging Face form (read only): paddle (PaddleNLP model_state.pdparams, io/paddle.py) and pt-zip
(pytorch_model.bin with bert_config.json, io/pt_zip.py); zen (ZEN's release, io/zen.py: read with UER names into
the `zen` encoder, read only). io/uer.py (UER key-name layouts), io/hf.py (family key maps) and io/tf.py,
io/tf_releases.py (TF variable names) are the
name rules these formats use, not formats themselves.
"""
from .base import (DEFAULT_WRITE, Format, LoadInfo, Weights, detect, formats, get, infer_write_format,  # noqa: F401
                   load_info_of, register_format, writable)
from . import hf, paddle, pt_zip, safetensors, tf, uer, zen  # noqa: F401  (registration of the built-in formats)
