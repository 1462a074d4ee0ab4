/*
 * RTP packets and payload formats: see rtp.h. Every length read from a
 * packet is checked against what is left before it is used.
 */
#include "rtp/rtp.h"

#include <errno.h>
#include <string.h>

const char *rtp_encoding_name(enum rtp_encoding enc)
{
    switch (enc) {
    case RTP_ENC_MPA:
        return "MPA";
    case RTP_ENC_OPUS:
        return "opus";
    case RTP_ENC_L16:
        return "L16";
    case RTP_ENC_L24:
        return "L24";
    }
    return "?";
}

int rtp_format_default(struct rtp_format *f, enum rtp_encoding enc, uint32_t rate, int channels)
{
    memset(f, 0, sizeof(*f));
    f->enc = enc;
    switch (enc) {
    case RTP_ENC_MPA:
        f->pt = RTP_PT_MPA;
        f->clock_rate = 90000; /* RFC 3551 §4.5.13, whatever the sample rate */
        f->channels = channels >= 1 && channels <= 2 ? channels : 2;
        return 0;
    case RTP_ENC_OPUS:
        f->pt = RTP_PT_DYNAMIC;
        f->clock_rate = 48000; /* RFC 7587 §4.1: always 48000 */
        f->channels = 2;       /* RFC 7587 §7: always "opus/48000/2" */
        return 0;
    case RTP_ENC_L16:
    case RTP_ENC_L24:
        if (rate < 1000 || rate > 192000 || channels < 1 || channels > 8)
            return -EINVAL;
        f->pt = RTP_PT_DYNAMIC;
        f->clock_rate = rate;
        f->channels = channels;
        return 0;
    }
    return -EINVAL;
}

int rtp_header_write(uint8_t *out, size_t cap, const struct rtp_header *h)
{
    if (h->pt > 127 || h->cc > RTP_MAX_CSRC)
        return -EINVAL;
    size_t n = RTP_HEADER_LEN + 4u * h->cc;
    if (cap < n)
        return -ENOSPC;
    out[0] = (uint8_t)(2u << 6 | h->cc);
    out[1] = (uint8_t)((h->marker ? 0x80 : 0) | h->pt);
    rtp_wr16(out + 2, h->seq);
    rtp_wr32(out + 4, h->ts);
    rtp_wr32(out + 8, h->ssrc);
    for (unsigned i = 0; i < h->cc; i++)
        rtp_wr32(out + 12 + 4 * i, h->csrc[i]);
    return (int)n;
}

int rtp_parse(const uint8_t *data, size_t len, struct rtp_packet *out)
{
    memset(out, 0, sizeof(*out));
    if (!data || len < RTP_HEADER_LEN || (data[0] >> 6) != 2)
        return -EINVAL;
    struct rtp_header *h = &out->h;
    int has_padding = (data[0] >> 5) & 1;
    h->has_ext = (data[0] >> 4) & 1;
    h->cc = data[0] & 0x0f;
    h->marker = data[1] >> 7;
    h->pt = data[1] & 0x7f;
    h->seq = rtp_rd16(data + 2);
    h->ts = rtp_rd32(data + 4);
    h->ssrc = rtp_rd32(data + 8);
    size_t off = RTP_HEADER_LEN;
    if (len - off < 4u * h->cc)
        return -EINVAL;
    for (unsigned i = 0; i < h->cc; i++)
        h->csrc[i] = rtp_rd32(data + off + 4 * i);
    off += 4u * h->cc;
    if (h->has_ext) {
        if (len - off < 4)
            return -EINVAL;
        h->ext_profile = rtp_rd16(data + off);
        size_t words = rtp_rd16(data + off + 2);
        off += 4;
        if (len - off < 4 * words)
            return -EINVAL;
        h->ext = data + off;
        h->ext_len = 4 * words;
        off += 4 * words;
    }
    size_t end = len;
    if (has_padding) {
        uint8_t pad = data[len - 1];
        if (pad == 0 || pad > len - off)
            return -EINVAL;
        out->padding = pad;
        end -= pad;
    }
    out->payload = data + off;
    out->payload_len = end - off;
    return 0;
}

int rtp_mpa_parse(const uint8_t *payload, size_t len, uint16_t *frag_offset)
{
    if (!payload || len < RTP_MPA_HEADER || rtp_rd16(payload) != 0)
        return -EINVAL;
    if (frag_offset)
        *frag_offset = rtp_rd16(payload + 2);
    return 0;
}

void rtp_payloader_init(struct rtp_payloader *p, const struct rtp_format *fmt, uint32_t ssrc,
                        uint16_t seq, size_t mtu)
{
    memset(p, 0, sizeof(*p));
    p->fmt = *fmt;
    p->ssrc = ssrc;
    p->seq = seq;
    if (mtu == 0)
        mtu = RTP_DEFAULT_MTU;
    p->mtu = mtu < 64 ? 64 : mtu > 65535 ? 65535 : mtu;
}

/* One packet: header, optional prefix (the MPA header), payload bytes. */
static int emit_one(struct rtp_payloader *p, uint32_t ts, int marker, const uint8_t *prefix,
                    size_t prefix_len, const uint8_t *data, size_t len, rtp_emit_fn emit, void *arg)
{
    uint8_t pkt[65536];
    struct rtp_header h = {
        .marker = marker, .pt = p->fmt.pt, .seq = p->seq, .ts = ts, .ssrc = p->ssrc};
    int n = rtp_header_write(pkt, sizeof(pkt), &h);
    if (n < 0)
        return n;
    if ((size_t)n + prefix_len + len > sizeof(pkt))
        return -EMSGSIZE;
    if (prefix_len)
        memcpy(pkt + n, prefix, prefix_len);
    if (len)
        memcpy(pkt + n + prefix_len, data, len);
    size_t total = (size_t)n + prefix_len + len;
    int r = emit(pkt, total, arg);
    if (r < 0)
        return r;
    p->seq++;
    p->packets++;
    p->octets += prefix_len + len;
    return 0;
}

int rtp_payload_frame(struct rtp_payloader *p, const uint8_t *data, size_t len, uint32_t ts,
                      int marker, rtp_emit_fn emit, void *arg)
{
    if (!data && len)
        return -EINVAL;
    size_t room = p->mtu - RTP_HEADER_LEN;
    int count = 0, r;
    switch (p->fmt.enc) {
    case RTP_ENC_MPA: {
        room -= RTP_MPA_HEADER;
        size_t off = 0;
        if (len > 65535)
            return -EMSGSIZE; /* Frag_offset is 16 bits */
        do {
            size_t n = len - off < room ? len - off : room;
            uint8_t mpa[RTP_MPA_HEADER] = {0, 0, (uint8_t)(off >> 8), (uint8_t)off};
            r = emit_one(p, ts, marker && off == 0, mpa, sizeof(mpa), data + off, n, emit, arg);
            if (r < 0)
                return r;
            count++;
            off += n;
        } while (off < len);
        return count;
    }
    case RTP_ENC_OPUS:
        if (len > room)
            return -EMSGSIZE;
        r = emit_one(p, ts, marker, NULL, 0, data, len, emit, arg);
        return r < 0 ? r : 1;
    case RTP_ENC_L16:
    case RTP_ENC_L24: {
        size_t frame = (p->fmt.enc == RTP_ENC_L16 ? 2u : 3u) * (size_t)p->fmt.channels;
        if (frame == 0 || len % frame)
            return -EINVAL;
        size_t per = room / frame * frame, off = 0;
        if (per == 0)
            return -EMSGSIZE;
        while (off < len) {
            size_t n = len - off < per ? len - off : per;
            r = emit_one(p, ts + (uint32_t)(off / frame), marker && off == 0, NULL, 0, data + off,
                         n, emit, arg);
            if (r < 0)
                return r;
            count++;
            off += n;
        }
        return count;
    }
    }
    return -EINVAL;
}

void rtp_l16_from_s16(uint8_t *out, const int16_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t v = (uint16_t)in[i];
        out[2 * i] = (uint8_t)(v >> 8);
        out[2 * i + 1] = (uint8_t)v;
    }
}

void rtp_l24_from_s32(uint8_t *out, const int32_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)in[i];
        out[3 * i] = (uint8_t)(v >> 24);
        out[3 * i + 1] = (uint8_t)(v >> 16);
        out[3 * i + 2] = (uint8_t)(v >> 8);
    }
}
