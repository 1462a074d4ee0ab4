/*
 * The audio pipeline end to end, measured on what a listener hears: tone
 * files made with ffmpeg (A 440 Hz FLAC 44.1 kHz stereo, B 660 Hz MP3
 * 48 kHz, C 880 Hz mono Ogg Vorbis 22.05 kHz, a broken file) are played
 * through pipeline_produce() in 20 ms calls the way the player makes them,
 * with commands between calls; the MP3 frames go into a .mp3 as they are
 * and the Opus packets through oggmux into a .opus, and ffmpeg decodes
 * both. Each tone is followed in 50 ms Hann windows (Goertzel at its
 * frequency): order and durations (±60 ms), the crossfade (both tones at
 * about -3 dB at its midpoint), resampling (C at 880 Hz, as loud as A,
 * so its one channel went to both), ReplayGain and peak protection, pause
 * (silence below -60 dBFS after the fade, silence frames, PAUSED) and
 * resume, play_now, a broken file skipped, a start offset, NEED_NEXT
 * ahead of the end. Also prints the CPU time of one minute of MP3 + Opus
 * from a FLAC (a channel-minute).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "media/pipeline.h"
#include "stream/oggmux.h"

#define RATE  PIPELINE_RATE
#define BLOCK 960   /* what the player asks for: 20 ms */
#define WIN   2400  /* 50 ms analysis windows */
#define TOL   0.060 /* seconds */
#define MAXEV 256

static char dir[200];

static const char *path(const char *name)
{
    static char bufs[8][512];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

/* ---- running the pipeline as the player does ---- */

struct frames {
    uint8_t *data;
    size_t len, cap;
    size_t *off, *flen;
    int *samples, *silence;
    int64_t *pts;
    size_t n, ncap;
};

static void frames_add(struct frames *f, const struct pipeline_frame *pf)
{
    if (f->len + pf->len > f->cap) {
        f->cap = (f->len + pf->len) * 2;
        f->data = realloc(f->data, f->cap);
    }
    if (f->n == f->ncap) {
        f->ncap = f->ncap ? f->ncap * 2 : 256;
        f->off = realloc(f->off, f->ncap * sizeof(*f->off));
        f->flen = realloc(f->flen, f->ncap * sizeof(*f->flen));
        f->samples = realloc(f->samples, f->ncap * sizeof(*f->samples));
        f->silence = realloc(f->silence, f->ncap * sizeof(*f->silence));
        f->pts = realloc(f->pts, f->ncap * sizeof(*f->pts));
    }
    memcpy(f->data + f->len, pf->data, pf->len);
    f->off[f->n] = f->len;
    f->flen[f->n] = pf->len;
    f->samples[f->n] = pf->samples;
    f->silence[f->n] = pf->silence;
    f->pts[f->n] = pf->pts;
    f->len += pf->len;
    f->n++;
}

static void frames_free(struct frames *f)
{
    free(f->data);
    free(f->off);
    free(f->flen);
    free(f->samples);
    free(f->silence);
    free(f->pts);
    memset(f, 0, sizeof(*f));
}

struct run;
/* Called after every produce call with its output: gives commands. */
typedef void (*hook_fn)(struct run *r, const struct pipeline_output *out);

struct run {
    struct pipeline *p;
    struct frames fr[2]; /* 0: MP3, 1: Opus */
    struct pipeline_event ev[MAXEV];
    int nev;
    int64_t pts; /* pts_end so far */
    int calls;
    double max_call_ms; /* CPU of the slowest call */
    hook_fn hook;
    int step;       /* the hook's own state */
    uint64_t track; /* out.track / position at probe_pts */
    double position;
    int64_t probe_pts;
};

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_new(struct run *r, double crossfade)
{
    memset(r, 0, sizeof(*r));
    struct pipeline_params pp = {
        .codecs = {&encoder_mp3, &encoder_opus}, .ncodecs = 2, .crossfade = crossfade, .fade = 0.2};
    char err[256] = "";
    r->p = pipeline_new(&pp, err, sizeof(err));
    if (!r->p)
        fprintf(stderr, "pipeline_new: %s\n", err);
    assert_non_null(r->p);
    r->probe_pts = -1;
}

static void run_free(struct run *r)
{
    pipeline_free(&r->p);
    assert_null(r->p);
    frames_free(&r->fr[0]);
    frames_free(&r->fr[1]);
}

static void run_for(struct run *r, double seconds)
{
    int64_t end = r->pts + (int64_t)(seconds * RATE);
    while (r->pts < end) {
        struct pipeline_output out;
        double t0 = cpu_now();
        assert_int_equal(pipeline_produce(r->p, BLOCK, &out), 0);
        double ms = (cpu_now() - t0) * 1000;
        if (ms > r->max_call_ms)
            r->max_call_ms = ms;
        r->calls++;
        assert_int_equal(out.pts_end, r->pts + BLOCK);
        r->pts = out.pts_end;
        for (size_t i = 0; i < out.nframes; i++) {
            const struct pipeline_frame *f = &out.frames[i];
            assert_in_range(f->codec, 0, 1);
            struct frames *fr = &r->fr[f->codec];
            /* Frames follow each other without gaps, on the output timeline
             * (codec delay before the first). */
            if (fr->n)
                assert_int_equal(f->pts, fr->pts[fr->n - 1] + fr->samples[fr->n - 1]);
            assert_true(f->len > 0);
            assert_int_equal(f->samples, f->codec == 0 ? 1152 : 960);
            assert_true(f->pts + f->samples <= out.pts_end);
            frames_add(fr, f);
        }
        int64_t prev = -1;
        for (size_t i = 0; i < out.nevents; i++) {
            const struct pipeline_event *e = &out.events[i];
            /* in this call's span and in order */
            assert_true(e->pts >= out.pts_end - BLOCK && e->pts <= out.pts_end);
            assert_true(e->pts >= prev);
            prev = e->pts;
            assert_true(r->nev < MAXEV);
            r->ev[r->nev++] = *e;
        }
        if (r->probe_pts >= 0 && out.pts_end >= r->probe_pts && !r->track) {
            r->track = out.track;
            r->position = out.position;
        }
        if (r->hook)
            r->hook(r, &out);
    }
}

static void queue(struct run *r, uint64_t id, const char *name, double start, double gain_db,
                  double peak, int now)
{
    struct pipeline_track t = {
        .id = id, .path = path(name), .start = start, .gain_db = gain_db, .peak = peak};
    assert_int_equal(now ? pipeline_play_now(r->p, &t) : pipeline_queue_next(r->p, &t), 0);
}

/* The first event of a kind for a track (track 0: any); NULL if none. */
static const struct pipeline_event *find_ev(const struct run *r, int kind, uint64_t track)
{
    for (int i = 0; i < r->nev; i++)
        if ((int)r->ev[i].kind == kind && (!track || r->ev[i].track == track))
            return &r->ev[i];
    return NULL;
}

static int count_ev(const struct run *r, int kind, uint64_t track)
{
    int n = 0;
    for (int i = 0; i < r->nev; i++)
        if ((int)r->ev[i].kind == kind && (!track || r->ev[i].track == track))
            n++;
    return n;
}

static double ev_s(const struct pipeline_event *e)
{
    assert_non_null(e);
    return (double)e->pts / RATE;
}

/* ---- what a listener hears ---- */

struct decoded {
    const char *codec;
    float *d;
    size_t n;
    int64_t base; /* output position of d[0] */
};

/* Decodes with ffmpeg to 48 kHz float; any message from ffmpeg (a frame
 * it could not decode) fails the test. */
static float *ffdecode(const char *file, int channels, size_t *frames)
{
    char cmd[1024], err[600];
    snprintf(err, sizeof(err), "%s.err", file);
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -v error -i '%s' -f f32le -ac %d -ar 48000 - 2>'%s'", file, channels,
             err);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = RATE * 8, n = 0, got;
    float *d = malloc(cap * sizeof(float));
    while ((got = fread(d + n, sizeof(float), cap - n, p)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            d = realloc(d, cap * sizeof(float));
        }
    }
    assert_int_equal(pclose(p), 0);
    struct stat st;
    assert_int_equal(stat(err, &st), 0);
    if (st.st_size) {
        snprintf(cmd, sizeof(cmd), "head -c 2000 '%s' >&2", err);
        assert_int_equal(system(cmd), 0);
    }
    assert_int_equal(st.st_size, 0);
    *frames = n / (size_t)channels;
    return d;
}

static void write_file(const char *p, const void *d, size_t len)
{
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, len, f), len);
    fclose(f);
}

/* Both streams to files, decoded back. MP3 decoders play the codec delay
 * (the first frame's pts is -delay); Ogg Opus players drop the pre-skip
 * from OpusHead, which is the Opus delay: sample 0 is output sample 0. */
static void listen_ch(struct run *r, const char *name, int channels, struct decoded out[2])
{
    char fn[300];
    /* MP3: the frames back to back, as a listener gets them. */
    snprintf(fn, sizeof(fn), "%s.mp3", name);
    write_file(path(fn), r->fr[0].data, r->fr[0].len);
    out[0].codec = "mp3";
    out[0].d = ffdecode(path(fn), channels, &out[0].n);
    out[0].base = r->fr[0].pts[0];

    struct oggmux_header h[4];
    int nh = 0;
    while (nh < 4 && pipeline_header(r->p, 1, nh, &h[nh].data, &h[nh].len) == 0)
        nh++;
    assert_int_equal(nh, 2);
    struct oggmux *m = oggmux_new(0x1234, OGGMUX_PAGE_SAMPLES);
    struct buf b;
    buf_init(&b, 64 << 20);
    assert_int_equal(oggmux_headers(m, h, nh, &b), 0);
    const struct frames *f = &r->fr[1];
    for (size_t i = 0; i < f->n; i++)
        assert_int_equal(oggmux_packet(m, f->data + f->off[i], f->flen[i], f->samples[i], &b), 0);
    assert_int_equal(oggmux_flush(m, 1, &b), 0);
    snprintf(fn, sizeof(fn), "%s.opus", name);
    write_file(path(fn), b.data, b.len);
    buf_free(&b);
    oggmux_free(&m);
    int preskip = h[0].data[10] | h[0].data[11] << 8;
    out[1].codec = "opus";
    out[1].d = ffdecode(path(fn), channels, &out[1].n);
    out[1].base = r->fr[1].pts[0] + preskip;
    assert_int_equal(out[1].base, 0);
    for (int i = 0; i < 2; i++)
        assert_true(out[i].n > RATE);
}

static void listen(struct run *r, const char *name, struct decoded out[2])
{
    listen_ch(r, name, 1, out);
}

/* One channel of a stereo decode, as a decoded of its own. */
static struct decoded one_channel(const struct decoded *st, int c)
{
    struct decoded o = {.codec = st->codec, .n = st->n, .base = st->base};
    o.d = malloc(st->n * sizeof(float));
    for (size_t i = 0; i < st->n; i++)
        o.d[i] = st->d[2 * i + c];
    return o;
}

static void decoded_free(struct decoded d[2])
{
    free(d[0].d);
    free(d[1].d);
}

/* Level in dBFS of the tone f in the 50 ms window centred at t seconds
 * (Goertzel, Hann window, as the amplitude of a sine). */
static double tone_db(const struct decoded *dc, double t, double f)
{
    int64_t from = (int64_t)llround(t * RATE) - WIN / 2 - dc->base;
    if (from < 0 || from + WIN > (int64_t)dc->n)
        return -200;
    double w = 2 * M_PI * f / RATE, coeff = 2 * cos(w), s1 = 0, s2 = 0, hs = 0;
    for (int i = 0; i < WIN; i++) {
        double h = 0.5 - 0.5 * cos(2 * M_PI * i / (WIN - 1));
        double v = dc->d[from + i] * h + coeff * s1 - s2;
        s2 = s1;
        s1 = v;
        hs += h;
    }
    double pw = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    return 20 * log10(2 * sqrt(pw > 0 ? pw : 0) / hs + 1e-12);
}

/* Everything, RMS, in dBFS over [t0, t1) seconds. */
static double rms_db(const struct decoded *dc, double t0, double t1)
{
    int64_t a = (int64_t)llround(t0 * RATE) - dc->base, b = (int64_t)llround(t1 * RATE) - dc->base;
    assert_true(a >= 0 && b <= (int64_t)dc->n && a < b);
    double s = 0;
    for (int64_t i = a; i < b; i++)
        s += (double)dc->d[i] * dc->d[i];
    return 10 * log10(s / (double)(b - a) + 1e-30);
}

/* The pitch over [t0, t1] seconds of a lone tone: interpolated upward
 * zero crossings. */
static double pitch(const struct decoded *dc, double t0, double t1)
{
    int64_t a = (int64_t)llround(t0 * RATE) - dc->base, b = (int64_t)llround(t1 * RATE) - dc->base;
    assert_true(a >= 1 && b <= (int64_t)dc->n);
    double first = -1, last = -1;
    long count = 0;
    for (int64_t i = a; i < b; i++) {
        float x = dc->d[i - 1], y = dc->d[i];
        if (x < 0 && y >= 0) {
            double t = (double)(i - 1) + x / (x - y);
            if (first < 0)
                first = t;
            last = t;
            count++;
        }
    }
    assert_true(count > 10);
    return (double)(count - 1) * RATE / (last - first);
}

/* Mean tone level over the steady part [t0, t1]. */
static double steady_db(const struct decoded *dc, double f, double t0, double t1)
{
    double s = 0;
    int n = 0;
    for (double t = t0; t <= t1 + 1e-9; t += 0.05, n++)
        s += tone_db(dc, t, f);
    return s / n;
}

/* Where tone f is heard within [from, to]: first and last window centre
 * (5 ms steps) with the tone at most 20 dB under ref. */
static void heard(const struct decoded *dc, double f, double ref, double from, double to,
                  double *on, double *off)
{
    *on = *off = -1;
    for (double t = from; t <= to + 1e-9; t += 0.005) {
        if (tone_db(dc, t, f) > ref - 20) {
            if (*on < 0)
                *on = t;
            *off = t;
        }
    }
}

/* Tone f is heard from on to off (seconds, ±TOL) and not outside, looking
 * in [from, to]. */
static void expect_span(const struct decoded *dc, const char *what, double f, double ref,
                        double from, double to, double want_on, double want_off)
{
    double on, off;
    heard(dc, f, ref, from, to, &on, &off);
    fprintf(stderr, "  %s %s: heard %.3f..%.3f s (%.3f s), want %.3f..%.3f s\n", dc->codec, what,
            on, off, off - on, want_on, want_off);
    assert_true(fabs(on - want_on) <= TOL);
    assert_true(fabs(off - want_off) <= TOL);
}

/* ---- a file that breaks mid-way ---- */

static uint32_t ogg_crc(const uint8_t *p, size_t n)
{
    uint32_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c ^= (uint32_t)p[i] << 24;
        for (int k = 0; k < 8; k++)
            c = c & 0x80000000u ? (c << 1) ^ 0x04c11db7u : c << 1;
    }
    return c;
}

/* Copies an Ogg Opus file with every packet on pages past granule `after`
 * made invalid (TOC code 3 with a frame count of 0: RFC 6716 3.2.5, R5)
 * and the page CRCs made right again: the Ogg layer is fine, the Opus
 * decoder refuses. */
static int break_opus(const char *src, const char *dst, int64_t after)
{
    FILE *f = fopen(src, "rb");
    if (!f)
        return -1;
    static uint8_t d[1 << 20];
    size_t n = fread(d, 1, sizeof(d), f);
    fclose(f);
    for (size_t pos = 0; pos + 27 <= n;) {
        if (memcmp(d + pos, "OggS", 4))
            return -1;
        size_t nseg = d[pos + 26], hl = 27 + nseg, bl = 0;
        int64_t granule = 0;
        for (int i = 7; i >= 0; i--)
            granule = granule << 8 | d[pos + 6 + i];
        for (size_t i = 0; i < nseg; i++)
            bl += d[pos + 27 + i];
        if (pos + hl + bl > n)
            return -1;
        if (granule > after) {
            size_t off = pos + hl, len = 0;
            for (size_t i = 0; i < nseg; i++) {
                len += d[pos + 27 + i];
                if (d[pos + 27 + i] == 255)
                    continue;
                if (len >= 2) {
                    d[off] = (uint8_t)((d[off] & 0xfc) | 3);
                    d[off + 1] = 0;
                }
                off += len;
                len = 0;
            }
            memset(d + pos + 22, 0, 4);
            uint32_t c = ogg_crc(d + pos, hl + bl);
            for (int i = 0; i < 4; i++)
                d[pos + 22 + i] = (uint8_t)(c >> (8 * i));
        }
        pos += hl + bl;
    }
    f = fopen(dst, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(d, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

/* ---- fixtures ---- */

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/imes-pipeline-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char cmd[2048];
    /* 0.5 amplitude: -6 dBFS peaks leave room for +0.9 dB of gain. */
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && "
             "ffmpeg -nostdin -v error -f lavfi -i "
             "'aevalsrc=0.5*sin(2*PI*440*t)|0.5*sin(2*PI*440*t):s=44100:d=3' -c:a flac a.flac && "
             "ffmpeg -nostdin -v error -f lavfi -i "
             "'aevalsrc=0.5*sin(2*PI*660*t)|0.5*sin(2*PI*660*t):s=48000:d=3' "
             "-c:a libmp3lame -b:a 192k b.mp3 && "
             "ffmpeg -nostdin -v error -f lavfi -i 'aevalsrc=0.5*sin(2*PI*880*t):s=22050:d=3' "
             "-ac 1 -c:a libvorbis c.ogg && "
             /* 5.1 with 440 Hz front left, 660 Hz centre, 880 Hz LFE:
              * FLAC keeps WAV order, Vorbis its own */
             "ffmpeg -nostdin -v error -f lavfi -i "
             "'aevalsrc=0.5*sin(2*PI*440*t)|0|0.5*sin(2*PI*660*t)|0.5*sin(2*PI*880*t)|0|0:"
             "s=48000:d=2:channel_layout=5.1' -c:a flac six.flac && "
             "ffmpeg -nostdin -v error -i six.flac -c:a libvorbis six.ogg && "
             "ffmpeg -nostdin -v error -f lavfi -i "
             "'aevalsrc=0.5*sin(2*PI*440*t)|0.5*sin(2*PI*440*t):s=48000:d=3' "
             "-c:a libopus -b:a 128k a.opus && "
             "printf 'fLaC but not really a FLAC file at all, just text' > broken.flac && "
             /* a minute of something busier than a tone: two voices
              * gliding, a chord and a little noise */
             "ffmpeg -nostdin -v error -f lavfi -i "
             "'aevalsrc=0.2*sin(2*PI*(330+60*sin(0.5*t))*t)+0.15*sin(2*PI*495*t)"
             "+0.1*sin(2*PI*660*t)+0.05*(random(0)-0.5)|"
             "0.2*sin(2*PI*(440+80*sin(0.3*t))*t)+0.15*sin(2*PI*550*t)+0.05*(random(1)-0.5):"
             "s=44100:d=61' -c:a flac long.flac",
             dir);
    if (system(cmd) != 0)
        return -1;
    /* Opus pages hold about a second: damaged from 1 s or 2 s on. */
    return break_opus(path("a.opus"), path("damaged.opus"), RATE);
}

static int teardown(void **state)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A 440, B 660, C 880 at 0.5 in both channels: -6.02 dBFS, and +3 dB
 * through ffmpeg's downmix to mono (0.707 (L + R)). */
#define FA   440.0
#define FB   660.0
#define FC   880.0
#define SOLO (20 * log10(0.5 * M_SQRT2))

/* ---- tests ---- */

/* The player's part: A now; then B, then C when asked; then nothing. */
static void seq_hook(struct run *r, const struct pipeline_output *out)
{
    for (size_t i = 0; i < out->nevents; i++) {
        const struct pipeline_event *e = &out->events[i];
        if (e->kind != PIPELINE_NEED_NEXT)
            continue;
        if (e->track == 1)
            queue(r, 2, "b.mp3", 0, 0, 0, 0);
        else if (e->track == 2)
            queue(r, 3, "c.ogg", 0, 0, 0, 0);
        else
            pipeline_clear_next(r->p);
    }
}

static void test_sequence(void **state)
{
    struct run r;
    run_new(&r, 0.5);
    r.hook = seq_hook;
    r.probe_pts = RATE; /* what is audible at 1 s */
    queue(&r, 1, "a.flac", 0, 0, 0, 0);
    run_for(&r, 9.0);

    /* Events: each track starts 0.5 s before the previous one ends (the
     * crossfade ends with the last sample), asked for ahead of its end. */
    fprintf(stderr, "  events:");
    for (int i = 0; i < r.nev; i++)
        fprintf(stderr, " %d/%llu@%.3f", r.ev[i].kind, (unsigned long long)r.ev[i].track,
                ev_s(&r.ev[i]));
    fprintf(stderr, "\n");
    assert_int_equal(count_ev(&r, PIPELINE_TRACK_FAILED, 0), 0);
    assert_int_equal(count_ev(&r, PIPELINE_PAUSED, 0), 0);
    double want_start[4] = {0, 0, 2.5, 5.0};
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(count_ev(&r, PIPELINE_TRACK_STARTED, id), 1);
        assert_int_equal(count_ev(&r, PIPELINE_TRACK_ENDED, id), 1);
        assert_int_equal(count_ev(&r, PIPELINE_NEED_NEXT, id), 1);
        double st = ev_s(find_ev(&r, PIPELINE_TRACK_STARTED, id));
        double en = ev_s(find_ev(&r, PIPELINE_TRACK_ENDED, id));
        double nn = ev_s(find_ev(&r, PIPELINE_NEED_NEXT, id));
        assert_true(fabs(st - want_start[id]) <= TOL);
        assert_true(fabs(en - (want_start[id] + 3.0)) <= TOL);
        assert_true(nn < en - 1.0); /* early enough to answer */
        if (id > 1)                 /* the crossfade: exactly 0.5 s of overlap */
            assert_int_equal(find_ev(&r, PIPELINE_TRACK_ENDED, id - 1)->pts -
                                 find_ev(&r, PIPELINE_TRACK_STARTED, id)->pts,
                             RATE / 2);
    }
    assert_int_equal(r.track, 1);
    assert_true(fabs(r.position - 1.0) < 0.03);
    /* opening a deck and its first fill (0.75 s) is the longest call */
    fprintf(stderr, "  slowest call %.2f ms CPU\n", r.max_call_ms);

    struct decoded d[2];
    listen(&r, "sequence", d);
    for (int k = 0; k < 2; k++) {
        const struct decoded *dc = &d[k];
        double la = steady_db(dc, FA, 0.5, 2.2), lb = steady_db(dc, FB, 3.3, 4.7),
               lc = steady_db(dc, FC, 5.8, 7.5);
        fprintf(stderr, "  %s solo levels: A %.2f, B %.2f, C %.2f dBFS\n", dc->codec, la, lb, lc);
        /* Within 0.75 dB: LAME alone takes 0.27 dB off these tones, and B
         * has been through it twice (the file, then the stream). */
        assert_true(fabs(la - SOLO) < 0.75);
        assert_true(fabs(lb - SOLO) < 0.75);
        /* C: mono duplicated into both channels, so as loud as A */
        assert_true(fabs(lc - la) < 0.3);
        expect_span(dc, "A", FA, la, 0, 8.8, 0, 3.0);
        expect_span(dc, "B", FB, lb, 0, 8.8, 2.5, 5.5);
        expect_span(dc, "C", FC, lc, 0, 8.8, 5.0, 8.0);
        /* The crossfade A→B: both at its midpoint, equal power (-3 dB). */
        double ma = tone_db(dc, 2.75, FA) - la, mb = tone_db(dc, 2.75, FB) - lb;
        double mb2 = tone_db(dc, 5.25, FB) - lb, mc2 = tone_db(dc, 5.25, FC) - lc;
        fprintf(stderr, "  %s crossfade midpoints: A %.2f B %.2f dB, B %.2f C %.2f dB\n", dc->codec,
                ma, mb, mb2, mc2);
        assert_true(fabs(ma + 3) < 1.5 && fabs(mb + 3) < 1.5);
        assert_true(fabs(mb2 + 3) < 1.5 && fabs(mc2 + 3) < 1.5);
        /* Resampled right: C at 880 Hz, nothing at the wrong-rate pitches. */
        double c_hi = steady_db(dc, 880.0 * 48000 / 22050, 5.8, 7.5);
        double c_lo = steady_db(dc, 880.0 * 22050 / 48000, 5.8, 7.5);
        double fc = pitch(dc, 5.8, 7.5);
        fprintf(stderr, "  %s C: %.2f Hz; at 880 Hz %.1f, at 1916 Hz %.1f, at 404 Hz %.1f dB\n",
                dc->codec, fc, lc, c_hi, c_lo);
        assert_true(fabs(fc - 880) < 0.5);
        assert_true(c_hi < lc - 40 && c_lo < lc - 40);
        /* After C: silence. */
        assert_true(rms_db(dc, 8.1, 8.7) < -60);
    }
    /* Idle after the end: silence frames, not encoding. */
    for (int k = 0; k < 2; k++)
        assert_true(r.fr[k].silence[r.fr[k].n - 1]);
    decoded_free(d);
    run_free(&r);
}

/* A three times: 0 dB, -6 dB, +6 dB with peak 0.9 (capped at +0.92 dB). */
static void rg_hook(struct run *r, const struct pipeline_output *out)
{
    for (size_t i = 0; i < out->nevents; i++) {
        if (out->events[i].kind != PIPELINE_NEED_NEXT)
            continue;
        if (out->events[i].track == 1)
            queue(r, 2, "a.flac", 0, -6, 0.5, 0);
        else if (out->events[i].track == 2)
            queue(r, 3, "a.flac", 0, 6, 0.9, 0);
        else
            pipeline_clear_next(r->p);
    }
}

static void test_replaygain(void **state)
{
    struct run r;
    run_new(&r, 0);
    r.hook = rg_hook;
    queue(&r, 1, "a.flac", 0, 0, 0, 0);
    run_for(&r, 9.5);
    /* crossfade 0: gapless, each exactly 3 s */
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_STARTED, 2)->pts, 3 * RATE);
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_STARTED, 3)->pts, 6 * RATE);
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_ENDED, 3)->pts, 9 * RATE);
    struct decoded d[2];
    listen(&r, "replaygain", d);
    for (int k = 0; k < 2; k++) {
        double l0 = steady_db(&d[k], FA, 0.3, 2.7), l6 = steady_db(&d[k], FA, 3.3, 5.7),
               lp = steady_db(&d[k], FA, 6.3, 8.7);
        fprintf(stderr,
                "  %s: 0 dB %.2f, -6 dB %.2f (%.2f), +6 dB peak 0.9 %.2f (%+.2f, want %+.2f)\n",
                d[k].codec, l0, l6, l6 - l0, lp, lp - l0, -20 * log10(0.9));
        assert_true(fabs(l6 - l0 + 6) <= 0.3);
        assert_true(fabs(lp - l0 + 20 * log10(0.9)) <= 0.3);
    }
    decoded_free(d);
    run_free(&r);
}

/* Pause at 1 s, resume at 2.5 s. */
static void pause_hook(struct run *r, const struct pipeline_output *out)
{
    if (r->step == 0 && out->pts_end >= RATE) {
        pipeline_set_playing(r->p, 0);
        r->step = 1;
    } else if (r->step == 1 && out->pts_end >= 2 * RATE) {
        /* paused and faded: the position holds */
        assert_int_equal(out->track, 1);
        assert_true(fabs(out->position - 1.2) < 0.001);
        r->step = 2;
    } else if (r->step == 2 && out->pts_end >= 5 * RATE / 2) {
        pipeline_set_playing(r->p, 1);
        r->step = 3;
    }
}

static void test_pause(void **state)
{
    struct run r;
    run_new(&r, 0.5);
    r.hook = pause_hook;
    queue(&r, 1, "a.flac", 0, 0, 0, 0);
    run_for(&r, 5.0);
    const struct pipeline_event *pe = find_ev(&r, PIPELINE_PAUSED, 0);
    assert_non_null(pe);
    assert_int_equal(count_ev(&r, PIPELINE_PAUSED, 0), 1);
    fprintf(stderr, "  PAUSED at %.3f s\n", ev_s(pe));
    assert_int_equal(pe->pts, RATE + RATE / 5); /* pause at 1 s + the 0.2 s fade */
    /* A plays 1.2 s, then (from 2.5 s) the other 1.8 s. */
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_ENDED, 1)->pts, 5 * RATE / 2 + 18 * RATE / 10);
    /* Silence frames while paused, for both codecs, and music around. */
    for (int k = 0; k < 2; k++) {
        int sil = 0, after = 0;
        for (size_t i = 0; i < r.fr[k].n; i++) {
            double t = (double)r.fr[k].pts[i] / RATE;
            if (r.fr[k].silence[i]) {
                /* paused, or idle after A's end at 4.3 s */
                assert_true((t > 1.2 && t < 2.6) || t > 4.3);
                sil++;
            } else if (t > 2.5 && t < 4.3) {
                after++;
            }
        }
        fprintf(stderr, "  codec %d: %d silence frames\n", k, sil);
        assert_true(sil > 40); /* most of the 1.3 s paused */
        assert_true(after > 50);
    }
    struct decoded d[2];
    listen(&r, "pause", d);
    for (int k = 0; k < 2; k++) {
        const struct decoded *dc = &d[k];
        double l = steady_db(dc, FA, 0.3, 0.9);
        double q = rms_db(dc, 1.2 + 0.05, 2.5);
        double back = steady_db(dc, FA, 2.8, 4.0);
        fprintf(stderr, "  %s: before %.2f, paused %.1f dBFS, after %.2f\n", dc->codec, l, q, back);
        assert_true(q < -60);
        assert_true(fabs(back - l) < 0.5);
        /* heard until the fade is done, and again from the resume */
        expect_span(dc, "A before", FA, l, 0, 2.0, 0, 1.2);
        expect_span(dc, "A after", FA, l, 2.0, 4.9, 2.5, 4.3);
        /* The fade out: about half way down in the middle (equal power). */
        double mid = tone_db(dc, 1.1, FA) - l;
        fprintf(stderr, "  %s fade midpoint %.2f dB\n", dc->codec, mid);
        assert_true(fabs(mid + 3) < 1.5);
    }
    decoded_free(d);
    run_free(&r);
}

/* play_now B at 1 s. */
static void now_hook(struct run *r, const struct pipeline_output *out)
{
    if (r->step == 0 && out->pts_end >= RATE) {
        queue(r, 2, "b.mp3", 0, 0, 0, 1);
        r->step = 1;
    }
    for (size_t i = 0; i < out->nevents; i++)
        if (out->events[i].kind == PIPELINE_NEED_NEXT)
            pipeline_clear_next(r->p);
}

static void test_play_now(void **state)
{
    struct run r;
    run_new(&r, 0.5);
    r.hook = now_hook;
    queue(&r, 1, "a.flac", 0, 0, 0, 0);
    run_for(&r, 4.5);
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_STARTED, 2)->pts, RATE);
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_ENDED, 1)->pts, RATE + RATE / 2);
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_ENDED, 2)->pts, 4 * RATE);
    struct decoded d[2];
    listen(&r, "playnow", d);
    for (int k = 0; k < 2; k++) {
        double la = steady_db(&d[k], FA, 0.3, 0.8), lb = steady_db(&d[k], FB, 2.0, 3.5);
        expect_span(&d[k], "A", FA, la, 0, 4.4, 0, 1.5);
        expect_span(&d[k], "B", FB, lb, 0, 4.4, 1.0, 4.0);
    }
    decoded_free(d);
    run_free(&r);
}

/* A, then the broken file when asked, then B when asked again; at 4 s
 * (B playing) C queued and the broken file played now: C takes over. */
static void broken_hook(struct run *r, const struct pipeline_output *out)
{
    for (size_t i = 0; i < out->nevents; i++) {
        const struct pipeline_event *e = &out->events[i];
        if (e->kind == PIPELINE_NEED_NEXT && r->step == 0) {
            queue(r, 9, "broken.flac", 0, 0, 0, 0);
            r->step = 1;
        } else if (e->kind == PIPELINE_NEED_NEXT && r->step == 1) {
            queue(r, 2, "b.mp3", 0, 0, 0, 0);
            r->step = 2;
        }
    }
    if (r->step == 2 && out->pts_end >= 4 * RATE) {
        queue(r, 3, "c.ogg", 0, 0, 0, 0);
        queue(r, 8, "broken.flac", 0, 0, 0, 1);
        r->step = 3;
    }
}

static void test_broken(void **state)
{
    struct run r;
    run_new(&r, 0.5);
    r.hook = broken_hook;
    queue(&r, 1, "a.flac", 0, 0, 0, 0);
    run_for(&r, 7.5);
    const struct pipeline_event *f9 = find_ev(&r, PIPELINE_TRACK_FAILED, 9);
    const struct pipeline_event *f8 = find_ev(&r, PIPELINE_TRACK_FAILED, 8);
    assert_non_null(f9);
    assert_non_null(f8);
    fprintf(stderr, "  failed: \"%s\" at %.3f s; \"%s\" at %.3f s\n", f9->error, ev_s(f9),
            f8->error, ev_s(f8));
    assert_true(f9->error[0] && f8->error[0]);
    assert_null(find_ev(&r, PIPELINE_TRACK_STARTED, 9));
    assert_null(find_ev(&r, PIPELINE_TRACK_STARTED, 8));
    /* asked once for what follows A, then for what follows the broken
     * file (which A is still playing ahead of) */
    assert_int_equal(count_ev(&r, PIPELINE_NEED_NEXT, 1), 1);
    assert_int_equal(count_ev(&r, PIPELINE_NEED_NEXT, 9), 1);
    assert_true(find_ev(&r, PIPELINE_NEED_NEXT, 9)->pts < 2 * RATE);
    /* the failed play_now with C queued asks for nothing: C plays */
    assert_int_equal(count_ev(&r, PIPELINE_NEED_NEXT, 8), 0);
    /* B after A as usual; C at once when the broken play_now failed */
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_STARTED, 2)->pts, 5 * RATE / 2);
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_STARTED, 3)->pts, 4 * RATE);
    struct decoded d[2];
    listen(&r, "broken", d);
    for (int k = 0; k < 2; k++) {
        double lb = steady_db(&d[k], FB, 3.1, 3.9), lc = steady_db(&d[k], FC, 5.0, 6.5);
        expect_span(&d[k], "B", FB, lb, 0, 7.4, 2.5, 4.5);
        expect_span(&d[k], "C", FC, lc, 0, 7.4, 4.0, 7.0);
    }
    decoded_free(d);
    run_free(&r);
}

static void test_start_offset(void **state)
{
    struct run r;
    run_new(&r, 0.5);
    r.probe_pts = BLOCK;
    queue(&r, 1, "a.flac", 1.5, 0, 0, 0);
    run_for(&r, 2.5);
    /* resumed at 1.5 s: position from there, 1.5 s left */
    assert_int_equal(r.track, 1);
    assert_true(fabs(r.position - (1.5 + (double)BLOCK / RATE)) < 0.001);
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_STARTED, 1)->pts, 0);
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_ENDED, 1)->pts, 3 * RATE / 2);
    assert_true(find_ev(&r, PIPELINE_NEED_NEXT, 1)->pts < 3 * RATE / 2);
    struct decoded d[2];
    listen(&r, "start", d);
    for (int k = 0; k < 2; k++) {
        double la = steady_db(&d[k], FA, 0.3, 1.2);
        assert_true(fabs(la - SOLO) < 0.75);
        expect_span(&d[k], "A from 1.5 s", FA, la, 0, 2.4, 0, 1.5);
    }
    decoded_free(d);
    run_free(&r);
}

/* A damaged file: its plugin resyncs past the bad packets to the end of
 * the file (libopusfile, libFLAC and libavcodec all do), so it ends early
 * and the next track crossfades in as after any end (the crossfade
 * shortened to half the short track). Then a track that opens but has
 * nothing after its start position: TRACK_FAILED, and NEED_NEXT names it,
 * so the player continues after it (not with it again). */
static void damaged_hook(struct run *r, const struct pipeline_output *out)
{
    for (size_t i = 0; i < out->nevents; i++) {
        if (out->events[i].kind != PIPELINE_NEED_NEXT)
            continue;
        if (out->events[i].track == 1)
            queue(r, 7, "a.flac", 5.0, 0, 0, 0);
        else if (out->events[i].track == 7)
            queue(r, 2, "b.mp3", 0, 0, 0, 0);
        else
            pipeline_clear_next(r->p);
    }
}

static void test_damaged(void **state)
{
    struct run r;
    run_new(&r, 0.5);
    r.hook = damaged_hook;
    queue(&r, 1, "damaged.opus", 0, 0, 0, 0);
    run_for(&r, 5.0);
    fprintf(stderr, "  events:");
    for (int i = 0; i < r.nev; i++)
        fprintf(stderr, " %d/%llu@%.3f%s%s", r.ev[i].kind, (unsigned long long)r.ev[i].track,
                ev_s(&r.ev[i]), r.ev[i].error[0] ? ":" : "", r.ev[i].error);
    fprintf(stderr, "\n");
    const struct pipeline_event *f7 = find_ev(&r, PIPELINE_TRACK_FAILED, 7);
    assert_non_null(f7);
    assert_non_null(strstr(f7->error, "no audio"));
    assert_null(find_ev(&r, PIPELINE_TRACK_STARTED, 7));
    assert_int_equal(count_ev(&r, PIPELINE_NEED_NEXT, 7), 1);
    assert_int_equal(count_ev(&r, PIPELINE_NEED_NEXT, 1), 1);
    /* The damaged file ends (or fails, if a plugin gives up) after the
     * second that decodes; B overlaps its end. */
    const struct pipeline_event *e1 = find_ev(&r, PIPELINE_TRACK_ENDED, 1);
    if (!e1)
        e1 = find_ev(&r, PIPELINE_TRACK_FAILED, 1);
    assert_non_null(e1);
    double end = ev_s(e1);
    assert_true(end > 0.9 && end < 2.1);
    int64_t xf = e1->pts / 2 < RATE / 2 ? e1->pts / 2 : RATE / 2;
    assert_int_equal(e1->pts - find_ev(&r, PIPELINE_TRACK_STARTED, 2)->pts, xf);
    double bstart = ev_s(find_ev(&r, PIPELINE_TRACK_STARTED, 2));
    struct decoded d[2];
    listen(&r, "damaged", d);
    for (int k = 0; k < 2; k++) {
        double la = steady_db(&d[k], FA, 0.1, bstart - 0.05),
               lb = steady_db(&d[k], FB, end + 0.1, end + 2);
        assert_true(fabs(la - SOLO) < 0.75);
        expect_span(&d[k], "A (damaged)", FA, la, 0, 4.9, 0, end);
        expect_span(&d[k], "B", FB, lb, 0, 4.9, bstart, bstart + 3.0);
    }
    decoded_free(d);
    run_free(&r);
}

/* 5.1 to stereo: front left to the left only, centre to both at -3 dB,
 * LFE left out, each side scaled by 1 / (1 + 2 * 0.707) against clipping;
 * FLAC (WAV order) and Ogg Vorbis (Vorbis order) the same. */
static void test_downmix(void **state)
{
    struct run r;
    run_new(&r, 0);
    queue(&r, 1, "six.flac", 0, 0, 0, 0);
    run_for(&r, 0.1);
    queue(&r, 2, "six.ogg", 0, 0, 0, 0);
    run_for(&r, 4.2);
    assert_int_equal(find_ev(&r, PIPELINE_TRACK_STARTED, 2)->pts, 2 * RATE);
    struct decoded st[2];
    listen_ch(&r, "downmix", 2, st);
    double side = 1 + 2 * M_SQRT1_2;
    double want_fl = 20 * log10(0.5 / side), want_c = 20 * log10(0.5 * M_SQRT1_2 / side);
    for (int k = 0; k < 2; k++) {
        struct decoded l = one_channel(&st[k], 0), rr = one_channel(&st[k], 1);
        for (int t = 0; t < 2; t++) {
            double a = 0.3 + 2.0 * t, b = 1.7 + 2.0 * t;
            double fl_l = steady_db(&l, FA, a, b), fl_r = steady_db(&rr, FA, a, b);
            double c_l = steady_db(&l, FB, a, b), c_r = steady_db(&rr, FB, a, b);
            double lfe = fmax(steady_db(&l, FC, a, b), steady_db(&rr, FC, a, b));
            fprintf(stderr,
                    "  %s %s: FL L %.2f R %.2f (want %.2f), C L %.2f R %.2f (want %.2f), "
                    "LFE %.1f dB\n",
                    st[k].codec, t ? "vorbis" : "flac", fl_l, fl_r, want_fl, c_l, c_r, want_c, lfe);
            assert_true(fabs(fl_l - want_fl) < 0.75 && fl_r < want_fl - 40);
            assert_true(fabs(c_l - want_c) < 0.75 && fabs(c_r - want_c) < 0.75);
            assert_true(lfe < want_fl - 40);
        }
        free(l.d);
        free(rr.d);
    }
    decoded_free(st);
    run_free(&r);
}

/* What a channel costs: a minute of MP3 + Opus from a 44.1 kHz FLAC
 * (decode, resample, mix, two encoders). */
static void test_cpu_minute(void **state)
{
    struct run r;
    run_new(&r, 0.5);
    queue(&r, 1, "long.flac", 0, -3, 0.9, 0);
    /* warm up: the first fill, encoder start */
    run_for(&r, 0.2);
    r.max_call_ms = 0;
    double t0 = cpu_now();
    run_for(&r, 60.0);
    double cpu = cpu_now() - t0;
    fprintf(stderr,
            "  one channel-minute (FLAC 44.1 kHz -> 48 kHz, MP3 192k + Opus 128k): "
            "%.3f s CPU (%.2f%% of a core), slowest 20 ms call %.2f ms CPU\n",
            cpu, cpu / 60 * 100, r.max_call_ms);
    printf("pipeline_cpu_seconds_per_channel_minute %.3f\n", cpu);
    assert_int_equal(count_ev(&r, PIPELINE_TRACK_FAILED, 0), 0);
    run_free(&r);
}

/* Paused from the start and nothing to play: only silence frames, and no
 * encoding work to speak of. */
static void test_idle(void **state)
{
    struct run r;
    run_new(&r, 0.5);
    pipeline_set_playing(r.p, 0);
    double t0 = cpu_now();
    run_for(&r, 10.0);
    double cpu = cpu_now() - t0;
    fprintf(stderr, "  10 s idle: %.2f ms CPU\n", cpu * 1000);
    assert_int_equal(count_ev(&r, PIPELINE_PAUSED, 0), 1);
    assert_int_equal(find_ev(&r, PIPELINE_PAUSED, 0)->pts, 0);
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < r.fr[k].n; i++)
            assert_true(r.fr[k].silence[i]);
        int64_t covered = r.fr[k].pts[r.fr[k].n - 1] + r.fr[k].samples[r.fr[k].n - 1];
        assert_true(covered > r.pts - 2 * 1152 - 1200 && covered <= r.pts + 1152);
    }
    struct encoded_frame s;
    assert_int_equal(pipeline_silence(r.p, 0, &s), 0);
    assert_int_equal(s.samples, 1152);
    assert_int_equal(pipeline_silence(r.p, 2, &s), -EINVAL);
    /* queued while paused: starts on resume, from its beginning */
    queue(&r, 1, "a.flac", 0, 0, 0, 0);
    run_for(&r, 0.5);
    assert_null(find_ev(&r, PIPELINE_TRACK_STARTED, 1));
    pipeline_set_playing(r.p, 1);
    run_for(&r, 0.5);
    const struct pipeline_event *st = find_ev(&r, PIPELINE_TRACK_STARTED, 1);
    assert_non_null(st);
    assert_int_equal(st->pts, 21 * RATE / 2);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequence),     cmocka_unit_test(test_replaygain),
        cmocka_unit_test(test_pause),        cmocka_unit_test(test_play_now),
        cmocka_unit_test(test_broken),       cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_start_offset), cmocka_unit_test(test_idle),
        cmocka_unit_test(test_downmix),      cmocka_unit_test(test_cpu_minute),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
