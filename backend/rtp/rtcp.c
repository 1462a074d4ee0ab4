/*
 * RTCP: see rtcp.h. The receiver statistics follow RFC 3550's appendix code
 * closely (names included) so that they can be checked against it.
 */
#include "rtp/rtcp.h"
#include "rtp/rtp.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void write_common(uint8_t *out, int count, int type, size_t len)
{
    out[0] = (uint8_t)(2u << 6 | (unsigned)count);
    out[1] = (uint8_t)type;
    rtp_wr16(out + 2, (uint16_t)(len / 4 - 1));
}

static void write_blocks(uint8_t *p, const struct rtcp_block *b, int n)
{
    for (int i = 0; i < n; i++, p += 24) {
        int32_t lost = b[i].cumulative_lost;
        if (lost > 0x7fffff)
            lost = 0x7fffff;
        if (lost < -0x800000)
            lost = -0x800000;
        rtp_wr32(p, b[i].ssrc);
        rtp_wr32(p + 4, (uint32_t)b[i].fraction_lost << 24 | ((uint32_t)lost & 0xffffff));
        rtp_wr32(p + 8, b[i].ext_highest_seq);
        rtp_wr32(p + 12, b[i].jitter);
        rtp_wr32(p + 16, b[i].lsr);
        rtp_wr32(p + 20, b[i].dlsr);
    }
}

int rtcp_write_sr(uint8_t *out, size_t cap, uint32_t ssrc, const struct rtcp_sender_info *si,
                  const struct rtcp_block *blocks, int nblocks)
{
    if (nblocks < 0 || nblocks > RTCP_MAX_BLOCKS || (nblocks && !blocks))
        return -EINVAL;
    size_t len = 28 + 24u * (size_t)nblocks;
    if (cap < len)
        return -ENOSPC;
    write_common(out, nblocks, RTCP_SR, len);
    rtp_wr32(out + 4, ssrc);
    rtp_wr32(out + 8, (uint32_t)(si->ntp >> 32));
    rtp_wr32(out + 12, (uint32_t)si->ntp);
    rtp_wr32(out + 16, si->rtp_ts);
    rtp_wr32(out + 20, si->packets);
    rtp_wr32(out + 24, si->octets);
    write_blocks(out + 28, blocks, nblocks);
    return (int)len;
}

int rtcp_write_rr(uint8_t *out, size_t cap, uint32_t ssrc, const struct rtcp_block *blocks,
                  int nblocks)
{
    if (nblocks < 0 || nblocks > RTCP_MAX_BLOCKS || (nblocks && !blocks))
        return -EINVAL;
    size_t len = 8 + 24u * (size_t)nblocks;
    if (cap < len)
        return -ENOSPC;
    write_common(out, nblocks, RTCP_RR, len);
    rtp_wr32(out + 4, ssrc);
    write_blocks(out + 8, blocks, nblocks);
    return (int)len;
}

int rtcp_write_sdes_cname(uint8_t *out, size_t cap, uint32_t ssrc, const char *cname)
{
    size_t n = cname ? strlen(cname) : 0;
    if (n > RTCP_CNAME_MAX)
        return -EINVAL;
    /* header, SSRC, CNAME item (type, length, text), a null item, padded to
     * a word (RFC 3550 §6.5: at least one null octet ends the list). */
    size_t len = (4 + 4 + 2 + n + 1 + 3) & ~(size_t)3;
    if (cap < len)
        return -ENOSPC;
    memset(out, 0, len);
    write_common(out, 1, RTCP_SDES, len);
    rtp_wr32(out + 4, ssrc);
    out[8] = 1; /* CNAME */
    out[9] = (uint8_t)n;
    if (n)
        memcpy(out + 10, cname, n);
    return (int)len;
}

int rtcp_write_bye(uint8_t *out, size_t cap, uint32_t ssrc)
{
    if (cap < 8)
        return -ENOSPC;
    write_common(out, 1, RTCP_BYE, 8);
    rtp_wr32(out + 4, ssrc);
    return 8;
}

int rtcp_write_xr_rrtr(uint8_t *out, size_t cap, uint32_t ssrc, uint64_t ntp)
{
    /* header, SSRC, block header (BT 4, block length 2), NTP (RFC 3611 §4.4) */
    if (cap < 20)
        return -ENOSPC;
    write_common(out, 0, RTCP_XR, 20);
    rtp_wr32(out + 4, ssrc);
    out[8] = RTCP_XR_RRTR;
    out[9] = 0;
    rtp_wr16(out + 10, 2);
    rtp_wr32(out + 12, (uint32_t)(ntp >> 32));
    rtp_wr32(out + 16, (uint32_t)ntp);
    return 20;
}

int rtcp_write_xr_dlrr(uint8_t *out, size_t cap, uint32_t ssrc, const struct rtcp_dlrr *d, int n)
{
    /* header, SSRC, block header (BT 5, block length 3n), n x (SSRC, LRR,
     * DLRR) (RFC 3611 §4.5) */
    if (n < 1 || n > RTCP_MAX_DLRR || !d)
        return -EINVAL;
    size_t len = 12 + 12u * (size_t)n;
    if (cap < len)
        return -ENOSPC;
    write_common(out, 0, RTCP_XR, len);
    rtp_wr32(out + 4, ssrc);
    out[8] = RTCP_XR_DLRR;
    out[9] = 0;
    rtp_wr16(out + 10, (uint16_t)(3 * n));
    for (int i = 0; i < n; i++) {
        rtp_wr32(out + 12 + 12 * i, d[i].ssrc);
        rtp_wr32(out + 16 + 12 * i, d[i].lrr);
        rtp_wr32(out + 20 + 12 * i, d[i].dlrr);
    }
    return (int)len;
}

/* An XR packet's body (after the common header): the sender's SSRC, then
 * report blocks that must fill it exactly. 0 or -EINVAL. */
static int read_xr(struct rtcp_info *out, const uint8_t *p, size_t len)
{
    if (len < 4)
        return -EINVAL;
    uint32_t ssrc = rtp_rd32(p);
    size_t off = 4;
    while (off < len) {
        if (len - off < 4)
            return -EINVAL;
        const uint8_t *b = p + off;
        size_t blen = 4 * ((size_t)rtp_rd16(b + 2) + 1); /* header included */
        if (blen > len - off)
            return -EINVAL;
        if (b[0] == RTCP_XR_RRTR) {
            if (blen != 12)
                return -EINVAL;
            if (!out->has_rrtr) {
                out->has_rrtr = 1;
                out->rrtr_ssrc = ssrc;
                out->rrtr_ntp = (uint64_t)rtp_rd32(b + 4) << 32 | rtp_rd32(b + 8);
            }
        } else if (b[0] == RTCP_XR_DLRR) {
            if ((blen - 4) % 12)
                return -EINVAL;
            for (size_t s = 4; s < blen && out->ndlrr < RTCP_MAX_DLRR; s += 12) {
                struct rtcp_dlrr *d = &out->dlrr[out->ndlrr++];
                d->ssrc = rtp_rd32(b + s);
                d->lrr = rtp_rd32(b + s + 4);
                d->dlrr = rtp_rd32(b + s + 8);
            }
        }
        /* other block types: skipped by their length */
        off += blen;
    }
    return 0;
}

static void read_blocks(struct rtcp_info *out, const uint8_t *p, int n)
{
    for (int i = 0; i < n && out->nblocks < RTCP_MAX_BLOCKS; i++, p += 24) {
        struct rtcp_block *b = &out->blocks[out->nblocks++];
        b->ssrc = rtp_rd32(p);
        uint32_t w = rtp_rd32(p + 4);
        b->fraction_lost = (uint8_t)(w >> 24);
        int32_t lost = (int32_t)(w & 0xffffff);
        if (lost & 0x800000)
            lost -= 0x1000000; /* sign-extend the 24 bits */
        b->cumulative_lost = lost;
        b->ext_highest_seq = rtp_rd32(p + 8);
        b->jitter = rtp_rd32(p + 12);
        b->lsr = rtp_rd32(p + 16);
        b->dlsr = rtp_rd32(p + 20);
    }
}

static void read_sdes(struct rtcp_info *out, const uint8_t *p, size_t len, int count)
{
    /* chunks: SSRC, items until a null item, padding to a word */
    size_t off = 0;
    for (int c = 0; c < count && off <= len && len - off >= 4; c++) {
        uint32_t ssrc = rtp_rd32(p + off);
        off += 4;
        while (off < len && p[off] != 0) {
            if (len - off < 2 || len - off - 2 < p[off + 1])
                return;
            uint8_t type = p[off], n = p[off + 1];
            if (type == 1 && !out->has_cname) {
                out->has_cname = 1;
                out->cname_ssrc = ssrc;
                memcpy(out->cname, p + off + 2, n);
                out->cname[n] = '\0';
            }
            off += 2u + n;
        }
        off = (off + 4) & ~(size_t)3; /* the null item and padding */
    }
}

int rtcp_parse(const uint8_t *data, size_t len, struct rtcp_info *out)
{
    memset(out, 0, sizeof(*out));
    if (!data || len < 4 || len % 4)
        return -EINVAL;
    /* First pass: structure only. */
    size_t off = 0;
    while (off < len) {
        const uint8_t *p = data + off;
        if (len - off < 4 || (p[0] >> 6) != 2)
            return -EINVAL;
        size_t plen = 4 * ((size_t)rtp_rd16(p + 2) + 1);
        if (plen > len - off)
            return -EINVAL;
        int padding = (p[0] >> 5) & 1;
        if (off == 0 && (padding || (p[1] != RTCP_SR && p[1] != RTCP_RR)))
            return -EINVAL;
        if (padding) {
            if (off + plen != len) /* only the last packet may be padded */
                return -EINVAL;
            uint8_t pad = p[plen - 1];
            if (pad == 0 || pad > plen - 4)
                return -EINVAL;
        }
        off += plen;
    }
    /* Second pass: what we use. */
    int first = 1;
    for (off = 0; off < len;) {
        const uint8_t *p = data + off;
        size_t plen = 4 * ((size_t)rtp_rd16(p + 2) + 1);
        size_t body = plen;
        if ((p[0] >> 5) & 1)
            body -= p[plen - 1];
        int count = p[0] & 0x1f;
        switch (p[1]) {
        case RTCP_SR:
            if (body < 28 + 24u * (size_t)count)
                return -EINVAL;
            if (first) {
                out->has_sr = 1;
                out->sender_ssrc = rtp_rd32(p + 4);
                out->sr.ntp = (uint64_t)rtp_rd32(p + 8) << 32 | rtp_rd32(p + 12);
                out->sr.rtp_ts = rtp_rd32(p + 16);
                out->sr.packets = rtp_rd32(p + 20);
                out->sr.octets = rtp_rd32(p + 24);
            }
            read_blocks(out, p + 28, count);
            break;
        case RTCP_RR:
            if (body < 8 + 24u * (size_t)count)
                return -EINVAL;
            if (first)
                out->sender_ssrc = rtp_rd32(p + 4);
            read_blocks(out, p + 8, count);
            break;
        case RTCP_SDES:
            read_sdes(out, p + 4, body - 4, count);
            break;
        case RTCP_BYE:
            if (body < 4 + 4u * (size_t)count)
                return -EINVAL;
            if (!out->bye && count > 0)
                out->bye_ssrc = rtp_rd32(p + 4);
            out->bye = 1;
            break;
        case RTCP_XR:
            if (read_xr(out, p + 4, body - 4) < 0)
                return -EINVAL;
            break;
        default:
            break; /* APP, ...: not ours */
        }
        first = 0;
        off += plen;
    }
    return 0;
}

uint64_t rtcp_ntp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* 2208988800: seconds from 1900 (NTP's epoch) to 1970 */
    uint64_t sec = (uint64_t)ts.tv_sec + 2208988800u;
    uint64_t frac = ((uint64_t)ts.tv_nsec << 32) / 1000000000u;
    return sec << 32 | frac;
}

double rtcp_rtt(uint32_t arrival_mid, uint32_t lsr, uint32_t dlsr)
{
    if (lsr == 0)
        return -1;
    uint32_t rtt = arrival_mid - lsr - dlsr; /* mod 2^32, as the RFC computes it */
    if (rtt > 0x80000000u)
        return -1; /* negative: clocks or a bogus report */
    return rtt / 65536.0;
}

uint32_t rtcp_delay_units(double now, double since)
{
    double d = (now - since) * 65536;
    if (!(d > 0)) /* (NaN too) */
        return 0;
    return d >= 4294967295.0 ? UINT32_MAX : (uint32_t)d;
}

double rtcp_interval(double base)
{
    uint32_t r;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (uint32_t)ts.tv_nsec * 2654435761u;
    }
    return base * (0.5 + r / 4294967296.0);
}

/* ---- receiver statistics: RFC 3550 A.1 ---- */

#define RTP_SEQ_MOD    (1u << 16)
#define MAX_DROPOUT    3000
#define MAX_MISORDER   100
#define MIN_SEQUENTIAL 2

static void init_seq(struct rtcp_recv_stats *s, uint16_t seq)
{
    s->base_seq = seq;
    s->max_seq = seq;
    s->bad_seq = RTP_SEQ_MOD + 1; /* so seq == bad_seq is false */
    s->cycles = 0;
    s->received = 0;
    s->received_prior = 0;
    s->expected_prior = 0;
}

void rtcp_recv_init(struct rtcp_recv_stats *s, uint16_t seq)
{
    memset(s, 0, sizeof(*s));
    init_seq(s, seq);
    s->max_seq = (uint16_t)(seq - 1);
    s->probation = MIN_SEQUENTIAL;
    s->started = 1;
}

static int update_seq(struct rtcp_recv_stats *s, uint16_t seq)
{
    uint16_t udelta = (uint16_t)(seq - s->max_seq);
    if (s->probation) {
        if (seq == (uint16_t)(s->max_seq + 1)) {
            s->probation--;
            s->max_seq = seq;
            if (s->probation == 0) {
                init_seq(s, seq);
                s->received++;
                return 1;
            }
        } else {
            s->probation = MIN_SEQUENTIAL - 1;
            s->max_seq = seq;
        }
        return 0;
    } else if (udelta < MAX_DROPOUT) {
        if (seq < s->max_seq)
            s->cycles += RTP_SEQ_MOD; /* wrapped */
        s->max_seq = seq;
    } else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
        /* a very large jump */
        if (seq == s->bad_seq) {
            init_seq(s, seq); /* two in a row: the other side restarted */
        } else {
            s->bad_seq = (seq + 1) & (RTP_SEQ_MOD - 1);
            return 0;
        }
    } else {
        /* duplicate or reordered */
    }
    s->received++;
    return 1;
}

int rtcp_recv_packet(struct rtcp_recv_stats *s, uint16_t seq, uint32_t ts, uint32_t arrival)
{
    if (!s->started)
        rtcp_recv_init(s, seq);
    if (!update_seq(s, seq))
        return 0;
    /* A.8 */
    uint32_t transit = arrival - ts;
    if (s->received > 1) {
        int32_t d = (int32_t)(transit - s->transit);
        if (d < 0)
            d = -d;
        s->jitter += (uint32_t)d - ((s->jitter + 8) >> 4);
    }
    s->transit = transit;
    return 1;
}

uint32_t rtcp_recv_ext_max(const struct rtcp_recv_stats *s)
{
    return s->cycles + s->max_seq;
}

uint32_t rtcp_recv_jitter(const struct rtcp_recv_stats *s)
{
    return s->jitter >> 4;
}

void rtcp_recv_block(struct rtcp_recv_stats *s, uint32_t ssrc, uint32_t lsr, uint32_t dlsr,
                     struct rtcp_block *out)
{
    memset(out, 0, sizeof(*out));
    out->ssrc = ssrc;
    out->lsr = lsr;
    out->dlsr = dlsr;
    if (!s->started)
        return;
    uint32_t ext_max = rtcp_recv_ext_max(s);
    uint32_t expected = ext_max - s->base_seq + 1;
    int64_t lost = (int64_t)expected - s->received;
    if (lost > 0x7fffff)
        lost = 0x7fffff;
    if (lost < -0x800000)
        lost = -0x800000;
    uint32_t expected_interval = expected - s->expected_prior;
    s->expected_prior = expected;
    uint32_t received_interval = s->received - s->received_prior;
    s->received_prior = s->received;
    int64_t lost_interval = (int64_t)expected_interval - received_interval;
    uint8_t fraction = 0;
    if (expected_interval != 0 && lost_interval > 0)
        fraction = (uint8_t)((lost_interval << 8) / expected_interval > 255
                                 ? 255
                                 : (lost_interval << 8) / expected_interval);
    out->fraction_lost = fraction;
    out->cumulative_lost = (int32_t)lost;
    out->ext_highest_seq = ext_max;
    out->jitter = rtcp_recv_jitter(s);
}
