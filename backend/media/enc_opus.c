/*
 * Opus through libopus: 48 kHz float in, one packet per frame out (20 ms by
 * default; 2.5, 5 and 10 ms for Matriz, which also asks for
 * RESTRICTED_LOWDELAY). The packets are bare: Ogg framing (oggmux) and RTP
 * (RFC 7587) are each listener's business, so the header() packets are the
 * RFC 7845 OpusHead and OpusTags that an Ogg listener gets first.
 *
 * Constrained VBR: the bitrate holds over a few frames while simple
 * passages still cost less than hard CBR would take, and no packet is much
 * larger than the average, which keeps RTP packets and Ogg pages even.
 *
 * In-band FEC is a SILK feature: it does nothing in CELT mode, which is what
 * 128 kbit/s music and RESTRICTED_LOWDELAY (CELT only) use. The packet loss
 * percentage set with it still makes CELT lean less on the previous frame
 * (more intra-coded energy, a weaker pitch pre-filter), so a lost packet
 * hurts the frames after it less.
 *
 * Silence: a packet of digital silence from a second encoder with the same
 * settings, made once at open. Any Opus packet decodes without the ones
 * before it; the CELT decoder's overlap fades out what it played last, and
 * after silence the next music packet's energy (coded against the energy of
 * the music frames the listener did not get) comes out low for a few
 * frames: a short fade in, not a click.
 *
 * Positions: the decoded stream begins with pre-skip samples (the encoder's
 * lookahead), so packet k is at k * frame, and flush pads the input until
 * the last input sample is out.
 * Thread: worker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <opus/opus.h>

#include "core/log.h"
#include "media/encoder.h"

#define OPUS_RATE             48000
#define OPUS_DEFAULT_BITRATE  128000
#define OPUS_DEFAULT_FRAME_US 20000
#define OPUS_DEFAULT_LOSS     10
/* libopus's recommended output buffer: always enough for one packet. */
#define OPUS_PACKET_MAX 4000
#define OPUS_VENDOR     "IMES"

struct encoder {
    OpusEncoder *enc;
    int channels;
    int frame; /* samples per channel per packet */
    int preskip;
    /* Input not yet encoded: frames [pos, len) of pcm. */
    float *pcm;
    size_t len, pos, cap;
    int64_t frames_in;
    int64_t packets_out;
    int flushed;
    uint8_t packet[OPUS_PACKET_MAX];
    uint8_t head[19];
    uint8_t tags[8 + 4 + sizeof(OPUS_VENDOR) - 1 + 4];
    uint8_t silence[OPUS_PACKET_MAX];
    size_t silence_len;
};

static void le16(uint8_t *p, unsigned v)
{
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
}

static void le32(uint8_t *p, uint32_t v)
{
    le16(p, v & 0xffff);
    le16(p + 2, v >> 16);
}

static int opus_errno(int r)
{
    return r == OPUS_ALLOC_FAIL ? -ENOMEM : r == OPUS_BAD_ARG ? -EINVAL : -EIO;
}

static OpusEncoder *enc_new(const struct encoder_params *p, int *err)
{
    int app = p->lowdelay ? OPUS_APPLICATION_RESTRICTED_LOWDELAY : OPUS_APPLICATION_AUDIO;
    OpusEncoder *enc = opus_encoder_create(OPUS_RATE, p->channels, app, err);
    if (!enc)
        return NULL;
    int r = opus_encoder_ctl(enc, OPUS_SET_BITRATE(p->bitrate));
    if (r == OPUS_OK)
        r = opus_encoder_ctl(enc, OPUS_SET_VBR(1));
    if (r == OPUS_OK)
        r = opus_encoder_ctl(enc, OPUS_SET_VBR_CONSTRAINT(1));
    if (r == OPUS_OK)
        r = opus_encoder_ctl(enc, OPUS_SET_SIGNAL(OPUS_SIGNAL_MUSIC));
    if (r == OPUS_OK && p->fec) {
        r = opus_encoder_ctl(enc, OPUS_SET_INBAND_FEC(1));
        if (r == OPUS_OK)
            r = opus_encoder_ctl(enc, OPUS_SET_PACKET_LOSS_PERC(p->loss_perc));
    }
    if (r != OPUS_OK) {
        opus_encoder_destroy(enc);
        *err = r;
        return NULL;
    }
    return enc;
}

/* A few frames of digital silence through a fresh encoder; the last packet
 * is kept (the encoder has settled by then, though from silence it has
 * nothing to settle from). */
static int make_silence(struct encoder *e, const struct encoder_params *p)
{
    int err = 0;
    OpusEncoder *enc = enc_new(p, &err);
    if (!enc)
        return opus_errno(err);
    float *zero = calloc((size_t)e->frame * (size_t)p->channels, sizeof(float));
    int r = zero ? 0 : -ENOMEM;
    for (int i = 0; i < 4 && r == 0; i++) {
        int n = opus_encode_float(enc, zero, e->frame, e->silence, sizeof(e->silence));
        if (n < 0)
            r = opus_errno(n);
        else
            e->silence_len = (size_t)n;
    }
    free(zero);
    opus_encoder_destroy(enc);
    return r;
}

static void make_headers(struct encoder *e)
{
    /* RFC 7845 5.1: version 1, channel mapping family 0 (mono/stereo). */
    memcpy(e->head, "OpusHead", 8);
    e->head[8] = 1;
    e->head[9] = (uint8_t)e->channels;
    le16(e->head + 10, (unsigned)e->preskip);
    le32(e->head + 12, OPUS_RATE);
    le16(e->head + 16, 0); /* output gain: ReplayGain is applied before us */
    e->head[18] = 0;
    /* RFC 7845 5.2: vendor string, no comments (titles go out elsewhere). */
    uint8_t *t = e->tags;
    memcpy(t, "OpusTags", 8);
    le32(t + 8, sizeof(OPUS_VENDOR) - 1);
    memcpy(t + 12, OPUS_VENDOR, sizeof(OPUS_VENDOR) - 1);
    le32(t + 12 + sizeof(OPUS_VENDOR) - 1, 0);
}

static int opus_open(struct encoder **ep, struct encoder_params *p, const char **errmsg)
{
    *ep = NULL;
    if (p->rate != OPUS_RATE) {
        *errmsg = "Opus here takes 48000 Hz only (the pipeline resamples)";
        return -EINVAL;
    }
    if (p->channels != 1 && p->channels != 2) {
        *errmsg = "Opus takes 1 or 2 channels";
        return -EINVAL;
    }
    if (p->bitrate == 0)
        p->bitrate = OPUS_DEFAULT_BITRATE;
    if (p->bitrate < 6000 || p->bitrate > 510000) {
        *errmsg = "Opus bitrate out of range 6000..510000";
        return -EINVAL;
    }
    if (p->frame_us == 0)
        p->frame_us = OPUS_DEFAULT_FRAME_US;
    switch (p->frame_us) {
    case 2500:
    case 5000:
    case 10000:
    case 20000:
    case 40000:
    case 60000:
        break;
    default:
        *errmsg = "Opus frame_us must be 2500, 5000, 10000, 20000, 40000 or 60000";
        return -EINVAL;
    }
    if (p->fec && p->loss_perc == 0)
        p->loss_perc = OPUS_DEFAULT_LOSS;
    if (p->loss_perc < 0 || p->loss_perc > 100) {
        *errmsg = "Opus loss_perc out of range 0..100";
        return -EINVAL;
    }
    struct encoder *e = calloc(1, sizeof(*e));
    if (!e) {
        *errmsg = "out of memory";
        return -ENOMEM;
    }
    e->channels = p->channels;
    e->frame = (int)((int64_t)OPUS_RATE * p->frame_us / 1000000);
    int err = 0;
    e->enc = enc_new(p, &err);
    if (!e->enc) {
        *errmsg = opus_strerror(err);
        free(e);
        return opus_errno(err);
    }
    opus_int32 lookahead = 0;
    opus_encoder_ctl(e->enc, OPUS_GET_LOOKAHEAD(&lookahead));
    e->preskip = (int)lookahead;
    make_headers(e);
    int r = make_silence(e, p);
    if (r < 0) {
        *errmsg = "could not encode the silence packet";
        opus_encoder_destroy(e->enc);
        free(e);
        return r;
    }
    *ep = e;
    return 0;
}

static int opus_header(struct encoder *e, int index, const uint8_t **data, size_t *len)
{
    switch (index) {
    case 0:
        *data = e->head;
        *len = sizeof(e->head);
        return 0;
    case 1:
        *data = e->tags;
        *len = sizeof(e->tags);
        return 0;
    default:
        return -ENOENT;
    }
}

/* Room for n more frames of input, moving what is left to the front. */
static int reserve(struct encoder *e, size_t n)
{
    size_t ch = (size_t)e->channels;
    if (e->pos) {
        memmove(e->pcm, e->pcm + e->pos * ch, (e->len - e->pos) * ch * sizeof(float));
        e->len -= e->pos;
        e->pos = 0;
    }
    if (e->cap - e->len >= n)
        return 0;
    size_t cap = e->len + n;
    float *pcm = realloc(e->pcm, cap * ch * sizeof(float));
    if (!pcm)
        return -ENOMEM;
    e->pcm = pcm;
    e->cap = cap;
    return 0;
}

/* Encoding happens in read, one packet at a time, so write only queues: a
 * long write never makes a long list of packets to hold. */
static int opus_write(struct encoder *e, const float *pcm, size_t frames)
{
    if (e->flushed)
        return -EINVAL;
    int r = reserve(e, frames);
    if (r < 0)
        return r;
    memcpy(e->pcm + e->len * (size_t)e->channels, pcm,
           frames * (size_t)e->channels * sizeof(float));
    e->len += frames;
    e->frames_in += (int64_t)frames;
    return 0;
}

static int opus_read(struct encoder *e, struct encoded_frame *out)
{
    if (e->len - e->pos < (size_t)e->frame)
        return 0;
    int n = opus_encode_float(e->enc, e->pcm + e->pos * (size_t)e->channels, e->frame, e->packet,
                              sizeof(e->packet));
    if (n < 0) {
        LOG(E_ERROR, L_MEDIA, "opus_encode_float: %s", opus_strerror(n));
        return opus_errno(n);
    }
    e->pos += (size_t)e->frame;
    out->data = e->packet;
    out->len = (size_t)n;
    out->samples = e->frame;
    out->pts = e->packets_out * e->frame;
    e->packets_out++;
    return 1;
}

/* Pads with silence until the input's last sample, delayed by the
 * lookahead, is inside a whole packet. */
static int opus_flush(struct encoder *e)
{
    if (e->flushed)
        return 0;
    int64_t need = e->frames_in + e->preskip;
    int64_t total = (need + e->frame - 1) / e->frame * e->frame;
    size_t pad = (size_t)(total - e->frames_in);
    int r = reserve(e, pad);
    if (r < 0)
        return r;
    memset(e->pcm + e->len * (size_t)e->channels, 0, pad * (size_t)e->channels * sizeof(float));
    e->len += pad;
    e->flushed = 1;
    return 0;
}

static int opus_delay(struct encoder *e)
{
    return e->preskip;
}

static int opus_silence(struct encoder *e, struct encoded_frame *out)
{
    out->data = e->silence;
    out->len = e->silence_len;
    out->samples = e->frame;
    out->pts = 0;
    return 0;
}

static void opus_close(struct encoder *e)
{
    if (!e)
        return;
    opus_encoder_destroy(e->enc);
    free(e->pcm);
    free(e);
}

const struct encoder_ops encoder_opus = {
    .name = "opus",
    .content_type = "audio/ogg",
    .open = opus_open,
    .header = opus_header,
    .write = opus_write,
    .read = opus_read,
    .flush = opus_flush,
    .delay = opus_delay,
    .silence = opus_silence,
    .close = opus_close,
};
