"""Release layouts read into their Hugging Face form: a reader module with detect(path) and read(path) ->
(hf_config, state) (io/pt_zip.py, io/paddle.py) registered as a read-only format. `config=` (a Hugging Face
config dict or config.json path) replaces the release's own config."""
import os

from .base import Format, Weights, register_format
from .hf import first_file, hf_config_arg


def register_release(name, reader, order):
    """Register the release reader module `reader` as the read-only format `name`."""
    def read(path, config=None, **_):
        hf_cfg, state = reader.read(path)
        d = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        return Weights(state, names="hf", path=path, config=hf_config_arg(config) or hf_cfg,
                       vocab_path=first_file(d, ("vocab.txt",)))

    return register_format(Format(name, reader.detect, read, order=order))
