"""TensorFlow releases: which release's variable names a checkpoint carries (its "scheme"), and how each maps
onto a uer_like model. One `TFScheme` per release, registered in registry.TF_SCHEMES; io/tf.py reads the
variables (io/tf_bundle.py), asks the schemes in `order` which one recognises the names, logs it and lets
it build the Weights. An unknown scheme is one line listing a few variable names and the schemes known.

Google's (names and mapping in io/tf.py):
  google-bert      google-research/bert and every BERT-architecture release (Chinese BERT, RoBERTa-wwm-ext,
                   MacBERT): bert/embeddings/position_embeddings, bert/encoder/layer_N/...
  google-albert    google-research/albert: bert/encoder/transformer/group_0/inner_group_0/...
  google-electra   google-research/electra: electra/..., generator/..., discriminator_predictions/...
The Chinese releases (names read from each repository's modeling code):
  nezha            huawei-noah/Pretrained-Language-Model NEZHA-TensorFlow: BERT's names without
                   bert/embeddings/position_embeddings (functional relative positions, clipped at 64 as its
                   attention_layer hard-codes; gelu is the tanh form). Loaded as the Hugging Face NEZHA family.
  albert_zh        brightmart/albert_zh (post-LN, the released tiny/base/large): bert/embeddings/word_embeddings
                   [vocab, E] and word_embeddings_2 [E, hidden] (a projection without bias, applied before the
                   position and token-type embeddings, which are hidden-sized), one layer shared by all under
                   bert/encoder/layer_shared/ with BERT's layer names, the MLM head projecting back through
                   word_embeddings_2. Loaded as a uer_like ALBERT-style model (parameter sharing) whose word
                   embedding is word_embeddings @ word_embeddings_2 (the same numbers: a lookup then the
                   projection, or the projected table's row) and tied MLM output; gelu is the tanh form.
  xlnet            zihangdai/xlnet as HFL's Chinese XLNet ships it: model/transformer/word_embedding/lookup_table,
                   model/transformer/layer_N/rel_attn/{q,k,v,o,r}/kernel, .../rel_attn/LayerNorm,
                   .../ff/{layer_1,layer_2,LayerNorm}, model/transformer/{r_w_bias,r_r_bias,r_s_bias,seg_embed}
                   ([n_layer, ...] with untie_r, else shared by every layer), model/transformer/mask_emb/mask_emb,
                   model/lm_loss/bias; renamed to transformers' XLNet names (as transformers' old
                   load_tf_weights_in_xlnet) with xlnet_config.json read into its config; gelu is the tanh form.
  gpt2-ml          imcaspar/gpt2-ml (Grover's code): newslm/embeddings/{word_embed,pos_embed,LayerNorm_embed_norm},
                   newslm/layerNN/{query_layer,key_layer,value_layer,context_projection_layer,LayerNorm_mlp_ln0,
                   intermediate,output,LayerNorm_mlp_ln1}: a causal model with the embedding layer norm and
                   Grover's layer (layernorm_positioning "grover", layers/transformer.py), layer norm eps 1e-5,
                   erf gelu, the output tied to word_embed without bias (target lm, so uer_like.generate runs it).
  nezha-gen        huawei-noah/Pretrained-Language-Model NEZHA-Gen-TensorFlow (the Chinese GPT and Yuefu): BERT's
                   names with absolute position embeddings and the MLM head's cls/predictions, but no pooler and no
                   cls/seq_relationship (its generation graph has neither): despite the name, no relative positions;
                   a causal (lower-triangular) mask, no token types, the next token read off the last position
                   through cls/predictions/transform (dense, gelu, LayerNorm) and the tied word embedding plus
                   output_bias. Loaded as a causal post-LN model with target lm and lm_head_transform, which
                   uer_like.generate runs. The release ships no config: sizes from the shapes, 64-wide heads as its
                   scripts' GPTConfig; gelu is erf as interactive_conditional_generation.py computes it (Yuefu's
                   poetry.py computes the tanh form: config={"hidden_act": "gelu_new"}).
Config files: each release's json beside the checkpoint (bert_config.json, albert_config.json, xlnet_config.json,
config.json, gpt2-ml's base.json/large.json/mega.json), or config= (a path or dict in the release's own keys).
"""
import logging
import os
import re
from dataclasses import dataclass
from typing import Callable

import torch

from ..config import ModelConfig, read_json
from ..errors import CheckpointError, ConfigError
from ..registry import TF_SCHEMES
from .formats import Weights
from .uer import to_uer_state_dict

logger = logging.getLogger("uer_like")


@dataclass(frozen=True)
class TFScheme:
    """name: how logs and errors call it; release: the repository it comes from; detect(names: set) -> bool;
    read(variables, config, which, prefix) -> Weights (config: the config= given to load_model or None; which:
    ELECTRA's tf_model); order: detection order (a scheme whose names are a superset of another's comes first)."""
    name: str
    release: str
    detect: Callable[[set], bool]
    read: Callable
    order: int = 100


def register_scheme(scheme):
    return TF_SCHEMES.register(scheme.name)(scheme)


def schemes():
    return sorted((TF_SCHEMES.get(n) for n in TF_SCHEMES.names()), key=lambda s: (s.order, s.name))


def detect_scheme(names, prefix):
    names = set(names)
    for s in schemes():
        if s.detect(names):
            logger.info("%s: TF checkpoint of the %s scheme (%s)", prefix, s.name, s.release)
            return s
    few = sorted(names)[:6]
    raise CheckpointError(f"{prefix}: the TF checkpoint's variable names match no release scheme known "
                          f"({', '.join(s.name for s in schemes())}); its names include: {', '.join(few) or 'none'}")


def find_config(config, prefix, names):
    """(config dict, its path or None) from config= (a dict or path) or the first of `names` beside the prefix."""
    if isinstance(config, dict):
        return dict(config), None
    if isinstance(config, ModelConfig):
        raise ConfigError("config= for a TF checkpoint is the release's own config json (a path or dict), not a "
                          "uer_like ModelConfig")
    d = os.path.dirname(os.path.abspath(prefix))
    path = config if isinstance(config, str) else next(
        (os.path.join(d, n) for n in names if os.path.isfile(os.path.join(d, n))), None)
    if path is None:
        return None, None
    return read_json(path), path


def need(cfg, key, source):
    if cfg.get(key) is None:
        raise ConfigError(f"{source}: the config lacks '{key}'")
    return cfg[key]


def release_dir_files(prefix, *names):
    d = os.path.dirname(os.path.abspath(prefix))
    return next((os.path.join(d, n) for n in names if os.path.isfile(os.path.join(d, n))), None)


def tf_act(name, source):
    """The activation a release's TF code computes for its config's hidden_act: their `gelu` is the tanh form."""
    acts = {"gelu": "gelu_fast", "relu": "relu"}
    if name not in acts:
        raise ConfigError(f"{source}: hidden_act {name!r} is not supported; supported: {', '.join(acts)}")
    return acts[name]


def _kernel(t):
    return t.t().contiguous()


def _need_vars(variables, names, scheme):
    missing = [n for n in names if n not in variables]
    if missing:
        raise CheckpointError(f"the {scheme} TF checkpoint lacks {', '.join(missing[:5])}")


def _uer_weights(internal, cfg_dict, prefix, source, vocab):
    """Internal names -> Weights with UER file names and a ModelConfig."""
    cfg = ModelConfig.from_dict(cfg_dict, source=source)
    return Weights(to_uer_state_dict(internal, "uer", cfg), names="uer", path=prefix, config=cfg, format="tf",
                   vocab_path=vocab)


# ---------------------------------------------------------------------------------------------- Google
def _google_read(family):
    def read(variables, config, which, prefix):
        from .tf import google_weights

        return google_weights(variables, family, config, which, prefix)
    return read


def _is_electra(names):
    return any(n.startswith(("electra/", "discriminator_predictions/", "generator_predictions/", "generator/"))
               for n in names)


register_scheme(TFScheme("google-electra", "google-research/electra", _is_electra, _google_read("electra"), 10))
register_scheme(TFScheme("google-albert", "google-research/albert",
                         lambda names: any(n.startswith("bert/encoder/transformer/group_") for n in names),
                         _google_read("albert"), 20))
register_scheme(TFScheme("google-bert", "google-research/bert and BERT-architecture releases",
                         lambda names: "bert/embeddings/position_embeddings" in names
                         and any(n.startswith("bert/encoder/layer_") and not n.startswith("bert/encoder/layer_shared/")
                                 for n in names),
                         _google_read("bert"), 90))


# ---------------------------------------------------------------------------------------------- NEZHA
def _is_nezha(names):
    return ("bert/embeddings/position_embeddings" not in names and "bert/embeddings/word_embeddings" in names
            and "bert/embeddings/word_embeddings_2" not in names
            and any(n.startswith("bert/encoder/layer_") and not n.startswith("bert/encoder/layer_shared/")
                    for n in names))


def _read_nezha(variables, config, which, prefix):
    from .tf import tf_to_hf_names

    cfg, path = find_config(config, prefix, ("bert_config.json", "config.json"))
    source = path or "config"
    if cfg is None:
        raise ConfigError(f"{prefix}: no config for the NEZHA checkpoint (looked for bert_config.json, config.json "
                          "beside it; pass config='bert_config.json')")
    if cfg.get("use_relative_position") is False:
        raise ConfigError(f"{source}: use_relative_position is false but the checkpoint has no "
                          "bert/embeddings/position_embeddings: the config is not this checkpoint's")
    hf = {k: v for k, v in cfg.items() if k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                                  "intermediate_size", "max_position_embeddings", "type_vocab_size",
                                                  "hidden_dropout_prob", "attention_probs_dropout_prob")}
    act = tf_act(cfg.get("hidden_act", "gelu"), source)
    # NEZHA-TensorFlow's attention_layer clips distances at 64 whatever the config says
    hf.update(model_type="nezha", hidden_act={"gelu_fast": "gelu_new"}.get(act, act), max_relative_position=64,
              layer_norm_eps=1e-12)
    state = tf_to_hf_names(variables, "bert")
    return Weights(state, names="hf", path=prefix, config=hf, format="tf",
                   vocab_path=release_dir_files(prefix, "vocab.txt"))


register_scheme(TFScheme("nezha", "huawei-noah/Pretrained-Language-Model NEZHA-TensorFlow", _is_nezha, _read_nezha, 80))


# ---------------------------------------------------------------------------------------------- NEZHA-Gen
def _is_nezha_gen(names):
    return ("bert/embeddings/position_embeddings" in names and "cls/predictions/output_bias" in names
            and "bert/pooler/dense/kernel" not in names and "cls/seq_relationship/output_weights" not in names
            and any(n.startswith("bert/encoder/layer_") for n in names))


def _read_nezha_gen(variables, config, which, prefix):
    cfg, path = find_config(config, prefix, ("bert_config.json", "config.json"))
    source = path or "the checkpoint's shapes"
    cfg = cfg or {}
    e = "bert/embeddings/"
    _need_vars(variables, [e + "word_embeddings", e + "LayerNorm/gamma", "cls/predictions/transform/dense/kernel",
                           "cls/predictions/transform/LayerNorm/gamma"], "NEZHA-Gen")
    word = variables[e + "word_embeddings"]
    out = {"embedding.word.embedding.weight": word, "embedding.pos.embedding.weight": variables[e + "position_embeddings"],
           "embedding.layer_norm.gamma": variables[e + "LayerNorm/gamma"],
           "embedding.layer_norm.beta": variables[e + "LayerNorm/beta"],
           "target.lm.linear_1.weight": _kernel(variables["cls/predictions/transform/dense/kernel"]),
           "target.lm.linear_1.bias": variables["cls/predictions/transform/dense/bias"],
           "target.lm.layer_norm.gamma": variables["cls/predictions/transform/LayerNorm/gamma"],
           "target.lm.layer_norm.beta": variables["cls/predictions/transform/LayerNorm/beta"],
           "target.lm.output_layer.bias": variables["cls/predictions/output_bias"]}
    if e + "token_type_embeddings" in variables:
        logger.info("%s: bert/embeddings/token_type_embeddings left out: NEZHA-Gen's generation code adds no token "
                    "types", prefix)
    layers = sorted({int(m.group(1)) for n in variables for m in [re.match(r"bert/encoder/layer_(\d+)/", n)] if m})
    for i in layers:
        _bert_layer_internal(variables, f"bert/encoder/layer_{i}", f"encoder.transformer.{i}", out)
    hidden = int(word.shape[1])
    inter = int(variables["bert/encoder/layer_0/intermediate/dense/kernel"].shape[1])
    for key, have in (("hidden_size", hidden), ("num_hidden_layers", len(layers)), ("intermediate_size", inter),
                      ("vocab_size", int(word.shape[0]))):
        if cfg.get(key) is not None and int(cfg[key]) != have:
            raise ConfigError(f"{source}: {key} {cfg[key]} but the checkpoint has {have}")
    # the release ships no config: its scripts build GPTConfig with 64-wide heads (768 / 12) and hidden_act
    # "gelu", which interactive_conditional_generation.py computes with erf (poetry.py, Yuefu, with tanh: pass
    # config={"hidden_act": "gelu_new"})
    act = cfg.get("hidden_act", "gelu")
    acts = {"gelu": "gelu", "gelu_new": "gelu_fast", "gelu_fast": "gelu_fast", "relu": "relu"}
    if act not in acts:
        raise ConfigError(f"{source}: hidden_act {act!r} is not supported; supported: {', '.join(acts)}")
    d = dict(vocab_size=int(word.shape[0]), emb_size=hidden, hidden_size=hidden, feedforward_size=inter,
             heads_num=int(cfg.get("num_attention_heads") or max(1, hidden // 64)), layers_num=len(layers),
             max_seq_length=int(variables[e + "position_embeddings"].shape[0]),
             dropout=float(cfg.get("hidden_dropout_prob", 0.1)), hidden_act=acts[act], embedding=["word", "pos"],
             encoder="transformer", mask="causal", layernorm_positioning="post", layernorm="torch",
             layernorm_eps=1e-12, target=["lm"], lm_head_transform=True, has_lmtarget_bias=True, tie_weights=True,
             data_processor="lm")
    return _uer_weights(out, d, prefix, source, release_dir_files(prefix, "vocab.txt"))


register_scheme(TFScheme("nezha-gen", "huawei-noah/Pretrained-Language-Model NEZHA-Gen-TensorFlow",
                         _is_nezha_gen, _read_nezha_gen, 85))


# ---------------------------------------------------------------------------------------------- albert_zh
def _is_albert_zh(names):
    return "bert/embeddings/word_embeddings_2" in names or any(n.startswith("bert/encoder/layer_shared/") for n in names)


_BERT_LAYER = {  # BERT's layer scope -> the internal layer's module
    "attention/output/dense": "self_attn.final_linear", "attention/output/LayerNorm": "layer_norm_1",
    "intermediate/dense": "feed_forward.linear_1", "output/dense": "feed_forward.linear_2",
    "output/LayerNorm": "layer_norm_2"}


def _bert_layer_internal(variables, scope, internal, out):
    """BERT's names of one layer under `scope` -> internal names under `internal` (kernels transposed)."""
    qkv = [f"{scope}/attention/self/{n}" for n in ("query", "key", "value")]
    _need_vars(variables, [f"{q}/kernel" for q in qkv], scope)
    out[f"{internal}.self_attn.qkv.weight"] = torch.cat([_kernel(variables[f"{q}/kernel"]) for q in qkv])
    out[f"{internal}.self_attn.qkv.bias"] = torch.cat([variables[f"{q}/bias"] for q in qkv])
    for tf_name, mod in _BERT_LAYER.items():
        if mod.startswith("layer_norm"):
            out[f"{internal}.{mod}.gamma"] = variables[f"{scope}/{tf_name}/gamma"]
            out[f"{internal}.{mod}.beta"] = variables[f"{scope}/{tf_name}/beta"]
        else:
            out[f"{internal}.{mod}.weight"] = _kernel(variables[f"{scope}/{tf_name}/kernel"])
            out[f"{internal}.{mod}.bias"] = variables[f"{scope}/{tf_name}/bias"]


def _read_albert_zh(variables, config, which, prefix):
    cfg, path = find_config(config, prefix, ("albert_config.json", "bert_config.json", "config.json"))
    source = path or "config"
    if cfg is None:
        raise ConfigError(f"{prefix}: no config for the albert_zh checkpoint (looked for albert_config.json, "
                          "bert_config.json, config.json beside it; pass config='albert_config.json')")
    if (cfg.get("ln_type") or "postln") != "postln":
        raise ConfigError(f"{source}: albert_zh with ln_type {cfg['ln_type']!r} (its pre-LN xlarge/xxlarge code) is "
                          "not supported; only 'postln' (the released tiny, base and large)")
    if not any(n.startswith("bert/encoder/layer_shared/") for n in variables):
        raise CheckpointError(f"{prefix}: an albert_zh checkpoint without bert/encoder/layer_shared/ (unshared "
                              "layers) is not supported")
    e = "bert/embeddings/"
    _need_vars(variables, [e + "word_embeddings", e + "word_embeddings_2", e + "position_embeddings",
                           e + "LayerNorm/gamma"], "albert_zh")
    word = variables[e + "word_embeddings"].float() @ variables[e + "word_embeddings_2"].float()
    hidden = int(need(cfg, "hidden_size", source))
    out = {"embedding.word.embedding.weight": word.to(variables[e + "word_embeddings"].dtype),
           "embedding.pos.embedding.weight": variables[e + "position_embeddings"],
           "embedding.layer_norm.gamma": variables[e + "LayerNorm/gamma"],
           "embedding.layer_norm.beta": variables[e + "LayerNorm/beta"]}
    embedding = ["word", "pos"]
    tt = variables.get(e + "token_type_embeddings")
    if tt is not None:
        embedding.append("seg")  # UER segments: [padding, type 0, type 1, ...] (io/hf.py)
        out["embedding.seg.embedding.weight"] = torch.cat([torch.zeros(1, tt.shape[1], dtype=tt.dtype), tt])
    _bert_layer_internal(variables, "bert/encoder/layer_shared", "encoder.transformer", out)
    targets = []
    if "cls/predictions/output_bias" in variables:
        targets.append("mlm")
        out["target.mlm.linear_1.weight"] = _kernel(variables["cls/predictions/transform/dense/kernel"])
        out["target.mlm.linear_1.bias"] = variables["cls/predictions/transform/dense/bias"]
        out["target.mlm.layer_norm.gamma"] = variables["cls/predictions/transform/LayerNorm/gamma"]
        out["target.mlm.layer_norm.beta"] = variables["cls/predictions/transform/LayerNorm/beta"]
        out["target.mlm.linear_2.bias"] = variables["cls/predictions/output_bias"]
    if "cls/seq_relationship/output_weights" in variables and "bert/pooler/dense/kernel" in variables:
        targets.append("sp")
        out["target.sp.linear_1.weight"] = _kernel(variables["bert/pooler/dense/kernel"])
        out["target.sp.linear_1.bias"] = variables["bert/pooler/dense/bias"]
        out["target.sp.linear_2.weight"] = variables["cls/seq_relationship/output_weights"]
        out["target.sp.linear_2.bias"] = variables["cls/seq_relationship/output_bias"]
    elif "bert/pooler/dense/kernel" in variables:
        targets.append("pooler")
        out["target.pooler.linear_1.weight"] = _kernel(variables["bert/pooler/dense/kernel"])
        out["target.pooler.linear_1.bias"] = variables["bert/pooler/dense/bias"]
    tvs = int(tt.shape[0]) if tt is not None else 0
    d = dict(vocab_size=int(word.shape[0]), emb_size=hidden, hidden_size=hidden,
             feedforward_size=int(need(cfg, "intermediate_size", source)),
             heads_num=int(need(cfg, "num_attention_heads", source)), layers_num=int(need(cfg, "num_hidden_layers", source)),
             max_seq_length=int(variables[e + "position_embeddings"].shape[0]),
             dropout=float(cfg.get("hidden_dropout_prob", 0.0)), hidden_act=tf_act(cfg.get("hidden_act", "gelu"), source),
             embedding=embedding, segment_vocab_size=max(3, tvs + 1), encoder="transformer", mask="fully_visible",
             layernorm_positioning="post", layernorm="torch", layernorm_eps=1e-12, parameter_sharing=True,
             target=targets, tie_weights=True, data_processor="albert" if "sp" in targets else "mlm")
    if not targets:
        raise CheckpointError(f"{prefix}: the albert_zh checkpoint has neither cls/predictions nor bert/pooler")
    return _uer_weights(out, d, prefix, source, release_dir_files(prefix, "vocab.txt"))


register_scheme(TFScheme("albert_zh", "brightmart/albert_zh", _is_albert_zh, _read_albert_zh, 30))


# ---------------------------------------------------------------------------------------------- XLNet
_XLNET_LAYER = re.compile(r"^model/transformer/layer_(\d+)/(rel_attn|ff)/(.+)$")


def _is_xlnet(names):
    return "model/transformer/word_embedding/lookup_table" in names


def _read_xlnet(variables, config, which, prefix):
    cfg, path = find_config(config, prefix, ("xlnet_config.json", "config.json"))
    source = path or "config"
    if cfg is None:
        raise ConfigError(f"{prefix}: no config for the XLNet checkpoint (looked for xlnet_config.json, config.json "
                          "beside it; pass config='xlnet_config.json')")
    n_layer, n_head = int(need(cfg, "n_layer", source)), int(need(cfg, "n_head", source))
    act = tf_act(cfg.get("ff_activation", "relu"), source)
    hf = {"model_type": "xlnet", "vocab_size": int(need(cfg, "n_token", source)), "d_model": int(need(cfg, "d_model", source)),
          "n_layer": n_layer, "n_head": n_head, "d_head": int(need(cfg, "d_head", source)),
          "d_inner": int(need(cfg, "d_inner", source)), "ff_activation": {"gelu_fast": "gelu_new"}.get(act, act),
          "untie_r": bool(cfg.get("untie_r", True)), "attn_type": "bi", "bi_data": False, "clamp_len": -1,
          "layer_norm_eps": 1e-12, "tie_word_embeddings": True}
    out = {"transformer.word_embedding.weight": variables["model/transformer/word_embedding/lookup_table"]}
    if "model/transformer/mask_emb/mask_emb" in variables:
        out["transformer.mask_emb"] = variables["model/transformer/mask_emb/mask_emb"]
    else:  # only two-stream pretraining uses it (uer_like keeps it aside for export); a fine-tuned graph lacks it
        out["transformer.mask_emb"] = torch.zeros(1, 1, hf["d_model"])
        logger.info("%s: no model/transformer/mask_emb/mask_emb (used by two-stream pretraining only): zeros", prefix)
    leaf = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}
    unknown = []
    for name, t in variables.items():
        m = _XLNET_LAYER.match(name)
        if not m:
            continue
        i, block, rest = m.groups()
        base = f"transformer.layer.{i}.{block}."
        if block == "rel_attn" and rest in ("q/kernel", "k/kernel", "v/kernel", "o/kernel", "r/kernel"):
            out[base + rest.split("/")[0]] = t  # [d_model, n_head, d_head], as transformers keeps it
        elif rest.startswith("LayerNorm/"):
            out[base + "layer_norm." + leaf[rest.split("/")[1]]] = t
        elif block == "ff" and rest.split("/")[0] in ("layer_1", "layer_2") and rest.split("/")[-1] in ("kernel", "bias"):
            lin, kind = rest.split("/")
            out[base + f"{lin}.{leaf[kind]}"] = _kernel(t) if kind == "kernel" else t
        else:
            unknown.append(name)
    for n in ("r_w_bias", "r_r_bias", "r_s_bias", "seg_embed"):
        t = variables.get(f"model/transformer/{n}")
        if t is None:
            continue
        shared = (t.dim() == 2) if n != "seg_embed" else (t.dim() == 3)
        for i in range(n_layer):
            out[f"transformer.layer.{i}.rel_attn.{n}"] = t if shared else t[i]
    if "model/lm_loss/bias" in variables:
        out["lm_loss.bias"] = variables["model/lm_loss/bias"]
    rest = [n for n in variables if not n.startswith(("model/transformer/", "model/lm_loss/"))]
    if unknown:
        raise CheckpointError(f"the XLNet TF checkpoint has variables this reader does not know: {', '.join(unknown[:10])}")
    if rest:
        logger.info("%s: XLNet TF variables outside the model left out: %s", prefix, ", ".join(rest[:10]))
    return Weights(out, names="hf", path=prefix, config=hf, format="tf",
                   vocab_path=release_dir_files(prefix, "spiece.model"),
                   tokenizer_dir=os.path.dirname(os.path.abspath(prefix)))


register_scheme(TFScheme("xlnet", "zihangdai/xlnet (HFL Chinese-XLNet)", _is_xlnet, _read_xlnet, 40))


# ---------------------------------------------------------------------------------------------- gpt2-ml
_GPT2ML_LAYER = {"query_layer": None, "key_layer": None, "value_layer": None,
                 "context_projection_layer": "self_attn.final_linear", "LayerNorm_mlp_ln0": "layer_norm_1",
                 "intermediate": "feed_forward.linear_1", "output": "feed_forward.linear_2",
                 "LayerNorm_mlp_ln1": "layer_norm_2"}


def _is_gpt2_ml(names):
    return "newslm/embeddings/word_embed" in names


def _read_gpt2_ml(variables, config, which, prefix):
    cfg, path = find_config(config, prefix, ("config.json", "base.json", "large.json", "mega.json"))
    source = path or "config"
    if cfg is None:
        raise ConfigError(f"{prefix}: no config for the gpt2-ml checkpoint (looked for config.json, base.json, "
                          "large.json, mega.json beside it; pass config= its configs/*.json)")
    e = "newslm/embeddings/"
    _need_vars(variables, [e + "word_embed", e + "pos_embed", e + "LayerNorm_embed_norm/gamma"], "gpt2-ml")
    out = {"embedding.word.embedding.weight": variables[e + "word_embed"],
           "embedding.pos.embedding.weight": variables[e + "pos_embed"],
           "embedding.layer_norm.gamma": variables[e + "LayerNorm_embed_norm/gamma"],
           "embedding.layer_norm.beta": variables[e + "LayerNorm_embed_norm/beta"]}
    layers = sorted({int(m.group(1)) for n in variables for m in [re.match(r"newslm/layer(\d+)/", n)] if m})
    if layers != list(range(len(layers))):
        raise CheckpointError(f"{prefix}: gpt2-ml layers are not numbered 0..n-1: {layers[:10]}")
    for i in layers:
        s, t = f"newslm/layer{i:02d}", f"encoder.transformer.{i}"
        qkv = [f"{s}/{n}" for n in ("query_layer", "key_layer", "value_layer")]
        _need_vars(variables, [f"{q}/kernel" for q in qkv], "gpt2-ml")
        out[f"{t}.self_attn.qkv.weight"] = torch.cat([_kernel(variables[f"{q}/kernel"]) for q in qkv])
        out[f"{t}.self_attn.qkv.bias"] = torch.cat([variables[f"{q}/bias"] for q in qkv])
        for tf_name, mod in _GPT2ML_LAYER.items():
            if mod is None:
                continue
            if mod.startswith("layer_norm"):
                out[f"{t}.{mod}.gamma"] = variables[f"{s}/{tf_name}/gamma"]
                out[f"{t}.{mod}.beta"] = variables[f"{s}/{tf_name}/beta"]
            else:
                out[f"{t}.{mod}.weight"] = _kernel(variables[f"{s}/{tf_name}/kernel"])
                out[f"{t}.{mod}.bias"] = variables[f"{s}/{tf_name}/bias"]
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        raise ConfigError(f"{source}: hidden_act {act!r}: gpt2-ml's code computes gelu (erf) whatever it says")
    hidden = int(need(cfg, "hidden_size", source))
    d = dict(vocab_size=int(variables[e + "word_embed"].shape[0]), emb_size=hidden, hidden_size=hidden,
             feedforward_size=int(need(cfg, "intermediate_size", source)),
             heads_num=int(need(cfg, "num_attention_heads", source)), layers_num=len(layers),
             max_seq_length=int(variables[e + "pos_embed"].shape[0]), dropout=float(cfg.get("hidden_dropout_prob", 0.1)),
             hidden_act="gelu", embedding=["word", "pos"], encoder="transformer", mask="causal",
             layernorm_positioning="grover", layernorm="torch", layernorm_eps=1e-5, target=["lm"],
             has_lmtarget_bias=False, tie_weights=True, data_processor="lm")
    if int(need(cfg, "num_hidden_layers", source)) != len(layers):
        raise ConfigError(f"{source}: num_hidden_layers {cfg['num_hidden_layers']} but the checkpoint has {len(layers)} "
                          "layers")
    # the repository's tokenization/ vocabularies, as a release directory may carry them
    vocab = release_dir_files(prefix, "vocab.txt", "clue-vocab.txt", "bert-base-chinese-vocab.txt")
    return _uer_weights(out, d, prefix, source, vocab)


register_scheme(TFScheme("gpt2-ml", "imcaspar/gpt2-ml (Grover)", _is_gpt2_ml, _read_gpt2_ml, 50))
