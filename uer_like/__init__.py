"""uer_like: a UER-style pluggable pretraining framework (embedding > encoder > target, from JSON configs).

The model and weights API (Model, build_model, load_model, save_model) and text generation (generate,
score) are imported on first use, so that torch-free work (preprocess.py, configs, tokenizers, segmentation) starts
without importing torch."""
from .config import ModelConfig, load_config  # noqa: F401
from .errors import CheckpointError, ConfigError, DataError, DistributedError, UerLikeError  # noqa: F401

__version__ = "0.1.0"

_LAZY = {"Model": ".model", "build_model": ".model", "load_model": ".io", "save_model": ".io",
         "generate": ".generation", "score": ".generation"}
__all__ = ["ModelConfig", "load_config", "CheckpointError", "ConfigError", "DataError", "DistributedError",
           "UerLikeError", "segment", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'uer_like' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def segment(text, hmm=True):
    """Chinese word segmentation identical to jieba.lcut(text, HMM=hmm) (native when built)."""
    from .segmentation import segment as _segment

    return _segment(text, hmm=hmm)
