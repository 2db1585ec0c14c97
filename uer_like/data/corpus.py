"""Reading raw corpora: byte-offset chunks, the line definition, and the bad-input policy.

A line is the bytes up to b"\\n" (a trailing b"\\r" is dropped), the same in every path: U+2028,
U+0085 and a lone \\r stay inside their line. Work is split into fixed-size chunks that start at a
document boundary found from a byte offset, so N workers never re-read from the first line and the
output is the same whatever N is.
"""
import os

from ..errors import DataError

CORPUS_FORMATS = ("bert", "line")
LINE_POLICIES = ("error", "skip", "replace")
DEFAULT_CHUNK_BYTES = 1 << 20
MAX_REPORTED = 20


INVALID_KINDS = ("invalid_utf8", "nul", "bad_columns")  # lines counted against --max_invalid_fraction
LONG_LINE_BYTES = 1 << 20  # a line longer than this (no newline in 1 MB) is reported with its line number
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32LE"), (b"\x00\x00\xfe\xff", "UTF-32BE"), (b"\xff\xfe", "UTF-16LE"),
         (b"\xfe\xff", "UTF-16BE"))


def corpus_size(path):
    if os.path.isdir(path):
        raise DataError(f"the corpus {path} is a directory, not a text file")
    if not os.path.isfile(path):
        raise DataError(f"corpus not found: {path}")
    return os.path.getsize(path)


def check_encoding(path, sample=1 << 16):
    """Refuse a UTF-16/UTF-32 corpus (by its byte-order mark, or a start that is mostly NUL bytes) with the
    iconv command that converts it. A UTF-8 BOM is fine: it is stripped from the line it starts."""
    with open(path, "rb") as f:
        head = f.read(sample)
    for bom, enc in _BOMS:
        if head.startswith(bom):
            raise DataError(f"{path} is {enc} text (it starts with a {enc} byte-order mark); preprocess.py reads "
                            f"UTF-8: convert it with `iconv -f {enc[:6]} -t UTF-8 {path} > {path}.utf8`")
    if len(head) >= 16 and head.count(b"\0") > len(head) // 4:
        pct = 100 * head.count(b"\0") / len(head)
        enc = "UTF-16LE" if head[1::2].count(b"\0") > head[0::2].count(b"\0") else "UTF-16BE"
        raise DataError(f"{path}: {pct:.0f}% of its first {len(head)} bytes are NUL: UTF-16/UTF-32 text without a "
                        f"byte-order mark, or not text; preprocess.py reads UTF-8 (if it is UTF-16: "
                        f"`iconv -f {enc} -t UTF-8 {path} > {path}.utf8`)")


def long_lines(path, start, end, limit=LONG_LINE_BYTES):
    """[(line number within the chunk, bytes)] of the lines longer than `limit` in [start, end)."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    out, pos, line_no = [], 0, 0
    while pos < len(data):
        line_no += 1
        nl = data.find(b"\n", pos)
        stop = len(data) if nl < 0 else nl
        if stop - pos > limit:
            out.append((line_no, stop - pos))
        pos = stop + 1
    return out


def _next_doc_start(f, offset, fmt, size):
    """First document start at or after byte `offset` (offset 0 is always a start)."""
    if offset <= 0:
        return 0
    if offset >= size:
        return size
    f.seek(offset - 1)
    if f.read(1) != b"\n":
        f.readline()  # finish the partial line
    if fmt == "line":
        return f.tell()
    # BERT format: documents start after a blank line
    while True:
        line = f.readline()
        if not line:
            return size
        if line in (b"\n", b"\r\n"):
            return f.tell()


def chunk_boundaries(path, fmt="bert", chunk_bytes=DEFAULT_CHUNK_BYTES):
    """Byte offsets [b0=0, b1, ..., size] of chunks; each chunk starts at a document boundary."""
    if fmt not in CORPUS_FORMATS:
        raise DataError(f"unknown corpus format {fmt!r}; valid choices: {', '.join(CORPUS_FORMATS)}")
    size = corpus_size(path)
    bounds = [0]
    with open(path, "rb") as f:
        for k in range(1, (size + chunk_bytes - 1) // chunk_bytes):
            b = _next_doc_start(f, k * chunk_bytes, fmt, size)
            if bounds[-1] < b < size:
                bounds.append(b)
    bounds.append(size)
    return bounds


class LineError(DataError):
    """A bad line under policy "error"; line_no is 1-based within the chunk (the driver makes it global)."""

    def __init__(self, path, line_no, message):
        self.path, self.line_no, self.message = path, line_no, message
        super().__init__(f"{path}:{line_no}: {message}")


class LineReport:
    """Counts and first line numbers of problem lines, per kind (invalid_utf8, nul, control, bom...)."""

    def __init__(self):
        self.counts = {}
        self.first = {}

    def add(self, kind, line_no):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        lst = self.first.setdefault(kind, [])
        if len(lst) < MAX_REPORTED:
            lst.append(line_no)

    def merge(self, other, line_offset=0):
        for kind, n in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
            lst = self.first.setdefault(kind, [])
            for ln in other.first.get(kind, []):
                if len(lst) < MAX_REPORTED:
                    lst.append(ln + line_offset)

    def to_dict(self):
        return {"counts": dict(sorted(self.counts.items())), "first_lines": dict(sorted(self.first.items()))}


def _has_control(text):
    for ch in text:
        o = ord(ch)
        if (o < 32 and ch not in "\t\r") or 0x7F <= o < 0xA0:
            return True
    return False


def decode_line(raw, line_no, policy, report, path):
    """bytes -> str under the policy; returns None to skip the line. line_no is 1-based in the chunk."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if policy == "error":
            raise LineError(path, line_no, f"invalid UTF-8 at byte {e.start} of the line "
                            "(use --invalid_lines skip|replace to go on)") from None
        report.add("invalid_utf8", line_no)
        if policy == "skip":
            return None
        text = raw.decode("utf-8", errors="replace")
    if "\x00" in text:
        if policy == "error":
            raise LineError(path, line_no, "NUL byte in the line (use --invalid_lines skip|replace to go on)")
        report.add("nul", line_no)
        if policy == "skip":
            return None
        text = text.replace("\x00", " ")
    if text.startswith("\ufeff"):
        report.add("bom", line_no)
        text = text[1:]
    if _has_control(text):
        report.add("control_chars", line_no)  # tokenizers drop control characters; counted, never fatal
    return text


def read_chunk_documents(path, start, end, fmt, policy="skip"):
    """Documents of the byte range [start, end): a list of (first_line_no, [sentences]), the chunk's
    line count and a LineReport. Line numbers are 1-based within the chunk."""
    report = LineReport()
    docs = []
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    cur, cur_first = [], None
    for i, raw in enumerate(lines, 1):
        text = decode_line(raw, i, policy, report, path)
        if text is None:
            continue
        if fmt == "line":
            if text.strip():
                docs.append((i, [text]))
            else:
                report.add("empty_line", i)
            continue
        if not text.strip():
            if cur:
                docs.append((cur_first, cur))
            cur, cur_first = [], None
            continue
        if not cur:
            cur_first = i
        cur.append(text)
    if cur:
        docs.append((cur_first, cur))
    return docs, len(lines), report
