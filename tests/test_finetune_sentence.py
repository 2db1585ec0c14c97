"""Sentence-embedding and prompt tasks: SimCSE (run_simcse.py), the siamese pair classifier
(run_classifier_siamese.py) and prompt-based classification with the MLM head (run_classifier_prompt.py)."""
import argparse
import json
import os

import pytest
import torch

from uer_like import build_model, save_model
from uer_like.errors import DataError
from uer_like.finetune import main, run
from uer_like.finetune.prompt import PromptTask
from uer_like.finetune.data import Encoder
from uer_like.tokenizers import build_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")
SIM = os.path.join(ROOT, "tests", "data", "similarity")
Q = ["--vocab_path", VOCAB, "--no_progress"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def one_line_error(capsys, task, argv):
    rc = main(task, argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """A randomly initialised tiny BERT (2 layers, hidden 128) saved as a UER file: the untrained model."""
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("untrained") / "bert.bin")
    save_model(build_model("bert/tiny_config.json", vocab_size=21128), path)
    return path


# ---------------------------------------------------------------------------------------------- SimCSE
def test_simcse_raises_spearman_over_the_untrained_model(tmp_path, untrained):
    dev = os.path.join(SIM, "dev.tsv")
    common = Q + ["--pretrained_model_path", untrained, "--pooling", "mean", "--seq_length", "32"]
    before = run("simcse", common + ["--test_path", dev])["test"]["spearman"]
    model, pred = str(tmp_path / "simcse.bin"), str(tmp_path / "sim.tsv")
    rep = run("simcse", common + ["--train_path", os.path.join(SIM, "train.tsv"), "--dev_path", dev, "--test_path", dev,
                                  "--epochs_num", "1", "--batch_size", "32", "--learning_rate", "1e-3",
                                  "--output_model_path", model, "--prediction_path", pred])
    after = rep["test"]["spearman"]
    assert after > before + 0.03, (before, after)
    # the fine-tuned encoder predicts as it is (no --train_path), its pooling read from the task settings
    rep2 = run("simcse", Q + ["--pretrained_model_path", model, "--test_path", dev, "--prediction_path", pred,
                              "--seq_length", "32"])
    assert rep2["test"]["spearman"] == pytest.approx(after, abs=1e-6)
    lines = open(pred, encoding="utf-8").read().splitlines()
    assert lines[0] == "similarity" and len(lines) == 101 and all(-1 <= float(x) <= 1.0001 for x in lines[1:])


def test_simcse_losses_unsupervised_and_supervised(tmp_path):
    """The loss is cross-entropy over cosine / temperature with the row's own partner as the answer; a
    text_c column adds every hard negative as a column."""
    from uer_like.finetune.simcse import SimCSETask, cosine_logits

    tok = build_tokenizer("bert", VOCAB)
    args = argparse.Namespace(seq_length=16, pooling="mean", temperature=0.05, pretrained_model_path=None)
    task = SimCSETask(args, Encoder(tok))
    from uer_like.config import load_config

    model = task.build_model(load_config("bert/tiny_config.json").replace(vocab_size=21128, dropout=0.0), 21128)
    model.eval()
    ex = [{"text_a": a, "text_b": b, "text_c": c, "label": None} for a, b, c in
          (("今天天气很好", "天气不错", "下雨了"), ("我喜欢读书", "读书使人快乐", "我讨厌书"), ("火车晚点了", "列车延误", "火车准时"))]
    batch = task.collate(task.encode(ex, train=True))
    with torch.no_grad():
        loss = task.loss(model, batch)
        u, v, n = (embed_each(task, model, [e[k] for e in ex]) for k in ("text_a", "text_b", "text_c"))
        ref = torch.nn.functional.cross_entropy(torch.cat([cosine_logits(u, v, 0.05), cosine_logits(u, n, 0.05)], 1),
                                                torch.arange(3))
    assert abs(float(loss) - float(ref)) < 1e-4
    unsup = task.collate(task.encode([dict(e, text_b=None, text_c=None) for e in ex], train=True))
    with pytest.raises(DataError, match="a text_c column .hard negatives. needs text_b"):
        task.read(write(tmp_path, "c.tsv", "text_a\ttext_c\n好\t差\n"), train=True)
    sup = write(tmp_path, "sup.tsv", "text_a\ttext_b\ttext_c\n" + "".join("\t".join((e["text_a"], e["text_b"], e["text_c"])) + "\n"
                                                                         for e in ex))
    rep = run("simcse", Q + ["--config_path", "bert/tiny_config.json", "--train_path", sup, "--max_steps", "1",
                             "--seq_length", "16", "--output_model_path", str(tmp_path / "sup.bin")])
    assert rep["history"][0]["steps"] == 1 and rep["history"][0]["train_loss"] > 0
    assert batch["parts"] == 3 and unsup["parts"] == 2 and torch.equal(unsup["src"][:3], unsup["src"][3:])


def embed_each(task, model, texts):
    """Each sentence alone through the model: [CLS] s [SEP], no padding."""
    from uer_like.finetune.simcse import encode_sentence

    rows = [encode_sentence(task.enc, t, task.args.seq_length) for t in texts]
    return torch.cat([model.embed(torch.tensor([src]), torch.tensor([seg])) for src, seg in rows])


# ---------------------------------------------------------------------------------------------- siamese
def test_siamese_trains_predicts_and_reloads(tmp_path):
    rows = [("1", "今天天气很好", "天气不错"), ("0", "我喜欢读书", "火车晚点了"), ("1", "列车延误", "火车晚点了"),
            ("0", "下雨了", "我喜欢读书")] * 3
    data = write(tmp_path, "pairs.tsv", "label\ttext_a\ttext_b\n" + "".join("\t".join(r) + "\n" for r in rows))
    model, pred = str(tmp_path / "siamese.bin"), str(tmp_path / "pred.tsv")
    rep = run("siamese", Q + ["--config_path", "bert/tiny_config.json", "--train_path", data, "--dev_path", data,
                              "--test_path", data, "--epochs_num", "3", "--batch_size", "4", "--seq_length", "16",
                              "--learning_rate", "1e-3", "--pooling", "mean", "--output_model_path", model])
    state = torch.load(model, weights_only=True)
    assert tuple(state["output_layer.weight"].shape) == (2, 4 * 128)
    rep2 = run("siamese", Q + ["--load_model_path", model, "--test_path", data, "--prediction_path", pred,
                               "--output_prob"])
    assert rep2["test"]["acc"] == pytest.approx(rep["test"]["acc"])
    lines = open(pred, encoding="utf-8").read().splitlines()
    assert lines[0] == "label\tprob" and len(lines) == 13
    assert json.load(open(str(tmp_path / "siamese_finetune.json")))["pooling"] == "mean"


def test_siamese_features_are_u_v_absdiff_product():
    from uer_like.config import load_config
    from uer_like.finetune.siamese import SiameseClassifier

    torch.manual_seed(0)
    m = SiameseClassifier(load_config("bert/tiny_config.json").replace(vocab_size=100, dropout=0.0), 100, 3,
                          pooling="first").eval()
    src = torch.randint(5, 100, (4, 7))
    seg = torch.ones(4, 7, dtype=torch.long)
    with torch.no_grad():
        u, v = m.encode(src[:2], seg[:2])[:, 0], m.encode(src[2:], seg[2:])[:, 0]
        ref = m.output_layer(torch.cat([u, v, (u - v).abs(), u * v], -1))
        assert torch.allclose(m(src, seg), ref, atol=1e-5)


# ---------------------------------------------------------------------------------------------- prompt
@pytest.fixture(scope="module")
def hf_mlm(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(1)
    cfg = transformers.BertConfig(vocab_size=21128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)
    ref = transformers.BertForMaskedLM(cfg).eval()
    with torch.no_grad():  # non-trivial layer norms and head bias, so that a mapping mistake shows
        for n, p in ref.named_parameters():
            if "LayerNorm" in n or n.endswith("predictions.bias"):
                p.add_(torch.randn_like(p) * 0.1)
    d = str(tmp_path_factory.mktemp("hf") / "mlm")
    ref.save_pretrained(d)
    return ref, d


def test_prompt_scores_equal_bert_for_masked_lm_logits(hf_mlm, tmp_path):
    ref, d = hf_mlm
    tok = build_tokenizer("bert", VOCAB)
    args = argparse.Namespace(seq_length=32, template="[TEXT_A]，我[MASK]满意", answer_words='{"0": "不", "1": "很"}',
                              prompt_path=None, prompt_id=None, output_prob=False)
    task = PromptTask(args, Encoder(tok))
    config, backbone, _ = task.load_backbone(d, None, 21128)
    model = task.build_model(config, 21128, backbone=backbone).eval()
    texts = ["这本书写得真好", "太差了，浪费时间", "一般般吧，还可以看看"]
    ex = [{"text_a": t, "text_b": None, "label": None} for t in texts]
    feats = task.encode(ex)
    batch = task.collate(feats)
    with torch.no_grad():
        ours = task.scores(model, batch)
        r = ref(input_ids=batch["src"], attention_mask=(batch["seg"] > 0).long()).logits
    words = [tok.vocab.get("不"), tok.vocab.get("很")]
    expect = r[torch.arange(3), batch["slot"]][:, words]
    assert all(batch["src"][i, f["slot"]] == tok.vocab.mask_id for i, f in enumerate(feats))
    assert (ours - expect).abs().max() < 1e-5
    # zero-shot from the command line: the predictions are the argmax of transformers' logits
    test = write(tmp_path, "t.tsv", "label\ttext_a\n" + "".join(f"{i % 2}\t{t}\n" for i, t in enumerate(texts)))
    pred = str(tmp_path / "pred.tsv")
    rep = run("prompt", Q + ["--pretrained_model_path", d, "--test_path", test, "--prediction_path", pred,
                             "--template", args.template, "--answer_words", args.answer_words, "--seq_length", "32"])
    lines = open(pred, encoding="utf-8").read().splitlines()[1:]
    assert lines == [str(int(i)) for i in expect.argmax(-1)] and rep["test"]["total"] == 3


def test_prompt_few_shot_training_learns_the_verbaliser(tmp_path, hf_mlm):
    """Few-shot training on the label-word logits, from a (random) MLM: the crafted task (a word in the text
    decides the label) is learned, and the fine-tuned model is an MLM checkpoint that predicts as it is."""
    _, d = hf_mlm
    rows = [(str(i % 2), ("好看" if i % 2 else "难看") + t) for i, t in enumerate(["的书", "的电影", "极了", "啊", "的故事", "的结局"] * 2)]
    data = write(tmp_path, "train.tsv", "label\ttext_a\n" + "".join(f"{a}\t{b}\n" for a, b in rows))
    prompts = write(tmp_path, "prompts.json", json.dumps({"review": {"template": "[TEXT_A]，我[ANS]满意",
                                                                     "answer_words": {"0": "不", "1": "很"}}}))
    model = str(tmp_path / "prompt.bin")
    flags = Q + ["--prompt_path", prompts, "--prompt_id", "review", "--seq_length", "24"]
    rep = run("prompt", flags + ["--pretrained_model_path", d, "--train_path", data, "--dev_path", data,
                                 "--test_path", data, "--epochs_num", "15", "--batch_size", "4", "--learning_rate", "3e-3",
                                 "--output_model_path", model])
    assert rep["test"]["acc"] == 1.0
    # used again as a pretrained MLM, its prompt read from the task settings beside it
    rep2 = run("prompt", Q + ["--pretrained_model_path", model, "--test_path", data, "--seq_length", "24"])
    assert rep2["test"]["acc"] == 1.0
    # exported to transformers as what it is, a masked LM: the label words' logits at the slot decide as here
    transformers = pytest.importorskip("transformers")
    from uer_like.io.hf_tasks import export_finetuned

    out = export_finetuned(model, str(tmp_path / "hf"), vocab=VOCAB)
    hf = transformers.AutoModelForMaskedLM.from_pretrained(out).eval()
    tok = build_tokenizer("bert", VOCAB)
    words = [tok.vocab.get("不"), tok.vocab.get("很")]
    for label, text in rows[:4]:
        ids = [tok.vocab.get("[CLS]")] + tok.ids(text + "，我") + [tok.vocab.mask_id] + tok.ids("满意") + [tok.vocab.get("[SEP]")]
        with torch.no_grad():
            logits = hf(input_ids=torch.tensor([ids])).logits[0, ids.index(tok.vocab.mask_id), words]
        assert str(int(logits.argmax())) == label


def test_prompt_pair_template_layout():
    tok = build_tokenizer("bert", VOCAB)
    args = argparse.Namespace(seq_length=12, template="[TEXT_A][ANS][TEXT_B]", answer_words='{"0": "是", "1": "否"}',
                              prompt_path=None, prompt_id=None, pretrained_model_path=None)
    task = PromptTask(args, Encoder(tok))
    f = task.encode([{"text_a": "今天下雨", "text_b": "天气很好吗", "label": "1"}])[0]
    v = tok.vocab
    ids = lambda s: [v.get(c) for c in s]  # noqa: E731
    # [CLS] a [SEP] [MASK] b [SEP], b cut first to fit 12 tokens (as UER-py)
    assert f["src"] == [v.get("[CLS]")] + ids("今天下雨") + [v.get("[SEP]"), v.mask_id] + ids("天气很好") + [v.get("[SEP]")]
    assert f["slot"] == 6 and f["label"] == 1 and f["seg"] == [1] * 12


def test_prompt_bad_inputs_one_line(tmp_path, capsys, hf_mlm, untrained):
    _, d = hf_mlm
    test = write(tmp_path, "t.tsv", "label\ttext_a\n0\t好\n")
    base = Q + ["--pretrained_model_path", d, "--test_path", test]
    err = one_line_error(capsys, "prompt", base + ["--template", "[TEXT_A]，我满意", "--answer_words", '{"0": "不", "1": "很"}'])
    assert "--template: the template '[TEXT_A]，我满意' has 0 answer slots" in err and "[ANS] (or [MASK])" in err
    err = one_line_error(capsys, "prompt", base + ["--template", "[TEXT_A]，我[MASK]", "--answer_words",
                                                   '{"0": "不满意", "1": "很满意"}'])
    assert "the answer word '不满意' of label 0 is 3 tokens (不 满 意)" in err and "one token" in err
    err = one_line_error(capsys, "prompt", base + ["--template", "[TEXT_A]，我[MASK]", "--answer_words", '{"0": "很", "1": "很"}'])
    assert "two labels share an answer word" in err
    bad = write(tmp_path, "b.tsv", "label\ttext_a\n2\t好\n")
    err = one_line_error(capsys, "prompt", Q + ["--pretrained_model_path", d, "--test_path", bad, "--template",
                                                "[TEXT_A]，我[MASK]", "--answer_words", '{"0": "不", "1": "很"}'])
    assert f"{bad}:2: label '2' has no answer word" in err
    no_mlm = str(tmp_path / "enc.bin")  # an encoder without an MLM head (a SimCSE model, say)
    from uer_like.finetune.simcse import SentenceEncoder
    from uer_like.config import load_config

    save_model(SentenceEncoder(load_config("bert/tiny_config.json").replace(vocab_size=21128, target=[]), 21128), no_mlm)
    err = one_line_error(capsys, "prompt", Q + ["--pretrained_model_path", no_mlm, "--test_path", test, "--template",
                                                "[TEXT_A]，我[MASK]", "--answer_words", '{"0": "不", "1": "很"}'])
    assert "no masked-LM head" in err


# ---------------------------------------------------------------------------------------------- sentence-transformers
@pytest.mark.parametrize("pooling", ["mean", "first"])
def test_sentence_transformers_directory_gives_the_same_embeddings(tmp_path, untrained, pooling):
    """The exported directory read by transformers (AutoModel, AutoTokenizer) with the pooling rule its
    modules.json / Pooling config name gives the SimCSE model's vectors (sentence-transformers itself read the
    same layout once: tests/data/similarity/README.md)."""
    transformers = pytest.importorskip("transformers")
    from uer_like.finetune.simcse import SimCSETask
    from uer_like.finetune.st_export import embed_with_transformers, export_sentence_transformers, read_pooling
    from uer_like.io.checkpoint import load_model

    model_path = str(tmp_path / "simcse.bin")
    run("simcse", Q + ["--pretrained_model_path", untrained, "--train_path", os.path.join(SIM, "train.tsv"),
                       "--max_steps", "2", "--batch_size", "8", "--pooling", pooling, "--seq_length", "32",
                       "--learning_rate", "1e-3", "--output_model_path", model_path])
    out = export_sentence_transformers(model_path, str(tmp_path / "st"), vocab=VOCAB)
    modules = json.load(open(os.path.join(out, "modules.json")))
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling"]
    assert read_pooling(out) == {"mean": "pooling_mode_mean_tokens", "first": "pooling_mode_cls_token"}[pooling]
    texts = ["今天天气很好，适合出去走走。", "这本书写得真好", "火车晚点了两个小时", "A股今天大涨3%"]
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    batch = hf_tok(texts, padding=True, return_tensors="pt")
    theirs = embed_with_transformers(out, batch["input_ids"], batch["attention_mask"])
    m = load_model(model_path, strict=False)
    tok = build_tokenizer("bert", VOCAB)
    args = argparse.Namespace(seq_length=32, pooling=None, pretrained_model_path=model_path, temperature=0.05)
    task = SimCSETask(args, Encoder(tok))
    assert task.pooling == pooling  # read from the task settings beside the model
    ours_model = task.build_model(m.config, 21128, backbone=(m.embedding, m.encoder)).eval()
    src = [task.encode([{"text_a": t, "text_b": t, "label": None}])[0]["src"] for t in texts]
    assert [s for s in src] == [[i for i in row if i] for row in batch["input_ids"].tolist()]  # the same tokens
    with torch.no_grad():
        ours = ours_model.embed(batch["input_ids"], batch["attention_mask"])
    assert (ours - theirs).abs().max() < 1e-5


def test_first_token_pooling_of_a_causal_model_is_refused(tmp_path, capsys):
    data = write(tmp_path, "pairs.tsv", "label\ttext_a\ttext_b\n1\t好\t很好\n0\t差\t很好\n")
    gpt = Q + ["--config_path", "gpt2/tiny_config.json", "--train_path", data, "--seq_length", "16"]
    for task in ("siamese", "simcse"):
        err = one_line_error(capsys, task, gpt)
        assert "--pooling first on a model with a causal mask" in err and "--pooling last or mean" in err
