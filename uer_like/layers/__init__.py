from .activations import get_activation  # noqa: F401
from .norms import build_layernorm  # noqa: F401
