/* matvec: a few rows times a float32 weight in nn.Linear's [out, in] layout, for incremental decoding
(uer_like/layers/decoding_linear.py).

A decoding step at batch 1 multiplies one row by every weight of the decoder and the vocabulary projection, so
it waits on reading the weights. torch 2.13's one-row products (addmm / mv through MKL) stream them at about
12 GB/s on one core of an AMD EPYC Zen 4, half what the core reads a buffer at. This kernel walks the weight
once, front to back, one output at a time (for every row of a few: the weight row comes from memory once, from
the L1 cache for the others): 64 running sums per output (four 512-bit vectors with AVX-512, eight
with AVX2), summed pairwise at the end of the row. The summation order is fixed by the code, not the vector
width, so every clone gives the same bits; it differs from MKL's order (results agree to float rounding).
Measured with the weights of a bart-base decoder (198 MB, AMD EPYC Zen 4, one thread): 7.9 ms against
torch's 15.8 ms on huge pages, 11.8 against 16.9 ms on the parameters as allocated. */
#include "common.h"

#include <stdint.h>
#include <string.h>

#define LANES 64

/* one output: the dot product of a weight row and x, in the fixed order described above */
static inline float dot_row(const float *restrict r, const float *restrict x, int64_t in) {
    float acc[LANES];
    memset(acc, 0, sizeof acc);
    int64_t i = 0;
    for (; i + LANES <= in; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += r[i + l] * x[i + l];
    for (int l = 0; i + l < in; l++) acc[l] += r[i + l] * x[i + l];
    for (int h = LANES / 2; h >= 1; h /= 2)
        for (int l = 0; l < h; l++) acc[l] += acc[l + h];
    return acc[0];
}

/* outputs [begin, end) of every x row: each weight row is read from memory once and from the L1 cache for the
   other x rows, so a row's result does not depend on how many rows share the call */
VECTOR_CLONES
static void matvec_rows(const float *restrict w, const float *restrict x, const float *restrict b,
                        float *restrict y, int64_t rows, int64_t out, int64_t in, int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; o++) {
        const float *restrict r = w + o * in;
        for (int64_t k = 0; k < rows; k++) {
            float s = dot_row(r, x + k * in, in);
            y[k * out + o] = b ? s + b[o] : s;
        }
    }
}

typedef struct {
    const float *w, *x, *b;
    float *y;
    int64_t rows, out, in, begin, end;
} MatvecJob;

static void *run_matvec(void *arg) {
    MatvecJob *J = (MatvecJob *)arg;
    matvec_rows(J->w, J->x, J->b, J->y, J->rows, J->out, J->in, J->begin, J->end);
    return NULL;
}

/* threads for a weight of n values: one per 8M (32 MB of float32, a vocabulary projection); below that a
   pthread's start costs more than the second core's share of the memory bandwidth gives */
static int matvec_threads(int64_t n, int threads) {
    int64_t most = n / 8388608 + 1;
    if (threads > most) threads = (int)most;
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    return threads;
}

const char matvec_doc[] =
    "matvec(w, x, b, y, rows, out, in, threads)\n\n"
    "Pointers (int addresses of contiguous CPU float32 buffers): y[k, o] = sum_i w[o, i] * x[k, i] (+ b[o] when\n"
    "b is not 0) for k in [0, rows), o in [0, out): w is [out, in] (nn.Linear's layout), x [rows, in], y\n"
    "[rows, out], which must not overlap w, x or b. Each y[k] is the same whatever rows is.";

PyObject *matvec(PyObject *self, PyObject *args) {
    unsigned long long w, x, b, y;
    long long rows, out, in;
    int threads, failed;
    if (!PyArg_ParseTuple(args, "KKKKLLLi", &w, &x, &b, &y, &rows, &out, &in, &threads)) return NULL;
    if (out <= 0 || rows <= 0) Py_RETURN_NONE;
    if (in < 0) {
        PyErr_SetString(PyExc_ValueError, "matvec: in must not be negative");
        return NULL;
    }
    threads = matvec_threads(out * in, threads);
    MatvecJob jobs[64];
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < threads; t++) {
        MatvecJob *J = &jobs[t];
        J->w = (const float *)(uintptr_t)w;
        J->x = (const float *)(uintptr_t)x;
        J->b = (const float *)(uintptr_t)b;
        J->y = (float *)(uintptr_t)y;
        J->rows = rows;
        J->out = out;
        J->in = in;
        J->begin = out * t / threads;
        J->end = out * (t + 1) / threads;
    }
    failed = run_parallel(run_matvec, jobs, sizeof(MatvecJob), threads);
    Py_END_ALLOW_THREADS
    return parallel_result(failed, "matvec");
}
