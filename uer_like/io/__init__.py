"""Loading and saving weights: UER, safetensors, Hugging Face and Google TF checkpoints.

See uer_like.io.checkpoint for load_model / save_model, uer_like.io.formats for the registered formats (one
module each: detect, read, write) and the load result (model.load_info), uer_like.io.hf for the key maps,
uer_like.io.uer for UER-py's layouts, uer_like.io.tf for TF checkpoints, uer_like.io.safe for the safety
checks, uer_like.io.vocab for resizing a model to a new vocabulary, uer_like.io.features for feature
extraction and uer_like.io.average for averaging checkpoints.
"""
from .checkpoint import (check_seq_length, check_vocab, detect_format, load_into, load_model, load_state_dict_file,
                         save_hf, save_model)
from .average import average_models
from .features import extract_features
from .vocab import resize_vocab

__all__ = ["average_models", "check_seq_length", "check_vocab", "detect_format", "extract_features", "load_into",
           "load_model", "load_state_dict_file", "resize_vocab", "save_hf", "save_model"]
