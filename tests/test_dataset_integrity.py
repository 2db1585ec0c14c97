"""Dataset integrity: a corrupt header or body is refused with one DataError naming the dataset, never
loaded as different tokens and never an IndexError mid-training."""
import json
import os
import random
import struct

import numpy as np
import pytest

from uer_like.data.dataset import Dataset, header_checksum
from uer_like.errors import DataError
from conftest import SAMPLE_CORPUS
from helpers import preprocess


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A static-masked BERT dataset (every section present) from the bundled corpus."""
    d = tmp_path_factory.mktemp("integrity")
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:20000]
    path, _ = preprocess(str(d), text, data_processor="bert", seq_length=32)
    return path


def header_span(data):
    (n,) = struct.unpack("<Q", data[8:16])
    return 16, 16 + n


def arrays_of(path):
    ds = Dataset(path)
    return ds.manifest, {k: np.asarray(v).copy() for k, v in ds.arrays.items()}


def rewrite_header(data, manifest):
    """The file with `manifest` as its header, padded with spaces to the original length (sections stay put)."""
    a, b = header_span(data)
    new = json.dumps(manifest, ensure_ascii=False, sort_keys=True).encode("utf-8")
    assert len(new) <= b - a
    return data[:a] + new + b" " * (b - a - len(new)) + data[b:]


def write(tmp_path, data, name="v.bin"):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_header_records_checksums(small):
    m = Dataset(small).manifest
    assert m["header_sha256"] == header_checksum(m)
    assert all("sha256" in s for s in m["sections"].values())
    assert 0 <= m["sections"]["ids"]["max"] < m["vocab"]["size"]
    assert Dataset(small).verify() > 0


def _variants(data, rng, n, lo, hi, digits_only):
    for _ in range(n):
        if digits_only:
            pos = [i for i in range(lo, hi) if data[i:i + 1].isdigit()]
            i = rng.choice(pos)
            new = rng.choice([c for c in b"0123456789" if c != data[i]])
        else:
            i = rng.randrange(0, hi)
            new = data[i] ^ (1 << rng.randrange(8))
        yield i, data[:i] + bytes([new]) + data[i + 1:]


@pytest.mark.parametrize("checksum", [True, False], ids=["with_header_checksum", "structure_only"])
def test_header_fuzz(small, tmp_path, checksum):
    """Digits and bits flipped in the header: each variant loads the same tokens or is a DataError naming the
    file. With the header checksum (new datasets) the whole header is covered; without it (datasets written
    before it) the structural checks must still catch every change that would move or resize a section."""
    data = open(small, "rb").read()
    ref_manifest, ref = arrays_of(small)
    if not checksum:
        m = dict(ref_manifest)
        del m["header_sha256"]
        data = rewrite_header(data, m)
    a, b = header_span(data)
    if not checksum:  # only the table of sections and the counts: other keys are metadata it cannot check
        a = data.index(b'"sections"')
    rng = random.Random(1234)
    refused = same = 0
    for k, (i, variant) in enumerate(list(_variants(data, rng, 100, a, b, True)) +
                                     list(_variants(data, rng, 100, a, b, False))):
        path = write(tmp_path, variant)
        try:
            m, arrs = arrays_of(path)
        except DataError as e:
            assert path in str(e) and "\n" not in str(e)
            refused += 1
            continue
        assert set(arrs) == set(ref), (k, i)
        for name in ref:
            assert np.array_equal(arrs[name], ref[name]), (k, i, name, variant[max(0, i - 30):i + 30])
        if checksum:
            assert m == ref_manifest, (k, i)
        same += 1
    # with the checksum nearly every flip is refused (a space turned into other whitespace is not a change);
    # without it, flips in the sections' sha256 strings and spacing are metadata the open cannot see
    assert refused > (180 if checksum else 60), (refused, same)



def test_whole_file_fuzz_with_verify(small, tmp_path):
    """200 random single-byte corruptions anywhere in the file (header, padding, every section), each opened and
    checked as pretrain.py --verify_dataset does: refused with a DataError naming the file, or (a byte outside
    any section and outside the checksummed header: padding) the same tokens. None loads changed data."""
    data = open(small, "rb").read()
    ref_manifest, ref = arrays_of(small)
    rng = random.Random(4321)
    refused = same = 0
    for k in range(200):
        i = rng.randrange(len(data))
        new = rng.choice([c for c in range(256) if c != data[i]])
        path = write(tmp_path, data[:i] + bytes([new]) + data[i + 1:])
        try:
            ds = Dataset(path)
            ds.verify()
            m, arrs = ds.manifest, {n: np.asarray(v).copy() for n, v in ds.arrays.items()}
        except DataError as e:
            assert path in str(e) and "\n" not in str(e), (k, i, str(e))
            refused += 1
            continue
        assert m == ref_manifest and set(arrs) == set(ref), (k, i)
        for name in ref:
            assert np.array_equal(arrs[name], ref[name]), (k, i, name)
        same += 1
    assert refused > 100, (refused, same)

def _corrupt(small, tmp_path, edit):
    data = open(small, "rb").read()
    m = json.loads(data[header_span(data)[0]:header_span(data)[1]])
    del m["header_sha256"]
    edit(m)
    return write(tmp_path, rewrite_header(data, m), "bad.bin")


@pytest.mark.parametrize("edit, words", [
    (lambda m: m["sections"]["labels"].update(offset=m["sections"]["labels"]["offset"] + 64), "overlap"),
    (lambda m: m["sections"]["ids"].update(offset=m["sections"]["ids"]["offset"] + 8), "aligned"),
    (lambda m: m["sections"]["mask_pos"].update(offset=m["file_size"]), "end of the file"),
    (lambda m: m.update(tokens=m["tokens"] - 1), "imply"),
    (lambda m: m["sections"]["ids"].update(count=m["sections"]["ids"]["count"] - 1), "imply"),
    (lambda m: m["sections"]["offsets"].update(dtype="int32"), "dtype"),
    (lambda m: m["sections"]["ids"].update(dtype="uint32"), "vocabulary size"),
    (lambda m: m["sections"]["ids"].update(max=m["vocab"]["size"]), "outside the vocabulary"),
    (lambda m: m.update(file_size=m["file_size"] + 64), "truncated"),
    (lambda m: m["sections"].pop("labels"), "sections"),
    (lambda m: m.update(instances="12"), "instances"),
], ids=["overlap", "unaligned", "outside", "tokens", "ids_count", "dtype", "ids_dtype", "max_id", "truncated",
        "missing", "type"])
def test_structural_corruption_refused(small, tmp_path, edit, words):
    path = _corrupt(small, tmp_path, edit)
    with pytest.raises(DataError) as e:
        Dataset(path)
    assert path in str(e.value) and words in str(e.value)


def test_truncated_file_and_directory(small, tmp_path):
    data = open(small, "rb").read()
    path = write(tmp_path, data[:-100])
    with pytest.raises(DataError, match="truncated"):
        Dataset(path)
    with pytest.raises(DataError, match="is a directory"):
        Dataset(str(tmp_path))


def test_body_corruption_found_by_verify(small, tmp_path):
    """A flipped id in the body passes the O(1) open checks; --verify_dataset's scan refuses it, naming the
    position when the id is outside the vocabulary and the section otherwise."""
    data = bytearray(open(small, "rb").read())
    ds = Dataset(small)
    s = ds.manifest["sections"]["ids"]
    v = ds.manifest["vocab"]["size"]
    big = bytearray(data)
    struct.pack_into("<H", big, s["offset"] + 2 * 5, v + 3)
    path = write(tmp_path, bytes(big), "big.bin")
    with pytest.raises(DataError, match=r"token id %d at ids\[5\] is outside the vocabulary" % (v + 3)):
        Dataset(path).verify()
    small_flip = bytearray(data)
    small_flip[s["offset"] + 2 * 7] ^= 1
    path = write(tmp_path, bytes(small_flip), "flip.bin")
    Dataset(path)  # the open checks cannot see it
    with pytest.raises(DataError, match="section ids does not match its checksum"):
        Dataset(path).verify()


def test_old_dataset_without_checksums_loads(small, tmp_path):
    data = open(small, "rb").read()
    m = json.loads(data[header_span(data)[0]:header_span(data)[1]])
    del m["header_sha256"]
    for s in m["sections"].values():
        s.pop("sha256")
        s.pop("max", None)
    path = write(tmp_path, rewrite_header(data, m), "old.bin")
    _, arrs = arrays_of(path)
    _, ref = arrays_of(small)
    assert all(np.array_equal(arrs[k], ref[k]) for k in ref)
    Dataset(path).verify()


# ------------------------------------------------------------------------------------------ corpus sanity
@pytest.mark.parametrize("enc, name", [("utf-16", "UTF-16LE"), ("utf-16-be", None), ("utf-32", "UTF-32LE")])
def test_utf16_and_utf32_corpora_are_refused_with_the_fix(tmp_path, enc, name):
    text = "北京大学\n第二行\n" * 20
    data = text.encode(enc)
    if enc == "utf-16-be":
        data = b"\xfe\xff" + data
        name = "UTF-16BE"
    with pytest.raises(DataError) as e:
        preprocess(str(tmp_path), data, data_processor="mlm", seq_length=32, corpus_format="line")
    msg = str(e.value)
    assert name in msg and "iconv -f" in msg and "-t UTF-8" in msg and "\n" not in msg
    assert not os.path.exists(tmp_path / "ds.bin")
    # without a byte-order mark, mostly Latin text: mostly NUL bytes
    with pytest.raises(DataError, match=r"are NUL: UTF-16/UTF-32 text without a byte-order mark.*iconv -f UTF-16LE"):
        preprocess(str(tmp_path), ("Peking University, line %d\n" * 20).encode("utf-16-le"), data_processor="mlm",
                   seq_length=32, corpus_format="line")


def test_utf8_bom_is_stripped(tmp_path):
    text = "北京大学在海淀区\n第二行的文字\n"
    a, _ = preprocess(str(tmp_path), text, name="a.bin", data_processor="mlm", seq_length=32, corpus_format="line")
    b, m = preprocess(str(tmp_path), b"\xef\xbb\xbf" + text.encode(), name="b.bin", data_processor="mlm",
                      seq_length=32, corpus_format="line")
    assert np.array_equal(np.asarray(Dataset(a).ids), np.asarray(Dataset(b).ids))
    assert m["problems"]["counts"] == {"bom": 1}


@pytest.mark.parametrize("impl", ["python", "native"])
def test_mostly_invalid_corpus_fails_with_the_counts(tmp_path, impl):
    from uer_like.data import native

    if impl == "native" and not native.AVAILABLE:
        pytest.fail("uer_like._native is not built (python setup.py build_ext --inplace)")
    text = ("好的文字\n".encode() + b"bad \xff line\n") * 4 + "最后一行\n".encode() * 2
    with pytest.raises(DataError) as e:
        preprocess(str(tmp_path), text, data_processor="mlm", seq_length=32, corpus_format="line",
                   implementation=impl, max_invalid_fraction=0.1)
    msg = str(e.value)
    assert "4 of 10 lines (40%) are invalid: 4 invalid_utf8 (first at line 2)" in msg, msg
    assert "--max_invalid_fraction 0.1" in msg and not os.path.exists(tmp_path / "ds.bin")
    _, m = preprocess(str(tmp_path), text, data_processor="mlm", seq_length=32, corpus_format="line",
                      implementation=impl, max_invalid_fraction=0.5)
    assert m["instances"] == 6 and m["problems"]["counts"] == {"invalid_utf8": 4}
    with pytest.raises(DataError, match="max_invalid_fraction must be in"):
        preprocess(str(tmp_path), text, data_processor="mlm", seq_length=32, max_invalid_fraction=1.5)


def test_very_long_line_is_reported_with_its_number(tmp_path, caplog, monkeypatch):
    from uer_like.data import corpus

    monkeypatch.setattr(corpus, "LONG_LINE_BYTES", 3000)
    text = "第一行\n" * 700 + "长" * 1200 + "\n第三行\n"  # line 701: 3600 bytes
    with caplog.at_level("WARNING", logger="uer_like"):
        preprocess(str(tmp_path), text, data_processor="mlm", seq_length=32, corpus_format="line", chunk_bytes=1000)
    warned = [r.getMessage() for r in caplog.records if "without a newline" in r.getMessage()]
    assert len(warned) == 1 and ":701: a line of 0.0 MB" in warned[0] and "split into --seq_length" in warned[0], warned
