"""The embedding/encoder protocol: explicit positions, the key/value cache, the RNN carried state and the
attention scheme hook. Reference: every prompt run alone through the plain full forward."""
import pytest
import torch

import uer_like
from uer_like.errors import ConfigError
from uer_like.layers.attention import AttentionScheme

V = 120
SMALL = dict(layers_num=2, hidden_size=32, emb_size=32, heads_num=4, feedforward_size=64, dropout=0.0)
TRANSFORMERS = {
    "gpt2_pre_ln": ("gpt2/mini_config.json", SMALL),
    "post_ln_causal": ("bert/tiny_config.json", dict(SMALL, mask="causal", target=["lm"])),
    "albert_shared_causal": ("albert/base_config.json",
                             dict(SMALL, emb_size=16, mask="causal", target=["lm"])),
    "sinusoidal_causal": ("gpt2/mini_config.json", dict(SMALL, embedding=["word", "sinusoidalpos"])),
    "sinusoidal_2019_causal": ("gpt2/mini_config.json", dict(SMALL, embedding=["word", "sinusoidalpos_2019"])),
    # T5's causal buckets (8 buckets, max_distance 12: the longest rows reach the log and the clamped ones); the
    # new tokens' bias must use their absolute positions
    "relative_bucket_causal": ("gpt2/mini_config.json",
                               dict(SMALL, embedding=["word"], position_scheme="relative_position_bucket",
                                    relative_attention_buckets_num=8, relative_attention_max_distance=12)),
    "relative_bucket_post_ln_causal": ("mpnet/tiny_config.json", dict(SMALL, mask="causal", target=["lm"])),
}


def _model(name, **kw):
    torch.manual_seed(0)
    return uer_like.build_model(name, vocab_size=V, **kw).eval()


def _left_pad(seqs):
    s = max(len(x) for x in seqs)
    src = torch.zeros(len(seqs), s, dtype=torch.long)
    seg = torch.zeros_like(src)
    for i, x in enumerate(seqs):
        src[i, s - len(x):] = x
        seg[i, s - len(x):] = 1
    return src, seg


def _alone(model, ids):
    return model.encode(ids[None], torch.ones(1, len(ids), dtype=torch.long))[0]


def _check_decoding(model, lens, padded=True, chunk=2, tol=1e-5):
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(1, V, (n,), generator=g) for n in lens]
    src, seg = _left_pad(seqs)
    new = torch.randint(1, V, (len(seqs), 5), generator=g)
    with torch.inference_mode():
        cache = model.init_cache(len(seqs), src.size(1) + new.size(1), padded=padded)
        h = model.encode(src, seg, cache=cache)
        for i, x in enumerate(seqs):
            assert (h[i, src.size(1) - len(x):] - _alone(model, x)).abs().max() < tol
        # one chunk of `chunk` tokens after the prompt (queries 2.., keys 0..), then single tokens
        t = 0
        for step in [chunk] + [1] * (new.size(1) - chunk):
            h = model.encode(new[:, t:t + step], torch.ones(len(seqs), step, dtype=torch.long), cache=cache)
            t += step
            for i, x in enumerate(seqs):
                want = _alone(model, torch.cat([x, new[i, :t]]))[-step:]
                assert (h[i] - want).abs().max() < tol, (step, t, i)
        assert cache.length == src.size(1) + new.size(1)


@pytest.mark.parametrize("kind", sorted(TRANSFORMERS))
def test_kv_cache_left_padded_prompts_match_each_prompt_alone(kind):
    name, kw = TRANSFORMERS[kind]
    _check_decoding(_model(name, **kw), [5, 9, 1, 7])


def test_kv_cache_without_padding_single_token_steps_see_every_cached_key():
    # padded=False: no mask at all; a single new query must see all T cached keys, not only the first
    # (scaled_dot_product_attention(is_causal=True) aligns its mask top-left)
    name, kw = TRANSFORMERS["gpt2_pre_ln"]
    _check_decoding(_model(name, **kw), [6, 6, 6], padded=False)


def test_explicit_positions_equal_the_default_and_shift_the_embedding():
    name, kw = TRANSFORMERS["gpt2_pre_ln"]
    m = _model(name, **kw)
    src = torch.randint(1, V, (2, 6))
    seg = torch.ones_like(src)
    with torch.inference_mode():
        default = m.encode(src, seg)
        explicit = m.encode(src, seg, positions=torch.arange(6).expand(2, 6))
        shifted = m.embed(src, seg, positions=torch.arange(3, 9)[None])
    assert torch.allclose(default, explicit, atol=1e-6)
    want = m.embedding.word.embedding.weight[src] + m.embedding.pos.embedding.weight[3:9]
    assert torch.allclose(shifted, m.embedding.layer_norm(want) if m.embedding.layer_norm else want)


def test_left_padded_batch_without_cache_uses_positions_and_padding_mask():
    name, kw = TRANSFORMERS["gpt2_pre_ln"]
    m = _model(name, **kw)
    seqs = [torch.randint(1, V, (n,)) for n in (3, 8)]
    src, seg = _left_pad(seqs)
    pos = (seg.cumsum(1) - 1).clamp(min=0)
    with torch.inference_mode():
        h = m.encode(src, seg, positions=pos)
        for i, x in enumerate(seqs):
            assert (h[i, -len(x):] - _alone(m, x)).abs().max() < 1e-5
        assert torch.isfinite(h).all()  # padding queries see themselves: no NaN rows


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_rnn_carried_state_left_padded(rnn):
    m = _model(f"rnn/{rnn}_config.json", hidden_size=32, emb_size=32, dropout=0.0)
    _check_decoding(m, [4, 7, 2], tol=1e-6)


def test_bidirectional_encoder_refuses_a_cache():
    m = _model("rnn/bilstm_config.json", hidden_size=32, emb_size=32)
    with pytest.raises(ConfigError, match="bidirectional"):
        m.init_cache(1, 8)


def test_cache_overflow_is_an_error():
    name, kw = TRANSFORMERS["gpt2_pre_ln"]
    m = _model(name, **kw)
    cache = m.init_cache(1, 4)
    with pytest.raises(ValueError, match="holds 4 tokens"):
        m.encode(torch.ones(1, 5, dtype=torch.long), torch.ones(1, 5, dtype=torch.long), cache=cache)


class _Rotary(AttentionScheme):
    """A minimal rotary scheme: the hook's transform() sees q, k per head and their positions."""

    def transform(self, q, k, ctx):
        d = q.size(-1)
        inv = 1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.float) / d))
        ang = ctx.query_positions[:, None, :, None].float() * inv  # [batch | 1, 1, seq, d/2]
        cos, sin = ang.cos(), ang.sin()

        def rot(x):
            x1, x2 = x[..., 0::2], x[..., 1::2]
            return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).flatten(-2)

        return rot(q), rot(k)


def test_attention_scheme_hook_caches_transformed_keys():
    name, kw = TRANSFORMERS["gpt2_pre_ln"]
    m = _model(name, **dict(kw, embedding=["word"]))  # positions only through the scheme
    x = torch.randint(1, V, (6,))
    with torch.inference_mode():
        plain = _alone(m, x)
        for layer in m.encoder.transformer:
            layer.self_attn.scheme = _Rotary()
        assert (_alone(m, x) - plain).abs().max() > 1e-3  # the scheme is used
        # rotary is relative: shifting every position changes nothing, so the scheme saw these positions
        shifted = m.encode(x[None], torch.ones(1, 6, dtype=torch.long), positions=torch.arange(4, 10)[None])
        assert (shifted[0] - _alone(m, x)).abs().max() < 1e-5
    _check_decoding(m, [5, 9, 1])  # cached (rotated once) keys == keys rotated in the full forward
