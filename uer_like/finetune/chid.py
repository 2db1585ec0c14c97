"""Chinese idiom cloze, ChID as CLUE publishes it (finetune/run_chid.py, UER-py's flags).

Data: CLUE's ChID files. `train.json` holds one JSON object a line, `{"candidates": [10 idioms], "content":
[passage, ...]}`, each passage with one or more blanks `#idiomNNNNNN#`; the answers are a separate JSON object
mapping each blank to the index of its idiom among its line's candidates, `{"#idiom000000#": 3, ...}`
(`train_answer.json`). The answer file of a data file is --train_answer_path / --dev_answer_path /
--test_answer_path, or else `<name>_answer.json` beside it (CLUE's naming) when there is one; a test file
without one is predicted only.
Input (as UER-py's run_chid.py): one instance per blank and one sequence per candidate,
`[CLS] candidate [SEP] left context [SEP] right context [SEP]`, the context a window of the passage centred on
the blank (the blank itself left out) cut to fit --seq_length, the passage's other blanks each one [MASK];
segment 1 for the candidate, 2 for the context (UER-py puts 0 everywhere, which its embedding reads as padding).
Head: multiple_choice.py's (`output_layer_1` = BERT's pooler, `output_layer_2` = one score per candidate, as
transformers' BertForMultipleChoice, and so exported); loss: cross-entropy over a blank's candidates.
Decoding: as UER-py's run_chid_infer.py, the blanks of one line share its candidates and each idiom is used
once: the highest-scoring (blank, candidate) pair is taken first, then the best among the rest, ...
(--independent_blanks: each blank's own argmax). Metric: the share of the answer file's blanks predicted
right, `chid_accuracy` on the answer and prediction mappings (CLUE's baseline evaluation, `evaluate` in
CHID_preprocess.py, counts the rows of its row-aligned answer and prediction csv files that agree; keyed by blank
here, so the order of the files does not matter and a missing blank counts as wrong).
Predictions: the official answer-file format, a JSON object `{"#idiomNNNNNN#": candidate index, ...}`.
"""
import json
import os
import re

from ..errors import DataError
from ..flags import Int
from . import data as D
from .multiple_choice import MultipleChoiceTask
from .tasks import TASKS, log

TAG = re.compile(r"#idiom\d+#")


# ====================================================================== metric
def chid_accuracy(gold, pred):
    """gold, pred: {"#idiomNNNNNN#": candidate index} -> {"acc", "correct", "total", "missing"}: the share of the
    gold blanks whose predicted index is the gold one (a blank missing from pred counts as wrong; blanks only
    in pred are ignored)."""
    correct = sum(1 for tag, idx in gold.items() if tag in pred and int(pred[tag]) == int(idx))
    missing = sum(1 for tag in gold if tag not in pred)
    n = len(gold)
    return {"acc": correct / n if n else 0.0, "correct": correct, "total": n, "missing": missing}


# ====================================================================== data
def read_answers(path):
    d = D.read_json(path)
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected ChID's answer file, a JSON object {{\"#idiomNNNNNN#\": index, ...}}")
    for tag, idx in d.items():
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise DataError(f"{path}: {tag}: the answer {idx!r} is not a candidate index (an integer)")
    return d


def read_chid(path, answers=None, answer_path=None, choices_num=10):
    """-> examples, one per blank: {tag, line (0-based line of the file), candidates, pieces (the passage split
    into text and tags), label (0-based or None), where}."""
    examples, seen = [], {}
    for lineno, line in enumerate(D._read_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not valid JSON: {e.msg}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("candidates"), list) or not isinstance(obj.get("content"), list):
            raise DataError(f"{where}: expected a ChID line {{\"candidates\": [idioms], \"content\": [passages]}}")
        cands = obj["candidates"]
        if not all(isinstance(c, str) and c for c in cands):
            raise DataError(f"{where}: every candidate must be a non-empty string")
        if len(cands) != choices_num:
            raise DataError(f"{where}: {len(cands)} candidates; ChID lines have {choices_num} "
                            f"(--max_choices_num {choices_num}); pass --max_choices_num {len(cands)} for this data")
        for passage in obj["content"]:
            if not isinstance(passage, str):
                raise DataError(f"{where}: every passage in content must be a string")
            pieces = [p for p in re.split(f"({TAG.pattern})", passage) if p]
            tags = [p for p in pieces if TAG.fullmatch(p)]
            if not tags:
                raise DataError(f"{where}: a passage without a blank #idiomNNNNNN#: {passage[:30]!r}...")
            for tag in tags:
                if tag in seen:
                    raise DataError(f"{where}: blank {tag} again (first at line {seen[tag]}); blank tags must be unique")
                seen[tag] = lineno
                label = None
                if answers is not None:
                    if tag not in answers:
                        raise DataError(f"{where}: blank {tag} has no answer in {answer_path}; add it, or check that "
                                        "the answer file belongs to this data file")
                    label = answers[tag]
                    if not 0 <= label < len(cands):
                        raise DataError(f"{answer_path}: {tag}: answer {label} is not one of the line's "
                                        f"{len(cands)} candidates (0..{len(cands) - 1})")
                examples.append({"tag": tag, "line": lineno, "candidates": cands, "pieces": pieces, "label": label,
                                 "where": f"{where}: {tag}"})
    if not examples:
        raise DataError(f"{path}: no blanks")
    return examples


def window(left, right, budget):
    """The last tokens of left and the first of right, budget in all, centred on the blank where both allow."""
    n_left = budget // 2
    if len(right) < budget - n_left:
        n_left = budget - len(right)
    left = left[max(len(left) - n_left, 0):] if n_left > 0 else []
    return left, right[:budget - len(left)]


def encode_chid(examples, enc, seq_length):
    """One feature per blank: its candidate sequences `[CLS] candidate [SEP] left [SEP] right [SEP]`."""
    D.check_seq_length(seq_length, "choice", enc.pair_specials - 3)
    feats, cut, ids_of = [], 0, {}
    for i, ex in enumerate(examples):
        left, right = [], []
        side = left
        for p in ex["pieces"]:
            if p == ex["tag"]:
                side = right
            elif TAG.fullmatch(p):
                side.append(enc.vocab.mask_id)
            else:
                if p not in ids_of:
                    ids_of[p] = enc.ids(p)
                side.extend(ids_of[p])
        srcs, segs = [], []
        for c in ex["candidates"]:
            room = seq_length - enc.pair_specials - 1  # the pair's special tokens and the [SEP] between left and right
            cand = enc.ids(c)[:max(room, 1)]
            lw, rw = window(left, right, max(room - len(cand), 0))
            cut += len(lw) + len(rw) < len(left) + len(right)
            src, seg, _, _ = enc.pack(cand, lw + [enc.sep_id] + rw)
            srcs.append(src)
            segs.append(seg)
        feats.append({"src": srcs, "seg": segs, "label": ex["label"] if ex["label"] is not None else -100,
                      "example": i})
    if cut:
        log(f"{cut} candidate sequence(s) had their context cut to --seq_length")
    return feats


def assign_distinct(blanks):
    """blanks: [(tag, scores over candidates)] of one line -> {tag: index}, each candidate used at most once
    (while there are as many candidates as blanks), the best remaining (blank, candidate) pair first."""
    pairs = sorted(((float(s), b, c) for b, (_, scores) in enumerate(blanks) for c, s in enumerate(scores)),
                   key=lambda x: -x[0])
    out, used = {}, set()
    for _, b, c in pairs:
        tag = blanks[b][0]
        if tag not in out and c not in used:
            out[tag] = c
            used.add(c)
    for tag, scores in blanks:  # more blanks than candidates: the rest take their own best
        out.setdefault(tag, int(max(range(len(scores)), key=lambda c: scores[c])))
    return out


# ====================================================================== task
@TASKS.register("chid")
class ChidTask(MultipleChoiceTask):
    name = "chid"
    script = "run_chid.py"
    description = "Chinese idiom cloze (CLUE's ChID: JSON lines + answer file)"
    main_metric = "acc"
    defaults = {"seq_length": 128}

    @staticmethod
    def add_args(g):
        g.add_argument("--train_answer_path", default=None,
                       help="answers of --train_path (default: <name>_answer.json beside it)")
        g.add_argument("--dev_answer_path", default=None,
                       help="answers of --dev_path (default: <name>_answer.json beside it)")
        g.add_argument("--test_answer_path", default=None,
                       help="answers of --test_path, to evaluate it (default: <name>_answer.json beside it, if there)")
        g.add_argument("--max_choices_num", type=Int(min=2, max=1024), default=None,
                       help="candidates per line (ChID: 10, the default); a line with another number is refused")
        g.add_argument("--independent_blanks", action="store_true",
                       help="each blank takes its own best candidate (default: the blanks of a line share its "
                            "candidates, each used once, as UER-py's inference)")
        g.add_argument("--no_pooler_init", action="store_true",
                       help="start output_layer_1 at random instead of from the pretrained pooler")

    def __init__(self, args, encoder, meta=None):
        if getattr(args, "max_choices_num", None) is None:
            args.max_choices_num = dict(meta or {}).get("max_choices_num", 10)
        super().__init__(args, encoder, meta)

    def answer_path(self, path, train=False):
        """The answer file of a data file: its flag, else `<name>_answer.json` beside it, else None."""
        a = self.args
        flag = None
        if train:
            flag = getattr(a, "train_answer_path", None)
        elif path == getattr(a, "dev_path", None) and getattr(a, "dev_answer_path", None):
            flag = a.dev_answer_path
        elif path == getattr(a, "test_path", None):
            flag = getattr(a, "test_answer_path", None)
        if flag:
            return flag
        beside = os.path.splitext(path)[0] + "_answer.json"
        return beside if os.path.isfile(beside) else None

    def is_labeled(self, path):
        return self.answer_path(path) is not None

    def read(self, path, labeled=True, train=False):
        ans_path = self.answer_path(path, train)
        if labeled and ans_path is None:
            which = "train" if train else "dev"
            raise DataError(f"{path}: no answer file; pass --{which}_answer_path (or put "
                            f"{os.path.splitext(path)[0]}_answer.json beside it)")
        answers = read_answers(ans_path) if labeled else None
        return read_chid(path, answers, ans_path, self.args.max_choices_num)

    def encode(self, examples, train=False):
        return encode_chid(examples, self.enc, self.args.seq_length)

    def decode(self, examples, feats, outputs):
        if getattr(self.args, "independent_blanks", False):
            return [int(o.argmax()) for o in outputs]
        by_line = {}
        for ex, o in zip(examples, outputs):
            by_line.setdefault(ex["line"], []).append((ex["tag"], o.tolist()))
        chosen = {}
        for blanks in by_line.values():
            chosen.update(assign_distinct(blanks))
        return [chosen[ex["tag"]] for ex in examples]

    def evaluate(self, examples, preds):
        gold = {ex["tag"]: ex["label"] for ex in examples}
        return chid_accuracy(gold, {ex["tag"]: p for ex, p in zip(examples, preds)})

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({ex["tag"]: int(p) for ex, p in zip(examples, preds)}, f, indent=2, ensure_ascii=False)
            f.write("\n")
