"""Prompt-based classification with a masked LM (finetune/run_classifier_prompt.py), as UER-py's
run_classifier_prompt.py: the text is put into a template holding one answer slot, and the pretrained MLM head
scores each label's word at that slot; the label whose word scores highest is predicted.

Prompt: --prompt_path (a JSON file of prompts, UER-py's models/prompts.json format:
`{"ID": {"template": "[TEXT_A],我[ANS]满意", "answer_words": {"0": "不", "1": "很"}}}`) and --prompt_id, or
inline --template and --answer_words (a JSON object label -> word). The template holds [TEXT_A] (and [TEXT_B]
for pairs) and exactly one answer slot, written [ANS] (UER-py) or [MASK]; the rest is tokenised as text.
Each label's answer word must be one token of the vocabulary, and the words must differ: a word of several
tokens is refused (scoring it would need several slots, whose joint score is not what a one-token verbaliser
computes).
Data: a tsv with a header naming `label`, `text_a` (and `text_b` when the template has [TEXT_B]); the labels
are the keys of answer_words. Input (as UER-py): `[CLS]` + the template with the texts (text_a followed by
`[SEP]` in pairs; the text truncated so that the whole fits --seq_length) + `[SEP]`, all in segment 1.
Head: the pretrained MLM head, kept under its pretraining names (`target.mlm.*`, its vocabulary projection
tied to the word embedding when the config ties them), so a fine-tuned prompt model is itself an MLM
checkpoint. Scores: the MLM logits of the answer words at the slot. Loss (few-shot training): cross-entropy
over those logits. Metric: accuracy.
Zero-shot: --pretrained_model_path with --test_path and no --train_path predicts with the model as it is
(UER-py: --epochs_num 0). Predictions: a tsv with header `label` (+ `prob`, softmax over the answer words,
with --output_prob).
"""
import json
import os
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, ConfigError, DataError
from ..model import _init_weights
from ..targets.mlm import MlmTarget
from . import data as D
from .classification import classification_metrics
from .models import TaskModel
from .tasks import TASKS, Task

SLOT = ("[ANS]", "[MASK]")
PIECES = re.compile(r"(\[TEXT_A\]|\[TEXT_B\]|\[ANS\]|\[MASK\])")


class PromptModel(TaskModel):
    """embedding > encoder > the MLM head, read at one position per row."""

    task = "prompt"

    def __init__(self, config, vocab_size, backbone=None, mlm=None):
        super().__init__(config, vocab_size, backbone)
        self.target = nn.Module()
        if mlm is None:
            mlm = MlmTarget(config, vocab_size)
            mlm.apply(_init_weights)
            if config.tie_weights:
                mlm.linear_2.weight = self.embedding.word.embedding.weight
        self.target.mlm = mlm

    def forward(self, src, seg, slot, words):
        """src, seg [batch, seq]; slot [batch]: the answer position; words [labels]: the answer-word ids
        -> their MLM logits at the slot [batch, labels]."""
        hidden = self.encode(src, seg)
        h = hidden[torch.arange(src.size(0), device=src.device), slot]
        mlm = self.target.mlm
        h = mlm.layer_norm(mlm.act(mlm.linear_1(h)))
        return F.linear(h, mlm.linear_2.weight[words], mlm.linear_2.bias[words])


def parse_template(template, where):
    """-> the template's pieces: "[TEXT_A]", "[TEXT_B]", "[ANS]" or a text; one answer slot required."""
    pieces = [p for p in PIECES.split(template) if p]
    slots = sum(p in SLOT for p in pieces)
    if slots != 1:
        raise ConfigError(f"{where}: the template {template!r} has {slots} answer slots; it needs exactly one "
                          "[ANS] (or [MASK]) where the label word goes")
    if "[TEXT_A]" not in pieces:
        raise ConfigError(f"{where}: the template {template!r} has no [TEXT_A]; put it where the text goes")
    return ["[ANS]" if p in SLOT else p for p in pieces]


def load_prompt(args):
    """-> (template, {label: word}, where) from --prompt_path/--prompt_id or --template/--answer_words."""
    if args.template or args.answer_words:
        if not (args.template and args.answer_words):
            raise ConfigError("--template and --answer_words go together (or give --prompt_path and --prompt_id)")
        try:
            words = json.loads(args.answer_words)
        except ValueError:
            raise ConfigError(f"--answer_words {args.answer_words!r} is not JSON; give an object label -> word, "
                              "e.g. '{\"0\": \"不\", \"1\": \"很\"}'") from None
        template, where = args.template, "--template"
    else:
        if not args.prompt_path:
            raise ConfigError("no prompt: give --prompt_path and --prompt_id (UER-py's prompts.json), or --template "
                              "and --answer_words")
        if not os.path.isfile(args.prompt_path):
            raise ConfigError(f"--prompt_path {args.prompt_path}: no such file")
        prompts = D.read_json(args.prompt_path)
        if not isinstance(prompts, dict) or args.prompt_id not in prompts:
            ids = ", ".join(prompts) if isinstance(prompts, dict) else "none"
            raise ConfigError(f"--prompt_path {args.prompt_path}: no prompt {args.prompt_id!r} (--prompt_id); it has: {ids}")
        entry = prompts[args.prompt_id]
        where = f"{args.prompt_path}: prompt {args.prompt_id!r}"
        if not isinstance(entry, dict) or "template" not in entry or "answer_words" not in entry:
            raise ConfigError(f"{where}: needs \"template\" and \"answer_words\"")
        template, words = entry["template"], entry["answer_words"]
    if not isinstance(words, dict) or len(words) < 2 or not all(isinstance(w, str) for w in words.values()):
        raise ConfigError(f"{where}: answer_words must map at least two labels to a word each, e.g. {{\"0\": \"不\", "
                          "\"1\": \"很\"}")
    return template, {str(k): v for k, v in words.items()}, where


@TASKS.register("prompt")
class PromptTask(Task):
    name = "prompt"
    script = "run_classifier_prompt.py"
    description = "prompt-based classification with the MLM head (tsv: label, text_a[, text_b]; zero- or few-shot)"
    main_metric = "acc"
    predicts_untrained = True  # zero-shot: --pretrained_model_path --test_path, no --train_path

    @staticmethod
    def add_args(g):
        g.add_argument("--prompt_path", default=None, help="a JSON file of prompts (UER-py's models/prompts.json)")
        g.add_argument("--prompt_id", default="chnsenticorp_char", help="the prompt of --prompt_path to use")
        g.add_argument("--template", default=None,
                       help="inline template, e.g. '[TEXT_A]，我[MASK]满意' ([ANS] or [MASK]: the answer slot)")
        g.add_argument("--answer_words", default=None,
                       help="inline verbaliser, a JSON object label -> one-token word, e.g. '{\"0\": \"不\", \"1\": \"很\"}'")
        g.add_argument("--output_prob", action="store_true",
                       help="add a prob column (softmax over the answer words) to the predictions")

    def __init__(self, args, encoder, meta=None):
        super().__init__(args, encoder, meta)
        if not self.saved and getattr(args, "pretrained_model_path", None) and os.path.isfile(args.pretrained_model_path):
            from .core import read_finetune_meta

            # a prompt model fine-tuned here, used again as a pretrained MLM: its prompt unless flags give one
            self.saved = {k: v for k, v in read_finetune_meta(args.pretrained_model_path).items()
                          if k in ("template", "answer_words")}
        if self.saved.get("template") and not (args.template or args.prompt_path):
            template, words, where = self.saved["template"], self.saved["answer_words"], "the model's task settings"
        else:
            template, words, where = load_prompt(args)
        self.template_text, self.answer_words = template, words
        self.template = parse_template(template, where)
        self.labels = list(words)
        self.pair = "[TEXT_B]" in self.template
        if encoder is None:
            return
        vocab = encoder.vocab
        ids = []
        for label, word in words.items():
            toks = encoder.tokenizer.tokenize(word)
            if len(toks) != 1 or vocab.get(toks[0]) is None:
                raise ConfigError(f"{where}: the answer word {word!r} of label {label} is {len(toks)} tokens "
                                  f"({' '.join(toks) or 'none'}); each answer word must be one token of the vocabulary")
            ids.append(vocab.get(toks[0]))
        if len(set(ids)) != len(ids):
            raise ConfigError(f"{where}: two labels share an answer word ({words}); give each label its own")
        self.word_ids = torch.tensor(ids, dtype=torch.long)
        self.pieces = [p if p.startswith("[") else encoder.ids(p) for p in self.template]
        self.template_length = sum(len(p) for p in self.pieces if not isinstance(p, str)) + 1

    def meta(self):
        return {**super().meta(), "template": self.template_text, "answer_words": self.answer_words}

    # ------------------------------------------------------------------ model
    def load_backbone(self, path, config_path, vocab_size, config_overrides=None, vocab_file=None):
        """(config, (embedding, encoder, mlm head), None) of a pretrained masked LM (core.load_backbone's
        loading and vocabulary check, the MLM head kept); a model without a trained MLM head is refused (its
        word scores would be random)."""
        from .core import load_backbone

        if not path:
            return load_backbone(None, config_path, vocab_size, config_overrides, vocab_file=vocab_file)
        from ..io.checkpoint import load_model
        from ..io.tokenizer import check_rows

        model = load_model(path, config=config_path, strict=False, config_overrides=config_overrides)
        check_rows(vocab_size, model.embedding.word.embedding.weight.shape[0], vocab_file or "(the vocabulary)",
                   model.load_info.path or path)
        missing = [k for k in getattr(model.load_info, "missing", []) or [] if "mlm" in k]
        if not hasattr(model.target, "mlm") or missing:
            raise CheckpointError(f"--pretrained_model_path {path}: no masked-LM head "
                                  f"({'missing ' + ', '.join(missing[:3]) if missing else 'the config has no mlm target'})"
                                  "; prompt classification needs a model pretrained with the MLM target")
        return model.config, (model.embedding, model.encoder, model.target.mlm), None

    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        config = config.replace(target=["mlm"])
        if backbone is not None:
            emb, enc, mlm = backbone
            model = PromptModel(config, vocab_size, (emb, enc), mlm)
        else:
            model = PromptModel(config, vocab_size)
        model.task = self.name
        return model

    # ------------------------------------------------------------------ data
    def is_labeled(self, path):
        return "label" in D.read_tsv(path)[0][1]

    def read(self, path, labeled=True, train=False):
        required = ("text_a",) + (("text_b",) if self.pair else ()) + (("label",) if labeled else ())
        examples = []
        for lineno, row in D.read_tsv(path, required=required, optional=("text_b",)):
            where = f"{path}:{lineno}"
            label = row["label"].strip() if labeled else None
            if labeled and label not in self.answer_words:
                raise DataError(f"{where}: label {label!r} has no answer word (answer_words: "
                                f"{', '.join(self.labels)})")
            examples.append({"text_a": row["text_a"], "text_b": row.get("text_b"), "label": label, "where": where})
        return examples

    def encode(self, examples, train=False):
        enc, n = self.enc, self.args.seq_length
        if n < self.template_length + 3:
            raise ConfigError(f"--seq_length {n} leaves no room for the text in the template "
                              f"({self.template_length} tokens with the slot)")
        feats = []
        for i, ex in enumerate(examples):
            a = enc.ids(ex["text_a"])
            b = enc.ids(ex["text_b"]) if self.pair else []
            if self.pair:  # text_b is cut first (as UER-py), then text_a
                a = a[:n - self.template_length - 3]
                b = b[:max(0, n - self.template_length - len(a) - 3)]
            else:
                a = a[:n - self.template_length - 2]
            src, slot = [enc.cls_id], -1
            for p in self.pieces:
                if p == "[TEXT_A]":
                    src += a + ([enc.sep_id] if self.pair else [])
                elif p == "[TEXT_B]":
                    src += b
                elif p == "[ANS]":
                    slot = len(src)
                    src.append(enc.vocab.mask_id)
                else:
                    src += p
            src.append(enc.sep_id)
            label = self.labels.index(ex["label"]) if ex["label"] is not None else D.IGNORE_INDEX
            feats.append({"src": src, "seg": [1] * len(src), "slot": slot, "label": label, "example": i})
        return feats

    def collate(self, feats):
        return {"src": D.pad([f["src"] for f in feats], self.enc.pad_id), "seg": D.pad([f["seg"] for f in feats], 0),
                "slot": torch.tensor([f["slot"] for f in feats], dtype=torch.long),
                "label": torch.tensor([f["label"] for f in feats], dtype=torch.long), "words": self.word_ids}

    def scores(self, model, batch):
        return model(batch["src"], batch["seg"], batch["slot"], batch["words"]).float()

    def loss(self, model, batch):
        return F.cross_entropy(self.scores(model, batch), batch["label"], ignore_index=D.IGNORE_INDEX)

    def outputs(self, model, batch):
        return list(self.scores(model, batch).cpu())

    # ------------------------------------------------------------------ results
    def decode(self, examples, feats, outputs):
        return [int(o.argmax()) for o in outputs]

    def evaluate(self, examples, preds):
        gold = [self.labels.index(ex["label"]) for ex in examples]
        return classification_metrics(gold, preds, len(self.labels))

    def summary(self, m):
        return f"acc {m['acc']:.4f} ({m['correct']}/{m['total']}), macro-F1 {m['macro_f1']:.4f}"

    def write(self, path, examples, feats, outputs, preds):
        prob = getattr(self.args, "output_prob", False)
        with open(path, "w", encoding="utf-8") as f:
            f.write("label" + ("\tprob" if prob else "") + "\n")
            for o, p in zip(outputs, preds):
                f.write(self.labels[p] + ("\t" + " ".join(f"{x:.6f}" for x in torch.softmax(o, -1).tolist())
                                          if prob else "") + "\n")
