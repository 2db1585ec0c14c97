"""Loading and saving weights. See uer_like.io.checkpoint for load_model / save_model."""
from .checkpoint import load_model, load_state_dict_file, save_model  # noqa: F401
