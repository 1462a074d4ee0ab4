/*
 * Token generation and comparison (see token.h). getrandom(2) without flags
 * blocks only until the kernel's pool is first initialised, which happens
 * long before an admin runs `imes`; after that it never blocks or fails short
 * for requests up to 256 bytes, but EINTR and short reads are still handled.
 */
#include "core/token.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

int token_generate(char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[TOKEN_BYTES];
    size_t got = 0;

    if (!out || outlen < TOKEN_HEX_LEN + 1)
        return -EINVAL;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 0xf];
    }
    out[TOKEN_HEX_LEN] = '\0';
    explicit_bzero(raw, sizeof(raw));
    return 0;
}

bool token_well_formed(const char *s)
{
    size_t n = 0;

    if (!s)
        return false;
    for (; s[n]; n++) {
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    }
    return n >= TOKEN_HEX_LEN;
}

bool token_equal(const char *expected, const char *given)
{
    size_t elen, glen;
    unsigned char diff;

    if (!expected || !given)
        return false;
    elen = strlen(expected);
    if (elen == 0)
        return false; /* an empty secret is no secret */
    /* strnlen bounds the scan of given by the secret's length, so a long
     * given string costs no more time than a right-sized one. */
    glen = strnlen(given, elen + 1);
    diff = (unsigned char)(elen != glen);
    for (size_t i = 0; i < elen; i++) {
        /* Past the end of given, compare against 0 (never reads beyond its
         * NUL: i < glen guards the read). */
        unsigned char g = i < glen ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)expected[i] ^ g;
    }
    return diff == 0;
}
