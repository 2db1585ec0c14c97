"""Tokenizers of released models that are not BERT WordPiece, against the reference implementations:
byte-level BPE (GPT-2) through scripts/generate_lm.py against transformers' generate + decode, XLM-R's
sentencepiece with fairseq's ids against transformers' XLMRobertaTokenizer, CPM against CPM-Generate's code,
and the selection of a tokenizer from a model directory's files."""
import importlib.util
import json
import os

import pytest
import torch

from uer_like.errors import CheckpointError
from uer_like.tokenizers import build_tokenizer, detect_tokenizer, tokenizer_from_dir
from conftest import DATA, ROOT, VOCAB, need

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
spm = pytest.importorskip("sentencepiece")

ENGLISH = ["The quick brown fox jumps over the lazy dog.", "It's a test of the byte-level tokenizer, isn't it?",
           "Hello world! Numbers 12345 and symbols #@$ here.", "Generation prints text back, byte for byte."]


def _reviews(first, last):
    path = need(os.path.join(DATA, "corpora", "book_review_cls.txt"))
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")[first:last]
    return [line.split("\t", 1)[-1] for line in lines if line.strip()]


def _generate_lm():
    spec = importlib.util.spec_from_file_location("generate_lm_script", os.path.join(ROOT, "scripts", "generate_lm.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------------------------- GPT-2 BPE
@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A tiny GPT-2 release: a byte-level BPE trained here (GPT2TokenizerFast files) + a random GPT2LMHeadModel."""
    d = tmp_path_factory.mktemp("gpt2")
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(_reviews(1, 400) + ENGLISH * 20, vocab_size=700, min_frequency=2,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    bpe.save_model(str(d))  # vocab.json + merges.txt
    hf_tok = transformers.GPT2TokenizerFast.from_pretrained(str(d))
    hf_tok.save_pretrained(str(d))  # tokenizer.json + tokenizer_config.json
    eot = hf_tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = transformers.GPT2Config(vocab_size=len(hf_tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                  bos_token_id=eot, eos_token_id=eot, initializer_range=0.3)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    model.save_pretrained(str(d))
    return d, hf_tok, model


def test_gpt2_directory_selects_byte_bpe_and_matches_transformers_ids(gpt2_dir):
    d, hf_tok, _ = gpt2_dir
    assert detect_tokenizer(str(d)) == "byte_bpe"
    ours = tokenizer_from_dir(str(d))
    assert len(ours.vocab) == len(hf_tok)
    lines = _reviews(2000, 2600) + ENGLISH + ["  two  spaces\tand a tab\n", "<|endoftext|> is special", ""]
    for line in lines:
        ids = hf_tok(line)["input_ids"]
        assert ours.encode(line) == ids, line
        assert ours.convert_tokens_to_ids(ours.tokenize(line)) == ids, line
        assert ours.decode(ids) == hf_tok.decode(ids) == line
    # vocab.json + merges.txt alone (GPT-2's original files) tokenize the same
    from uer_like.tokenizers.bpe import ByteBPETokenizer

    plain = ByteBPETokenizer(str(d / "vocab.json"))
    assert all(plain.encode(line) == hf_tok(line)["input_ids"] for line in lines)


def test_generate_lm_on_a_gpt2_directory_equals_transformers_greedy(gpt2_dir, tmp_path, capsys):
    """scripts/generate_lm.py takes the directory's own tokenizer (no --vocab_path): its greedy text is
    transformers' model.generate(do_sample=False) decoded by transformers' tokenizer."""
    d, hf_tok, model = gpt2_dir
    prompts = ["这本书写得", "The quick brown", "Hello world! Numbers", "我觉得"]
    test = tmp_path / "prompts.txt"
    test.write_text("".join(p + "\n" for p in prompts), encoding="utf-8")
    out = tmp_path / "out.txt"
    rc = _generate_lm().main(["--load_model_path", str(d), "--test_path", str(test), "--prediction_path", str(out),
                              "--top_k", "1", "--max_new_tokens", "12", "--seq_length", "64", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    eot = hf_tok.convert_tokens_to_ids("<|endoftext|>")
    expect = []
    for p in prompts:
        ids = torch.tensor([hf_tok(p)["input_ids"]])
        with torch.no_grad():
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=12,
                                 eos_token_id=eot, pad_token_id=eot)[0, ids.shape[1]:].tolist()
        if gen and gen[-1] == eot:
            gen = gen[:-1]
        expect.append(p + hf_tok.decode(gen) + "\n")
    assert out.read_text(encoding="utf-8") == "".join(expect)
    assert any(len(e) > len(p) + 3 for e, p in zip(expect, prompts))  # text was generated


def test_a_tokenizer_that_does_not_fit_the_embedding_is_one_line_naming_both(gpt2_dir, tmp_path):
    from uer_like.io import load_model
    from uer_like.io.tokenizer import model_tokenizer

    d, hf_tok, _ = gpt2_dir
    n = len(hf_tok)
    for rows, ok in ((n + 5, False), (-(-n // 64) * 64, True)):  # 5 extra rows: no; rounded up to 64: padding
        sub = tmp_path / f"rows{rows}"
        sub.mkdir()
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (sub / f).write_bytes((d / f).read_bytes())
        cfg = transformers.GPT2Config(vocab_size=rows, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                                      bos_token_id=0, eos_token_id=0)
        transformers.GPT2LMHeadModel(cfg).save_pretrained(str(sub))
        model = load_model(str(sub))
        if ok:
            assert len(model_tokenizer(model).vocab) == n
            continue
        with pytest.raises(CheckpointError) as e:
            model_tokenizer(model)
        msg = str(e.value)
        assert "\n" not in msg and f"tokenizer.json has {n} tokens" in msg and f"has {rows} rows" in msg
        assert "model.safetensors" in msg


# ---------------------------------------------------------------------------------------------- XLM-R
@pytest.fixture(scope="module")
def xlmr_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("xlmr")
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_reviews(1, 1500) + ENGLISH * 5),
                                   model_prefix=str(d / "sentencepiece.bpe"), vocab_size=2500, model_type="unigram",
                                   character_coverage=0.98, hard_vocab_limit=False, minloglevel=2)
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "XLMRobertaTokenizer"}))
    return d


def test_xlmr_ids_are_fairseq_ids_as_transformers_gives_them(xlmr_dir):
    d = xlmr_dir
    assert detect_tokenizer(str(d)) == "xlmr"
    os.remove(d / "tokenizer_config.json")
    assert detect_tokenizer(str(d)) == "xlmr"  # by the file alone
    ours = tokenizer_from_dir(str(d))
    hf = transformers.XLMRobertaTokenizer.from_pretrained(str(d))
    sp = spm.SentencePieceProcessor(model_file=str(d / "sentencepiece.bpe.model"))
    assert len(ours.vocab) == len(hf) == sp.GetPieceSize() + 2
    assert [ours.vocab.i2w[i] for i in range(len(ours.vocab))] == hf.convert_ids_to_tokens(list(range(len(hf))))
    lines = _reviews(5000, 8000) + ENGLISH + ["Héllo  WORLD!  naïve ", "全角　空格\t制表 😀", ""]
    ties = 0
    for line in lines:
        pieces = ours.tokenize(line)
        assert pieces == sp.encode(line, out_type=str)  # fairseq / transformers v4: sentencepiece's segmentation
        ids = ours.encode(line)
        assert ids == hf.convert_tokens_to_ids(pieces), line  # fairseq's id of every piece
        assert ours.decode(ids) == hf.decode(ids), line
        theirs = hf(line, add_special_tokens=False)["input_ids"]
        if theirs != ids:  # transformers v5 runs the tokenizers library's Unigram: it breaks exact ties otherwise
            score = [sum(sp.GetScore(i - 1) for i in x) for x in (ids, theirs)]
            assert score[0] == pytest.approx(score[1], abs=1e-4), line
            ties += 1
    assert ties < len(lines) // 100
    assert ours.vocab.cls_id == 0 and ours.vocab.pad_id == 1 and ours.vocab.sep_id == 2 and ours.vocab.unk_id == 3
    assert ours.vocab.mask_id == len(hf) - 1 == hf.mask_token_id
    # sentence pairs as XLMRobertaTokenizer builds them: <s> a </s></s> b </s> (fine-tuning's Encoder.pack)
    from uer_like.finetune.data import Encoder

    a, b = ENGLISH[0], _reviews(5000, 5001)[0]
    assert Encoder(ours).pack(ours.encode(a), ours.encode(b))[0] == hf(a, b)["input_ids"]


# ---------------------------------------------------------------------------------------------- CPM
def cpm_generate_reference(model_file):
    """TsinghuaAI/CPM-Generate data_utils/tokenization_gpt2.py's GPT2Tokenizer.tokenize / decode."""
    import jieba

    sp = spm.SentencePieceProcessor(model_file=model_file)
    translator = str.maketrans(" \n", "\u2582\u2583")

    def encode(text):
        seg_list = [x.translate(translator) for x in jieba.cut(text, cut_all=False)]
        return sp.encode(" ".join(seg_list))

    def decode(tokens):
        return sp.decode(tokens).replace(" ", "").replace("\u2582", " ").replace("\u2583", "\n")

    return encode, decode


@pytest.fixture(scope="module")
def cpm_spm(tmp_path_factory):
    """A sentencepiece model trained as CPM's was: on jieba words joined by spaces, U+2582/U+2583 for the
    text's own spaces and newlines, <eod> a piece of its own."""
    import jieba

    d = tmp_path_factory.mktemp("cpm_spm")
    translator = str.maketrans(" \n", "\u2582\u2583")
    train = [" ".join(w.translate(translator) for w in jieba.cut(t)) for t in _reviews(1, 1500)]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(train), model_prefix=str(d / "chinese_vocab"),
                                   vocab_size=3000, model_type="unigram", character_coverage=0.98,
                                   hard_vocab_limit=False, user_defined_symbols=["<eod>", "\u2582", "\u2583"],
                                   minloglevel=2)
    return d / "chinese_vocab.model"


def test_cpm_equals_cpm_generate(cpm_spm, tmp_path):
    (tmp_path / "chinese_vocab.model").write_bytes(cpm_spm.read_bytes())
    assert detect_tokenizer(str(tmp_path)) == "cpm"
    ours = tokenizer_from_dir(str(tmp_path))
    encode, decode = cpm_generate_reference(str(tmp_path / "chinese_vocab.model"))
    lines = _reviews(5000, 7000) + ["他说 你好\n我们  走吧", "English words and 数字 123", ""]
    for line in lines:
        ids = encode(line)
        assert ours.encode(line) == ids, line
        assert ours.convert_tokens_to_ids(ours.tokenize(line)) == ids, line
        assert ours.decode(ids) == decode(ids), line
    assert ours.lm_end_token == "<eod>"


# ---------------------------------------------------------------------------------------------- selection
def _dir(tmp_path, name, files):
    d = tmp_path / name
    d.mkdir()
    for f, content in files.items():
        if isinstance(content, dict):
            content = json.dumps(content)
        (d / f).write_text(content, encoding="utf-8")
    return str(d)


def test_selection_follows_the_directory(tmp_path, gpt2_dir):
    vocab = open(VOCAB, encoding="utf-8").read()
    g, _, _ = gpt2_dir
    bpe = {"vocab.json": (g / "vocab.json").read_text(encoding="utf-8"),
           "merges.txt": (g / "merges.txt").read_text(encoding="utf-8")}
    cases = {
        "bert": ({"vocab.txt": vocab, "config.json": {"model_type": "bert"}}, "bert"),
        "roformer_cls": ({"vocab.txt": vocab, "tokenizer_config.json": {"tokenizer_class": "RoFormerTokenizer"}},
                         "roformer_word"),
        "roformer_type": ({"vocab.txt": vocab, "config.json": {"model_type": "roformer"}}, "roformer_word"),
        "roformer_paddle": ({"vocab.txt": vocab, "tokenizer_config.json": {"tokenizer_class": "RoFormerTokenizer",
                                                                          "use_jieba": False}}, "bert"),
        "roberta_paddle": ({"vocab.txt": vocab, "tokenizer_config.json": {"tokenizer_class": "RobertaChineseTokenizer"}},
                           "bert"),
        "wobert_cls": ({"vocab.txt": vocab, "tokenizer_config.json": {"tokenizer_class": "WoBertTokenizer"}},
                       "word_wordpiece"),
        "uer_config": ({"vocab.txt": vocab, "config.json": {"emb_size": 768, "tokenizer": "word_wordpiece"}},
                       "word_wordpiece"),
        "gpt2_zh": ({"vocab.txt": vocab, "config.json": {"model_type": "gpt2", "tokenizer_class": "BertTokenizer"}},
                    "bert"),
        "gpt2_en": (dict(bpe, **{"config.json": {"model_type": "gpt2"}}), "byte_bpe"),
        "roberta_en": (dict(bpe, **{"config.json": {"model_type": "roberta"}}), "byte_bpe"),
        "nothing": ({"config.json": {"model_type": "gpt2"}}, None),
    }
    for name, (files, expect) in cases.items():
        d = _dir(tmp_path, name, files)
        assert detect_tokenizer(d) == expect, name
        tok = tokenizer_from_dir(d)
        assert (tok is None) == (expect is None) and (tok is None or type(tok).__name__ != ""), name
    wo = tokenizer_from_dir(os.path.join(tmp_path, "roformer_cls"))
    assert type(wo).__name__ == "RoFormerWordTokenizer"
    # a named tokenizer wins over the files; its files must be there
    assert type(tokenizer_from_dir(os.path.join(tmp_path, "bert"), "word_wordpiece")).__name__ == \
        "WordWordpieceTokenizer"
    with pytest.raises(Exception, match="no file of the byte_bpe tokenizer"):
        tokenizer_from_dir(os.path.join(tmp_path, "bert"), "byte_bpe")
    assert type(build_tokenizer("byte_bpe", str(g / "tokenizer.json"))).__name__ == "ByteBPETokenizer"


def test_finetuning_takes_the_directory_tokenizer_and_refuses_a_misfit(tmp_path, gpt2_dir):
    """finetune/run_*.py: the pretrained model directory's tokenizer unless one is named; load_backbone refuses
    a vocabulary that does not fit the embedding in one line naming both (padding rows accepted)."""
    from uer_like.finetune import cli, core

    g, hf_tok, _ = gpt2_dir
    vocab = open(VOCAB, encoding="utf-8").read()
    wo = _dir(tmp_path, "roformer", {"vocab.txt": vocab, "tokenizer_config.json": {"tokenizer_class": "RoFormerTokenizer"}})

    def tok(*argv):
        args = cli.build_parser("classification").parse_args(list(argv))
        return cli._build_tokenizer(args)

    assert type(tok("--pretrained_model_path", str(g))).__name__ == "ByteBPETokenizer"
    assert type(tok("--pretrained_model_path", wo)).__name__ == "RoFormerWordTokenizer"
    assert type(tok("--pretrained_model_path", wo, "--tokenizer", "bert")).__name__ == "BertTokenizer"
    assert type(tok("--pretrained_model_path", wo, "--vocab_path", VOCAB)).__name__ == "BertTokenizer"
    n = len(hf_tok)
    for rows, ok in ((n + 5, False), (-(-n // 64) * 64, True)):
        sub = tmp_path / f"ft{rows}"
        cfg = transformers.GPT2Config(vocab_size=rows, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                                      bos_token_id=0, eos_token_id=0)
        transformers.GPT2LMHeadModel(cfg).save_pretrained(str(sub))
        if ok:
            config, (emb, _), _ = core.load_backbone(str(sub), None, n, vocab_file="tok/tokenizer.json")
            assert emb.word.embedding.weight.shape[0] == rows
            continue
        with pytest.raises(CheckpointError) as e:
            core.load_backbone(str(sub), None, n, vocab_file="tok/tokenizer.json")
        msg = str(e.value)
        assert "\n" not in msg and f"tok/tokenizer.json has {n} tokens" in msg and f"has {rows} rows" in msg, msg


def test_preprocess_with_byte_bpe(gpt2_dir, tmp_path):
    """preprocess.py --tokenizer byte_bpe --vocab_path tokenizer.json: an LM dataset of GPT-2's ids (the
    Python path: the native one is bert-only); a masking processor is refused (GPT-2's BPE has no mask)."""
    from uer_like.data.dataset import Dataset
    from uer_like.errors import DataError
    from helpers import preprocess

    g, hf_tok, _ = gpt2_dir
    line = "这本书写得很好。Hello world."
    out, _ = preprocess(tmp_path, (line + "\n") * 4, vocab_path=str(g / "tokenizer.json"), tokenizer="byte_bpe",
                        data_processor="lm", seq_length=64)
    ids = [int(i) for i in Dataset(out).ids]
    expect = hf_tok(line)["input_ids"]
    assert ids[1:1 + len(expect)] == expect
    with pytest.raises(DataError, match="no mask token"):
        preprocess(tmp_path, line + "\n", name="mlm.bin", vocab_path=str(g / "tokenizer.json"), tokenizer="byte_bpe",
                   data_processor="mlm", seq_length=64)


def test_an_lm_target_of_id_0_is_trained(tmp_path):
    """GPT-2's byte-level vocabulary gives '!' id 0, which UER's tgt_lm convention (0 = padding) dropped from
    the LM loss: the collator's lm_pos names the positions that predict a token, and the loss and its count
    equal torch's cross-entropy over every real position, the '!'s included."""
    from uer_like.data.dataset import Dataset
    from uer_like.model import build_model
    from uer_like.training.batches import Collator
    from helpers import preprocess

    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(ENGLISH * 20, vocab_size=300, min_frequency=2, show_progress=False)
    bpe.add_special_tokens(["<|endoftext|>"])
    bpe.save(str(tmp_path / "tokenizer.json"))
    assert bpe.token_to_id("!") == 0
    out, _ = preprocess(tmp_path, "Hello world! Yes! It works!\n" * 4, vocab_path=str(tmp_path / "tokenizer.json"),
                        tokenizer="byte_bpe", data_processor="lm", seq_length=64)
    batch = Collator(Dataset(out), ["lm"], seed=0)([0, 1], 0)
    real = batch["seg"] > 0
    assert int((batch["tgt_lm"][real] == 0).sum()) == 6  # three '!' targets a row
    torch.manual_seed(0)
    model = build_model("gpt2/tiny_config.json", bpe.get_vocab_size(), dropout=0.0).eval()
    with torch.no_grad():
        res = model(batch)["lm"]
        logits = model.target_logits(model.encode(batch["src"], batch["seg"]))["lm"]
    ref = torch.nn.functional.cross_entropy(logits[real], batch["tgt_lm"][real])
    assert int(res["count"]) == int(real.sum())
    assert abs(float(res["loss"]) - float(ref)) < 1e-5


def test_generate_lm_on_a_cpm_directory_equals_transformers_greedy(cpm_spm, tmp_path, capsys):
    """A CPM release as on the Hugging Face hub (GPT-2 weights, spiece.model, tokenizer_class CpmTokenizer):
    generate_lm.py encodes as CPM-Generate, starts from the prompt alone, stops at <eod> and decodes as
    CPM-Generate; the text equals transformers' greedy generate over the same ids."""
    d = tmp_path / "cpm"
    d.mkdir()
    (d / "spiece.model").write_bytes(cpm_spm.read_bytes())
    encode, decode = cpm_generate_reference(str(cpm_spm))
    sp = spm.SentencePieceProcessor(model_file=str(cpm_spm))
    eod = sp.PieceToId("<eod>")
    cfg = transformers.GPT2Config(vocab_size=sp.GetPieceSize(), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                  bos_token_id=eod, eos_token_id=eod, initializer_range=0.3)
    torch.manual_seed(1)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    model.save_pretrained(str(d))
    conf = json.loads((d / "config.json").read_text())
    conf["tokenizer_class"] = "CpmTokenizer"
    (d / "config.json").write_text(json.dumps(conf))
    assert detect_tokenizer(str(d)) == "cpm"
    prompts = ["这本书写得", "我觉得 这个 故事", "今天天气很好"]
    test = tmp_path / "prompts.txt"
    test.write_text("".join(p + "\n" for p in prompts), encoding="utf-8")
    out = tmp_path / "out.txt"
    rc = _generate_lm().main(["--load_model_path", str(d), "--test_path", str(test), "--prediction_path", str(out),
                              "--top_k", "1", "--max_new_tokens", "10", "--seq_length", "64", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    expect = []
    for p in prompts:
        ids = torch.tensor([encode(p)])
        with torch.no_grad():
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=10,
                                 eos_token_id=eod, pad_token_id=eod)[0, ids.shape[1]:].tolist()
        if gen and gen[-1] == eod:
            gen = gen[:-1]
        expect.append(p + decode(gen) + "\n")
    assert out.read_text(encoding="utf-8") == "".join(expect)
    assert any(len(e) > len(p) + 3 for e, p in zip(expect, prompts))  # text was generated
