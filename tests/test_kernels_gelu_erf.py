"""The exact (erf) GELU's native backward (csrc/kernels/training.c gelu_erf_backward, bound in
uer_like/layers/activations.py): torch's forward, a backward that matches torch's gelu_backward."""
import pytest
import torch
import torch.nn.functional as F

import uer_like.layers.activations as A

pytestmark = pytest.mark.skipif(A._kernels is None, reason="uer_like._kernels is not built (pip install -e .)")


def grads(x, dy, fn):
    x = x.detach().requires_grad_()
    y = fn(x)
    (dx,) = torch.autograd.grad(y, x, dy)
    return y.detach(), dx


def bf16_ulp(v):
    """The spacing of bfloat16 values at |v| (8 significant bits)."""
    v = v.double().abs().clamp_min(2.0 ** -126)
    return torch.exp2(torch.floor(torch.log2(v)) - 7)


def test_float32_matches_torchs_gelu_backward_and_the_forward_is_torchs():
    torch.manual_seed(0)
    # a non-contiguous view of an odd size; values out to +-12 (both tails of erf)
    x = (torch.randn(301, 2 * 517) * 4).clamp(-12, 12)[:, ::2]
    dy = torch.randn(301, 517)
    y, dx = grads(x, dy, A.gelu)
    y_ref, dx_ref = grads(x, dy, F.gelu)
    assert torch.equal(y, y_ref)
    diff = (dx - dx_ref).abs().max().item()
    x64 = x.double()
    exact = dy.double() * (0.5 * torch.special.erfc(-x64 / 2 ** 0.5) + x64 * torch.exp(-x64 * x64 / 2) / (2 * torch.pi) ** 0.5)
    print(f"float32: max |native - torch| {diff:.2e}, max |native - float64| {(dx.double() - exact).abs().max():.2e}, "
          f"max |torch - float64| {(dx_ref.double() - exact).abs().max():.2e}")
    assert diff <= 2e-6
    assert (dx.double() - exact).abs().max() <= 1e-6


def test_bfloat16_within_one_ulp_of_torchs_and_threads_agree():
    torch.manual_seed(1)
    x = (torch.randn(700_001) * 3).bfloat16()  # several threads' worth
    dy = torch.randn(700_001).bfloat16()
    threads = torch.get_num_threads()
    try:
        out = {}
        for n in (1, 3):
            torch.set_num_threads(n)
            out[n] = grads(x, dy, A.gelu)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(out[1], out[3]))
    y, dx = out[1]
    y_ref, dx_ref = grads(x, dy, F.gelu)
    assert y.dtype == dx.dtype == torch.bfloat16 and torch.equal(y, y_ref)
    x64, dy64 = x.double(), dy.double()
    exact = dy64 * (0.5 * torch.special.erfc(-x64 / 2 ** 0.5) + x64 * torch.exp(-x64 * x64 / 2) / (2 * torch.pi) ** 0.5)

    def within_one_ulp(a, b):
        return (a.double() - b.double()).abs() <= bf16_ulp(torch.maximum(a.double().abs(), b.double().abs())) + 1e-37

    vs_torch, vs_exact = within_one_ulp(dx, dx_ref), within_one_ulp(dx, exact)
    # torch's own result loses accuracy left of about -5 (1 + erf cancels): there it is the float64 value we follow
    print(f"bfloat16: {(dx == dx_ref).double().mean():.2%} equal to torch's, {vs_torch.double().mean():.2%} within "
          f"one ulp of it ({vs_torch[x > -5].double().mean():.4%} for x > -5); {(dx == exact.bfloat16()).double().mean():.2%} "
          f"equal to the float64 value rounded once ({(dx_ref == exact.bfloat16()).double().mean():.2%} for torch's), "
          f"{vs_exact.double().mean():.4%} within one ulp of it")
    assert vs_torch.double().mean() >= 0.95 and vs_torch[x > -5].all()
    assert vs_exact.all() and (dx == exact.bfloat16()).double().mean() >= 0.99


def test_the_gelu_activation_runs_the_kernel_in_training_and_torchs_backward_for_second_derivatives(monkeypatch):
    calls = []
    native = A._kernels

    class Recording:
        def __getattr__(self, name):
            return getattr(native, name)

        def gelu_erf_backward(self, *args):
            calls.append(args[3])  # bf16 flag
            return native.gelu_erf_backward(*args)

    monkeypatch.setattr(A, "_kernels", Recording())
    assert A.get_activation("gelu") is A.gelu
    ffn = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Identity(), torch.nn.Linear(32, 8))
    x = torch.randn(16, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ffn[2](A.gelu(ffn[0](x)))
    out.float().sum().backward()
    assert calls == [1]  # bf16 under autocast
    # second derivatives: torch's differentiable gelu_backward, the same values as F.gelu's
    x = torch.linspace(-4, 4, 41).requires_grad_()
    (g,) = torch.autograd.grad(A.gelu(x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    x2 = x.detach().requires_grad_()
    (g2,) = torch.autograd.grad(F.gelu(x2).sum(), x2, create_graph=True)
    (h2,) = torch.autograd.grad(g2.sum(), x2)
    assert torch.equal(g, g2) and torch.equal(h, h2) and calls == [1]
    # no graph wanted (inference): torch's gelu itself, no autograd Function
    with torch.no_grad():
        assert torch.equal(A.gelu(x), F.gelu(x))
    # a NaN stays NaN (the non-finite guard must see it)
    xn = torch.tensor([float("nan"), 1.0], requires_grad=True)
    (gn,) = torch.autograd.grad(A.gelu(xn).sum(), xn)
    assert torch.isnan(gn[0]) and gn[1].item() == pytest.approx(1.0833155, abs=1e-6)  # gelu'(1) = Phi(1) + phi(1)
