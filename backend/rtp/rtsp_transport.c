/*
 * The Transport header: see rtsp_transport.h. Parameters we do not know are
 * ignored (RFC 2326 §12.39 lets a server skip what it does not understand);
 * ones we do know must be well-formed.
 */
#include "rtp/rtsp_transport.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* "a" or "a-b": ports 0..65535 (channels 0..255). */
static int pair(const char *s, size_t len, int max, int out[2])
{
    long v[2] = {-1, -1};
    int k = 0;
    size_t i = 0;
    while (k < 2) {
        long x = 0;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            x = x * 10 + (s[i] - '0');
            if (x > max)
                return -EINVAL;
            i++;
        }
        if (i == start)
            return -EINVAL;
        v[k++] = x;
        if (i == len)
            break;
        if (s[i] != '-' || k == 2)
            return -EINVAL;
        i++;
    }
    if (i != len)
        return -EINVAL;
    out[0] = (int)v[0];
    out[1] = k == 2 ? (int)v[1] : (int)v[0] + 1;
    if (out[1] > max)
        return -EINVAL;
    return 0;
}

static int is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* One alternative [s, s+len): 0, -ENOTSUP, -EINVAL. */
static int parse_one(const char *s, size_t len, struct rtsp_transport *t)
{
    memset(t, 0, sizeof(*t));
    t->interleaved[0] = t->interleaved[1] = -1;
    int unicast = 0, first = 1, supported = 1;
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && s[j] != ';')
            j++;
        const char *p = s + i;
        size_t n = j - i;
        while (n && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (first) {
            if (is(p, n, "RTP/AVP") || is(p, n, "RTP/AVP/UDP"))
                t->tcp = 0;
            else if (is(p, n, "RTP/AVP/TCP"))
                t->tcp = 1;
            else if (n == 0)
                return -EINVAL;
            else
                supported = 0; /* RTP/SAVP, RAW/RAW/UDP, ... */
            first = 0;
        } else if (n == 0) {
            /* an empty parameter (";;" or a trailing ';'): tolerated */
        } else {
            const char *eq = memchr(p, '=', n);
            size_t klen = eq ? (size_t)(eq - p) : n;
            const char *v = eq ? eq + 1 : "";
            size_t vlen = eq ? n - klen - 1 : 0;
            if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
                v++;
                vlen -= 2;
            }
            if (is(p, klen, "unicast") && !eq) {
                unicast = 1;
            } else if (is(p, klen, "multicast") && !eq) {
                t->multicast = 1;
            } else if (is(p, klen, "client_port")) {
                if (pair(v, vlen, 65535, t->client_port) < 0)
                    return -EINVAL;
            } else if (is(p, klen, "server_port")) {
                if (pair(v, vlen, 65535, t->server_port) < 0)
                    return -EINVAL;
            } else if (is(p, klen, "interleaved")) {
                if (pair(v, vlen, 255, t->interleaved) < 0)
                    return -EINVAL;
            } else if (is(p, klen, "ssrc")) {
                if (vlen == 0 || vlen > 8)
                    return -EINVAL;
                uint32_t x = 0;
                for (size_t k = 0; k < vlen; k++) {
                    char c = v[k];
                    int d = c >= '0' && c <= '9'   ? c - '0'
                            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                   : -1;
                    if (d < 0)
                        return -EINVAL;
                    x = x << 4 | (uint32_t)d;
                }
                t->has_ssrc = 1;
                t->ssrc = x;
            } else if (is(p, klen, "mode")) {
                if (is(v, vlen, "play") || is(v, vlen, "PLAY"))
                    t->record = 0;
                else if (is(v, vlen, "record") || is(v, vlen, "receive"))
                    t->record = 1;
                else
                    return -EINVAL;
            } else if (is(p, klen, "destination")) {
                if (vlen >= sizeof(t->destination))
                    return -EINVAL;
                memcpy(t->destination, v, vlen);
                t->destination[vlen] = '\0';
            }
            /* ttl, layers, port, append, source: not used for unicast play */
        }
        i = j + 1;
    }
    (void)unicast; /* unicast is the default (RFC 2326 §12.39) */
    if (!supported || t->multicast || t->record)
        return -ENOTSUP;
    if (!t->tcp && t->client_port[0] == 0)
        return -ENOTSUP;
    if (t->tcp && t->interleaved[0] < 0) {
        t->interleaved[0] = 0;
        t->interleaved[1] = 1;
    }
    return 0;
}

int rtsp_transport_parse(const char *value, struct rtsp_transport *out)
{
    memset(out, 0, sizeof(*out));
    out->interleaved[0] = out->interleaved[1] = -1;
    if (!value || strlen(value) > RTSP_TRANSPORT_MAX)
        return -EINVAL;
    int result = -EINVAL;
    const char *s = value;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        struct rtsp_transport t;
        int r = parse_one(s, len, &t);
        if (r == 0) {
            *out = t;
            return 0;
        }
        if (r == -ENOTSUP)
            result = -ENOTSUP;
        else if (result != -ENOTSUP)
            result = -EINVAL;
        if (!comma)
            break;
        s = comma + 1;
    }
    return result;
}

int rtsp_transport_write(const struct rtsp_transport *t, char *out, size_t cap)
{
    int n;
    if (t->tcp)
        n = snprintf(out, cap, "RTP/AVP/TCP;unicast;interleaved=%d-%d", t->interleaved[0],
                     t->interleaved[1]);
    else
        n = snprintf(out, cap, "RTP/AVP;unicast;client_port=%d-%d", t->client_port[0],
                     t->client_port[1]);
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    size_t len = (size_t)n;
    if (!t->tcp && t->server_port[0]) {
        n = snprintf(out + len, cap - len, ";server_port=%d-%d", t->server_port[0],
                     t->server_port[1]);
        if (n < 0 || (size_t)n >= cap - len)
            return -ENOSPC;
        len += (size_t)n;
    }
    if (t->destination[0] && !t->tcp) {
        n = snprintf(out + len, cap - len, ";destination=%s", t->destination);
        if (n < 0 || (size_t)n >= cap - len)
            return -ENOSPC;
        len += (size_t)n;
    }
    if (t->has_ssrc) {
        n = snprintf(out + len, cap - len, ";ssrc=%08" PRIX32, t->ssrc);
        if (n < 0 || (size_t)n >= cap - len)
            return -ENOSPC;
        len += (size_t)n;
    }
    if (t->record) {
        n = snprintf(out + len, cap - len, ";mode=record");
        if (n < 0 || (size_t)n >= cap - len)
            return -ENOSPC;
        len += (size_t)n;
    }
    return (int)len;
}
