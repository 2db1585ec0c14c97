/*
 * wordpiece.h -- BERT tokenisation (BasicTokenizer + greedy WordPiece) in plain C (no Python.h).
 *
 * Reproduces uer_like/tokenizers/bert.py: BertTokenizer.tokenize_with_starts(text) followed by
 * Vocab.convert_tokens_to_ids, character for character: control characters, U+0000 and U+FFFD are
 * dropped, whitespace separates, CJK characters are single units (never lower-cased), other runs are
 * lower-cased character-wise (str.lower() per character), NFD-decomposed with Mn characters dropped
 * (when do_lower), split on punctuation, then WordPiece'd (a word longer than 100 characters is [UNK]).
 * starts[i] is the character offset of piece i in the text, or -1 (continuation pieces, and pieces
 * after the first of a run whose length normalisation changed). Unicode tables: unicode_tables.h
 * (scripts/gen_unicode_tables.py, from Python's unicodedata).
 *
 * A wp_vocab is read-only once built: any number of threads may tokenize with it concurrently, each
 * with its own wp_work.
 */
#ifndef UER_LIKE_WORDPIECE_H
#define UER_LIKE_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wp_vocab wp_vocab;

wp_vocab *wp_vocab_new(void);
void wp_vocab_free(wp_vocab *v);
/* Vocab.w2i.setdefault(token, id): the first id of a token wins. 0, or -1 on out of memory. */
int wp_vocab_add(wp_vocab *v, const char *utf8, size_t len, int32_t id);
void wp_vocab_set_unk(wp_vocab *v, int32_t unk_id);
/* id of the token, or -1 */
int32_t wp_vocab_get(const wp_vocab *v, const char *utf8, size_t len);
size_t wp_vocab_size(const wp_vocab *v);

/* Scratch memory and output of wp_tokenize (zero-initialise; free with wp_work_free). */
typedef struct {
    int32_t *ids;      /* output: piece ids */
    int64_t *starts;   /* output: piece start offsets or -1 */
    size_t n, cap;     /* output count / capacity */
    uint32_t *run, *low, *norm;
    size_t cap_run, cap_low, cap_norm;
    char *key;         /* "##" + UTF-8 of a word */
    size_t *koff;      /* byte offset of each char of the word in key + 2 */
    size_t cap_key, cap_koff;
    int32_t *tmp;
    size_t cap_tmp;
} wp_work;

void wp_work_free(wp_work *w);

/* Tokenize cps[0..n); the result replaces w->ids / w->starts / w->n. 0, or -1 on out of memory. */
int wp_tokenize(const wp_vocab *v, const uint32_t *cps, size_t n, int do_lower, wp_work *w);

/* The same character classes as bert.py (exposed for the instance builder). */
int wp_is_cjk(uint32_t cp);
/* The Unicode version of the tables compiled in (unicode_tables.h's UT_UNIDATA_VERSION). */
const char *wp_unidata_version(void);

#endif /* UER_LIKE_WORDPIECE_H */
