"""Importing this module registers every built-in embedding, encoder, target, activation and norm."""
from . import decoders, embeddings, encoders, layers, targets  # noqa: F401
from .layers import activations, norms, positions  # noqa: F401
