/*
 * Encoder plugins and the Ogg muxer against decoders nobody here wrote:
 * tones go through LAME and libopus, MP3 frames are written as they are and
 * Opus packets through oggmux, and ffmpeg decodes the files back. Measured
 * on the decoded audio: frequency (interpolated zero crossings), RMS level,
 * the largest sample-to-sample step (a click is a step far beyond the
 * tone's own slope), length and the codec delay; on the encoded stream: the
 * bitrate, frame sizes and positions; ffprobe names codec and rate.
 * Also: silence frames spliced between music frames (what a muted listener
 * gets) decode cleanly and as silence, a listener joining mid-stream gets a
 * valid stream of its own, and Opus's short low-delay frames round-trip.
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
#include <unistd.h>

#include <opus/opusfile.h>

#include "media/encoder.h"
#include "stream/oggmux.h"

#define RATE 48000
#define AMP  0.5

static char dir[256];

/* ---- helpers ---- */

static const char *path(const char *name)
{
    static char bufs[8][512];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static float *tone(double fl, double fr, size_t n)
{
    float *p = malloc(n * 2 * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        p[2 * i] = (float)(AMP * sin(2 * M_PI * fl * (double)i / RATE));
        p[2 * i + 1] = (float)(AMP * sin(2 * M_PI * fr * (double)i / RATE));
    }
    return p;
}

/* The frames of one encoded stream, copied out of the encoder. */
struct frames {
    uint8_t *data;
    size_t len, cap;
    size_t *off, *flen;
    int *samples;
    int64_t *pts;
    size_t n, ncap;
};

static void frames_add(struct frames *f, const uint8_t *d, size_t len, int samples, int64_t pts)
{
    if (f->len + len > f->cap) {
        f->cap = (f->len + len) * 2;
        f->data = realloc(f->data, f->cap);
    }
    if (f->n == f->ncap) {
        f->ncap = f->ncap ? f->ncap * 2 : 256;
        f->off = realloc(f->off, f->ncap * sizeof(*f->off));
        f->flen = realloc(f->flen, f->ncap * sizeof(*f->flen));
        f->samples = realloc(f->samples, f->ncap * sizeof(*f->samples));
        f->pts = realloc(f->pts, f->ncap * sizeof(*f->pts));
    }
    memcpy(f->data + f->len, d, len);
    f->off[f->n] = f->len;
    f->flen[f->n] = len;
    f->samples[f->n] = samples;
    f->pts[f->n] = pts;
    f->len += len;
    f->n++;
}

static void frames_free(struct frames *f)
{
    free(f->data);
    free(f->off);
    free(f->flen);
    free(f->samples);
    free(f->pts);
    memset(f, 0, sizeof(*f));
}

static void drain(const struct encoder_ops *ops, struct encoder *e, struct frames *f)
{
    struct encoded_frame ef;
    int r;
    while ((r = ops->read(e, &ef)) == 1) {
        /* positions follow each other without gaps */
        int64_t want = f->n ? f->pts[f->n - 1] + f->samples[f->n - 1] : 0;
        assert_int_equal(ef.pts, want);
        assert_true(ef.len > 0);
        frames_add(f, ef.data, ef.len, ef.samples, ef.pts);
    }
    assert_int_equal(r, 0);
}

/* Encodes n frames of pcm in uneven chunks, then flushes. */
static void encode(const struct encoder_ops *ops, struct encoder *e, const float *pcm, size_t n,
                   struct frames *f)
{
    size_t chunks[] = {1000, 1, 4800, 333, 960, 7};
    for (size_t at = 0, c = 0; at < n; c++) {
        size_t k = chunks[c % 6];
        if (k > n - at)
            k = n - at;
        assert_int_equal(ops->write(e, pcm + 2 * at, k), 0);
        drain(ops, e, f);
        at += k;
    }
    assert_int_equal(ops->flush(e), 0);
    drain(ops, e, f);
}

static struct encoder *open_enc(const struct encoder_ops *ops, struct encoder_params *p)
{
    struct encoder *e = NULL;
    const char *err = NULL;
    int r = ops->open(&e, p, &err);
    if (r < 0)
        fprintf(stderr, "%s open: %s\n", ops->name, err);
    assert_int_equal(r, 0);
    assert_non_null(e);
    return e;
}

static void write_file(const char *p, const void *d, size_t len)
{
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, len, f), len);
    fclose(f);
}

static uint8_t *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* MP3 frames as they go to a listener: back to back. */
static void write_mp3(const char *p, const struct frames *f, size_t from, size_t to)
{
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    for (size_t i = from; i < to; i++)
        assert_int_equal(fwrite(f->data + f->off[i], 1, f->flen[i], fp), f->flen[i]);
    fclose(fp);
}

/* Opus packets as one listener gets them: through its own oggmux. */
static void write_opus(const char *p, const struct encoder_ops *ops, struct encoder *e,
                       const struct frames *f, size_t from, size_t to, uint32_t serial,
                       const struct encoded_frame *splice, size_t s_from, size_t s_to)
{
    struct oggmux_header h[4];
    int n = 0;
    while (ops->header(e, n, &h[n].data, &h[n].len) == 0)
        n++;
    assert_int_equal(n, 2);
    struct oggmux *m = oggmux_new(serial, OGGMUX_PAGE_SAMPLES);
    assert_non_null(m);
    struct buf out;
    buf_init(&out, 64 << 20);
    assert_int_equal(oggmux_headers(m, h, n, &out), 0);
    assert_int_equal(oggmux_headers(m, h, n, &out), -EINVAL);
    int64_t granule = 0;
    for (size_t i = from; i < to; i++) {
        if (splice && i >= s_from && i < s_to)
            assert_int_equal(oggmux_packet(m, splice->data, splice->len, splice->samples, &out), 0);
        else
            assert_int_equal(oggmux_packet(m, f->data + f->off[i], f->flen[i], f->samples[i], &out),
                             0);
        granule += f->samples[i];
        assert_int_equal(oggmux_granule(m), granule);
    }
    assert_int_equal(oggmux_flush(m, 1, &out), 0);
    write_file(p, out.data, out.len);
    buf_free(&out);
    oggmux_free(&m);
    assert_null(m);
}

/* Decodes with ffmpeg to 48 kHz stereo float; fails on any ffmpeg error
 * message (a decoder complaining about a frame is a failure here). */
static float *ffdecode(const char *file, size_t *frames)
{
    char cmd[1024], err[600];
    snprintf(err, sizeof(err), "%s.err", file);
    snprintf(cmd, sizeof(cmd), "ffmpeg -nostdin -v error -i '%s' -f f32le -ac 2 -ar 48000 - 2>'%s'",
             file, err);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = RATE * 2 * 8, n = 0;
    float *d = malloc(cap * sizeof(float));
    size_t got;
    while ((got = fread(d + n, sizeof(float), cap - n, p)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            d = realloc(d, cap * sizeof(float));
        }
    }
    assert_int_equal(pclose(p), 0);
    size_t elen;
    uint8_t *e = slurp(err, &elen);
    if (elen)
        fprintf(stderr, "ffmpeg on %s: %.*s\n", file, (int)elen, (const char *)e);
    assert_int_equal(elen, 0);
    free(e);
    *frames = n / 2;
    return d;
}

static void ffprobe(const char *file, const char *want)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -select_streams a:0 -show_entries "
             "stream=codec_name,sample_rate,channels -of csv=p=0 '%s'",
             file);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[256] = "";
    assert_non_null(fgets(line, sizeof(line), p));
    assert_int_equal(pclose(p), 0);
    line[strcspn(line, "\r\n")] = '\0';
    assert_string_equal(line, want);
}

/* ---- measurements on one channel (c) of decoded stereo ---- */

static double freq(const float *d, size_t from, size_t to, int c)
{
    double first = -1, last = -1;
    long count = 0;
    for (size_t i = from + 1; i < to; i++) {
        float a = d[2 * (i - 1) + c], b = d[2 * i + c];
        if (a < 0 && b >= 0) {
            double t = (double)(i - 1) + a / (a - b);
            if (first < 0)
                first = t;
            last = t;
            count++;
        }
    }
    assert_true(count > 10);
    return (double)(count - 1) * RATE / (last - first);
}

static double rms_db(const float *d, size_t from, size_t to, int c)
{
    double s = 0;
    for (size_t i = from; i < to; i++)
        s += (double)d[2 * i + c] * d[2 * i + c];
    return 10 * log10(s / (double)(to - from) + 1e-30);
}

static double max_step(const float *d, size_t from, size_t to, int c)
{
    double m = 0;
    for (size_t i = from + 1; i < to; i++) {
        double s = fabs((double)d[2 * i + c] - d[2 * (i - 1) + c]);
        if (s > m)
            m = s;
    }
    return m;
}

/* The tone f at AMP is there from..to: pitch, level, no clicks. */
static void check_tone(const char *what, const float *d, size_t from, size_t to, int c, double f)
{
    double got_f = freq(d, from, to, c);
    double got_db = rms_db(d, from, to, c);
    double want_db = 20 * log10(AMP / sqrt(2));
    double step = max_step(d, from, to, c);
    double slope = AMP * 2 * M_PI * f / RATE;
    fprintf(stderr, "  %s ch%d: %.2f Hz, %.2f dBFS (want %.2f), max step %.4f (tone %.4f)\n", what,
            c, got_f, got_db, want_db, step, slope);
    assert_true(fabs(got_f - f) <= 2.0);
    assert_true(fabs(got_db - want_db) <= 0.5);
    assert_true(step <= slope * 1.5 + 0.01);
}

static int64_t total_samples(const struct frames *f, size_t from, size_t to)
{
    int64_t s = 0;
    for (size_t i = from; i < to; i++)
        s += f->samples[i];
    return s;
}

static size_t total_bytes(const struct frames *f, size_t from, size_t to)
{
    size_t s = 0;
    for (size_t i = from; i < to; i++)
        s += f->flen[i];
    return s;
}

/* ---- tests ---- */

static void test_registry(void **state)
{
    assert_ptr_equal(encoder_by_name("mp3"), &encoder_mp3);
    assert_ptr_equal(encoder_by_name("opus"), &encoder_opus);
    assert_null(encoder_by_name("aac"));
    assert_null(encoder_by_name(NULL));
    size_t n = 0;
    for (; encoder_plugins[n]; n++) {
        const struct encoder_ops *o = encoder_plugins[n];
        assert_non_null(o->open);
        assert_non_null(o->header);
        assert_non_null(o->write);
        assert_non_null(o->read);
        assert_non_null(o->flush);
        assert_non_null(o->delay);
        assert_non_null(o->silence);
        assert_non_null(o->close);
    }
    assert_int_equal(n, 2);
    assert_string_equal(encoder_mp3.content_type, "audio/mpeg");
    assert_string_equal(encoder_opus.content_type, "audio/ogg");
}

static void test_bad_params(void **state)
{
    struct encoder *e = NULL;
    const char *err = NULL;
    struct encoder_params p = {.rate = 44000, .channels = 2};
    assert_int_equal(encoder_mp3.open(&e, &p, &err), -EINVAL);
    assert_non_null(err);
    assert_null(e);
    p = (struct encoder_params){.rate = 48000, .channels = 3};
    assert_int_equal(encoder_mp3.open(&e, &p, &err), -EINVAL);
    assert_int_equal(encoder_opus.open(&e, &p, &err), -EINVAL);
    p = (struct encoder_params){.rate = 44100, .channels = 2};
    assert_int_equal(encoder_opus.open(&e, &p, &err), -EINVAL);
    p = (struct encoder_params){.rate = 48000, .channels = 2, .frame_us = 15000};
    assert_int_equal(encoder_opus.open(&e, &p, &err), -EINVAL);
    p = (struct encoder_params){.rate = 48000, .channels = 2, .bitrate = 1000};
    assert_int_equal(encoder_opus.open(&e, &p, &err), -EINVAL);
    assert_int_equal(encoder_mp3.open(&e, &p, &err), -EINVAL);
    assert_null(e);
}

/* MPEG-1 Layer III side info: main_data_begin, 0 when the frame's audio
 * data is all in the frame itself. */
static int main_data_begin(const uint8_t *f)
{
    return (f[4] << 1) | (f[5] >> 7);
}

static void mp3_tone(double fl, double fr, const char *name)
{
    const size_t n = 3 * RATE;
    float *pcm = tone(fl, fr, n);
    struct encoder_params p = {.rate = RATE, .channels = 2};
    struct encoder *e = open_enc(&encoder_mp3, &p);
    assert_int_equal(p.bitrate, 192000);
    int delay = encoder_mp3.delay(e);
    assert_int_equal(delay, 576 + 529);
    const uint8_t *hd;
    size_t hl;
    assert_int_equal(encoder_mp3.header(e, 0, &hd, &hl), -ENOENT);
    struct frames f = {0};
    encode(&encoder_mp3, e, pcm, n, &f);
    encoder_mp3.close(e);

    /* CBR 192 kbit/s at 48 kHz: every frame 576 bytes, 1152 samples, no
     * bit reservoir */
    for (size_t i = 0; i < f.n; i++) {
        assert_int_equal(f.flen[i], 576);
        assert_int_equal(f.samples[i], 1152);
        assert_int_equal(f.data[f.off[i]], 0xff);
        assert_int_equal(main_data_begin(f.data + f.off[i]), 0);
    }
    int64_t samples = total_samples(&f, 0, f.n);
    assert_true(samples >= (int64_t)n + delay);
    assert_true(samples < (int64_t)n + delay + 2 * 1152);
    double kbps = total_bytes(&f, 0, f.n) * 8.0 / ((double)samples / RATE) / 1000;
    assert_true(fabs(kbps - 192) <= 192 * 0.05);

    write_mp3(path(name), &f, 0, f.n);
    ffprobe(path(name), "mp3,48000,2");
    size_t dn;
    float *d = ffdecode(path(name), &dn);
    assert_int_equal(dn, (size_t)samples);
    /* Nothing before the codec delay (the tone starts at input sample 0),
     * the tone after it. */
    assert_true(rms_db(d, 0, (size_t)delay - 200, 0) < -50);
    assert_true(rms_db(d, (size_t)delay + 200, (size_t)delay + 1200, 0) > -12);
    check_tone("mp3", d, (size_t)delay + 4800, (size_t)delay + n - 4800, 0, fl);
    check_tone("mp3", d, (size_t)delay + 4800, (size_t)delay + n - 4800, 1, fr);
    free(d);
    frames_free(&f);
    free(pcm);
}

static void test_mp3_440(void **state)
{
    mp3_tone(440, 440, "a440.mp3");
}

static void test_mp3_1k(void **state)
{
    /* different channels: also catches a channel swap */
    mp3_tone(1000, 440, "k1.mp3");
}

static void opus_tone(double fl, double fr, const char *name)
{
    const size_t n = 3 * RATE;
    float *pcm = tone(fl, fr, n);
    struct encoder_params p = {.rate = RATE, .channels = 2};
    struct encoder *e = open_enc(&encoder_opus, &p);
    assert_int_equal(p.bitrate, 128000);
    assert_int_equal(p.frame_us, 20000);
    int preskip = encoder_opus.delay(e);
    assert_int_equal(preskip, 312);
    /* OpusHead, RFC 7845 5.1 */
    const uint8_t *h;
    size_t hl;
    assert_int_equal(encoder_opus.header(e, 0, &h, &hl), 0);
    assert_int_equal(hl, 19);
    assert_memory_equal(h, "OpusHead\x01\x02", 10);
    assert_int_equal(h[10] | h[11] << 8, preskip);
    assert_int_equal(h[12] | h[13] << 8 | h[14] << 16 | (uint32_t)h[15] << 24, 48000);
    assert_int_equal(h[16] | h[17], 0);
    assert_int_equal(h[18], 0);
    assert_int_equal(encoder_opus.header(e, 1, &h, &hl), 0);
    assert_int_equal(hl, 20);
    assert_memory_equal(h, "OpusTags\x04\0\0\0IMES\0\0\0\0", 20);
    assert_int_equal(encoder_opus.header(e, 2, &h, &hl), -ENOENT);

    struct frames f = {0};
    encode(&encoder_opus, e, pcm, n, &f);
    for (size_t i = 0; i < f.n; i++)
        assert_int_equal(f.samples[i], 960);
    int64_t samples = total_samples(&f, 0, f.n);
    /* flush pads until the last input sample is out, no more */
    assert_true(samples >= (int64_t)n + preskip);
    assert_true(samples < (int64_t)n + preskip + 960);
    double kbps = total_bytes(&f, 0, f.n) * 8.0 / ((double)samples / RATE) / 1000;
    fprintf(stderr, "  opus %s: %.1f kbit/s in %zu packets\n", name, kbps, f.n);
    assert_true(fabs(kbps - 128) <= 128 * 0.05);

    write_opus(path(name), &encoder_opus, e, &f, 0, f.n, 0x1234, NULL, 0, 0);
    encoder_opus.close(e);
    ffprobe(path(name), "opus,48000,2");
    size_t dn;
    float *d = ffdecode(path(name), &dn);
    /* pre-skip is dropped by the decoder: input sample 0 is output 0 */
    assert_int_equal(dn, (size_t)(samples - preskip));
    assert_true(rms_db(d, 0, 480, 0) > -12);
    check_tone("opus", d, 4800, n - 4800, 0, fl);
    check_tone("opus", d, 4800, n - 4800, 1, fr);
    free(d);
    frames_free(&f);
    free(pcm);
}

static void test_opus_440(void **state)
{
    opus_tone(440, 440, "a440.opus");
}

static void test_opus_1k(void **state)
{
    opus_tone(1000, 440, "k1.opus");
}

/* Music, then 1 s of the encoder's silence frames in place of the music
 * frames (a muted listener), then music again: decodes without a single
 * decoder complaint, the middle is silence, the music comes back. */
static void splice_test(const struct encoder_ops *ops, const char *name)
{
    const size_t n = 3 * RATE;
    float *pcm = tone(440, 440, n);
    struct encoder_params p = {.rate = RATE, .channels = 2};
    struct encoder *e = open_enc(ops, &p);
    struct encoded_frame sil;
    assert_int_equal(ops->silence(e, &sil), 0);
    struct frames f = {0};
    encode(ops, e, pcm, n, &f);
    int frame = f.samples[0];
    assert_int_equal(sil.samples, frame);
    size_t s_from = RATE / (size_t)frame, s_to = 2 * RATE / (size_t)frame;
    size_t dn;
    float *d;
    if (ops == &encoder_mp3) {
        /* the same length as the music frames: the byte rate holds */
        assert_int_equal(sil.len, 576);
        assert_int_equal(main_data_begin(sil.data), 0);
        FILE *fp = fopen(path(name), "wb");
        for (size_t i = 0; i < f.n; i++) {
            if (i >= s_from && i < s_to)
                fwrite(sil.data, 1, sil.len, fp);
            else
                fwrite(f.data + f.off[i], 1, f.flen[i], fp);
        }
        fclose(fp);
    } else {
        fprintf(stderr, "  opus silence packet: %zu bytes\n", sil.len);
        write_opus(path(name), ops, e, &f, 0, f.n, 77, &sil, s_from, s_to);
    }
    d = ffdecode(path(name), &dn);
    /* Output sample of frame k: k * frame, less MP3's decoder delay or
     * Opus's pre-skip, which the decoder has already dropped. Margins of
     * two frames on each side for the overlap. */
    int shift = ops == &encoder_mp3 ? 529 : ops->delay(e);
    size_t a = s_from * (size_t)frame - (size_t)shift, b = s_to * (size_t)frame - (size_t)shift;
    double mid = rms_db(d, a + 2 * (size_t)frame, b - (size_t)frame, 0);
    double mid_peak = 0;
    for (size_t i = a + 2 * (size_t)frame; i < b - (size_t)frame; i++)
        mid_peak = fmax(mid_peak, fabs(d[2 * i]));
    fprintf(stderr, "  %s silence: %.1f dBFS rms, peak %.2g\n", ops->name, mid, mid_peak);
    assert_true(mid < -60);
    /* the music before and after */
    check_tone(ops->name, d, 4800, a - 2 * (size_t)frame, 0, 440);
    check_tone(ops->name, d, b + 4800, dn - 4800, 0, 440);
    /* the fade out and back in is no louder than the music */
    double edge = 0;
    for (size_t i = a - 2 * (size_t)frame; i < b + 4800; i++)
        edge = fmax(edge, fabs(d[2 * i]));
    fprintf(stderr, "  %s peak around the silence: %.3f\n", ops->name, edge);
    assert_true(edge < AMP * 1.2);
    free(d);
    ops->close(e);
    frames_free(&f);
    free(pcm);
}

static void test_mp3_silence_splice(void **state)
{
    splice_test(&encoder_mp3, "splice.mp3");
}

static void test_opus_silence_splice(void **state)
{
    splice_test(&encoder_opus, "splice.opus");
}

/* A listener that joins after 1 s: MP3 frames from there decode at once
 * (no reservoir to reach back into); Opus gets its own Ogg stream whose
 * granule positions count only what it got. */
static void test_join_midstream(void **state)
{
    const size_t n = 3 * RATE;
    float *pcm = tone(440, 440, n);
    struct encoder_params p = {.rate = RATE, .channels = 2};
    size_t dn;

    struct encoder *e = open_enc(&encoder_mp3, &p);
    struct frames f = {0};
    encode(&encoder_mp3, e, pcm, n, &f);
    encoder_mp3.close(e);
    size_t from = 42; /* any frame */
    write_mp3(path("join.mp3"), &f, from, f.n);
    float *d = ffdecode(path("join.mp3"), &dn);
    assert_int_equal(dn, (f.n - from) * 1152);
    check_tone("mp3 join", d, 2400, dn - 4800, 0, 440);
    free(d);
    frames_free(&f);

    p = (struct encoder_params){.rate = RATE, .channels = 2};
    e = open_enc(&encoder_opus, &p);
    int preskip = encoder_opus.delay(e);
    encode(&encoder_opus, e, pcm, n, &f);
    from = 50;
    write_opus(path("join.opus"), &encoder_opus, e, &f, from, f.n, 0xdeadbeef, NULL, 0, 0);
    encoder_opus.close(e);
    int64_t got = total_samples(&f, from, f.n);

    /* The pages: BOS with OpusHead alone, OpusTags, then one page per
     * packet, sequence numbers without gaps, granules counting up from
     * this listener's first packet. */
    size_t len;
    uint8_t *o = slurp(path("join.opus"), &len);
    size_t at = 0;
    uint32_t seq = 0;
    int64_t last = 0;
    while (at < len) {
        assert_memory_equal(o + at, "OggS", 4);
        int flags = o[at + 5];
        int64_t g = 0;
        for (int i = 7; i >= 0; i--)
            g = g << 8 | o[at + 6 + i];
        uint32_t serial =
            o[at + 14] | o[at + 15] << 8 | o[at + 16] << 16 | (uint32_t)o[at + 17] << 24;
        uint32_t pn = o[at + 18] | o[at + 19] << 8 | o[at + 20] << 16 | (uint32_t)o[at + 21] << 24;
        int nseg = o[at + 26];
        size_t body = 0;
        for (int i = 0; i < nseg; i++)
            body += o[at + 27 + i];
        assert_int_equal(serial, 0xdeadbeef);
        assert_int_equal(pn, seq);
        const uint8_t *b = o + at + 27 + nseg;
        if (seq == 0) {
            assert_int_equal(flags, 2);
            assert_int_equal(body, 19);
            assert_memory_equal(b, "OpusHead", 8);
            assert_int_equal(g, 0);
        } else if (seq == 1) {
            assert_int_equal(flags, 0);
            assert_memory_equal(b, "OpusTags", 8);
            assert_int_equal(g, 0);
        } else if (nseg) {
            assert_int_equal(g, last + 960);
            last = g;
        } else {
            assert_int_equal(flags, 4); /* the empty EOS page */
            assert_int_equal(g, last);
        }
        at += 27 + (size_t)nseg + body;
        seq++;
    }
    assert_int_equal(last, got);
    free(o);

    d = ffdecode(path("join.opus"), &dn);
    assert_int_equal(dn, (size_t)(got - preskip));
    check_tone("opus join", d, 2400, dn - 4800, 0, 440);
    free(d);

    /* libopusfile checks every CRC and the granule rules of RFC 7845. */
    int err = 0;
    OggOpusFile *of = op_open_file(path("join.opus"), &err);
    assert_non_null(of);
    assert_int_equal(op_pcm_total(of, -1), got - preskip);
    float buf[5760 * 2];
    int64_t total = 0;
    int r;
    while ((r = op_read_float_stereo(of, buf, 5760 * 2)) > 0)
        total += r;
    assert_int_equal(r, 0);
    assert_int_equal(total, got - preskip);
    op_free(of);

    frames_free(&f);
    free(pcm);
}

/* Matriz's settings: short frames, RESTRICTED_LOWDELAY, FEC. With 2.5 to
 * 10 ms packets the muxer gathers 20 ms per page. */
static void lowdelay(int frame_us, int lowdelay, int fec)
{
    const size_t n = RATE;
    float *pcm = tone(440, 440, n);
    struct encoder_params p = {
        .rate = RATE, .channels = 2, .frame_us = frame_us, .lowdelay = lowdelay, .fec = fec};
    struct encoder *e = open_enc(&encoder_opus, &p);
    int frame = RATE / 1000 * frame_us / 1000;
    int preskip = encoder_opus.delay(e);
    if (lowdelay)
        assert_int_equal(preskip, 120); /* 2.5 ms */
    if (fec)
        assert_int_equal(p.loss_perc, 10);
    struct encoded_frame sil;
    assert_int_equal(encoder_opus.silence(e, &sil), 0);
    assert_int_equal(sil.samples, frame);
    struct frames f = {0};
    encode(&encoder_opus, e, pcm, n, &f);
    for (size_t i = 0; i < f.n; i++)
        assert_int_equal(f.samples[i], frame);
    char name[64];
    snprintf(name, sizeof(name), "ld%d_%d_%d.opus", frame_us, lowdelay, fec);
    write_opus(path(name), &encoder_opus, e, &f, 0, f.n, 5, NULL, 0, 0);
    encoder_opus.close(e);
    double kbps = total_bytes(&f, 0, f.n) * 8.0 / ((double)total_samples(&f, 0, f.n) / RATE) / 1000;
    fprintf(stderr, "  opus %d us lowdelay %d fec %d: preskip %d, %.1f kbit/s\n", frame_us,
            lowdelay, fec, preskip, kbps);
    size_t dn;
    float *d = ffdecode(path(name), &dn);
    assert_int_equal(dn, (size_t)(total_samples(&f, 0, f.n) - preskip));
    check_tone(name, d, 2400, n - 2400, 0, 440);
    free(d);
    frames_free(&f);
    free(pcm);
}

static void test_opus_lowdelay(void **state)
{
    lowdelay(2500, 1, 1);
    lowdelay(5000, 1, 0);
    lowdelay(10000, 1, 1);
    lowdelay(10000, 0, 0);
    lowdelay(2500, 0, 0);
}

static void test_oggmux_limits(void **state)
{
    uint8_t head[19] = "OpusHead\x01\x02";
    struct oggmux_header h = {head, sizeof(head)};
    struct oggmux *m = oggmux_new(1, 960);
    struct buf out;
    buf_init(&out, 100);
    uint8_t pkt[300] = {0};
    assert_int_equal(oggmux_packet(m, pkt, 10, 960, &out), -EINVAL); /* headers first */
    assert_int_equal(oggmux_headers(m, &h, 1, &out), 0);
    assert_int_equal(out.len, 27 + 1 + 19);
    /* a page that would pass the queue's limit: nothing appended */
    assert_int_equal(oggmux_packet(m, pkt, 60, 960, &out), -E2BIG);
    assert_int_equal(out.len, 47);
    /* short packets wait for 20 ms; 255 lacing values force a page */
    buf_free(&out);
    buf_init(&out, 1 << 20);
    for (int i = 0; i < 3; i++)
        assert_int_equal(oggmux_packet(m, pkt, 300, 240, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(oggmux_packet(m, pkt, 300, 240, &out), 0);
    assert_int_equal(out.len, 27 + 8 + 1200);
    assert_int_equal(out.data[26], 8); /* 4 packets of 300: 255 + 45 each */
    assert_int_equal(oggmux_granule(m), 960);
    buf_reset(&out);
    struct oggmux *m2 = oggmux_new(2, 1 << 30);
    assert_int_equal(oggmux_headers(m2, &h, 1, &out), 0);
    buf_reset(&out);
    for (int i = 0; i < 127; i++)
        assert_int_equal(oggmux_packet(m2, pkt, 300, 120, &out), 0);
    assert_int_equal(out.len, 0);
    /* 128th would need lacing 256 and 257: the first 127 go on a page */
    assert_int_equal(oggmux_packet(m2, pkt, 300, 120, &out), 0);
    assert_int_equal(out.len, 27 + 254 + 127 * 300);
    assert_int_equal(oggmux_flush(m2, 0, &out), 0);
    assert_int_equal(out.len, 27 + 254 + 127 * 300 + 27 + 2 + 300);
    static uint8_t big[70000];
    assert_int_equal(oggmux_packet(m2, big, sizeof(big), 120, &out), -EMSGSIZE);
    oggmux_free(&m2);
    buf_free(&out);
    oggmux_free(&m);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/imes-test-encoders-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_mp3_440),
        cmocka_unit_test(test_mp3_1k),
        cmocka_unit_test(test_opus_440),
        cmocka_unit_test(test_opus_1k),
        cmocka_unit_test(test_mp3_silence_splice),
        cmocka_unit_test(test_opus_silence_splice),
        cmocka_unit_test(test_join_midstream),
        cmocka_unit_test(test_opus_lowdelay),
        cmocka_unit_test(test_oggmux_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
