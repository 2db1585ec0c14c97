"""uer_like.segmentation must reproduce jieba 0.42.1 exactly (jieba.lcut, HMM on and off).

* real text: every line of the small sample data sets, a deterministic 1-in-3 sample of the lines
  of the shared corpora and large fine-tuning tsvs (UER_LIKE_SEGMENT_FULL=1: every line; the
  full check also runs in benchmarks/segment.py);
* malformed / edge-case input (NUL, BOM, \\r\\n, lone \\r, U+2028, U+0085, control characters,
  lone surrogates, astral characters, invalid UTF-8 through the bytes API, a 10 MB line);
* user dictionaries (jieba.Tokenizer + load_userdict) and a custom main dictionary;
* the fallback to jieba when the extension is not built;
* the extension built with AddressSanitizer running all the malformed inputs.
"""
import glob
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

jieba = pytest.importorskip("jieba")
jieba.setLogLevel(60)

from uer_like import segmentation as seg  # noqa: E402
from conftest import need_native  # noqa: E402
from helpers import build_asan_extension, libasan  # noqa: E402

# jieba.lcut is jieba.dt.lcut with dt = jieba.Tokenizer(); compare against a private fresh
# Tokenizer so that other tests changing jieba's global tokenizer cannot interfere.
JB = jieba.Tokenizer()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
FULL = bool(os.environ.get("UER_LIKE_SEGMENT_FULL"))


def _read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "surrogateescape")
    return text.split("\n")  # keep \r, U+2028, U+0085 ... inside the lines


def _data_files():
    corpora = sorted(glob.glob(os.path.join(SHARED, "corpora", "*.txt")))
    tsvs = sorted(glob.glob(os.path.join(SHARED, "datasets", "**", "*.tsv"), recursive=True))
    return corpora + tsvs


def _assert_same(lines, hmm, where):
    got = seg.segment_lines(lines, hmm=hmm)
    for i, line in enumerate(lines):
        want = JB.lcut(line, HMM=hmm)
        if got[i] != want:
            raise AssertionError("%s line %d (HMM=%s): %r\nnative: %r\njieba:  %r"
                                 % (where, i + 1, hmm, line[:300], got[i][:60], want[:60]))


# ---------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.isdir(SHARED), reason=f"{SHARED} is not here: the team's shared corpora "
                    "(../shared beside the checkout) are needed to compare with jieba on real text")
@pytest.mark.parametrize("hmm", [True, False], ids=["hmm", "no_hmm"])
def test_real_data_matches_jieba(hmm):
    need_native()
    files = _data_files()
    if not files:
        pytest.skip("no corpora / tsv files under %s" % SHARED)
    for path in files:
        lines = _read_lines(path)
        if not FULL and len(lines) > 1000:
            lines = lines[::3]  # deterministic sample; the benchmark checks every line
        _assert_same(lines, hmm, os.path.relpath(path, SHARED))


# ---------------------------------------------------------------------------
# edge cases
# ---------------------------------------------------------------------------

EDGE_CASES = [
    "",
    " ",
    "\x00",
    "中\x00国",
    "我爱北京\x00天安门\x00",
    "\ufeff我来到北京清华大学",
    "\ufeff",
    "行一\r\n行二\r\n",
    "\r\n\r\n",
    "\r\r\n\n\r",
    "结尾\r",
    "单独\r回车",
    "段落\u2028分隔\u2029符",
    "下一行\u0085字符",
    "控制\x01\x02\x07\x08\x0b\x0c\x1b\x1c\x1d\x1e\x1f\x7f字符",
    "\t\t制表 符\u3000全角空格\u00a0不换行\u2003空格",
    "他来到了网易杭研大厦",
    "小明硕士毕业于中国科学院计算所，后在日本京都大学深造",
    "韩玉赏鉴的发言人说iPhone6s的价格是5288元，涨幅12.5%，C++和C#都是语言",
    "a+b=c, x-y_z & w#1.2.3%% 100%  3.14159 .5 5. a.b",
    "1.5kg苹果2.3元/斤，折扣30%，共计3.45元",
    "ＡＢＣ全角字母１２３全角数字",
    "𠀀𠀁𪚥astral 🙂 emoji 😀😀 中文",
    "㐀㐁扩展A区〇〇",
    "\ud800lone\udc00surrogates\udfff中文",
    "鿕鿖鿿",  # U+9FD5 is the last re_han character
    "一" * 50,
    "的" * 33 + "了" * 17,
    "abcdefghijklmnopqrstuvwxyz" * 20,
    "北京大学生前来应聘" * 3,
    "结婚的和尚未结婚的",
    "工信处女干事每月经过下属科室都要亲口交代24口交换机等技术性器件的安装工作",
    "--++##&&..__%%",
    "中-文_混.合+排#版&符%号",
    "ǅǆ ǈ ĳ ß ﬁ Ω K Å",
    "\u0301\u0300 combining marks 中\u0301文",
    "🇨🇳🏳️‍🌈 ZWJ\u200dsequence\u200b零宽",
]


@pytest.mark.parametrize("hmm", [True, False], ids=["hmm", "no_hmm"])
def test_edge_cases_match_jieba(hmm):
    need_native()
    for text in EDGE_CASES:
        assert seg.segment(text, hmm=hmm) == JB.lcut(text, HMM=hmm), repr(text)


@pytest.mark.parametrize("hmm", [True, False], ids=["hmm", "no_hmm"])
def test_random_strings_match_jieba(hmm):
    need_native()
    rng = random.Random(1234)
    alphabet = ("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会"
                "abcXYZ0123456789+#&._%-" + " \t\r\n\x00\u3000\u2028\u0085，。！？、：；“”（）"
                "\ufeff\ud800😀㐀鿕鿖")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(400)]
    assert seg.segment_lines(texts, hmm=hmm) == [JB.lcut(t, HMM=hmm) for t in texts]


def test_segment_returns_list_of_str_partitioning_input():
    text = "我来到北京清华大学。\r\nHello, world! 12.5%"
    words = seg.segment(text)
    assert isinstance(words, list) and all(type(w) is str for w in words)
    assert "".join(words) == text


@pytest.mark.parametrize("native", [True, False], ids=["native", "fallback"])
def test_word_ends(native, monkeypatch):
    if native:
        need_native()
    else:
        monkeypatch.setattr(seg, "NATIVE_AVAILABLE", False)
    s = seg.Segmenter()
    for text in EDGE_CASES[:30]:
        for hmm in (True, False):
            words = JB.lcut(text, HMM=hmm)
            ends = s.word_ends(text, hmm)
            assert [text[a:b] for a, b in zip([0] + ends[:-1], ends)] == words
            b = text.encode("utf-8", "surrogatepass") if "\ud800" in text else text.encode()
            bends = s.word_ends(b, hmm)
            assert [b[x:y] for x, y in zip([0] + bends[:-1], bends)] == s.cut(b, hmm)


def test_bytes_api_invalid_utf8():
    s = seg.get_segmenter()
    cases = [
        b"",
        "我来到北京清华大学".encode(),
        b"\xff\xfe\xfd",
        "中文".encode() + b"\xe4\xb8" + "国".encode(),  # truncated sequence
        b"\xe4\xb8\xad\xe5",  # truncated at the end
        b"\xc0\xaf overlong \xe0\x80\xaf",
        b"\xed\xa0\x80 encoded surrogate",
        b"\xf4\x90\x80\x80 above U+10FFFF",
        b"\x80\x80\x80 stray continuation",
        b"ok\x00nul\r\nbom\xef\xbb\xbf",
        "混合".encode() + b"\xa0" + "abc 12.5%".encode() + b"\xf0\x9f\x98",
    ]
    for hmm in (True, False):
        for b in cases:
            got = s.cut(b, hmm)
            text = b.decode("utf-8", "surrogateescape")
            want = [w.encode("utf-8", "surrogateescape") for w in JB.lcut(text, HMM=hmm)]
            assert got == want, (b, got, want)
            assert b"".join(got) == b
        assert s.cut_lines(cases, hmm) == [s.cut(b, hmm) for b in cases]
        assert s.cut(bytearray(cases[1]), hmm) == s.cut(cases[1], hmm)


def test_bad_argument_types():
    s = seg.get_segmenter()
    s.cut("x")
    for bad in (None, 1, 1.5, ["a"], object()):
        with pytest.raises(TypeError):
            s.cut(bad)
    with pytest.raises(TypeError):
        s.cut_lines(["ok", 3])
    with pytest.raises(TypeError):
        s.cut_lines(5)
    with pytest.raises(TypeError):
        s.cut_lines("not a list")
    assert s.cut_lines(iter(["中文", b"ab"])) == [["中文"], [b"ab"]]
    assert s.cut_lines(()) == []


def test_ten_megabytes_without_newline():
    # blocks are cut independently and "，" is a block separator, so the answer is known
    sentence = "小明硕士毕业于中国科学院计算所后在日本京都大学深造abc12.5%的成绩，"
    k = (10 * 1024 * 1024) // len(sentence.encode()) + 1
    text = sentence * k
    assert len(text.encode()) > 10 * 1024 * 1024
    for hmm in (True, False):
        assert seg.segment(text, hmm) == JB.lcut(sentence, HMM=hmm) * k
    # one 10 MB block of letters: jieba's answer for a shorter one, scaled
    for hmm in (True, False):
        assert JB.lcut("a" * 2000, HMM=hmm) == ["a" * 2000]
        assert seg.segment("a" * (10 << 20), hmm) == ["a" * (10 << 20)]
    # one 10 MB block of CJK characters: must terminate and partition the input
    rng = random.Random(7)
    pool = [chr(c) for c in range(0x4E00, 0x9FD6)]
    big = "".join(rng.choices(pool, k=3_500_000))
    for hmm in (True, False):
        words = seg.segment(big, hmm)
        assert "".join(words) == big
    head = big[:3000]
    assert seg.segment(head) == JB.lcut(head)


# ---------------------------------------------------------------------------
# dictionaries
# ---------------------------------------------------------------------------

USER_DICT = """\
\ufeff云计算 5
创新办 3 i
凱特琳 nz
台中
韩玉赏鉴
李小福 2 nr
easy_install 3 eng
好用 300
八一双鹿
ABC银行
石墨烯 100000
自定义词
的确是 1
"""

USER_TEXTS = [
    "李小福是创新办主任也是云计算方面的专家; 什么是八一双鹿",
    "例如我输入一个带“韩玉赏鉴”的标题，在自定义词库中也增加了此词为N类",
    "「台中」正確應該不會被切開。mac上可分出「石墨烯」；此時又可以分出來凱特琳了。",
    "easy_install is great，ABC银行的自定义词的确是好用",
    "我们中出了一个叛徒，结婚的和尚未结婚的",
]


@pytest.fixture(scope="module")
def user_dict_path():
    d = tempfile.mkdtemp(prefix="uer_seg_")
    p = os.path.join(d, "user.txt")
    with open(p, "w", encoding="utf-8") as f:
        f.write(USER_DICT)
    yield p
    shutil.rmtree(d, ignore_errors=True)


def _corpus_sample(n=300):
    lines = []
    for path in _data_files()[:3]:
        lines += [l for l in _read_lines(path)[:n] if l]
    return lines


def test_user_dict_matches_jieba_load_userdict(user_dict_path):
    need_native()
    tok = jieba.Tokenizer()
    tok.load_userdict(user_dict_path)
    s = seg.Segmenter(user_dict=user_dict_path)
    texts = USER_TEXTS + _corpus_sample()
    for hmm in (True, False):
        assert s.cut_lines(texts, hmm) == [tok.lcut(t, HMM=hmm) for t in texts]
    # frequencies (explicit and suggest_freq-computed) and total agree with jieba's FREQ
    for w in ("云计算", "凱特琳", "台中", "韩玉赏鉴", "八一双鹿", "ABC银行", "自定义词", "的确是", "凱"):
        assert s.get_freq(w) == tok.FREQ.get(w), w
    if s.native:
        assert s._load().total == tok.total
        assert s._load().num_nodes == len(tok.FREQ) + 1


def test_user_dict_zero_freq_force_split(tmp_path):
    need_native()
    from jieba import finalseg

    p = tmp_path / "zero.txt"
    p.write_text("大厦 0\n杭研 0\n", encoding="utf-8")
    before = set(finalseg.Force_Split_Words)
    try:
        tok = jieba.Tokenizer()
        tok.load_userdict(str(p))
        s = seg.Segmenter(user_dict=str(p))
        texts = ["他来到了网易杭研大厦", "杭研大厦很高", "大厦杭研"] + USER_TEXTS
        for hmm in (True, False):
            assert s.cut_lines(texts, hmm) == [tok.lcut(t, HMM=hmm) for t in texts]
    finally:
        finalseg.Force_Split_Words.clear()
        finalseg.Force_Split_Words.update(before)


def test_custom_main_dictionary(tmp_path):
    need_native()
    p = tmp_path / "small_dict.txt"
    p.write_text("北京 100 ns\n清华 50 nt\n清华大学 80 nt\n大学 60 n\n来到 40 v\n我 200 r\n"
                 "北 0\nab 3 x\n", encoding="utf-8")
    tok = jieba.Tokenizer(str(p))
    tok.tmp_dir = str(tmp_path)
    s = seg.Segmenter(dict_path=str(p))
    texts = ["我来到北京清华大学", "北京大学生", "ab abc北京", "他来到了网易杭研大厦"] + USER_TEXTS
    for hmm in (True, False):
        assert s.cut_lines(texts, hmm) == [tok.lcut(t, HMM=hmm) for t in texts]


def test_invalid_main_dictionary(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("北京 100\n清华\n", encoding="utf-8")
    with pytest.raises(ValueError, match="Line 2"):
        seg.Segmenter(dict_path=str(p)).cut("北京")
    with pytest.raises((OSError, ValueError)):
        seg.Segmenter(dict_path=str(tmp_path / "missing.txt")).cut("北京")


def test_segmenter_pickles(user_dict_path):
    import pickle

    s = seg.Segmenter(user_dict=user_dict_path)
    want = s.cut(USER_TEXTS[0])
    s2 = pickle.loads(pickle.dumps(s))
    assert s2.user_dicts == s.user_dicts and s2.cut(USER_TEXTS[0]) == want


def test_dictionary_hash(user_dict_path):
    h = seg.dictionary_hash()
    assert len(h) == 64 and h == seg.dictionary_hash()
    assert seg.dictionary_hash(user_dict=user_dict_path) != h
    assert seg.dictionary_hash(include_hmm=False) != h
    assert seg.Segmenter().dictionary_hash() == h


def test_fallback_without_native(monkeypatch, user_dict_path):
    monkeypatch.setattr(seg, "NATIVE_AVAILABLE", False)
    s = seg.Segmenter(user_dict=user_dict_path)
    tok = jieba.Tokenizer()
    tok.load_userdict(user_dict_path)
    for hmm in (True, False):
        assert s.cut_lines(USER_TEXTS, hmm) == [tok.lcut(t, HMM=hmm) for t in USER_TEXTS]
    assert s.cut(b"\xff\xe4\xb8\xad", True) == [b"\xff", "中".encode()]
    assert not s.native


def test_native_threads_share_a_segmenter():
    need_native()
    from concurrent.futures import ThreadPoolExecutor

    lines = USER_TEXTS * 50 + EDGE_CASES
    s = seg.get_segmenter()
    want = s.cut_lines(lines)
    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda _: s.cut_lines(lines), range(8)))
    assert all(o == want for o in outs)


def test_native_add_word_after_freeze():
    need_native()
    from uer_like import _native

    impl = _native.JiebaSegmenter(seg.default_dict_path())
    impl.set_hmm(*seg._hmm_tables())
    assert impl.frozen
    tok = jieba.Tokenizer()
    tok.initialize()
    for w, f in (("杭研大厦", 500), ("网易杭研", 20)):
        impl.add_word(w, f)
        tok.add_word(w, f)
    assert not impl.frozen  # mutable trie path
    text = "他来到了网易杭研大厦"
    assert impl.cut(text) == tok.lcut(text)
    impl.freeze()
    assert impl.cut(text) == tok.lcut(text)
    assert impl.cut(text, False) == tok.lcut(text, HMM=False)


# ---------------------------------------------------------------------------
# AddressSanitizer build
# ---------------------------------------------------------------------------

ASAN_SCRIPT = textwrap.dedent(r'''
    import importlib.util, sys, random
    spec = importlib.util.spec_from_file_location("_native", sys.argv[1])
    nat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nat)
    import jieba
    from jieba import finalseg
    jieba.setLogLevel(60)
    s = nat.JiebaSegmenter(sys.argv[2])
    s.set_hmm(finalseg.start_P, finalseg.trans_P, finalseg.emit_P)
    cases = eval(sys.argv[3])
    rng = random.Random(3)
    alphabet = "的一是了我不人在abc01+#.%-_& \t\r\n\x00\u3000\u2028\u0085，。\ufeff\ud800😀㐀鿕"
    cases += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(300)]
    cases.append("中文abc12.5%，" * 20000)
    cases.append("一" * 200000)
    for hmm in (True, False):
        for t in cases:
            assert s.cut(t, hmm) == jieba.lcut(t, HMM=hmm), repr(t)
            assert len(s.cut_ends(t, hmm)) == len(s.cut(t, hmm))
        assert s.cut_lines(cases[:50], hmm) == [jieba.lcut(t, HMM=hmm) for t in cases[:50]]
    rng = random.Random(5)
    for _ in range(3000):
        b = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        b += "中文".encode()[: rng.randint(0, 6)]
        for hmm in (True, False):
            got = s.cut(b, hmm)
            want = [w.encode("utf-8", "surrogateescape")
                    for w in jieba.lcut(b.decode("utf-8", "surrogateescape"), HMM=hmm)]
            assert got == want, b
            assert s.cut_ends(b, hmm)[-1:] == ([len(b)] if b else [])
    s.add_word("杭研大厦", 5)
    s.add_word("", 3)
    s.add_word("大厦", 0)
    s.force_split("网易")
    assert s.get_freq("大厦") == 0 and s.get_freq("不存在的词") is None
    for t in cases[:100]:
        s.cut(t)
    s.freeze()
    for t in cases[:100]:
        s.cut(t, False)
    empty = nat.JiebaSegmenter()
    try:
        empty.cut("中文")
    except RuntimeError:
        pass
    print(empty.cut("中文abc", False), "ASAN-OK")
''')


@pytest.mark.skipif(libasan() is None, reason="gcc or libasan not available")
def test_asan_build_malformed_inputs(tmp_path):
    so = build_asan_extension(tmp_path)
    cases = repr(EDGE_CASES)
    run_env = dict(os.environ, LD_PRELOAD=libasan(),
                   ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99",
                   PYTHONMALLOC="malloc")
    proc = subprocess.run(
        [sys.executable, "-c", ASAN_SCRIPT, so, seg.default_dict_path(), cases],
        env=run_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "ASAN-OK" in proc.stdout, (
        proc.stdout[-3000:] + proc.stderr[-6000:])
