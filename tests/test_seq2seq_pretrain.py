"""Encoder-decoder pretraining (UER-py's t5, bart and gsg processors, data/seq2seq.py): each objective's instances
on handmade documents, the batches the collator makes of them, the refusals of a dataset that does not fit the
config, and a tiny T5 and a tiny BART pretraining on the bundled corpus (loss falls, a killed run resumes exactly,
the result generates)."""
import json
import os
import signal
import sys

import numpy as np
import pytest
import torch

import uer_like
from uer_like.config import load_config
from conftest import ROOT, SAMPLE_CORPUS, VOCAB
from helpers import preprocess
from uer_like.data.dataset import Dataset
from uer_like.data.processors import Sentence
from uer_like.data.rng import SplitMix64
from uer_like.data.seq2seq import bart_instances, bart_pair, gap_sentences, gsg_instances, sentinel_ids, t5_pair
from uer_like.errors import ConfigError, DataError
from uer_like.tokenizers import Vocab
from uer_like.training.batches import Collator

SENTINEL_VOCAB = os.path.join(ROOT, "models", "google_zh_with_sentinel_vocab.txt")
CLS, SEP, MASK = 101, 102, 103


def sent(*ids):
    return Sentence(list(ids), [1] * len(ids))


# ------------------------------------------------------------------------------------------ the objectives
def test_t5_spans_become_sentinels_and_the_target_lists_them():
    s = [900, 901, 902, 903]
    ids = [CLS, 10, 11, 12, 13, 14, 15, SEP]
    # positions 2, 3 (one run) and 5; with static masks the stored ids there may be [MASK], random or kept
    src, tgt = t5_pair([CLS, 10, MASK, 77, 13, MASK, 15, SEP], [2, 3, 5], [11, 12, 14], s, CLS, SEP)
    assert src == [CLS, 10, 900, 13, 901, 15, SEP]
    assert tgt == [CLS, 900, 11, 12, 901, 14, 902, SEP]
    # adjacent runs are one span; past the last sentinel the last is reused (UER-py stops at the vocabulary's end)
    src, tgt = t5_pair(ids, [1, 2, 4, 6], [10, 11, 13, 15], s[:2], CLS, SEP)
    assert src == [CLS, 900, 12, 901, 14, 901, SEP]
    assert tgt == [CLS, 900, 10, 11, 901, 13, 901, 15, 901, SEP]


def test_sentinels_come_from_the_vocabulary_by_name():
    v = Vocab.load(SENTINEL_VOCAB)
    ids = sentinel_ids(v)
    assert len(ids) == 100 and ids[0] == 21128 and v.i2w[ids[99]] == "<extra_id_99>"
    with pytest.raises(DataError, match="sentinel tokens <extra_id_0>.*google_zh_with_sentinel_vocab.txt") as e:
        sentinel_ids(Vocab.load(VOCAB))
    assert "\n" not in str(e.value)


def test_bart_infilling_makes_each_mask_run_one_mask():
    assert bart_pair([CLS, 5, MASK, MASK, MASK, 6, MASK, 7, MASK, SEP], [CLS, 1, SEP], MASK) == \
        ([CLS, 5, MASK, 6, MASK, 7, MASK, SEP], [CLS, 1, SEP])


def test_bart_instances_permute_whole_sentences_of_pieces_under_seq_length():
    doc = [sent(1, 2, 3), sent(4, 5), sent(6, 7, 8, 9), sent(*range(20, 40)), sent(10, 11, 15, 16, 17),
           sent(12, 13, 14)]
    insts = bart_instances([doc], SplitMix64(1, 2), 16, CLS, SEP)
    # seq_length 16: pieces of whole sentences under 14 tokens; the 20-token sentence is skipped
    pieces = [[[1, 2, 3], [4, 5], [6, 7, 8, 9]], [[10, 11, 15, 16, 17], [12, 13, 14]]]
    assert len(insts) == 2
    permuted = False
    for inst, piece in zip(insts, pieces):
        a = inst.seg_a_len
        src, tgt = inst.ids[:a], inst.ids[a:]
        assert tgt == [CLS] + sum(piece, []) + [SEP] and len(src) == len(tgt) and src[0] == CLS and src[-1] == SEP
        # the source is the same sentences in some order
        rest, order = src[1:-1], []
        while rest:
            s = next(s for s in piece if rest[:len(s)] == s)
            order.append(s)
            rest = rest[len(s):]
        assert sorted(order) == sorted(piece)
        permuted |= order != piece
        assert len(inst.bits) == len(inst.ids)
    draws = [[i.ids for i in bart_instances([doc], SplitMix64(1, k), 16, CLS, SEP)] for k in range(8)]
    assert permuted or len({str(d) for d in draws}) > 1  # the order is drawn


def test_gsg_masks_the_gap_sentences_by_the_rule():
    doc = [sent(10 + k, 50 + k) for k in range(10)]
    (inst,) = gsg_instances([doc], SplitMix64(1), 64, 64, "lead", CLS, SEP, MASK)
    a = inst.seg_a_len
    # lead: round(0.3 x 10) = 3 first sentences go to the target, one [MASK] each in the source
    assert inst.ids[:a] == [CLS, MASK, MASK, MASK] + sum(([10 + k, 50 + k] for k in range(3, 10)), []) + [SEP]
    assert inst.ids[a:] == [CLS, 10, 50, 11, 51, 12, 52, SEP]
    for seed in range(5):
        gaps = gap_sentences(10, "random", SplitMix64(seed))
        assert len(gaps) == 3 and max(gaps) < 9  # UER-py draws from all but the last sentence
    assert gap_sentences(5, "lead", None) == {0, 1}  # Python's round(1.5)
    # a target that outgrows tgt_seq_length starts a new instance
    insts = gsg_instances([doc], SplitMix64(1), 64, 8, "lead", CLS, SEP, MASK)
    assert [i.ids[i.seg_a_len:] for i in insts] == [[CLS, 10, 50, 11, 51, SEP], [CLS, 12, 52, SEP]]


# ------------------------------------------------------------------------------------------ datasets and batches
DOCS = "".join("".join(f"{t}的第{k}句话有几个字。\n" for k in range(8)) + "\n"
               for t in ("今天天气很好", "我们一起去公园", "学校门口有一家书店", "他在北京工作三年"))


def _ds(tmp_path, name, **kw):
    kw.setdefault("vocab_path", SENTINEL_VOCAB)
    kw.setdefault("seq_length", 32)
    return preprocess(str(tmp_path), DOCS * 3, name=name, corpus_format="bert", **kw)


def _words(v, ids):
    return [v.i2w[i] for i in ids if i]


@pytest.mark.parametrize("static", [True, False])
def test_t5_batches_hide_spans_behind_sentinels(tmp_path, static):
    v = Vocab.load(SENTINEL_VOCAB)
    path, m = _ds(tmp_path, "t5.bin", data_processor="t5", span_masking=True, dynamic_masking=not static)
    assert m["special_ids"]["sentinels"] == sentinel_ids(v)
    ds = Dataset(path)
    batch = Collator(ds, ["lm"], 3, decoder="transformer")(list(range(len(ds))), 0)
    src, seg, tgt_in, tgt_out, tgt_seg = (batch[k].numpy() for k in ("src", "seg", "tgt_in", "tgt_out", "tgt_seg"))
    sentinels = set(m["special_ids"]["sentinels"])
    hidden = total = 0
    assert (tgt_in[:, 0] == CLS).all() and ((tgt_seg > 0) == (tgt_in > 0)).all() and ((seg > 0) == (src > 0)).all()
    for b, i in enumerate(range(len(ds))):
        s = src[b][seg[b] > 0].tolist()
        t = [CLS] + tgt_out[b][tgt_seg[b] > 0].tolist()
        assert t[-1] == SEP and t[-2] in sentinels and t[1] in sentinels  # (an instance without spans: [CLS] s0)
        assert tgt_in[b][tgt_seg[b] > 0].tolist() == t[:-1]
        # each sentinel of the source stands for the tokens after it in the target: putting them back gives the
        # instance as preprocessing stored it (unmasked: the stored masks say what was there)
        spans, cur = {}, None
        for x in t[1:-2]:
            if x in sentinels:
                cur = spans.setdefault(x, [])
            else:
                cur.append(x)
        assert [x for x in s if x in sentinels] == list(spans) and all(spans.values())
        assert len(spans) == 0 or t[-2] not in spans  # the closing sentinel is a new one
        restored = sum(([x] if x not in sentinels else spans[x] for x in s), [])
        original = ds.instance_ids(i).tolist()
        if static:
            pos, labels = ds.instance_masks(i)
            for p, lab in zip(pos.tolist(), labels.tolist()):
                original[p] = lab
        assert restored == original
        hidden += sum(map(len, spans.values()))
        total += len(original) - 2
    assert 0.1 < hidden / total < 0.2  # mask_prob 0.15 of the tokens


def test_bart_batches_mask_the_permuted_source_and_predict_the_document(tmp_path):
    v = Vocab.load(SENTINEL_VOCAB)
    path, m = _ds(tmp_path, "bart.bin", data_processor="bart", span_masking=True, dynamic_masking=True,
                  span_max_length=5, span_geo_prob=0.3, seq_length=64)  # three sentences a piece
    assert m["tgt_seq_length"] == 64 and m["masking"]["strategy"] == "span"
    ds = Dataset(path)
    c = Collator(ds, ["lm"], 3, decoder="transformer")
    batch = c(list(range(len(ds))), 0)
    permuted = shrunk = 0
    for b in range(len(ds)):
        row, a = ds.instance_ids(b).tolist(), int(ds.seg_a_len[b])
        tgt = [CLS] + batch["tgt_out"][b][batch["tgt_seg"][b] > 0].tolist()
        assert tgt == row[a:]  # the target: the sentences in order
        assert sorted(row[:a]) == sorted(row[a:]) and a == len(row) - a
        permuted += row[:a] != row[a:]
        src = batch["src"][b][batch["seg"][b] > 0].tolist()
        assert src[0] == CLS and src[-1] == SEP and len(src) <= a
        shrunk += len(src) < a  # (a span may be kept or made random tokens instead: 10% and 10%)
        assert not any(x == y == MASK for x, y in zip(src, src[1:]))  # each run of [MASK] is one
    assert permuted > len(ds) // 2 and shrunk > len(ds) // 2  # spans of several tokens: one [MASK] each
    # dynamic: another epoch, other masks; the same epoch, the same masks (a resumed run reads the same)
    again = c(list(range(len(ds))), 0)
    assert torch.equal(again["src"], batch["src"]) and not torch.equal(c(list(range(len(ds))), 1)["src"], batch["src"])
    assert "".join(_words(v, batch["tgt_in"][0].tolist())).startswith("[CLS]")


def test_gsg_batches(tmp_path):
    path, m = _ds(tmp_path, "gsg.bin", data_processor="gsg", tgt_seq_length=24)
    assert m["sentence_selection_strategy"] == "lead" and m["tgt_seq_length"] == 24
    ds = Dataset(path)
    batch = Collator(ds, ["lm"], 3, decoder="transformer")(list(range(len(ds))), 0)
    for b in range(len(ds)):
        src = batch["src"][b][batch["seg"][b] > 0].tolist()
        tgt = [CLS] + batch["tgt_out"][b][batch["tgt_seg"][b] > 0].tolist()
        assert src == ds.instance_ids(b).tolist()[:int(ds.seg_a_len[b])] and MASK in src
        assert len(tgt) <= 24 and tgt[-1] == SEP


def test_native_t5_is_mlm_in_c_and_bart_gsg_take_the_python_path(tmp_path, caplog):
    from uer_like.data import native

    if not native.AVAILABLE:
        pytest.skip("uer_like._native is not built")
    a, _ = _ds(tmp_path, "py.bin", data_processor="t5", implementation="python")
    b, _ = _ds(tmp_path, "c.bin", data_processor="t5", implementation="native")
    assert open(a, "rb").read() == open(b, "rb").read()
    with pytest.raises(DataError, match="--implementation native: the 'bart' processor has no native implementation"):
        _ds(tmp_path, "n.bin", data_processor="bart", implementation="native")
    with caplog.at_level("INFO", logger="uer_like"):
        _ds(tmp_path, "auto.bin", data_processor="gsg")
    assert "using the Python implementation (the 'gsg' processor has no native implementation)" in caplog.text


def test_t5_needs_sentinels_and_the_masking_it_knows(tmp_path):
    with pytest.raises(DataError, match="lacks: use models/google_zh_with_sentinel_vocab.txt"):
        _ds(tmp_path, "a.bin", data_processor="t5", vocab_path=VOCAB)
    with pytest.raises(DataError, match="the bart processor masks tokens or spans"):
        _ds(tmp_path, "b.bin", data_processor="bart", ngram_masking=True)


def _args(tmp_path, ds, config, **kw):
    from uer_like.training.trainer import TrainArgs

    return TrainArgs(dataset_path=ds, config=config, total_steps=1, batch_size=2, save_checkpoint_steps=1000,
                     output_model_path=str(tmp_path / "m.bin"), **kw)


def test_a_dataset_that_does_not_fit_the_config_is_refused_in_one_line(tmp_path):
    from uer_like.training.trainer import Trainer

    t5, _ = _ds(tmp_path, "t5.bin", data_processor="t5", dynamic_masking=True)
    bart, _ = _ds(tmp_path, "bart.bin", data_processor="bart", dynamic_masking=True)
    mlm, _ = _ds(tmp_path, "mlm.bin", data_processor="mlm", dynamic_masking=True)
    cases = [(t5, "bert/tiny_config.json", DataError, "needs batch field 'mlm_pos', which a dataset made with "
                                                      "data_processor 't5' cannot supply"),
             (mlm, "t5/tiny_config.json", DataError, "decoder 'transformer' needs batch field 'tgt_in', which a "
                                                     "dataset made with data_processor 'mlm' cannot supply"),
             (bart, "t5/tiny_config.json", DataError, "made with data_processor 'bart', but the config "
                                                      "t5/tiny_config.json pretrains with 't5'"),
             (t5, "gpt2/tiny_config.json", DataError, "cannot supply \\(no next_tokens\\)")]
    for ds, config, err, msg in cases:
        with pytest.raises(err, match=msg) as e:
            Trainer(_args(tmp_path, ds, config))
        assert "\n" not in str(e.value), config
    # a span-masked dataset and a config that says otherwise
    span, _ = _ds(tmp_path, "span.bin", data_processor="t5", dynamic_masking=True, span_masking=True)
    with pytest.raises(DataError, match="made with span_max_length 10, but the model config says 3"):
        Trainer(_args(tmp_path, span, "t5/tiny_config.json",
                      config_overrides=dict(span_masking=True, span_max_length=3)))
    # gsg targets longer than the decoder's position table
    gsg, _ = _ds(tmp_path, "gsg.bin", data_processor="gsg", tgt_seq_length=64)
    with pytest.raises(ConfigError, match="tgt_seq_length 64 tokens, beyond the model's max_seq_length 48"):
        Trainer(_args(tmp_path, gsg, "pegasus/tiny_config.json", config_overrides=dict(max_seq_length=48)))


# ------------------------------------------------------------------------------------------ pretraining
TINY = dict(emb_size=64, hidden_size=64, feedforward_size=128)
OBJECTIVES = {"t5": ("t5/tiny_config.json", SENTINEL_VOCAB), "bart": ("bart/tiny_config.json", VOCAB)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A slice of the bundled corpus (documents of sentences), preprocessed for t5 and for bart as UER-py's
    instructions do (dynamic span masking)."""
    d = tmp_path_factory.mktemp("s2s")
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:40000]
    out = {}
    for proc, (_, vocab) in OBJECTIVES.items():
        out[proc], m = preprocess(str(d), text[:text.rfind("\n\n") + 2], name=f"{proc}.bin", data_processor=proc,
                                  seq_length=64, corpus_format="bert", vocab_path=vocab, dynamic_masking=True,
                                  span_masking=True, span_geo_prob=0.3, span_max_length=5)
        assert m["instances"] >= 200
        config = load_config(OBJECTIVES[proc][0], **TINY).to_dict()
        out[proc + "_config"] = os.path.join(str(d), f"{proc}_tiny.json")
        with open(out[proc + "_config"], "w") as f:
            json.dump(config, f)
    return out


def cmd(corpus, proc, out, steps, extra=()):
    return [sys.executable, os.path.join(ROOT, "pretrain.py"), "--config", corpus[proc + "_config"],
            "--dataset_path", corpus[proc],
            "--output_model_path", os.path.join(out, "model.bin"), "--total_steps", str(steps), "--batch_size", "16",
            "--report_steps", "10", "--learning_rate", "2e-3", "--warmup", "0.1", "--seed", "3", "--precision", "fp32",
            "--deterministic", "--trace_path", os.path.join(out, "trace.jsonl"),
            "--span_masking", "--span_geo_prob", "0.3", "--span_max_length", "5", *extra]  # UER-py's T5 flags


@pytest.mark.parametrize("proc", ["t5", "bart"])
def test_tiny_model_pretrains_with_its_objective_and_generates(corpus, proc, tmp_path, one_torch_thread, capsys):
    from uer_like.training.trainer import Trainer

    args = _args(tmp_path, corpus[proc], OBJECTIVES[proc][0], trace_path=str(tmp_path / "trace.jsonl"),
                 config_overrides=dict(TINY, span_masking=True, span_geo_prob=0.3, span_max_length=5),
                 dev_fraction=0.05, eval_steps=20, eval_batches=2)
    args.total_steps, args.batch_size, args.learning_rate, args.warmup, args.seed = 40, 8, 2e-3, 0.1, 3
    Trainer(args).train()
    losses = [json.loads(line)["loss"] for line in open(tmp_path / "trace.jsonl")]
    assert len(losses) == 40 and np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.5, losses
    # the held-out instances: the decoder's lm loss and perplexity, falling
    dev = [json.loads(line) for line in open(tmp_path / "m_checkpoints" / "dev_eval.jsonl")]
    assert [d["step"] for d in dev] == [20, 40] and dev[1]["targets"]["lm"]["loss"] < dev[0]["targets"]["lm"]["loss"]
    assert dev[1]["targets"]["lm"]["ppl"] > 1
    model = uer_like.load_model(str(tmp_path / "m.bin")).eval()
    assert model.config.decoder == "transformer" and model.config.data_processor == proc
    # on a batch of other masks than training drew, the trained model's loss is far below the untrained one's
    ds = Dataset(corpus[proc])
    batch = Collator(ds, ["lm"], 11, decoder="transformer")(list(range(16)), 5)
    torch.manual_seed(3)
    untrained = uer_like.build_model(model.config).eval()
    with torch.no_grad():
        loss, loss0 = model(batch)["loss"].item(), untrained(batch)["loss"].item()
    assert loss < loss0 - 1.5, (loss, loss0)
    src = batch["src"][:2][:, :int((batch["seg"][0] > 0).sum())].tolist()
    out = uer_like.generate(model, [src[0]], 12, decoder_start_token_id=CLS, eos_token_id=SEP)
    assert 1 <= len(out[0]) <= 12 and all(0 <= t < model.vocab_size for t in out[0])
    # and from text, with UER-py's script and the dataset's vocabulary
    from helpers import run_cli

    (tmp_path / "src.txt").write_text("今天天气很好，我们一起去公园。\n他在北京工作三年。\n", encoding="utf-8")
    code, err = run_cli("scripts/generate_seq2seq.py", ["--load_model_path", tmp_path / "m.bin", "--vocab_path",
                                                        OBJECTIVES[proc][1], "--test_path", tmp_path / "src.txt",
                                                        "--prediction_path", tmp_path / "out.txt", "--seq_length", 32,
                                                        "--tgt_seq_length", 8, "--top_k", 1], capsys)
    assert code in (0, None), err
    assert len((tmp_path / "out.txt").read_text(encoding="utf-8").splitlines()) == 2
    # then fine-tuned from those weights with run_text2text on the shipped text-to-text set (its vocabulary the
    # pretraining's), predicting the test file
    from uer_like.finetune.cli import run

    t2t = os.path.join(ROOT, "tests", "data", "text2text")
    rep = run("text2text", ["--pretrained_model_path", str(tmp_path / "m.bin"), "--vocab_path", OBJECTIVES[proc][1],
                            "--train_path", os.path.join(t2t, "train.tsv"), "--dev_path", os.path.join(t2t, "dev.tsv"),
                            "--test_path", os.path.join(t2t, "test.tsv"), "--prediction_path", str(tmp_path / "p.tsv"),
                            "--seq_length", "16", "--tgt_seq_length", "8", "--batch_size", "32", "--epochs_num", "1",
                            "--learning_rate", "2e-3", "--precision", "fp32", "--no_progress", "--seed", "7",
                            "--output_model_path", str(tmp_path / "t2t.bin")])
    assert rep["test"]["total"] == 50 and len(read_lines(tmp_path / "p.tsv")) == 1 + 50  # header + one per line
    # the fine-tuned model is the pretrained one trained further: the same architecture and vocabulary, new weights
    tuned = uer_like.load_model(str(tmp_path / "t2t.bin")).eval()
    assert tuned.config.decoder == "transformer" and tuned.vocab_size == model.vocab_size
    w = "encoder.transformer.0.self_attn.qkv.weight"
    assert not torch.equal(tuned.state_dict()[w], model.state_dict()[w])


def read_lines(path):
    return open(path, encoding="utf-8").read().splitlines()


def test_t5_killed_and_resumed_trains_exactly_as_uninterrupted(corpus, tmp_path):
    from test_resume import assert_same_run, resumed_step, run, run_until_step, trace

    ref, out = str(tmp_path / "ref"), str(tmp_path / "killed")
    extra = ["--save_checkpoint_steps", "2"]
    run(cmd(corpus, "t5", ref, 6, extra))
    code, _ = run_until_step(cmd(corpus, "t5", out, 6, extra), 3, out=out)
    assert code == -signal.SIGKILL
    r = run(cmd(corpus, "t5", out, 6, extra))
    assert resumed_step(r.stderr) is not None
    assert len(trace(ref)) == 6
    assert_same_run(ref, out)


def test_preprocess_command_takes_the_sentinel_vocabulary_for_t5(tmp_path, capsys):
    from helpers import run_cli

    (tmp_path / "c.txt").write_text(DOCS, encoding="utf-8")
    code, err = run_cli("preprocess.py", ["--corpus_path", tmp_path / "c.txt", "--dataset_path", tmp_path / "t5.bin",
                                          "--data_processor", "t5", "--seq_length", 32, "--dynamic_masking"], capsys)
    assert code in (0, None), err
    assert Dataset(str(tmp_path / "t5.bin")).manifest["vocab"]["file"] == "google_zh_with_sentinel_vocab.txt"
    code, err = run_cli("preprocess.py", ["--corpus_path", tmp_path / "c.txt", "--dataset_path", tmp_path / "g.bin",
                                          "--data_processor", "gsg", "--sentence_selection_strategy", "first"], capsys)
    assert code == 2 and "invalid choice: 'first'" in err
