"""Host memory that stays flat over a long CPU run: oneDNN's per-shape caches capped; and glibc's malloc told
to keep a step's freed memory for the next step (`keep_freed_memory`, below).

On CPU torch runs bf16 matrix products, GELU and a few other ops through oneDNN, which compiles a primitive (JIT
code: 256 KB buffers for a matmul) per tensor shape and keeps it in two caches of 1,024 entries each: oneDNN's
primitive cache (ONEDNN_PRIMITIVE_CACHE_CAPACITY) and ideep's computation cache (LRU_CACHE_CAPACITY). Pretraining
changes shapes every step (batches are padded to their longest instance, the encoder computes on the real tokens
only, the vocabulary head on the masked positions), so from the first few dozen steps on, both caches insert and
evict entries at every step. Each entry is a set of long-lived allocations made in the middle of a step, among the
step's temporaries (1 to 20 MB each, allocated and freed every step); glibc's malloc places the entries in the
holes the temporaries leave, those holes can then no longer coalesce, and the heap grows for as long as the run
lasts. BERT-tiny (`--config bert/tiny_config.json`, batch 32 x 128, bf16) went from 1.0 GB RSS at step 50 to
2.1 GB at step 600, of which 0.63 GB in use (0.49 GB of it the two caches, flat once they were full) and the rest
free but fragmented. No leak, and no glibc setting cured it at full speed (benchmarks/README.md, "Memory over a
long run").

With both caches capped at CACHE_CAPACITY entries the step's allocations coalesce again: RSS stays flat (about
0.6 GB for that run) at the same speed. A BERT-tiny step makes about 60 oneDNN calls with some 20 distinct shapes
(the layers share them), so within a step primitives are still reused, and across steps the shapes change anyway;
a primitive takes about 0.2 ms to create.

The two caches read their capacity once, at their first use: `cap_shape_caches()` must run before the process's
first oneDNN primitive (the trainer calls it first thing). Values the environment already sets are kept, so
`ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 LRU_CACHE_CAPACITY=1024` restores oneDNN's defaults (benchmarks/rss.py
--baseline). Where torch does not compute through oneDNN (training on a GPU) they go unread."""
import ctypes
import logging
import os
import sys

logger = logging.getLogger("uer_like")

CACHE_CAPACITY = 64
# the variable oneDNN reads (DNNL_ is its older spelling, still honoured) and ideep's
ONEDNN_VARS = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY")
IDEEP_VAR = "LRU_CACHE_CAPACITY"


def cap_shape_caches(capacity=CACHE_CAPACITY, environ=None):
    """Caps oneDNN's primitive cache and ideep's computation cache at `capacity` entries, where the environment
    does not set them already. Returns {variable: value in effect} for the two caches."""
    env = os.environ if environ is None else environ
    effective, changed = {}, []
    onednn = next((v for v in ONEDNN_VARS if env.get(v)), None)
    if onednn is None:
        env[ONEDNN_VARS[0]] = str(capacity)
        onednn = ONEDNN_VARS[0]
        changed.append(onednn)
    effective[onednn] = env[onednn]
    if not env.get(IDEEP_VAR):
        env[IDEEP_VAR] = str(capacity)
        changed.append(IDEEP_VAR)
    effective[IDEEP_VAR] = env[IDEEP_VAR]
    logger.debug("oneDNN shape caches: %s (%s)", ", ".join(f"{k}={v}" for k, v in effective.items()),
                 f"set here: {', '.join(changed)}" if changed else "as the environment sets them")
    return effective


# ---------------------------------------------------------------------------------------------------- malloc
# Freed memory kept for the next step (glibc): `keep_freed_memory`, which the training loop calls.
#
# A training step allocates and frees the same buffers every step: activations, their gradients, and the
# parameters' gradients (zero_grad(set_to_none=True) frees them; the word-embedding gradient of a BERT with
# Google's Chinese vocabulary is a fresh 21 MB [21128, hidden] buffer each step). With glibc's defaults, freed
# memory at the top of the heap above the trim threshold goes back to the kernel (at most twice the largest
# mmapped block freed so far: a few dozen MB) and comes back at the next step one zero-filled page at a time:
# BERT-mini fine-tuning (batch 32, bf16) took about 2,700 minor page faults a step (benchmarks/step_faults.py).
#
# Two bounded settings (mallopt):
# - M_MMAP_THRESHOLD = 32 MiB: blocks below it come from the heap and are reused. 32 MiB is glibc's own ceiling
#   for the threshold it raises by itself (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit); larger blocks are still
#   mmapped and go back to the kernel when freed.
# - M_TRIM_THRESHOLD = 256 MiB: at most that much free memory is kept at the top of the heap; a step's
#   temporaries of BERT-mini reach past 128 MiB (the faults stay at 1,900 a step with 128 MiB, 180 with 256).
# Setting either turns off glibc's dynamic threshold; the trim threshold alone, with the mmap threshold back at
# its 128 KiB start, mmaps every large block (70,000 faults a step), so the trim threshold is set only after the
# mmap threshold was. Values the environment sets (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_,
# GLIBC_TUNABLES with glibc.malloc) are left alone; other C libraries are left alone.

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_kept = None  # the outcome of the process's first call


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only (musl has mallopt without these parameters)
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory(mmap_threshold=MMAP_THRESHOLD, trim_threshold=TRIM_THRESHOLD, environ=None):
    """Sets glibc's mmap and trim thresholds (see above) once per process, unless the environment sets malloc's
    thresholds itself or the C library is not glibc. -> whether they are set by this call or an earlier one."""
    global _kept
    if _kept is not None:
        return _kept
    env = os.environ if environ is None else environ
    if any(env.get(v) for v in MALLOC_ENV) or "glibc.malloc" in env.get("GLIBC_TUNABLES", ""):
        _kept = False
        logger.debug("malloc thresholds: as the environment sets them")
        return _kept
    libc = _glibc()
    if libc is None:
        _kept = False
        return _kept
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _kept = bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
    logger.debug("malloc thresholds: mmap %d, trim %d (%s)", mmap_threshold, trim_threshold,
                 "set" if _kept else "refused")
    return _kept
