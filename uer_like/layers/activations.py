"""Activations by UER-format name (`hidden_act`)."""
import torch
import torch.nn.functional as F

from ..registry import ACTIVATIONS
from .kernels import NATIVE as _kernels


class _NativeGeluTanh(torch.autograd.Function):
    """GELU's tanh approximation through uer_like._kernels.gelu_tanh: one pass forward, one backward (torch's
    own CPU kernel evaluates tanh about four times slower on AVX2). A backward that builds a graph
    (create_graph=True: second derivatives) is torch's gelu_backward, which is differentiable."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        x = x.contiguous()
        y = torch.empty_like(x)
        _kernels.gelu_tanh(x.data_ptr(), 0, y.data_ptr(), int(x.dtype == torch.bfloat16), x.numel(),
                           torch.get_num_threads())
        return y

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return torch.ops.aten.gelu_backward(grad, x, approximate="tanh")
        x = x.contiguous()
        grad = grad.contiguous().to(x.dtype)
        out = torch.empty_like(x)
        _kernels.gelu_tanh(x.data_ptr(), grad.data_ptr(), out.data_ptr(), int(x.dtype == torch.bfloat16),
                           x.numel(), torch.get_num_threads())
        return out


@ACTIVATIONS.register("gelu")
def gelu(x):
    return F.gelu(x)


@ACTIVATIONS.register("gelu_fast")
def gelu_fast(x):
    # tanh approximation (GPT-2's "gelu_new", UER's gelu_fast):
    # 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))): the native kernel on CPU, else torch's
    if _kernels is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16):
        return _NativeGeluTanh.apply(x)
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


@ACTIVATIONS.register("tanh")
def tanh(x):
    return torch.tanh(x)


def get_activation(name):
    return ACTIVATIONS.get(name, key="hidden_act")
