"""Word-level WordPiece (WoBERT / RoFormer word models) against bert4keras's recipe rebuilt from the real
packages: jieba.cut(text, HMM=False) over the lower-cased, accent-stripped text, a word kept whole when the
vocabulary has it, otherwise transformers' BertTokenizer on it."""
import collections
import os
import unicodedata

import pytest

from uer_like.tokenizers import build_tokenizer
from conftest import DATA, VOCAB, need

N_WORDS = 8000  # frequent jieba words added to Google's Chinese vocabulary (WoBERT added ~20k)


def bert4keras_normalize(text):  # bert4keras.tokenizers.lowercase_and_normalize
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")


@pytest.fixture(scope="module")
def word_vocab(tmp_path_factory):
    """Google's Chinese vocabulary + the most frequent multi-character jieba words of the book reviews."""
    jieba = pytest.importorskip("jieba")
    reviews = need(os.path.join(DATA, "corpora", "book_review_cls.txt"))
    base = open(VOCAB, encoding="utf-8").read().split("\n")
    base = [t for t in base if t]
    have = set(base)
    counts = collections.Counter()
    with open(reviews, encoding="utf-8") as f:
        for line in list(f)[:6000]:
            text = line.split("\t", 1)[-1].strip()
            counts.update(w for w in jieba.cut(bert4keras_normalize(text), HMM=False) if len(w) > 1 and w.strip())
    words = [w for w, _ in counts.most_common() if w not in have][:N_WORDS]
    path = tmp_path_factory.mktemp("wovocab") / "vocab.txt"
    path.write_text("\n".join(base + words) + "\n", encoding="utf-8")
    return str(path), set(words)


def reference(vocab_path):
    jieba = pytest.importorskip("jieba")
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertTokenizer(vocab_path)
    vocab = hf.get_vocab()
    tok = jieba.Tokenizer()  # a fresh jieba tokenizer over the default dictionary

    def tokenize(text):
        out = []
        for w in tok.cut(bert4keras_normalize(text), HMM=False):
            out.extend([w] if w in vocab else hf.tokenize(w))
        return out

    return tokenize


def test_word_wordpiece_equals_jieba_plus_bert_on_the_corpus(word_vocab):
    path, words = word_vocab
    ours = build_tokenizer("word_wordpiece", path)
    ref = reference(path)
    corpus = need(os.path.join(DATA, "corpora", "CLUECorpusSmall_bert_sampled.txt"))
    lines = [line for line in open(corpus, encoding="utf-8").read().split("\n") if line.strip()][:3000]
    extra = ["Héllo, WORLD! naïve café 中文English混合，iPhone 13 Pro Max。", "\u3000全角　空格\t制表 😀",
             "我们今天去北京大学看了一本好书", "", "   "]
    diffs, whole = [], 0
    for line in lines + extra:
        got = ours.tokenize(line)
        if got != ref(line):
            diffs.append(line)
        whole += sum(1 for t in got if t in words)
    assert not diffs, f"{len(diffs)} of {len(lines) + len(extra)} lines differ, first: {diffs[0][:80]!r}"
    assert whole > 1000  # the corpus does use the added words whole (the test is not about characters only)
    # ids are the vocabulary's lines
    line = lines[0]
    assert ours.encode(line) == [ours.vocab.w2i.get(t, ours.vocab.unk_id) for t in ref(line)]


def test_roformer_word_equals_roformer_tokenizer_recipe_on_the_corpus(word_vocab):
    """roformer_word: transformers 4.x RoFormerTokenizer._tokenize (rjieba.cut(text, False) on the text as
    given, a word kept when in the vocabulary, else BertTokenizer), with jieba for rjieba (they cut the same
    3,000 lines identically); it differs from the bert4keras recipe on words with capitals."""
    jieba = pytest.importorskip("jieba")
    transformers = pytest.importorskip("transformers")
    path, _ = word_vocab
    hf = transformers.BertTokenizer(path)
    vocab = hf.get_vocab()
    cut = jieba.Tokenizer()

    def ref(text):
        out = []
        for w in cut.cut(text, HMM=False):
            out.extend([w] if w in vocab else hf.tokenize(w))
        return out

    ours = build_tokenizer("roformer_word", path)
    corpus = need(os.path.join(DATA, "corpora", "CLUECorpusSmall_bert_sampled.txt"))
    lines = [line for line in open(corpus, encoding="utf-8").read().split("\n") if line.strip()][:3000]
    lines += ["学一学C语言", "Héllo, WORLD! naïve café 中文English混合", ""]
    diffs = [line for line in lines if ours.tokenize(line) != ref(line)]
    assert not diffs, f"{len(diffs)} lines differ, first: {diffs[0][:80]!r}"
    assert ours.tokenize("学一学C语言") != build_tokenizer("word_wordpiece", path).tokenize("学一学C语言")


def test_word_starts_mark_whole_words(word_vocab):
    path, _ = word_vocab
    tok = build_tokenizer("word_wordpiece", path)
    text = "我们今天去看了一本好书"
    pieces, starts = tok.tokenize_with_starts(text)
    assert pieces == tok.tokenize(text)
    assert all(s >= 0 and text.startswith(p, s) for p, s in zip(pieces, starts))


def test_preprocess_never_splits_words_into_characters_silently(word_vocab, tmp_path):
    """preprocess.py's native fast path implements the bert tokenizer only: a word tokenizer runs the Python
    path (auto), and --implementation native is refused."""
    from uer_like.data.dataset import Dataset
    from uer_like.errors import DataError
    from helpers import preprocess

    path, words = word_vocab
    text = "我们今天去北京大学看了一本好书。\n这本书非常好看，推荐大家去读。\n他们明天也去学校。\n"
    with pytest.raises(DataError, match="word_wordpiece"):
        preprocess(tmp_path, text, vocab_path=path, tokenizer="word_wordpiece", implementation="native",
                   data_processor="lm", seq_length=16)
    out, _ = preprocess(tmp_path, text, vocab_path=path, tokenizer="word_wordpiece", data_processor="lm",
                        seq_length=64)
    tok = build_tokenizer("word_wordpiece", path)
    got = [int(i) for i in Dataset(out).ids]
    expect = [i for line in text.splitlines() for i in tok.encode(line)]
    assert any(tok.vocab.i2w[i] in words for i in expect)  # the text has added words
    assert all(i in got for i in expect)


def test_a_roformer_directory_is_read_with_its_word_tokenizer(word_vocab, tmp_path):
    """A RoFormer release (config.json model_type roformer, its vocab.txt): load_model + extract_features and
    io.tokenizer.model_tokenizer use the word-level tokenizer (a whole word is one token)."""
    transformers = pytest.importorskip("transformers")
    from uer_like.io import extract_features, load_model
    from uer_like.io.tokenizer import model_tokenizer

    path, words = word_vocab
    n = sum(1 for _ in open(path, encoding="utf-8"))
    cfg = transformers.RoFormerConfig(vocab_size=n, embedding_size=32, hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    d = tmp_path / "roformer"
    transformers.RoFormerModel(cfg).save_pretrained(str(d))
    (d / "vocab.txt").write_bytes(open(path, "rb").read())
    model = load_model(str(d))
    tok = model_tokenizer(model)
    assert type(tok).__name__ == "RoFormerWordTokenizer"
    text = "我们今天去北京大学看了一本好书"
    pieces = tok.tokenize(text)
    assert any(p in words for p in pieces) and len(pieces) < len(text)
    feats = extract_features(model, [text], pooling="none")
    assert feats[0].shape[0] == len(pieces) + 2  # [CLS] words [SEP]
