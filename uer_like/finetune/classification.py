"""Sentence and sentence-pair classification (finetune/run_classifier.py), the base of regression.py and
multi_label.py, which share its format, encoding and head.

Data: a tsv whose header names the columns `label`, `text_a` and optionally `text_b` (and `logits` for
--soft_targets); integer labels 0..n-1, n = --labels_num or the largest training label + 1.
Input: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` (segments 1 and 2; pairs truncated longest first).

Head (parameter names, a file-format contract; UER-py's run_classifier.py uses the same):
  output_layer_1.{weight,bias}  [hidden, hidden]   dense + tanh on the pooled encoder output (--pooling;
                                                   [CLS] by default), i.e. BERT's pooler; it starts from the
                                                   pretrained pooler unless --no_pooler_init
  output_layer_2.{weight,bias}  [outputs, hidden]  after dropout: the logits (outputs = labels_num here,
                                                   1 for regression, labels_num for multi-label)
Loss: cross-entropy; with --soft_targets, soft_alpha x MSE(logits, teacher logits) + (1 - soft_alpha) x
cross-entropy, as UER-py. Metric: accuracy (per-class P/R/F1 and macro-F1 also reported).
Predictions: a tsv with header `label` (+ `logits`, `prob` columns with --output_logits / --output_prob).
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from ..flags import COUNT, FRACTION, Int
from ..targets.cls import pool
from . import data as D
from . import distill
from . import windows as W
from .data import IGNORE_INDEX
from .models import TaskModel, init_linear
from .tasks import TASKS, Task, log, logger


# ====================================================================== head
class Classifier(TaskModel):
    task = "classification"

    def __init__(self, config, vocab_size, labels_num, backbone=None):
        super().__init__(config, vocab_size, backbone)
        self.labels_num = labels_num
        self.pooling = config.pooling
        self.output_layer_1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.output_layer_2 = nn.Linear(config.hidden_size, labels_num)
        init_linear(self.output_layer_1)
        init_linear(self.output_layer_2)

    def forward(self, src, seg, **inputs):
        """-> logits [batch, labels_num]. inputs: the encoder's own fields (the zen encoder's n-grams)."""
        hidden = self.encode(src, seg, first_only=self.pooling == "first", **inputs)
        pooled = torch.tanh(self.output_layer_1(pool(hidden, seg, self.pooling)))
        return self.output_layer_2(self.dropout(pooled))

    @staticmethod
    def loss(logits, labels):
        return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)


# ====================================================================== data
def read_rows(path, labeled=True, soft_targets=False):
    """-> (line, {column: value}) rows of a classification-style tsv, the needed columns checked."""
    required = ("text_a",) + (("label",) if labeled else ()) + (("logits",) if soft_targets and labeled else ())
    rows = D.read_tsv(path, required=required, optional=("text_b",))
    return rows


def parse_logits(raw, where, n=None):
    try:
        vals = [float(x) for x in raw.split()]
    except ValueError:
        raise DataError(f"{where}: logits {raw!r} are not space-separated numbers") from None
    if n is not None and len(vals) != n:
        raise DataError(f"{where}: {len(vals)} logits but {n} classes")
    return vals


def read_classification(path, labeled=True, soft_targets=False):
    """-> examples {text_a, text_b (or None), label (int or None), where[, logits]}."""
    examples = []
    for lineno, row in read_rows(path, labeled, soft_targets):
        where = f"{path}:{lineno}"
        label = None
        if labeled:
            raw = row["label"].strip()
            try:
                label = int(raw)
            except ValueError:
                raise DataError(f"{where}: label {raw!r} is not an integer class id (labels are 0..n-1)") from None
            if label < 0:
                raise DataError(f"{where}: label {label} is negative (labels are 0..n-1)")
        ex = {"text_a": row["text_a"], "text_b": row.get("text_b"), "label": label, "where": where}
        if soft_targets and labeled:
            ex["logits"] = parse_logits(row["logits"], where)
        examples.append(ex)
    return examples


def check_labels(examples, labels_num, path):
    for ex in examples:
        if ex["label"] is not None and ex["label"] >= labels_num:
            raise DataError(f"{ex['where']}: label {ex['label']} is outside the {labels_num} classes 0..{labels_num - 1} "
                            f"(learned from the training set or --labels_num)")


def encode_pair(enc, text_a, text_b, seq_length):
    """-> (src, seg) of `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` (XLNet: `a <sep> b <sep> <cls>`; RoBERTa:
    `<s> a </s></s> b </s>`), pairs truncated longest first."""
    D.check_seq_length(seq_length, "single" if text_b is None else "pair", enc.pair_specials - 3)
    a = enc.ids(text_a)
    if text_b is not None:
        a, b = D.truncate_pair(a, enc.ids(text_b), seq_length - enc.pair_specials)
    else:
        a, b = a[:seq_length - 2], None
    src, seg, _, _ = enc.pack(a, b)
    return src, seg


def encode_classification(examples, enc, seq_length):
    feats = []
    for i, ex in enumerate(examples):
        src, seg = encode_pair(enc, ex["text_a"], ex.get("text_b"), seq_length)
        feats.append({"src": src, "seg": seg, "label": ex["label"] if ex["label"] is not None else IGNORE_INDEX,
                      "example": i})
        if "logits" in ex:
            feats[-1]["logits"] = ex["logits"]
    return feats


# ====================================================================== metric
def classification_metrics(gold, pred, labels_num=None):
    """gold, pred: sequences of int labels -> {"acc", "macro_f1", "per_class": {label: {p, r, f1, support}}}."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    n = len(gold)
    correct = sum(int(g == p) for g, p in zip(gold, pred))
    labels = sorted(set(gold) | set(pred) | (set(range(labels_num)) if labels_num else set()))
    per_class = {}
    for c in labels:
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        n_pred = sum(1 for p in pred if p == c)
        n_gold = sum(1 for g in gold if g == c)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_gold if n_gold else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[c] = {"precision": prec, "recall": rec, "f1": f1, "support": n_gold}
    macro = sum(v["f1"] for v in per_class.values()) / len(per_class) if per_class else 0.0
    return {"acc": correct / n if n else 0.0, "correct": correct, "total": n, "macro_f1": macro,
            "per_class": per_class}


# ====================================================================== task
def add_labels_num_arg(g):
    g.add_argument("--labels_num", type=Int(min=2, max=1 << 20), default=None,
                   help="number of classes (default: the largest training label + 1)")


def infer_labels_num(path, label_lines):
    """labels_num from the training labels ({label: [line numbers]}): the largest + 1 (at least 2). Refused
    (DataError) when a class below it has no training example: a stray label (7 in a file of 0s and 1s) would
    make a model of classes nobody meant; the message names the labels above the first gap and their lines,
    and --labels_num N, which trains N classes on purpose."""
    n = max(2, max(label_lines) + 1) if label_lines else 2
    empty = [c for c in range(n) if c not in label_lines]
    if not empty:
        return n
    classes = f"class {empty[0]} has" if len(empty) == 1 else f"classes {_first(empty, 20)} have"
    above = sorted(c for c in label_lines if c > empty[0])
    lines = "; ".join(f"label {c} at line{'s' if len(label_lines[c]) > 1 else ''} {_first(label_lines[c], 3)}"
                      for c in above[:5]) + (" ..." if len(above) > 5 else "")
    raise DataError(f"{path}: {n} classes (0..{n - 1}, from the largest label) but {classes} no training example"
                    + (f" ({lines})" if lines else "") + ": a stray label? Fix the file, or pass "
                    f"--labels_num {n} to train {n} classes on purpose")


def resolve_pooling(config, flag=None, fine_tuned=False):
    """The config with the pooling a classifier uses: --pooling when given, else the config's; under a causal
    mask (GPT-2) the first token attends to itself only, so its vector is the same for every text: there the
    default is the last real token (as transformers' GPT2ForSequenceClassification) and --pooling first is
    refused. A fine-tuned model loaded back keeps the pooling it was trained with (a warning when it is first)."""
    if config.mask != "causal":
        return config.replace(pooling=flag) if flag else config
    if flag == "first":
        raise ConfigError("--pooling first on a model with a causal mask: its first token sees only itself, so "
                          "every text gets the same feature; use --pooling last (the default there), mean or max")
    if flag:
        return config.replace(pooling=flag)
    if config.pooling != "first":
        return config
    if fine_tuned:
        logger.warning("this causal-mask classifier was fine-tuned pooling the first token, which sees only itself: "
                       "its predictions do not depend on the text; fine-tune it again (the default is now last)")
        return config
    log("pooling: the last token (the model's mask is causal: its first token sees only itself)")
    return config.replace(pooling="last")


def _first(items, k):
    return ", ".join(map(str, items[:k])) + (" ..." if len(items) > k else "")


class SentenceTask(Task):
    """What classification, regression and multi-label share: the tsv format, the encoding, the head."""

    script = "run_classifier.py"
    feeds_encoder_inputs = True

    @staticmethod
    def add_args(g):
        g.add_argument("--pooling", choices=["first", "mean", "max", "last"], default=None,
                       help="how the encoder output is pooled before output_layer_1 (default: the config's, first; "
                            "last for a causal model, whose first token sees only itself)")
        g.add_argument("--no_pooler_init", action="store_true",
                       help="start output_layer_1 at random (as UER-py) instead of from the pretrained pooler")

    def __init__(self, args, encoder, meta=None):
        super().__init__(args, encoder, meta)
        self.labels_num = getattr(args, "labels_num", None) or self.saved.get("labels_num")
        # whether the model reads sentence pairs (a text_b column); None: not known (a model saved without it)
        self.text_pair = self.saved.get("text_pair")
        self.text_pair_from = f"{os.path.splitext(args.load_model_path)[0]}_finetune.json" \
            if getattr(args, "load_model_path", None) else "its task settings"

    def meta(self):
        return {**super().meta(), "labels_num": self.labels_num, "text_pair": self.text_pair}

    def read(self, path, labeled=True, train=False):
        """read_examples, and every file of a run read as the model reads: single sentences or pairs (a
        text_b column in one file only would be read otherwise than the model was trained)."""
        examples = self.read_examples(path, labeled, train)
        pair = examples[0]["text_b"] is not None
        if self.text_pair is not None and pair != self.text_pair:
            model = "sentence pairs" if self.text_pair else "single sentences"
            fix = "add the text_b column" if self.text_pair else "drop the text_b column (or fine-tune on pairs)"
            raise DataError(f"{path}: {'a' if pair else 'no'} text_b column, but the model reads {model} "
                            f"({self.text_pair_from}); {fix}")
        if train:
            self.text_pair, self.text_pair_from = pair, f"fine-tuned on {path}"
        return examples

    def read_examples(self, path, labeled=True, train=False):
        raise NotImplementedError

    def check_inference(self, model_path):
        if self.labels_num is None:
            raise ConfigError(f"{model_path}: no task settings (MODEL_finetune.json) beside it; pass --labels_num")

    def is_labeled(self, path):
        return "label" in D.read_tsv(path)[0][1]

    def outputs_num(self):
        return self.labels_num

    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        config = resolve_pooling(config, getattr(self.args, "pooling", None), fine_tuned=bool(getattr(self.args, "load_model_path", None)))
        model = Classifier(config, vocab_size, self.outputs_num(), backbone=backbone)
        model.task = self.name
        if pooler is not None and not getattr(self.args, "no_pooler_init", False):
            model.output_layer_1.load_state_dict(pooler)
            log("output_layer_1 starts from the pretrained pooler")
        return model

    def encode(self, examples, train=False):
        return encode_classification(examples, self.enc, self.args.seq_length)

    def collate(self, feats):
        left = self.enc.pad_left
        batch = {"src": D.pad([f["src"] for f in feats], self.enc.pad_id, left),
                 "seg": D.pad([f["seg"] for f in feats], 0, left),
                 "label": self.collate_labels(feats)}
        if "logits" in feats[0]:
            batch["soft"] = torch.tensor([f["logits"] for f in feats], dtype=torch.float)
        return self.add_extra_inputs(batch, [f["src"] for f in feats])

    def collate_labels(self, feats):
        return torch.tensor([f["label"] for f in feats], dtype=torch.long)

    def outputs(self, model, batch):
        return list(model(batch["src"], batch["seg"], **self.model_inputs(model, batch)).float().cpu())


@TASKS.register("classification")
class ClassificationTask(SentenceTask):
    name = "classification"
    description = "sentence or sentence-pair classification (tsv: label, text_a[, text_b])"
    main_metric = "acc"

    @staticmethod
    def add_args(g):
        add_labels_num_arg(g)
        SentenceTask.add_args(g)
        g.add_argument("--output_logits", action="store_true", help="add a logits column to the predictions")
        g.add_argument("--output_prob", action="store_true", help="add a prob column (softmax) to the predictions")
        g.add_argument("--soft_targets", action="store_true",
                       help="train on a teacher's logits too (a `logits` column: space-separated, one per class), "
                            "as UER-py's knowledge distillation")
        g.add_argument("--soft_alpha", type=FRACTION, default=0.5,
                       help="weight of the soft-target MSE loss (1 - soft_alpha weighs the cross-entropy)")
        distill.add_args(g)
        g.add_argument("--sliding_window", action="store_true", default=None,
                       help="long documents: classify overlapping windows of --seq_length tokens and pool their "
                            "logits (windows.py) instead of cutting the text at --seq_length; single texts only")
        g.add_argument("--doc_stride", type=COUNT, default=None,
                       help="with --sliding_window: tokens between window starts (default: half a window)")
        g.add_argument("--window_pooling", choices=W.POOLINGS, default=None,
                       help="with --sliding_window: how window logits make the document's (default mean)")

    def __init__(self, args, encoder, meta=None):
        super().__init__(args, encoder, meta)
        self.distiller = None  # distill.IntermediateDistiller with --teacher_model_path (built with the model)
        self.windowed = bool(getattr(args, "sliding_window", None) or self.saved.get("sliding_window"))
        if self.windowed:
            room = args.seq_length - 2
            args.doc_stride = getattr(args, "doc_stride", None) or self.saved.get("doc_stride") or max(1, room // 2)
            args.window_pooling = getattr(args, "window_pooling", None) or self.saved.get("window_pooling") or "mean"
        else:
            for flag in ("doc_stride", "window_pooling"):
                if getattr(args, flag, None) is not None:
                    raise ConfigError(f"--{flag} applies to --sliding_window only; add --sliding_window or drop it")

    def meta(self):
        m = super().meta()
        if self.windowed:
            m.update(sliding_window=True, doc_stride=self.args.doc_stride, window_pooling=self.args.window_pooling)
        return m

    def read_examples(self, path, labeled=True, train=False):
        soft = bool(getattr(self.args, "soft_targets", False)) and train
        examples = read_classification(path, labeled=labeled, soft_targets=soft)
        if train and self.labels_num is None:
            lines = {}
            for ex in examples:
                lines.setdefault(ex["label"], []).append(int(ex["where"].rsplit(":", 1)[1]))
            self.labels_num = infer_labels_num(path, lines)
        if labeled and self.labels_num is not None:
            check_labels(examples, self.labels_num, path)
        if soft:
            for ex in examples:
                if len(ex["logits"]) != self.labels_num:
                    raise DataError(f"{ex['where']}: {len(ex['logits'])} logits but {self.labels_num} classes")
        if self.windowed and examples[0]["text_b"] is not None:
            raise DataError(f"{path}: --sliding_window windows single texts, but the file has a text_b column; "
                            "drop the column, or fine-tune pairs without --sliding_window")
        return examples

    # ------------------------------------------------------------------ long documents (windows.py)
    def encode(self, examples, train=False):
        if not self.windowed:
            return super().encode(examples, train)
        feats = []
        for i, ex in enumerate(examples):
            srcs, segs = W.encode_windows(self.enc, ex["text_a"], self.args.seq_length, self.args.doc_stride)
            feats.append({"src": srcs, "seg": segs, "example": i,
                          "label": ex["label"] if ex["label"] is not None else IGNORE_INDEX})
            if "logits" in ex:
                feats[-1]["logits"] = ex["logits"]
        return feats

    def collate(self, feats):
        if not self.windowed:
            return super().collate(feats)
        batch = W.collate_windows(feats, self.enc.pad_id, self.enc.pad_left)
        batch["label"] = self.collate_labels(feats)
        if "logits" in feats[0]:
            batch["soft"] = torch.tensor([f["logits"] for f in feats], dtype=torch.float)
        return self.add_extra_inputs(batch, [s for f in feats for s in f["src"]])

    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        model = super().build_model(config, vocab_size, backbone, pooler)
        if getattr(self.args, "teacher_model_path", None):
            if not getattr(self.args, "train_path", None):
                raise ConfigError("--teacher_model_path distils while training; give --train_path (inference needs "
                                  "no teacher)")
            self.distiller = distill.build_distiller(self.args, vocab_size, model.config)
            self.distiller.attach(model)
            t = self.distiller.teacher.config
            log(f"distillation: teacher {self.args.teacher_model_path} ({t.layers_num} layers, hidden {t.hidden_size}); "
                f"layer pairs (student, teacher) {self.distiller.pairs}"
                + (f", projection {self.distiller.widths[0]} -> {self.distiller.widths[1]}" if self.distiller.projected else "")
                + "; weights " + ", ".join(f"{k} {v:g}" for k, v in self.distiller.weights.items()))
        return model

    def logits(self, model, batch):
        """The model's logits, one row per example (per document: its windows' logits pooled)."""
        logits = model(batch["src"], batch["seg"], **self.model_inputs(model, batch))
        if "doc" in batch:
            logits = W.pool_windows(logits.float(), batch["doc"], self.args.window_pooling)
        return logits

    def outputs(self, model, batch):
        return list(self.logits(model, batch).float().cpu())

    def loss(self, model, batch):
        if self.distiller is None:
            return self.task_loss(model, batch)
        with distill.recording(model.encoder, bool(self.distiller.weights["attention"])) as trace:
            task = self.task_loss(model, batch)
        return self.distiller.loss(task, model, trace, batch)[0]

    def task_loss(self, model, batch):
        """Cross-entropy; with soft targets, soft_alpha x MSE(logits, teacher logits) + (1 - soft_alpha) x it."""
        logits = self.logits(model, batch)
        ce = model.loss(logits, batch["label"])
        if "soft" in batch:
            a = self.args.soft_alpha
            return a * F.mse_loss(logits.float(), batch["soft"]) + (1 - a) * ce
        return ce

    def decode(self, examples, feats, outputs):
        return [int(o.argmax()) for o in outputs]

    def evaluate(self, examples, preds):
        return classification_metrics([ex["label"] for ex in examples], preds, self.labels_num)

    def summary(self, m):
        return f"acc {m['acc']:.4f} ({m['correct']}/{m['total']}), macro-F1 {m['macro_f1']:.4f}"

    def write(self, path, examples, feats, outputs, preds):
        logits_col = getattr(self.args, "output_logits", False)
        prob_col = getattr(self.args, "output_prob", False)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\t".join(["label"] + (["logits"] if logits_col else []) + (["prob"] if prob_col else [])) + "\n")
            for o, p in zip(outputs, preds):
                row = [str(p)]
                if logits_col:
                    row.append(" ".join(f"{x:.6f}" for x in o.tolist()))
                if prob_col:
                    row.append(" ".join(f"{x:.6f}" for x in torch.softmax(o, -1).tolist()))
                f.write("\t".join(row) + "\n")
