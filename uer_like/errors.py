"""Exceptions raised at the edges (config, data, checkpoints), with messages in the user's words."""


class UerLikeError(Exception):
    """Base class: every error the library raises on bad user input."""


class ConfigError(UerLikeError, ValueError):
    """A config key or value is invalid."""


class DataError(UerLikeError, ValueError):
    """A corpus, dataset or vocabulary is invalid."""


class CheckpointError(UerLikeError, ValueError):
    """A checkpoint cannot be loaded (corrupt, unsafe, wrong shapes or keys)."""


class DistributedError(UerLikeError, RuntimeError):
    """A distributed run cannot go on: another rank failed, or the rendezvous cannot be reached."""


class TrainingError(UerLikeError, RuntimeError):
    """Training cannot go on: the loss diverged, or an output location cannot be written."""
