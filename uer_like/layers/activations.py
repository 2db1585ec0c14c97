"""Activations by UER-format name (`hidden_act`)."""
import math

import torch
import torch.nn.functional as F

from ..registry import ACTIVATIONS


@ACTIVATIONS.register("gelu")
def gelu(x):
    return F.gelu(x)


@ACTIVATIONS.register("gelu_fast")
def gelu_fast(x):
    # tanh approximation (GPT-2's "gelu_new")
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


@ACTIVATIONS.register("relu")
def relu(x):
    return F.relu(x)


@ACTIVATIONS.register("silu")
def silu(x):
    return F.silu(x)


@ACTIVATIONS.register("linear")
def linear(x):
    return x


def get_activation(name):
    return ACTIVATIONS.get(name, key="hidden_act")
