"""Write the generated CJRC-format sample (train.json, dev.json) and predictions.json (answers to dev.json,
some right, some partly, some wrong, for the metric's check against the official script) beside this script:
    python tests/data/cjrc/make_cjrc_sample.py
Synthetic case descriptions in the format of CAIL2019's CJRC release (see README.md); nothing is copied from
the real data. Deterministic (seeded)."""
import json
import os
import random

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚"
PLACES = ["荣昌县人民法院", "南明区民政局", "新民市民政局", "牟平区民政局", "阳朔县人民法院"]


def name(rng):
    return rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice("0123456789")


def case(rng, caseid, refs):
    a, b = name(rng), name(rng)
    date = f"{rng.randint(2001, 2016)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日"
    fee = f"{rng.choice([300, 500, 800, 1000, 1200, 1500])}元"
    place = rng.choice(PLACES)
    remarried = rng.random() < 0.5
    agrees = rng.random() < 0.5
    ask_remarried = rng.random() < 0.5  # one yes/no question per case, its fact alone in the context
    parts = [f"经查,原告{a}与被告{b}于{date}结婚,后在{place}离婚", f"原告每月支付抚养费{fee}",
             "原告" + ("已再婚" if remarried else "未再婚") if ask_remarried
             else "被告" + ("同意" if agrees else "不同意") + "变更抚养关系"]
    context = ",".join(parts) + "。"

    def span(text, extra=""):
        start = context.index(text)
        answers = [{"answer_start": start, "text": text}]
        if refs > 1:
            alt = extra + text if extra and (extra + text) in context else text
            answers += [{"answer_start": context.index(alt), "text": alt}, {"answer_start": start, "text": text}]
        return answers, "false"

    def fixed(text):
        if text == "" and refs == 1:
            return [], "true"  # the training files' unanswerable: no answer at all
        return [{"answer_start": -1, "text": text}] * refs, "true" if text == "" else "false"

    qas = [("原告与被告何时结婚？", span(date, "于")),
           ("原告每月支付多少抚养费？", span(fee, "抚养费")),
           ("原告是否再婚？", fixed("YES" if remarried else "NO")) if ask_remarried
           else ("被告是否同意变更抚养关系？", fixed("YES" if agrees else "NO")),
           (rng.choice(["原告的月收入是多少？", "被告在何处工作？", "婚生子在哪所学校就读？"]), fixed("")),
           ("原告与被告在何处离婚？", span(place, "在"))]
    rng.shuffle(qas)
    return {"caseid": str(caseid), "domain": rng.choice(["civil", "criminal"]), "paragraphs": [{
        "context": context, "casename": "变更抚养关系纠纷",
        "qas": [{"question": q, "answers": ans, "id": f"{caseid}_{i + 1}", "is_impossible": imp}
                for i, (q, (ans, imp)) in enumerate(qas)]}]}


def predictions(data):
    """Answers of every kind of correctness, by question number: the first reference, the second (a longer
    span), half of the first, the wrong type, nothing."""
    out = []
    qas = [qa for art in data["data"] for qa in art["paragraphs"][0]["qas"]]
    for i, qa in enumerate(qas):
        refs = [a["text"] for a in qa["answers"]] or [""]
        answer = [refs[0], refs[1 % len(refs)], refs[0][: max(1, len(refs[0]) // 2)],
                  "YES" if refs[0] != "YES" else "NO", ""][i % 5]
        out.append({"id": qa["id"], "answer": answer})
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    rng = random.Random(2019)
    for split, n, refs, first in (("train", 40, 1, 1), ("dev", 12, 3, 1001)):
        data = {"version": "1.0", "data": [case(rng, first + i, refs) for i in range(n)]}
        with open(os.path.join(here, f"{split}.json"), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.write("\n")
    with open(os.path.join(here, "predictions.json"), "w", encoding="utf-8") as f:
        json.dump(predictions(data), f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
