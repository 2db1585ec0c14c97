"""Fine-tuned models (finetune/) <-> Hugging Face task directories.

A model fine-tuned here is a UER-format file (`embedding.*`, `encoder.*` and its head) with PATH_config.json
and PATH_finetune.json (the task settings) beside it. Its head maps onto a transformers task class:

  task             head here                              transformers class (Bert/Roberta/Albert/Electra...)
  classification,  output_layer_1 (dense + tanh on [CLS])  ...ForSequenceClassification: bert/albert pooler +
  regression,      output_layer_2                          classifier; roberta, mpnet classifier.dense + out_proj
  multi_label
  tagging          output_layer                            ...ForTokenClassification: classifier
  mrc              output_layer [2, hidden] (start, end)    ...ForQuestionAnswering: qa_outputs
  multiple_choice  output_layer_1, output_layer_2 [1, h]   ...ForMultipleChoice: pooler + classifier

Where each head goes is the family's (Family.task_heads in io/families/). XLNet's classifier (dense + tanh on
the last token) is XLNetForSequenceClassification's sequence_summary.summary + logits_proj, its span extractor
XLNetForQuestionAnsweringSimple.

id2label / label2id come from the task settings (the tags of a tagger, the class ids of a classifier);
regression and multi_label set problem_type. config.json keeps the task settings and the UER config under
`uer_like.finetune`, and UER layer norms keep their exact gammas beside the weights (io/hf.py), so the way
back (`import_finetuned`) writes the same three files again, tensors bit for bit. `convert_finetuned` rewrites
a fine-tuned model in the other UER format (a torch .bin <-> .safetensors), its head kept.

Not representable, refused in one line: a CRF on a tagger, pooling other than the family's (the first token;
XLNet: the last) for a classifier, ELECTRA's classification heads (gelu, not tanh), GPT-2's classifiers.
"""
import json
import os

import torch

from ..config import load_config, read_config_dict, read_json
from ..errors import CheckpointError, ConfigError
from . import hf as hfmod

SUFFIX = {"classification": "ForSequenceClassification", "regression": "ForSequenceClassification",
          "multi_label": "ForSequenceClassification", "tagging": "ForTokenClassification",
          "mrc": "ForQuestionAnswering", "multiple_choice": "ForMultipleChoice"}
PROBLEM_TYPE = {"classification": "single_label_classification", "regression": "regression",
                "multi_label": "multi_label_classification"}
# tasks whose head is another task's, exported as that one (ChID: multiple choice; DBQA: pair classification)
EXPORT_AS = {"chid": "multiple_choice", "dbqa": "classification"}
# tasks whose fine-tuned model is a pretraining-format model (no task head of its own): exported as that model
# (a prompt classifier is its MLM, kept under target.mlm.*: *ForMaskedLM; a SimCSE encoder: the base model, and
# scripts/export_sentence_transformers.py adds sentence-transformers' pooling files)
EXPORT_AS_MODEL = ("prompt", "simcse")
POOLED = ("classification", "regression", "multi_label", "multiple_choice")  # dense + tanh on [CLS] first


def meta_path(path):
    return os.path.splitext(path)[0] + "_finetune.json"


def read_meta(path):
    """The task settings saved beside a fine-tuned model, or None when it is not one."""
    p = meta_path(path)
    if not os.path.isfile(p):
        return None
    return read_json(p)


def is_task_dir(path):
    """Whether a Hugging Face directory holds one of the task classes above."""
    p = os.path.join(path, "config.json") if os.path.isdir(path) else None
    if not p or not os.path.isfile(p):
        return False
    cfg = read_json(p)
    arch = ((cfg.get("architectures") if isinstance(cfg, dict) else None) or [""])[0]
    return _task_of_arch(arch) is not None


def _task_of_arch(arch):
    """The task of a transformers task class name (XLNet's span extractor: *ForQuestionAnsweringSimple)."""
    arch = arch[: -len("Simple")] if arch.endswith("ForQuestionAnsweringSimple") else arch
    by_suffix = {v: k for k, v in SUFFIX.items() if k not in ("regression", "multi_label")}
    return next((t for s, t in by_suffix.items() if arch.endswith(s)), None)


def _head_layout(task, family):
    """-> (backbone targets, [(internal head key prefix, HF key prefix)]) for a task in a family (its
    Family.task_heads)."""
    if task not in SUFFIX:
        raise ConfigError(f"the fine-tuning task {task!r} has no Hugging Face class here; exportable: "
                          f"{', '.join(SUFFIX)}")
    layout = _task_heads(family)(task)
    if layout is None:
        fit = [f.name for f in hfmod.families.all_families() if f.task_heads is not None and f.task_heads(task)]
        raise ConfigError(f"a {task} head on a {family} model has no transformers equivalent (its classification "
                          f"head differs); exportable families for it: {', '.join(fit)}")
    return layout


def _task_heads(family):
    fam = hfmod.families.get(family)
    if fam.task_heads is None:
        exportable = [f.name for f in hfmod.families.all_families() if f.task_heads is not None]
        raise ConfigError(f"a fine-tuned {family} model has no transformers task class here; exportable families: "
                          f"{', '.join(exportable)}")
    return fam.task_heads


def task_class(family, task):
    """The transformers class of a fine-tuned `task` model in `family`."""
    fam = hfmod.families.get(family)
    return fam.task_class(SUFFIX[task]) if fam.task_class is not None else fam.class_prefix + SUFFIX[task]


def _labels(task, meta, head_rows):
    """config.json entries for the labels of a task."""
    if task == "tagging":
        l2i = {str(k): int(v) for k, v in (meta.get("label2id") or {}).items()}
        if not l2i:
            l2i = {f"LABEL_{i}": i for i in range(head_rows)}
        i2l = {str(v): k for k, v in l2i.items()}
    elif task in ("classification", "multi_label", "regression"):
        i2l = {str(i): str(i) if task != "regression" else "LABEL_0" for i in range(head_rows)}
        l2i = {v: int(k) for k, v in i2l.items()}
    else:
        return {}
    out = {"num_labels": len(i2l), "id2label": i2l, "label2id": l2i}
    if task in PROBLEM_TYPE:
        out["problem_type"] = PROBLEM_TYPE[task]
    return out


def export_finetuned(path, out_dir, config=None, vocab=None):
    """A fine-tuned UER-format model (with PATH_finetune.json beside it) -> a transformers task directory."""
    from ..model import Model
    from .checkpoint import _find_config, check_tensors, load_into, read_tensor_file, save_hf
    from .formats import LoadInfo
    from .uer import from_uer_state_dict

    meta = read_meta(path)
    if meta is None or "task" not in meta:
        raise ConfigError(f"{path}: no task settings ({os.path.basename(meta_path(path))}) beside it: not a model "
                          "fine-tuned by finetune/run_*.py")
    task = EXPORT_AS.get(meta["task"], meta["task"])
    cfg_source = config or _find_config(path)
    if cfg_source is None:
        raise ConfigError(f"{path}: no config given and none found beside it")
    if task in EXPORT_AS_MODEL:
        from .checkpoint import load_model, save_model

        return save_model(load_model(path, config=cfg_source), out_dir, format="hf", vocab=vocab)
    raw_config, _ = read_config_dict(cfg_source) if not isinstance(cfg_source, dict) else (dict(cfg_source), "config")
    cfg = load_config(raw_config)
    state = from_uer_state_dict(read_tensor_file(path))
    check_tensors(state, path)
    if any(k.startswith("crf.") for k in state):
        raise ConfigError(f"{path}: the tagger has a CRF layer, which transformers' token classification classes "
                          "do not have; fine-tune without --crf_target to export it")
    family = hfmod.hf_family_for(cfg.replace(target=[]))
    try:
        _task_heads(family)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    fam = hfmod.families.get(family)
    if task in POOLED and task != "multiple_choice" and cfg.pooling != fam.task_pooling:
        raise ConfigError(f"{path}: the classifier pools with '{cfg.pooling}'; transformers' {fam.class_prefix} "
                          f"classes pool the {fam.task_pooling} token (fine-tune with --pooling {fam.task_pooling} "
                          "to export it)")
    targets, heads = _head_layout(task, family)
    word = state.get("embedding.word.embedding.weight")
    if word is None:
        raise CheckpointError(f"{path}: no embedding.word.embedding.weight: not a fine-tuned uer_like model")
    backbone_cfg = cfg.replace(target=targets, vocab_size=int(word.shape[0]))
    model = Model(backbone_cfg, int(word.shape[0]))
    backbone = {k: v for k, v in state.items() if k.startswith(("embedding.", "encoder."))}
    if targets == ["pooler"]:
        backbone.update({"target.pooler.linear_1." + k.split(".")[-1]: v for k, v in state.items()
                         if k.startswith("output_layer_1.")})
    load_into(model, backbone, strict=True, source=path)
    used = set(backbone)
    if targets:
        used |= {k for k in state if k.startswith("output_layer_1.")}
    head_state = {}
    for ours, theirs in heads:
        for k, v in state.items():
            if k.startswith(ours):
                head_state[theirs + k[len(ours):]] = v
                used.add(k)
    left = [k for k in state if k not in used]
    if left:
        raise CheckpointError(f"{path}: tensors the {task} export has no place for: {', '.join(left[:10])}")
    rows = head_state[heads[-1][1] + "weight"].shape[0]  # the last head is the output layer
    entries = _labels(task, meta, rows)
    entries["uer_like"] = {"finetune": {"meta": meta, "config": raw_config}}
    model.load_info = LoadInfo(vocab_path=getattr(vocab, "path", vocab) if vocab is not None else None)
    return save_hf(model, out_dir, vocab=vocab, family=family,
                   task_head=(task_class(family, task), entries, head_state))


def import_finetuned(hf_dir, out_path):
    """A transformers task directory (exported here, or any *ForSequenceClassification / TokenClassification /
    QuestionAnswering / MultipleChoice of a supported family) -> a fine-tuned UER-format model at out_path with
    its _config.json and _finetune.json. Returns out_path."""
    from .checkpoint import check_tensors, read_tensor_file
    from .formats.hf import weights_in as _hf_weights_in
    from .uer import to_uer_state_dict

    hf = read_json(os.path.join(hf_dir, "config.json"))
    arch = (hf.get("architectures") or [""])[0]
    family = hfmod.family_of(hf, os.path.join(hf_dir, "config.json"))
    saved = (hf.get("uer_like") or {}).get("finetune") or {}
    task = (saved.get("meta") or {}).get("task")
    if task is None:
        task = _task_of_arch(arch)
        if task == "classification" and hf.get("problem_type") == "regression":
            task = "regression"
        elif task == "classification" and hf.get("problem_type") == "multi_label_classification":
            task = "multi_label"
    if task is None:
        raise ConfigError(f"{hf_dir}: {arch or 'no architecture'} is not a task class this converts "
                          f"(*{', *'.join(sorted(set(SUFFIX.values())))})")
    targets, heads = _head_layout(task, family)
    state = {}
    for f in _hf_weights_in(hf_dir):
        state.update(read_tensor_file(f))
    canon = hfmod.canonical_state(state, family)
    _, cfg = hfmod.uer_config_from_hf(hf, targets, source=hf_dir)
    sidecar = os.path.join(hf_dir, hfmod.LAYERNORM_SIDECAR)
    ln = read_tensor_file(sidecar) if os.path.isfile(sidecar) else None
    internal, unexpected, missing = hfmod.state_from_hf(canon, hf, family, cfg, source=hf_dir, ln_originals=ln)
    if missing:
        raise CheckpointError(f"{hf_dir}: missing tensors: {', '.join(missing[:10])}")
    out = {k: v for k, v in internal.items() if k.startswith(("embedding.", "encoder."))}
    if targets == ["pooler"]:
        out.update({"output_layer_1." + k.split(".")[-1]: v for k, v in internal.items()
                    if k.startswith("target.pooler.linear_1.")})
    for ours, theirs in heads:
        for k in list(unexpected):
            if k.startswith(theirs):
                out[ours + k[len(theirs):]] = canon[k]
                unexpected.remove(k)
    if unexpected:
        raise CheckpointError(f"{hf_dir}: tensors with no place in the {task} model: {', '.join(unexpected[:10])}")
    check_tensors(out, hf_dir, names=hfmod.hf_names(family, cfg))
    meta = saved.get("meta") or _meta_from_hf(task, hf, out)
    config = saved.get("config") or cfg.to_dict()
    fmt = "safetensors" if out_path.lower().endswith(".safetensors") else "uer"
    return _write_finetuned(to_uer_state_dict(out), out_path, fmt, config, meta)


def convert_finetuned(path, out_path, fmt, config=None):
    """A fine-tuned UER-format model (PATH_finetune.json beside it) -> the same tensors, task head included, in
    `fmt` ("uer": a torch .bin, or "safetensors") at out_path, with its _config.json and _finetune.json.
    Returns out_path."""
    from .checkpoint import _find_config, check_tensors, read_tensor_file

    meta = read_meta(path)
    cfg_source = config or _find_config(path)
    if cfg_source is None:
        raise ConfigError(f"{path}: no config given and none found beside it")
    raw_config, _ = read_config_dict(cfg_source)
    state = read_tensor_file(path)
    check_tensors(state, path)
    return _write_finetuned(state, out_path, fmt, raw_config, meta)


def _write_finetuned(file_state, out_path, fmt, config, meta):
    from ..outputs import atomic_write

    if fmt == "uer" and out_path.lower().endswith(".safetensors"):
        raise ConfigError(f"{out_path}: format 'uer' writes a torch pickle; use --to safetensors for a .safetensors "
                          "path, or a .bin path")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"could not create the directory of {out_path}: {os.strerror(e.errno)}") from None
    if fmt == "safetensors":
        from safetensors.torch import save

        blob = {k: v.contiguous().clone() for k, v in file_state.items()}
        atomic_write(out_path, lambda f: f.write(save(blob, metadata={"format": "pt"})), error=CheckpointError,
                     what="weights")
    else:
        atomic_write(out_path, lambda f: torch.save(file_state, f), error=CheckpointError, what="weights")
    stem = os.path.splitext(out_path)[0]
    for suffix, value in (("_config.json", config), ("_finetune.json", meta)):
        text = json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8")
        atomic_write(stem + suffix, lambda f: f.write(text), error=CheckpointError, what="settings")
    return out_path


def _meta_from_hf(task, hf, state):
    """Task settings for a task directory made elsewhere (what finetune/ needs to run it)."""
    meta = {"task": task, "seq_length": 512 if task == "mrc" else 128}
    if task == "tagging":
        i2l = hf.get("id2label") or {}
        meta.update(label2id={v: int(k) for k, v in i2l.items()}, crf=False)
    elif task in ("classification", "multi_label"):
        meta["labels_num"] = int(state["output_layer_2.weight"].shape[0])
    elif task == "mrc":
        meta.update(doc_stride=128, max_query_length=64, max_answer_length=50)
    elif task == "multiple_choice":
        meta["max_choices_num"] = 4
    return meta
