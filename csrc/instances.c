/*
 * instances.c -- the per-chunk preprocessing function in C: the native twin of process_chunk in
 * uer_like/data/preprocess.py (lines + bad-line policy of corpus.py, SentenceEncoder, the instance
 * builders of processors.py, mask_instance of masking.py, SplitMix64 of rng.py), producing the same
 * arrays bit for bit. Also the batch mask_instances used by dynamic masking at training time.
 *
 * The work runs with the GIL released; only the argument parsing and the result objects touch Python.
 */
#include "native_pre.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "wordpiece.h"

/* ====================================================================== */
/* SplitMix64 (rng.py)                                                    */
/* ====================================================================== */
#define GOLDEN 0x9E3779B97F4A7C15ULL

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t s;
} sm64;

static void sm_init(sm64 *r, const uint64_t *keys, size_t n)
{
    uint64_t s = 0x5EED5EED5EED5EEDULL;
    for (size_t i = 0; i < n; i++) s = mix64((s ^ keys[i]) + GOLDEN);
    r->s = s;
}

static inline uint64_t sm_next(sm64 *r)
{
    r->s += GOLDEN;
    return mix64(r->s);
}

static inline int64_t sm_randint(sm64 *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(sm_next(r) % (uint64_t)(hi - lo + 1));
}

static inline double sm_random(sm64 *r) { return (double)(sm_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* ====================================================================== */
/* growable arrays                                                        */
/* ====================================================================== */
typedef struct {
    void *p;
    size_t n, cap, elem;
} vec;

static int vec_reserve(vec *v, size_t extra)
{
    size_t need = v->n + extra;
    if (need <= v->cap) return 0;
    size_t nc = v->cap ? v->cap : 64;
    while (nc < need) nc *= 2;
    void *np = realloc(v->p, nc * v->elem);
    if (!np) return -1;
    v->p = np;
    v->cap = nc;
    return 0;
}

#define VEC(type) {NULL, 0, 0, sizeof(type)}
#define AT(v, type) ((type *)(v).p)
#define PUSH(v, type, x)                                \
    do {                                                \
        if (vec_reserve(&(v), 1) < 0) goto oom;         \
        ((type *)(v).p)[(v).n++] = (type)(x);           \
    } while (0)

static void vec_free(vec *v)
{
    free(v->p);
    v->p = NULL;
    v->n = v->cap = 0;
}

/* ====================================================================== */
/* masking (masking.py)                                                   */
/* ====================================================================== */
typedef struct {
    size_t start, len;
} mgroup;

typedef struct {
    mgroup *groups, *cands;
    size_t *idx, *run;
    uint8_t *flag, *cov;
    size_t cap;
} mask_work;

static int mask_work_reserve(mask_work *w, size_t n)
{
    if (n <= w->cap) return 0;
    size_t nc = w->cap ? w->cap : 256;
    while (nc < n) nc *= 2;
    mgroup *g = (mgroup *)realloc(w->groups, nc * sizeof(mgroup));
    if (!g) return -1;
    w->groups = g;
    g = (mgroup *)realloc(w->cands, nc * sizeof(mgroup));
    if (!g) return -1;
    w->cands = g;
    size_t *z = (size_t *)realloc(w->idx, nc * sizeof(size_t));
    if (!z) return -1;
    w->idx = z;
    z = (size_t *)realloc(w->run, nc * sizeof(size_t));
    if (!z) return -1;
    w->run = z;
    uint8_t *f = (uint8_t *)realloc(w->flag, nc);
    if (!f) return -1;
    w->flag = f;
    f = (uint8_t *)realloc(w->cov, nc);
    if (!f) return -1;
    w->cov = f;
    w->cap = nc;
    return 0;
}

static void mask_work_free(mask_work *w)
{
    free(w->groups);
    free(w->cands);
    free(w->idx);
    free(w->run);
    free(w->flag);
    free(w->cov);
    memset(w, 0, sizeof(*w));
}

/* MacBERT's similar-word table (masking.py SimilarWords): a lexicon of token-id sequences, the keys (lexicon
 * indices) with their candidates (lexicon indices), an open-addressing hash over the keys' ids, and the
 * lexicon indices grouped by length (ascending: SimilarWords.by_length). */
typedef struct {
    int64_t nlex, nkeys, ncands, maxlen;
    int64_t *lex_ids, *lex_off, *key_lex, *cand_off, *cands, *len_off, *len_idx, *slots;
    size_t nslots; /* a power of two; slots hold key index + 1, 0 empty */
} sim_table;

static uint64_t seq_hash(const int64_t *ids, size_t n)
{
    uint64_t h = 0x51D051D0ULL ^ (uint64_t)n;
    for (size_t i = 0; i < n; i++) h = mix64(h ^ (uint64_t)ids[i]) + GOLDEN;
    return h;
}

/* -> the key index of ids[0..n), or -1 */
static int64_t sim_find(const sim_table *s, const int64_t *ids, size_t n)
{
    size_t mask = s->nslots - 1, h = (size_t)seq_hash(ids, n) & mask;
    for (;;) {
        int64_t k = s->slots[h];
        if (!k) return -1;
        int64_t w = s->key_lex[k - 1];
        size_t len = (size_t)(s->lex_off[w + 1] - s->lex_off[w]);
        if (len == n && memcmp(s->lex_ids + s->lex_off[w], ids, n * sizeof(int64_t)) == 0) return k - 1;
        h = (h + 1) & mask;
    }
}

enum { S_MLM, S_SPAN, S_NGRAM, S_MACBERT, S_PERT, S_NSTRATEGIES };
#define MAX_SPAN 64
#define MAX_NGRAM 16
#define MAX_SPECIAL 16 /* mask_instances takes at most 16 special ids; the chunk passes 3 */

typedef struct {
    const int64_t *special;
    int nspecial;
    int64_t vocab_size, mask_id;
    double prob;
    int whole_word, per_word;
    /* strategies other than mlm (masking.py mask_with) */
    int strategy;
    const double *span_cum; /* [span_max + 1] */
    int64_t span_max;
    const double *ngram_cum; /* [ngram_max + 1] */
    int64_t ngram_max, pert_window;
    const sim_table *sim;
} mask_opts;

typedef struct {
    int strategy;
    double span_cum[MAX_SPAN + 1], ngram_cum[MAX_NGRAM + 1];
    int64_t span_max, ngram_max, pert_window;
    const sim_table *sim;
} strat_args;

static void apply_masking(mask_opts *mo, const strat_args *sa)
{
    mo->strategy = sa->strategy;
    mo->span_cum = sa->span_cum;
    mo->span_max = sa->span_max;
    mo->ngram_cum = sa->ngram_cum;
    mo->ngram_max = sa->ngram_max;
    mo->pert_window = sa->pert_window;
    mo->sim = sa->sim;
}


/* Copies ids to out and groups the maskable positions (not special ids) into units: single tokens, or with
 * whole_word the runs of a word start (bits[i] set) and its continuations. -> the number of units in g;
 * *n_cand: the number of maskable positions. g has room for n units. */
static size_t mask_units(const int64_t *ids, const uint8_t *bits, size_t n, const mask_opts *o, int64_t *out,
                         mgroup *g, size_t *n_cand)
{
    size_t ng = 0;
    *n_cand = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = ids[i];
        int sp = 0;
        for (int k = 0; k < o->nspecial; k++)
            if (ids[i] == o->special[k]) sp = 1;
        if (sp) continue;
        (*n_cand)++;
        if (o->whole_word && !bits[i] && ng && g[ng - 1].start + g[ng - 1].len == i)
            g[ng - 1].len++;
        else {
            g[ng].start = i;
            g[ng].len = 1;
            ng++;
        }
    }
    return ng;
}

/* mask_instance: ids[0..n) -> out[0..n) (masked); the chosen positions (ascending) and their original
 * ids go to pos / lab (capacity >= n). Returns the number chosen, or (size_t)-1 on out of memory. */
static size_t mask_one(const int64_t *ids, const uint8_t *bits, size_t n, const mask_opts *o, sm64 *rng,
                       int64_t *out, int64_t *pos, int64_t *lab, mask_work *w)
{
    if (mask_work_reserve(w, n + 1) < 0) return (size_t)-1;
    mgroup *g = w->groups;
    size_t n_cand;
    size_t ng = mask_units(ids, bits, n, o, out, g, &n_cand);
    if (n_cand == 0) return 0;
    int64_t num = (int64_t)((double)n_cand * o->prob + 0.5);
    if (num < 1) num = 1;
    for (size_t i = ng - 1; i > 0; i--) {
        size_t j = (size_t)sm_randint(rng, 0, (int64_t)i);
        mgroup t = g[i];
        g[i] = g[j];
        g[j] = t;
    }
    memset(w->flag, 0, n);
    int64_t count = 0;
    for (size_t k = 0; k < ng; k++) {
        if (count >= num) break;
        if (count + (int64_t)g[k].len > num) continue;
        count += (int64_t)g[k].len;
        double r = o->per_word ? sm_random(rng) : 0.0;
        for (size_t i = g[k].start; i < g[k].start + g[k].len; i++) {
            double ri = o->per_word ? r : sm_random(rng);
            if (ri < 0.8)
                out[i] = o->mask_id;
            else if (ri < 0.9)
                out[i] = sm_randint(rng, 1, o->vocab_size - 1);
            w->flag[i] = 1;
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (w->flag[i]) {
            pos[m] = (int64_t)i;
            lab[m++] = ids[i];
        }
    return m;
}

/* draw_from (masking.py): k in 1..limit with P(k) proportional to cum[k] - cum[k-1] */
static int64_t draw_from(const double *cum, int64_t limit, sm64 *rng)
{
    double u = cum[limit] * sm_random(rng);
    for (int64_t k = 1; k < limit; k++)
        if (u < cum[k]) return k;
    return limit;
}

/* 80/10/10 over out[a..b): one decision r (per_word) or one per token */
static void replace_tokens(int64_t *out, size_t a, size_t b, double r, const mask_opts *o, sm64 *rng)
{
    for (size_t i = a; i < b; i++) {
        double ri = o->per_word ? r : sm_random(rng);
        if (ri < 0.8)
            out[i] = o->mask_id;
        else if (ri < 0.9)
            out[i] = sm_randint(rng, 1, o->vocab_size - 1);
    }
}

/* avoided_ids (masking.py): [MASK] and the special ids within 1..vocab_size-1, sorted, distinct (none when
 * nothing else would be left); avoid has room for nspecial + 1. Returns the count. */
static int avoided_ids(const mask_opts *o, int64_t *avoid)
{
    int na = 0;
    for (int k = -1; k < o->nspecial; k++) {
        int64_t t = k < 0 ? o->mask_id : o->special[k];
        if (t < 1 || t >= o->vocab_size) continue;
        int i = 0;
        while (i < na && avoid[i] < t) i++;
        if (i < na && avoid[i] == t) continue;
        memmove(avoid + i + 1, avoid + i, (size_t)(na - i) * sizeof(int64_t));
        avoid[i] = t;
        na++;
    }
    return na < o->vocab_size - 1 ? na : 0;
}

/* _random_word: a lexicon word of n tokens, else n random ids other than avoid[0..na) (_random_token) */
static void random_word(int64_t *dst, size_t n, const mask_opts *o, sm64 *rng, const int64_t *avoid, int na)
{
    const sim_table *s = o->sim;
    if (s && (int64_t)n <= s->maxlen && s->len_off[n + 1] > s->len_off[n]) {
        int64_t cnt = s->len_off[n + 1] - s->len_off[n];
        int64_t w = s->len_idx[s->len_off[n] + sm_randint(rng, 0, cnt - 1)];
        memcpy(dst, s->lex_ids + s->lex_off[w], n * sizeof(int64_t));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t t = sm_randint(rng, 1, o->vocab_size - 1 - na);
        for (int k = 0; k < na; k++)
            if (t >= avoid[k]) t++;
        dst[i] = t;
    }
}

static void shuffle_groups(mgroup *g, size_t n, sm64 *rng)
{
    for (size_t i = n ? n - 1 : 0; i > 0; i--) {
        size_t j = (size_t)sm_randint(rng, 0, (int64_t)i);
        mgroup t = g[i];
        g[i] = g[j];
        g[j] = t;
    }
}

static void shuffle_sizes(size_t *g, size_t n, sm64 *rng)
{
    for (size_t i = n ? n - 1 : 0; i > 0; i--) {
        size_t j = (size_t)sm_randint(rng, 0, (int64_t)i);
        size_t t = g[i];
        g[i] = g[j];
        g[j] = t;
    }
}

static void shuffle_i64(int64_t *g, size_t n, sm64 *rng)
{
    for (size_t i = n ? n - 1 : 0; i > 0; i--) {
        size_t j = (size_t)sm_randint(rng, 0, (int64_t)i);
        int64_t t = g[i];
        g[i] = g[j];
        g[j] = t;
    }
}

/* mask_with (masking.py) for the span, ngram, macbert and pert strategies; as mask_one otherwise. pos/lab:
 * the chosen positions ascending and their labels (original ids, or for pert original positions). */
static size_t mask_with(const int64_t *ids, const uint8_t *bits, size_t n, const mask_opts *o, sm64 *rng,
                        int64_t *out, int64_t *pos, int64_t *lab, mask_work *w)
{
    if (o->strategy == S_MLM) return mask_one(ids, bits, n, o, rng, out, pos, lab, w);
    if (mask_work_reserve(w, n + 1) < 0) return (size_t)-1;
    mgroup *u = w->groups;
    size_t n_cand;
    size_t nu = mask_units(ids, bits, n, o, out, u, &n_cand);
    if (n_cand == 0) return 0;
    int64_t budget = (int64_t)((double)n_cand * o->prob + 0.5);
    if (budget < 1) budget = 1;
    memset(w->flag, 0, n);
    int64_t count = 0;
#define UEND(k) (u[k].start + u[k].len)
    if (o->strategy == S_SPAN || o->strategy == S_PERT) {
        mgroup *c = w->cands;
        size_t nc = 0;
        if (o->strategy == S_SPAN) {
            size_t k = 0;
            while (k < nu) {
                int64_t len = draw_from(o->span_cum, o->span_max, rng);
                size_t j = k + 1;
                while (j < nu && (int64_t)(j - k) < len && UEND(j - 1) == u[j].start) j++;
                c[nc].start = u[k].start;
                c[nc].len = UEND(j - 1) - u[k].start;
                nc++;
                k = j;
            }
        } else {
            memcpy(c, u, nu * sizeof(mgroup));
            nc = nu;
        }
        shuffle_groups(c, nc, rng);
        for (size_t k = 0; k < nc; k++) {
            if (count >= budget) break;
            if (count + (int64_t)c[k].len > budget) continue;
            count += (int64_t)c[k].len;
            memset(w->flag + c[k].start, 1, c[k].len);
            if (o->strategy == S_SPAN) {
                double r = o->per_word ? sm_random(rng) : 0.0;
                replace_tokens(out, c[k].start, c[k].start + c[k].len, r, o, rng);
            }
        }
    } else {
        size_t *run = w->run, *starts = w->idx;
        uint8_t *cov = w->cov;
        int64_t avoid[MAX_SPECIAL + 1];
        int na = o->strategy == S_MACBERT ? avoided_ids(o, avoid) : 0;
        run[nu - 1] = 1;
        for (size_t k = nu - 1; k-- > 0;) {
            run[k] = 1;
            if (UEND(k) == u[k + 1].start) run[k] = run[k + 1] + 1 < (size_t)o->ngram_max ? run[k + 1] + 1 : (size_t)o->ngram_max;
        }
        for (size_t k = 0; k < nu; k++) starts[k] = k;
        shuffle_sizes(starts, nu, rng);
        memset(cov, 0, nu);
        for (size_t q = 0; q < nu; q++) {
            if (count >= budget) break;
            size_t k = starts[q];
            if (cov[k]) continue;
            size_t g = (size_t)draw_from(o->ngram_cum, (int64_t)run[k], rng);
            while (g > 1 && count + (int64_t)(UEND(k + g - 1) - u[k].start) > budget) g--;
            int64_t ntok = (int64_t)(UEND(k + g - 1) - u[k].start);
            if (count + ntok > budget) continue;
            int any = 0;
            for (size_t v = k; v < k + g; v++) any |= cov[v];
            if (any) continue;
            count += ntok;
            for (size_t v = k; v < k + g; v++) {
                cov[v] = 1;
                size_t a = u[v].start, b = UEND(v);
                memset(w->flag + a, 1, b - a);
                if (o->strategy == S_NGRAM) {
                    double r = o->per_word ? sm_random(rng) : 0.0;
                    replace_tokens(out, a, b, r, o, rng);
                    continue;
                }
                double r = sm_random(rng); /* macbert: per word */
                if (r < 0.8) {
                    int64_t key = o->sim ? sim_find(o->sim, ids + a, b - a) : -1;
                    int64_t c0 = key >= 0 ? o->sim->cand_off[key] : 0, c1 = key >= 0 ? o->sim->cand_off[key + 1] : 0;
                    if (c1 > c0) {
                        int64_t wd = o->sim->cands[c0 + sm_randint(rng, 0, c1 - c0 - 1)];
                        memcpy(out + a, o->sim->lex_ids + o->sim->lex_off[wd], (b - a) * sizeof(int64_t));
                    } else {
                        random_word(out + a, b - a, o, rng, avoid, na);
                    }
                } else if (r < 0.9) {
                    random_word(out + a, b - a, o, rng, avoid, na);
                }
            }
        }
    }
#undef UEND
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (w->flag[i]) {
            pos[m] = (int64_t)i;
            lab[m++] = o->strategy == S_PERT ? (int64_t)i : ids[i];
        }
    if (o->strategy == S_PERT) { /* _permute: shuffle within windows */
        int64_t W = o->pert_window;
        size_t i = 0;
        while (i < m) {
            size_t j = i;
            while (j < m && pos[j] / W == pos[i] / W) j++;
            shuffle_i64(lab + i, j - i, rng);
            for (size_t q = i; q < j; q++) out[pos[q]] = ids[lab[q]];
            i = j;
        }
    }
    return m;
}

/* ====================================================================== */
/* the chunk                                                              */
/* ====================================================================== */
enum { P_BERT, P_ALBERT, P_MLM, P_LM, P_CLS };
enum { POL_ERROR, POL_SKIP, POL_REPLACE };
enum { K_INVALID_UTF8, K_NUL, K_BOM, K_CONTROL, K_EMPTY_LINE, K_BAD_COLUMNS, K_NKINDS };
static const char *const KIND_NAMES[K_NKINDS] = {"invalid_utf8", "nul", "bom", "control_chars", "empty_line",
                                                 "bad_columns"};
enum { E_NONE, E_UTF8, E_NUL, E_COLUMNS, E_LABEL, E_NEGATIVE };
#define MAX_REPORTED 20

typedef struct {
    const wp_vocab *vocab;
    const jseg_dict *seg; /* whole-word masking: jieba word starts */
    int do_lower, processor, fmt_line, policy;
    int64_t seq_length, dups;
    int static_mask, whole_word, per_word;
    double mask_prob, short_seq_prob;
    uint64_t seed, chunk_idx;
    int64_t cls_id, sep_id, pad_id, mask_id, vocab_size;
    const strat_args *masking;
} pc_opts;

typedef struct {
    /* outputs */
    vec ids, bits, lengths, seg_a, labels, mlen, mpos, mlab;
    int64_t lines, documents;
    int64_t counts[K_NKINDS];
    int64_t first[K_NKINDS][MAX_REPORTED];
    int nfirst[K_NKINDS];
    int err;              /* E_* */
    int64_t err_line, err_detail;
    uint32_t *err_field;  /* E_LABEL: the label column */
    size_t err_field_len;
    int fallback;         /* the Python path must do this chunk */
    int oom;
} pc_result;

static void report_add(pc_result *r, int kind, int64_t line)
{
    r->counts[kind]++;
    if (r->nfirst[kind] < MAX_REPORTED) r->first[kind][r->nfirst[kind]++] = line;
}

/* bytes -> code points as bytes.decode('utf-8', 'replace') does (one U+FFFD per maximal ill-formed
 * subpart); *first_bad receives the offset of the first invalid byte (UnicodeDecodeError.start) or
 * (size_t)-1. Returns the number of code points written to out (capacity >= len). */
static size_t decode_replace(const unsigned char *s, size_t len, uint32_t *out, size_t *first_bad)
{
    size_t i = 0, n = 0;
    *first_bad = (size_t)-1;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            out[n++] = c;
            i++;
            continue;
        }
        int need;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            else if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            else if (c == 0xF4) hi = 0x8F;
        } else
            need = 0;
        int m = 0, ok = need > 0;
        for (int k = 1; ok && k <= need; k++) {
            if (i + (size_t)k >= len) {
                ok = 0;
                break;
            }
            unsigned b = s[i + k];
            unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (b < l || b > h) {
                ok = 0;
                break;
            }
            m++;
        }
        if (ok) {
            uint32_t cp;
            if (need == 1) cp = ((uint32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F);
            else if (need == 2)
                cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
            else
                cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
                     ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
            out[n++] = cp;
            i += (size_t)need + 1;
        } else {
            if (*first_bad == (size_t)-1) *first_bad = i;
            out[n++] = 0xFFFD;
            i += 1 + (size_t)m;
        }
    }
    return n;
}

static inline int is_pyspace(uint32_t c) { return jseg_is_space(c); }

/* scratch of the encoder */
typedef struct {
    wp_work wp;
    jseg_work jw;
    size_t *ends;
    uint8_t *wstart;
    size_t cap;
} enc_work;

static void enc_work_free(enc_work *e)
{
    wp_work_free(&e->wp);
    jseg_work_free(&e->jw);
    free(e->ends);
    free(e->wstart);
    memset(e, 0, sizeof(*e));
}

/* SentenceEncoder: text -> ids and bits appended to tok_ids / tok_bits. Returns the token count or
 * (size_t)-1 (oom). */
static size_t encode(const pc_opts *o, enc_work *e, const uint32_t *cps, size_t n, vec *tok_ids, vec *tok_bits)
{
    if (wp_tokenize(o->vocab, cps, n, o->do_lower, &e->wp) < 0) return (size_t)-1;
    size_t nt = e->wp.n;
    if (nt == 0) return 0;
    if (vec_reserve(tok_ids, nt) < 0 || vec_reserve(tok_bits, nt) < 0) return (size_t)-1;
    int32_t *ids = AT(*tok_ids, int32_t) + tok_ids->n;
    uint8_t *bits = AT(*tok_bits, uint8_t) + tok_bits->n;
    memcpy(ids, e->wp.ids, nt * sizeof(int32_t));
    if (o->seg) {
        if (n + 1 > e->cap) {
            size_t nc = n + 1;
            size_t *ne = (size_t *)realloc(e->ends, nc * sizeof(size_t));
            if (!ne) return (size_t)-1;
            e->ends = ne;
            uint8_t *nw = (uint8_t *)realloc(e->wstart, nc);
            if (!nw) return (size_t)-1;
            e->wstart = nw;
            e->cap = nc;
        }
        size_t nw = jseg_cut(o->seg, cps, n, 1, &e->jw, e->ends);
        if (nw == (size_t)-1) return (size_t)-1;
        memset(e->wstart, 0, n + 1);
        e->wstart[0] = 1;
        for (size_t k = 0; k + 1 < nw; k++) e->wstart[e->ends[k]] = 1;
        for (size_t k = 0; k < nt; k++) {
            int64_t s = e->wp.starts[k];
            bits[k] = s >= 0 && (size_t)s <= n && e->wstart[s];
        }
    } else {
        for (size_t k = 0; k < nt; k++) bits[k] = e->wp.starts[k] >= 0;
    }
    tok_ids->n += nt;
    tok_bits->n += nt;
    return nt;
}

/* The chunk state between the passes. */
typedef struct {
    vec tok_ids, tok_bits;   /* encoded sentences (int32, uint8) */
    vec sent_off, sent_len;  /* size_t: token range of each kept sentence */
    vec doc_first, doc_n;    /* size_t: sentence range of each kept document */
    vec cls_label, cls_a, cls_b; /* int64 label, sentence index of a, of b (-1: none) */
    /* instance scratch */
    vec inst_ids, inst_bits, inst_out, inst_pos, inst_lab;
    mask_work mw;
    mask_opts mo;
} chunk_state;

static void chunk_state_free(chunk_state *c)
{
    vec *all[] = {&c->tok_ids, &c->tok_bits, &c->sent_off, &c->sent_len, &c->doc_first, &c->doc_n,
                  &c->cls_label, &c->cls_a, &c->cls_b, &c->inst_ids, &c->inst_bits, &c->inst_out,
                  &c->inst_pos, &c->inst_lab};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) vec_free(all[i]);
    mask_work_free(&c->mw);
}

/* Append one instance (the instance is c->inst_ids / c->inst_bits) to the outputs, masking it when
 * static masking is on (k: the instance's index within its duplicate). */
static int emit(const pc_opts *o, chunk_state *c, pc_result *r, int64_t seg_a, int64_t label, int64_t dup,
                int64_t k)
{
    size_t n = c->inst_ids.n;
    const int64_t *ids = AT(c->inst_ids, int64_t);
    const uint8_t *bits = AT(c->inst_bits, uint8_t);
    if (vec_reserve(&r->ids, n) < 0 || vec_reserve(&r->bits, n) < 0) return -1;
    if (o->static_mask) {
        if (vec_reserve(&r->mpos, n) < 0 || vec_reserve(&r->mlab, n) < 0 || vec_reserve(&c->inst_pos, n) < 0 ||
            vec_reserve(&c->inst_lab, n) < 0)
            return -1;
        uint64_t keys[5] = {o->seed, 2 /* PURPOSE_STATIC_MASK */, o->chunk_idx, (uint64_t)dup, (uint64_t)k};
        sm64 rng;
        sm_init(&rng, keys, 5);
        int64_t *pos = AT(c->inst_pos, int64_t), *lab = AT(c->inst_lab, int64_t);
        size_t m = mask_with(ids, bits, n, &c->mo, &rng, AT(r->ids, int64_t) + r->ids.n, pos, lab, &c->mw);
        if (m == (size_t)-1) return -1;
        r->ids.n += n;
        for (size_t i = 0; i < m; i++) {
            AT(r->mpos, int32_t)[r->mpos.n++] = (int32_t)pos[i];
            AT(r->mlab, int32_t)[r->mlab.n++] = (int32_t)lab[i];
        }
        if (vec_reserve(&r->mlen, 1) < 0) return -1;
        AT(r->mlen, int64_t)[r->mlen.n++] = (int64_t)m;
    } else {
        memcpy(AT(r->ids, int64_t) + r->ids.n, ids, n * sizeof(int64_t));
        r->ids.n += n;
    }
    memcpy(AT(r->bits, uint8_t) + r->bits.n, bits, n);
    r->bits.n += n;
    if (vec_reserve(&r->lengths, 1) < 0 || vec_reserve(&r->seg_a, 1) < 0 || vec_reserve(&r->labels, 1) < 0)
        return -1;
    AT(r->lengths, int64_t)[r->lengths.n++] = (int64_t)n;
    AT(r->seg_a, int32_t)[r->seg_a.n++] = (int32_t)seg_a;
    AT(r->labels, int32_t)[r->labels.n++] = (int32_t)label;
    return 0;
}

static int inst_push(chunk_state *c, int64_t id, uint8_t bit)
{
    if (vec_reserve(&c->inst_ids, 1) < 0 || vec_reserve(&c->inst_bits, 1) < 0) return -1;
    AT(c->inst_ids, int64_t)[c->inst_ids.n++] = id;
    AT(c->inst_bits, uint8_t)[c->inst_bits.n++] = bit;
    return 0;
}

static int inst_extend(chunk_state *c, size_t tok_from, size_t tok_to)
{
    size_t n = tok_to - tok_from;
    if (vec_reserve(&c->inst_ids, n) < 0 || vec_reserve(&c->inst_bits, n) < 0) return -1;
    const int32_t *ids = AT(c->tok_ids, int32_t) + tok_from;
    int64_t *dst = AT(c->inst_ids, int64_t) + c->inst_ids.n;
    for (size_t i = 0; i < n; i++) dst[i] = ids[i];
    memcpy(AT(c->inst_bits, uint8_t) + c->inst_bits.n, AT(c->tok_bits, uint8_t) + tok_from, n);
    c->inst_ids.n += n;
    c->inst_bits.n += n;
    return 0;
}

/* token range of sentences [s0, s1) (they are contiguous in the pool) */
static void sent_range(const chunk_state *c, size_t s0, size_t s1, size_t *t0, size_t *t1)
{
    const size_t *off = AT(c->sent_off, size_t), *len = AT(c->sent_len, size_t);
    if (s1 <= s0) {
        *t0 = *t1 = 0;
        return;
    }
    *t0 = off[s0];
    *t1 = off[s1 - 1] + len[s1 - 1];
}

/* sentence_pair_instances (processors.py) */
static int pair_instances(const pc_opts *o, chunk_state *c, pc_result *r, int64_t dup, int sop)
{
    uint64_t keys[4] = {o->seed, 1 /* PURPOSE_PAIRS */, o->chunk_idx, (uint64_t)dup};
    sm64 rng;
    sm_init(&rng, keys, 4);
    int64_t max_tokens = o->seq_length - 3;
    size_t ndocs = c->doc_first.n;
    const size_t *dfirst = AT(c->doc_first, size_t), *dn = AT(c->doc_n, size_t);
    const size_t *slen = AT(c->sent_len, size_t);
    int64_t k = 0;
    for (size_t d = 0; d < ndocs; d++) {
        int64_t target_len = max_tokens;
        if (sm_random(&rng) < o->short_seq_prob) target_len = sm_randint(&rng, 2, max_tokens);
        size_t doc0 = dfirst[d], dlen = dn[d];
        size_t cur0 = 0, ncur = 0; /* current = doc[cur0 .. cur0 + ncur) */
        int64_t cur_len = 0;
        int64_t i = 0;
        while (i < (int64_t)dlen) {
            if (ncur == 0) cur0 = (size_t)i;
            ncur++;
            cur_len += (int64_t)slen[doc0 + (size_t)i];
            if (i == (int64_t)dlen - 1 || cur_len >= target_len) {
                size_t a_end = ncur >= 2 ? (size_t)sm_randint(&rng, 1, (int64_t)ncur - 1) : 1;
                size_t a0, a1, b0, b1;
                sent_range(c, doc0 + cur0, doc0 + cur0 + a_end, &a0, &a1);
                int64_t label = 0;
                int swapped = 0;
                if (ndocs > 1 && (ncur == 1 || (!sop && sm_random(&rng) < 0.5))) {
                    label = 1;
                    int64_t target_b = target_len - (int64_t)(a1 - a0);
                    size_t rr = (size_t)sm_randint(&rng, 0, (int64_t)ndocs - 2);
                    if (rr >= d) rr++;
                    size_t r0 = dfirst[rr], rn = dn[rr];
                    size_t j0 = (size_t)sm_randint(&rng, 0, (int64_t)rn - 1), j = j0;
                    int64_t b_len = 0;
                    for (; j < rn; j++) {
                        b_len += (int64_t)slen[r0 + j];
                        if (b_len >= target_b) {
                            j++;
                            break;
                        }
                    }
                    sent_range(c, r0 + j0, r0 + j, &b0, &b1);
                    i -= (int64_t)(ncur - a_end);
                } else {
                    sent_range(c, doc0 + cur0 + a_end, doc0 + cur0 + ncur, &b0, &b1);
                    if (sop && sm_random(&rng) < 0.5) {
                        swapped = 1;
                        label = 1;
                    }
                }
                if (swapped) {
                    size_t t0 = a0, t1 = a1;
                    a0 = b0, a1 = b1, b0 = t0, b1 = t1;
                }
                /* _truncate_pair */
                while ((int64_t)((a1 - a0) + (b1 - b0)) > max_tokens) {
                    int ta = (a1 - a0) > (b1 - b0);
                    if (sm_random(&rng) < 0.5) {
                        if (ta) a0++;
                        else b0++;
                    } else {
                        if (ta) a1--;
                        else b1--;
                    }
                }
                if (a1 > a0 && b1 > b0) {
                    c->inst_ids.n = c->inst_bits.n = 0;
                    if (inst_push(c, o->cls_id, 1) < 0 || inst_extend(c, a0, a1) < 0 ||
                        inst_push(c, o->sep_id, 1) < 0 || inst_extend(c, b0, b1) < 0 ||
                        inst_push(c, o->sep_id, 1) < 0)
                        return -1;
                    if (emit(o, c, r, (int64_t)(a1 - a0) + 2, label, dup, k++) < 0) return -1;
                }
                ncur = 0;
                cur_len = 0;
            }
            i++;
        }
    }
    return 0;
}

static int mlm_instances(const pc_opts *o, chunk_state *c, pc_result *r, int64_t dup)
{
    size_t n = (size_t)(o->seq_length - 2);
    int64_t k = 0;
    for (size_t d = 0; d < c->doc_first.n; d++) {
        size_t f = AT(c->doc_first, size_t)[d], t0, t1;
        sent_range(c, f, f + AT(c->doc_n, size_t)[d], &t0, &t1);
        for (size_t s = t0; s < t1; s += n) {
            size_t e = s + n < t1 ? s + n : t1;
            c->inst_ids.n = c->inst_bits.n = 0;
            if (inst_push(c, o->cls_id, 1) < 0 || inst_extend(c, s, e) < 0 || inst_push(c, o->sep_id, 1) < 0)
                return -1;
            if (emit(o, c, r, (int64_t)c->inst_ids.n, -1, dup, k++) < 0) return -1;
        }
    }
    return 0;
}

static int lm_instances(const pc_opts *o, chunk_state *c, pc_result *r, int64_t dup)
{
    size_t n = (size_t)(o->seq_length + 1);
    int64_t k = 0;
    for (size_t d = 0; d < c->doc_first.n; d++) {
        size_t f = AT(c->doc_first, size_t)[d], t0, t1;
        sent_range(c, f, f + AT(c->doc_n, size_t)[d], &t0, &t1);
        size_t total = (t1 - t0) + 2; /* [CLS] doc [SEP] */
        for (size_t s = 0; s < total; s += n) {
            size_t e = s + n < total ? s + n : total;
            if (e - s < 2) continue;
            c->inst_ids.n = c->inst_bits.n = 0;
            for (size_t v = s; v < e; v++) {
                int rc;
                if (v == 0) rc = inst_push(c, o->cls_id, 1);
                else if (v == total - 1) rc = inst_push(c, o->sep_id, 1);
                else rc = inst_push(c, AT(c->tok_ids, int32_t)[t0 + v - 1], AT(c->tok_bits, uint8_t)[t0 + v - 1]);
                if (rc < 0) return -1;
            }
            if (emit(o, c, r, (int64_t)(e - s) - 1, -1, dup, k++) < 0) return -1;
        }
    }
    return 0;
}

static int cls_instances(const pc_opts *o, chunk_state *c, pc_result *r, int64_t dup)
{
    int64_t k = 0;
    for (size_t d = 0; d < c->cls_label.n; d++) {
        int64_t label = AT(c->cls_label, int64_t)[d];
        int64_t ia = AT(c->cls_a, int64_t)[d], ib = AT(c->cls_b, int64_t)[d];
        size_t a0, a1, b0 = 0, b1 = 0;
        sent_range(c, (size_t)ia, (size_t)ia + 1, &a0, &a1);
        c->inst_ids.n = c->inst_bits.n = 0;
        if (ib < 0) {
            if ((int64_t)(a1 - a0) > o->seq_length - 2) a1 = a0 + (size_t)(o->seq_length - 2);
            if (inst_push(c, o->cls_id, 1) < 0 || inst_extend(c, a0, a1) < 0 || inst_push(c, o->sep_id, 1) < 0)
                return -1;
        } else {
            sent_range(c, (size_t)ib, (size_t)ib + 1, &b0, &b1);
            while ((int64_t)((a1 - a0) + (b1 - b0)) > o->seq_length - 3) {
                if ((a1 - a0) > (b1 - b0)) a1--;
                else b1--;
            }
            if (inst_push(c, o->cls_id, 1) < 0 || inst_extend(c, a0, a1) < 0 || inst_push(c, o->sep_id, 1) < 0 ||
                inst_extend(c, b0, b1) < 0 || inst_push(c, o->sep_id, 1) < 0)
                return -1;
        }
        if (emit(o, c, r, (int64_t)(a1 - a0) + 2, label, dup, k++) < 0) return -1;
    }
    return 0;
}

/* int(text) for an ASCII column: 1 ok, 0 not an integer, -1 needs Python (non-ASCII or too large) */
static int parse_label(const uint32_t *s, size_t n, int64_t *out)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 128) return -1;
    size_t i = 0, e = n;
    while (i < e && is_pyspace(s[i])) i++;
    while (e > i && is_pyspace(s[e - 1])) e--;
    int neg = 0;
    if (i < e && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i >= e) return 0;
    int64_t v = 0;
    int digits = 0, prev_us = 1; /* an underscore may not come first */
    for (; i < e; i++) {
        uint32_t ch = s[i];
        if (ch == '_') {
            if (prev_us) return 0;
            prev_us = 1;
            continue;
        }
        if (ch < '0' || ch > '9') return 0;
        prev_us = 0;
        if (++digits > 17) return -1;
        v = v * 10 + (int64_t)(ch - '0');
    }
    if (prev_us) return 0; /* trailing underscore */
    *out = neg ? -v : v;
    return 1;
}

/* Encode one sentence into the pools; records it (even when empty: cls keeps empty columns) and returns
 * its index, or -1 on oom. */
static int64_t add_sentence(const pc_opts *o, chunk_state *c, enc_work *e, const uint32_t *cps, size_t n)
{
    size_t off = c->tok_ids.n;
    size_t nt = n ? encode(o, e, cps, n, &c->tok_ids, &c->tok_bits) : 0;
    if (nt == (size_t)-1) return -1;
    if (vec_reserve(&c->sent_off, 1) < 0 || vec_reserve(&c->sent_len, 1) < 0) return -1;
    AT(c->sent_off, size_t)[c->sent_off.n++] = off;
    AT(c->sent_len, size_t)[c->sent_len.n++] = nt;
    return (int64_t)c->sent_off.n - 1;
}

typedef struct {
    size_t off, len; /* in the code point pool */
    int64_t line_no;
} line_ref;

/* The whole chunk. data[0..len) are the chunk's bytes. */
static void process(const pc_opts *o, const unsigned char *data, size_t len, pc_result *r)
{
    uint32_t *pool = NULL;
    vec lines = VEC(line_ref), ldoc_first = VEC(size_t), ldoc_n = VEC(size_t);
    chunk_state c;
    memset(&c, 0, sizeof(c));
    c.tok_ids.elem = sizeof(int32_t);
    c.tok_bits.elem = 1;
    c.sent_off.elem = c.sent_len.elem = c.doc_first.elem = c.doc_n.elem = sizeof(size_t);
    c.cls_label.elem = c.cls_a.elem = c.cls_b.elem = sizeof(int64_t);
    c.inst_ids.elem = c.inst_out.elem = c.inst_pos.elem = c.inst_lab.elem = sizeof(int64_t);
    c.inst_bits.elem = 1;
    enc_work e;
    memset(&e, 0, sizeof(e));
    int64_t special[3] = {o->cls_id, o->sep_id, o->pad_id};
    c.mo.special = special;
    c.mo.nspecial = 3;
    c.mo.vocab_size = o->vocab_size;
    c.mo.mask_id = o->mask_id;
    c.mo.prob = o->mask_prob;
    c.mo.whole_word = o->whole_word;
    c.mo.per_word = o->per_word;
    apply_masking(&c.mo, o->masking);

    pool = (uint32_t *)malloc((len + 1) * sizeof(uint32_t));
    if (!pool) goto oom;
    size_t used = 0;
    /* ---- pass 1: lines, decoding under the policy, documents (corpus.py read_chunk_documents) */
    size_t pos = 0;
    int64_t line_no = 0;
    int in_doc = 0;
    while (pos < len) {
        const unsigned char *nl = (const unsigned char *)memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t l0 = pos, l1 = end;
        pos = end + 1;
        line_no++;
        if (l1 > l0 && data[l1 - 1] == '\r') l1--;
        size_t bad;
        uint32_t *t = pool + used;
        size_t n = decode_replace(data + l0, l1 - l0, t, &bad);
        if (bad != (size_t)-1) {
            if (o->policy == POL_ERROR) {
                r->err = E_UTF8;
                r->err_line = line_no;
                r->err_detail = (int64_t)bad;
                goto done;
            }
            report_add(r, K_INVALID_UTF8, line_no);
            if (o->policy == POL_SKIP) continue;
        }
        int has_nul = 0;
        for (size_t i = 0; i < n; i++)
            if (t[i] == 0) has_nul = 1;
        if (has_nul) {
            if (o->policy == POL_ERROR) {
                r->err = E_NUL;
                r->err_line = line_no;
                goto done;
            }
            report_add(r, K_NUL, line_no);
            if (o->policy == POL_SKIP) continue;
            for (size_t i = 0; i < n; i++)
                if (t[i] == 0) t[i] = ' ';
        }
        if (n && t[0] == 0xFEFF) {
            report_add(r, K_BOM, line_no);
            t++;
            n--;
            used++;
        }
        for (size_t i = 0; i < n; i++) {
            uint32_t ch = t[i];
            if ((ch < 32 && ch != '\t' && ch != '\r') || (ch >= 0x7F && ch < 0xA0)) {
                report_add(r, K_CONTROL, line_no);
                break;
            }
        }
        int blank = 1;
        for (size_t i = 0; i < n && blank; i++)
            if (!is_pyspace(t[i])) blank = 0;
        if (o->fmt_line) {
            if (!blank) {
                line_ref lr = {(size_t)(t - pool), n, line_no};
                PUSH(lines, line_ref, lr);
                PUSH(ldoc_first, size_t, lines.n - 1);
                PUSH(ldoc_n, size_t, 1);
            } else {
                report_add(r, K_EMPTY_LINE, line_no);
            }
        } else if (blank) {
            in_doc = 0;
        } else {
            line_ref lr = {(size_t)(t - pool), n, line_no};
            PUSH(lines, line_ref, lr);
            if (!in_doc) {
                PUSH(ldoc_first, size_t, lines.n - 1);
                PUSH(ldoc_n, size_t, 0);
                in_doc = 1;
            }
            AT(ldoc_n, size_t)[ldoc_n.n - 1]++;
        }
        used = (size_t)(t - pool) + n;
    }
    r->lines = line_no;
    r->documents = (int64_t)ldoc_first.n;

    /* ---- pass 2: encode (preprocess.py _chunk_documents) */
    for (size_t d = 0; d < ldoc_first.n; d++) {
        size_t lf = AT(ldoc_first, size_t)[d], ln = AT(ldoc_n, size_t)[d];
        const line_ref *L = AT(lines, line_ref) + lf;
        if (o->processor == P_CLS) {
            const uint32_t *t = pool + L->off;
            size_t n = L->len;
            size_t tabs[3], ntab = 0;
            for (size_t i = 0; i < n; i++)
                if (t[i] == '\t') {
                    if (ntab < 3) tabs[ntab] = i;
                    ntab++;
                }
            size_t c0e = ntab ? tabs[0] : n;
            if (o->chunk_idx == 0 && L->line_no == 1) {
                size_t i = 0, j = c0e;
                while (i < j && is_pyspace(t[i])) i++;
                while (j > i && is_pyspace(t[j - 1])) j--;
                static const char lab[] = "label";
                if (j - i == 5) {
                    int same = 1;
                    for (size_t q = 0; q < 5; q++)
                        if (t[i + q] != (uint32_t)lab[q]) same = 0;
                    if (same) continue; /* header row */
                }
            }
            int bad = 0;
            int64_t label = 0;
            if (ntab + 1 != 2 && ntab + 1 != 3) {
                bad = E_COLUMNS;
                r->err_detail = (int64_t)ntab + 1;
            } else {
                int pr = parse_label(t, c0e, &label);
                if (pr < 0 || (pr == 1 && label > 2147483647LL)) {
                    r->fallback = 1;
                    goto done;
                }
                if (pr == 0) {
                    bad = E_LABEL;
                } else if (label < 0) {
                    bad = E_NEGATIVE;
                    r->err_detail = label;
                }
            }
            if (bad) {
                if (o->policy == POL_ERROR) {
                    r->err = bad;
                    r->err_line = L->line_no;
                    if (bad == E_LABEL) {
                        r->err_field = (uint32_t *)malloc((c0e + 1) * sizeof(uint32_t));
                        if (!r->err_field) goto oom;
                        memcpy(r->err_field, t, c0e * sizeof(uint32_t));
                        r->err_field_len = c0e;
                    }
                    goto done;
                }
                report_add(r, K_BAD_COLUMNS, L->line_no);
                continue;
            }
            size_t a0 = tabs[0] + 1, a1 = ntab == 2 ? tabs[1] : n;
            int64_t ia = add_sentence(o, &c, &e, t + a0, a1 - a0), ib = -1;
            if (ia < 0) goto oom;
            if (ntab == 2) {
                ib = add_sentence(o, &c, &e, t + tabs[1] + 1, n - tabs[1] - 1);
                if (ib < 0) goto oom;
            }
            PUSH(c.cls_label, int64_t, label);
            PUSH(c.cls_a, int64_t, ia);
            PUSH(c.cls_b, int64_t, ib);
            continue;
        }
        size_t kept = 0, first = c.sent_off.n;
        for (size_t s = 0; s < ln; s++) {
            size_t before = c.sent_off.n;
            int64_t si = add_sentence(o, &c, &e, pool + L[s].off, L[s].len);
            if (si < 0) goto oom;
            if (AT(c.sent_len, size_t)[si] == 0) { /* `encoded = [s for s in encoded if s.ids]` */
                c.sent_off.n = before;
                c.sent_len.n = before;
            } else {
                kept++;
            }
        }
        if (kept) {
            PUSH(c.doc_first, size_t, first);
            PUSH(c.doc_n, size_t, kept);
        }
    }
    free(pool);
    pool = NULL;

    /* ---- pass 3: instances and masks */
    for (int64_t dup = 0; dup < o->dups; dup++) {
        int rc;
        if (o->processor == P_BERT || o->processor == P_ALBERT)
            rc = pair_instances(o, &c, r, dup, o->processor == P_ALBERT);
        else if (o->processor == P_MLM)
            rc = mlm_instances(o, &c, r, dup);
        else if (o->processor == P_LM)
            rc = lm_instances(o, &c, r, dup);
        else
            rc = cls_instances(o, &c, r, dup);
        if (rc < 0) goto oom;
    }
    goto done;
oom:
    r->oom = 1;
done:
    free(pool);
    vec_free(&lines);
    vec_free(&ldoc_first);
    vec_free(&ldoc_n);
    chunk_state_free(&c);
    enc_work_free(&e);
}

static void pc_result_free(pc_result *r)
{
    vec *all[] = {&r->ids, &r->bits, &r->lengths, &r->seg_a, &r->labels, &r->mlen, &r->mpos, &r->mlab};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) vec_free(all[i]);
    free(r->err_field);
    r->err_field = NULL;
}

/* ====================================================================== */
/* Python: the masking strategy argument                                  */
/* ====================================================================== */
#define SIM_CAPSULE "uer_like._native.similar_table"

static void sim_free(sim_table *s)
{
    if (!s) return;
    free(s->lex_ids);
    free(s->lex_off);
    free(s->key_lex);
    free(s->cand_off);
    free(s->cands);
    free(s->len_off);
    free(s->len_idx);
    free(s->slots);
    free(s);
}

static void sim_capsule_free(PyObject *cap) { sim_free((sim_table *)PyCapsule_GetPointer(cap, SIM_CAPSULE)); }

static int64_t *copy_i64(const Py_buffer *b, int64_t *n)
{
    *n = (int64_t)(b->len / 8);
    int64_t *p = (int64_t *)malloc((size_t)b->len + 8);
    if (p && b->len) memcpy(p, b->buf, (size_t)b->len);
    return p;
}

const char native_similar_table_doc[] =
    "similar_table(lex_ids, lex_off, key_lex, cand_off, cands) -> capsule\n\n"
    "MacBERT's similar-word table (SimilarWords.flat() of uer_like/data/masking.py, int64 buffers) for the\n"
    "masking argument of preprocess_chunk and mask_instances.";

PyObject *native_similar_table(PyObject *self, PyObject *args)
{
    Py_buffer b[5];
    memset(b, 0, sizeof(b));
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*:similar_table", &b[0], &b[1], &b[2], &b[3], &b[4])) return NULL;
    PyObject *res = NULL;
    sim_table *s = (sim_table *)calloc(1, sizeof(sim_table));
    int64_t nids, noff, nkoff;
    const char *bad = NULL;
    for (int i = 0; i < 5; i++)
        if (b[i].len % 8) bad = "buffer sizes must be multiples of 8";
    if (!s) {
        PyErr_NoMemory();
        goto out;
    }
    if (bad) goto bad;
    s->lex_ids = copy_i64(&b[0], &nids);
    s->lex_off = copy_i64(&b[1], &noff);
    s->key_lex = copy_i64(&b[2], &s->nkeys);
    s->cand_off = copy_i64(&b[3], &nkoff);
    s->cands = copy_i64(&b[4], &s->ncands);
    if (!s->lex_ids || !s->lex_off || !s->key_lex || !s->cand_off || !s->cands) {
        PyErr_NoMemory();
        goto out;
    }
    s->nlex = noff - 1;
    if (noff < 1 || s->lex_off[0] != 0 || s->lex_off[noff - 1] != nids || nkoff != s->nkeys + 1 ||
        s->cand_off[0] != 0 || s->cand_off[s->nkeys] != s->ncands) {
        bad = "inconsistent offsets";
        goto bad;
    }
    for (int64_t i = 0; i < s->nlex; i++) {
        int64_t len = s->lex_off[i + 1] - s->lex_off[i];
        if (len < 1 || len > (1 << 20)) {
            bad = "lexicon words must have 1..2^20 tokens";
            goto bad;
        }
        if (len > s->maxlen) s->maxlen = len;
    }
    for (int64_t i = 0; i < s->nkeys; i++)
        if (s->key_lex[i] < 0 || s->key_lex[i] >= s->nlex || s->cand_off[i + 1] < s->cand_off[i]) {
            bad = "bad key";
            goto bad;
        }
    for (int64_t i = 0; i < s->ncands; i++)
        if (s->cands[i] < 0 || s->cands[i] >= s->nlex) {
            bad = "bad candidate";
            goto bad;
        }
    /* lexicon indices by length, ascending */
    s->len_off = (int64_t *)calloc((size_t)s->maxlen + 2, sizeof(int64_t));
    s->len_idx = (int64_t *)malloc(((size_t)s->nlex + 1) * sizeof(int64_t));
    s->nslots = 16;
    while (s->nslots < 2 * (size_t)s->nkeys + 2) s->nslots *= 2;
    s->slots = (int64_t *)calloc(s->nslots, sizeof(int64_t));
    if (!s->len_off || !s->len_idx || !s->slots) {
        PyErr_NoMemory();
        goto out;
    }
    for (int64_t i = 0; i < s->nlex; i++) s->len_off[s->lex_off[i + 1] - s->lex_off[i] + 1]++;
    for (int64_t l = 1; l <= s->maxlen + 1; l++) s->len_off[l] += s->len_off[l - 1];
    {
        int64_t *fill = (int64_t *)malloc(((size_t)s->maxlen + 2) * sizeof(int64_t));
        if (!fill) {
            PyErr_NoMemory();
            goto out;
        }
        memcpy(fill, s->len_off, ((size_t)s->maxlen + 2) * sizeof(int64_t));
        for (int64_t i = 0; i < s->nlex; i++) s->len_idx[fill[s->lex_off[i + 1] - s->lex_off[i]]++] = i;
        free(fill);
    }
    for (int64_t k = 0; k < s->nkeys; k++) {
        int64_t wd = s->key_lex[k];
        const int64_t *ids = s->lex_ids + s->lex_off[wd];
        size_t n = (size_t)(s->lex_off[wd + 1] - s->lex_off[wd]);
        if (sim_find(s, ids, n) >= 0) {
            bad = "duplicate key";
            goto bad;
        }
        size_t h = (size_t)seq_hash(ids, n) & (s->nslots - 1);
        while (s->slots[h]) h = (h + 1) & (s->nslots - 1);
        s->slots[h] = k + 1;
    }
    res = PyCapsule_New(s, SIM_CAPSULE, sim_capsule_free);
    if (res) s = NULL;
    goto out;
bad:
    PyErr_Format(PyExc_ValueError, "similar_table: %s", bad);
out:
    sim_free(s);
    for (int i = 0; i < 5; i++) PyBuffer_Release(&b[i]);
    return res;
}

/* The optional keyword `masking`, removed from kwds (*kwds_io becomes a new reference or NULL): a tuple
 * (strategy, span_cum bytes, ngram_cum bytes, pert_window, similar_table capsule or None), the doubles as
 * MaskingOptions computes them. Absent: mlm. Returns -1 with an exception set. */
static int pop_masking(PyObject **kwds_io, strat_args *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->span_max = sa->ngram_max = 1;
    sa->span_cum[1] = sa->ngram_cum[1] = 1.0;
    sa->pert_window = 2;
    PyObject *kw = *kwds_io;
    *kwds_io = NULL;
    if (!kw) return 0;
    PyObject *m = PyDict_GetItemString(kw, "masking");
    kw = PyDict_Copy(kw);
    if (!kw) return -1;
    *kwds_io = kw;
    if (!m) return 0;
    Py_INCREF(m);
    if (PyDict_DelItemString(kw, "masking") < 0) {
        Py_DECREF(m);
        return -1;
    }
    int rc = -1;
    if (m == Py_None) {
        rc = 0;
        goto done;
    }
    Py_buffer sc = {0}, nc = {0};
    PyObject *cap;
    long long pw;
    if (!PyArg_ParseTuple(m, "iy*y*LO:masking", &sa->strategy, &sc, &nc, &pw, &cap)) goto done;
    if (sa->strategy < 0 || sa->strategy >= S_NSTRATEGIES || sc.len % 8 || nc.len % 8 || sc.len < 16 ||
        nc.len < 16 || sc.len / 8 > MAX_SPAN + 1 || nc.len / 8 > MAX_NGRAM + 1 || pw < 2) {
        PyErr_SetString(PyExc_ValueError, "masking: bad strategy, table sizes or window");
    } else {
        memcpy(sa->span_cum, sc.buf, (size_t)sc.len);
        memcpy(sa->ngram_cum, nc.buf, (size_t)nc.len);
        sa->span_max = sc.len / 8 - 1;
        sa->ngram_max = nc.len / 8 - 1;
        sa->pert_window = pw;
        if (cap != Py_None) {
            sa->sim = (const sim_table *)PyCapsule_GetPointer(cap, SIM_CAPSULE);
            if (!sa->sim) goto bufs;
        }
        if (sa->strategy == S_MACBERT && !sa->sim)
            PyErr_SetString(PyExc_ValueError, "masking: macbert needs a similar_table");
        else
            rc = 0;
    }
bufs:
    PyBuffer_Release(&sc);
    PyBuffer_Release(&nc);
done:
    Py_DECREF(m);
    return rc;
}

/* ====================================================================== */
/* Python: WordPiece                                                      */
/* ====================================================================== */
typedef struct {
    PyObject_HEAD
    wp_vocab *vocab;
    int do_lower;
} NativeWordPiece;

static int nwp_init(NativeWordPiece *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tokens", "unk_id", "do_lower_case", NULL};
    PyObject *tokens;
    int unk_id, do_lower = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oi|p:WordPiece", kwlist, &tokens, &unk_id, &do_lower)) return -1;
    PyObject *seq = PySequence_Fast(tokens, "tokens must be a sequence of str");
    if (!seq) return -1;
    wp_vocab *v = wp_vocab_new();
    if (!v) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(t)) {
            PyErr_SetString(PyExc_TypeError, "tokens must be str");
            goto fail;
        }
        PyObject *b = PyUnicode_AsEncodedString(t, "utf-8", "surrogatepass");
        if (!b) goto fail;
        int rc = wp_vocab_add(v, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b), (int32_t)i);
        Py_DECREF(b);
        if (rc < 0) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    Py_DECREF(seq);
    wp_vocab_set_unk(v, unk_id);
    wp_vocab_free(self->vocab);
    self->vocab = v;
    self->do_lower = do_lower;
    return 0;
fail:
    Py_DECREF(seq);
    wp_vocab_free(v);
    return -1;
}

static void nwp_dealloc(NativeWordPiece *self)
{
    wp_vocab_free(self->vocab);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int nwp_ready(NativeWordPiece *self)
{
    if (!self->vocab) {
        PyErr_SetString(PyExc_RuntimeError, "WordPiece not initialised");
        return -1;
    }
    return 0;
}

static PyObject *nwp_tokenize(NativeWordPiece *self, PyObject *text)
{
    if (nwp_ready(self) < 0) return NULL;
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Py_UCS4 *u = PyUnicode_AsUCS4Copy(text);
    if (!u) return NULL;
    wp_work w;
    memset(&w, 0, sizeof(w));
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = wp_tokenize(self->vocab, (const uint32_t *)u, (size_t)n, self->do_lower, &w);
    Py_END_ALLOW_THREADS
    PyMem_Free(u);
    PyObject *ids = NULL, *starts = NULL, *res = NULL;
    if (rc < 0) {
        PyErr_NoMemory();
        goto out;
    }
    ids = PyList_New((Py_ssize_t)w.n);
    starts = PyList_New((Py_ssize_t)w.n);
    if (!ids || !starts) goto out;
    for (size_t i = 0; i < w.n; i++) {
        PyObject *a = PyLong_FromLong(w.ids[i]), *b = PyLong_FromLongLong(w.starts[i]);
        if (!a || !b) {
            Py_XDECREF(a);
            Py_XDECREF(b);
            goto out;
        }
        PyList_SET_ITEM(ids, (Py_ssize_t)i, a);
        PyList_SET_ITEM(starts, (Py_ssize_t)i, b);
    }
    res = PyTuple_Pack(2, ids, starts);
out:
    Py_XDECREF(ids);
    Py_XDECREF(starts);
    wp_work_free(&w);
    return res;
}

static PyObject *nwp_len(NativeWordPiece *self, void *closure)
{
    if (nwp_ready(self) < 0) return NULL;
    return PyLong_FromSize_t(wp_vocab_size(self->vocab));
}

static PyMethodDef nwp_methods[] = {
    {"tokenize", (PyCFunction)nwp_tokenize, METH_O,
     "tokenize(text) -> (ids, starts): BertTokenizer.tokenize_with_starts(text) + convert_tokens_to_ids."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef nwp_getset[] = {{"size", (getter)nwp_len, NULL, "distinct tokens", NULL},
                                   {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject NativeWordPieceType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "uer_like._native.WordPiece",
    .tp_basicsize = sizeof(NativeWordPiece),
    .tp_dealloc = (destructor)nwp_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "WordPiece(tokens, unk_id, do_lower_case=True)\n\n"
              "The BERT tokenizer of uer_like/tokenizers/bert.py over a vocabulary (tokens: Vocab.i2w;\n"
              "the last id of a duplicated token wins, as Vocab.w2i).",
    .tp_methods = nwp_methods,
    .tp_getset = nwp_getset,
    .tp_init = (initproc)nwp_init,
    .tp_new = PyType_GenericNew,
};

/* ====================================================================== */
/* Python: preprocess_chunk                                               */
/* ====================================================================== */
static PyObject *vec_bytes(const vec *v)
{
    return PyBytes_FromStringAndSize(v->p ? (const char *)v->p : "", (Py_ssize_t)(v->n * v->elem));
}

static int pick(const char *s, const char *const *names, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    PyErr_Format(PyExc_ValueError, "unknown %s %s", what, s);
    return -1;
}

const char native_preprocess_chunk_doc[] =
    "preprocess_chunk(wordpiece, segmenter, data, chunk_idx, *, processor, corpus_format, policy,\n"
    "                 seq_length, dups, static_mask, whole_word, per_word, mask_prob, short_seq_prob,\n"
    "                 seed, cls_id, sep_id, pad_id, mask_id, vocab_size) -> dict\n\n"
    "process_chunk of uer_like/data/preprocess.py on the chunk's bytes. segmenter: a JiebaSegmenter\n"
    "(with HMM tables) for whole-word bits, or None. Returns {ids, bits, lengths, seg_a_len, labels,\n"
    "mask_lengths, mask_pos, mask_labels} as bytes (int64, uint8, int64, int32, int32, int64, int32,\n"
    "int32), lines, documents and report [(kind, count, first_lines)]; or {'error': (line_no, kind,\n"
    "detail, field)} under policy 'error'; or {'fallback': True} when the chunk holds something only\n"
    "the Python path handles (a non-ASCII or huge cls label). masking=: as mask_instances.";

PyObject *native_preprocess_chunk(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"wordpiece", "segmenter", "data", "chunk_idx", "processor", "corpus_format",
                             "policy", "seq_length", "dups", "static_mask", "whole_word", "per_word",
                             "mask_prob", "short_seq_prob", "seed", "cls_id", "sep_id", "pad_id", "mask_id",
                             "vocab_size", NULL};
    PyObject *wpo, *sego, *data, *seed_o;
    unsigned long long chunk_idx;
    const char *proc, *fmt, *pol;
    long long seq_length, dups, cls_id, sep_id, pad_id, mask_id, vocab_size;
    int static_mask, whole_word, per_word;
    double mask_prob, short_seq_prob;
    strat_args sa;
    if (pop_masking(&kwds, &sa) < 0) {
        Py_XDECREF(kwds);
        return NULL;
    }
    int ok = PyArg_ParseTupleAndKeywords(args, kwds, "OOSK$sssLLpppddOLLLLL:preprocess_chunk", kwlist, &wpo, &sego,
                                         &data, &chunk_idx, &proc, &fmt, &pol, &seq_length, &dups, &static_mask,
                                         &whole_word, &per_word, &mask_prob, &short_seq_prob, &seed_o, &cls_id,
                                         &sep_id, &pad_id, &mask_id, &vocab_size);
    Py_XDECREF(kwds);
    if (!ok) return NULL;
    if (!PyObject_TypeCheck(wpo, &NativeWordPieceType)) {
        PyErr_SetString(PyExc_TypeError, "wordpiece must be a uer_like._native.WordPiece");
        return NULL;
    }
    NativeWordPiece *wp = (NativeWordPiece *)wpo;
    if (nwp_ready(wp) < 0) return NULL;
    static const char *const procs[] = {"bert", "albert", "mlm", "lm", "cls"};
    static const char *const fmts[] = {"bert", "line"};
    static const char *const pols[] = {"error", "skip", "replace"};
    pc_opts o;
    memset(&o, 0, sizeof(o));
    if ((o.processor = pick(proc, procs, 5, "processor")) < 0) return NULL;
    int f = pick(fmt, fmts, 2, "corpus_format");
    if (f < 0) return NULL;
    o.fmt_line = f == 1;
    if ((o.policy = pick(pol, pols, 3, "policy")) < 0) return NULL;
    if (seq_length < 8 || dups < 1 || vocab_size < 2) {
        PyErr_SetString(PyExc_ValueError, "seq_length >= 8, dups >= 1 and vocab_size >= 2 are required");
        return NULL;
    }
    o.seed = PyLong_AsUnsignedLongLongMask(seed_o);
    if (o.seed == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    o.vocab = wp->vocab;
    o.do_lower = wp->do_lower;
    o.seq_length = seq_length;
    o.dups = dups;
    o.static_mask = static_mask;
    o.whole_word = whole_word;
    o.per_word = per_word;
    o.mask_prob = mask_prob;
    o.short_seq_prob = short_seq_prob;
    o.chunk_idx = chunk_idx;
    o.cls_id = cls_id;
    o.sep_id = sep_id;
    o.pad_id = pad_id;
    o.mask_id = mask_id;
    o.vocab_size = vocab_size;
    o.masking = &sa;
    if (sego != Py_None) {
        o.seg = native_segmenter_acquire(sego);
        if (!o.seg) return NULL;
    }
    pc_result r;
    memset(&r, 0, sizeof(r));
    r.ids.elem = r.lengths.elem = r.mlen.elem = sizeof(int64_t);
    r.bits.elem = 1;
    r.seg_a.elem = r.labels.elem = r.mpos.elem = r.mlab.elem = sizeof(int32_t);
    Py_INCREF(data); /* bytes: immutable while the GIL is released */
    Py_BEGIN_ALLOW_THREADS
    process(&o, (const unsigned char *)PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), &r);
    Py_END_ALLOW_THREADS
    Py_DECREF(data);
    if (o.seg) native_segmenter_release(sego);
    PyObject *res = NULL;
    if (r.oom) {
        PyErr_NoMemory();
        goto out;
    }
    if (r.fallback) {
        res = Py_BuildValue("{s:O}", "fallback", Py_True);
        goto out;
    }
    if (r.err) {
        static const char *const ek[] = {"", "utf8", "nul", "columns", "label", "negative"};
        PyObject *field = r.err_field ? PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, r.err_field,
                                                                  (Py_ssize_t)r.err_field_len)
                                      : (Py_INCREF(Py_None), Py_None);
        if (!field) goto out;
        res = Py_BuildValue("{s:(LsLN)}", "error", (long long)r.err_line, ek[r.err], (long long)r.err_detail,
                            field);
        goto out;
    }
    PyObject *report = PyList_New(0);
    if (!report) goto out;
    for (int k = 0; k < K_NKINDS; k++) {
        if (!r.counts[k]) continue;
        PyObject *fl = PyList_New(r.nfirst[k]);
        if (!fl) {
            Py_DECREF(report);
            goto out;
        }
        for (int i = 0; i < r.nfirst[k]; i++) PyList_SET_ITEM(fl, i, PyLong_FromLongLong(r.first[k][i]));
        PyObject *item = Py_BuildValue("(sLN)", KIND_NAMES[k], (long long)r.counts[k], fl);
        if (!item || PyList_Append(report, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(report);
            goto out;
        }
        Py_DECREF(item);
    }
    res = Py_BuildValue("{s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:L,s:L,s:N}", "ids", vec_bytes(&r.ids), "bits",
                        vec_bytes(&r.bits), "lengths", vec_bytes(&r.lengths), "seg_a_len", vec_bytes(&r.seg_a),
                        "labels", vec_bytes(&r.labels), "mask_lengths", vec_bytes(&r.mlen), "mask_pos",
                        vec_bytes(&r.mpos), "mask_labels", vec_bytes(&r.mlab), "lines", (long long)r.lines,
                        "documents", (long long)r.documents, "report", report);
out:
    pc_result_free(&r);
    return res;
}

/* ====================================================================== */
/* Python: mask_instances                                                 */
/* ====================================================================== */
const char native_mask_instances_doc[] =
    "mask_instances(ids, lengths, bits, keys, n_keys, special, vocab_size, mask_id, prob, whole_word,\n"
    "               per_word) -> (masked_ids, mask_lengths, mask_pos, mask_labels)\n\n"
    "mask_instance (uer_like/data/masking.py) over a batch: ids int64 and bits uint8 concatenated,\n"
    "lengths int64 per instance, keys uint64 [N x n_keys]: instance i draws from\n"
    "SplitMix64(*keys[i]). special: the special ids. Returns bytes: int64 masked ids (concatenated),\n"
    "int64 mask counts, int64 positions (within each instance, ascending), int64 original ids (pert: original\n"
    "positions). masking=(strategy, span_cum, ngram_cum, pert_window, similar_table or None): a strategy\n"
    "of masking.py other than mlm (uer_like.data.native.masking_arg builds it).";

PyObject *native_mask_instances(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"ids", "lengths", "bits", "keys", "n_keys", "special", "vocab_size", "mask_id",
                             "prob", "whole_word", "per_word", NULL}; /* and masking=: pop_masking */
    Py_buffer bi = {0}, bl = {0}, bb = {0}, bk = {0};
    Py_ssize_t nkeys;
    PyObject *special_o;
    long long vocab_size, mask_id;
    double prob;
    int whole_word, per_word;
    strat_args sa;
    if (pop_masking(&kwds, &sa) < 0) {
        Py_XDECREF(kwds);
        return NULL;
    }
    int ok = PyArg_ParseTupleAndKeywords(args, kwds, "y*y*y*y*nOLLdpp:mask_instances", kwlist, &bi, &bl, &bb, &bk,
                                         &nkeys, &special_o, &vocab_size, &mask_id, &prob, &whole_word, &per_word);
    Py_XDECREF(kwds);
    if (!ok) return NULL;
    PyObject *res = NULL, *sp_seq = NULL;
    int64_t special[MAX_SPECIAL];
    size_t nids = (size_t)bi.len / 8, ninst = (size_t)bl.len / 8;
    const int64_t *ids = (const int64_t *)bi.buf, *lengths = (const int64_t *)bl.buf;
    const uint8_t *bits = (const uint8_t *)bb.buf;
    const uint64_t *keys = (const uint64_t *)bk.buf;
    if (bi.len % 8 || bl.len % 8 || bk.len % 8 || (size_t)bb.len != nids || nkeys < 0 || nkeys > 64 ||
        (size_t)bk.len / 8 != ninst * (size_t)nkeys || vocab_size < 2) {
        PyErr_SetString(PyExc_ValueError, "mask_instances: inconsistent buffer sizes");
        goto out;
    }
    size_t total = 0;
    for (size_t i = 0; i < ninst; i++) {
        if (lengths[i] < 0) {
            PyErr_SetString(PyExc_ValueError, "mask_instances: negative length");
            goto out;
        }
        total += (size_t)lengths[i];
    }
    if (total != nids) {
        PyErr_SetString(PyExc_ValueError, "mask_instances: sum(lengths) != len(ids)");
        goto out;
    }
    sp_seq = PySequence_Fast(special_o, "special must be a sequence of int");
    if (!sp_seq) goto out;
    Py_ssize_t nsp = PySequence_Fast_GET_SIZE(sp_seq);
    if (nsp > MAX_SPECIAL) {
        PyErr_SetString(PyExc_ValueError, "at most 16 special ids");
        goto out;
    }
    for (Py_ssize_t i = 0; i < nsp; i++) {
        special[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(sp_seq, i));
        if (special[i] == -1 && PyErr_Occurred()) goto out;
    }
    mask_opts mo = {special, (int)nsp, vocab_size, mask_id, prob, whole_word, per_word};
    apply_masking(&mo, &sa);
    int64_t *out_ids = (int64_t *)malloc((nids + 1) * 8), *mlen = (int64_t *)malloc((ninst + 1) * 8);
    int64_t *pos = (int64_t *)malloc((nids + 1) * 8), *lab = (int64_t *)malloc((nids + 1) * 8);
    mask_work mw = {0};
    size_t npos = 0;
    int oom = !out_ids || !mlen || !pos || !lab;
    if (!oom) {
        Py_BEGIN_ALLOW_THREADS
        size_t off = 0;
        for (size_t i = 0; i < ninst; i++) {
            sm64 rng;
            sm_init(&rng, keys + i * (size_t)nkeys, (size_t)nkeys);
            size_t n = (size_t)lengths[i];
            size_t m = mask_with(ids + off, bits + off, n, &mo, &rng, out_ids + off, pos + npos, lab + npos, &mw);
            if (m == (size_t)-1) {
                oom = 1;
                break;
            }
            mlen[i] = (int64_t)m;
            npos += m;
            off += n;
        }
        Py_END_ALLOW_THREADS
    }
    mask_work_free(&mw);
    if (oom)
        PyErr_NoMemory();
    else
        res = Py_BuildValue("(y#y#y#y#)", (const char *)out_ids, (Py_ssize_t)(nids * 8), (const char *)mlen,
                            (Py_ssize_t)(ninst * 8), (const char *)pos, (Py_ssize_t)(npos * 8), (const char *)lab,
                            (Py_ssize_t)(npos * 8));
    free(out_ids);
    free(mlen);
    free(pos);
    free(lab);
out:
    Py_XDECREF(sp_seq);
    PyBuffer_Release(&bi);
    PyBuffer_Release(&bl);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&bk);
    return res;
}
