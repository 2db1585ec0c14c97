"""Hugging Face checkpoints <-> uer_like models: BERT (and every BERT-architecture release: Chinese
RoBERTa-wwm-ext, MacBERT), ERNIE 1.0/3.0 (task-type embeddings), RoBERTa, ALBERT, ELECTRA (discriminator
and generator), GPT-2, NEZHA (functional relative positions), RoFormer (rotary positions) and XLNet
(relative attention; HFL's Chinese XLNet).

One table of rules per family maps Hugging Face names to internal names; the same table serves both
directions, so import and export cannot drift apart. A rule is (HF keys, internal key, kind):
  copy   one tensor, as it is
  qkv    three HF tensors (query, key, value) <-> one fused internal qkv tensor
  conv   GPT-2 Conv1D: the HF weight is [in, out], the internal Linear weight [out, in]
  seg    HF token types <-> UER segments (see below)
  eye    ALBERT's embedding_hidden_mapping_in when the uer_like model has emb_size == hidden_size and
         no projection: an identity on export (exact)
  xin    XLNet's [d_model, heads, head_dim] input projection (q, k, v, r) <-> a Linear weight [hidden, d_model]
  xqkv   XLNet's q, k, v <-> the fused qkv weight
  xout   XLNet's output projection o [d_model, heads, head_dim] <-> a Linear weight [d_model, hidden]
  extra  a tensor the uer_like model does not use (XLNet's mask_emb, only for two-stream pretraining):
         kept beside the model (model.load_info.hf_extras) and written back on export

Segments. UER uses 3 segment rows: 0 padding, 1 sentence A, 2 sentence B. Hugging Face uses
`type_vocab_size` token types (2 for BERT: 0 A, 1 B; 1 for RoBERTa) and gives padding type 0. So the
UER table is [padding row, type 0, type 1, ...]: UER segment s > 0 is HF token type s - 1, and a
UER seg tensor is `(token_type_ids + 1) * attention_mask`. On import the padding row is zero (as
UER-py's own converter makes it) unless the HF config carries the row that an export from uer_like
stored there (`uer_like.segment_padding_row`), which makes UER -> HF -> UER exact. Hidden states are
identical at every non-padding position; at padding positions both models compute values that
nothing attends to, and they differ (zero row vs type-0 row; RoBERTa also gives padding the position
padding_idx). For RoBERTa's single token type the UER table is [padding, type 0, type 0].

Layer norms. Hugging Face layer norms are the standard ones: imported models get `layernorm: "torch"`
with the checkpoint's eps. UER's own layer norm ("normal", every UER-format checkpoint) divides by the
unbiased standard deviation plus eps, the standard one by the square root of the biased variance plus eps:
a model with UER layer norms exports with every gamma multiplied by sqrt((n - 1) / n) and eps 1e-12, so that
transformers computes the same function up to UER's eps (a relative difference of eps / std: 1e-6 / std), with the
original gammas in `uer_like_layernorm.safetensors` beside the weights (transformers ignores the file) and a
note in config.json (`uer_like.layernorm`, `uer_like.gamma_scaled`), which bring the model back exactly on
re-import (without the file, or if the exported gammas were changed since, the gammas are divided back).
"""
import math
import json
import logging
import os
import shutil

import torch

from ..config import ModelConfig
from ..errors import CheckpointError, ConfigError
from . import families
from .formats.base import load_info_of
from .uer import cat

logger = logging.getLogger("uer_like")

# Each family's prefixes, class names, export heads and the heads a checkpoint carries: io/families/ (one
# module per family, registered under its model_type).
# buffers that some transformers versions saved, never weights (NEZHA's relative table and RoFormer's rotary
# table are functions of the config; export writes RoFormer's, which transformers expects)
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids", ".attn.bias", ".attn.masked_bias",
                    "relative_positions_encoding.positions_encoding", "encoder.embed_positions.weight")

ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_fast", "gelu_fast": "gelu_fast", "gelu_pytorch_tanh": "gelu_fast",
               "relu": "relu", "silu": "silu", "swish": "silu", "linear": "linear"}
ACT_TO_HF = {"gelu": "gelu", "gelu_fast": "gelu_new", "relu": "relu", "silu": "silu", "linear": "linear"}

LAYERNORM_SIDECAR = "uer_like_layernorm.safetensors"  # exact UER layer-norm gammas of an export (see above)


def uer_gamma_factor(n):
    """UER layer norm = standard layer norm with gamma x sqrt((n - 1) / n) (up to where eps goes)."""
    return math.sqrt((n - 1) / n)


def _scaled_gamma(t):
    return (t.double() * uer_gamma_factor(t.shape[-1])).to(t.dtype)


TOKENIZER_FILES = ("vocab.txt", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "spiece.model", "sentencepiece.bpe.model", "added_tokens.json")


_DECODER_BIAS = (("cls.predictions.bias", "cls.predictions.decoder.bias"), ("lm_head.bias", "lm_head.decoder.bias"),
                 ("predictions.bias", "predictions.decoder.bias"))


class Rule:
    __slots__ = ("hf", "internal", "kind")

    def __init__(self, hf, internal, kind="copy"):
        self.hf = (hf,) if isinstance(hf, str) else tuple(hf)
        self.internal = internal
        self.kind = kind


# ---------------------------------------------------------------------------------------------- rules
def _ln(hf, internal):
    return [Rule(f"{hf}.weight", f"{internal}.gamma"), Rule(f"{hf}.bias", f"{internal}.beta")]


def _linear(hf, internal, bias=True, kind="copy"):
    out = [Rule(f"{hf}.weight", f"{internal}.weight", kind)]
    if bias:
        out.append(Rule(f"{hf}.bias", f"{internal}.bias"))
    return out


def _bert_layer(hf, internal):
    """One BERT/RoBERTa/ELECTRA encoder layer."""
    r = [Rule([f"{hf}.attention.self.{n}.weight" for n in ("query", "key", "value")], f"{internal}.self_attn.qkv.weight", "qkv"),
         Rule([f"{hf}.attention.self.{n}.bias" for n in ("query", "key", "value")], f"{internal}.self_attn.qkv.bias", "qkv")]
    r += _linear(f"{hf}.attention.output.dense", f"{internal}.self_attn.final_linear")
    r += _ln(f"{hf}.attention.output.LayerNorm", f"{internal}.layer_norm_1")
    r += _linear(f"{hf}.intermediate.dense", f"{internal}.feed_forward.linear_1")
    r += _linear(f"{hf}.output.dense", f"{internal}.feed_forward.linear_2")
    r += _ln(f"{hf}.output.LayerNorm", f"{internal}.layer_norm_2")
    return r


def _embeddings(cfg):
    r = [Rule("embeddings.word_embeddings.weight", "embedding.word.embedding.weight")]
    if "pos" in cfg.embedding:
        r.append(Rule("embeddings.position_embeddings.weight", "embedding.pos.embedding.weight"))
    if "seg" in cfg.embedding:
        r.append(Rule("embeddings.token_type_embeddings.weight", "embedding.seg.embedding.weight", "seg"))
    if "task" in cfg.embedding:
        r.append(Rule("embeddings.task_type_embeddings.weight", "embedding.task.embedding.weight"))
    r += _ln("embeddings.LayerNorm", "embedding.layer_norm")
    return r


def _mlm_head(prefix_dense, prefix_ln, bias_key, decoder_key, target, tied):
    r = _linear(prefix_dense, f"target.{target}.linear_1") + _ln(prefix_ln, f"target.{target}.layer_norm")
    r.append(Rule(bias_key, f"target.{target}.linear_2.bias"))
    if not tied:
        r.append(Rule(decoder_key, f"target.{target}.linear_2.weight"))
    return r


def build_rules(family, cfg):
    """The rules for a uer_like config `cfg` in `family`. HF names of the base model carry no prefix
    here; head names are top-level (as in the *For* classes)."""
    t = cfg.target
    tied = cfg.tie_weights
    fam = families.get(family)
    if fam.rules is not None:  # a family with its own names (GPT-2, XLNet)
        return fam.rules(cfg)
    r = _embeddings(cfg)
    if family == "albert":
        if cfg.factorized_embedding_parameterization:
            r += _linear("encoder.embedding_hidden_mapping_in", "encoder.linear")
        else:
            r.append(Rule(["encoder.embedding_hidden_mapping_in.weight", "encoder.embedding_hidden_mapping_in.bias"],
                          "", "eye"))
        h, e = "encoder.albert_layer_groups.0.albert_layers.0", "encoder.transformer"
        r += [Rule([f"{h}.attention.{n}.weight" for n in ("query", "key", "value")], f"{e}.self_attn.qkv.weight", "qkv"),
              Rule([f"{h}.attention.{n}.bias" for n in ("query", "key", "value")], f"{e}.self_attn.qkv.bias", "qkv")]
        r += _linear(f"{h}.attention.dense", f"{e}.self_attn.final_linear")
        r += _ln(f"{h}.attention.LayerNorm", f"{e}.layer_norm_1")
        r += _linear(f"{h}.ffn", f"{e}.feed_forward.linear_1") + _linear(f"{h}.ffn_output", f"{e}.feed_forward.linear_2")
        r += _ln(f"{h}.full_layer_layer_norm", f"{e}.layer_norm_2")
        if "sp" in t:
            r += _linear("pooler", "target.sp.linear_1") + _linear("sop_classifier.classifier", "target.sp.linear_2")
        if "pooler" in t:
            r += _linear("pooler", "target.pooler.linear_1")
        if "mlm" in t:
            r += _mlm_head("predictions.dense", "predictions.LayerNorm", "predictions.bias", "predictions.decoder.weight",
                           "mlm", tied)
        return r

    if family in ("electra", "roformer") and cfg.factorized_embedding_parameterization:
        r += _linear("embeddings_project", "encoder.linear")
    for i in range(cfg.layers_num):
        r += _bert_layer(f"encoder.layer.{i}", f"encoder.transformer.{i}")
    if family == "roformer":
        if "mlm" in t:
            r += _mlm_head("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias",
                           "cls.predictions.decoder.weight", "mlm", tied)
    elif families.get(family).bert_like:
        for name in ("sp", "cls", "pooler"):
            if name in t:
                r += _linear("pooler.dense", f"target.{name}.linear_1")
        if "sp" in t:
            r += _linear("cls.seq_relationship", "target.sp.linear_2")
        if "cls" in t:
            r += _linear("classifier", "target.cls.linear_2")
        if "mlm" in t:
            r += _mlm_head("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias",
                           "cls.predictions.decoder.weight", "mlm", tied)
    elif family == "roberta":
        if "pooler" in t:
            r += _linear("pooler.dense", "target.pooler.linear_1")
        if "cls" in t:
            r += _linear("classifier.dense", "target.cls.linear_1") + _linear("classifier.out_proj", "target.cls.linear_2")
        if "mlm" in t:
            r += _mlm_head("lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder.weight", "mlm", tied)
    elif family == "electra":
        if "electra_disc" in t:
            r += _linear("discriminator_predictions.dense", "target.electra_disc.linear_1")
            r += _linear("discriminator_predictions.dense_prediction", "target.electra_disc.linear_2")
        for name in ("electra_gen", "mlm"):
            if name in t:
                r += _mlm_head("generator_predictions.dense", "generator_predictions.LayerNorm", "generator_lm_head.bias",
                               "generator_lm_head.weight", name, tied)
    return r


# base-model names (everything else in a *For* checkpoint is a head, stored without the base prefix)
def _is_base_key(family, key):
    fam = families.get(family)
    if fam.is_base_key is not None:
        return fam.is_base_key(key)
    return key.split(".")[0] in ("embeddings", "embeddings_project", "encoder", "pooler")


def hf_names(family, cfg):
    """internal key -> the HF key(s) it comes from (for messages)."""
    return {r.internal: r.hf for r in build_rules(family, cfg) if r.internal}


# ---------------------------------------------------------------------------------------------- HF -> uer_like
def family_of(hf_config, source="config.json"):
    mt = hf_config.get("model_type")
    if mt == "bert" and hf_config.get("use_task_id"):  # early ERNIE 3.0 conversions: BERT plus task types
        return "ernie"
    if mt not in families.names():
        raise ConfigError(f"{source}: model_type {mt!r} is not supported; supported: {', '.join(families.names())} "
                          "(BERT-architecture releases such as Chinese RoBERTa-wwm-ext and MacBERT are model_type "
                          "'bert')")
    return mt


def canonical_state(state, family):
    """Strip the base prefix (`bert.`, `roberta.`, ... `transformer.`), drop saved buffers, rename the
    LayerNorm gamma/beta of old checkpoints to weight/bias."""
    fam = families.get(family)
    prefixes = (fam.base_prefix + ".",) + fam.other_prefixes
    out = {}
    for k, v in state.items():
        if k.endswith(_BUFFER_SUFFIXES) or k == "position_ids":
            continue
        for prefix in prefixes:
            if k.startswith(prefix):
                k = k[len(prefix):]
                break
        if ("LayerNorm" in k or "layer_norm" in k) and k.endswith((".gamma", ".beta")):
            k = k[: k.rfind(".")] + (".weight" if k.endswith(".gamma") else ".bias")
        out[k] = v
    return out


def targets_from_keys(family, keys):
    """The targets a Hugging Face checkpoint carries, read off its keys (the family's target_rules)."""
    keys = set(keys)
    found = []
    for alternatives in families.get(family).target_rules:
        for target, markers in alternatives:
            if not markers or keys.intersection(markers):
                found.append(target)
                break
    return found


def uer_config_from_hf(hf, targets, source="config.json"):
    """A uer_like ModelConfig equivalent to a Hugging Face config dict (and the targets found)."""
    family = family_of(hf, source)

    def need(key, default=None):
        if key in hf and hf[key] is not None:
            return hf[key]
        if default is not None:
            return default
        raise ConfigError(f"{source}: the Hugging Face config lacks '{key}'")

    def act(name):
        if name not in ACT_FROM_HF:
            raise ConfigError(f"{source}: activation {name!r} is not supported; supported: {', '.join(ACT_FROM_HF)}")
        return ACT_FROM_HF[name]

    extras = hf.get("uer_like") or {}
    d = {}
    fam = families.get(family)
    if fam.config_from_hf is not None:  # a family with its own config keys (GPT-2, XLNet)
        d.update(fam.config_from_hf(hf, targets, extras, need, act, source))
    else:
        if (hf.get("position_embedding_type") or "absolute") != "absolute":
            raise ConfigError(f"{source}: position_embedding_type {hf['position_embedding_type']!r} is not supported "
                              "(only 'absolute')")
        if hf.get("is_decoder") or hf.get("add_cross_attention"):
            raise ConfigError(f"{source}: decoder / cross-attention models are not supported")
        hidden = need("hidden_size")
        emb = hf.get("embedding_size") or hidden if family in ("albert", "electra", "roformer") else hidden
        offset = (int(hf.get("pad_token_id", 1)) + 1) if family == "roberta" else 0
        max_pos = need("max_position_embeddings")
        if max_pos <= offset:
            raise ConfigError(f"{source}: max_position_embeddings {max_pos} leaves no positions after the offset {offset}")
        tvs = int(hf.get("type_vocab_size", 2))
        # NEZHA and RoFormer put positions into attention: no position embedding
        embedding = ["word"] + (["pos"] if family not in ("nezha", "roformer") else []) + (["seg"] if tvs > 0 else [])
        if family == "ernie" and hf.get("use_task_id"):
            embedding.append("task")
            d.update(task_type_vocab_size=int(hf.get("task_type_vocab_size", 3)))
        if family == "nezha":
            d.update(position_scheme="nezha", max_relative_position=int(hf.get("max_relative_position", 64)))
        if family == "roformer":
            d.update(position_scheme="rotary", rotary_value=bool(hf.get("rotary_value", False)),
                     factorized_embedding_parameterization=emb != hidden)
        d.update(emb_size=emb, hidden_size=hidden, feedforward_size=need("intermediate_size"),
                 heads_num=need("num_attention_heads"), layers_num=need("num_hidden_layers"),
                 max_seq_length=max_pos - offset, position_offset=offset,
                 dropout=float(hf.get("hidden_dropout_prob", 0.1)), hidden_act=act(hf.get("hidden_act", "gelu")),
                 embedding=embedding,
                 segment_vocab_size=max(3, tvs + 1), encoder="transformer", mask="fully_visible",
                 layernorm_positioning="post", layernorm="torch", layernorm_eps=float(hf.get("layer_norm_eps", 1e-12)),
                 target=targets, data_processor="bert" if "sp" in targets else "mlm")
        if family == "albert":
            if int(hf.get("num_hidden_groups", 1)) != 1 or int(hf.get("inner_group_num", 1)) != 1:
                raise ConfigError(f"{source}: ALBERT with num_hidden_groups={hf.get('num_hidden_groups')} / "
                                  f"inner_group_num={hf.get('inner_group_num')} is not supported (only 1 and 1, as "
                                  "every released ALBERT)")
            d.update(factorized_embedding_parameterization=True, parameter_sharing=True, dropout=float(hf.get(
                "hidden_dropout_prob", 0.0)), data_processor="albert" if "sp" in targets else "mlm")
        if family == "electra":
            d.update(factorized_embedding_parameterization=emb != hidden)
        if "cls" in targets:
            d.update(labels_num=int(hf.get("num_labels") or len(hf.get("id2label") or {}) or 2), pooling="first",
                     data_processor="cls")
    if "task" in d.get("embedding", ()) and extras.get("task_id"):
        d["task_id"] = int(extras["task_id"])
    d["tie_weights"] = bool(hf.get("tie_word_embeddings", True))
    d["vocab_size"] = need("vocab_size")
    if extras.get("layernorm") in ("normal", "torch"):
        d["layernorm"] = extras["layernorm"]
        d["layernorm_eps"] = extras.get("layernorm_eps")
    return family, ModelConfig.from_dict(d, source=source)


def _xlnet_in(t):
    """XLNet [d_model, heads, head_dim] input projection -> Linear weight [heads * head_dim, d_model]."""
    return t.reshape(t.shape[0], -1).t().contiguous()


def state_from_hf(hf_state, hf, family, cfg, source="checkpoint", ln_originals=None, rules=None):
    """HF tensors (canonical names) -> (internal state dict, unexpected HF keys, missing HF keys).
    ln_originals: the exact gammas of an export with scaled UER layer norms (LAYERNORM_SIDECAR), by internal name.
    rules: the Rule list to apply (default: build_rules(family, cfg)), for a release with parts of its own (ZEN).
    Tensors of `extra` rules are returned under their HF names in out["hf_extras"] (a dict)."""
    extras = hf.get("uer_like") or {}
    scaled = bool(extras.get("gamma_scaled")) and cfg.layernorm == "normal"
    stale = []
    out, used, missing = {}, set(), []
    if not cfg.tie_weights:
        # untied heads (transformers 5): the decoder's own bias is the one the forward pass adds
        hf_state = dict(hf_state)
        for bias, dec in _DECODER_BIAS:
            if dec in hf_state:
                if bias in hf_state and not torch.equal(hf_state[bias], hf_state[dec]):
                    logger.info("%s: %s differs from %s; using %s (what transformers computes with)", source, bias,
                                dec, dec)
                hf_state[bias] = hf_state[dec]
    tvs = int(hf.get("type_vocab_size", 2))
    for rule in build_rules(family, cfg) if rules is None else rules:
        present = [k for k in rule.hf if k in hf_state]
        if rule.kind == "eye":
            used.update(present)  # ALBERT projection exported as identity: nothing to load into
            continue
        if len(present) != len(rule.hf):
            missing += [k for k in rule.hf if k not in hf_state]
            continue
        used.update(present)
        ts = [hf_state[k] for k in rule.hf]
        if rule.kind == "copy" and scaled and rule.internal.endswith(".gamma"):
            orig = (ln_originals or {}).get(rule.internal)
            if orig is not None and orig.shape == ts[0].shape and torch.equal(_scaled_gamma(orig.to(ts[0].dtype)), ts[0]):
                out[rule.internal] = orig.to(ts[0].dtype)
            else:
                stale.append(rule.internal)
                out[rule.internal] = (ts[0].double() / uer_gamma_factor(ts[0].shape[-1])).to(ts[0].dtype)
        elif rule.kind == "copy":
            out[rule.internal] = ts[0]
        elif rule.kind == "qkv":
            if len({tuple(t.shape) for t in ts}) != 1:
                desc = ", ".join(f"{k} {tuple(t.shape)}" for k, t in zip(rule.hf, ts))
                raise CheckpointError(f"{source}: query, key and value differ in shape: {desc}")
            out[rule.internal] = cat(ts)
        elif rule.kind == "conv":
            out[rule.internal] = ts[0].t().contiguous()
        elif rule.kind in ("xin", "xqkv"):
            out[rule.internal] = cat([_xlnet_in(t) for t in ts])
        elif rule.kind == "xout":
            out[rule.internal] = ts[0].reshape(ts[0].shape[0], -1).contiguous()
        elif rule.kind == "extra":
            out.setdefault("hf_extras", {})[rule.hf[0]] = ts[0]
        elif rule.kind == "seg":
            tt = ts[0]
            if tt.shape[0] != tvs:
                raise CheckpointError(f"{source}: token_type_embeddings has {tt.shape[0]} rows but config.json says "
                                      f"type_vocab_size {tvs}")
            pad = torch.zeros(1, tt.shape[1], dtype=tt.dtype)
            if extras.get("segment_padding_row") is not None:
                pad = torch.tensor([extras["segment_padding_row"]], dtype=torch.float32).to(tt.dtype)
                if pad.shape[1] != tt.shape[1]:
                    raise CheckpointError(f"{source}: uer_like.segment_padding_row has {pad.shape[1]} values, "
                                          f"token_type_embeddings {tt.shape[1]} columns")
            rows = [pad, tt] + ([tt[:1]] if tvs == 1 else [])
            out[rule.internal] = torch.cat(rows, dim=0)
    # tied decoder weights that old checkpoints store (and transformers ignores in favour of the embedding)
    for k in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias", "lm_head.decoder.weight",
              "lm_head.decoder.bias", "predictions.decoder.weight", "predictions.decoder.bias",
              "generator_lm_head.weight", "lm_head.weight", "lm_loss.weight"):
        if k in hf_state and k not in used:
            if k.endswith(".bias") or cfg.tie_weights:
                used.add(k)
    if stale:
        logger.info("%s: %d UER layer-norm gammas recomputed from the scaled ones (no exact copy in %s, or "
                    "changed since the export)", source, len(stale), LAYERNORM_SIDECAR)
    unexpected = [k for k in hf_state if k not in used]
    return out, unexpected, missing


# ---------------------------------------------------------------------------------------------- uer_like -> HF
def hf_family_for(config, prefer=None):
    """Which Hugging Face family can represent a uer_like config, or a ConfigError saying why none can.
    prefer: the family the model was loaded from, kept when it can still represent the model (an ERNIE 1.0
    release stays model_type 'ernie')."""
    c = config
    if c.encoder != "transformer":
        raise ConfigError(f"encoder {c.encoder!r} has no Hugging Face equivalent here (only 'transformer')")
    if c.feed_forward != "dense" or c.remove_transformer_bias or c.layernorm == "t5":
        raise ConfigError("gated feed-forward, bias-free transformers and T5 layer norms have no BERT/GPT-2 "
                          "equivalent for export")
    scheme = c.position_scheme
    if scheme == "xlnet":
        return _xlnet_family(c)
    if c.remove_attention_bias:
        raise ConfigError("attention projections without bias (remove_attention_bias) export only as XLNet "
                          "(position_scheme 'xlnet')")
    if scheme == "relative_position_bucket":
        from .families.mpnet import check_export

        return check_export(c)
    if c.mask == "causal":
        if scheme != "absolute":
            raise ConfigError(f"a causal model with position_scheme {scheme!r} (such as NEZHA-Gen) has no Hugging Face "
                              "class to export to; save it in UER or safetensors format")
        if c.layernorm_positioning != "pre" or c.embedding != ["word", "pos"] or not c.remove_embedding_layernorm:
            raise ConfigError("a causal model exports as GPT-2 only with embedding [word, pos], "
                              "remove_embedding_layernorm and layernorm_positioning 'pre'")
        if set(c.target) - {"lm"} or c.has_lmtarget_bias:
            raise ConfigError(f"GPT-2 export supports the target 'lm' without bias, got {c.target}")
        if c.position_offset:
            raise ConfigError("GPT-2 export needs position_offset 0")
        return "gpt2"
    if c.layernorm_positioning != "post" or c.remove_embedding_layernorm:
        raise ConfigError("a fully visible model exports as BERT/RoBERTa/ALBERT/ELECTRA/ERNIE/NEZHA/RoFormer only "
                          "with post layer norm and the embedding layer norm")
    emb = sorted(c.embedding)
    if scheme in ("nezha", "rotary"):
        family = "nezha" if scheme == "nezha" else "roformer"
        if emb not in (["seg", "word"], ["word"]):
            raise ConfigError(f"embedding {c.embedding} has no {family} equivalent (need word[, seg])")
        if c.parameter_sharing or c.position_offset or (family == "nezha" and c.factorized_embedding_parameterization):
            raise ConfigError(f"a {family} export has no parameter sharing, position offset"
                              + (" or embedding projection" if family == "nezha" else ""))
    elif "task" in c.embedding:
        family = "ernie"
        if emb not in (["pos", "seg", "task", "word"], ["pos", "task", "word"]):
            raise ConfigError(f"embedding {c.embedding} has no ERNIE equivalent (need word, pos[, seg], task)")
        if c.parameter_sharing or c.position_offset or c.factorized_embedding_parameterization:
            raise ConfigError("an ERNIE export has no parameter sharing, position offset or embedding projection")
    else:
        if emb not in (["pos", "seg", "word"], ["pos", "word"]):
            raise ConfigError(f"embedding {c.embedding} has no Hugging Face equivalent (need word, pos[, seg])")
        if c.parameter_sharing:
            family = "albert"
        elif {"electra_disc", "electra_gen"} & set(c.target) or c.factorized_embedding_parameterization:
            family = "electra"
        elif c.position_offset:
            family = "roberta"
        else:
            family = "ernie" if prefer == "ernie" else "bert"
    allowed = families.get(family).export_targets
    bad = set(c.target) - allowed
    if bad:
        raise ConfigError(f"{family} export does not support the target(s) {sorted(bad)}; supported: {sorted(allowed)}")
    if families.get(family).one_pooler and len({"sp", "cls", "pooler"} & set(c.target)) > 1:
        raise ConfigError(f"a {family} export has one pooler; targets {c.target} would need several")
    if {"mlm", "cls"} <= set(c.target):
        raise ConfigError("no Hugging Face class has both an MLM head and a classifier: export the model once with "
                          "each target (model.config.replace(target=[...]))")
    if family == "electra" and len({"electra_disc", "electra_gen", "mlm"} & set(c.target)) > 1:
        raise ConfigError("ELECTRA's discriminator and generator are separate Hugging Face models: export them "
                          "as two models")
    if family == "electra" and "mlm" in c.target and c.hidden_act != "gelu":
        raise ConfigError("an 'mlm' target exports as the ELECTRA generator only with hidden_act gelu "
                          "(use the 'electra_gen' target)")
    if "cls" in c.target and c.pooling != "first":
        raise ConfigError(f"the cls target exports as {families.get(family).class_prefix}ForSequenceClassification "
                          f"only with pooling 'first', got {c.pooling!r}")
    return family


def _xlnet_family(c):
    if (c.embedding != ["word"] or not c.remove_embedding_layernorm or not c.remove_attention_bias
            or c.layernorm_positioning != "post" or c.factorized_embedding_parameterization or c.parameter_sharing):
        raise ConfigError("position_scheme 'xlnet' exports to transformers' XLNet only with embedding [word], "
                          "remove_embedding_layernorm, remove_attention_bias, post layer norm, no embedding projection "
                          "and no parameter sharing")
    t = set(c.target)
    if t - {"lm", "cls"} or t == {"lm", "cls"}:
        raise ConfigError(f"XLNet export supports the target 'lm' (XLNetLMHeadModel) or 'cls' "
                          f"(XLNetForSequenceClassification), got {c.target}")
    if "lm" in t and not c.has_lmtarget_bias:
        raise ConfigError("XLNet's LM head has a bias: export needs has_lmtarget_bias true")
    if "cls" in t and c.pooling != "last":
        raise ConfigError(f"the cls target exports as XLNetForSequenceClassification only with pooling 'last', "
                          f"got {c.pooling!r}")
    return "xlnet"


def hf_config_for(model, family, source_hf=None):
    c = model.config
    state = model.state_dict()
    dtype = str(next(iter(state.values())).dtype).replace("torch.", "") if state else "float32"
    if c.hidden_act not in ACT_TO_HF:
        raise ConfigError(f"hidden_act {c.hidden_act!r} has no Hugging Face name")
    # UER layer norms (eps added to the standard deviation) export with scaled gammas and an eps that vanishes
    # inside transformers' square root: the output then differs from UER's by eps / std (module docstring)
    eps = 1e-12 if c.layernorm == "normal" else c.layernorm_eps if c.layernorm_eps is not None else 1e-12
    fam = families.get(family)
    arch = fam.architecture(set(c.target))
    if fam.config_to_hf is not None:  # a family with its own config keys (GPT-2, XLNet)
        hf = fam.config_to_hf(model, arch, eps)
    else:
        tvs = c.segment_vocab_size - 1 if "seg" in c.embedding else 1  # no segments: one zero token type
        if family == "roberta" and "seg" in c.embedding:
            seg = state["embedding.seg.embedding.weight"]
            if seg.shape[0] == 3 and torch.equal(seg[1], seg[2]):
                tvs = 1
        hf = {"model_type": family, "architectures": [arch], "vocab_size": model.vocab_size,
              "hidden_size": c.hidden_size, "num_hidden_layers": c.layers_num, "num_attention_heads": c.heads_num,
              "intermediate_size": c.feedforward_size, "hidden_act": ACT_TO_HF[c.hidden_act],
              "hidden_dropout_prob": c.dropout, "attention_probs_dropout_prob": c.dropout,
              "max_position_embeddings": c.max_seq_length + c.position_offset, "type_vocab_size": tvs,
              "layer_norm_eps": eps, "tie_word_embeddings": c.tie_weights, "initializer_range": 0.02,
              "position_embedding_type": "absolute",
              "pad_token_id": c.position_offset - 1 if family == "roberta" else 0}
        if family in ("nezha", "roformer"):
            del hf["position_embedding_type"]
        if family == "nezha":
            hf["max_relative_position"] = c.max_relative_position
        if family == "roformer":
            hf["rotary_value"] = c.rotary_value
        if family == "ernie":
            hf.update(use_task_id="task" in c.embedding, task_type_vocab_size=c.task_type_vocab_size)
        if family in ("albert", "electra", "roformer"):
            hf["embedding_size"] = c.emb_size
        if family == "albert":
            hf.update(num_hidden_groups=1, inner_group_num=1, classifier_dropout_prob=0.1)
        if family == "roberta":
            hf.update(bos_token_id=0, eos_token_id=2)
        if "cls" in c.target:
            hf.update(num_labels=c.labels_num, id2label={str(i): f"LABEL_{i}" for i in range(c.labels_num)},
                      label2id={f"LABEL_{i}": i for i in range(c.labels_num)})
    if source_hf:  # keep token ids and tokenizer hints of the release this model came from
        for k in ("pad_token_id", "bos_token_id", "eos_token_id", "tokenizer_class", "id2label", "label2id"):
            if k in source_hf and (k not in ("id2label", "label2id") or "cls" in c.target):
                hf[k] = source_hf[k]
    hf["dtype"] = dtype
    extras = {}
    if c.layernorm != "torch":
        extras.update(layernorm=c.layernorm, layernorm_eps=c.layernorm_eps)
    if c.layernorm == "normal":
        extras["gamma_scaled"] = True
    if family == "xlnet":
        extras["max_seq_length"] = c.max_seq_length
    if family == "ernie" and "task" in c.embedding and c.task_id:
        extras["task_id"] = c.task_id
    if families.get(family).rules is None and "seg" in c.embedding:  # BERT-shaped: token types
        pad = state["embedding.seg.embedding.weight"][0]
        if bool((pad != 0).any()):
            extras["segment_padding_row"] = [float(x) for x in pad.float().tolist()]
    if extras:
        hf["uer_like"] = extras
    return hf


def state_to_hf(model, family, hf_cfg, originals=None):
    """Internal state -> HF state dict with the *For* class layout (base prefix included). UER layer norms
    ("normal") get scaled gammas (see the module docstring); `originals`, a dict, receives the unscaled ones
    by internal name."""
    cfg = model.config
    info = load_info_of(model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    out = {}
    prefix = families.get(family).base_prefix + "."
    tvs = hf_cfg.get("type_vocab_size", 0)
    arch = hf_cfg["architectures"][0]
    bare = arch.endswith("Model") and not arch.endswith("LMHeadModel")  # BertModel etc.: no prefix
    for rule in build_rules(family, cfg):
        if rule.kind == "eye":
            dev = state["embedding.word.embedding.weight"]
            vals = [torch.eye(cfg.hidden_size, dtype=dev.dtype), torch.zeros(cfg.hidden_size, dtype=dev.dtype)]
        elif rule.kind == "extra":  # kept from the release, or zeros (XLNet's mask_emb: two-stream pretraining only)
            word = state["embedding.word.embedding.weight"]
            kept = (info.hf_extras if info is not None else {}).get(rule.hf[0])
            vals = [kept if kept is not None else torch.zeros(1, 1, word.shape[1], dtype=word.dtype)]
        else:
            if rule.internal not in state:
                raise CheckpointError(f"the model lacks {rule.internal}, which the {family} export needs")
            t = state[rule.internal]
            if rule.kind == "copy" and cfg.layernorm == "normal" and rule.internal.endswith(".gamma"):
                if originals is not None:
                    originals[rule.internal] = t.contiguous().clone()
                vals = [_scaled_gamma(t)]
            elif rule.kind == "copy":
                vals = [t]
            elif rule.kind == "qkv":
                vals = list(t.chunk(3, dim=0))
            elif rule.kind == "conv":
                vals = [t.t()]
            elif rule.kind == "seg":
                if tvs == 1 and t.shape[0] == 3 and not torch.equal(t[1], t[2]):
                    logger.warning("RoBERTa export: segment rows 1 and 2 differ; only row 1 is kept (type 0)")
                vals = [t[1:1 + tvs]]
            elif rule.kind in ("xin", "xqkv", "xout"):
                d_model, heads = cfg.hidden_size, cfg.heads_num
                parts = t.chunk(3, dim=0) if rule.kind == "xqkv" else [t]
                if rule.kind == "xout":
                    vals = [t.reshape(d_model, heads, -1)]
                else:
                    vals = [w.t().reshape(d_model, heads, -1) for w in parts]
        for name, v in zip(rule.hf, vals):
            key = (prefix + name) if (_is_base_key(family, name) and not bare) else name
            out[key] = v.contiguous().clone()
    if family == "roformer":  # transformers keeps the rotary sin/cos table as a (frozen) weight
        from ..layers.positions.rotary import rotary_table

        cos, sin = rotary_table(cfg.max_seq_length, cfg.hidden_size // cfg.heads_num)
        dtype = state["embedding.word.embedding.weight"].dtype
        key = "encoder.embed_positions.weight"
        out[key if bare else prefix + key] = torch.cat([sin, cos], dim=-1).to(dtype)
    if families.get(family).rules is None and "seg" not in cfg.embedding:  # a zero token-type row adds nothing
        word = state["embedding.word.embedding.weight"]
        key = "embeddings.token_type_embeddings.weight" if bare else prefix + "embeddings.token_type_embeddings.weight"
        out[key] = torch.zeros(1, word.shape[1], dtype=word.dtype)
    if not cfg.tie_weights:  # untied MLM heads: transformers also saves (and expects) the decoder's own bias
        for bias, dec in _DECODER_BIAS:
            if bias in out and family != "gpt2":
                out[dec] = out[bias].clone()
    return out


def write_tokenizer_files(out_dir, family, vocab_path=None, source_dir=None, do_lower_case=True):
    """Tokenizer files for transformers: the source release's files when the model came from one, else a
    BertTokenizer over a one-token-per-line vocabulary (Google BERT format), or for XLNet its sentencepiece
    model (`vocab_path` ending in .model) as spiece.model. Returns the files written."""
    written = []
    if source_dir and os.path.isdir(source_dir):
        for name in TOKENIZER_FILES:
            p = os.path.join(source_dir, name)
            if os.path.isfile(p):
                dst = os.path.join(out_dir, name)
                if not (os.path.exists(dst) and os.path.samefile(p, dst)):
                    shutil.copyfile(p, dst)
                written.append(name)
        if written:
            return written
    if family == "xlnet":  # XLNet's tokenizer is its sentencepiece model
        if vocab_path is None or not vocab_path.endswith(".model"):
            return written
        shutil.copyfile(vocab_path, os.path.join(out_dir, "spiece.model"))
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump({"tokenizer_class": "XLNetTokenizer", "do_lower_case": False, "keep_accents": False}, f, indent=2)
        return ["spiece.model", "tokenizer_config.json"]
    if vocab_path is None:
        return written
    if not vocab_path.endswith(".txt"):
        raise ConfigError(f"{vocab_path}: only one-token-per-line vocabularies (vocab.txt) can be written as "
                          "Hugging Face tokenizer files")
    dst = os.path.join(out_dir, "vocab.txt")
    if not (os.path.exists(dst) and os.path.samefile(vocab_path, dst)):
        shutil.copyfile(vocab_path, dst)
    tok = {"tokenizer_class": "BertTokenizer", "do_lower_case": do_lower_case, "unk_token": "[UNK]",
           "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
           "tokenize_chinese_chars": True, "strip_accents": None, "model_max_length": 512}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, indent=2)
    special = {k: tok[k] for k in ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")}
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(special, f, indent=2)
    return ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]
