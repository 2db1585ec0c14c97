"""What a decoding step computes once instead of at every step, or with fewer calls, gives what the general
path gives: T5's RMS norm through torch's fused op (transformers' T5LayerNorm, bit for bit), the bucket bias
looked up by distance (the buckets of every distance, far beyond max_distance included), cross-attention
without a mask when no source holds padding (the masked result)."""
import pytest
import torch

import uer_like
from uer_like.layers.norms import T5LayerNorm
from uer_like.layers.positions.bucket import relative_position_bucket


def test_t5_rms_norm_equals_transformers_bit_for_bit():
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    torch.manual_seed(0)
    ours, theirs = T5LayerNorm(96, 1e-6), t5.T5LayerNorm(96, eps=1e-6)
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
    for shape, scale in (((1, 1, 96), 1.0), ((3, 7, 96), 30.0), ((2, 5, 96), 1e-3)):
        x = torch.randn(shape) * scale
        with torch.inference_mode():
            assert torch.equal(ours(x), theirs(x))
        assert torch.equal(ours(x), theirs(x))  # autograd on too


@pytest.mark.parametrize("bidirectional", [False, True])
def test_bias_by_distance_gives_every_distances_bucket(bidirectional):
    from uer_like.config import load_config
    from uer_like.layers.positions.bucket import RelativePositionBias

    config = load_config("t5/tiny_config.json", relative_attention_buckets_num=16,
                         relative_attention_max_distance=20)
    module = RelativePositionBias(config)
    module.bidirectional = bidirectional
    torch.nn.init.normal_(module.relative_attention_bias.weight)
    d = module.max_distance
    dist = torch.arange(-5 * d, 5 * d + 1)
    want = module.relative_attention_bias(relative_position_bucket(dist, bidirectional, module.num_buckets, d))
    with torch.no_grad():
        table = module.by_distance()
        got = torch.nn.functional.embedding(dist.clamp(-d, d) + d, table)
    assert torch.equal(got, want)
    # the saturation the clamp relies on: beyond max_distance every distance is in its side's last bucket
    far = relative_position_bucket(torch.tensor([-d, -d - 1, -100 * d]), bidirectional, module.num_buckets, d)
    assert far.unique().numel() == 1


def test_cross_attention_without_a_mask_equals_the_masked_one():
    torch.manual_seed(0)
    model = uer_like.build_model("t5/tiny_config.json", vocab_size=50, dropout=0.0).eval()
    src = torch.randint(1, 50, (2, 7))
    seg = torch.ones_like(src)
    tgt = torch.randint(1, 50, (2, 4))
    with torch.inference_mode():
        enc = model.encode(src, seg)
        masked, bare = model.memory(enc, seg), model.memory(enc, seg, padded=False)
        assert masked.mask is not None and bare.mask is None
        want = model.decode(tgt, torch.ones_like(tgt), masked)
        got = model.decode(tgt, torch.ones_like(tgt), bare)
    assert torch.equal(got, want)
