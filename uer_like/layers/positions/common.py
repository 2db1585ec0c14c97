"""What the schemes that put positions into attention share: the config check and the mask helpers."""
import torch

from ...errors import ConfigError, DataError

ABSOLUTE_EMBEDDINGS = ("pos", "sinusoidalpos", "sinusoidalpos_2019")


def check_relative_config(config, source, scheme):
    if config.encoder != "transformer":
        raise ConfigError(f"{source}: position_scheme '{scheme}' needs encoder 'transformer', got {config.encoder!r}")
    absolute = [e for e in config.embedding if e in ABSOLUTE_EMBEDDINGS]
    if absolute:
        raise ConfigError(f"{source}: position_scheme '{scheme}' puts positions into attention; the embedding must "
                          f"not add absolute positions too: remove {', '.join(map(repr, absolute))} from "
                          f"embedding {config.embedding}")


def check_sequence_length(length, limit, table):
    """A one-line error for a sequence longer than a position table covers (instead of an index error)."""
    if length > limit:
        raise DataError(f"a sequence of {length} tokens is longer than the {table} covers (max_seq_length {limit}); "
                        f"truncate it to {limit} tokens or use a model with a longer table")


def context_mask(ctx, queries, keys, device):
    """The context's mask [batch | 1, 1, queries | 1, keys] (bool, True = may attend, or an additive float
    mask), or None when every key is visible; SDPA's own causal flag becomes an explicit lower-triangular
    bool mask."""
    if ctx.mask is not None:
        return ctx.mask
    if ctx.is_causal:
        return torch.ones(queries, keys, dtype=torch.bool, device=device).tril_(keys - queries)[None, None]
    return None


def apply_mask(scores, mask):
    """Attention scores (or a float bias) with the context's mask applied: a bool mask pushes the keys a
    query may not see to the dtype's minimum (finite, so a row without any visible key gives uniform
    weights instead of NaN); an additive float mask is added."""
    if mask is None:
        return scores
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return scores + mask.to(scores.dtype)
