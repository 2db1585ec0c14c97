"""Activations by UER-format name (`hidden_act`)."""
import torch
import torch.nn.functional as F

from ..registry import ACTIVATIONS


@ACTIVATIONS.register("gelu")
def gelu(x):
    return F.gelu(x)


@ACTIVATIONS.register("gelu_fast")
def gelu_fast(x):
    # tanh approximation (GPT-2's "gelu_new", UER's gelu_fast):
    # 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))), in torch's one fused kernel
    return F.gelu(x, approximate="tanh")


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
