/*
 * Recording (see recorder.h).
 *
 * The ring: chunks of at most CHUNK frames of one stream (mix, self, or an
 * output slot), each tagged with its period number. The audio thread fills
 * chunk w % n and publishes w + 1 (release); the writer reads up to it
 * (acquire) and publishes how far it has read. A full ring drops the chunk
 * (counted). Which peer a slot plays is told by the loop thread with the
 * period number it starts at, under a mutex only the loop and the writer
 * take: a chunk goes to the name its slot had at the chunk's period.
 */
#include "matriz/recorder.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "matriz/wav.h"

#define CHUNK       256
#define RING_S      0.5 /* seconds of every stream the ring holds */
#define POLL_NS     5000000L
#define SYNC_S      1.0
#define MAX_PENDING 256
#define MIX         0
#define SELF        1
#define SLOT0       2
#define NSTREAMS    (SLOT0 + AUDIO_MAX_OUTPUTS)

struct chunk {
    uint64_t cycle;
    int stream;
    uint32_t frames;
    float l[CHUNK], r[CHUNK];
};

struct stream {
    char name[AUDIO_NAME_MAX + 1]; /* slots: the peer; "" = none */
    struct wav_writer *w;
    char *path;
    int failed; /* until the slot changes hands */
};

struct pending {
    int slot;
    uint64_t cycle;
    int gone;
    char name[AUDIO_NAME_MAX + 1];
};

struct recorder {
    struct recorder_options o;
    char *dir;
    struct chunk *ring;
    size_t n;
    atomic_uint_fast64_t written, read, dropped;
    atomic_int stop;
    pthread_t thread;
    float mix_l[4096], mix_r[4096]; /* audio thread */

    pthread_mutex_t lock; /* pending: the loop and the writer */
    struct pending pending[MAX_PENDING];
    size_t npending;

    /* writer thread */
    struct stream streams[NSTREAMS];
    uint64_t dropped_logged;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- writer thread ---- */

static void stream_close(struct recorder *r, struct stream *s)
{
    if (!s->w)
        return;
    uint64_t frames = wav_writer_frames(s->w);
    wav_writer_close(&s->w);
    LOG(E_INFO, L_MATRIZ, "recording: %s closed (%.1f s)", s->path, (double)frames / r->o.rate);
    free(s->path);
    s->path = NULL;
}

static void stream_open(struct recorder *r, struct stream *s, int id)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    char *path = NULL;
    int n = id == MIX    ? asprintf(&path, "%s/mix-%s.wav", r->dir, stamp)
            : id == SELF ? asprintf(&path, "%s/self-%s.wav", r->dir, stamp)
                         : asprintf(&path, "%s/peer-%s-%s.wav", r->dir, s->name, stamp);
    if (n < 0) {
        s->failed = 1;
        return;
    }
    if (!(s->w = wav_writer_open(path, r->o.rate))) {
        LOG(E_ERROR, L_MATRIZ, "recording: cannot create %s: %s (not recorded)", path,
            strerror(errno));
        free(path);
        s->failed = 1;
        return;
    }
    s->path = path;
    LOG(E_INFO, L_MATRIZ, "recording: writing %s", path);
}

/* Takes up the slot changes due by `cycle` (all of them: UINT64_MAX). */
static void apply_pending(struct recorder *r, uint64_t cycle)
{
    pthread_mutex_lock(&r->lock);
    size_t k = 0;
    for (size_t i = 0; i < r->npending; i++) {
        struct pending *p = &r->pending[i];
        if (p->cycle > cycle) {
            r->pending[k++] = *p;
            continue;
        }
        struct stream *s = &r->streams[SLOT0 + p->slot];
        stream_close(r, s);
        s->failed = 0;
        snprintf(s->name, sizeof(s->name), "%s", p->gone ? "" : p->name);
    }
    r->npending = k;
    pthread_mutex_unlock(&r->lock);
}

static void write_chunk(struct recorder *r, const struct chunk *c)
{
    struct stream *s = &r->streams[c->stream];
    if (c->stream >= SLOT0) {
        apply_pending(r, c->cycle);
        if (!s->name[0])
            return;
    }
    if (s->failed)
        return;
    if (!s->w)
        stream_open(r, s, c->stream);
    if (!s->w)
        return;
    int e = wav_writer_write(s->w, c->l, c->r, c->frames);
    if (e < 0) {
        LOG(E_ERROR, L_MATRIZ, "recording: writing %s failed: %s; that file ends here", s->path,
            strerror(-e));
        stream_close(r, s);
        s->failed = 1;
    }
}

static void *writer(void *arg)
{
    struct recorder *r = arg;
    double last_sync = mono();
    for (;;) {
        int stopping = atomic_load(&r->stop);
        uint64_t rd = atomic_load_explicit(&r->read, memory_order_relaxed);
        uint64_t w = atomic_load_explicit(&r->written, memory_order_acquire);
        for (; rd < w; rd++) {
            write_chunk(r, &r->ring[rd % r->n]);
            atomic_store_explicit(&r->read, rd + 1, memory_order_release);
        }
        uint64_t dropped = atomic_load(&r->dropped);
        if (dropped != r->dropped_logged) {
            LOG(E_WARN, L_MATRIZ, "recording: %.2f s of audio dropped so far (the disk is slow)",
                (double)dropped * CHUNK / r->o.rate);
            r->dropped_logged = dropped;
        }
        if (stopping)
            break;
        double now = mono();
        if (now - last_sync >= SYNC_S) {
            int e;
            last_sync = now;
            for (int i = 0; i < NSTREAMS; i++)
                if (r->streams[i].w && (e = wav_writer_sync(r->streams[i].w)) < 0) {
                    LOG(E_ERROR, L_MATRIZ, "recording: writing %s failed: %s; that file ends here",
                        r->streams[i].path, strerror(-e));
                    stream_close(r, &r->streams[i]);
                    r->streams[i].failed = 1;
                }
        }
        struct timespec ts = {0, POLL_NS};
        nanosleep(&ts, NULL);
    }
    apply_pending(r, UINT64_MAX);
    for (int i = 0; i < NSTREAMS; i++)
        stream_close(r, &r->streams[i]);
    return NULL;
}

/* ---- audio thread ---- */

static void push(struct recorder *r, int stream, uint64_t cycle, const float *l, const float *rr,
                 uint32_t frames)
{
    for (uint32_t off = 0; off < frames; off += CHUNK) {
        uint64_t w = atomic_load_explicit(&r->written, memory_order_relaxed);
        if (w - atomic_load_explicit(&r->read, memory_order_acquire) >= r->n) {
            atomic_fetch_add(&r->dropped, 1);
            continue;
        }
        struct chunk *c = &r->ring[w % r->n];
        uint32_t k = frames - off < CHUNK ? frames - off : CHUNK;
        c->cycle = cycle;
        c->stream = stream;
        c->frames = k;
        memcpy(c->l, l + off, k * sizeof(float));
        memcpy(c->r, rr + off, k * sizeof(float));
        atomic_store_explicit(&r->written, w + 1, memory_order_release);
    }
}

void recorder_write(struct recorder *r, const struct audio_block *b, uint32_t slots, uint64_t cycle)
{
    if (r->o.mix && b->frames <= 4096) {
        audio_mix(b, r->mix_l, r->mix_r);
        push(r, MIX, cycle, r->mix_l, r->mix_r, b->frames);
    }
    if (r->o.self && b->in[0] && b->in[1])
        push(r, SELF, cycle, b->in[0], b->in[1], b->frames);
    if (r->o.peers)
        for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++)
            if ((slots >> s & 1) && b->out[s][0] && b->out[s][1])
                push(r, SLOT0 + s, cycle, b->out[s][0], b->out[s][1], b->frames);
}

/* ---- loop thread ---- */

void recorder_slot(struct recorder *r, int slot, const char *name, uint64_t cycle)
{
    if (!r || !r->o.peers || slot < 0 || slot >= AUDIO_MAX_OUTPUTS)
        return;
    pthread_mutex_lock(&r->lock);
    if (r->npending < MAX_PENDING) {
        struct pending *p = &r->pending[r->npending++];
        p->slot = slot;
        p->cycle = cycle;
        p->gone = !name;
        snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
    }
    pthread_mutex_unlock(&r->lock);
}

struct recorder *recorder_new(const struct recorder_options *o)
{
    struct stat st;
    if (!o->dir || !*o->dir || !(o->mix || o->self || o->peers))
        return NULL;
    if (stat(o->dir, &st) < 0) {
        LOG(E_ERROR, L_MATRIZ, "recording off: %s: %s", o->dir, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        LOG(E_ERROR, L_MATRIZ, "recording off: %s: not a folder", o->dir);
        return NULL;
    }
    if (access(o->dir, W_OK | X_OK) < 0) {
        LOG(E_ERROR, L_MATRIZ, "recording off: %s: %s", o->dir, strerror(errno));
        return NULL;
    }
    struct recorder *r = calloc(1, sizeof(*r));
    if (!r)
        goto oom;
    r->o = *o;
    r->dir = strdup(o->dir);
    int streams = (o->mix ? 1 : 0) + (o->self ? 1 : 0) + (o->peers ? AUDIO_MAX_OUTPUTS : 0);
    r->n = (size_t)(RING_S * o->rate / CHUNK + 1) * (size_t)streams;
    r->ring = calloc(r->n, sizeof(*r->ring));
    pthread_mutex_init(&r->lock, NULL);
    if (!r->dir || !r->ring || pthread_create(&r->thread, NULL, writer, r) != 0) {
        pthread_mutex_destroy(&r->lock);
        free(r->ring);
        free(r->dir);
        free(r);
        goto oom;
    }
    LOG(E_INFO, L_MATRIZ, "recording%s%s%s to %s", o->mix ? " the mix" : "",
        o->self ? " our input" : "", o->peers ? " each peer" : "", o->dir);
    return r;
oom:
    LOG(E_ERROR, L_MATRIZ, "recording off: out of memory");
    return NULL;
}

void recorder_free(struct recorder **rp)
{
    struct recorder *r = *rp;
    if (!r)
        return;
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    free(r->ring);
    free(r->dir);
    free(r);
    *rp = NULL;
}
