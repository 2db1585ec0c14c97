"""PaddlePaddle / PaddleNLP releases: `model_state.pdparams` + `config.json` (PaddleNLP 2.6+, with a
`model_type` like a Hugging Face one) or `model_config.json` (older PaddleNLP: `init_class` / `init_args`),
as ERNIE 1.0, ERNIE 3.0 (nano ... xbase), ERNIE-tiny and every PaddleNLP Transformer API model are published.

`detect(path)` says whether a directory is such a release; `read(path)` returns its Hugging Face form
`(hf_config, state)`, which the Hugging Face loader (io/hf.py) turns into a model: no model is written twice.

Reading a `.pdparams` file executes no code from it. `paddle.save` writes a pickle of a dict
{name: numpy.ndarray} (plus `StructuredToParameterName@@`, a dict of Paddle's internal names); the only
globals such a pickle needs are numpy's array reconstruction (`numpy.core.multiarray._reconstruct`,
`numpy.ndarray`, `numpy.dtype`; `numpy._core...` under numpy 2), and in files written with pickle protocol 2
(`paddle.save(..., protocol=2)`, Paddle 1.x's fluid.save) `_codecs.encode(text, "latin1")` for the arrays'
bytes, admitted for that encoding only. A restricted unpickler admits those and nothing else: any other global is an error naming the
file and the class, before anything is called. Arrays of other than numbers (object arrays) are refused.

Families. Which PaddleNLP model a directory holds is told by the config's `model_type` (config.json), else
its class names (`init_class`, `architectures`: ErnieGramForSequenceClassification, NeZhaForPretraining,
ElectraDiscriminator, ...), else the base-model attribute the parameter names carry (`skep.encoder...`); the
log says which and how. Each family's names, heads, layer-norm rule and config keys are one entry in
io/paddle_families.py (ERNIE 1.0 / 3.0 / tiny, ERNIE-Gram, ERNIE-M, BERT, RoBERTa, TinyBERT, PP-MiniLM, SKEP,
ELECTRA, RoFormer, NEZHA), mapped onto the Hugging Face family uer_like builds (ernie, bert, roberta, electra,
roformer, nezha). paddle.nn.Linear stores its weight as [in, out], the transpose of torch's: every Linear weight
is transposed; embeddings and PaddleNLP's own decoder weights ([vocab, hidden]) are not. A directory whose
model_type, class or names match no family, or whose names are not its family's, is refused in one line
naming some of its parameters and the families known. A *ForTokenClassification / *ForQuestionAnswering /
*ForMultipleChoice release loads as its base model, its head dropped with a warning (the heads load_model
builds read the pooled [CLS]).

Behaviour kept: the layer-norm epsilon PaddleNLP computes with (its `_init_weights` fixes it for ERNIE and NEZHA
at 1e-12, ERNIE-Gram and SKEP at 1e-5, ERNIE-M runs Paddle's 1e-5, whatever the config says; the others follow
the config); ERNIE's
task-type embeddings (`use_task_id`, `task_id`) become the `task` embedding; RoBERTa's positions (from
pad_token_id + 1 for a config.json as PaddleNLP 2.8 computes, from 0 for the Chinese RoBERTa of a
model_config.json as the PaddleNLP of that form did). Not kept: Paddle's embedding lookup
returns zeros for `pad_token_id`, which only changes the values at padding positions (nothing attends to them).
"""
import logging
import os
import pickle
import re

import numpy as np
import torch

from ..config import read_json
from ..errors import CheckpointError, ConfigError
from . import families
from . import paddle_families as pfam

logger = logging.getLogger("uer_like")

WEIGHTS = "model_state.pdparams"
CONFIG_NAMES = ("config.json", "model_config.json")
NAME_TABLE = "StructuredToParameterName@@"  # paddle.save's table of internal parameter names (not a tensor)
BIG_PARAMS = "UnpackBigParamInfor@@"  # paddle.save (pickle protocol 2/3) splits arrays over 1 GiB into slices


# ---------------------------------------------------------------------------------------------- .pdparams
def _numpy_globals():
    try:  # numpy 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct
    allowed = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _reconstruct
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = _latin1_bytes
    return allowed


def _latin1_bytes(text, encoding="utf-8"):
    """What pickle protocols 0-2 write an array's raw bytes with (`_codecs.encode(text, "latin1")`): only that."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("refused to load: the pickle calls _codecs.encode other than for an array's bytes")
    return text.encode("latin1")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits the globals numpy arrays are rebuilt with, and nothing else."""

    def __init__(self, f, source):
        super().__init__(f, encoding="latin1")  # Python 2 pickles (Paddle 1.x): numpy's bytes as latin-1 text
        self.source = source
        self.allowed = _numpy_globals()

    def find_class(self, module, name):
        obj = self.allowed.get((module, name))
        if obj is None:
            raise CheckpointError(
                f"{self.source}: refused to load: the pickle would import {module}.{name}, which is not part of a "
                "PaddlePaddle state dict (only numpy arrays are; possible code execution)")
        return obj

    def persistent_load(self, pid):
        raise CheckpointError(f"{self.source}: refused to load: the pickle refers to a persistent object, which a "
                              "PaddlePaddle state dict never does")


def _first_line(e):
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def load_pdparams(path):
    """{name: numpy array} from a `.pdparams` file, through the restricted unpickler (no code runs)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(f, path).load()
    except CheckpointError as e:
        if str(e).startswith(path):
            raise
        raise CheckpointError(f"{path}: {e}") from None
    except Exception as e:  # truncated or corrupt stream, or something that is no pickle
        raise CheckpointError(f"{path}: not a readable .pdparams file (truncated or corrupt pickle: "
                              f"{_first_line(e)})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of arrays (a PaddlePaddle state dict), got "
                              f"{type(obj).__name__}")
    obj = dict(obj)
    obj.pop(NAME_TABLE, None)
    big = obj.pop(BIG_PARAMS, None)
    if isinstance(big, dict):  # rejoin the slices of arrays paddle.save split (pickle protocol 2/3)
        for key, info in big.items():
            try:
                parts = [obj.pop(p) for p in info["slices"]]
                obj[key] = np.concatenate([np.asarray(p).reshape(-1) for p in parts]).reshape(info["OriginShape"])
            except (KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"{path}: the slices of {key} do not make up its array ({_first_line(e)})") \
                    from None
    out = {}
    for k, v in obj.items():
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], np.ndarray):  # (paddle name, array)
            v = v[1]
        if not isinstance(v, np.ndarray):
            raise CheckpointError(f"{path}: entry {k!r} is a {type(v).__name__}, not an array")
        out[str(k)] = v
    return out


def _to_tensor(key, a, source):
    if a.dtype == np.uint16:  # Paddle's bfloat16, which numpy has not: its bits as uint16
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    if a.dtype.kind not in "fiub":
        raise CheckpointError(f"{source}: {key} holds {a.dtype} values, not numbers")
    return torch.from_numpy(np.array(a, copy=True, order="C"))


# ---------------------------------------------------------------------------------------------- detection
def _release_dir(path):
    """The release directory of `path`: the directory itself, or the one holding a model_state.pdparams given."""
    if os.path.isfile(path) and os.path.basename(path) == WEIGHTS:
        return os.path.dirname(os.path.abspath(path))
    return path


def detect(path):
    """A directory with model_state.pdparams and config.json or model_config.json (or that model_state.pdparams)."""
    path = _release_dir(path)
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, WEIGHTS)) and any(
        os.path.isfile(os.path.join(path, n)) for n in CONFIG_NAMES)


# ---------------------------------------------------------------------------------------------- config
_SIZE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")


def _model_args(cfg):
    """The model's own arguments in a PaddleNLP config: config.json's top level, or in model_config.json the
    (possibly nested) `init_args` of the base model."""
    if any(k in cfg for k in _SIZE_KEYS):
        return cfg
    for v in list(cfg.get("init_args") or []) + [v for k, v in cfg.items() if k != "init_args"]:
        if isinstance(v, dict):
            found = _model_args(v)
            if found is not None:
                return found
    return None


def _init_classes(cfg):
    out = []
    if isinstance(cfg, dict):
        if isinstance(cfg.get("init_class"), str):
            out.append(cfg["init_class"])
        for v in list(cfg.get("init_args") or []) + list(cfg.values()):
            if isinstance(v, dict):
                out += _init_classes(v)
    return out


_BASE_FIRST = ("embeddings", "encoder", "pooler", "embeddings_project")


def _base_prefixes(state):
    """The base-model attributes the names carry (`ernie_gram.encoder...` -> ernie_gram; a bare base model, as
    ErnieModel.save_pretrained writes it: "")."""
    out = set()
    for k in state:
        parts = k.split(".")
        if parts[0] in _BASE_FIRST:
            out.add("")
        elif len(parts) > 2 and parts[1] in ("embeddings", "encoder"):
            out.add(parts[0])
    return out


def _unknown(source, what, state):
    some = ", ".join(sorted(state)[:4])
    return ConfigError(f"{source}: {what}, not a PaddleNLP model read here (parameter names such as {some}); "
                       f"known: {', '.join(pfam.names())} (layer names: "
                       f"{', '.join(pfam.layer_examples())})")


def _family(model_type, classes, state, form, args, source):
    """(PaddleFamily, base prefix in the file, how it was told) from the config's model_type, else its
    init_class / architectures, else the parameter names. The prefix is "" for a bare base model."""
    prefixes = _base_prefixes(state)
    fam, how = None, None
    if model_type:
        fam, how = pfam.FAMILIES.get(model_type), f"model_type {model_type!r}"
        if fam is None or model_type not in pfam.names():
            raise _unknown(source, f"model_type {model_type!r}", state)
    elif classes:
        fam, how = pfam.by_class(classes), f"class {classes[0]}"
    if fam is None:
        named = [p for p in prefixes if p in pfam.names()]
        if len(named) == 1:
            fam, how = pfam.FAMILIES[named[0]], f"parameter names {named[0]}.*"
    if fam is None:
        raise _unknown(source, "no model_type, no known class name" + (f" ({classes[0]})" if classes else ""), state)
    if fam.variant is not None:
        fam = pfam.FAMILIES[fam.variant(args, form) or fam.name]
    base = fam.prefix or fam.name
    if base in prefixes:
        prefix = base
    elif "" in prefixes:
        prefix = ""
    else:
        raise _unknown(source, f"{how} ({fam.name}), but no parameter is under {base}.", state)
    layer = re.compile(re.escape(f"{prefix}." if prefix else "") + pfam.layer_pattern(fam))
    if not any(layer.match(k) for k in state):
        example = pfam.layer_examples()[list(pfam.LAYER_SCHEMES).index(fam.layers)]
        raise _unknown(source, f"{how} ({fam.name}), but no parameter has its layer names ({example})", state)
    return fam, prefix, how


def hf_config_from_paddle(cfg, state, source, form="config.json"):
    """A Hugging Face config dict (model_type: the family's io/families name) for a PaddleNLP config (either
    form), the PaddleFamily and the base prefix in the file."""
    args = _model_args(cfg)
    if args is None:  # nothing but class names: every argument at PaddleNLP's defaults
        args = {}
    classes = _init_classes(cfg) + [c for c in (cfg.get("architectures") or []) if isinstance(c, str)]
    fam, prefix, how = _family(cfg.get("model_type") or args.get("model_type"), classes, state, form, args, source)
    keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
            "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
            "initializer_range", "pad_token_id")
    hf = {"model_type": fam.hf}
    hf.update({k: args[k] for k in keys if args.get(k) is not None})
    # a config written with only what differs from PaddleNLP's defaults: the sizes the weights show, then the
    # defaults of PaddleNLP's configs for what no weight shows
    shown = _sizes_from_weights(state, prefix, fam)
    for k, v in list(shown.items()) + [("num_attention_heads", 12), ("hidden_act", "gelu"), ("pad_token_id", 0)]:
        if k not in hf:
            hf[k] = v
            logger.info("%s: %s not in the config; %s (%s)", source, k, v,
                        "from the weights" if k in shown else "PaddleNLP's default")
    arch = (cfg.get("architectures") or [None])[0] or next((c for c in _init_classes(cfg) if "For" in c), None)
    m = re.match(re.escape(fam.class_prefix) + r"(For[A-Z]\w*|Model)$", arch or "")
    if m:  # the transformers class of the family it loads as (PaddleNLP spells ...ForPretraining)
        suffix = m.group(1).replace("Pretraining", "PreTraining")
        hf["architectures"] = [families.get(fam.hf).class_prefix + suffix]
    eps = args.get("layer_norm_eps")
    if fam.eps is not None:
        if eps is not None and float(eps) != fam.eps:
            logger.info("%s: layer_norm_eps %s in the config; PaddleNLP runs every %s layer norm with %s", source,
                        eps, fam.name, fam.eps)
        eps = fam.eps
    hf["layer_norm_eps"] = float(eps) if eps is not None else 1e-12
    hf["tie_word_embeddings"] = True
    labels = cfg.get("num_classes", args.get("num_classes")) or cfg.get("num_labels") or len(cfg.get("id2label") or {})
    if labels:
        hf["num_labels"] = int(labels)
    if fam.config is not None:
        fam.config(args, hf, state, f"{prefix}." if prefix else "", source)
    return hf, fam, prefix, how


_INTERMEDIATE = {"transformer_encoder": "linear1", "nezha": "ffn"}


def _sizes_from_weights(state, prefix, fam):
    base = f"{prefix}." if prefix else ""
    layer0 = base + pfam.layer_pattern(fam).replace(r"(\d+)", "0").replace("\\", "")
    out = {}
    for key, name, dim in (("embeddings.word_embeddings.weight", "vocab_size", 0),
                           ("embeddings.position_embeddings.weight", "max_position_embeddings", 0),
                           ("embeddings.token_type_embeddings.weight", "type_vocab_size", 0)):
        t = state.get(base + key)
        if t is not None and t.ndim == 2:
            out[name] = int(t.shape[dim])
    for key, name, dim in ((pfam.LAYER_SCHEMES[fam.layers][1][0][0] + ".weight", "hidden_size", 0),
                           (_INTERMEDIATE[fam.layers] + ".weight", "intermediate_size", 1)):
        t = state.get(layer0 + key)
        if t is not None and t.ndim == 2:
            out[name] = int(t.shape[dim])
    pattern = re.compile(re.escape(base) + pfam.layer_pattern(fam))
    layers = {int(m.group(1)) for m in (pattern.match(k) for k in state) if m}
    if layers:
        out["num_hidden_layers"] = max(layers) + 1
    return out


# ---------------------------------------------------------------------------------------------- names
def hf_state_from_paddle(arrays, fam, prefix, source):
    """PaddleNLP names -> the Hugging Face family's names (Linear weights transposed), by the family's entry in
    io/paddle_families.py. Names no rule knows are kept as they are, so that the strict load names them."""
    out, taken = {}, {}
    base = f"{prefix}." if prefix else ""
    hf_base = families.get(fam.hf).base_prefix + "."
    layer_re = re.compile(pfam.layer_pattern(fam) + r"(.+)\.(weight|bias)$")
    layer_rules = {p: (h, tr) for p, h, tr in pfam.LAYER_SCHEMES[fam.layers][1]}
    base_rules = {p: (h, tr) for p, h, tr in pfam.BASE_MODULES}
    modules = {p: (h, kind) for p, h, kind in fam.heads if kind != "tensor"}
    tensors = [(p, h) for p, h, kind in fam.heads if kind == "tensor"]
    dropped = {}
    for key, a in arrays.items():
        why = next((w for pat, w in fam.ignore if re.search(pat, key)), None)
        if why is not None:
            dropped.setdefault(why, []).append(key)
            continue
        why = next((w for pat, w in fam.unsupported_heads if re.search(pat, key)), None)
        if why is not None:
            logger.warning("%s: %s dropped: %s; the base model is loaded without it", source, key, why)
            continue
        t = _to_tensor(key, a, source)
        name, transpose = None, False
        if key.startswith(base) and (base or key.split(".", 1)[0] in _BASE_FIRST):
            rest = key[len(base):]
            m = layer_re.match(rest)
            mod, _, kind = rest.rpartition(".")
            if m:
                i, mod, kind = m.groups()
                if mod in layer_rules:
                    h, tr = layer_rules[mod]
                    name, transpose = f"encoder.layer.{i}.{h}.{kind}", tr and kind == "weight"
            elif mod in base_rules:
                h, tr = base_rules[mod]
                name, transpose = f"{h}.{kind}", tr and kind == "weight"
            elif mod.startswith("embeddings."):
                name = rest
            name = hf_base + name if name is not None else None
        else:
            mod, _, kind = key.rpartition(".")
            if mod in modules:
                h, k = modules[mod]
                name, transpose = f"{h}.{kind}", k == "linear" and kind == "weight"
            else:
                h = next((h for p, h in tensors if p == key), None)
                if h is not None:
                    taken.setdefault(h, []).append((key, t))
                    continue
        if transpose:
            if t.dim() != 2:
                raise CheckpointError(f"{source}: {key} has shape {tuple(t.shape)}, not a Linear weight")
            t = t.t().contiguous()
        out[name if name is not None else key] = t
    for why, keys in dropped.items():
        logger.info("%s: %d parameter(s) not used by the model dropped (%s: %s)", source, len(keys), why, keys[0])
    word = out.get(hf_base + "embeddings.word_embeddings.weight")
    for h, found in taken.items():  # one tensor under several names (PaddleNLP 2.8 keeps the MLM bias twice)
        (k0, t0), rest = found[0], found[1:]
        for k, t in rest:
            if t.shape != t0.shape or not torch.equal(t, t0):
                logger.warning("%s: %s differs from %s; using %s", source, k, k0, k0)
        if h.endswith("decoder.weight") and word is not None and (t0.shape != word.shape or not torch.equal(t0, word)):
            logger.warning("%s: %s differs from the word embedding; PaddleNLP ties the two, the word embedding is "
                           "used", source, k0)
        out[h] = t0
    if fam.finish is not None:
        fam.finish(out)
    return out


# ---------------------------------------------------------------------------------------------- read
# task classes whose head reads every token (or several sequences at once): the heads load_model builds read the
# pooled [CLS] (cls) or nothing, so the head would become a wrong one
_PER_TOKEN_TASKS = re.compile(r"(ForTokenClassification|ForQuestionAnswering|ForMultipleChoice)$")


def _without_per_token_heads(arrays, cfg, prefix, source):
    """A token classifier / QA / multiple-choice release: its base model, the head dropped with a warning."""
    classes = [c for c in (cfg.get("architectures") or []) + _init_classes(cfg) if isinstance(c, str)]
    task = next((c for c in classes if _PER_TOKEN_TASKS.search(c)), None)
    if task is None:
        return arrays
    base = f"{prefix}." if prefix else ""
    keep = {k: v for k, v in arrays.items() if k.startswith(base) and (base or k.split(".", 1)[0] in _BASE_FIRST)}
    dropped = sorted(set(arrays) - set(keep))
    if dropped:
        logger.warning("%s: %s's head (%s) is not one load_model builds (it reads every token or several "
                       "sequences, not the pooled [CLS]); the base model is loaded without it", source, task,
                       ", ".join(dropped))
    return keep


def read(path):
    """(hf_config, state): the release in its Hugging Face form (see the module docstring)."""
    path = _release_dir(path)
    form = next(n for n in CONFIG_NAMES if os.path.isfile(os.path.join(path, n)))
    cfg_path = os.path.join(path, form)
    cfg = read_json(cfg_path)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{cfg_path}: expected a JSON object")
    weights = os.path.join(path, WEIGHTS)
    arrays = load_pdparams(weights)
    hf, fam, prefix, how = hf_config_from_paddle(cfg, arrays, cfg_path, form)
    base = f"{prefix}." if prefix else ""
    word = arrays.get(f"{base}embeddings.word_embeddings.weight")
    if word is not None and "vocab_size" in hf and int(word.shape[0]) != int(hf["vocab_size"]):
        raise CheckpointError(f"the config and the weights do not match: {cfg_path} says vocab_size "
                              f"{hf['vocab_size']} but the word embedding in {weights} has {word.shape[0]} rows")
    shown = _sizes_from_weights(arrays, prefix, fam)
    for k in ("hidden_size", "num_hidden_layers"):
        if k in shown and k in hf and int(hf[k]) != shown[k]:
            raise CheckpointError(f"the config and the weights do not match: {cfg_path} says {k} {hf[k]} but the "
                                  f"weights in {weights} have {shown[k]}")
    arrays = _without_per_token_heads(arrays, cfg, prefix, weights)
    state = hf_state_from_paddle(arrays, fam, prefix, weights)
    logger.info("%s: a PaddleNLP %s release (%s; told by its %s), read as Hugging Face %s, layer norm eps %s",
                path, fam.name, form, how, hf["model_type"], hf["layer_norm_eps"])
    return hf, state
