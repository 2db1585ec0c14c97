"""Multi-task classification (finetune/run_classifier_mt.py, as UER-py's): one encoder, one classification head
per dataset, trained on the batches of every dataset shuffled together.

Data: `--dataset_path_list DIR ...`, each directory holding train.tsv and, for all of them or none, dev.tsv, in
run_classifier.py's format (a header naming `label`, `text_a`, optional `text_b`; labels 0..n-1, n per dataset:
its largest training label + 1, or `--labels_num_list`). Dataset i is the i-th directory.

Head (parameter names, UER-py's: a model saved by UER-py's run_classifier_mt.py loads with --config_path and
--labels_num_list):
  output_layers_1.{i}.{weight,bias}  [hidden, hidden]   dataset i's dense + tanh on the pooled encoder output
                                                        (starts from the pretrained pooler unless --no_pooler_init)
  output_layers_2.{i}.{weight,bias}  [labels_i, hidden] dataset i's logits, after dropout
Routing: every row of a batch goes through its own dataset's head, and only the heads of the datasets in a batch
take part in its forward pass, so a batch of dataset B leaves head A without a gradient and the optimizer leaves
it untouched. Batches are bucketed by (dataset, length): nearly every batch holds one dataset, and the batches of
all datasets are shuffled together, as UER-py's.
Loss: cross-entropy of each row under its head, averaged over the batch. Metric: accuracy per dataset; the dev
epoch kept is the one with the best mean of the datasets' accuracies.

Inference (`--load_model_path` and `--test_path`, a tsv with `text_a`[, `text_b`]):
- `--dataset_id i`: the file is dataset i's; its head predicts it (a tsv `label`[, `logits`, `prob`], as
  run_classifier.py's) and, when it has a `label` column, it is evaluated;
- no `--dataset_id`: every head predicts every line, written as UER-py's run_classifier_mt_infer.py does:
  `label` = the heads' labels joined by `|` (`1|0|2`), and `logits` / `prob` the heads' vectors joined by `|`.

Hugging Face export: transformers has no multi-head sequence classifier; `split_heads`
(scripts/split_multi_task.py) writes dataset i's encoder + head as a run_classifier.py model (`output_layer_1/2`), which exports as ...ForSequenceClassification
(io/hf_tasks.py) and runs with run_classifier.py.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from ..flags import Int
from ..targets.cls import pool
from . import data as D
from .classification import (IGNORE_INDEX, SentenceTask, check_labels, classification_metrics,
                             encode_classification, infer_labels_num, read_classification, resolve_pooling)
from .models import TaskModel, init_linear
from .tasks import TASKS, Task, log

TRAIN_FILE, DEV_FILE = "train.tsv", "dev.tsv"
HEAD_SEP = "|"  # joins the heads' predictions of one line (UER-py's run_classifier_mt_infer.py)
ALL_HEADS = -1  # the dataset of a test line every head predicts


# ====================================================================== head
class MultiTaskClassifier(TaskModel):
    task = "multi_task_classification"

    def __init__(self, config, vocab_size, labels_num_list, backbone=None):
        super().__init__(config, vocab_size, backbone)
        self.labels_num_list = list(labels_num_list)
        self.pooling = config.pooling
        h = config.hidden_size
        self.output_layers_1 = nn.ModuleList([nn.Linear(h, h) for _ in self.labels_num_list])
        self.output_layers_2 = nn.ModuleList([nn.Linear(h, n) for n in self.labels_num_list])
        for layer in list(self.output_layers_1) + list(self.output_layers_2):
            init_linear(layer)

    def head(self, i, pooled):
        """Dataset i's logits [rows, labels_i] of pooled encoder outputs [rows, hidden]."""
        return self.output_layers_2[i](self.dropout(torch.tanh(self.output_layers_1[i](pooled))))

    def forward(self, src, seg, dataset, **inputs):
        """src, seg [batch, seq], dataset [batch] (each row's dataset) -> logits [batch, max labels_num]: row r
        holds its own head's logits, -inf in the columns beyond its dataset's labels. Only the heads of the
        datasets present run."""
        if bool((dataset < 0).any()) or bool((dataset >= len(self.labels_num_list)).any()):
            raise ValueError(f"dataset ids must be 0..{len(self.labels_num_list) - 1}, got {dataset.tolist()}")
        pooled = pool(self.encode(src, seg, first_only=self.pooling == "first", **inputs), seg, self.pooling)
        out = pooled.new_full((src.size(0), max(self.labels_num_list)), float("-inf"))
        for i in torch.unique(dataset).tolist():
            rows = (dataset == i).nonzero(as_tuple=True)[0]
            logits = self.head(i, pooled[rows])
            out = out.index_put((rows[:, None], torch.arange(logits.size(1), device=out.device)[None, :]),
                                logits.to(out.dtype))
        return out

    def all_heads(self, src, seg, **inputs):
        """-> [logits [batch, labels_i] of head i for each dataset i]."""
        pooled = pool(self.encode(src, seg, first_only=self.pooling == "first", **inputs), seg, self.pooling)
        return [self.head(i, pooled) for i in range(len(self.labels_num_list))]

    @staticmethod
    def loss(logits, labels):
        return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)


# ====================================================================== the dataset list
def dataset_files(dirs):
    """--dataset_path_list -> (train files, dev files or None), refused in one line when a directory or its
    train.tsv is missing, or when some directories have dev.tsv and others not."""
    if not dirs:
        raise ConfigError("--dataset_path_list: give at least one directory holding train.tsv (and dev.tsv)")
    for d in dirs:
        if not os.path.isdir(d):
            raise ConfigError(f"--dataset_path_list {d}: not a directory (each holds {TRAIN_FILE} and {DEV_FILE})")
        if not os.path.isfile(os.path.join(d, TRAIN_FILE)):
            raise ConfigError(f"--dataset_path_list {d}: no {TRAIN_FILE} in it")
    with_dev = [os.path.isfile(os.path.join(d, DEV_FILE)) for d in dirs]
    if any(with_dev) and not all(with_dev):
        lacking = [d for d, has in zip(dirs, with_dev) if not has]
        raise ConfigError(f"--dataset_path_list: {', '.join(lacking)} lack {DEV_FILE} which the others have: the dev "
                          "epoch is chosen on every dataset's dev set; add it, or remove the others'")
    train = [os.path.join(d, TRAIN_FILE) for d in dirs]
    return train, ([os.path.join(d, DEV_FILE) for d in dirs] if all(with_dev) else None)


def run_multi_task(args, argv=None):
    """The command of run_classifier_mt.py: --dataset_path_list becomes the run's training (and dev) files,
    then one run (cli.run_args)."""
    from .cli import run_args  # cli imports the task registry, which imports this module

    if args.dataset_path_list is not None:
        for flag in ("train_path", "dev_path"):
            if getattr(args, flag):
                raise ConfigError(f"--{flag}: run_classifier_mt.py reads every dataset's {TRAIN_FILE} and {DEV_FILE} "
                                  f"from --dataset_path_list; drop --{flag}")
        train, dev = dataset_files(args.dataset_path_list)
        if args.labels_num_list and len(args.labels_num_list) != len(train):
            raise ConfigError(f"--labels_num_list has {len(args.labels_num_list)} numbers for "
                              f"{len(train)} datasets in --dataset_path_list; give one per dataset")
        args.train_path = os.pathsep.join(train)
        args.dev_path = os.pathsep.join(dev) if dev else None
    elif args.train_path or args.dev_path:
        raise ConfigError("run_classifier_mt.py trains on --dataset_path_list (directories holding train.tsv and "
                          "dev.tsv), not --train_path / --dev_path")
    return run_args(MultiTaskClassificationTask.name, args, argv)


# ====================================================================== task
@TASKS.register("multi_task_classification")
class MultiTaskClassificationTask(Task):
    name = "multi_task_classification"
    script = "run_classifier_mt.py"
    description = "multi-task classification: one encoder, a head per dataset (--dataset_path_list of directories)"
    main_metric = "acc"
    feeds_encoder_inputs = True
    command = staticmethod(run_multi_task)

    @staticmethod
    def add_args(g):
        g.add_argument("--dataset_path_list", nargs="+", default=None, metavar="DIR",
                       help="the datasets, one directory each holding train.tsv and dev.tsv (run_classifier.py's "
                            "format); dataset i is the i-th")
        g.add_argument("--labels_num_list", nargs="+", type=Int(min=2, max=1 << 20), default=None, metavar="N",
                       help="the number of classes of each dataset (default: its largest training label + 1)")
        g.add_argument("--dataset_id", type=Int(min=0), default=None,
                       help="--test_path is this dataset's: evaluated (when labeled) and predicted by its head alone; "
                            "default: every head predicts every line (`label` = `l0|l1|...`, as UER-py)")
        SentenceTask.add_args(g)
        g.add_argument("--output_logits", action="store_true", help="add a logits column to the predictions")
        g.add_argument("--output_prob", action="store_true", help="add a prob column (softmax) to the predictions")

    def __init__(self, args, encoder, meta=None):
        super().__init__(args, encoder, meta)
        self.labels_num_list = list(getattr(args, "labels_num_list", None) or self.saved.get("labels_num_list") or [])
        self.text_pair_list = self.saved.get("text_pair_list")
        self.datasets = self.saved.get("datasets")

    def meta(self):
        return {**super().meta(), "labels_num_list": self.labels_num_list, "text_pair_list": self.text_pair_list,
                "datasets": self.datasets}

    def check_inference(self, model_path):
        if not self.labels_num_list:
            raise ConfigError(f"{model_path}: no task settings (MODEL_finetune.json) beside it; pass --labels_num_list")

    # ------------------------------------------------------------------ data
    def _files(self, path):
        """A run's training or dev files (cli joins --dataset_path_list's with os.pathsep) or [path]."""
        if self.args.dataset_path_list is not None and path in (self.args.train_path, self.args.dev_path):
            return path.split(os.pathsep)
        return [path]

    def is_labeled(self, path):
        return self.args.dataset_id is not None and "label" in D.read_tsv(path)[0][1]

    def read(self, path, labeled=True, train=False):
        files = self._files(path)
        if train:
            self.datasets = [os.path.basename(os.path.dirname(os.path.abspath(f))) for f in files]
            self.text_pair_list = [None] * len(files)
            if not self.labels_num_list:
                self.labels_num_list = [None] * len(files)
        elif path != self.args.dev_path:  # --test_path: one file, dataset --dataset_id or every head's
            return self._read_test(path, labeled)
        if len(files) != len(self.labels_num_list):
            raise ConfigError(f"{path}: {len(files)} datasets but the model has {len(self.labels_num_list)} heads")
        examples = []
        for i, f in enumerate(files):
            exs = read_classification(f, labeled=True)
            if train and self.labels_num_list[i] is None:
                lines = {}
                for ex in exs:
                    lines.setdefault(ex["label"], []).append(int(ex["where"].rsplit(":", 1)[1]))
                self.labels_num_list[i] = infer_labels_num(f, lines)
            check_labels(exs, self.labels_num_list[i], f)
            self._check_pair(exs, i, f, train)
            for ex in exs:
                ex["dataset"] = i
            examples += exs
        if train:
            log("datasets: " + ", ".join(f"{i} {name} ({n} classes{', pairs' if pair else ''})" for i, (name, n, pair)
                                         in enumerate(zip(self.datasets, self.labels_num_list, self.text_pair_list))))
        return examples

    def _check_pair(self, examples, i, path, train):
        pair = examples[0]["text_b"] is not None
        if train:
            self.text_pair_list[i] = pair
        elif self.text_pair_list is not None and self.text_pair_list[i] is not None and pair != self.text_pair_list[i]:
            model = "sentence pairs" if self.text_pair_list[i] else "single sentences"
            raise DataError(f"{path}: {'a' if pair else 'no'} text_b column, but the head of dataset {i} reads {model}")

    def _read_test(self, path, labeled):
        k = len(self.labels_num_list)
        i = self.args.dataset_id
        if i is not None and i >= k:
            raise ConfigError(f"--dataset_id {i}: the model has {k} datasets (0..{k - 1})")
        examples = read_classification(path, labeled=labeled)
        if i is not None:
            if labeled:
                check_labels(examples, self.labels_num_list[i], path)
            self._check_pair(examples, i, path, train=False)
        else:
            pair = examples[0]["text_b"] is not None
            if self.text_pair_list and any(p is not None and p != pair for p in self.text_pair_list):
                raise DataError(f"{path}: {'a' if pair else 'no'} text_b column, but not every head reads "
                                f"{'pairs' if pair else 'single sentences'}; give --dataset_id to predict with one head")
        for ex in examples:
            ex["dataset"] = ALL_HEADS if i is None else i
        return examples

    def encode(self, examples, train=False):
        feats = encode_classification(examples, self.enc, self.args.seq_length)
        for f, ex in zip(feats, examples):
            f["dataset"] = ex["dataset"]
        return feats

    @staticmethod
    def length(feat):
        """(dataset, length) as one key: bucketing keeps a dataset's examples together."""
        return feat["dataset"] * (1 << 24) + len(feat["src"])

    def collate(self, feats):
        left = self.enc.pad_left
        batch = {"src": D.pad([f["src"] for f in feats], self.enc.pad_id, left),
                 "seg": D.pad([f["seg"] for f in feats], 0, left),
                 "label": torch.tensor([f["label"] for f in feats], dtype=torch.long),
                 "dataset": torch.tensor([f["dataset"] for f in feats], dtype=torch.long)}
        return self.add_extra_inputs(batch, [f["src"] for f in feats])

    # ------------------------------------------------------------------ model
    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        config = resolve_pooling(config, getattr(self.args, "pooling", None),
                                 fine_tuned=bool(getattr(self.args, "load_model_path", None)))
        model = MultiTaskClassifier(config, vocab_size, self.labels_num_list, backbone=backbone)
        if pooler is not None and not getattr(self.args, "no_pooler_init", False):
            for layer in model.output_layers_1:
                layer.load_state_dict(pooler)
            log("every output_layers_1 starts from the pretrained pooler")
        return model

    def loss(self, model, batch):
        logits = model(batch["src"], batch["seg"], batch["dataset"], **self.model_inputs(model, batch))
        return MultiTaskClassifier.loss(logits, batch["label"])

    def outputs(self, model, batch):
        """One output per row: its head's logits [labels_i], or (dataset ALL_HEADS) a tuple of every head's."""
        inputs = self.model_inputs(model, batch)
        dataset = batch["dataset"]
        if (dataset == ALL_HEADS).all():
            heads = [h.float().cpu() for h in model.all_heads(batch["src"], batch["seg"], **inputs)]
            return [tuple(h[r] for h in heads) for r in range(dataset.size(0))]
        logits = model(batch["src"], batch["seg"], dataset, **inputs).float().cpu()
        return [logits[r, :self.labels_num_list[d]] for r, d in enumerate(dataset.tolist())]

    # ------------------------------------------------------------------ results
    def decode(self, examples, feats, outputs):
        return [tuple(int(h.argmax()) for h in o) if isinstance(o, tuple) else int(o.argmax()) for o in outputs]

    def has_gold(self, examples):
        return all(ex["label"] is not None and ex["dataset"] != ALL_HEADS for ex in examples)

    def evaluate(self, examples, preds):
        """-> {"acc": the mean of the datasets' accuracies, "datasets": {i: classification_metrics}}."""
        per = {}
        for ex, p in zip(examples, preds):
            gold, pred = per.setdefault(ex["dataset"], ([], []))
            gold.append(ex["label"])
            pred.append(p)
        datasets = {i: classification_metrics(g, p, self.labels_num_list[i]) for i, (g, p) in sorted(per.items())}
        accs = [m["acc"] for m in datasets.values()]
        return {"acc": sum(accs) / len(accs), "datasets": datasets}

    def summary(self, m):
        names = self.datasets or []
        parts = [" ".join([str(i)] + names[i:i + 1] + [f"{d['acc']:.4f} ({d['correct']}/{d['total']})"])
                 for i, d in m["datasets"].items()]
        return f"acc {m['acc']:.4f}" + (f" (mean of {len(parts)})" if len(parts) > 1 else "") + " | " + ", ".join(parts)

    def write(self, path, examples, feats, outputs, preds):
        logits_col = getattr(self.args, "output_logits", False)
        prob_col = getattr(self.args, "output_prob", False)

        def vec(t):
            return " ".join(f"{x:.6f}" for x in t.tolist())

        with open(path, "w", encoding="utf-8") as f:
            f.write("\t".join(["label"] + (["logits"] if logits_col else []) + (["prob"] if prob_col else [])) + "\n")
            for o, p in zip(outputs, preds):
                heads = o if isinstance(o, tuple) else (o,)
                labels = p if isinstance(p, tuple) else (p,)
                row = [HEAD_SEP.join(map(str, labels))]
                if logits_col:
                    row.append(HEAD_SEP.join(vec(h) for h in heads))
                if prob_col:
                    row.append(HEAD_SEP.join(vec(torch.softmax(h, -1)) for h in heads))
                f.write("\t".join(row) + "\n")


# ====================================================================== export
def split_heads(path, out_path, dataset_id):
    """Write dataset `dataset_id`'s encoder + head of the multi-task model at `path` as a run_classifier.py
    model at out_path (its head renamed output_layer_1/2, with its _config.json and _finetune.json): it runs
    with run_classifier.py and exports to Hugging Face as ...ForSequenceClassification."""
    import json

    from ..config import load_config
    from ..errors import CheckpointError
    from ..io.checkpoint import load_state_dict_file, save_model
    from ..io.hf_tasks import meta_path, read_meta
    from ..io.uer import from_uer_state_dict
    from ..outputs import atomic_write
    from .classification import Classifier

    meta = read_meta(path) or {}
    if meta.get("task") != MultiTaskClassificationTask.name:
        raise ConfigError(f"{path}: not a multi-task classification model (its task settings name "
                          f"{meta.get('task')!r})")
    k = len(meta["labels_num_list"])
    if not 0 <= dataset_id < k:
        raise ConfigError(f"dataset {dataset_id}: the model {path} has {k} datasets (0..{k - 1})")
    state = from_uer_state_dict(load_state_dict_file(path))
    config = load_config(os.path.splitext(path)[0] + "_config.json")
    out = {}
    for key, t in state.items():
        if key.startswith("output_layers_"):
            layer, i, rest = key.split(".", 2)
            if int(i) == dataset_id:
                out[f"output_layer_{layer[-1]}.{rest}"] = t
        else:
            out[key] = t
    rows = out["embedding.word.embedding.weight"].shape[0] if "embedding.word.embedding.weight" in out else config.vocab_size
    model = Classifier(config, rows, meta["labels_num_list"][dataset_id])
    model.load_state_dict(out, strict=True)
    pair = (meta.get("text_pair_list") or [None] * k)[dataset_id]
    save_model(model, out_path, format="safetensors" if out_path.lower().endswith(".safetensors") else "uer")
    text = json.dumps({"task": "classification", "seq_length": meta.get("seq_length"),
                       "labels_num": meta["labels_num_list"][dataset_id], "text_pair": pair}, indent=2)
    atomic_write(meta_path(out_path), lambda f: f.write(text.encode("utf-8")), error=CheckpointError,
                 what="task settings")
    return out_path

