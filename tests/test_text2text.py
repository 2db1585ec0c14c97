"""finetune/run_text2text.py (uer_like/finetune/text2text.py): a tiny T5 and a tiny BART fine-tuned on the toy
set of tests/data/text2text learn it (exact match from ~0 to well above); the best model reloads for inference
(labelled and unlabelled test files) and exports to a Hugging Face directory that transformers'
AutoModelForSeq2SeqLM loads with the same logits; the character metrics equal sacrebleu's and rouge_score's;
bad input is one line naming the file and line."""
import json
import os
import shutil

import pytest
import torch

import uer_like
from uer_like.errors import ConfigError, DataError
from uer_like.finetune.cli import run
from uer_like.finetune.text_metrics import char_bleu, exact_match, lcs_length, rouge_l

HERE = os.path.dirname(os.path.abspath(__file__))
D = os.path.join(HERE, "data", "text2text")
HF = os.path.join(HERE, "..", "..", "shared", "fixtures", "seq2seq")
# the toy set is learnt in a few hundred steps by both tiny models (see the README of tests/data/text2text): BART
# (absolute positions) in 4 epochs of 38 steps, T5 (relative position buckets, no attention scale) in 8; its
# exact match at the end of each epoch is the least the test asks (BEST)
TRAIN = {"t5": ["--learning_rate", "2e-3", "--epochs_num", "12"], "bart": ["--learning_rate", "4e-3", "--epochs_num", "4"]}
BEST = {"t5": 0.4, "bart": 0.6}


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


def common(name, tmp_path):
    return ["--config_path", os.path.join(D, f"{name}_config.json"), "--vocab_path", os.path.join(D, "vocab.txt"),
            "--seq_length", "16", "--tgt_seq_length", "8", "--batch_size", "32", "--warmup", "0", "--scheduler", "constant",
            "--dropout", "0",
            "--precision", "fp32", "--no_progress", "--report_steps", "1000", "--seed", "7",
            "--output_model_path", str(tmp_path / f"{name}.bin")]


def read_predictions(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")


@pytest.fixture(scope="module", params=["t5", "bart"])
def trained(request, tmp_path_factory):
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    untrained = run("text2text", common(name, tmp) + ["--train_path", os.path.join(D, "train.tsv"), "--dev_path",
                                                      os.path.join(D, "dev.tsv"), "--max_steps", "1"] + TRAIN[name]
                    + ["--output_model_path", str(tmp / "untrained.bin")])
    rep = run("text2text", common(name, tmp) + TRAIN[name] + [
        "--train_path", os.path.join(D, "train.tsv"), "--dev_path", os.path.join(D, "dev.tsv"),
        "--test_path", os.path.join(D, "test.tsv"), "--prediction_path", str(tmp / "pred.tsv")])
    return name, tmp, untrained, rep


def test_fine_tuning_learns_the_toy_task(trained):
    name, tmp, untrained, rep = trained
    before = untrained["history"][0]["dev"]["exact_match"]
    best = max(h["dev"]["exact_match"] for h in rep["history"])
    assert before <= 0.05 and best >= BEST[name], (name, before, [h["dev"] for h in rep["history"]])
    assert rep["test"]["exact_match"] >= BEST[name] - 0.1 and rep["test"]["rouge_l"] > 0.7
    # the reported test figures are those of the predictions written
    preds = read_predictions(tmp / "pred.tsv")
    assert preds[0] == "label" and preds[-1] == "" and len(preds) == 52
    with open(os.path.join(D, "test.tsv"), encoding="utf-8") as f:
        golds = [line.split("\t")[1] for line in f.read().splitlines()[1:]]
    assert exact_match(preds[1:-1], golds) == pytest.approx(rep["test"]["exact_match"])
    assert char_bleu(preds[1:-1], golds) == pytest.approx(rep["test"]["bleu"])
    with open(tmp / f"{name}_finetune.json") as f:
        meta = json.load(f)
    assert meta["task"] == "text2text" and meta["tgt_seq_length"] == 8
    assert (meta["decoder_start_token_id"], meta["eos_token_id"]) == (2, 3)  # [CLS], [SEP] of vocab.txt


def test_inference_from_the_fine_tuned_model(trained):
    name, tmp, _, rep = trained
    model = str(tmp / f"{name}.bin")
    again = run("text2text", ["--load_model_path", model, "--vocab_path", os.path.join(D, "vocab.txt"),
                              "--test_path", os.path.join(D, "test.tsv"), "--prediction_path", str(tmp / "again.tsv"),
                              "--no_progress", "--precision", "fp32"])
    assert again["test"] == rep["test"]
    # a test file without targets: predictions only, the same ones
    plain = run("text2text", ["--load_model_path", model, "--vocab_path", os.path.join(D, "vocab.txt"),
                              "--test_path", os.path.join(D, "test_nolabel.tsv"), "--prediction_path",
                              str(tmp / "plain.tsv"), "--no_progress", "--precision", "fp32"])
    assert "test" not in plain
    assert read_predictions(tmp / "plain.tsv") == read_predictions(tmp / "pred.tsv")
    # beam search from the flag, over the saved greedy default
    beam = run("text2text", ["--load_model_path", model, "--vocab_path", os.path.join(D, "vocab.txt"),
                             "--test_path", os.path.join(D, "test.tsv"), "--num_beams", "3", "--no_progress",
                             "--precision", "fp32"])
    assert beam["test"]["exact_match"] >= BEST[name] - 0.1


def test_hf_export_loads_in_transformers_with_the_same_logits(trained):
    transformers = pytest.importorskip("transformers")
    name, tmp, _, _ = trained
    m = uer_like.load_model(str(tmp / f"{name}.bin")).eval()
    out = tmp / "hf"
    uer_like.save_model(m, str(out), format="hf", vocab=os.path.join(D, "vocab.txt"))
    hf, info = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    src = torch.tensor([[2, 5, 9, 12, 3, 0], [2, 16, 7, 8, 10, 3]])
    seg = (src > 0).long()
    tgt = torch.tensor([[2, 6, 10, 13], [2, 5, 8, 9]])
    with torch.no_grad():
        want = hf.eval()(input_ids=src, attention_mask=seg, decoder_input_ids=tgt).logits
        mine = m.target_logits(m.decode(tgt, torch.ones_like(tgt), m.memory(m.encode(src, seg), seg)))["lm"]
    assert (mine - want).abs().max() <= 1e-5
    # and the fine-tuned model's generations are transformers' own
    ids = uer_like.generate(m, [[2, 5, 9, 12, 3]], 7, eos_token_id=3, decoder_start_token_id=2)[0]
    with torch.no_grad():
        hf_ids = hf.generate(input_ids=src[:1, :5], max_new_tokens=7, do_sample=False, num_beams=1, eos_token_id=3,
                             decoder_start_token_id=2, pad_token_id=0)[0, 1:].tolist()
    assert ids == hf_ids[:len(ids)]


def test_metrics_equal_sacrebleu_and_rouge_score():
    with open(os.path.join(D, "metrics_reference.json"), encoding="utf-8") as f:
        ref = json.load(f)
    for name, c in ref["corpora"].items():
        assert char_bleu(c["preds"], c["golds"]) == pytest.approx(c["bleu"], abs=1e-9), name
        assert rouge_l(c["preds"], c["golds"]) == pytest.approx(c["rouge_l"], abs=1e-12), name
    assert lcs_length("ABCBDAB", "BDCABA") == 4 and lcs_length("", "abc") == 0


def test_bad_input_is_one_line(tmp_path):
    base = common("bart", tmp_path) + ["--epochs_num", "1", "--max_steps", "1"]
    good = os.path.join(D, "train.tsv")

    def fails(error, match, argv):
        with pytest.raises(error, match=match) as e:
            run("text2text", argv)
        assert "\n" not in str(e.value)

    # a text-to-text file with a missing column: the file and line
    bad = tmp_path / "bad.tsv"
    bad.write_text("text_a\tlabel\n天地\t地人\n春夏\n", encoding="utf-8")
    fails(DataError, rf"{bad}:3: expected 2 tab-separated columns \(text_a, label\), got 1", base + ["--train_path", str(bad)])
    nolabel = os.path.join(D, "test_nolabel.tsv")
    fails(DataError, rf"{nolabel}:1: the header \['text_a'\] lacks the column\(s\) label", base + ["--train_path", nolabel])
    # a model without a decoder
    fails(ConfigError, "bert/tiny_config.json has no decoder .*run_text2text.py fine-tunes T5 / BART",
          base + ["--train_path", good, "--config_path", "bert/tiny_config.json"])
    # sources and targets longer than the positions
    fails(ConfigError, "--seq_length 100 exceeds the model's max_seq_length 64",
          base + ["--train_path", good, "--seq_length", "100"])
    fails(ConfigError, r"--tgt_seq_length 65 exceeds the decoder's position table \(max_seq_length 64\)",
          base + ["--train_path", good, "--tgt_seq_length", "65"])
    # a model fine-tuned for another task, or pretrained without a decoder, given as a fine-tuned text2text model
    bert = tmp_path / "bert.bin"
    uer_like.save_model(uer_like.build_model("bert/tiny_config.json", 17), str(bert))
    fails(Exception, "no decoder", ["--load_model_path", str(bert), "--vocab_path", os.path.join(D, "vocab.txt"),
                                     "--test_path", nolabel])


def test_long_sources_are_cut_with_one_warning_naming_the_first(tmp_path, caplog):
    long = tmp_path / "long.tsv"
    long.write_text("text_a\tlabel\n天地\t地人\n" + "天" * 30 + "\t地\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        run("text2text", common("bart", tmp_path) + ["--train_path", str(long), "--epochs_num", "1"])
    assert f"1 of 2 sources are longer than --seq_length 16 tokens and were cut to it (the first: {long}:3)" in caplog.text


def test_release_generation_settings_are_the_defaults(tmp_path, caplog):
    """A Hugging Face release's generation_config.json (else its config.json) gives the defaults: beams, its rules
    (no_repeat_ngram_size) and its decoder start / end ids; what generation does not apply is named in a warning."""
    from conftest import need

    need(HF)
    rel = tmp_path / "bart"
    shutil.copytree(os.path.join(HF, "bart"), rel)
    with open(rel / "generation_config.json", encoding="utf-8") as f:
        gen = json.load(f)
    gen.update(num_beams=3, no_repeat_ngram_size=3, encoder_no_repeat_ngram_size=3)
    with open(rel / "generation_config.json", "w", encoding="utf-8") as f:
        json.dump(gen, f)
    m = uer_like.load_model(str(rel))
    got = uer_like.generation.release_defaults(m)
    assert got["num_beams"] == 3 and got["decoder_start_token_id"] == 101 and got["eos_token_id"] == 102
    assert got["no_repeat_ngram_size"] == 3 and got["unsupported"] == {"encoder_no_repeat_ngram_size": 3}
    out = tmp_path / "ft.bin"
    with caplog.at_level("WARNING"):
        rep = run("text2text", ["--pretrained_model_path", str(rel), "--train_path", os.path.join(D, "dev.tsv"),
                                "--dev_path", os.path.join(D, "dev.tsv"), "--max_steps", "1", "--epochs_num", "1",
                                "--seq_length", "16", "--tgt_seq_length", "4", "--output_model_path", str(out),
                                "--no_progress", "--precision", "fp32"])
    assert "encoder_no_repeat_ngram_size 3, which uer_like.generate does not apply" in caplog.text
    assert rep["history"][0]["dev"]["total"] == 50
    with open(tmp_path / "ft_finetune.json") as f:
        meta = json.load(f)
    assert (meta["num_beams"], meta["decoder_start_token_id"], meta["eos_token_id"]) == (3, 101, 102)
    assert meta["no_repeat_ngram_size"] == 3  # the release's rule is applied (and kept with the fine-tuned model)
