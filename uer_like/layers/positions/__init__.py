"""Position schemes: how attention sees token order (config key `position_scheme`).

Each scheme is one file here, registered in POSITION_SCHEMES, and is an `AttentionScheme`
(layers/attention.py): every attention layer owns one (`self_attn.scheme`), so a scheme may hold
per-layer parameters. It changes q and k before they are cached (`transform`) and/or computes attention
itself (`attend`, which sees q, k, v, the context's mask and the query/key positions):

- absolute: positions are added by the embedding (`pos` learned, `sinusoidalpos` fixed); attention is
  position-free and runs scaled_dot_product_attention (today's BERT/GPT-2 path, unchanged);
- rotary: RoFormer's rotation of q and k (and optionally v); still scaled_dot_product_attention;
- nezha: NEZHA's functional relative positions, sinusoidal tables added to keys and values, distance
  clipped at max_relative_position (its own attention: the value term needs the probabilities);
- xlnet: XLNet's relative attention (r_w / r_r / segment biases, content stream); the relative terms
  become a float mask, so scaled_dot_product_attention still computes the softmax and the values;
- relative_position_bucket: T5's (and MPNet's) learned bias per head and bucket of the relative distance,
  bidirectional or causal; one table for all layers, owned by the encoder (the scheme's `shared` hook),
  its bias computed once per forward and passed to scaled_dot_product_attention as a float mask.

A scheme class also checks the config it is used with (`check_config(config, source)`), so that a bad
combination is one ConfigError before any tensor is built.
"""
from ...registry import POSITION_SCHEMES
from . import absolute, bucket, nezha, rotary, xlnet  # noqa: F401  (registration)


def build_scheme(config):
    """The configured scheme for one attention layer."""
    return POSITION_SCHEMES.get(config.position_scheme, key="position_scheme")(config)
