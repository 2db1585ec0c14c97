"""ZEN's encoder (Diao et al. 2019, "ZEN: Pre-training Chinese Text Encoder Enhanced by N-gram
Representations"; sinovation/ZEN): a BERT character encoder beside an n-gram encoder whose outputs are added
into the character layers.

    n-gram embedding: layer_norm(word(ngram_ids) + seg(ngram_seg)), dropout
    for i in 0..layers_num-1:
        hidden = transformer[i](hidden)                       # the character layers (BERT's)
        if i < ngram_layers_num:
            ngram = ngram_transformer[i](ngram)               # the n-gram layers, n-grams attend to n-grams
        hidden = hidden + P @ ngram                           # P [batch, seq, n]: 1 where token t is in n-gram m

After the last n-gram layer its output keeps being added (ZEN's ZenEncoder). Batch fields (data/ngram.py,
`ngram_inputs`): ngram_ids [batch, n] (0 = padding), ngram_starts, ngram_lengths [batch, n]; the segment of
an n-gram is the token segment at its start. Config keys: ngram_vocab_size, ngram_layers_num (max_ngrams is
the data side's). Post-LN, fully visible; computed on the padded layout (no unpadding).
"""
import torch
import torch.nn as nn

from ..errors import ConfigError, DataError
from ..layers.context import AttentionContext
from ..layers.dropout import Dropout
from ..layers.norms import build_layernorm
from ..layers.transformer import TransformerLayer
from ..registry import ENCODERS

INPUT_KEYS = ("ngram_ids", "ngram_starts", "ngram_lengths")  # data/ngram.py builds them


def position_matrix(starts, lengths, seq_len):
    """ZEN's ngram_position_matrix: [batch, seq_len, n], 1 where starts <= t < starts + lengths."""
    t = torch.arange(seq_len, device=starts.device)[None, :, None]
    s = starts[:, None, :]
    return (t >= s) & (t < s + lengths[:, None, :])


class NgramEmbedding(nn.Module):
    """ZEN's BertWordEmbeddings: n-gram and segment embeddings (no positions), layer norm, dropout."""

    def __init__(self, config):
        super().__init__()
        self.word = nn.Embedding(config.ngram_vocab_size, config.hidden_size)
        self.seg = nn.Embedding(config.segment_vocab_size, config.hidden_size)
        self.layer_norm = build_layernorm(config, config.hidden_size)
        self.dropout = Dropout(config.dropout)

    def forward(self, ngram_ids, ngram_seg):
        return self.dropout(self.layer_norm(self.word(ngram_ids) + self.seg(ngram_seg)))


@ENCODERS.register("zen")
class ZenEncoder(nn.Module):
    input_keys = INPUT_KEYS

    @staticmethod
    def check_config(config, source):
        if config.ngram_vocab_size <= 0:
            raise ConfigError(f"{source}: encoder 'zen' needs ngram_vocab_size (the rows of the n-gram embedding: "
                              f"the lines of ngram.txt + 1), got {config.ngram_vocab_size}")
        if not 0 <= config.ngram_layers_num <= config.layers_num:
            raise ConfigError(f"{source}: config key 'ngram_layers_num' must be in 0..layers_num "
                              f"({config.layers_num}), got {config.ngram_layers_num}")
        if config.max_ngrams <= 0:
            raise ConfigError(f"{source}: config key 'max_ngrams' must be positive, got {config.max_ngrams}")
        for key in ("heads_num", "feedforward_size"):
            if getattr(config, key) <= 0:
                raise ConfigError(f"{source}: config key '{key}' must be positive, got {getattr(config, key)}")
        if config.hidden_size % config.heads_num:
            raise ConfigError(f"{source}: hidden_size {config.hidden_size} is not divisible by heads_num "
                              f"{config.heads_num}")
        if config.emb_size != config.hidden_size:
            raise ConfigError(f"{source}: encoder 'zen' needs emb_size == hidden_size, got {config.emb_size} and "
                              f"{config.hidden_size}")
        bad = [(k, v) for k, v, ok in (("mask", config.mask, "fully_visible"),
                                       ("layernorm_positioning", config.layernorm_positioning, "post"),
                                       ("parameter_sharing", config.parameter_sharing, False),
                                       ("factorized_embedding_parameterization",
                                        config.factorized_embedding_parameterization, False)) if v != ok]
        if bad:
            raise ConfigError(f"{source}: encoder 'zen' is ZEN's post-LN, fully visible BERT: config key "
                              f"'{bad[0][0]}' {bad[0][1]!r} is not supported")

    def __init__(self, config):
        super().__init__()
        self.layers_num = config.layers_num
        self.transformer = nn.ModuleList([TransformerLayer(config) for _ in range(config.layers_num)])
        self.ngram_embedding = NgramEmbedding(config)
        self.ngram_transformer = nn.ModuleList([TransformerLayer(config) for _ in range(config.ngram_layers_num)])

    def forward(self, emb, seg, positions=None, cache=None, ngram_ids=None, ngram_starts=None, ngram_lengths=None):
        # emb: [batch, seq, hidden]; seg: [batch, seq] (0 = padding); ngram_*: [batch, n] (data/ngram.py)
        if cache is not None:
            raise ConfigError("encoder 'zen' has no incremental decoding")
        if ngram_ids is None or ngram_starts is None or ngram_lengths is None:
            raise DataError("encoder 'zen' needs the batch fields ngram_ids, ngram_starts and ngram_lengths: build "
                            "them with uer_like.data.ngram.ngram_inputs from the model's ngram.txt")
        ctx = AttentionContext.build(seg, False, positions)
        real = ngram_ids > 0
        has_ngrams = ngram_ids.size(1) > 0
        if has_ngrams:
            start = ngram_starts.clamp(0, seg.size(1) - 1)
            ngram = self.ngram_embedding(ngram_ids, seg.gather(1, start) * real)
            # n-grams attend to the row's real n-grams; a row without any attends to all (ZEN's -10000 mask
            # gives it uniform weights), so that no softmax is empty; its n-grams reach no token (P is 0)
            visible = real | ~real.any(1, keepdim=True)
            nctx = AttentionContext(real.long(), visible[:, None, None, :])
            pmat = position_matrix(ngram_starts, ngram_lengths * real, seg.size(1)).to(emb.dtype)
        hidden = emb
        for i, layer in enumerate(self.transformer):
            hidden = layer(hidden, ctx, i)
            if has_ngrams:
                if i < len(self.ngram_transformer):
                    ngram = self.ngram_transformer[i](ngram, nctx, i)
                hidden = hidden + torch.bmm(pmat, ngram.to(hidden.dtype))
        return hidden
