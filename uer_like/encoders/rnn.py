"""Recurrent encoders (UER key names: encoder.rnn.*)."""
import torch.nn as nn

from ..layers.dropout import Dropout
from ..registry import ENCODERS


class _RnnEncoder(nn.Module):
    cell = None
    bidirectional = False

    def __init__(self, config):
        super().__init__()
        hidden = config.hidden_size
        if self.bidirectional:
            if hidden % 2:
                raise ValueError(f"a bidirectional encoder needs an even hidden_size, got {hidden}")
            hidden //= 2
        self.rnn = self.cell(input_size=config.emb_size, hidden_size=hidden, num_layers=config.layers_num,
                             dropout=config.dropout if config.layers_num > 1 else 0.0, batch_first=True,
                             bidirectional=self.bidirectional)
        self.drop = Dropout(config.dropout)

    def forward(self, emb, seg):
        out, _ = self.rnn(emb)
        return self.drop(out)


@ENCODERS.register("lstm")
class LstmEncoder(_RnnEncoder):
    cell = nn.LSTM


@ENCODERS.register("gru")
class GruEncoder(_RnnEncoder):
    cell = nn.GRU


@ENCODERS.register("bilstm")
class BiLstmEncoder(_RnnEncoder):
    cell = nn.LSTM
    bidirectional = True


@ENCODERS.register("bigru")
class BiGruEncoder(_RnnEncoder):
    cell = nn.GRU
    bidirectional = True
