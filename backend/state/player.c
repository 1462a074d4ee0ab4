/*
 * The player: see player.h.
 *
 * Everything here runs on the loop. Documents are kept as the parsed structs
 * of state/docs.h in maps by name; every change marks the state dirty and
 * one evaluation (an ev_idle, so a burst of feed rows costs one) runs the
 * rules and brings channels and devices in line:
 *
 *   documents, presence, holds, listeners ─▶ rules_evaluate ─▶ per channel:
 *       active (someone listens to a device on it) → a pipeline and a clock
 *       plays → pipeline_set_playing(1), else fade to silence
 *   per device: muted → its listeners get silence frames
 *
 * A channel's clock: the audio worker produces 20 ms at a time, a little
 * ahead of real time (LEAD); the frames wait in a queue and are released into
 * the channel's rings when due on the monotonic clock, so every listener of
 * every room hears the same frame at the same time, encoded once.
 */
#include "player.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/buf.h"
#include "core/hmap.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/worker.h"
#include "couch/couch.h"
#include "media/encoder.h"
#include "media/pipeline.h"
#include "state/docs.h"
#include "state/rules.h"
#include "stream/ring.h"

#define NCODECS         2   /* 0 mp3, 1 opus: the order of codec_ops */
#define PRODUCE_SAMPLES 960 /* 20 ms per produce call: one Opus frame */
/* A call that catches up after the loop was busy produces at most this many
 * PRODUCE_SAMPLES steps (200 ms: a few ms of work, so commands still come
 * between calls soon). One step per loop iteration would fall further
 * behind whenever an iteration takes longer than 20 ms, e.g. while
 * thousands of listeners are written to on a loaded machine. */
#define CATCH_UP_STEPS 10
/* How far production runs ahead of real time. Small, because a command
 * (pause, skip, a mute) can only change frames not yet produced: this is
 * most of the reaction time. Large enough to ride out a busy worker. */
#define LEAD 0.03
/* After a change, listeners that batch their wakes are woken at every
 * release for this long beyond LEAD: the changed frames leave when due. */
#define URGENT_S 0.3
/* Late by more than this (a stalled worker): restart the clock from now
 * rather than rush out a burst of stale audio. */
#define RESYNC_LATE 0.5
/* Ring: 10 s of frames, for bursts and readers that lag a little. */
#define RING_FRAMES 512
#define RING_BYTES  (4u << 20)
/* A channel nobody listens to keeps its pipeline this long, so a player
 * that reconnects at once does not restart the track. */
#define IDLE_STOP 10.0
/* A channel that starts from nothing (no track to resume) waits until its
 * playlist has been still this long: the rows of one write (an album
 * enqueued at once) come through the feed within milliseconds, but in any
 * order (pouchdb-server shuffles a _bulk_docs), and starting at the first
 * row to arrive would begin the album at a random track. */
#define PLAYLIST_SETTLE 0.3
/* Status documents: on change, but at most this often per document. */
#define STATUS_INTERVAL 2.0
/* Position saved at least this often while playing. */
#define POSITION_INTERVAL 5.0
#define LOAD_PAGE         2000
/* File documents kept for tracks that played or come next, so a track
 * change while CouchDB is away still finds its file (the path, tags and
 * ReplayGain are all in it): used only when CouchDB cannot be asked. The
 * last FILE_CACHE fetched; PREFETCH entries after the one that starts are
 * fetched ahead. */
#define FILE_CACHE 64
#define PREFETCH   4

static const char *const codec_names[NCODECS] = {"mp3", "opus"};

static int codec_index(const char *name)
{
    for (int i = 0; i < NCODECS; i++)
        if (strcmp(codec_names[i], name) == 0)
            return i;
    return -1;
}

static const struct encoder_ops *codec_ops(int i)
{
    return i == 0 ? &encoder_mp3 : &encoder_opus;
}

/* ---- the model ---- */

struct p_entry {
    struct docs_entry doc;
};

struct pending_frame {
    int codec;
    uint8_t *data;
    size_t len;
    int samples;
    int64_t pts;
    int silence;
};

struct track_map {
    uint64_t id;
    char entry[DOCS_ENTRY_ID_MAX + 1];
    char file[DOCS_FILE_ID_MAX + 1];
    char title[256];
    double duration;
    double start; /* seconds into the file it begins at */
};

#define TRACKS_KEPT 4

struct p_channel {
    struct player *pl;
    char name[DOCS_NAME_MAX + 1];
    struct docs_channel doc;
    int has_doc;
    char playlist[DOCS_PLAYLIST_MAX + 1];
    struct p_entry **order; /* the playlist sorted by (key, id) */
    size_t norder;
    int order_dirty;
    double playlist_changed; /* monotonic time of the last entry change */

    /* what plays */
    char current[DOCS_ENTRY_ID_MAX + 1]; /* entry playing or to resume; "" none */
    char current_key[FRACINDEX_MAX + 1];
    double position; /* seconds into current */
    char title[256];
    char file[DOCS_FILE_ID_MAX + 1];
    double duration;
    char handled_play[DOCS_NONCE_MAX + 1];
    char handled_skip[DOCS_NONCE_MAX + 1];
    int resume_loaded;

    /* rules */
    int plays;
    enum rules_stop reason;
    unsigned attachments; /* listeners on devices that hear this channel */

    /* the clock */
    struct pipeline *pipe;
    struct ring *rings[NCODECS];
    int producing;
    int stop_pending;  /* stop once the produce call in flight returns */
    int loaded;        /* a track was handed to the pipeline */
    int preparing;     /* a file doc fetch for a track is in flight */
    unsigned play_gen; /* counts "play now"s: a "next" prepared before one is stale */
    int playing_sent;  /* last pipeline_set_playing */
    double t0;         /* monotonic time of output sample 0 */
    int64_t produced;  /* output samples produced */
    struct pending_frame *pending;
    size_t npending, cap_pending;
    ev_timer tick;
    double idle_since; /* when attachments dropped to 0 */
    uint64_t next_track_id;
    struct track_map tracks[TRACKS_KEPT];
    int ntracks;
    uint64_t audible_track;

    /* status document */
    int status_dirty, status_busy;
    double status_written;
    double position_saved;
};

struct p_device {
    struct docs_device doc;
    unsigned listeners;
    int muted;
    enum rules_mute mute_reason;
    char mute_delegate[DOCS_NAME_MAX + 1];
    struct p_channel *source; /* the channel it hears, or NULL */
    int status_dirty, status_busy;
};

struct p_aggregate {
    struct docs_aggregate doc;
};

struct p_user {
    struct docs_user doc;
    int has_doc;
    unsigned connections;
    double present_until;
    /* what status:user:<name> says (published_present -1: nothing yet) */
    int published_present;
    unsigned published_connections;
    int status_busy, status_dirty;
};

struct p_delegate {
    struct docs_delegate doc;
    enum rules_hold hold;
    double until;
};

struct player_attachment {
    struct player *pl;
    char device[DOCS_NAME_MAX + 1];
    int codec;
    struct p_channel *source; /* the channel whose ring the cursor is in; NULL: idle */
    uint64_t cursor;
    player_wake_fn wake;
    void *arg;
    double batch;     /* wake at most this often (player_set_batch) ... */
    double last_wake; /* ... counted from the last wake */
    struct player_attachment *next, *prev;
};

struct subscriber {
    player_event_fn fn;
    void *arg;
    struct subscriber *next;
};

struct player {
    struct ev_loop *loop;
    struct couch *couch;
    char *db;
    struct worker_pool *audio;
    struct hmap *channels;   /* name -> p_channel */
    struct hmap *entries;    /* id -> p_entry */
    struct hmap *devices;    /* name -> p_device */
    struct hmap *aggregates; /* name -> p_aggregate */
    struct hmap *users;      /* name -> p_user */
    struct hmap *delegates;  /* name -> p_delegate */
    struct player_attachment *attachments;
    struct subscriber *subscribers;
    /* Until then every release wakes every listener at once, batch or not:
     * a change (pause, skip, a mute, ...) was just applied, and its first
     * frames must leave as soon as they are due. */
    double urgent_until;

    /* silence for devices that hear no channel: its own clock and rings */
    struct encoder *silence_enc[NCODECS];
    struct encoded_frame silence[NCODECS];
    struct ring *idle_rings[NCODECS];
    double idle_next[NCODECS];
    int64_t idle_pts[NCODECS];
    ev_timer idle_tick;

    ev_timer evaluate_timer; /* 0 s: one evaluation after a burst of changes */
    ev_timer rules_timer;
    int loaded;
    int stopping;
    void (*stop_done)(void *);
    void *stop_arg;
    int writes; /* status writes in flight */

    void (*load_done)(int, void *);
    void *load_arg;
    int load_step;
    char *load_next;

    struct {
        char id[DOCS_FILE_ID_MAX + 1];
        json_t *doc;
    } files[FILE_CACHE]; /* see FILE_CACHE; "" is a free slot */
    size_t files_next;   /* the slot to replace next */
};

static void schedule_evaluate(struct player *pl)
{
    /* Frames produced from now on may differ from what listeners got. */
    pl->urgent_until = timeutil_mono() + LEAD + URGENT_S;
    if (!ev_is_active(&pl->evaluate_timer)) {
        ev_timer_set(&pl->evaluate_timer, 0., 0.);
        ev_timer_start(pl->loop, &pl->evaluate_timer);
    }
}

static void emit_event(struct player *pl, json_t *ev)
{
    for (struct subscriber *s = pl->subscribers; s; s = s->next)
        s->fn(ev, s->arg);
    json_decref(ev);
}

static struct p_channel *channel_get(struct player *pl, const char *name, int create);
static void channel_changed(struct p_channel *c);
static void device_changed(struct p_device *d);

/* ---- file documents kept (FILE_CACHE) ---- */

static json_t *file_cached(struct player *pl, const char *id)
{
    for (size_t i = 0; i < FILE_CACHE; i++)
        if (pl->files[i].doc && !strcmp(pl->files[i].id, id))
            return pl->files[i].doc;
    return NULL;
}

/* Keeps doc (a new reference) as file `id`'s, or forgets it (doc NULL). */
static void file_keep(struct player *pl, const char *id, json_t *doc)
{
    if (strlen(id) > DOCS_FILE_ID_MAX)
        return;
    size_t slot = FILE_CACHE;
    for (size_t i = 0; i < FILE_CACHE; i++)
        if (pl->files[i].doc && !strcmp(pl->files[i].id, id))
            slot = i;
    if (slot == FILE_CACHE) {
        if (!doc)
            return;
        slot = pl->files_next;
        pl->files_next = (pl->files_next + 1) % FILE_CACHE;
    }
    json_decref(pl->files[slot].doc);
    pl->files[slot].doc = doc ? json_incref(doc) : NULL;
    snprintf(pl->files[slot].id, sizeof(pl->files[slot].id), "%s", doc ? id : "");
}

/* ---- documents ---- */

static int entry_cmp(const void *a, const void *b)
{
    const struct p_entry *x = *(struct p_entry *const *)a, *y = *(struct p_entry *const *)b;
    int r = strcmp(x->doc.key, y->doc.key);
    return r ? r : strcmp(x->doc.id, y->doc.id);
}

static void channel_sort(struct p_channel *c)
{
    if (!c->order_dirty)
        return;
    c->order_dirty = 0;
    size_t n = 0, pos = 0;
    void *v;
    const char *k;
    free(c->order);
    c->order = NULL;
    c->norder = 0;
    while (hmap_next(c->pl->entries, &pos, &k, &v))
        if (!strcmp(((struct p_entry *)v)->doc.playlist, c->playlist))
            n++;
    if (!n)
        return;
    c->order = calloc(n, sizeof(*c->order));
    pos = 0;
    while (hmap_next(c->pl->entries, &pos, &k, &v))
        if (!strcmp(((struct p_entry *)v)->doc.playlist, c->playlist))
            c->order[c->norder++] = v;
    qsort(c->order, c->norder, sizeof(*c->order), entry_cmp);
}

/* The entry after (key, id), or NULL. */
static struct p_entry *entry_after(struct p_channel *c, const char *key, const char *id)
{
    channel_sort(c);
    for (size_t i = 0; i < c->norder; i++) {
        int r = strcmp(c->order[i]->doc.key, key);
        if (r > 0 || (r == 0 && strcmp(c->order[i]->doc.id, id) > 0))
            return c->order[i];
    }
    return NULL;
}

static struct p_entry *entry_first(struct p_channel *c)
{
    channel_sort(c);
    return c->norder ? c->order[0] : NULL;
}

static void free_entry(void *p)
{
    free(p);
}

static void free_delegate(void *p)
{
    struct p_delegate *d = p;
    if (d)
        docs_delegate_clear(&d->doc);
    free(d);
}

static int apply_entry(struct player *pl, const char *id, int deleted, json_t *doc)
{
    char playlist[DOCS_PLAYLIST_MAX + 1];
    if (docs_entry_id_parse(id, playlist, NULL) < 0)
        return -EINVAL;
    struct p_entry *old = hmap_remove(pl->entries, id);
    free(old);
    if (!deleted) {
        struct p_entry *e = calloc(1, sizeof(*e));
        char err[DOCS_ERR_MAX];
        if (!e)
            return -ENOMEM;
        if (docs_entry_parse(doc, &e->doc, err, sizeof(err)) < 0) {
            LOG(E_WARN, L_STATE, "%s: %s", id, err);
            free(e);
            return -EINVAL;
        }
        hmap_set(pl->entries, id, e, NULL);
    }
    struct docs_playlist p;
    if (docs_playlist_parse(playlist, &p) == 0 && p.kind == DOCS_PLAYLIST_CHANNEL) {
        struct p_channel *c = channel_get(pl, p.owner, 1);
        if (c) {
            c->order_dirty = 1;
            c->playlist_changed = timeutil_mono();
            channel_changed(c);
        }
    }
    return 0;
}

static struct p_channel *channel_get(struct player *pl, const char *name, int create)
{
    struct p_channel *c = hmap_get(pl->channels, name);
    if (c || !create)
        return c;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->pl = pl;
    snprintf(c->name, sizeof(c->name), "%s", name);
    docs_channel_playlist(name, c->playlist, sizeof(c->playlist));
    c->doc.crossfade = DOCS_DEFAULT_CROSSFADE;
    c->doc.replaygain = DOCS_RG_ALBUM;
    c->order_dirty = 1;
    c->reason = RULES_STOP_NO_DEVICE;
    ev_timer_init(&c->tick, NULL, 0., 0.);
    hmap_set(pl->channels, name, c, NULL);
    return c;
}

static int apply_channel(struct player *pl, const char *name, int deleted, json_t *doc)
{
    struct p_channel *c = channel_get(pl, name, !deleted);
    if (!c)
        return deleted ? 0 : -ENOMEM;
    if (deleted) {
        c->has_doc = 0;
        memset(&c->doc, 0, sizeof(c->doc));
        channel_changed(c);
        return 0;
    }
    struct docs_channel d;
    char err[DOCS_ERR_MAX];
    if (docs_channel_parse(doc, &d, err, sizeof(err)) < 0) {
        LOG(E_WARN, L_STATE, "channel:%s: %s", name, err);
        return -EINVAL;
    }
    c->doc = d;
    c->has_doc = 1;
    channel_changed(c);
    return 0;
}

static int apply_simple(struct player *pl, const char *type, const char *name, int deleted,
                        json_t *doc)
{
    char err[DOCS_ERR_MAX];
    if (!strcmp(type, "aggregate")) {
        struct p_aggregate *a = hmap_remove(pl->aggregates, name);
        free(a);
        if (deleted)
            return 0;
        a = calloc(1, sizeof(*a));
        if (!a || docs_aggregate_parse(doc, &a->doc, err, sizeof(err)) < 0) {
            LOG(E_WARN, L_STATE, "aggregate:%s: %s", name, a ? err : "out of memory");
            free(a);
            return -EINVAL;
        }
        hmap_set(pl->aggregates, name, a, NULL);
        return 0;
    }
    if (!strcmp(type, "device")) {
        struct p_device *d = hmap_get(pl->devices, name);
        struct docs_device dd;
        if (deleted) {
            if (d) { /* listeners stay attached, and hear silence */
                memset(&d->doc.aggregate, 0, sizeof(d->doc.aggregate));
            }
            return 0;
        }
        if (docs_device_parse(doc, &dd, err, sizeof(err)) < 0) {
            LOG(E_WARN, L_STATE, "device:%s: %s", name, err);
            return -EINVAL;
        }
        if (!d) {
            d = calloc(1, sizeof(*d));
            if (!d)
                return -ENOMEM;
            hmap_set(pl->devices, name, d, NULL);
        }
        d->doc = dd;
        device_changed(d);
        return 0;
    }
    if (!strcmp(type, "user")) {
        struct p_user *u = hmap_get(pl->users, name);
        struct docs_user du;
        if (deleted) {
            if (u)
                u->has_doc = 0;
            return 0;
        }
        if (docs_user_parse(doc, &du, err, sizeof(err)) < 0) {
            LOG(E_WARN, L_STATE, "user:%s: %s", name, err);
            return -EINVAL;
        }
        if (!u) {
            u = calloc(1, sizeof(*u));
            if (!u)
                return -ENOMEM;
            u->published_present = -1;
            hmap_set(pl->users, name, u, NULL);
        }
        u->doc = du;
        u->has_doc = 1;
        return 0;
    }
    if (!strcmp(type, "delegate")) {
        struct p_delegate *g = hmap_get(pl->delegates, name);
        if (deleted) {
            free_delegate(hmap_remove(pl->delegates, name));
            return 0;
        }
        struct docs_delegate dd;
        if (docs_delegate_parse(doc, &dd, err, sizeof(err)) < 0) {
            LOG(E_WARN, L_STATE, "delegate:%s: %s", name, err);
            docs_delegate_clear(&dd);
            return -EINVAL;
        }
        if (!g) {
            g = calloc(1, sizeof(*g));
            if (!g) {
                docs_delegate_clear(&dd);
                return -ENOMEM;
            }
            hmap_set(pl->delegates, name, g, NULL);
        } else {
            docs_delegate_clear(&g->doc);
        }
        g->doc = dd;
        return 0;
    }
    return 1;
}

static void apply_status(struct player *pl, const char *name, json_t *doc)
{
    /* Only at load: where each channel was, to resume there. */
    struct p_channel *c = channel_get(pl, name, 1);
    if (!c || c->resume_loaded)
        return;
    c->resume_loaded = 1;
    const char *entry = json_string_value(json_object_get(doc, "entry"));
    const char *key = json_string_value(json_object_get(doc, "key"));
    const char *hp = json_string_value(json_object_get(doc, "handled_play"));
    const char *hs = json_string_value(json_object_get(doc, "handled_skip"));
    if (entry && strlen(entry) <= DOCS_ENTRY_ID_MAX)
        snprintf(c->current, sizeof(c->current), "%s", entry);
    if (key && strlen(key) <= FRACINDEX_MAX)
        snprintf(c->current_key, sizeof(c->current_key), "%s", key);
    c->position = json_number_value(json_object_get(doc, "position"));
    if (c->position < 0 || !isfinite(c->position))
        c->position = 0;
    if (hp)
        snprintf(c->handled_play, sizeof(c->handled_play), "%s", hp);
    if (hs)
        snprintf(c->handled_skip, sizeof(c->handled_skip), "%s", hs);
}

int player_apply(struct player *pl, const char *id, const char *rev, int deleted, json_t *doc)
{
    const char *colon = strchr(id, ':');
    if (!colon)
        return 1;
    char type[16];
    size_t tn = (size_t)(colon - id);
    if (tn >= sizeof(type))
        return 1;
    memcpy(type, id, tn);
    type[tn] = '\0';
    const char *name = colon + 1;
    int r;
    if (!strcmp(type, "entry"))
        r = apply_entry(pl, id, deleted, doc);
    else if (!strcmp(type, "channel"))
        r = apply_channel(pl, name, deleted, doc);
    else if (!strcmp(type, "status")) {
        if (pl->loaded || deleted || strncmp(name, "channel:", 8) != 0)
            return 1;
        apply_status(pl, name + 8, doc);
        return 0;
    } else
        r = apply_simple(pl, type, name, deleted, doc);
    if (r == 0)
        schedule_evaluate(pl);
    return r;
}

/* ---- loading ---- */

static const char *const load_prefixes[] = {
    "aggregate:", "channel:", "delegate:", "device:", "entry:", "user:", "status:channel:", NULL};

static void load_page(struct player *pl);

static void load_page_done(const struct couch_response *resp, void *arg)
{
    struct player *pl = arg;
    if (resp->error || resp->status != 200) {
        LOG(E_ERROR, L_STATE, "cannot load the control documents: %s", resp->errmsg);
        void (*done)(int, void *) = pl->load_done;
        pl->load_done = NULL;
        if (done)
            done(resp->error ? resp->error : -EIO, pl->load_arg);
        return;
    }
    json_t *rows = json_object_get(resp->body, "rows");
    size_t i, n = json_array_size(rows);
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        json_t *doc = json_object_get(row, "doc");
        if (!id || !json_is_object(doc))
            continue;
        free(pl->load_next);
        pl->load_next = strdup(id);
        player_apply(pl, id, json_string_value(json_object_get(doc, "_rev")), 0, doc);
    }
    if (n < LOAD_PAGE) {
        free(pl->load_next);
        pl->load_next = NULL;
        pl->load_step++;
    }
    if (load_prefixes[pl->load_step]) {
        load_page(pl);
        return;
    }
    pl->loaded = 1;
    LOG(E_INFO, L_STATE,
        "%zu channels, %zu entries, %zu aggregates, %zu devices, %zu users, %zu "
        "delegates",
        hmap_count(pl->channels), hmap_count(pl->entries), hmap_count(pl->aggregates),
        hmap_count(pl->devices), hmap_count(pl->users), hmap_count(pl->delegates));
    schedule_evaluate(pl);
    void (*done)(int, void *) = pl->load_done;
    pl->load_done = NULL;
    if (done)
        done(0, pl->load_arg);
}

static void load_page(struct player *pl)
{
    char *query = couch_prefix_query(load_prefixes[pl->load_step], pl->load_next, LOAD_PAGE, 1);
    char *dbp = couch_path(pl->db, NULL);
    char *path = NULL;
    if (!query || !dbp || asprintf(&path, "%s/%s", dbp, query) < 0)
        path = NULL;
    if (!path || couch_request(pl->couch, "GET", path, NULL, NULL, COUCH_RETRY_LONG, load_page_done,
                               pl) < 0) {
        struct couch_response r = {.error = -ENOMEM, .errmsg = "out of memory", .raw = ""};
        load_page_done(&r, pl);
    }
    free(path);
    free(dbp);
    free(query);
}

int player_load(struct player *pl, void (*done)(int err, void *arg), void *arg)
{
    if (pl->load_done)
        return -EBUSY;
    pl->load_done = done;
    pl->load_arg = arg;
    pl->load_step = 0;
    free(pl->load_next);
    pl->load_next = NULL;
    load_page(pl);
    return 0;
}

/* ---- status documents and events ---- */

static const char *channel_state(const struct p_channel *c)
{
    if (c->plays)
        return "playing";
    return c->reason == RULES_STOP_PAUSED ? "paused" : "auto-paused";
}

static json_t *channel_json(const struct p_channel *c)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:f,s:f,s:i}", "type", "channel", "name",
                     c->name, "state", channel_state(c), "reason",
                     c->plays ? "" : rules_stop_str(c->reason), "entry", c->current, "file",
                     c->file, "title", c->title, "position", c->position, "duration", c->duration,
                     "listeners", (int)c->attachments);
}

static json_t *device_json(const char *name, const struct p_device *d)
{
    return json_pack("{s:s,s:s,s:i,s:b,s:s,s:s,s:s}", "type", "device", "name", name, "listeners",
                     (int)d->listeners, "muted", d->muted, "reason",
                     d->muted ? rules_mute_str(d->mute_reason) : "", "delegate", d->mute_delegate,
                     "channel", d->source ? d->source->name : "");
}

enum status_kind { STATUS_CHANNEL, STATUS_DEVICE, STATUS_USER };
static const char *const status_kinds[] = {"channel", "device", "user"};

struct status_write {
    struct player *pl;
    json_t *fields;
    enum status_kind kind;
    struct p_channel *channel;    /* STATUS_CHANNEL */
    char name[DOCS_NAME_MAX + 1]; /* STATUS_DEVICE, STATUS_USER */
};

static int status_apply(json_t *doc, void *arg)
{
    struct status_write *w = arg;
    char now[TIMEUTIL_ISO8601_LEN];
    timeutil_iso8601(time(NULL), now, sizeof(now));
    json_object_update(doc, w->fields);
    json_object_set_new(doc, "type", json_string("status"));
    json_object_set_new(doc, "kind", json_string(status_kinds[w->kind]));
    json_object_set_new(doc, "updated", json_string(now));
    return 1;
}

static void maybe_stopped(struct player *pl);
static void channel_status_write(struct p_channel *c, double now);
static void user_status_write(struct player *pl, const char *name, struct p_user *u);
static void device_status_write(struct player *pl, const char *name, struct p_device *d);

static void status_written(const struct couch_response *resp, void *arg)
{
    struct status_write *w = arg;
    struct player *pl = w->pl;
    pl->writes--;
    if (resp->error || resp->status >= 300)
        LOG(E_WARN, L_STATE, "cannot write a status document: %s", resp->errmsg);
    if (w->kind == STATUS_CHANNEL) {
        w->channel->status_busy = 0;
        /* changed while this write was out (a stop's final position among
         * them): write again */
        if (w->channel->status_dirty)
            channel_status_write(w->channel, timeutil_mono());
    } else if (w->kind == STATUS_DEVICE) {
        struct p_device *d = hmap_get(pl->devices, w->name);
        if (d) {
            d->status_busy = 0;
            /* a listener came or went while this write was out: nothing
             * else may evaluate soon, so write it now */
            if (d->status_dirty)
                device_status_write(pl, w->name, d);
        }
    } else {
        struct p_user *u = hmap_get(pl->users, w->name);
        if (u) {
            u->status_busy = 0;
            if (u->status_dirty)
                user_status_write(pl, w->name, u);
        }
    }
    json_decref(w->fields);
    free(w);
    maybe_stopped(pl);
}

static void channel_status_write(struct p_channel *c, double now)
{
    if (c->status_busy)
        return;
    struct status_write *w = calloc(1, sizeof(*w));
    if (!w)
        return;
    w->pl = c->pl;
    w->kind = STATUS_CHANNEL;
    w->channel = c;
    w->fields = channel_json(c);
    json_object_del(w->fields, "type");
    json_object_set_new(w->fields, "key", json_string(c->current_key));
    json_object_set_new(w->fields, "handled_play", json_string(c->handled_play));
    json_object_set_new(w->fields, "handled_skip", json_string(c->handled_skip));
    char id[DOCS_NAME_MAX + 32];
    snprintf(id, sizeof(id), "status:channel:%s", c->name);
    c->status_dirty = 0;
    c->status_busy = 1;
    c->status_written = now;
    c->position_saved = now;
    c->pl->writes++;
    if (couch_update(c->pl->couch, c->pl->db, id, status_apply, w, status_written, w) < 0) {
        c->pl->writes--;
        c->status_busy = 0;
        json_decref(w->fields);
        free(w);
    }
}

static void device_status_write(struct player *pl, const char *name, struct p_device *d)
{
    if (d->status_busy)
        return;
    struct status_write *w = calloc(1, sizeof(*w));
    if (!w)
        return;
    w->pl = pl;
    w->kind = STATUS_DEVICE;
    snprintf(w->name, sizeof(w->name), "%s", name);
    w->fields = device_json(name, d);
    json_object_del(w->fields, "type");
    char id[DOCS_NAME_MAX + 32];
    snprintf(id, sizeof(id), "status:device:%s", name);
    d->status_dirty = 0;
    d->status_busy = 1;
    pl->writes++;
    if (couch_update(pl->couch, pl->db, id, status_apply, w, status_written, w) < 0) {
        pl->writes--;
        d->status_busy = 0;
        json_decref(w->fields);
        free(w);
    }
}

static json_t *user_json(const char *name, const struct p_user *u)
{
    return json_pack("{s:s,s:s,s:b,s:i}", "type", "user", "name", name, "present",
                     u->published_present > 0, "connections", (int)u->published_connections);
}

/* status:user:<name>: whether the user counts as present (the web app open,
 * or closed less than their session_timeout ago) and with how many live
 * connections. Written when either changes. */
static void user_status_write(struct player *pl, const char *name, struct p_user *u)
{
    if (u->status_busy)
        return;
    struct status_write *w = calloc(1, sizeof(*w));
    if (!w)
        return;
    w->pl = pl;
    w->kind = STATUS_USER;
    snprintf(w->name, sizeof(w->name), "%s", name);
    w->fields = user_json(name, u);
    json_object_del(w->fields, "type");
    char id[DOCS_NAME_MAX + 32];
    snprintf(id, sizeof(id), "status:user:%s", name);
    u->status_dirty = 0;
    u->status_busy = 1;
    pl->writes++;
    if (couch_update(pl->couch, pl->db, id, status_apply, w, status_written, w) < 0) {
        pl->writes--;
        u->status_busy = 0;
        json_decref(w->fields);
        free(w);
    }
}

static void channel_touch(struct p_channel *c)
{
    c->status_dirty = 1;
    emit_event(c->pl, channel_json(c));
}

/* ---- tracks ---- */

struct prepare {
    struct p_channel *c;
    char entry[DOCS_ENTRY_ID_MAX + 1];
    char file[DOCS_FILE_ID_MAX + 1];
    double start;
    int now; /* play now (1) or queue next (0) */
    int hops;
    unsigned play_gen; /* c->play_gen when asked */
};

static void prepare_track(struct p_channel *c, struct p_entry *e, double start, int now, int hops);

static struct track_map *track_find(struct p_channel *c, uint64_t id)
{
    for (int i = 0; i < c->ntracks; i++)
        if (c->tracks[i].id == id)
            return &c->tracks[i];
    return NULL;
}

static double pick_gain(const struct p_channel *c, json_t *rg, double *peak)
{
    json_t *tg = json_object_get(rg, "track_gain"), *tp = json_object_get(rg, "track_peak");
    json_t *ag = json_object_get(rg, "album_gain"), *ap = json_object_get(rg, "album_peak");
    *peak = 0;
    if (c->doc.replaygain == DOCS_RG_OFF)
        return 0;
    if (c->doc.replaygain == DOCS_RG_ALBUM && json_is_number(ag)) {
        *peak = json_is_number(ap) ? json_number_value(ap) : 0;
        return json_number_value(ag);
    }
    if (json_is_number(tg)) {
        *peak = json_is_number(tp) ? json_number_value(tp) : 0;
        return json_number_value(tg);
    }
    return 0;
}

static void file_fetched(const struct couch_response *resp, void *arg)
{
    struct prepare *pr = arg;
    struct p_channel *c = pr->c;
    struct p_entry *e = hmap_get(c->pl->entries, pr->entry);
    c->preparing = 0;
    if (!c->pipe || c->pl->stopping || (!pr->now && pr->play_gen != c->play_gen)) {
        /* A "next" asked for before a "play now" follows what played then. */
        free(pr);
        return;
    }
    json_t *body = resp->body;
    long status = resp->status;
    if (status == 200 && json_is_object(body)) {
        file_keep(c->pl, pr->file, body);
    } else if (status == 404) {
        file_keep(c->pl, pr->file, NULL);
    } else if (resp->error || status == 0 || status >= 500) {
        /* CouchDB away (couch_get gave up retrying): the copy kept from
         * before, or this same entry again, never a skip. */
        body = file_cached(c->pl, pr->file);
        if (body) {
            status = 200;
        } else if (e) {
            LOG(E_WARN, L_STATE,
                "channel %s: %s: its file document cannot be had (%s); trying again", c->name,
                pr->entry, resp->errmsg);
            prepare_track(c, e, pr->start, pr->now, pr->hops);
            free(pr);
            return;
        }
    }
    const char *path = json_string_value(json_object_get(body, "path"));
    const char *error = json_string_value(json_object_get(body, "error"));
    if (status != 200 || !path || error) {
        LOG(E_WARN, L_STATE, "channel %s: %s cannot be played (%s); skipped", c->name, pr->entry,
            status == 404 ? "its file is gone"
            : error       ? error
                          : resp->errmsg);
        struct p_entry *next = e ? entry_after(c, e->doc.key, e->doc.id) : NULL;
        if (next && pr->hops < 50)
            prepare_track(c, next, 0, pr->now, pr->hops + 1);
        else if (pr->now)
            pipeline_clear_next(c->pipe);
        free(pr);
        return;
    }
    struct track_map *tm = &c->tracks[c->ntracks < TRACKS_KEPT ? c->ntracks++ : 0];
    if (c->ntracks == TRACKS_KEPT) { /* keep the newest: shift */
        memmove(&c->tracks[0], &c->tracks[1], sizeof(c->tracks[0]) * (TRACKS_KEPT - 1));
        tm = &c->tracks[TRACKS_KEPT - 1];
    }
    memset(tm, 0, sizeof(*tm));
    tm->id = ++c->next_track_id;
    snprintf(tm->entry, sizeof(tm->entry), "%s", pr->entry);
    snprintf(tm->file, sizeof(tm->file), "%s",
             json_string_value(json_object_get(body, "_id")) ?: "");
    json_t *tags = json_object_get(body, "tags");
    const char *artist = json_string_value(json_array_get(json_object_get(tags, "artist"), 0));
    const char *title = json_string_value(json_array_get(json_object_get(tags, "title"), 0));
    const char *name = json_string_value(json_object_get(body, "name"));
    if (artist && title)
        snprintf(tm->title, sizeof(tm->title), "%s - %s", artist, title);
    else
        snprintf(tm->title, sizeof(tm->title), "%s", title ? title : name ? name : "");
    tm->duration = json_number_value(json_object_get(body, "duration"));
    tm->start = pr->start;
    double peak;
    struct pipeline_track t = {.id = tm->id,
                               .path = path,
                               .start = pr->start,
                               .gain_db = pick_gain(c, json_object_get(body, "replaygain"), &peak)};
    t.peak = peak;
    /* Playing now: what was queued to follow the old track goes (the
     * pipeline keeps it otherwise, and plays it after this one); the new
     * track asks for its own next. */
    if (pr->now)
        pipeline_clear_next(c->pipe);
    int r = pr->now ? pipeline_play_now(c->pipe, &t) : pipeline_queue_next(c->pipe, &t);
    if (r < 0)
        LOG(E_WARN, L_STATE, "channel %s: cannot queue %s: %s", c->name, path, strerror(-r));
    else
        c->loaded = 1;
    LOG(E_INFO, L_STATE, "channel %s: %s %s (%s) at %.1f s", c->name,
        pr->now ? "playing" : "next:", pr->entry, tm->title, pr->start);
    free(pr);
}

static void prepare_track(struct p_channel *c, struct p_entry *e, double start, int now, int hops)
{
    struct prepare *pr = calloc(1, sizeof(*pr));
    if (!pr)
        return;
    pr->c = c;
    snprintf(pr->entry, sizeof(pr->entry), "%s", e->doc.id);
    snprintf(pr->file, sizeof(pr->file), "%s", e->doc.file);
    pr->start = start;
    pr->now = now;
    pr->hops = hops;
    if (now)
        c->play_gen++;
    pr->play_gen = c->play_gen;
    c->preparing = 1;
    /* With a copy kept, one quick try: if CouchDB is away (or hangs) the copy
     * plays on time instead of after a quarter minute of retries. */
    int flags = file_cached(c->pl, e->doc.file) ? COUCH_NO_RETRY | COUCH_QUICK : 0;
    char *path = couch_path(c->pl->db, e->doc.file);
    if (!path ||
        couch_request(c->pl->couch, "GET", path, NULL, NULL, flags, file_fetched, pr) < 0) {
        c->preparing = 0;
        free(pr);
    }
    free(path);
}

struct prefetch {
    struct player *pl;
    char file[DOCS_FILE_ID_MAX + 1];
};

static void prefetched(const struct couch_response *resp, void *arg)
{
    struct prefetch *pf = arg;
    if (resp->status == 200 && json_is_object(resp->body))
        file_keep(pf->pl, pf->file, resp->body);
    free(pf);
}

/* Fetches ahead the file documents of the PREFETCH entries after e that are
 * not kept yet, for a track change while CouchDB is away. */
static void prefetch_after(struct p_channel *c, struct p_entry *e)
{
    for (int i = 0; e && i < PREFETCH; i++) {
        e = entry_after(c, e->doc.key, e->doc.id);
        if (!e || file_cached(c->pl, e->doc.file))
            continue;
        struct prefetch *pf = calloc(1, sizeof(*pf));
        if (!pf)
            return;
        pf->pl = c->pl;
        snprintf(pf->file, sizeof(pf->file), "%s", e->doc.file);
        if (couch_get(c->pl->couch, c->pl->db, pf->file, prefetched, pf) < 0)
            free(pf);
    }
}

/* Whether the channel has something to play: the current entry still in
 * its playlist, or one after where it stopped. */
static struct p_entry *channel_next_to_play(struct p_channel *c, double *start)
{
    *start = 0;
    struct p_entry *cur = c->current[0] ? hmap_get(c->pl->entries, c->current) : NULL;
    if (cur && !strcmp(cur->doc.playlist, c->playlist)) {
        *start = c->position;
        return cur;
    }
    if (!c->current_key[0])
        return entry_first(c);
    return entry_after(c, c->current_key, c->current);
}

static void handle_events(struct p_channel *c, const struct pipeline_output *out)
{
    for (size_t i = 0; i < out->nevents; i++) {
        const struct pipeline_event *ev = &out->events[i];
        struct track_map *tm = track_find(c, ev->track);
        switch (ev->kind) {
        case PIPELINE_TRACK_STARTED:
            if (!tm)
                break;
            snprintf(c->current, sizeof(c->current), "%s", tm->entry);
            {
                struct p_entry *e = hmap_get(c->pl->entries, tm->entry);
                if (e)
                    snprintf(c->current_key, sizeof(c->current_key), "%s", e->doc.key);
            }
            snprintf(c->title, sizeof(c->title), "%s", tm->title);
            snprintf(c->file, sizeof(c->file), "%s", tm->file);
            c->duration = tm->duration;
            c->position = tm->start; /* the event shows where the new track begins */
            channel_touch(c);
            prefetch_after(c, hmap_get(c->pl->entries, tm->entry));
            break;
        case PIPELINE_NEED_NEXT: {
            /* The entry after the track the event names (after a failure
             * that is the failed one, not what plays: else a broken entry
             * would be queued again and again). */
            const char *after = tm ? tm->entry : c->current;
            struct p_entry *cur = hmap_get(c->pl->entries, after);
            struct p_entry *next = cur ? entry_after(c, cur->doc.key, cur->doc.id)
                                       : entry_after(c, c->current_key, after);
            if (next)
                prepare_track(c, next, 0, 0, 0);
            else
                pipeline_clear_next(c->pipe);
            break;
        }
        case PIPELINE_TRACK_FAILED:
            LOG(E_WARN, L_STATE, "channel %s: %s skipped: %s", c->name, tm ? tm->entry : "?",
                ev->error);
            /* what follows is as if it ended */
            __attribute__((fallthrough));
        case PIPELINE_TRACK_ENDED:
            if (tm && !strcmp(c->current, tm->entry) && out->track == 0) {
                /* nothing took over: the playlist is at its end */
                c->current[0] = '\0';
                c->title[0] = c->file[0] = '\0';
                c->position = 0;
                c->loaded = 0;
                channel_touch(c);
                schedule_evaluate(c->pl);
            }
            break;
        case PIPELINE_PAUSED:
            break;
        }
    }
    if (out->track) {
        c->audible_track = out->track;
        c->position = out->position;
    }
}

/* ---- the clock ---- */

static void wake_source(struct player *pl, struct p_channel *c)
{
    double now = timeutil_mono();
    int urgent = now < pl->urgent_until;
    for (struct player_attachment *a = pl->attachments; a; a = a->next) {
        if (a->source != c) { /* its device may have moved here since its last read */
            struct p_device *d = hmap_get(pl->devices, a->device);
            if (!d || d->source != c)
                continue;
        }
        /* Its frames wait in the ring until the next multiple of its batch
         * time: every listener with that batch wakes at the same release,
         * so rooms on one channel still get each frame at the same time. */
        if (!urgent && a->batch > 0 && floor(now / a->batch) == floor(a->last_wake / a->batch))
            continue;
        a->last_wake = now;
        a->wake(a->arg);
    }
}

struct produce_job {
    struct p_channel *c;
    struct pipeline *pipe;
    int samples;
    struct pipeline_output out;
    int rc;
};

/* Thread: worker (audio) */
static void produce_work(void *arg)
{
    struct produce_job *j = arg;
    j->rc = pipeline_produce(j->pipe, j->samples, &j->out);
}

static void channel_stop_clock(struct p_channel *c);

static void produce_done(void *arg, int status)
{
    struct produce_job *j = arg;
    struct p_channel *c = j->c;
    c->producing = 0;
    if (status == 0 && j->rc >= 0 && c->pipe == j->pipe) {
        for (size_t i = 0; i < j->out.nframes; i++) {
            const struct pipeline_frame *f = &j->out.frames[i];
            if (c->npending == c->cap_pending) {
                size_t cap = c->cap_pending ? c->cap_pending * 2 : 16;
                struct pending_frame *p = realloc(c->pending, cap * sizeof(*p));
                if (!p)
                    break;
                c->pending = p;
                c->cap_pending = cap;
            }
            struct pending_frame *p = &c->pending[c->npending];
            p->data = malloc(f->len ? f->len : 1);
            if (!p->data)
                break;
            memcpy(p->data, f->data, f->len);
            p->codec = f->codec;
            p->len = f->len;
            p->samples = f->samples;
            p->pts = f->pts;
            p->silence = f->silence;
            c->npending++;
        }
        c->produced = j->out.pts_end;
        handle_events(c, &j->out);
    } else if (j->rc < 0) {
        LOG(E_ERROR, L_STATE, "channel %s: the pipeline failed: %s", c->name, strerror(-j->rc));
    }
    free(j);
    if (c->stop_pending || c->pl->stopping)
        channel_stop_clock(c);
}

static void release_due(struct p_channel *c, double now)
{
    size_t n = 0;
    while (n < c->npending) {
        struct pending_frame *p = &c->pending[n];
        double due = c->t0 + (double)p->pts / PIPELINE_RATE;
        if (due > now)
            break;
        if (c->rings[p->codec])
            ring_push(c->rings[p->codec], p->data, p->len, p->samples, p->pts, due, p->silence);
        free(p->data);
        n++;
    }
    if (n) {
        memmove(c->pending, c->pending + n, (c->npending - n) * sizeof(*c->pending));
        c->npending -= n;
        wake_source(c->pl, c);
    }
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct p_channel *c = w->data;
    double now = timeutil_mono();
    if (!c->pipe)
        return;
    double produced_until = c->t0 + (double)c->produced / PIPELINE_RATE;
    if (now - produced_until > RESYNC_LATE) {
        LOG(E_WARN, L_STATE, "channel %s: %.0f ms behind; the clock restarts from now", c->name,
            (now - produced_until) * 1000);
        c->t0 = now - (double)c->produced / PIPELINE_RATE;
        produced_until = now;
    }
    release_due(c, now);
    if (!c->producing && produced_until < now + LEAD && !c->pl->stopping) {
        struct produce_job *j = calloc(1, sizeof(*j));
        if (j) {
            /* What is missing up to the lead, in whole steps: one step when
             * on time, more when the loop was late (CATCH_UP_STEPS). */
            int steps = (int)ceil((now + LEAD - produced_until) * PIPELINE_RATE / PRODUCE_SAMPLES);
            if (steps < 1)
                steps = 1;
            if (steps > CATCH_UP_STEPS)
                steps = CATCH_UP_STEPS;
            j->c = c;
            j->pipe = c->pipe;
            j->samples = PRODUCE_SAMPLES * steps;
            c->producing = 1;
            if (worker_submit(c->pl->audio, produce_work, produce_done, j) < 0) {
                c->producing = 0;
                free(j);
            }
        }
    }
    if (c->attachments == 0 && c->idle_since > 0 && now - c->idle_since > IDLE_STOP)
        channel_stop_clock(c);
    else if (c->status_dirty && now - c->status_written >= STATUS_INTERVAL)
        channel_status_write(c, now);
    else if (c->plays && now - c->position_saved >= POSITION_INTERVAL)
        channel_status_write(c, now);
}

static int channel_start_clock(struct p_channel *c)
{
    if (c->pipe)
        return 0;
    struct pipeline_params pp = {.codecs = {&encoder_mp3, &encoder_opus},
                                 .ncodecs = NCODECS,
                                 .crossfade = c->doc.crossfade,
                                 .fade = 0.2};
    char err[256];
    c->pipe = pipeline_new(&pp, err, sizeof(err));
    if (!c->pipe) {
        LOG(E_ERROR, L_STATE, "channel %s: cannot start its pipeline: %s", c->name, err);
        return -EIO;
    }
    for (int i = 0; i < NCODECS; i++)
        if (!c->rings[i])
            c->rings[i] = ring_new(RING_FRAMES, RING_BYTES);
    c->t0 = timeutil_mono();
    c->produced = 0;
    c->loaded = 0;
    c->playing_sent = -1;
    c->idle_since = 0;
    ev_timer_init(&c->tick, tick_cb, 0., 0.005); /* 5 ms: release granularity */
    c->tick.data = c;
    ev_timer_start(c->pl->loop, &c->tick);
    LOG(E_INFO, L_STATE, "channel %s: started", c->name);
    return 0;
}

static void channel_stop_clock(struct p_channel *c)
{
    ev_timer_stop(c->pl->loop, &c->tick);
    if (c->producing) { /* the worker still uses the pipeline: when it is done */
        c->stop_pending = 1;
        return;
    }
    c->stop_pending = 0;
    for (size_t i = 0; i < c->npending; i++)
        free(c->pending[i].data);
    c->npending = 0;
    if (c->pipe) {
        LOG(E_INFO, L_STATE, "channel %s: stopped at %s %.1f s", c->name, c->current, c->position);
        pipeline_free(&c->pipe);
    }
    c->loaded = 0;
    c->status_dirty = 1;
    channel_status_write(c, timeutil_mono());
}

/* ---- evaluation ---- */

static void channel_changed(struct p_channel *c)
{
    c->status_dirty = 1;
    schedule_evaluate(c->pl);
}

static void device_changed(struct p_device *d)
{
    d->status_dirty = 1;
}

/* Play/skip requests of the channel document, each acted on once. */
static void handle_requests(struct p_channel *c)
{
    if (!c->pipe)
        return;
    if (c->doc.play_request[0] && strcmp(c->doc.play_request, c->handled_play) != 0) {
        snprintf(c->handled_play, sizeof(c->handled_play), "%s", c->doc.play_request);
        struct p_entry *e = hmap_get(c->pl->entries, c->doc.play_entry);
        if (e && !strcmp(e->doc.playlist, c->playlist)) {
            LOG(E_INFO, L_STATE, "channel %s: play %s now (request %s)", c->name, e->doc.id,
                c->handled_play);
            prepare_track(c, e, 0, 1, 0);
        } else {
            LOG(E_WARN, L_STATE, "channel %s: play request for %s, not in its playlist", c->name,
                c->doc.play_entry);
        }
        c->status_dirty = 1;
    }
    if (c->doc.skip[0] && strcmp(c->doc.skip, c->handled_skip) != 0) {
        snprintf(c->handled_skip, sizeof(c->handled_skip), "%s", c->doc.skip);
        struct p_entry *cur = hmap_get(c->pl->entries, c->current);
        struct p_entry *next = cur ? entry_after(c, cur->doc.key, cur->doc.id)
                                   : entry_after(c, c->current_key, c->current);
        LOG(E_INFO, L_STATE, "channel %s: skip to %s", c->name, next ? next->doc.id : "(end)");
        if (next) {
            prepare_track(c, next, 0, 1, 0);
        } else {
            pipeline_clear_next(c->pipe);
            pipeline_set_playing(c->pipe, 0);
            c->current[0] = '\0';
            c->loaded = 0;
            c->playing_sent = 0;
        }
        c->status_dirty = 1;
    }
}

static void evaluate(struct player *pl)
{
    if (!pl->loaded)
        return;
    double now = timeutil_mono();
    size_t nc = hmap_count(pl->channels), na = hmap_count(pl->aggregates);
    size_t nd = hmap_count(pl->devices), nu = hmap_count(pl->users);
    size_t ng = hmap_count(pl->delegates);
    struct rules_channel *rc = calloc(nc + 1, sizeof(*rc));
    struct p_channel **pc = calloc(nc + 1, sizeof(*pc));
    struct rules_aggregate *ra = calloc(na + 1, sizeof(*ra));
    struct rules_device *rd = calloc(nd + 1, sizeof(*rd));
    struct p_device **pd = calloc(nd + 1, sizeof(*pd));
    const char **dn = calloc(nd + 1, sizeof(*dn));
    struct rules_user *ru = calloc(nu + 1, sizeof(*ru));
    struct rules_delegate *rg = calloc(ng + 1, sizeof(*rg));
    const char ***gdev = calloc(ng + 1, sizeof(*gdev));
    struct rules_device_state *dstate = calloc(nd + 1, sizeof(*dstate));
    struct rules_channel_state *cstate = calloc(nc + 1, sizeof(*cstate));
    if (!rc || !pc || !ra || !rd || !pd || !dn || !ru || !rg || !gdev || !dstate || !cstate)
        goto out;

    size_t pos = 0, i = 0;
    const char *k;
    void *v;
    while (hmap_next(pl->channels, &pos, &k, &v)) {
        struct p_channel *c = v;
        double start;
        pc[i] = c;
        rc[i].name = c->name;
        rc[i].paused = c->has_doc ? c->doc.paused : true;
        rc[i].has_next =
            c->has_doc && (channel_next_to_play(c, &start) != NULL || (c->loaded && c->current[0]));
        i++;
    }
    pos = 0, i = 0;
    while (hmap_next(pl->aggregates, &pos, &k, &v)) {
        struct p_aggregate *a = v;
        ra[i].name = k;
        ra[i].channel = a->doc.channel[0] ? a->doc.channel : NULL;
        i++;
    }
    pos = 0, i = 0;
    while (hmap_next(pl->devices, &pos, &k, &v)) {
        struct p_device *d = v;
        pd[i] = d;
        dn[i] = k;
        rd[i].name = k;
        rd[i].aggregate = d->doc.aggregate[0] ? d->doc.aggregate : NULL;
        rd[i].listeners = d->listeners;
        i++;
    }
    pos = 0, i = 0;
    while (hmap_next(pl->users, &pos, &k, &v)) {
        struct p_user *u = v;
        ru[i].name = k;
        ru[i].aggregate = u->has_doc && u->doc.aggregate[0] ? u->doc.aggregate : NULL;
        ru[i].present_until = u->present_until;
        ru[i].lockout = u->has_doc && u->doc.lockout;
        i++;
    }
    pos = 0, i = 0;
    while (hmap_next(pl->delegates, &pos, &k, &v)) {
        struct p_delegate *g = v;
        gdev[i] = calloc(g->doc.ndevices + 1, sizeof(char *));
        for (size_t j = 0; gdev[i] && j < g->doc.ndevices; j++)
            gdev[i][j] = g->doc.devices[j];
        rg[i].name = k;
        rg[i].devices = gdev[i];
        rg[i].ndevices = gdev[i] ? g->doc.ndevices : 0;
        rg[i].hold = g->hold;
        rg[i].until = g->until;
        i++;
    }
    struct rules_snapshot snap = {rc, nc, ra, na, rd, nd, rg, ng, ru, nu};
    struct rules_result res = {.devices = dstate, .channels = cstate};
    rules_evaluate(&snap, now, &res);
    double wake = res.next_change; /* when to evaluate again */

    /* devices: mute state and the channel they hear */
    for (i = 0; i < nd; i++) {
        struct p_device *d = pd[i];
        struct p_aggregate *a =
            d->doc.aggregate[0] ? hmap_get(pl->aggregates, d->doc.aggregate) : NULL;
        struct p_channel *src =
            a && a->doc.channel[0] ? hmap_get(pl->channels, a->doc.channel) : NULL;
        if (src && !src->has_doc)
            src = NULL;
        const char *deleg = dstate[i].delegate ? dstate[i].delegate : "";
        if (d->muted != dstate[i].muted || d->mute_reason != dstate[i].reason || d->source != src ||
            strcmp(d->mute_delegate, deleg) != 0) {
            d->muted = dstate[i].muted;
            d->mute_reason = dstate[i].reason;
            snprintf(d->mute_delegate, sizeof(d->mute_delegate), "%s", deleg);
            int moved = d->source != src;
            d->source = src;
            d->status_dirty = 1;
            LOG(E_INFO, L_STATE, "device %s: %s%s%s, hears %s", dn[i],
                d->muted ? "muted: " : "audible", d->muted ? rules_mute_str(d->mute_reason) : "",
                *deleg ? deleg : "", src ? src->name : "nothing");
            emit_event(pl, device_json(dn[i], d));
            if (moved)
                for (struct player_attachment *at = pl->attachments; at; at = at->next)
                    if (!strcmp(at->device, dn[i]))
                        at->wake(at->arg);
        }
        if (d->status_dirty)
            device_status_write(pl, dn[i], d);
    }
    /* users: presence as published */
    pos = 0;
    while (hmap_next(pl->users, &pos, &k, &v)) {
        struct p_user *u = v;
        int present = u->connections > 0 || now < u->present_until;
        if (present != u->published_present || u->connections != u->published_connections) {
            u->published_present = present;
            u->published_connections = u->connections;
            u->status_dirty = 1;
            emit_event(pl, user_json(k, u));
        }
        if (u->status_dirty)
            user_status_write(pl, k, u);
    }
    /* channels: listeners, clock, playing or not */
    for (i = 0; i < nc; i++) {
        struct p_channel *c = pc[i];
        unsigned att = 0;
        for (size_t j = 0; j < nd; j++)
            if (pd[j]->source == c)
                att += pd[j]->listeners;
        if (att != c->attachments) {
            c->attachments = att;
            c->idle_since = att ? 0 : now;
        }
        int plays = cstate[i].plays;
        if (plays != c->plays || cstate[i].reason != c->reason) {
            c->plays = plays;
            c->reason = cstate[i].reason;
            LOG(E_INFO, L_STATE, "channel %s: %s%s%s", c->name, channel_state(c), plays ? "" : ": ",
                plays ? "" : rules_stop_str(c->reason));
            channel_touch(c);
        }
        if (att > 0 && !pl->stopping)
            channel_start_clock(c);
        if (!c->pipe)
            continue;
        if (c->doc.crossfade >= 0)
            pipeline_set_crossfade(c->pipe, c->doc.crossfade);
        handle_requests(c);
        if (plays && !c->loaded && !c->preparing) {
            double settled = c->playlist_changed + PLAYLIST_SETTLE;
            if (!c->current[0] && now < settled) { /* see PLAYLIST_SETTLE */
                if (settled < wake)
                    wake = settled;
            } else {
                double start;
                struct p_entry *e = channel_next_to_play(c, &start);
                if (e)
                    prepare_track(c, e, start, 1, 0);
            }
        }
        if (c->playing_sent != plays) {
            pipeline_set_playing(c->pipe, plays);
            c->playing_sent = plays;
        }
    }
    ev_timer_stop(pl->loop, &pl->rules_timer);
    if (isfinite(wake)) {
        ev_timer_set(&pl->rules_timer, wake - now + 0.001, 0.);
        ev_timer_start(pl->loop, &pl->rules_timer);
    }
out:
    for (i = 0; gdev && i < ng; i++)
        free(gdev[i]);
    free(gdev);
    free(rc);
    free(pc);
    free(ra);
    free(rd);
    free(pd);
    free(dn);
    free(ru);
    free(rg);
    free(dstate);
    free(cstate);
}

static void evaluate_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    evaluate(w->data);
}

/* ---- devices in no room hear silence, on their own clock ---- */

static int idle_needed(struct player *pl)
{
    for (struct player_attachment *a = pl->attachments; a; a = a->next) {
        struct p_device *d = hmap_get(pl->devices, a->device);
        if (!d || !d->source)
            return 1;
    }
    return 0;
}

static void idle_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct player *pl = w->data;
    if (!idle_needed(pl)) {
        ev_timer_stop(loop, w);
        return;
    }
    double now = timeutil_mono();
    int pushed = 0;
    for (int i = 0; i < NCODECS; i++) {
        if (!pl->idle_rings[i] || !pl->silence[i].len)
            continue;
        if (pl->idle_next[i] < now - RESYNC_LATE)
            pl->idle_next[i] = now;
        while (pl->idle_next[i] <= now) {
            ring_push(pl->idle_rings[i], pl->silence[i].data, pl->silence[i].len,
                      pl->silence[i].samples, pl->idle_pts[i], pl->idle_next[i], 1);
            pl->idle_pts[i] += pl->silence[i].samples;
            pl->idle_next[i] += (double)pl->silence[i].samples / PIPELINE_RATE;
            pushed = 1;
        }
    }
    if (pushed)
        wake_source(pl, NULL);
}

/* ---- listeners ---- */

struct player_attachment *player_attach(struct player *pl, const char *device, const char *codec,
                                        double burst_s, player_wake_fn wake, void *arg)
{
    struct p_device *d = hmap_get(pl->devices, device);
    int ci = codec_index(codec);
    if (!d || ci < 0 || !wake)
        return NULL;
    struct player_attachment *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->pl = pl;
    snprintf(a->device, sizeof(a->device), "%s", device);
    a->codec = ci;
    a->wake = wake;
    a->arg = arg;
    a->source = d->source;
    struct ring *r = d->source ? d->source->rings[ci] : pl->idle_rings[ci];
    a->cursor = r ? ring_burst_start(r, burst_s) : 0;
    a->next = pl->attachments;
    if (pl->attachments)
        pl->attachments->prev = a;
    pl->attachments = a;
    d->listeners++;
    d->status_dirty = 1;
    if (!ev_is_active(&pl->idle_tick) && idle_needed(pl)) {
        for (int i = 0; i < NCODECS; i++)
            pl->idle_next[i] = timeutil_mono();
        ev_timer_start(pl->loop, &pl->idle_tick);
    }
    schedule_evaluate(pl);
    return a;
}

void player_detach(struct player_attachment **ap)
{
    struct player_attachment *a = *ap;
    if (!a)
        return;
    struct player *pl = a->pl;
    if (a->prev)
        a->prev->next = a->next;
    else
        pl->attachments = a->next;
    if (a->next)
        a->next->prev = a->prev;
    struct p_device *d = hmap_get(pl->devices, a->device);
    if (d && d->listeners > 0) {
        d->listeners--;
        d->status_dirty = 1;
    }
    schedule_evaluate(pl);
    free(a);
    *ap = NULL;
}

void player_set_batch(struct player_attachment *a, double seconds)
{
    a->batch = seconds > 0 ? seconds : 0;
}

int player_read(struct player_attachment *a, struct player_frame *out)
{
    struct player *pl = a->pl;
    struct p_device *d = hmap_get(pl->devices, a->device);
    struct p_channel *src = d ? d->source : NULL;
    if (src != a->source) { /* the room changed channel, or the device moved */
        a->source = src;
        struct ring *r = src ? src->rings[a->codec] : pl->idle_rings[a->codec];
        a->cursor = r ? ring_next_seq(r) : 0;
        if (!src && !ev_is_active(&pl->idle_tick)) {
            for (int i = 0; i < NCODECS; i++)
                pl->idle_next[i] = timeutil_mono();
            ev_timer_start(pl->loop, &pl->idle_tick);
        }
    }
    struct ring *r = src ? src->rings[a->codec] : pl->idle_rings[a->codec];
    if (!r)
        return 0;
    struct ring_frame f;
    int got = ring_get(r, a->cursor, &f);
    if (got <= 0)
        return got;
    a->cursor++;
    if (f.silence || !d || d->muted || !src) {
        out->data = pl->silence[a->codec].data;
        out->len = pl->silence[a->codec].len;
        out->samples = pl->silence[a->codec].samples;
        out->silence = 1;
    } else {
        out->data = f.data;
        out->len = f.len;
        out->samples = f.samples;
        out->silence = 0;
    }
    return 1;
}

int player_header(struct player_attachment *a, int index, const uint8_t **data, size_t *len)
{
    struct encoder *e = a->pl->silence_enc[a->codec];
    const struct encoder_ops *ops = codec_ops(a->codec);
    /* Every channel's encoder of a codec is opened with the same parameters,
     * so one header serves a listener whatever channel its device hears. */
    return e && ops->header ? ops->header(e, index, data, len) : -ENOENT;
}

const char *player_title(struct player_attachment *a)
{
    struct p_device *d = hmap_get(a->pl->devices, a->device);
    if (!d || !d->source || d->muted || !d->source->plays)
        return "";
    return d->source->title;
}

/* ---- presence and delegates ---- */

void player_presence_open(struct player *pl, const char *user)
{
    struct p_user *u = hmap_get(pl->users, user);
    if (!u) {
        u = calloc(1, sizeof(*u));
        if (!u)
            return;
        u->published_present = -1;
        u->doc.session_timeout = DOCS_DEFAULT_SESSION_TIMEOUT;
        hmap_set(pl->users, user, u, NULL);
    }
    u->connections++;
    u->present_until = RULES_FOREVER;
    LOG(E_INFO, L_STATE, "user %s present (%u connections)", user, u->connections);
    schedule_evaluate(pl);
}

void player_presence_close(struct player *pl, const char *user)
{
    struct p_user *u = hmap_get(pl->users, user);
    if (!u || u->connections == 0)
        return;
    if (--u->connections == 0) {
        double timeout = u->has_doc ? u->doc.session_timeout : DOCS_DEFAULT_SESSION_TIMEOUT;
        u->present_until = timeutil_mono() + timeout;
        LOG(E_INFO, L_STATE, "user %s left; present for %.0f s more", user, timeout);
    }
    schedule_evaluate(pl);
}

int player_delegate_hold(struct player *pl, const char *delegate, double seconds)
{
    struct p_delegate *g = hmap_get(pl->delegates, delegate);
    if (!g)
        return -ENOENT;
    if (seconds < 0) {
        g->hold = RULES_HOLD_INDEFINITE;
    } else if (seconds == 0) {
        g->hold = RULES_HOLD_NONE;
    } else {
        g->hold = RULES_HOLD_UNTIL;
        g->until = timeutil_mono() + seconds;
    }
    LOG(E_INFO, L_STATE, "delegate %s: %s", delegate,
        seconds < 0    ? "pauses its devices"
        : seconds == 0 ? "lets go"
                       : "pauses for a while");
    schedule_evaluate(pl);
    return 0;
}

/* ---- scrobbling ---- */

json_t *player_channel_audience(struct player *pl, const char *channel)
{
    json_t *names = json_array();
    size_t pos = 0;
    const char *k;
    void *v;
    double now = timeutil_mono();
    while (names && hmap_next(pl->users, &pos, &k, &v)) {
        struct p_user *u = v;
        if (!u->has_doc || !u->doc.scrobbling || !u->doc.aggregate[0])
            continue;
        struct rules_user ru = {.name = k,
                                .aggregate = u->doc.aggregate,
                                .present_until =
                                    u->connections > 0 ? RULES_FOREVER : u->present_until,
                                .lockout = u->doc.lockout};
        struct p_aggregate *a = hmap_get(pl->aggregates, u->doc.aggregate);
        if (!a || strcmp(a->doc.channel, channel) != 0 || !rules_user_present(&ru, now))
            continue;
        json_array_append_new(names, json_string(k));
    }
    return names;
}

/* ---- events ---- */

int player_subscribe(struct player *pl, player_event_fn fn, void *arg)
{
    struct subscriber *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->fn = fn;
    s->arg = arg;
    s->next = pl->subscribers;
    pl->subscribers = s;
    return 0;
}

void player_unsubscribe(struct player *pl, player_event_fn fn, void *arg)
{
    for (struct subscriber **p = &pl->subscribers; *p; p = &(*p)->next) {
        if ((*p)->fn == fn && (*p)->arg == arg) {
            struct subscriber *s = *p;
            *p = s->next;
            free(s);
            return;
        }
    }
}

json_t *player_snapshot(struct player *pl)
{
    json_t *channels = json_object(), *devices = json_object();
    size_t pos = 0;
    const char *k;
    void *v;
    while (hmap_next(pl->channels, &pos, &k, &v))
        if (((struct p_channel *)v)->has_doc)
            json_object_set_new(channels, k, channel_json(v));
    pos = 0;
    while (hmap_next(pl->devices, &pos, &k, &v))
        json_object_set_new(devices, k, device_json(k, v));
    return json_pack("{s:s,s:o,s:o}", "type", "snapshot", "channels", channels, "devices", devices);
}

/* ---- metrics ---- */

static int collect(struct buf *out, void *arg)
{
    struct player *pl = arg;
    size_t pos = 0, running = 0;
    const char *k;
    void *v;
    while (hmap_next(pl->channels, &pos, &k, &v))
        running += ((struct p_channel *)v)->pipe != NULL;
    metrics_gauge(out, "imes_channels_running", "Channels with a pipeline (encoding).",
                  (double)running);
    /* One encoder per codec per running channel, however many rooms and
     * devices listen: the proof that a channel is encoded once. */
    metrics_family(out, "imes_channel_encoders", "gauge", "Encoders running for a channel.");
    pos = 0;
    while (hmap_next(pl->channels, &pos, &k, &v))
        metrics_sample(out, "imes_channel_encoders", "channel", k,
                       ((struct p_channel *)v)->pipe ? NCODECS : 0);
    metrics_family(out, "imes_channel_listeners", "gauge",
                   "Listeners of devices that hear a channel.");
    pos = 0;
    while (hmap_next(pl->channels, &pos, &k, &v))
        metrics_sample(out, "imes_channel_listeners", "channel", k,
                       ((struct p_channel *)v)->attachments);
    metrics_family(out, "imes_device_muted", "gauge", "Whether a device is muted.");
    pos = 0;
    while (hmap_next(pl->devices, &pos, &k, &v))
        metrics_sample(out, "imes_device_muted", "device", k, ((struct p_device *)v)->muted);
    return 0;
}

/* ---- life cycle ---- */

static void rules_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    evaluate(w->data);
}

struct player *player_new(struct ev_loop *loop, const struct player_options *opt)
{
    struct player *pl = calloc(1, sizeof(*pl));
    if (!pl)
        return NULL;
    pl->loop = loop;
    pl->couch = opt->couch;
    pl->db = strdup(opt->db);
    pl->audio = opt->audio;
    pl->channels = hmap_new();
    pl->entries = hmap_new();
    pl->devices = hmap_new();
    pl->aggregates = hmap_new();
    pl->users = hmap_new();
    pl->delegates = hmap_new();
    ev_timer_init(&pl->evaluate_timer, evaluate_cb, 0., 0.);
    pl->evaluate_timer.data = pl;
    ev_timer_init(&pl->rules_timer, rules_timer_cb, 0., 0.);
    pl->rules_timer.data = pl;
    ev_timer_init(&pl->idle_tick, idle_tick_cb, 0., 0.01);
    pl->idle_tick.data = pl;
    for (int i = 0; i < NCODECS; i++) {
        struct encoder_params ep = {.rate = PIPELINE_RATE, .channels = PIPELINE_CHANNELS};
        const char *err = NULL;
        if (codec_ops(i)->open(&pl->silence_enc[i], &ep, &err) < 0 ||
            codec_ops(i)->silence(pl->silence_enc[i], &pl->silence[i]) < 0) {
            LOG(E_ERROR, L_STATE, "cannot open the %s encoder: %s", codec_names[i],
                err ? err : "?");
            player_free(&pl);
            return NULL;
        }
        pl->idle_rings[i] = ring_new(RING_FRAMES, RING_BYTES);
    }
    if (!pl->db || !pl->channels || !pl->entries || !pl->devices || !pl->aggregates || !pl->users ||
        !pl->delegates || metrics_add_collector(collect, pl) < 0) {
        player_free(&pl);
        return NULL;
    }
    return pl;
}

static void free_channel(void *p)
{
    struct p_channel *c = p;
    if (!c)
        return;
    ev_timer_stop(c->pl->loop, &c->tick);
    for (size_t i = 0; i < c->npending; i++)
        free(c->pending[i].data);
    free(c->pending);
    pipeline_free(&c->pipe);
    for (int i = 0; i < NCODECS; i++)
        ring_free(&c->rings[i]);
    free(c->order);
    free(c);
}

void player_free(struct player **plp)
{
    struct player *pl = *plp;
    if (!pl)
        return;
    metrics_remove_collector(collect, pl);
    ev_timer_stop(pl->loop, &pl->evaluate_timer);
    ev_timer_stop(pl->loop, &pl->rules_timer);
    ev_timer_stop(pl->loop, &pl->idle_tick);
    while (pl->attachments) {
        struct player_attachment *a = pl->attachments;
        pl->attachments = a->next;
        free(a);
    }
    while (pl->subscribers) {
        struct subscriber *s = pl->subscribers;
        pl->subscribers = s->next;
        free(s);
    }
    hmap_free(&pl->channels, free_channel);
    hmap_free(&pl->entries, free_entry);
    hmap_free(&pl->devices, free);
    hmap_free(&pl->aggregates, free);
    hmap_free(&pl->users, free);
    hmap_free(&pl->delegates, free_delegate);
    for (int i = 0; i < NCODECS; i++) {
        if (pl->silence_enc[i])
            codec_ops(i)->close(pl->silence_enc[i]);
        ring_free(&pl->idle_rings[i]);
    }
    for (size_t i = 0; i < FILE_CACHE; i++)
        json_decref(pl->files[i].doc);
    free(pl->load_next);
    free(pl->db);
    free(pl);
    *plp = NULL;
}

static void maybe_stopped(struct player *pl)
{
    if (!pl->stopping || !pl->stop_done || pl->writes > 0)
        return;
    size_t pos = 0;
    void *v;
    while (hmap_next(pl->channels, &pos, NULL, &v))
        if (((struct p_channel *)v)->producing)
            return;
    void (*done)(void *) = pl->stop_done;
    pl->stop_done = NULL;
    done(pl->stop_arg);
}

void player_stop(struct player *pl, void (*done)(void *arg), void *arg)
{
    pl->stopping = 1;
    pl->stop_done = done;
    pl->stop_arg = arg;
    ev_timer_stop(pl->loop, &pl->evaluate_timer);
    ev_timer_stop(pl->loop, &pl->rules_timer);
    ev_timer_stop(pl->loop, &pl->idle_tick);
    size_t pos = 0;
    void *v;
    /* Where each channel is, for the next start. */
    while (hmap_next(pl->channels, &pos, NULL, &v)) {
        struct p_channel *c = v;
        if (c->pipe)
            channel_stop_clock(c);
    }
    maybe_stopped(pl);
}
