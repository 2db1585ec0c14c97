"""NEZHA, RoFormer, ERNIE and XLNet beyond weight parity (which test_io_hf.py checks against transformers):
NEZHA against its reference implementation's fixture, the one-line errors, XLNet's tokenizer, and for each
family a tiny model that pretrains on the bundled corpus and fine-tunes with every finetune script."""
import json
import os
import runpy
import sys

import numpy as np
import pytest
import torch

import uer_like
from uer_like.errors import ConfigError, DataError
from uer_like.io import load_model, save_model
from conftest import FIXTURES, ROOT, SAMPLE_CORPUS, SHARED, VOCAB, need
from helpers import preprocess

NEZHA = os.path.join(FIXTURES, "nezha")
SAMPLES = os.path.join(SHARED, "data", "datasets", "samples")
TINY = dict(emb_size=64, hidden_size=64, feedforward_size=128, heads_num=4, layers_num=2, max_seq_length=128,
            dropout=0.0)
# each family at its release's config, shrunk; the MLM families pretrain MLM only (one shared dataset)
FAMILIES = {
    "nezha": ("nezha/base_config.json", dict(target=["mlm"], data_processor="mlm", max_relative_position=8)),
    "roformer": ("roformer/base_config.json", dict(rotary_value=True)),
    "ernie": ("ernie/3.0_base_config.json", dict(task_id=1)),
    # XLNet pretrains left to right here (its attn_type 'uni'); the permutation LM is not implemented
    "xlnet": ("xlnet/base_config.json", dict(mask="causal", tokenizer="bert")),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run on one thread (a second one only waits on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_config(family, **over):
    name, extra = FAMILIES[family]
    return uer_like.load_config(name, **{**TINY, **extra, **over})


# ---------------------------------------------------------------------------------------------- NEZHA
def test_nezha_reproduces_the_reference_implementation_and_exports_to_its_layout(tmp_path):
    """transformers 4.46's NezhaForPreTraining made the fixture: every output within 1e-5 at every
    non-padding position (one row is longer than max_relative_position, so clipping is exercised); the
    export is the same directory layout, key names and shapes, and loads back to the same outputs."""
    src = need(os.path.join(NEZHA, "nezha_tiny"))
    io = np.load(os.path.join(NEZHA, "nezha_tiny_io.npz"))
    model = load_model(src).eval()
    assert model.config.position_scheme == "nezha" and "pos" not in model.config.embedding
    ids, tt, am = (torch.tensor(io[k]) for k in ("input_ids", "token_type_ids", "attention_mask"))
    assert int(am.sum(1).max()) > model.config.max_relative_position
    seg = (tt + 1) * am
    keep = am.bool()

    pos = torch.tensor(io["mlm_positions"])

    def outputs(m):
        with torch.no_grad():
            hidden = m.encode(ids, seg)
            pooled = torch.tanh(m.target.sp.linear_1(hidden[:, 0]))
            return m.embed(ids, seg), hidden, pooled, m.target.mlm.logits(hidden[:, pos]), m.target.sp.logits(hidden)

    emb, hidden, pooled, mlm, nsp = outputs(model)
    diffs = {"embedding": (emb - torch.tensor(io["embedding_output"]))[keep].abs().max(),
             "last_hidden_state": (hidden - torch.tensor(io["last_hidden_state"]))[keep].abs().max(),
             "pooler_output": (pooled - torch.tensor(io["pooler_output"])).abs().max(),
             "mlm_logits": (mlm - torch.tensor(io["mlm_logits"]))[keep[:, pos]].abs().max(),
             "nsp_logits": (nsp - torch.tensor(io["nsp_logits"])).abs().max()}
    for k, v in diffs.items():
        assert v <= 1e-5, (k, float(v))

    out = tmp_path / "export"
    save_model(model, str(out), format="hf")
    assert {"config.json", "model.safetensors", "vocab.txt"} <= set(os.listdir(out))
    from safetensors.torch import load_file

    ref, ours = load_file(os.path.join(src, "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    cfg_ref, cfg_out = (json.load(open(os.path.join(d, "config.json"))) for d in (src, str(out)))
    for k in ("model_type", "architectures", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "max_relative_position", "max_position_embeddings", "type_vocab_size", "vocab_size"):
        assert cfg_out[k] == cfg_ref[k], k
    again = outputs(load_model(str(out)).eval())
    for a, b in zip(again, (emb, hidden, pooled, mlm, nsp)):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("scheme", ["nezha", "rotary", "xlnet"])
def test_relative_scheme_with_absolute_positions_too_is_one_line_error(scheme):
    with pytest.raises(ConfigError) as e:
        uer_like.build_model(vocab_size=100, config="bert/base_config.json", position_scheme=scheme)
    msg = str(e.value)
    assert "\n" not in msg and f"position_scheme '{scheme}'" in msg and "remove 'pos'" in msg


def test_tencentpretrain_rotary_flag_is_the_rotary_scheme():
    cfg = uer_like.load_config("bert/base_config.json", embedding=["word", "seg"], rotary_position_embedding=True)
    assert cfg.position_scheme == "rotary"
    with pytest.raises(ConfigError, match="contradicts position_scheme 'nezha'"):
        uer_like.load_config("nezha/base_config.json", rotary_position_embedding=True)


def test_sequence_longer_than_a_position_table_is_one_line_error():
    for family in ("roformer", "ernie"):  # the rotary table, the learned position embedding
        model = uer_like.build_model(tiny_config(family, max_seq_length=16), vocab_size=50)
        src = torch.ones(1, 17, dtype=torch.long)
        with pytest.raises(DataError, match=r"17 tokens is longer than the .*max_seq_length 16") as e:
            model.encode(src, src)
        assert "\n" not in str(e.value)
        model.encode(src[:, :16], src[:, :16])
    # NEZHA clips distances: any length works
    nezha = uer_like.build_model(tiny_config("nezha", max_seq_length=16), vocab_size=50)
    nezha.encode(torch.ones(1, 40, dtype=torch.long), torch.ones(1, 40, dtype=torch.long))
    with pytest.raises(ConfigError, match="rotary position table"):
        uer_like.io.check_seq_length(tiny_config("roformer", max_seq_length=16), 32)


# ---------------------------------------------------------------------------------------------- pretraining
@pytest.fixture(scope="module")
def corpus_datasets(tmp_path_factory):
    """One MLM and one LM dataset of 64 documents of the bundled corpus, shared by the families, with a
    vocabulary of the characters they use (so the tiny models' time is not all in a 21,128-row embedding)."""
    d = tmp_path_factory.mktemp("family_data")
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()
    lines = [line for line in text.split("\n") if len(line) > 40][:64]
    chars = sorted({c for line in lines for c in line if not c.isspace()})
    vocab = str(d / "vocab.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n")
    corpus = "\n".join(lines) + "\n"
    mlm, _ = preprocess(str(d), corpus, name="mlm.bin", data_processor="mlm", seq_length=32, corpus_format="line",
                        dynamic_masking=True, vocab_path=vocab)
    lm, _ = preprocess(str(d), corpus, name="lm.bin", data_processor="lm", seq_length=32, corpus_format="line",
                       vocab_path=vocab)
    return {"mlm": mlm, "lm": lm, "vocab": vocab, "vocab_size": len(chars) + 5}


def read_losses(path):
    steps = {}
    for line in open(path):
        r = json.loads(line)
        steps[r["step"]] = r["loss"]
    return [steps[k] for k in sorted(steps)]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tiny_model_of_each_family_pretrains_on_the_bundled_corpus(family, corpus_datasets, tmp_path):
    """The family's release config, shrunk, trained 60 steps on 64 real documents: the loss falls below 93% of
    its first step's (~6.8, uniform over the ~900 characters they use; MLM reaches ~6.15, LM ~4.4), and the
    output loads back as the same family."""
    from uer_like.training.trainer import TrainArgs, Trainer

    cfg = tiny_config(family)
    data = corpus_datasets["lm" if "lm" in cfg.target else "mlm"]
    args = TrainArgs(dataset_path=data, config=FAMILIES[family][0], config_overrides=dict(TINY, **FAMILIES[family][1]),
                     total_steps=60, batch_size=16, learning_rate=5e-3, warmup=0.1, report_steps=20,
                     save_checkpoint_steps=1000, output_model_path=str(tmp_path / "m.bin"),
                     trace_path=str(tmp_path / "trace.jsonl"), seed=1, device="cpu")
    Trainer(args).train()
    losses = read_losses(tmp_path / "trace.jsonl")
    first, last = losses[0], sum(losses[-10:]) / 10
    assert last < first * 0.93, (family, first, last)
    again = load_model(str(tmp_path / "m.bin"))
    assert again.config.position_scheme == cfg.position_scheme and again.config.embedding == cfg.embedding


# ---------------------------------------------------------------------------------------------- XLNet input
def make_xlnet_spm(path, specials=("<cls>", "<sep>", "<pad>", "<mask>", "<eod>", "<eop>")):
    """A sentencepiece model with XLNet's special pieces (<unk> <s> </s> <cls> <sep> <pad> <mask> <eod> <eop>,
    ids 0-8 as HFL's spiece.model) and the first 3,000 single characters of the Chinese BERT vocabulary,
    written directly (no training), so tests get an XLNet tokenizer in milliseconds."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 0, 1, 2, -1
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = m.normalizer_spec.remove_extra_whitespaces = True
    m.normalizer_spec.escape_whitespaces = True
    kind = pb.ModelProto.SentencePiece

    def add(piece, score, t=kind.NORMAL):
        p = m.pieces.add()
        p.piece, p.score, p.type = piece, score, t

    add("<unk>", 0, kind.UNKNOWN)
    add("<s>", 0, kind.CONTROL)
    add("</s>", 0, kind.CONTROL)
    for s in specials:
        add(s, 0, kind.USER_DEFINED)
    add("\u2581", -1.0)
    chars = [t for t in open(VOCAB, encoding="utf-8").read().split("\n") if len(t) == 1 and not t.isspace()]
    for c in dict.fromkeys(chars[:3000]):
        add(c, -5.0)
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return path


def test_xlnet_tokenizer_and_layout_match_transformers(tmp_path):
    """Our XLNet tokenizer against transformers' XLNetTokenizer on the same spiece.model (pieces of real
    text, with XLNet's normalisation), and the fine-tuning input layout against its pair encoding:
    `a <sep> b <sep> <cls>`, token types 0/1/2 (our segments 1/2/3), padding on the left."""
    transformers = pytest.importorskip("transformers")
    from uer_like.finetune import data as D
    from uer_like.finetune.classification import encode_pair
    from uer_like.tokenizers import build_tokenizer

    make_xlnet_spm(str(tmp_path / "spiece.model"))
    theirs = transformers.XLNetTokenizer.from_pretrained(str(tmp_path))
    ours = build_tokenizer("xlnet", spm_model_path=str(tmp_path / "spiece.model"))
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:60000].split("\n")
    lines = [t for t in text if t.strip()][:200] + ["  hello,   ``world'' 123,456 café", "Ｆｕｌｌ宽度，测试。"]
    assert [ours.tokenize(t) for t in lines] == [theirs.tokenize(t) for t in lines]
    enc = D.Encoder(ours)
    pairs = [("今天天气很好", "我们去公园"), ("一个很长的句子，有二十个字以上的内容在这里", None)]
    feats = [encode_pair(enc, a, b, 64) for a, b in pairs]
    src = D.pad([f[0] for f in feats], enc.pad_id, left=enc.pad_left)
    seg = D.pad([f[1] for f in feats], 0, left=enc.pad_left)
    ref = theirs([a for a, _ in pairs[:1]], [b for _, b in pairs[:1]], return_token_type_ids=True)
    single = theirs([pairs[1][0]])
    assert src[0, -len(ref["input_ids"][0]):].tolist() == ref["input_ids"][0]
    assert (seg[0, -len(ref["token_type_ids"][0]):] - 1).tolist() == ref["token_type_ids"][0]
    assert src[1].tolist()[-len(single["input_ids"][0]):] == single["input_ids"][0]
    assert src[0, 0].item() == enc.pad_id and seg[0, 0].item() == 0  # padding on the left


# ---------------------------------------------------------------------------------------------- fine-tuning
@pytest.fixture(scope="module")
def finetune_setup(tmp_path_factory, corpus_datasets):
    """Small slices of the three sample tasks, and a random tiny model of each family: UER format for the
    BERT-layout families (the corpus vocabulary), a Hugging Face directory with its spiece.model for XLNet."""
    need(SAMPLES)
    d = tmp_path_factory.mktemp("finetune")

    def head(src, dst, n):
        lines = open(os.path.join(SAMPLES, src), encoding="utf-8").read().split("\n")
        (d / dst).write_text("\n".join(lines[:n + 1]) + "\n", encoding="utf-8")
        return str(d / dst)

    cmrc = json.load(open(os.path.join(SAMPLES, "cmrc", "train.json"), encoding="utf-8"))
    cmrc["data"] = cmrc["data"][:2]
    (d / "cmrc.json").write_text(json.dumps(cmrc, ensure_ascii=False), encoding="utf-8")
    data = {"cls": head("book_review/train.tsv", "cls.tsv", 16), "ner": head("msra_ner/train.tsv", "ner.tsv", 16),
            "label2id": os.path.join(SAMPLES, "msra_ner", "label2id.json"), "mrc": str(d / "cmrc.json")}
    models = {}
    torch.manual_seed(0)
    for family in FAMILIES:
        if family == "xlnet":
            spm = make_xlnet_spm(str(d / "spiece.model"))
            from uer_like.tokenizers import build_tokenizer

            n = len(build_tokenizer("xlnet", spm_model_path=spm).vocab)
            model = uer_like.build_model(tiny_config("xlnet", mask="fully_visible", tokenizer="xlnet"), vocab_size=n)
            out = d / "xlnet_hf"
            save_model(model, str(out), format="hf", vocab=spm)  # writes spiece.model beside the weights
            models[family] = ["--pretrained_model_path", str(out)]
        else:
            model = uer_like.build_model(tiny_config(family), vocab_size=corpus_datasets["vocab_size"])
            path = str(d / f"{family}.bin")
            save_model(model, path, format="uer")
            models[family] = ["--pretrained_model_path", path, "--config_path", path[:-4] + "_config.json",
                              "--vocab_path", corpus_datasets["vocab"]]
    return data, models


def run_script(script, argv):
    """A finetune script's command line, in this process: its exit status."""
    old = sys.argv
    sys.argv = [script] + argv
    try:
        runpy.run_path(os.path.join(ROOT, "finetune", script), run_name="__main__")
    except SystemExit as e:
        return e.code
    finally:
        sys.argv = old
    return 0


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_finetunes_with_run_classifier_run_ner_and_run_cmrc(family, finetune_setup, tmp_path):
    data, model_args = finetune_setup
    common = model_args[family] + ["--epochs_num", "1", "--max_steps", "2", "--batch_size", "8",
                                   "--learning_rate", "1e-3", "--no_progress", "--seq_length", "64"]
    runs = {"run_classifier.py": ["--train_path", data["cls"], "--test_path", data["cls"]],
            "run_ner.py": ["--train_path", data["ner"], "--test_path", data["ner"],
                           "--label2id_path", data["label2id"]],
            "run_cmrc.py": ["--train_path", data["mrc"], "--doc_stride", "32"]}
    for script, argv in runs.items():
        out = str(tmp_path / (script[:-3] + ".bin"))
        assert run_script(script, common + argv + ["--output_model_path", out]) == 0, (family, script)
        assert os.path.isfile(out), (family, script)
        report = json.load(open(out[:-4] + "_report.json"))
        assert report["history"], (family, script)


def test_xlnet_directory_without_its_sentencepiece_model_is_one_line_error(finetune_setup, tmp_path, capsys):
    """With spiece.model beside the weights, features come out in XLNet's layout; without it, fine-tuning
    and feature extraction each stop with one line naming the file."""
    import shutil

    from uer_like.io import extract_features

    data, model_args = finetune_setup
    good = model_args["xlnet"][1]
    feats = extract_features(load_model(good), ["今天天气很好", ("一句", "两句")], pooling="last")
    assert feats.shape == (2, TINY["hidden_size"])
    broken = tmp_path / "xlnet_no_spm"
    shutil.copytree(good, broken)
    os.remove(broken / "spiece.model")
    code = run_script("run_classifier.py", ["--pretrained_model_path", str(broken), "--train_path", data["cls"],
                                            "--output_model_path", str(tmp_path / "m.bin")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "spiece.model" in err[0] and "--spm_model_path" in err[0], err
    with pytest.raises(DataError, match="spiece.model") as e:
        extract_features(load_model(str(broken)), ["今天"])
    assert "\n" not in str(e.value)


def test_xlnet_pretrained_here_exports_its_sentencepiece_model_and_special_ids(finetune_setup, tmp_path):
    """An XLNet pretrained on a sentencepiece dataset whose special pieces are not at HFL's ids (<pad> 3, not
    5), written as a transformers directory: spiece.model is beside the weights, config.json's pad / bos /
    eos ids are that model's, transformers' XLNetTokenizer reads it with those ids, and the directory
    fine-tunes here; a UER file with spiece.model beside it exports the same way."""
    transformers = pytest.importorskip("transformers")
    from uer_like.training.trainer import TrainArgs, train

    data, _ = finetune_setup
    spm = make_xlnet_spm(str(tmp_path / "own.model"), specials=("<pad>", "<mask>", "<cls>", "<sep>", "<eod>", "<eop>"))
    ds, _ = preprocess(str(tmp_path), open(SAMPLE_CORPUS, encoding="utf-8").read()[:20000], data_processor="lm",
                       seq_length=32, tokenizer="xlnet", spm_model_path=spm, vocab_path=None, corpus_format="line")
    out = tmp_path / "xlnet_pre"
    args = TrainArgs(dataset_path=ds, config="xlnet/base_config.json", spm_model_path=spm, total_steps=1,
                     batch_size=2, output_model_path=str(out), output_format="hf", precision="fp32",
                     config_overrides={k: v for k, v in TINY.items() if k != "max_seq_length"})
    args.validate()
    assert train(args) == 1
    ids = {"pad_token_id": 3, "bos_token_id": 1, "eos_token_id": 2}
    for d in (out, tmp_path / "from_uer"):
        assert os.path.isfile(d / "spiece.model"), sorted(os.listdir(d))
        cfg = json.load(open(d / "config.json"))
        assert {k: cfg[k] for k in ids} == ids
        tok = transformers.XLNetTokenizer.from_pretrained(str(d))
        assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (3, 1, 2)
        assert tok.convert_ids_to_tokens(tok("今天天气很好")["input_ids"])[-2:] == ["<sep>", "<cls>"]
        code = run_script("run_classifier.py", ["--pretrained_model_path", str(d), "--train_path", data["cls"],
                                                "--epochs_num", "1", "--max_steps", "1", "--batch_size", "4",
                                                "--seq_length", "32", "--no_progress",
                                                "--output_model_path", str(tmp_path / "cls.bin")])
        assert code == 0
        if d == out:  # the same model as a UER file in a directory holding the sentencepiece model
            uer_dir = tmp_path / "uer"
            uer_dir.mkdir()
            import shutil

            shutil.copyfile(spm, uer_dir / "spiece.model")
            save_model(load_model(str(out)), str(uer_dir / "m.bin"), format="uer")
            save_model(load_model(str(uer_dir / "m.bin")), str(tmp_path / "from_uer"), format="hf")


# ---------------------------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("family", ["nezha_gen", "rotary_causal"])
def test_relative_schemes_decode_with_the_cache_as_the_full_forward(family):
    """NEZHA-Gen (nezha/gen_base: NEZHA with a causal mask and an LM head) and a causal rotary model:
    left-padded prompts and then new tokens through the key/value cache give each prompt's full-forward
    hidden states (relative positions from the cache's key positions; rotary keys cached rotated)."""
    from test_decoding_cache import V, _check_decoding

    over = dict(TINY, layers_num=2, max_relative_position=3)
    torch.manual_seed(0)
    if family == "nezha_gen":
        model = uer_like.build_model("nezha/gen_base_config.json", vocab_size=V, **over)
    else:
        model = uer_like.build_model("roformer/small_config.json", vocab_size=V, mask="causal", target=["lm"],
                                     **dict(over, rotary_value=True))
    _check_decoding(model.eval(), [5, 9, 1, 7])


@pytest.mark.parametrize("scheme", ["nezha", "xlnet", "rotary"])
def test_schemes_take_a_boolean_or_an_additive_attention_mask(scheme):
    """The context's mask may be bool (True = may attend) or additive (0 / -inf, as decoding steps pass it):
    each scheme's attention gives the same output with either."""
    from uer_like.layers.context import AttentionContext
    from uer_like.layers.positions import build_scheme

    family = {"nezha": "nezha", "xlnet": "xlnet", "rotary": "roformer"}[scheme]
    layer_scheme = build_scheme(tiny_config(family, max_relative_position=2, rotary_value=scheme == "rotary"))
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 6, 16, generator=g) for _ in range(3))
    seg = torch.tensor([[1, 1, 2, 2, 2, 0], [1, 1, 1, 0, 0, 0]])
    allowed = (seg > 0)[:, None, None, :]
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
    outs = [layer_scheme.attend(q, k, v, AttentionContext(seg, mask), 0.0, 0.25) for mask in (allowed, additive)]
    real = seg > 0
    assert (outs[0] - outs[1]).abs()[real[:, None].expand(-1, 4, -1)].max() < 1e-6
