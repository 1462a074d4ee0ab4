/*
 * Fractional indexing (see fracindex.h): a port of rocicorp's
 * fractional-indexing (src/index.js, CC0), kept step for step so that its
 * JavaScript twin (couchapp/imes/_attachments/lib/fracindex.js) gives the very
 * same keys. Keys are built in a fixed buffer; nothing here allocates but
 * the n-key functions' results.
 */
#include "state/fracindex.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

const char fracindex_digits[63] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#define BASE 62
/* Room for a key, one midpoint step past the limit, and a suffix: the limit
 * is checked once the key is complete. */
#define SB_CAP (FRACINDEX_MAX + FRACINDEX_SUFFIX_MAX + 8)

struct sb {
    char s[SB_CAP];
    size_t n;
    bool over;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
    if (b->over || b->n + n >= SB_CAP) {
        b->over = true;
        return;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_addc(struct sb *b, char c)
{
    sb_add(b, &c, 1);
}

static int digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 36;
    return -1;
}

/* Length of the integer part a head character announces, 0 if none. */
static size_t int_len(char head)
{
    if (head >= 'a' && head <= 'z')
        return (size_t)(head - 'a') + 2;
    if (head >= 'A' && head <= 'Z')
        return (size_t)('Z' - head) + 2;
    return 0;
}

/* "A" followed by 26 zeros: the smallest integer, reserved so that there is
 * always room before the first key. */
static bool is_smallest_int(const char *s, size_t n)
{
    if (n != 27 || s[0] != 'A')
        return false;
    for (size_t i = 1; i < n; i++)
        if (s[i] != '0')
            return false;
    return true;
}

bool fracindex_valid(const char *key)
{
    size_t n, il;

    if (!key || !*key)
        return false;
    n = strlen(key);
    if (n > FRACINDEX_MAX)
        return false;
    il = int_len(key[0]);
    if (il == 0 || il > n)
        return false;
    for (size_t i = 1; i < n; i++)
        if (digit(key[i]) < 0)
            return false;
    if (n > il && key[n - 1] == '0')
        return false;
    return !is_smallest_int(key, n);
}

/* A fraction strictly between fractions a and b (b NULL: 1), appended to out.
 * Neither ends in '0'; a < b. rocicorp's midpoint, its recursion unrolled. */
static void midpoint(const char *a, const char *b, struct sb *out)
{
    for (;;) {
        if (b) {
            /* Drop the common prefix, reading a as padded with zeros (b
             * cannot end inside it: it would then be smaller than a). */
            size_t n = 0, alen = strlen(a);
            while ((n < alen ? a[n] : '0') == b[n])
                n++;
            sb_add(out, b, n);
            a += n < alen ? n : alen;
            b += n;
        }
        int da = *a ? digit(*a) : 0;
        int db = b ? digit(*b) : BASE;
        if (db - da > 1) {
            sb_addc(out, fracindex_digits[(da + db + 1) / 2]); /* Math.round(mean) */
            return;
        }
        /* The first digits are consecutive. */
        if (b && b[1]) {
            sb_addc(out, b[0]);
            return;
        }
        /* b is NULL or one digit: keep a's first digit and go past the
         * rest of a, e.g. midpoint("49", "5") = "4" + midpoint("9", NULL). */
        sb_addc(out, fracindex_digits[da]);
        if (*a)
            a++;
        b = NULL;
    }
}

/* Integer part x (validated) plus or minus one, into out. Returns false when
 * it cannot (past "z" + 25 'z's, or below "A" + 26 zeros). */
static bool increment_int(const char *x, size_t n, struct sb *out)
{
    char d[28];
    char head = x[0];
    size_t nd = n - 1;
    bool carry = true;

    if (n < 2 || n > sizeof(d))
        return false;
    memcpy(d, x + 1, nd);
    for (size_t i = nd; carry && i-- > 0;) {
        int v = digit(d[i]) + 1;
        if (v == BASE) {
            d[i] = '0';
        } else {
            d[i] = fracindex_digits[v];
            carry = false;
        }
    }
    if (carry) {
        if (head == 'Z') {
            sb_add(out, "a0", 2);
            return true;
        }
        if (head == 'z')
            return false;
        head++;
        if (head > 'a')
            d[nd++] = '0';
        else
            nd--;
    }
    sb_addc(out, head);
    sb_add(out, d, nd);
    return true;
}

static bool decrement_int(const char *x, size_t n, struct sb *out)
{
    char d[28];
    char head = x[0];
    size_t nd = n - 1;
    bool borrow = true;

    if (n < 2 || n > sizeof(d))
        return false;
    memcpy(d, x + 1, nd);
    for (size_t i = nd; borrow && i-- > 0;) {
        int v = digit(d[i]) - 1;
        if (v < 0) {
            d[i] = 'z';
        } else {
            d[i] = fracindex_digits[v];
            borrow = false;
        }
    }
    if (borrow) {
        if (head == 'a') {
            sb_add(out, "Zz", 2);
            return true;
        }
        if (head == 'A')
            return false;
        head--;
        if (head < 'Z')
            d[nd++] = 'z';
        else
            nd--;
    }
    sb_addc(out, head);
    sb_add(out, d, nd);
    return true;
}

/* Compares the first n bytes of x with the NUL-terminated s as strings. */
static int cmp_n(const char *x, size_t n, const char *s)
{
    size_t sl = strlen(s);
    int c = memcmp(x, s, n < sl ? n : sl);
    if (c)
        return c;
    return n < sl ? -1 : n > sl ? 1 : 0;
}

/* rocicorp's generateKeyBetween, into out (cleared first). */
static int between_sb(const char *a, const char *b, struct sb *out)
{
    out->n = 0;
    out->over = false;
    out->s[0] = '\0';
    if ((a && !fracindex_valid(a)) || (b && !fracindex_valid(b)))
        return -EINVAL;
    if (a && b && strcmp(a, b) >= 0)
        return -EINVAL;
    if (!a && !b) {
        sb_add(out, "a0", 2);
    } else if (!a) {
        size_t ib = int_len(b[0]);
        const char *fb = b + ib;
        if (is_smallest_int(b, ib)) {
            sb_add(out, b, ib);
            midpoint("", fb, out);
        } else if (*fb) {
            sb_add(out, b, ib); /* the integer alone sorts before b */
        } else if (!decrement_int(b, ib, out)) {
            return -ERANGE;
        }
    } else if (!b) {
        size_t ia = int_len(a[0]);
        if (!increment_int(a, ia, out)) {
            out->n = 0;
            sb_add(out, a, ia);
            midpoint(a + ia, NULL, out);
        }
    } else {
        size_t ia = int_len(a[0]), ib = int_len(b[0]);
        if (ia == ib && memcmp(a, b, ia) == 0) {
            sb_add(out, a, ia);
            midpoint(a + ia, b + ib, out);
        } else {
            if (!increment_int(a, ia, out))
                return -ERANGE;
            if (cmp_n(out->s, out->n, b) >= 0) {
                out->n = 0;
                sb_add(out, a, ia);
                midpoint(a + ia, NULL, out);
            }
        }
    }
    if (out->over || out->n > FRACINDEX_MAX)
        return -ERANGE;
    return 0;
}

static int put(const struct sb *k, char *out, size_t size)
{
    if (k->n + 1 > size)
        return -ENOSPC;
    memcpy(out, k->s, k->n + 1);
    return (int)k->n;
}

int fracindex_between(const char *a, const char *b, char *out, size_t size)
{
    struct sb k;
    int r = between_sb(a, b, &k);
    return r < 0 ? r : put(&k, out, size);
}

static bool suffix_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > FRACINDEX_SUFFIX_MAX || s[n - 1] == '0')
        return false;
    for (size_t i = 0; i < n; i++)
        if (digit(s[i]) < 0)
            return false;
    return true;
}

static bool is_prefix(const char *p, size_t n, const char *s)
{
    return strncmp(p, s, n) == 0;
}

static int between_suffix_sb(const char *a, const char *b, const char *suffix, struct sb *k)
{
    size_t sl;
    int r;

    if (!suffix_ok(suffix))
        return -EINVAL;
    sl = strlen(suffix);
    if ((r = between_sb(a, b, k)) < 0)
        return r;
    for (;;) {
        size_t n = k->n;
        sb_add(k, suffix, sl);
        if (k->over || k->n > FRACINDEX_MAX)
            return -ERANGE;
        if (!b || (strcmp(k->s, b) < 0 && !is_prefix(k->s, k->n, b)))
            return 0;
        /* k is a prefix of b: k + anything may pass b. Move k towards b. */
        k->s[n] = '\0';
        char prev[SB_CAP];
        memcpy(prev, k->s, n + 1);
        if ((r = between_sb(prev, b, k)) < 0)
            return r;
    }
}

int fracindex_between_suffix(const char *a, const char *b, const char *suffix, char *out,
                             size_t size)
{
    struct sb k;
    int r = between_suffix_sb(a, b, suffix, &k);
    return r < 0 ? r : put(&k, out, size);
}

/* FRACINDEX_JITTER_LEN random digits, the last not '0', and a NUL. */
static int random_suffix(char *s)
{
    unsigned char r[FRACINDEX_JITTER_LEN];
    size_t got = 0;

    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i + 1 < sizeof(r); i++)
        s[i] = fracindex_digits[r[i] % BASE];
    s[sizeof(r) - 1] = fracindex_digits[1 + r[sizeof(r) - 1] % (BASE - 1)];
    s[sizeof(r)] = '\0';
    return 0;
}

int fracindex_between_jitter(const char *a, const char *b, char *out, size_t size)
{
    char suffix[FRACINDEX_JITTER_LEN + 1];
    int r = random_suffix(suffix);
    return r < 0 ? r : fracindex_between_suffix(a, b, suffix, out, size);
}

void fracindex_free_keys(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        keys[i] = NULL;
    }
}

static int new_key(const char *a, const char *b, char **out)
{
    struct sb k;
    int r = between_sb(a, b, &k);
    if (r < 0)
        return r;
    *out = strdup(k.s);
    return *out ? 0 : -ENOMEM;
}

/* rocicorp's generateNKeysBetween; keys[0..n) are set on success. */
static int n_between(const char *a, const char *b, size_t n, char **keys)
{
    size_t mid;
    int r;

    if (n == 0)
        return 0;
    if (n == 1)
        return new_key(a, b, &keys[0]);
    if (!b) {
        for (size_t i = 0; i < n; i++) {
            if ((r = new_key(i ? keys[i - 1] : a, NULL, &keys[i])) < 0) {
                fracindex_free_keys(keys, i);
                return r;
            }
        }
        return 0;
    }
    if (!a) {
        /* Made from the end backwards, stored in order. */
        for (size_t i = 0; i < n; i++) {
            size_t at = n - 1 - i;
            if ((r = new_key(NULL, i ? keys[at + 1] : b, &keys[at])) < 0) {
                fracindex_free_keys(keys + at + 1, i);
                return r;
            }
        }
        return 0;
    }
    mid = n / 2;
    if ((r = new_key(a, b, &keys[mid])) < 0)
        return r;
    if ((r = n_between(a, keys[mid], mid, keys)) < 0) {
        fracindex_free_keys(keys + mid, 1);
        return r;
    }
    if ((r = n_between(keys[mid], b, n - mid - 1, keys + mid + 1)) < 0) {
        fracindex_free_keys(keys, mid + 1);
        return r;
    }
    return 0;
}

int fracindex_n_between(const char *a, const char *b, size_t n, char **keys)
{
    if (n > FRACINDEX_N_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        keys[i] = NULL;
    return n_between(a, b, n, keys);
}

int fracindex_n_between_suffix(const char *a, const char *b, size_t n, const char *suffix,
                               char **keys)
{
    struct sb j;
    uint64_t span = 1;
    size_t m = n ? n - 1 : 0, w = 0;
    int r;

    if (n > FRACINDEX_N_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        keys[i] = NULL;
    if (n == 0)
        return suffix_ok(suffix) ? 0 : -EINVAL;
    if ((r = between_suffix_sb(a, b, suffix, &j)) < 0)
        return r;
    /* w digits give 62^w >= m + 1 steps: the m fractions i * 62^w / (m + 1)
     * are distinct and not zero. */
    while (span < (uint64_t)m + 1) {
        span *= BASE;
        w++;
    }
    if (j.n + w > FRACINDEX_MAX)
        return -ERANGE;
    for (size_t i = 0; i < n; i++) {
        char *k = malloc(j.n + w + 1);
        if (!k) {
            fracindex_free_keys(keys, i);
            return -ENOMEM;
        }
        memcpy(k, j.s, j.n + 1);
        if (i > 0) {
            uint64_t v = (uint64_t)i * span / ((uint64_t)m + 1);
            size_t len = j.n + w;
            for (size_t p = w; p-- > 0;) {
                k[j.n + p] = fracindex_digits[v % BASE];
                v /= BASE;
            }
            while (k[len - 1] == '0')
                len--;
            k[len] = '\0';
        }
        keys[i] = k;
    }
    return 0;
}

int fracindex_n_between_jitter(const char *a, const char *b, size_t n, char **keys)
{
    char suffix[FRACINDEX_JITTER_LEN + 1];
    int r = random_suffix(suffix);
    return r < 0 ? r : fracindex_n_between_suffix(a, b, n, suffix, keys);
}
