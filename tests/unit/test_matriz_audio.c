/* Matriz audio I/O: the WAV reader/writer and the file/tone backend, run for
 * real (half a second of paced audio into files in a temp folder). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "matriz/audio.h"
#include "matriz/wav.h"

static char dir[] = "/tmp/imes-test-audio-XXXXXX";

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The power of freq in x (Goertzel), normalized to amplitude. */
static double tone_level(const float *x, size_t n, double freq, int rate)
{
    double w = 2 * M_PI * freq / rate, c = 2 * cos(w), s0, s1 = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        s0 = x[i] + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    double p = s1 * s1 + s2 * s2 - c * s1 * s2;
    return 2 * sqrt(p) / (double)n;
}

static float *read_left(const char *path, size_t *frames, struct wav_format *fmt)
{
    struct wav_reader *r = wav_reader_open(path, fmt);
    assert_non_null(r);
    size_t cap = 48000 * 4, n = 0;
    float *all = malloc(cap * 2 * sizeof(float)), *left = malloc(cap * sizeof(float));
    long got;
    while (n < cap && (got = wav_reader_read(r, all, cap - n)) > 0) {
        for (long i = 0; i < got; i++)
            left[n + (size_t)i] = all[(size_t)i * (size_t)fmt->channels];
        n += (size_t)got;
    }
    wav_reader_close(&r);
    free(all);
    *frames = n;
    return left;
}

static void header_parsing(void **state)
{
    struct wav_format f;
    uint8_t h[80] = "RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x02\0\x80\xbb\0\0\0\0\0\0\x04\0\x10\0"
                    "data\x08\0\0\0";
    assert_int_equal(wav_parse_header(h, 44, 52, &f), 0);
    assert_int_equal(f.rate, 48000);
    assert_int_equal(f.channels, 2);
    assert_int_equal(f.bits, 16);
    assert_int_equal(f.data_offset, 44);
    assert_int_equal(f.data_len, 8);
    /* data beyond the file: clamped; a size of 0 (still being written): to the end */
    assert_int_equal(wav_parse_header(h, 44, 48, &f), 0);
    assert_int_equal(f.data_len, 4);
    assert_int_equal(wav_parse_header(h, 20, 52, &f), -EAGAIN);
    assert_int_equal(wav_parse_header(h, 4, 4, &f), -EINVAL);
    h[20] = 2; /* ADPCM */
    assert_int_equal(wav_parse_header(h, 44, 52, &f), -ENOTSUP);
    h[20] = 3; /* float, but 16 bits */
    assert_int_equal(wav_parse_header(h, 44, 52, &f), -ENOTSUP);
    h[20] = 1;
    memcpy(h, "RIFX", 4);
    assert_int_equal(wav_parse_header(h, 44, 52, &f), -EINVAL);
    memcpy(h, "RIFF", 4);
    h[16] = 0xff, h[17] = 0xff, h[18] = 0xff, h[19] = 0x7f; /* fmt chunk past the end */
    assert_int_equal(wav_parse_header(h, 44, 52, &f), -EINVAL);
}

static void write_then_read(void **state)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/rt.wav", dir);
    struct wav_writer *w = wav_writer_open(path, 48000);
    assert_non_null(w);
    float l[100], r[100];
    for (int i = 0; i < 100; i++) {
        l[i] = (float)i / 100;
        r[i] = -(float)i / 100;
    }
    assert_int_equal(wav_writer_write(w, l, r, 100), 0);
    assert_int_equal(wav_writer_frames(w), 100);
    wav_writer_close(&w);
    assert_null(w);
    struct wav_format f;
    struct wav_reader *rd = wav_reader_open(path, &f);
    assert_non_null(rd);
    assert_int_equal(f.data_len, 400);
    float x[200];
    assert_int_equal(wav_reader_read(rd, x, 100), 100);
    for (int i = 0; i < 100; i++) {
        assert_true(fabsf(x[2 * i] - l[i]) < 1e-4f);
        assert_true(fabsf(x[2 * i + 1] - r[i]) < 1e-4f);
    }
    assert_int_equal(wav_reader_read(rd, x, 100), 0);
    assert_int_equal(wav_reader_rewind(rd), 0);
    assert_int_equal(wav_reader_read(rd, x, 10), 10);
    wav_reader_close(&rd);
    errno = 0;
    assert_null(wav_reader_open("/nonexistent/x.wav", &f));
    assert_int_equal(errno, ENOENT);
}

struct probe {
    atomic_int calls;
    double first_now, last_now;
    int slot;
    int bad_now;
};

/* The far peer plays the input back at half level. */
static void process(struct audio_block *b, void *arg)
{
    struct probe *p = arg;
    int c = atomic_fetch_add(&p->calls, 1);
    if (c == 0)
        p->first_now = b->now;
    else if (fabs(b->now - p->last_now - (double)b->frames / 48000) > 1e-9)
        p->bad_now++;
    p->last_now = b->now;
    if (b->out[p->slot][0])
        for (uint32_t i = 0; i < b->frames; i++) {
            b->out[p->slot][0][i] = b->in[0][i] * 0.5f;
            b->out[p->slot][1][i] = b->in[1][i] * 0.5f;
        }
}

static void tone_to_files_in_real_time(void **state)
{
    const struct audio_ops *ops = audio_find("file");
    assert_non_null(ops);
    assert_null(audio_find("nope"));
    struct probe p = {0};
    struct audio *a;
    struct audio_options o = {.name = "t",
                              .rate = 48000,
                              .period = 128,
                              .tone_hz = 1000,
                              .tone_dbfs = -6,
                              .output_dir = dir};
    assert_int_equal(ops->open(&a, &o, process, &p), 0);
    p.slot = ops->add_output(a, "porto");
    assert_true(p.slot >= 0);
    assert_int_equal(ops->add_output(a, "porto"), -EEXIST);
    assert_int_equal(ops->add_output(a, "a/b"), -EINVAL);
    double t0 = mono();
    assert_int_equal(ops->start(a), 0);
    usleep(500000);
    ops->remove_output(a, p.slot); /* silent from here on */
    usleep(200000);
    assert_int_equal(ops->add_output(a, "porto"), p.slot); /* the same file again */
    usleep(100000);
    ops->close(&a);
    double took = mono() - t0;
    assert_null(a);
    int calls = atomic_load(&p.calls);
    double expect = took * 48000 / 128;
    print_message("%d periods in %.3f s (%.0f expected), now %.3f..%.3f\n", calls, took, expect,
                  p.first_now, p.last_now);
    assert_true(calls > expect * 0.9 && calls < expect * 1.05);
    assert_int_equal(p.bad_now, 0);

    char path[256];
    struct wav_format f;
    size_t n, nm;
    snprintf(path, sizeof(path), "%s/porto.wav", dir);
    float *x = read_left(path, &n, &f);
    snprintf(path, sizeof(path), "%s/mix.wav", dir);
    float *m = read_left(path, &nm, &f);
    assert_int_equal(n, nm); /* aligned with the mix */
    assert_true(n >= 0.75 * 48000);
    /* 0.1..0.4 s: the tone at half of -6 dBFS; 0.55..0.65 s: silence */
    double lv = tone_level(x + 4800, 14400, 1000, 48000);
    double other = tone_level(x + 4800, 14400, 1500, 48000);
    print_message("tone %.3f, elsewhere %.4f\n", lv, other);
    assert_true(fabs(lv - 0.5 * pow(10, -6.0 / 20)) < 0.02);
    assert_true(other < 0.01);
    assert_true(tone_level(x + 26400, 4800, 1000, 48000) < 0.001);
    assert_true(fabs(tone_level(m + 4800, 14400, 1000, 48000) - lv) < 0.01);
    free(x);
    free(m);
}

static int setup(void **state)
{
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_parsing),
        cmocka_unit_test(write_then_read),
        cmocka_unit_test(tone_to_files_in_real_time),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
