/*
 * Fractional indexing: sort keys for playlist entries, so that inserting,
 * moving or deleting one entry never rewrites another. The algorithm is
 * rocicorp's fractional-indexing (David Greenspan's, as in Figma's
 * multiplayer lists), with base-62 digits "0-9A-Za-z", so keys compare with
 * plain byte order (strcmp, JavaScript's < on strings). Never sort them with
 * CouchDB view collation (ICU puts 'a' before 'B').
 *
 * A key is an integer part and a fraction. The head character gives the
 * integer part's length: 'a'..'z' are 2..27 characters (head + 1..26
 * digits), 'A'..'Z' are 27..2 characters for the negative side. The fraction
 * is any number of digits, never ending in '0'. "a0" is the first key of an
 * empty list; appending increments the integer part (a0, a1, ... az, b00, ...),
 * so a list built by appending keeps keys of 2-3 characters. Inserting
 * between two keys takes the midpoint, one more digit every ~6 insertions at
 * the very same spot.
 *
 * The same algorithm is couchapp/imes/_attachments/lib/fracindex.js; the test
 * vectors in tests/unit/fracindex_vectors.json hold both to the same output.
 *
 * Jitter: two people inserting at the same place at once would compute the
 * same key. The _jitter functions append a few random digits (and make sure
 * the result still sorts before b, and is not a prefix of it), so their keys
 * differ; the _suffix variants take those digits from the caller (tests,
 * vectors). Keys of entries are ordered by (key, _id), so even equal keys
 * give one order everywhere.
 *
 * Errors: -EINVAL (a key is not valid, or a >= b), -ERANGE (no key fits: the
 * integer part overflowed, or the key would pass FRACINDEX_MAX characters),
 * -ENOSPC (out too small), -ENOMEM.
 * Thread: any (no state; the _jitter functions read getrandom(2)).
 */
#ifndef IMES_FRACINDEX_H
#define IMES_FRACINDEX_H

#include <stdbool.h>
#include <stddef.h>

/* The longest key accepted or produced. Random insertions keep keys near
 * log62(n) + 2 characters; only thousands of insertions at one spot come close. */
#define FRACINDEX_MAX        1024
#define FRACINDEX_JITTER_LEN 4      /* random digits of a _jitter key: 62^3 * 61 ≈ 14.5 M */
#define FRACINDEX_SUFFIX_MAX 8      /* longest suffix the _suffix functions take */
#define FRACINDEX_N_MAX      100000 /* most keys one n_between call makes */

extern const char fracindex_digits[63]; /* "0-9A-Za-z" and NUL */

/* Whether key is a valid key: base-62 digits, a known head, the integer part
 * complete, no trailing '0' in the fraction, not the reserved smallest
 * integer "A" + 26 zeros, at most FRACINDEX_MAX characters. */
bool fracindex_valid(const char *key);

/* A key strictly between a and b (either may be NULL: the start or the end
 * of the list), into out (size bytes with the NUL). Returns its length or a
 * negative error. */
int fracindex_between(const char *a, const char *b, char *out, size_t size);

/* As fracindex_between, with FRACINDEX_JITTER_LEN random digits appended. */
int fracindex_between_jitter(const char *a, const char *b, char *out, size_t size);

/* As fracindex_between, with suffix appended (1 to FRACINDEX_SUFFIX_MAX
 * digits, the last not '0'): k = between(a, b); while k+suffix >= b or is a
 * prefix of b, k = between(k, b); the answer is k+suffix. */
int fracindex_between_suffix(const char *a, const char *b, const char *suffix, char *out,
                             size_t size);

/* n keys in order strictly between a and b (for appending an album): after
 * the end they count up the integer part, before the start they count down,
 * between two keys they bisect (rocicorp's generateNKeysBetween). keys[i] are
 * malloc'd; on error none are left allocated. n <= FRACINDEX_N_MAX. */
int fracindex_n_between(const char *a, const char *b, size_t n, char **keys);

/* n keys in order between a and b that stay together: the first is
 * between_suffix(a, b, suffix) = J, the others J followed by n-1 fractions
 * spread evenly over (0, 1) (the same number of digits each, trailing zeros
 * dropped). Two people appending an album at once get two blocks that do
 * not interleave. */
int fracindex_n_between_suffix(const char *a, const char *b, size_t n, const char *suffix,
                               char **keys);
int fracindex_n_between_jitter(const char *a, const char *b, size_t n, char **keys);

/* Frees keys[0..n) and sets them to NULL. */
void fracindex_free_keys(char **keys, size_t n);

#endif
