"""layers/decoding_linear.py: linear layers laid out for a few rows while decoding compute what nn.Linear
computes (one row through the native kernel, several through packed copies kept across calls and made again
when the weight changes), and nothing is left swapped after the block."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from uer_like.layers.attention import ContextAttention
from uer_like.layers import decoding_linear
from uer_like.layers.decoding_linear import _COPIES, decoding_linears
from uer_like.layers.kernels import NATIVE


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("rows", [1, 3, 8])
def test_laid_out_linears_equal_the_linear_layer(bias, rows):
    torch.manual_seed(0)
    linear = nn.Linear(48, 500, bias=bias)
    for shape in [(rows, 48), (rows, 1, 48), (rows, 5, 48)]:  # a step, a step with a length axis, a prefill
        h = torch.randn(shape)
        with torch.inference_mode():
            want = linear(h)
            with decoding_linears(linear, rows):
                got = linear(h)
        assert got.shape == want.shape and (got - want).abs().max() < 1e-5
    assert "forward" not in linear.__dict__  # nn.Linear's own forward again


def test_the_query_rows_of_cross_attention_are_laid_out_too():
    torch.manual_seed(0)
    attn = ContextAttention(32, 4, 0.0).eval()
    x = torch.randn(2, 1, 32)
    with torch.inference_mode():
        want = attn.project_query(x)
        with decoding_linears(attn, 2):
            assert "project_query" in attn.__dict__
            got = attn.project_query(x)
    assert (got - want).abs().max() < 1e-5 and "project_query" not in attn.__dict__
    assert want.shape == (2, 1, 32)


def test_copies_are_reused_and_made_again_after_the_weight_changes():
    torch.manual_seed(0)
    linear = nn.Linear(16, 24)
    h = torch.randn(4, 16)
    with torch.inference_mode():
        with decoding_linears(linear, 4):
            linear(h)
        first = _COPIES[linear]["forward:mkldnn"][2]
        with decoding_linears(linear, 4):
            linear(h)
        assert _COPIES[linear]["forward:mkldnn"][2] is first  # the copy of the unchanged weight is kept
    with torch.no_grad():
        linear.weight.mul_(2)  # an optimizer step changes the weight in place
    with torch.inference_mode():
        with decoding_linears(linear, 4):
            got = linear(h)
        assert _COPIES[linear]["forward:mkldnn"][2] is not first
        assert (got - linear(h)).abs().max() < 1e-5


def test_nothing_is_swapped_with_autograd_on():
    linear = nn.Linear(8, 8)
    with decoding_linears(linear, 1):
        assert "forward" not in linear.__dict__
        linear(torch.randn(1, 8)).sum().backward()
    assert linear.weight.grad is not None


def test_an_error_inside_the_block_restores_the_layers():
    linear = nn.Linear(8, 8)
    with pytest.raises(ValueError), torch.inference_mode(), decoding_linears(linear, 4):
        raise ValueError("inside")
    assert "forward" not in linear.__dict__


def test_kv_cache_reorder_moves_the_generated_columns_as_a_gather_would():
    # KVCache.reorder gathers into a second buffer and swaps: after several reorders the cache holds what
    # gathering every row's history step by step gives, and the shared columns before `start` are kept
    from uer_like.layers.context import KVCache

    torch.manual_seed(0)
    cache = KVCache(2, 4, 3, 5, 10, torch.float32, "cpu", padded=False)
    want_k = torch.zeros_like(cache.k)
    want_v = torch.zeros_like(cache.v)
    start = 3
    for step in range(6):
        cols = slice(cache.length, cache.length + (start if step == 0 else 1))
        k = torch.randn(2, 4, 3, cols.stop - cols.start, 5)
        if step == 0:
            k = k[:, :1].expand(-1, 4, -1, -1, -1)  # the shared prompt columns: equal in every row
        v = k * 2 + 1
        cache.k[:, :, :, cols], cache.v[:, :, :, cols] = k, v
        want_k[:, :, :, cols], want_v[:, :, :, cols] = k, v
        cache.append(torch.ones(4, cols.stop - cols.start, dtype=torch.long), None)
        index = torch.randperm(4)
        cache.reorder(index, start=start)
        want_k = want_k.index_select(1, index)
        want_v = want_v.index_select(1, index)
        n = cache.length
        assert torch.equal(cache.k[:, :, :, :n], want_k[:, :, :, :n])
        assert torch.equal(cache.v[:, :, :, :n], want_v[:, :, :, :n])


@pytest.mark.skipif(NATIVE is None, reason="the native kernels are not built")
@pytest.mark.parametrize("shape", [(16, 64), (64, 16), (300, 130), (7, 1)])  # tall, wide, a tail of 2, in=1
def test_one_or_two_rows_go_through_the_native_kernel_on_the_weight_itself(shape, monkeypatch):
    # one or two rows: uer_like._kernels.matvec on nn.Linear's own [out, in] weight (no copy), equal to
    # nn.Linear up to the summation order, each row the same bits alone or beside another; a prefill (more
    # rows) takes nn.Linear's path
    torch.manual_seed(0)
    out, width = shape
    calls = []
    matvec = NATIVE.matvec
    monkeypatch.setattr(NATIVE, "matvec", lambda *a: (calls.append(a[4]), matvec(*a))[1])
    for bias in (True, False):
        layer = nn.Linear(width, out, bias=bias)
        pair = torch.randn(2, 1, width)
        for rows, h in ((1, pair[:1]), (1, pair[0, 0]), (2, pair), (2, pair[:, 0])):
            with torch.inference_mode():
                want = layer(h)
                with decoding_linears(layer, rows):
                    got, again = layer(h), layer(h)  # the second call goes straight to the laid-out function
                    if rows == 2:
                        assert torch.equal(got[1], layer(pair[1:]).reshape(got[1].shape))
            assert got.shape == want.shape and (got - want).abs().max() < 1e-5 and torch.equal(got, again)
        assert layer not in _COPIES and "forward" not in layer.__dict__
    assert calls == [1, 1, 1, 1, 2, 2, 1, 2, 2, 1] * 2
    calls.clear()
    with torch.inference_mode(), decoding_linears(layer, 1):
        prefill = torch.randn(1, 5, width)
        assert torch.equal(layer(prefill), F.linear(prefill, layer.weight, layer.bias))
        assert calls == []


def test_one_row_without_the_native_kernels_is_nn_linear(monkeypatch):
    monkeypatch.setattr(decoding_linear, "_kernels", None)
    torch.manual_seed(0)
    layer = nn.Linear(40, 70)
    h = torch.randn(1, 1, 40)
    with torch.inference_mode():
        with decoding_linears(layer, 1):
            got = layer(h)
        assert torch.equal(got, F.linear(h, layer.weight, layer.bias))
