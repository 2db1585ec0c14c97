/*
 * segment.h -- jieba-exact Chinese word segmentation in plain C (no Python.h).
 *
 * Reproduces jieba 0.42.1 `Tokenizer.cut(text, cut_all=False, HMM=True/False)`:
 *   - block splitting with re_han_default / re_skip_default,
 *   - prefix dictionary (including the freq-0 prefixes), DAG, max-probability
 *     route with log(freq) - log(total) and Python tuple-max tie breaking,
 *   - __cut_DAG (HMM) with finalseg.cut (re_han / re_skip + Viterbi) and
 *     __cut_DAG_NO_HMM (re_eng runs),
 *   - Force_Split_Words (words added with freq 0).
 *
 * Everything works on Unicode code points (uint32_t). The segmentation result
 * is returned as token END offsets: jieba's tokens always partition the input,
 * so token i spans [ends[i-1], ends[i]) with ends[-1] == 0.
 *
 * Thread safety: a finished jseg_dict may be used by any number of threads
 * concurrently through jseg_cut (each with its own jseg_work). Mutating calls
 * (load / add_word / set_hmm / force_split) need exclusive access.
 */
#ifndef UER_LIKE_SEGMENT_H
#define UER_LIKE_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JSEG_MIN_FLOAT (-3.14e100)

/* HMM state ids, ordered like the characters 'B' < 'E' < 'M' < 'S' so that
 * Python's max over (prob, state) tuples breaks ties toward the larger id. */
enum { JSEG_B = 0, JSEG_E = 1, JSEG_M = 2, JSEG_S = 3 };

/* finalseg only runs the Viterbi on re_han = [\u4E00-\u9FD5] characters. */
#define JSEG_HAN_LO 0x4E00u
#define JSEG_HAN_HI 0x9FD5u

typedef struct jseg_dict jseg_dict;

/* Reusable scratch memory for jseg_cut (one per thread). Zero-initialise it
 * (JSEG_WORK_INIT) and release it with jseg_work_free. */
typedef struct jseg_work {
    double *route_p;    /* best log prob from position i to the block end */
    size_t *route_x;    /* end index (inclusive) of the best first word */
    size_t cap_route;
    double *vit;        /* Viterbi: rolling probabilities, 2 x 4 */
    uint8_t *back;      /* Viterbi back pointers, 4 per char */
    uint8_t *states;    /* Viterbi decoded path */
    size_t cap_vit;
    uint32_t *cps;      /* jseg_cut_utf8: decoded text */
    size_t *offs;       /* jseg_cut_utf8: byte offset of every code point */
    size_t *cends;      /* jseg_cut_utf8: token ends in code points */
    size_t cap_text;
} jseg_work;

#define JSEG_WORK_INIT {NULL, NULL, 0, NULL, NULL, NULL, 0, NULL, NULL, NULL, 0}

void jseg_work_free(jseg_work *w);

/* ---- dictionary ------------------------------------------------------- */

jseg_dict *jseg_dict_new(void);
void jseg_dict_free(jseg_dict *d);

/* Load a dictionary in jieba's main-dictionary format (Tokenizer.gen_pfdict):
 * each line is stripped of ASCII whitespace, split on ' ', first field the
 * word, second an integer frequency (later duplicates override the frequency,
 * but every occurrence is added to the total). Returns 0 on success, -1 on
 * a malformed entry (jieba's ValueError) or out of memory, -2 when the file
 * cannot be read; err receives a message. */
int jseg_dict_load_file(jseg_dict *d, const char *path, char *err, size_t errlen);

/* Load from a memory buffer (same format). */
int jseg_dict_load_buffer(jseg_dict *d, const char *buf, size_t len, const char *name,
                          char *err, size_t errlen);

/* jieba Tokenizer.add_word(word, freq) with an explicit freq: sets FREQ[word],
 * total += freq, adds missing prefixes with freq 0, and marks the word as
 * force-split when freq == 0. Returns 0, or -1 on out of memory. */
int jseg_dict_add_word(jseg_dict *d, const uint32_t *w, size_t n, int64_t freq);

/* FREQ.get(word): returns 1 and stores the freq if the word (or prefix) is in
 * the prefix dictionary, 0 otherwise. */
int jseg_dict_get_freq(const jseg_dict *d, const uint32_t *w, size_t n, int64_t *freq);

/* finalseg.add_force_split(word) */
int jseg_dict_force_split(jseg_dict *d, const uint32_t *w, size_t n);

/* Build the read-optimised copy of the trie used by jseg_cut (about 2-3x
 * faster than the mutable one). Any later mutation invalidates it, and
 * jseg_cut silently falls back to the mutable trie until the next freeze.
 * Returns 0 / -1 (oom; the dictionary stays usable). */
int jseg_dict_freeze(jseg_dict *d);
int jseg_dict_is_frozen(const jseg_dict *d);

int64_t jseg_dict_total(const jseg_dict *d);
size_t jseg_dict_num_nodes(const jseg_dict *d);

/* HMM tables. start[4], trans[4*4] (trans[from*4+to]) indexed by JSEG_B..S,
 * missing entries must be JSEG_MIN_FLOAT. emit for one state: n pairs
 * (code point, log prob); entries outside [JSEG_HAN_LO, JSEG_HAN_HI] are
 * ignored (never queried). Returns 0 / -1 (oom). */
int jseg_dict_set_hmm_start_trans(jseg_dict *d, const double start[4], const double trans[16]);
int jseg_dict_set_hmm_emit(jseg_dict *d, int state, const uint32_t *cps, const double *probs,
                           size_t n);
int jseg_dict_has_hmm(const jseg_dict *d);

/* ---- segmentation ----------------------------------------------------- */

/* Segment cps[0..n) like jieba.lcut(text, HMM=hmm). Writes token end offsets
 * into ends (capacity >= n) and returns the number of tokens, or (size_t)-1
 * on out of memory. hmm requires the HMM tables to be set. Does not touch any
 * Python object: call it with the GIL released. */
size_t jseg_cut(const jseg_dict *d, const uint32_t *cps, size_t n, int hmm, jseg_work *w,
                size_t *ends);

/* Same on UTF-8 text s[0..len): decoded like Python's
 * bytes.decode('utf-8', 'surrogateescape') (invalid bytes become single-byte
 * tokens, never an error). Writes token end BYTE offsets into byte_ends
 * (capacity >= len) and returns the number of tokens, or (size_t)-1 on out of
 * memory. Scratch buffers live in w (reused across calls). */
size_t jseg_cut_utf8(const jseg_dict *d, const char *s, size_t len, int hmm, jseg_work *w,
                     size_t *byte_ends);

/* ---- character classes (exposed for tests / other tokenizers) ---------- */

/* re_han_default = [\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-] */
static inline int jseg_is_han_default(uint32_t c)
{
    if (c < 128) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '+' || c == '#' || c == '&' || c == '.' || c == '_' || c == '%' || c == '-';
    }
    return c >= JSEG_HAN_LO && c <= JSEG_HAN_HI;
}

static inline int jseg_is_ascii_alnum(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Python str.isspace() == regex \s for str patterns. */
static inline int jseg_is_space(uint32_t c)
{
    if (c < 128) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
        return 1;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

#ifdef __cplusplus
}
#endif
#endif /* UER_LIKE_SEGMENT_H */
