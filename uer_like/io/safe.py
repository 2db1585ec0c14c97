"""Reading tensor files without running code from them.

- Pickled files (`.bin`/`.pt`, torch's zip format or the legacy format) are first scanned opcode by
  opcode (pickletools, which never executes anything): every global the pickle would import must be on
  a short allow-list (torch's tensor rebuild functions, storages, dtypes, OrderedDict). Only then are
  they read with `torch.load(weights_only=True)`. Two independent checks, because `weights_only` alone
  has had bypasses (CVE-2025-32434, torch < 2.6).
- `.safetensors` files have their header validated (length, JSON, dtypes, shapes, offsets against the
  file size) before safetensors reads them, so that a truncated or malformed file gets an error saying
  what is wrong with it.
"""
import io
import json
import os
import pickle
import pickletools
import struct
import zipfile

import torch

from ..errors import CheckpointError

# (module, name) pairs a state-dict pickle may reference
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch.serialization", "_get_layout"),
    ("torch", "Size"),
    ("torch", "device"),
}
_UNSAFE_HINT = ("Only plain state dicts (tensors in dicts/lists, numbers, strings) are loaded. If you trust "
                "the file, convert it once in a throw-away environment, e.g. to safetensors")


def _global_ok(module, name):
    if (module, name) in _ALLOWED_GLOBALS:
        return True
    if module == "torch":
        if name.endswith("Storage"):
            return True
        return isinstance(getattr(torch, name, None), torch.dtype)
    return False


def scan_pickle(data, source, max_pickles=5):
    """Raise CheckpointError if the pickle bytes reference any global outside the allow-list (or build one
    at run time with STACK_GLOBAL from values it cannot follow). Scans up to `max_pickles` consecutive
    pickles: torch's legacy format writes five (magic, protocol, sys info, the object, storage keys) before
    the raw tensor bytes, which are not scanned."""
    pos = 0
    n = len(data)
    pickles = 0
    while pos < n and pickles < max_pickles:
        stream = io.BytesIO(data[pos:])
        recent = []  # what the last opcodes pushed: a str, or None for anything else (for STACK_GLOBAL)
        memo = {}
        memo_count = 0
        try:
            for op, arg, _ in pickletools.genops(stream):
                name = op.name
                if name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING",
                            "BINSTRING", "STRING"):
                    recent.append(arg)
                elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                    memo[arg] = recent[-1] if recent else None
                elif name == "MEMOIZE":
                    memo[memo_count] = recent[-1] if recent else None
                    memo_count += 1
                elif name in ("BINGET", "LONG_BINGET", "GET"):
                    recent.append(memo.get(arg))
                elif name not in ("GLOBAL", "INST", "STACK_GLOBAL", "PROTO", "FRAME"):
                    recent.append(None)
                strings = recent[-2:]
                if name in ("GLOBAL", "INST", "STACK_GLOBAL"):
                    recent.append(None)
                if name in ("GLOBAL", "INST"):
                    module, _, attr = str(arg).partition(" ")
                    if not _global_ok(module, attr):
                        raise CheckpointError(
                            f"{source}: refused to load: the pickle would import {module}.{attr}, which is not "
                            f"part of a plain state dict (possible code execution). {_UNSAFE_HINT}")
                elif name == "STACK_GLOBAL":
                    resolved = len(strings) == 2 and all(isinstance(x, str) for x in strings)
                    if not resolved or not _global_ok(strings[0], strings[1]):
                        what = f"{strings[0]}.{strings[1]}" if resolved else "a global it builds at run time"
                        raise CheckpointError(
                            f"{source}: refused to load: the pickle would import {what}, which is not part of a "
                            f"plain state dict (possible code execution). {_UNSAFE_HINT}")
                elif name in ("EXT1", "EXT2", "EXT4"):
                    raise CheckpointError(f"{source}: refused to load: the pickle uses the copyreg extension "
                                          f"registry ({name}). {_UNSAFE_HINT}")
        except CheckpointError:
            raise
        except Exception as e:  # malformed / truncated pickle stream
            if pickles == 0:
                raise CheckpointError(f"{source}: not a readable checkpoint (truncated or corrupt pickle: "
                                      f"{_first_line(e)})") from None
            break  # the legacy format puts raw storage bytes after its pickles
        pickles += 1
        pos += stream.tell()


def _unpickler_reason(e):
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error" in ln:
            rest = ln.split("WeightsUnpickler error:", 1)[-1].strip()
            return "torch weights_only unpickler: " + (rest or (lines[i + 1] if i + 1 < len(lines) else ""))
    return lines[0] if lines else type(e).__name__


def _first_line(e):
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def check_torch_file(path):
    """Scan every pickle inside a torch file (zip or legacy) before anything unpickles it."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = [i for i in z.namelist() if i.endswith(".pkl")]
                if not names:
                    raise CheckpointError(f"{path}: a zip file without a pickle in it; not a torch checkpoint")
                for name in names:
                    scan_pickle(z.read(name), f"{path} ({name})", max_pickles=1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint (zip archive: {_first_line(e)})") from None
        return
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"PK":
        raise CheckpointError(f"{path}: truncated or corrupt torch checkpoint: it starts as a zip archive but has "
                              "no readable central directory (was the download or copy cut short?)")
    scan_pickle(data, path)


def torch_load_safely(path):
    check_torch_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused to load: the pickle contains objects other than tensors "
                              f"({_unpickler_reason(e)}). {_UNSAFE_HINT}") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {_first_line(e)}") from None


_ST_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
              "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}


def is_safetensors(path):
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_safetensors_header(path):
    """Validate a safetensors file's header; return (header dict without __metadata__, metadata)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path}: malformed safetensors file: {size} bytes, shorter than the 8-byte "
                                  "header length")
        (hlen,) = struct.unpack("<Q", raw)
        if hlen > size - 8:
            raise CheckpointError(f"{path}: malformed safetensors header: it declares a header of {hlen} bytes "
                                  f"but the file has only {size - 8} bytes after the length (truncated file?)")
        hbytes = f.read(hlen)
    try:
        header = json.loads(hbytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: malformed safetensors header: not valid JSON ({_first_line(e)})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: malformed safetensors header: expected a JSON object")
    meta = header.pop("__metadata__", None) or {}
    data_size = size - 8 - hlen
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise CheckpointError(f"{path}: malformed safetensors header: entry {name!r} lacks dtype/shape/"
                                  "data_offsets")
        itemsize = _ST_DTYPES.get(info["dtype"])
        if itemsize is None:
            raise CheckpointError(f"{path}: malformed safetensors header: tensor {name!r} has unknown dtype "
                                  f"{info['dtype']!r}")
        start, end = info["data_offsets"]
        numel = 1
        for d in info["shape"]:
            numel *= int(d)
        if end - start != numel * itemsize or start < 0:
            raise CheckpointError(f"{path}: malformed safetensors header: tensor {name!r} of shape "
                                  f"{info['shape']} {info['dtype']} needs {numel * itemsize} bytes but its "
                                  f"offsets {start}..{end} span {end - start}")
        if end > data_size:
            raise CheckpointError(f"{path}: truncated safetensors file: tensor {name!r} ends at byte {end} of the "
                                  f"data section, which has only {data_size} bytes")
    return header, meta


def load_safetensors(path):
    read_safetensors_header(path)
    try:
        from safetensors.torch import load_file
    except ImportError:  # pragma: no cover
        raise CheckpointError("reading .safetensors needs the safetensors package (pip install safetensors)") from None
    try:
        return load_file(path)
    except Exception as e:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"{path}: malformed safetensors file: {_first_line(e)}") from None


def safetensors_metadata(path):
    return read_safetensors_header(path)[1]


def read_tensor_file(path):
    """A tensor dict from a .bin/.pt (scanned, weights_only) or .safetensors file."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: the checkpoint file is empty")
    if path.endswith(".safetensors") or is_safetensors(path):
        return load_safetensors(path)
    obj = torch_load_safely(path)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # a training checkpoint
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict), got {type(obj).__name__}")
    return dict(obj)
