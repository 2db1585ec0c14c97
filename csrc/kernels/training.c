/* Native training kernels (CPU) for uer_like: uer_like._kernels.

softmax_xent: the row-wise softmax cross-entropy over vocabulary logits, in place, for
uer_like.layers.cross_entropy. For each row r of logits [rows, V] (float32, or bfloat16 as uint16 bits),
with x = logits[r] (+ bias):
  loss[r]    = logsumexp(x) - x[label]            (0 for ignored rows)
  correct[r] = x[label] >= max(x)                 (0 for ignored rows)
  and, when gradients are wanted, logits[r] is overwritten with
  g[r]       = (softmax(x) - onehot(label)) * scale[r]      (zeros for ignored rows)
  rounded to the logits' dtype once (round to nearest even for bfloat16), and gbias += g[r] in float32.
Everything is computed in float32, one row at a time in a buffer that stays in the L2 cache: the logits
are read once and the gradient written once, where the same steps as torch ops read and write the whole
[rows, V] block about ten times (and twice more to convert bfloat16). exp is a Cody-Waite reduction and a
degree-6 polynomial (within 2 ulp of expf on the range used, x - max <= 0).

dropout: for uer_like.layers.dropout, the keep mask, the zeroing and the scaling in one pass (see below).

gelu_tanh: GPT-2's GELU (tanh approximation) and its gradient, for uer_like.layers.activations (see below).

matvec (decoding.c): a few rows times a float32 weight, for uer_like.layers.decoding_linear.

Work is split over threads (pthreads; torch's thread count). Built as its own extension with the
floating-point flags that let the compiler vectorise the reductions (reassociation; no -ffast-math at link
time, so the process's denormal mode is left alone; no contraction into fused multiply-adds, so every clone
rounds alike), and on x86-64 with clones for AVX2 and x86-64-v4 (AVX-512 F, BW, DQ, VL: 16-bit lanes and 64-bit
multiplies in 512-bit vectors) picked at run time. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Runs fn(jobs[t]) for t in [0, threads): thread 0's share on the calling thread, the others on pthreads
   (a share whose thread cannot be started runs here). Returns 0, or -1 if a thread could not be joined. */
static int run_parallel(void *(*fn)(void *), void *jobs, size_t job_size, int threads) {
    pthread_t tids[64];
    int started[64] = {0};
    int failed = 0;
    for (int t = 1; t < threads; t++) {
        void *job = (char *)jobs + (size_t)t * job_size;
        if (pthread_create(&tids[t], NULL, fn, job) == 0)
            started[t] = 1;
        else
            fn(job);
    }
    fn(jobs);
    for (int t = 1; t < threads; t++)
        if (started[t] && pthread_join(tids[t], NULL) != 0) failed = 1;
    return failed ? -1 : 0;
}

/* What a kernel returns after run_parallel: None, or NULL with a RuntimeError naming the kernel. */
static PyObject *parallel_result(int failed, const char *kernel) {
    if (failed) {
        PyErr_Format(PyExc_RuntimeError, "%s: a worker thread could not be joined", kernel);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* threads for an elementwise pass over n values: one per 2M values. These kernels run between torch ops, whose
   OpenMP workers keep spinning on the other cores for a while after each op; a pthread started beside them
   waits for a core. Measured right after a bf16 matmul (AMD EPYC Zen 4, 2 cores, torch 2.13): dropout on
   [1300, 256] bf16 took 141 us on one thread and 220 us on two, on [1300, 1024] 603 and 772 us; its backward
   62 against 145 and 375 against 516 us. */
static int elementwise_threads(long long n, int threads) {
    long long most = n / 2097152 + 1;
    if (threads > most) threads = (int)most;
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    return threads;
}

typedef struct {
    void *logits;
    int bf16;
    int64_t rows, vocab;
    const float *bias;
    const int64_t *labels;
    int64_t ignore_index;
    const float *scale;
    float *loss;
    uint8_t *correct;
    int need_grad;
    float *gbias; /* this thread's own accumulator (or NULL) */
    float *buf;   /* this thread's row buffer, vocab floats (bfloat16 input) */
    int64_t begin, end;
} Job;

static inline float bf16_to_f32(uint16_t h) {
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    b += 0x7fffu + ((b >> 16) & 1u); /* round to nearest even (finite values) */
    return (uint16_t)(b >> 16);
}

static inline float exp_nonpositive(float x) {
    /* exp(x) for x <= 0; below -87 it underflows to (nearly) 0 */
    x = x < -87.0f ? -87.0f : x;
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t e = (uint32_t)((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, 4);
    return p * s;
}

VECTOR_CLONES
static float load_row(float *dst, const void *src, int bf16, const float *restrict bias, int64_t v) {
    float mx = -FLT_MAX;
    if (bf16) {
        const uint16_t *s = (const uint16_t *)src;
        if (bias)
            for (int64_t j = 0; j < v; j++) dst[j] = bf16_to_f32(s[j]) + bias[j];
        else
            for (int64_t j = 0; j < v; j++) dst[j] = bf16_to_f32(s[j]);
    } else if (bias) {
        const float *s = (const float *)src;
        for (int64_t j = 0; j < v; j++) dst[j] = s[j] + bias[j];
    }
    for (int64_t j = 0; j < v; j++) mx = dst[j] > mx ? dst[j] : mx;
    return mx;
}

VECTOR_CLONES
static float exp_row(float *restrict x, float mx, int64_t v) {
    float sum = 0.0f;
    for (int64_t j = 0; j < v; j++) {
        float e = exp_nonpositive(x[j] - mx);
        x[j] = e;
        sum += e;
    }
    return sum;
}

VECTOR_CLONES
static void write_grad(void *dst, int bf16, float *restrict e, float mul, int64_t v, float *restrict gbias) {
    /* e[j] * mul is softmax x scale; the caller has already subtracted scale at the label in e */
    if (gbias)
        for (int64_t j = 0; j < v; j++) gbias[j] += e[j] * mul;
    if (bf16) {
        uint16_t *d = (uint16_t *)dst;
        for (int64_t j = 0; j < v; j++) d[j] = f32_to_bf16(e[j] * mul);
    } else {
        float *d = (float *)dst;
        for (int64_t j = 0; j < v; j++) d[j] = e[j] * mul;
    }
}

static void *run_rows(void *arg) {
    Job *J = (Job *)arg;
    const int64_t v = J->vocab;
    const size_t esize = J->bf16 ? 2 : 4;
    for (int64_t r = J->begin; r < J->end; r++) {
        char *row = (char *)J->logits + (size_t)r * (size_t)v * esize;
        int64_t y = J->labels[r];
        int valid = y != J->ignore_index;
        if (!valid) {
            J->loss[r] = 0.0f;
            J->correct[r] = 0;
            if (J->need_grad) memset(row, 0, (size_t)v * esize);
            continue;
        }
        float *x = J->bf16 ? J->buf : (float *)row;
        const void *src = row;
        float mx;
        if (J->bf16 || J->bias)
            mx = load_row(x, src, J->bf16, J->bias, v);
        else
            mx = load_row(x, x, 0, NULL, v);
        float picked = x[y];
        float sum = exp_row(x, mx, v);
        J->loss[r] = logf(sum) + mx - picked;
        J->correct[r] = picked >= mx;
        if (J->need_grad) {
            float s = J->scale[r];
            float mul = s / sum;
            /* (e_y / sum - 1) * s = (e_y - sum) * mul */
            x[y] -= sum;
            write_grad(row, J->bf16, x, mul, v, J->gbias);
        }
    }
    return NULL;
}

static const char softmax_xent_doc[] =
    "softmax_xent(logits, bf16, rows, vocab, bias, labels, ignore_index, scale, loss, correct, need_grad,\n"
    "             gbias, threads)\n\n"
    "Pointers (int addresses of contiguous CPU buffers; 0 for none): logits [rows, vocab] float32 or\n"
    "bfloat16 (bf16=1), overwritten with the scaled gradient when need_grad; bias [vocab] float32;\n"
    "labels [rows] int64; scale [rows] float32; loss [rows] float32 and correct [rows] uint8 (outputs);\n"
    "gbias [vocab] float32, accumulated. Labels must lie in [0, vocab) unless ignored.";

static PyObject *softmax_xent(PyObject *self, PyObject *args) {
    unsigned long long logits, bias, labels, scale, loss, correct, gbias;
    int bf16, need_grad, threads;
    long long rows, vocab, ignore_index;
    if (!PyArg_ParseTuple(args, "KiLLKKLKKKiKi", &logits, &bf16, &rows, &vocab, &bias, &labels, &ignore_index,
                          &scale, &loss, &correct, &need_grad, &gbias, &threads))
        return NULL;
    if (rows <= 0 || vocab <= 0) Py_RETURN_NONE;
    if (threads < 1) threads = 1;
    if (threads > rows) threads = (int)rows;
    if (threads > 64) threads = 64;
    Job jobs[64];
    float *mem = NULL;
    int per_thread = (bf16 ? 1 : 0) + ((gbias && need_grad) ? 1 : 0);
    if (per_thread) {
        mem = (float *)calloc((size_t)threads * (size_t)per_thread * (size_t)vocab, sizeof(float));
        if (!mem) return PyErr_NoMemory();
    }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < threads; t++) {
        Job *J = &jobs[t];
        float *m = mem ? mem + (size_t)t * (size_t)per_thread * (size_t)vocab : NULL;
        J->logits = (void *)(uintptr_t)logits;
        J->bf16 = bf16;
        J->rows = rows;
        J->vocab = vocab;
        J->bias = bias ? (const float *)(uintptr_t)bias : NULL;
        J->labels = (const int64_t *)(uintptr_t)labels;
        J->ignore_index = ignore_index;
        J->scale = (const float *)(uintptr_t)scale;
        J->loss = (float *)(uintptr_t)loss;
        J->correct = (uint8_t *)(uintptr_t)correct;
        J->need_grad = need_grad;
        J->buf = bf16 ? m : NULL;
        J->gbias = (gbias && need_grad) ? (bf16 ? m + vocab : m) : NULL;
        J->begin = rows * t / threads;
        J->end = rows * (t + 1) / threads;
    }
    failed = run_parallel(run_rows, jobs, sizeof(Job), threads);
    if (gbias && need_grad) {
        float *out = (float *)(uintptr_t)gbias;
        for (int t = 0; t < threads; t++) {
            const float *acc = jobs[t].gbias;
            for (long long j = 0; j < vocab; j++) out[j] += acc[j];
        }
    }
    Py_END_ALLOW_THREADS
    free(mem);
    return parallel_result(failed, "softmax_xent");
}

/* ------------------------------------------------------------------------------------------------
   Dropout: keep decisions from a counter-based generator (splitmix64 of seed + k x golden gamma gives 64
   bits for elements 4k..4k+3, 16 bits each; element i is dropped when its 16 bits are below `threshold`,
   p quantised to 1/65536), so the mask depends on the seed and the element index only, not on the number
   of threads. forward: y = x * scale where kept, 0 where dropped, and mask[i] = kept; backward:
   dx = dy * scale where kept. bfloat16 values are multiplied in float32 and rounded to nearest even once,
   as torch multiplies a bfloat16 tensor by a scalar. */

typedef struct {
    const void *x;
    void *y;
    uint8_t *mask;
    int bf16, backward;
    uint64_t seed;
    uint32_t threshold;
    float scale;
    int64_t begin, end;
} DropJob;

static inline uint64_t splitmix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

VECTOR_CLONES
static void make_mask(uint8_t *restrict mask, uint64_t seed, uint32_t threshold, int64_t begin, int64_t end) {
    /* begin is a multiple of 4. Four mask bytes per hash, packed into one 32-bit store (little-endian: byte q is
       element 4k + q), so that the loop over k vectorises; the bytes are those of the element-wise recipe. */
    int64_t k = begin / 4, full = end / 4;
    for (; k < full; k++) {
        uint64_t h = splitmix64(seed + (uint64_t)k * 0x9e3779b97f4a7c15ULL);
        uint32_t word = (uint32_t)((h & 0xffffu) >= threshold) | (uint32_t)(((h >> 16) & 0xffffu) >= threshold) << 8
                        | (uint32_t)(((h >> 32) & 0xffffu) >= threshold) << 16
                        | (uint32_t)(((h >> 48) & 0xffffu) >= threshold) << 24;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        ((uint32_t *)mask)[k] = word; /* mask comes from torch's allocator: 4-byte aligned at least */
#else
        for (int q = 0; q < 4; q++) mask[4 * k + q] = (uint8_t)(word >> (8 * q));
#endif
    }
    if (4 * k < end) { /* the last, partial group */
        uint64_t h = splitmix64(seed + (uint64_t)k * 0x9e3779b97f4a7c15ULL);
        for (int q = 0; 4 * k + q < end; q++) mask[4 * k + q] = (uint32_t)((h >> (16 * q)) & 0xffffu) >= threshold;
    }
}

VECTOR_CLONES
static void apply_mask(void *y, const void *x, const uint8_t *restrict mask, int bf16, float scale, int64_t begin,
                       int64_t end) {
    /* branch-free (vectorised): the scaled value's bits ANDed with all ones where kept, zeros (+0) where not */
    if (bf16) {
        const uint16_t *s = (const uint16_t *)x;
        uint16_t *d = (uint16_t *)y;
        for (int64_t i = begin; i < end; i++)
            d[i] = f32_to_bf16(bf16_to_f32(s[i]) * scale) & (uint16_t)(0u - (uint32_t)mask[i]);
    } else {
        const float *s = (const float *)x;
        uint32_t *d = (uint32_t *)y;
        for (int64_t i = begin; i < end; i++) {
            float v = s[i] * scale;
            uint32_t b;
            memcpy(&b, &v, 4);
            d[i] = b & (0u - (uint32_t)mask[i]);
        }
    }
}

static void *run_dropout(void *arg) {
    DropJob *J = (DropJob *)arg;
    if (!J->backward) make_mask(J->mask, J->seed, J->threshold, J->begin, J->end);
    apply_mask(J->y, J->x, J->mask, J->bf16, J->scale, J->begin, J->end);
    return NULL;
}

static const char dropout_doc[] =
    "dropout(x, y, mask, bf16, n, backward, seed, threshold, scale, threads)\n\n"
    "Pointers (int addresses of contiguous CPU buffers): x and y [n] float32 or bfloat16 (bf16=1; y may be x),\n"
    "mask [n] uint8. Forward (backward=0) draws mask from seed (1 = kept: 16 random bits >= threshold) and\n"
    "writes y = x * scale where kept, 0 elsewhere; backward (backward=1) reads mask and writes the same.";

static PyObject *dropout(PyObject *self, PyObject *args) {
    unsigned long long x, y, mask, seed;
    int bf16, backward, threads;
    long long n;
    unsigned int threshold;
    float scale;
    if (!PyArg_ParseTuple(args, "KKKiLiKIfi", &x, &y, &mask, &bf16, &n, &backward, &seed, &threshold, &scale,
                          &threads))
        return NULL;
    if (n <= 0) Py_RETURN_NONE;
    threads = elementwise_threads(n, threads);
    DropJob jobs[64];
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < threads; t++) {
        DropJob *J = &jobs[t];
        J->x = (const void *)(uintptr_t)x;
        J->y = (void *)(uintptr_t)y;
        J->mask = (uint8_t *)(uintptr_t)mask;
        J->bf16 = bf16;
        J->backward = backward;
        J->seed = seed;
        J->threshold = threshold;
        J->scale = scale;
        J->begin = (n * t / threads) & ~3LL;
        J->end = t == threads - 1 ? n : (n * (t + 1) / threads) & ~3LL;
    }
    failed = run_parallel(run_dropout, jobs, sizeof(DropJob), threads);
    Py_END_ALLOW_THREADS
    return parallel_result(failed, "dropout");
}

/* ------------------------------------------------------------------------------------------------
   GELU, tanh approximation (GPT-2's gelu_new, UER's gelu_fast), forward and backward in one pass each:
     gelu(x)  = 0.5 x (1 + tanh(u)) = x s,   u = c (x + a x^3),  s = sigmoid(2u) = 0.5 (1 + tanh(u))
     gelu'(x) = s + x s (1 - s) 2 c (1 + 3 a x^2)
   with c = sqrt(2 / pi), a = 0.044715, s from exp_nonpositive (exp(-|2u|), so it never overflows). In
   float32 throughout; bfloat16 values are widened, and the result rounded to nearest even once, as torch's
   bfloat16 GELU does. */

typedef struct {
    const void *x, *grad;
    void *out;
    int bf16, backward;
    int64_t begin, end;
} GeluJob;

static inline float gelu_sigmoid(float x, float *dsdx_over_s1s) {
    const float c = 0.7978845608028654f, a = 0.044715f;
    float x2 = x * x;
    float z = 2.0f * c * (x + a * x2 * x); /* 2u */
    float a_z = fabsf(z);
    float e = a_z < 87.0f ? exp_nonpositive(-a_z) : 0.0f; /* exp(-|z|) in [0, 1]: 0 where exp's clamp would not be */
    float r = 1.0f / (1.0f + e);
    float s = z >= 0.0f ? r : e * r;       /* sigmoid(z) */
    *dsdx_over_s1s = 2.0f * c * (1.0f + 3.0f * a * x2);
    return s;
}

VECTOR_CLONES
static void gelu_forward_f32(float *restrict y, const float *restrict x, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
        float d;
        float s = gelu_sigmoid(x[i], &d);
        y[i] = x[i] * s;
    }
}

VECTOR_CLONES
static void gelu_backward_f32(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t begin,
                              int64_t end) {
    for (int64_t i = begin; i < end; i++) {
        float d;
        float s = gelu_sigmoid(x[i], &d);
        dx[i] = dy[i] * (s + x[i] * s * (1.0f - s) * d);
    }
}

VECTOR_CLONES
static void gelu_forward_bf16(uint16_t *restrict y, const uint16_t *restrict x, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
        float d, v = bf16_to_f32(x[i]);
        float s = gelu_sigmoid(v, &d);
        y[i] = f32_to_bf16(v * s);
    }
}

VECTOR_CLONES
static void gelu_backward_bf16(uint16_t *restrict dx, const uint16_t *restrict dy, const uint16_t *restrict x,
                               int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
        float d, v = bf16_to_f32(x[i]);
        float s = gelu_sigmoid(v, &d);
        dx[i] = f32_to_bf16(bf16_to_f32(dy[i]) * (s + v * s * (1.0f - s) * d));
    }
}

static void *run_gelu(void *arg) {
    GeluJob *J = (GeluJob *)arg;
    if (J->bf16) {
        if (J->backward)
            gelu_backward_bf16(J->out, J->grad, J->x, J->begin, J->end);
        else
            gelu_forward_bf16(J->out, J->x, J->begin, J->end);
    } else if (J->backward) {
        gelu_backward_f32(J->out, J->grad, J->x, J->begin, J->end);
    } else {
        gelu_forward_f32(J->out, J->x, J->begin, J->end);
    }
    return NULL;
}

static const char gelu_tanh_doc[] =
    "gelu_tanh(x, grad, out, bf16, n, threads)\n\n"
    "Pointers (int addresses of contiguous CPU buffers of n float32 values, or bfloat16 with bf16=1): with\n"
    "grad 0, out = gelu(x) (tanh approximation); otherwise out = grad * gelu'(x). out must not overlap x or grad.";

static PyObject *gelu_tanh(PyObject *self, PyObject *args) {
    unsigned long long x, grad, out;
    int bf16, threads;
    long long n;
    if (!PyArg_ParseTuple(args, "KKKiLi", &x, &grad, &out, &bf16, &n, &threads)) return NULL;
    if (n <= 0) Py_RETURN_NONE;
    threads = elementwise_threads(n, threads);
    GeluJob jobs[64];
    int failed;
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < threads; t++) {
        GeluJob *J = &jobs[t];
        J->x = (const void *)(uintptr_t)x;
        J->grad = (const void *)(uintptr_t)grad;
        J->out = (void *)(uintptr_t)out;
        J->bf16 = bf16;
        J->backward = grad != 0;
        J->begin = n * t / threads;
        J->end = n * (t + 1) / threads;
    }
    failed = run_parallel(run_gelu, jobs, sizeof(GeluJob), threads);
    Py_END_ALLOW_THREADS
    return parallel_result(failed, "gelu_tanh");
}

static PyMethodDef kernel_methods[] = {
    {"softmax_xent", softmax_xent, METH_VARARGS, softmax_xent_doc},
    {"dropout", dropout, METH_VARARGS, dropout_doc},
    {"gelu_tanh", gelu_tanh, METH_VARARGS, gelu_tanh_doc},
    {"matvec", matvec, METH_VARARGS, matvec_doc},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT, "uer_like._kernels",
    "Native kernels for uer_like (CPU): the row-wise softmax cross-entropy of the vocabulary head,\n"
    "dropout and the tanh-approximation GELU for training; a few rows times a weight for decoding.",
    -1, kernel_methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&kernel_module); }
