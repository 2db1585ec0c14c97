"""Token tagging, e.g. named entities with BIO tags (finetune/run_ner.py), with an optional CRF.

Data: a tsv with header `text_a<TAB>label`: space-separated tokens (characters for Chinese) and as many
space-separated tags; --label2id_path maps tag names to ids (a JSON object {"O": 0, "B-PER": 1, ...}).
Input: `[CLS] tokens [SEP]`; each token is looked up in the vocabulary (lower-cased if needed, else
WordPiece-split with the tag on its first piece); sentences longer than the window are cut into consecutive
windows so every token gets a prediction.

Head (parameter names, a file-format contract; UER-py's run_ner.py uses the same):
  output_layer.{weight,bias}   [tags, hidden]   after dropout: per-token emissions
  crf.start_transitions [tags], crf.end_transitions [tags], crf.transitions [tags (from), tags (to)]
                                                 with --crf_target (crf.py)
Loss: cross-entropy per token, or the CRF's negative log-likelihood. Metric: entity-level F1 (an entity
counts only when type, start and end all match). Predictions: a tsv with header `pred`, one space-separated
tag per input token.
"""
import json
import os
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from . import data as D
from .crf import CRF
from .data import IGNORE_INDEX
from .models import TaskModel, init_linear
from .tasks import TASKS, Task


# ====================================================================== head
class Tagger(TaskModel):
    task = "tagging"

    def __init__(self, config, vocab_size, labels_num, use_crf=False, backbone=None):
        super().__init__(config, vocab_size, backbone)
        self.labels_num = labels_num
        self.output_layer = nn.Linear(config.hidden_size, labels_num)
        init_linear(self.output_layer)
        self.crf = CRF(labels_num) if use_crf else None

    def forward(self, src, seg):
        """-> per-token logits (emissions) [batch, seq, labels_num]."""
        return self.output_layer(self.dropout(self.encode(src, seg)))

    @staticmethod
    def gather(logits, word_pos):
        """Emissions at each token's first piece: [batch, words, labels_num]."""
        return logits.gather(1, word_pos.unsqueeze(-1).expand(-1, -1, logits.size(-1)))

    def loss(self, logits, word_pos, word_mask, labels):
        em = self.gather(logits, word_pos).float()
        if self.crf is not None:
            return self.crf(em, labels, word_mask)
        return F.cross_entropy(em.reshape(-1, em.size(-1)), labels.reshape(-1), ignore_index=IGNORE_INDEX)

    @torch.no_grad()
    def decode(self, logits, word_pos, word_mask):
        em = self.gather(logits, word_pos).float()
        if self.crf is not None:
            return self.crf.decode(em, word_mask)
        best = em.argmax(-1).tolist()
        lengths = word_mask.long().sum(1).tolist()
        return [b[:n] for b, n in zip(best, lengths)]


# ====================================================================== data
def load_label2id(path):
    if not path or not os.path.isfile(path):
        raise DataError(f"label2id file not found: {path} (pass --label2id_path)")
    try:
        with open(path, encoding="utf-8") as f:
            l2i = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(l2i, dict) or not l2i:
        raise DataError(f"{path}: label2id must be a non-empty JSON object {{\"tag\": id}}")
    ids = sorted(l2i.values())
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids) or ids != list(range(len(ids))):
        raise DataError(f"{path}: label2id ids must be the integers 0..{len(l2i) - 1}, each once; got {ids}")
    return l2i


def read_tagging(path, label2id, labeled=True):
    """-> examples {tokens, tags (list of str or None), where}."""
    rows = D.read_tsv(path, required=("text_a",) + (("label",) if labeled else ()))
    examples = []
    for lineno, row in rows:
        tokens = row["text_a"].split(" ")
        if not row["text_a"].strip():
            raise DataError(f"{path}:{lineno}: empty text_a")
        tags = None
        if labeled:
            tags = row["label"].split(" ")
            if len(tags) != len(tokens):
                raise DataError(f"{path}:{lineno}: {len(tokens)} space-separated tokens in text_a but {len(tags)} tags "
                                "in label (they must match one to one)")
            for j, t in enumerate(tags):
                if t not in label2id:
                    raise DataError(f"{path}:{lineno}: tag {t!r} (token {j + 1}) is not in label2id; "
                                    f"known tags: {', '.join(label2id)}")
        examples.append({"tokens": tokens, "tags": tags, "where": f"{path}:{lineno}"})
    return examples


def encode_tagging(examples, enc, seq_length, label2id):
    """Each token (unit) -> its pieces; the tag sits on the first piece. Sentences longer than the window
    are cut into consecutive windows, so every token gets a prediction."""
    D.check_seq_length(seq_length, "single")
    feats = []
    room = seq_length - 2
    for i, ex in enumerate(examples):
        units = [enc.unit_ids(u) for u in ex["tokens"]]
        start = 0
        while start < len(units):
            pieces, word_pos, labels = [], [], []
            j = start
            while j < len(units) and (len(pieces) + len(units[j]) <= room or j == start):
                word_pos.append(len(pieces))
                labels.append(label2id[ex["tags"][j]] if ex["tags"] is not None else IGNORE_INDEX)
                pieces.extend(units[j][:room])
                j += 1
            src, seg, first, _ = enc.pack(pieces)  # [CLS] pieces [SEP] (XLNet: pieces <sep> <cls>)
            feats.append({"src": src, "seg": seg, "word_pos": [first + p for p in word_pos], "labels": labels,
                          "example": i, "offset": start})
            start = j
    return feats


# ====================================================================== metric
def get_entities(tags):
    """BIO (or BIOES) tag sequence -> set of (type, start, end) spans, end inclusive.

    An entity starts at B-X (or S-X, or an I-X/E-X that does not continue an entity of type X, as
    conlleval does) and continues over I-X/E-X of the same type; E-X and S-X close it."""
    entities = []
    cur_type, cur_start = None, None

    def close(end):
        nonlocal cur_type, cur_start
        if cur_type is not None:
            entities.append((cur_type, cur_start, end))
        cur_type, cur_start = None, None

    for i, tag in enumerate(tags):
        if tag is None or tag == "O" or "-" not in tag:
            close(i - 1)
            continue
        prefix, typ = tag.split("-", 1)
        prefix = prefix.upper()
        if prefix == "B":
            close(i - 1)
            cur_type, cur_start = typ, i
        elif prefix == "S":
            close(i - 1)
            entities.append((typ, i, i))
        elif prefix in ("I", "M", "E"):
            if cur_type != typ:
                close(i - 1)
                cur_type, cur_start = typ, i
            if prefix == "E":
                close(i)
        else:
            close(i - 1)
    close(len(tags) - 1)
    return set(entities)


def entity_metrics(gold_seqs, pred_seqs):
    """Entity-level micro P/R/F1 over sentences of string tags: a predicted entity counts only when its
    type, start and end all match a gold entity (partial overlaps are wrong)."""
    if len(gold_seqs) != len(pred_seqs):
        raise ValueError(f"{len(gold_seqs)} gold sequences but {len(pred_seqs)} predicted")
    n_gold = n_pred = n_correct = 0
    by_type = {}
    for i, (g, p) in enumerate(zip(gold_seqs, pred_seqs)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        ge, pe = get_entities(g), get_entities(p)
        n_gold += len(ge)
        n_pred += len(pe)
        n_correct += len(ge & pe)
        for kind, ents in (("gold", ge), ("pred", pe), ("correct", ge & pe)):
            for e in ents:
                by_type.setdefault(e[0], Counter())[kind] += 1
    prec = n_correct / n_pred if n_pred else 0.0
    rec = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    per_type = {}
    for t, c in sorted(by_type.items()):
        tp, tr = (c["correct"] / c["pred"] if c["pred"] else 0.0), (c["correct"] / c["gold"] if c["gold"] else 0.0)
        per_type[t] = {"precision": tp, "recall": tr, "f1": 2 * tp * tr / (tp + tr) if tp + tr else 0.0,
                       "support": c["gold"]}
    return {"precision": prec, "recall": rec, "f1": f1, "gold_entities": n_gold, "pred_entities": n_pred,
            "correct_entities": n_correct, "per_type": per_type}


# ====================================================================== task
@TASKS.register("tagging")
class TaggingTask(Task):
    name = "tagging"
    script = "run_ner.py"
    description = "token tagging, e.g. NER with BIO tags (tsv: text_a, label), optional CRF"
    main_metric = "f1"

    @staticmethod
    def add_args(g):
        g.add_argument("--label2id_path", default=None, help="JSON {tag: id}; required for training")
        g.add_argument("--crf_target", "--crf", dest="crf", action="store_true", help="add a CRF layer")

    def __init__(self, args, encoder, meta=None):
        super().__init__(args, encoder, meta)
        if getattr(args, "label2id_path", None):
            l2i = load_label2id(args.label2id_path)
        elif self.saved.get("label2id"):
            l2i = self.saved["label2id"]
        else:
            raise ConfigError("--label2id_path is required (a JSON object {tag: id}, e.g. "
                              "{\"O\": 0, \"B-PER\": 1, \"I-PER\": 2})")
        self.label2id = dict(l2i)
        self.id2label = {i: t for t, i in self.label2id.items()}
        self.use_crf = bool(getattr(args, "crf", False) or self.saved.get("crf"))

    def meta(self):
        return {**super().meta(), "label2id": self.label2id, "crf": self.use_crf}

    def is_labeled(self, path):
        return "label" in D.read_tsv(path)[0][1]

    def read(self, path, labeled=True, train=False):
        return read_tagging(path, self.label2id, labeled=labeled)

    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        return Tagger(config, vocab_size, len(self.label2id), use_crf=self.use_crf, backbone=backbone)

    def encode(self, examples, train=False):
        return encode_tagging(examples, self.enc, self.args.seq_length, self.label2id)

    def collate(self, feats):
        return {"src": D.pad([f["src"] for f in feats], self.enc.pad_id), "seg": D.pad([f["seg"] for f in feats], 0),
                "word_pos": D.pad([f["word_pos"] for f in feats], 0),
                "word_mask": D.pad([[1] * len(f["word_pos"]) for f in feats], 0).bool(),
                "labels": D.pad([f["labels"] for f in feats], IGNORE_INDEX)}

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
        return entity_metrics([ex["tags"] for ex in examples], preds)

    def summary(self, m):
        return (f"entity P {m['precision']:.4f} R {m['recall']:.4f} F1 {m['f1']:.4f} "
                f"({m['correct_entities']} correct, {m['pred_entities']} predicted, {m['gold_entities']} gold)")

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            f.write("pred\n")
            for p in preds:
                f.write(" ".join(p) + "\n")
