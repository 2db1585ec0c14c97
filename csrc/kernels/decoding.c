/* matvec: a few rows times a float32 weight in nn.Linear's [out, in] layout, for incremental decoding
(uer_like/layers/decoding_linear.py).

A decoding step at batch 1 multiplies one row by every weight of the decoder and the vocabulary projection, so
it waits on reading the weights. torch 2.13's one-row products (addmm / mv through MKL) stream them at about
12 GB/s on one core of an AMD EPYC Zen 4, half what the core reads a buffer at. This kernel walks the weight
once, front to back, one output at a time (for every row of a few: the weight row comes from memory once, from
the L1 cache for the others): 64 running sums per output (four 512-bit vectors with AVX-512, eight
with AVX2), summed pairwise at the end of the row; it differs from MKL's order (results agree to float
rounding). Measured on the weights of a bart-base decoder as allocated (48 matrices, 198 MB; AMD EPYC Zen 4,
one thread, benchmarks/decoding_matvec.py): 9.3-9.5 ms against F.linear's 16.2-19.1 ms; the
vocabulary projection (21,128 x 768, 65 MB) 2.6-2.9 against 6.0-6.2 ms. */
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

const char matvec_doc[] =
    "matvec(w, x, b, y, rows, out, in)\n\n"
    "Pointers (int addresses of contiguous CPU float32 buffers): y[k, o] = sum_i w[o, i] * x[k, i] (+ b[o] when\n"
    "b is not 0) for k in [0, rows), o in [0, out): w is [out, in] (nn.Linear's layout), x [rows, in], y\n"
    "[rows, out], which must not overlap w, x or b. Each y[k] is the same whatever rows is. One thread: a second\n"
    "one beside torch's OpenMP workers gained nothing (memory bandwidth, not arithmetic, bounds it).";

PyObject *matvec(PyObject *self, PyObject *args) {
    unsigned long long w, x, b, y;
    long long rows, out, in;
    if (!PyArg_ParseTuple(args, "KKKKLLL", &w, &x, &b, &y, &rows, &out, &in)) return NULL;
    if (out <= 0 || rows <= 0) Py_RETURN_NONE;
    if (in < 0) {
        PyErr_SetString(PyExc_ValueError, "matvec: in must not be negative");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    matvec_rows((const float *)(uintptr_t)w, (const float *)(uintptr_t)x, (const float *)(uintptr_t)b,
                (float *)(uintptr_t)y, rows, out, in, 0, out);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}
