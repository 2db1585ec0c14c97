"""PaddlePaddle / PaddleNLP releases: `model_state.pdparams` + `config.json` (PaddleNLP 2.6+, with a
`model_type` like a Hugging Face one) or `model_config.json` (older PaddleNLP: `init_class` / `init_args`),
as ERNIE 1.0, ERNIE 3.0 (nano ... xbase), ERNIE-tiny and every PaddleNLP Transformer API model are published.

`detect(path)` says whether a directory is such a release; `read(path)` returns its Hugging Face form
`(hf_config, state)`, which the Hugging Face loader (io/hf.py) turns into a model: nothing about BERT or ERNIE
is written twice.

Reading a `.pdparams` file executes no code from it. `paddle.save` writes a pickle of a dict
{name: numpy.ndarray} (plus `StructuredToParameterName@@`, a dict of Paddle's internal names); the only
globals such a pickle needs are numpy's array reconstruction (`numpy.core.multiarray._reconstruct`,
`numpy.ndarray`, `numpy.dtype`; `numpy._core...` under numpy 2), and in files written with pickle protocol 2
(`paddle.save(..., protocol=2)`, Paddle 1.x's fluid.save) `_codecs.encode(text, "latin1")` for the arrays'
bytes, admitted for that encoding only. A restricted unpickler admits those and nothing else: any other global is an error naming the
file and the class, before anything is called. Arrays of other than numbers (object arrays) are refused.

Names. PaddleNLP's BERT-shaped models (ErnieModel, BertModel, ...) are built on paddle.nn.TransformerEncoder:
`encoder.layers.N.self_attn.{q,k,v,out}_proj`, `linear1` / `linear2` (feed-forward), `norm1` (after attention),
`norm2` (after the feed-forward), `embeddings.layer_norm`; the MLM head `cls.predictions.transform` (a Linear),
`cls.predictions.layer_norm`, `cls.predictions.decoder[.]weight` / `decoder[_.]bias`. They are renamed to
transformers' BERT/ERNIE names. paddle.nn.Linear stores its weight as [in, out], the transpose of torch's:
every Linear weight is transposed; embeddings and PaddleNLP's own decoder weight ([vocab, hidden]) are not.

Behaviour kept: PaddleNLP's `_init_weights` sets every layer norm's epsilon to 1e-12 (fresh or loaded), so the
model gets 1e-12 whatever the config says; ERNIE's task-type embeddings (`use_task_id`, `task_id`) become the
`task` embedding. Not kept: Paddle's embedding lookup returns zeros for `pad_token_id`, which only changes the
values at padding positions (nothing attends to them).
"""
import logging
import os
import pickle
import re

import numpy as np
import torch

from ..config import read_json
from ..errors import CheckpointError, ConfigError

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


# PaddleNLP model class prefix / base attribute -> the Hugging Face family its weights load as
_PADDLE_FAMILIES = {"ernie": "ernie", "bert": "bert", "roberta": "bert"}


def _family(model_type, classes, state, source):
    """(family, kind, base prefix in the file) from the config's model_type, else its init_class, else the names.
    The prefix is "" for a bare base model (ErnieModel.save_pretrained: `embeddings...`, `encoder.layers...`)."""
    prefixes = {k.split(".", 1)[0] for k in state if ".encoder.layers." in k}
    prefix = next(iter(prefixes)) if len(prefixes) == 1 else None
    if prefix is None and any(k.startswith("encoder.layers.") for k in state):
        prefix = ""
    kind = model_type
    if not kind:
        for c in classes:
            m = re.match(r"([A-Z][A-Za-z]*?)(Model|For[A-Z]\w*|PretrainedModel)$", c)
            if m:
                kind = m.group(1).lower()
                break
    kind = kind or prefix or None
    if kind is None:
        raise ConfigError(f"{source}: cannot tell which PaddleNLP model this is (no model_type, no init_class, "
                          "no prefixed parameter names)")
    if kind not in _PADDLE_FAMILIES:
        raise ConfigError(f"{source}: PaddleNLP model {kind!r} is not supported; supported: "
                          f"{', '.join(sorted(_PADDLE_FAMILIES))}")
    return _PADDLE_FAMILIES[kind], kind, kind if prefix is None else prefix


def hf_config_from_paddle(cfg, state, source):
    """A Hugging Face config dict (model_type ernie or bert) for a PaddleNLP config (either form)."""
    args = _model_args(cfg)
    if args is None:  # nothing but class names: every argument at PaddleNLP's defaults
        args = {}
    family, kind, prefix = _family(cfg.get("model_type") or args.get("model_type"), _init_classes(cfg), state, source)
    if kind == "roberta" and int(args.get("cls_token_id", 101)) == 0:
        raise ConfigError(f"{source}: PaddleNLP RoBERTa with the BPE tokenizer (positions after pad_token_id) is not "
                          "supported; the Chinese RoBERTa releases (BERT positions) are")
    keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
            "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
            "initializer_range", "pad_token_id")
    hf = {"model_type": family}
    hf.update({k: args[k] for k in keys if args.get(k) is not None})
    # a config written with only what differs from PaddleNLP's defaults: the sizes the weights show, then the
    # defaults of PaddleNLP's ErnieConfig / BertConfig for what no weight shows
    shown = _sizes_from_weights(state, prefix)
    for k, v in list(shown.items()) + [("num_attention_heads", 12), ("hidden_act", "gelu")]:
        if k not in hf:
            hf[k] = v
            logger.info("%s: %s not in the config; %s (%s)", source, k, v,
                        "from the weights" if k in shown else "PaddleNLP's default")
    arch = (cfg.get("architectures") or [None])[0] or next(
        (c for c in _init_classes(cfg) if "For" in c), None)
    m = re.match(r"[A-Za-z]+?(For[A-Z]\w*|Model)$", arch or "")
    if m:  # the transformers class of the family it loads as (PaddleNLP spells ...ForPretraining)
        suffix = m.group(1).replace("Pretraining", "PreTraining")
        hf["architectures"] = [("Ernie" if family == "ernie" else "Bert") + suffix]
    eps = args.get("layer_norm_eps")
    if eps is not None and float(eps) != 1e-12:
        logger.info("%s: layer_norm_eps %s in the config; PaddleNLP runs every layer norm with 1e-12", source, eps)
    hf["layer_norm_eps"] = 1e-12
    hf["tie_word_embeddings"] = True
    labels = cfg.get("num_classes", args.get("num_classes")) or cfg.get("num_labels") or len(cfg.get("id2label") or {})
    if labels:
        hf["num_labels"] = int(labels)
    if family == "ernie":
        has_task = any(k.endswith("embeddings.task_type_embeddings.weight") for k in state)
        use = args.get("use_task_id")
        hf["use_task_id"] = bool(has_task if use is None else use)
        hf["task_type_vocab_size"] = int(args.get("task_type_vocab_size", 3))
        if hf["use_task_id"] and int(args.get("task_id") or 0):
            hf["uer_like"] = {"task_id": int(args["task_id"])}
    return hf, prefix


def _sizes_from_weights(state, prefix):
    base = f"{prefix}." if prefix else ""
    out = {}
    for key, name, dim in (("embeddings.word_embeddings.weight", "vocab_size", 0),
                           ("embeddings.word_embeddings.weight", "hidden_size", 1),
                           ("embeddings.position_embeddings.weight", "max_position_embeddings", 0),
                           ("embeddings.token_type_embeddings.weight", "type_vocab_size", 0),
                           ("encoder.layers.0.linear1.weight", "intermediate_size", 1)):
        t = state.get(base + key)
        if t is not None and t.ndim == 2:
            out[name] = int(t.shape[dim])
    layers = {int(m.group(1)) for m in (re.match(re.escape(base) + r"encoder\.layers\.(\d+)\.", k) for k in state) if m}
    if layers:
        out["num_hidden_layers"] = max(layers) + 1
    return out


# ---------------------------------------------------------------------------------------------- names
_T = True  # a paddle.nn.Linear weight ([in, out]): transposed
_LAYER = [  # (Paddle name after `encoder.layers.N.`, HF name after `encoder.layer.N.`, transpose the weight)
    ("self_attn.q_proj", "attention.self.query", _T), ("self_attn.k_proj", "attention.self.key", _T),
    ("self_attn.v_proj", "attention.self.value", _T), ("self_attn.out_proj", "attention.output.dense", _T),
    ("norm1", "attention.output.LayerNorm", False), ("linear1", "intermediate.dense", _T),
    ("linear2", "output.dense", _T), ("norm2", "output.LayerNorm", False),
]
_BASE = [("embeddings.layer_norm", "embeddings.LayerNorm", False), ("pooler.dense", "pooler.dense", _T)]
_HEADS = [
    ("cls.predictions.transform", "cls.predictions.transform.dense", _T),
    ("cls.predictions.layer_norm", "cls.predictions.transform.LayerNorm", False),
    ("cls.seq_relationship", "cls.seq_relationship", _T),
    ("classifier", "classifier", _T),
]
_LAYER_RE = re.compile(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def hf_state_from_paddle(arrays, prefix, family, source):
    """PaddleNLP names -> transformers' names (Linear weights transposed). Names no rule knows are kept as they
    are, so that the strict load names them."""
    out = {}
    base = f"{prefix}." if prefix else ""
    hf_base = "ernie." if family == "ernie" else "bert."
    decoder_w, decoder_b = [], []
    for key, a in arrays.items():
        t = _to_tensor(key, a, source)
        name, transpose = None, False
        if key.startswith(base) and (base or key.split(".", 1)[0] in ("embeddings", "encoder", "pooler")):
            rest = key[len(base):]
            m = _LAYER_RE.match(rest)
            if m:
                i, mod, kind = m.groups()
                for p, h, tr in _LAYER:
                    if mod == p:
                        name, transpose = f"encoder.layer.{i}.{h}.{kind}", tr and kind == "weight"
            else:
                mod, _, kind = rest.rpartition(".")
                for p, h, tr in _BASE:
                    if mod == p:
                        name, transpose = f"{h}.{kind}", tr and kind == "weight"
                if name is None and mod.startswith("embeddings."):
                    name = rest
            name = hf_base + name if name is not None else None
        elif key in ("cls.predictions.decoder.weight", "cls.predictions.decoder_weight"):
            decoder_w.append((key, t))
            continue
        elif key in ("cls.predictions.decoder.bias", "cls.predictions.decoder_bias"):
            decoder_b.append((key, t))
            continue
        else:
            mod, _, kind = key.rpartition(".")
            for p, h, tr in _HEADS:
                if mod == p:
                    name, transpose = f"{h}.{kind}", tr and kind == "weight"
        if transpose:
            if t.dim() != 2:
                raise CheckpointError(f"{source}: {key} has shape {tuple(t.shape)}, not a Linear weight")
            t = t.t().contiguous()
        out[name if name is not None else key] = t
    if decoder_b:  # one tensor under two names (PaddleNLP 2.8 keeps both)
        (k0, b0), rest = decoder_b[0], decoder_b[1:]
        for k, b in rest:
            if b.shape != b0.shape or not torch.equal(b, b0):
                logger.warning("%s: %s differs from %s; using %s", source, k, k0, k0)
        out["cls.predictions.bias"] = b0
    if decoder_w:  # tied to the word embedding when PaddleNLP runs it; stored as a copy
        k0, w0 = decoder_w[0]
        word = out.get(hf_base + "embeddings.word_embeddings.weight")
        if word is not None and (w0.shape != word.shape or not torch.equal(w0, word)):
            logger.warning("%s: %s differs from the word embedding; PaddleNLP ties the two, the word embedding is "
                           "used", source, k0)
        out["cls.predictions.decoder.weight"] = w0
    return out


# ---------------------------------------------------------------------------------------------- read
def read(path):
    """(hf_config, state): the release in its Hugging Face form (see the module docstring)."""
    path = _release_dir(path)
    cfg_path = next(os.path.join(path, n) for n in CONFIG_NAMES if os.path.isfile(os.path.join(path, n)))
    cfg = read_json(cfg_path)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{cfg_path}: expected a JSON object")
    weights = os.path.join(path, WEIGHTS)
    arrays = load_pdparams(weights)
    hf, prefix = hf_config_from_paddle(cfg, arrays, cfg_path)
    word = arrays.get(f"{prefix}.embeddings.word_embeddings.weight" if prefix else "embeddings.word_embeddings.weight")
    if word is not None and "vocab_size" in hf and int(word.shape[0]) != int(hf["vocab_size"]):
        raise CheckpointError(f"the config and the weights do not match: {cfg_path} says vocab_size "
                              f"{hf['vocab_size']} but the word embedding in {weights} has {word.shape[0]} rows")
    shown = _sizes_from_weights(arrays, prefix)
    for k in ("hidden_size", "num_hidden_layers"):
        if k in shown and k in hf and int(hf[k]) != shown[k]:
            raise CheckpointError(f"the config and the weights do not match: {cfg_path} says {k} {hf[k]} but the "
                                  f"weights in {weights} have {shown[k]}")
    state = hf_state_from_paddle(arrays, prefix, hf["model_type"], weights)
    logger.info("%s: a PaddleNLP %s release (%s), read as Hugging Face %s", path, prefix or hf["model_type"],
                os.path.basename(cfg_path), hf["model_type"])
    return hf, state
