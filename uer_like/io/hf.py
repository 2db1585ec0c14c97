"""Hugging Face checkpoints <-> uer_like models: BERT (and every BERT-architecture release: Chinese
RoBERTa-wwm-ext, MacBERT), ERNIE 1.0/3.0 (task-type embeddings), RoBERTa, ALBERT, ELECTRA (discriminator
and generator), GPT-2, NEZHA (functional relative positions), RoFormer (rotary positions), XLNet
(relative attention; HFL's Chinese XLNet), OpenAI GPT (CDial-GPT), DistilBERT, Megatron-BERT, XLM-RoBERTa
(XLM-R, CINO) and the encoder-decoder models BART, PEGASUS, T5 / T5 v1.1 and mT5.

One table of rules per family maps Hugging Face names to internal names; the same table serves both
directions, so import and export cannot drift apart. Each family's table, config mapping, heads and export
checks are its module's in io/families/ (a Family registered under its model_type); this module applies them
and branches on no family. A rule is (HF keys, internal key, kind):
  copy   one tensor, as it is
  qkv    three HF tensors (query, key, value) <-> one fused internal qkv tensor
  conv   GPT-2 Conv1D: the HF weight is [in, out], the internal Linear weight [out, in]
  seg    HF token types <-> UER segments (see below)
  eye    ALBERT's embedding_hidden_mapping_in when the uer_like model has emb_size == hidden_size and
         no projection: an identity on export (exact)
  xin    XLNet's [d_model, heads, head_dim] input projection (q, k, v, r) <-> a Linear weight [hidden, d_model]
  xqkv   XLNet's q, k, v <-> the fused qkv weight
  xout   XLNet's output projection o [d_model, heads, head_dim] <-> a Linear weight [d_model, hidden]
  dup    export only: a copy of a tensor another rule loads (BART's embed_tokens beside model.shared when
         the head is untied); ignored on import, present or not
  pad2   export only: a position table counted from 0 written with two zero rows in front (BART's offset 2)
  flat   a [1, n] HF tensor <-> an [n] internal one (BART's and PEGASUS' final_logits_bias: the LM-head bias)
  sin    a fixed table transformers stores (PEGASUS' sinusoidal embed_positions): checked against the table
         the config gives on import, written on export; the internal name is the embedding that computes it
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
from .families.rules import ACT_FROM_HF, ACT_TO_HF, Rule  # noqa: F401  (the names family modules and callers use)
from .families.rules import linear as _linear  # noqa: F401
from .families.rules import ln as _ln  # noqa: F401
from .formats.base import load_info_of
from .uer import cat, sinusoidal_table

logger = logging.getLogger("uer_like")

# Everything per family (names, config keys, heads, export checks, tokenizer files) is its module's in
# io/families/ (registered under its model_type); this module applies it. Buffers that some transformers
# versions saved, never weights (a family adds its own: Family.buffers):
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")

LAYERNORM_SIDECAR = "uer_like_layernorm.safetensors"  # exact UER layer-norm gammas of an export (see above)


def uer_gamma_factor(n):
    """UER layer norm = standard layer norm with gamma x sqrt((n - 1) / n) (up to where eps goes)."""
    return math.sqrt((n - 1) / n)


def _scaled_gamma(t):
    return (t.double() * uer_gamma_factor(t.shape[-1])).to(t.dtype)


TOKENIZER_FILES = ("vocab.txt", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "spiece.model", "sentencepiece.bpe.model", "added_tokens.json")


def _hook(family, name):
    """A Family's hook, or a one-line error for a family registered without it."""
    fn = getattr(families.get(family), name)
    if fn is None:
        raise ConfigError(f"the Hugging Face family {family!r} declares no {name} (io/families/)")
    return fn


# ---------------------------------------------------------------------------------------------- rules
def build_rules(family, cfg):
    """The rules for a uer_like config `cfg` in `family` (its Family.rules). HF names of the base model carry
    no prefix here; head names are top-level (as in the *For* classes)."""
    return _hook(family, "rules")(cfg)


def _is_base_key(family, key):
    """Whether an HF key (without the base prefix) is the base model's; everything else in a *For* checkpoint
    is a head, stored without the base prefix."""
    return _hook(family, "is_base_key")(key)


def hf_names(family, cfg):
    """internal key -> the HF key(s) it comes from (for messages)."""
    return {r.internal: r.hf for r in build_rules(family, cfg) if r.internal}


# ---------------------------------------------------------------------------------------------- HF -> uer_like
def family_of(hf_config, source="config.json"):
    """The family of a config.json: its model_type, or the family that claims it (Family.claims)."""
    mt = hf_config.get("model_type")
    for fam in families.all_families():
        if fam.claims is not None and fam.claims(hf_config):
            return fam.name
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
    buffers = _BUFFER_SUFFIXES + tuple(fam.buffers)
    out = {}
    for k, v in state.items():
        if (k.endswith(buffers) and not k.endswith(fam.weight_suffixes)) or k == "position_ids":
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
    d = dict(_hook(family, "config_from_hf")(hf, targets, extras, need, act, source))
    d.setdefault("tie_weights", bool(hf.get("tie_word_embeddings", True)))  # a family may decide (T5)
    d["vocab_size"] = need("vocab_size")
    if extras.get("layernorm") in ("normal", "torch"):
        d["layernorm"] = extras["layernorm"]
        d["layernorm_eps"] = extras.get("layernorm_eps")
    return family, ModelConfig.from_dict(d, source=source)


def _fixed_table(internal, cfg):
    """The fixed table an embedding named by `internal` (embedding.NAME / tgt_embedding.NAME) computes."""
    from ..embeddings.sinusoidal import concat_table  # the embeddings package: only for a fixed table

    if internal.endswith(".sinusoidalpos_concat"):
        return concat_table(cfg.max_seq_length, cfg.emb_size)
    if internal.endswith(".sinusoidalpos_2019"):
        return sinusoidal_table(cfg)
    raise ValueError(f"no fixed table for {internal}")


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
    fam = families.get(family)
    if not cfg.tie_weights:
        # untied heads (transformers 5): the decoder's own bias is the one the forward pass adds
        hf_state = dict(hf_state)
        for bias, dec in fam.decoder_bias:
            if dec in hf_state:
                if bias in hf_state and not torch.equal(hf_state[bias], hf_state[dec]):
                    logger.info("%s: %s differs from %s; using %s (what transformers computes with)", source, bias,
                                dec, dec)
                hf_state[bias] = hf_state[dec]
    tvs = int(hf.get("type_vocab_size", 2))
    for rule in build_rules(family, cfg) if rules is None else rules:
        present = [k for k in rule.hf if k in hf_state]
        if rule.kind in ("eye", "dup"):
            used.update(present)  # ALBERT projection exported as identity / a copy: nothing to load into
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
        elif rule.kind == "flat":
            out[rule.internal] = ts[0].reshape(-1)
        elif rule.kind == "sin":
            want = _fixed_table(rule.internal, cfg).to(ts[0].dtype)
            if ts[0].shape != want.shape or not torch.allclose(ts[0].float(), want.float(), atol=1e-4, rtol=0):
                raise CheckpointError(f"{source}: {rule.hf[0]} is not the sinusoidal table of the config "
                                      f"(max_position_embeddings x d_model {tuple(want.shape)})")
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
    for k in fam.tied_keys:
        if k in hf_state and k not in used:
            if k.endswith(".bias") or cfg.tie_weights:
                used.add(k)
    if cfg.share_embedding:  # encoder-decoder files of transformers 4 repeat the shared embedding per side
        used.update(k for k in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight") if k in hf_state)
    if stale:
        logger.info("%s: %d UER layer-norm gammas recomputed from the scaled ones (no exact copy in %s, or "
                    "changed since the export)", source, len(stale), LAYERNORM_SIDECAR)
    unexpected = [k for k in hf_state if k not in used]
    return out, unexpected, missing


# ---------------------------------------------------------------------------------------------- uer_like -> HF
def hf_family_for(config, prefer=None):
    """Which Hugging Face family can represent a uer_like config, or a ConfigError saying why none can.
    The families whose export_rank is highest for the config's shape are the candidates: `prefer` (the family
    the model was loaded from) among them is kept when it can still represent the model (an ERNIE 1.0 release
    stays model_type 'ernie', an XLM-R one 'xlm-roberta'), else the default one; its check_export then says what
    it cannot hold."""
    c = config
    if c.encoder != "transformer":
        raise ConfigError(f"encoder {c.encoder!r} has no Hugging Face equivalent here (only 'transformer')")
    # an encoder-decoder family (T5: gated feed-forward, no biases, its own norm) checks these itself
    if c.decoder is None and (c.feed_forward != "dense" or c.remove_transformer_bias or c.layernorm == "t5"):
        raise ConfigError("gated feed-forward, bias-free transformers and T5 layer norms have no BERT/GPT-2 "
                          "equivalent for export")
    ranked = {}
    for fam in families.all_families():
        rank = fam.export_rank(c) if fam.export_rank is not None else None
        if rank is not None:
            ranked[fam.name] = rank
    if not ranked and c.decoder is not None:
        raise ConfigError(f"an encoder-decoder model with embedding {c.embedding} and position_scheme "
                          f"{c.position_scheme!r} has no Hugging Face class (BART: word, pos; PEGASUS: word, "
                          "sinusoidalpos_concat; T5: relative_position_bucket); save it in UER or safetensors format")
    if not ranked:
        emb_ln = "without" if c.remove_embedding_layernorm else "with"
        raise ConfigError(f"no Hugging Face class to export to for a {c.mask} model with {c.layernorm_positioning} "
                          f"layer norm, position_scheme {c.position_scheme!r}, embedding {c.embedding} {emb_ln} its "
                          f"layer norm{', attention projections without bias' if c.remove_attention_bias else ''}; "
                          "save it in UER or safetensors format")
    top = max(ranked.values())
    best = sorted(n for n, r in ranked.items() if r == top)
    if prefer in best:
        try:
            _hook(prefer, "check_export")(c)
            return prefer
        except ConfigError:
            pass
    default = [n for n in best if families.get(n).default_export] or best
    family = default[0]
    _hook(family, "check_export")(c)
    return family


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
    hf = dict(_hook(family, "config_to_hf")(model, arch, eps))
    if source_hf:  # keep token ids and tokenizer hints of the release this model came from
        for k in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id", "forced_eos_token_id",
                  "tokenizer_class", "id2label", "label2id"):
            if k in source_hf and (k not in ("id2label", "label2id") or "cls" in c.target):
                hf[k] = source_hf[k]
    hf["dtype"] = dtype
    own = hf.pop("uer_like", None) or {}
    extras = {}
    if c.layernorm != "torch":
        extras.update(layernorm=c.layernorm, layernorm_eps=c.layernorm_eps)
    if c.layernorm == "normal":
        extras["gamma_scaled"] = True
    extras.update(own)
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
        elif rule.kind == "sin":
            dev = state["embedding.word.embedding.weight"]
            vals = [_fixed_table(rule.internal, cfg).to(dev.dtype)]
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
            elif rule.kind in ("copy", "dup"):
                vals = [t]
            elif rule.kind == "qkv":
                vals = list(t.chunk(3, dim=0))
            elif rule.kind == "conv":
                vals = [t.t()]
            elif rule.kind == "flat":
                vals = [t.reshape(1, -1)]
            elif rule.kind == "pad2":
                vals = [torch.cat([t.new_zeros(2, t.shape[1]), t])]
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
    fam = families.get(family)
    if fam.export_state is not None:  # base-model tensors no rule writes (a zero token-type row, a rotary table)
        for key, v in fam.export_state(cfg, state).items():
            out[key if bare else prefix + key] = v.contiguous().clone()
    if not cfg.tie_weights:  # untied MLM heads: transformers also saves (and expects) the decoder's own bias
        for bias, dec in fam.decoder_bias:
            if bias in out:
                out[dec] = out[bias].clone()
    return out


def write_tokenizer_files(out_dir, family, vocab_path=None, source_dir=None, do_lower_case=True):
    """Tokenizer files for transformers: the source release's files when the model came from one, else the
    family's own (Family.write_tokenizer: XLNet's sentencepiece model as spiece.model) or a BertTokenizer over a
    one-token-per-line vocabulary (Google BERT format). Returns the files written."""
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
    own = families.get(family).write_tokenizer
    if own is not None:  # a family whose tokenizer is not a vocab.txt (XLNet's sentencepiece model)
        return own(out_dir, vocab_path)
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
