import torch

from ...errors import ConfigError
from ...registry import POSITION_SCHEMES
from ..attention import AttentionScheme
from .common import check_relative_config, check_sequence_length


def rotary_table(max_len, dim):
    """cos, sin [max_len, dim / 2] of the angles position / 10000^(2i / dim), computed in float64 and
    stored in float32, as transformers' RoFormer computes its table."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    angles = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                             torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    return angles.cos().float(), angles.sin().float()


@POSITION_SCHEMES.register("rotary")
class RotaryPositions(AttentionScheme):
    """Rotary position embedding (RoFormer, Su et al. 2021; TencentPretrain's `rotary_position_embedding`).

    Each pair of dimensions (2i, 2i+1) of every head of q and k is rotated by the angle
    position * 10000^(-2i / head_dim), so that q.k depends on the distance between the tokens only. With
    `rotary_value` the values are rotated too (RoFormer's option). Keys are rotated before they are cached,
    values (if at all) when they are used. Attention stays on scaled_dot_product_attention.

    The sin/cos table covers max_seq_length positions (computed in float64, as transformers' RoFormer), so a
    longer sequence is an error, as with a learned position table.
    """

    def __init__(self, config):
        super().__init__()
        dim = config.hidden_size // config.heads_num
        self.max_len = config.max_seq_length
        self.rotary_value = config.rotary_value
        cos, sin = rotary_table(self.max_len, dim)
        self.register_buffer("cos", cos, persistent=False)  # [max_len, head_dim / 2]
        self.register_buffer("sin", sin, persistent=False)

    @classmethod
    def check_config(cls, config, source):
        check_relative_config(config, source, "rotary")
        if (config.hidden_size // config.heads_num) % 2:
            raise ConfigError(f"{source}: position_scheme 'rotary' rotates pairs of dimensions; the head size "
                              f"hidden_size / heads_num = {config.hidden_size // config.heads_num} must be even")

    def _rotate(self, x, positions):
        # x: [batch, heads, seq, head_dim]; positions: [batch | 1, seq]
        cos = self.cos[positions].unsqueeze(1).to(x.dtype)  # [batch | 1, 1, seq, head_dim / 2]
        sin = self.sin[positions].unsqueeze(1).to(x.dtype)
        pairs = x.unflatten(-1, (-1, 2))
        a, b = pairs[..., 0], pairs[..., 1]
        return torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1).flatten(-2)

    def transform(self, q, k, ctx):
        if ctx.positions is None:
            check_sequence_length(q.size(2), self.max_len, "rotary position table")
        positions = ctx.query_positions
        return self._rotate(q, positions), self._rotate(k, positions)

    def attend(self, q, k, v, ctx, dropout_p, scale):
        if self.rotary_value:
            v = self._rotate(v, ctx.key_positions)
        return super().attend(q, k, v, ctx, dropout_p, scale)
