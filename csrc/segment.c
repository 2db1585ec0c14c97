/*
 * segment.c -- jieba-exact word segmentation core (see segment.h).
 *
 * Prefix dictionary: a trie over code points. Node 0 is the root; every other
 * node is exactly one key of jieba's FREQ dict (words and their freq-0
 * prefixes). Transitions: a direct table for root children in the BMP, and an
 * open-addressing hash table keyed by (parent node, code point) for the rest.
 * Each node stores freq and lf = log(freq or 1) so that a route candidate is
 * computed as (lf - log(total)) + route[x + 1], bit-for-bit like jieba's
 * `log(FREQ.get(frag) or 1) - logtotal + route[x + 1][0]`.
 */
#include "segment.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Mutable trie: transitions (parent node, code point) -> child node in an
 * open-addressing hash table (root children in the BMP: a direct table). */
typedef struct {
    uint32_t parent;
    uint32_t cp;
    uint32_t child; /* 0 = empty slot */
} jslot;

/* Per-node data. lfi: index of log(freq) in lfv[] (0 == freq 0, i.e. a pure
 * prefix). */
typedef struct {
    int64_t freq;
    uint32_t parent;
    uint32_t cp;
    uint32_t lfi;
} jnode;

/* Frozen (query-optimised) trie: every entry is a transition into a node and
 * carries that node's lf index plus the location of the node's own children,
 * so one walk step touches one 16-byte record. Children of a node are stored
 * contiguously: up to FZ_LINEAR of them in a plain array, more in an
 * open-addressing table of 1 << bits entries (empty: cp == FZ_EMPTY). */
typedef struct {
    uint32_t cp;
    uint32_t lfi;
    uint32_t off;  /* first child entry in fz[] */
    uint32_t meta; /* (number of children << 8) | bits; bits == 0: linear */
} jfz;

#define FZ_EMPTY 0xFFFFFFFFu
#define FZ_LINEAR 6

#define ROOT_DIRECT 0x10000u

struct jseg_dict {
    jnode *nodes;
    uint8_t *force; /* per node: in Force_Split_Words */
    size_t n_nodes, cap_nodes;
    uint32_t *root_direct; /* ROOT_DIRECT entries: children of the root for BMP cps */
    jslot *tab;         /* (parent, cp) -> child hash table, linear probing */
    size_t tab_bits, tab_used;
    /* distinct frequencies: lfv[i] = log((double)freq_i), index 0 unused (freq 0) */
    double *lfv;
    int64_t *lf_freq;
    size_t n_lf, cap_lf;
    uint32_t *lf_map; /* open addressing freq -> lf index */
    size_t lf_map_bits;
    int64_t total;
    double logtotal;
    size_t n_force;
    /* frozen trie (valid when fz_valid) */
    int fz_valid;
    jfz *fz;
    size_t fz_len;
    jfz *fz_rd;  /* ROOT_DIRECT entries */
    jfz fz_root; /* root's children with cp >= ROOT_DIRECT */
    /* HMM */
    int has_st, has_emit;
    double start[4];
    double trans[16];
    double (*emit)[4]; /* JSEG_HAN_HI - JSEG_HAN_LO + 1 rows */
};

/* ---- hash table -------------------------------------------------------- */

static inline size_t slot_hash(uint32_t parent, uint32_t cp, size_t bits)
{
    uint64_t k = ((uint64_t)parent << 21) ^ (uint64_t)cp;
    k *= 0x9E3779B97F4A7C15ULL;
    return (size_t)(k >> (64 - bits));
}

/* Slot for (parent, cp), parent may be 0 only for cp >= ROOT_DIRECT. */
static inline const jslot *find_slot(const jseg_dict *d, uint32_t parent, uint32_t cp)
{
    size_t mask = ((size_t)1 << d->tab_bits) - 1;
    size_t h = slot_hash(parent, cp, d->tab_bits);
    for (;;) {
        const jslot *s = &d->tab[h];
        if (s->child == 0) return NULL;
        if (s->parent == parent && s->cp == cp) return s;
        h = (h + 1) & mask;
    }
}

static inline uint32_t child_of(const jseg_dict *d, uint32_t parent, uint32_t cp)
{
    if (parent == 0 && cp < ROOT_DIRECT) return d->root_direct[cp];
    const jslot *s = find_slot(d, parent, cp);
    return s ? s->child : 0;
}

static void tab_put_raw(jslot *tab, size_t bits, const jslot *v)
{
    size_t mask = ((size_t)1 << bits) - 1;
    size_t h = slot_hash(v->parent, v->cp, bits);
    while (tab[h].child != 0) h = (h + 1) & mask;
    tab[h] = *v;
}

static int tab_grow(jseg_dict *d)
{
    size_t nbits = d->tab_bits + 1;
    jslot *nt = (jslot *)calloc((size_t)1 << nbits, sizeof(jslot));
    if (!nt) return -1;
    size_t old = (size_t)1 << d->tab_bits;
    for (size_t i = 0; i < old; i++)
        if (d->tab[i].child) tab_put_raw(nt, nbits, &d->tab[i]);
    free(d->tab);
    d->tab = nt;
    d->tab_bits = nbits;
    return 0;
}

static int64_t new_node(jseg_dict *d, uint32_t parent, uint32_t cp)
{
    if (d->n_nodes == d->cap_nodes) {
        size_t nc = d->cap_nodes ? d->cap_nodes * 2 : 1024;
        if (nc > 0xFFFFFFF0u) return -1;
        jnode *nn = (jnode *)realloc(d->nodes, nc * sizeof(jnode));
        if (!nn) return -1;
        d->nodes = nn;
        uint8_t *nf = (uint8_t *)realloc(d->force, nc);
        if (!nf) return -1;
        d->force = nf;
        d->cap_nodes = nc;
    }
    size_t id = d->n_nodes++;
    d->nodes[id].freq = 0;
    d->nodes[id].lfi = 0;
    d->fz_valid = 0;
    d->nodes[id].parent = parent;
    d->nodes[id].cp = cp;
    d->force[id] = 0;
    return (int64_t)id;
}

/* Walk/create the path for w[0..n); returns the node id or -1 on oom. */
static int64_t trie_insert(jseg_dict *d, const uint32_t *w, size_t n)
{
    uint32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = w[i];
        uint32_t ch = child_of(d, node, c);
        if (!ch) {
            if (!(node == 0 && c < ROOT_DIRECT) && (d->tab_used + 1) * 2 > ((size_t)1 << d->tab_bits))
                if (tab_grow(d) < 0) return -1;
            int64_t id = new_node(d, node, c);
            if (id < 0) return -1;
            ch = (uint32_t)id;
            if (node == 0 && c < ROOT_DIRECT) {
                d->root_direct[c] = ch;
            } else {
                jslot v = {node, c, ch};
                tab_put_raw(d->tab, d->tab_bits, &v);
                d->tab_used++;
            }
        }
        node = ch;
    }
    return node;
}

/* Node id of w[0..n) or -1 when absent (root for n == 0). */
static int64_t trie_find(const jseg_dict *d, const uint32_t *w, size_t n)
{
    uint32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        node = child_of(d, node, w[i]);
        if (!node) return -1;
    }
    return node;
}

static inline size_t lf_hash(int64_t f, size_t bits)
{
    return (size_t)(((uint64_t)f * 0x9E3779B97F4A7C15ULL) >> (64 - bits));
}

/* Index of log(freq) in lfv (0 for freq 0); -1 on oom. */
static int64_t lf_index(jseg_dict *d, int64_t freq)
{
    if (freq == 0) return 0;
    size_t mask = ((size_t)1 << d->lf_map_bits) - 1;
    size_t h = lf_hash(freq, d->lf_map_bits);
    while (d->lf_map[h]) {
        if (d->lf_freq[d->lf_map[h]] == freq) return d->lf_map[h];
        h = (h + 1) & mask;
    }
    if (d->n_lf == d->cap_lf) {
        size_t nc = d->cap_lf * 2;
        double *nv = (double *)realloc(d->lfv, nc * sizeof(double));
        if (!nv) return -1;
        d->lfv = nv;
        int64_t *nf = (int64_t *)realloc(d->lf_freq, nc * sizeof(int64_t));
        if (!nf) return -1;
        d->lf_freq = nf;
        d->cap_lf = nc;
    }
    if ((d->n_lf + 1) * 2 > ((size_t)1 << d->lf_map_bits)) {
        size_t nbits = d->lf_map_bits + 1, nmask = ((size_t)1 << nbits) - 1;
        uint32_t *nm = (uint32_t *)calloc((size_t)1 << nbits, sizeof(uint32_t));
        if (!nm) return -1;
        for (size_t i = 1; i < d->n_lf; i++) {
            size_t g = lf_hash(d->lf_freq[i], nbits);
            while (nm[g]) g = (g + 1) & nmask;
            nm[g] = (uint32_t)i;
        }
        free(d->lf_map);
        d->lf_map = nm;
        d->lf_map_bits = nbits;
        mask = nmask;
        h = lf_hash(freq, nbits);
        while (d->lf_map[h]) h = (h + 1) & mask;
    }
    size_t idx = d->n_lf++;
    d->lf_freq[idx] = freq;
    d->lfv[idx] = log((double)freq); /* == Python math.log(int) for |freq| < 2**53 */
    d->lf_map[h] = (uint32_t)idx;
    return (int64_t)idx;
}

/* FREQ[word] = freq for node id (id > 0). */
static int set_node_freq(jseg_dict *d, uint32_t id, int64_t freq)
{
    int64_t li = lf_index(d, freq);
    if (li < 0) return -1;
    d->nodes[id].freq = freq;
    d->nodes[id].lfi = (uint32_t)li;
    d->fz_valid = 0;
    return 0;
}

/* ---- frozen trie ------------------------------------------------------ */

static inline uint32_t fz_size(uint32_t n, uint32_t *bits)
{
    *bits = 0;
    if (n <= FZ_LINEAR) return n;
    uint32_t b = 1;
    while (((uint32_t)1 << b) < n + n / 2 + 1) b++;
    *bits = b;
    return (uint32_t)1 << b;
}

static inline uint32_t fz_hash(uint32_t cp, uint32_t bits)
{
    return (uint32_t)(cp * 0x9E3779B1u) >> (32 - bits);
}

static inline const jfz *fz_child(const jfz *fz, const jfz *e, uint32_t c)
{
    uint32_t n = e->meta >> 8, bits = e->meta & 0xFF;
    const jfz *t = fz + e->off;
    if (bits == 0) {
        for (uint32_t k = 0; k < n; k++)
            if (t[k].cp == c) return &t[k];
        return NULL;
    }
    uint32_t mask = ((uint32_t)1 << bits) - 1, h = fz_hash(c, bits);
    for (;;) {
        if (t[h].cp == c) return &t[h];
        if (t[h].cp == FZ_EMPTY) return NULL;
        h = (h + 1) & mask;
    }
}

/* Entry for the transition root -> c (NULL if absent). */
static inline const jfz *fz_first(const jseg_dict *d, uint32_t c)
{
    if (c < ROOT_DIRECT) {
        const jfz *e = &d->fz_rd[c];
        return e->cp == c ? e : NULL;
    }
    return fz_child(d->fz, &d->fz_root, c);
}

int jseg_dict_freeze(jseg_dict *d)
{
    if (d->fz_valid) return 0;
    size_t N = d->n_nodes;
    uint32_t *cnt = (uint32_t *)calloc(N + 1, sizeof(uint32_t)); /* children per node -> start */
    uint32_t *kids = (uint32_t *)malloc((N ? N : 1) * sizeof(uint32_t));
    uint32_t *pos = (uint32_t *)malloc((N ? N : 1) * sizeof(uint32_t));
    uint32_t *queue = (uint32_t *)malloc((N ? N : 1) * sizeof(uint32_t));
    jfz *rd = d->fz_rd ? d->fz_rd : (jfz *)malloc(ROOT_DIRECT * sizeof(jfz));
    jfz *fz = NULL;
    int rc = -1;
    if (!cnt || !kids || !pos || !queue || !rd) goto out;
    d->fz_rd = rd;
    /* group children by parent (counting sort); root's BMP children excluded */
    for (size_t i = 1; i < N; i++) {
        const jnode *nd = &d->nodes[i];
        if (nd->parent == 0 && nd->cp < ROOT_DIRECT) continue;
        cnt[nd->parent + 1]++;
    }
    for (size_t i = 0; i < N; i++) cnt[i + 1] += cnt[i];
    {
        uint32_t *fill = (uint32_t *)malloc((N ? N : 1) * sizeof(uint32_t));
        if (!fill) goto out;
        memcpy(fill, cnt, N * sizeof(uint32_t));
        for (size_t i = 1; i < N; i++) {
            const jnode *nd = &d->nodes[i];
            if (nd->parent == 0 && nd->cp < ROOT_DIRECT) continue;
            kids[fill[nd->parent]++] = (uint32_t)i;
        }
        free(fill);
    }
    /* total size */
    size_t total = 0;
    for (size_t u = 0; u < N; u++) {
        uint32_t bits, n = cnt[u + 1] - cnt[u];
        total += fz_size(n, &bits);
    }
    if (total >= 0x7FFFFFFFu || N >= 0x7FFFFFFFu) goto out;
    fz = (jfz *)malloc((total ? total : 1) * sizeof(jfz));
    if (!fz) goto out;
    for (size_t i = 0; i < total; i++) {
        fz[i].cp = FZ_EMPTY;
        fz[i].lfi = 0;
        fz[i].off = 0;
        fz[i].meta = 0;
    }
    for (size_t c = 0; c < ROOT_DIRECT; c++) {
        rd[c].cp = FZ_EMPTY;
        rd[c].lfi = 0;
        rd[c].off = 0;
        rd[c].meta = 0;
    }
    memset(&d->fz_root, 0, sizeof(d->fz_root));
    /* BFS from the root, assigning each node's children a region */
    size_t qh = 0, qt = 0, next = 0;
    for (size_t i = 1; i < N; i++) {
        const jnode *nd = &d->nodes[i];
        if (nd->parent == 0 && nd->cp < ROOT_DIRECT) {
            rd[nd->cp].cp = nd->cp;
            rd[nd->cp].lfi = nd->lfi;
            pos[i] = 0x80000000u | nd->cp;
            queue[qt++] = (uint32_t)i;
        }
    }
    /* the root's remaining (non-BMP) children first */
    queue[qt++] = 0;
    pos[0] = FZ_EMPTY;
    while (qh < qt) {
        uint32_t u = queue[qh++];
        uint32_t n = cnt[u + 1] - cnt[u], bits;
        uint32_t size = fz_size(n, &bits);
        jfz *eu = u == 0 ? &d->fz_root
                         : (pos[u] & 0x80000000u) ? &rd[pos[u] & 0x7FFFFFFFu] : &fz[pos[u]];
        eu->off = (uint32_t)next;
        eu->meta = (n << 8) | bits;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t v = kids[cnt[u] + k];
            uint32_t c = d->nodes[v].cp;
            size_t p;
            if (bits == 0) {
                p = next + k;
            } else {
                uint32_t mask = size - 1, h = fz_hash(c, bits);
                while (fz[next + h].cp != FZ_EMPTY) h = (h + 1) & mask;
                p = next + h;
            }
            fz[p].cp = c;
            fz[p].lfi = d->nodes[v].lfi;
            pos[v] = (uint32_t)p;
            if (cnt[v + 1] > cnt[v]) queue[qt++] = v;
        }
        next += size;
    }
    free(d->fz);
    d->fz = fz;
    d->fz_len = total;
    fz = NULL;
    d->fz_valid = 1;
    rc = 0;
out:
    free(cnt);
    free(kids);
    free(pos);
    free(queue);
    free(fz);
    return rc;
}

int jseg_dict_is_frozen(const jseg_dict *d) { return d->fz_valid; }

/* ---- dictionary ------------------------------------------------------- */

jseg_dict *jseg_dict_new(void)
{
    jseg_dict *d = (jseg_dict *)calloc(1, sizeof(jseg_dict));
    if (!d) return NULL;
    d->root_direct = (uint32_t *)calloc(ROOT_DIRECT, sizeof(uint32_t));
    d->tab_bits = 16;
    d->tab = (jslot *)calloc((size_t)1 << d->tab_bits, sizeof(jslot));
    d->cap_lf = 1024;
    d->n_lf = 1;
    d->lfv = (double *)calloc(d->cap_lf, sizeof(double));
    d->lf_freq = (int64_t *)calloc(d->cap_lf, sizeof(int64_t));
    d->lf_map_bits = 12;
    d->lf_map = (uint32_t *)calloc((size_t)1 << d->lf_map_bits, sizeof(uint32_t));
    if (!d->root_direct || !d->tab || !d->lfv || !d->lf_freq || !d->lf_map ||
        new_node(d, 0, 0) != 0) {
        jseg_dict_free(d);
        return NULL;
    }
    d->logtotal = log(0.0); /* like math.log(0) would fail; never used with total 0 */
    return d;
}

void jseg_dict_free(jseg_dict *d)
{
    if (!d) return;
    free(d->nodes);
    free(d->force);
    free(d->root_direct);
    free(d->tab);
    free(d->lfv);
    free(d->lf_freq);
    free(d->lf_map);
    free(d->fz);
    free(d->fz_rd);
    free(d->emit);
    free(d);
}

int64_t jseg_dict_total(const jseg_dict *d) { return d->total; }
size_t jseg_dict_num_nodes(const jseg_dict *d) { return d->n_nodes; }

static void set_total(jseg_dict *d, int64_t total)
{
    d->total = total;
    d->logtotal = log((double)total);
}

int jseg_dict_add_word(jseg_dict *d, const uint32_t *w, size_t n, int64_t freq)
{
    int64_t id = trie_insert(d, w, n);
    if (id < 0) return -1;
    if (id == 0)
        d->nodes[0].freq = freq; /* FREQ[''] never influences a cut */
    else if (set_node_freq(d, (uint32_t)id, freq) < 0)
        return -1;
    set_total(d, d->total + freq);
    if (freq == 0 && !d->force[id]) {
        d->force[id] = 1;
        d->n_force++;
    }
    return 0;
}

int jseg_dict_force_split(jseg_dict *d, const uint32_t *w, size_t n)
{
    int64_t id = trie_insert(d, w, n);
    if (id < 0) return -1;
    if (!d->force[id]) {
        d->force[id] = 1;
        d->n_force++;
    }
    return 0;
}

int jseg_dict_get_freq(const jseg_dict *d, const uint32_t *w, size_t n, int64_t *freq)
{
    int64_t id = trie_find(d, w, n);
    if (id < 0 || (id == 0 && n == 0 && d->nodes[0].freq == 0)) return 0;
    *freq = d->nodes[id].freq;
    return 1;
}

/* Parse Python int() of an ASCII field: optional surrounding whitespace, sign,
 * digits with single underscores between them. */
static int parse_int_field(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || (s[i] >= 9 && s[i] <= 13))) i++;
    while (n > i && (s[n - 1] == ' ' || (s[n - 1] >= 9 && s[n - 1] <= 13))) n--;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i >= n) return -1;
    int64_t v = 0;
    int prev_digit = 0;
    for (; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            if (v > (INT64_MAX - 9) / 10) return -1;
            v = v * 10 + (c - '0');
            prev_digit = 1;
        } else if (c == '_' && prev_digit && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {
            prev_digit = 0;
        } else {
            return -1;
        }
    }
    *out = neg ? -v : v;
    return 0;
}

static int is_bytes_space(unsigned char c) { return c == ' ' || (c >= 9 && c <= 13); }

int jseg_dict_load_buffer(jseg_dict *d, const char *buf, size_t len, const char *name, char *err,
                          size_t errlen)
{
    uint32_t *cps = NULL;
    size_t cap = 0;
    size_t lineno = 0;
    size_t pos = 0;
    int64_t total = d->total;
    while (pos < len) {
        const char *nl = (const char *)memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) + 1 : len;
        const unsigned char *s = (const unsigned char *)buf + pos;
        size_t n = end - pos;
        pos = end;
        lineno++;
        /* bytes.strip() */
        while (n > 0 && is_bytes_space(s[0])) s++, n--;
        while (n > 0 && is_bytes_space(s[n - 1])) n--;
        /* split(' ')[:2] */
        const unsigned char *sp = (const unsigned char *)memchr(s, ' ', n);
        size_t wlen = sp ? (size_t)(sp - s) : n;
        int64_t freq = 0;
        int bad = 0;
        if (!sp) {
            bad = 1;
        } else {
            const unsigned char *f = sp + 1;
            size_t flen = n - wlen - 1;
            const unsigned char *sp2 = (const unsigned char *)memchr(f, ' ', flen);
            if (sp2) flen = (size_t)(sp2 - f);
            if (parse_int_field((const char *)f, flen, &freq) < 0) bad = 1;
        }
        if (!bad) {
            if (cap < wlen + 1) {
                cap = (wlen + 1) * 2;
                uint32_t *nc = (uint32_t *)realloc(cps, cap * sizeof(uint32_t));
                if (!nc) {
                    free(cps);
                    snprintf(err, errlen, "out of memory");
                    return -1;
                }
                cps = nc;
            }
            size_t nc = utf8_decode_se(s, wlen, cps, NULL);
            for (size_t i = 0; i < nc; i++)
                if (cps[i] >= 0xDC80 && cps[i] <= 0xDCFF) bad = 2; /* invalid utf-8 */
            if (!bad) {
                int64_t id = trie_insert(d, cps, nc);
                if (id > 0 && set_node_freq(d, (uint32_t)id, freq) < 0) id = -1;
                if (id == 0) d->nodes[0].freq = freq;
                if (id < 0) {
                    free(cps);
                    snprintf(err, errlen, "out of memory");
                    return -1;
                }
                total += freq;
            }
        }
        if (bad) {
            free(cps);
            snprintf(err, errlen, "invalid dictionary entry in %s at Line %zu: %.*s", name, lineno,
                     (int)(n > 200 ? 200 : n), (const char *)s);
            return -1;
        }
    }
    free(cps);
    set_total(d, total);
    return 0;
}

int jseg_dict_load_file(jseg_dict *d, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -2;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = (char *)malloc(cap);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (;;) {
        if (len == cap) {
            char *nb = (char *)realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "error reading %s", path);
        return -2;
    }
    int rc = jseg_dict_load_buffer(d, buf, len, path, err, errlen);
    free(buf);
    return rc;
}

int jseg_dict_set_hmm_start_trans(jseg_dict *d, const double start[4], const double trans[16])
{
    memcpy(d->start, start, sizeof(d->start));
    memcpy(d->trans, trans, sizeof(d->trans));
    d->has_st = 1;
    return 0;
}

#define EMIT_ROWS (JSEG_HAN_HI - JSEG_HAN_LO + 1)

int jseg_dict_set_hmm_emit(jseg_dict *d, int state, const uint32_t *cps, const double *probs,
                           size_t n)
{
    if (state < 0 || state > 3) return -1;
    if (!d->emit) {
        d->emit = (double(*)[4])malloc(sizeof(double[4]) * EMIT_ROWS);
        if (!d->emit) return -1;
        for (size_t i = 0; i < EMIT_ROWS; i++)
            for (int s = 0; s < 4; s++) d->emit[i][s] = JSEG_MIN_FLOAT;
    }
    for (size_t i = 0; i < n; i++)
        if (cps[i] >= JSEG_HAN_LO && cps[i] <= JSEG_HAN_HI) d->emit[cps[i] - JSEG_HAN_LO][state] = probs[i];
    d->has_emit = 1;
    return 0;
}

int jseg_dict_has_hmm(const jseg_dict *d) { return d->has_st && d->emit != NULL; }

/* ---- work memory ------------------------------------------------------ */

void jseg_work_free(jseg_work *w)
{
    free(w->route_p);
    free(w->route_x);
    free(w->vit);
    free(w->back);
    free(w->states);
    free(w->cps);
    free(w->offs);
    free(w->cends);
    memset(w, 0, sizeof(*w));
}

static int work_route(jseg_work *w, size_t n)
{
    if (w->cap_route >= n + 1) return 0;
    size_t cap = n + 1 < 256 ? 256 : n + 1 + n / 2;
    free(w->route_p);
    free(w->route_x);
    w->route_p = (double *)malloc(cap * sizeof(double));
    w->route_x = (size_t *)malloc(cap * sizeof(size_t));
    if (!w->route_p || !w->route_x) {
        free(w->route_p);
        free(w->route_x);
        w->route_p = NULL;
        w->route_x = NULL;
        w->cap_route = 0;
        return -1;
    }
    w->cap_route = cap;
    return 0;
}

static int work_vit(jseg_work *w, size_t n)
{
    if (w->cap_vit >= n) return 0;
    size_t cap = n < 256 ? 256 : n + n / 2;
    free(w->vit);
    free(w->back);
    free(w->states);
    w->vit = (double *)malloc(8 * sizeof(double));
    w->back = (uint8_t *)malloc(cap * 4);
    w->states = (uint8_t *)malloc(cap);
    if (!w->vit || !w->back || !w->states) {
        free(w->vit);
        free(w->back);
        free(w->states);
        w->vit = NULL;
        w->back = NULL;
        w->states = NULL;
        w->cap_vit = 0;
        return -1;
    }
    w->cap_vit = cap;
    return 0;
}

/* ---- segmentation ----------------------------------------------------- */

#define NOBUF ((size_t)-1)

/* Tokenizer.calc over block cps[s..e): route_x[i] = inclusive end (relative)
 * of the best word starting at relative i. Candidates are visited with x
 * increasing, so `cand >= best` reproduces max() over (prob, x) tuples. */
static void calc_route_frozen(const jseg_dict *d, const uint32_t *cps, size_t s, size_t e,
                              jseg_work *w)
{
    const size_t L = e - s;
    const uint32_t *c = cps + s;
    double *rp = w->route_p;
    size_t *rx = w->route_x;
    const double logtotal = d->logtotal;
    const double *lfv = d->lfv;
    const jfz *fz = d->fz;
    rp[L] = 0.0;
    for (size_t idx = L; idx-- > 0;) {
        double best = 0.0;
        size_t bestx = NOBUF;
        const jfz *en = fz_first(d, c[idx]);
        size_t i = idx;
        while (en) {
            if (en->lfi) {
                double cand = lfv[en->lfi] - logtotal + rp[i + 1];
                if (bestx == NOBUF || cand >= best) {
                    best = cand;
                    bestx = i;
                }
            }
            if (++i >= L) break;
            en = fz_child(fz, en, c[i]);
        }
        if (bestx == NOBUF) {
            /* DAG[idx] == [idx]; FREQ.get(char) is 0 or None -> log(1) == 0 */
            best = 0.0 - logtotal + rp[idx + 1];
            bestx = idx;
        }
        rp[idx] = best;
        rx[idx] = bestx;
    }
}

/* Same on the mutable hash trie (used while the dictionary is being edited). */
static void calc_route_dynamic(const jseg_dict *d, const uint32_t *cps, size_t s, size_t e,
                               jseg_work *w)
{
    const size_t L = e - s;
    const uint32_t *c = cps + s;
    double *rp = w->route_p;
    size_t *rx = w->route_x;
    const double logtotal = d->logtotal;
    const double *lfv = d->lfv;
    const jnode *nodes = d->nodes;
    rp[L] = 0.0;
    for (size_t idx = L; idx-- > 0;) {
        double best = 0.0;
        size_t bestx = NOBUF;
        uint32_t node = child_of(d, 0, c[idx]);
        size_t i = idx;
        while (node) {
            uint32_t lfi = nodes[node].lfi;
            if (lfi) {
                double cand = lfv[lfi] - logtotal + rp[i + 1];
                if (bestx == NOBUF || cand >= best) {
                    best = cand;
                    bestx = i;
                }
            }
            if (++i >= L) break;
            node = child_of(d, node, c[i]);
        }
        if (bestx == NOBUF) {
            best = 0.0 - logtotal + rp[idx + 1];
            bestx = idx;
        }
        rp[idx] = best;
        rx[idx] = bestx;
    }
}

/* FREQ.get(word) is truthy (non-zero freq)? */
static int word_has_freq(const jseg_dict *d, const uint32_t *w, size_t n)
{
    if (n == 0) return d->nodes[0].freq != 0;
    if (d->fz_valid) {
        const jfz *en = fz_first(d, w[0]);
        for (size_t i = 1; en && i < n; i++) en = fz_child(d->fz, en, w[i]);
        return en && en->lfi != 0;
    }
    int64_t id = trie_find(d, w, n);
    return id > 0 && d->nodes[id].freq != 0;
}

static inline size_t emit_word(const jseg_dict *d, const uint32_t *cps, size_t a, size_t b,
                               size_t *ends, size_t nt)
{
    if (d->n_force && b - a > 1) {
        int64_t id = trie_find(d, cps + a, b - a);
        if (id > 0 && d->force[id]) {
            for (size_t i = a + 1; i <= b; i++) ends[nt++] = i;
            return nt;
        }
    }
    ends[nt++] = b;
    return nt;
}

/* finalseg.__cut on a run of [\u4E00-\u9FD5] characters cps[p..q). */
static size_t viterbi_cut(const jseg_dict *d, const uint32_t *cps, size_t p, size_t q,
                          jseg_work *w, size_t *ends, size_t nt)
{
    const size_t L = q - p;
    const double(*emit)[4] = (const double(*)[4])d->emit;
    const double *tr = d->trans;
    uint8_t *back = w->back;
    uint8_t *st = w->states;
    double prev[4], cur[4];
    /* PrevStatus: B <- E,S ; E <- B,M ; M <- M,B ; S <- S,E (in that order) */
    static const uint8_t P0[4] = {JSEG_E, JSEG_B, JSEG_M, JSEG_S};
    static const uint8_t P1[4] = {JSEG_S, JSEG_M, JSEG_B, JSEG_E};
    const double *em = emit[cps[p] - JSEG_HAN_LO];
    for (int y = 0; y < 4; y++) prev[y] = d->start[y] + em[y];
    for (size_t t = 1; t < L; t++) {
        em = emit[cps[p + t] - JSEG_HAN_LO];
        uint8_t *bk = back + 4 * t;
        for (int y = 0; y < 4; y++) {
            int a = P0[y], b = P1[y];
            double pa = prev[a] + tr[a * 4 + y] + em[y];
            double pb = prev[b] + tr[b * 4 + y] + em[y];
            /* max([(pa, a), (pb, b)]) */
            if (pb > pa || (pb == pa && b > a)) {
                cur[y] = pb;
                bk[y] = (uint8_t)b;
            } else {
                cur[y] = pa;
                bk[y] = (uint8_t)a;
            }
        }
        memcpy(prev, cur, sizeof(prev));
    }
    /* max((V[E], 'E'), (V[S], 'S')) */
    uint8_t s = prev[JSEG_S] >= prev[JSEG_E] ? JSEG_S : JSEG_E;
    st[L - 1] = s;
    for (size_t t = L - 1; t > 0; t--) {
        s = back[4 * t + s];
        st[t - 1] = s;
    }
    size_t begin = 0, nexti = 0;
    for (size_t i = 0; i < L; i++) {
        switch (st[i]) {
        case JSEG_B:
            begin = i;
            break;
        case JSEG_E:
            nt = emit_word(d, cps, p + begin, p + i + 1, ends, nt);
            nexti = i + 1;
            break;
        case JSEG_S:
            ends[nt++] = p + i + 1;
            nexti = i + 1;
            break;
        default:
            break;
        }
    }
    if (nexti < L) nt = emit_word(d, cps, p + nexti, q, ends, nt);
    return nt;
}

/* finalseg.cut on buf = cps[p..q) (all characters match re_han_default). */
static size_t finalseg_cut(const jseg_dict *d, const uint32_t *cps, size_t p, size_t q,
                           jseg_work *w, size_t *ends, size_t nt)
{
    while (p < q) {
        size_t r = p;
        if (cps[p] >= JSEG_HAN_LO && cps[p] <= JSEG_HAN_HI) {
            while (r < q && cps[r] >= JSEG_HAN_LO && cps[r] <= JSEG_HAN_HI) r++;
            if (work_vit(w, r - p) < 0) return NOBUF;
            nt = viterbi_cut(d, cps, p, r, w, ends, nt);
        } else {
            while (r < q && !(cps[r] >= JSEG_HAN_LO && cps[r] <= JSEG_HAN_HI)) r++;
            /* re_skip = ([a-zA-Z0-9]+(?:\.\d+)?%?) split, non-empty pieces */
            size_t i = p, seg = p;
            while (i < r) {
                if (jseg_is_ascii_alnum(cps[i])) {
                    size_t j = i + 1;
                    while (j < r && jseg_is_ascii_alnum(cps[j])) j++;
                    if (j + 1 < r && cps[j] == '.' && cps[j + 1] >= '0' && cps[j + 1] <= '9') {
                        j += 2;
                        while (j < r && cps[j] >= '0' && cps[j] <= '9') j++;
                    }
                    if (j < r && cps[j] == '%') j++;
                    if (i > seg) ends[nt++] = i;
                    ends[nt++] = j;
                    seg = i = j;
                } else {
                    i++;
                }
            }
            if (r > seg) ends[nt++] = r;
        }
        p = r;
    }
    return nt;
}

/* Flush __cut_DAG's buf = cps[bs..be). */
static size_t flush_buf(const jseg_dict *d, const uint32_t *cps, size_t bs, size_t be,
                        jseg_work *w, size_t *ends, size_t nt)
{
    if (be - bs == 1) {
        ends[nt++] = be;
        return nt;
    }
    if (word_has_freq(d, cps + bs, be - bs)) {
        for (size_t i = bs + 1; i <= be; i++) ends[nt++] = i;
        return nt;
    }
    return finalseg_cut(d, cps, bs, be, w, ends, nt);
}

static size_t cut_dag(const jseg_dict *d, const uint32_t *cps, size_t s, size_t e, jseg_work *w,
                      size_t *ends, size_t nt)
{
    const size_t *rx = w->route_x;
    size_t x = s, bs = NOBUF;
    while (x < e) {
        size_t y = s + rx[x - s] + 1;
        if (y - x == 1) {
            if (bs == NOBUF) bs = x;
        } else {
            if (bs != NOBUF) {
                nt = flush_buf(d, cps, bs, x, w, ends, nt);
                if (nt == NOBUF) return NOBUF;
                bs = NOBUF;
            }
            ends[nt++] = y;
        }
        x = y;
    }
    if (bs != NOBUF) nt = flush_buf(d, cps, bs, e, w, ends, nt);
    return nt;
}

static size_t cut_dag_no_hmm(const uint32_t *cps, size_t s, size_t e, const jseg_work *w,
                             size_t *ends, size_t nt)
{
    const size_t *rx = w->route_x;
    size_t x = s;
    int inbuf = 0;
    while (x < e) {
        size_t y = s + rx[x - s] + 1;
        if (y - x == 1 && jseg_is_ascii_alnum(cps[x])) {
            inbuf = 1;
        } else {
            if (inbuf) {
                ends[nt++] = x;
                inbuf = 0;
            }
            ends[nt++] = y;
        }
        x = y;
    }
    if (inbuf) ends[nt++] = e;
    return nt;
}

size_t jseg_cut(const jseg_dict *d, const uint32_t *cps, size_t n, int hmm, jseg_work *w,
                size_t *ends)
{
    size_t nt = 0, pos = 0;
    if (hmm && !jseg_dict_has_hmm(d)) return NOBUF;
    while (pos < n) {
        uint32_t c = cps[pos];
        if (jseg_is_han_default(c)) {
            size_t e = pos + 1;
            while (e < n && jseg_is_han_default(cps[e])) e++;
            if (work_route(w, e - pos) < 0) return NOBUF;
            if (d->fz_valid)
                calc_route_frozen(d, cps, pos, e, w);
            else
                calc_route_dynamic(d, cps, pos, e, w);
            if (hmm)
                nt = cut_dag(d, cps, pos, e, w, ends, nt);
            else
                nt = cut_dag_no_hmm(cps, pos, e, w, ends, nt);
            if (nt == NOBUF) return NOBUF;
            pos = e;
        } else {
            /* non-han block: re_skip (\r\n|\s) pieces are tokens, everything
             * else one token per character -- so only "\r\n" is joined. */
            pos += (c == '\r' && pos + 1 < n && cps[pos + 1] == '\n') ? 2 : 1;
            ends[nt++] = pos;
        }
    }
    return nt;
}

size_t jseg_cut_utf8(const jseg_dict *d, const char *s, size_t len, int hmm, jseg_work *w,
                     size_t *byte_ends)
{
    if (w->cap_text < len + 1) {
        size_t cap = len + 1 < 1024 ? 1024 : len + 1 + len / 2;
        free(w->cps);
        free(w->offs);
        free(w->cends);
        w->cps = (uint32_t *)malloc(cap * sizeof(uint32_t));
        w->offs = (size_t *)malloc(cap * sizeof(size_t));
        w->cends = (size_t *)malloc(cap * sizeof(size_t));
        if (!w->cps || !w->offs || !w->cends) {
            free(w->cps);
            free(w->offs);
            free(w->cends);
            w->cps = NULL;
            w->offs = NULL;
            w->cends = NULL;
            w->cap_text = 0;
            return NOBUF;
        }
        w->cap_text = cap;
    }
    size_t n = utf8_decode_se((const unsigned char *)s, len, w->cps, w->offs);
    size_t nt = jseg_cut(d, w->cps, n, hmm, w, w->cends);
    if (nt == NOBUF) return NOBUF;
    for (size_t i = 0; i < nt; i++) byte_ends[i] = w->offs[w->cends[i]];
    return nt;
}
