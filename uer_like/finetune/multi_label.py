"""Multi-label classification (finetune/run_classifier.py --task multi_label): any number of the
labels_num classes per example.

Data: classification's tsv with a comma-separated `label` column of class ids (`0,3`; empty for none),
ids 0..n-1, n = --labels_num or the largest training id + 1, as UER-py's run_classifier_multi_label.py.
Head: classification's (output_layer_1, output_layer_2 with labels_num outputs), one sigmoid per label.
Loss: binary cross-entropy per label. A label is predicted when its probability exceeds 0.5.
Metric: micro-F1 selects the best epoch (micro precision/recall, macro-F1 over the labels that occur in the
gold or predicted sets, and the exact-match ratio are reported too).
Predictions: a tsv with header `label`, the predicted ids comma-separated (+ `prob` with --output_prob).
"""
import torch
import torch.nn.functional as F

from ..errors import DataError
from .classification import SentenceTask, add_labels_num_arg, encode_classification, infer_labels_num, read_rows
from .tasks import TASKS


def parse_label_set(raw, where):
    labels = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            c = int(part)
        except ValueError:
            raise DataError(f"{where}: label {part!r} is not an integer class id (multi-label labels are "
                            "comma-separated ids 0..n-1)") from None
        if c < 0:
            raise DataError(f"{where}: label {c} is negative (labels are 0..n-1)")
        labels.append(c)
    return sorted(set(labels))


def read_multi_label(path, labeled=True):
    examples = []
    for lineno, row in read_rows(path, labeled):
        where = f"{path}:{lineno}"
        labels = parse_label_set(row["label"], where) if labeled else None
        examples.append({"text_a": row["text_a"], "text_b": row.get("text_b"), "label": labels, "where": where})
    return examples


def multi_label_metrics(gold, pred):
    """gold, pred: sequences of label sets -> micro P/R/F1, macro-F1 (over the labels in gold or pred) and the
    exact-match ratio."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold label sets but {len(pred)} predictions")
    tp, n_pred, n_gold = {}, {}, {}
    exact = 0
    for g, p in zip(gold, pred):
        g, p = set(g), set(p)
        exact += int(g == p)
        for c in g & p:
            tp[c] = tp.get(c, 0) + 1
        for c in p:
            n_pred[c] = n_pred.get(c, 0) + 1
        for c in g:
            n_gold[c] = n_gold.get(c, 0) + 1

    def prf(t, np_, ng):
        prec = t / np_ if np_ else 0.0
        rec = t / ng if ng else 0.0
        return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)

    mp, mr, mf = prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    labels = sorted(set(n_pred) | set(n_gold))
    per_label = {}
    for c in labels:
        p_, r_, f_ = prf(tp.get(c, 0), n_pred.get(c, 0), n_gold.get(c, 0))
        per_label[c] = {"precision": p_, "recall": r_, "f1": f_, "support": n_gold.get(c, 0)}
    macro = sum(v["f1"] for v in per_label.values()) / len(per_label) if per_label else 0.0
    n = len(gold)
    return {"micro_precision": mp, "micro_recall": mr, "micro_f1": mf, "macro_f1": macro,
            "exact_match": exact / n if n else 0.0, "total": n, "per_label": per_label}


@TASKS.register("multi_label")
class MultiLabelTask(SentenceTask):
    name = "multi_label"
    description = "multi-label classification (tsv: comma-separated label ids, text_a[, text_b])"
    main_metric = "micro_f1"

    @staticmethod
    def add_args(g):
        add_labels_num_arg(g)
        SentenceTask.add_args(g)
        g.add_argument("--output_prob", action="store_true", help="add a prob column (one sigmoid per label)")

    def read_examples(self, path, labeled=True, train=False):
        examples = read_multi_label(path, labeled)
        if train and self.labels_num is None:
            lines = {}
            for ex in examples:
                for c in ex["label"]:
                    lines.setdefault(c, []).append(int(ex["where"].rsplit(":", 1)[1]))
            self.labels_num = infer_labels_num(path, lines)
        if labeled and self.labels_num is not None:
            for ex in examples:
                bad = [c for c in ex["label"] if c >= self.labels_num]
                if bad:
                    raise DataError(f"{ex['where']}: label {bad[0]} is not one of the {self.labels_num} classes "
                                    f"0..{self.labels_num - 1} (learned from the training set or --labels_num)")
        return examples

    def encode(self, examples, train=False):
        return encode_classification(examples, self.enc, self.args.seq_length)

    def collate_labels(self, feats):
        y = torch.zeros(len(feats), self.labels_num)
        for i, f in enumerate(feats):
            if isinstance(f["label"], list):
                y[i, f["label"]] = 1.0
        return y

    def loss(self, model, batch):
        logits = model(batch["src"], batch["seg"], **self.model_inputs(model, batch))
        return F.binary_cross_entropy_with_logits(logits.float(), batch["label"])

    def decode(self, examples, feats, outputs):
        return [[int(c) for c in torch.nonzero(torch.sigmoid(o) > 0.5).view(-1).tolist()] for o in outputs]

    def evaluate(self, examples, preds):
        return multi_label_metrics([ex["label"] for ex in examples], preds)

    def summary(self, m):
        return (f"micro-F1 {m['micro_f1']:.4f} (P {m['micro_precision']:.4f} R {m['micro_recall']:.4f}), "
                f"macro-F1 {m['macro_f1']:.4f}, exact match {m['exact_match']:.4f} ({m['total']} examples)")

    def write(self, path, examples, feats, outputs, preds):
        prob_col = getattr(self.args, "output_prob", False)
        with open(path, "w", encoding="utf-8") as f:
            f.write("label" + ("\tprob" if prob_col else "") + "\n")
            for o, p in zip(outputs, preds):
                row = ",".join(map(str, p))
                if prob_col:
                    row += "\t" + " ".join(f"{x:.6f}" for x in torch.sigmoid(o).tolist())
                f.write(row + "\n")
