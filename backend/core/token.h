/*
 * Secret tokens for device and delegate URLs (/device/<name>/<token>/...).
 * A token is TOKEN_BYTES from the system CSPRNG (getrandom(2)) written as
 * lowercase hex. `imes` makes them and stores them in the private database;
 * imesd compares what a URL carries against the stored one in constant time.
 * Thread: any.
 */
#ifndef IMES_TOKEN_H
#define IMES_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define TOKEN_BYTES   16 /* 128 bits: beyond guessing, short enough for a URL */
#define TOKEN_HEX_LEN (2 * TOKEN_BYTES)

/* Writes a new token and its NUL into out (outlen > TOKEN_HEX_LEN).
 * Returns 0, -EINVAL if out is too small, or -errno from getrandom(2). */
int token_generate(char *out, size_t outlen);

/* Whether s looks like a token: at least TOKEN_HEX_LEN lowercase hex digits and
 * nothing else. For rejecting junk early; it says nothing about validity. */
bool token_well_formed(const char *s);

/* Whether given equals expected. The time taken depends only on the length of
 * expected (the stored secret), never on where the first difference is.
 * NULL and an empty expected never match. */
bool token_equal(const char *expected, const char *given);

#endif
