"""TensorFlow's checkpoint format (the "tensor bundle", V2), read in pure Python: no tensorflow needed.

A checkpoint with prefix P is
  P.index                     a table in LevelDB's SSTable layout: sorted keys, each value a protobuf. The key
                              "" holds a BundleHeaderProto (num_shards, endianness), every other key is a tensor
                              name whose value is a BundleEntryProto (dtype, shape, shard_id, offset, size, crc32c).
  P.data-00000-of-0000N       the raw tensor bytes (little-endian), one file per shard; an entry's bytes are
                              data file `shard_id`, [offset, offset + size).
(tensorflow/core/util/tensor_bundle/tensor_bundle.{h,cc,proto}, tensorflow/core/lib/io/format.cc, block.cc.)

The table: a 48-byte footer (metaindex and index BlockHandles as varints, padded to 40 bytes, then the magic
0xdb4775248b80fb57); the index block maps the last key of each data block to its BlockHandle; a block is its
entries (varint shared-prefix length, varint unshared length, varint value length, the unshared key bytes, the
value), then the restart offsets (uint32 each) and their count (uint32), followed by a 5-byte trailer (a
compression byte and a masked crc32c). TensorFlow writes the index uncompressed; a compressed (snappy) block is
refused. The few protobuf fields needed are decoded by hand (varints, length-delimited fields).

Data types: float32, float16, bfloat16 (returned as torch.bfloat16), float64, int32, int64 and the small
integer types. Partitioned (sliced) variables and string tensors are refused when asked for, by name.
"""
import os
import struct

import numpy as np
import torch

from ..errors import CheckpointError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5

# tensorflow/core/framework/types.proto: DataType -> numpy dtype (little-endian)
DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
          6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 14: "bfloat16", 17: np.dtype("<u2"),
          19: np.dtype("<f2"), 22: np.dtype("<u4"), 23: np.dtype("<u8")}
DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
               9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 20: "resource",
               21: "variant", 22: "uint32", 23: "uint64"}


# ---------------------------------------------------------------------------------------------- protobuf
def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _fields(buf):
    """(field number, wire type, value) of a protobuf message: varints as ints, length-delimited as bytes,
    fixed32/fixed64 as ints."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            val, pos = bytes(buf[pos:pos + n]), pos + n
            if pos > len(buf):
                raise ValueError("truncated length-delimited field")
        elif wire == 5:
            val, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, val


def _shape(buf):
    """TensorShapeProto: dim = 2 (Dim: size = 1), unknown_rank = 3."""
    dims = []
    for num, _, val in _fields(buf):
        if num == 2:
            size = 0
            for n2, _, v2 in _fields(val):
                if n2 == 1:
                    size = v2 - (1 << 64) if v2 >= 1 << 63 else v2
            dims.append(size)
        elif num == 3 and val:
            raise ValueError("unknown rank")
    return tuple(dims)


class Entry:
    """A BundleEntryProto: dtype = 1, shape = 2, shard_id = 3, offset = 4, size = 5, crc32c = 6, slices = 7."""
    __slots__ = ("dtype", "shape", "shard_id", "offset", "size", "crc32c", "sliced")

    def __init__(self, buf):
        self.dtype, self.shape, self.shard_id, self.offset, self.size, self.crc32c = 0, (), 0, 0, 0, None
        self.sliced = False
        for num, _, val in _fields(buf):
            if num == 1:
                self.dtype = val
            elif num == 2:
                self.shape = _shape(val)
            elif num == 3:
                self.shard_id = val
            elif num == 4:
                self.offset = val
            elif num == 5:
                self.size = val
            elif num == 6:
                self.crc32c = val
            elif num == 7:
                self.sliced = True

    @property
    def dtype_name(self):
        return DTYPE_NAMES.get(self.dtype, f"DataType {self.dtype}")


# ---------------------------------------------------------------------------------------------- table
def _block(data, offset, size, path):
    """The contents of the block at a BlockHandle, checked for bounds and compression."""
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(data):
        raise CheckpointError(f"{path}: truncated (a block at byte {offset} of {size} bytes runs past the file's "
                              f"{len(data)} bytes)")
    kind = data[end]
    if kind != 0:
        raise CheckpointError(f"{path}: a compressed table block (compression type {kind}); TensorFlow writes "
                              "checkpoint indexes uncompressed: re-save the checkpoint with tensorflow")
    return data[offset:end]


def _block_entries(block, path):
    """(key, value) of one block, keys rebuilt from their shared prefixes."""
    if len(block) < 4:
        raise CheckpointError(f"{path}: corrupt table block ({len(block)} bytes)")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * n_restarts
    if limit < 0:
        raise CheckpointError(f"{path}: corrupt table block ({n_restarts} restart points in {len(block)} bytes)")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > limit:
            raise CheckpointError(f"{path}: corrupt table block entry at byte {pos}")
        key = key[:shared] + bytes(block[pos:pos + unshared])
        pos += unshared
        yield key, bytes(block[pos:pos + vlen])
        pos += vlen


def read_index(path):
    """{key (str): value bytes} of a checkpoint's .index table."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint index ({e.strerror})") from None
    if len(data) < FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != TABLE_MAGIC:
        raise CheckpointError(f"{path}: not a TensorFlow checkpoint index (no table footer; a V1 checkpoint or a "
                              "truncated file?)")
    try:
        footer = data[len(data) - FOOTER_SIZE:]
        _, pos = _varint(footer, 0)  # metaindex offset
        _, pos = _varint(footer, pos)  # metaindex size
        idx_off, pos = _varint(footer, pos)
        idx_size, pos = _varint(footer, pos)
        out = {}
        for _, handle in _block_entries(_block(data, idx_off, idx_size, path), path):
            off, p = _varint(handle, 0)
            size, _ = _varint(handle, p)
            for k, v in _block_entries(_block(data, off, size, path), path):
                out[k.decode("utf-8", "replace")] = v
    except ValueError as e:
        raise CheckpointError(f"{path}: corrupt checkpoint index ({e})") from None
    return out


# ---------------------------------------------------------------------------------------------- bundle
class BundleReader:
    """The tensors of a TF V2 checkpoint: reader = BundleReader(prefix); reader.entries {name: Entry};
    reader.tensor(name) -> torch tensor (a copy)."""

    def __init__(self, prefix):
        self.prefix = prefix
        index = prefix + ".index"
        if not os.path.isfile(index):
            raise CheckpointError(f"{prefix}: no TF checkpoint here ({index} is missing)")
        table = read_index(index)
        self.num_shards = 1
        header = table.pop("", None)
        if header is not None:
            for num, _, val in _fields(header):
                if num == 1:
                    self.num_shards = val
                elif num == 2 and val != 0:
                    raise CheckpointError(f"{index}: a big-endian checkpoint; only little-endian ones are read")
        try:
            self.entries = {k: Entry(v) for k, v in table.items()}
        except ValueError as e:
            raise CheckpointError(f"{index}: corrupt tensor entry ({e})") from None
        self._maps = {}

    def shard_path(self, shard):
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def _data(self, shard):
        if shard not in self._maps:
            path = self.shard_path(shard)
            if shard >= self.num_shards or not os.path.isfile(path):
                raise CheckpointError(f"{path}: missing data shard {shard} of {self.num_shards} of the checkpoint "
                                      f"{self.prefix} (copy every {os.path.basename(self.prefix)}.data-* file)")
            self._maps[shard] = np.memmap(path, dtype=np.uint8, mode="r") if os.path.getsize(path) else \
                np.zeros(0, np.uint8)
        return self._maps[shard]

    def tensor(self, name):
        e = self.entries[name]
        if e.sliced:
            raise CheckpointError(f"{self.prefix}: {name} is a partitioned variable (saved in slices); re-save it "
                                  "unpartitioned with tensorflow")
        dt = DTYPES.get(e.dtype)
        if dt is None:
            raise CheckpointError(f"{self.prefix}: {name} has data type {e.dtype_name}, which this reader does not "
                                  "read (numbers only)")
        numel = int(np.prod(e.shape, dtype=np.int64)) if e.shape else 1
        itemsize = 2 if dt == "bfloat16" else dt.itemsize
        data = self._data(e.shard_id)
        path = self.shard_path(e.shard_id)
        if e.size != numel * itemsize:
            raise CheckpointError(f"{path}: {name} has {e.size} bytes but its shape {list(e.shape)} of "
                                  f"{e.dtype_name} needs {numel * itemsize} (corrupt index?)")
        if e.offset + e.size > len(data):
            raise CheckpointError(f"{path}: truncated: {name} needs bytes {e.offset}..{e.offset + e.size} of a "
                                  f"{len(data)}-byte file")
        raw = np.array(data[e.offset:e.offset + e.size])  # a copy, off the memory map
        if dt == "bfloat16":
            return torch.from_numpy(raw.view("<i2")).view(torch.bfloat16).reshape(e.shape)
        return torch.from_numpy(raw.view(dt).astype(dt.newbyteorder("="), copy=False)).reshape(e.shape)

    def close(self):
        self._maps.clear()


def read_bundle(prefix, skip=None):
    """{name: torch tensor} of every tensor of a TF checkpoint (names matching the regex `skip` left out)."""
    r = BundleReader(prefix)
    try:
        return {n: r.tensor(n) for n in sorted(r.entries) if skip is None or not skip.search(n)}
    finally:
        r.close()
