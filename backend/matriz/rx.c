/*
 * One link's receive path (see rx.h).
 *
 * The ring: slots of JITTER_MAX_PAYLOAD bytes; the producer fills slot
 * head % n and then publishes head + 1 (release); the consumer reads up to
 * head (acquire) and publishes its tail. Nothing else is shared but the
 * stats, which the audio thread copies into one of two buffers and flips
 * an index to (a reader may rarely see a mix of two periods: fine for stats).
 *
 * Decoding goes a packet frame at a time into a small FIFO of PCM, from
 * which each period is served; the jitter buffer is asked for the frame due
 * at now + (what the FIFO holds) / rate.
 */
#include "matriz/rx.h"

#include <errno.h>
#include <opus/opus.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAME 2880 /* 60 ms at 48 kHz: the longest Opus packet */

struct slot {
    uint16_t seq;
    uint32_t ts, ssrc;
    double arrival;
    size_t len;
    uint8_t data[JITTER_MAX_PAYLOAD];
};

struct rx {
    struct rx_options o;
    struct slot *ring;
    size_t n;
    atomic_size_t head, tail;
    atomic_uint_fast64_t pushed, ring_drops, bad;

    /* audio thread */
    struct jitter *jb;
    OpusDecoder *dec;
    int frame;
    uint32_t ssrc;
    int have_ssrc;
    float fifo[2 * 2 * MAX_FRAME]; /* interleaved stereo */
    size_t fifo_len;               /* frames */
    float pcm[2 * MAX_FRAME];
    uint64_t ssrc_changes, decode_errors;

    struct rx_stats pub[2];
    atomic_int pub_idx;
};

struct rx *rx_new(const struct rx_options *opt)
{
    struct rx *rx = calloc(1, sizeof(*rx));
    int err;
    if (!rx)
        return NULL;
    rx->o = *opt;
    rx->n = opt->ring ? opt->ring : 256;
    rx->ring = calloc(rx->n, sizeof(*rx->ring));
    if (!rx->ring)
        goto fail;
    if (opt->fmt.enc == RTP_ENC_OPUS) {
        rx->dec = opus_decoder_create(48000, 2, &err);
        if (!rx->dec)
            goto fail;
    } else if (opt->fmt.enc != RTP_ENC_L16 && opt->fmt.enc != RTP_ENC_L24) {
        goto fail;
    }
    if (opt->fmt.channels < 1 || opt->fmt.channels > 2)
        goto fail;
    return rx;
fail:
    rx_free(&rx);
    return NULL;
}

void rx_free(struct rx **rxp)
{
    struct rx *rx = *rxp;
    if (!rx)
        return;
    jitter_free(&rx->jb);
    if (rx->dec)
        opus_decoder_destroy(rx->dec);
    free(rx->ring);
    free(rx);
    *rxp = NULL;
}

int rx_push(struct rx *rx, const uint8_t *pkt, size_t len, double arrival)
{
    struct rtp_packet p;
    if (rtp_parse(pkt, len, &p) < 0) {
        atomic_fetch_add(&rx->bad, 1);
        return -EINVAL;
    }
    return rx_push_packet(rx, &p, arrival);
}

int rx_push_packet(struct rx *rx, const struct rtp_packet *pp, double arrival)
{
    const struct rtp_packet p = *pp;
    if (p.h.pt != rx->o.fmt.pt || p.payload_len == 0 || p.payload_len > JITTER_MAX_PAYLOAD) {
        atomic_fetch_add(&rx->bad, 1);
        return -EINVAL;
    }
    size_t head = atomic_load_explicit(&rx->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&rx->tail, memory_order_acquire);
    if (head - tail >= rx->n) {
        atomic_fetch_add(&rx->ring_drops, 1);
        return -ENOBUFS;
    }
    struct slot *s = &rx->ring[head % rx->n];
    s->seq = p.h.seq;
    s->ts = p.h.ts;
    s->ssrc = p.h.ssrc;
    s->arrival = arrival;
    s->len = p.payload_len;
    memcpy(s->data, p.payload, p.payload_len);
    atomic_store_explicit(&rx->head, head + 1, memory_order_release);
    atomic_fetch_add(&rx->pushed, 1);
    return 0;
}

/* Samples per channel in one packet, or <= 0. */
static int packet_frames(const struct rx *rx, const uint8_t *d, size_t len)
{
    if (rx->o.fmt.enc == RTP_ENC_OPUS)
        return opus_packet_get_nb_samples(d, (opus_int32)len, 48000);
    size_t bytes = (rx->o.fmt.enc == RTP_ENC_L16 ? 2 : 3) * (size_t)rx->o.fmt.channels;
    return len % bytes == 0 ? (int)(len / bytes) : -1;
}

/* Thread: audio. */
static void drain(struct rx *rx, uint32_t period)
{
    size_t tail = atomic_load_explicit(&rx->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&rx->head, memory_order_acquire);
    for (; tail != head; tail++) {
        struct slot *s = &rx->ring[tail % rx->n];
        int f = packet_frames(rx, s->data, s->len);
        if (f <= 0 || f > MAX_FRAME) {
            rx->decode_errors++;
            continue;
        }
        if (!rx->have_ssrc || s->ssrc != rx->ssrc || !rx->jb || f != rx->frame) {
            if (rx->have_ssrc && s->ssrc != rx->ssrc)
                rx->ssrc_changes++;
            rx->have_ssrc = 1;
            rx->ssrc = s->ssrc;
            if (!rx->jb || f != rx->frame) {
                /* The first packet, or the sender changed its frame size:
                 * the one allocation of this path (rare by nature). */
                jitter_free(&rx->jb);
                struct jitter_options jo = {.rate = 48000,
                                            .frame = f,
                                            .min_ms = rx->o.min_ms,
                                            .max_ms = rx->o.max_ms,
                                            .headroom_ms = rx->o.headroom_ms,
                                            .period = (int)period};
                rx->jb = jitter_new(&jo);
                rx->frame = f;
                if (!rx->jb)
                    continue;
            } else {
                jitter_reset(rx->jb);
            }
        }
        jitter_put(rx->jb, s->seq, s->ts, s->data, s->len, s->arrival);
    }
    atomic_store_explicit(&rx->tail, tail, memory_order_release);
}

static float be16(const uint8_t *p)
{
    return (float)(int16_t)(uint16_t)(p[0] << 8 | p[1]) / 32768.f;
}

static float be24(const uint8_t *p)
{
    int32_t v = (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8);
    return (float)(v / 2147483648.0);
}

/* Decodes the next frame, to play `done` samples into the period (of
 * `period` samples) that starts at `now`, into the FIFO. Thread: audio. */
static void decode_next(struct rx *rx, double now, uint32_t done, uint32_t period)
{
    int f = rx->frame;
    float *out = rx->fifo + 2 * rx->fifo_len;
    if (!rx->jb || f <= 0) {
        /* nothing yet: silence, 5 ms of it; for PCM a period (its packets
         * are a period each: their frames then begin on a period's start,
         * not to be taken ahead of play). For Opus a period-long step made
         * playout start on the first packet alone, whose target then grew
         * by an inserted frame (10 ms frames played ~6 ms later). */
        f = rx->o.fmt.enc != RTP_ENC_OPUS && period > 0 && period <= MAX_FRAME ? (int)period : 240;
        memset(out, 0, (size_t)f * 2 * sizeof(float));
        rx->fifo_len += (size_t)f;
        return;
    }
    struct jitter_frame fr;
    enum jitter_result res =
        jitter_get_ahead(rx->jb, now + (double)done / 48000, (double)done / 48000, &fr);
    int got = 0;
    if (rx->dec) {
        if (res == JITTER_PACKET)
            got = opus_decode_float(rx->dec, fr.data, (opus_int32)fr.len, out, f, 0);
        else if (res == JITTER_CONCEAL && fr.fec)
            got = opus_decode_float(rx->dec, fr.fec, (opus_int32)fr.fec_len, out, f, 1);
        else if (res == JITTER_CONCEAL)
            got = opus_decode_float(rx->dec, NULL, 0, out, f, 0);
        if (got < 0) {
            rx->decode_errors++;
            got = 0;
        }
    } else if (res == JITTER_PACKET) {
        int ch = rx->o.fmt.channels, bps = rx->o.fmt.enc == RTP_ENC_L16 ? 2 : 3;
        int n = (int)fr.len / (bps * ch);
        for (int i = 0; i < n && i < f; i++) {
            const uint8_t *s = fr.data + (size_t)i * (size_t)(bps * ch);
            float l = bps == 2 ? be16(s) : be24(s);
            float r = ch == 2 ? (bps == 2 ? be16(s + 2) : be24(s + 3)) : l;
            out[2 * i] = l;
            out[2 * i + 1] = r;
        }
        got = n < f ? n : f;
    }
    if (got < f)
        memset(out + 2 * got, 0, (size_t)(f - got) * 2 * sizeof(float));
    /* A decoder fed garbage (or a hostile sender) may go beyond full scale:
     * what reaches the speakers is clipped. */
    for (int i = 0; i < 2 * got; i++)
        out[i] = out[i] > 1.f ? 1.f : out[i] < -1.f ? -1.f : out[i] == out[i] ? out[i] : 0.f;
    rx->fifo_len += (size_t)f;
}

void rx_pull(struct rx *rx, float *l, float *r, uint32_t frames, double now)
{
    drain(rx, frames);
    uint32_t done = 0;
    while (done < frames) {
        if (rx->fifo_len == 0)
            decode_next(rx, now, done, frames);
        size_t take = rx->fifo_len < frames - done ? rx->fifo_len : frames - done;
        for (size_t i = 0; i < take; i++) {
            l[done + i] = rx->fifo[2 * i];
            r[done + i] = rx->fifo[2 * i + 1];
        }
        memmove(rx->fifo, rx->fifo + 2 * take, (rx->fifo_len - take) * 2 * sizeof(float));
        rx->fifo_len -= take;
        done += (uint32_t)take;
    }
    int next = !atomic_load_explicit(&rx->pub_idx, memory_order_relaxed);
    struct rx_stats *st = &rx->pub[next];
    if (rx->jb)
        jitter_get_stats(rx->jb, &st->jb);
    st->frame = rx->frame;
    st->ssrc_changes = rx->ssrc_changes;
    st->decode_errors = rx->decode_errors;
    atomic_store_explicit(&rx->pub_idx, next, memory_order_release);
}

void rx_get_stats(const struct rx *rx, struct rx_stats *st)
{
    *st = rx->pub[atomic_load_explicit(&rx->pub_idx, memory_order_acquire)];
    st->pushed = atomic_load(&rx->pushed);
    st->ring_drops = atomic_load(&rx->ring_drops);
    st->bad = atomic_load(&rx->bad);
}
