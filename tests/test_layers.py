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


@pytest.fixture(params=["native", "torch ops"])
def dropout_path(request, monkeypatch):
    """fast_dropout through the native kernel, and through the torch-op recipe used without it."""
    import uer_like.layers.dropout as D

    if request.param == "native":
        assert D._kernels is not None, "uer_like._kernels is not built (pip install -e . builds it)"
    else:
        monkeypatch.setattr(D, "_kernels", None)
    return request.param


def test_fast_dropout_rate_scale_and_reproducibility(dropout_path):
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


def test_fast_dropout_gradient_is_the_mask(dropout_path):
    x = torch.randn(50, 40, requires_grad=True)
    torch.manual_seed(1)
    y = fast_dropout(x, 0.25)
    y.sum().backward()
    mask = (y != 0).float() / 0.75
    assert torch.allclose(x.grad, mask)


def test_fast_dropout_in_bf16_rounds_like_torch_and_keeps_the_kept_values(dropout_path):
    # the kept values are torch's x * (1 / (1 - p)) in bf16 (one rounding), the others +0
    torch.manual_seed(0)
    x = torch.randn(300, 257).bfloat16()  # a size that is not a multiple of 4
    y = fast_dropout(x, 0.2)
    kept = y != 0
    assert y.dtype == torch.bfloat16
    assert torch.equal(y[kept], (x * (1 / 0.8))[kept])
    assert abs((~kept).float().mean().item() - 0.2) < 0.01
    assert not torch.signbit(y[~kept]).any()


def test_native_dropout_mask_does_not_depend_on_the_thread_count():
    x = torch.randn(4_200_001)  # several threads' worth (one per 2M values), not a multiple of 4
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.manual_seed(5)
        one = fast_dropout(x, 0.3)
        torch.set_num_threads(3)
        torch.manual_seed(5)
        three = fast_dropout(x, 0.3)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, three)


def _splitmix64(z):
    m = (1 << 64) - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


@pytest.mark.parametrize("n", [1, 3, 4, 7, 1001, 4 * 2_097_152 + 6])
def test_native_dropout_mask_is_the_counter_based_recipe(n):
    """Element 4k + q is kept when 16-bit chunk q of splitmix64(seed + k * golden) >= round(p * 65536) (the
    kernel packs the four bytes of a hash into one store): checked against the recipe written out in Python, at
    the start and the end of the tensor (a partial last group; the last case spans four threads' shares)."""
    import uer_like.layers.dropout as D

    assert D._kernels is not None, "uer_like._kernels is not built (pip install -e . builds it)"
    seed, threshold = 0x1234_5678_9ABC_DEF0, round(0.3 * 65536)
    x = torch.ones(n)
    y, mask = torch.empty_like(x), torch.empty(n, dtype=torch.uint8)
    D._kernels.dropout(x.data_ptr(), y.data_ptr(), mask.data_ptr(), 0, n, 0, seed, threshold, 1 / 0.7, 4)
    idx = sorted(set(range(min(n, 64))) | set(range(max(0, n - 64), n)))
    want = [int((_splitmix64((seed + (i // 4) * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)) >> (16 * (i % 4)))
                & 0xFFFF >= threshold) for i in idx]
    assert mask[idx].tolist() == want
    assert torch.equal(y, mask.float() * torch.tensor(1 / 0.7))


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


def _attention_by_definition(q, k, v, mask, is_causal, keep, scale):
    """softmax(q k^T x scale + mask) v with the kept weights `keep` (0 or 1 / (1 - p)), in float64."""
    q, k, v = q.double(), k.double(), v.double()
    s = q @ k.transpose(-1, -2) * scale
    if is_causal:
        mask = torch.ones(s.shape[-2:], dtype=torch.bool).tril()
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask.double()
    return (torch.softmax(s, -1) * keep.double()) @ v


@pytest.mark.parametrize("kind", ["padding", "causal", "float", "none"])
def test_attention_with_dropout_on_cpu_is_the_definition_with_fast_dropouts_mask(kind):
    from uer_like.layers.attention import attention

    torch.manual_seed(0)
    b, h, s, d, p = 3, 2, 9, 8, 0.3
    q, k, v = (torch.randn(b, h, s, d, requires_grad=True) for _ in range(3))
    mask = None
    if kind == "padding":
        mask = (torch.arange(s)[None, :] < torch.tensor([9, 5, 2])[:, None])[:, None, None, :]
    elif kind == "float":
        mask = torch.randn(b, 1, s, s)
    torch.manual_seed(7)
    out = attention(q, k, v, mask, kind == "causal", p, 0.3)
    torch.manual_seed(7)  # the same draw, made on a tensor of the weights' shape
    keep = fast_dropout(torch.ones(b, h, s, s), p)
    assert 0.2 < (keep == 0).float().mean().item() < 0.4
    ref = _attention_by_definition(q, k, v, mask, kind == "causal", keep, 0.3)
    assert torch.allclose(out.double(), ref, atol=1e-5)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), g)
    want = torch.autograd.grad(ref, (q, k, v), g.double())
    for a, w in zip(got, want):
        assert torch.allclose(a, w, atol=1e-5)


def test_attention_with_dropout_is_unbiased_and_without_it_is_the_definition():
    from uer_like.layers.attention import attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 6, 4) for _ in range(3))
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])[:, None, None, :]
    exact = _attention_by_definition(q, k, v, mask, False, torch.ones(2, 2, 6, 6), 0.5).float()
    assert torch.allclose(attention(q, k, v, mask), exact, atol=1e-6)
    mean = sum(attention(q, k, v, mask, dropout_p=0.5) for _ in range(4000)) / 4000
    assert torch.allclose(mean, exact, atol=0.05)


def test_attention_with_dropout_in_bf16_follows_fp32():
    from uer_like.layers.attention import attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 32, 16) for _ in range(3))
    torch.manual_seed(1)
    ref = attention(q, k, v, None, True, 0.1)
    torch.manual_seed(1)
    low = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), None, True, 0.1)
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max().item() < 0.05


def _head_case(n, hid, vocab, bias, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = (torch.randn(n, hid, generator=g) * scale).requires_grad_()
    w = (torch.randn(vocab, hid, generator=g) * 0.3).requires_grad_()
    b = (torch.randn(vocab, generator=g) * 0.1).requires_grad_() if bias else None
    y = torch.randint(0, vocab, (n,), generator=g)
    y[::7] = -100
    return h, w, b, y


def _head(h, w, b, y, dtype=None):
    from uer_like.layers.cross_entropy import linear_cross_entropy

    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        loss, correct = linear_cross_entropy(h, w, b, y)
    params = [t for t in (h, w, b) if t is not None]
    return (loss, correct, *torch.autograd.grad(loss, params))


def test_the_native_softmax_kernel_is_built():
    import uer_like.layers.cross_entropy as ce

    assert ce._kernels is not None, "uer_like._kernels is not built (pip install -e . builds it)"


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("scale", [1.0, 40.0])  # 40: logits in the hundreds (exp's range reduction, underflow)
def test_native_softmax_kernel_equals_cross_entropy_in_float64(bias, scale):
    import torch.nn.functional as F

    from uer_like.layers.cross_entropy import CHUNK_ROWS

    h, w, b, y = _head_case(CHUNK_ROWS + 37, 24, 1001, bias, scale)  # two chunks; a vocabulary of odd size
    loss, correct, *grads = _head(h, w, b, y)
    params = [t for t in (h, w, b) if t is not None]
    p64 = [t.detach().double().requires_grad_() for t in params]
    logits = p64[0] @ p64[1].t() + (p64[2] if bias else 0)
    ref = F.cross_entropy(logits, y)
    want = torch.autograd.grad(ref, p64)
    assert abs(loss.item() - ref.item()) <= 1e-5 * max(1.0, abs(ref.item()))
    assert correct.item() == ((logits.argmax(-1) == y) & (y != -100)).sum().item()
    for got, exp in zip(grads, want):
        assert (got.double() - exp).abs().max() <= 1e-5 * max(1.0, exp.abs().max().item())


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_native_softmax_kernel_equals_the_torch_ops_it_replaces(dtype, monkeypatch):
    import uer_like.layers.cross_entropy as ce

    h, w, b, y = _head_case(700, 32, 3000, True)
    native = _head(h, w, b, y, dtype)
    monkeypatch.setattr(ce, "_kernels", None)
    ops = _head(h, w, b, y, dtype)
    assert native[1].item() == ops[1].item()
    for got, want in zip(native[:1] + native[2:], ops[:1] + ops[2:]):
        assert got.dtype == want.dtype
        tol = 1e-6 if dtype is None else 1e-2  # bf16: a gradient rounds once either way, sometimes to neighbours
        assert (got.float() - want.float()).abs().max() <= tol * want.float().abs().max()


def test_native_softmax_kernel_threads_agree_and_bad_labels_are_refused():
    h, w, b, y = _head_case(300, 16, 257, True)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _head(h, w, b, y)
        torch.set_num_threads(3)
        three = _head(h, w, b, y)
    finally:
        torch.set_num_threads(threads)
    for a, c in zip(one, three):
        assert torch.allclose(a.float(), c.float(), rtol=1e-6, atol=1e-7)
    y[3] = 257
    with pytest.raises(IndexError, match="outside the vocabulary of 257"):
        _head(h, w, b, y)


def test_attention_with_a_float_mask_that_needs_a_gradient_gets_it():
    from uer_like.layers.attention import attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 4) for _ in range(3))
    bias = torch.randn(2, 2, 5, 5, requires_grad=True)  # e.g. XLNet's position terms
    attention(q, k, v, bias, dropout_p=0.1).sum().backward()
    assert bias.grad is not None and bias.grad.abs().sum() > 0


def _gelu_tanh_definition(x):
    # GPT-2's gelu_new, 0.5 x (1 + tanh(u)), in float64, written as x sigmoid(2u) (the same function): 1 + tanh(u)
    # cancels to 0 for u below about -19 even in float64
    x = x.double()
    return x * torch.sigmoid(2 * (2 / torch.pi) ** 0.5 * (x + 0.044715 * x**3))


@pytest.mark.parametrize("path", ["native", "torch ops"])
def test_gelu_fast_and_its_gradient_follow_the_definition_in_float32(path, monkeypatch):
    import uer_like.layers.activations as A

    if path == "native":
        assert A._kernels is not None, "uer_like._kernels is not built (pip install -e . builds it)"
    else:
        monkeypatch.setattr(A, "_kernels", None)
    torch.manual_seed(0)
    # a non-contiguous view of an odd size; values out to +-40 (the sigmoid's both tails)
    x = (torch.randn(301, 2 * 517) * 6).clamp(-40, 40)[:, ::2].requires_grad_()
    dy = torch.randn(301, 517)
    y = A.gelu_fast(x)
    (dx,) = torch.autograd.grad(y, x, dy)
    x64 = x.detach().double().requires_grad_()
    ref = _gelu_tanh_definition(x64)
    (dref,) = torch.autograd.grad(ref, x64, dy.double())
    assert y.dtype == torch.float32 and dx.dtype == torch.float32
    assert (y.double() - ref).abs().max() <= 2e-6 * ref.abs().max()
    assert (dx.double() - dref).abs().max() <= 2e-6 * dref.abs().max()
    assert ((y.double() - ref).abs() <= 1e-6 * ref.abs() + 1e-7).all()


def test_native_gelu_fast_in_bf16_rounds_the_definition_once_and_threads_agree():
    import uer_like.layers.activations as A

    torch.manual_seed(1)
    x = (torch.randn(4_200_001) * 4).bfloat16().requires_grad_()  # several threads' worth (one per 2M values)
    dy = torch.randn(4_200_001).bfloat16()
    threads = torch.get_num_threads()
    try:
        out = {}
        for n in (1, 3):
            torch.set_num_threads(n)
            y = A.gelu_fast(x)
            out[n] = (y, *torch.autograd.grad(y, x, dy))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(out[1], out[3]))
    y, dx = out[1]
    assert y.dtype == torch.bfloat16 and dx.dtype == torch.bfloat16
    x64 = x.detach().double().requires_grad_()
    ref = _gelu_tanh_definition(x64)
    (dref,) = torch.autograd.grad(ref, x64, dy.double())
    # within one bfloat16 step (2^-7 relative) of the float64 value: a single rounding of a float32 result
    for got, want in ((y, ref), (dx, dref)):
        assert ((got.double() - want).abs() <= 2**-7 * want.abs() + 1e-30).all()


def test_native_gelu_fast_second_derivatives_and_extreme_inputs():
    import torch.nn.functional as F

    import uer_like.layers.activations as A

    assert A._kernels is not None, "uer_like._kernels is not built (pip install -e . builds it)"
    # second derivatives (a gradient penalty, a Hessian-vector product) go through torch's differentiable backward
    x = torch.linspace(-4, 4, 41, dtype=torch.float32).requires_grad_()
    (g,) = torch.autograd.grad(A.gelu_fast(x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    x64 = x.detach().double().requires_grad_()
    (g64,) = torch.autograd.grad(_gelu_tanh_definition(x64).sum(), x64, create_graph=True)
    (h64,) = torch.autograd.grad(g64.sum(), x64)
    assert (h.double() - h64).abs().max() <= 1e-5
    # far out in the tails: gelu is x (right) and 0 (left), as torch's; its gradient 1 and 0 (at +-3e38 x^3
    # overflows and both give NaN)
    x = torch.tensor([-3e38, -1e19, -1e13, -100.0, 100.0, 1e13, 3e38], requires_grad=True)
    y = A.gelu_fast(x)
    (dx,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(y.detach(), F.gelu(x.detach(), approximate="tanh"))
    assert torch.equal(dx[1:-1], torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0]))


def test_native_dropout_backward_with_create_graph_is_differentiable():
    import uer_like.layers.dropout as D

    assert D._kernels is not None, "uer_like._kernels is not built (pip install -e . builds it)"
    x = torch.randn(64, 33, requires_grad=True)
    torch.manual_seed(2)
    y = fast_dropout(x, 0.3)
    kept = (y != 0).float() / 0.7
    # d/dx of sum((dL/dx)^2) for L = sum(dropout(x)^2): the mask's scale enters four times
    (g,) = torch.autograd.grad((y**2).sum(), x, create_graph=True)
    assert torch.allclose(g, 2 * x * kept**2)
    (h,) = torch.autograd.grad((g**2).sum(), x)
    assert torch.allclose(h, 8 * x * kept**4, rtol=1e-5)


def test_the_fused_head_refuses_second_derivatives_instead_of_dropping_them():
    from uer_like.layers.cross_entropy import linear_cross_entropy

    h, w, b, y = _head_case(40, 16, 101, True)
    loss, _ = linear_cross_entropy(h, w, b, y)
    with pytest.raises(RuntimeError, match="no second derivatives"):
        torch.autograd.grad(loss, h, create_graph=True)
    loss, _ = linear_cross_entropy(h, w, b, y)
    assert torch.autograd.grad(loss, h)[0].shape == h.shape  # a plain backward is unaffected
