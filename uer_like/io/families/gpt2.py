"""GPT-2: Conv1D layers under `transformer.`, the LM head (GPT2LMHeadModel); its own names and config keys."""
from ...errors import ConfigError
from .base import Family, register_family
from .rules import ACT_TO_HF, Rule
from .rules import linear as _linear
from .rules import ln as _ln


def rules(cfg):
    r = [Rule("wte.weight", "embedding.word.embedding.weight"), Rule("wpe.weight", "embedding.pos.embedding.weight")]
    for i in range(cfg.layers_num):
        h, e = f"h.{i}", f"encoder.transformer.{i}"
        r += _ln(f"{h}.ln_1", f"{e}.layer_norm_1") + _ln(f"{h}.ln_2", f"{e}.layer_norm_2")
        r += _linear(f"{h}.attn.c_attn", f"{e}.self_attn.qkv", kind="conv")
        r += _linear(f"{h}.attn.c_proj", f"{e}.self_attn.final_linear", kind="conv")
        r += _linear(f"{h}.mlp.c_fc", f"{e}.feed_forward.linear_1", kind="conv")
        r += _linear(f"{h}.mlp.c_proj", f"{e}.feed_forward.linear_2", kind="conv")
    r += _ln("ln_f", "encoder.layer_norm")
    if "lm" in cfg.target and not cfg.tie_weights:
        r.append(Rule("lm_head.weight", "target.lm.output_layer.weight"))
    return r


def is_base_key(key):
    return not key.startswith("lm_head.")


def config_from_hf(hf, targets, extras, need, act, source):
    n_embd = need("n_embd")
    if hf.get("scale_attn_by_inverse_layer_idx"):
        raise ConfigError(f"{source}: scale_attn_by_inverse_layer_idx=true is not supported")
    if hf.get("add_cross_attention"):
        raise ConfigError(f"{source}: add_cross_attention=true is not supported")
    return dict(emb_size=n_embd, hidden_size=n_embd, feedforward_size=hf.get("n_inner") or 4 * n_embd,
                heads_num=need("n_head"), layers_num=need("n_layer"), max_seq_length=need("n_positions"),
                dropout=float(hf.get("resid_pdrop", 0.1)), hidden_act=act(hf.get("activation_function", "gelu_new")),
                embedding=["word", "pos"], remove_embedding_layernorm=True, encoder="transformer", mask="causal",
                layernorm_positioning="pre", layernorm="torch", layernorm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
                remove_attention_scale=not hf.get("scale_attn_weights", True), target=targets or ["lm"],
                data_processor="lm")


def config_to_hf(model, arch, eps):
    c = model.config
    return {"model_type": "gpt2", "architectures": [arch], "vocab_size": model.vocab_size,
            "n_embd": c.hidden_size, "n_layer": c.layers_num, "n_head": c.heads_num, "n_inner": c.feedforward_size,
            "n_positions": c.max_seq_length, "activation_function": ACT_TO_HF[c.hidden_act],
            "resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": c.dropout,
            "layer_norm_epsilon": eps, "scale_attn_weights": not c.remove_attention_scale,
            "tie_word_embeddings": c.tie_weights, "bos_token_id": None, "eos_token_id": None, "pad_token_id": None}


def export_rank(c):
    """A causal pre-LN model with absolute positions."""
    if c.decoder is None and c.mask == "causal" and c.layernorm_positioning == "pre" and c.position_scheme == "absolute":
        return 1
    return None


def check_export(c):
    if c.embedding != ["word", "pos"] or not c.remove_embedding_layernorm or c.remove_attention_bias:
        raise ConfigError("a causal model exports as GPT-2 only with embedding [word, pos], "
                          "remove_embedding_layernorm, attention biases and layernorm_positioning 'pre'")
    if set(c.target) - {"lm"} or c.has_lmtarget_bias:
        raise ConfigError(f"GPT-2 export supports the target 'lm' without bias, got {c.target}")
    if c.position_offset:
        raise ConfigError("GPT-2 export needs position_offset 0")


BUFFERS = (".attn.bias", ".attn.masked_bias")

register_family(Family("gpt2", "transformer", "GPT2", frozenset({"lm"}), lambda t: "GPT2LMHeadModel",
                       ([("lm", ())],), rules=rules, is_base_key=is_base_key, config_from_hf=config_from_hf,
                       config_to_hf=config_to_hf, export_rank=export_rank, check_export=check_export,
                       buffers=BUFFERS, tied_keys=("lm_head.weight",)))
