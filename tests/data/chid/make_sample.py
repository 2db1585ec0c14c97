"""Make the small ChID-format sample in this folder from ../shared/data/corpora/CLUECorpusSmall_sampled.txt.

Every passage is a window of a corpus line around one of the common four-character idioms listed below, the
idiom replaced by a blank #idiomNNNNNN#; two passages share a line and its 10 candidates (their two idioms and
8 distractors drawn from the list). Run from the repository root: python tests/data/chid/make_sample.py
"""
import json
import os
import random

IDIOMS = ("一心一意 千方百计 自言自语 实事求是 与众不同 不知不觉 津津有味 迫不及待 恍然大悟 全力以赴 独一无二 "
          "一模一样 莫名其妙 小心翼翼 五颜六色 兴高采烈 无可奈何 理所当然 络绎不绝 层出不穷 众所周知 不可思议 "
          "一举两得 名副其实 乱七八糟 引人注目 脱颖而出 相辅相成 息息相关 举足轻重 一如既往 家喻户晓 日新月异 "
          "得天独厚 有条不紊 随心所欲 一帆风顺 应有尽有 源源不断 显而易见 循序渐进 意想不到 无微不至 精益求精 "
          "一目了然 风和日丽 琳琅满目 丰富多彩 迎刃而解").split()
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "corpora", "CLUECorpusSmall_sampled.txt")


def main():
    rng = random.Random(0)
    found = []  # (passage with the blank marker, idiom)
    for line in open(CORPUS, encoding="utf-8"):
        line = line.strip()
        for idiom in IDIOMS:
            at = line.find(idiom)
            if at >= 0:
                left, right = line[max(at - 40, 0):at], line[at + 4:at + 44]
                found.append((left + "\0" + right, idiom))
                break
    rng.shuffle(found)
    split = {"train": found[:24], "dev": found[24:32]}
    tag_no = 0
    for name, items in split.items():
        lines, answers = [], {}
        for k in range(0, len(items), 2):
            group = items[k:k + 2]
            gold = []
            for _, idiom in group:
                if idiom not in gold:
                    gold.append(idiom)
            cands = gold + rng.sample([i for i in IDIOMS if i not in gold], 10 - len(gold))
            rng.shuffle(cands)
            content = []
            for passage, idiom in group:
                tag = f"#idiom{tag_no:06d}#"
                tag_no += 1
                content.append(passage.replace("\0", tag))
                answers[tag] = cands.index(idiom)
            lines.append(json.dumps({"candidates": cands, "content": content}, ensure_ascii=False))
        with open(os.path.join(HERE, f"{name}.json"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(HERE, f"{name}_answer.json"), "w", encoding="utf-8") as f:
            json.dump(answers, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(name, len(lines), "lines", len(answers), "blanks")


if __name__ == "__main__":
    main()
