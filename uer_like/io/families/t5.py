"""T5 and T5 v1.1 (T5ForConditionalGeneration; uer/t5-*-chinese-cluecorpussmall, uer/t5-v1_1-*) and mT5
(MT5ForConditionalGeneration, the v1.1 architecture): pre-LN with T5's RMS norm (no mean, no bias), no
biases, no 1/sqrt(d) in attention, relative-position buckets (position_scheme 'relative_position_bucket':
bidirectional in the encoder, causal in the decoder's self-attention, one table per stack, stored in block 0),
relu (T5) or gated-gelu (v1.1: wi_0 gate, wi_1, wo) feed-forward, heads of their own size (`d_kv`), one word
embedding (`shared`) for both sides; a tied LM head (T5) sees the decoder output times d_model ** -0.5, an
untied one (`lm_head.weight`, v1.1 and mT5) does not. No base prefix.
"""
from ...errors import ConfigError
from .base import Family, register_family
from .rules import ACT_TO_HF, Rule


def _attention(h, e):
    return [Rule([f"{h}.{n}.weight" for n in "qkv"], f"{e}.qkv.weight", "qkv"), Rule(f"{h}.o.weight",
                                                                                       f"{e}.final_linear.weight")]


def _feed_forward(h, e, gated):
    if gated:
        return [Rule(f"{h}.wi_0.weight", f"{e}.linear_gate.weight"), Rule(f"{h}.wi_1.weight", f"{e}.linear_1.weight"),
                Rule(f"{h}.wo.weight", f"{e}.linear_2.weight")]
    return [Rule(f"{h}.wi.weight", f"{e}.linear_1.weight"), Rule(f"{h}.wo.weight", f"{e}.linear_2.weight")]


def rules(cfg):
    gated = cfg.feed_forward == "gated"
    r = [Rule("shared.weight", "embedding.word.embedding.weight"),
         Rule("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
              "encoder.relative_pos_emb.relative_attention_bias.weight"),
         Rule("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
              "decoder.self_pos_emb.relative_attention_bias.weight"),
         Rule("encoder.final_layer_norm.weight", "encoder.layer_norm.weight"),
         Rule("decoder.final_layer_norm.weight", "decoder.layer_norm.weight")]
    for i in range(cfg.layers_num):
        h, e = f"encoder.block.{i}", f"encoder.transformer.{i}"
        r += _attention(f"{h}.layer.0.SelfAttention", f"{e}.self_attn")
        r.append(Rule(f"{h}.layer.0.layer_norm.weight", f"{e}.layer_norm_1.weight"))
        r += _feed_forward(f"{h}.layer.1.DenseReluDense", f"{e}.feed_forward", gated)
        r.append(Rule(f"{h}.layer.1.layer_norm.weight", f"{e}.layer_norm_2.weight"))
    for i in range(cfg.decoder_layers_num or cfg.layers_num):
        h, e = f"decoder.block.{i}", f"decoder.transformer_decoder.{i}"
        r += _attention(f"{h}.layer.0.SelfAttention", f"{e}.self_attn")
        r.append(Rule(f"{h}.layer.0.layer_norm.weight", f"{e}.layer_norm_1.weight"))
        r += _attention(f"{h}.layer.1.EncDecAttention", f"{e}.context_attn")
        r.append(Rule(f"{h}.layer.1.layer_norm.weight", f"{e}.layer_norm_2.weight"))
        r += _feed_forward(f"{h}.layer.2.DenseReluDense", f"{e}.feed_forward", gated)
        r.append(Rule(f"{h}.layer.2.layer_norm.weight", f"{e}.layer_norm_3.weight"))
    if not (cfg.tie_weights and cfg.scale_decoder_output):  # T5's tied head is scaled: an unscaled one is its own
        r.append(Rule("lm_head.weight", "target.lm.output_layer.weight"))
    return r


def is_base_key(key):
    return False  # no base prefix: shared, encoder., decoder., lm_head at the top level


def config_from_hf(hf, targets, extras, need, act, source):
    proj = hf.get("feed_forward_proj", "relu")
    parts = proj.split("-")
    gated = len(parts) == 2 and parts[0] == "gated"
    if not (gated or len(parts) == 1):
        raise ConfigError(f"{source}: feed_forward_proj {proj!r} is not supported (relu, gelu, gated-gelu, ...)")
    act_name = hf.get("dense_act_fn") or ("gelu_new" if parts[-1] == "gelu" else parts[-1])
    d_model, heads, d_kv = need("d_model"), need("num_heads"), need("d_kv")
    # transformers 4 and the releases: tie_word_embeddings says it. transformers 5 writes every T5 config as
    # tied and says with `scale_decoder_outputs` whether the head is the embedding (and scaled): T5, or its own
    # lm_head.weight (v1.1, mT5)
    tied = bool(hf["scale_decoder_outputs"] if "scale_decoder_outputs" in hf else hf.get("tie_word_embeddings", True))
    return dict(emb_size=d_model, hidden_size=d_model, feedforward_size=need("d_ff"), heads_num=heads,
                attention_head_size=None if d_kv * heads == d_model else d_kv, layers_num=need("num_layers"),
                decoder_layers_num=hf.get("num_decoder_layers") or need("num_layers"),
                dropout=float(hf.get("dropout_rate", 0.1)), hidden_act=act(act_name),
                embedding=["word"], tgt_embedding=["word"], remove_embedding_layernorm=True, share_embedding=True,
                encoder="transformer", decoder="transformer", mask="fully_visible", layernorm_positioning="pre",
                layernorm="t5", layernorm_eps=float(hf.get("layer_norm_epsilon", 1e-6)),
                remove_transformer_bias=True, remove_attention_scale=True,
                feed_forward="gated" if gated else "dense", position_scheme="relative_position_bucket",
                relative_attention_buckets_num=int(hf.get("relative_attention_num_buckets", 32)),
                relative_attention_max_distance=int(hf.get("relative_attention_max_distance", 128)),
                relative_attention_bidirectional=True, target=["lm"], scale_decoder_output=tied, tie_weights=tied,
                data_processor="t5")


def export_rank(c):
    """An encoder-decoder model with relative-position buckets (above PEGASUS and BART); never a model without
    a decoder (MPNet's buckets)."""
    return 3 if c.decoder is not None and c.position_scheme == "relative_position_bucket" else None


def check_export(c):
    if (c.decoder != "transformer" or not c.share_embedding or c.layernorm != "t5" or c.layernorm_positioning != "pre"
            or c.embedding != ["word"] or c.tgt_embedding != ["word"] or not c.remove_transformer_bias
            or not c.remove_attention_scale or c.position_scheme != "relative_position_bucket"
            or c.has_lmtarget_bias or (c.scale_decoder_output and not c.tie_weights)):
        raise ConfigError("a T5 export needs T5's layout: pre-LN with the t5 norm, no biases, unscaled attention, "
                          "relative_position_bucket, embedding [word] on both sides shared, an LM head without bias, "
                          "scale_decoder_output only with tie_weights")


def config_to_hf(model, arch, eps):
    c = model.config
    check_export(c)
    act = ACT_TO_HF[c.hidden_act]
    gated = c.feed_forward == "gated"
    proj = ("gated-" + ("gelu" if act == "gelu_new" else act)) if gated else act
    return {"model_type": "mt5" if arch.startswith("MT5") else "t5", "architectures": [arch],
            "vocab_size": model.vocab_size, "d_model": c.hidden_size, "d_kv": c.head_size, "d_ff": c.feedforward_size,
            "num_heads": c.heads_num, "num_layers": c.layers_num,
            "num_decoder_layers": c.decoder_layers_num or c.layers_num, "feed_forward_proj": proj,
            "dense_act_fn": act, "is_gated_act": gated,
            "relative_attention_num_buckets": c.relative_attention_buckets_num,
            "relative_attention_max_distance": c.relative_attention_max_distance, "dropout_rate": c.dropout,
            "layer_norm_epsilon": c.layernorm_eps if c.layernorm_eps is not None else 1e-6,
            "initializer_factor": 1.0, "is_encoder_decoder": True, "tie_word_embeddings": c.tie_weights and c.scale_decoder_output,
            "use_cache": True}


register_family(Family("t5", "", "T5", frozenset({"lm"}), lambda t: "T5ForConditionalGeneration", ([("lm", ())],),
                       rules=rules, is_base_key=is_base_key, config_from_hf=config_from_hf, config_to_hf=config_to_hf,
                       export_rank=export_rank, check_export=check_export))
