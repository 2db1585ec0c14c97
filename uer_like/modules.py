"""Every built-in component, registered; and the check of a config against them.

Importing this module registers every built-in embedding, encoder, decoder, target, activation, norm, position scheme
and tokenizer. `check_config(config)` asks each component a config names to validate its own keys (a class's
optional `check_config(config, source)` hook); config.py checks only the keys it owns and imports none of
this, so that loading a config needs no torch. Model() runs it before building anything.
"""
from . import decoders, embeddings, encoders, layers, targets, tokenizers  # noqa: F401
from .layers import activations, norms, positions  # noqa: F401
from .registry import ACTIVATIONS, DECODERS, EMBEDDINGS, ENCODERS, LAYERNORMS, POSITION_SCHEMES, TARGETS, TOKENIZERS


def _hook(component, config, source):
    check = getattr(component, "check_config", None)
    if check is not None:  # a component with keys of its own validates them
        check(config, source)


def check_config(config, source="config"):
    """Raise ConfigError (naming the key) when a component the config names is unknown or refuses its keys."""
    for name in config.embedding:
        _hook(EMBEDDINGS.get(name, key="embedding"), config, source)
    _hook(ENCODERS.get(config.encoder, key="encoder"), config, source)
    if config.decoder is not None:  # the decoder keys' own logic is in ModelConfig.validate
        _hook(DECODERS.get(config.decoder, key="decoder"), config, source)
        for name in config.tgt_embedding:
            EMBEDDINGS.get(name, key="tgt_embedding")
    for name in config.target:
        _hook(TARGETS.get(name, key="target"), config, source)
    _hook(POSITION_SCHEMES.get(config.position_scheme, key="position_scheme"), config, source)
    ACTIVATIONS.get(config.hidden_act, key="hidden_act")
    ACTIVATIONS.get(config.cls_act, key="cls_act")
    LAYERNORMS.get(config.layernorm, key="layernorm")
    TOKENIZERS.get(config.tokenizer, key="tokenizer")
