"""Conversions: the UER fixtures round-trip UER -> HF -> UER exactly, and the conversions users trip on
(bert. prefix, missing pooler / NSP head, 3-row UER segments vs 2-row token types, RoBERTa-wwm-ext as
BERT, vocabulary size mismatches and resizing, seq_length beyond the position embedding), the CLI and
feature extraction."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from uer_like import CheckpointError, ConfigError  # noqa: E402
from conftest import need  # noqa: E402
from uer_like.io import load_model, resize_vocab, save_model  # noqa: E402
from uer_like.io.features import extract_features  # noqa: E402
from uer_like.model import build_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "..", "shared", "fixtures", "uer")
if not os.path.isdir(FIX):
    FIX = "/work/shared/fixtures/uer"
ZH_VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")
V = 99
SMALL = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=64)


def _vocab_file(path, n, extra=()):
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{i}" for i in range(n - 5)]
    toks = toks[:n] + list(extra)
    path.write_text("\n".join(toks) + "\n", encoding="utf-8")
    return str(path)


def _ids():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(5, V, (2, 10), generator=g)
    tt = torch.zeros_like(ids)
    tt[:, 6:] = 1
    return ids, tt


# ------------------------------------------------------------------------------------------ UER fixtures
@pytest.mark.parametrize("name", ["bert_tiny", "gpt2_tiny"])
def test_uer_fixture_roundtrip_uer_hf_uer(name, tmp_path):
    path, cfg = os.path.join(FIX, f"{name}.bin"), os.path.join(FIX, f"{name}_config.json")
    need(path)
    model = load_model(path, config=cfg)
    save_model(model, str(tmp_path / "hf"), format="hf")
    hf_cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf_cfg["model_type"] == ("gpt2" if name.startswith("gpt2") else "bert")
    again = load_model(str(tmp_path / "hf"))
    assert again.config.diff(model.config) == {}
    save_model(again, str(tmp_path / "back.bin"), format="uer")
    a = torch.load(path, weights_only=True)
    b = torch.load(str(tmp_path / "back.bin"), weights_only=True)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k], b[k]), k
    # the re-imported model still reproduces UER-py's numbers
    io = np.load(os.path.join(FIX, f"{name}_io.npz"))
    src, seg = torch.from_numpy(io["src"]).long(), torch.from_numpy(io["seg"]).long()
    with torch.no_grad():
        h = again.eval().encode(src, seg)
    assert (h - torch.from_numpy(io["encoder_output"])).abs().max().item() < 1e-5
    # the tokenizer files written with it tokenize as UER-py did
    texts = json.loads(open(os.path.join(FIX, f"{name}_texts.json"), encoding="utf-8").read())
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    first = tok.tokenize(texts["texts"][0][0])
    assert len(first) > 5 and first == texts["tokens"][0][:len(first)]


def test_uer_fixture_features_match_encoder_output():
    path, cfg = os.path.join(FIX, "bert_tiny.bin"), os.path.join(FIX, "bert_tiny_config.json")
    need(path)
    model = load_model(path, config=cfg, vocab=ZH_VOCAB)
    texts = json.loads(open(os.path.join(FIX, "bert_tiny_texts.json"), encoding="utf-8").read())["texts"]
    io = np.load(os.path.join(FIX, "bert_tiny_io.npz"))
    feats = extract_features(model, [tuple(t) if len(t) == 2 else t[0] for t in texts], seq_length=32, pooling="none")
    for i, f in enumerate(feats):
        n = int((io["seg"][i] > 0).sum())
        assert f.shape[0] == n
        assert np.abs(f - io["encoder_output"][i, :n]).max() < 1e-5
        assert (torch.from_numpy(io["src"][i, :n]) > 0).all()


# ------------------------------------------------------------------------------------------ prefixes, heads
def test_bert_keys_with_and_without_prefix_and_pooler_only(tmp_path):
    torch.manual_seed(0)
    bare = transformers.BertModel(transformers.BertConfig(**SMALL)).eval()  # saved without `bert.`, with pooler
    bare.save_pretrained(tmp_path / "bare")
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "bare" / "model.safetensors"))
    assert not any(k.startswith("bert.") for k in keys) and "pooler.dense.weight" in keys
    model = load_model(str(tmp_path / "bare")).eval()
    assert model.config.target == ["pooler"]
    ids, tt = _ids()
    with torch.no_grad():
        ref = bare(input_ids=ids, token_type_ids=tt)
        h = model.encode(ids, tt + 1)
        pooled = model.target_logits(h)["pooler"]
    assert (h - ref.last_hidden_state).abs().max() < 1e-5
    assert (pooled - ref.pooler_output).abs().max() < 1e-5
    save_model(model, str(tmp_path / "out"), format="hf")
    back = transformers.AutoModel.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        out = back(input_ids=ids, token_type_ids=tt)
    assert torch.equal(out.pooler_output, ref.pooler_output)

    # the same weights with the `bert.` prefix (as inside BertFor* checkpoints) load to the same model
    from safetensors.torch import save_file

    (tmp_path / "prefixed").mkdir()
    save_file({"bert." + k: v.contiguous() for k, v in keys.items()}, str(tmp_path / "prefixed" / "model.safetensors"))
    (tmp_path / "prefixed" / "config.json").write_text((tmp_path / "bare" / "config.json").read_text())
    prefixed = load_model(str(tmp_path / "prefixed"))
    for k, v in model.state_dict().items():
        assert torch.equal(v, prefixed.state_dict()[k]), k


def test_missing_pooler_and_nsp_head(tmp_path):
    torch.manual_seed(0)
    T = transformers
    T.BertModel(T.BertConfig(**SMALL), add_pooling_layer=False).save_pretrained(tmp_path / "nopool")
    assert load_model(str(tmp_path / "nopool")).config.target == []
    T.BertForMaskedLM(T.BertConfig(**SMALL)).save_pretrained(tmp_path / "mlm")
    m = load_model(str(tmp_path / "mlm"))
    assert m.config.target == ["mlm"]
    save_model(m, str(tmp_path / "mlm_out"), format="hf")
    assert json.loads((tmp_path / "mlm_out" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]

    # a pre-training checkpoint whose NSP head was dropped keeps its pooler
    full = T.BertForPreTraining(T.BertConfig(**SMALL)).eval()
    full.save_pretrained(tmp_path / "pt")
    from safetensors.torch import load_file, save_file

    sd = load_file(str(tmp_path / "pt" / "model.safetensors"))
    save_file({k: v for k, v in sd.items() if not k.startswith("cls.seq_relationship")},
              str(tmp_path / "pt" / "model.safetensors"))
    m = load_model(str(tmp_path / "pt"))
    assert m.config.target == ["mlm", "pooler"]
    ids, tt = _ids()
    with torch.no_grad():
        ref = full.bert(input_ids=ids, token_type_ids=tt).pooler_output
        assert (m.eval().target_logits(m.encode(ids, tt + 1))["pooler"] - ref).abs().max() < 1e-5


def test_segments_three_rows_vs_two_token_types(tmp_path):
    torch.manual_seed(0)
    T = transformers
    hf = T.BertForMaskedLM(T.BertConfig(**SMALL)).eval()
    hf.save_pretrained(tmp_path / "hf")
    m = load_model(str(tmp_path / "hf")).eval()
    seg_w = m.embedding.seg.embedding.weight
    tt_w = hf.bert.embeddings.token_type_embeddings.weight
    assert seg_w.shape == (3, 32) and tt_w.shape == (2, 32)
    assert torch.equal(seg_w[0], torch.zeros(32))          # UER padding row: zero, as UER-py's converter
    assert torch.equal(seg_w[1:], tt_w.detach())           # UER segment s = HF token type s - 1
    # padded batch: UER seg = (token_type + 1) * attention_mask; equal at every non-padding position
    ids, tt = _ids()
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.no_grad():
        ref = hf.bert(input_ids=ids, attention_mask=mask, token_type_ids=tt).last_hidden_state
        h = m.encode(ids, (tt + 1) * mask)
    assert (h - ref)[mask.bool()].abs().max() < 1e-5
    # a UER model whose padding row is not zero keeps it through HF (config.json uer_like.segment_padding_row)
    uer = build_model("bert/tiny", vocab_size=V, hidden_size=32, emb_size=32, feedforward_size=37, heads_num=4,
                      max_seq_length=64)
    save_model(uer, str(tmp_path / "uer_hf"), format="hf")
    cfg = json.loads((tmp_path / "uer_hf" / "config.json").read_text())
    assert cfg["type_vocab_size"] == 2 and len(cfg["uer_like"]["segment_padding_row"]) == 32
    back = load_model(str(tmp_path / "uer_hf"))
    assert torch.equal(back.embedding.seg.embedding.weight, uer.embedding.seg.embedding.weight)


def test_roberta_wwm_ext_is_bert(tmp_path):
    """Chinese RoBERTa-wwm-ext / MacBERT are BERT architecture (model_type bert, bert.* keys, token types,
    positions from 0): they load as BERT, and uer_like's own 'roberta' configs export as BERT too."""
    T = transformers
    torch.manual_seed(0)
    cfg = T.BertConfig(**SMALL)
    cfg.architectures = ["BertForMaskedLM"]
    T.BertForMaskedLM(cfg).save_pretrained(tmp_path / "wwm")
    m = load_model(str(tmp_path / "wwm"))
    assert m.config.position_offset == 0 and m.load_info.family == "bert"
    save_model(m, str(tmp_path / "out"), format="hf")
    out_cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert out_cfg["model_type"] == "bert" and out_cfg["type_vocab_size"] == 2
    uer_roberta = build_model("roberta/base", vocab_size=V, hidden_size=32, emb_size=32, feedforward_size=37,
                              heads_num=4, layers_num=2, max_seq_length=64)
    save_model(uer_roberta, str(tmp_path / "uer_roberta"), format="hf")
    c = json.loads((tmp_path / "uer_roberta" / "config.json").read_text())
    assert c["model_type"] == "bert" and c["architectures"] == ["BertForMaskedLM"]
    assert isinstance(T.AutoModelForMaskedLM.from_pretrained(tmp_path / "uer_roberta"), T.BertForMaskedLM)


# ------------------------------------------------------------------------------------------ vocabulary, lengths
def test_vocabulary_size_mismatch_names_both_sizes_and_files(tmp_path):
    T = transformers
    T.BertForMaskedLM(T.BertConfig(**SMALL)).save_pretrained(tmp_path / "hf")
    for n in (V + 21, V - 19):
        vocab = _vocab_file(tmp_path / f"vocab_{n}.txt", n)
        with pytest.raises(CheckpointError) as e:
            load_model(str(tmp_path / "hf"), vocab=vocab)
        msg = str(e.value)
        assert str(n) in msg and str(V) in msg and vocab in msg and str(tmp_path / "hf") in msg
    # a vocab.txt shipped inside the directory that is larger than the embedding is refused too
    _vocab_file(tmp_path / "hf" / "vocab.txt", V + 1)
    with pytest.raises(CheckpointError, match="100 tokens"):
        load_model(str(tmp_path / "hf"))


def test_resize_vocab_keeps_known_rows(tmp_path):
    torch.manual_seed(0)
    T = transformers
    T.BertForMaskedLM(T.BertConfig(**SMALL)).save_pretrained(tmp_path / "hf")
    old = _vocab_file(tmp_path / "old.txt", V)
    model = load_model(str(tmp_path / "hf"), vocab=old)
    old_tokens = open(old, encoding="utf-8").read().split("\n")[:V]
    # domain vocabulary: drop 10 tokens, reorder, add 7 new ones
    new_tokens = old_tokens[:5] + list(reversed(old_tokens[15:])) + [f"domain{i}" for i in range(7)]
    (tmp_path / "new.txt").write_text("\n".join(new_tokens) + "\n", encoding="utf-8")
    resized, report = resize_vocab(model, old, str(tmp_path / "new.txt"))
    assert report["kept"] == len(new_tokens) - 7 and len(report["new"]) == 7 and report["dropped"] == 10
    w_old, w_new = model.embedding.word.embedding.weight, resized.embedding.word.embedding.weight
    assert w_new.shape == (len(new_tokens), 32)
    for i, t in enumerate(new_tokens):
        if not t.startswith("domain"):
            j = old_tokens.index(t)
            assert torch.equal(w_new[i], w_old[j])
            assert resized.target.mlm.linear_2.bias[i] == model.target.mlm.linear_2.bias[j]
    assert resized.target.mlm.linear_2.weight is resized.embedding.word.embedding.weight  # still tied
    load_model(str(tmp_path / "hf"), vocab=old)  # unchanged original still loads
    save_model(resized, str(tmp_path / "resized"), format="hf", vocab=str(tmp_path / "new.txt"))
    assert load_model(str(tmp_path / "resized")).vocab_size == len(new_tokens)


def test_seq_length_above_max_position_embeddings_fails_at_start(tmp_path):
    T = transformers
    T.BertForMaskedLM(T.BertConfig(**SMALL)).save_pretrained(tmp_path / "bert")
    T.RobertaForMaskedLM(T.RobertaConfig(**SMALL)).save_pretrained(tmp_path / "roberta")
    load_model(str(tmp_path / "bert"), seq_length=64)
    with pytest.raises(ConfigError, match="seq_length 65 exceeds .*max_seq_length 64"):
        load_model(str(tmp_path / "bert"), seq_length=65)
    # RoBERTa's positions start at padding_idx + 1: 64 rows hold 62 positions
    load_model(str(tmp_path / "roberta"), seq_length=62)
    with pytest.raises(ConfigError, match="seq_length 63"):
        load_model(str(tmp_path / "roberta"), seq_length=63)


# ------------------------------------------------------------------------------------------ CLI
def _run(script, *args):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), *args], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    return r


def test_convert_cli(tmp_path):
    T = transformers
    T.BertForPreTraining(T.BertConfig(**SMALL)).save_pretrained(tmp_path / "hf")
    _vocab_file(tmp_path / "hf" / "vocab.txt", V)
    r = _run("convert.py", "--input", str(tmp_path / "hf"), "--output", str(tmp_path / "m.bin"), "--to", "uer")
    assert r.returncode == 0, r.stderr
    sd = torch.load(str(tmp_path / "m.bin"), weights_only=True)
    assert "encoder.transformer.0.self_attn.linear_layers.0.weight" in sd and "target.sp.linear_2.weight" in sd
    r = _run("convert.py", "--input", str(tmp_path / "m.bin"), "--output", str(tmp_path / "back"), "--to", "hf",
             "--vocab_path", str(tmp_path / "hf" / "vocab.txt"))
    assert r.returncode == 0, r.stderr
    a = T.BertForPreTraining.from_pretrained(tmp_path / "hf").state_dict()
    b = T.BertForPreTraining.from_pretrained(tmp_path / "back").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    r = _run("convert.py", "--input", str(tmp_path / "hf"), "--output", str(tmp_path / "m.safetensors"),
             "--to", "safetensors")
    assert r.returncode == 0, r.stderr
    assert load_model(str(tmp_path / "m.safetensors")).config.target == ["mlm", "sp"]
    r = _run("convert.py", "--input", str(tmp_path / "nothing"), "--output", str(tmp_path / "x"), "--to", "hf")
    assert r.returncode == 2 and "error:" in r.stderr
    (tmp_path / "texts.txt").write_text("tok1 tok2 tok3\ntok4\ttok5 tok6\n", encoding="utf-8")
    r = _run("extract_features.py", "--model", str(tmp_path / "hf"), "--input", str(tmp_path / "texts.txt"),
             "--output", str(tmp_path / "f.npy"), "--pooling", "first")
    assert r.returncode == 0, r.stderr
    assert np.load(str(tmp_path / "f.npy")).shape == (2, 32)


def test_old_style_pytorch_model_bin_and_sharded_checkpoints(tmp_path):
    """Released checkpoints of earlier transformers versions: pytorch_model.bin with LayerNorm gamma/beta names,
    saved position_ids buffers and the tied decoder weight stored again; and sharded checkpoints."""
    T = transformers
    torch.manual_seed(0)
    hf = T.BertForPreTraining(T.BertConfig(**SMALL)).eval()
    hf.save_pretrained(tmp_path / "new")
    sd = {k: v.clone() for k, v in hf.state_dict().items()}
    old = {}
    for k, v in sd.items():
        if "LayerNorm" in k:
            k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        old[k] = v
    old["bert.embeddings.position_ids"] = torch.arange(64)[None]
    old["cls.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"].clone()
    (tmp_path / "old").mkdir()
    torch.save(old, tmp_path / "old" / "pytorch_model.bin")
    (tmp_path / "old" / "config.json").write_text((tmp_path / "new" / "config.json").read_text())
    a, b = load_model(str(tmp_path / "new")), load_model(str(tmp_path / "old"))
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    # the weights file alone, with the config beside it, loads the same
    c = load_model(str(tmp_path / "old" / "pytorch_model.bin"))
    assert torch.equal(c.target.sp.linear_2.weight, a.target.sp.linear_2.weight)

    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    d = load_model(str(tmp_path / "sharded"))
    for k, v in a.state_dict().items():
        assert torch.equal(v, d.state_dict()[k]), k


def test_hf_export_carries_the_release_tokenizer(tmp_path):
    T = transformers
    torch.manual_seed(0)
    T.BertForMaskedLM(T.BertConfig(**SMALL)).save_pretrained(tmp_path / "hf")
    vocab = _vocab_file(tmp_path / "v.txt", V)
    T.BertTokenizer(vocab, do_lower_case=True).save_pretrained(tmp_path / "hf")
    model = load_model(str(tmp_path / "hf"))
    save_model(model, str(tmp_path / "out"), format="hf")
    assert {"tokenizer_config.json"} <= set(os.listdir(tmp_path / "out"))
    a = T.AutoTokenizer.from_pretrained(tmp_path / "hf")
    b = T.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert a("tok1 tok7 tok93 zzz")["input_ids"] == b("tok1 tok7 tok93 zzz")["input_ids"]
    feats = extract_features(model, ["tok1 tok7", ("tok3", "tok4 tok5")], pooling="mean")
    assert feats.shape == (2, 32) and np.isfinite(feats).all()


def test_model_without_segments_exports_with_a_zero_token_type(tmp_path):
    model = build_model("bert/tiny", vocab_size=V, hidden_size=32, emb_size=32, feedforward_size=37, heads_num=4,
                        max_seq_length=16, embedding=["word", "pos"], layernorm="torch").eval()
    save_model(model, str(tmp_path / "hf"), format="hf")
    hf, info = transformers.BertForPreTraining.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ids = torch.randint(5, V, (2, 8))
    with torch.no_grad():
        d = (model.encode(ids, torch.ones_like(ids)) - hf.eval().bert(input_ids=ids).last_hidden_state).abs().max()
    assert d <= 1e-5
