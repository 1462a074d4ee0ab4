/*
 * The Matriz peer's control plane (see peer.h).
 *
 *   start ─▶ audio backend up ─▶ join (SSE to imesd) ───── drop ─▶ backoff ─┐
 *                            └─▶ delete roster checkpoint ─▶ _changes feed  ◀┘
 *                                      │ peer:<other> online / offline
 *                                      ▼
 *                                link open / close (audio output pair + media)
 *
 * The audio thread reads the links through a table of atomic pointers, one
 * per output slot. A closing link is unpublished first; its media is freed
 * only after the audio thread has finished two more periods (a timer polls
 * the period counter), so the audio thread never waits on the loop and never
 * sees freed media.
 */
#include "matriz/peer.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/hmap.h"
#include "core/log.h"
#include "couch/changes.h"
#include "couch/couch.h"

#define BACKOFF_FIRST 0.5
#define BACKOFF_MAX   5.0
/* imesd sends a keep-alive every 5 s: three missed is a dead join. */
#define JOIN_IDLE_S 16
#define STATS_S     2.0
/* A closing link's media is freed once the audio thread did two periods, or
 * after this long if it does not run (stopped, stalled). */
#define RELEASE_POLL_S 0.005
#define RELEASE_MAX_S  0.5
#define STOP_GRACE_S   2.0

struct link {
    struct matriz_peer *p;
    char *name;
    char *session;
    int slot; /* audio output, or -1 */
    void *media;
};

struct release {
    struct matriz_peer *p;
    struct release *next;
    void *media;
    uint64_t cycles0;
    double since;
};

struct matriz_peer {
    struct ev_loop *loop;
    const struct peer_config *cfg;
    struct matriz_link_ops ops;
    void *ops_arg;

    struct couch *imesd, *roster;
    struct changes *changes;
    char checkpoint[160];
    struct couch_stream *join;
    int joined, join_open;
    double join_backoff;
    ev_timer join_timer;
    int stopping;
    void (*stop_done)(void *);
    void *stop_arg;
    ev_timer stop_timer;

    const struct audio_ops *aops;
    struct audio *audio;
    _Atomic(void *) rt_media[AUDIO_MAX_OUTPUTS];
    atomic_uint_fast64_t cycles;

    struct hmap *links; /* name -> struct link */
    struct release *releasing;
    ev_timer release_timer;
    ev_timer stats_timer;
    int stats_busy;
};

/* ---- audio thread ---- */

/* Thread: audio. */
static void process(struct audio_block *b, void *arg)
{
    struct matriz_peer *p = arg;
    if (p->ops.capture)
        p->ops.capture(p->ops_arg, b);
    uint32_t slots = 0;
    for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++) {
        void *m = atomic_load(&p->rt_media[s]);
        if (m && b->out[s][0] && p->ops.process) {
            p->ops.process(m, b, b->out[s][0], b->out[s][1]);
            slots |= 1u << s;
        }
    }
    if (p->ops.record)
        p->ops.record(p->ops_arg, b, slots, atomic_load(&p->cycles));
    atomic_fetch_add(&p->cycles, 1);
}

/* ---- links ---- */

static void release_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct matriz_peer *p = w->data;
    uint64_t now_cycles = atomic_load(&p->cycles);
    double now = ev_now(loop);
    for (struct release **rp = &p->releasing; *rp;) {
        struct release *r = *rp;
        if (now_cycles >= r->cycles0 + 2 || now - r->since > RELEASE_MAX_S) {
            *rp = r->next;
            if (p->ops.close)
                p->ops.close(r->media);
            free(r);
        } else {
            rp = &r->next;
        }
    }
    if (!p->releasing)
        ev_timer_stop(loop, w);
}

static void link_close(struct link *l, const char *why)
{
    struct matriz_peer *p = l->p;
    LOG(E_INFO, L_MATRIZ, "link to %s closed (%s)", l->name, why);
    if (l->slot >= 0) {
        atomic_store(&p->rt_media[l->slot], NULL);
        if (p->ops.record_slot)
            p->ops.record_slot(p->ops_arg, l->slot, NULL, atomic_load(&p->cycles));
        p->aops->remove_output(p->audio, l->slot);
    }
    if (l->media) {
        struct release *r = calloc(1, sizeof(*r));
        if (r) {
            r->p = p;
            r->media = l->media;
            r->cycles0 = atomic_load(&p->cycles);
            r->since = ev_now(p->loop);
            r->next = p->releasing;
            p->releasing = r;
            if (!ev_is_active(&p->release_timer))
                ev_timer_start(p->loop, &p->release_timer);
        } /* out of memory: leaked rather than freed under the audio thread */
    }
    free(l->name);
    free(l->session);
    free(l);
}

static void link_open(struct matriz_peer *p, const char *name, const char *session, const char *url,
                      const char *codec)
{
    struct link *l = calloc(1, sizeof(*l));
    if (!l || !(l->name = strdup(name)) || !(l->session = strdup(session))) {
        if (l)
            free(l->name);
        free(l);
        LOG(E_ERROR, L_MATRIZ, "link to %s: out of memory", name);
        return;
    }
    l->p = p;
    l->slot = p->aops->add_output(p->audio, name);
    if (l->slot < 0)
        LOG(E_WARN, L_MATRIZ, "link to %s: no audio output (%s)", name, strerror(-l->slot));
    if (p->ops.open)
        l->media = p->ops.open(p->ops_arg, name, url, codec);
    if (l->slot >= 0 && l->media && p->ops.record_slot)
        p->ops.record_slot(p->ops_arg, l->slot, name, atomic_load(&p->cycles));
    if (l->slot >= 0)
        atomic_store(&p->rt_media[l->slot], l->media);
    if (hmap_set(p->links, name, l, NULL) < 0) {
        link_close(l, "out of memory");
        return;
    }
    LOG(E_INFO, L_MATRIZ, "link to %s opened: %s (%s)", name, url, codec);
}

static int on_roster(const char *id, const char *rev, int deleted, json_t *doc, void *arg)
{
    struct matriz_peer *p = arg;
    if (strncmp(id, "peer:", 5) != 0)
        return 1;
    const char *name = id + 5;
    if (strcmp(name, p->cfg->peer.name) == 0)
        return 1;
    const char *session = json_string_value(json_object_get(doc, "session"));
    const char *url = json_string_value(json_object_get(doc, "rtsp_url"));
    const char *codec = json_string_value(json_object_get(doc, "codec"));
    int online = !deleted && json_is_true(json_object_get(doc, "online")) && session && url;
    struct link *l = hmap_get(p->links, name);
    if (l && (!online || strcmp(l->session, session) != 0)) {
        hmap_remove(p->links, name);
        link_close(l, online ? "it rejoined" : "it left");
        l = NULL;
    }
    if (online && !l && !p->stopping)
        link_open(p, name, session, url, codec ? codec : "opus");
    return 0;
}

/* ---- the join ---- */

static void join_connect(struct matriz_peer *p);

static void join_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    join_connect(w->data);
}

static void join_line(const char *line, size_t len, void *arg)
{
    struct matriz_peer *p = arg;
    if (!line) {
        p->join_open = 1;
        return;
    }
    if (len > 6 && strncmp(line, "data: ", 6) == 0 && !p->joined && p->join_open) {
        json_t *j = json_loadb(line + 6, len - 6, 0, NULL);
        const char *url = json_string_value(json_object_get(j, "rtsp_url"));
        int reachable = json_is_true(json_object_get(j, "reachable"));
        p->joined = 1;
        p->join_backoff = BACKOFF_FIRST;
        LOG(reachable ? E_INFO : E_WARN, L_MATRIZ, "joined the roster as %s: %s%s",
            p->cfg->peer.name, url ? url : "?",
            reachable ? "" : " (imesd cannot reach our RTSP port: others will not hear us)");
        json_decref(j);
    }
}

static void join_end(const struct couch_response *resp, void *arg)
{
    struct matriz_peer *p = arg;
    p->join = NULL;
    int was = p->joined;
    p->joined = p->join_open = 0;
    if (p->stopping)
        return;
    if (resp->status == 409)
        LOG(E_WARN, L_MATRIZ, "join refused: a peer named %s is joined already", p->cfg->peer.name);
    else if (resp->status == 401 || resp->status == 403)
        LOG(E_ERROR, L_MATRIZ, "join refused (%ld): check peer.name and peer.key", resp->status);
    else
        LOG(was ? E_WARN : E_INFO, L_MATRIZ, "%s imesd: %s",
            was ? "lost the join to" : "cannot join", resp->errmsg ? resp->errmsg : "closed");
    ev_timer_set(&p->join_timer, p->join_backoff, 0.);
    ev_timer_start(p->loop, &p->join_timer);
    p->join_backoff = p->join_backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : p->join_backoff * 2;
}

static void join_connect(struct matriz_peer *p)
{
    const struct peer_config *c = p->cfg;
    struct buf path;
    buf_init(&path, 4096);
    buf_printf(&path, "/matriz/join?rtsp_port=%d&codec=%s",
               c->peer.port ? c->peer.port : c->net.port, c->send.codec);
    if (*c->peer.host) {
        char *h = couch_escape(c->peer.host);
        buf_printf(&path, "&host=%s", h ? h : "");
        free(h);
    }
    p->join = couch_stream_get(p->imesd, path.data, JOIN_IDLE_S, join_line, join_end, p);
    buf_free(&path);
    if (!p->join) {
        ev_timer_set(&p->join_timer, BACKOFF_MAX, 0.);
        ev_timer_start(p->loop, &p->join_timer);
    }
}

/* ---- stats ---- */

static void stats_done(const struct couch_response *resp, void *arg)
{
    struct matriz_peer *p = arg;
    p->stats_busy = 0;
    if (resp->status != 204 && resp->status != 409)
        LOG(E_DEBUG, L_MATRIZ, "stats not taken: %s", resp->errmsg ? resp->errmsg : "?");
}

static void stats_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct matriz_peer *p = w->data;
    if (!p->joined || p->stats_busy || !p->ops.stats)
        return;
    json_t *links = json_object();
    const char *name;
    void *v;
    for (size_t i = 0; hmap_next(p->links, &i, &name, &v);) {
        struct link *l = v;
        json_t *s = l->media ? p->ops.stats(l->media) : NULL;
        if (s)
            json_object_set_new(links, name, s);
    }
    json_t *body = json_pack("{s:o}", "links", links);
    p->stats_busy = 1;
    if (!body || couch_request(p->imesd, "POST", "/matriz/stats", body, NULL, COUCH_NO_RETRY,
                               stats_done, p) < 0)
        p->stats_busy = 0;
    json_decref(body);
}

/* ---- life cycle ---- */

static struct couch *client_for(struct ev_loop *loop, const char *url, const struct peer_config *c)
{
    /* http://host... → http://name:key@host... (the name escaped: it may hold '@') */
    const char *rest = strstr(url, "://");
    char *name = couch_escape(c->peer.name), *key = couch_escape(c->peer.key), *full = NULL;
    struct couch *cl = NULL;
    if (rest && name && key &&
        asprintf(&full, "%.*s%s:%s@%s", (int)(rest + 3 - url), url, name, key, rest + 3) >= 0)
        cl = couch_new(loop, full);
    if (full)
        explicit_bzero(full, strlen(full));
    free(full);
    free(name);
    free(key);
    return cl;
}

struct matriz_peer *matriz_peer_new(struct ev_loop *loop, const struct peer_config *cfg,
                                    const struct matriz_link_ops *ops, void *ops_arg)
{
    struct matriz_peer *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->loop = loop;
    p->cfg = cfg;
    if (ops)
        p->ops = *ops;
    p->ops_arg = ops_arg;
    p->join_backoff = BACKOFF_FIRST;
    ev_timer_init(&p->join_timer, join_timer_cb, 0., 0.);
    p->join_timer.data = p;
    ev_timer_init(&p->release_timer, release_timer_cb, RELEASE_POLL_S, RELEASE_POLL_S);
    p->release_timer.data = p;
    ev_timer_init(&p->stats_timer, stats_timer_cb, STATS_S, STATS_S);
    p->stats_timer.data = p;
    snprintf(p->checkpoint, sizeof(p->checkpoint), "_local/matriz-%s", cfg->peer.name);
    if (!(p->aops = audio_find(cfg->audio.backend))) {
        LOG(E_ERROR, L_MATRIZ, "audio backend %s is not built into this program",
            cfg->audio.backend);
        goto fail;
    }
    if (!(p->links = hmap_new()) || !(p->imesd = client_for(loop, cfg->peer.imesd, cfg)) ||
        !(p->roster = client_for(loop, cfg->roster.couchdb, cfg))) {
        LOG(E_ERROR, L_MATRIZ, "cannot set up the HTTP clients");
        goto fail;
    }
    struct changes_options copt = {
        .db = cfg->roster.database,
        .checkpoint_id = p->checkpoint,
        .filter = "imes/peers",
        /* pouchdb-server sends nothing before the first heartbeat: 1 s keeps
         * both the start and the detection of a dead feed (3 s) short. */
        .heartbeat_ms = 1000,
    };
    if (!(p->changes = changes_new(p->roster, &copt, on_roster, p))) {
        LOG(E_ERROR, L_MATRIZ, "cannot set up the roster feed");
        goto fail;
    }
    return p;
fail:
    matriz_peer_free(&p);
    return NULL;
}

/* The feed starts from the beginning every run: links follow what is
 * online now, not what changed since last time. */
static void checkpoint_deleted(const struct couch_response *resp, void *arg)
{
    struct matriz_peer *p = arg;
    if (!p->stopping)
        changes_start(p->changes);
}

static void checkpoint_read(const struct couch_response *resp, void *arg)
{
    struct matriz_peer *p = arg;
    const char *rev = json_string_value(json_object_get(resp->body, "_rev"));
    if (p->stopping)
        return;
    if (resp->status != 200 || !rev ||
        couch_delete(p->roster, p->cfg->roster.database, p->checkpoint, rev, checkpoint_deleted,
                     p) < 0)
        changes_start(p->changes);
}

int matriz_peer_start(struct matriz_peer *p)
{
    const struct peer_config *c = p->cfg;
    struct audio_options ao = {
        .name = c->peer.name,
        .rate = c->audio.rate,
        .period = c->audio.period,
        .input = c->audio.input,
        .tone_hz = c->audio.tone_hz,
        .tone_dbfs = c->audio.tone_dbfs,
        .output_dir = c->audio.output_dir,
        .connect_capture = c->audio.connect_capture,
        .server = *c->audio.jack_server ? c->audio.jack_server : NULL,
    };
    int r = p->aops->open(&p->audio, &ao, process, p);
    if (r < 0)
        return r;
    if ((r = p->aops->start(p->audio)) < 0) {
        p->aops->close(&p->audio);
        return r;
    }
    join_connect(p);
    if (couch_get(p->roster, c->roster.database, p->checkpoint, checkpoint_read, p) < 0)
        changes_start(p->changes);
    ev_timer_start(p->loop, &p->stats_timer);
    return 0;
}

static void finish_stop(struct matriz_peer *p)
{
    ev_timer_stop(p->loop, &p->stop_timer);
    if (p->stop_done) {
        void (*done)(void *) = p->stop_done;
        p->stop_done = NULL;
        done(p->stop_arg);
    }
}

static void stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    finish_stop(w->data);
}

static void feed_stopped(void *arg)
{
    finish_stop(arg);
}

void matriz_peer_stop(struct matriz_peer *p, void (*done)(void *arg), void *arg)
{
    p->stopping = 1;
    p->stop_done = done;
    p->stop_arg = arg;
    ev_timer_stop(p->loop, &p->join_timer);
    ev_timer_stop(p->loop, &p->stats_timer);
    if (p->join)
        couch_stream_cancel(p->join);
    const char *name;
    void *v;
    for (size_t i = 0; hmap_next(p->links, &i, &name, &v);) {
        hmap_remove(p->links, name);
        link_close(v, "stopping");
    }
    ev_timer_init(&p->stop_timer, stop_timer_cb, STOP_GRACE_S, 0.);
    p->stop_timer.data = p;
    ev_timer_start(p->loop, &p->stop_timer);
    if (changes_stop(p->changes, feed_stopped, p) < 0)
        finish_stop(p);
}

void matriz_peer_free(struct matriz_peer **pp)
{
    struct matriz_peer *p = *pp;
    if (!p)
        return;
    if (p->links) {
        const char *name;
        void *v;
        for (size_t i = 0; hmap_next(p->links, &i, &name, &v);) {
            hmap_remove(p->links, name);
            link_close(v, "stopping");
        }
    }
    /* The audio thread stops first: then media can go at once. */
    if (p->audio)
        p->aops->close(&p->audio);
    while (p->releasing) {
        struct release *r = p->releasing;
        p->releasing = r->next;
        if (p->ops.close)
            p->ops.close(r->media);
        free(r);
    }
    ev_timer_stop(p->loop, &p->release_timer);
    ev_timer_stop(p->loop, &p->join_timer);
    ev_timer_stop(p->loop, &p->stats_timer);
    ev_timer_stop(p->loop, &p->stop_timer);
    changes_free(&p->changes);
    couch_free(&p->imesd);
    couch_free(&p->roster);
    hmap_free(&p->links, NULL);
    free(p);
    *pp = NULL;
}

int matriz_peer_joined(const struct matriz_peer *p)
{
    return p->joined;
}

size_t matriz_peer_links(const struct matriz_peer *p)
{
    return hmap_count(p->links);
}

int matriz_peer_rate(const struct matriz_peer *p)
{
    return p->audio ? p->aops->rate(p->audio) : p->cfg->audio.rate;
}
