"""The bert tokenizer gives Hugging Face BertTokenizer's ids on the real corpora."""
import os

import pytest

from uer_like.errors import DataError
from uer_like.tokenizers import BertTokenizer, Vocab, build_tokenizer
from conftest import DATA, VOCAB, need


@pytest.fixture(scope="module")
def tokenizers():
    transformers = pytest.importorskip("transformers")
    return BertTokenizer(VOCAB), transformers.BertTokenizer(VOCAB)


@pytest.mark.parametrize("corpus", ["CLUECorpusSmall_bert_sampled.txt", "CLUECorpusSmall_sampled.txt",
                                    "book_review_cls.txt"])
def test_ids_match_hugging_face_on_real_corpora(tokenizers, corpus):
    ours, hf = tokenizers
    path = need(os.path.join(DATA, "corpora", corpus))
    lines = open(path, encoding="utf-8").read().split("\n")
    diffs = [line for line in lines if ours.encode(line) != hf.convert_tokens_to_ids(hf.tokenize(line))]
    assert not diffs, f"{len(diffs)} lines differ, first: {diffs[0][:100]!r}"


def test_tricky_text_matches_hugging_face(tokenizers):
    ours, hf = tokenizers
    texts = ["Héllo, WORLD! naïve café 123.45%", "中文English混合，iPhone 13 Pro Max。", "\u3000全角　空格\t制表",
             "unaffable jumped ##foo", "x\u0000y\ufffdz\u200b", "emoji 😀 and ÅΣ", "A" * 250, "", "   "]
    for t in texts:
        assert ours.encode(t) == hf.convert_tokens_to_ids(hf.tokenize(t)), t


def test_cjk_split_one_per_token():
    tok = BertTokenizer(VOCAB)
    assert tok.tokenize("我爱北京天安门") == list("我爱北京天安门")


def test_starts_mark_word_pieces():
    tok = BertTokenizer(VOCAB)
    pieces, starts = tok.tokenize_with_starts("中文unaffable")
    assert pieces[:2] == ["中", "文"] and starts[:3] == [0, 1, 2]
    assert all(s == -1 for s, p in zip(starts, pieces) if p.startswith("##"))


def test_vocab_without_special_tokens_is_a_clear_error(tmp_path):
    p = tmp_path / "vocab.txt"
    p.write_text("[PAD]\n[UNK]\na\nb\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"lacks the special token\(s\) \[CLS\], \[SEP\], \[MASK\]"):
        Vocab.load(str(p))


def test_missing_vocab_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="vocabulary file not found"):
        build_tokenizer("bert", str(tmp_path / "nope.txt"))


def test_char_and_space_tokenizers():
    char = build_tokenizer("char", VOCAB)
    assert char.tokenize("中 文a") == ["中", "文", "a"]
    space = build_tokenizer("space", VOCAB)
    assert space.tokenize(" 中文 分词  测试 ") == ["中文", "分词", "测试"]


def test_sentencepiece_tokenizer():
    path = need(os.path.join(DATA, "vocab", "cluecorpussmall_spm.model"))
    tok = build_tokenizer("sentencepiece", VOCAB, spm_model_path=path)
    pieces = tok.tokenize("北京是中国的首都")
    assert "".join(pieces).replace("\u2581", "") == "北京是中国的首都"


def test_a_token_on_two_lines_takes_its_last_id_as_hugging_face_does(tmp_path, caplog):
    """A vocabulary that lists a token twice: Google's BERT, transformers and UER-py map it to its last line.
    Ours mapped it to the first, silently giving other ids than the released model's tokenizer; now the same
    ids, in the Python and the native tokenizer, with a warning naming the lines."""
    transformers = pytest.importorskip("transformers")
    from uer_like.data import native

    words = open(VOCAB, encoding="utf-8").read().split("\n")[:8000]
    words.insert(5000, "北")  # also at its own line further down
    words.insert(6000, "##ing")
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="uer_like"):
        ours = BertTokenizer(str(path))
    assert "'北' (lines" in caplog.text
    hf = transformers.BertTokenizer(str(path))
    text = "北京大学的testing和北方 playing"
    want = hf.convert_tokens_to_ids(hf.tokenize(text))
    assert ours.encode(text) == want and 5000 in want
    if native.AVAILABLE:
        import uer_like._native as N

        wp = N.WordPiece(ours.vocab.i2w, ours.vocab.w2i["[UNK]"], True)
        assert list(wp.tokenize(text)[0]) == want
