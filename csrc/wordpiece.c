/*
 * wordpiece.c -- BERT BasicTokenizer + WordPiece (see wordpiece.h).
 */
#include "wordpiece.h"

#include <stdlib.h>
#include <string.h>

#ifdef UER_LIKE_UNICODE_TABLES /* setup.py: tables generated for the building Python's Unicode version */
#include UER_LIKE_UNICODE_TABLES
#else
#include "unicode_tables.h"
#endif
#include "utf8.h"

#define WP_MAX_WORD_CHARS 100 /* WordpieceTokenizer.max_input_chars_per_word */

/* ---------------------------------------------------------------- vocabulary hash map */
typedef struct {
    uint64_t hash;
    size_t off; /* key bytes in pool */
    uint32_t len;
    int32_t id; /* -1: empty slot */
} wp_slot;

struct wp_vocab {
    wp_slot *slots;
    size_t mask; /* capacity - 1 (power of two) */
    size_t count;
    char *pool;
    size_t pool_len, pool_cap;
    int32_t unk;
    size_t max_chars; /* longest token, in code points */
    int32_t *bmp;     /* id of every one-character BMP token (-1: none): skips hashing for CJK */
};

static inline uint64_t fnv_step(uint64_t h, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001B3ULL;
    }
    return h;
}
#define FNV_INIT 0xCBF29CE484222325ULL

static inline uint64_t fnv_final(uint64_t h)
{
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 32);
}

wp_vocab *wp_vocab_new(void)
{
    wp_vocab *v = (wp_vocab *)calloc(1, sizeof(wp_vocab));
    if (!v) return NULL;
    v->mask = 1023;
    v->slots = (wp_slot *)malloc((v->mask + 1) * sizeof(wp_slot));
    if (!v->slots) {
        free(v);
        return NULL;
    }
    for (size_t i = 0; i <= v->mask; i++) v->slots[i].id = -1;
    v->bmp = (int32_t *)malloc(0x10000 * sizeof(int32_t));
    if (!v->bmp) {
        free(v->slots);
        free(v);
        return NULL;
    }
    for (size_t i = 0; i < 0x10000; i++) v->bmp[i] = -1;
    v->unk = 0;
    return v;
}

void wp_vocab_free(wp_vocab *v)
{
    if (!v) return;
    free(v->slots);
    free(v->pool);
    free(v->bmp);
    free(v);
}

void wp_vocab_set_unk(wp_vocab *v, int32_t unk_id) { v->unk = unk_id; }
size_t wp_vocab_size(const wp_vocab *v) { return v->count; }

static int wp_grow(wp_vocab *v)
{
    size_t ncap = (v->mask + 1) * 2;
    wp_slot *ns = (wp_slot *)malloc(ncap * sizeof(wp_slot));
    if (!ns) return -1;
    for (size_t i = 0; i < ncap; i++) ns[i].id = -1;
    for (size_t i = 0; i <= v->mask; i++) {
        if (v->slots[i].id < 0) continue;
        size_t j = (size_t)v->slots[i].hash & (ncap - 1);
        while (ns[j].id >= 0) j = (j + 1) & (ncap - 1);
        ns[j] = v->slots[i];
    }
    free(v->slots);
    v->slots = ns;
    v->mask = ncap - 1;
    return 0;
}

/* lookup of prefix[0..plen) + s[0..n) */
static inline int32_t wp_find(const wp_vocab *v, const char *prefix, size_t plen, const char *s, size_t n)
{
    uint64_t h = fnv_step(FNV_INIT, (const unsigned char *)prefix, plen);
    h = fnv_final(fnv_step(h, (const unsigned char *)s, n));
    size_t j = (size_t)h & v->mask;
    for (;;) {
        const wp_slot *sl = &v->slots[j];
        if (sl->id < 0) return -1;
        if (sl->hash == h && sl->len == plen + n && memcmp(v->pool + sl->off, prefix, plen) == 0 &&
            memcmp(v->pool + sl->off + plen, s, n) == 0)
            return sl->id;
        j = (j + 1) & v->mask;
    }
}

int32_t wp_vocab_get(const wp_vocab *v, const char *utf8, size_t len) { return wp_find(v, "", 0, utf8, len); }

/* a one-character BMP token's id, also kept in the direct table the tokenizer looks single characters up in */
static void wp_note_bmp(wp_vocab *v, const char *utf8, size_t len, int32_t id)
{
    if (len > 3) return;
    size_t nch = 0;
    for (size_t i = 0; i < len; i++) nch += ((unsigned char)utf8[i] & 0xC0) != 0x80;
    if (nch != 1) return;
    uint32_t cp;
    utf8_decode_se((const unsigned char *)utf8, len, &cp, NULL);
    if (cp < 0x10000 && (cp < 0xDC80 || cp > 0xDCFF)) v->bmp[cp] = id;
}

int wp_vocab_add(wp_vocab *v, const char *utf8, size_t len, int32_t id)
{
    if (len > 0xFFFFFFu) return 0; /* never a match for a <= 100-char word anyway */
    uint64_t h0 = fnv_final(fnv_step(FNV_INIT, (const unsigned char *)utf8, len));
    for (size_t k = (size_t)h0 & v->mask; v->slots[k].id >= 0; k = (k + 1) & v->mask) {
        wp_slot *sl = &v->slots[k];
        if (sl->hash == h0 && sl->len == len && memcmp(v->pool + sl->off, utf8, len) == 0) {
            /* a duplicated token: the last line's id wins, as in Google's BERT, transformers and UER-py */
            sl->id = id;
            wp_note_bmp(v, utf8, len, id);
            return 0;
        }
    }
    if ((v->count + 1) * 2 > v->mask + 1 && wp_grow(v) < 0) return -1;
    if (v->pool_len + len > v->pool_cap) {
        size_t nc = v->pool_cap ? v->pool_cap * 2 : 1 << 16;
        while (nc < v->pool_len + len) nc *= 2;
        char *np = (char *)realloc(v->pool, nc);
        if (!np) return -1;
        v->pool = np;
        v->pool_cap = nc;
    }
    memcpy(v->pool + v->pool_len, utf8, len);
    uint64_t h = fnv_final(fnv_step(FNV_INIT, (const unsigned char *)utf8, len));
    size_t j = (size_t)h & v->mask;
    while (v->slots[j].id >= 0) j = (j + 1) & v->mask;
    v->slots[j].hash = h;
    v->slots[j].off = v->pool_len;
    v->slots[j].len = (uint32_t)len;
    v->slots[j].id = id;
    v->pool_len += len;
    v->count++;
    /* length in code points (continuation bytes do not count) */
    size_t nch = 0;
    for (size_t i = 0; i < len; i++) nch += ((unsigned char)utf8[i] & 0xC0) != 0x80;
    if (nch > v->max_chars) v->max_chars = nch;
    wp_note_bmp(v, utf8, len, id);
    return 0;
}

/* ---------------------------------------------------------------- character classes */
int wp_is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static int bsearch_cp(const uint32_t *table, size_t stride, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t v = table[mid * stride];
        if (v == cp) return (int)mid;
        if (v < cp) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

static unsigned ccc_of(uint32_t cp)
{
    if (!(ut_flags(cp) & UT_CCC)) return 0;
    int k = bsearch_cp(&ut_ccc[0][0], 2, UT_NCCC, cp);
    return k < 0 ? 0 : ut_ccc[k][1];
}

/* ---------------------------------------------------------------- scratch */
void wp_work_free(wp_work *w)
{
    free(w->ids);
    free(w->starts);
    free(w->run);
    free(w->low);
    free(w->norm);
    free(w->key);
    free(w->koff);
    free(w->tmp);
    memset(w, 0, sizeof(*w));
}

static int reserve(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np) return -1;
    *p = np;
    *cap = nc;
    return 0;
}

#define RESERVE(ptr, cap, need) reserve((void **)&(ptr), &(cap), (need), sizeof(*(ptr)))

static int out_reserve(wp_work *w, size_t extra)
{
    size_t need = w->n + extra;
    if (need <= w->cap) return 0;
    size_t nc = w->cap ? w->cap : 256;
    while (nc < need) nc *= 2;
    int32_t *ni = (int32_t *)realloc(w->ids, nc * sizeof(int32_t));
    if (!ni) return -1;
    w->ids = ni;
    int64_t *ns = (int64_t *)realloc(w->starts, nc * sizeof(int64_t));
    if (!ns) return -1;
    w->starts = ns;
    w->cap = nc;
    return 0;
}

/* WordPiece of word[0..n) (code points), first piece gets `start`. */
static int wordpiece(const wp_vocab *v, const uint32_t *word, size_t n, int64_t start, wp_work *w)
{
    if (n > WP_MAX_WORD_CHARS) {
        if (out_reserve(w, 1) < 0) return -1;
        w->ids[w->n] = v->unk;
        w->starts[w->n++] = start;
        return 0;
    }
    if (n == 1 && word[0] < 0x10000) { /* one character: no hashing */
        int32_t id = v->bmp[word[0]];
        if (out_reserve(w, 1) < 0) return -1;
        w->ids[w->n] = id >= 0 ? id : v->unk;
        w->starts[w->n++] = start;
        return 0;
    }
    if (RESERVE(w->key, w->cap_key, 4 * n + 2) < 0 || RESERVE(w->koff, w->cap_koff, n + 1) < 0 ||
        RESERVE(w->tmp, w->cap_tmp, n + 1) < 0)
        return -1;
    unsigned char *b = (unsigned char *)w->key;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        w->koff[i] = pos;
        uint32_t c = word[i];
        pos += utf8_put(b + pos, c < 0x110000 ? c : 0xFFFD);
    }
    w->koff[n] = pos;
    size_t np = 0, s = 0;
    size_t maxc = v->max_chars;
    while (s < n) {
        size_t e = n;
        if (maxc < e - s) e = s + maxc;
        int32_t id = -1;
        while (s < e) {
            const char *p = (const char *)b + w->koff[s];
            size_t len = w->koff[e] - w->koff[s];
            id = s > 0 ? wp_find(v, "##", 2, p, len) : wp_find(v, "", 0, p, len);
            if (id >= 0) break;
            e--;
        }
        if (id < 0) {
            np = 0;
            w->tmp[np++] = v->unk;
            break;
        }
        w->tmp[np++] = id;
        s = e;
    }
    if (out_reserve(w, np) < 0) return -1;
    for (size_t k = 0; k < np; k++) {
        w->ids[w->n] = w->tmp[k];
        w->starts[w->n++] = k == 0 ? start : -1;
    }
    return 0;
}

/* lower + NFD + drop Mn of run[0..n) into w->norm; returns the length or (size_t)-1 */
static size_t normalize_run(const uint32_t *run, size_t n, wp_work *w)
{
    if (RESERVE(w->low, w->cap_low, 3 * n + 1) < 0) return (size_t)-1;
    size_t m = 0;
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = run[i];
        if (c < 128) {
            w->low[m++] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
            continue;
        }
        any = 1;
        if (ut_flags(c) & UT_LOWER) {
            int k = bsearch_cp(&ut_lower[0][0], 5, UT_NLOWER, c);
            if (k >= 0) {
                for (uint32_t j = 0; j < ut_lower[k][1]; j++) w->low[m++] = ut_lower[k][2 + j];
                continue;
            }
        }
        w->low[m++] = c;
    }
    if (RESERVE(w->norm, w->cap_norm, 4 * m + 1) < 0) return (size_t)-1;
    uint32_t *o = w->norm;
    if (!any) { /* pure ASCII: nothing decomposes, nothing is Mn */
        memcpy(o, w->low, m * sizeof(uint32_t));
        return m;
    }
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t c = w->low[i];
        unsigned f = ut_flags(c);
        if (f & UT_DECOMP) {
            if (c >= 0xAC00 && c < 0xAC00 + 11172) {
                uint32_t s = c - 0xAC00;
                o[k++] = 0x1100 + s / 588;
                o[k++] = 0x1161 + (s % 588) / 28;
                if (s % 28) o[k++] = 0x11A7 + s % 28;
                continue;
            }
            int j = bsearch_cp(&ut_decomp[0][0], 6, UT_NDECOMP, c);
            if (j >= 0) {
                for (uint32_t t = 0; t < ut_decomp[j][1]; t++) o[k++] = ut_decomp[j][2 + t];
                continue;
            }
        }
        o[k++] = c;
    }
    /* canonical ordering: stable sort of each run of non-zero combining classes */
    size_t i = 0;
    while (i < k) {
        if (ccc_of(o[i]) == 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < k && ccc_of(o[j]) != 0) j++;
        for (size_t a = i + 1; a < j; a++) { /* insertion sort (stable) */
            uint32_t x = o[a];
            unsigned cx = ccc_of(x);
            size_t b = a;
            while (b > i && ccc_of(o[b - 1]) > cx) {
                o[b] = o[b - 1];
                b--;
            }
            o[b] = x;
        }
        i = j;
    }
    size_t r = 0;
    for (size_t t = 0; t < k; t++)
        if (!(ut_flags(o[t]) & UT_MN)) o[r++] = o[t];
    return r;
}

static int flush_run(const wp_vocab *v, const uint32_t *run, size_t n, int64_t run_start, int do_lower, wp_work *w)
{
    const uint32_t *norm = run;
    size_t m = n;
    if (do_lower) {
        m = normalize_run(run, n, w);
        if (m == (size_t)-1) return -1;
        norm = w->norm;
    }
    int exact = m == n;
    size_t off = 0, p = 0;
#define EMIT(a, len)                                                                         \
    do {                                                                                     \
        int64_t st_ = exact ? run_start + (int64_t)off : (off == 0 ? run_start : -1);        \
        if (wordpiece(v, norm + (a), (len), st_, w) < 0) return -1;                          \
        off += (len);                                                                        \
    } while (0)
    for (size_t k = 0; k < m; k++) {
        uint32_t c = norm[k];
        int punct = c < 128 ? ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
                               (c >= 123 && c <= 126))
                            : (ut_flags(c) & UT_PUNCT) != 0;
        if (punct) {
            if (k > p) EMIT(p, k - p);
            EMIT(k, 1);
            p = k + 1;
        }
    }
    if (p < m) EMIT(p, m - p);
#undef EMIT
    return 0;
}

int wp_tokenize(const wp_vocab *v, const uint32_t *cps, size_t n, int do_lower, wp_work *w)
{
    w->n = 0;
    size_t rn = 0;
    int64_t run_start = -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cps[i];
        unsigned f;
        if (c < 128) {
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') f = UT_WS;
            else if (c < 32 || c == 127) f = UT_CTRL;
            else f = 0;
        } else {
            f = ut_flags(c);
        }
        if (c == 0 || c == 0xFFFD || (f & UT_CTRL)) continue;
        if (f & UT_WS) {
            if (rn) {
                if (flush_run(v, w->run, rn, run_start, do_lower, w) < 0) return -1;
                rn = 0;
            }
            continue;
        }
        if (c >= 0x3400 && wp_is_cjk(c)) {
            if (rn) {
                if (flush_run(v, w->run, rn, run_start, do_lower, w) < 0) return -1;
                rn = 0;
            }
            int32_t id;
            if (c < 0x10000) {
                id = v->bmp[c];
            } else {
                unsigned char b[4];
                size_t len = utf8_put(b, c);
                id = wp_find(v, "", 0, (const char *)b, len);
            }
            if (out_reserve(w, 1) < 0) return -1;
            w->ids[w->n] = id >= 0 ? id : v->unk;
            w->starts[w->n++] = (int64_t)i;
            continue;
        }
        if (!rn) run_start = (int64_t)i;
        if (RESERVE(w->run, w->cap_run, rn + 1) < 0) return -1;
        w->run[rn++] = c;
    }
    if (rn && flush_run(v, w->run, rn, run_start, do_lower, w) < 0) return -1;
    return 0;
}

const char *wp_unidata_version(void) { return UT_UNIDATA_VERSION; }
