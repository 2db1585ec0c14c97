/*
 * native_pre.h -- the native preprocessor (csrc/wordpiece.c, csrc/instances.c) as seen by module.c.
 */
#ifndef UER_LIKE_NATIVE_PRE_H
#define UER_LIKE_NATIVE_PRE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "segment.h"

/* instances.c */
extern PyTypeObject NativeWordPieceType;
PyObject *native_preprocess_chunk(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *native_mask_instances(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *native_similar_table(PyObject *self, PyObject *args);
extern const char native_similar_table_doc[];
extern const char native_preprocess_chunk_doc[];
extern const char native_mask_instances_doc[];

/* module.c: borrow the dictionary of a JiebaSegmenter for a cut with the GIL released (blocks
 * mutation until returned). NULL with an exception set when obj is not a usable segmenter. */
const jseg_dict *native_segmenter_acquire(PyObject *obj);
void native_segmenter_release(PyObject *obj);

#endif /* UER_LIKE_NATIVE_PRE_H */
