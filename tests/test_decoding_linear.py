"""layers/decoding_linear.py: linear layers laid out for a few rows while decoding compute what nn.Linear
computes, their weight copies are kept across calls and made again when the weight changes, and nothing is
left swapped after the block."""
import pytest
import torch
import torch.nn as nn

from uer_like.layers.attention import ContextAttention
from uer_like.layers.decoding_linear import _COPIES, decoding_linears


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
    h = torch.randn(1, 16)
    with torch.inference_mode():
        with decoding_linears(linear, 1):
            linear(h)
        first = _COPIES[linear]["forward:t"][2]
        with decoding_linears(linear, 1):
            linear(h)
        assert _COPIES[linear]["forward:t"][2] is first  # the copy of the unchanged weight is kept
    with torch.no_grad():
        linear.weight.mul_(2)  # an optimizer step changes the weight in place
    with torch.inference_mode():
        with decoding_linears(linear, 1):
            got = linear(h)
        assert _COPIES[linear]["forward:t"][2] is not first
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


def test_a_wide_layer_keeps_its_own_layout_for_one_row_and_a_tall_one_gets_a_copy():
    # one row through a layer wider than tall (a feed-forward's second layer) streams faster in nn.Linear's
    # [out, in] layout: no copy is made for it; a tall one (out >= in) computes through its [in, out] copy
    torch.manual_seed(0)
    wide, tall = nn.Linear(64, 16), nn.Linear(16, 64)
    for layer, copied in ((wide, False), (tall, True)):
        h = torch.randn(1, 1, layer.in_features)
        with torch.inference_mode():
            want = layer(h)
            with decoding_linears(layer, 1):
                got = layer(h)
                again = layer(h)  # the second call goes straight to the laid-out function
        assert got.shape == want.shape and (got - want).abs().max() < 1e-5 and torch.equal(got, again)
        assert ("forward:t" in _COPIES.get(layer, {})) == copied
        assert "forward" not in layer.__dict__
