"""Position-wise feed-forward: dense (BERT/GPT-2) or gated (T5.1.1 / LLaMA style)."""
import torch.nn as nn

from .activations import get_activation


class PositionwiseFeedForward(nn.Module):
    def __init__(self, hidden_size, feedforward_size, hidden_act, bias=True):
        super().__init__()
        self.linear_1 = nn.Linear(hidden_size, feedforward_size, bias=bias)
        self.linear_2 = nn.Linear(feedforward_size, hidden_size, bias=bias)
        self.act = get_activation(hidden_act)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class GatedFeedForward(nn.Module):
    def __init__(self, hidden_size, feedforward_size, hidden_act, bias=True):
        super().__init__()
        self.linear_gate = nn.Linear(hidden_size, feedforward_size, bias=bias)
        self.linear_1 = nn.Linear(hidden_size, feedforward_size, bias=bias)
        self.linear_2 = nn.Linear(feedforward_size, hidden_size, bias=bias)
        self.act = get_activation(hidden_act)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_gate(x)) * self.linear_1(x))


FEED_FORWARD_CLASSES = {"dense": PositionwiseFeedForward, "gated": GatedFeedForward}
