/*
 * RTCP (RFC 3550 §6): compound packets of sender reports (SR), receiver
 * reports (RR), SDES CNAME and BYE, built and parsed; NTP timestamps; the
 * receiver statistics of RFC 3550 Appendix A.1/A.3 (sequence validation,
 * extended highest sequence number, loss) and A.8 (interarrival jitter); and
 * the round-trip time from a report's LSR/DLSR (§6.4.1); and the two RTCP XR
 * blocks of RFC 3611 that give a receiver its round-trip time: the receiver
 * sends a Receiver Reference Time block (RRTR, §4.4: its NTP time) with its
 * RR, the sender answers with a DLRR block (§4.5: that time's middle 32 bits,
 * LRR, and the delay since it came, DLRR, 1/65536 s) and the receiver
 * computes now - LRR - DLRR, as a sender does with LSR/DLSR.
 *
 * Build a compound packet by appending parts to one buffer (each part is
 * whole 32-bit words; the first must be an SR or RR, RFC 3550 §6.1):
 *
 *     uint8_t b[RTCP_MAX_PACKET]; int n = 0, r;
 *     r = rtcp_write_sr(b, sizeof(b), &sr, NULL, 0);           n += r
 *     r = rtcp_write_sdes_cname(b + n, sizeof(b) - n, ssrc, "imesd@host");
 *
 * Parsing (rtcp_parse) checks the whole compound first (RFC 3550 A.2: version
 * 2, first packet SR or RR without padding, lengths adding up exactly to the
 * datagram, padding only in the last) and then fills what it understood;
 * APP and unknown types are skipped. In an XR packet every block must fit the
 * packet exactly (each is whole words, its length word says how many);
 * RRTR and DLRR blocks of the wrong size reject the compound, other block
 * types are skipped by their length. Pure: no I/O, no clock but
 * rtcp_ntp_now(), no randomness but rtcp_interval(). Thread: any.
 */
#ifndef IMES_RTCP_H
#define IMES_RTCP_H

#include <stddef.h>
#include <stdint.h>

#define RTCP_SR   200
#define RTCP_RR   201
#define RTCP_SDES 202
#define RTCP_BYE  203
#define RTCP_APP  204
#define RTCP_XR   207 /* RFC 3611 */

#define RTCP_XR_RRTR 4 /* block types */
#define RTCP_XR_DLRR 5

#define RTCP_MAX_PACKET 1500 /* what we build; what we parse may be larger */
#define RTCP_MAX_BLOCKS 31   /* report blocks per SR/RR (5-bit count) */
#define RTCP_CNAME_MAX  255
#define RTCP_MAX_DLRR   8 /* DLRR sub-blocks kept by rtcp_parse (more are skipped) */

/* One report block (RFC 3550 §6.4.1). */
struct rtcp_block {
    uint32_t ssrc;           /* the source this block is about */
    uint8_t fraction_lost;   /* since the last report, 8-bit fixed point */
    int32_t cumulative_lost; /* 24-bit signed */
    uint32_t ext_highest_seq;
    uint32_t jitter; /* in RTP timestamp units */
    uint32_t lsr;    /* middle 32 bits of the last SR's NTP time, 0 = none */
    uint32_t dlsr;   /* delay since that SR, 1/65536 s */
};

struct rtcp_sender_info {
    uint64_t ntp; /* 32.32 fixed point seconds since 1900 */
    uint32_t rtp_ts;
    uint32_t packets;
    uint32_t octets;
};

/* One DLRR sub-block (RFC 3611 §4.5). */
struct rtcp_dlrr {
    uint32_t ssrc; /* the receiver whose RRTR this answers */
    uint32_t lrr;  /* middle 32 bits of that RRTR's NTP time */
    uint32_t dlrr; /* delay since that RRTR came, 1/65536 s */
};

/* Each returns the bytes written (a multiple of 4), -ENOSPC if cap is too
 * small, -EINVAL for nblocks > 31 or a CNAME longer than 255. */
int rtcp_write_sr(uint8_t *out, size_t cap, uint32_t ssrc, const struct rtcp_sender_info *si,
                  const struct rtcp_block *blocks, int nblocks);
int rtcp_write_rr(uint8_t *out, size_t cap, uint32_t ssrc, const struct rtcp_block *blocks,
                  int nblocks);
int rtcp_write_sdes_cname(uint8_t *out, size_t cap, uint32_t ssrc, const char *cname);
int rtcp_write_bye(uint8_t *out, size_t cap, uint32_t ssrc);
/* An XR packet with one RRTR block of NTP time ntp (32.32). */
int rtcp_write_xr_rrtr(uint8_t *out, size_t cap, uint32_t ssrc, uint64_t ntp);
/* An XR packet with one DLRR block of n sub-blocks (-EINVAL for n outside
 * 1..RTCP_MAX_DLRR). */
int rtcp_write_xr_dlrr(uint8_t *out, size_t cap, uint32_t ssrc, const struct rtcp_dlrr *d, int n);

/* What a compound packet said. */
struct rtcp_info {
    int has_sr;
    uint32_t sender_ssrc; /* of the (first) SR or RR */
    struct rtcp_sender_info sr;
    int nblocks; /* report blocks of every SR/RR in the compound */
    struct rtcp_block blocks[RTCP_MAX_BLOCKS];
    int has_cname;
    uint32_t cname_ssrc;
    char cname[RTCP_CNAME_MAX + 1];
    int bye;            /* a BYE was seen */
    uint32_t bye_ssrc;  /* its first SSRC */
    int has_rrtr;       /* an XR RRTR block was seen (the first one counts) */
    uint32_t rrtr_ssrc; /* the SSRC of the XR packet that carried it */
    uint64_t rrtr_ntp;
    int ndlrr; /* DLRR sub-blocks of every XR packet (up to RTCP_MAX_DLRR) */
    struct rtcp_dlrr dlrr[RTCP_MAX_DLRR];
};

/* 0, or -EINVAL for anything that fails the checks above. */
int rtcp_parse(const uint8_t *data, size_t len, struct rtcp_info *out);

/* ---- time ---- */

/* The wall clock (CLOCK_REALTIME) as NTP 32.32 (RFC 3550 §4). */
uint64_t rtcp_ntp_now(void);
/* The middle 32 bits (16.16), as in LSR. */
static inline uint32_t rtcp_ntp_mid(uint64_t ntp)
{
    return (uint32_t)(ntp >> 16);
}
/* Round-trip time in seconds from a report block received at arrival (NTP,
 * middle 32 bits): arrival - lsr - dlsr (RFC 3550 §6.4.1). -1 if the block
 * has no LSR or the result would be negative. */
double rtcp_rtt(uint32_t arrival_mid, uint32_t lsr, uint32_t dlsr);
/* The delay since a monotonic time `since` until `now` in 1/65536 s, as
 * DLSR and DLRR carry it (0 for a negative delay, clamped to 32 bits). */
uint32_t rtcp_delay_units(double now, double since);
/* An RTCP interval randomised as RFC 3550 §6.3.1 says: uniformly in
 * [0.5, 1.5] x base, so that reports of many members do not synchronise
 * (getrandom(2); the clock when that fails). */
double rtcp_interval(double base);

/* ---- receiver statistics (RFC 3550 A.1, A.3, A.8) ---- */

struct rtcp_recv_stats {
    uint16_t max_seq;
    uint32_t cycles; /* shifted count of sequence number cycles */
    uint32_t base_seq;
    uint32_t bad_seq;
    uint32_t probation;
    uint32_t received;
    uint32_t expected_prior, received_prior;
    uint32_t transit; /* relative transit time of the previous packet */
    uint32_t jitter;  /* estimated jitter, 16x (A.8: J is kept scaled) */
    int started;
};

/* Starts on the first packet's seq (probation: MIN_SEQUENTIAL = 2 packets in
 * a row before a source counts as valid, as A.1). */
void rtcp_recv_init(struct rtcp_recv_stats *s, uint16_t seq);
/* A packet arrived: returns 1 if valid (counted), 0 if not (yet: probation,
 * a jump, a duplicate too old). arrival is the arrival time in RTP timestamp
 * units (any origin), ts the packet's timestamp: used for jitter. */
int rtcp_recv_packet(struct rtcp_recv_stats *s, uint16_t seq, uint32_t ts, uint32_t arrival);
/* The extended highest sequence number received. */
uint32_t rtcp_recv_ext_max(const struct rtcp_recv_stats *s);
/* Jitter in timestamp units (what a report block carries). */
uint32_t rtcp_recv_jitter(const struct rtcp_recv_stats *s);
/* Fills a report block about ssrc (A.3: fraction lost since the previous
 * call, cumulative lost clamped to 24 bits) and moves the interval on. */
void rtcp_recv_block(struct rtcp_recv_stats *s, uint32_t ssrc, uint32_t lsr, uint32_t dlsr,
                     struct rtcp_block *out);

#endif
