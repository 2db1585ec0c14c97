"""Multiple-choice reading comprehension, C3 (finetune/run_c3.py, UER-py's flags).

Data: C3's JSON, a list of documents `[[sentence, ...], [{"question", "choice": [2..4 strings],
"answer": one of the choices}, ...], document_id]` (test files may lack "answer").
Input: one sequence per choice, `[CLS] choice [SEP] question [SEP] document [SEP]` (segment 1 for choice and
question, 2 for the document, as UER-py's run_c3.py), the document cut to fit --seq_length.
Each choice is scored, the scores of a question's choices are padded to --max_choices_num with -inf and a
softmax over them gives the choice (a padded slot can never be chosen).

Head (parameter names, a file-format contract): the same as transformers' BertForMultipleChoice, so the
pretrained pooler is used and the model maps onto that class:
  output_layer_1.{weight,bias}  [hidden, hidden]  dense + tanh on [CLS] (BERT's pooler; it starts from the
                                                  pretrained pooler unless --no_pooler_init)
  output_layer_2.{weight,bias}  [1, hidden]       after dropout: the choice's score
(UER-py's run_c3.py scores [CLS] with one linear layer named output_layer, without the pooler.)
Loss: cross-entropy over a question's choices. Metric: accuracy.
Predictions: a tsv with header `pred` and one line per question, in file order: the 0-based index of the
chosen answer among its choices.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from ..flags import Int
from . import data as D
from .models import TaskModel, init_linear
from .tasks import TASKS, Task, log


# ====================================================================== head
class MultipleChoice(TaskModel):
    task = "multiple_choice"

    def __init__(self, config, vocab_size, backbone=None):
        super().__init__(config, vocab_size, backbone)
        self.output_layer_1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.output_layer_2 = nn.Linear(config.hidden_size, 1)
        init_linear(self.output_layer_1)
        init_linear(self.output_layer_2)

    def scores(self, src, seg):
        """src, seg [sequences, seq] (one sequence per choice) -> a score per sequence [sequences]."""
        pooled = torch.tanh(self.output_layer_1(self.encode(src, seg, first_only=True)[:, 0]))
        return self.output_layer_2(self.dropout(pooled)).squeeze(-1)

    def forward(self, src, seg, slot, questions, max_choices):
        """src, seg [sequences, seq]: one sequence per choice; slot [sequences]: question x max_choices + choice
        -> logits [questions, max_choices], -inf in the slots of a question's missing choices."""
        s = self.scores(src, seg).float()
        logits = s.new_full((questions * max_choices,), float("-inf")).index_copy(0, slot, s)
        return logits.view(questions, max_choices)


def choice_logits(model, batch):
    return model(batch["src"], batch["seg"], batch["slot"], batch["label"].numel(), batch["max_choices"])


# ====================================================================== data
def read_c3(path, max_choices_num=4, labeled=True):
    """-> examples {document, question, choices, label (0-based index or None), qid, where}."""
    d = D.read_json(path)
    if not isinstance(d, list):
        raise DataError(f"{path}: expected C3's JSON, a list of [sentences, questions, id] documents")
    examples = []
    for di, doc in enumerate(d):
        if not isinstance(doc, list) or len(doc) < 2 or not isinstance(doc[0], list) or not isinstance(doc[1], list):
            raise DataError(f"{path}: document {di + 1} is not [[sentence, ...], [{{question, choice, answer}}, ...], id]")
        doc_id = str(doc[2]) if len(doc) > 2 else str(di + 1)
        if not all(isinstance(x, str) for x in doc[0]):
            raise DataError(f"{path}: document {doc_id}: the sentences must be strings")
        text = "\n".join(doc[0])
        for qi, q in enumerate(doc[1]):
            where = f"{path}: document {doc_id}, question {qi + 1}"
            if not isinstance(q, dict) or not isinstance(q.get("question"), str) or not isinstance(q.get("choice"), list):
                raise DataError(f"{where}: needs a 'question' string and a 'choice' list")
            choices = q["choice"]
            if not all(isinstance(c, str) for c in choices):
                raise DataError(f"{where}: every choice must be a string")
            if len(choices) < 2:
                raise DataError(f"{where}: {len(choices)} choice(s); a question needs 2 to {max_choices_num}")
            if len(choices) > max_choices_num:
                raise DataError(f"{where}: {len(choices)} choices, more than --max_choices_num {max_choices_num}; "
                                f"pass --max_choices_num {len(choices)} (or more)")
            label = None
            if labeled:
                if "answer" not in q:
                    raise DataError(f"{where}: no 'answer'")
                if q["answer"] not in choices:
                    raise DataError(f"{where}: the answer {q['answer']!r} is not one of its choices "
                                    f"{', '.join(repr(c) for c in choices)}")
                if choices.count(q["answer"]) > 1:
                    at = [k + 1 for k, c in enumerate(choices) if c == q["answer"]]
                    raise DataError(f"{where}: the answer {q['answer']!r} is choice {' and '.join(map(str, at))}: "
                                    "which one is right is not known; make the choices differ")
                label = choices.index(q["answer"])
            examples.append({"document": text, "question": q["question"], "choices": choices, "label": label,
                             "qid": f"{doc_id}#{qi + 1}", "where": where})
    if not examples:
        raise DataError(f"{path}: no questions")
    return examples


def encode_c3(examples, enc, seq_length):
    """One feature per question: the choice sequences `[CLS] choice [SEP] question [SEP] document [SEP]`."""
    D.check_seq_length(seq_length, "choice", enc.pair_specials - 3)
    feats, cut = [], 0
    for i, ex in enumerate(examples):
        q, doc = enc.ids(ex["question"]), enc.ids(ex["document"])
        srcs, segs = [], []
        for c in ex["choices"]:
            first = (enc.ids(c) + [enc.sep_id] + q)[:seq_length - enc.pair_specials]
            d = doc[:max(seq_length - enc.pair_specials - len(first), 0)]
            cut += len(d) < len(doc)
            src, seg, _, _ = enc.pack(first, d)
            srcs.append(src)
            segs.append(seg)
        feats.append({"src": srcs, "seg": segs, "label": ex["label"] if ex["label"] is not None else -100,
                      "example": i})
    if cut:
        log(f"{cut} choice sequence(s) had their document cut to --seq_length")
    return feats


# ====================================================================== task
@TASKS.register("multiple_choice")
class MultipleChoiceTask(Task):
    name = "multiple_choice"
    script = "run_c3.py"
    description = "multiple-choice reading comprehension (C3 JSON)"
    main_metric = "acc"
    defaults = {"seq_length": 512}

    @staticmethod
    def add_args(g):
        g.add_argument("--max_choices_num", type=Int(min=2, max=1024), default=None,
                       help="choices per question are padded to this many (default 4)")
        g.add_argument("--no_pooler_init", action="store_true",
                       help="start output_layer_1 at random instead of from the pretrained pooler")

    def __init__(self, args, encoder, meta=None):
        super().__init__(args, encoder, meta)
        if getattr(args, "max_choices_num", None) is None:
            args.max_choices_num = self.saved.get("max_choices_num", 4)
        if args.max_choices_num < 2:
            raise ConfigError(f"--max_choices_num must be at least 2, got {args.max_choices_num}")

    def meta(self):
        return {**super().meta(), "max_choices_num": self.args.max_choices_num}

    def is_labeled(self, path):
        """Whether the questions have answers: all (evaluated) or none (predicted only); some with and some
        without is a DataError naming one of each (evaluating a part, or nothing, would not be what was asked)."""
        d = D.read_json(path)
        first = {}  # has an answer -> the first such question
        for di, doc in enumerate(d if isinstance(d, list) else []):
            questions = doc[1] if isinstance(doc, list) and len(doc) > 1 and isinstance(doc[1], list) else []
            for qi, q in enumerate(questions):
                if isinstance(q, dict):
                    first.setdefault("answer" in q, f"document {doc[2] if len(doc) > 2 else di + 1}, question {qi + 1}")
        if len(first) == 2:
            raise DataError(f"{path}: {first[False]}: no 'answer', but {first[True]} has one; give every question "
                            "its answer (to evaluate) or none (to predict only)")
        return True in first

    def read(self, path, labeled=True, train=False):
        return read_c3(path, self.args.max_choices_num, labeled)

    def encode(self, examples, train=False):
        return encode_c3(examples, self.enc, self.args.seq_length)

    @staticmethod
    def length(feat):
        return max(len(s) for s in feat["src"])

    def collate(self, feats):
        k = self.args.max_choices_num
        slot = [q * k + c for q, f in enumerate(feats) for c in range(len(f["src"]))]
        return {"src": D.pad([s for f in feats for s in f["src"]], self.enc.pad_id),
                "seg": D.pad([s for f in feats for s in f["seg"]], 0),
                "slot": torch.tensor(slot, dtype=torch.long), "max_choices": k,
                "label": torch.tensor([f["label"] for f in feats], dtype=torch.long)}

    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        if config.mask == "causal":
            raise ConfigError("multiple choice scores the first token, which under this model's causal mask sees "
                              "only itself (the same score for every choice); fine-tune it with a fully visible model")
        model = MultipleChoice(config, vocab_size, backbone=backbone)
        if pooler is not None and not getattr(self.args, "no_pooler_init", False):
            model.output_layer_1.load_state_dict(pooler)
            log("output_layer_1 starts from the pretrained pooler")
        return model

    def loss(self, model, batch):
        return F.cross_entropy(choice_logits(model, batch), batch["label"], ignore_index=-100)

    def outputs(self, model, batch):
        return list(choice_logits(model, batch).cpu())

    def decode(self, examples, feats, outputs):
        return [int(o.argmax()) for o in outputs]

    def evaluate(self, examples, preds):
        correct = sum(int(ex["label"] == p) for ex, p in zip(examples, preds))
        n = len(examples)
        return {"acc": correct / n if n else 0.0, "correct": correct, "total": n}

    def summary(self, m):
        return f"acc {m['acc']:.4f} ({m['correct']}/{m['total']})"

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            f.write("pred\n")
            for p in preds:
                f.write(f"{p}\n")
