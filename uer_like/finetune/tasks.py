"""The three tasks, each as reading + encoding + loss + decoding + metrics + prediction output, so that
one training loop (core.py) serves them all."""
import json

import torch

from ..errors import DataError
from . import data as D
from . import metrics as M
from .models import Classifier, SpanExtractor, Tagger


class Task:
    name = None
    main_metric = None  # the dev metric that selects the best checkpoint (higher is better)

    def __init__(self, args, encoder):
        self.args = args
        self.enc = encoder

    def meta(self):
        """What inference needs besides the weights and the model config."""
        return {"task": self.name}

    def to_device(self, batch, device):
        return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


# ====================================================================== classification
class ClassificationTask(Task):
    name = "classification"
    main_metric = "acc"

    def __init__(self, args, encoder, labels_num=None):
        super().__init__(args, encoder)
        self.labels_num = labels_num

    def meta(self):
        return {"task": self.name, "labels_num": self.labels_num, "seq_length": self.args.seq_length}

    def is_labeled(self, path):
        return "label" in D.read_tsv(path)[0][1]

    def read(self, path, labeled=True, train=False):
        examples = D.read_classification(path, labeled=labeled)
        if train and self.labels_num is None:
            self.labels_num = max(2, max(ex["label"] for ex in examples) + 1)
        if labeled and self.labels_num is not None:
            D.check_labels(examples, self.labels_num, path)
        return examples

    def build_model(self, config, vocab_size, backbone=None):
        return Classifier(config, vocab_size, self.labels_num, backbone=backbone)

    def encode(self, examples, train=False):
        return D.encode_classification(examples, self.enc, self.args.seq_length)

    def loss(self, model, batch):
        return model.loss(model(batch["src"], batch["seg"]), batch["label"])

    def outputs(self, model, batch):
        return list(model(batch["src"], batch["seg"]).float().cpu())

    def decode(self, examples, feats, outputs):
        return [int(o.argmax()) for o in outputs]

    def evaluate(self, examples, preds):
        return M.classification_metrics([ex["label"] for ex in examples], preds, self.labels_num)

    @staticmethod
    def summary(m):
        return f"acc {m['acc']:.4f} ({m['correct']}/{m['total']}), macro-F1 {m['macro_f1']:.4f}"

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            cols = ["label"] + (["logits"] if self.args.output_logits else []) + (["prob"] if self.args.output_prob else [])
            f.write("\t".join(cols) + "\n")
            for o, p in zip(outputs, preds):
                row = [str(p)]
                if self.args.output_logits:
                    row.append(" ".join(f"{x:.6f}" for x in o.tolist()))
                if self.args.output_prob:
                    row.append(" ".join(f"{x:.6f}" for x in torch.softmax(o, -1).tolist()))
                f.write("\t".join(row) + "\n")


# ====================================================================== tagging (NER)
class TaggingTask(Task):
    name = "tagging"
    main_metric = "f1"

    def __init__(self, args, encoder, label2id, use_crf=False):
        super().__init__(args, encoder)
        self.label2id = dict(label2id)
        self.id2label = {i: t for t, i in self.label2id.items()}
        self.use_crf = use_crf

    def meta(self):
        return {"task": self.name, "label2id": self.label2id, "crf": self.use_crf, "seq_length": self.args.seq_length}

    def is_labeled(self, path):
        return "label" in D.read_tsv(path)[0][1]

    def read(self, path, labeled=True, train=False):
        return D.read_tagging(path, self.label2id, labeled=labeled)

    def build_model(self, config, vocab_size, backbone=None):
        return Tagger(config, vocab_size, len(self.label2id), use_crf=self.use_crf, backbone=backbone)

    def encode(self, examples, train=False):
        return D.encode_tagging(examples, self.enc, self.args.seq_length, self.label2id)

    def loss(self, model, batch):
        return model.loss(model(batch["src"], batch["seg"]), batch["word_pos"], batch["word_mask"], batch["labels"])

    def outputs(self, model, batch):
        logits = model(batch["src"], batch["seg"])
        return model.decode(logits, batch["word_pos"], batch["word_mask"])

    def decode(self, examples, feats, outputs):
        preds = [[] for _ in examples]
        for f, o in sorted(zip(feats, outputs), key=lambda x: (x[0]["example"], x[0]["offset"])):
            preds[f["example"]].extend(self.id2label[i] for i in o)
        return preds

    def evaluate(self, examples, preds):
        return M.entity_metrics([ex["tags"] for ex in examples], preds)

    @staticmethod
    def summary(m):
        return (f"entity P {m['precision']:.4f} R {m['recall']:.4f} F1 {m['f1']:.4f} "
                f"({m['correct_entities']} correct, {m['pred_entities']} predicted, {m['gold_entities']} gold)")

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            f.write("pred\n")
            for p in preds:
                f.write(" ".join(p) + "\n")


# ====================================================================== span extraction (CMRC)
class MrcTask(Task):
    name = "mrc"
    main_metric = "avg"

    def meta(self):
        return {"task": self.name, "seq_length": self.args.seq_length, "doc_stride": self.args.doc_stride, "max_query_length": self.args.max_query_length,
                "max_answer_length": self.args.max_answer_length}

    def is_labeled(self, path):
        return True  # answers present or not is checked per question

    def read(self, path, labeled=True, train=False):
        try:
            return D.read_mrc(path, labeled=labeled, need_positions=train)
        except DataError as e:
            if not labeled or train or "no 'answers'" not in str(e):
                raise
            return D.read_mrc(path, labeled=False)

    def build_model(self, config, vocab_size, backbone=None):
        return SpanExtractor(config, vocab_size, backbone=backbone)

    def encode(self, examples, train=False):
        return D.encode_mrc(examples, self.enc, self.args.seq_length, self.args.doc_stride,
                            self.args.max_query_length, train=train)

    def loss(self, model, batch):
        s, e = model(batch["src"], batch["seg"])
        return model.loss(s, e, batch["start"], batch["end"])

    def outputs(self, model, batch):
        s, e = model(batch["src"], batch["seg"])
        lengths = (batch["seg"] > 0).sum(1).tolist()
        s, e = s.float().cpu(), e.float().cpu()
        return [(s[i, :n], e[i, :n]) for i, n in enumerate(lengths)]

    def decode(self, examples, feats, outputs, n_best=20):
        best = {}
        max_len = self.args.max_answer_length
        for f, (sl, el) in zip(feats, outputs):
            ex_i = f["example"]
            tm, mc = f["token_map"], f["max_context"]
            starts = sl.topk(min(n_best, sl.numel())).indices.tolist()
            ends = el.topk(min(n_best, el.numel())).indices.tolist()
            for s in starts:
                if s not in tm or not mc.get(s, False):
                    continue
                for e in ends:
                    if e not in tm or e < s or tm[e] - tm[s] + 1 > max_len:
                        continue
                    score = float(sl[s] + el[e])
                    if ex_i not in best or score > best[ex_i][0]:
                        best[ex_i] = (score, f["spans"][tm[s]][0], f["spans"][tm[e]][1], True)
        for f, (sl, el) in zip(feats, outputs):  # nothing valid among the n-best: search every pair
            ex_i = f["example"]
            if ex_i in best and best[ex_i][3]:
                continue
            tm, mc = f["token_map"], f["max_context"]
            for s in tm:
                if not mc[s]:
                    continue
                for e in range(s, min(s + max_len, len(sl))):
                    if e not in tm:
                        break
                    score = float(sl[s] + el[e])
                    if ex_i not in best or score > best[ex_i][0]:
                        best[ex_i] = (score, f["spans"][tm[s]][0], f["spans"][tm[e]][1], False)
        preds = []
        for i, ex in enumerate(examples):
            if i in best:
                preds.append(ex["context"][best[i][1]:best[i][2]])
            else:
                preds.append("")
        return preds

    def evaluate(self, examples, preds):
        gold = {ex["qid"]: ex["answers"] for ex in examples}
        return M.cmrc_metrics(gold, {ex["qid"]: p for ex, p in zip(examples, preds)})

    @staticmethod
    def summary(m):
        return f"EM {m['em']:.3f} F1 {m['f1']:.3f} (avg {m['avg']:.3f}, {m['total']} questions)"

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({ex["qid"]: p for ex, p in zip(examples, preds)}, f, ensure_ascii=False, indent=2)
            f.write("\n")
