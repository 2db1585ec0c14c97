"""Layers with hand-written fast paths are held to their definitions."""
import pytest
import torch

from uer_like.layers.dropout import fast_dropout
from uer_like.layers.norms import UerLayerNorm, _UerLayerNormFn


def uer_py_layer_norm(x, gamma, beta, eps):
    # UER-py's LayerNorm, as written in uer/layers/layer_norm.py
    mean = x.mean(-1, keepdim=True)
    std = x.std(-1, keepdim=True)
    return gamma * (x - mean) / (std + eps) + beta


@pytest.mark.parametrize("eps", [1e-6, 0.3])
def test_uer_layer_norm_forward_and_gradients_match_the_definition(eps):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16, dtype=torch.double, requires_grad=True)
    g = torch.randn(16, dtype=torch.double, requires_grad=True)
    b = torch.randn(16, dtype=torch.double, requires_grad=True)
    y = _UerLayerNormFn.apply(x, g, b, eps)
    ref = uer_py_layer_norm(x, g, b, eps)
    assert torch.allclose(y, ref, atol=1e-12)
    dy = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, g, b), dy)
    want = torch.autograd.grad(ref, (x, g, b), dy)
    for a, w in zip(got, want):
        assert torch.allclose(a, w, atol=1e-10)
    assert torch.autograd.gradcheck(lambda x, g, b: _UerLayerNormFn.apply(x, g, b, eps), (x, g, b))


def test_uer_layer_norm_float32_and_constant_rows():
    ln = UerLayerNorm(8)
    x = torch.ones(2, 8)
    x[1] = torch.arange(8.0)
    y = ln(x)
    assert torch.isfinite(y).all() and torch.equal(y[0], torch.zeros(8))
    assert torch.allclose(y[1], uer_py_layer_norm(x[1], ln.gamma, ln.beta, 1e-6), atol=1e-6)


def test_fast_dropout_rate_scale_and_reproducibility():
    x = torch.ones(200, 1000)
    torch.manual_seed(3)
    a = fast_dropout(x, 0.1)
    torch.manual_seed(3)
    b = fast_dropout(x, 0.1)
    assert torch.equal(a, b)
    kept = (a != 0).float().mean().item()
    assert abs(kept - 0.9) < 0.005
    assert torch.allclose(a[a != 0], torch.full_like(a[a != 0], 1 / 0.9))
    assert abs(a.mean().item() - 1.0) < 0.01
    assert fast_dropout(x, 0.1, training=False) is x


def test_fast_dropout_gradient_is_the_mask():
    x = torch.randn(50, 40, requires_grad=True)
    torch.manual_seed(1)
    y = fast_dropout(x, 0.25)
    y.sum().backward()
    mask = (y != 0).float() / 0.75
    assert torch.allclose(x.grad, mask)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_cross_entropy_equals_cross_entropy_of_the_logits(bias):
    import torch.nn.functional as F

    from uer_like.layers.cross_entropy import linear_cross_entropy

    torch.manual_seed(0)
    h = torch.randn(2500, 16, dtype=torch.double, requires_grad=True)  # more rows than one chunk
    w = torch.randn(50, 16, dtype=torch.double, requires_grad=True)
    b = torch.randn(50, dtype=torch.double, requires_grad=True) if bias else None
    y = torch.randint(1, 50, (2500,))
    y[::7] = 0  # ignored
    loss, correct = linear_cross_entropy(h, w, b, y, ignore_index=0)
    logits = h @ w.t() + (b if bias else 0)
    ref = F.cross_entropy(logits, y, ignore_index=0)
    assert torch.allclose(loss, ref, atol=1e-12)
    assert correct.item() == ((logits.argmax(-1) == y) & (y > 0)).sum().item()
    params = (h, w, b) if bias else (h, w)
    for got, want in zip(torch.autograd.grad(2.5 * loss, params), torch.autograd.grad(2.5 * ref, params)):
        assert torch.allclose(got, want, atol=1e-12)
    with torch.no_grad():
        assert torch.allclose(linear_cross_entropy(h, w, b, y, ignore_index=0)[0], ref)
