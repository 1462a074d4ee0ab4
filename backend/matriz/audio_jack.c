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
 * Built into its own object library with libjack (CMakeLists.txt): only the
 * matriz program links it.
 */
#include <errno.h>
#include <jack/jack.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "matriz/audio.h"

struct pair {
    char name[AUDIO_NAME_MAX + 1];
    jack_port_t *l, *r;            /* main thread's */
    _Atomic(jack_port_t *) al, ar; /* what the process callback sees */
};

struct audio {
    jack_client_t *client;
    audio_process_fn fn;
    void *arg;
    char *connect_capture;
    jack_port_t *in[2], *mix[2];
    struct pair pairs[AUDIO_MAX_OUTPUTS];
    atomic_uint_fast64_t cycles;
    atomic_int dead;
    uint64_t position;
    int have_t0;
    double t0;
    jack_time_t usecs0;
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

static void on_shutdown(void *arg)
{
    struct audio *a = arg;
    atomic_store(&a->dead, 1);
    /* Thread: JACK's; logging is thread-safe (one write(2) a line). */
    LOG(E_ERROR, L_MATRIZ, "audio jack: the JACK server shut us down");
}

static void jack_close_(struct audio **ap)
{
    struct audio *a = *ap;
    if (!a)
        return;
    if (a->client) {
        jack_deactivate(a->client);
        jack_client_close(a->client);
    }
    free(a->connect_capture);
    free(a);
    *ap = NULL;
}

static int jack_open_(struct audio **out, const struct audio_options *opt, audio_process_fn fn,
                      void *arg)
{
    struct audio *a = calloc(1, sizeof(*a));
    jack_status_t status;
    if (!a)
        return -ENOMEM;
    a->fn = fn;
    a->arg = arg;
    if (opt->connect_capture && *opt->connect_capture)
        a->connect_capture = strdup(opt->connect_capture);
    jack_options_t jo = JackNoStartServer | (opt->server && *opt->server ? JackServerName : 0);
    a->client = jack_client_open(opt->name ? opt->name : "matriz", jo, &status, opt->server);
    if (!a->client) {
        LOG(E_ERROR, L_MATRIZ, "audio jack: cannot connect to the JACK server%s%s (status 0x%x)",
            opt->server ? " " : "", opt->server ? opt->server : "", (unsigned)status);
        jack_close_(&a);
        return -ECONNREFUSED;
    }
    jack_set_process_callback(a->client, process, a);
    jack_on_shutdown(a->client, on_shutdown, a);
    static const char *const in_names[] = {"in_1", "in_2"}, *const mix_names[] = {"mix_L", "mix_R"};
    for (int c = 0; c < 2; c++) {
        a->in[c] =
            jack_port_register(a->client, in_names[c], JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
        a->mix[c] = jack_port_register(a->client, mix_names[c], JACK_DEFAULT_AUDIO_TYPE,
                                       JackPortIsOutput, 0);
        if (!a->in[c] || !a->mix[c]) {
            LOG(E_ERROR, L_MATRIZ, "audio jack: cannot register ports");
            jack_close_(&a);
            return -EIO;
        }
    }
    if (opt->rate && (int)jack_get_sample_rate(a->client) != opt->rate)
        LOG(E_WARN, L_MATRIZ, "audio jack: the server runs at %u Hz, not %d",
            jack_get_sample_rate(a->client), opt->rate);
    *out = a;
    return 0;
}

static int jack_start_(struct audio *a)
{
    if (jack_activate(a->client)) {
        LOG(E_ERROR, L_MATRIZ, "audio jack: cannot activate the client");
        return -EIO;
    }
    if (a->connect_capture) {
        const char **ports = jack_get_ports(a->client, a->connect_capture, JACK_DEFAULT_AUDIO_TYPE,
                                            JackPortIsOutput);
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
    LOG(E_INFO, L_MATRIZ, "audio jack: %s, %u Hz, %u frames a period",
        jack_get_client_name(a->client), jack_get_sample_rate(a->client),
        jack_get_buffer_size(a->client));
    return 0;
}

static int jack_add_output(struct audio *a, const char *peer)
{
    int slot = -1;
    char port[AUDIO_NAME_MAX + 8];
    if (!peer || !*peer || strlen(peer) > AUDIO_NAME_MAX)
        return -EINVAL;
    for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++) {
        if (a->pairs[s].l && strcmp(a->pairs[s].name, peer) == 0)
            return -EEXIST;
        if (!a->pairs[s].l && slot < 0)
            slot = s;
    }
    if (slot < 0)
        return -ENOSPC;
    struct pair *p = &a->pairs[slot];
    snprintf(port, sizeof(port), "%s_L", peer);
    p->l = jack_port_register(a->client, port, JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    snprintf(port, sizeof(port), "%s_R", peer);
    p->r = jack_port_register(a->client, port, JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    if (!p->l || !p->r) {
        if (p->l)
            jack_port_unregister(a->client, p->l);
        if (p->r)
            jack_port_unregister(a->client, p->r);
        p->l = p->r = NULL;
        LOG(E_ERROR, L_MATRIZ, "audio jack: cannot register the ports of %s", peer);
        return -EIO;
    }
    snprintf(p->name, sizeof(p->name), "%s", peer);
    atomic_store(&p->al, p->l);
    atomic_store(&p->ar, p->r);
    return slot;
}

static void jack_remove_output(struct audio *a, int slot)
{
    if (slot < 0 || slot >= AUDIO_MAX_OUTPUTS || !a->pairs[slot].l)
        return;
    struct pair *p = &a->pairs[slot];
    atomic_store(&p->al, NULL);
    atomic_store(&p->ar, NULL);
    /* Two cycles on, no process call can hold the old pointers. A server
     * that stopped calling us (dead, or freewheeling off) is waited for at
     * most 100 ms. */
    uint64_t c0 = atomic_load(&a->cycles);
    for (int i = 0; i < 100 && atomic_load(&a->cycles) < c0 + 2 && !atomic_load(&a->dead); i++)
        usleep(1000);
    jack_port_unregister(a->client, p->l);
    jack_port_unregister(a->client, p->r);
    p->l = p->r = NULL;
    p->name[0] = '\0';
}

static int jack_rate(const struct audio *a)
{
    return (int)jack_get_sample_rate(a->client);
}

static int jack_period(const struct audio *a)
{
    return (int)jack_get_buffer_size(a->client);
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
