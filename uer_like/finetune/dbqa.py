"""Document-based question answering, DBQA (finetune/run_dbqa.py, UER-py's flags): answer-sentence selection as
sentence-pair classification.

Data: a tsv whose header names `label` (1: the sentence answers the question, 0: it does not), `text_a` (the
question), `text_b` (a candidate sentence) and optionally `qid` (UER-py's DBQA files have it); a question's rows
are its candidate sentences. Rows group by `qid`, or without that column by the question text.
Input and head: classification.py's (`[CLS] question [SEP] sentence [SEP]`; `output_layer_1` = BERT's pooler,
`output_layer_2` = 2 logits), trained with cross-entropy on the labels.
Evaluation: each question's sentences ranked by the probability of label 1 (ties in file order); MRR, the mean
over questions of 1 / the rank of the first answering sentence, and MAP, the mean over questions of the average
of k / (rank of the k-th answering sentence). Questions without an answering sentence are left out of both
(counted as `no_answer`; UER-py's run_dbqa.py gives them 1 / (sentences + 1) and ranks by the label-1 logit
alone). --metric picks the one that selects the best dev epoch: mrr (default, as UER-py) or map; accuracy of
the 0/1 decisions is reported too.
Predictions: a tsv with header `qid	label	score`, one line per row in file order: the question's group, the
predicted label and the probability of label 1.
"""
import torch

from ..errors import DataError
from . import data as D
from .classification import ClassificationTask, SentenceTask, encode_classification
from .tasks import TASKS


# ====================================================================== metric
def rank_metrics(groups):
    """groups: [(labels, scores)] one per question (0/1 labels, float scores) -> {"map", "mrr", "questions",
    "no_answer"}; a question's sentences are ranked by score, descending, ties in the given order."""
    aps, rrs, no_answer = [], [], 0
    for labels, scores in groups:
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        ranks = [r + 1 for r, i in enumerate(order) if labels[i] == 1]
        if not ranks:
            no_answer += 1
            continue
        rrs.append(1.0 / ranks[0])
        aps.append(sum((k + 1) / r for k, r in enumerate(ranks)) / len(ranks))
    n = len(rrs)
    return {"map": sum(aps) / n if n else 0.0, "mrr": sum(rrs) / n if n else 0.0, "questions": n,
            "no_answer": no_answer}


# ====================================================================== data
def read_dbqa(path, labeled=True):
    """-> examples {text_a, text_b, label (0/1 or None), qid, where}."""
    required = ("text_a", "text_b") + (("label",) if labeled else ())
    examples = []
    for lineno, row in D.read_tsv(path, required=required, optional=("qid",)):
        where = f"{path}:{lineno}"
        label = None
        if labeled:
            if row["label"].strip() not in ("0", "1"):
                raise DataError(f"{where}: label {row['label']!r}; DBQA labels are 1 (the sentence answers the "
                                "question) or 0")
            label = int(row["label"])
        qid = row["qid"] if "qid" in row else row["text_a"]
        examples.append({"text_a": row["text_a"], "text_b": row["text_b"], "label": label, "qid": qid,
                         "where": where})
    return examples


def groups_of(examples, labels, scores):
    """Rows -> [(labels, scores)] per question, questions in order of first appearance."""
    by_q = {}
    for ex, y, s in zip(examples, labels, scores):
        g = by_q.setdefault(ex["qid"], ([], []))
        g[0].append(y)
        g[1].append(s)
    return list(by_q.values())


# ====================================================================== task
@TASKS.register("dbqa")
class DbqaTask(ClassificationTask):
    name = "dbqa"
    script = "run_dbqa.py"
    description = "answer-sentence selection (tsv: label, [qid,] text_a = question, text_b = sentence), MAP/MRR"
    main_metric = "mrr"

    @staticmethod
    def add_args(g):
        SentenceTask.add_args(g)
        g.add_argument("--metric", choices=["mrr", "map"], default="mrr",
                       help="the ranking metric that selects the best dev epoch (default mrr, as UER-py)")

    def __init__(self, args, encoder, meta=None):
        super().__init__(args, encoder, meta)
        self.labels_num = 2
        self.main_metric = getattr(args, "metric", None) or "mrr"

    def read_examples(self, path, labeled=True, train=False):
        return read_dbqa(path, labeled)

    def encode(self, examples, train=False):
        return encode_classification(examples, self.enc, self.args.seq_length)

    def decode(self, examples, feats, outputs):
        """-> (label, probability of label 1) per row."""
        out = []
        for o in outputs:
            p = torch.softmax(o.float(), -1)
            out.append((int(o.argmax()), float(p[1])))
        return out

    def evaluate(self, examples, preds):
        gold = [ex["label"] for ex in examples]
        m = rank_metrics(groups_of(examples, gold, [s for _, s in preds]))
        correct = sum(int(g == p) for g, (p, _) in zip(gold, preds))
        m.update(acc=correct / len(gold) if gold else 0.0, correct=correct, total=len(gold))
        return m

    def summary(self, m):
        return (f"MRR {m['mrr']:.4f}, MAP {m['map']:.4f} ({m['questions']} questions"
                + (f", {m['no_answer']} without an answer left out" if m["no_answer"] else "")
                + f"), acc {m['acc']:.4f}")

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            f.write("qid\tlabel\tscore\n")
            for ex, (label, score) in zip(examples, preds):
                f.write(f"{ex['qid']}\t{label}\t{score:.6f}\n")
