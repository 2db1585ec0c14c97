"""Format "paddle": PaddleNLP releases (model_state.pdparams + config.json / model_config.json), read by
io/paddle.py (a restricted unpickler) into their Hugging Face form; read only. Detected before the hf format:
a PaddleNLP 2.6+ config.json has a model_type too."""
from .. import paddle
from .release import register_release

register_release("paddle", paddle, order=10)
