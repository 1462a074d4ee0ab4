/*
 * The JACK audio backend (see audio.h): a JACK client with capture ports
 * in_1/in_2, a pair <peer>_L/<peer>_R per remote peer and mix_L/mix_R.
 *
 * The process callback runs on JACK's real-time thread: it takes no lock and
 * allocates nothing. Output ports are published to it through atomic
 * pointers; removing a pair first hides it, waits until a process cycle has
 * passed (so no cycle can still hold the old pointers), and only then
 * unregisters the ports.
 *
 * Time: `now` of a block is the monotonic time of the first cycle plus
 * JACK's own filtered cycle time since then (jack_get_cycle_times), so it is
 * smooth and follows the sound card's clock, as the jitter buffer wants.
 *
 * When the server goes away (jack_on_info_shutdown), the peer plays on
 * without sound: a supervisor thread of this backend closes the dead client
 * and opens a new one with backoff (0.5 s doubling to 5 s) until a server
 * answers again, then registers the same ports (those of the remote peers
 * there are by then included), connects the capture ports again and every
 * connection our ports had (it notes them once a second while the server
 * runs). Main-thread calls (add_output, remove_output) and the supervisor
 * share a mutex; the process callback takes none.
 *
 * Built into its own object library with libjack (CMakeLists.txt): only the
 * matriz program links it.
 */
#include <errno.h>
#include <jack/jack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "matriz/audio.h"

#define BACKOFF_FIRST      0.5
#define BACKOFF_MAX        5.0
#define NOTE_CONNECTIONS_S 1.0
#define MAX_CONNECTIONS    256

struct pair {
    char name[AUDIO_NAME_MAX + 1];
    int used;
    jack_port_t *l, *r;            /* under lock; NULL while the server is away */
    _Atomic(jack_port_t *) al, ar; /* what the process callback sees */
};

/* One connection of one of our ports: ours is the short name. */
struct conn {
    char *ours, *other;
};

struct audio {
    jack_client_t *client;
    audio_process_fn fn;
    void *arg;
    char *name, *server, *connect_capture;
    jack_port_t *in[2], *mix[2];
    struct pair pairs[AUDIO_MAX_OUTPUTS];
    atomic_uint_fast64_t cycles;
    atomic_int dead;
    uint64_t position;
    int have_t0;
    double t0;
    jack_time_t usecs0;
    int rate, period; /* of the last server */

    pthread_mutex_t lock; /* client, ports, pairs, conns: main and supervisor */
    pthread_cond_t wake;
    int stop, supervising;
    pthread_t supervisor;
    struct conn conns[MAX_CONNECTIONS];
    size_t nconns;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Thread: JACK real-time. */
static int process(jack_nframes_t nframes, void *arg)
{
    struct audio *a = arg;
    jack_nframes_t current_frames;
    jack_time_t current_usecs, next_usecs;
    float period_usecs;
    struct audio_block b = {.frames = nframes, .position = a->position};

    if (jack_get_cycle_times(a->client, &current_frames, &current_usecs, &next_usecs,
                             &period_usecs) == 0) {
        if (!a->have_t0) {
            a->have_t0 = 1;
            a->t0 = mono();
            a->usecs0 = current_usecs;
        }
        b.now = a->t0 + (double)(current_usecs - a->usecs0) / 1e6;
    } else {
        b.now = mono();
    }
    for (int c = 0; c < 2; c++)
        b.in[c] = jack_port_get_buffer(a->in[c], nframes);
    for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++) {
        jack_port_t *l = atomic_load(&a->pairs[s].al), *r = atomic_load(&a->pairs[s].ar);
        if (!l || !r)
            continue;
        b.out[s][0] = jack_port_get_buffer(l, nframes);
        b.out[s][1] = jack_port_get_buffer(r, nframes);
        memset(b.out[s][0], 0, nframes * sizeof(float));
        memset(b.out[s][1], 0, nframes * sizeof(float));
    }
    a->fn(&b, a->arg);
    audio_mix(&b, jack_port_get_buffer(a->mix[0], nframes),
              jack_port_get_buffer(a->mix[1], nframes));
    a->position += nframes;
    atomic_fetch_add(&a->cycles, 1);
    return 0;
}

static void on_shutdown(jack_status_t code, const char *reason, void *arg)
{
    struct audio *a = arg;
    atomic_store(&a->dead, 1);
    /* Thread: JACK's; logging is thread-safe (one write(2) a line). */
    LOG(E_ERROR, L_MATRIZ,
        "audio jack: the JACK server shut us down (%s); playing on without sound until it is "
        "back",
        reason && *reason ? reason : "no reason given");
}

static void conns_clear(struct audio *a)
{
    for (size_t i = 0; i < a->nconns; i++) {
        free(a->conns[i].ours);
        free(a->conns[i].other);
    }
    a->nconns = 0;
}

/* Notes every connection of our ports (under lock, the server alive). */
static void conns_note(struct audio *a)
{
    const char **mine = jack_get_ports(a->client, NULL, NULL, 0);
    size_t n = 0;
    struct conn fresh[MAX_CONNECTIONS];
    for (int i = 0; mine && mine[i]; i++) {
        jack_port_t *port = jack_port_by_name(a->client, mine[i]);
        if (!port || !jack_port_is_mine(a->client, port))
            continue;
        const char **to = jack_port_get_connections(port);
        for (int k = 0; to && to[k] && n < MAX_CONNECTIONS; k++) {
            fresh[n].ours = strdup(jack_port_short_name(port));
            fresh[n].other = strdup(to[k]);
            if (fresh[n].ours && fresh[n].other) {
                n++;
            } else {
                free(fresh[n].ours);
                free(fresh[n].other);
            }
        }
        jack_free(to);
    }
    jack_free(mine);
    if (atomic_load(&a->dead)) { /* (what a dying server says is not to be kept) */
        for (size_t i = 0; i < n; i++) {
            free(fresh[i].ours);
            free(fresh[i].other);
        }
        return;
    }
    conns_clear(a);
    memcpy(a->conns, fresh, n * sizeof(*fresh));
    a->nconns = n;
}

static void connect_capture(struct audio *a)
{
    if (!a->connect_capture)
        return;
    const char **ports =
        jack_get_ports(a->client, a->connect_capture, JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput);
    for (int c = 0; ports && ports[c] && c < 2; c++) {
        int e = jack_connect(a->client, ports[c], jack_port_name(a->in[c]));
        if (e && e != EEXIST)
            LOG(E_WARN, L_MATRIZ, "audio jack: cannot connect %s to %s", ports[c],
                jack_port_name(a->in[c]));
    }
    if (!ports || !ports[0])
        LOG(E_WARN, L_MATRIZ, "audio jack: no output port matches %s", a->connect_capture);
    jack_free(ports);
}

/* Connects our ports as they were before the server went (best effort: a
 * port of another client that is not back yet stays unconnected). */
static void conns_restore(struct audio *a)
{
    char full[AUDIO_NAME_MAX * 2 + 16];
    int done = 0;
    for (size_t i = 0; i < a->nconns; i++) {
        snprintf(full, sizeof(full), "%s:%s", jack_get_client_name(a->client), a->conns[i].ours);
        jack_port_t *port = jack_port_by_name(a->client, full);
        if (!port)
            continue;
        int in = jack_port_flags(port) & JackPortIsInput;
        int e = in ? jack_connect(a->client, a->conns[i].other, full)
                   : jack_connect(a->client, full, a->conns[i].other);
        if (!e || e == EEXIST)
            done++;
    }
    if (a->nconns)
        LOG(E_INFO, L_MATRIZ, "audio jack: %d of %zu connections made again", done, a->nconns);
}

static int register_pair(struct audio *a, struct pair *p)
{
    char port[AUDIO_NAME_MAX + 8];
    snprintf(port, sizeof(port), "%s_L", p->name);
    p->l = jack_port_register(a->client, port, JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    snprintf(port, sizeof(port), "%s_R", p->name);
    p->r = jack_port_register(a->client, port, JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    if (!p->l || !p->r) {
        if (p->l)
            jack_port_unregister(a->client, p->l);
        if (p->r)
            jack_port_unregister(a->client, p->r);
        p->l = p->r = NULL;
        LOG(E_ERROR, L_MATRIZ, "audio jack: cannot register the ports of %s", p->name);
        return -EIO;
    }
    atomic_store(&p->al, p->l);
    atomic_store(&p->ar, p->r);
    return 0;
}

/* A client with our fixed ports and those of the pairs in use, not yet
 * active (under lock, or before the supervisor runs). */
static int client_open(struct audio *a, int quiet)
{
    jack_status_t status;
    jack_options_t jo = JackNoStartServer | (a->server ? JackServerName : 0);
    a->client = jack_client_open(a->name, jo, &status, a->server);
    if (!a->client) {
        if (!quiet)
            LOG(E_ERROR, L_MATRIZ,
                "audio jack: cannot connect to the JACK server%s%s (status 0x%x)",
                a->server ? " " : "", a->server ? a->server : "", (unsigned)status);
        return -ECONNREFUSED;
    }
    a->have_t0 = 0;
    jack_set_process_callback(a->client, process, a);
    jack_on_info_shutdown(a->client, on_shutdown, a);
    static const char *const in_names[] = {"in_1", "in_2"}, *const mix_names[] = {"mix_L", "mix_R"};
    for (int c = 0; c < 2; c++) {
        a->in[c] =
            jack_port_register(a->client, in_names[c], JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
        a->mix[c] = jack_port_register(a->client, mix_names[c], JACK_DEFAULT_AUDIO_TYPE,
                                       JackPortIsOutput, 0);
        if (!a->in[c] || !a->mix[c]) {
            LOG(E_ERROR, L_MATRIZ, "audio jack: cannot register ports");
            jack_client_close(a->client);
            a->client = NULL;
            return -EIO;
        }
    }
    for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++)
        if (a->pairs[s].used)
            register_pair(a, &a->pairs[s]);
    a->rate = (int)jack_get_sample_rate(a->client);
    a->period = (int)jack_get_buffer_size(a->client);
    return 0;
}

/* The server is gone: forget its client and ports (under lock). */
static void client_drop(struct audio *a)
{
    for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++) {
        atomic_store(&a->pairs[s].al, NULL);
        atomic_store(&a->pairs[s].ar, NULL);
        a->pairs[s].l = a->pairs[s].r = NULL;
    }
    if (a->client)
        jack_client_close(a->client);
    a->client = NULL;
}

static void wait_locked(struct audio *a, double s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)((s - (long)s) * 1e9);
    ts.tv_sec += (time_t)s + ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&a->wake, &a->lock, &ts);
}

/* Thread: the supervisor. */
static void *supervise(void *arg)
{
    struct audio *a = arg;
    double backoff = BACKOFF_FIRST, last_note = 0;
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        if (!atomic_load(&a->dead)) {
            double now = mono();
            if (a->client && now - last_note >= NOTE_CONNECTIONS_S) {
                conns_note(a);
                last_note = now;
            }
            wait_locked(a, 0.1);
            continue;
        }
        if (a->client) {
            client_drop(a);
            backoff = BACKOFF_FIRST;
        }
        wait_locked(a, backoff);
        if (a->stop)
            break;
        if (client_open(a, 1) < 0) {
            backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
            continue;
        }
        atomic_store(&a->dead, 0);
        if (jack_activate(a->client)) {
            LOG(E_ERROR, L_MATRIZ, "audio jack: cannot activate the client");
            atomic_store(&a->dead, 1);
            continue;
        }
        connect_capture(a);
        conns_restore(a);
        LOG(E_INFO, L_MATRIZ, "audio jack: the JACK server is back: %s, %u Hz, %u frames a period",
            jack_get_client_name(a->client), jack_get_sample_rate(a->client),
            jack_get_buffer_size(a->client));
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

static void jack_close_(struct audio **ap)
{
    struct audio *a = *ap;
    if (!a)
        return;
    if (a->supervising) {
        pthread_mutex_lock(&a->lock);
        a->stop = 1;
        pthread_cond_signal(&a->wake);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->supervisor, NULL);
    }
    if (a->client) {
        if (!atomic_load(&a->dead))
            jack_deactivate(a->client);
        jack_client_close(a->client);
    }
    conns_clear(a);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->wake);
    free(a->name);
    free(a->server);
    free(a->connect_capture);
    free(a);
    *ap = NULL;
}

static int jack_open_(struct audio **out, const struct audio_options *opt, audio_process_fn fn,
                      void *arg)
{
    struct audio *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    a->fn = fn;
    a->arg = arg;
    a->name = strdup(opt->name ? opt->name : "matriz");
    if (opt->server && *opt->server)
        a->server = strdup(opt->server);
    if (opt->connect_capture && *opt->connect_capture)
        a->connect_capture = strdup(opt->connect_capture);
    if (!a->name || (opt->server && *opt->server && !a->server)) {
        jack_close_(&a);
        return -ENOMEM;
    }
    int r = client_open(a, 0);
    if (r < 0) {
        jack_close_(&a);
        return r;
    }
    if (opt->rate && a->rate != opt->rate)
        LOG(E_WARN, L_MATRIZ, "audio jack: the server runs at %d Hz, not %d", a->rate, opt->rate);
    *out = a;
    return 0;
}

static int jack_start_(struct audio *a)
{
    if (jack_activate(a->client)) {
        LOG(E_ERROR, L_MATRIZ, "audio jack: cannot activate the client");
        return -EIO;
    }
    connect_capture(a);
    if (pthread_create(&a->supervisor, NULL, supervise, a) == 0)
        a->supervising = 1;
    else
        LOG(E_WARN, L_MATRIZ,
            "audio jack: no supervisor thread: a JACK restart will not be "
            "followed");
    LOG(E_INFO, L_MATRIZ, "audio jack: %s, %u Hz, %u frames a period",
        jack_get_client_name(a->client), jack_get_sample_rate(a->client),
        jack_get_buffer_size(a->client));
    return 0;
}

static int jack_add_output(struct audio *a, const char *peer)
{
    int slot = -1;
    if (!peer || !*peer || strlen(peer) > AUDIO_NAME_MAX)
        return -EINVAL;
    pthread_mutex_lock(&a->lock);
    for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++) {
        if (a->pairs[s].used && strcmp(a->pairs[s].name, peer) == 0) {
            pthread_mutex_unlock(&a->lock);
            return -EEXIST;
        }
        if (!a->pairs[s].used && slot < 0)
            slot = s;
    }
    if (slot < 0) {
        pthread_mutex_unlock(&a->lock);
        return -ENOSPC;
    }
    struct pair *p = &a->pairs[slot];
    snprintf(p->name, sizeof(p->name), "%s", peer);
    /* The server away: the ports are made when it is back. */
    if (a->client && !atomic_load(&a->dead) && register_pair(a, p) < 0) {
        p->name[0] = '\0';
        pthread_mutex_unlock(&a->lock);
        return -EIO;
    }
    p->used = 1;
    pthread_mutex_unlock(&a->lock);
    return slot;
}

static void jack_remove_output(struct audio *a, int slot)
{
    if (slot < 0 || slot >= AUDIO_MAX_OUTPUTS)
        return;
    pthread_mutex_lock(&a->lock);
    struct pair *p = &a->pairs[slot];
    if (!p->used) {
        pthread_mutex_unlock(&a->lock);
        return;
    }
    atomic_store(&p->al, NULL);
    atomic_store(&p->ar, NULL);
    /* Two cycles on, no process call can hold the old pointers. A server
     * that stopped calling us (dead, or freewheeling off) is waited for at
     * most 100 ms. */
    uint64_t c0 = atomic_load(&a->cycles);
    for (int i = 0; i < 100 && p->l && atomic_load(&a->cycles) < c0 + 2 && !atomic_load(&a->dead);
         i++)
        usleep(1000);
    if (a->client && p->l && !atomic_load(&a->dead)) {
        jack_port_unregister(a->client, p->l);
        jack_port_unregister(a->client, p->r);
    }
    p->l = p->r = NULL;
    p->used = 0;
    p->name[0] = '\0';
    pthread_mutex_unlock(&a->lock);
}

static int jack_rate(const struct audio *a)
{
    return a->rate;
}

static int jack_period(const struct audio *a)
{
    return a->period;
}

const struct audio_ops audio_jack_ops = {
    .name = "jack",
    .open = jack_open_,
    .start = jack_start_,
    .add_output = jack_add_output,
    .remove_output = jack_remove_output,
    .rate = jack_rate,
    .period = jack_period,
    .close = jack_close_,
};
