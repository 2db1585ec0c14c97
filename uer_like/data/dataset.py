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
"""
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
        self.n_tokens = 0
        self.n_masked = 0
        self.n_instances = 0
        self._bit_carry = np.zeros(0, dtype=np.uint8)
        self._write("offsets", np.zeros(1, np.int64))
        if static_masks:
            self._write("mask_offsets", np.zeros(1, np.int64))

    def _write(self, name, arr):
        arr = np.ascontiguousarray(arr, dtype=self.dtypes[name])
        self.files[name].write(arr.tobytes())
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
                                  "count": self.counts[name]}
                pos = _align(pos + self.counts[name] * np.dtype(self.dtypes[name]).itemsize)
            manifest["sections"] = sections
            manifest["file_size"] = pos
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
        for f in self.files.values():
            f.close()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


def _align(x):
    return (x + ALIGN - 1) // ALIGN * ALIGN


def read_manifest(path):
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
            raise DataError(f"{path}: corrupt dataset header") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: dataset format version {manifest.get('format_version')} is not supported "
                        f"(this uer_like reads version {FORMAT_VERSION}); re-run preprocess.py")
    size = os.path.getsize(path)
    if size < manifest["file_size"]:
        raise DataError(f"{path}: truncated dataset ({size} bytes, the header says {manifest['file_size']})")
    return manifest


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
