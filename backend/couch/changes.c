/*
 * Changes follower: see changes.h.
 *
 *   start ─▶ GET checkpoint ─▶ GET _changes?feed=continuous&since=… ─▶ lines
 *                  ▲                                                   │ end/error
 *                  └──────────────── backoff timer ◀───────────────────┘
 *
 * The checkpoint is re-read only at start; after a reconnect the feed resumes
 * from the last sequence handed over in memory.
 */
#include "changes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"

#define BACKOFF_FIRST       0.5
#define BACKOFF_MAX         5.0 /* CouchDB back after a short outage: catch up within 5 s */
#define CHECKPOINT_INTERVAL 1.0
#define HEARTBEAT_MISSES    3 /* heartbeats missed before the feed counts as dead */

struct changes {
    struct ev_loop *loop;
    struct couch *couch;
    char *db;
    char *checkpoint_id;
    char *filter;
    int heartbeat_ms;
    changes_apply_fn apply;
    void *arg;

    enum changes_state state;
    int stopping;
    struct couch_stream *stream;
    int pending_get; /* checkpoint read in flight */
    json_t *since;   /* the raw sequence (string or integer), or NULL for "0" */
    json_t *seen;    /* id -> rev handed over in this run */
    double backoff;
    ev_timer reconnect;
    ev_timer checkpoint_timer;
    int checkpoint_dirty;
    int checkpoint_busy;
    void (*stop_done)(void *arg);
    void *stop_arg;

    unsigned long applied, skipped, reconnects;
};

static void connect_feed(struct changes *ch);
static void schedule_reconnect(struct changes *ch);
static void save_checkpoint(struct changes *ch);

/* ---- checkpoint ---- */

struct checkpoint_write {
    struct changes *ch;
    json_t *seq;
};

static int checkpoint_apply(json_t *doc, void *arg)
{
    struct checkpoint_write *w = arg;
    json_t *old = json_object_get(doc, "seq");
    if (old && json_equal(old, w->seq))
        return 0;
    json_object_set(doc, "seq", w->seq);
    return 1;
}

static void finish_stop(struct changes *ch)
{
    if (ch->stopping && !ch->checkpoint_busy && !ch->stream && ch->stop_done) {
        void (*done)(void *) = ch->stop_done;
        ch->stop_done = NULL;
        done(ch->stop_arg);
    }
}

static void checkpoint_written(const struct couch_response *resp, void *arg)
{
    struct checkpoint_write *w = arg;
    struct changes *ch = w->ch;
    int failed = resp->error || resp->status >= 300;
    ch->checkpoint_busy = 0;
    if (failed) {
        LOG(E_WARN, L_CHANGES, "cannot write checkpoint %s: %s", ch->checkpoint_id, resp->errmsg);
        ch->checkpoint_dirty = 1; /* try again with the next tick */
    } else {
        LOG(E_DEBUG, L_CHANGES, "checkpoint %s written", ch->checkpoint_id);
    }
    json_decref(w->seq);
    free(w);
    /* A write can take long (retries while CouchDB is away) and carries the
     * sequence of when it started: newer changes since then left the
     * checkpoint dirty, and it is written again, also when stopping, or the
     * next start would apply them a second time. */
    if (ch->stopping) {
        if (ch->checkpoint_dirty && !failed) {
            save_checkpoint(ch);
            if (ch->checkpoint_busy)
                return;
        }
        ch->checkpoint_dirty = 0; /* a failed write at stop is not retried */
        finish_stop(ch);
    } else if (ch->checkpoint_dirty && !ev_is_active(&ch->checkpoint_timer)) {
        ev_timer_start(ch->loop, &ch->checkpoint_timer);
    }
}

static void save_checkpoint(struct changes *ch)
{
    if (ch->checkpoint_busy || !ch->checkpoint_dirty || !ch->since)
        return;
    struct checkpoint_write *w = calloc(1, sizeof(*w));
    if (!w)
        return;
    w->ch = ch;
    w->seq = json_incref(ch->since);
    ch->checkpoint_dirty = 0;
    ch->checkpoint_busy = 1;
    int err = couch_update(ch->couch, ch->db, ch->checkpoint_id, checkpoint_apply, w,
                           checkpoint_written, w);
    if (err < 0) {
        ch->checkpoint_busy = 0;
        ch->checkpoint_dirty = 1;
        json_decref(w->seq);
        free(w);
    }
}

static void checkpoint_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    save_checkpoint(t->data);
}

/* ---- the feed ---- */

static int handle_row(struct changes *ch, json_t *row)
{
    const char *id = json_string_value(json_object_get(row, "id"));
    json_t *seq = json_object_get(row, "seq");
    json_t *doc = json_object_get(row, "doc");
    int deleted = json_is_true(json_object_get(row, "deleted"));
    const char *rev = json_string_value(json_object_get(doc, "_rev"));
    if (!rev) {
        json_t *changes = json_object_get(row, "changes");
        rev = json_string_value(json_object_get(json_array_get(changes, 0), "rev"));
    }
    if (!id || !rev) {
        LOG(E_WARN, L_CHANGES, "%s: a feed row without id or rev; skipped", ch->db);
        ch->skipped++;
        return -EINVAL;
    }

    const char *prev = json_string_value(json_object_get(ch->seen, id));
    if (prev && strcmp(prev, rev) == 0) {
        LOG(E_DEBUG, L_CHANGES, "%s %s seen already", id, rev);
    } else if (strncmp(id, "_design/", 8) == 0) {
        /* Design documents are ours (imes init), not state. */
    } else {
        int r = ch->apply(id, rev, deleted, json_is_object(doc) ? doc : NULL, ch->arg);
        if (r < 0) {
            ch->skipped++;
            LOG(E_WARN, L_CHANGES, "%s %s: not understood (%s); skipped", id, rev, strerror(-r));
        } else if (r == 0) {
            ch->applied++;
        }
        json_object_set_new(ch->seen, id, json_string(rev));
    }
    /* CouchDB may send "seq": null with seq_interval; keep the last real one. */
    if (seq && !json_is_null(seq)) {
        json_decref(ch->since);
        ch->since = json_incref(seq);
        ch->checkpoint_dirty = 1;
        if (!ev_is_active(&ch->checkpoint_timer) && !ch->checkpoint_busy)
            ev_timer_start(ch->loop, &ch->checkpoint_timer);
    }
    return 0;
}

static void on_line(const char *line, size_t len, void *arg)
{
    struct changes *ch = arg;
    if (!line) {
        if (ch->state != CHANGES_LIVE)
            LOG(E_INFO, L_CHANGES, "%s: feed is live", ch->db);
        ch->state = CHANGES_LIVE;
        ch->backoff = BACKOFF_FIRST;
        return;
    }
    json_error_t jerr;
    json_t *row = json_loadb(line, len, 0, &jerr);
    if (!json_is_object(row)) {
        LOG(E_WARN, L_CHANGES, "%s: a feed line that is not a JSON object (%s); skipped", ch->db,
            jerr.text);
        json_decref(row);
        return;
    }
    if (json_object_get(row, "error")) {
        /* A 4xx/5xx answer arrives as one line; the stream ends right after. */
        LOG(E_ERROR, L_CHANGES, "%s: feed refused: %s: %s", ch->db,
            json_string_value(json_object_get(row, "error")),
            json_string_value(json_object_get(row, "reason")) ?: "");
        ch->state = CHANGES_DOWN;
    } else if (json_object_get(row, "last_seq") && !json_object_get(row, "id")) {
        /* CouchDB ended the feed (timeout or limit): resume at once. */
        json_t *seq = json_object_get(row, "last_seq");
        if (seq && !json_is_null(seq)) {
            json_decref(ch->since);
            ch->since = json_incref(seq);
        }
    } else {
        handle_row(ch, row);
    }
    json_decref(row);
}

static void on_end(const struct couch_response *resp, void *arg)
{
    struct changes *ch = arg;
    ch->stream = NULL;
    if (ch->stopping) {
        ch->state = CHANGES_STOPPED;
        finish_stop(ch);
        return;
    }
    int clean = !resp->error && resp->status == 200 && ch->state == CHANGES_LIVE;
    LOG(clean ? E_INFO : E_WARN, L_CHANGES, "%s: feed ended (%s)", ch->db,
        resp->error ? resp->errmsg : (resp->status == 200 ? "closed by server" : resp->errmsg));
    if (clean) {
        ch->state = CHANGES_CONNECTING;
        connect_feed(ch);
    } else {
        ch->state = CHANGES_DOWN;
        schedule_reconnect(ch);
    }
}

static void connect_feed(struct changes *ch)
{
    struct buf path;
    buf_init(&path, 1u << 16);
    char *dbpath = couch_path(ch->db, NULL);
    buf_printf(&path, "%s/_changes?feed=continuous&include_docs=true&style=main_only&heartbeat=%d",
               dbpath ? dbpath : "/", ch->heartbeat_ms);
    free(dbpath);
    if (ch->filter)
        buf_printf(&path, "&filter=%s", ch->filter);
    buf_puts(&path, "&since=");
    if (!ch->since) {
        buf_puts(&path, "0");
    } else {
        /* Opaque: a string goes back as it came, URL-encoded; a number as written. */
        char *raw = json_is_string(ch->since) ? strdup(json_string_value(ch->since))
                                              : json_dumps(ch->since, JSON_ENCODE_ANY);
        for (const char *p = raw ? raw : "0"; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                c == '-' || c == '_' || c == '.')
                buf_append(&path, p, 1);
            else
                buf_printf(&path, "%%%02X", c);
        }
        free(raw);
    }
    int idle = (ch->heartbeat_ms * HEARTBEAT_MISSES + 999) / 1000;
    ch->state = CHANGES_CONNECTING;
    ch->stream = couch_stream_get(ch->couch, path.data, idle, on_line, on_end, ch);
    buf_free(&path);
    if (!ch->stream) {
        ch->state = CHANGES_DOWN;
        schedule_reconnect(ch);
    }
}

static void checkpoint_read(const struct couch_response *resp, void *arg)
{
    struct changes *ch = arg;
    ch->pending_get = 0;
    if (ch->stopping) {
        ch->state = CHANGES_STOPPED;
        finish_stop(ch);
        return;
    }
    if (resp->status == 200) {
        json_t *seq = json_object_get(resp->body, "seq");
        if (seq && !json_is_null(seq)) {
            json_decref(ch->since);
            ch->since = json_incref(seq);
        }
        LOG(E_INFO, L_CHANGES, "%s: resuming from checkpoint", ch->db);
    } else if (resp->status == 404) {
        LOG(E_INFO, L_CHANGES, "%s: no checkpoint yet; following from the start", ch->db);
    } else {
        LOG(E_WARN, L_CHANGES, "%s: cannot read checkpoint %s: %s", ch->db, ch->checkpoint_id,
            resp->errmsg);
        ch->state = CHANGES_DOWN;
        schedule_reconnect(ch);
        return;
    }
    connect_feed(ch);
}

static void begin(struct changes *ch)
{
    ch->state = CHANGES_CONNECTING;
    if (ch->since) { /* resumed in this run: memory is newer than the checkpoint */
        connect_feed(ch);
        return;
    }
    ch->pending_get = 1;
    if (couch_get(ch->couch, ch->db, ch->checkpoint_id, checkpoint_read, ch) < 0) {
        ch->pending_get = 0;
        ch->state = CHANGES_DOWN;
        schedule_reconnect(ch);
    }
}

static void reconnect_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct changes *ch = t->data;
    ch->reconnects++;
    begin(ch);
}

static void schedule_reconnect(struct changes *ch)
{
    if (ch->stopping)
        return;
    ev_timer_set(&ch->reconnect, ch->backoff, 0.);
    ev_timer_start(ch->loop, &ch->reconnect);
    LOG(E_DEBUG, L_CHANGES, "%s: reconnecting in %.1f s", ch->db, ch->backoff);
    ch->backoff *= 2;
    if (ch->backoff > BACKOFF_MAX)
        ch->backoff = BACKOFF_MAX;
}

/* ---- life cycle ---- */

struct changes *changes_new(struct couch *c, const struct changes_options *opt,
                            changes_apply_fn apply, void *arg)
{
    struct changes *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->couch = c;
    ch->loop = couch_loop(c);
    ch->db = strdup(opt->db);
    ch->checkpoint_id = strdup(opt->checkpoint_id);
    ch->filter = opt->filter ? strdup(opt->filter) : NULL;
    ch->heartbeat_ms = opt->heartbeat_ms > 0 ? opt->heartbeat_ms : 10000;
    ch->apply = apply;
    ch->arg = arg;
    ch->seen = json_object();
    ch->backoff = BACKOFF_FIRST;
    ev_timer_init(&ch->reconnect, reconnect_cb, 0., 0.);
    ch->reconnect.data = ch;
    ev_timer_init(&ch->checkpoint_timer, checkpoint_timer_cb, CHECKPOINT_INTERVAL, 0.);
    ch->checkpoint_timer.data = ch;
    if (!ch->db || !ch->checkpoint_id || (opt->filter && !ch->filter) || !ch->seen) {
        changes_free(&ch);
        return NULL;
    }
    return ch;
}

int changes_start(struct changes *ch)
{
    if (ch->state != CHANGES_STOPPED)
        return -EALREADY;
    ch->stopping = 0;
    begin(ch);
    return 0;
}

int changes_stop(struct changes *ch, void (*done)(void *arg), void *arg)
{
    if (ch->stopping || ch->state == CHANGES_STOPPED)
        return -EALREADY;
    ch->stopping = 1;
    ch->stop_done = done;
    ch->stop_arg = arg;
    ev_timer_stop(ch->loop, &ch->reconnect);
    ev_timer_stop(ch->loop, &ch->checkpoint_timer);
    if (ch->stream)
        couch_stream_cancel(ch->stream);
    else if (!ch->pending_get)
        ch->state = CHANGES_STOPPED;
    save_checkpoint(ch);
    if (!ch->stream && !ch->checkpoint_busy && !ch->pending_get) {
        ch->stop_done = NULL;
        if (done)
            done(arg);
    }
    return 0;
}

void changes_free(struct changes **chp)
{
    struct changes *ch = *chp;
    if (!ch)
        return;
    ev_timer_stop(ch->loop, &ch->reconnect);
    ev_timer_stop(ch->loop, &ch->checkpoint_timer);
    json_decref(ch->since);
    json_decref(ch->seen);
    free(ch->db);
    free(ch->checkpoint_id);
    free(ch->filter);
    free(ch);
    *chp = NULL;
}

enum changes_state changes_state(const struct changes *ch)
{
    return ch->state;
}

const char *changes_state_name(enum changes_state st)
{
    static const char *const names[] = {"stopped", "connecting", "live", "down"};
    return (unsigned)st < 4 ? names[st] : "?";
}

json_t *changes_last_seq(const struct changes *ch)
{
    return ch->since;
}

unsigned long changes_applied(const struct changes *ch)
{
    return ch->applied;
}

unsigned long changes_skipped(const struct changes *ch)
{
    return ch->skipped;
}

unsigned long changes_reconnects(const struct changes *ch)
{
    return ch->reconnects;
}
