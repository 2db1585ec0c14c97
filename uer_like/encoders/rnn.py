"""Recurrent encoders, as UER-py lays them out.

- lstm, gru, rnn: one torch RNN stack, `encoder.rnn.*`; with `bidirectional: true` torch's bidirectional
  stack (`*_reverse` weights, each direction hidden_size / 2, the next layer reading both).
- bilstm, bigru, birnn: two separate stacks (UER-py's BirnnEncoder), `encoder.rnn_forward.*` reading the
  sequence left to right and `encoder.rnn_backward.*` reading it flipped, each hidden_size / 2 wide and
  each layer reading only its own direction; the outputs are concatenated [forward, backward]. The flip
  covers the whole padded sequence, as in UER-py.

Left-to-right encoders (lstm, gru, rnn without `bidirectional`) decode incrementally: `init_cache` gives an
RnnState that carries the hidden state from one call to the next.
"""
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import ConfigError
from ..layers.context import RnnState
from ..layers.dropout import Dropout
from ..registry import ENCODERS

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _stack(cell, config, hidden, bidirectional=False):
    return CELLS[cell](input_size=config.emb_size, hidden_size=hidden, num_layers=config.layers_num,
                       dropout=config.dropout if config.layers_num > 1 else 0.0, batch_first=True,
                       bidirectional=bidirectional)


def _half(config, what):
    if config.hidden_size % 2:
        raise ConfigError(f"{what} needs an even hidden_size, got {config.hidden_size}")
    return config.hidden_size // 2


class _RnnEncoder(nn.Module):
    cell = None

    def __init__(self, config):
        super().__init__()
        bi = config.bidirectional
        hidden = _half(config, f"a bidirectional {self.cell}") if bi else config.hidden_size
        self.rnn = _stack(self.cell, config, hidden, bidirectional=bi)
        self.drop = Dropout(config.dropout)

    @property
    def bidirectional(self):
        return self.rnn.bidirectional

    def init_cache(self, batch_size, max_length, *, dtype, device, padded=True):
        """An RnnState carrying the hidden state from one call to the next (left-to-right encoders only)."""
        if self.bidirectional:
            raise ConfigError(_NO_CACHE)
        return RnnState(batch_size, max_length, device, padded=padded)

    def forward(self, emb, seg, positions=None, cache=None):
        # emb: [batch, seq, emb_size]; positions: only their presence matters (a left-padded batch; the
        # recurrence gives the order); cache: an RnnState from init_cache.
        # With explicit positions or a padded cache, the batch is left-padded: padding is kept out of the state.
        if cache is None:
            out, _ = _run_left_padded(self.rnn, emb, seg > 0) if positions is not None else self.rnn(emb)
            return self.drop(out)
        start = cache.append(seg, positions)
        if start == 0 and cache.key_mask is not None:
            out, cache.state = _run_left_padded(self.rnn, emb, seg > 0)
        else:
            out, cache.state = self.rnn(emb, cache.state)
        return self.drop(out)


_NO_CACHE = "a bidirectional encoder reads the whole sequence; it cannot decode incrementally"


def _run_left_padded(rnn, emb, real):
    """Run from the zero state over left-padded rows so that each row starts at its first real token (the
    padding never enters the state): rows are shifted to the left, packed, run, and shifted back."""
    b, s, _ = emb.shape
    lengths = real.sum(1).clamp_(min=1)
    pad = s - lengths
    cols = torch.arange(s, device=emb.device)
    to_left = (cols[None] + pad[:, None]) % s  # [batch, seq]: left-aligned column j reads column j + pad
    x = emb.gather(1, to_left[..., None].expand(-1, -1, emb.size(2)))
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, state = rnn(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=s)
    back = (cols[None] - pad[:, None]) % s
    return out.gather(1, back[..., None].expand(-1, -1, out.size(2))), state


class _BiRnnEncoder(nn.Module):
    cell = None
    bidirectional = True

    def __init__(self, config):
        super().__init__()
        hidden = _half(config, f"the bi{self.cell} encoder")
        self.rnn_forward = _stack(self.cell, config, hidden)
        self.rnn_backward = _stack(self.cell, config, hidden)
        self.drop = Dropout(config.dropout)

    def init_cache(self, batch_size, max_length, *, dtype, device, padded=True):
        raise ConfigError(_NO_CACHE)

    def forward(self, emb, seg, positions=None, cache=None):
        forward, _ = self.rnn_forward(emb)
        backward, _ = self.rnn_backward(emb.flip(1))
        return torch.cat([self.drop(forward), self.drop(backward).flip(1)], dim=2)


for _name in CELLS:
    ENCODERS.register(_name)(type(f"{_name.capitalize()}Encoder", (_RnnEncoder,), {"cell": _name}))
    ENCODERS.register("bi" + _name)(type(f"Bi{_name}Encoder", (_BiRnnEncoder,), {"cell": _name}))
