"""load_model / save_model: format detection and safe loading.

Formats read by `load_model(path)`:
  - UER state dicts: `.bin`/`.pt` (torch pickle, scanned and read with weights_only=True) or `.safetensors`,
    with a UER-format config (`config=`, NAME_config.json / config.json beside it, or the config stored in
    a uer_like safetensors file's metadata);
  - Hugging Face directories (config.json with a model_type: bert, roberta, albert, electra, gpt2; weights in
    model.safetensors, pytorch_model.bin or sharded with an index), or one such weights file beside its
    config.json;
  - release layouts, read into their Hugging Face form: the PyTorch zip (pytorch_model.bin with Google's
    bert_config.json or a config.json without model_type; io/pt_zip.py) and PaddleNLP's model_state.pdparams
    with config.json / model_config.json (io/paddle.py);
  - Google TensorFlow checkpoints (BERT, ALBERT, ELECTRA): a checkpoint prefix (model.ckpt), its .index
    file or a directory holding one, with bert_config.json / albert_config.json / config.json; needs
    `tensorflow` (the optional extra `pip install uer_like[tf]`).

Never unpickles arbitrary objects (see io/safe.py). Loading is strict by default: missing, unexpected
and wrongly shaped tensors are errors naming the keys; `strict=False` loads what matches and prints
(logs at WARNING) the rest.

`save_model(model, path, format=None)`: "uer" (UER-py's key names in a torch .bin), "safetensors" (the
same names in a .safetensors file, the project's default) or "hf" (a transformers directory).
"""
import json
import logging
import os

import torch

from ..config import read_json
from ..errors import CheckpointError, ConfigError
from ..outputs import atomic_write
from . import hf as hfmod
from .safe import is_safetensors, read_tensor_file, safetensors_metadata
from . import uer as uerfmt
from . import paddle as paddlefmt, pt_zip as ptzipfmt

# release layouts read into their Hugging Face form (io/paddle.py, io/pt_zip.py); detected before the Hugging Face
# directory (a PaddleNLP 2.6+ config.json has a model_type too)
RELEASE_FORMATS = {"paddle": paddlefmt, "pt-zip": ptzipfmt}

logger = logging.getLogger("uer_like")

CONFIG_NAMES = ("config.json", "uer_config.json")
HF_WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
HF_INDEX_NAMES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
FORMATS = ("uer", "safetensors", "hf")


def load_state_dict_file(path):
    """Read a tensor dict from a .bin/.pt (scanned, weights_only pickle) or .safetensors file."""
    return read_tensor_file(path)


# ---------------------------------------------------------------------------------------------- detection
def _find_config(path):
    d = path if os.path.isdir(path) else os.path.dirname(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    cands = [os.path.join(d, stem + "_config.json"), os.path.join(d, stem + ".json")]
    cands += [os.path.join(d, n) for n in CONFIG_NAMES]
    for c in cands:
        if os.path.isfile(c) and os.path.abspath(c) != os.path.abspath(path):
            return c
    return None


def _hf_config_at(d):
    p = os.path.join(d, "config.json")
    if os.path.isfile(p):
        cfg = read_json(p)
        if isinstance(cfg, dict) and "model_type" in cfg:
            return cfg, p
    return None, None


def _is_tf_path(path):
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, "checkpoint")) or any(
            f.endswith(".index") for f in os.listdir(path))
    return path.endswith((".index", ".meta")) or ".data-" in os.path.basename(path) or \
        (not os.path.exists(path) and os.path.exists(path + ".index"))


def _is_uer_state(state):
    return any(k.startswith(("embedding.", "encoder.", "target.", "module.embedding.")) for k in state)


def detect_format(path):
    """'uer', 'hf', 'tf' or a release layout ('paddle', 'pt-zip') for a path, without loading any tensor data."""
    for name, fmt in RELEASE_FORMATS.items():
        if fmt.detect(path):
            return name
    if os.path.isdir(path):
        if _hf_config_at(path)[0] is not None:
            return "hf"
        if _is_tf_path(path):
            return "tf"
        return "uer"
    if _is_tf_path(path):
        return "tf"
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file or directory")
    return "hf-or-uer"


def _hf_weights_in(d):
    for n in HF_WEIGHT_NAMES:
        p = os.path.join(d, n)
        if os.path.isfile(p):
            return [p]
    for n in HF_INDEX_NAMES:
        p = os.path.join(d, n)
        if os.path.isfile(p):
            index = read_json(p)
            files = sorted(set((index.get("weight_map") or {}).values()))
            if not files:
                raise CheckpointError(f"{p}: the index lists no weight files")
            return [os.path.join(d, f) for f in files]
    raise CheckpointError(f"{d}: a Hugging Face directory without weights (looked for "
                          f"{', '.join(HF_WEIGHT_NAMES + HF_INDEX_NAMES)})")


def _read_vocab_size(vocab):
    from ..tokenizers.vocab import Vocab

    if isinstance(vocab, Vocab):
        return len(vocab), vocab.path or "the vocabulary"
    return len(Vocab.load(vocab, required=())), vocab


def check_vocab(ckpt_rows, vocab, source, auto=False):
    """A vocabulary whose size differs from the checkpoint's word embedding is an error naming both."""
    if vocab is None or ckpt_rows is None:
        return
    n, vpath = _read_vocab_size(vocab)
    if n == ckpt_rows:
        return
    if auto and n < ckpt_rows:  # released checkpoints sometimes pad the embedding; ids stay in range
        logger.info("%s: the vocabulary %s has %d tokens, the embedding %d rows", source, vpath, n, ckpt_rows)
        return
    raise CheckpointError(
        f"the vocabulary and the checkpoint do not match: {vpath} has {n} tokens but the word embedding of "
        f"{source} has {ckpt_rows} rows. Use the checkpoint's own vocabulary, or adapt the model to the new "
        "vocabulary with uer_like.io.resize_vocab(model, old_vocab, new_vocab), which keeps the rows of the "
        "tokens both share")


def check_seq_length(config, seq_length, source="model"):
    """Refuse, before anything runs, a sequence length the position embedding cannot cover."""
    if seq_length is None:
        return
    limit = config.position_limit
    if limit is not None and seq_length > limit:
        table = "rotary position table" if config.position_scheme == "rotary" else "max_position_embeddings"
        raise ConfigError(f"{source}: seq_length {seq_length} exceeds the model's {table} "
                          f"(max_seq_length {limit}); use seq_length <= {limit}")


# ---------------------------------------------------------------------------------------------- loading
def load_model(path, config=None, strict=True, vocab_size=None, vocab=None, seq_length=None, tf_model=None,
               config_overrides=None, allow_nonfinite=False):
    """Load a model from any supported checkpoint (see the module docstring); the format is detected.

    config: for UER checkpoints, the UER-format config (a name in configs/, a path, a dict or a ModelConfig);
      for Hugging Face / TF weights, optionally the HF (or Google bert_config.json) config path or dict.
    strict: missing, unexpected or wrongly shaped tensors are errors (default). strict=False loads the
      matching tensors and logs the rest by name (partial loads only on request). A tensor of the wrong dtype
      (integer, bool or complex values for a floating-point weight) is always an error.
    allow_nonfinite: load weights holding NaN/inf values (with a warning naming them), to inspect a diverged
      run's weights; by default they are an error naming the tensors (nothing can be trained or generated
      from them).
    vocab / vocab_size: the vocabulary (path or Vocab) or its size, checked against the word embedding.
    seq_length: checked against the position embedding, so that a too long setting fails at start.
    tf_model: for ELECTRA TF checkpoints, "discriminator" (default) or "generator".
    config_overrides: UER config keys laid over the config (a CLI's --embedding/--encoder/--target ...); for
      UER checkpoints whose config names no embedding/encoder/target (UER-py before 2021), what neither
      gives is read off the checkpoint's tensor names (logged).
    UER files of every UER-py era load (io/uer.py: the layout is detected from the tensor names; a file
    matching none is an error naming the closest layout and the keys that differ).
    The model remembers where it came from: model.source_format, model.source_path, model.hf_config,
    model.uer_layout (UER files), model.vocab_path, model.load_report ({"missing": [...], "unexpected": [...]})."""
    kind = detect_format(path)
    if kind in RELEASE_FORMATS:
        hf_cfg, state = RELEASE_FORMATS[kind].read(path)
        hf_cfg = _hf_config_arg(config) or hf_cfg
        model = _load_hf_state(state, hf_cfg, path, strict, allow_nonfinite=allow_nonfinite)
        model.source_format = kind
        model.vocab_path = _first_file(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path)),
                                       ("vocab.txt",))
    elif kind == "tf":
        from .tf import read_tf_checkpoint

        hf_state, hf_cfg, cfg_path, vocab_path = read_tf_checkpoint(path, config=config, which=tf_model)
        model = _load_hf_state(hf_state, hf_cfg, path, strict, allow_nonfinite=allow_nonfinite)
        model.source_format = "tf"
        model.vocab_path = vocab_path
    elif kind == "hf":
        hf_cfg, _ = _hf_config_at(path)
        given = _hf_config_arg(config)
        if given is not None:
            hf_cfg = given
        elif config is not None:
            logger.warning("%s: a Hugging Face directory; its config.json defines the model, config=%r is ignored",
                           path, config)
        state = {}
        for f in _hf_weights_in(path):
            state.update(read_tensor_file(f))
        model = _load_hf_state(state, hf_cfg, path, strict, ln_dir=path, allow_nonfinite=allow_nonfinite)
        model.source_format = "hf"
        model.vocab_path = _first_file(path, ("vocab.txt",))
    elif kind == "uer" and os.path.isdir(path):
        weights = [os.path.join(path, n) for n in ("model.safetensors", "pytorch_model.bin", "model.bin")
                   if os.path.isfile(os.path.join(path, n))]
        if not weights:
            raise CheckpointError(f"{path}: a directory without a checkpoint (no Hugging Face config.json with a "
                                  "model_type, no TF checkpoint, no model.safetensors / pytorch_model.bin)")
        return load_model(weights[0], config=config, strict=strict, vocab_size=vocab_size, vocab=vocab,
                          seq_length=seq_length, config_overrides=config_overrides, allow_nonfinite=allow_nonfinite)
    else:
        state = read_tensor_file(path)
        hf_cfg = _hf_config_arg(config)
        if _is_uer_state(state) and hf_cfg is None:
            model = _load_uer_state(state, path, config, strict, vocab_size, config_overrides, allow_nonfinite)
            model.source_format = "uer"
            model.vocab_path = None
        else:
            if hf_cfg is None:
                hf_cfg, _ = _hf_config_at(os.path.dirname(os.path.abspath(path)))
            if hf_cfg is None:
                raise ConfigError(
                    f"{path}: the tensors have Hugging Face names but no config.json with a model_type was given "
                    "or found beside the file (pass config='.../config.json')")
            model = _load_hf_state(state, hf_cfg, path, strict, ln_dir=os.path.dirname(os.path.abspath(path)),
                                   allow_nonfinite=allow_nonfinite)
            model.source_format = "hf"
            model.vocab_path = _first_file(os.path.dirname(os.path.abspath(path)), ("vocab.txt",))
    model.source_path = path
    rows = model.embedding.word.embedding.weight.shape[0]
    if vocab_size is not None and vocab_size != rows:
        raise CheckpointError(f"{path}: the checkpoint's word embedding has {rows} rows but the vocabulary "
                              f"has {vocab_size} tokens; use the checkpoint's own vocabulary or resize it "
                              "(uer_like.io.resize_vocab)")
    if vocab is not None:
        check_vocab(rows, vocab, path)
        model.vocab_path = vocab if isinstance(vocab, str) else getattr(vocab, "path", None)
    elif model.vocab_path:
        check_vocab(rows, model.vocab_path, path, auto=True)
    check_seq_length(model.config, seq_length, path)
    if allow_nonfinite:
        warn_nonfinite(model, path)
    return model


def warn_nonfinite(model, source):
    """Log a warning naming the tensors that hold NaN/inf values (weights of a diverged run); returns them."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        logger.warning("%s: %d tensor(s) hold NaN/inf values (%s%s): these weights are unusable (a diverged "
                       "run?); use an earlier checkpoint", source, len(bad), ", ".join(bad[:3]),
                       ", ..." if len(bad) > 3 else "")
    return bad


def _hf_config_arg(config):
    """`config` when it is a Hugging Face config (a dict or a .json path with a model_type), else None."""
    if isinstance(config, str) and config.endswith(".json") and os.path.isfile(config):
        cand = read_json(config)
        return cand if isinstance(cand, dict) and "model_type" in cand else None
    if isinstance(config, dict) and "model_type" in config:
        return config
    return None


def _first_file(d, names):
    for n in names:
        p = os.path.join(d, n)
        if os.path.isfile(p):
            return p
    return None


def _load_uer_state(state, path, config, strict, vocab_size, config_overrides=None, allow_nonfinite=False):
    from ..config import ModelConfig, read_config_dict
    from ..legacy_config import MODULE_KEYS
    from ..model import Model

    if config is None:
        config = _find_config(path)
        if config is None and is_safetensors(path):
            meta = safetensors_metadata(path)
            if meta.get("uer_like_config"):
                config = read_json(f"{path} (its metadata's uer_like_config)", text=meta["uer_like_config"])
        if config is None:
            raise ConfigError(f"{path}: no config given and none found beside it "
                              "(pass config=..., e.g. 'bert/base_config.json')")
    if state and all(k.startswith("module.") for k in state):  # saved from a DataParallel/DDP wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    if isinstance(config, ModelConfig):
        config = config.replace(**config_overrides) if config_overrides else config
    else:
        raw, source = read_config_dict(config)
        raw.update(config_overrides or {})
        inferred, why = uerfmt.infer_components(state)
        absent = [k for k in MODULE_KEYS if k not in raw]
        if absent:  # UER-py before 2021: the components came from command-line flags
            raw.update({k: v for k, v in inferred.items() if k not in raw})
            logger.info("%s: the config names no %s; read from the checkpoint's tensor names: %s", source,
                        "/".join(absent), "; ".join(why))
        else:  # what the tensors' presence settles, when the config does not say (2019-2020 LM heads had a bias)
            raw.update({k: inferred[k] for k in uerfmt.PRESENCE_KEYS if k in inferred and k not in raw})
        config = ModelConfig.from_dict(raw, source=source)
    word = _first_present(state, ("embedding.word.embedding.weight", "embedding.word_embedding.weight"))
    ckpt_vocab = int(word.shape[0]) if word is not None else None
    if vocab_size is not None and ckpt_vocab is not None and vocab_size != ckpt_vocab:
        raise CheckpointError(f"{path}: the checkpoint's word embedding has {ckpt_vocab} rows but the vocabulary "
                              f"has {vocab_size} tokens; use the checkpoint's own vocabulary or resize it "
                              "(uer_like.io.resize_vocab)")
    n = vocab_size or ckpt_vocab or config.vocab_size
    if not n:
        raise CheckpointError(f"{path}: cannot tell the vocabulary size (no embedding.word.embedding.weight)")
    if config.vocab_size != n:
        config = config.replace(vocab_size=n)
    pos = _first_present(state, ("embedding.pos.embedding.weight", "embedding.position_embedding.weight"))
    if pos is not None and "pos" in config.embedding and pos.shape[0] != config.max_seq_length + config.position_offset:
        raise CheckpointError(
            f"{path}: the position embedding has {pos.shape[0]} rows but the config says max_seq_length "
            f"{config.max_seq_length} (+ position_offset {config.position_offset}); set max_seq_length to "
            f"{pos.shape[0] - config.position_offset}")
    model = Model(config, n)
    layout, diff = uerfmt.detect_layout(state, list(model.state_dict()), config)
    if diff:
        desc = "; ".join(f"{k} keys ({len(v)}): {', '.join(v[:20])}" + (" ..." if len(v) > 20 else "")
                         for k, v in diff.items() if v)
        msg = (f"{path}: checkpoint does not match the model config in any UER layout; closest: {layout} "
               f"({uerfmt.LAYOUT_DESCRIPTIONS[layout]}): {desc}")
        if strict and any(k.startswith(("output_layer", "crf.")) for k in diff.get("unexpected", ())):
            raise CheckpointError(msg + " (a task head: a model fine-tuned by finetune/run_*.py, which runs it with "
                                        "--load_model_path; scripts/convert.py converts it with its MODEL_finetune.json "
                                        "beside it)")
        if strict:
            raise CheckpointError(msg + " (check the config against the checkpoint, or pass strict=False to load "
                                        "the matching tensors only)")
        logger.warning("%s", msg)
    internal = uerfmt.from_uer_state_dict(state, layout, config)
    if config.tie_weights:
        _fill_tied(model, internal)
    missing, unexpected = load_into(model, internal, strict=strict, source=path, allow_nonfinite=allow_nonfinite,
                                    names=uerfmt.file_names(internal, layout, config))
    model.hf_config = None
    model.uer_layout = layout
    model.load_report = {"missing": missing, "unexpected": unexpected}
    if layout != "uer":
        logger.info("%s: UER layout %s (%s)", path, layout, uerfmt.LAYOUT_DESCRIPTIONS[layout])
    return model


def _first_present(state, names):
    for n in names:
        if n in state:
            return state[n]
    return None


def _fill_tied(model, internal):
    """A file holding a tied weight under one of its two names only: the other name gets the same tensor."""
    own = model.state_dict()
    for a, b in uerfmt.TIED:
        if a in own and b in own and (a in internal) != (b in internal):
            internal[b if a in internal else a] = internal[a if a in internal else b]


def _load_hf_state(state, hf_cfg, source, strict, ln_dir=None, allow_nonfinite=False):
    from ..model import Model

    ln_originals = None
    sidecar = os.path.join(ln_dir, hfmod.LAYERNORM_SIDECAR) if ln_dir else None
    if sidecar and os.path.isfile(sidecar) and (hf_cfg.get("uer_like") or {}).get("gamma_scaled"):
        ln_originals = read_tensor_file(sidecar)

    family = hfmod.family_of(hf_cfg, source)
    canon = hfmod.canonical_state(state, family)
    targets = hfmod.targets_from_keys(family, canon)
    _, config = hfmod.uer_config_from_hf(hf_cfg, targets, source=source)
    word = canon.get("wte.weight" if family == "gpt2" else "embeddings.word_embeddings.weight")
    if word is not None and word.shape[0] != config.vocab_size:
        raise CheckpointError(f"{source}: the word embedding has {word.shape[0]} rows but config.json says "
                              f"vocab_size {config.vocab_size}")
    internal, unexpected, missing = hfmod.state_from_hf(canon, hf_cfg, family, config, source=source,
                                                        ln_originals=ln_originals)
    hf_extras = internal.pop("hf_extras", {})
    if strict and (missing or unexpected):
        raise CheckpointError(f"{source}: the {family} checkpoint does not match its config: "
                              + _key_report(missing, unexpected))
    if missing:
        logger.warning("%s: not in the checkpoint, left as initialised: %s", source, ", ".join(missing))
    if unexpected:
        logger.warning("%s: in the checkpoint but not used, ignored: %s", source, ", ".join(unexpected))
    model = Model(config, config.vocab_size)
    own = model.state_dict()
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in internal.items()
           if k in own and tuple(v.shape) != tuple(own[k].shape)]
    names = hfmod.hf_names(family, config)
    if bad:
        desc = "; ".join(f"{'+'.join(names.get(k, (k,)))}: checkpoint {a} vs config {b} (uer_like {k})"
                         for k, a, b in bad[:10])
        raise CheckpointError(f"{source}: shape mismatch for {len(bad)} tensor(s) between the weights and "
                              f"config.json: {desc}")
    load_into(model, internal, strict=False, source=source, quiet=True, names=names,
              allow_nonfinite=allow_nonfinite)
    model.hf_config = dict(hf_cfg)
    model.hf_family = family
    model.hf_extras = hf_extras
    model.load_report = {"missing": missing, "unexpected": unexpected}
    return model


def _key_report(missing, unexpected):
    """The missing and unexpected keys of a strict load, for its error message (the first 20 of each)."""
    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
    return "; ".join(parts) + " (pass strict=False to load the matching tensors only)"


def load_into(model, state, strict=True, source="checkpoint", quiet=False, names=None, allow_nonfinite=False):
    """Copy tensors into a model, checking names, shapes, dtypes and values (check_tensors). Returns
    (missing, unexpected). names: key -> the file's key(s), for messages (Hugging Face names, UER's three
    attention linears)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own
                  if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if mismatched:
        desc = "; ".join(f"{k}: checkpoint {a} vs model {b}" for k, a, b in mismatched[:10])
        raise CheckpointError(f"{source}: shape mismatch for {len(mismatched)} tensor(s): {desc}")
    if strict and (missing or unexpected):
        raise CheckpointError(f"{source}: checkpoint does not match the model config: "
                              + _key_report(missing, unexpected))
    check_tensors({k: state[k] for k in own if k in state}, source, own=own, names=names,
                  allow_nonfinite=allow_nonfinite)
    if not quiet:
        if missing:
            logger.warning("%s: not in the checkpoint, left as initialised: %s", source, ", ".join(missing))
        if unexpected:
            logger.warning("%s: in the checkpoint but not in the model, ignored: %s", source, ", ".join(unexpected))
    with torch.no_grad():
        for k, v in own.items():
            if k in state:
                v.copy_(state[k])
    return missing, unexpected


def check_tensors(state, source, own=None, names=None, allow_nonfinite=False):
    """Refuse, naming the tensors, what no weight can be loaded from: a dtype of another kind than the weight's
    (own: the model's state dict; without it every tensor is a floating-point weight), i.e. integer, bool or
    complex values for a floating-point weight (floating precisions convert: fp16/bf16/fp64 load into fp32);
    and, unless allow_nonfinite, NaN/inf values (the weights of a diverged run).
    names: key -> the file's key(s), for the message."""
    def label(k):
        return "+".join(names[k]) if names and k in names else k

    def dtype(t):
        return str(t.dtype).replace("torch.", "")

    wrong = []
    for k, v in state.items():
        want = own[k] if own is not None else None
        if not (v.is_floating_point() if want is None else
                v.dtype == want.dtype or (v.is_floating_point() and want.is_floating_point())):
            wrong.append((k, dtype(v), dtype(want) if want is not None else "floating point"))
    if wrong:
        desc = "; ".join(f"{label(k)}: checkpoint {a} vs model {b}" for k, a, b in wrong[:10])
        raise CheckpointError(f"{source}: wrong dtype for {len(wrong)} tensor(s): {desc} (a floating-point weight is "
                              "never loaded from integer, bool or complex values: the file was written wrongly or "
                              "altered)")
    if allow_nonfinite:
        return
    # a sum is NaN/inf when any value is (one cheap pass); only then count, which also rules out an overflow
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v.sum())
           and not torch.isfinite(v).all()]
    if bad:
        desc = ", ".join(f"{label(k)} ({int((~torch.isfinite(state[k])).sum())} of {state[k].numel()} values)"
                         for k in bad[:3])
        raise CheckpointError(f"{source}: {len(bad)} tensor(s) hold NaN/inf values: {desc}"
                              f"{', ...' if len(bad) > 3 else ''}; these weights are unusable (a diverged run?): "
                              "use an earlier checkpoint")


# ---------------------------------------------------------------------------------------------- saving
def _infer_format(path):
    low = path.lower()
    if low.endswith(".safetensors"):
        return "safetensors"
    if low.endswith((".bin", ".pt", ".pth")):
        return "uer"
    if os.path.isdir(path) or not os.path.splitext(low)[1]:
        return "hf"
    return "safetensors"


def save_model(model, path, format=None, vocab=None, layout=None):
    """Save weights.

    format "uer": UER-py's key names in a torch .bin (tied weights under both names), as UER-py reads them;
    "safetensors": the same names in a .safetensors file (the config also in its metadata);
    "hf": a directory transformers loads (AutoModel and the matching *ForPreTraining / *ForMaskedLM /
    *LMHeadModel class), with model.safetensors, config.json and the tokenizer files (from the release the
    model was loaded from, else a BertTokenizer over `vocab` or the model's known vocabulary).
    format None: by the path (.safetensors -> safetensors, .bin/.pt -> uer, a directory or no extension ->
    hf). The UER formats also write NAME_config.json beside the weights.
    A model with the `electra` target (ELECTRA pretraining) saves whole in the UER formats; format "hf" writes
    PATH/discriminator (ElectraForPreTraining) and PATH/generator (ElectraForMaskedLM); for either half in a UER
    file, save the models of targets.electra.electra_parts(model) (scripts/convert.py --electra_part).
    layout (the UER formats): the key names of a UER-py era (io/uer.py LAYOUTS: "uer" since July 2023,
    "uer_2023", "uer_2021", "uer_2021_albert"); default: the layout the model was loaded from, else "uer".
    NAME_config.json is then written in that era's form too. Returns the path written."""
    fmt = format or _infer_format(path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "hf" and "electra" in model.config.target:  # ELECTRA pretraining: two transformers models
        from ..targets.electra import electra_parts

        disc, gen = electra_parts(model)
        save_hf(disc, os.path.join(path, "discriminator"), vocab=vocab or _default_vocab(model))
        save_hf(gen, os.path.join(path, "generator"), vocab=vocab or _default_vocab(model))
        return path
    if fmt == "hf" and "pert" in model.config.target:  # PERT: the encoder, as HFL released it (BertModel)
        from ..targets.pert import pert_encoder

        logger.info("%s: PERT's pointer head has no Hugging Face class; the encoder is saved without it", path)
        model = pert_encoder(model)
    if fmt == "hf":
        return save_hf(model, path, vocab=vocab)
    if fmt == "uer" and path.lower().endswith(".safetensors"):
        raise ConfigError(f"{path}: format 'uer' writes a torch pickle; use format='safetensors' for a .safetensors "
                         "path, or a .bin path")
    from ..legacy_config import config_for_layout

    layout = layout or getattr(model, "uer_layout", None) or "uer"
    try:
        state = uerfmt.to_uer_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()}, layout,
                                         model.config)
    except uerfmt.LayoutError as e:
        raise ConfigError(f"{path}: {e}") from None
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"could not create the directory of {path}: {os.strerror(e.errno)}") from None
    cfg_json = json.dumps(config_for_layout(model.config.to_dict(), layout), indent=2, ensure_ascii=False)
    if fmt == "uer":
        atomic_write(path, lambda f: torch.save(state, f), error=CheckpointError, what="weights")
    else:
        from safetensors.torch import save

        blob = {k: v.contiguous().clone() for k, v in state.items()}
        atomic_write(path, lambda f: f.write(save(blob, metadata={"format": "pt", "uer_like_config": cfg_json})),
                     error=CheckpointError, what="weights")
    atomic_write(os.path.splitext(path)[0] + "_config.json", lambda f: f.write(cfg_json.encode("utf-8")),
                 error=CheckpointError, what="config")
    return path


def save_hf(model, out_dir, vocab=None, family=None, task_head=None):
    """Write a Hugging Face directory: model.safetensors, config.json, tokenizer files. task_head (fine-tuned
    models, io/hf_tasks.py): (architecture, config.json entries, head tensors by Hugging Face name)."""
    family = family or hfmod.hf_family_for(model.config, prefer=getattr(model, "hf_family", None))
    if model.config.layernorm not in ("torch", "normal"):
        logger.warning("the model uses the %s layer norm, which transformers' %s does not compute", model.config.layernorm,
                       family)
    source_hf = getattr(model, "hf_config", None)
    if source_hf is not None and hfmod.FAMILIES.get(source_hf.get("model_type")) != family:
        source_hf = None
    hf_cfg = hfmod.hf_config_for(model, family, source_hf)
    if task_head is not None:
        architecture, entries, head_state = task_head
        hf_cfg["architectures"] = [architecture]  # before state_to_hf: it decides the key prefixes
        extras = {**hf_cfg.get("uer_like", {}), **entries.pop("uer_like", {})}
        hf_cfg.update(entries, uer_like=extras)
    originals = {}
    state = hfmod.state_to_hf(model, family, hf_cfg, originals)
    if task_head is not None:
        state.update({k: v.detach().cpu().contiguous().clone() for k, v in head_state.items()})
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"could not create {out_dir}: {os.strerror(e.errno)}") from None
    from safetensors.torch import save

    atomic_write(os.path.join(out_dir, "model.safetensors"), lambda f: f.write(save(state, metadata={"format": "pt"})),
                 error=CheckpointError, what="weights")
    sidecar = os.path.join(out_dir, hfmod.LAYERNORM_SIDECAR)
    if originals:
        atomic_write(sidecar, lambda f: f.write(save(originals, metadata={"format": "pt"})), error=CheckpointError,
                     what="weights")
    elif os.path.exists(sidecar):
        os.remove(sidecar)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_cfg, f, indent=2, ensure_ascii=False)
    source_dir = None
    src = getattr(model, "source_path", None)
    if getattr(model, "source_format", None) == "hf" and src and vocab is None:
        source_dir = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
    vocab_path = vocab if isinstance(vocab, str) else getattr(vocab, "path", None) if vocab is not None else None
    if vocab_path is None:
        vocab_path = getattr(model, "vocab_path", None) or _default_vocab(model)
    if vocab_path is not None and vocab_path.endswith(".model"):  # a sentencepiece model (XLNet)
        from ..tokenizers.xlnet import load_spm

        n = load_spm(vocab_path).GetPieceSize()
        if n != model.vocab_size:
            raise CheckpointError(f"the sentencepiece model {vocab_path} has {n} pieces but the model's word embedding "
                                  f"{model.vocab_size} rows")
    elif vocab_path is not None:
        check_vocab(model.vocab_size, vocab_path, "the model")
    written = hfmod.write_tokenizer_files(out_dir, family, vocab_path=vocab_path, source_dir=source_dir)
    if not written:
        logger.warning("%s: no tokenizer files written (pass vocab=... to save_model)", out_dir)
    return out_dir


def _default_vocab(model):
    """The project's Google Chinese vocabulary when the model's size matches it (UER-py's default)."""
    from ..resources import DEFAULT_VOCAB as p

    if os.path.isfile(p) and model.vocab_size == 21128:
        return p
    return None
