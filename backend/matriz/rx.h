/*
 * The receive path of one Matriz link: RTP packets in, PCM out.
 *
 *     loop thread:   rx_push(rx, datagram, arrival)      (from the RTSP client)
 *     audio thread:  rx_pull(rx, l, r, frames, now)      (once per period)
 *
 * rx_push validates the packet (rtp_parse, the payload type given at
 * rx_new) and copies it into a bounded single-producer/single-consumer ring;
 * a full ring drops the packet (counted). rx_pull drains the ring into the
 * adaptive jitter buffer (jitter.h) and decodes frame after frame until the
 * period is filled: Opus (with PLC for a missing frame, or in-band FEC from
 * the next packet when it is there), or L16/L24 big-endian PCM (a missing
 * frame is silence). The sender's frame size is learnt from the packets
 * (opus_packet_get_nb_samples; PCM length), and a new SSRC (the sender
 * restarted) starts the jitter buffer over.
 *
 * rx_pull neither locks nor allocates (real-time safe); its stats are
 * published for other threads through rx_get_stats.
 * Thread: rx_push on one thread, rx_pull on one other; rx_new/rx_free when
 * neither runs.
 */
#ifndef IMES_MATRIZ_RX_H
#define IMES_MATRIZ_RX_H

#include <stddef.h>
#include <stdint.h>

#include "matriz/jitter.h"
#include "rtp/rtp.h"

struct rx;

struct rx_options {
    struct rtp_format fmt;              /* what the SDP announced (encoding, pt, rate, channels) */
    double min_ms, max_ms, headroom_ms; /* jitter buffer bounds (jitter.h) */
    size_t ring;                        /* packets in flight to the audio thread; 0 = 256 */
};

struct rx_stats {
    struct jitter_stats jb;
    uint64_t pushed, ring_drops, bad, ssrc_changes, decode_errors;
    int frame; /* samples per packet, 0 until known */
};

struct rx *rx_new(const struct rx_options *opt);
void rx_free(struct rx **rx);

/* A datagram (an RTP packet) that arrived at `arrival` (timeutil_mono).
 * 0, -EINVAL (not RTP, another payload type: counted as bad), -ENOBUFS
 * (the ring is full: dropped). */
int rx_push(struct rx *rx, const uint8_t *pkt, size_t len, double arrival);
/* The same for a packet parsed already (the RTSP client's). */
int rx_push_packet(struct rx *rx, const struct rtp_packet *p, double arrival);

/* Fills l and r with frames of audio due from `now` on (the smooth clock of
 * the audio side; see jitter.h). */
void rx_pull(struct rx *rx, float *l, float *r, uint32_t frames, double now);

void rx_get_stats(const struct rx *rx, struct rx_stats *st);

#endif
