/*
 * The send path of a Matriz peer: the captured audio, encoded once, served
 * live to every receiver through the RTSP server of backend/rtp as
 * rtsp://<host>:<port>/stream.
 *
 *     audio thread:  tx_capture(tx, l, r, frames)   → whole frames encoded
 *                    (Opus RESTRICTED_LOWDELAY, or L16/L24 big-endian PCM)
 *                    into a ring of recent packets, then an ev_async wakes
 *     loop thread:   every playing RTSP session, which reads the ring from
 *                    where it joined (a session that falls a ring behind
 *                    skips to the newest packet: it is live audio).
 *
 * tx_capture does not lock; the Opus encoder allocates nothing after its
 * first frames. Thread: tx_capture on the audio thread, the rest on the loop.
 */
#ifndef IMES_MATRIZ_TX_H
#define IMES_MATRIZ_TX_H

#include <ev.h>
#include <stdint.h>

#include "rtp/rtp.h"
#include "rtp/rtsp_server.h"

struct tx;

struct tx_options {
    enum rtp_encoding enc; /* RTP_ENC_OPUS, RTP_ENC_L16, RTP_ENC_L24 */
    int frame;             /* samples per packet at 48 kHz: 120, 240, 480 (PCM: one
                            * packet per audio period instead, when it fits) */
    int bitrate;           /* Opus */
    int fec;               /* Opus in-band FEC */
    int loss_percent;      /* Opus: expected loss */
    const char *name;      /* SDP s= */
};

struct tx *tx_new(struct ev_loop *loop, const struct tx_options *opt);
void tx_free(struct tx **tx);

/* Thread: audio. */
void tx_capture(struct tx *tx, const float *l, const float *r, uint32_t frames);

/* The provider for rtsp_server_new (arg: the tx): "/stream" only. */
extern const struct rtsp_provider tx_provider;

struct tx_stats {
    uint64_t packets, octets, encode_errors, skipped; /* skipped: by sessions that fell behind */
    int sessions;
};
void tx_get_stats(const struct tx *tx, struct tx_stats *st);

#endif
