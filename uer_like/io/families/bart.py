"""BART (BartForConditionalGeneration; uer/bart-*-chinese-cluecorpussmall, fnlp/bart-base-chinese): post-LN
encoder and decoder with biases everywhere, learned positions offset by 2 on both sides (position p is row
p + 2 of embed_positions), layernorm_embedding on both sides, one word embedding (`model.shared`) for both
sides and the tied LM head, and `final_logits_bias` (the LM head's bias). Its own names and config keys; the
layer names are shared with PEGASUS (pegasus.py). UER-py's BART (positions from 0, UER layer norms, a head of its
own) exports as UER-py's converter writes it: two zero rows before the position table, tie_word_embeddings
false; its layer norms as every UER layer norm exports (io/hf.py: scaled gammas; transformers' BART fixes eps
at 1e-5, so the outputs agree to about 1e-5 relative, not exactly).
"""
from ...errors import ConfigError
from .base import Family, register_family
from .rules import ACT_TO_HF, Rule
from .rules import linear as _linear
from .rules import ln as _ln

POSITION_OFFSET = 2  # BartLearnedPositionalEmbedding.offset


def layer_rules(cfg):
    """The encoder and decoder layers of BART / PEGASUS (names without the `model.` prefix)."""
    def attention(h, e):
        return ([Rule([f"{h}.{n}_proj.{w}" for n in "qkv"], f"{e}.qkv.{w}", "qkv") for w in ("weight", "bias")]
                + _linear(f"{h}.out_proj", f"{e}.final_linear"))

    r = []
    for i in range(cfg.layers_num):
        h, e = f"encoder.layers.{i}", f"encoder.transformer.{i}"
        r += attention(f"{h}.self_attn", f"{e}.self_attn") + _ln(f"{h}.self_attn_layer_norm", f"{e}.layer_norm_1")
        r += _linear(f"{h}.fc1", f"{e}.feed_forward.linear_1") + _linear(f"{h}.fc2", f"{e}.feed_forward.linear_2")
        r += _ln(f"{h}.final_layer_norm", f"{e}.layer_norm_2")
    for i in range(cfg.decoder_layers_num or cfg.layers_num):
        h, e = f"decoder.layers.{i}", f"decoder.transformer_decoder.{i}"
        r += attention(f"{h}.self_attn", f"{e}.self_attn") + _ln(f"{h}.self_attn_layer_norm", f"{e}.layer_norm_1")
        r += attention(f"{h}.encoder_attn", f"{e}.context_attn")
        r += _ln(f"{h}.encoder_attn_layer_norm", f"{e}.layer_norm_2")
        r += _linear(f"{h}.fc1", f"{e}.feed_forward.linear_1") + _linear(f"{h}.fc2", f"{e}.feed_forward.linear_2")
        r += _ln(f"{h}.final_layer_norm", f"{e}.layer_norm_3")
    return r


def head_rules(cfg):
    r = [Rule("shared.weight", "embedding.word.embedding.weight"),
         Rule("final_logits_bias", "target.lm.output_layer.bias", "flat")]
    if not cfg.tie_weights:
        # transformers 5 ties encoder/decoder embed_tokens to `shared` only with tie_word_embeddings
        r += [Rule("lm_head.weight", "target.lm.output_layer.weight"),
              Rule("encoder.embed_tokens.weight", "embedding.word.embedding.weight", "dup"),
              Rule("decoder.embed_tokens.weight", "tgt_embedding.word.embedding.weight", "dup")]
    return r


def rules(cfg):
    r = head_rules(cfg)
    # a UER-py BART (positions from 0) exports with two zero rows in front, as UER-py's converter writes them
    kind = "pad2" if cfg.position_offset == 0 else "copy"
    r += [Rule("encoder.embed_positions.weight", "embedding.pos.embedding.weight", kind),
          Rule("decoder.embed_positions.weight", "tgt_embedding.pos.embedding.weight", kind)]
    r += _ln("encoder.layernorm_embedding", "embedding.layer_norm") + _ln("decoder.layernorm_embedding",
                                                                          "tgt_embedding.layer_norm")
    return r + layer_rules(cfg)


def is_base_key(key):
    return key not in ("final_logits_bias", "lm_head.weight")


def common_config(hf, need, act, source):
    """The uer_like keys BART and PEGASUS configs share."""
    for a, b in (("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim")):
        if hf.get(b) is not None and hf[b] != need(a):
            raise ConfigError(f"{source}: {a} {hf[a]} differs from {b} {hf[b]} (not supported: one size for both)")
    d_model = need("d_model")
    if not hf.get("is_encoder_decoder", True) or hf.get("add_cross_attention") is False:
        raise ConfigError(f"{source}: only the encoder-decoder model is supported")
    return dict(emb_size=d_model, hidden_size=d_model, feedforward_size=need("encoder_ffn_dim"),
                heads_num=need("encoder_attention_heads"), layers_num=need("encoder_layers"),
                decoder_layers_num=need("decoder_layers"), max_seq_length=need("max_position_embeddings"),
                dropout=float(hf.get("dropout", 0.1)), hidden_act=act(hf.get("activation_function", "gelu")),
                encoder="transformer", decoder="transformer", mask="fully_visible", share_embedding=True,
                layernorm="torch", layernorm_eps=1e-5, target=["lm"], has_lmtarget_bias=True)


def config_from_hf(hf, targets, extras, need, act, source):
    if hf.get("scale_embedding"):
        raise ConfigError(f"{source}: BART with scale_embedding true is not supported")
    if hf.get("normalize_before") or hf.get("add_final_layer_norm"):
        raise ConfigError(f"{source}: normalize_before / add_final_layer_norm (mBART's pre-LN) are not supported")
    d = common_config(hf, need, act, source)
    d.update(embedding=["word", "pos"], tgt_embedding=["word", "pos"], position_offset=POSITION_OFFSET,
             layernorm_positioning="post", data_processor="bart")
    return d


def common_to_hf(model, arch, model_type):
    c = model.config
    hf = {"model_type": model_type, "architectures": [arch], "vocab_size": model.vocab_size, "d_model": c.hidden_size,
          "encoder_layers": c.layers_num, "decoder_layers": c.decoder_layers_num or c.layers_num,
          "encoder_attention_heads": c.heads_num, "decoder_attention_heads": c.heads_num,
          "encoder_ffn_dim": c.feedforward_size, "decoder_ffn_dim": c.feedforward_size,
          "max_position_embeddings": c.max_seq_length, "activation_function": ACT_TO_HF[c.hidden_act],
          "dropout": c.dropout, "attention_dropout": 0.0, "activation_dropout": 0.0, "encoder_layerdrop": 0.0,
          "decoder_layerdrop": 0.0, "init_std": 0.02, "is_encoder_decoder": True,
          "tie_word_embeddings": c.tie_weights, "use_cache": True}
    return hf


def export_rank(c):
    """An encoder-decoder model with learned positions (PEGASUS' sinusoidal tables and T5's buckets rank
    higher); never a model without a decoder."""
    return 1 if c.decoder is not None and c.embedding == ["word", "pos"] else None


def check_layout(c, positioning, embedding):
    if (c.decoder != "transformer" or not c.share_embedding or c.layernorm_positioning != positioning
            or c.embedding != embedding or c.tgt_embedding != embedding or c.feed_forward != "dense"
            or c.remove_transformer_bias or c.remove_attention_bias or c.remove_attention_scale
            or c.layernorm not in ("torch", "normal") or c.position_scheme != "absolute" or c.attention_head_size
            or not c.has_lmtarget_bias):
        raise ConfigError(f"this encoder-decoder model has no transformers equivalent as {embedding} with "
                          f"{positioning}-LN (needs a shared word embedding, dense feed-forward with biases, "
                          "absolute positions and an LM-head bias)")


def check_export(c):
    check_layout(c, "post", ["word", "pos"])
    if c.position_offset not in (0, POSITION_OFFSET) or c.remove_embedding_layernorm:
        raise ConfigError("a BART export needs position_offset 2 (or 0: UER-py's BART) and the embedding layer norm")


def config_to_hf(model, arch, eps):
    check_export(model.config)
    hf = common_to_hf(model, arch, "bart")
    hf["scale_embedding"] = False
    return hf


register_family(Family("bart", "model", "Bart", frozenset({"lm"}), lambda t: "BartForConditionalGeneration",
                       ([("lm", ())],), rules=rules, is_base_key=is_base_key, config_from_hf=config_from_hf,
                       config_to_hf=config_to_hf, export_rank=export_rank, check_export=check_export,
                       weight_suffixes=("encoder.embed_positions.weight",)))
