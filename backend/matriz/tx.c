/*
 * The send path (see tx.h).
 *
 * Ring: RING slots of encoded packets; the audio thread writes slot w % RING
 * and then publishes w + 1. A reader copies a slot and checks afterwards that
 * the writer has not come round to it meanwhile (then the copy may be torn
 * and is dropped: the reader skips ahead), so no lock is needed either way.
 */
#include "matriz/tx.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "media/encoder.h"
#include "rtp/sdp.h"

/* 64 packets: 160 ms at 2.5 ms frames, 640 ms at 10 ms; far more than a
 * playing session ever lags (it reads at every wake). */
#define RING         64
#define PKT_MAX      1400 /* fits one RTP packet of the default MTU */
#define MAX_TX_FRAME 480

struct pkt {
    size_t len;
    uint32_t samples;
    uint8_t data[PKT_MAX];
};

struct source {
    struct rtsp_source base; /* first: the server sees this */
    struct tx *tx;
    struct source *prev, *next;
    uint64_t pos; /* the next packet to read */
    int started;
    rtsp_wake_fn wake;
    void *wake_arg;
    uint8_t copy[PKT_MAX];
};

struct tx {
    struct ev_loop *loop;
    struct tx_options o;
    char name[96];
    struct rtp_format fmt;
    struct encoder *enc;
    const struct encoder_ops *eops;
    int bitrate_kbps;
    char fmtp[128];

    /* audio thread */
    float pcm[2 * MAX_TX_FRAME];
    uint32_t fill;
    uint8_t pcm_be[MAX_TX_FRAME * 2 * 3];

    struct pkt ring[RING];
    atomic_uint_fast64_t written;
    atomic_uint_fast64_t encode_errors;
    ev_async async;

    struct source *sources;
    int nsources;
    uint64_t skipped, octets;
};

static void on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    struct tx *tx = w->data;
    for (struct source *s = tx->sources, *next; s; s = next) {
        next = s->next; /* a wake may end the session */
        if (s->started && s->wake)
            s->wake(s->wake_arg);
    }
}

struct tx *tx_new(struct ev_loop *loop, const struct tx_options *opt)
{
    struct tx *tx = calloc(1, sizeof(*tx));
    if (!tx)
        return NULL;
    tx->loop = loop;
    tx->o = *opt;
    snprintf(tx->name, sizeof(tx->name), "%s", opt->name ? opt->name : "matriz");
    if (opt->frame != 120 && opt->frame != 240 && opt->frame != 480) {
        LOG(E_ERROR, L_MATRIZ, "send: a frame of %d samples is not 2.5, 5 or 10 ms", opt->frame);
        goto fail;
    }
    if (rtp_format_default(&tx->fmt, opt->enc, 48000, 2) < 0)
        goto fail;
    if (opt->enc == RTP_ENC_OPUS) {
        struct encoder_params ep = {.rate = 48000,
                                    .channels = 2,
                                    .bitrate = opt->bitrate,
                                    .frame_us = opt->frame * 1000 / 48,
                                    .lowdelay = 1,
                                    .fec = opt->fec,
                                    .loss_perc = opt->loss_percent};
        const char *why = NULL;
        tx->eops = &encoder_opus;
        if (tx->eops->open(&tx->enc, &ep, &why) < 0) {
            LOG(E_ERROR, L_MATRIZ, "send: Opus: %s", why ? why : "cannot open");
            goto fail;
        }
        tx->bitrate_kbps = opt->bitrate / 1000;
        snprintf(tx->fmtp, sizeof(tx->fmtp), "minptime=%d;stereo=1;sprop-stereo=1%s",
                 opt->frame == 120 ? 3 : opt->frame / 48, opt->fec ? ";useinbandfec=1" : "");
    } else {
        /* PCM goes one RTP packet per frame, so that every packet is a
         * whole frame on the receiver's grid: a frame that would not fit
         * the default MTU is sent as halves (L16 at 10 ms: 5 ms packets;
         * L24 at 5 or 10 ms: 2.5 ms packets). */
        int bytes = opt->enc == RTP_ENC_L16 ? 4 : 6;
        while (tx->o.frame > 120 &&
               (size_t)(tx->o.frame * bytes) > RTP_DEFAULT_MTU - RTP_HEADER_LEN)
            tx->o.frame /= 2;
        if (tx->o.frame != opt->frame)
            LOG(E_INFO, L_MATRIZ, "send: %s in %d-sample packets (a %d-sample one exceeds the MTU)",
                rtp_encoding_name(opt->enc), tx->o.frame, opt->frame);
        tx->bitrate_kbps = 48 * 2 * (opt->enc == RTP_ENC_L16 ? 16 : 24);
    }
    ev_async_init(&tx->async, on_async);
    tx->async.data = tx;
    ev_async_start(loop, &tx->async);
    return tx;
fail:
    free(tx);
    return NULL;
}

static void publish(struct tx *tx, const uint8_t *d, size_t len, uint32_t samples)
{
    uint64_t w = atomic_load_explicit(&tx->written, memory_order_relaxed);
    struct pkt *p = &tx->ring[w % RING];
    if (len > PKT_MAX) {
        atomic_fetch_add(&tx->encode_errors, 1);
        return;
    }
    memcpy(p->data, d, len);
    p->len = len;
    p->samples = samples;
    atomic_store_explicit(&tx->written, w + 1, memory_order_release);
    ev_async_send(tx->loop, &tx->async);
}

/* Thread: audio. */
static void frame_done(struct tx *tx)
{
    int n = tx->o.frame;
    if (tx->enc) {
        struct encoded_frame f;
        if (tx->eops->write(tx->enc, tx->pcm, (size_t)n) < 0) {
            atomic_fetch_add(&tx->encode_errors, 1);
            return;
        }
        while (tx->eops->read(tx->enc, &f) == 1)
            publish(tx, f.data, f.len, (uint32_t)f.samples);
        return;
    }
    if (tx->o.enc == RTP_ENC_L16) {
        int16_t s[2 * MAX_TX_FRAME];
        for (int i = 0; i < 2 * n; i++) {
            float v = tx->pcm[i] * 32767.f;
            s[i] = (int16_t)(v > 32767.f ? 32767 : v < -32768.f ? -32768 : v);
        }
        rtp_l16_from_s16(tx->pcm_be, s, (size_t)(2 * n));
        publish(tx, tx->pcm_be, (size_t)n * 4, (uint32_t)n);
    } else {
        int32_t s[2 * MAX_TX_FRAME];
        for (int i = 0; i < 2 * n; i++) {
            double v = tx->pcm[i] * 2147483647.0;
            s[i] = (int32_t)(v > 2147483647.0    ? 2147483647.0
                             : v < -2147483648.0 ? -2147483648.0
                                                 : v);
        }
        rtp_l24_from_s32(tx->pcm_be, s, (size_t)(2 * n));
        publish(tx, tx->pcm_be, (size_t)n * 6, (uint32_t)n);
    }
}

/* PCM goes one packet per audio period: it leaves the moment the period is
 * captured, and a receiver on the same period gets it in step with its own
 * cycles (no packetization delay, no phase jitter between a packet grid and
 * the period grid). A period beyond the MTU is sent in equal parts; a tiny
 * one (< 32 frames) or one that does not split evenly keeps the configured
 * frame. 0 = keep. Thread: audio. */
static int pcm_packet_frames(const struct tx *tx, uint32_t period)
{
    size_t bytes = tx->o.enc == RTP_ENC_L16 ? 4 : 6;
    for (uint32_t k = 1; period / k >= 32; k++)
        if (period % k == 0 && period / k <= MAX_TX_FRAME &&
            (period / k) * bytes <= RTP_DEFAULT_MTU - RTP_HEADER_LEN)
            return (int)(period / k);
    return 0;
}

void tx_capture(struct tx *tx, const float *l, const float *r, uint32_t frames)
{
    if (!tx->enc && tx->fill == 0) {
        int n = pcm_packet_frames(tx, frames);
        if (n)
            tx->o.frame = n;
    }
    for (uint32_t i = 0; i < frames; i++) {
        tx->pcm[2 * tx->fill] = l[i];
        tx->pcm[2 * tx->fill + 1] = r[i];
        if (++tx->fill == (uint32_t)tx->o.frame) {
            frame_done(tx);
            tx->fill = 0;
        }
    }
}

/* ---- the RTSP source ---- */

static int src_start(struct rtsp_source *b, rtsp_wake_fn wake, void *arg)
{
    struct source *s = (struct source *)b;
    s->wake = wake;
    s->wake_arg = arg;
    s->started = 1;
    /* Live: from the newest packet on, nothing older. */
    s->pos = atomic_load_explicit(&s->tx->written, memory_order_acquire);
    return 0;
}

static int src_read(struct rtsp_source *b, struct rtsp_frame *f)
{
    struct source *s = (struct source *)b;
    struct tx *tx = s->tx;
    uint64_t w = atomic_load_explicit(&tx->written, memory_order_acquire);
    if (s->pos >= w)
        return 0;
    if (w - s->pos >= RING - 1) { /* fell behind: the newest only */
        tx->skipped += w - 1 - s->pos;
        s->pos = w - 1;
    }
    const struct pkt *p = &tx->ring[s->pos % RING];
    size_t len = p->len;
    uint32_t samples = p->samples;
    memcpy(s->copy, p->data, len);
    if (atomic_load_explicit(&tx->written, memory_order_acquire) - s->pos >= RING) {
        s->pos = atomic_load(&tx->written); /* overwritten while copied: skip */
        return 0;
    }
    s->pos++;
    tx->octets += len;
    f->data = s->copy;
    f->len = len;
    f->samples = samples;
    return 1;
}

static void src_stop(struct rtsp_source *b)
{
    ((struct source *)b)->started = 0;
}

static void src_close(struct rtsp_source *b)
{
    struct source *s = (struct source *)b;
    struct tx *tx = s->tx;
    if (s->prev)
        s->prev->next = s->next;
    else if (tx->sources == s)
        tx->sources = s->next;
    if (s->next)
        s->next->prev = s->prev;
    tx->nsources--;
    free(s);
}

static const struct rtsp_source_ops src_ops = {
    .start = src_start, .read = src_read, .stop = src_stop, .close = src_close};

static int tx_open(void *arg, struct rtsp_open *op, const char *path, const char *query)
{
    struct tx *tx = arg;
    if (strcmp(path, "/stream") != 0) {
        rtsp_open_done(op, 404, NULL);
        return 0;
    }
    struct source *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->base.ops = &src_ops;
    s->base.fmt = tx->fmt;
    s->base.sample_rate = 48000;
    s->base.bitrate_kbps = tx->bitrate_kbps;
    s->base.fmtp = tx->enc ? tx->fmtp : NULL;
    snprintf(s->base.name, sizeof(s->base.name), "%s", tx->name);
    s->tx = tx;
    s->next = tx->sources;
    if (tx->sources)
        tx->sources->prev = s;
    tx->sources = s;
    tx->nsources++;
    rtsp_open_done(op, 200, &s->base);
    return 0;
}

static void tx_cancel(void *arg, struct rtsp_open *op)
{
}

const struct rtsp_provider tx_provider = {.open = tx_open, .cancel = tx_cancel};

void tx_free(struct tx **txp)
{
    struct tx *tx = *txp;
    if (!tx)
        return;
    /* Sources belong to the server's sessions: rtsp_server_free first. */
    ev_async_stop(tx->loop, &tx->async);
    if (tx->enc)
        tx->eops->close(tx->enc);
    free(tx);
    *txp = NULL;
}

void tx_get_stats(const struct tx *tx, struct tx_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->packets = atomic_load(&((struct tx *)tx)->written);
    st->octets = tx->octets;
    st->encode_errors = atomic_load(&((struct tx *)tx)->encode_errors);
    st->skipped = tx->skipped;
    st->sessions = tx->nsources;
}
