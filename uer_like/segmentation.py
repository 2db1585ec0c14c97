"""jieba-exact Chinese word segmentation, backed by the C extension ``uer_like._native``.

``segment(text)`` returns exactly ``jieba.lcut(text)`` and ``segment(text, hmm=False)``
exactly ``jieba.lcut(text, HMM=False)`` (jieba 0.42.1 accurate mode), ~35-45x faster
(benchmarks/README.md, "## Segmentation").

* The dictionary (``dict.txt``) and the HMM tables (``jieba.finalseg.start_P / trans_P /
  emit_P``) are read from the *installed* jieba package at run time, so the results follow
  whatever jieba version is installed (the algorithm is jieba 0.42.1's). The C structures are
  built once per process and cached (``Segmenter`` instances with the same dictionary files
  share one native object).
* ``Segmenter(dict_path=None, user_dict=None)``: another main dictionary (jieba's
  ``Tokenizer(dictionary)`` / ``set_dictionary`` format) and/or user dictionaries in
  ``jieba.load_userdict`` format (``word [freq] [tag]`` per line; a missing freq is computed
  like jieba's ``add_word``: ``suggest_freq(word, False)`` against the dictionary loaded so
  far; freq 0 force-splits the word in the HMM, like ``finalseg.add_force_split``).
* bytes input is accepted by ``Segmenter.cut`` / ``segment_lines``: it is decoded as UTF-8 with
  ``surrogateescape`` (invalid bytes never raise) and the tokens are returned as ``bytes``
  slices of the input.
* Fallback: when ``uer_like._native`` is not built (``python setup.py build_ext --inplace``),
  everything here transparently calls jieba itself (``jieba.Tokenizer``), which gives the
  same results, only slower. ``NATIVE_AVAILABLE`` tells which path is used;
  ``Segmenter(native=False)`` calls jieba even when the extension is built (the all-Python
  reference path of preprocess.py, ``--implementation python``).

* ``word_ends(text)`` gives the word end offsets instead of the word strings (whole-word
  masking).

Differences to jieba: jieba keeps ``Force_Split_Words`` (words added with freq 0) in one
process-global set shared by all its tokenizers, here it is per ``Segmenter``; and the
default segmenter mirrors a *fresh* ``jieba.Tokenizer()``: changes made to jieba's global
tokenizer at run time (``jieba.add_word``, ``jieba.load_userdict``, ``set_dictionary``) are not
seen -- pass the same files as ``Segmenter(dict_path, user_dict)`` instead.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from typing import Iterable, List, Optional, Sequence, Union
from .errors import DataError

try:  # pragma: no cover - depends on the build
    from uer_like import _native  # type: ignore[attr-defined]

    NATIVE_AVAILABLE = hasattr(_native, "JiebaSegmenter")
except ImportError:  # pragma: no cover
    _native = None
    NATIVE_AVAILABLE = False

__all__ = [
    "NATIVE_AVAILABLE",
    "Segmenter",
    "default_dict_path",
    "dictionary_hash",
    "segment",
    "segment_lines",
    "word_ends",
]

PathLike = Union[str, "os.PathLike[str]"]
Text = Union[str, bytes]

_re_userdict = re.compile("^(.+?)( [0-9]+)?( [a-z]+)?$", re.U)


def default_dict_path() -> str:
    """Path of the installed jieba package's dict.txt (its default dictionary)."""
    import jieba

    return os.path.join(os.path.dirname(os.path.abspath(jieba.__file__)), "dict.txt")


def _hmm_tables():
    from jieba import finalseg

    return finalseg.start_P, finalseg.trans_P, finalseg.emit_P


def _norm(path: Optional[PathLike]) -> Optional[str]:
    return None if path is None else os.path.abspath(os.fspath(path))


def _norm_user(user_dict) -> tuple:
    if user_dict is None:
        return ()
    if isinstance(user_dict, (str, os.PathLike)):
        return (_norm(user_dict),)
    return tuple(_norm(p) for p in user_dict)


class Segmenter:
    """A jieba-exact segmenter over a main dictionary plus optional user dictionaries.

    ``Segmenter()`` uses the installed jieba's dict.txt; ``cut(text, hmm=True)`` equals
    ``jieba.Tokenizer(dict_path).lcut(text, HMM=hmm)`` after ``load_userdict`` of every user
    dictionary (in order).
    """

    def __init__(self, dict_path: Optional[PathLike] = None,
                 user_dict: Union[None, PathLike, Sequence[PathLike]] = None, native: Optional[bool] = None):
        """native: None uses the C extension when it is built; False always uses jieba itself (the
        all-Python reference); True requires the C extension."""
        if native and not NATIVE_AVAILABLE:
            raise RuntimeError("Segmenter(native=True): uer_like._native is not built "
                               "(pip install -e . or python setup.py build_ext --inplace)")
        self.dict_path = _norm(dict_path) or default_dict_path()
        self.user_dicts = _norm_user(user_dict)
        self._lock = threading.Lock()
        self._impl = None  # native JiebaSegmenter or jieba.Tokenizer
        self._native = NATIVE_AVAILABLE if native is None else bool(native)

    # -- construction ---------------------------------------------------
    def _load(self):
        if self._impl is not None:
            return self._impl
        with self._lock:
            if self._impl is None:
                impl = self._build_native() if self._native else self._build_jieba()
                if self._native:
                    # fast path: later calls go straight to C (same signatures)
                    self.cut = impl.cut
                    self.cut_lines = impl.cut_lines
                self._impl = impl
        return self._impl

    def _cache_key(self):
        files = (self.dict_path,) + tuple(self.user_dicts)
        return tuple((p, _file_sig(p)) for p in files)

    def _build_native(self):
        # one native structure per process for the same dictionary files (read-only once built)
        key = self._cache_key()
        impl = _native_cache.get(key)
        if impl is None:
            impl = _native.JiebaSegmenter(self.dict_path)
            impl.set_hmm(*_hmm_tables())
            for path in self.user_dicts:
                _load_userdict_native(impl, path)
            impl.freeze()
            with _cache_lock:
                impl = _native_cache.setdefault(key, impl)
        return impl

    def _build_jieba(self):
        # one jieba.Tokenizer per process for the same dictionary files (loading one takes ~1 s)
        key = self._cache_key()
        tok = _jieba_cache.get(key)
        if tok is None:
            import jieba

            tok = jieba.Tokenizer(self.dict_path)
            tok.initialize()
            for path in self.user_dicts:
                tok.load_userdict(path)
            with _cache_lock:
                tok = _jieba_cache.setdefault(key, tok)
        return tok

    # -- API --------------------------------------------------------------
    @property
    def native(self) -> bool:
        """True when the C extension does the work (False: jieba fallback)."""
        return self._native

    def cut(self, text: Text, hmm: bool = True) -> list:
        """jieba.lcut(text, HMM=hmm); bytes in -> bytes tokens out."""
        impl = self._load()
        if self._native:
            return impl.cut(text, hmm)
        return _jieba_cut(impl, text, hmm)

    def cut_lines(self, lines: Iterable[Text], hmm: bool = True) -> List[list]:
        """[self.cut(line, hmm) for line in lines], in one native call."""
        impl = self._load()
        if self._native:
            return impl.cut_lines(lines, hmm)
        if isinstance(lines, (str, bytes, bytearray)):
            raise TypeError("cut_lines() expects a sequence of str or bytes, not a single text")
        return [_jieba_cut(impl, t, hmm) for t in lines]

    def word_ends(self, text: Text, hmm: bool = True) -> List[int]:
        """End offset of every word of cut(text, hmm) (code points for str, bytes for bytes);
        the words partition the text, so word i is text[ends[i-1]:ends[i]]. For whole-word
        masking without building the word strings."""
        impl = self._load()
        if self._native:
            return impl.cut_ends(text, hmm)
        ends, pos = [], 0
        for w in _jieba_cut(impl, text, hmm):
            pos += len(w)
            ends.append(pos)
        return ends

    def get_freq(self, word: str) -> Optional[int]:
        """jieba's FREQ.get(word) (0 for pure prefixes, None when absent)."""
        impl = self._load()
        if self._native:
            return impl.get_freq(word)
        return impl.FREQ.get(word)

    def dictionary_files(self) -> List[str]:
        return [self.dict_path, *self.user_dicts]

    def dictionary_hash(self, include_hmm: bool = True) -> str:
        """See the module-level dictionary_hash()."""
        return dictionary_hash(self.dict_path, self.user_dicts or None, include_hmm=include_hmm)

    def __getstate__(self):
        # picklable (multiprocessing): only the dictionary paths travel, the native
        # structure is rebuilt lazily in the receiving process
        return {"dict_path": self.dict_path, "user_dicts": self.user_dicts, "native": self._native}

    def __setstate__(self, state):
        self.dict_path = state["dict_path"]
        self.user_dicts = tuple(state["user_dicts"])
        self._lock = threading.Lock()
        self._impl = None
        self._native = state.get("native", NATIVE_AVAILABLE) and NATIVE_AVAILABLE

    def __repr__(self):
        return "Segmenter(dict_path=%r, user_dict=%r, native=%r)" % (
            self.dict_path, list(self.user_dicts), self._native)


def _file_sig(path: str):
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _jieba_cut(tok, text: Text, hmm: bool) -> list:
    if not isinstance(text, (str, bytes, bytearray)):
        raise TypeError("expected str or bytes, got %s" % type(text).__name__)
    if isinstance(text, (bytes, bytearray)):
        s = bytes(text).decode("utf-8", "surrogateescape")
        return [w.encode("utf-8", "surrogateescape") for w in tok.lcut(s, HMM=hmm)]
    return tok.lcut(text, HMM=hmm)


def _load_userdict_native(impl, path: str) -> None:
    """jieba Tokenizer.load_userdict + add_word + suggest_freq, against the native dict."""
    with open(path, "rb") as f:
        for ln in f:
            line = ln.strip()
            try:
                line = line.decode("utf-8").lstrip("\ufeff")
            except UnicodeDecodeError:
                raise DataError("dictionary file %s must be utf-8" % path)
            if not line:
                continue
            word, freq, tag = _re_userdict.match(line).groups()
            if freq is not None:
                freq = int(freq.strip())
            else:
                freq = _suggest_freq(impl, word)
            impl.add_word(word, freq)


def _suggest_freq(impl, word: str) -> int:
    """jieba Tokenizer.suggest_freq(word, tune=False) for a str segment."""
    total = impl.total
    ftotal = float(total)
    freq = 1
    for seg in impl.cut(word, False):
        f = impl.get_freq(seg)
        freq *= (1 if f is None else f) / ftotal
    f = impl.get_freq(word)
    return max(int(freq * total) + 1, 1 if f is None else f)


# -- module-level cached default segmenter --------------------------------

_cache_lock = threading.Lock()
_segmenters: dict = {}
_native_cache: dict = {}
_jieba_cache: dict = {}


def get_segmenter(dict_path: Optional[PathLike] = None,
                  user_dict: Union[None, PathLike, Sequence[PathLike]] = None) -> Segmenter:
    """A process-wide cached Segmenter for these dictionary files."""
    key = (_norm(dict_path) or default_dict_path(), _norm_user(user_dict))
    seg = _segmenters.get(key)
    if seg is None:
        with _cache_lock:
            seg = _segmenters.get(key)
            if seg is None:
                seg = Segmenter(key[0], key[1] or None)
                _segmenters[key] = seg
    return seg


_default: Optional[Segmenter] = None


def _default_segmenter() -> Segmenter:
    global _default
    s = _default
    if s is None:
        s = get_segmenter()
        s._load()
        _default = s
    return s


def segment(text: str, hmm: bool = True) -> List[str]:
    """jieba.lcut(text) (hmm=True) / jieba.lcut(text, HMM=False), with the default dictionary."""
    return (_default or _default_segmenter()).cut(text, hmm)


def segment_lines(lines: Iterable[Text], hmm: bool = True) -> List[list]:
    """[segment(line, hmm) for line in lines], batched in C (str or bytes items)."""
    return (_default or _default_segmenter()).cut_lines(lines, hmm)


def word_ends(text: Text, hmm: bool = True) -> List[int]:
    """Segmenter.word_ends with the default dictionary."""
    return (_default or _default_segmenter()).word_ends(text, hmm)


def _files_sha256(paths: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def dictionary_hash(dict_path: Optional[PathLike] = None,
                    user_dict: Union[None, PathLike, Sequence[PathLike]] = None,
                    include_hmm: bool = True) -> str:
    """sha256 identifying the segmentation resources, for dataset manifests.

    Hashes (length-prefixed) the main dictionary and user dictionaries in order; with
    include_hmm also jieba's finalseg probability tables (prob_start/trans/emit .py files),
    which decide the HMM results.
    """
    paths = [_norm(dict_path) or default_dict_path(), *_norm_user(user_dict)]
    if include_hmm:
        import jieba.finalseg as fs

        d = os.path.dirname(os.path.abspath(fs.__file__))
        for name in ("prob_start.py", "prob_trans.py", "prob_emit.py"):
            p = os.path.join(d, name)
            if os.path.exists(p):
                paths.append(p)
    return _files_sha256(paths)
