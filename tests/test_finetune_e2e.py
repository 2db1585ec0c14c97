"""End to end on the real samples (tiny model, a few steps): train with dev selection, test evaluation,
inference from the saved fine-tuned model, and fine-tuning from the framework's own pretrained output."""
import json
import os

import pytest
import torch

from uer_like import build_model, save_model
from uer_like.finetune import core
from uer_like.finetune.cli import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "..", "shared", "data", "datasets", "samples")
VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")

pytestmark = pytest.mark.skipif(not os.path.isdir(SAMPLES), reason=f"{SAMPLES} is not here: the team's shared "
                                "fine-tuning samples (../shared beside the checkout) are needed")
COMMON = ["--config_path", "bert/tiny_config.json", "--vocab_path", VOCAB, "--epochs_num", "2", "--max_steps", "4",
          "--batch_size", "16", "--learning_rate", "1e-3", "--no_progress"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def s(*parts):
    return os.path.join(SAMPLES, *parts)


def test_classifier_train_then_infer(tmp_path):
    model = str(tmp_path / "cls.bin")
    rep = run("classification", COMMON + ["--train_path", s("book_review", "train.tsv"), "--dev_path", s("book_review", "dev.tsv"),
                                          "--test_path", s("book_review", "test.tsv"), "--output_model_path", model,
                                          "--seq_length", "64"])
    assert rep["history"][0]["dev"]["total"] == 50
    assert os.path.isfile(model) and json.load(open(str(tmp_path / "cls_finetune.json")))["labels_num"] == 2
    assert json.load(open(str(tmp_path / "cls_report.json")))["test"]["acc"] == rep["test"]["acc"]
    pred = str(tmp_path / "pred.tsv")
    rep2 = run("classification", ["--load_model_path", model, "--vocab_path", VOCAB, "--test_path", s("book_review", "test.tsv"),
                                  "--prediction_path", pred, "--output_prob", "--no_progress"])
    assert rep2["test"]["acc"] == rep["test"]["acc"]  # the best checkpoint was reloaded, same predictions
    lines = open(pred, encoding="utf-8").read().splitlines()
    assert lines[0] == "label\tprob" and len(lines) == 51
    gold = [l.split("\t")[0] for l in open(s("book_review", "test.tsv"), encoding="utf-8").read().splitlines()[1:]]
    hits = [p.split("\t")[0] == g for p, g in zip(lines[1:], gold)]
    assert rep["test"]["acc"] == pytest.approx(sum(hits) / len(hits))  # the reported accuracy is the predictions'
    # unlabeled test file: predictions only
    rep3 = run("classification", ["--load_model_path", model, "--vocab_path", VOCAB, "--test_path",
                                  s("book_review", "test_nolabel.tsv"), "--prediction_path", pred, "--no_progress"])
    assert "test" not in rep3 and len(open(pred, encoding="utf-8").read().splitlines()) == 51


def test_classifier_learns_an_easy_task(tmp_path):
    """Sentences of 'praise' characters against sentences of 'complaint' characters: a tiny model from random
    init must learn it in a few dozen steps (chance is 0.5)."""
    import random

    rng = random.Random(0)
    words = {"1": "好棒赞喜欢爱优秀精彩推荐", "0": "差烂糟讨厌恨失望无聊垃圾"}

    def write(name, n):
        rows = ["label\ttext_a"]
        for i in range(n):
            label = str(i % 2)
            rows.append(label + "\t" + "".join(rng.choice(words[label]) for _ in range(rng.randint(4, 12))))
        (tmp_path / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
        return str(tmp_path / name)

    rep = run("classification", COMMON[:COMMON.index("--epochs_num")] + [
        "--train_path", write("train.tsv", 160), "--dev_path", write("dev.tsv", 40), "--test_path",
        write("test.tsv", 40), "--output_model_path", str(tmp_path / "cls.bin"), "--seq_length", "16",
        "--epochs_num", "3", "--batch_size", "16", "--learning_rate", "1e-3", "--no_progress", "--seed", "3"])
    assert rep["test"]["acc"] >= 0.9, rep["test"]


def test_ner_crf_train_then_infer(tmp_path):
    model = str(tmp_path / "ner.bin")
    rep = run("tagging", COMMON + ["--train_path", s("msra_ner", "train.tsv"), "--dev_path", s("msra_ner", "dev.tsv"),
                                   "--label2id_path", s("msra_ner", "label2id.json"), "--crf_target",
                                   "--output_model_path", model, "--seq_length", "64"])
    assert set(rep["history"][0]["dev"]) >= {"precision", "recall", "f1"}
    pred = str(tmp_path / "pred.tsv")
    rep2 = run("tagging", ["--load_model_path", model, "--vocab_path", VOCAB, "--test_path", s("msra_ner", "test.tsv"),
                           "--prediction_path", pred, "--no_progress"])
    assert "f1" in rep2["test"]
    gold = open(s("msra_ner", "test.tsv"), encoding="utf-8").read().splitlines()[1:]
    pred_lines = open(pred, encoding="utf-8").read().splitlines()
    assert pred_lines[0] == "pred" and len(pred_lines) == len(gold) + 1
    for g, p in zip(gold, pred_lines[1:]):  # one tag per character, long sentences included (windows)
        assert len(p.split(" ")) == len(g.split("\t")[0].split(" "))


def test_cmrc_train_then_infer(tmp_path):
    model = str(tmp_path / "mrc.bin")
    rep = run("mrc", COMMON + ["--train_path", s("cmrc", "train.json"), "--dev_path", s("cmrc", "dev.json"),
                               "--output_model_path", model, "--seq_length", "128", "--doc_stride", "64"])
    assert set(rep["history"][-1]["dev"]) >= {"em", "f1"}
    pred = str(tmp_path / "pred.json")
    run("mrc", ["--load_model_path", model, "--vocab_path", VOCAB, "--test_path", s("cmrc", "test.json"),
                "--prediction_path", pred, "--no_progress"])
    preds = json.load(open(pred, encoding="utf-8"))
    data = json.load(open(s("cmrc", "test.json"), encoding="utf-8"))
    contexts = [p["context"] for a in data["data"] for p in a["paragraphs"]]
    assert len(preds) == 5 and all(v and any(v in c for c in contexts) for v in preds.values())


def test_finetune_from_framework_pretrained_output(tmp_path):
    torch.manual_seed(0)
    pre = build_model("bert/tiny_config.json", vocab_size=21128)
    path = str(tmp_path / "pretrained.bin")
    save_model(pre, path)
    config, (emb, encoder), pooler = core.load_backbone(path, None, 21128)
    assert torch.equal(pooler["weight"], pre.target.sp.linear_1.weight)
    assert torch.equal(emb.word.embedding.weight, pre.embedding.word.embedding.weight)
    rep = run("classification", ["--pretrained_model_path", path, "--vocab_path", VOCAB, "--train_path",
                                 s("chnsenticorp", "train.tsv"), "--dev_path", s("chnsenticorp", "dev.tsv"),
                                 "--output_model_path", str(tmp_path / "ft.bin"), "--max_steps", "2",
                                 "--epochs_num", "1", "--seq_length", "32", "--no_progress"])
    assert len(rep["history"]) == 1


def test_finetune_from_hugging_face_directory(tmp_path):
    """A Hugging Face BERT directory goes through uer_like.load_model; its vocab.txt is picked up, its pooler
    starts output_layer_1, and with the classifier copied the logits equal transformers' (dropout off)."""
    transformers = pytest.importorskip("transformers")
    vocab = open(VOCAB, encoding="utf-8").read().splitlines()[:3000]
    hf_dir = tmp_path / "hf"
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0, num_labels=2)
    torch.manual_seed(0)
    ref = transformers.BertForSequenceClassification(cfg).eval()
    ref.save_pretrained(str(hf_dir))
    (hf_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    out = str(tmp_path / "ft.bin")
    run("classification", ["--pretrained_model_path", str(hf_dir), "--train_path", s("book_review", "train.tsv"),
                           "--output_model_path", out, "--max_steps", "1", "--epochs_num", "1", "--learning_rate", "1e-30",
                           "--warmup", "0", "--seq_length", "32", "--no_progress"])
    from uer_like.finetune.cli import build_parser, make_task
    from uer_like.finetune.data import Encoder
    from uer_like.tokenizers import build_tokenizer

    args = build_parser("classification").parse_args(["--seq_length", "32"])
    enc = Encoder(build_tokenizer("bert", str(hf_dir / "vocab.txt")))
    task = make_task("classification", args, enc, {"labels_num": 2})
    config, _, _ = core.load_backbone(None, str(tmp_path / "ft_config.json"), len(vocab))
    model = core.load_finetuned(task.build_model(config, len(vocab)), out).eval()
    with torch.no_grad():  # lr 1e-30 (0 is refused): the weights stay the loaded ones; give it HF's classifier
        model.output_layer_2.weight.copy_(ref.classifier.weight)
        model.output_layer_2.bias.copy_(ref.classifier.bias)
        assert torch.equal(model.output_layer_1.weight, ref.bert.pooler.dense.weight)
        text = "这本书很好看，推荐！"
        ids = torch.tensor([[enc.cls_id] + enc.ids(text) + [enc.sep_id]])
        ours = model(ids, torch.ones_like(ids))
        theirs = ref(input_ids=ids).logits
    assert (ours - theirs).abs().max() < 1e-5
