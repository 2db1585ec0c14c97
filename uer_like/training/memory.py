"""Host memory that stays flat over a long CPU run: oneDNN's per-shape caches capped.

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
import logging
import os

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
