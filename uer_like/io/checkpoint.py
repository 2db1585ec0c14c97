"""load_model / save_model: the formats registered in io/formats/ (one module each) detect, read and write;
this module builds the model from what they read and checks it.

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
  - ZEN's PyTorch release (pytorch_model.bin, a config with word_size / num_hidden_word_layers, vocab.txt,
    ngram.txt; io/zen.py), read into the `zen` encoder with UER names;
  - TensorFlow checkpoints as the releases shipped them (Google BERT, ALBERT, ELECTRA and the Chinese
    releases of io/tf_releases.py): a checkpoint prefix (model.ckpt), its .index file or a directory holding
    one, with its config json; read in pure Python (io/tf_bundle.py), no tensorflow needed.

Never unpickles arbitrary objects (see io/safe.py). Loading is strict by default: missing, unexpected
and wrongly shaped tensors are errors naming the keys; `strict=False` loads what matches and prints
(logs at WARNING) the rest.

`save_model(model, path, format=None)`: "uer" (UER-py's key names in a torch .bin), "safetensors" (the
same names in a .safetensors file, the project's default) or "hf" (a transformers directory): the formats
with a `write` (io/formats.writable()).

A loaded model carries `model.load_info` (io/formats.LoadInfo): the format, path, key names (UER layout or HF
family), the vocabulary and tokenizer directory found, and the tensors missing / unexpected.
"""
import json
import logging
import os
import re

import torch

from ..config import read_json
from ..errors import CheckpointError, ConfigError
from ..outputs import atomic_write
from . import formats
from . import hf as hfmod
from .formats import LoadInfo
from .safe import is_safetensors, read_tensor_file, safetensors_metadata
from . import uer as uerfmt

logger = logging.getLogger("uer_like")

CONFIG_NAMES = ("config.json", "uer_config.json")


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


def detect_format(path):
    """The name of the registered format that reads `path` (io/formats: "hf", "tf", "safetensors", "uer", ...),
    without loading any tensor data. A weights file's tensor names decide, when it is read, whether they are
    UER-py's or a Hugging Face family's (then reported as "hf")."""
    return formats.detect(path)


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
    The model remembers where it came from: model.load_info (io/formats.LoadInfo: format, path, names,
    layout (UER files), family and hf_config (Hugging Face names), vocab_path, missing / unexpected)."""
    fmt = detect_format(path)
    w = formats.get(fmt).read(path, config=config, tf_model=tf_model)
    try:
        if w.names == "uer":
            model, details = _load_uer_state(w.state, w.path, w.config, strict, vocab_size, config_overrides,
                                             allow_nonfinite)
        elif w.names == "hf":
            model, details = _load_hf_state(w.state, w.config, w.path, strict, ln_dir=w.ln_dir,
                                            allow_nonfinite=allow_nonfinite)
        else:
            raise ValueError(f"format {fmt!r}: its read returned tensor names {w.names!r} (expected 'uer' or 'hf')")
    except CheckpointError as e:
        if fmt != "tf" or "strict=False" not in str(e):
            raise
        # a TF release read by its scheme is the whole model: loading part of it would build another model
        # (NEZHA under BERT's names with random absolute positions, say), so no strict=False hint here
        msg = re.sub(r"(, or| \() ?pass strict=False to load the matching tensors only\)?", "", str(e))
        raise CheckpointError(msg + " (the TF checkpoint and its config disagree: use the release's own config "
                                    "json, or report the release if it is)") from None
    info = model.load_info = LoadInfo(format=w.format or fmt, path=w.path, names=w.names, vocab_path=w.vocab_path,
                                      tokenizer_dir=w.tokenizer_dir, **details)
    rows = model.embedding.word.embedding.weight.shape[0]
    if vocab_size is not None and vocab_size != rows:
        raise CheckpointError(f"{w.path}: the checkpoint's word embedding has {rows} rows but the vocabulary "
                              f"has {vocab_size} tokens; use the checkpoint's own vocabulary or resize it "
                              "(uer_like.io.resize_vocab)")
    if vocab is not None:
        check_vocab(rows, vocab, w.path)
        info.vocab_path = vocab if isinstance(vocab, str) else getattr(vocab, "path", None)
    elif info.vocab_path and not info.vocab_path.endswith(".model"):  # a sentencepiece model: checked on export
        check_vocab(rows, info.vocab_path, w.path, auto=True)
    check_seq_length(model.config, seq_length, w.path)
    if allow_nonfinite:
        warn_nonfinite(model, w.path)
    return model


def warn_nonfinite(model, source):
    """Log a warning naming the tensors that hold NaN/inf values (weights of a diverged run); returns them."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        logger.warning("%s: %d tensor(s) hold NaN/inf values (%s%s): these weights are unusable (a diverged "
                       "run?); use an earlier checkpoint", source, len(bad), ", ".join(bad[:3]),
                       ", ..." if len(bad) > 3 else "")
    return bad


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
        from ..legacy_config import uer_py_tying

        # UER-py's meaning of the tying keys, in the era the file tells
        head_tied = bool(raw.get("decoder")) and uerfmt.head_is_word_embedding(state)
        config = ModelConfig.from_dict(uer_py_tying(raw, head_tied), source=source)
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
    if layout != "uer":
        logger.info("%s: UER layout %s (%s)", path, layout, uerfmt.LAYOUT_DESCRIPTIONS[layout])
    return model, dict(layout=layout, missing=missing, unexpected=unexpected)


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


# task classes whose heads read every token (or score choices): their `classifier` is not a pooled sentence
# classifier, and loading it as the cls target would build another model
PER_TOKEN_HEADS = ("ForTokenClassification", "ForQuestionAnswering", "ForQuestionAnsweringSimple", "ForMultipleChoice")


def _drop_per_token_head(canon, hf_cfg, family, source):
    """A directory of a per-token or multiple-choice task class loads as its base model: the head's tensors are
    dropped with a warning naming the way to import it as a fine-tuned model (io/hf_tasks.py)."""
    arch = next(iter(hf_cfg.get("architectures") or []), "") or ""
    if not arch.endswith(PER_TOKEN_HEADS):
        return canon
    head = sorted(k for k in canon if not hfmod._is_base_key(family, k))
    if head:
        logger.warning("%s: a %s: its head (%s) is not a pretraining head and is dropped; the base model is loaded "
                       "(to import the fine-tuned task model: scripts/convert.py --input DIR --to uer)", source, arch,
                       ", ".join(head))
    return {k: v for k, v in canon.items() if k not in head}


def _load_hf_state(state, hf_cfg, source, strict, ln_dir=None, allow_nonfinite=False):
    from ..model import Model

    ln_originals = None
    sidecar = os.path.join(ln_dir, hfmod.LAYERNORM_SIDECAR) if ln_dir else None
    if sidecar and os.path.isfile(sidecar) and (hf_cfg.get("uer_like") or {}).get("gamma_scaled"):
        ln_originals = read_tensor_file(sidecar)

    family = hfmod.family_of(hf_cfg, source)
    canon = _drop_per_token_head(hfmod.canonical_state(state, family), hf_cfg, family, source)
    targets = hfmod.targets_from_keys(family, canon)
    _, config = hfmod.uer_config_from_hf(hf_cfg, targets, source=source)
    from_tensors = hfmod.families.get(family).config_from_state
    if from_tensors is not None:  # what config.json does not say but the tensors do (PEGASUS' position table)
        config = config.replace(**from_tensors(canon, config, source))
    word = canon.get(hfmod.hf_names(family, config).get("embedding.word.embedding.weight", ("",))[0])
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
    return model, dict(family=family, hf_config=dict(hf_cfg), hf_extras=hf_extras, missing=missing,
                       unexpected=unexpected)


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
    fmt = format or formats.infer_write_format(path)
    if fmt not in formats.writable():
        raise ConfigError(f"unknown format {fmt!r}; valid: {', '.join(formats.writable())}")
    return formats.get(fmt).write(model, path, vocab=vocab, layout=layout)


def save_hf(model, out_dir, vocab=None, family=None, task_head=None):
    """Write a Hugging Face directory: model.safetensors, config.json, tokenizer files. task_head (fine-tuned
    models, io/hf_tasks.py): (architecture, config.json entries, head tensors by Hugging Face name)."""
    info = formats.load_info_of(model) or LoadInfo()
    family = family or hfmod.hf_family_for(model.config, prefer=info.family)
    if model.config.layernorm not in ("torch", "normal") and not (model.config.layernorm == "t5"
                                                                   and family in ("t5", "mt5")):
        logger.warning("the model uses the %s layer norm, which transformers' %s does not compute", model.config.layernorm,
                       family)
    source_hf = info.hf_config
    if source_hf is not None and source_hf.get("model_type") != family:
        source_hf = None
    hf_cfg = hfmod.hf_config_for(model, family, source_hf)
    source_dir = info.tokenizer_dir if vocab is None else None
    vocab_path = vocab if isinstance(vocab, str) else getattr(vocab, "path", None) if vocab is not None else None
    if vocab_path is None:
        vocab_path = info.vocab_path or _default_vocab(model)
    spm_path = vocab_path if vocab_path is not None and vocab_path.endswith(".model") else None
    fam = hfmod.families.get(family)
    if spm_path is None and fam.spm_file:  # the family's sentencepiece model beside the weights loaded (any format)
        where = info.tokenizer_dir or (os.path.dirname(os.path.abspath(info.path)) if info.path else None)
        if where and os.path.isfile(os.path.join(where, fam.spm_file)):
            spm_path = os.path.join(where, fam.spm_file)
            if where != source_dir:  # a UER file: the model is written as the tokenizer files
                vocab_path = spm_path
    if spm_path is not None:  # a sentencepiece model (XLNet): its piece count, and the special ids it assigns
        from ..tokenizers.xlnet import load_spm

        sp = load_spm(spm_path)
        # XLNet: one row per piece; a family with spm_rows: at least that many (a release may pad its embedding)
        rows = fam.spm_rows(sp.GetPieceSize()) if fam.spm_rows is not None else sp.GetPieceSize()
        if model.vocab_size < rows or (fam.spm_rows is None and model.vocab_size != rows):
            at_least = "at least " if fam.spm_rows is not None else ""
            raise CheckpointError(f"the sentencepiece model {spm_path} has {sp.GetPieceSize()} pieces: a {family} model "
                                  f"over it has {at_least}{rows} word-embedding rows, but this model has "
                                  f"{model.vocab_size}")
        if fam.special_ids is not None:
            hf_cfg.update(fam.special_ids(sp))
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
    if vocab_path is not None and not vocab_path.endswith(".model"):
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
