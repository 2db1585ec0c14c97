"""TensorFlow checkpoints: the reader's front end (the prefix of a path, the variables without optimizer slots)
and Google's variable names (google-research/bert, google-research/albert, google-research/electra). Which
release's names a checkpoint carries is decided in io/tf_releases.py (one scheme per release: Google's three
here, and NEZHA, brightmart albert_zh, HFL's XLNet and gpt2-ml there); the scheme recognised is logged.

Read without tensorflow: io/tf_bundle.py parses TF's checkpoint format (the tensor bundle) itself. The variables
are renamed to Hugging Face names (dense `kernel`s transposed to [out, in], LayerNorm gamma/beta to
weight/bias) and loaded through the Hugging Face path (io/hf.py), so a TF checkpoint and its Hugging Face
conversion give the same uer_like model.

Variable names (as the three repositories write them; optimizer slots `adam_m`/`adam_v`, `global_step`
and TF-Hub's `module/` prefix are ignored):
  BERT     bert/embeddings/{word,position,token_type}_embeddings, bert/embeddings/LayerNorm/{gamma,beta},
           bert/encoder/layer_N/attention/self/{query,key,value}/{kernel,bias},
           bert/encoder/layer_N/attention/output/{dense,LayerNorm}, .../intermediate/dense, .../output/{dense,LayerNorm},
           bert/pooler/dense, cls/predictions/transform/{dense,LayerNorm}, cls/predictions/output_bias,
           cls/seq_relationship/output_{weights,bias}   (output_weights is [2, hidden]: not transposed)
  ALBERT   bert/embeddings/*, bert/encoder/embedding_hidden_mapping_in,
           bert/encoder/transformer/group_0/inner_group_0/{attention_1/self/{query,key,value}, attention_1/output/dense,
           LayerNorm, ffn_1/intermediate/dense, ffn_1/intermediate/output/dense, LayerNorm_1}, bert/pooler/dense,
           cls/predictions/..., cls/seq_relationship/... (the SOP head)
  ELECTRA  electra/embeddings/*, electra/embeddings_project, electra/encoder/layer_N/... (discriminator),
           discriminator_predictions/{dense,dense_1}; generator/embeddings_project, generator/encoder/layer_N/...,
           generator_predictions/{dense,LayerNorm,output_bias} (the generator shares electra/embeddings unless
           it has its own generator/embeddings)

The model config: `config=` (a Google bert_config.json / albert_config.json, or a dict), else
bert_config.json / albert_config.json / config.json beside the checkpoint. ELECTRA releases ship none: the
sizes are then read from the variable shapes, with heads = hidden_size // 64 as ELECTRA's code sets them.
Note that google-research/bert's `gelu` is the tanh approximation while its config says "gelu", which
the Hugging Face conversion and uer_like both compute exactly (erf): the loaded model matches the Hugging
Face conversion of the checkpoint; running the original TF graph gives slightly different numbers (pass a
config with "hidden_act": "gelu_new" to follow TF's approximation instead).
"""
import os
import re

from ..config import read_json
from ..errors import CheckpointError, ConfigError
from .tf_bundle import read_bundle

_SKIP = re.compile(r"(adam_m|adam_v|global_step|AdamWeightDecayOptimizer|beta1_power|beta2_power|_slot_|"
                   r"/Adam|/Momentum|^Variable|/ExponentialMovingAverage|lamb_m|lamb_v|bad_steps|good_steps|"
                   r"loss_scale)")
CONFIG_NAMES = ("bert_config.json", "albert_config.json", "electra_config.json", "config.json")


def tf_checkpoint_prefix(path):
    """The checkpoint prefix (model.ckpt) for a prefix, its .index/.data/.meta file or a directory."""
    if os.path.isdir(path):
        ck = os.path.join(path, "checkpoint")
        if os.path.isfile(ck):
            with open(ck, encoding="utf-8") as f:
                m = re.search(r'model_checkpoint_path:\s*"([^"]+)"', f.read())
            if m:
                p = m.group(1)
                # releases ship the file as written on their authors' machines (absolute paths there): the
                # prefix's name in this directory first, then the path as written
                for cand in (os.path.join(path, os.path.basename(p)), p if os.path.isabs(p) else os.path.join(path, p)):
                    if os.path.isfile(cand + ".index"):
                        return cand
        idx = sorted(f for f in os.listdir(path) if f.endswith(".index"))
        if len(idx) != 1:
            raise CheckpointError(f"{path}: expected one TF checkpoint (*.index) in the directory, found "
                                  f"{len(idx)}: {', '.join(idx) or 'none'}")
        return os.path.join(path, idx[0][: -len(".index")])
    base = os.path.basename(path)
    if base.endswith((".index", ".meta")):
        return path[: path.rfind(".")]
    if ".data-" in base:
        return path[: path.rfind(".data-")]
    return path


def read_tf_variables(prefix):
    """{name: torch tensor} of the model variables in a TF checkpoint (optimizer slots skipped; TF-Hub's
    `module/` prefix removed), read by io/tf_bundle.py without tensorflow."""
    out = {}
    for name, value in read_bundle(prefix, skip=_SKIP).items():
        out[name[len("module/"):] if name.startswith("module/") else name] = value
    return out


def _leaf(parts, value):
    """The last path element -> (HF suffix, tensor)."""
    last = parts[-1]
    t = value
    if last == "kernel":
        return "weight", t.t().contiguous()
    if last in ("gamma", "weight", "output_weights"):
        return "weight", t
    if last in ("beta", "bias", "output_bias"):
        return "bias", t
    raise CheckpointError(f"unexpected TF variable name ending {last!r} in {'/'.join(parts)}")


def _bert_like_name(path_parts):
    """bert/encoder/layer_3/attention/self/query -> encoder.layer.3.attention.self.query"""
    out = []
    for p in path_parts:
        m = re.fullmatch(r"layer_(\d+)", p)
        out.append(f"layer.{m.group(1)}" if m else p)
    return ".".join(out)


_ALBERT_LAYER = {
    "attention_1/self/query": "attention.query", "attention_1/self/key": "attention.key",
    "attention_1/self/value": "attention.value", "attention_1/output/dense": "attention.dense",
    "LayerNorm": "attention.LayerNorm", "ffn_1/intermediate/dense": "ffn",
    "ffn_1/intermediate/output/dense": "ffn_output", "LayerNorm_1": "full_layer_layer_norm",
}


def tf_to_hf_names(variables, family, which="discriminator"):
    """Google variable names -> Hugging Face state dict (names with the base prefix)."""
    out = {}
    unknown = []
    for name, value in variables.items():
        parts = name.split("/")
        if parts[-1] in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            owner = parts[0]
            if family == "electra":
                gen_own = any(k.startswith("generator/embeddings/") for k in variables)
                if which == "generator" and (owner == "generator" or (owner == "electra" and not gen_own)):
                    pass
                elif which != "generator" and owner == "electra":
                    pass
                else:
                    continue
            base = {"bert": "bert", "albert": "albert", "electra": "electra"}[family]
            out[f"{base}.embeddings.{parts[-1]}.weight"] = value
            continue
        stem, leaf_parts = parts[:-1], parts
        hf = None
        if family == "bert":
            if parts[0] == "bert":
                hf = "bert." + _bert_like_name(stem[1:])
            elif parts[0] == "cls":
                if stem == ["cls", "predictions"]:  # output_bias
                    hf = "cls.predictions"
                else:
                    hf = _bert_like_name(stem)
        elif family == "albert":
            joined = "/".join(stem)
            grp = "bert/encoder/transformer/group_0/inner_group_0/"
            if joined.startswith(grp):
                sub = joined[len(grp):]
                if sub in _ALBERT_LAYER:
                    hf = "albert.encoder.albert_layer_groups.0.albert_layers.0." + _ALBERT_LAYER[sub]
            elif "/transformer/group_" in joined:
                raise ConfigError(f"ALBERT checkpoint with several layer groups ({name}) is not supported")
            elif joined == "bert/embeddings/LayerNorm":
                hf = "albert.embeddings.LayerNorm"
            elif joined == "bert/encoder/embedding_hidden_mapping_in":
                hf = "albert.encoder.embedding_hidden_mapping_in"
            elif joined == "bert/pooler/dense":
                hf = "albert.pooler"
            elif joined == "cls/predictions/transform/dense":
                hf = "predictions.dense"
            elif joined == "cls/predictions/transform/LayerNorm":
                hf = "predictions.LayerNorm"
            elif joined == "cls/predictions":
                hf = "predictions"
            elif joined == "cls/seq_relationship":
                hf = "sop_classifier.classifier"
        elif family == "electra":
            own = "generator" if which == "generator" else "electra"
            head = "generator_predictions" if which == "generator" else "discriminator_predictions"
            if parts[0] == own and len(parts) > 1 and parts[1] in ("encoder", "embeddings_project"):
                hf = "electra." + _bert_like_name(stem[1:])
            elif parts[0] in ("electra", "generator") and len(parts) > 2 and parts[1] == "embeddings":
                gen_own = any(k.startswith("generator/embeddings/") for k in variables)
                src = "generator" if (which == "generator" and gen_own) else "electra"
                if parts[0] == src:
                    hf = "electra." + _bert_like_name(stem[1:])
                else:
                    continue
            elif parts[0] == head:
                if which == "generator":
                    if stem == ["generator_predictions"] and parts[-1] == "output_bias":
                        out["generator_lm_head.bias"] = value
                        continue
                    hf = _bert_like_name(stem)
                else:
                    hf = _bert_like_name(stem).replace("discriminator_predictions.dense_1",
                                                       "discriminator_predictions.dense_prediction")
            elif parts[0] in ("electra", "generator", "discriminator_predictions", "generator_predictions"):
                continue  # the other half of an ELECTRA pre-training checkpoint
        if hf is None:
            unknown.append(name)
            continue
        suffix, t = _leaf(leaf_parts, value)
        out[f"{hf}.{suffix}"] = t
    if unknown:
        raise CheckpointError(f"the {family} TF checkpoint has variables this reader does not know: "
                              f"{', '.join(unknown[:10])}")
    return out


def _infer_electra_config(state, which):
    def shape(k):
        if k not in state:
            raise CheckpointError(f"ELECTRA TF checkpoint without {k}; pass config=")
        return tuple(state[k].shape)

    vocab, emb = shape("electra.embeddings.word_embeddings.weight")
    max_pos = shape("electra.embeddings.position_embeddings.weight")[0]
    tvs = shape("electra.embeddings.token_type_embeddings.weight")[0]
    hidden = shape("electra.encoder.layer.0.attention.self.query.weight")[0]
    inter = shape("electra.encoder.layer.0.intermediate.dense.weight")[0]
    layers = len({k.split(".")[3] for k in state if k.startswith("electra.encoder.layer.")})
    return {"vocab_size": vocab, "embedding_size": emb, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": max(1, hidden // 64), "intermediate_size": inter, "hidden_act": "gelu",
            "max_position_embeddings": max_pos, "type_vocab_size": tvs, "layer_norm_eps": 1e-12,
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}


def read_tf_checkpoint(path, config=None, which=None):
    """-> Weights of the TF checkpoint at `path`, through the release scheme its variable names show
    (io/tf_releases.py; the scheme recognised is logged)."""
    from .tf_releases import detect_scheme

    prefix = tf_checkpoint_prefix(path)
    variables = read_tf_variables(prefix)
    scheme = detect_scheme(variables, prefix)
    return scheme.read(variables, config, which, prefix)


def google_weights(variables, family, config, which, prefix):
    """Google BERT / ALBERT / ELECTRA variables -> Weights with Hugging Face names and config."""
    from .formats import Weights

    d = os.path.dirname(os.path.abspath(prefix))
    which = which or "discriminator"
    if which not in ("discriminator", "generator"):
        raise ValueError(f"tf_model must be 'discriminator' or 'generator', got {which!r}")
    state = tf_to_hf_names(variables, family, which)
    cfg_path = None
    if isinstance(config, dict):
        cfg = dict(config)
    else:
        cfg_path = config if isinstance(config, str) else None
        if cfg_path is None:
            for n in CONFIG_NAMES:
                if os.path.isfile(os.path.join(d, n)):
                    cfg_path = os.path.join(d, n)
                    break
        if cfg_path is None:
            if family != "electra":
                raise ConfigError(f"{prefix}: no config for the TF checkpoint (looked for {', '.join(CONFIG_NAMES)} in {d}; "
                                  "pass config='bert_config.json')")
            cfg = _infer_electra_config(state, which)
        else:
            cfg = read_json(cfg_path)
    cfg = dict(cfg)
    cfg.setdefault("model_type", family)
    if cfg["model_type"] != family:
        raise ConfigError(f"{cfg_path or 'config'}: model_type {cfg['model_type']!r} but the TF checkpoint holds {family} "
                          "variables")
    cfg.setdefault("layer_norm_eps", 1e-12)
    if family == "albert":
        cfg.setdefault("num_hidden_groups", 1)
        cfg.setdefault("inner_group_num", 1)
    vocab = os.path.join(d, "vocab.txt")
    return Weights(state, names="hf", path=prefix, config=cfg, format="tf",
                   vocab_path=vocab if os.path.isfile(vocab) else None)
