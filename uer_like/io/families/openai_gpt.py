"""OpenAI GPT (model_type 'openai-gpt'; CDial-GPT's LCCC releases are this): learned positions, post-LN blocks
with GPT-2's Conv1D names under `transformer.`, no embedding or final layer norm, a feed-forward of 4 x n_embd,
the LM head tied to the word embedding (OpenAIGPTLMHeadModel). In uer_like: embedding [word, pos] without its
layer norm, mask causal, layernorm_positioning post."""
from ...errors import ConfigError
from .base import Family, register_family
from .rules import Rule, linear, ln

# OpenAI GPT's `afn` names (transformers' ACT_FNS: its "gelu" is the tanh approximation, GPT-2's gelu_new)
ACT_FROM_AFN = {"gelu": "gelu_fast", "relu": "relu", "silu": "silu", "swish": "silu"}
AFN_OF = {"gelu_fast": "gelu", "relu": "relu", "silu": "silu"}


def claims(hf):
    """Releases saved before config.json carried a model_type (CDial-GPT's LCCC models are loaded with
    OpenAIGPTLMHeadModel by name): OpenAI GPT's own keys, afn and n_embd, without a model_type."""
    return "model_type" not in hf and "afn" in hf and "n_embd" in hf


def rules(cfg):
    r = [Rule("tokens_embed.weight", "embedding.word.embedding.weight"),
         Rule("positions_embed.weight", "embedding.pos.embedding.weight")]
    for i in range(cfg.layers_num):
        h, e = f"h.{i}", f"encoder.transformer.{i}"
        r += linear(f"{h}.attn.c_attn", f"{e}.self_attn.qkv", kind="conv")
        r += linear(f"{h}.attn.c_proj", f"{e}.self_attn.final_linear", kind="conv")
        r += ln(f"{h}.ln_1", f"{e}.layer_norm_1")
        r += linear(f"{h}.mlp.c_fc", f"{e}.feed_forward.linear_1", kind="conv")
        r += linear(f"{h}.mlp.c_proj", f"{e}.feed_forward.linear_2", kind="conv")
        r += ln(f"{h}.ln_2", f"{e}.layer_norm_2")
    if "lm" in cfg.target and not cfg.tie_weights:
        r.append(Rule("lm_head.weight", "target.lm.output_layer.weight"))
    return r


def is_base_key(key):
    return key.split(".")[0] in ("tokens_embed", "positions_embed", "h")


def config_from_hf(hf, targets, extras, need, act, source):
    n_embd = need("n_embd")
    afn = hf.get("afn", "gelu")
    if afn not in ACT_FROM_AFN:
        raise ConfigError(f"{source}: afn {afn!r} is not supported; supported: {', '.join(ACT_FROM_AFN)}")
    return dict(emb_size=n_embd, hidden_size=n_embd, feedforward_size=4 * n_embd, heads_num=need("n_head"),
                layers_num=need("n_layer"), max_seq_length=need("n_positions"),
                dropout=float(hf.get("resid_pdrop", 0.1)), hidden_act=ACT_FROM_AFN[afn], embedding=["word", "pos"],
                remove_embedding_layernorm=True, encoder="transformer", mask="causal", layernorm_positioning="post",
                layernorm="torch", layernorm_eps=float(hf.get("layer_norm_epsilon", 1e-5)), target=targets or ["lm"],
                data_processor="lm")


def config_to_hf(model, arch, eps):
    c = model.config
    return {"model_type": "openai-gpt", "architectures": [arch], "vocab_size": model.vocab_size,
            "n_embd": c.hidden_size, "n_layer": c.layers_num, "n_head": c.heads_num, "n_positions": c.max_seq_length,
            "afn": AFN_OF[c.hidden_act], "resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": c.dropout,
            "layer_norm_epsilon": eps, "initializer_range": 0.02, "tie_word_embeddings": c.tie_weights}


def export_rank(c):
    """A causal post-LN model with absolute positions (GPT-2 is the pre-LN one)."""
    if c.decoder is None and c.mask == "causal" and c.layernorm_positioning == "post" and c.position_scheme == "absolute":
        return 1
    return None


def check_export(c):
    if c.embedding != ["word", "pos"] or not c.remove_embedding_layernorm or c.remove_attention_bias:
        raise ConfigError("a causal post-LN model exports as OpenAI GPT only with embedding [word, pos], "
                          "remove_embedding_layernorm and attention biases")
    if set(c.target) - {"lm"} or c.has_lmtarget_bias:
        raise ConfigError(f"OpenAI GPT export supports the target 'lm' without bias, got {c.target}")
    if c.position_offset or c.parameter_sharing or c.factorized_embedding_parameterization:
        raise ConfigError("an OpenAI GPT export has no position offset, parameter sharing or embedding projection")
    if c.feedforward_size != 4 * c.hidden_size:
        raise ConfigError(f"OpenAI GPT's feed-forward is 4 x hidden_size ({4 * c.hidden_size}), got "
                          f"feedforward_size {c.feedforward_size}")
    if c.hidden_act not in AFN_OF:
        raise ConfigError(f"hidden_act {c.hidden_act!r} has no OpenAI GPT afn; exportable: {', '.join(AFN_OF)} "
                          "(its 'gelu' is gelu_fast, the tanh approximation)")


register_family(Family("openai-gpt", "transformer", "OpenAIGPT", frozenset({"lm"}), lambda t: "OpenAIGPTLMHeadModel",
                       ([("lm", ())],), rules=rules, is_base_key=is_base_key, config_from_hf=config_from_hf,
                       config_to_hf=config_to_hf, claims=claims, export_rank=export_rank,
                       check_export=check_export, buffers=(".attn.bias",), tied_keys=("lm_head.weight",)))
