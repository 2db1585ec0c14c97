/* What the files of csrc/kernels share: the vector clones, and what one file gives the module table. */
#ifndef UER_LIKE_KERNELS_COMMON_H
#define UER_LIKE_KERNELS_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VECTOR_CLONES __attribute__((target_clones("default", "avx2", "arch=x86-64-v4")))
#else
#define VECTOR_CLONES
#endif

/* decoding.c */
extern const char matvec_doc[];
PyObject *matvec(PyObject *self, PyObject *args);

#endif
