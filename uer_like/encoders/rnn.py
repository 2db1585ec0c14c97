"""Recurrent encoders, as UER-py lays them out.

- lstm, gru, rnn: one torch RNN stack, `encoder.rnn.*`; with `bidirectional: true` torch's bidirectional
  stack (`*_reverse` weights, each direction hidden_size / 2, the next layer reading both).
- bilstm, bigru, birnn: two separate stacks (UER-py's BirnnEncoder), `encoder.rnn_forward.*` reading the
  sequence left to right and `encoder.rnn_backward.*` reading it flipped, each hidden_size / 2 wide and
  each layer reading only its own direction; the outputs are concatenated [forward, backward]. The flip
  covers the whole padded sequence, as in UER-py.
"""
import torch
import torch.nn as nn

from ..layers.dropout import Dropout
from ..registry import ENCODERS

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _stack(cell, config, hidden, bidirectional=False):
    return CELLS[cell](input_size=config.emb_size, hidden_size=hidden, num_layers=config.layers_num,
                       dropout=config.dropout if config.layers_num > 1 else 0.0, batch_first=True,
                       bidirectional=bidirectional)


def _half(config, what):
    if config.hidden_size % 2:
        raise ValueError(f"{what} needs an even hidden_size, got {config.hidden_size}")
    return config.hidden_size // 2


class _RnnEncoder(nn.Module):
    cell = None

    def __init__(self, config):
        super().__init__()
        bi = config.bidirectional
        hidden = _half(config, f"a bidirectional {self.cell}") if bi else config.hidden_size
        self.rnn = _stack(self.cell, config, hidden, bidirectional=bi)
        self.drop = Dropout(config.dropout)

    def forward(self, emb, seg):
        out, _ = self.rnn(emb)
        return self.drop(out)


class _BiRnnEncoder(nn.Module):
    cell = None

    def __init__(self, config):
        super().__init__()
        hidden = _half(config, f"the bi{self.cell} encoder")
        self.rnn_forward = _stack(self.cell, config, hidden)
        self.rnn_backward = _stack(self.cell, config, hidden)
        self.drop = Dropout(config.dropout)

    def forward(self, emb, seg):
        forward, _ = self.rnn_forward(emb)
        backward, _ = self.rnn_backward(emb.flip(1))
        return torch.cat([self.drop(forward), self.drop(backward).flip(1)], dim=2)


for _name in CELLS:
    ENCODERS.register(_name)(type(f"{_name.capitalize()}Encoder", (_RnnEncoder,), {"cell": _name}))
    ENCODERS.register("bi" + _name)(type(f"Bi{_name}Encoder", (_BiRnnEncoder,), {"cell": _name}))
