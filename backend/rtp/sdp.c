/*
 * SDP: see sdp.h.
 */
#include "rtp/sdp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sdp_fmtp_default(struct sdp_media *m)
{
    m->fmtp[0] = '\0';
    if (m->fmt.enc == RTP_ENC_OPUS)
        snprintf(m->fmtp, sizeof(m->fmtp), "minptime=10;useinbandfec=1%s",
                 m->fmt.channels == 2 ? ";stereo=1;sprop-stereo=1" : "");
}

static int clean(const char *s)
{
    return !s || !strpbrk(s, "\r\n");
}

int sdp_write(char *out, size_t cap, const struct sdp_session *s, const struct sdp_media *m)
{
    if (!clean(s->origin_addr) || !clean(s->name) || !clean(s->info) || !clean(m->fmtp) ||
        !clean(m->control) || m->fmt.pt > 127)
        return -EINVAL;
    const char *addr = s->origin_addr && *s->origin_addr ? s->origin_addr : "0.0.0.0";
    const char *ip = strchr(addr, ':') ? "IP6" : "IP4";
    const char *name = s->name && *s->name ? s->name : "-";
    uint64_t id = s->id ? s->id : 1;
    size_t n = 0;
    int r;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        r = snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__);                                 \
        if (r < 0)                                                                                 \
            return -EINVAL;                                                                        \
        n += (size_t)r;                                                                            \
    } while (0)
    PUT("v=0\r\no=- %" PRIu64 " %" PRIu64 " IN %s %s\r\ns=%s\r\n", id, id, ip, addr, name);
    if (s->info && *s->info)
        PUT("i=%s\r\n", s->info);
    PUT("c=IN %s %s\r\nt=0 0\r\na=tool:imes\r\na=range:npt=now-\r\na=control:*\r\n", ip,
        strchr(addr, ':') ? "::" : "0.0.0.0");
    PUT("m=audio %u RTP/AVP %u\r\n", m->port, m->fmt.pt);
    if (m->bitrate_kbps > 0)
        PUT("b=AS:%d\r\n", m->bitrate_kbps);
    if (m->fmt.enc == RTP_ENC_MPA)
        PUT("a=rtpmap:%u MPA/%u\r\n", m->fmt.pt, m->fmt.clock_rate);
    else
        PUT("a=rtpmap:%u %s/%u/%d\r\n", m->fmt.pt, rtp_encoding_name(m->fmt.enc), m->fmt.clock_rate,
            m->fmt.channels);
    if (m->fmtp[0])
        PUT("a=fmtp:%u %s\r\n", m->fmt.pt, m->fmtp);
    if (m->control[0])
        PUT("a=control:%s\r\n", m->control);
#undef PUT
    if (n >= cap)
        return -ENOSPC;
    return (int)n;
}

/* Copies line text (up to end) into out, bounded. */
static void copy_text(char *out, size_t outlen, const char *s, const char *end)
{
    size_t n = (size_t)(end - s);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Parses a decimal number in [s, end): -1 if none or too big. */
static long number(const char **s, const char *end, long max)
{
    long v = 0;
    const char *p = *s;
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > max)
            return -1;
        p++;
    }
    *s = p;
    return v;
}

static int static_format(struct sdp_media *m, long pt)
{
    if (pt == RTP_PT_MPA)
        return rtp_format_default(&m->fmt, RTP_ENC_MPA, 0, 2);
    if (pt == 10 || pt == 11) { /* RFC 3551: L16 44100 stereo / mono */
        int r = rtp_format_default(&m->fmt, RTP_ENC_L16, 44100, pt == 10 ? 2 : 1);
        m->fmt.pt = (uint8_t)pt;
        return r;
    }
    return -ENOTSUP;
}

int sdp_parse(const char *text, size_t len, struct sdp_media *out)
{
    memset(out, 0, sizeof(*out));
    if (!text)
        return -EINVAL;
    const char *p = text, *end = text + len;
    int in_media = 0, in_other = 0, done = 0, have_map = 0;
    long pt = -1;
    char session_control[SDP_MAX_TEXT + 1] = "", session_conn[64] = "";
    while (p < end && !done) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (le > p && le[-1] == '\r')
            le--;
        if (le - p >= 2 && p[1] == '=') {
            char type = p[0];
            const char *v = p + 2;
            if (type == 'm') {
                if (in_media) {
                    done = 1; /* the next media: ours is complete */
                    break;
                }
                if (le - v > 6 && memcmp(v, "audio ", 6) == 0) {
                    const char *q = v + 6;
                    long port = number(&q, le, 65535);
                    if (port < 0)
                        return -EINVAL;
                    if (q < le && *q == '/') { /* port/count */
                        q++;
                        if (number(&q, le, 65535) < 0)
                            return -EINVAL;
                    }
                    while (q < le && *q == ' ')
                        q++;
                    const char *proto = q;
                    while (q < le && *q != ' ')
                        q++;
                    if (q - proto < 7 || strncmp(proto, "RTP/AVP", 7) != 0)
                        return -ENOTSUP;
                    while (q < le && *q == ' ')
                        q++;
                    pt = number(&q, le, 127);
                    if (pt < 0)
                        return -EINVAL;
                    out->port = (uint16_t)port;
                    in_media = 1;
                } else {
                    in_other = 1; /* video, a second audio...: not ours */
                }
            } else if (in_other && !in_media) {
                /* attributes of a media before ours */
            } else if (type == 'c') {
                /* c=IN IP4 addr[/ttl] */
                const char *q = v;
                int spaces = 0;
                while (q < le && spaces < 2)
                    if (*q++ == ' ')
                        spaces++;
                const char *a = q;
                while (q < le && *q != '/' && *q != ' ')
                    q++;
                copy_text(in_media ? out->conn_addr : session_conn, sizeof(session_conn), a, q);
            } else if (type == 'a') {
                if (le - v > 8 && strncmp(v, "control:", 8) == 0) {
                    copy_text(in_media ? out->control : session_control, sizeof(out->control),
                              v + 8, le);
                } else if (in_media && le - v > 7 && strncmp(v, "rtpmap:", 7) == 0) {
                    const char *q = v + 7;
                    if (number(&q, le, 127) == pt && q < le && *q == ' ') {
                        const char *name = ++q;
                        while (q < le && *q != '/')
                            q++;
                        size_t nlen = (size_t)(q - name);
                        long rate = -1, ch = 1;
                        if (q < le) {
                            q++;
                            rate = number(&q, le, 1000000);
                            if (q < le && *q == '/') {
                                q++;
                                ch = number(&q, le, 255);
                            }
                        }
                        if (rate <= 0 || ch <= 0)
                            return -EINVAL;
                        enum rtp_encoding enc;
                        if (nlen == 3 && strncasecmp(name, "MPA", 3) == 0)
                            enc = RTP_ENC_MPA;
                        else if (nlen == 4 && strncasecmp(name, "opus", 4) == 0)
                            enc = RTP_ENC_OPUS;
                        else if (nlen == 3 && strncasecmp(name, "L16", 3) == 0)
                            enc = RTP_ENC_L16;
                        else if (nlen == 3 && strncasecmp(name, "L24", 3) == 0)
                            enc = RTP_ENC_L24;
                        else
                            return -ENOTSUP;
                        out->fmt.enc = enc;
                        out->fmt.pt = (uint8_t)pt;
                        out->fmt.clock_rate = (uint32_t)rate;
                        out->fmt.channels = (int)ch;
                        have_map = 1;
                    }
                } else if (in_media && le - v > 5 && strncmp(v, "fmtp:", 5) == 0) {
                    const char *q = v + 5;
                    if (number(&q, le, 127) == pt && q < le && *q == ' ')
                        copy_text(out->fmtp, sizeof(out->fmtp), q + 1, le);
                }
            } else if (type == 'b' && in_media && le - v > 3 && strncmp(v, "AS:", 3) == 0) {
                const char *q = v + 3;
                long kbps = number(&q, le, 1000000);
                out->bitrate_kbps = kbps > 0 ? (int)kbps : 0;
            }
        }
        p = next;
    }
    if (!in_media)
        return -EINVAL;
    if (!have_map) {
        int r = static_format(out, pt);
        if (r < 0)
            return r;
    }
    if (!out->control[0])
        memcpy(out->control, session_control, sizeof(out->control));
    if (!out->conn_addr[0])
        memcpy(out->conn_addr, session_conn, sizeof(session_conn));
    return 0;
}
