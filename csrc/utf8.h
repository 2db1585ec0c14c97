/*
 * utf8.h -- UTF-8 -> code point decoding shared by the native tokenizers.
 *
 * utf8_decode_se() decodes exactly like Python's
 *     bytes.decode('utf-8', 'surrogateescape')
 * i.e. strict UTF-8 (no overlongs, no encoded surrogates, nothing above
 * U+10FFFF); every byte of an invalid or truncated sequence becomes the lone
 * surrogate U+DC00 + byte (U+DC80..U+DCFF). It never fails and never reads
 * past s[len-1]. NUL bytes are ordinary characters.
 */
#ifndef UER_LIKE_UTF8_H
#define UER_LIKE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decode s[0..len) into cps (capacity >= len). If offs is not NULL it receives
 * the byte offset of every code point plus offs[count] = len (capacity
 * >= len + 1). Returns the number of code points. */
static inline size_t utf8_decode_se(const unsigned char *s, size_t len, uint32_t *cps,
                                    size_t *offs)
{
    size_t i = 0, n = 0;
    while (i < len) {
        unsigned c = s[i];
        uint32_t cp;
        size_t k = 0; /* sequence length, 0 = invalid */
        if (c < 0x80) {
            cp = c;
            k = 1;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 < len && (s[i + 1] & 0xC0) == 0x80) {
                cp = ((uint32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F);
                k = 2;
            }
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 < len) {
                unsigned c1 = s[i + 1], c2 = s[i + 2];
                unsigned lo = 0x80, hi = 0xBF;
                if (c == 0xE0) lo = 0xA0;
                else if (c == 0xED) hi = 0x9F;
                if (c1 >= lo && c1 <= hi && (c2 & 0xC0) == 0x80) {
                    cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(c1 & 0x3F) << 6) | (c2 & 0x3F);
                    k = 3;
                }
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 < len) {
                unsigned c1 = s[i + 1], c2 = s[i + 2], c3 = s[i + 3];
                unsigned lo = 0x80, hi = 0xBF;
                if (c == 0xF0) lo = 0x90;
                else if (c == 0xF4) hi = 0x8F;
                if (c1 >= lo && c1 <= hi && (c2 & 0xC0) == 0x80 && (c3 & 0xC0) == 0x80) {
                    cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(c1 & 0x3F) << 12) |
                         ((uint32_t)(c2 & 0x3F) << 6) | (c3 & 0x3F);
                    k = 4;
                }
            }
        }
        if (k == 0) {
            cp = 0xDC00u + c; /* surrogateescape */
            k = 1;
        }
        if (offs) offs[n] = i;
        cps[n++] = cp;
        i += k;
    }
    if (offs) offs[n] = len;
    return n;
}

/* Number of UTF-8 bytes needed for code point c (lone surrogates: 3, as with
 * 'surrogatepass'). */
static inline size_t utf8_len(uint32_t c)
{
    return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}

/* Encode c (must be < 0x110000) at out; returns bytes written. */
static inline size_t utf8_put(unsigned char *out, uint32_t c)
{
    if (c < 0x80) {
        out[0] = (unsigned char)c;
        return 1;
    } else if (c < 0x800) {
        out[0] = (unsigned char)(0xC0 | (c >> 6));
        out[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    } else if (c < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (c >> 12));
        out[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (c >> 18));
    out[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

#endif /* UER_LIKE_UTF8_H */
