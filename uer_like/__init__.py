"""uer_like: a UER-style pluggable pretraining framework (embedding > encoder > target, from JSON configs)."""
from .config import ModelConfig, load_config  # noqa: F401
from .errors import CheckpointError, ConfigError, DataError, UerLikeError  # noqa: F401
from .io import load_model, save_model  # noqa: F401
from .model import Model, build_model  # noqa: F401

__version__ = "0.1.0"


def segment(text, hmm=True):
    """Chinese word segmentation identical to jieba.lcut(text, HMM=hmm) (native when built)."""
    from .segmentation import segment as _segment

    return _segment(text, hmm=hmm)
