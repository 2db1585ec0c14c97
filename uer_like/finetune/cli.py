"""Command lines of finetune/run_classifier.py, run_ner.py and run_cmrc.py (UER-py's flags).

Modes:
- train: --train_path (and --dev_path to select the best epoch, which is what --output_model_path keeps),
  then --test_path is evaluated with the best model and, with --prediction_path, predicted;
- inference: no --train_path; --load_model_path is a fine-tuned model written by a training run
  (its task settings are read from MODEL_finetune.json beside it); --test_path is evaluated when it
  has labels, and --prediction_path receives the predictions.
"""
import argparse
import json
import logging
import os
import sys
import time

import torch

from ..errors import ConfigError, UerLikeError
from ..tokenizers import build_tokenizer
from . import core
from . import data as D
from .tasks import ClassificationTask, MrcTask, TaggingTask

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_VOCAB = os.path.join("models", "google_zh_vocab.txt")


def build_parser(task):
    desc = {"classification": "Fine-tune / run a sentence (pair) classifier (tsv: label, text_a[, text_b]).",
            "tagging": "Fine-tune / run a token tagger, e.g. NER with BIO tags (tsv: text_a, label).",
            "mrc": "Fine-tune / run span-extraction reading comprehension (CMRC 2018 / SQuAD-style JSON)."}[task]
    p = argparse.ArgumentParser(description=desc, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--pretrained_model_path", default=None,
                   help="pretrained model to start from (anything uer_like.load_model reads); none: random init")
    g.add_argument("--load_model_path", default=None,
                   help="a fine-tuned model of this task (inference, or to continue training)")
    g.add_argument("--output_model_path", default="models/finetuned_model.bin",
                   help="where the best dev checkpoint is saved")
    g.add_argument("--config_path", default=None,
                   help="model config (default: the one beside the model, else bert/base_config.json)")
    g.add_argument("--vocab_path", default=None,
                   help="default: vocab.txt beside/in the pretrained model if there is one, else " + DEFAULT_VOCAB)
    g.add_argument("--spm_model_path", default=None)
    g.add_argument("--tokenizer", default="bert", choices=["bert", "char", "space", "sentencepiece"])
    g.add_argument("--dropout", type=float, default=None, help="override the config's dropout")
    g = p.add_argument_group("data")
    g.add_argument("--train_path", default=None)
    g.add_argument("--dev_path", default=None)
    g.add_argument("--test_path", default=None)
    g.add_argument("--prediction_path", default=None, help="write predictions for --test_path here")
    g.add_argument("--seq_length", type=int, default=None,
                   help="max tokens per instance (default: the fine-tuned model's, else 128; 512 for mrc)")
    if task == "classification":
        g.add_argument("--labels_num", type=int, default=None, help="default: max label in train + 1")
        g.add_argument("--pooling", choices=["first", "mean", "max", "last"], default=None)
        g.add_argument("--no_pooler_init", action="store_true",
                       help="start output_layer_1 at random (as UER-py) instead of from the pretrained pooler")
        g.add_argument("--output_logits", action="store_true")
        g.add_argument("--output_prob", action="store_true")
    if task == "tagging":
        g.add_argument("--label2id_path", default=None, help="JSON {tag: id}; required for training")
        g.add_argument("--crf_target", "--crf", dest="crf", action="store_true", help="add a CRF layer")
    if task == "mrc":
        g.add_argument("--doc_stride", type=int, default=None, help="default 128")
        g.add_argument("--max_query_length", type=int, default=None, help="default 64")
        g.add_argument("--max_answer_length", type=int, default=None, help="in tokens, default 50")
    g = p.add_argument_group("training")
    g.add_argument("--epochs_num", type=int, default=3)
    g.add_argument("--batch_size", type=int, default=32)
    g.add_argument("--learning_rate", type=float, default=2e-5)
    g.add_argument("--warmup", type=float, default=0.1, help="fraction of the steps with rising learning rate")
    g.add_argument("--weight_decay", type=float, default=0.01)
    g.add_argument("--max_grad_norm", type=float, default=1.0)
    g.add_argument("--max_steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--report_steps", type=int, default=100)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--amp", choices=["auto", "off", "fp16", "bf16"], default="auto",
                   help="mixed precision on CUDA (auto: bf16 where supported, else fp16); CPU runs fp32")
    g.add_argument("--fp16", action="store_true", help="same as --amp fp16")
    g.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch (0: torch's default; 1 is often fastest on a busy machine)")
    g.add_argument("--no_progress", action="store_true", help="no progress bars (log lines instead)")
    g.add_argument("--report_path", default=None,
                   help="JSON report of the run (default: MODEL_report.json beside --output_model_path)")
    return p


def _resolve_vocab(path):
    if path and not os.path.exists(path) and not os.path.isabs(path) and os.path.exists(os.path.join(REPO, path)):
        return os.path.join(REPO, path)
    return path


def make_task(name, args, enc, meta):
    if name == "classification":
        labels_num = args.labels_num or meta.get("labels_num")
        return ClassificationTask(args, enc, labels_num)
    if name == "tagging":
        if args.label2id_path:
            l2i = D.load_label2id(args.label2id_path)
        elif meta.get("label2id"):
            l2i = meta["label2id"]
        else:
            raise ConfigError("--label2id_path is required (a JSON object {tag: id}, e.g. "
                              "{\"O\": 0, \"B-PER\": 1, \"I-PER\": 2})")
        return TaggingTask(args, enc, l2i, use_crf=args.crf or bool(meta.get("crf")))
    return MrcTask(args, enc)


def run(task_name, argv=None):
    args = build_parser(task_name).parse_args(argv)
    if args.fp16:
        args.amp = "fp16"
    for k in ("output_logits", "output_prob"):
        if not hasattr(args, k):
            setattr(args, k, False)
    if not args.train_path and not args.load_model_path:
        raise ConfigError("nothing to do: give --train_path to fine-tune, or --load_model_path (a fine-tuned model) "
                          "with --test_path/--prediction_path for inference")
    if not args.train_path and not args.test_path:
        raise ConfigError("inference needs --test_path")
    if args.prediction_path and not args.test_path:
        raise ConfigError("--prediction_path writes predictions for --test_path; give --test_path")
    if args.threads:
        torch.set_num_threads(args.threads)
    core.set_seed(args.seed)
    device = core.get_device(args.device)
    dtype = core.amp_dtype(device, args.amp)

    tokenizer = build_tokenizer(args.tokenizer, _resolve_vocab(args.vocab_path or _model_vocab(args)),
                                args.spm_model_path)
    enc = D.Encoder(tokenizer)
    meta = core.read_finetune_meta(args.load_model_path) if args.load_model_path else {}
    if meta.get("task") and meta["task"] != task_name:
        raise ConfigError(f"{args.load_model_path}: a fine-tuned {meta['task']} model, not a {task_name} model")
    defaults = {"seq_length": 512 if task_name == "mrc" else 128, "doc_stride": 128, "max_query_length": 64,
                "max_answer_length": 50}
    for k, v in defaults.items():
        if hasattr(args, k) and getattr(args, k) is None:
            setattr(args, k, meta.get(k, v))
    task = make_task(task_name, args, enc, meta)
    report = {"task": task_name, "argv": sys.argv[1:] if argv is None else list(argv), "device": str(device)}

    # ---------------------------------------------------------------- data
    train_ex = dev = None
    if args.train_path:
        train_ex = task.read(args.train_path, labeled=True, train=True)
        train_feats = task.encode(train_ex, train=True)
        if args.dev_path:
            dev_ex = task.read(args.dev_path, labeled=True)
            dev = (dev_ex, task.encode(dev_ex))
        log_counts = f"train {len(train_ex)} examples" + (f", dev {len(dev[0])}" if dev else "")
        core.log(log_counts)

    # ---------------------------------------------------------------- model
    if args.load_model_path:
        config_path = args.config_path or _beside(args.load_model_path, "_config.json")
        config, _, _ = core.load_backbone(None, config_path, len(tokenizer.vocab))
        if config.max_seq_length < args.seq_length:
            raise ConfigError(f"--seq_length {args.seq_length} exceeds the model's max_seq_length {config.max_seq_length}")
        if task_name == "classification" and task.labels_num is None:
            raise ConfigError(f"{args.load_model_path}: no {os.path.splitext(args.load_model_path)[0]}_finetune.json "
                              "beside it; pass --labels_num")
        model = task.build_model(config, len(tokenizer.vocab))
        core.load_finetuned(model, args.load_model_path)
        core.log(f"loaded the fine-tuned model {args.load_model_path}")
    else:
        config, backbone, pooler = core.load_backbone(args.pretrained_model_path, args.config_path,
                                                      len(tokenizer.vocab))
        if config.max_seq_length < args.seq_length:
            raise ConfigError(f"--seq_length {args.seq_length} exceeds the model's max_seq_length {config.max_seq_length}")
        if task_name == "classification" and getattr(args, "pooling", None):
            config = config.replace(pooling=args.pooling)
        model = task.build_model(config, len(tokenizer.vocab), backbone=backbone)
        if pooler is not None and hasattr(model, "output_layer_1") and not getattr(args, "no_pooler_init", False):
            model.output_layer_1.load_state_dict(pooler)
            core.log("output_layer_1 starts from the pretrained pooler")
        core.log(f"model: {'pretrained ' + args.pretrained_model_path if backbone else 'random initialisation'} "
                 f"({config.layers_num} layers, hidden {config.hidden_size}, "
                 f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)")
    if args.dropout is not None:
        core.set_dropout(model, args.dropout)
    model.to(device)

    # ---------------------------------------------------------------- train
    if args.train_path:
        report["history"] = core.train(task, model, train_feats, args, device, dtype, dev=dev, meta=task.meta())
        report["train_examples"] = len(train_ex)
        if dev is not None and args.output_model_path and os.path.isfile(args.output_model_path):
            core.load_finetuned(model, args.output_model_path)
            model.to(device)
            best = max(report["history"], key=lambda r: r.get("dev", {}).get(task.main_metric, float("-inf")))
            core.log(f"best dev {task.main_metric} {best['dev'][task.main_metric]:.4f} at epoch {best['epoch']}; "
                     f"model saved to {args.output_model_path}")
            report["best_epoch"] = best["epoch"]

    # ---------------------------------------------------------------- test / predict
    if args.test_path:
        labeled = task.is_labeled(args.test_path)
        test_ex = task.read(args.test_path, labeled=labeled)
        test_feats = task.encode(test_ex)
        t0 = time.time()
        outputs, preds = core.evaluate(task, model, test_ex, test_feats, args, device, dtype, desc="test")
        has_gold = labeled and (task_name != "mrc" or all(ex["answers"] for ex in test_ex))
        if has_gold:
            m = task.evaluate(test_ex, preds)
            report["test"] = core._jsonable(m)
            core.log(f"test ({args.test_path}): {task.summary(m)}")
        if args.prediction_path:
            task.write(args.prediction_path, test_ex, test_feats, outputs, preds)
            core.log(f"predictions for {len(test_ex)} examples written to {args.prediction_path} "
                     f"({time.time() - t0:.1f}s)")
    report_path = args.report_path or (os.path.splitext(args.output_model_path)[0] + "_report.json"
                                       if args.train_path and args.output_model_path else None)
    if report_path:
        os.makedirs(os.path.dirname(os.path.abspath(report_path)) or ".", exist_ok=True)
        with open(report_path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
    return report


def _model_vocab(args):
    """vocab.txt in a pretrained model's directory (Hugging Face / Google releases) or beside its file."""
    for p in (args.pretrained_model_path, args.load_model_path):
        if not p:
            continue
        d = p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p))
        if os.path.isfile(os.path.join(d, "vocab.txt")):
            return os.path.join(d, "vocab.txt")
    return DEFAULT_VOCAB


def _beside(path, suffix):
    p = os.path.splitext(path)[0] + suffix
    return p if os.path.isfile(p) else None


def main(task_name, argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(task_name, argv)
    except UerLikeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
