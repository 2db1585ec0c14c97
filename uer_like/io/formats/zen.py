"""Format "zen": ZEN's PyTorch release (pytorch_model.bin + a config with word_size / num_hidden_word_layers +
vocab.txt + ngram.txt), read by io/zen.py into the `zen` encoder with UER names; read only. Detected before
pt-zip, which would otherwise read the BERT part alone."""
from .. import zen
from .base import Format, Weights, register_format
from .hf import first_file


def read(path, config=None, **_):
    uer_cfg, state, d = zen.read(path, config)
    return Weights(state, names="uer", path=d, config=uer_cfg, vocab_path=first_file(d, ("vocab.txt",)))


register_format(Format("zen", zen.detect, read, order=9))
