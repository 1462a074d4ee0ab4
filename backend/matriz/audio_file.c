/*
 * The file/tone audio backend (see audio.h): a thread that runs one period
 * at a time on the monotonic clock (period n is due at start + n * period /
 * rate), makes the input (WAV in a loop, a tone, or silence), calls the
 * peer's process function and writes every output to its WAV file.
 *
 * Outputs are added and removed by the main thread under a mutex that the
 * audio thread takes once per period, only to copy the slot table: this
 * backend is not real-time (it writes files), so a short lock is fine.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "matriz/audio.h"
#include "matriz/wav.h"

/* Later than this, a period re-anchors the clock instead of rushing to catch
 * up (the machine was suspended, or starved for CPU): one glitch, not a
 * burst of catch-up audio. */
#define RESYNC_S 0.050
/* WAV headers are rewritten this often, so readers see the files grow. */
#define SYNC_S 1.0

struct output {
    char name[AUDIO_NAME_MAX + 1];
    int active;
    struct wav_writer *w;
};

struct audio {
    struct audio_options o;
    char *input, *output_dir, *name;
    audio_process_fn fn;
    void *arg;

    struct wav_reader *reader;
    struct wav_format wfmt;
    double phase, amp;

    pthread_mutex_t lock;
    struct output outs[AUDIO_MAX_OUTPUTS]; /* by slot */
    struct wav_writer *mix;

    pthread_t thread;
    int started;
    atomic_int stop;
    uint64_t resyncs;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    struct timespec ts = {.tv_sec = (time_t)t, .tv_nsec = (long)((t - floor(t)) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* Thread: audio. */
static void make_input(struct audio *a, float *l, float *r, float *scratch, uint32_t n)
{
    if (a->reader) {
        uint32_t done = 0;
        int ch = a->wfmt.channels;
        while (done < n) {
            long got = wav_reader_read(a->reader, scratch, n - done);
            if (got <= 0) {
                if (wav_reader_rewind(a->reader) < 0 || a->wfmt.data_len == 0)
                    break;
                continue;
            }
            for (long i = 0; i < got; i++) {
                l[done + i] = scratch[i * ch];
                r[done + i] = scratch[i * ch + (ch - 1)];
            }
            done += (uint32_t)got;
        }
        for (; done < n; done++)
            l[done] = r[done] = 0;
        return;
    }
    double step = 2 * M_PI * a->o.tone_hz / a->o.rate;
    for (uint32_t i = 0; i < n; i++) {
        l[i] = r[i] = (float)(a->amp * sin(a->phase));
        a->phase += step;
        if (a->phase > 2 * M_PI)
            a->phase -= 2 * M_PI;
    }
}

/* Thread: audio. */
static void *run(void *arg)
{
    struct audio *a = arg;
    uint32_t n = (uint32_t)a->o.period;
    float *buf = calloc((size_t)n * (4 + 2 * AUDIO_MAX_OUTPUTS + 2), sizeof(float));
    if (!buf) {
        LOG(E_ERROR, L_MATRIZ, "audio file: out of memory");
        return NULL;
    }
    float *in_l = buf, *in_r = buf + n, *mix_l = buf + 2 * n, *mix_r = buf + 3 * n;
    float *outs = buf + 4 * n, *scratch = outs + 2 * (size_t)n * AUDIO_MAX_OUTPUTS;
    float *zero = calloc(n, sizeof(float));
    double start = mono(), last_sync = start;
    uint64_t pos = 0, due_frames = 0;

    while (!atomic_load(&a->stop) && zero) {
        double due = start + (double)due_frames / a->o.rate;
        double now = mono();
        if (now - due > RESYNC_S) {
            a->resyncs++;
            LOG(E_WARN, L_MATRIZ, "audio file: %.0f ms late; re-anchoring the clock",
                (now - due) * 1000);
            start = now;
            due_frames = 0;
            due = now;
        }
        sleep_until(due);

        struct audio_block b = {
            .frames = n, .now = start + (double)due_frames / a->o.rate, .position = pos};
        make_input(a, in_l, in_r, scratch, n);
        b.in[0] = in_l;
        b.in[1] = in_r;
        struct wav_writer *ws[AUDIO_MAX_OUTPUTS];
        pthread_mutex_lock(&a->lock);
        for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++) {
            ws[s] = a->outs[s].w;
            if (a->outs[s].active) {
                b.out[s][0] = outs + (size_t)2 * s * n;
                b.out[s][1] = b.out[s][0] + n;
                memset(b.out[s][0], 0, 2 * n * sizeof(float));
            }
        }
        pthread_mutex_unlock(&a->lock);

        a->fn(&b, a->arg);
        audio_mix(&b, mix_l, mix_r);

        for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++) {
            if (!ws[s])
                continue;
            /* A file opened later starts with silence up to now, so that
             * every file lines up with mix.wav. */
            for (uint64_t have = wav_writer_frames(ws[s]); have < pos;) {
                size_t k = pos - have > n ? n : (size_t)(pos - have);
                if (wav_writer_write(ws[s], zero, zero, k) < 0)
                    break;
                have += k;
            }
            wav_writer_write(ws[s], b.out[s][0] ? b.out[s][0] : zero,
                             b.out[s][1] ? b.out[s][1] : zero, n);
        }
        if (a->mix)
            wav_writer_write(a->mix, mix_l, mix_r, n);
        if (now - last_sync >= SYNC_S) {
            last_sync = now;
            pthread_mutex_lock(&a->lock);
            for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++)
                if (a->outs[s].w)
                    wav_writer_sync(a->outs[s].w);
            pthread_mutex_unlock(&a->lock);
            if (a->mix)
                wav_writer_sync(a->mix);
        }
        pos += n;
        due_frames += n;
    }
    free(zero);
    free(buf);
    return NULL;
}

static void file_close(struct audio **ap)
{
    struct audio *a = *ap;
    if (!a)
        return;
    if (a->started) {
        atomic_store(&a->stop, 1);
        pthread_join(a->thread, NULL);
    }
    for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++)
        wav_writer_close(&a->outs[s].w);
    wav_writer_close(&a->mix);
    wav_reader_close(&a->reader);
    pthread_mutex_destroy(&a->lock);
    free(a->input);
    free(a->output_dir);
    free(a->name);
    free(a);
    *ap = NULL;
}

static int file_open(struct audio **out, const struct audio_options *opt, audio_process_fn fn,
                     void *arg)
{
    struct audio *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->o = *opt;
    if (!a->o.rate)
        a->o.rate = 48000;
    if (!a->o.period)
        a->o.period = 128;
    a->fn = fn;
    a->arg = arg;
    pthread_mutex_init(&a->lock, NULL);
    a->name = strdup(opt->name ? opt->name : "matriz");
    a->input = opt->input && *opt->input ? strdup(opt->input) : NULL;
    a->output_dir = opt->output_dir && *opt->output_dir ? strdup(opt->output_dir) : NULL;
    a->amp = pow(10, opt->tone_dbfs / 20);
    if (a->o.period < 16 || a->o.period > 4096 || a->o.rate < 8000 || a->o.rate > 192000) {
        LOG(E_ERROR, L_MATRIZ, "audio file: period %d or rate %d out of range", a->o.period,
            a->o.rate);
        file_close(&a);
        return -EINVAL;
    }
    if (a->input) {
        if (!(a->reader = wav_reader_open(a->input, &a->wfmt))) {
            int e = errno;
            LOG(E_ERROR, L_MATRIZ, "audio file: %s: %s", a->input,
                e == ENOTSUP || e == EINVAL ? "not a WAV file it can read (PCM or float)"
                                            : strerror(e));
            file_close(&a);
            return -e;
        }
        if (a->wfmt.rate != a->o.rate)
            LOG(E_WARN, L_MATRIZ, "audio file: %s is at %d Hz, played at %d Hz", a->input,
                a->wfmt.rate, a->o.rate);
    }
    if (a->output_dir) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/mix.wav", a->output_dir);
        if (!(a->mix = wav_writer_open(path, a->o.rate))) {
            int e = errno;
            LOG(E_ERROR, L_MATRIZ, "audio file: %s: %s", path, strerror(e));
            file_close(&a);
            return -e;
        }
    }
    *out = a;
    return 0;
}

static int file_start(struct audio *a)
{
    if (a->started)
        return -EALREADY;
    int e = pthread_create(&a->thread, NULL, run, a);
    if (e)
        return -e;
    a->started = 1;
    /* Real-time scheduling when allowed (root, or rtprio in limits.conf), as
     * JACK gives its process thread: on a busy machine a normal thread is
     * held back for tens of milliseconds, and every peer hears the gap. */
    struct sched_param sp = {.sched_priority = sched_get_priority_min(SCHED_FIFO) + 10};
    e = pthread_setschedparam(a->thread, SCHED_FIFO, &sp);
    if (e)
        LOG(E_INFO, L_MATRIZ, "audio file: no real-time scheduling (%s): timing may suffer",
            strerror(e));
    LOG(E_INFO, L_MATRIZ, "audio file: %s, %d Hz, %d frames a period, input %s", a->name, a->o.rate,
        a->o.period,
        a->input           ? a->input
        : a->o.tone_hz > 0 ? "tone"
                           : "silence");
    return 0;
}

static int file_add_output(struct audio *a, const char *peer)
{
    int free_slot = -1, known = -1;
    if (!peer || !*peer || strlen(peer) > AUDIO_NAME_MAX || strchr(peer, '/'))
        return -EINVAL;
    pthread_mutex_lock(&a->lock);
    for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++) {
        if (a->outs[s].name[0] && strcmp(a->outs[s].name, peer) == 0)
            known = s;
        else if (!a->outs[s].name[0] && free_slot < 0)
            free_slot = s;
    }
    int r;
    if (known >= 0) {
        r = a->outs[known].active ? -EEXIST : known;
        if (r >= 0)
            a->outs[known].active = 1;
        pthread_mutex_unlock(&a->lock);
        return r;
    }
    pthread_mutex_unlock(&a->lock);
    if (free_slot < 0)
        return -ENOSPC;
    /* The file is opened without the lock (it may take a while). Only the
     * main thread adds outputs, so the slot stays free meanwhile. */
    struct wav_writer *w = NULL;
    if (a->output_dir) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.wav", a->output_dir, peer);
        if (!(w = wav_writer_open(path, a->o.rate))) {
            LOG(E_ERROR, L_MATRIZ, "audio file: %s: %s", path, strerror(errno));
            return -EIO;
        }
    }
    pthread_mutex_lock(&a->lock);
    snprintf(a->outs[free_slot].name, sizeof(a->outs[free_slot].name), "%s", peer);
    a->outs[free_slot].w = w;
    a->outs[free_slot].active = 1;
    pthread_mutex_unlock(&a->lock);
    return free_slot;
}

static void file_remove_output(struct audio *a, int slot)
{
    if (slot < 0 || slot >= AUDIO_MAX_OUTPUTS)
        return;
    pthread_mutex_lock(&a->lock);
    a->outs[slot].active = 0; /* the file stays, silent, for a rejoin */
    pthread_mutex_unlock(&a->lock);
}

static int file_rate(const struct audio *a)
{
    return a->o.rate;
}

static int file_period(const struct audio *a)
{
    return a->o.period;
}

const struct audio_ops audio_file_ops = {
    .name = "file",
    .open = file_open,
    .start = file_start,
    .add_output = file_add_output,
    .remove_output = file_remove_output,
    .rate = file_rate,
    .period = file_period,
    .close = file_close,
};
