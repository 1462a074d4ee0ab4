/*
 * Per-listener Ogg pages (see oggmux.h). Pages are written here rather than
 * through ogg_stream_packetin/ogg_stream_flush, which would copy each packet
 * into the stream's own buffer and then again into the listener's queue:
 * with 2,000 listeners on a channel that is a second copy of every packet
 * per listener for nothing. The page header is built on the stack, header
 * and packet go into out once, and libogg's ogg_page_checksum_set (a
 * slice-by-8 CRC since libogg 1.3.4) checksums them in place.
 *
 * A page whose packets are short of page_samples keeps them in a small
 * per-listener buffer until the page is full; with 20 ms packets and 20 ms
 * pages that buffer is never used.
 * Thread: loop.
 */
#include "stream/oggmux.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ogg/ogg.h>

#define OGG_HEADER_MAX (27 + 255)
#define OGG_FLAG_BOS   0x02
#define OGG_FLAG_EOS   0x04
/* A packet must fit the 255 lacing values of one page: 254 * 255 + 254. */
#define OGGMUX_PACKET_MAX (255 * 255 - 256)

struct oggmux {
    uint32_t serial;
    uint32_t pageno;
    int page_samples;
    int headers_done;
    int64_t granule;
    /* Packets waiting for the next page. */
    uint8_t lacing[255];
    int nlacing;
    int pending_samples;
    uint8_t *body;
    size_t body_len, body_cap;
};

struct oggmux *oggmux_new(uint32_t serial, int page_samples)
{
    struct oggmux *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->serial = serial;
    m->page_samples = page_samples > 0 ? page_samples : 0;
    return m;
}

void oggmux_free(struct oggmux **mp)
{
    struct oggmux *m = *mp;
    if (!m)
        return;
    free(m->body);
    free(m);
    *mp = NULL;
}

int64_t oggmux_granule(const struct oggmux *m)
{
    return m->granule;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int lacing_count(size_t len)
{
    return (int)(len / 255) + 1;
}

static int put_lacing(uint8_t *lacing, size_t len)
{
    int n = 0;
    for (; len >= 255; len -= 255)
        lacing[n++] = 255;
    lacing[n++] = (uint8_t)len;
    return n;
}

/* Appends one page: header from the arguments, then body. */
static int write_page(struct oggmux *m, int flags, int64_t granule, const uint8_t *lacing,
                      int nlacing, const uint8_t *body, size_t body_len, struct buf *out)
{
    uint8_t h[OGG_HEADER_MAX];
    size_t hlen = 27 + (size_t)nlacing;
    if (hlen + body_len > out->max - out->len)
        return -E2BIG;
    memcpy(h, "OggS", 4);
    h[4] = 0; /* version */
    h[5] = (uint8_t)flags;
    put32(h + 6, (uint32_t)(uint64_t)granule);
    put32(h + 10, (uint32_t)((uint64_t)granule >> 32));
    put32(h + 14, m->serial);
    put32(h + 18, m->pageno);
    put32(h + 22, 0); /* CRC, set below */
    h[26] = (uint8_t)nlacing;
    memcpy(h + 27, lacing, (size_t)nlacing);
    size_t start = out->len;
    int r = buf_append(out, h, hlen);
    if (r == 0)
        r = buf_append(out, body, body_len);
    if (r < 0) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        return r;
    }
    ogg_page page = {
        .header = (unsigned char *)out->data + start,
        .header_len = (long)hlen,
        .body = (unsigned char *)out->data + start + hlen,
        .body_len = (long)body_len,
    };
    ogg_page_checksum_set(&page);
    m->pageno++;
    return 0;
}

int oggmux_headers(struct oggmux *m, const struct oggmux_header *hdr, int n, struct buf *out)
{
    if (m->headers_done || n < 1)
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if (hdr[i].len > OGGMUX_PACKET_MAX)
            return -EMSGSIZE;
    size_t start = out->len;
    uint32_t pageno = m->pageno;
    for (int i = 0; i < n; i++) {
        uint8_t lacing[255];
        int nl = put_lacing(lacing, hdr[i].len);
        int r =
            write_page(m, i == 0 ? OGG_FLAG_BOS : 0, 0, lacing, nl, hdr[i].data, hdr[i].len, out);
        if (r < 0) {
            /* All header pages or none. */
            out->len = start;
            if (out->data)
                out->data[start] = '\0';
            m->pageno = pageno;
            return r;
        }
    }
    m->headers_done = 1;
    return 0;
}

int oggmux_flush(struct oggmux *m, int eos, struct buf *out)
{
    if (!m->nlacing && !eos)
        return 0;
    int r = write_page(m, eos ? OGG_FLAG_EOS : 0, m->granule, m->lacing, m->nlacing, m->body,
                       m->body_len, out);
    if (r < 0)
        return r;
    m->nlacing = 0;
    m->body_len = 0;
    m->pending_samples = 0;
    return 0;
}

int oggmux_packet(struct oggmux *m, const uint8_t *data, size_t len, int samples, struct buf *out)
{
    if (!m->headers_done || samples < 0)
        return -EINVAL;
    if (len > OGGMUX_PACKET_MAX)
        return -EMSGSIZE;
    int need = lacing_count(len);
    int r;
    if (m->nlacing + need > 255) {
        r = oggmux_flush(m, 0, out);
        if (r < 0)
            return r;
    }
    if (!m->nlacing && samples >= m->page_samples) {
        /* The usual case: the packet fills a page alone; straight from the
         * ring into out, no copy on the way. */
        uint8_t lacing[255];
        int nl = put_lacing(lacing, len);
        r = write_page(m, 0, m->granule + samples, lacing, nl, data, len, out);
        if (r < 0)
            return r;
        m->granule += samples;
        return 0;
    }
    if (m->body_cap - m->body_len < len) {
        size_t cap = m->body_cap ? m->body_cap : 1024;
        while (cap - m->body_len < len)
            cap *= 2;
        uint8_t *b = realloc(m->body, cap);
        if (!b)
            return -ENOMEM;
        m->body = b;
        m->body_cap = cap;
    }
    memcpy(m->body + m->body_len, data, len);
    m->body_len += len;
    m->nlacing += put_lacing(m->lacing + m->nlacing, len);
    m->pending_samples += samples;
    m->granule += samples;
    if (m->pending_samples >= m->page_samples)
        return oggmux_flush(m, 0, out);
    return 0;
}
