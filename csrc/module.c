/*
 * module.c -- CPython bindings for uer_like._native.
 *
 * Layout (keep it this way when adding tokenizers):
 *   1. shared helpers (text -> code points, token lists)
 *   2. one section per native component (types + functions)
 *   3. the module method table `native_methods` and PyInit__native, which
 *      registers every type.
 *
 * Segmentation (csrc/segment.[ch]) is exposed as the type
 * `_native.JiebaSegmenter`; see its docstrings below.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "native_pre.h"
#include "segment.h"
#include "utf8.h"
#include "wordpiece.h"

/* ====================================================================== */
/* 1. shared helpers                                                      */
/* ====================================================================== */

/* A text converted to code points. For str input cps are read from the
 * canonical (UCS1/2/4) representation; for bytes input they are decoded from
 * UTF-8 with surrogateescape semantics and offs holds the byte offsets. */
typedef struct {
    uint32_t *cps;
    size_t *offs;  /* bytes input only: n + 1 byte offsets */
    size_t n;
    int is_bytes;
    const char *bytes; /* bytes input: the data */
} native_text;

static void native_text_free(native_text *t)
{
    PyMem_RawFree(t->cps);
    PyMem_RawFree(t->offs);
    t->cps = NULL;
    t->offs = NULL;
}

/* Fill t from a str or bytes-like object (bytes/bytearray). The caller keeps
 * obj alive. Returns 0, or -1 with an exception set. */
static int native_text_from(PyObject *obj, native_text *t)
{
    memset(t, 0, sizeof(*t));
    if (PyUnicode_Check(obj)) {
        if (PyUnicode_READY(obj) < 0) return -1;
        Py_ssize_t n = PyUnicode_GET_LENGTH(obj);
        int kind = PyUnicode_KIND(obj);
        const void *data = PyUnicode_DATA(obj);
        t->n = (size_t)n;
        t->cps = (uint32_t *)PyMem_RawMalloc(((size_t)n + 1) * sizeof(uint32_t));
        if (!t->cps) {
            PyErr_NoMemory();
            return -1;
        }
        Py_BEGIN_ALLOW_THREADS
        if (kind == PyUnicode_1BYTE_KIND) {
            const Py_UCS1 *s = (const Py_UCS1 *)data;
            for (Py_ssize_t i = 0; i < n; i++) t->cps[i] = s[i];
        } else if (kind == PyUnicode_2BYTE_KIND) {
            const Py_UCS2 *s = (const Py_UCS2 *)data;
            for (Py_ssize_t i = 0; i < n; i++) t->cps[i] = s[i];
        } else {
            memcpy(t->cps, data, (size_t)n * sizeof(uint32_t));
        }
        Py_END_ALLOW_THREADS
        return 0;
    }
    if (PyBytes_Check(obj) || PyByteArray_Check(obj)) {
        const char *s;
        Py_ssize_t len;
        if (PyBytes_Check(obj)) {
            s = PyBytes_AS_STRING(obj);
            len = PyBytes_GET_SIZE(obj);
        } else {
            s = PyByteArray_AS_STRING(obj);
            len = PyByteArray_GET_SIZE(obj);
        }
        t->is_bytes = 1;
        t->bytes = s;
        t->cps = (uint32_t *)PyMem_RawMalloc(((size_t)len + 1) * sizeof(uint32_t));
        t->offs = (size_t *)PyMem_RawMalloc(((size_t)len + 1) * sizeof(size_t));
        if (!t->cps || !t->offs) {
            native_text_free(t);
            PyErr_NoMemory();
            return -1;
        }
        if (t->is_bytes && PyBytes_Check(obj)) {
            Py_BEGIN_ALLOW_THREADS
            t->n = utf8_decode_se((const unsigned char *)s, (size_t)len, t->cps, t->offs);
            Py_END_ALLOW_THREADS
        } else {
            /* a bytearray may be resized by another thread: keep the GIL (and
             * note t->bytes is only valid while it is not resized) */
            t->n = utf8_decode_se((const unsigned char *)s, (size_t)len, t->cps, t->offs);
        }
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "expected str or bytes, got %.100s", Py_TYPE(obj)->tp_name);
    return -1;
}

/* One-character str objects for the BMP, created on first use and kept for
 * the life of the process (at most 65536 small objects): single characters
 * are ~half of all segmentation tokens, and sharing them saves an allocation
 * each. Only touched with the GIL held. */
static PyObject *native_char_cache[0x10000];

static inline PyObject *native_char(uint32_t c)
{
    if (c < 0x10000) {
        PyObject *o = native_char_cache[c];
        if (!o) {
            o = PyUnicode_FromOrdinal((int)c);
            if (!o) return NULL;
            native_char_cache[c] = o;
        }
        Py_INCREF(o);
        return o;
    }
    return PyUnicode_FromOrdinal((int)c);
}

/* Build a list of tokens; token i spans [ends[i-1], ends[i]) code points. */
static PyObject *native_token_list(PyObject *src, const native_text *t, const size_t *ends,
                                   size_t nt)
{
    PyObject *list = PyList_New((Py_ssize_t)nt);
    if (!list) return NULL;
    size_t start = 0;
    for (size_t i = 0; i < nt; i++) {
        size_t end = ends[i];
        PyObject *tok;
        if (t->is_bytes)
            tok = PyBytes_FromStringAndSize(t->bytes + t->offs[start],
                                            (Py_ssize_t)(t->offs[end] - t->offs[start]));
        else if (end - start == 1)
            tok = native_char(t->cps[start]);
        else
            tok = PyUnicode_Substring(src, (Py_ssize_t)start, (Py_ssize_t)end);
        if (!tok) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, tok);
        start = end;
    }
    return list;
}

/* Code points of a str (for dictionary words). Caller frees with PyMem_Free. */
static uint32_t *native_str_cps(PyObject *s, size_t *n)
{
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(s)->tp_name);
        return NULL;
    }
    Py_UCS4 *u = PyUnicode_AsUCS4Copy(s);
    if (!u) return NULL;
    *n = (size_t)PyUnicode_GET_LENGTH(s);
    return (uint32_t *)u;
}

/* ====================================================================== */
/* 2a. segmentation: JiebaSegmenter                                       */
/* ====================================================================== */

typedef struct {
    PyObject_HEAD
    jseg_dict *dict;
    Py_ssize_t busy;    /* cuts in progress (GIL released); blocks mutation */
    int work_in_use;    /* the cached work arena is taken */
    jseg_work work;
} JiebaSegmenterObject;

static int jseg_obj_init(JiebaSegmenterObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"dict_path", NULL};
    PyObject *path = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:JiebaSegmenter", kwlist, &path)) return -1;
    if (self->dict) {
        PyErr_SetString(PyExc_RuntimeError, "JiebaSegmenter already initialised");
        return -1;
    }
    self->dict = jseg_dict_new();
    if (!self->dict) {
        PyErr_NoMemory();
        return -1;
    }
    if (path != Py_None) {
        PyObject *b = NULL;
        if (!PyUnicode_FSConverter(path, &b)) return -1;
        char err[512];
        int rc;
        const char *p = PyBytes_AS_STRING(b);
        Py_BEGIN_ALLOW_THREADS
        rc = jseg_dict_load_file(self->dict, p, err, sizeof(err));
        Py_END_ALLOW_THREADS
        Py_DECREF(b);
        if (rc < 0) {
            PyErr_SetString(rc == -2 ? PyExc_OSError : PyExc_ValueError, err);
            return -1;
        }
        if (jseg_dict_freeze(self->dict) < 0) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static void jseg_obj_dealloc(JiebaSegmenterObject *self)
{
    jseg_dict_free(self->dict);
    jseg_work_free(&self->work);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int jseg_obj_ready(JiebaSegmenterObject *self, int mutate)
{
    if (!self->dict) {
        PyErr_SetString(PyExc_RuntimeError, "JiebaSegmenter not initialised");
        return -1;
    }
    if (mutate && self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "JiebaSegmenter is being used by another thread; cannot modify it");
        return -1;
    }
    return 0;
}

static PyObject *jseg_obj_add_word(JiebaSegmenterObject *self, PyObject *args)
{
    PyObject *word;
    long long freq;
    if (!PyArg_ParseTuple(args, "UL:add_word", &word, &freq)) return NULL;
    if (jseg_obj_ready(self, 1) < 0) return NULL;
    size_t n;
    uint32_t *w = native_str_cps(word, &n);
    if (!w) return NULL;
    int rc = jseg_dict_add_word(self->dict, w, n, (int64_t)freq);
    PyMem_Free(w);
    if (rc < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *jseg_obj_force_split(JiebaSegmenterObject *self, PyObject *word)
{
    if (jseg_obj_ready(self, 1) < 0) return NULL;
    size_t n;
    uint32_t *w = native_str_cps(word, &n);
    if (!w) return NULL;
    int rc = jseg_dict_force_split(self->dict, w, n);
    PyMem_Free(w);
    if (rc < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *jseg_obj_freeze(JiebaSegmenterObject *self, PyObject *unused)
{
    (void)unused;
    if (jseg_obj_ready(self, 1) < 0) return NULL;
    if (jseg_dict_freeze(self->dict) < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *jseg_obj_frozen(JiebaSegmenterObject *self, void *closure)
{
    (void)closure;
    if (jseg_obj_ready(self, 0) < 0) return NULL;
    return PyBool_FromLong(jseg_dict_is_frozen(self->dict));
}

static PyObject *jseg_obj_get_freq(JiebaSegmenterObject *self, PyObject *word)
{
    if (jseg_obj_ready(self, 0) < 0) return NULL;
    size_t n;
    uint32_t *w = native_str_cps(word, &n);
    if (!w) return NULL;
    int64_t f = 0;
    int found = jseg_dict_get_freq(self->dict, w, n, &f);
    PyMem_Free(w);
    if (!found) Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)f);
}

static PyObject *jseg_obj_total(JiebaSegmenterObject *self, void *closure)
{
    (void)closure;
    if (jseg_obj_ready(self, 0) < 0) return NULL;
    return PyLong_FromLongLong((long long)jseg_dict_total(self->dict));
}

static PyObject *jseg_obj_num_nodes(JiebaSegmenterObject *self, void *closure)
{
    (void)closure;
    if (jseg_obj_ready(self, 0) < 0) return NULL;
    return PyLong_FromSize_t(jseg_dict_num_nodes(self->dict));
}

static int state_index(PyObject *key)
{
    if (!PyUnicode_Check(key) || PyUnicode_GET_LENGTH(key) != 1) return -1;
    switch (PyUnicode_READ_CHAR(key, 0)) {
    case 'B': return JSEG_B;
    case 'E': return JSEG_E;
    case 'M': return JSEG_M;
    case 'S': return JSEG_S;
    default: return -1;
    }
}

/* set_hmm(start_P, trans_P, emit_P): jieba.finalseg's dicts. */
static PyObject *jseg_obj_set_hmm(JiebaSegmenterObject *self, PyObject *args)
{
    PyObject *start, *trans, *emit;
    if (!PyArg_ParseTuple(args, "O!O!O!:set_hmm", &PyDict_Type, &start, &PyDict_Type, &trans,
                          &PyDict_Type, &emit))
        return NULL;
    if (jseg_obj_ready(self, 1) < 0) return NULL;
    double st[4], tr[16];
    for (int i = 0; i < 4; i++) st[i] = JSEG_MIN_FLOAT;
    for (int i = 0; i < 16; i++) tr[i] = JSEG_MIN_FLOAT;
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(start, &pos, &k, &v)) {
        int s = state_index(k);
        if (s < 0) continue;
        double x = PyFloat_AsDouble(v);
        if (x == -1.0 && PyErr_Occurred()) return NULL;
        st[s] = x;
    }
    pos = 0;
    while (PyDict_Next(trans, &pos, &k, &v)) {
        int a = state_index(k);
        if (a < 0) continue;
        if (!PyDict_Check(v)) {
            PyErr_SetString(PyExc_TypeError, "trans_P values must be dicts");
            return NULL;
        }
        PyObject *k2, *v2;
        Py_ssize_t pos2 = 0;
        while (PyDict_Next(v, &pos2, &k2, &v2)) {
            int b = state_index(k2);
            if (b < 0) continue;
            double x = PyFloat_AsDouble(v2);
            if (x == -1.0 && PyErr_Occurred()) return NULL;
            tr[a * 4 + b] = x;
        }
    }
    jseg_dict_set_hmm_start_trans(self->dict, st, tr);
    pos = 0;
    while (PyDict_Next(emit, &pos, &k, &v)) {
        int s = state_index(k);
        if (s < 0) continue;
        if (!PyDict_Check(v)) {
            PyErr_SetString(PyExc_TypeError, "emit_P values must be dicts");
            return NULL;
        }
        Py_ssize_t m = PyDict_Size(v), j = 0;
        uint32_t *cps = (uint32_t *)PyMem_Malloc(((size_t)m + 1) * sizeof(uint32_t));
        double *pr = (double *)PyMem_Malloc(((size_t)m + 1) * sizeof(double));
        if (!cps || !pr) {
            PyMem_Free(cps);
            PyMem_Free(pr);
            return PyErr_NoMemory();
        }
        PyObject *k2, *v2;
        Py_ssize_t pos2 = 0;
        while (PyDict_Next(v, &pos2, &k2, &v2)) {
            if (!PyUnicode_Check(k2) || PyUnicode_GET_LENGTH(k2) != 1) continue;
            double x = PyFloat_AsDouble(v2);
            if (x == -1.0 && PyErr_Occurred()) {
                PyMem_Free(cps);
                PyMem_Free(pr);
                return NULL;
            }
            cps[j] = (uint32_t)PyUnicode_READ_CHAR(k2, 0);
            pr[j] = x;
            j++;
        }
        int rc = jseg_dict_set_hmm_emit(self->dict, s, cps, pr, (size_t)j);
        PyMem_Free(cps);
        PyMem_Free(pr);
        if (rc < 0) return PyErr_NoMemory();
    }
    if (!jseg_dict_has_hmm(self->dict)) {
        /* no emission entries at all: install the all-MIN_FLOAT table */
        if (jseg_dict_set_hmm_emit(self->dict, 0, NULL, NULL, 0) < 0) return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

/* Run jseg_cut / jseg_cut_utf8 with the GIL released, using the object's
 * cached work arena when it is free. Returns the token count or (size_t)-1. */
static size_t jseg_run(JiebaSegmenterObject *self, const uint32_t *cps, size_t n,
                       const char *bytes, size_t len, int hmm, size_t *ends)
{
    jseg_work local = JSEG_WORK_INIT, *w;
    int own = !self->work_in_use;
    if (own) {
        self->work_in_use = 1;
        w = &self->work;
    } else {
        w = &local;
    }
    self->busy++;
    size_t nt;
    Py_BEGIN_ALLOW_THREADS
    if (bytes)
        nt = jseg_cut_utf8(self->dict, bytes, len, hmm, w, ends);
    else
        nt = jseg_cut(self->dict, cps, n, hmm, w, ends);
    Py_END_ALLOW_THREADS
    self->busy--;
    if (own)
        self->work_in_use = 0;
    else
        jseg_work_free(&local);
    return nt;
}

static PyObject *size_list(const size_t *v, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list) return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *x = PyLong_FromSize_t(v[i]);
        if (!x) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

/* Segment one text object (str, bytes or bytearray); returns a new list of
 * tokens (or of word end offsets when want_ends), or NULL. */
static PyObject *jseg_cut_one(JiebaSegmenterObject *self, PyObject *text, int hmm, int want_ends)
{
    PyObject *res = NULL;
    if (PyBytes_Check(text) || PyByteArray_Check(text)) {
        PyObject *b = text;
        if (PyByteArray_Check(text)) {
            /* another thread could resize it while the GIL is released: copy */
            b = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(text), PyByteArray_GET_SIZE(text));
            if (!b) return NULL;
        } else {
            Py_INCREF(b);
        }
        const char *s = PyBytes_AS_STRING(b);
        size_t len = (size_t)PyBytes_GET_SIZE(b);
        size_t *ends = (size_t *)PyMem_RawMalloc((len + 1) * sizeof(size_t));
        if (!ends) {
            Py_DECREF(b);
            return PyErr_NoMemory();
        }
        size_t nt = jseg_run(self, NULL, 0, s, len, hmm, ends);
        if (nt == (size_t)-1) {
            PyErr_NoMemory();
        } else if (want_ends) {
            res = size_list(ends, nt);
        } else if ((res = PyList_New((Py_ssize_t)nt)) != NULL) {
            size_t start = 0;
            for (size_t i = 0; i < nt; i++) {
                PyObject *tok = PyBytes_FromStringAndSize(s + start, (Py_ssize_t)(ends[i] - start));
                if (!tok) {
                    Py_CLEAR(res);
                    break;
                }
                PyList_SET_ITEM(res, (Py_ssize_t)i, tok);
                start = ends[i];
            }
        }
        PyMem_RawFree(ends);
        Py_DECREF(b);
        return res;
    }
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "expected str or bytes, got %.100s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    native_text t;
    if (native_text_from(text, &t) < 0) return NULL;
    size_t *ends = (size_t *)PyMem_RawMalloc((t.n + 1) * sizeof(size_t));
    if (!ends) {
        native_text_free(&t);
        return PyErr_NoMemory();
    }
    size_t nt = jseg_run(self, t.cps, t.n, NULL, 0, hmm, ends);
    if (nt == (size_t)-1)
        PyErr_NoMemory();
    else if (want_ends)
        res = size_list(ends, nt);
    else
        res = native_token_list(text, &t, ends, nt);
    PyMem_RawFree(ends);
    native_text_free(&t);
    return res;
}

static int hmm_ok(JiebaSegmenterObject *self, int hmm)
{
    if (hmm && !jseg_dict_has_hmm(self->dict)) {
        PyErr_SetString(PyExc_RuntimeError, "HMM tables not set: call set_hmm() first");
        return -1;
    }
    return 0;
}

static PyObject *jseg_obj_cut(JiebaSegmenterObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"text", "hmm", NULL};
    PyObject *text;
    int hmm = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|p:cut", kwlist, &text, &hmm)) return NULL;
    if (jseg_obj_ready(self, 0) < 0 || hmm_ok(self, hmm) < 0) return NULL;
    return jseg_cut_one(self, text, hmm, 0);
}

static PyObject *jseg_obj_cut_ends(JiebaSegmenterObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"text", "hmm", NULL};
    PyObject *text;
    int hmm = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|p:cut_ends", kwlist, &text, &hmm))
        return NULL;
    if (jseg_obj_ready(self, 0) < 0 || hmm_ok(self, hmm) < 0) return NULL;
    return jseg_cut_one(self, text, hmm, 1);
}

static PyObject *jseg_obj_cut_lines(JiebaSegmenterObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"lines", "hmm", NULL};
    PyObject *lines;
    int hmm = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|p:cut_lines", kwlist, &lines, &hmm))
        return NULL;
    if (jseg_obj_ready(self, 0) < 0 || hmm_ok(self, hmm) < 0) return NULL;
    if (PyUnicode_Check(lines) || PyBytes_Check(lines) || PyByteArray_Check(lines)) {
        PyErr_SetString(PyExc_TypeError, "cut_lines() expects a sequence of str or bytes, not a single text");
        return NULL;
    }
    /* a private tuple: the caller's list may change while the GIL is released */
    PyObject *seq = PySequence_Tuple(lines);
    if (!seq) return NULL;
    Py_ssize_t m = PyTuple_GET_SIZE(seq);
    PyObject *out = PyList_New(m);
    if (!out) {
        Py_DECREF(seq);
        return NULL;
    }
    /* The result lists only hold str/bytes, so they cannot form cycles: pause
     * the cyclic GC while creating them (it would otherwise rescan the growing
     * result over and over). */
    int gc_was_enabled = PyGC_Disable();
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *r = jseg_cut_one(self, PyTuple_GET_ITEM(seq, i), hmm, 0);
        if (!r) {
            if (gc_was_enabled) PyGC_Enable();
            Py_DECREF(out);
            Py_DECREF(seq);
            return NULL;
        }
        PyList_SET_ITEM(out, i, r);
    }
    if (gc_was_enabled) PyGC_Enable();
    Py_DECREF(seq);
    return out;
}

static PyMethodDef jseg_obj_methods[] = {
    {"cut", (PyCFunction)(void (*)(void))jseg_obj_cut, METH_VARARGS | METH_KEYWORDS,
     "cut(text, hmm=True) -> list\n\n"
     "jieba.lcut(text, HMM=hmm). text: str -> list[str]; bytes -> list[bytes] (UTF-8 decoded\n"
     "with surrogateescape, tokens are slices of the input bytes)."},
    {"cut_ends", (PyCFunction)(void (*)(void))jseg_obj_cut_ends, METH_VARARGS | METH_KEYWORDS,
     "cut_ends(text, hmm=True) -> list[int]: end offset of every word of cut(text, hmm)\n"
     "(code point offsets for str, byte offsets for bytes); words partition the text."},
    {"cut_lines", (PyCFunction)(void (*)(void))jseg_obj_cut_lines, METH_VARARGS | METH_KEYWORDS,
     "cut_lines(lines, hmm=True) -> list[list]: cut() over a sequence."},
    {"add_word", (PyCFunction)jseg_obj_add_word, METH_VARARGS,
     "add_word(word: str, freq: int): jieba Tokenizer.add_word with an explicit freq\n"
     "(freq 0 also marks the word force-split, like finalseg.add_force_split)."},
    {"force_split", (PyCFunction)jseg_obj_force_split, METH_O,
     "force_split(word: str): finalseg.add_force_split(word)."},
    {"freeze", (PyCFunction)jseg_obj_freeze, METH_NOARGS,
     "freeze(): build the read-optimised trie (done by __init__; call it again after\n"
     "add_word/force_split, otherwise cut() uses the slower mutable trie)."},
    {"get_freq", (PyCFunction)jseg_obj_get_freq, METH_O,
     "get_freq(word: str) -> int | None: FREQ.get(word)."},
    {"set_hmm", (PyCFunction)jseg_obj_set_hmm, METH_VARARGS,
     "set_hmm(start_P, trans_P, emit_P): install jieba.finalseg's HMM tables (dicts)."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef jseg_obj_getset[] = {
    {"total", (getter)jseg_obj_total, NULL, "sum of all frequencies (jieba Tokenizer.total)", NULL},
    {"num_nodes", (getter)jseg_obj_num_nodes, NULL, "trie nodes (== len(FREQ) + 1)", NULL},
    {"frozen", (getter)jseg_obj_frozen, NULL, "whether the read-optimised trie is current", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject JiebaSegmenterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "uer_like._native.JiebaSegmenter",
    .tp_basicsize = sizeof(JiebaSegmenterObject),
    .tp_dealloc = (destructor)jseg_obj_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "JiebaSegmenter(dict_path=None)\n\n"
              "jieba-exact segmenter. dict_path: a dictionary in jieba's dict.txt format\n"
              "(word freq [tag] per line). Call set_hmm(start_P, trans_P, emit_P) before\n"
              "cutting with hmm=True.",
    .tp_methods = jseg_obj_methods,
    .tp_getset = jseg_obj_getset,
    .tp_init = (initproc)jseg_obj_init,
    .tp_new = PyType_GenericNew,
};

/* Borrowed by the native preprocessor (instances.c): the segmenter's dictionary for cuts made with
 * the GIL released; mutation is refused until native_segmenter_release. */
const jseg_dict *native_segmenter_acquire(PyObject *obj)
{
    if (!PyObject_TypeCheck(obj, &JiebaSegmenterType)) {
        PyErr_Format(PyExc_TypeError, "expected a JiebaSegmenter, got %.100s", Py_TYPE(obj)->tp_name);
        return NULL;
    }
    JiebaSegmenterObject *self = (JiebaSegmenterObject *)obj;
    if (jseg_obj_ready(self, 0) < 0 || hmm_ok(self, 1) < 0) return NULL;
    self->busy++;
    return self->dict;
}

void native_segmenter_release(PyObject *obj) { ((JiebaSegmenterObject *)obj)->busy--; }

/* ====================================================================== */
/* 3. module                                                              */
/* ====================================================================== */

static PyMethodDef native_methods[] = {
    /* module-level functions of every component go here, grouped by component */
    /* native preprocessor (instances.c) */
    {"preprocess_chunk", (PyCFunction)(void (*)(void))native_preprocess_chunk, METH_VARARGS | METH_KEYWORDS,
     native_preprocess_chunk_doc},
    {"mask_instances", (PyCFunction)(void (*)(void))native_mask_instances, METH_VARARGS | METH_KEYWORDS,
     native_mask_instances_doc},
    {"similar_table", (PyCFunction)native_similar_table, METH_VARARGS, native_similar_table_doc},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    "uer_like._native",
    "Native (C) text preprocessing for uer_like: jieba-exact segmentation (JiebaSegmenter), the BERT\n"
    "tokenizer (WordPiece) and the per-chunk preprocessor (preprocess_chunk, mask_instances).",
    -1,
    native_methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
    PyObject *m = PyModule_Create(&native_module);
    if (!m) return NULL;
    /* segmentation */
    if (PyType_Ready(&JiebaSegmenterType) < 0) goto fail;
    Py_INCREF(&JiebaSegmenterType);
    if (PyModule_AddObject(m, "JiebaSegmenter", (PyObject *)&JiebaSegmenterType) < 0) {
        Py_DECREF(&JiebaSegmenterType);
        goto fail;
    }
    /* native preprocessor */
    if (PyType_Ready(&NativeWordPieceType) < 0) goto fail;
    Py_INCREF(&NativeWordPieceType);
    if (PyModule_AddObject(m, "WordPiece", (PyObject *)&NativeWordPieceType) < 0) {
        Py_DECREF(&NativeWordPieceType);
        goto fail;
    }
    /* the tokenizer matches Python's tokenizer only under the same unicodedata version (uer_like.data.native) */
    if (PyModule_AddStringConstant(m, "UNIDATA_VERSION", wp_unidata_version()) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
