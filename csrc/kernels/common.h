/* What the kernels in csrc/kernels share: the vector clones and work split over pthreads. */
#ifndef UER_LIKE_KERNELS_COMMON_H
#define UER_LIKE_KERNELS_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VECTOR_CLONES __attribute__((target_clones("default", "avx2", "arch=x86-64-v4")))
#else
#define VECTOR_CLONES
/* decoding.c */
extern const char matvec_doc[];
PyObject *matvec(PyObject *self, PyObject *args);

#endif

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

/* decoding.c */
extern const char matvec_doc[];
PyObject *matvec(PyObject *self, PyObject *args);

#endif
