/*
 * A channel's audio pipeline: decks that decode ahead, a mixer that
 * crossfades between them and fades on pause, and one encoder per codec.
 * See pipeline.h for how the player drives it.
 *
 * Deck: decoder plugin → stereo (mono duplicated, more channels downmixed)
 * with the ReplayGain factor folded into the mixing matrix → libsoxr to
 * 48 kHz when the file has another rate → a FIFO of 48 kHz stereo float.
 * Decks decode inside produce calls, a bounded amount per call: a deck is
 * refilled when its FIFO falls below the low mark and stops at low + 0.5 s.
 * The low mark is at least the crossfade plus a margin, so a deck has
 * always reached its end of file before the crossfade has to begin, and
 * the crossfade starts exactly crossfade seconds before the last sample.
 * Only a deck that would run dry inside a call is decoded without bound.
 *
 * Mixer: `cur` is the track (what out.track names); decks fading out after
 * a crossfade or play_now are in `fading`; `next` is the queued track's
 * deck, opened a few seconds before cur ends so its first fill (the
 * expensive part: open, headers, seek) is not in the call that needs it.
 * Every deck has an envelope (steady, equal-power fade in sin, fade out
 * cos), and the whole mix a master fade for pause and resume. Paused and
 * faded out, nothing advances: decks keep their position.
 *
 * Encoders and silence: while the mixer is quiet (paused and faded out, or
 * nothing to play) a codec emits its silence frame per frame's worth of
 * output instead of encoding. A codec goes quiet only once every frame
 * that holds audio from before the quiet point is out (the encoder's
 * pending input is all zeros then), and comes back at a frame boundary of
 * its own: the output samples not covered by silence frames yet (less than
 * a frame) are fed as zeros, then the music. So the encoder's input stays
 * the output stream minus whole frames of silence, and frame positions
 * stay contiguous. An idle pipeline costs no encoding at all.
 * Thread: one at a time (pipeline.h); commands never block (no file work,
 * decks are opened and closed inside produce).
 */
#include "media/pipeline.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <soxr.h>

#include "core/log.h"
#include "media/decoder.h"

#define RATE PIPELINE_RATE

/* Input frames per decoder read: about 46 ms at 44.1 kHz, so the decode
 * budget of a call is met to within one chunk. */
#define DECODE_CHUNK 2048
/* A deck is refilled when it holds less than this (or the crossfade plus
 * FIFO_XF_MARGIN_S, if more), up to FIFO_REFILL_S more: 0.5 to 1 s ahead
 * absorbs a slow disk read without holding much memory (384 KB/s). */
#define FIFO_LOW_S       0.5
#define FIFO_XF_MARGIN_S 0.25
#define FIFO_REFILL_S    0.5
/* Decoding per call while refilling, in output samples per deck: four
 * times what the call consumes fills the FIFO in a few calls and keeps a
 * call at a fraction of a millisecond of decoding. */
#define DECODE_BUDGET_FACTOR 4
/* The next track's deck opens this long (plus the crossfade) before the
 * current one ends: about 150 calls to spread its first fill over. */
#define NEXT_LEAD_S 3.0
/* NEED_NEXT goes out this long (plus the crossfade) before the end: time
 * for the player to answer before the next deck should open. */
#define NEED_LEAD_S 5.0
/* Decks fading out at once; a further play_now drops the oldest. */
#define MAX_FADING 4
/* The longest crossfade and fade taken: a deck holds the crossfade in its
 * FIFO, 15 s is 5.8 MB. */
#define MAX_XFADE_S   15.0
#define MAX_FADE_S    5.0
#define DEFAULT_FADE  0.2
#define MAX_PRODUCE_S 1

enum env_kind { ENV_STEADY = 0, ENV_IN, ENV_OUT };

/* 48 kHz stereo float, frames [r, w) of d. */
struct fifo {
    float *d;
    size_t r, w, cap;
};

struct deck {
    uint64_t id;
    char *path;
    double start;
    const struct decoder_ops *ops;
    struct decoder *dec;
    int rate, channels;
    float *mat;   /* 2 x channels: downmix with the gain in it */
    float *inbuf; /* DECODE_CHUNK x channels */
    float *stbuf; /* DECODE_CHUNK x 2 */
    soxr_t soxr;
    double ratio;
    int64_t skip;      /* input frames still to discard (no seek) */
    int64_t est_total; /* output samples from start to end; -1 unknown */
    struct fifo fifo;
    int eof;    /* decoder done: the FIFO holds the rest */
    int broken; /* the decoder failed mid-way */
    char error[128];
    int refilling;
    int64_t decoded;  /* input frames read */
    int64_t consumed; /* output samples mixed */
    int started;
    int need_sent;
    uint64_t gen; /* the queue generation this deck was opened for */
    enum env_kind env;
    float env_a; /* ENV_OUT: the gain it fades from */
    int64_t env_len, env_pos;
};

struct track_copy {
    struct pipeline_track t; /* t.path owned */
};

struct codec {
    const struct encoder_ops *ops;
    struct encoder *enc;
    int delay;
    struct encoded_frame silence;
    int silent;
    int64_t acc;        /* silent: output samples no silence frame stands for yet */
    int64_t stream_pos; /* samples of all frames handed out (the listener's stream) */
    int64_t shift;      /* of them, silence frames' */
    int pts_logged;
};

struct pipeline {
    struct codec codecs[PIPELINE_MAX_CODECS];
    int ncodecs;
    int64_t xf_len;   /* crossfade, samples */
    int64_t fade_len; /* pause/resume fade, samples */

    struct deck *cur, *next;
    struct deck *fading[MAX_FADING];
    int nfading;

    /* Commands, applied at the start of the next produce. */
    struct pipeline_track *queued; /* path owned */
    uint64_t queued_gen;
    struct pipeline_track *now; /* play_now pending */
    int playing;

    /* Master fade: gain sin(pi/2 * m_pos / fade_len). */
    int64_t m_pos;
    int paused_sent;

    int64_t pts;         /* output samples so far */
    int64_t quiet_since; /* output position since which the mix is quiet; INT64_MAX: not */

    /* Per call. */
    float *mix;
    uint8_t *quiet;
    int mix_cap;
    float *zeros; /* a frame of stereo silence, for codecs coming back */
    size_t zeros_frames;
    struct pipeline_frame *frames;
    size_t nframes, frames_cap;
    size_t *frame_off;
    uint8_t *obuf;
    size_t olen, ocap;
    struct pipeline_event *events;
    size_t nevents, events_cap;
    int oom;
};

/* ---- small helpers ---- */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t secs(double s)
{
    return (int64_t)llround(s * RATE);
}

static size_t fifo_len(const struct fifo *f)
{
    return f->w - f->r;
}

static int fifo_reserve(struct fifo *f, size_t n)
{
    if (f->cap - f->w >= n)
        return 0;
    if (f->r) {
        memmove(f->d, f->d + 2 * f->r, (f->w - f->r) * 2 * sizeof(float));
        f->w -= f->r;
        f->r = 0;
    }
    if (f->cap - f->w >= n)
        return 0;
    size_t cap = f->w + n + RATE / 4;
    float *d = realloc(f->d, cap * 2 * sizeof(float));
    if (!d)
        return -ENOMEM;
    f->d = d;
    f->cap = cap;
    return 0;
}

static void event(struct pipeline *p, enum pipeline_event_kind kind, uint64_t track, int64_t pts,
                  const char *error)
{
    if (p->nevents == p->events_cap) {
        size_t cap = p->events_cap ? p->events_cap * 2 : 8;
        struct pipeline_event *e = realloc(p->events, cap * sizeof(*e));
        if (!e) {
            p->oom = 1;
            return;
        }
        p->events = e;
        p->events_cap = cap;
    }
    struct pipeline_event *e = &p->events[p->nevents++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->track = track;
    e->pts = pts;
    if (error)
        snprintf(e->error, sizeof(e->error), "%s", error);
}

static struct pipeline_track *track_dup(const struct pipeline_track *t)
{
    if (!t || !t->path)
        return NULL;
    struct pipeline_track *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    *c = *t;
    c->path = strdup(t->path);
    if (!c->path) {
        free(c);
        return NULL;
    }
    return c;
}

static void track_free(struct pipeline_track **t)
{
    if (!*t)
        return;
    free((char *)(*t)->path);
    free(*t);
    *t = NULL;
}

/* ---- decks ---- */

/* Downmix matrix for a channel layout, as coefficients of (L, R) per input
 * channel. FLAC, WAV and libavcodec give the WAV order (L R C LFE BL BR SL
 * SR); Vorbis and Opus the Vorbis order (L C R ...), which their plugins
 * pass on. Centre and surrounds go in at -3 dB (ITU-R BS.775), LFE is left
 * out, and each side is scaled by the sum of its coefficients so a file
 * at full scale in every channel cannot clip. */
enum { SP_L, SP_R, SP_C, SP_LFE, SP_SL, SP_SR, SP_BC };

static int layout(int channels, int vorbis, int *sp)
{
    static const int wav[9][8] = {
        [3] = {SP_L, SP_R, SP_C},
        [4] = {SP_L, SP_R, SP_SL, SP_SR},
        [5] = {SP_L, SP_R, SP_C, SP_SL, SP_SR},
        [6] = {SP_L, SP_R, SP_C, SP_LFE, SP_SL, SP_SR},
        [7] = {SP_L, SP_R, SP_C, SP_LFE, SP_BC, SP_SL, SP_SR},
        [8] = {SP_L, SP_R, SP_C, SP_LFE, SP_SL, SP_SR, SP_SL, SP_SR},
    };
    static const int vorb[9][8] = {
        [3] = {SP_L, SP_C, SP_R},
        [4] = {SP_L, SP_R, SP_SL, SP_SR},
        [5] = {SP_L, SP_C, SP_R, SP_SL, SP_SR},
        [6] = {SP_L, SP_C, SP_R, SP_SL, SP_SR, SP_LFE},
        [7] = {SP_L, SP_C, SP_R, SP_SL, SP_SR, SP_BC, SP_LFE},
        [8] = {SP_L, SP_C, SP_R, SP_SL, SP_SR, SP_SL, SP_SR, SP_LFE},
    };
    if (channels < 3 || channels > 8)
        return 0;
    memcpy(sp, vorbis ? vorb[channels] : wav[channels], sizeof(int) * (size_t)channels);
    return 1;
}

static void make_matrix(float *m, int channels, int vorbis, float gain)
{
    float *l = m, *r = m + channels;
    if (channels == 1) {
        l[0] = r[0] = gain;
        return;
    }
    if (channels == 2) {
        l[0] = r[1] = gain;
        l[1] = r[0] = 0;
        return;
    }
    int sp[8];
    const float h = (float)M_SQRT1_2;
    if (layout(channels, vorbis, sp)) {
        for (int c = 0; c < channels; c++) {
            switch (sp[c]) {
            case SP_L:
                l[c] = 1, r[c] = 0;
                break;
            case SP_R:
                l[c] = 0, r[c] = 1;
                break;
            case SP_C:
                l[c] = r[c] = h;
                break;
            case SP_SL:
                l[c] = h, r[c] = 0;
                break;
            case SP_SR:
                l[c] = 0, r[c] = h;
                break;
            case SP_BC:
                l[c] = r[c] = 0.5f;
                break;
            default:
                l[c] = r[c] = 0;
            }
        }
    } else {
        /* Unknown layout: even channels left, odd right. */
        for (int c = 0; c < channels; c++) {
            l[c] = c % 2 ? 0 : 1;
            r[c] = c % 2 ? 1 : 0;
        }
    }
    float sl = 0, sr = 0;
    for (int c = 0; c < channels; c++)
        sl += l[c], sr += r[c];
    for (int c = 0; c < channels; c++) {
        l[c] *= sl > 0 ? gain / sl : 0;
        r[c] *= sr > 0 ? gain / sr : 0;
    }
}

static void to_stereo(const struct deck *d, const float *in, float *out, size_t n)
{
    const float *l = d->mat, *r = d->mat + d->channels;
    if (d->channels == 1) {
        for (size_t i = 0; i < n; i++) {
            out[2 * i] = in[i] * l[0];
            out[2 * i + 1] = in[i] * r[0];
        }
    } else if (d->channels == 2) {
        for (size_t i = 0; i < n; i++) {
            out[2 * i] = in[2 * i] * l[0];
            out[2 * i + 1] = in[2 * i + 1] * r[1];
        }
    } else {
        size_t ch = (size_t)d->channels;
        for (size_t i = 0; i < n; i++) {
            float a = 0, b = 0;
            for (size_t c = 0; c < ch; c++) {
                a += in[i * ch + c] * l[c];
                b += in[i * ch + c] * r[c];
            }
            out[2 * i] = a;
            out[2 * i + 1] = b;
        }
    }
}

static void deck_free(struct deck **dp)
{
    struct deck *d = *dp;
    if (!d)
        return;
    if (d->dec)
        d->ops->close(d->dec);
    if (d->soxr)
        soxr_delete(d->soxr);
    free(d->path);
    free(d->mat);
    free(d->inbuf);
    free(d->stbuf);
    free(d->fifo.d);
    free(d);
    *dp = NULL;
}

/* Resampled (or copied) stereo frames into the FIFO. */
static int deck_push(struct deck *d, const float *st, size_t n)
{
    if (!d->soxr) {
        if (fifo_reserve(&d->fifo, n) < 0)
            return -ENOMEM;
        memcpy(d->fifo.d + 2 * d->fifo.w, st, n * 2 * sizeof(float));
        d->fifo.w += n;
        return 0;
    }
    size_t done = 0;
    for (int guard = 0; done < n || !st; guard++) {
        size_t room = (size_t)ceil((double)(n - done) * d->ratio) + 256;
        if (fifo_reserve(&d->fifo, room) < 0)
            return -ENOMEM;
        size_t idone = 0, odone = 0;
        soxr_error_t e = soxr_process(d->soxr, st ? st + 2 * done : NULL, st ? n - done : 0, &idone,
                                      d->fifo.d + 2 * d->fifo.w, room, &odone);
        if (e) {
            snprintf(d->error, sizeof(d->error), "resampler: %s", e);
            return -EIO;
        }
        d->fifo.w += odone;
        done += idone;
        if (!st && odone == 0)
            break; /* flushed */
        if (guard > 1000) {
            snprintf(d->error, sizeof(d->error), "resampler makes no progress");
            return -EIO;
        }
    }
    return 0;
}

/* End of input: what the resampler holds goes out too. */
static void deck_finish(struct deck *d)
{
    if (d->soxr && deck_push(d, NULL, 0) < 0 && !d->broken) {
        d->broken = 1;
        LOG(E_WARN, L_MEDIA, "%s: %s", d->path, d->error);
    }
    d->eof = 1;
}

/* Reads and converts one chunk. Returns the work done in output samples
 * (decoded input counted at the output rate), 0 at the end. */
static int64_t deck_decode(struct deck *d)
{
    if (d->eof)
        return 0;
    long n = d->ops->read(d->dec, d->inbuf, DECODE_CHUNK);
    if (n < 0) {
        d->broken = 1;
        snprintf(d->error, sizeof(d->error), "decoding failed after %.1f s: %s",
                 (double)d->decoded / d->rate, strerror((int)-n));
        LOG(E_WARN, L_MEDIA, "%s: %s", d->path, d->error);
        deck_finish(d);
        return 0;
    }
    if (n == 0) {
        deck_finish(d);
        return 0;
    }
    if (n > DECODE_CHUNK)
        n = DECODE_CHUNK; /* a plugin bug must not overrun our buffers */
    d->decoded += n;
    int64_t work = (int64_t)ceil((double)n * d->ratio);
    size_t off = 0;
    if (d->skip) {
        off = (size_t)min64(d->skip, n);
        d->skip -= (int64_t)off;
    }
    size_t k = (size_t)n - off;
    if (!k)
        return work;
    to_stereo(d, d->inbuf + off * (size_t)d->channels, d->stbuf, k);
    if (deck_push(d, d->stbuf, k) < 0) {
        d->broken = 1;
        if (!d->error[0])
            snprintf(d->error, sizeof(d->error), "out of memory");
        LOG(E_WARN, L_MEDIA, "%s: %s", d->path, d->error);
        deck_finish(d);
    }
    return work;
}

/* The FIFO holds at least want frames, or the deck has ended. */
static void deck_pull(struct deck *d, int64_t want)
{
    while (!d->eof && (int64_t)fifo_len(&d->fifo) < want)
        deck_decode(d);
}

static int64_t fifo_low(const struct pipeline *p)
{
    int64_t low = secs(FIFO_LOW_S), xf = p->xf_len + secs(FIFO_XF_MARGIN_S);
    return low > xf ? low : xf;
}

/* Decoding ahead, at most budget output samples of work. */
static void deck_ahead(struct pipeline *p, struct deck *d, int64_t budget)
{
    int64_t low = fifo_low(p), high = low + secs(FIFO_REFILL_S);
    if (d->eof)
        return;
    if ((int64_t)fifo_len(&d->fifo) < low)
        d->refilling = 1;
    if (!d->refilling)
        return;
    int64_t work = 0;
    while (!d->eof && work < budget && (int64_t)fifo_len(&d->fifo) < high)
        work += deck_decode(d);
    if ((int64_t)fifo_len(&d->fifo) >= high)
        d->refilling = 0;
}

/* Output samples left to play, as well as we know; INT64_MAX if unknown. */
static int64_t deck_remaining(const struct deck *d)
{
    int64_t have = (int64_t)fifo_len(&d->fifo);
    if (d->eof)
        return have;
    if (d->est_total < 0)
        return INT64_MAX;
    int64_t r = d->est_total - d->consumed;
    return r > have ? r : have;
}

/* The deck's length in output samples: exact once it has ended. */
static int64_t deck_length(const struct deck *d)
{
    if (d->eof)
        return d->consumed + (int64_t)fifo_len(&d->fifo);
    return d->est_total;
}

static int open_decoder(struct deck *d, struct media_info *info, char *err, size_t errlen)
{
    return decoder_open_file(d->path, 0, &d->ops, &d->dec, info, err, errlen);
}

/* Opens a deck at t->start and fills it to the low mark. NULL with the
 * reason in err. */
static struct deck *deck_open(struct pipeline *p, const struct pipeline_track *t, char *err,
                              size_t errlen)
{
    struct media_info info;
    struct deck *d = calloc(1, sizeof(*d));
    if (!d || !(d->path = strdup(t->path))) {
        snprintf(err, errlen, "out of memory");
        free(d);
        return NULL;
    }
    d->id = t->id;
    d->start = t->start > 0 && isfinite(t->start) ? t->start : 0;
    if (open_decoder(d, &info, err, errlen) < 0) {
        LOG(E_WARN, L_MEDIA, "%s: %s", d->path, err);
        deck_free(&d);
        return NULL;
    }
    d->rate = info.rate;
    d->channels = info.channels;
    int64_t frames = info.frames > 0     ? info.frames
                     : info.duration > 0 ? (int64_t)llround(info.duration * info.rate)
                                         : -1;
    media_info_clear(&info);

    double gain = isfinite(t->gain_db) ? pow(10, t->gain_db / 20) : 1;
    if (t->peak > 0 && isfinite(t->peak) && gain * t->peak > 1)
        gain = 1 / t->peak;
    d->mat = malloc(2 * (size_t)d->channels * sizeof(float));
    d->inbuf = malloc((size_t)DECODE_CHUNK * (size_t)d->channels * sizeof(float));
    d->stbuf = malloc((size_t)DECODE_CHUNK * 2 * sizeof(float));
    if (!d->mat || !d->inbuf || !d->stbuf) {
        snprintf(err, errlen, "out of memory");
        deck_free(&d);
        return NULL;
    }
    int vorbis = d->ops == &decoder_vorbis || d->ops == &decoder_opus;
    make_matrix(d->mat, d->channels, vorbis, (float)gain);

    d->ratio = (double)RATE / d->rate;
    if (d->rate != RATE) {
        soxr_error_t e = NULL;
        soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
        soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
        d->soxr = soxr_create(d->rate, RATE, 2, &e, &io, &q, NULL);
        if (!d->soxr) {
            snprintf(err, errlen, "resampler %d Hz: %s", d->rate, e ? e : "failed");
            deck_free(&d);
            return NULL;
        }
    }

    int64_t sf = d->start > 0 ? (int64_t)llround(d->start * d->rate) : 0;
    if (sf > 0) {
        int r = d->ops->seek ? d->ops->seek(d->dec, sf) : -ENOTSUP;
        if (r < 0) {
            /* Where a failed seek left the decoder is unknown: start over
             * and decode up to the position. */
            if (d->ops->seek)
                LOG(E_INFO, L_MEDIA, "%s: %s cannot seek to %.2f s (%s), decoding up to it",
                    d->path, d->ops->name, d->start, strerror(-r));
            d->ops->close(d->dec);
            d->dec = NULL;
            if (open_decoder(d, &info, err, errlen) < 0) {
                deck_free(&d);
                return NULL;
            }
            media_info_clear(&info);
            d->skip = sf;
        }
    }
    d->est_total =
        frames >= 0 ? (int64_t)llround((double)(frames > sf ? frames - sf : 0) * d->ratio) : -1;
    d->refilling = 1;
    deck_pull(d, fifo_low(p));
    if (d->eof && fifo_len(&d->fifo) == 0) {
        /* Nothing to play: as good as not opening. */
        if (d->broken)
            snprintf(err, errlen, "%s", d->error);
        else if (d->start > 0)
            snprintf(err, errlen, "no audio after the start position %.1f s", d->start);
        else
            snprintf(err, errlen, "no audio");
        if (!d->broken)
            LOG(E_WARN, L_MEDIA, "%s: %s", d->path, err);
        deck_free(&d);
        return NULL;
    }
    return d;
}

static float env_gain(const struct deck *d, int64_t pos)
{
    switch (d->env) {
    case ENV_IN:
        return pos >= d->env_len ? 1 : sinf((float)M_PI_2 * (float)pos / (float)d->env_len);
    case ENV_OUT:
        return pos >= d->env_len ? 0
                                 : d->env_a * cosf((float)M_PI_2 * (float)pos / (float)d->env_len);
    default:
        return 1;
    }
}

/* ---- the mixer's decks ---- */

static int frozen(const struct pipeline *p)
{
    return !p->playing && p->m_pos == 0;
}

/* Takes d out of the mix and reports its end at pts. */
static void retire(struct pipeline *p, struct deck *d, int64_t pts)
{
    if (p->cur == d) {
        p->cur = NULL;
    } else {
        for (int i = 0; i < p->nfading; i++) {
            if (p->fading[i] == d) {
                memmove(p->fading + i, p->fading + i + 1,
                        (size_t)(p->nfading - i - 1) * sizeof(*p->fading));
                p->nfading--;
                break;
            }
        }
    }
    if (d->broken)
        event(p, PIPELINE_TRACK_FAILED, d->id, pts, d->error);
    else
        event(p, PIPELINE_TRACK_ENDED, d->id, pts, NULL);
    deck_free(&d);
}

static void retire_all(struct pipeline *p, int64_t pts)
{
    if (p->cur)
        retire(p, p->cur, pts);
    while (p->nfading)
        retire(p, p->fading[0], pts);
}

/* Fades d out from its present gain over len samples, among the fading. */
static void fade_out(struct pipeline *p, struct deck *d, int64_t len, int64_t pts)
{
    if (len <= 0) {
        retire(p, d, pts);
        return;
    }
    float a = env_gain(d, d->env_pos);
    if (d->env == ENV_OUT && d->env_len - d->env_pos <= len)
        return; /* already fading out sooner */
    if (p->cur == d) {
        p->cur = NULL;
        if (p->nfading == MAX_FADING)
            retire(p, p->fading[0], pts);
        p->fading[p->nfading++] = d;
    }
    d->env = ENV_OUT;
    d->env_a = a;
    d->env_len = len;
    d->env_pos = 0;
}

/* Everything audible fades out over len (at once when paused). */
static void fade_all(struct pipeline *p, int64_t len, int64_t pts)
{
    if (len <= 0 || frozen(p)) {
        retire_all(p, pts);
        return;
    }
    if (p->cur)
        fade_out(p, p->cur, len, pts);
    for (int i = 0; i < p->nfading; i++)
        fade_out(p, p->fading[i], len, pts);
}

static int64_t skip_len(const struct pipeline *p)
{
    return p->xf_len > 0 ? p->xf_len : p->fade_len;
}

static void set_env(struct deck *d, enum env_kind kind, int64_t len)
{
    d->env = len > 0 ? kind : ENV_STEADY;
    d->env_len = len;
    d->env_pos = 0;
}

/* d becomes the track: crossfaded from what plays. */
static void install(struct pipeline *p, struct deck *d, int64_t pts)
{
    if (frozen(p)) {
        /* Paused: nothing is heard, nothing to fade. */
        retire_all(p, pts);
        p->cur = d;
        set_env(d, ENV_STEADY, 0);
        return;
    }
    if (p->cur || p->nfading) {
        /* A skip is no gapless transition: with crossfade 0 it still gets
         * the pause fade, against a click. */
        int64_t len = skip_len(p);
        int64_t dl = deck_length(d);
        if (dl >= 0 && len > dl / 2)
            len = dl / 2;
        fade_all(p, len, pts);
        p->cur = d;
        set_env(d, ENV_IN, len);
        return;
    }
    /* From silence: a track from its beginning starts as it is; resumed
     * mid-way, it fades in against a click. */
    p->cur = d;
    set_env(d, ENV_IN, d->start > 0 ? p->fade_len : 0);
}

/* Opens the queued track's deck. On failure reports it, empties the queue
 * and asks for the track after the one that failed. */
static void open_next(struct pipeline *p, int64_t pts)
{
    char err[128];
    if (!p->queued || p->next)
        return;
    p->next = deck_open(p, p->queued, err, sizeof(err));
    if (p->next) {
        p->next->gen = p->queued_gen;
        return;
    }
    uint64_t id = p->queued->id;
    event(p, PIPELINE_TRACK_FAILED, id, pts, err);
    track_free(&p->queued);
    p->queued_gen++;
    event(p, PIPELINE_NEED_NEXT, id, pts, NULL);
    if (p->cur)
        p->cur->need_sent = 1;
}

/* The queued track's deck, taken out of the queue (NULL if it failed). */
static struct deck *take_next(struct pipeline *p, int64_t pts)
{
    open_next(p, pts);
    struct deck *d = p->next;
    p->next = NULL;
    if (d) {
        track_free(&p->queued);
        p->queued_gen++;
    }
    return d;
}

/* Commands and idle starts, at a point between samples. */
static void apply_pending(struct pipeline *p, int64_t pts)
{
    if (p->next && p->next->gen != p->queued_gen)
        deck_free(&p->next); /* replaced or cleared */

    while (p->now) {
        struct pipeline_track *t = p->now;
        char err[128];
        p->now = NULL;
        struct deck *d = deck_open(p, t, err, sizeof(err));
        if (d) {
            install(p, d, pts);
            track_free(&t);
            break;
        }
        event(p, PIPELINE_TRACK_FAILED, t->id, pts, err);
        if (!p->queued) {
            /* Replaced by nothing: fade out to silence, ask for more. */
            fade_all(p, skip_len(p), pts);
            event(p, PIPELINE_NEED_NEXT, t->id, pts, NULL);
            track_free(&t);
            break;
        }
        track_free(&t);
        /* Then the queued one, now. */
        struct deck *n = take_next(p, pts);
        if (n)
            install(p, n, pts);
        else /* it failed too (reported, and asked after); the queue is empty */
            fade_all(p, skip_len(p), pts);
    }

    /* Nothing playing: the queued track starts at once (it empties the
     * queue either way). */
    while (!p->cur && p->queued) {
        struct deck *d = take_next(p, pts);
        if (d)
            install(p, d, pts);
    }
}

/* The crossfade from cur into next, beginning now: over what is left of
 * cur, so it ends with cur's last sample. */
static void start_crossfade(struct pipeline *p, int64_t pts)
{
    struct deck *c = p->cur, *n = p->next;
    int64_t r = (int64_t)fifo_len(&c->fifo);
    p->next = NULL;
    track_free(&p->queued);
    p->queued_gen++;
    fade_out(p, c, r, pts);
    p->cur = n;
    set_env(n, ENV_IN, r);
}

/* The crossfade length between c (ended) and n: the setting, shortened to
 * half of either track. */
static int64_t xfade_len(const struct pipeline *p, const struct deck *c, const struct deck *n)
{
    int64_t len = p->xf_len, cl = deck_length(c), nl = deck_length(n);
    if (cl >= 0 && len > cl / 2)
        len = cl / 2;
    if (nl >= 0 && len > nl / 2)
        len = nl / 2;
    return len;
}

static float master_gain(const struct pipeline *p, int64_t m)
{
    if (p->fade_len <= 0)
        return m > 0 || p->playing ? 1 : 0;
    if (m >= p->fade_len)
        return 1;
    if (m <= 0)
        return 0;
    return sinf((float)M_PI_2 * (float)m / (float)p->fade_len);
}

static void mark_quiet(struct pipeline *p, int from, int s, int quiet)
{
    int64_t pts = p->pts + from;
    memset(p->quiet + from, quiet, (size_t)s);
    if (!quiet)
        p->quiet_since = INT64_MAX;
    else if (p->quiet_since == INT64_MAX)
        p->quiet_since = pts;
}

/* Mixes s samples of every deck at out, gains and master applied. */
static void mix_decks(struct pipeline *p, float *out, int s, int64_t pts)
{
    struct deck *decks[MAX_FADING + 1];
    int nd = 0;
    for (int i = 0; i < p->nfading; i++)
        decks[nd++] = p->fading[i];
    if (p->cur)
        decks[nd++] = p->cur;
    memset(out, 0, (size_t)s * 2 * sizeof(float));
    for (int k = 0; k < nd; k++) {
        struct deck *d = decks[k];
        const float *src = d->fifo.d + 2 * d->fifo.r;
        if (!d->started) {
            d->started = 1;
            event(p, PIPELINE_TRACK_STARTED, d->id, pts, NULL);
        }
        if (d->env == ENV_STEADY) {
            for (int i = 0; i < 2 * s; i++)
                out[i] += src[i];
        } else {
            for (int i = 0; i < s; i++) {
                float g = env_gain(d, d->env_pos + i);
                out[2 * i] += g * src[2 * i];
                out[2 * i + 1] += g * src[2 * i + 1];
            }
        }
        d->fifo.r += (size_t)s;
        d->consumed += s;
        d->env_pos += s;
    }
    /* The master fade, then the clamp: after peak-protected gains only a
     * crossfade of two loud tracks (up to +3 dB) reaches it. */
    int64_t target = p->playing ? p->fade_len : 0;
    if (p->m_pos != target || p->m_pos < p->fade_len) {
        int dir = target > p->m_pos ? 1 : -1;
        for (int i = 0; i < s; i++) {
            int64_t m = p->m_pos + dir * i;
            float g = master_gain(p, m);
            out[2 * i] *= g;
            out[2 * i + 1] *= g;
        }
    }
    for (int i = 0; i < 2 * s; i++)
        out[i] = out[i] > 1 ? 1 : out[i] < -1 ? -1 : out[i];
}

static void advance_master(struct pipeline *p, int s, int64_t pts)
{
    int64_t target = p->playing ? p->fade_len : 0;
    if (p->m_pos < target)
        p->m_pos = min64(p->m_pos + s, target);
    else if (p->m_pos > target)
        p->m_pos = p->m_pos - s > target ? p->m_pos - s : target;
    if (!p->playing && p->m_pos == 0 && !p->paused_sent) {
        p->paused_sent = 1;
        event(p, PIPELINE_PAUSED, p->cur ? p->cur->id : 0, pts, NULL);
    }
}

/* Fills p->mix with n samples and p->quiet with where the mix is quiet. */
static void mix(struct pipeline *p, int n)
{
    int pos = 0;
    while (pos < n) {
        int64_t now = p->pts + pos;
        apply_pending(p, now);
        if (p->oom)
            return;
        if (!p->cur && !p->nfading)
            p->m_pos = p->playing ? p->fade_len : 0; /* nothing to fade */
        if (frozen(p)) {
            if (!p->paused_sent)
                advance_master(p, 0, now);
            memset(p->mix + 2 * pos, 0, (size_t)(n - pos) * 2 * sizeof(float));
            mark_quiet(p, pos, n - pos, 1);
            return;
        }
        int64_t s = n - pos;
        int64_t target = p->playing ? p->fade_len : 0;
        if (p->m_pos != target)
            s = min64(s, llabs(target - p->m_pos));

        struct deck *c = p->cur;
        if (c) {
            /* Make sure the end of cur is known before its crossfade is due. */
            deck_pull(c, s + p->xf_len);
            if (c->eof) {
                int64_t r = (int64_t)fifo_len(&c->fifo);
                if (!p->next && p->queued)
                    open_next(p, now);
                if (p->next) {
                    int64_t len = xfade_len(p, c, p->next);
                    if (r <= len) {
                        start_crossfade(p, now);
                        continue;
                    }
                    s = min64(s, r - len);
                }
            }
        }
        struct deck *ended = NULL;
        for (int i = -1; i < p->nfading && !ended; i++) {
            struct deck *d = i < 0 ? p->cur : p->fading[i];
            if (!d)
                continue;
            deck_pull(d, s);
            int64_t a = (int64_t)fifo_len(&d->fifo);
            if (a == 0 || (d->env == ENV_OUT && d->env_pos >= d->env_len))
                ended = d;
            s = min64(s, a);
            if (d->env != ENV_STEADY)
                s = min64(s, d->env_len - d->env_pos);
        }
        if (ended) {
            retire(p, ended, now);
            continue;
        }
        if (!p->cur && !p->nfading) {
            memset(p->mix + 2 * pos, 0, (size_t)s * 2 * sizeof(float));
            mark_quiet(p, pos, (int)s, 1);
        } else {
            mix_decks(p, p->mix + 2 * pos, (int)s, now);
            mark_quiet(p, pos, (int)s, 0);
        }
        for (int i = -1; i < p->nfading; i++) {
            struct deck *d = i < 0 ? p->cur : p->fading[i];
            if (d && d->env == ENV_IN && d->env_pos >= d->env_len)
                set_env(d, ENV_STEADY, 0);
        }
        advance_master(p, (int)s, now + s);
        pos += (int)s;
    }
}

/* After the mix: decode ahead, open the next deck, ask for one. */
static void look_ahead(struct pipeline *p, int n)
{
    int64_t budget = (int64_t)n * DECODE_BUDGET_FACTOR;
    struct deck *c = p->cur;
    if (p->next && p->next->gen != p->queued_gen)
        deck_free(&p->next);
    if (c) {
        deck_ahead(p, c, budget);
        int64_t rem = deck_remaining(c);
        if (p->queued && !p->next && rem <= secs(NEXT_LEAD_S) + p->xf_len)
            open_next(p, p->pts);
        if (!p->queued && !c->need_sent && rem <= secs(NEED_LEAD_S) + p->xf_len) {
            c->need_sent = 1;
            event(p, PIPELINE_NEED_NEXT, c->id, p->pts, NULL);
        }
    }
    if (p->next)
        deck_ahead(p, p->next, budget);
}

/* ---- encoders ---- */

static void add_frame(struct pipeline *p, int codec, const struct encoded_frame *ef, int silence)
{
    struct codec *c = &p->codecs[codec];
    if (p->nframes == p->frames_cap) {
        size_t cap = p->frames_cap ? p->frames_cap * 2 : 16;
        struct pipeline_frame *f = realloc(p->frames, cap * sizeof(*f));
        size_t *o = f ? realloc(p->frame_off, cap * sizeof(*o)) : NULL;
        if (f)
            p->frames = f;
        if (!o) {
            p->oom = 1;
            return;
        }
        p->frame_off = o;
        p->frames_cap = cap;
    }
    if (p->ocap - p->olen < ef->len) {
        size_t cap = (p->olen + ef->len) * 2;
        uint8_t *b = realloc(p->obuf, cap);
        if (!b) {
            p->oom = 1;
            return;
        }
        p->obuf = b;
        p->ocap = cap;
    }
    if (!silence && ef->pts + c->shift != c->stream_pos && !c->pts_logged++)
        LOG(E_ERROR, L_MEDIA, "%s: frame at %lld, expected %lld", c->ops->name,
            (long long)(ef->pts + c->shift), (long long)c->stream_pos);
    memcpy(p->obuf + p->olen, ef->data, ef->len);
    p->frame_off[p->nframes] = p->olen;
    p->olen += ef->len;
    p->frames[p->nframes++] = (struct pipeline_frame){
        .codec = codec,
        .len = ef->len,
        .samples = ef->samples,
        .pts = c->stream_pos - c->delay,
        .silence = silence,
    };
    c->stream_pos += ef->samples;
    if (silence)
        c->shift += ef->samples;
}

static int feed(struct pipeline *p, int codec, const float *pcm, size_t frames)
{
    struct codec *c = &p->codecs[codec];
    int r = frames ? c->ops->write(c->enc, pcm, frames) : 0;
    if (r < 0) {
        LOG(E_ERROR, L_MEDIA, "%s encoder: write: %s", c->ops->name, strerror(-r));
        return r;
    }
    struct encoded_frame ef;
    while ((r = c->ops->read(c->enc, &ef)) == 1) {
        add_frame(p, codec, &ef, 0);
        if (p->oom)
            return -ENOMEM;
    }
    if (r < 0)
        LOG(E_ERROR, L_MEDIA, "%s encoder: read: %s", c->ops->name, strerror(-r));
    return r;
}

static int encode(struct pipeline *p, int n)
{
    for (int k = 0; k < p->ncodecs; k++) {
        struct codec *c = &p->codecs[k];
        int i = 0;
        while (i < n) {
            if (c->silent) {
                int j = i;
                while (j < n && p->quiet[j])
                    j++;
                c->acc += j - i;
                while (c->acc >= c->silence.samples) {
                    add_frame(p, k, &c->silence, 1);
                    if (p->oom)
                        return -ENOMEM;
                    c->acc -= c->silence.samples;
                }
                i = j;
                if (j < n) {
                    /* Back to encoding, at a frame boundary of this codec:
                     * the samples not yet covered by a silence frame first. */
                    int r = feed(p, k, p->zeros, (size_t)c->acc);
                    if (r < 0)
                        return r;
                    c->acc = 0;
                    c->silent = 0;
                }
            } else {
                int r = feed(p, k, p->mix + 2 * i, (size_t)(n - i));
                if (r < 0)
                    return r;
                i = n;
                /* Quiet, and every frame with audio from before it is out:
                 * what the encoder still holds is zeros. */
                if (p->quiet[n - 1] && p->quiet_since <= c->stream_pos - c->delay) {
                    c->silent = 1;
                    c->acc = 0;
                }
            }
        }
    }
    return 0;
}

/* ---- the interface ---- */

struct pipeline *pipeline_new(const struct pipeline_params *params, char *err, size_t errlen)
{
    if (!params || params->ncodecs < 0 || params->ncodecs > PIPELINE_MAX_CODECS) {
        snprintf(err, errlen, "ncodecs must be 0..%d", PIPELINE_MAX_CODECS);
        return NULL;
    }
    struct pipeline *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pipeline_set_crossfade(p, params->crossfade);
    double fade = params->fade;
    if (!isfinite(fade) || fade < 0)
        fade = 0;
    else if (fade == 0)
        fade = DEFAULT_FADE;
    p->fade_len = secs(fade > MAX_FADE_S ? MAX_FADE_S : fade);
    p->playing = 1;
    p->m_pos = p->fade_len;
    p->quiet_since = INT64_MIN; /* silent since before the stream */
    size_t zf = 0;
    for (int i = 0; i < params->ncodecs; i++) {
        struct codec *c = &p->codecs[i];
        const char *msg = "no codec";
        struct encoder_params ep = {
            .rate = RATE, .channels = PIPELINE_CHANNELS, .bitrate = params->bitrates[i]};
        c->ops = params->codecs[i];
        int r = c->ops ? c->ops->open(&c->enc, &ep, &msg) : -EINVAL;
        if (r == 0 && (r = c->ops->silence(c->enc, &c->silence)) < 0)
            msg = "no silence frame";
        if (r == 0 && c->silence.samples <= 0) {
            msg = "silence frame without samples";
            r = -EINVAL;
        }
        if (r < 0) {
            snprintf(err, errlen, "%s encoder: %s", c->ops ? c->ops->name : "?", msg);
            p->ncodecs = i + (c->enc != NULL);
            pipeline_free(&p);
            return NULL;
        }
        p->ncodecs = i + 1;
        c->delay = c->ops->delay(c->enc);
        c->silent = 1;
        if ((size_t)c->silence.samples > zf)
            zf = (size_t)c->silence.samples;
    }
    p->zeros_frames = zf;
    p->zeros = calloc(zf ? zf * 2 : 2, sizeof(float));
    if (!p->zeros) {
        snprintf(err, errlen, "out of memory");
        pipeline_free(&p);
        return NULL;
    }
    return p;
}

void pipeline_free(struct pipeline **pp)
{
    struct pipeline *p = *pp;
    if (!p)
        return;
    deck_free(&p->cur);
    deck_free(&p->next);
    for (int i = 0; i < p->nfading; i++)
        deck_free(&p->fading[i]);
    for (int i = 0; i < p->ncodecs; i++)
        if (p->codecs[i].enc)
            p->codecs[i].ops->close(p->codecs[i].enc);
    track_free(&p->queued);
    track_free(&p->now);
    free(p->mix);
    free(p->quiet);
    free(p->zeros);
    free(p->frames);
    free(p->frame_off);
    free(p->obuf);
    free(p->events);
    free(p);
    *pp = NULL;
}

int pipeline_header(struct pipeline *p, int codec, int index, const uint8_t **data, size_t *len)
{
    if (codec < 0 || codec >= p->ncodecs)
        return -EINVAL;
    struct codec *c = &p->codecs[codec];
    return c->ops->header(c->enc, index, data, len);
}

int pipeline_silence(struct pipeline *p, int codec, struct encoded_frame *out)
{
    if (codec < 0 || codec >= p->ncodecs)
        return -EINVAL;
    *out = p->codecs[codec].silence;
    return 0;
}

int pipeline_queue_next(struct pipeline *p, const struct pipeline_track *t)
{
    struct pipeline_track *c = track_dup(t);
    if (!c)
        return t && t->path ? -ENOMEM : -EINVAL;
    track_free(&p->queued);
    p->queued = c;
    p->queued_gen++;
    return 0;
}

int pipeline_play_now(struct pipeline *p, const struct pipeline_track *t)
{
    struct pipeline_track *c = track_dup(t);
    if (!c)
        return t && t->path ? -ENOMEM : -EINVAL;
    track_free(&p->now);
    p->now = c;
    return 0;
}

void pipeline_clear_next(struct pipeline *p)
{
    track_free(&p->queued);
    p->queued_gen++;
}

void pipeline_set_playing(struct pipeline *p, int playing)
{
    playing = !!playing;
    if (playing == p->playing)
        return;
    p->playing = playing;
    if (!playing)
        p->paused_sent = 0;
}

void pipeline_set_crossfade(struct pipeline *p, double seconds)
{
    if (!isfinite(seconds) || seconds < 0)
        seconds = 0;
    p->xf_len = secs(seconds > MAX_XFADE_S ? MAX_XFADE_S : seconds);
}

int pipeline_produce(struct pipeline *p, int samples, struct pipeline_output *out)
{
    memset(out, 0, sizeof(*out));
    if (samples <= 0 || samples > MAX_PRODUCE_S * RATE)
        return -EINVAL;
    p->nframes = p->olen = p->nevents = 0;
    p->oom = 0;
    if (samples > p->mix_cap) {
        float *m = realloc(p->mix, (size_t)samples * 2 * sizeof(float));
        if (m)
            p->mix = m;
        uint8_t *q = m ? realloc(p->quiet, (size_t)samples) : NULL;
        if (!q)
            return -ENOMEM;
        p->quiet = q;
        p->mix_cap = samples;
    }
    mix(p, samples);
    int r = p->oom ? -ENOMEM : encode(p, samples);
    p->pts += samples;
    if (r == 0)
        look_ahead(p, samples);
    if (r == 0 && p->oom)
        r = -ENOMEM;
    for (size_t i = 0; i < p->nframes; i++)
        p->frames[i].data = p->obuf + p->frame_off[i];
    out->frames = p->frames;
    out->nframes = p->nframes;
    out->events = p->events;
    out->nevents = p->nevents;
    out->pts_end = p->pts;
    if (p->cur) {
        out->track = p->cur->id;
        out->position = p->cur->start + (double)p->cur->consumed / RATE;
    }
    return r;
}
