"""The dataset file: a small JSON header and memory-mapped arrays. Not a pickle.

    bytes 0-7    magic b"UERLDS01"
    bytes 8-15   little-endian uint64: length of the JSON header
    then         the JSON header (the manifest, with "sections": name -> {offset, dtype, count})
    then         sections, each 64-byte aligned:
      ids         uint16 (vocabulary <= 65535) or uint32: token ids of all instances, concatenated
      offsets     int64 [n + 1]: instance i is ids[offsets[i]:offsets[i + 1]]
      seg_a_len   int32 [n]: tokens in segment 1 ([CLS] a [SEP]); the rest are segment 2
      labels      int32 [n]: sentence-prediction / class label, -1 when none
      word_bits   uint8, bit-packed (little bit order) beside ids: 1 where a token starts a word
      mask_offsets, mask_pos, mask_labels   (static masking only): instance i's masked positions
                  and original ids; `ids` then holds the already-masked tokens
Opening reads the header only (O(1)); the arrays are numpy memmaps shared by every process.
All offsets and counts are 64-bit.

Integrity: the header records "header_sha256" (of its own JSON without that key), and per section its
"sha256" and, for token sections, its "max". Opening checks the header checksum, that every section has the
dtype its name implies, lies 64-byte aligned inside the file after the header, overlaps no other, and that the
counts agree (offsets = instances + 1, ids = tokens = the last offset...), and that the recorded maximum id is
below the vocabulary size: all O(1) in the dataset's size. `Dataset.verify()` (pretrain.py --verify_dataset)
reads the body: section checksums, offsets non-decreasing, every id below the vocabulary size. Datasets
written before these keys still load (the structural checks apply; the missing checksums are not checked).
"""
import hashlib
import json
import os
import shutil
import struct
import uuid

import numpy as np

from ..errors import DataError

MAGIC = b"UERLDS01"
FORMAT_VERSION = 1
ALIGN = 64
SECTION_DTYPES = {"ids": ("uint16", "uint32"), "offsets": ("int64",), "seg_a_len": ("int32",), "labels": ("int32",),
                  "word_bits": ("uint8",), "mask_offsets": ("int64",), "mask_pos": ("int32",),
                  "mask_labels": ("int32",)}
TOKEN_SECTIONS = ("ids", "mask_labels")  # their "max" is checked against the vocabulary size


def ids_dtype(vocab_size):
    return np.uint16 if vocab_size <= 65535 else np.uint32


class DatasetWriter:
    """Streams instances into section files beside the output, then assembles the dataset file and
    renames it into place (a crash never leaves a half-written dataset under the final name)."""

    SECTIONS = ("ids", "offsets", "seg_a_len", "labels", "word_bits")
    MASK_SECTIONS = ("mask_offsets", "mask_pos", "mask_labels")

    def __init__(self, path, vocab_size, static_masks=False):
        self.path = path
        self.dtypes = {"ids": ids_dtype(vocab_size), "offsets": np.int64, "seg_a_len": np.int32,
                       "labels": np.int32, "word_bits": np.uint8, "mask_offsets": np.int64,
                       "mask_pos": np.int32, "mask_labels": np.int32}
        self.static_masks = static_masks
        out_dir = os.path.dirname(os.path.abspath(path))
        os.makedirs(out_dir, exist_ok=True)
        self.tmp_dir = os.path.join(out_dir, f".{os.path.basename(path)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.makedirs(self.tmp_dir)
        names = self.SECTIONS + (self.MASK_SECTIONS if static_masks else ())
        self.files = {n: open(os.path.join(self.tmp_dir, n), "wb") for n in names}
        self.counts = {n: 0 for n in names}
        self.hashes = {n: hashlib.sha256() for n in names}
        self.maxima = {n: -1 for n in TOKEN_SECTIONS if n in names}
        self.n_tokens = 0
        self.n_masked = 0
        self.n_instances = 0
        self._bit_carry = np.zeros(0, dtype=np.uint8)
        self._write("offsets", np.zeros(1, np.int64))
        if static_masks:
            self._write("mask_offsets", np.zeros(1, np.int64))

    def _write(self, name, arr):
        if name in self.maxima and np.size(arr):
            self.maxima[name] = max(self.maxima[name], int(np.max(arr)))
        arr = np.ascontiguousarray(arr, dtype=self.dtypes[name])
        data = arr.tobytes()
        self.files[name].write(data)
        self.hashes[name].update(data)
        self.counts[name] += arr.size

    def add(self, ids, lengths, seg_a_len, labels, bits, mask_lengths=None, mask_pos=None, mask_labels=None):
        """Append a block of instances: `ids`/`bits` concatenated, `lengths` per instance."""
        lengths = np.asarray(lengths, np.int64)
        if lengths.size == 0:
            return
        self._write("ids", ids)
        self._write("offsets", self.n_tokens + np.cumsum(lengths))
        self._write("seg_a_len", seg_a_len)
        self._write("labels", labels)
        self.n_tokens += int(lengths.sum())
        self.n_instances += lengths.size
        bits = np.concatenate([self._bit_carry, np.asarray(bits, np.uint8)])
        full = bits.size // 8 * 8
        self._write("word_bits", np.packbits(bits[:full], bitorder="little"))
        self._bit_carry = bits[full:]
        if self.static_masks:
            mask_lengths = np.asarray(mask_lengths, np.int64)
            self._write("mask_offsets", self.n_masked + np.cumsum(mask_lengths))
            self._write("mask_pos", mask_pos)
            self._write("mask_labels", mask_labels)
            self.n_masked += int(mask_lengths.sum())

    def close(self, manifest):
        if self._bit_carry.size:
            self._write("word_bits", np.packbits(self._bit_carry, bitorder="little"))
        for f in self.files.values():
            f.close()
        sections = {}
        manifest = dict(manifest)
        manifest.update(format_version=FORMAT_VERSION, instances=self.n_instances, tokens=self.n_tokens)
        # two passes: offsets depend on the header length
        header = b""
        for _ in range(16):  # the section offsets depend on the header's length: iterate to a fixed point
            pos = _align(16 + len(header))
            for name in self.files:
                sections[name] = {"offset": pos, "dtype": np.dtype(self.dtypes[name]).name,
                                  "count": self.counts[name], "sha256": self.hashes[name].hexdigest()}
                if name in self.maxima:
                    sections[name]["max"] = self.maxima[name]
                pos = _align(pos + self.counts[name] * np.dtype(self.dtypes[name]).itemsize)
            manifest["sections"] = sections
            manifest["file_size"] = pos
            manifest.pop("header_sha256", None)
            manifest["header_sha256"] = header_checksum(manifest)
            new = json.dumps(manifest, ensure_ascii=False, sort_keys=True).encode("utf-8")
            stable = len(new) == len(header)
            header = new
            if stable:
                break
        tmp_path = os.path.join(self.tmp_dir, "dataset")
        with open(tmp_path, "wb") as out:
            out.write(MAGIC + struct.pack("<Q", len(header)) + header)
            for name in self.files:
                out.write(b"\0" * (sections[name]["offset"] - out.tell()))
                with open(os.path.join(self.tmp_dir, name), "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
            out.write(b"\0" * (manifest["file_size"] - out.tell()))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_path, self.path)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        return manifest

    def abort(self):
        """Remove the partial sections (closing a file whose buffer cannot be flushed, on a full disk, raises:
        that must not keep the directory)."""
        try:
            for f in self.files.values():
                try:
                    f.close()
                except OSError:
                    pass
        finally:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


def _align(x):
    return (x + ALIGN - 1) // ALIGN * ALIGN


def header_checksum(manifest):
    """sha256 of the header's JSON without its "header_sha256" key (as the writer serialises it)."""
    m = {k: v for k, v in manifest.items() if k != "header_sha256"}
    return hashlib.sha256(json.dumps(m, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def read_manifest(path):
    """The header, checked against the file (see the module docstring); DataError naming `path` otherwise."""
    if os.path.isdir(path):
        raise DataError(f"{path} is a directory, not a dataset file (made by preprocess.py)")
    if not os.path.isfile(path):
        raise DataError(f"dataset not found: {path} (make one with preprocess.py)")
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 16 or head[:8] != MAGIC:
            if head[:2] == b"\x80\x02" or head[:2] == b"PK":
                raise DataError(f"{path}: this looks like a UER-py pickle dataset; uer_like datasets are not "
                                "pickles: re-run preprocess.py of uer_like on the corpus")
            raise DataError(f"{path}: not a uer_like dataset (bad magic bytes)")
        (n,) = struct.unpack("<Q", head[8:16])
        if n > 1 << 26:
            raise DataError(f"{path}: corrupt dataset header (length {n})")
        try:
            manifest = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DataError(f"{path}: corrupt dataset header (not valid JSON)") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: corrupt dataset header (not a JSON object)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: dataset format version {manifest.get('format_version')} is not supported "
                        f"(this uer_like reads version {FORMAT_VERSION}); re-run preprocess.py")
    if "header_sha256" in manifest and manifest["header_sha256"] != header_checksum(manifest):
        raise DataError(f"{path}: corrupt dataset header (its checksum does not match); re-run preprocess.py")
    try:
        _check_layout(manifest, 16 + n, os.path.getsize(path))
    except _Corrupt as e:
        raise DataError(f"{path}: corrupt dataset: {e}; re-run preprocess.py") from None
    except KeyError as e:
        raise DataError(f"{path}: corrupt dataset header (the key {e} is missing); re-run preprocess.py") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise DataError(f"{path}: corrupt dataset header ({type(e).__name__}: {e}); re-run preprocess.py") from None
    return manifest


class _Corrupt(Exception):
    pass


def _int(v, what, lo=0):
    if type(v) is not int or v < lo:
        raise _Corrupt(f"{what} is {v!r}, not an integer >= {lo}")
    return v


def _check_layout(m, header_end, size):
    """Sections inside the file, aligned, not overlapping, of the dtypes their names imply, counts consistent."""
    file_size = _int(m["file_size"], "file_size")
    if size < file_size:
        raise _Corrupt(f"truncated ({size} bytes, the header says {file_size})")
    sections = m["sections"]
    if not isinstance(sections, dict):
        raise _Corrupt("no sections table")
    names = set(sections)
    need = set(DatasetWriter.SECTIONS)
    masks = set(DatasetWriter.MASK_SECTIONS)
    if not (names == need or names == need | masks):
        raise _Corrupt(f"sections {sorted(names)} (expected {sorted(need)}, with {sorted(masks)} for static masks)")
    vocab_size = _int(m["vocab"]["size"], "the vocabulary size", 1)
    instances = _int(m["instances"], "instances")
    tokens = _int(m["tokens"], "tokens")
    spans = []
    for name, s in sections.items():
        if not isinstance(s, dict):
            raise _Corrupt(f"section {name} is not described")
        dt = s["dtype"]
        if dt not in SECTION_DTYPES[name]:
            raise _Corrupt(f"section {name} has dtype {dt!r} (expected {' or '.join(SECTION_DTYPES[name])})")
        if name == "ids" and dt != np.dtype(ids_dtype(vocab_size)).name:
            raise _Corrupt(f"ids of dtype {dt} do not match the vocabulary size {vocab_size}")
        off = _int(s["offset"], f"section {name}'s offset")
        count = _int(s["count"], f"section {name}'s count")
        end = off + count * np.dtype(dt).itemsize
        if off % ALIGN or off < header_end or end > file_size:
            raise _Corrupt(f"section {name} (bytes {off}-{end}) is not an aligned range between the header "
                           f"(ends at {header_end}) and the end of the file ({file_size})")
        if count:
            spans.append((off, end, name))
        if name in TOKEN_SECTIONS and "max" in s:
            mx = _int(s["max"], f"section {name}'s max", -1)
            if mx >= vocab_size:
                raise _Corrupt(f"token id {mx} in {name} is outside the vocabulary (size {vocab_size})")
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            raise _Corrupt(f"sections {an} and {bn} overlap")
    expect = {"offsets": instances + 1, "seg_a_len": instances, "labels": instances, "ids": tokens,
              "word_bits": (tokens + 7) // 8, "mask_offsets": instances + 1}
    if "mask_pos" in sections:
        expect["mask_labels"] = sections["mask_pos"]["count"]
    for name, n in expect.items():
        if name in sections and sections[name]["count"] != n:
            raise _Corrupt(f"section {name} has {sections[name]['count']} entries, the header's instances "
                           f"({instances}) and tokens ({tokens}) imply {n}")


def _check_ends(path, arrays, m):
    """The offsets arrays start at 0 and end at their data's length (two reads)."""
    for off_name, data_name in (("offsets", "ids"), ("mask_offsets", "mask_pos")):
        if off_name in arrays:
            o = arrays[off_name]
            first, last = int(o[0]), int(o[-1])
            if first != 0 or last != len(arrays[data_name]):
                raise DataError(f"{path}: corrupt dataset: {off_name} run from {first} to {last}, "
                                f"{data_name} has {len(arrays[data_name])} entries; re-run preprocess.py")


class Dataset:
    """Read-only view of a dataset file. Opening it maps the arrays; nothing is read until used."""

    def __init__(self, path):
        self.path = path
        self.manifest = read_manifest(path)
        self.arrays = {}
        for name, s in self.manifest["sections"].items():
            if s["count"]:
                self.arrays[name] = np.memmap(path, dtype=np.dtype(s["dtype"]), mode="r",
                                              offset=s["offset"], shape=(s["count"],))
            else:
                self.arrays[name] = np.zeros(0, dtype=np.dtype(s["dtype"]))
        self.ids = self.arrays["ids"]
        self.offsets = self.arrays["offsets"]
        self.seg_a_len = self.arrays["seg_a_len"]
        self.labels = self.arrays["labels"]
        self.word_bits = self.arrays["word_bits"]
        self.static_masks = "mask_offsets" in self.arrays
        _check_ends(path, self.arrays, self.manifest)

    def verify(self, block=1 << 24):
        """Read the whole body: each section against its recorded sha256, offsets non-decreasing, every token id
        below the vocabulary size. DataError naming the dataset and the first fault; returns bytes read."""
        vocab_size = self.manifest["vocab"]["size"]
        total = 0
        for name, s in self.manifest["sections"].items():
            arr = self.arrays[name]
            h = hashlib.sha256()
            prev = None
            step = max(1, block // max(1, arr.itemsize))
            for i in range(0, len(arr), step):
                part = np.asarray(arr[i:i + step])
                h.update(part.tobytes())
                total += part.nbytes
                if name in TOKEN_SECTIONS and part.size and int(part.max()) >= vocab_size:
                    j = i + int(np.argmax(part >= vocab_size))
                    raise DataError(f"{self.path}: token id {int(arr[j])} at {name}[{j}] is outside the vocabulary "
                                    f"(size {vocab_size}): the dataset is corrupt; re-run preprocess.py")
                if name in ("offsets", "mask_offsets") and part.size:
                    ext = part if prev is None else np.concatenate([[prev], part])
                    if (np.diff(ext) < 0).any():
                        raise DataError(f"{self.path}: corrupt dataset: {name} decrease near entry {i}; "
                                        "re-run preprocess.py")
                    prev = part[-1]
            if "sha256" in s and h.hexdigest() != s["sha256"]:
                raise DataError(f"{self.path}: corrupt dataset: section {name} does not match its checksum; "
                                "re-run preprocess.py")
        return total

    def __len__(self):
        return len(self.offsets) - 1

    def instance_ids(self, i):
        return np.asarray(self.ids[self.offsets[i]:self.offsets[i + 1]], dtype=np.int64)

    def instance_bits(self, i):
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        byte0, byte1 = start // 8, (end + 7) // 8
        bits = np.unpackbits(np.asarray(self.word_bits[byte0:byte1]), bitorder="little")
        return bits[start - byte0 * 8:end - byte0 * 8]

    def instance_masks(self, i):
        a, b = int(self.arrays["mask_offsets"][i]), int(self.arrays["mask_offsets"][i + 1])
        return (np.asarray(self.arrays["mask_pos"][a:b], np.int64),
                np.asarray(self.arrays["mask_labels"][a:b], np.int64))

    def lengths(self):
        return np.diff(self.offsets)
