"""The native preprocessor (csrc/instances.c, csrc/wordpiece.c) against the Python reference path:
byte-identical datasets for every processor, identical handling of malformed input (same files, same
problem counts and first line numbers, same error line), native batch masking == mask_instance, the C
tokenizer == the Python BERT tokenizer, and an AddressSanitizer run over malformed input."""
import dataclasses
import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from uer_like.data import native
from uer_like.data.dataset import Dataset
from uer_like.data.masking import mask_instance
from uer_like.data.rng import SplitMix64
from uer_like.errors import DataError
from uer_like.tokenizers import BertTokenizer, Vocab
from conftest import DATA, ROOT, SAMPLE_CORPUS, VOCAB
from helpers import preprocess, build_asan_extension, libasan

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="uer_like._native is not built")

VOC = Vocab.load(VOCAB)
SHARED_CORPORA = [os.path.join(DATA, "corpora", n) for n in
                  ("CLUECorpusSmall_bert_sampled.txt", "CLUECorpusSmall_sampled.txt", "book_review_cls.txt")]
CLS_CORPUS = SHARED_CORPORA[2]


def _slice(path, n):
    raw = open(path, "rb").read(n)
    return raw[: raw.rfind(b"\n\n") + 2] if b"\n\n" in raw else raw[: raw.rfind(b"\n") + 1]


BERT_TEXT = _slice(SAMPLE_CORPUS, 120000)


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def both(tmp_path, data, **kw):
    """Run both paths on the same corpus; return (python (path, manifest), native (path, manifest))."""
    corpus = os.path.join(tmp_path, "corpus.txt")
    with open(corpus, "wb") as f:
        f.write(data)
    py = preprocess(tmp_path, corpus_path=corpus, name="py.bin", implementation="python", **kw)
    nat = preprocess(tmp_path, corpus_path=corpus, name="nat.bin", implementation="native", **kw)
    return py, nat


def assert_identical(py, nat):
    assert sha(py[0]) == sha(nat[0])
    assert py[1] == nat[1]


# ------------------------------------------------------------------------------ identical datasets
# lm and cls have no masks, so static masking (dynamic False) would change nothing for them
@pytest.mark.parametrize("dynamic,wwm,proc", [(d, w, p) for d in (False, True) for w in (False, True)
                                             for p in ("bert", "albert", "mlm", "lm", "cls")
                                             if d or p not in ("lm", "cls")])
def test_identical_datasets(tmp_path, proc, wwm, dynamic):
    if proc == "cls":
        if not os.path.exists(CLS_CORPUS):
            pytest.skip("the shared book_review_cls corpus is not here")
        data = _slice(CLS_CORPUS, 60000)
    else:
        data = BERT_TEXT
    py, nat = both(tmp_path, data, data_processor=proc, seq_length=64, dup_factor=2, whole_word_masking=wwm,
                   dynamic_masking=dynamic, chunk_bytes=24576, seed=11,
                   mask_decision="token" if (proc == "albert" and wwm) else "word")
    assert py[1]["instances"] > 100
    assert_identical(py, nat)


def test_identical_with_two_processes_and_no_lowercasing(tmp_path):
    py, nat = both(tmp_path, BERT_TEXT, data_processor="bert", seq_length=128, dup_factor=2, chunk_bytes=16384,
                   whole_word_masking=True, do_lower_case=False, processes_num=2, short_seq_prob=0.3)
    assert_identical(py, nat)


# ------------------------------------------------------------------------------ malformed input
def malformed_corpus():
    rng = random.Random(7)
    good = "今天天气很好，我们去北京大学散步。Hello World! Déjà vu 123。"
    parts = [
        b"\n\n",                                       # empty first documents
        "\ufeff".encode() + good.encode() + b"\n",      # BOM
        good.encode() + b"\r\n",                       # \r\n
        "甲\r乙\u2028丙\u0085丁".encode() + b"\n",      # lone \r, U+2028, U+0085 inside a line
        b"bad \xff\xfe utf8 \xe4\xb8 here\n",          # invalid UTF-8
        b"nul \x00 byte\n",
        "控制\x01字符\x7f和\x9f".encode() + b"\n",       # control characters
        b"\n\n\n",                                     # empty middle documents
        good.encode() + b"\n",
        b"\xef\xbb\xbf\xef\xbb\xbf double bom\n",
        b"trunc \xf0\x9f\x98\n",
        b" \t \r\n",                                   # whitespace-only line
        "\ufeff".encode() + b"\n",                     # a line that is only a BOM
    ]
    for _ in range(40):  # random bytes, some valid text
        b = bytes(rng.randrange(256) for _ in range(rng.randint(0, 30))).replace(b"\n", b" ")
        parts.append(b + good.encode()[: rng.randint(0, 40)] + b"\n")
        if rng.random() < 0.2:
            parts.append(b"\n")
    parts.append(good.encode() + b"\n\n\n")  # empty last documents
    return b"".join(parts)


@pytest.mark.parametrize("policy", ["skip", "replace"])
@pytest.mark.parametrize("proc", ["bert", "mlm"])
def test_malformed_input_identical(tmp_path, policy, proc):
    data = malformed_corpus()
    py, nat = both(tmp_path, data, data_processor=proc, seq_length=32, whole_word_masking=True,
                   invalid_lines=policy, chunk_bytes=300)
    assert_identical(py, nat)
    counts = py[1]["problems"]["counts"]
    assert {"invalid_utf8", "nul", "bom", "control_chars"} <= set(counts)


def test_policy_error_reports_the_same_global_line(tmp_path):
    good = "这是一行正常的中文文本。\n" * 400
    for bad in (b"\xff\xfe\n", b"a\x00b\n"):
        data = good.encode() + bad + good.encode()
        msgs = []
        for impl in ("python", "native"):
            corpus = os.path.join(tmp_path, "corpus.txt")
            open(corpus, "wb").write(data)
            with pytest.raises(DataError) as e:
                preprocess(tmp_path, corpus_path=corpus, data_processor="mlm", seq_length=32, invalid_lines="error",
                           chunk_bytes=2048, implementation=impl)
            msgs.append(str(e.value))
        assert msgs[0] == msgs[1] and ":401: " in msgs[0]


def test_cls_rows_identical_and_errors(tmp_path):
    text = ("label\ttext_a\n1\t好看\n1\t2\t3\t4\nx\t坏\n-1\t负\n 2_0 \t下划线\n\uff11\t全角\n0\t\n"
            "3\ta\tb\n\n0\t很好看的书\n").encode()
    for policy in ("skip", "replace"):
        py, nat = both(tmp_path, text, data_processor="cls", seq_length=16, invalid_lines=policy)
        assert_identical(py, nat)
        assert py[1]["problems"]["first_lines"]["bad_columns"] == [3, 4, 5]
    for bad in ("1\t2\t3\t4\n", "x\t坏\n", "-1\t负\n", "\uff0d1\t负\n"):
        data = ("label\ttext_a\n1\t好\n" + bad).encode()
        msgs = []
        for impl in ("python", "native"):
            corpus = os.path.join(tmp_path, "c.txt")
            open(corpus, "wb").write(data)
            with pytest.raises(DataError) as e:
                preprocess(tmp_path, corpus_path=corpus, data_processor="cls", seq_length=16, invalid_lines="error",
                           implementation=impl)
            msgs.append(str(e.value))
        assert msgs[0] == msgs[1] and "c.txt:3: " in msgs[0], msgs


def test_ten_megabyte_line_without_newline(tmp_path):
    head = "第一行很好\n第二行\n".encode()
    line = b"abc " + b" " * (10 << 20) + "北京大学\x01 xyz".encode() + b"\xff"  # no final newline
    for policy in ("skip", "replace"):
        py, nat = both(tmp_path, head + line, data_processor="mlm", seq_length=32, whole_word_masking=True,
                       invalid_lines=policy)
        assert_identical(py, nat)
        assert py[1]["lines"] == 3 and py[1]["problems"]["first_lines"]["invalid_utf8"] == [3]


def test_random_corpora_and_options_identical(tmp_path):
    """Small random corpora (junk bytes, controls, BOMs, \r, cls rows) under random options: both paths
    give the same file, or the same error."""
    rng = random.Random(2024)
    words = ["今天", "天气", "很好", "北京大学", "我们", "Hello", "World", "déjà", "ÉCOLE", "İz", "ΣΑΣ", "123", "4.5%",
             "，", "。", "!", "\t", " ", "\u3000", "\x01", "\x00", "\ufeff", "\r", "\u2028", "\u0085", "😀", "㐀",
             "e\u0301", "abc" * 40, "가각", "\ufffd", "1\t", "label\t", "-3\t", "\uff11\t", "中", "的"]
    bad = [b"\xff", b"\xe4\xb8", b"\xed\xa0\x80", b"\xf0\x9f", b"\xc0\xaf", b"\x80"]
    corpus = os.path.join(tmp_path, "c.txt")
    for it in range(60):
        parts = []
        for _ in range(rng.randint(0, 50)):
            line = "".join(rng.choice(words) for _ in range(rng.randint(0, 25))).encode()
            if rng.random() < 0.1:
                k = rng.randint(0, len(line))
                line = line[:k] + rng.choice(bad) + line[k:]
            parts.append(line + (b"\n" if rng.random() < 0.97 else b"\r\n"))
            if rng.random() < 0.15:
                parts.append(b"\n" * rng.randint(1, 3))
        data = b"".join(parts)
        if rng.random() < 0.3:
            data = data[:-1]
        open(corpus, "wb").write(data)
        proc = rng.choice(["bert", "albert", "mlm", "lm", "cls"])
        kw = dict(data_processor=proc, seq_length=rng.choice([8, 9, 12, 20, 64]), dup_factor=rng.randint(1, 3),
                  whole_word_masking=rng.random() < 0.5, dynamic_masking=rng.random() < 0.4,
                  invalid_lines=rng.choice(["error", "skip", "replace"]), chunk_bytes=rng.choice([64, 200, 1 << 20]),
                  short_seq_prob=rng.choice([0.0, 0.1, 0.9]), mask_prob=rng.choice([0.15, 0.5, 0.01]),
                  mask_decision=rng.choice(["word", "token"]), seed=rng.randint(0, 2 ** 40),
                  do_lower_case=rng.random() < 0.8)
        if proc == "cls" or rng.random() < 0.3:
            kw["corpus_format"] = "line"
        res = []
        for impl in ("python", "native"):
            try:
                path, m = preprocess(tmp_path, corpus_path=corpus, name=impl + ".bin", implementation=impl, **kw)
                res.append((sha(path), m))
            except DataError as e:
                res.append(("error", str(e)))
        assert res[0] == res[1], (it, kw)


def test_auto_falls_back_to_python(tmp_path, caplog):
    import logging

    from uer_like.data.options import PreprocessOptions
    from uer_like.data.preprocess import chunk_function, process_chunk

    caplog.set_level(logging.INFO, logger="uer_like")
    o = PreprocessOptions(implementation="auto", tokenizer="char", whole_word_masking=False)
    assert chunk_function(o) is process_chunk and "Python implementation" in caplog.text
    with pytest.raises(DataError, match="no native implementation"):
        chunk_function(dataclasses.replace(o, implementation="native"))
    assert chunk_function(dataclasses.replace(o, tokenizer="bert")) is native.process_chunk


# ------------------------------------------------------------------------------ masking
def test_native_mask_instances_equal_mask_instance():
    rng = random.Random(5)
    special = {VOC.cls_id, VOC.sep_id, VOC.pad_id}
    for whole, per_word, prob in [(False, True, 0.15), (True, True, 0.15), (True, False, 0.3), (False, False, 0.5)]:
        rows, bits, keys = [], [], []
        for k in range(400):
            n = rng.randint(0, 80)
            ids = [rng.choice([VOC.cls_id, VOC.sep_id, VOC.pad_id]) if rng.random() < 0.1 else rng.randint(1, 21127)
                   for _ in range(n)]
            rows.append(ids)
            bits.append([int(rng.random() < 0.6) for _ in range(n)])
            keys.append([7, 3, k % 5, k])
        lengths = [len(r) for r in rows]
        out, mlen, pos, lab = native.mask_instances(np.array(sum(rows, []), np.int64), lengths,
                                                    np.array(sum(bits, []), np.uint8), keys, special, len(VOC),
                                                    VOC.mask_id, prob, whole, per_word)
        o = m = 0
        for j, (ids, b, key) in enumerate(zip(rows, bits, keys)):
            want = mask_instance(ids, b, special, SplitMix64(*key), len(VOC), VOC.mask_id, prob, whole, per_word)
            n, cnt = len(ids), len(want[1])
            assert out[o:o + n].tolist() == want[0] and int(mlen[j]) == cnt
            assert pos[m:m + cnt].tolist() == want[1] and lab[m:m + cnt].tolist() == want[2]
            o += n
            m += cnt
        assert m == int(mlen.sum())


def test_collator_native_batch_masks_equal_python(tmp_path, monkeypatch):
    from uer_like.training.batches import Collator

    path, _ = preprocess(tmp_path, BERT_TEXT, data_processor="bert", seq_length=64, dynamic_masking=True,
                         whole_word_masking=True)
    ds = Dataset(path)
    col = Collator(ds, ["mlm", "sp"], seed=3)
    idx = np.arange(min(len(ds), 48))
    got = col(idx, 2)
    monkeypatch.setattr(native, "AVAILABLE", False)
    want = col(idx, 2)
    for k in want:
        a, b = want[k], got[k]
        assert (a == b).all() if hasattr(a, "shape") else a == b, k


# ------------------------------------------------------------------------------ tokenizer
TRICKY = ["", " ", "\x00", "\ufffd", "a\x01b.c", "İstanbul ΣΑΣ Straße ﬁ ǅ Ⅻ", "e\u0301\u0323 a\u0345\u0301",
          "\u1d165 가각힣 Ḱ\u0301", "x" * 100, "x" * 101, "é" * 100, "É" * 101, "\ud800abc", "😀 𠀀 㐀 鿕 \u3000",
          "\u2028\u0085\u00ad\u200b\u200d\ufeff", "([{<Hello>}]),,,.!?，。、；：“”‘’", "\t\r\n\x0b\x0c\x1c",
          "ABC\u0300DEF\u0301", "Ａｂｃ１２３", "ㄱㅏ ᄀ ﾊﾞ", "\U000e0001\U000e0041"]


def test_c_tokenizer_equals_python_tokenizer():
    rng = random.Random(1)
    alphabet = "".join(TRICKY) + "中文abcXYZ019 ,.;'\"#$%&"
    cases = TRICKY + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    shared = [p for p in SHARED_CORPORA if os.path.exists(p)]
    lines = []
    for p in shared:
        lines += open(p, encoding="utf-8").read().split("\n")
    for lower in (True, False):
        tok = BertTokenizer(VOC, do_lower_case=lower)
        wp = native._native.WordPiece(VOC.i2w, VOC.unk_id, lower)
        # every line of the shared corpora with lower-casing (the default), a sample without
        sample = lines if lower else lines[::7]
        for text in cases + sample:
            pieces, starts = tok.tokenize_with_starts(text)
            ids, st = wp.tokenize(text)
            assert ids == VOC.convert_tokens_to_ids(pieces) and st == starts, repr(text)


def test_unicode_tables_are_current():
    """The committed header is what the generator makes (when this Python has its Unicode version), and the
    extension was built with tables of this Python's version (setup.py generates them for another)."""
    import unicodedata

    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import gen_unicode_tables
    finally:
        sys.path.pop(0)
    if gen_unicode_tables.committed_version() == unicodedata.unidata_version:
        out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_unicode_tables.py"), "--check"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
    assert native._native.UNIDATA_VERSION == unicodedata.unidata_version


def test_extension_with_tables_of_another_unicode_version_is_not_used(tmp_path, monkeypatch):
    """Tables of another Unicode version than this Python's could tokenize differently: the native path
    refuses them (an error for --implementation native, the Python path with a note for auto)."""
    monkeypatch.setattr(native._native, "UNIDATA_VERSION", "1.0.0", raising=False)
    from uer_like.data.options import PreprocessOptions
    from uer_like.data.preprocess import chunk_function

    o = PreprocessOptions(tokenizer="bert", whole_word_masking=False, implementation="native")
    reason = native.unsupported_reason(o)
    assert "built with Unicode 1.0.0 tables" in reason and "rebuild it" in reason
    with pytest.raises(DataError, match="Unicode 1.0.0"):
        chunk_function(o)


# ------------------------------------------------------------------------------ AddressSanitizer
ASAN_SCRIPT = textwrap.dedent(r'''
    import importlib.util, sys, random, json
    spec = importlib.util.spec_from_file_location("_native", sys.argv[1])
    nat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nat)
    from jieba import finalseg
    seg = nat.JiebaSegmenter(sys.argv[2])
    seg.set_hmm(finalseg.start_P, finalseg.trans_P, finalseg.emit_P)
    seg.freeze()
    vocab = [l.rstrip("\r") for l in open(sys.argv[3], encoding="utf-8").read().split("\n")][:-1]
    vocab = [t.strip() if t.strip() else t for t in vocab]
    ids = {t: i for i, t in reversed(list(enumerate(vocab)))}
    cases = [bytes.fromhex(h) for h in json.loads(sys.argv[4])]
    rng = random.Random(9)
    for _ in range(300):
        cases.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))))
    cases.append(b"x" * (3 << 20) + "\u4e2d\u6587".encode() * 1000)   # a long line, no newline
    cases.append(b"1\t" + "\u597d".encode() * 100000 + b"\n")
    n = 0
    for lower in (True, False):
        wp = nat.WordPiece(vocab, ids["[UNK]"], lower)
        for c in cases:
            wp.tokenize(c.decode("utf-8", "replace"))
            for proc, fmt in (("bert", "bert"), ("albert", "line"), ("mlm", "line"), ("lm", "bert"), ("cls", "line")):
                for policy in ("error", "skip", "replace"):
                    for wwm in (None, seg):
                        r = nat.preprocess_chunk(wp, wwm, c, n % 3, processor=proc, corpus_format=fmt, policy=policy,
                                                 seq_length=8 + n % 40, dups=2, static_mask=proc != "lm", whole_word=wwm is not None,
                                                 per_word=bool(n % 2), mask_prob=0.15, short_seq_prob=0.2, seed=n,
                                                 cls_id=ids["[CLS]"], sep_id=ids["[SEP]"], pad_id=ids["[PAD]"],
                                                 mask_id=ids["[MASK]"], vocab_size=len(vocab))
                        n += 1
    import array
    for k in range(200):
        L = [rng.randint(0, 50) for _ in range(rng.randint(0, 20))]
        tot = sum(L)
        res = nat.mask_instances(array.array("q", [rng.randint(0, 5) for _ in range(tot)]).tobytes(),
                                 array.array("q", L).tobytes(), bytes(rng.randint(0, 1) for _ in range(tot)),
                                 array.array("Q", [k, 1, 2] * len(L)).tobytes(), 3, [0, 1, 2], 100, 3,
                                 0.15, bool(k % 2), bool(k % 3))
    try:
        nat.mask_instances(b"\0" * 16, b"\0" * 8, b"", b"", 0, [], 100, 3, 0.15, False, True)
    except ValueError:
        pass
    print(n, "ASAN-OK")
''')


@pytest.mark.skipif(libasan() is None, reason="gcc or libasan not available")
def test_asan_native_preprocess_malformed_inputs(tmp_path):
    from uer_like.segmentation import default_dict_path

    so = build_asan_extension(tmp_path)
    data = malformed_corpus()
    cases = [data, data[:-1], b"", b"\n", b"\r", b"\xef\xbb\xbf", b"\x00\n\x00", data.replace(b"\n", b"\t"),
             b"label\tx\n1\t2\t3\n-5\tx\n\xef\xbc\x91\ty\n99999999999999999999\tz\n"]
    run_env = dict(os.environ, LD_PRELOAD=libasan(), ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99",
                   PYTHONMALLOC="malloc")
    proc = subprocess.run(
        [sys.executable, "-c", ASAN_SCRIPT, so, default_dict_path(), VOCAB, json.dumps([c.hex() for c in cases])],
        env=run_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "ASAN-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert proc.stdout.split()[0] == str((len(cases) + 302) * 2 * 5 * 3 * 2)  # every chunk call ran


def test_python_reference_path_segments_with_jieba(tmp_path, monkeypatch):
    """--implementation python is all Python: whole-word masking segments with jieba itself, never the C
    segmenter, and still writes the native path's dataset byte for byte."""
    import uer_like.segmentation as S

    corpus = os.path.join(tmp_path, "corpus.txt")
    with open(corpus, "wb") as f:
        f.write(_slice(SAMPLE_CORPUS, 30000))
    kw = dict(data_processor="bert", seq_length=64, whole_word_masking=True, seed=3)
    nat = preprocess(tmp_path, corpus_path=corpus, name="nat.bin", implementation="native", **kw)

    def refuse(self):
        raise AssertionError("the Python reference path used the C segmenter")

    monkeypatch.setattr(S.Segmenter, "_build_native", refuse)
    py = preprocess(tmp_path, corpus_path=corpus, name="py.bin", implementation="python", **kw)
    assert py[1]["instances"] > 20
    assert_identical(py, nat)
    assert not S.Segmenter(native=False).native and S.Segmenter(native=False).cut("北京大学") == ["北京大学"]
    monkeypatch.setattr(S, "NATIVE_AVAILABLE", False)
    with pytest.raises(RuntimeError, match="not built"):
        S.Segmenter(native=True)
