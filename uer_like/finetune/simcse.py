"""Sentence embeddings by SimCSE (finetune/run_simcse.py), as UER-py's run_simcse.py, plus the supervised
variant of Gao et al. (2021) with hard negatives.

Training data: a tsv with a header naming `text_a` and optionally `text_b` and `text_c`:
  - `text_a` only: unsupervised SimCSE; each sentence goes through the encoder twice, the two dropout masks
    making the positive pair, the other sentences of the batch the negatives;
  - `text_a`, `text_b`: supervised positives (an entailment pair), in-batch negatives;
  - `text_a`, `text_b`, `text_c`: supervised with `text_c` a hard negative (a contradiction) of its row,
    every row's `text_c` a negative of every anchor.
A `label` column in the training file is ignored (as UER-py).
Loss: cross-entropy over cosine similarities / --temperature (0.05, as UER-py and the paper).
Dev / test: a similarity set, tsv `text_a`, `text_b`, `label` (a real score, STS style); the metric is
Spearman's rank correlation between the labels and the cosine similarity of the two sentences' embeddings,
and the best dev epoch is kept. Predictions: a tsv with header `similarity`, one cosine per pair.
Input: each sentence alone, `[CLS] s [SEP]`, segment 1 (as UER-py). Embedding: the encoder output pooled by
--pooling: first ([CLS], UER-py's default), mean, max or last over the sentence's tokens ([CLS] and [SEP]
included, as UER-py).

Model: the backbone only (`embedding.*`, `encoder.*`): the fine-tuned file is a pretrained-style encoder.
Run inference with it as --pretrained_model_path without --train_path (the pooling is read from the
MODEL_finetune.json beside it unless --pooling is given); scripts/export_sentence_transformers.py writes it as
a sentence-transformers directory.
"""
import os

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from ..flags import Float
from ..targets.cls import pool
from . import data as D
from .models import TaskModel
from .regression import spearman
from .tasks import TASKS, Task

POOLINGS = ("first", "mean", "max", "last")


class SentenceEncoder(TaskModel):
    """embedding > encoder > pooling: one vector per sentence."""

    task = "simcse"

    def __init__(self, config, vocab_size, pooling="first", backbone=None):
        super().__init__(config, vocab_size, backbone)
        self.pooling = pooling

    def embed(self, src, seg, **inputs):
        """src, seg [batch, seq] -> sentence vectors [batch, hidden]."""
        return pool(self.encode(src, seg, **inputs), seg, self.pooling)


def check_pooling(config, pooling):
    """Refuse pooling the first token under a causal mask (GPT-2): it sees only itself, so every sentence
    would get the same vector."""
    if config.mask == "causal" and pooling == "first":
        raise ConfigError("--pooling first on a model with a causal mask: its first token sees only itself, so "
                          "every sentence gets the same vector; pass --pooling last or mean")


def cosine_logits(x, y, temperature):
    """[n, h], [m, h] -> cosine similarities [n, m] / temperature (UER-py's `similarity`)."""
    return F.normalize(x.float(), dim=-1) @ F.normalize(y.float(), dim=-1).t() / temperature


def encode_sentence(enc, text, seq_length):
    """`[CLS] text [SEP]` ids (truncated), all in segment 1."""
    src, seg, _, _ = enc.pack(enc.ids(text)[:seq_length - 2])
    return src, seg


def read_pairs(path, labeled, score=True):
    """Rows of a sentence-pair tsv (text_a, text_b[, label]) -> examples; score: real labels, else integer."""
    examples = []
    for lineno, row in D.read_tsv(path, required=("text_a", "text_b") + (("label",) if labeled else ())):
        where = f"{path}:{lineno}"
        label = None
        if labeled:
            raw = row["label"].strip()
            try:
                label = float(raw) if score else int(raw)
            except ValueError:
                what = "a number (a similarity score)" if score else "an integer class id (labels are 0..n-1)"
                raise DataError(f"{where}: label {raw!r} is not {what}") from None
            if score and label != label:
                raise DataError(f"{where}: label {raw!r} is not a number")
        examples.append({"text_a": row["text_a"], "text_b": row["text_b"], "label": label, "where": where})
    return examples


def add_pooling_arg(g, default_text):
    g.add_argument("--pooling", choices=POOLINGS, default=None,
                   help=f"how the encoder output becomes the sentence vector ({default_text})")


def saved_pooling(args, meta):
    """--pooling, else the fine-tuned model's (its task settings, or those beside --pretrained_model_path),
    else first ([CLS], UER-py's default)."""
    if getattr(args, "pooling", None):
        return args.pooling
    if meta.get("pooling"):
        return meta["pooling"]
    path = getattr(args, "pretrained_model_path", None)
    if path and os.path.isfile(path):
        from .core import read_finetune_meta

        return read_finetune_meta(path).get("pooling") or "first"
    return "first"


@TASKS.register("simcse")
class SimCSETask(Task):
    name = "simcse"
    script = "run_simcse.py"
    description = ("sentence embeddings by SimCSE (train tsv: text_a, or text_a, text_b[, text_c] supervised; "
                   "dev/test tsv: text_a, text_b, label score; Spearman of cosine)")
    main_metric = "spearman"
    defaults = {"seq_length": 64}
    predicts_untrained = True  # --pretrained_model_path without --train_path: evaluate / embed with it as it is

    @staticmethod
    def add_args(g):
        add_pooling_arg(g, "default: the fine-tuned model's, else first, i.e. [CLS], as UER-py")
        g.add_argument("--temperature", type=Float(min=0, min_open=True), default=0.05,
                       help="the softmax temperature of the contrastive loss")

    def __init__(self, args, encoder, meta=None):
        super().__init__(args, encoder, meta)
        self.pooling = saved_pooling(args, self.saved)

    def meta(self):
        return {**super().meta(), "pooling": self.pooling}

    def is_labeled(self, path):
        return "label" in D.read_tsv(path)[0][1]

    def read(self, path, labeled=True, train=False):
        if not train:
            return read_pairs(path, labeled)
        rows = D.read_tsv(path, required=("text_a",), optional=("text_b", "text_c", "label"))
        header = rows[0][1]
        if "text_c" in header and "text_b" not in header:
            raise DataError(f"{path}:1: a text_c column (hard negatives) needs text_b (the positives)")
        return [{"text_a": r["text_a"], "text_b": r.get("text_b"), "text_c": r.get("text_c"), "label": None,
                 "where": f"{path}:{n}"} for n, r in rows]

    def encode(self, examples, train=False):
        n = self.args.seq_length
        feats = []
        for i, ex in enumerate(examples):
            src, seg = encode_sentence(self.enc, ex["text_a"], n)
            f = {"src": src, "seg": seg, "example": i}
            if ex.get("text_b") is not None:
                f["src_b"], f["seg_b"] = encode_sentence(self.enc, ex["text_b"], n)
            elif train:  # unsupervised: the same sentence again, another dropout mask
                f["src_b"], f["seg_b"] = src, seg
            if ex.get("text_c") is not None:
                f["src_c"], f["seg_c"] = encode_sentence(self.enc, ex["text_c"], n)
            f["label"] = ex["label"] if ex["label"] is not None else float("nan")
            feats.append(f)
        return feats

    @staticmethod
    def length(feat):
        return max(len(feat["src"]), len(feat.get("src_b", ())), len(feat.get("src_c", ())))

    def collate(self, feats):
        """The batch's sentences stacked [a; b(; c)] into one padded src/seg: one forward pass (each row
        gets its own dropout mask)."""
        parts = ["", "_b"] + (["_c"] if "src_c" in feats[0] else [])
        src = [f["src" + p] for p in parts for f in feats]
        seg = [f["seg" + p] for p in parts for f in feats]
        return {"src": D.pad(src, self.enc.pad_id), "seg": D.pad(seg, 0), "parts": len(parts),
                "label": torch.tensor([f["label"] for f in feats], dtype=torch.float)}

    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        check_pooling(config, self.pooling)
        # the saved config names no pretraining head: the file is an encoder (embedding.*, encoder.*) only
        model = SentenceEncoder(config.replace(target=[]), vocab_size, self.pooling, backbone=backbone)
        model.task = self.name
        return model

    def loss(self, model, batch):
        vecs = model.embed(batch["src"], batch["seg"]).chunk(batch["parts"])
        logits = cosine_logits(vecs[0], torch.cat(vecs[1:]), self.args.temperature)
        return F.cross_entropy(logits, torch.arange(logits.size(0), device=logits.device))

    def outputs(self, model, batch):
        a, b = model.embed(batch["src"], batch["seg"]).chunk(batch["parts"])[:2]
        return F.cosine_similarity(a.float(), b.float(), dim=-1).cpu().tolist()

    def decode(self, examples, feats, outputs):
        return [float(o) for o in outputs]

    def evaluate(self, examples, preds):
        gold = [ex["label"] for ex in examples]
        return {"spearman": spearman(gold, preds), "total": len(gold)}

    def summary(self, m):
        return f"Spearman {m['spearman']:.4f} ({m['total']} pairs)"

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            f.write("similarity\n")
            f.writelines(f"{p:.6f}\n" for p in preds)
