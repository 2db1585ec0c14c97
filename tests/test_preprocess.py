"""preprocess: processors, the dataset format, whole-word boundaries, determinism and bad input."""
import hashlib
import json
import os
import struct

import numpy as np
import pytest

from uer_like.data.dataset import MAGIC, Dataset
from uer_like.errors import DataError
from uer_like.tokenizers import BertTokenizer, Vocab
from conftest import SAMPLE_CORPUS, VOCAB
from helpers import preprocess

VOC = Vocab.load(VOCAB)
CLS, SEP, MASK = VOC.cls_id, VOC.sep_id, VOC.mask_id
SMALL = open(SAMPLE_CORPUS, encoding="utf-8").read()[:120000]
SMALL = SMALL[: SMALL.rfind("\n\n") + 2]


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_bert_instances_are_well_formed(tmp_path):
    path, m = preprocess(tmp_path, SMALL, data_processor="bert", seq_length=64, dynamic_masking=True)
    ds = Dataset(path)
    assert len(ds) == m["instances"] > 50
    labels = set()
    for i in range(len(ds)):
        ids = ds.instance_ids(i)
        a = int(ds.seg_a_len[i])
        assert len(ids) <= 64 and ids[0] == CLS and ids[a - 1] == SEP and ids[-1] == SEP
        assert SEP not in ids[1:a - 1].tolist() and a < len(ids) - 1
        labels.add(int(ds.labels[i]))
    assert labels == {0, 1}


def test_bert_instances_hold_the_corpus_text(tmp_path):
    path, _ = preprocess(tmp_path, SMALL, data_processor="mlm", seq_length=512, dynamic_masking=True,
                         corpus_format="line")
    ds = Dataset(path)
    tok = BertTokenizer(VOCAB)
    first_line = SMALL.split("\n")[0]
    want = tok.encode(first_line)
    got = ds.instance_ids(0)[1:1 + len(want)].tolist()
    assert got == want


def test_lm_and_mlm_and_cls_processors(tmp_path):
    lm, _ = preprocess(tmp_path, SMALL, name="lm.bin", data_processor="lm", seq_length=32, corpus_format="line")
    ds = Dataset(lm)
    assert all(len(ds.instance_ids(i)) <= 33 for i in range(len(ds)))
    assert ds.instance_ids(0)[0] == CLS
    cls_text = "label\ttext_a\n1\t很好看的书\n0\t太差了\n1\t不错\n"
    c, m = preprocess(tmp_path, cls_text, name="cls.bin", data_processor="cls", seq_length=16, corpus_format="line")
    ds = Dataset(c)
    assert len(ds) == 3 and ds.labels.tolist() == [1, 0, 1]
    assert ds.instance_ids(1).tolist() == [CLS] + VOC.convert_tokens_to_ids(list("太差了")) + [SEP]


def test_output_is_identical_for_any_number_of_processes(tmp_path):
    kw = dict(data_processor="bert", seq_length=64, dup_factor=2, chunk_bytes=16384)
    p1, m1 = preprocess(tmp_path, SMALL, name="p1.bin", processes_num=1, **kw)
    p2, m2 = preprocess(tmp_path, SMALL, name="p2.bin", processes_num=2, **kw)
    assert m1["instances"] > 0 and sha(p1) == sha(p2)


def test_static_masks_label_the_original_tokens(tmp_path):
    kw = dict(data_processor="bert", seq_length=64, seed=3)
    dyn, _ = preprocess(tmp_path, SMALL, name="dyn.bin", dynamic_masking=True, **kw)
    sta, _ = preprocess(tmp_path, SMALL, name="sta.bin", dynamic_masking=False, **kw)
    d, s = Dataset(dyn), Dataset(sta)
    assert len(d) == len(s) and s.static_masks and not d.static_masks
    n_masked = n_tokens = n_mask_token = 0
    for i in range(len(d)):
        orig, masked = d.instance_ids(i), s.instance_ids(i)
        pos, labels = s.instance_masks(i)
        assert (orig[pos] == labels).all()
        keep = np.ones(len(orig), bool)
        keep[pos] = False
        assert (orig[keep] == masked[keep]).all()
        assert not np.isin(orig[pos], [CLS, SEP]).any()
        n_masked += len(pos)
        n_tokens += len(orig) - 3
        n_mask_token += int((masked[pos] == MASK).sum())
    assert 0.13 < n_masked / n_tokens < 0.17
    assert 0.75 < n_mask_token / n_masked < 0.85


def test_whole_word_boundaries_follow_jieba_and_ids_stay_plain(tmp_path):
    import jieba

    text = "我们在北京大学学习自然语言处理技术。\n今天天气很好，适合出去散步。\n\n研究人员发布了新的预训练模型。\n"
    wwm, m = preprocess(tmp_path, text, name="w.bin", data_processor="mlm", seq_length=64, dynamic_masking=True,
                        whole_word_masking=True, corpus_format="line")
    plain, _ = preprocess(tmp_path, text, name="p.bin", data_processor="mlm", seq_length=64, dynamic_masking=True,
                          corpus_format="line")
    w, p = Dataset(wwm), Dataset(plain)
    assert m["segmenter"]["name"] == "jieba" and len(m["segmenter"]["dictionary_sha256"]) == 64
    # the ids do not depend on the segmentation, and no "##" + CJK id ever appears
    assert np.array_equal(w.ids, p.ids)
    hash_cjk = {i for t, i in VOC.w2i.items() if t.startswith("##") and len(t) == 3 and "\u4e00" <= t[2] <= "\u9fff"}
    assert not set(np.asarray(w.ids).tolist()) & hash_cjk
    line = text.split("\n")[0]
    words = jieba.lcut(line)
    bits = w.instance_bits(0)[1:1 + len(line)].tolist()
    want = sum(([1] + [0] * (len(word) - 1) for word in words), [])
    assert bits == want


def test_dataset_header_is_json_and_not_a_pickle(tmp_path):
    path, m = preprocess(tmp_path, SMALL, data_processor="mlm", seq_length=64, corpus_format="line",
                         dynamic_masking=True)
    raw = open(path, "rb").read(16)
    assert raw[:8] == MAGIC
    (n,) = struct.unpack("<Q", raw[8:16])
    header = json.loads(open(path, "rb").read(16 + n)[16:])
    assert header["vocab"]["sha256"] == VOC.sha256 and header["data_processor"] == "mlm"
    assert header["seq_length"] == 64 and header["instances"] == m["instances"]


def test_offsets_are_64_bit_past_2_to_the_31_tokens(tmp_path):
    """A sparse dataset whose ids section holds 2^31 + 40 tokens: the last instance reads back."""
    n_tok = (1 << 31) + 40
    last = np.arange(1000, 1040, dtype=np.uint16)
    ids_off = 4096
    off_off = ids_off + ((n_tok * 2 + 63) // 64) * 64
    offsets = np.array([0, n_tok - 40, n_tok], np.int64)
    rest_off = off_off + 64
    header = {"format_version": 1, "file_size": rest_off + 192, "data_processor": "mlm", "instances": 2,
              "tokens": n_tok, "vocab": {"size": 21128}, "sections": {"ids": {"offset": ids_off, "dtype": "uint16", "count": n_tok},
                           "offsets": {"offset": off_off, "dtype": "int64", "count": 3},
                           "seg_a_len": {"offset": rest_off, "dtype": "int32", "count": 2},
                           "labels": {"offset": rest_off + 64, "dtype": "int32", "count": 2},
                           "word_bits": {"offset": rest_off + 128, "dtype": "uint8", "count": (n_tok + 7) // 8}}}
    header["file_size"] = rest_off + 128 + ((n_tok + 7) // 8 + 63) // 64 * 64
    path = tmp_path / "big.bin"
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<Q", len(h)) + h)
        f.seek(ids_off + (n_tok - 40) * 2)
        f.write(last.tobytes())
        f.seek(off_off)
        f.write(offsets.tobytes())
        f.truncate(header["file_size"])
    ds = Dataset(str(path))
    assert len(ds) == 2
    assert ds.instance_ids(1).tolist() == last.tolist()
    assert int(ds.offsets[-1]) == n_tok > 2 ** 31


def test_bad_utf8_line_is_skipped_with_its_line_number(tmp_path, caplog):
    text = "第一行很好\n".encode() + b"bad \xff\xfe line\n" + "第三行也好\n第四行\n".encode()
    path, m = preprocess(tmp_path, text, data_processor="mlm", seq_length=32, corpus_format="line",
                         dynamic_masking=True)
    assert m["problems"]["counts"] == {"invalid_utf8": 1}
    assert m["problems"]["first_lines"]["invalid_utf8"] == [2]
    assert m["instances"] == 3
    assert "invalid_utf8" in caplog.text and "2" in caplog.text


def test_bad_utf8_line_stops_the_run_under_policy_error(tmp_path):
    text = "好\n".encode() * 5 + b"\xff\n"
    with pytest.raises(DataError, match=r"corpus.txt:6: invalid UTF-8"):
        preprocess(tmp_path, text, data_processor="mlm", seq_length=32, corpus_format="line",
                   invalid_lines="error", dynamic_masking=True)
    assert not os.path.exists(tmp_path / "ds.bin")
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".ds.bin.tmp")]


def test_line_numbers_are_global_across_chunks(tmp_path):
    good = "这是一行正常的中文文本。\n" * 3000
    text = good.encode() + b"\xff\xfe\n" + good.encode()
    path, m = preprocess(tmp_path, text, data_processor="mlm", seq_length=32, corpus_format="line",
                         dynamic_masking=True, chunk_bytes=8192, processes_num=2)
    assert m["problems"]["first_lines"]["invalid_utf8"] == [3001]


def test_a_line_is_the_bytes_up_to_newline(tmp_path):
    """\\r\\n endings, a lone \\r, U+2028 and U+0085 inside a line do not start new lines."""
    text = "甲\u2028乙\r\n丙\r丁\n戊\u0085己\n"
    path, m = preprocess(tmp_path, text, data_processor="mlm", seq_length=32, corpus_format="line",
                         dynamic_masking=True)
    assert m["lines"] == 3 and m["instances"] == 3
    ds = Dataset(path)
    assert ds.instance_ids(1).tolist() == [CLS] + VOC.convert_tokens_to_ids(["丙", "丁"]) + [SEP]


def test_empty_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no training instances"):
        preprocess(tmp_path, "", data_processor="bert", seq_length=32)
    with pytest.raises(DataError, match="no training instances"):
        preprocess(tmp_path, "\n\n\n", data_processor="mlm", seq_length=32, corpus_format="line")


def test_cls_row_with_wrong_columns(tmp_path):
    text = "label\ttext_a\n1\t好\n1\t2\t3\t4\n0\t坏\n"
    path, m = preprocess(tmp_path, text, data_processor="cls", seq_length=16, corpus_format="line")
    assert m["problems"]["first_lines"]["bad_columns"] == [3] and m["instances"] == 2
    with pytest.raises(DataError, match=r"corpus.txt:3: expected 2 or 3 tab-separated columns"):
        preprocess(tmp_path, text, name="x.bin", data_processor="cls", seq_length=16, corpus_format="line",
                   invalid_lines="error")


def test_missing_corpus_and_bad_vocab(tmp_path):
    with pytest.raises(DataError, match="corpus not found"):
        preprocess(tmp_path, corpus_path=str(tmp_path / "none.txt"))
    v = tmp_path / "v.txt"
    v.write_text("[PAD]\n[UNK]\n好\n")
    with pytest.raises(DataError, match=r"lacks the special token\(s\) \[CLS\]"):
        preprocess(tmp_path, "好\n", vocab_path=str(v))


def test_command_line_errors_are_one_line(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    corpus = tmp_path / "c.txt"
    corpus.write_text("你好\n")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "preprocess.py"), "--corpus_path", str(corpus),
                        "--vocab_path", str(tmp_path / "missing.txt"), "--dataset_path", str(tmp_path / "d.bin")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: vocabulary file not found: {tmp_path / 'missing.txt'}"]


def test_the_library_and_the_command_write_the_same_dataset_for_the_same_flags(tmp_path):
    """run_preprocess(**flags) and preprocess.py with the same flags (dup_factor left to its one default)
    write byte-identical datasets."""
    import subprocess
    import sys

    from conftest import ROOT
    from uer_like.data.options import DEFAULTS
    from uer_like.data.preprocess import run_preprocess

    corpus = tmp_path / "c.txt"
    corpus.write_text(SMALL[:20000], encoding="utf-8")
    flags = dict(corpus_path=str(corpus), vocab_path=VOCAB, data_processor="bert", seq_length=64,
                 chunk_bytes=8192)
    lib = run_preprocess(progress=False, dataset_path=str(tmp_path / "lib.bin"), **flags)
    argv = [a for k, v in flags.items() for a in (f"--{k}", str(v))]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "preprocess.py"), *argv,
                        "--dataset_path", str(tmp_path / "cmd.bin")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert lib["dup_factor"] == DEFAULTS.dup_factor > 1 and lib["instances"] > 0
    assert sha(tmp_path / "lib.bin") == sha(tmp_path / "cmd.bin")
