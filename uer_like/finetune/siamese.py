"""Sentence-pair classification with a siamese (two-tower) network (finetune/run_classifier_siamese.py), as
UER-py's run_classifier_siamese.py: each sentence is encoded alone and pooled (--pooling) into u and v, and
the classifier reads [u, v, |u - v|, u * v] (UER-py's four features; Sentence-BERT's classifier uses the
first three). The two towers share one encoder here (Sentence-BERT's design); UER-py trains two copies
(embedding_0/encoder_0, embedding_1/encoder_1) started from the same weights, so its siamese checkpoints
do not load here.

Data: a tsv with a header naming `label`, `text_a`, `text_b`; integer labels 0..n-1 (n = --labels_num or the
largest training label + 1). Input: each sentence `[CLS] s [SEP]`, segment 1 (as UER-py).
Head (parameter names): output_layer.{weight,bias}  [labels_num, 4 x hidden]: the logits.
Loss: cross-entropy. Metric: accuracy (macro-F1 also reported).
Predictions: a tsv with header `label` (+ `prob` with --output_prob).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from . import data as D
from .classification import add_labels_num_arg, check_labels, classification_metrics, infer_labels_num
from .models import init_linear
from .simcse import SentenceEncoder, add_pooling_arg, check_pooling, encode_sentence, read_pairs
from .tasks import TASKS, Task


class SiameseClassifier(SentenceEncoder):
    task = "siamese"

    def __init__(self, config, vocab_size, labels_num, pooling="first", backbone=None):
        super().__init__(config, vocab_size, pooling, backbone)
        self.output_layer = nn.Linear(4 * config.hidden_size, labels_num)
        init_linear(self.output_layer)

    def forward(self, src, seg):
        """src, seg [2 x batch, seq]: the first sentences, then the second -> logits [batch, labels_num]."""
        u, v = self.embed(src, seg).chunk(2)
        return self.output_layer(torch.cat([u, v, (u - v).abs(), u * v], dim=-1))


@TASKS.register("siamese")
class SiameseTask(Task):
    name = "siamese"
    script = "run_classifier_siamese.py"
    description = "sentence-pair classification with a siamese encoder (tsv: label, text_a, text_b)"
    main_metric = "acc"

    @staticmethod
    def add_args(g):
        add_labels_num_arg(g)
        add_pooling_arg(g, "default: the fine-tuned model's, else first, i.e. [CLS], as UER-py")
        g.add_argument("--output_prob", action="store_true", help="add a prob column (softmax) to the predictions")

    def __init__(self, args, encoder, meta=None):
        super().__init__(args, encoder, meta)
        self.labels_num = getattr(args, "labels_num", None) or self.saved.get("labels_num")
        self.pooling = getattr(args, "pooling", None) or self.saved.get("pooling") or "first"

    def meta(self):
        return {**super().meta(), "labels_num": self.labels_num, "pooling": self.pooling}

    def check_inference(self, model_path):
        if self.labels_num is None:
            raise ConfigError(f"{model_path}: no task settings (MODEL_finetune.json) beside it; pass --labels_num")

    def is_labeled(self, path):
        return "label" in D.read_tsv(path)[0][1]

    def read(self, path, labeled=True, train=False):
        examples = read_pairs(path, labeled, score=False)
        for ex in examples:
            if labeled and ex["label"] < 0:
                raise DataError(f"{ex['where']}: label {ex['label']} is negative (labels are 0..n-1)")
        if train and self.labels_num is None:
            lines = {}
            for ex in examples:
                lines.setdefault(ex["label"], []).append(int(ex["where"].rsplit(":", 1)[1]))
            self.labels_num = infer_labels_num(path, lines)
        if labeled:
            check_labels(examples, self.labels_num, path)
        return examples

    def encode(self, examples, train=False):
        n = self.args.seq_length
        feats = []
        for i, ex in enumerate(examples):
            src, seg = encode_sentence(self.enc, ex["text_a"], n)
            src_b, seg_b = encode_sentence(self.enc, ex["text_b"], n)
            feats.append({"src": src, "seg": seg, "src_b": src_b, "seg_b": seg_b, "example": i,
                          "label": ex["label"] if ex["label"] is not None else D.IGNORE_INDEX})
        return feats

    @staticmethod
    def length(feat):
        return max(len(feat["src"]), len(feat["src_b"]))

    def collate(self, feats):
        src = [f["src"] for f in feats] + [f["src_b"] for f in feats]
        seg = [f["seg"] for f in feats] + [f["seg_b"] for f in feats]
        return {"src": D.pad(src, self.enc.pad_id), "seg": D.pad(seg, 0),
                "label": torch.tensor([f["label"] for f in feats], dtype=torch.long)}

    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        check_pooling(config, self.pooling)
        model = SiameseClassifier(config, vocab_size, self.labels_num, self.pooling, backbone=backbone)
        model.task = self.name
        return model

    def loss(self, model, batch):
        return F.cross_entropy(model(batch["src"], batch["seg"]).float(), batch["label"], ignore_index=D.IGNORE_INDEX)

    def outputs(self, model, batch):
        return list(model(batch["src"], batch["seg"]).float().cpu())

    def decode(self, examples, feats, outputs):
        return [int(o.argmax()) for o in outputs]

    def evaluate(self, examples, preds):
        return classification_metrics([ex["label"] for ex in examples], preds, self.labels_num)

    def summary(self, m):
        return f"acc {m['acc']:.4f} ({m['correct']}/{m['total']}), macro-F1 {m['macro_f1']:.4f}"

    def write(self, path, examples, feats, outputs, preds):
        prob = getattr(self.args, "output_prob", False)
        with open(path, "w", encoding="utf-8") as f:
            f.write("label" + ("\tprob" if prob else "") + "\n")
            for o, p in zip(outputs, preds):
                f.write(str(p) + ("\t" + " ".join(f"{x:.6f}" for x in torch.softmax(o, -1).tolist()) if prob else "")
                        + "\n")
