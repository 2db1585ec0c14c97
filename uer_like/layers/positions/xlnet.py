import torch
import torch.nn as nn

from ...errors import ConfigError
from ...registry import POSITION_SCHEMES
from ..attention import AttentionScheme, attention
from ..dropout import Dropout
from .common import apply_mask, check_relative_config, context_mask


@POSITION_SCHEMES.register("xlnet")
class XLNetRelativeAttention(AttentionScheme):
    """XLNet's relative attention (Yang et al. 2019; Transformer-XL's positions plus segment encoding), the
    content stream, as fine-tuning uses it (no memory).

        score[i, j] = ((q_i + r_w) . k_j  +  (q_i + r_r) . W_r pe(pos_i - pos_j)  +  (q_i + r_s) . s_ij) * scale

    pe is the sinusoidal encoding of the relative distance (sines then cosines over hidden_size, float32 as
    XLNet computes it; clamped to +-clamp_len when clamp_len > 0), W_r this layer's `r` projection, s_ij the
    layer's `seg_embed` row 0 when tokens i and j are in the same segment (equal seg ids) and row 1 when not.
    The position and segment terms become a float mask, so `attention` (SDPA) computes the softmax
    and the weighted values; r_w is added to the queries.

    Segments: any seg ids work (only equality matters; HFL's convention gives the final <cls> its own
    segment). Decoding with a key/value cache is not supported (the segments of cached keys are not kept).
    """

    def __init__(self, config):
        super().__init__()
        self.heads = config.heads_num
        self.head_dim = config.hidden_size // config.heads_num
        self.clamp_len = config.clamp_len
        self.r = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        # initialised as XLNet's: normal(0, 0.02)
        self.r_w_bias = nn.Parameter(torch.randn(self.heads, self.head_dim) * 0.02)
        self.r_r_bias = nn.Parameter(torch.randn(self.heads, self.head_dim) * 0.02)
        self.r_s_bias = nn.Parameter(torch.randn(self.heads, self.head_dim) * 0.02)
        self.seg_embed = nn.Parameter(torch.randn(2, self.heads, self.head_dim) * 0.02)
        self.dropout = Dropout(config.dropout)  # on the position encodings, as XLNet
        freq_seq = torch.arange(0, config.hidden_size, 2.0, dtype=torch.int64).float()
        self.register_buffer("inv_freq", 1 / torch.pow(10000, (freq_seq / config.hidden_size)), persistent=False)

    @classmethod
    def check_config(cls, config, source):
        check_relative_config(config, source, "xlnet")
        if config.hidden_size % 2:
            raise ConfigError(f"{source}: position_scheme 'xlnet' needs an even hidden_size, got {config.hidden_size}")

    def scores(self, q, k, ctx, scale):
        raise ConfigError("position_scheme 'xlnet': its attention scores (content, position and segment terms) "
                          "are not recorded; distil its hidden states only (attention weight 0)")

    def attend(self, q, k, v, ctx, dropout_p, scale):
        if ctx.cache is not None:
            raise ConfigError("position_scheme 'xlnet' does not decode with a key/value cache")
        b, h, sq, _ = q.shape
        sk = k.size(2)
        # relative distances pos_i - pos_j, looked up in encodings of sk, sk - 1, ..., -sk + 1 (XLNet's order)
        pos_seq = torch.arange(sk, -sk, -1.0, dtype=torch.int64, device=q.device).float()
        if self.clamp_len > 0:
            pos_seq = pos_seq.clamp(-self.clamp_len, self.clamp_len)
        sinusoid = pos_seq[:, None] * self.inv_freq
        pe = self.dropout(torch.cat([torch.sin(sinusoid), torch.cos(sinusoid)], dim=-1).to(q.dtype))
        k_r = self.r(pe).view(-1, h, self.head_dim).transpose(0, 1)  # [heads, 2 * sk, head_dim]
        dist = ctx.query_positions[:, :, None] - ctx.key_positions[:, None, :]  # [batch | 1, sq, sk]
        index = (sk - dist).clamp(0, 2 * sk - 1).unsqueeze(1).expand(b, h, sq, sk)
        bd = torch.gather(torch.matmul(q + self.r_r_bias[:, None], k_r.transpose(-1, -2)), -1, index)
        seg_scores = torch.matmul(q + self.r_s_bias[:, None], self.seg_embed.permute(1, 2, 0))  # [b, h, sq, 2]
        differ = (ctx.seg[:, :, None] != ctx.seg[:, None, :]).unsqueeze(1)  # [batch, 1, sq, sk]
        ef = torch.where(differ, seg_scores[..., 1:], seg_scores[..., :1])
        bias = apply_mask((bd + ef) * scale, context_mask(ctx, sq, sk, q.device))
        return attention(q + self.r_w_bias[:, None], k, v, bias, dropout_p=dropout_p, scale=scale)
