"""The native per-chunk preprocessor (csrc/instances.c, csrc/wordpiece.c): the C twin of
``process_chunk`` in preprocess.py, which stays the reference. Both produce the same arrays for the
same chunk and options, so datasets are byte-identical whichever path made them.

``unsupported_reason(o)`` says whether the native path runs options o (preprocess.chunk_function picks the
path); ``process_chunk(ctx, task)`` reads everything it needs from the explicit ChunkContext ctx. The native
path covers the "bert" tokenizer; for a chunk holding something only Python handles (a non-ASCII or huge cls
label) it returns None, and the caller runs the reference on it. This module knows nothing of preprocess.py.
"""
import logging
import unicodedata

import numpy as np

from ..segmentation import NATIVE_AVAILABLE, Segmenter
from .corpus import LineReport
from .masking import STRATEGIES

try:  # pragma: no cover - depends on the build
    from uer_like import _native  # type: ignore[attr-defined]

    AVAILABLE = hasattr(_native, "preprocess_chunk")
except ImportError:  # pragma: no cover
    _native = None
    AVAILABLE = False

logger = logging.getLogger("uer_like")


_MESSAGES = {
    "utf8": "invalid UTF-8 at byte {detail} of the line (use --invalid_lines skip|replace to go on)",
    "nul": "NUL byte in the line (use --invalid_lines skip|replace to go on)",
    "columns": "expected 2 or 3 tab-separated columns (label, text_a[, text_b]), got {detail}",
    "label": "the label {field!r} is not an integer",
    "negative": "negative label {detail}",
}


def unsupported_reason(o):
    """Why the native path cannot run these options (None when it can)."""
    if not AVAILABLE:
        return "uer_like._native is not built (python setup.py build_ext --inplace)"
    tables = getattr(_native, "UNIDATA_VERSION", None)
    if tables != unicodedata.unidata_version:
        return (f"uer_like._native was built with Unicode {tables} tables, but this Python's unicodedata is "
                f"{unicodedata.unidata_version}, so the two tokenizers could differ; rebuild it with this Python "
                "(python setup.py build_ext --inplace)")
    if o.data_processor not in NATIVE_PROCESSORS:
        return f"the {o.data_processor!r} processor has no native implementation"
    if o.tokenizer != "bert":
        return f"the {o.tokenizer!r} tokenizer has no native implementation"
    if o.spm_model_path:
        return "SentencePiece (--spm_model_path) has no native implementation"
    if any(getattr(o, k) for k in ("span_masking", "ngram_masking", "macbert_masking", "pert_masking")) and \
            not has_strategies():
        return "uer_like._native was built before the masking strategies: rebuild it (python setup.py build_ext --inplace)"
    if o.whole_word_masking:
        if not NATIVE_AVAILABLE:
            return "the native jieba segmenter is not available"
    return None


# processor -> the instance builder of csrc/instances.c that makes its instances (t5's are mlm's)
NATIVE_PROCESSORS = {"bert": "bert", "albert": "albert", "mlm": "mlm", "lm": "lm", "cls": "cls", "t5": "mlm"}
_STATE = {}


def _objects(o, vocab):
    """The native tokenizer (its vocabulary hash map) and segmenter, built once per process."""
    # the vocabulary by content when it came from a file (a forked worker's own Vocab then finds the
    # parent's tables), else by identity
    key = (getattr(vocab, "sha256", None) or id(vocab), len(vocab), o.do_lower_case, o.whole_word_masking,
           str(o.user_dict))
    st = _STATE.get("key") == key and _STATE.get("objs")
    if not st:
        wp = _native.WordPiece(vocab.i2w, vocab.w2i.get("[UNK]", 0), bool(o.do_lower_case))
        seg = None
        if o.whole_word_masking:
            seg = Segmenter(user_dict=o.user_dict)._load()  # the native JiebaSegmenter
        st = (wp, seg, vocab)  # keep vocab alive: its id is part of the key
        _STATE.update(key=key, objs=st)
    return st[0], st[1]


def prepare(ctx):
    """Build the native objects of ctx now (before a pool forks, so that workers inherit them)."""
    _objects(ctx.options, ctx.vocab)


def native_report(items):
    report = LineReport()
    for kind, n, first in items:
        report.counts[kind] = n
        report.first[kind] = list(first)
    return report


def process_chunk(ctx, task):
    """process_chunk (preprocess.py) in C: the same dict of arrays for the same chunk, or None for a chunk
    the reference must process."""
    chunk_idx, start, end = task
    o, vocab = ctx.options, ctx.vocab
    wp, seg = _objects(o, vocab)
    with open(o.corpus_path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    r = _native.preprocess_chunk(
        wp, seg, data, chunk_idx, processor=NATIVE_PROCESSORS[o.data_processor], corpus_format=o.corpus_format,
        policy=o.invalid_lines, seq_length=o.seq_length, dups=o.effective_dups,
        static_mask=o.static_masking, whole_word=bool(o.whole_word_masking),
        per_word=o.mask_decision == "word", mask_prob=float(o.mask_prob),
        short_seq_prob=float(o.short_seq_prob), seed=o.seed, cls_id=vocab.cls_id, sep_id=vocab.sep_id,
        pad_id=vocab.pad_id, mask_id=vocab.mask_id, vocab_size=len(vocab), **masking_kw(ctx.masking))
    if "fallback" in r:
        return None
    if "error" in r:
        line_no, kind, detail, field = r["error"]
        return {"error": (line_no, _MESSAGES[kind].format(detail=detail, field=field))}
    return {"ids": np.frombuffer(r["ids"], np.int64), "bits": np.frombuffer(r["bits"], np.uint8),
            "lengths": np.frombuffer(r["lengths"], np.int64), "seg_a_len": np.frombuffer(r["seg_a_len"], np.int32),
            "labels": np.frombuffer(r["labels"], np.int32),
            "mask_lengths": np.frombuffer(r["mask_lengths"], np.int64),
            "mask_pos": np.frombuffer(r["mask_pos"], np.int32),
            "mask_labels": np.frombuffer(r["mask_labels"], np.int32),
            "lines": r["lines"], "report": native_report(r["report"]), "documents": r["documents"],
            "bytes": end - start}


def masking_arg(o):
    """The `masking=` argument of the C functions for MaskingOptions o (None: mlm): the strategy, the
    cumulative tables computed here (so both paths draw with the same doubles), the PERT window and the
    similar-word table (built once per table and kept on it)."""
    if o is None or o.strategy == "mlm":
        return None
    sim = None
    if o.similar is not None:
        sim = getattr(o.similar, "_native", None)
        if sim is None:
            sim = _native.similar_table(*(np.ascontiguousarray(a, np.int64) for a in o.similar.flat()))
            o.similar._native = sim
    return (STRATEGIES.index(o.strategy), np.asarray(o.span_cum, np.float64).tobytes(),
            np.asarray(o.ngram_cum, np.float64).tobytes(), int(o.pert_window), sim)


def masking_kw(o):
    """{} for mlm (an extension built before the strategies takes that call), else {"masking": ...}."""
    arg = masking_arg(o)
    return {} if arg is None else {"masking": arg}


def has_strategies():
    """Whether the built extension knows the masking strategies (else: rebuild it)."""
    return AVAILABLE and hasattr(_native, "similar_table")


def mask_instances(ids, lengths, bits, keys, special, vocab_size, mask_id, prob=0.15, whole_word=False,
                   decision_per_word=True, options=None):
    """mask_instance (masking.py) over a batch, in C (mask_with for MaskingOptions `options`, which then
    decide prob, whole_word and decision_per_word). ids / bits: the instances concatenated; lengths: per
    instance; keys: [N, K] integers, instance i draws from SplitMix64(*keys[i]).
    -> (masked ids, mask counts, positions within each instance, labels), int64 arrays."""
    if options is not None:
        prob, whole_word, decision_per_word = options.prob, options.whole_word, options.per_word
    ids = np.ascontiguousarray(ids, np.int64)
    lengths = np.ascontiguousarray(lengths, np.int64)
    bits = np.ascontiguousarray(bits, np.uint8)
    keys = np.asarray(keys)
    keys = np.ascontiguousarray(keys.astype(np.int64).view(np.uint64) if keys.dtype != np.uint64 else keys)
    n_keys = keys.shape[1] if keys.ndim == 2 else 0
    out, mlen, pos, lab = _native.mask_instances(ids, lengths, bits, keys, n_keys, list(special), int(vocab_size),
                                                 int(mask_id), float(prob), bool(whole_word),
                                                 bool(decision_per_word), **masking_kw(options))
    return (np.frombuffer(out, np.int64), np.frombuffer(mlen, np.int64), np.frombuffer(pos, np.int64),
            np.frombuffer(lab, np.int64))
