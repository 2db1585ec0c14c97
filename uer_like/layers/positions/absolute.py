from ...registry import POSITION_SCHEMES
from ..attention import AttentionScheme


@POSITION_SCHEMES.register("absolute")
class AbsolutePositions(AttentionScheme):
    """Absolute positions (BERT, GPT-2, ERNIE, ALBERT, ELECTRA): the embedding adds them (`pos` learned,
    `sinusoidalpos` fixed, or none at all); attention leaves q and k alone and runs
    scaled_dot_product_attention with the context's mask."""

    def __init__(self, config=None):
        super().__init__()

    @classmethod
    def check_config(cls, config, source):
        pass
