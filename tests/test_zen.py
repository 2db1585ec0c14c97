"""ZEN (sinovation/ZEN): the n-gram matcher against ZEN's own, and its PyTorch release loaded into the `zen`
encoder against ZEN's own outputs. Fixture: tests/data/zen (made by ZEN's code; see its README.md)."""
import json
import logging
import os

import numpy as np
import pytest
import torch

import uer_like
from uer_like.data.ngram import NgramLexicon, ngram_inputs
from uer_like.encoders.zen import position_matrix
from uer_like.errors import ConfigError, DataError
from uer_like.tokenizers.bert import BertTokenizer
from uer_like.tokenizers.vocab import Vocab

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "data", "zen")
RELEASE = os.path.join(FIX, "release")
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
CORPUS = os.path.join(SHARED, "corpora", "CLUECorpusSmall_bert_sampled.txt")
GOOGLE_VOCAB = os.path.join(SHARED, "vocab", "google_zh_vocab.txt")
TOL = 1e-5


def _corpus_lines(n):
    out = []
    with open(CORPUS, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(line.strip())
                if len(out) == n:
                    break
    return out


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (conftest's one_torch_thread)."""


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(os.path.join(FIX, "reference.npz")))


@pytest.fixture(scope="module")
def model():
    m = uer_like.load_model(RELEASE)
    m.eval()
    return m


@pytest.mark.skipif(not os.path.isfile(CORPUS), reason="needs ../shared/data")
def test_matcher_equals_zens_on_corpus_lines():
    exp = np.load(os.path.join(FIX, "matches.npz"))
    counts = exp["counts"]
    vocab = Vocab.load(GOOGLE_VOCAB)
    tok = BertTokenizer(vocab)
    lex = NgramLexicon.load(os.path.join(RELEASE, "ngram.txt"), vocab)
    lines = _corpus_lines(len(counts))
    seq_length = int(exp["seq_length"])
    rows = [[vocab.cls_id] + tok.encode(line)[:seq_length - 2] + [vocab.sep_id] for line in lines]
    got = ngram_inputs(rows, lex, max_ngrams=10 ** 6)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for i, n in enumerate(counts):
        sl = slice(offsets[i], offsets[i + 1])
        assert (got["ngram_ids"][i] > 0).sum() == n, lines[i]
        for ours, zens in (("ngram_ids", "ngram_ids"), ("ngram_starts", "ngram_starts"),
                           ("ngram_lengths", "ngram_lengths")):
            assert got[ours][i, :n].tolist() == exp[zens][sl].tolist(), (lines[i], ours)
    assert counts.sum() > 1000 and (counts == 0).any()  # the lines exercise many matches and rows without any


def test_cap_keeps_zens_order_and_pads():
    vocab = Vocab.load(os.path.join(RELEASE, "vocab.txt"))
    lex = NgramLexicon.load(RELEASE, vocab)
    row = [vocab.cls_id] + BertTokenizer(vocab).encode("原油技术分析：回顾昨日行情：原油昨日小幅高开") + [vocab.sep_id]
    full = lex.match(row)
    assert len(full) > 3
    capped = ngram_inputs([row, row[:2]], lex, max_ngrams=3)
    assert capped["ngram_ids"].shape == (2, 3)
    assert capped["ngram_ids"][0].tolist() == [m[0] for m in full[:3]]
    assert capped["ngram_ids"][1].tolist() == [0, 0, 0]
    assert ngram_inputs([row[:2]], lex, 8)["ngram_ids"].shape == (1, 1)  # at least one (padding) column


def test_load_release_matches_zen(model, ref, caplog):
    with caplog.at_level(logging.INFO, logger="uer_like"):
        m = uer_like.load_model(RELEASE)
    assert "ZEN release" in caplog.text
    assert m.load_info.format == "zen" and m.config.encoder == "zen"
    assert (m.config.layers_num, m.config.ngram_layers_num, m.config.ngram_vocab_size) == (2, 1, 254)
    mask = torch.tensor(ref["input_mask"])
    src, seg = torch.tensor(ref["input_ids"]), (torch.tensor(ref["segment_ids"]) + 1) * mask
    ids, starts, lengths = (torch.tensor(ref[k]) for k in ("ngram_ids", "ngram_starts", "ngram_lengths"))
    assert torch.equal(position_matrix(starts, lengths, src.size(1)), torch.tensor(ref["ngram_positions"]).bool())
    with torch.no_grad():
        hidden = model.encode(src, seg, ngram_ids=ids, ngram_starts=starts, ngram_lengths=lengths)
        logits = model.target_logits(hidden, seg)
        pooled = torch.tanh(model.target.sp.linear_1(hidden[:, 0]))
    real = mask.bool()
    diffs = {"sequence": (hidden[real] - torch.tensor(ref["sequence_output"])).abs().max().item(),
             "pooled": (pooled - torch.tensor(ref["pooled_output"])).abs().max().item(),
             "sp": (logits["sp"] - torch.tensor(ref["sp_logits"])).abs().max().item(),
             "mlm": (logits["mlm"][:, :2] - torch.tensor(ref["mlm_logits_head"])).abs().max().item()}
    assert max(diffs.values()) < TOL, diffs
    # ZEN's n-gram segments: sentence A up to the first [SEP], B after (the pair row)
    real_ngrams = ids > 0
    assert torch.equal((seg.gather(1, starts) - 1)[real_ngrams], torch.tensor(ref["ngram_seg_ids"])[real_ngrams])
    assert (torch.tensor(ref["ngram_seg_ids"])[real_ngrams] == 1).any()


def test_data_path_builds_zens_inputs_and_features(model, ref):
    """Feature extraction tokenises, matches n-grams (one data path) and encodes as ZEN did."""
    from uer_like.io.features import build_text_encoder, extract_features

    texts = [tuple(t for t in json.loads(s) if t is not None) for s in ref["texts"]]
    encode = build_text_encoder(model)
    mask = ref["input_mask"].astype(bool)
    from uer_like.data.ngram import lexicon_for

    rows = [encode(*t)[0] for t in texts]
    got = ngram_inputs(rows, lexicon_for(model), model.config.max_ngrams)
    for i, row in enumerate(rows):
        assert row == ref["input_ids"][i][mask[i]].tolist()
        n = int(ref["ngram_masks"][i].sum())
        for k in ("ngram_ids", "ngram_starts", "ngram_lengths"):
            assert got[k][i, :n].tolist() == ref[k][i, :n].tolist() and not got[k][i, n:].any()
    feats = extract_features(model, texts, pooling="none", seq_length=64)
    assert np.abs(np.concatenate(feats) - ref["sequence_output"]).max() < TOL  # real tokens, row-major


def test_zen_needs_its_ngram_fields(model):
    src = torch.tensor([[2, 10, 11, 3]])
    seg = torch.ones_like(src)
    with pytest.raises(DataError, match="ngram_ids"):
        model.encode(src, seg)
    with pytest.raises(ConfigError, match="takes no input"):
        model.encode(src, seg, ngram_ids=src, ngram_starts=src, ngram_lengths=src, words=src)


def test_uer_round_trip(model, ref, tmp_path):
    path = str(tmp_path / "zen.bin")
    uer_like.save_model(model, path)
    again = uer_like.load_model(path)
    assert again.config.encoder == "zen"
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_config_checks():
    base = dict(encoder="zen", hidden_size=32, emb_size=32, heads_num=4, feedforward_size=64, layers_num=2,
                vocab_size=100)
    with pytest.raises(ConfigError, match="ngram_vocab_size"):
        uer_like.build_model(vocab_size=100, config=base)
    with pytest.raises(ConfigError, match="ngram_layers_num"):
        uer_like.build_model(vocab_size=100, config=dict(base, ngram_vocab_size=10, ngram_layers_num=3))
    cfg = uer_like.load_config(dict(base, ngram_vocab_size=10, ngram_layers_num=1))
    m = uer_like.build_model(cfg)
    assert len(m.encoder.ngram_transformer) == 1 and m.encoder.ngram_embedding.word.num_embeddings == 10


# ---------------------------------------------------------------------------------------------- pretraining
TINY_ZEN = {"emb_size": 32, "hidden_size": 32, "feedforward_size": 64, "heads_num": 4, "layers_num": 2,
            "max_seq_length": 64, "embedding": ["word", "pos", "seg"], "encoder": "zen", "ngram_vocab_size": 254,
            "ngram_layers_num": 1, "layernorm": "torch", "layernorm_eps": 1e-12, "target": ["mlm"],
            "data_processor": "mlm", "tie_weights": True}


@pytest.fixture(scope="module")
def mlm_dataset(tmp_path_factory):
    from conftest import SAMPLE_CORPUS
    from helpers import preprocess

    d = tmp_path_factory.mktemp("zen_pretrain")
    with open(SAMPLE_CORPUS, encoding="utf-8") as f:
        lines = [line.strip() for line in f if len(line.strip()) > 20][:64]
    path, _ = preprocess(str(d), "\n".join(lines) + "\n", data_processor="mlm", seq_length=64, corpus_format="line",
                         dynamic_masking=True)
    config = os.path.join(str(d), "zen_tiny.json")
    with open(config, "w") as f:
        json.dump(TINY_ZEN, f)
    return path, config


def test_zen_config_pretrains_with_ngrams_from_the_lexicon(mlm_dataset, tmp_path):
    from conftest import VOCAB
    from uer_like.training.trainer import TrainArgs, Trainer

    data, config = mlm_dataset
    args = TrainArgs(dataset_path=data, config=config, vocab_path=VOCAB, ngram_path=os.path.join(RELEASE, "ngram.txt"),
                     total_steps=3, batch_size=8, report_steps=1, learning_rate=1e-3,
                     output_model_path=str(tmp_path / "zen.bin"), precision="fp32", device="cpu")
    args.validate()
    trainer = Trainer(args)
    batch = trainer.collate(np.arange(8), 0)
    ids, starts, lengths = batch["ngram_ids"], batch["ngram_starts"], batch["ngram_lengths"]
    assert (ids > 0).sum() > 8  # real sentences match lexicon n-grams
    lex = NgramLexicon.load(RELEASE, Vocab.load(VOCAB))
    n_real = (batch["seg"] > 0).sum(1)
    for b in range(8):  # the same matches as the lexicon finds in the masked row the model sees
        assert [(int(i), int(s), int(n)) for i, s, n in zip(ids[b], starts[b], lengths[b]) if i > 0] == \
            lex.match(batch["src"][b, :n_real[b]])
    assert trainer.train() == 3
    again = uer_like.load_model(str(tmp_path / "zen.bin"))
    assert again.config.encoder == "zen" and again.config.ngram_vocab_size == 254


def test_zen_pretraining_without_a_lexicon_is_refused_in_one_line(mlm_dataset, tmp_path):
    from conftest import VOCAB
    from uer_like.training.trainer import TrainArgs, Trainer

    data, config = mlm_dataset
    args = TrainArgs(dataset_path=data, config=config, vocab_path=VOCAB, total_steps=1, batch_size=8,
                     output_model_path=str(tmp_path / "zen.bin"), precision="fp32", device="cpu")
    args.validate()
    with pytest.raises(ConfigError, match="--ngram_path") as e:
        Trainer(args)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------- fine-tuning
SAMPLES = os.path.join(SHARED, "datasets", "samples")


@pytest.mark.skipif(not os.path.isdir(SAMPLES), reason="needs ../shared/data")
def test_classifier_fine_tunes_a_zen_release_with_its_ngrams(tmp_path, capsys):
    from uer_like.finetune.cli import run

    out = str(tmp_path / "cls.bin")
    common = ["--epochs_num", "1", "--max_steps", "3", "--batch_size", "8", "--seq_length", "64", "--no_progress"]
    rep = run("classification", ["--pretrained_model_path", RELEASE, "--train_path",
                                 os.path.join(SAMPLES, "book_review", "dev.tsv"), "--test_path",
                                 os.path.join(SAMPLES, "book_review", "test.tsv"), "--output_model_path", out] + common)
    captured = capsys.readouterr()
    assert "n-grams of" in captured.out + captured.err  # the lexicon beside the release is matched in every batch
    meta = json.load(open(str(tmp_path / "cls_finetune.json")))
    assert meta["ngram_path"] == os.path.abspath(os.path.join(RELEASE, "ngram.txt"))
    again = run("classification", ["--load_model_path", out, "--vocab_path", os.path.join(RELEASE, "vocab.txt"),
                                   "--test_path", os.path.join(SAMPLES, "book_review", "test.tsv"), "--no_progress"])
    assert again["test"]["acc"] == rep["test"]["acc"]


def test_classification_batches_carry_the_ngrams_and_other_tasks_refuse_zen(tmp_path):
    from uer_like.finetune.cli import run
    from uer_like.finetune.classification import Classifier

    m = uer_like.load_model(RELEASE)
    clf = Classifier(m.config, m.vocab_size, 2, backbone=(m.embedding, m.encoder))
    src = torch.tensor([[2, 10, 11, 3]])
    with pytest.raises(DataError, match="ngram_ids"):  # a ZEN classifier never runs without its n-grams
        clf(src, torch.ones_like(src))
    with pytest.raises(ConfigError, match="does not feed encoder 'zen'") as e:
        run("tagging", ["--pretrained_model_path", RELEASE, "--train_path", os.path.join(SAMPLES, "msra_ner", "dev.tsv"),
                    "--label2id_path", os.path.join(SAMPLES, "msra_ner", "label2id.json"), "--max_steps", "1",
                    "--seq_length", "64", "--output_model_path", str(tmp_path / "ner.bin"), "--no_progress"])
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------- release variants
def _copy_release(tmp_path, state_edit=None, config_edit=None):
    import shutil

    d = tmp_path / "zen_release"
    shutil.copytree(RELEASE, d)
    if state_edit is not None:
        state = torch.load(d / "pytorch_model.bin", weights_only=True)
        torch.save(state_edit(state), d / "pytorch_model.bin")
    if config_edit is not None:
        cfg = json.load(open(d / "config.json"))
        json.dump(config_edit(cfg), open(d / "config.json", "w"))
    return str(d)


def test_gamma_beta_names_and_bert_config_json_load_the_same(model, tmp_path):
    """pytorch-pretrained-BERT's LayerNorm gamma/beta names, and the config as bert_config.json."""
    def old_names(state):
        return {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
                for k, v in state.items()}

    d = _copy_release(tmp_path, state_edit=old_names)
    os.rename(os.path.join(d, "config.json"), os.path.join(d, "bert_config.json"))
    again = uer_like.load_model(d)
    a, b = model.state_dict(), again.state_dict()
    assert again.load_info.format == "zen" and all(torch.equal(a[k], b[k]) for k in a)


def test_release_whose_config_and_weights_disagree_is_refused(tmp_path):
    from uer_like.errors import CheckpointError

    d = _copy_release(tmp_path, config_edit=lambda c: dict(c, word_size=c["word_size"] + 1))
    with pytest.raises(CheckpointError, match="word_size") as e:
        uer_like.load_model(d)
    assert "\n" not in str(e.value)


def test_extract_features_script_finds_the_lexicon_beside_the_release(tmp_path, ref, capsys):
    from helpers import run_cli

    texts = [json.loads(s)[0] for s in ref["texts"][:2]]
    inp, out = tmp_path / "in.txt", tmp_path / "feats.npy"
    inp.write_text("\n".join(texts) + "\n", encoding="utf-8")
    code, err = run_cli("scripts/extract_features.py", ["--model", RELEASE, "--input", inp, "--output", out,
                                                        "--pooling", "first"], capsys)
    assert code == 0, err
    cls_rows = np.cumsum([0] + [int(n) for n in ref["input_mask"].sum(1)])[:2]  # [CLS] of rows 0 and 1
    assert np.abs(np.load(out) - ref["sequence_output"][cls_rows]).max() < TOL
