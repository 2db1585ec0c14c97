"""A model directory's BasicTokenizer settings (tokenizer_config.json's do_lower_case, strip_accents,
tokenize_chinese_chars; else its tokenizer.json's BertNormalizer; else UER-py's default, lower-casing) decide how
its text is tokenized, as transformers' AutoTokenizer decides it: the ids of a cased and an uncased directory
(and of the other combinations) equal AutoTokenizer's on mixed text. An explicit do_lower_case overrides the
directory; a setting of the wrong type is a one-line error naming the file."""
import json
import os
import shutil

import pytest

from uer_like.errors import UerLikeError
from uer_like.tokenizers import build_tokenizer, tokenizer_from_dir
from uer_like.tokenizers.build import count_tokens, special_tokens

transformers = pytest.importorskip("transformers")

TEXTS = [
    "Hello World! The Café in Zürich is NAÏVE, isn't it?",
    "Apple's iPhone 15 Pro vs. apple pie: ÉCOLE école Ecole.",
    "北京 Beijing 和 München (Mün-chen) 都很好。",
    "ΣΊΣΥΦΟΣ Σίσυφος; Ångström über Straße, façade résumé.",
    "混合Mixed文本TEXT，with 标点：“quotes” and ‘single’!",
    "  leading  and\ttrailing\nwhitespace  ",
    "",
]
HELD_OUT = ["Hello ZÜRICH, hello zürich; PARIS Paris paris.", "中文 English Ελληνικά ÀÉÎÕÜ àéîõü"]


def _vocab():
    """Every word and piece of TEXTS in both casings, with and without accents: each setting spells every
    word (and the held-out lines fall back to pieces)."""
    counts = count_tokens(TEXTS, "bert", do_lower_case=False)
    counts.update(count_tokens(TEXTS, "bert", do_lower_case=True))
    return special_tokens(unused=0) + sorted(counts)


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    p.write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    return p


def make_dir(root, name, vocab_file, **settings):
    """A directory as transformers.BertTokenizer(..., **settings).save_pretrained writes it (tokenizer.json and
    tokenizer_config.json), with the vocab.txt releases ship beside them."""
    d = root / name
    transformers.BertTokenizer(str(vocab_file), **settings).save_pretrained(str(d))
    shutil.copy(vocab_file, d / "vocab.txt")
    return d


def assert_same_ids(ours, hf, lines=TEXTS + HELD_OUT):
    for line in lines:
        theirs = hf(line, add_special_tokens=False)["input_ids"]
        assert ours.encode(line) == theirs, line
        assert ours.ids(line) == theirs, line  # the C tokenizer where it applies


SETTINGS = {
    "cased": dict(do_lower_case=False),
    "uncased": dict(do_lower_case=True),
    "cased_strip": dict(do_lower_case=False, strip_accents=True),
    "uncased_keep_accents": dict(do_lower_case=True, strip_accents=False),
    "cased_no_cjk_split": dict(do_lower_case=False, tokenize_chinese_chars=False),
}


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_directory_settings_give_autotokenizer_ids(name, tmp_path, vocab_file):
    d = make_dir(tmp_path, name, vocab_file, **SETTINGS[name])
    hf = transformers.AutoTokenizer.from_pretrained(str(d))
    assert_same_ids(tokenizer_from_dir(str(d)), hf)
    # a vocab.txt given by path carries its directory's settings too (UER-py's --vocab_path habit)
    assert_same_ids(build_tokenizer("bert", str(d / "vocab.txt")), hf)


def test_cased_directory_is_not_lower_cased(tmp_path, vocab_file):
    """The wrong result this guards against: a cased directory read as uncased."""
    d = make_dir(tmp_path, "cased", vocab_file, do_lower_case=False)
    tok = tokenizer_from_dir(str(d))
    assert tok.tokenize("Hello Café") == ["Hello", "Café"]
    assert tokenizer_from_dir(str(d), do_lower_case=True).tokenize("Hello Café") == ["hello", "cafe"]  # explicit wins


def test_tokenizer_json_alone_decides_and_no_file_keeps_the_default(tmp_path, vocab_file):
    """No tokenizer_config.json: its tokenizer.json's normalizer decides (AutoTokenizer loads that); neither
    file: UER-py's default, lower-casing (transformers' BertTokenizer's default too)."""
    d = make_dir(tmp_path, "json_only", vocab_file, do_lower_case=False)
    os.remove(d / "tokenizer_config.json")
    assert_same_ids(tokenizer_from_dir(str(d)), transformers.AutoTokenizer.from_pretrained(str(d)))
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(vocab_file, bare / "vocab.txt")
    hf = transformers.BertTokenizer(str(vocab_file))  # its defaults: do_lower_case=True
    assert hf.tokenize("Hello Café") == ["hello", "cafe"]
    assert_same_ids(tokenizer_from_dir(str(bare)), hf)


def test_tokenizer_config_wins_over_tokenizer_json(tmp_path, vocab_file):
    """transformers applies tokenizer_config.json's settings over the normalizer saved in tokenizer.json."""
    d = make_dir(tmp_path, "both", vocab_file, do_lower_case=True)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["do_lower_case"] = False
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    hf = transformers.AutoTokenizer.from_pretrained(str(d))
    assert hf.tokenize("Hello") == ["Hello"]
    assert_same_ids(tokenizer_from_dir(str(d)), hf)


@pytest.mark.parametrize("key,value", [("do_lower_case", "false"), ("strip_accents", 1),
                                       ("tokenize_chinese_chars", None)])
def test_a_setting_of_the_wrong_type_is_one_line(tmp_path, vocab_file, key, value):
    d = make_dir(tmp_path, "bad", vocab_file)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg[key] = value
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(UerLikeError) as e:
        tokenizer_from_dir(str(d))
    msg = str(e.value)
    assert "\n" not in msg and "tokenizer_config.json" in msg and key in msg, msg


def test_finetuning_reads_the_directory_and_the_flag_overrides(tmp_path, vocab_file):
    """finetune/run_*.py: the pretrained directory's settings, with --vocab_path too; --do_lower_case wins."""
    from uer_like.finetune import cli

    d = make_dir(tmp_path, "cased", vocab_file, do_lower_case=False)

    def tok(*argv):
        return cli._build_tokenizer(cli.build_parser("classification").parse_args(list(argv)))

    assert tok("--pretrained_model_path", str(d)).tokenize("Hello Café") == ["Hello", "Café"]
    assert tok("--pretrained_model_path", str(d), "--vocab_path", str(d / "vocab.txt")).tokenize("Hello") == ["Hello"]
    assert tok("--pretrained_model_path", str(d), "--do_lower_case", "true").tokenize("Hello Café") == ["hello", "cafe"]


def test_a_directory_that_says_two_things_is_one_line(tmp_path, vocab_file):
    """tokenizer.json keeps case but tokenizer_config.json leaves do_lower_case to transformers' default
    (lower-casing): refused in one line naming both, unless do_lower_case is given."""
    d = make_dir(tmp_path, "two", vocab_file, do_lower_case=False)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    del cfg["do_lower_case"]
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(UerLikeError) as e:
        tokenizer_from_dir(str(d))
    msg = str(e.value)
    assert "\n" not in msg and "tokenizer.json" in msg and "tokenizer_config.json" in msg and "do_lower_case" in msg
    assert tokenizer_from_dir(str(d), do_lower_case=False).tokenize("Hello") == ["Hello"]


def test_do_lower_case_is_refused_for_a_tokenizer_without_it(tmp_path):
    from uer_like.finetune import cli

    spm = pytest.importorskip("sentencepiece")
    spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS * 30), model_prefix=str(tmp_path / "sentencepiece.bpe"),
                                   vocab_size=200, model_type="unigram", hard_vocab_limit=False, minloglevel=2)
    args = cli.build_parser("classification").parse_args(["--pretrained_model_path", str(tmp_path),
                                                          "--do_lower_case", "false"])
    with pytest.raises(UerLikeError) as e:
        cli._build_tokenizer(args)
    msg = str(e.value)
    assert "\n" not in msg and "--do_lower_case" in msg and "xlmr" in msg, msg


def test_a_fine_tuned_model_keeps_its_casing(tmp_path, vocab_file):
    """The casing fine-tuning used is saved in MODEL_finetune.json (Task.meta) and used again for inference
    with a vocabulary that says nothing (a bare vocab.txt), unless --do_lower_case is given."""
    from uer_like.finetune import cli
    from uer_like.finetune import data as D

    d = make_dir(tmp_path, "cased", vocab_file, do_lower_case=False)
    args = cli.build_parser("classification").parse_args(["--pretrained_model_path", str(d), "--seq_length", "32"])
    meta = cli.make_task("classification", args, D.Encoder(cli._build_tokenizer(args)), {}).meta()
    assert meta["do_lower_case"] is False
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(vocab_file, bare / "vocab.txt")

    def tok(*argv):
        return cli._build_tokenizer(cli.build_parser("classification").parse_args(list(argv)), meta)

    assert tok("--vocab_path", str(bare / "vocab.txt")).tokenize("Hello") == ["Hello"]
    assert tok("--vocab_path", str(bare / "vocab.txt"), "--do_lower_case", "true").tokenize("Hello") == ["hello"]


@pytest.mark.parametrize("name", ["cased", "uncased"])
def test_a_directory_saved_without_vocab_txt_reads_tokenizer_json(tmp_path, vocab_file, name):
    """transformers 5 saves a BERT tokenizer as tokenizer.json + tokenizer_config.json only: its WordPiece
    vocabulary is read from tokenizer.json, with the same ids as AutoTokenizer's."""
    d = tmp_path / name
    transformers.BertTokenizer(str(vocab_file), **SETTINGS[name]).save_pretrained(str(d))
    assert not (d / "vocab.txt").exists()
    tok = tokenizer_from_dir(str(d))
    assert [tok.vocab.i2w[i] for i in range(len(tok.vocab))] == _vocab()
    assert_same_ids(tok, transformers.AutoTokenizer.from_pretrained(str(d)))


def test_a_tokenizer_json_that_is_not_wordpiece_is_refused_as_a_vocabulary(tmp_path):
    from uer_like.tokenizers.vocab import Vocab

    p = tmp_path / "tokenizer.json"
    p.write_text(json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}))
    with pytest.raises(UerLikeError) as e:
        Vocab.load(str(p))
    assert "\n" not in str(e.value) and "not WordPiece" in str(e.value)


def test_a_cased_setting_over_a_caseless_vocabulary_is_reported(tmp_path, caplog):
    """Hugging Face's bert-base-chinese says do_lower_case false over Google's Chinese vocabulary, which has no
    capital letter: transformers' ids are kept (capitals become [UNK]) and a warning names the flag."""
    from conftest import VOCAB

    d = tmp_path / "zh"
    d.mkdir()
    shutil.copy(VOCAB, d / "vocab.txt")
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    with caplog.at_level("WARNING", logger="uer_like"):
        tok = tokenizer_from_dir(str(d))
    assert tok.tokenize("Apple是") == ["[UNK]", "是"]
    assert transformers.BertTokenizer(str(d / "vocab.txt"), do_lower_case=False).tokenize("Apple是") == ["[UNK]", "是"]
    assert any("--do_lower_case true" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="uer_like"):
        assert tokenizer_from_dir(str(d), do_lower_case=True).tokenize("Apple是") == ["apple", "是"]
    assert not caplog.records
