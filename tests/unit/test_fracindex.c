/* Fractional index: rocicorp's own expectations, edge cases, random insert /
 * move / delete sequences that must keep a strict order with short keys,
 * jitter, and the vectors shared with the JavaScript version.
 *
 * tests/unit/fracindex_vectors.json is made by this test: run it with
 * FRACINDEX_WRITE_VECTORS=1 to rewrite the file after a deliberate change;
 * otherwise the test checks the file says what this code computes, and
 * tests/integration/fracindex.test.mjs checks the JavaScript against it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/fracindex.h"

#define VECTORS IMES_SOURCE_DIR "/tests/unit/fracindex_vectors.json"

/* A small deterministic generator (xorshift64*), so the random walks and the
 * vectors are the same on every run. */
static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s ? s : 0x9E3779B97F4A7C15ull;
}

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng() % n);
}

static void expect_between(const char *a, const char *b, const char *want)
{
    char out[FRACINDEX_MAX + 1];
    int r = fracindex_between(a, b, out, sizeof(out));

    if (r < 0)
        fail_msg("between(%s, %s): error %d, want %s", a ? a : "null", b ? b : "null", r, want);
    if (strcmp(out, want) != 0)
        fail_msg("between(%s, %s) = %s, want %s", a ? a : "null", b ? b : "null", out, want);
    assert_int_equal(r, (int)strlen(want));
    assert_true(fracindex_valid(out));
    if (a)
        assert_true(strcmp(a, out) < 0);
    if (b)
        assert_true(strcmp(out, b) < 0);
}

static void expect_between_error(const char *a, const char *b, int err)
{
    char out[FRACINDEX_MAX + 1];
    assert_int_equal(fracindex_between(a, b, out, sizeof(out)), err);
}

/* The cases of rocicorp's index.test.js. */
static void rocicorp_cases(void **state)
{
    expect_between(NULL, NULL, "a0");
    expect_between(NULL, "a0", "Zz");
    expect_between(NULL, "Zz", "Zy");
    expect_between("a0", NULL, "a1");
    expect_between("a1", NULL, "a2");
    expect_between("a0", "a1", "a0V");
    expect_between("a1", "a2", "a1V");
    expect_between("a0V", "a1", "a0l");
    expect_between("Zz", "a0", "ZzV");
    expect_between("Zz", "a1", "a0");
    expect_between(NULL, "Y00", "Xzzz");
    expect_between("bzz", NULL, "c000");
    expect_between("a0", "a0V", "a0G");
    expect_between("a0", "a0G", "a08");
    expect_between("b125", "b129", "b127");
    expect_between("a0", "a1V", "a1");
    expect_between("Zz", "a01", "a0");
    expect_between(NULL, "a0V", "a0");
    expect_between(NULL, "b999", "b99");
    expect_between(NULL, "A000000000000000000000000001", "A000000000000000000000000000V");
    expect_between("zzzzzzzzzzzzzzzzzzzzzzzzzzy", NULL, "zzzzzzzzzzzzzzzzzzzzzzzzzzz");
    expect_between("zzzzzzzzzzzzzzzzzzzzzzzzzzz", NULL, "zzzzzzzzzzzzzzzzzzzzzzzzzzzV");
    expect_between_error(NULL, "A00000000000000000000000000", -EINVAL);
    expect_between_error("a00", NULL, -EINVAL);
    expect_between_error("a00", "a1", -EINVAL);
    expect_between_error("0", "1", -EINVAL);
    expect_between_error("a1", "a0", -EINVAL);
}

static void expect_n(const char *a, const char *b, size_t n, const char *want)
{
    char *keys[64], joined[1024] = "";

    assert_true(n <= 64);
    assert_int_equal(fracindex_n_between(a, b, n, keys), 0);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(joined, " ");
        strcat(joined, keys[i]);
    }
    fracindex_free_keys(keys, n);
    assert_string_equal(joined, want);
}

static void rocicorp_n_cases(void **state)
{
    expect_n(NULL, NULL, 5, "a0 a1 a2 a3 a4");
    expect_n("a4", NULL, 10, "a5 a6 a7 a8 a9 aA aB aC aD aE");
    expect_n(NULL, "a0", 5, "Zv Zw Zx Zy Zz");
    expect_n("a0", "a2", 20,
             "a04 a08 a0G a0K a0O a0V a0Z a0d a0l a0t a1 a14 a18 a1G a1O a1V a1Z a1d a1l a1t");
    expect_n("a0", "a1", 0, "");
    expect_n("a0", "a1", 1, "a0V");
}

static void validation(void **state)
{
    char big[FRACINDEX_MAX + 2];

    assert_true(fracindex_valid("a0"));
    assert_true(fracindex_valid("Zz"));
    assert_true(fracindex_valid("a0V"));
    assert_true(fracindex_valid("b00"));
    assert_true(fracindex_valid("A000000000000000000000000000V"));
    assert_false(fracindex_valid(NULL));
    assert_false(fracindex_valid(""));
    assert_false(fracindex_valid("a"));    /* integer part cut short */
    assert_false(fracindex_valid("b0"));   /* b needs 2 digits */
    assert_false(fracindex_valid("a00"));  /* fraction ends in 0 */
    assert_false(fracindex_valid("a0V0")); /* idem */
    assert_false(fracindex_valid("0a"));   /* bad head */
    assert_false(fracindex_valid("a0-"));  /* not a base-62 digit */
    assert_false(fracindex_valid("a0 "));
    assert_false(fracindex_valid("a0\xc3\xa9"));
    assert_false(fracindex_valid("A00000000000000000000000000")); /* reserved */
    memset(big, 'V', sizeof(big) - 1);
    big[0] = 'a';
    big[1] = '0';
    big[FRACINDEX_MAX] = '\0';
    assert_true(fracindex_valid(big));
    big[FRACINDEX_MAX] = 'V';
    big[FRACINDEX_MAX + 1] = '\0';
    assert_false(fracindex_valid(big));
}

static void edges(void **state)
{
    char out[FRACINDEX_MAX + 1], small[3];
    const char *zmax = "zzzzzzzzzzzzzzzzzzzzzzzzzzz";
    const char *amin1 = "A000000000000000000000000001";

    expect_between_error("a0", "a0", -EINVAL); /* equal keys: nothing between */
    /* Past the largest integer only fractions remain; below the smallest too. */
    expect_between(zmax, NULL, "zzzzzzzzzzzzzzzzzzzzzzzzzzzV");
    expect_between(NULL, amin1, "A000000000000000000000000000V");
    expect_between(NULL, "A000000000000000000000000000V", "A000000000000000000000000000G");
    /* Across the sign: Zz is the last negative integer, a0 the first. */
    expect_between("Zz", NULL, "a0");
    expect_between(NULL, "a0", "Zz");
    expect_between("Zy", "a0", "Zz");
    /* Long common prefixes, and a prefix of the other key. */
    expect_between("a0VVVV1", "a0VVVV2", "a0VVVV1V");
    expect_between("a0V", "a0V1", "a0V0V");
    /* Output buffer too small: nothing half written counts. */
    assert_int_equal(fracindex_between("a0", "a1", small, sizeof(small)), -ENOSPC);
    assert_int_equal(fracindex_between("a0", "a1", out, 4), 3);
    /* Suffix rules. */
    assert_int_equal(fracindex_between_suffix("a0", "a1", "", out, sizeof(out)), -EINVAL);
    assert_int_equal(fracindex_between_suffix("a0", "a1", "10", out, sizeof(out)), -EINVAL);
    assert_int_equal(fracindex_between_suffix("a0", "a1", "1-", out, sizeof(out)), -EINVAL);
    assert_int_equal(fracindex_between_suffix("a0", "a1", "123456789", out, sizeof(out)), -EINVAL);
    assert_int_equal(fracindex_between_suffix("a0", "a1", "abc1", out, sizeof(out)), 7);
    assert_string_equal(out, "a0Vabc1");
    /* between(a0, a0Vz) is a0V, a prefix of b: the key moves towards b. */
    assert_true(fracindex_between_suffix("a0", "a0Vz", "zzz1", out, sizeof(out)) > 0);
    assert_true(strcmp(out, "a0") > 0 && strcmp(out, "a0Vz") < 0);
    assert_true(strncmp(out, "a0Vz", strlen(out)) != 0);
    assert_true(fracindex_valid(out));
    /* Too many keys at once. */
    {
        char *k[1];
        assert_int_equal(fracindex_n_between("a0", NULL, FRACINDEX_N_MAX + 1, k), -EINVAL);
        assert_int_equal(fracindex_n_between_suffix("a0", NULL, 0, "1", k), 0);
        assert_int_equal(fracindex_n_between_suffix("a0", NULL, 0, "0", k), -EINVAL);
        assert_int_equal(fracindex_n_between("a1", "a0", 1, k), -EINVAL);
    }
}

/* Inserting again and again at one spot grows keys by one digit every ~6
 * insertions (62 ≈ 2^6), until FRACINDEX_MAX says no more: -ERANGE, never
 * a key out of order. */
static void same_spot_until_full(void **state)
{
    char a[FRACINDEX_MAX + 1] = "a0", b[FRACINDEX_MAX + 1] = "a1", out[FRACINDEX_MAX + 1];
    int r, count = 0;

    while ((r = fracindex_between(a, b, out, sizeof(out))) > 0) {
        assert_true(strcmp(a, out) < 0 && strcmp(out, b) < 0);
        strcpy(b, out); /* always insert right after a: "play next" */
        count++;
    }
    assert_int_equal(r, -ERANGE);
    print_message("same spot: %d insertions before keys reach %d characters\n", count,
                  FRACINDEX_MAX);
    assert_true(count > 5 * FRACINDEX_MAX);
}

/* The list of a random walk, kept sorted. */
struct list {
    char **k;
    size_t n, cap;
};

static void list_insert(struct list *l, size_t at, char *key)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->k = realloc(l->k, l->cap * sizeof(*l->k));
        assert_non_null(l->k);
    }
    memmove(l->k + at + 1, l->k + at, (l->n - at) * sizeof(*l->k));
    l->k[at] = key;
    l->n++;
}

static char *list_remove(struct list *l, size_t at)
{
    char *k = l->k[at];
    memmove(l->k + at, l->k + at + 1, (l->n - at - 1) * sizeof(*l->k));
    l->n--;
    return k;
}

static void list_free(struct list *l)
{
    fracindex_free_keys(l->k, l->n);
    free(l->k);
}

/* ops random operations: insert at a random place (60%), move one entry
 * (20%), delete one (20%). Returns the longest key seen. */
static size_t random_walk(uint64_t seed, int ops, bool jitter)
{
    struct list l = {0};
    char out[FRACINDEX_MAX + 1];
    size_t longest = 0;

    rng_seed(seed);
    for (int op = 0; op < ops; op++) {
        unsigned what = (unsigned)rng_below(10);
        if (l.n > 0 && what >= 8) {
            free(list_remove(&l, rng_below(l.n)));
            continue;
        }
        if (l.n > 1 && what >= 6)
            free(list_remove(&l, rng_below(l.n))); /* a move: out, and in elsewhere */
        size_t at = rng_below(l.n + 1);
        const char *a = at > 0 ? l.k[at - 1] : NULL;
        const char *b = at < l.n ? l.k[at] : NULL;
        int r = jitter ? fracindex_between_jitter(a, b, out, sizeof(out))
                       : fracindex_between(a, b, out, sizeof(out));
        assert_true(r > 0);
        if (a && strcmp(a, out) >= 0)
            fail_msg("op %d: %s !< %s", op, a, out);
        if (b && strcmp(out, b) >= 0)
            fail_msg("op %d: %s !< %s", op, out, b);
        if ((size_t)r > longest)
            longest = (size_t)r;
        list_insert(&l, at, strdup(out));
    }
    for (size_t i = 1; i < l.n; i++)
        assert_true(strcmp(l.k[i - 1], l.k[i]) < 0);
    list_free(&l);
    return longest;
}

static void random_sequences(void **state)
{
    size_t worst = 0, worst_j = 0;

    for (uint64_t seed = 1; seed <= 5; seed++) {
        size_t n = random_walk(seed, 10000, false);
        size_t j = random_walk(seed, 10000, true);
        worst = n > worst ? n : worst;
        worst_j = j > worst_j ? j : worst_j;
    }
    print_message("10k random insert/move/delete ops (5 seeds): longest key %zu characters, "
                  "%zu with jitter\n",
                  worst, worst_j);
    /* Random places: keys stay near log62(n) digits plus the integer part.
     * Jitter costs more than its own digits: a key inserted just after a
     * jittered one often extends it (its prefix is the gap's midpoint), and
     * takes a suffix of its own. Measured: 8 and 18 (seeds 1-5), 10 and 19 over 40 seeds. */
    assert_true(worst <= 12);
    assert_true(worst_j <= 24);
}

/* Appending 10k entries one by one, and prepending: the integer part counts. */
static void append_prepend(void **state)
{
    char last[FRACINDEX_MAX + 1] = "", first[FRACINDEX_MAX + 1] = "", out[FRACINDEX_MAX + 1];
    size_t longest = 0;

    for (int i = 0; i < 10000; i++) {
        assert_true(fracindex_between(*last ? last : NULL, NULL, out, sizeof(out)) > 0);
        if (*last)
            assert_true(strcmp(last, out) < 0);
        strcpy(last, out);
        longest = strlen(out) > longest ? strlen(out) : longest;
    }
    for (int i = 0; i < 10000; i++) {
        assert_true(fracindex_between(NULL, *first ? first : "a0", out, sizeof(out)) > 0);
        if (*first)
            assert_true(strcmp(out, first) < 0);
        strcpy(first, out);
        longest = strlen(out) > longest ? strlen(out) : longest;
    }
    print_message("10k appends and 10k prepends: longest key %zu characters (last %s, first %s)\n",
                  longest, last, first);
    assert_true(longest <= 4);
}

static void n_keys_in_order(void **state)
{
    static const char *const bounds[][2] = {
        {NULL, NULL}, {"a0", NULL}, {NULL, "a0"}, {"a0", "a1"}, {"a0", "a0V"}, {"Zz", "a01"},
    };
    static const size_t counts[] = {1, 2, 3, 12, 61, 62, 63, 500};
    char *keys[500];

    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        const char *a = bounds[i][0], *b = bounds[i][1];
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
            size_t n = counts[c];
            for (int jit = 0; jit < 3; jit++) {
                int r = jit == 0   ? fracindex_n_between(a, b, n, keys)
                        : jit == 1 ? fracindex_n_between_jitter(a, b, n, keys)
                                   : fracindex_n_between_suffix(a, b, n, "zz1", keys);
                assert_int_equal(r, 0);
                for (size_t k = 0; k < n; k++) {
                    assert_true(fracindex_valid(keys[k]));
                    if (k)
                        assert_true(strcmp(keys[k - 1], keys[k]) < 0);
                }
                if (a)
                    assert_true(strcmp(a, keys[0]) < 0);
                if (b)
                    assert_true(strcmp(keys[n - 1], b) < 0);
                fracindex_free_keys(keys, n);
            }
        }
    }
}

/* Two people insert at the same place at once: without jitter they collide,
 * with it they do not; two albums appended at once stay in two blocks. */
static void concurrent_inserts(void **state)
{
    char x[FRACINDEX_MAX + 1], y[FRACINDEX_MAX + 1];
    char *ka[12], *kb[12];
    int same = 0;

    assert_true(fracindex_between("a3", "a4", x, sizeof(x)) > 0);
    assert_true(fracindex_between("a3", "a4", y, sizeof(y)) > 0);
    assert_string_equal(x, y);
    for (int i = 0; i < 1000; i++) {
        assert_true(fracindex_between_jitter("a3", "a4", x, sizeof(x)) > 0);
        assert_true(fracindex_between_jitter("a3", "a4", y, sizeof(y)) > 0);
        assert_true(strcmp("a3", x) < 0 && strcmp(x, "a4") < 0);
        same += strcmp(x, y) == 0;
    }
    assert_true(same <= 1);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(fracindex_n_between_jitter("a3", NULL, 12, ka), 0);
        assert_int_equal(fracindex_n_between_jitter("a3", NULL, 12, kb), 0);
        char **lo = strcmp(ka[0], kb[0]) < 0 ? ka : kb, **hi = lo == ka ? kb : ka;
        /* every key of one block sorts before every key of the other */
        assert_true(strcmp(lo[11], hi[0]) < 0);
        fracindex_free_keys(ka, 12);
        fracindex_free_keys(kb, 12);
    }
}

/* ---- vectors shared with the JavaScript version ---- */

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *between_vec(const char *a, const char *b)
{
    char out[FRACINDEX_MAX + 1];
    int r = fracindex_between(a, b, out, sizeof(out));
    return json_pack("[o,o,o]", jstr(a), jstr(b), r < 0 ? json_null() : json_string(out));
}

static json_t *suffix_vec(const char *a, const char *b, const char *suffix)
{
    char out[FRACINDEX_MAX + 1];
    int r = fracindex_between_suffix(a, b, suffix, out, sizeof(out));
    return json_pack("[o,o,s,o]", jstr(a), jstr(b), suffix, r < 0 ? json_null() : json_string(out));
}

static json_t *keys_json(int r, char **keys, size_t n)
{
    json_t *arr;

    if (r < 0)
        return json_null();
    arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(keys[i]));
    fracindex_free_keys(keys, n);
    return arr;
}

static json_t *n_vec(const char *a, const char *b, size_t n)
{
    char *keys[200];
    int r = fracindex_n_between(a, b, n, keys);
    return json_pack("[o,o,I,o]", jstr(a), jstr(b), (json_int_t)n, keys_json(r, keys, n));
}

static json_t *n_suffix_vec(const char *a, const char *b, size_t n, const char *suffix)
{
    char *keys[200];
    int r = fracindex_n_between_suffix(a, b, n, suffix, keys);
    return json_pack("[o,o,I,s,o]", jstr(a), jstr(b), (json_int_t)n, suffix, keys_json(r, keys, n));
}

static void random_suffix_for_vectors(char *s)
{
    size_t n = 1 + rng_below(FRACINDEX_JITTER_LEN);
    for (size_t i = 0; i + 1 < n; i++)
        s[i] = fracindex_digits[rng_below(62)];
    s[n - 1] = fracindex_digits[1 + rng_below(61)];
    s[n] = '\0';
}

static json_t *make_vectors(void)
{
    static const char *const keys[] = {
        NULL,
        "a0",
        "a1",
        "a0V",
        "Zz",
        "Zy",
        "a01",
        "a0G",
        "a2",
        "b00",
        "b125",
        "b129",
        "bzz",
        "Y00",
        "a0VV1",
        "zzzzzzzzzzzzzzzzzzzzzzzzzzy",
        "A000000000000000000000000001",
        "A00000000000000000000000000",
        "a00",
        "0",
        "a",
        "a0-",
        "az",
        "Zzzz1",
        "c000",
        "a0zzzz",
    };
    static const char *const suffixes[] = {"1", "V", "zz1", "0001", "abcd", "10"};
    size_t nk = sizeof(keys) / sizeof(keys[0]);
    json_t *v = json_object(), *between = json_array(), *suffix = json_array(), *nb = json_array(),
           *ns = json_array(), *valid = json_array();
    struct list l = {0};
    char out[FRACINDEX_MAX + 1], sfx[FRACINDEX_SUFFIX_MAX + 1];

    json_object_set_new(v, "comment",
                        json_string("Written by tests/unit/test_fracindex.c "
                                    "(FRACINDEX_WRITE_VECTORS=1); checked by it and by "
                                    "tests/integration/fracindex.test.mjs. null: an error."));
    /* Every pair of the keys above, valid or not, in both orders. */
    for (size_t i = 0; i < nk; i++)
        for (size_t j = 0; j < nk; j++)
            json_array_append_new(between, between_vec(keys[i], keys[j]));
    /* A random walk of insertions, with and without suffixes. */
    rng_seed(42);
    for (int op = 0; op < 400; op++) {
        size_t at = rng_below(l.n + 1);
        const char *a = at > 0 ? l.k[at - 1] : NULL;
        const char *b = at < l.n ? l.k[at] : NULL;
        if (op % 3 == 0) {
            random_suffix_for_vectors(sfx);
            json_array_append_new(suffix, suffix_vec(a, b, sfx));
            assert_true(fracindex_between_suffix(a, b, sfx, out, sizeof(out)) > 0);
        } else {
            json_array_append_new(between, between_vec(a, b));
            assert_true(fracindex_between(a, b, out, sizeof(out)) > 0);
        }
        list_insert(&l, at, strdup(out));
    }
    /* Every list position of the walk's end state, prefixes of b and all. */
    for (size_t i = 0; i + 1 < l.n; i += 7)
        json_array_append_new(suffix, suffix_vec(l.k[i], l.k[i + 1], "zzz1"));
    for (size_t i = 0; i < nk; i++)
        for (size_t s = 0; s < sizeof(suffixes) / sizeof(suffixes[0]); s++)
            json_array_append_new(suffix, suffix_vec(keys[i], "a1", suffixes[s]));
    {
        static const size_t counts[] = {0, 1, 2, 3, 5, 10, 20, 61, 62, 63, 150};
        static const char *const pairs[][2] = {
            {NULL, NULL},  {"a4", NULL},  {NULL, "a0"}, {"a0", "a2"},
            {"a0", "a0V"}, {"Zz", "a01"}, {"a1", "a0"}, {"a0V", "a0Vz"},
        };
        for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
            for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
                json_array_append_new(nb, n_vec(pairs[p][0], pairs[p][1], counts[c]));
                json_array_append_new(ns, n_suffix_vec(pairs[p][0], pairs[p][1], counts[c], "Ab1"));
            }
        }
    }
    for (size_t i = 0; i < nk; i++)
        if (keys[i])
            json_array_append_new(valid, json_pack("[s,b]", keys[i], fracindex_valid(keys[i])));
    for (size_t i = 0; i < l.n; i++)
        json_array_append_new(valid, json_pack("[s,b]", l.k[i], fracindex_valid(l.k[i])));
    list_free(&l);
    json_object_set_new(v, "between", between);
    json_object_set_new(v, "between_suffix", suffix);
    json_object_set_new(v, "n_between", nb);
    json_object_set_new(v, "n_between_suffix", ns);
    json_object_set_new(v, "valid", valid);
    return v;
}

/* One vector a line, so that a change shows as a readable diff. */
static int write_vectors(json_t *v)
{
    static const char *const parts[] = {"between", "between_suffix", "n_between",
                                        "n_between_suffix", "valid"};
    FILE *f = fopen(VECTORS, "w");
    char *s;

    if (!f)
        return -errno;
    s = json_dumps(json_object_get(v, "comment"), JSON_ENCODE_ANY);
    fprintf(f, "{\n\"comment\": %s", s);
    free(s);
    for (size_t p = 0; p < sizeof(parts) / sizeof(parts[0]); p++) {
        json_t *arr = json_object_get(v, parts[p]);
        fprintf(f, ",\n\"%s\": [", parts[p]);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            s = json_dumps(json_array_get(arr, i), JSON_COMPACT);
            fprintf(f, "%s\n  %s", i ? "," : "", s);
            free(s);
        }
        fputs("\n]", f);
    }
    fputs("\n}\n", f);
    return fclose(f) == 0 ? 0 : -errno;
}

static void vectors(void **state)
{
    json_t *made = make_vectors(), *stored;
    json_error_t err;
    const char *write = getenv("FRACINDEX_WRITE_VECTORS");

    if (write && *write && strcmp(write, "0") != 0) {
        assert_int_equal(write_vectors(made), 0);
        print_message("wrote %s\n", VECTORS);
    }
    stored = json_load_file(VECTORS, 0, &err);
    if (!stored)
        fail_msg("%s: %s (line %d); FRACINDEX_WRITE_VECTORS=1 writes it", VECTORS, err.text,
                 err.line);
    if (!json_equal(made, stored)) {
        const char *parts[] = {"between", "between_suffix", "n_between", "n_between_suffix",
                               "valid"};
        for (size_t p = 0; p < 5; p++) {
            json_t *m = json_object_get(made, parts[p]), *s = json_object_get(stored, parts[p]);
            for (size_t i = 0; i < json_array_size(m); i++) {
                if (!json_equal(json_array_get(m, i), json_array_get(s, i))) {
                    char *a = json_dumps(json_array_get(m, i), JSON_COMPACT);
                    char *b = json_dumps(json_array_get(s, i), JSON_COMPACT);
                    print_error("%s[%zu]: computed %s, stored %s\n", parts[p], i, a,
                                b ? b : "(none)");
                    free(a);
                    free(b);
                    break;
                }
            }
        }
        fail_msg("%s differs from what fracindex.c computes", VECTORS);
    }
    json_decref(made);
    json_decref(stored);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rocicorp_cases),       cmocka_unit_test(rocicorp_n_cases),
        cmocka_unit_test(validation),           cmocka_unit_test(edges),
        cmocka_unit_test(same_spot_until_full), cmocka_unit_test(random_sequences),
        cmocka_unit_test(append_prepend),       cmocka_unit_test(n_keys_in_order),
        cmocka_unit_test(concurrent_inserts),   cmocka_unit_test(vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
