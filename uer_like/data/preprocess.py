"""Corpus -> dataset: chunked, streamed, optionally in N worker processes, identical output for any N.

This is the reference implementation in Python; uer_like._native (csrc/) implements the same per-chunk
function in C and must produce byte-identical datasets.
"""
import errno
import hashlib
import logging
import multiprocessing as mp
import os
import re
import time
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from ..outputs import check_writable, first_os_error, remove_stale_tmp
from ..segmentation import Segmenter, dictionary_hash
from ..tokenizers import build_tokenizer
from . import corpus as corpus_mod
from . import native
from .corpus import LineError, LineReport, chunk_boundaries, read_chunk_documents
from .dataset import DatasetWriter
from .masking import MaskingOptions, SimilarWords, check_values, describe_dropped, mask_with, strategy_of
from .processors import (DATA_PROCESSOR_NAMES, INSTANCE_SHAPES, PURPOSE_PAIRS, PURPOSE_SEQ2SEQ, PURPOSE_STATIC_MASK,
                         SentenceEncoder, cls_instance, lm_instances, mlm_instances, parse_cls_line,
                         sentence_pair_instances)
from .options import SENTENCE_SELECTION_STRATEGIES, PreprocessOptions
from .prefixlm import parse_prefixlm_line, prefixlm_instances
from .seq2seq import bart_instances, gsg_instances, sentinel_ids
from .rng import SplitMix64

logger = logging.getLogger("uer_like")


def default_options(**kw):
    """PreprocessOptions of preprocess.py's flags (keyword options; the defaults are PreprocessOptions')."""
    return PreprocessOptions.from_flags(**kw)


def validate_options(o):
    path = o.user_dict  # (--similar_words_path is checked with the masking options)
    if path and not os.path.isfile(path):
        raise DataError(f"--user_dict {path}: " + ("a directory, not a file" if os.path.isdir(path) else
                                                   "No such file or directory"))
    if o.data_processor not in DATA_PROCESSOR_NAMES:
        raise DataError(f"unknown data_processor {o.data_processor!r}; valid choices: {', '.join(DATA_PROCESSOR_NAMES)}")
    if o.invalid_lines not in corpus_mod.LINE_POLICIES:
        raise DataError(f"unknown --invalid_lines {o.invalid_lines!r}; valid: {', '.join(corpus_mod.LINE_POLICIES)}")
    if o.mask_decision not in ("word", "token"):
        raise DataError(f"unknown --mask_decision {o.mask_decision!r}; valid: word, token")
    if o.corpus_format not in corpus_mod.CORPUS_FORMATS:
        raise DataError(f"unknown --corpus_format {o.corpus_format!r}; valid: {', '.join(corpus_mod.CORPUS_FORMATS)}")
    if o.seq_length < 8:
        raise DataError(f"--seq_length must be at least 8, got {o.seq_length}")
    if o.dup_factor < 1:
        raise DataError(f"--dup_factor must be at least 1, got {o.dup_factor}")
    if not 0 < o.mask_prob < 1:
        raise DataError(f"--mask_prob must be in (0, 1), got {o.mask_prob}")
    if o.data_processor == "cls" and o.corpus_format != "line":
        raise DataError("the cls processor reads `label<TAB>text` lines: use --corpus_format line")
    if o.data_processor == "prefixlm" and o.corpus_format != "line":
        raise DataError("the prefixlm processor reads `source<TAB>target` lines: use --corpus_format line")
    if o.tgt_seq_length < 8:
        raise DataError(f"--tgt_seq_length must be at least 8, got {o.tgt_seq_length}")
    if o.sentence_selection_strategy not in SENTENCE_SELECTION_STRATEGIES:
        raise DataError(f"unknown --sentence_selection_strategy {o.sentence_selection_strategy!r}; valid: "
                        f"{', '.join(SENTENCE_SELECTION_STRATEGIES)}")
    if not 0 <= o.max_invalid_fraction <= 1:
        raise DataError(f"--max_invalid_fraction must be in [0, 1], got {o.max_invalid_fraction}")
    validate_masking(o)
    corpus_mod.corpus_size(o.corpus_path)
    corpus_mod.check_encoding(o.corpus_path)


def validate_masking(o):
    """The masking strategy flags: one strategy, parameters in range, a processor that masks."""
    try:
        strategy = strategy_of(o.as_dict(), "preprocess", prefix="--")
        check_values(o.as_dict(), "preprocess", prefix="--")
    except ConfigError as e:
        raise DataError(str(e)) from None
    if strategy != "mlm" and not o.uses_masks:
        raise DataError(f"preprocess: --{strategy}_masking masks instances, which the {o.data_processor!r} "
                        "processor does not (use bert, albert, mlm, t5 or bart)")
    if strategy not in ("mlm", "span") and o.data_processor in ("t5", "bart"):
        raise DataError(f"preprocess: the {o.data_processor} processor masks tokens or spans (--span_masking), not "
                        f"with --{strategy}_masking")
    if strategy == "macbert" and not o.similar_words_path:
        raise DataError("preprocess: --macbert_masking needs --similar_words_path (a `word<TAB>candidates` file)")
    if o.similar_words_path and strategy != "macbert":
        raise DataError("preprocess: --similar_words_path is for --macbert_masking, which is not on")
    if o.ngram_probs and strategy not in ("ngram", "macbert"):
        raise DataError("preprocess: --ngram_probs is for --ngram_masking or --macbert_masking, neither of which is on")
    return strategy


def masking_options(o, tokenizer=None):
    """MaskingOptions of the preprocess options (tokenizer: for the similar-words file)."""
    strategy = strategy_of(o.as_dict(), "preprocess", prefix="--")
    similar = None
    if strategy == "macbert":
        enc = SentenceEncoder(tokenizer)
        similar = SimilarWords.load(o.similar_words_path, lambda text: enc(text).ids)
    return MaskingOptions(strategy=strategy, prob=o.mask_prob, whole_word=bool(o.whole_word_masking),
                          per_word=o.mask_decision == "word", span_geo_prob=float(o.span_geo_prob),
                          span_max_length=o.span_max_length, ngram_probs=tuple(map(float, o.ngram_probs or ())),
                          pert_window=o.pert_window, similar=similar)


# ---------------------------------------------------------------------------------------- workers
@dataclass(frozen=True)
class ChunkContext:
    """What every chunk function reads besides its task: the options and the objects built from them once."""
    options: PreprocessOptions
    tokenizer: object
    encoder: SentenceEncoder  # text -> ids and word-start bits
    vocab: object
    masking: MaskingOptions


def _init_worker(o):
    """The ChunkContext of options o (built before the pool forks: the workers inherit it)."""
    tok = build_tokenizer(o.tokenizer, o.vocab_path, o.spm_model_path, o.do_lower_case)
    seg = None
    if o.whole_word_masking:
        # --implementation python is the all-Python reference: segmentation by jieba itself; otherwise
        # (the Python path chosen by "auto" for options the native path lacks) the C segmenter when built
        seg = Segmenter(user_dict=o.user_dict, native=False if o.implementation == "python" else None).cut
    return ChunkContext(o, tok, SentenceEncoder(tok, seg), tok.vocab, masking_options(o, tok))


def chunk_function(o, ctx=None):
    """The per-chunk function (ctx, task) -> arrays for o.implementation: python (the reference) | native |
    auto (native when it supports the options, else python with a note)."""
    impl = o.implementation
    if impl == "python":
        return process_chunk
    if impl not in ("auto", "native"):
        raise DataError(f"unknown --implementation {impl!r}; valid: auto, native, python")
    why = native.unsupported_reason(o)
    if why is None:
        if ctx is not None:
            native.prepare(ctx)  # built before the pool forks: workers inherit them
        return native.process_chunk
    if impl == "native":
        raise DataError(f"--implementation native: {why}")
    logger.info("preprocess: using the Python implementation (%s)", why)
    return process_chunk


def run_chunk(fn, ctx, task):
    """fn(ctx, task), and the Python reference for a chunk the native path hands back (None)."""
    r = fn(ctx, task)
    return process_chunk(ctx, task) if r is None else r


_POOL_WORKER = {}  # in a pool's worker process: (chunk function, ChunkContext), inherited through fork


def _pool_init(fn, ctx):
    _POOL_WORKER["job"] = (fn, ctx)


def _pool_chunk(task):
    fn, ctx = _POOL_WORKER["job"]
    return run_chunk(fn, ctx, task)


def _chunk_documents(o, path, chunk_idx, start, end, enc):
    docs, n_lines, report = read_chunk_documents(path, start, end, o.corpus_format, o.invalid_lines)
    out = []
    for first_line, sentences in docs:
        if o.data_processor == "cls":
            if chunk_idx == 0 and first_line == 1 and sentences[0].split("\t")[0].strip() == "label":
                continue  # header row
            try:
                label, a, b = parse_cls_line(sentences[0], first_line, path)
            except DataError as e:
                if o.invalid_lines == "error":
                    raise LineError(path, first_line, str(e).split(": ", 1)[1]) from None
                report.add("bad_columns", first_line)
                continue
            out.append((label, enc(a), enc(b) if b is not None else None))
        elif o.data_processor == "prefixlm":
            try:
                source, target = parse_prefixlm_line(sentences[0], first_line, path)
            except DataError as e:
                if o.invalid_lines == "error":
                    raise LineError(path, first_line, str(e).split(": ", 1)[1]) from None
                report.add("bad_columns", first_line)
                continue
            out.append((first_line, enc(source), enc(target)))
        else:
            encoded = [enc(s) for s in sentences]
            encoded = [s for s in encoded if s.ids]
            if encoded:
                out.append(encoded)
    return out, n_lines, report, len(docs)


def process_chunk(ctx, task):
    """One chunk -> flat numpy arrays of its instances (the unit the native path reimplements)."""
    chunk_idx, start, end = task
    o, enc, vocab = ctx.options, ctx.encoder, ctx.vocab
    try:
        docs, n_lines, report, n_docs = _chunk_documents(o, o.corpus_path, chunk_idx, start, end, enc)
    except LineError as e:
        return {"error": (e.line_no, e.message)}
    cls_id, sep_id = vocab.cls_id, vocab.sep_id
    special = {vocab.cls_id, vocab.sep_id, vocab.pad_id}
    proc = o.data_processor
    instances = []
    for dup in range(o.effective_dups):
        if proc in ("bert", "albert"):
            rng = SplitMix64(o.seed, PURPOSE_PAIRS, chunk_idx, dup)
            insts = sentence_pair_instances(docs, rng, o.seq_length, cls_id, sep_id, sop=proc == "albert",
                                            short_seq_prob=o.short_seq_prob)
        elif proc == "mlm":
            insts = mlm_instances(docs, o.seq_length, cls_id, sep_id)
        elif proc == "lm":
            insts = lm_instances(docs, o.seq_length, cls_id, sep_id)
        elif proc == "prefixlm":
            insts = prefixlm_instances(docs, o.seq_length, cls_id, sep_id, report if dup == 0 else None)
        elif proc == "t5":  # mlm's instances: the spans are made at training time (data/seq2seq.py)
            insts = mlm_instances(docs, o.seq_length, cls_id, sep_id)
        elif proc == "bart":
            rng = SplitMix64(o.seed, PURPOSE_SEQ2SEQ, chunk_idx, dup)
            insts = bart_instances(docs, rng, o.seq_length, cls_id, sep_id)
        elif proc == "gsg":
            rng = SplitMix64(o.seed, PURPOSE_SEQ2SEQ, chunk_idx, dup)
            insts = gsg_instances(docs, rng, o.seq_length, o.tgt_seq_length, o.sentence_selection_strategy, cls_id,
                                  sep_id, vocab.mask_id)
        else:
            insts = [cls_instance(a, b, label, o.seq_length, cls_id, sep_id) for label, a, b in docs]
        if o.static_masking:
            shape = INSTANCE_SHAPES[proc]
            for k, inst in enumerate(insts):
                rng = SplitMix64(o.seed, PURPOSE_STATIC_MASK, chunk_idx, dup, k)
                n = shape.maskable(len(inst.ids), inst.seg_a_len)  # a source-target instance: the source alone
                masked, pos, labels = mask_with(inst.ids[:n], inst.bits[:n], special, rng, len(vocab), vocab.mask_id,
                                                ctx.masking)
                instances.append((inst, masked + inst.ids[n:], pos, labels))
        else:
            instances.extend((inst, None, None, None) for inst in insts)
    return _pack(instances, n_lines, report, n_docs, end - start, o.static_masking)


def _pack(instances, n_lines, report, n_docs, n_bytes, static):
    ids, bits, lengths, seg_a, labels, mlen, mpos, mlab = [], [], [], [], [], [], [], []
    for inst, masked, pos, lab in instances:
        ids.extend(masked if static else inst.ids)
        bits.extend(inst.bits)
        lengths.append(len(inst.ids))
        seg_a.append(inst.seg_a_len)
        labels.append(inst.label)
        if static:
            mlen.append(len(pos))
            mpos.extend(pos)
            mlab.extend(lab)
    return {"ids": np.asarray(ids, np.int64), "bits": np.asarray(bits, np.uint8),
            "lengths": np.asarray(lengths, np.int64), "seg_a_len": np.asarray(seg_a, np.int32),
            "labels": np.asarray(labels, np.int32), "mask_lengths": np.asarray(mlen, np.int64),
            "mask_pos": np.asarray(mpos, np.int32), "mask_labels": np.asarray(mlab, np.int32),
            "lines": n_lines, "report": report, "documents": n_docs, "bytes": n_bytes}


# ---------------------------------------------------------------------------------------- driver
def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mask_id(o, vocab):
    """The mask token's id; None for a vocabulary without one (GPT-2's BPE) under a processor that does not
    mask, an error under one that does."""
    i = vocab.get(vocab.specials["mask"])
    if i is None and (o.uses_masks or o.data_processor == "gsg"):
        raise DataError(f"the {o.tokenizer} tokenizer's vocabulary has no mask token ({vocab.specials['mask']}), "
                        f"which the {o.data_processor} processor masks with; use the lm processor or a vocabulary "
                        "with a mask token")
    return i


def build_manifest(o, vocab, masking=None):
    m = {
        "data_processor": o.data_processor, "seq_length": o.seq_length, "dup_factor": o.effective_dups,
        "dynamic_masking": bool(o.dynamic_masking) if o.uses_masks else False,
        "whole_word_masking": bool(o.whole_word_masking), "mask_prob": o.mask_prob,
        "mask_decision": o.mask_decision, "seed": o.seed, "short_seq_prob": o.short_seq_prob,
        "tokenizer": o.tokenizer, "do_lower_case": o.do_lower_case,
        "vocab": {"sha256": vocab.sha256 if hasattr(vocab, "sha256") else None, "size": len(vocab),
                  "file": os.path.basename(o.vocab_path or o.spm_model_path or "")},
        "corpus": {"file": os.path.basename(o.corpus_path), "bytes": os.path.getsize(o.corpus_path),
                   "format": o.corpus_format},
        "invalid_lines_policy": o.invalid_lines, "chunk_bytes": o.chunk_bytes,
        "special_ids": {"pad": vocab.pad_id, "cls": vocab.cls_id, "sep": vocab.sep_id, "mask": _mask_id(o, vocab)},
        "segmenter": None,
        "masking": {"strategy": "mlm"},
    }
    if o.uses_masks:
        mo = masking_options(o) if masking is None else masking
        m["masking"] = mo.manifest()
        if mo.similar is not None and o.dynamic_masking:  # drawn at training time: the table travels along
            m["masking"]["similar_table"] = mo.similar.to_json()
    if o.whole_word_masking:
        m["segmenter"] = {"name": "jieba", "hmm": True, "dictionary_sha256": dictionary_hash(o.user_dict)}
    if o.data_processor == "t5":
        m["special_ids"]["sentinels"] = sentinel_ids(vocab)
    if INSTANCE_SHAPES[o.data_processor].target:  # the longest target an instance holds
        m["tgt_seq_length"] = o.tgt_seq_length if o.data_processor == "gsg" else o.seq_length
    if o.data_processor == "gsg":
        m["sentence_selection_strategy"] = o.sentence_selection_strategy
    return m


def _warn_long_lines(o, task, lines_before):
    """A line over LONG_LINE_BYTES (only a chunk that large can hold one, so others are not re-read)."""
    _, start, end = task
    if end - start <= corpus_mod.LONG_LINE_BYTES:
        return
    fate = ("split into --seq_length instances" if o.data_processor in ("mlm", "lm", "t5")
            else "cut to --seq_length tokens (the rest is dropped)")
    for line_no, n in corpus_mod.long_lines(o.corpus_path, start, end, corpus_mod.LONG_LINE_BYTES):
        logger.warning("%s:%d: a line of %.1f MB without a newline: it is one %s, %s; split the corpus into "
                       "lines if that is not intended", o.corpus_path, lines_before + line_no, n / 1e6,
                       "document" if o.corpus_format == "line" else "sentence", fate)


def _check_invalid_fraction(o, report, lines):
    """More than --max_invalid_fraction of the lines invalid: the wrong encoding or format, not a few bad
    lines; fail before writing a dataset of the rest."""
    bad = {k: report.counts[k] for k in corpus_mod.INVALID_KINDS if report.counts.get(k)}
    n = sum(bad.values())
    if lines and n > o.max_invalid_fraction * lines:
        kinds = ", ".join(f"{v} {k} (first at line {report.first[k][0]})" for k, v in bad.items())
        raise DataError(f"{o.corpus_path}: {n} of {lines} lines ({n / lines:.0%}) are invalid: {kinds}; more "
                        f"than --max_invalid_fraction {o.max_invalid_fraction}: is it UTF-8 text in the "
                        f"{o.corpus_format!r} format? (raise --max_invalid_fraction to keep the valid lines)")


SENTENCE_PAIR_PROCESSORS = {"bert": ("the actual next sentence", "a random sentence"),
                            "albert": ("in order", "swapped")}  # what labels 0 and 1 mean
DEGENERATE_PAIR_SHARE, DEGENERATE_MIN_INSTANCES = 0.95, 50


def _check_pair_labels(o, counts, docs):
    """The bert/albert processors on a corpus without multi-sentence documents (one paragraph per line; a file
    without blank lines, which is one document) give nearly every pair the same sentence-prediction label:
    the sp target then reaches ~100% accuracy learning nothing. Refused, with the fixes."""
    total = int(counts.sum())
    if total < DEGENERATE_MIN_INSTANCES or counts.max() < DEGENERATE_PAIR_SHARE * total:
        return
    meaning = SENTENCE_PAIR_PROCESSORS[o.data_processor][int(counts.argmax())]
    raise DataError(
        f"{o.corpus_path}: {int(counts.max())} of {total} sentence pairs ({counts.max() / total:.0%}) got the same "
        f"sentence-prediction label ({meaning}): read as {docs} document(s) in the {o.corpus_format!r} format, "
        f"the corpus has no documents of several sentences to pair, and the model's sp target would learn "
        f"nothing. The {o.data_processor} processor needs one sentence per line with a blank line between "
        "documents (--corpus_format bert); for one paragraph or document per line, use --data_processor mlm "
        "(masked LM only, as RoBERTa), or split the paragraphs into sentences first (finetune/tsv_to_corpus.py)")


def check_dataset_path(path):
    """Before any work: the dataset path names a file in a writable directory with room; the hidden
    .NAME.tmp-PID-* directories of killed runs writing the same NAME (their PID gone) are removed."""
    if not path:
        raise DataError("--dataset_path is required")
    if os.path.isdir(path):
        raise DataError(f"--dataset_path {path} is a directory: name the dataset file to write "
                        f"(e.g. {os.path.join(path, 'dataset.bin')})")
    out_dir = os.path.dirname(os.path.abspath(path))
    # a killed run's leftovers first: on a disk that its leftovers filled, the free-space check would fail
    remove_stale_tmp(out_dir, r"^\." + re.escape(os.path.basename(path)) + r"\.tmp-(?P<pid>\d+)-[0-9a-f]{8}$")
    check_writable(out_dir, "--dataset_path: the directory", error=DataError)


def run_preprocess(progress=True, **kw):
    """Preprocess a corpus into a dataset file. Keyword options as preprocess.py's flags (PreprocessOptions:
    the same defaults as the command)."""
    o = PreprocessOptions.from_flags(**kw)
    validate_options(o)
    check_dataset_path(o.dataset_path)
    ctx = _init_worker(o)
    vocab = ctx.vocab
    _mask_id(o, vocab)  # a masking processor needs a mask token: refused before any chunk
    if o.data_processor == "t5":
        sentinel_ids(vocab, o.vocab_path or o.spm_model_path or "the vocabulary")  # and t5 sentinels
    similar = ctx.masking.similar
    if similar is not None and similar.dropped_at:
        logger.warning("%s: %d candidate(s) of the similar-words file dropped (a candidate needs as many tokens as "
                       "its word, and must differ from it): %s", o.similar_words_path, similar.dropped,
                       describe_dropped(similar.dropped_at))
    bounds = chunk_boundaries(o.corpus_path, o.corpus_format, o.chunk_bytes)
    tasks = [(i, bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    chunk_fn = chunk_function(o, ctx)
    writer = DatasetWriter(o.dataset_path, len(vocab), static_masks=o.static_masking)
    report = LineReport()
    lines = docs = n_chunks = 0
    pair_labels = np.zeros(2, np.int64)  # bert/albert: sentence-prediction labels 0 and 1
    t0 = time.time()
    bar = None
    if progress:
        from tqdm import tqdm  # only a run with a progress bar needs it (start-up time)

        bar = tqdm(total=bounds[-1], unit="B", unit_scale=True, desc="preprocess", dynamic_ncols=True)
    pool = None
    try:
        if o.processes_num > 1 and len(tasks) > 1:
            pool = mp.get_context("fork").Pool(min(o.processes_num, len(tasks)), _pool_init, (chunk_fn, ctx))
            results = pool.imap(_pool_chunk, tasks)
        else:
            results = (run_chunk(chunk_fn, ctx, t) for t in tasks)
        for r in results:
            if "error" in r:
                line_no, msg = r["error"]
                raise DataError(f"{o.corpus_path}:{lines + line_no}: {msg}")
            writer.add(r["ids"], r["lengths"], r["seg_a_len"], r["labels"], r["bits"],
                       r["mask_lengths"], r["mask_pos"], r["mask_labels"])
            if o.data_processor in SENTENCE_PAIR_PROCESSORS and len(r["labels"]):
                pair_labels += np.bincount(np.asarray(r["labels"], np.int64), minlength=2)[:2]
            _warn_long_lines(o, tasks[n_chunks], lines)
            n_chunks += 1
            report.merge(r["report"], lines)
            lines += r["lines"]
            docs += r["documents"]
            if bar is not None:
                bar.update(r["bytes"])
        _check_invalid_fraction(o, report, lines)
        if writer.n_instances == 0:
            raise DataError(f"{o.corpus_path}: no training instances: the corpus is empty, every line was "
                            f"invalid, or documents are too short (format {o.corpus_format!r})")
        _check_pair_labels(o, pair_labels, docs)
        manifest = build_manifest(o, vocab, ctx.masking)
        manifest.update(lines=lines, documents=docs, problems=report.to_dict())
        manifest = writer.close(manifest)
    except BaseException as e:
        writer.abort()
        ose = first_os_error(e) if not isinstance(e, DataError) else None
        if ose is not None and ose.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
            raise DataError(f"could not write --dataset_path {o.dataset_path}: {os.strerror(ose.errno)} "
                            "(nothing was written; the partial files are removed)") from e
        raise
    finally:
        if pool is not None:
            pool.terminate()
        if bar is not None:
            bar.close()
    dt = time.time() - t0
    for kind, n in sorted(report.counts.items()):
        logger.warning("%s: %d line(s) with %s (first: %s)", o.corpus_path, n, kind,
                       ", ".join(map(str, report.first[kind][:5])))
    logger.info("%s: %d instances, %d tokens from %d documents, %.1f MB in %.1fs (%.2f MB/s)",
                o.dataset_path, manifest["instances"], manifest["tokens"], docs, bounds[-1] / 1e6, dt,
                bounds[-1] / 1e6 / max(dt, 1e-9))
    return manifest
