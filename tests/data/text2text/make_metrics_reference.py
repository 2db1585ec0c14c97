"""Write metrics_reference.json: character BLEU and ROUGE-L of a few prediction/gold pairs as the maintained
packages compute them (sacrebleu's corpus_bleu with tokenize="char"; rouge_score's ROUGE-L F-measure with every
non-space character a token), for tests/test_text2text.py to check uer_like.finetune.text_metrics against.
Run with sacrebleu and rouge-score installed (not project dependencies):

    python -m venv /tmp/ref && /tmp/ref/bin/pip install sacrebleu rouge-score
    /tmp/ref/bin/python tests/data/text2text/make_metrics_reference.py
"""
import json
import os
from importlib.metadata import version

import sacrebleu
from rouge_score import rouge_scorer

HERE = os.path.dirname(os.path.abspath(__file__))
CORPORA = {
    "identical": (["天地人和", "春夏秋冬"], ["天地人和", "春夏秋冬"]),
    "partial": (["天地人和春", "夏秋冬日", "山水"], ["天地和春", "夏秋冬月山", "山水天"]),
    "short_and_empty": (["天", "", "人和"], ["天地", "春夏", "人和"]),
    "long_prediction": (["今天天气很好我们去公园散步吧", "北京是中国的首都"], ["今天天气很好", "北京是首都"]),
    "no_match": (["天天天", "地地"], ["人人", "和和和"]),
    "mixed_text": (["BERT 模型 2019 年发布", "hello 世界"], ["BERT模型在2018年发布", "hello, 世界!"]),
}


class CharTokenizer:
    def tokenize(self, text):
        return [c for c in text if not c.isspace()]


def main():
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=CharTokenizer())
    out = {"made_by": f"sacrebleu {version('sacrebleu')}, rouge-score {version('rouge-score')}",
           "corpora": {}}
    for name, (preds, golds) in CORPORA.items():
        bleu = sacrebleu.corpus_bleu(preds, [golds], tokenize="char").score
        rl = [scorer.score(g, p)["rougeL"].fmeasure for p, g in zip(preds, golds)]
        out["corpora"][name] = {"preds": preds, "golds": golds, "bleu": bleu, "rouge_l": sum(rl) / len(rl)}
    with open(os.path.join(HERE, "metrics_reference.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
