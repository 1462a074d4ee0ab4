/*
 * RTP (RFC 3550) packets and the audio payload formats IMES sends and
 * receives: MPEG audio (RFC 2250, static payload type 14, 90 kHz clock),
 * Opus (RFC 7587, dynamic payload type, 48 kHz clock, one packet per frame)
 * and linear PCM L16/L24 (RFC 3551 §4.5.11, RFC 3190: big-endian samples,
 * interleaved channels). Pure: no I/O, no clock, no allocation, so the same
 * code serves imesd, the Matriz peer, the unit tests and the fuzzers.
 *
 * Sending: a payloader keeps SSRC and sequence number and cuts one encoded
 * frame (or a block of PCM) into packets no larger than its MTU, handing each
 * to an emit callback:
 *
 *     struct rtp_payloader p;
 *     rtp_payloader_init(&p, &(struct rtp_format){RTP_ENC_OPUS, 96, 48000, 2}, ssrc, seq0, 1200);
 *     rtp_payload_frame(&p, frame, len, ts, send_packet, sock);
 *
 * Receiving: rtp_parse() validates a packet (version, padding, CSRC count,
 * extension length) and points into it; rtp_mpa_parse() reads RFC 2250's
 * 4-byte header. Nothing is copied: the results point into the caller's bytes.
 * Thread: any.
 */
#ifndef IMES_RTP_H
#define IMES_RTP_H

#include <stddef.h>
#include <stdint.h>

#define RTP_HEADER_LEN 12 /* without CSRCs and extension */
#define RTP_MAX_CSRC   15
#define RTP_MPA_HEADER 4  /* RFC 2250 §3.5: MBZ (16 bits), Frag_offset (16 bits) */
#define RTP_PT_MPA     14 /* RFC 3551 static payload type */
#define RTP_PT_DYNAMIC 96 /* the first dynamic payload type */
/* A payload that fits a 1500-byte Ethernet frame with IPv6, UDP and some
 * tunnel headers to spare (what live555 and GStreamer use too). */
#define RTP_DEFAULT_MTU 1400

enum rtp_encoding {
    RTP_ENC_MPA = 0, /* MP3 frames, RFC 2250 */
    RTP_ENC_OPUS,    /* RFC 7587 */
    RTP_ENC_L16,     /* 16-bit big-endian PCM */
    RTP_ENC_L24,     /* 24-bit big-endian PCM */
};

/* What goes into an SDP rtpmap and how timestamps count. */
struct rtp_format {
    enum rtp_encoding enc;
    uint8_t pt;          /* 14 for MPA; 96..127 for the others */
    uint32_t clock_rate; /* 90000 (MPA), 48000 (Opus), the sample rate (L16/L24) */
    int channels;        /* 1 or 2 (Opus is always announced as 2, RFC 7587 §7) */
};

/* "MPA", "opus", "L16", "L24" (the SDP encoding names), or "?". */
const char *rtp_encoding_name(enum rtp_encoding enc);
/* The standard format for an encoding: MPA 14/90000, Opus 96/48000/2, L16 and
 * L24 96 at rate/channels. -EINVAL for a bad encoding, rate or channels. */
int rtp_format_default(struct rtp_format *f, enum rtp_encoding enc, uint32_t rate, int channels);

struct rtp_header {
    int marker;
    uint8_t pt; /* 0..127 */
    uint16_t seq;
    uint32_t ts;
    uint32_t ssrc;
    uint8_t cc; /* CSRCs */
    uint32_t csrc[RTP_MAX_CSRC];
    /* Extension (parse only): profile id and its data (ext_len bytes). */
    int has_ext;
    uint16_t ext_profile;
    const uint8_t *ext;
    size_t ext_len;
};

/* Writes the fixed header and CSRCs (never an extension) into out. Returns
 * the bytes written (12 + 4 cc), or -ENOSPC if cap is too small, -EINVAL for
 * pt > 127 or cc > 15. */
int rtp_header_write(uint8_t *out, size_t cap, const struct rtp_header *h);

struct rtp_packet {
    struct rtp_header h;
    const uint8_t *payload; /* into the parsed bytes */
    size_t payload_len;     /* without padding */
    uint8_t padding;        /* padding bytes removed */
};

/* Parses and validates one packet: -EINVAL unless version 2, the CSRC list,
 * the extension and the padding (count nonzero and within the packet) fit.
 * An empty payload is valid. Never reads outside data[0..len). */
int rtp_parse(const uint8_t *data, size_t len, struct rtp_packet *out);

/* RFC 2250 §3.5 header of an MPA payload: 0 with the fragment offset, -EINVAL
 * if it is shorter than 4 bytes or MBZ is not zero. */
int rtp_mpa_parse(const uint8_t *payload, size_t len, uint16_t *frag_offset);

/* ---- sending ---- */

/* Gets each packet; the bytes are valid during the call only. Return <0 to
 * stop the frame (that value is returned by rtp_payload_frame). */
typedef int (*rtp_emit_fn)(const uint8_t *packet, size_t len, void *arg);

struct rtp_payloader {
    struct rtp_format fmt;
    uint32_t ssrc;
    uint16_t seq;             /* of the next packet */
    size_t mtu;               /* the largest packet, header included */
    uint64_t packets, octets; /* sent so far (octets: payload only, as in an SR) */
};

/* mtu 0 = RTP_DEFAULT_MTU; below 64 or above 65535 is clamped. */
void rtp_payloader_init(struct rtp_payloader *p, const struct rtp_format *fmt, uint32_t ssrc,
                        uint16_t seq, size_t mtu);

/* Packetizes one unit at RTP timestamp ts:
 * - MPA: one MPEG audio frame; a frame larger than a packet is split into
 *   fragments with the same timestamp and growing Frag_offset (RFC 2250 §3.5);
 *   the marker bit is never set (continuous audio).
 * - Opus: one Opus packet in one RTP packet; -EMSGSIZE if it does not fit.
 * - L16/L24: len bytes of big-endian PCM (whole sample frames: len a multiple
 *   of 2 or 3 × channels, else -EINVAL), split at sample-frame boundaries; each
 *   packet's timestamp advances by the sample frames before it.
 * marker sets M on the first packet (the start of a talkspurt, after a pause).
 * Returns the packets emitted, or <0 (-EINVAL, -EMSGSIZE, or what emit
 * returned). seq, packets and octets advance for every packet emitted. */
int rtp_payload_frame(struct rtp_payloader *p, const uint8_t *data, size_t len, uint32_t ts,
                      int marker, rtp_emit_fn emit, void *arg);

/* Native-endian 16-bit samples to L16 (big-endian), n samples, in place allowed. */
void rtp_l16_from_s16(uint8_t *out, const int16_t *in, size_t n);
/* 32-bit samples (24 significant bits in the high bytes, as JACK/ALSA S32
 * carry them) to L24: the top 3 bytes of each, big-endian. */
void rtp_l24_from_s32(uint8_t *out, const int32_t *in, size_t n);

/* Reading and writing big-endian integers. */
static inline uint16_t rtp_rd16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}
static inline uint32_t rtp_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void rtp_wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void rtp_wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
