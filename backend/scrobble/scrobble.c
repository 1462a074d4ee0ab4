/*
 * Scrobbling (see scrobble.h). Services are const ops tables: the two
 * Audioscrobbler 2.0 services share theirs, ListenBrainz has its own. Each
 * service talks HTTP through its own CouchDB client instance (couch.h: the
 * project's one curl-multi-on-libev client), made with the service's base
 * URL and asked never to retry: the queue here does that, durably.
 */
#include "scrobble/scrobble.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/log.h"
#include "couch/couch.h"
#include "scrobble/service.h"
#include "state/player.h"

#define TICK_S        1.0   /* listening is counted in steps of this */
#define RETRY_FIRST_S 2.0   /* the queue's backoff: doubling from here ... */
#define RETRY_MAX_S   600.0 /* ... to at most 10 minutes */
#define PENDING_MAX_S 3600  /* an approval link older than this is forgotten */
#define NAME_MAX_LEN  64

struct svc;
struct scrobble_op;
struct send;

struct svc_ops {
    const char *kind; /* "approve" or "token" */
    /* Starts linking for op (token: what the user pasted). */
    int (*link)(struct svc *v, struct scrobble_op *op, const char *token);
    /* Finishes an approval (NULL for token services). */
    int (*complete)(struct svc *v, struct scrobble_op *op, const char *pending_token);
    /* Now playing (scrobble 0) or a scrobble; cb gets the raw answer. */
    int (*send)(struct svc *v, const char *key, const struct scrobble_track *t, int scrobble,
                couch_cb cb, void *arg);
    enum scrobble_outcome (*outcome)(const struct couch_response *r, char *msg, size_t len);
};

struct svc {
    const struct svc_ops *ops;
    const char *name, *label;
    char *key, *secret, *api, *auth;
    struct couch *http; /* NULL: off */
};

struct session {
    char user[NAME_MAX_LEN + 1];
    int svc;
    char *key;
    char name[128];
    struct session *next;
};

struct pending { /* an approval link handed out, waiting for "complete" */
    char user[NAME_MAX_LEN + 1];
    int svc;
    char token[128];
    time_t at;
    struct pending *next;
};

struct listener {
    char user[NAME_MAX_LEN + 1];
    double heard;
    int now_playing_sent, scrobbled;
    struct listener *next;
};

struct chan {
    struct scrobble *s;
    char name[NAME_MAX_LEN + 1];
    char entry[256];
    char file[256];
    unsigned gen; /* counts tracks: a metadata answer for an older one is dropped */
    int playing;
    int meta; /* 1 loaded, -1 unusable */
    struct scrobble_track track;
    double last_tick;
    struct listener *listeners;
    struct chan *next;
};

struct qitem {
    struct scrobble *s;
    char id[256];
    char *rev;   /* NULL until written */
    int writing; /* its PUT is in flight: not sent (nor freed) meanwhile */
    char user[NAME_MAX_LEN + 1];
    int svc;
    struct scrobble_track track;
    int attempts, busy;
    double next_try;
    struct qitem *next;
};

enum { SVC_LASTFM, SVC_LIBREFM, SVC_LISTENBRAINZ, NSVC };

struct scrobble {
    struct ev_loop *loop;
    struct couch *couch;
    char *db, *private_db;
    struct player *player;
    struct svc svcs[NSVC];
    struct session *sessions;
    struct pending *pendings;
    struct chan *chans;
    struct qitem *queue;
    struct scrobble_op *ops;
    struct send *sends; /* to the services, in flight */
    unsigned queue_seq;
    int sessions_loaded; /* the queue waits for them: a retry needs its key */
    int subscribed;
    ev_timer tick;
};

struct scrobble_op {
    struct scrobble *s;
    struct scrobble_op *next_live, **prev_live; /* s->ops: freed with s if still out */
    struct ev_loop *loop;
    ev_timer later; /* answers go out from the loop, never inside scrobble_api */
    int status;
    json_t *answer;
    char user[NAME_MAX_LEN + 1];
    int svc;
    scrobble_reply_fn reply;
    void *arg;
    char name[128];
    char *key;
};

/* ---- replies ---- */

static void op_free(struct scrobble_op *op)
{
    *op->prev_live = op->next_live;
    if (op->next_live)
        op->next_live->prev_live = op->prev_live;
    ev_timer_stop(op->loop, &op->later);
    free(op->key);
    free(op);
}

static void op_deliver(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct scrobble_op *op = w->data;
    if (op->reply)
        op->reply(op->status, op->answer, op->arg);
    else
        json_decref(op->answer);
    op_free(op);
}

static void op_finish(struct scrobble_op *op, int status, json_t *body)
{
    op->status = status;
    op->answer = body;
    ev_timer_start(op->loop, &op->later);
}

static void op_error(struct scrobble_op *op, int status, const char *error, const char *reason)
{
    op_finish(op, status, json_pack("{s:s,s:s}", "error", error, "reason", reason));
}

void scrobble_op_cancel(struct scrobble_op **op)
{
    if (op && *op)
        (*op)->reply = NULL; /* the answer in flight frees it */
    if (op)
        *op = NULL;
}

/* ---- sessions ---- */

static struct session *session_find(struct scrobble *s, const char *user, int svc)
{
    for (struct session *x = s->sessions; x; x = x->next)
        if (x->svc == svc && !strcmp(x->user, user))
            return x;
    return NULL;
}

static void session_forget(struct scrobble *s, const char *user, int svc)
{
    for (struct session **p = &s->sessions; *p; p = &(*p)->next) {
        if ((*p)->svc == svc && !strcmp((*p)->user, user)) {
            struct session *x = *p;
            *p = x->next;
            free(x->key);
            free(x);
            return;
        }
    }
}

static int svc_index(struct scrobble *s, const char *name)
{
    for (int i = 0; name && i < NSVC; i++)
        if (!strcmp(s->svcs[i].name, name))
            return i;
    return -1;
}

static int session_remember(struct scrobble *s, const char *user, int svc, const char *key,
                            const char *name)
{
    session_forget(s, user, svc);
    struct session *x = calloc(1, sizeof(*x));
    if (!x || !(x->key = strdup(key))) {
        free(x);
        return -ENOMEM;
    }
    snprintf(x->user, sizeof(x->user), "%s", user);
    snprintf(x->name, sizeof(x->name), "%s", name ? name : "");
    x->svc = svc;
    x->next = s->sessions;
    s->sessions = x;
    return 0;
}

static char *session_docid(const char *user, const char *svc)
{
    size_t n = strlen(user) + strlen(svc) + 32;
    char *id = malloc(n);
    if (id)
        snprintf(id, n, "scrobble:session:%s:%s", user, svc);
    return id;
}

static int session_apply(json_t *doc, void *arg)
{
    struct scrobble_op *op = arg;
    json_object_set_new(doc, "type", json_string("scrobble-session"));
    json_object_set_new(doc, "user", json_string(op->user));
    json_object_set_new(doc, "service", json_string(op->s->svcs[op->svc].name));
    json_object_set_new(doc, "name", json_string(op->name));
    json_object_set_new(doc, "key", json_string(op->key));
    json_object_set_new(doc, "linked_at", json_integer((json_int_t)time(NULL)));
    return 1;
}

static void session_saved(const struct couch_response *r, void *arg)
{
    struct scrobble_op *op = arg;
    struct svc *v = &op->s->svcs[op->svc];
    if (r->error || r->status >= 300) {
        LOG(E_ERROR, L_SCROBBLE, "%s: cannot store the %s session of %s: %s", v->name, v->label,
            op->user, r->errmsg);
        op_error(op, 503, "unavailable", "The link worked but could not be saved; try again.");
        return;
    }
    session_remember(op->s, op->user, op->svc, op->key, op->name);
    LOG(E_INFO, L_SCROBBLE, "%s linked to %s as %s", op->user, v->label, op->name);
    op_finish(op, 200,
              json_pack("{s:s,s:b,s:s}", "service", v->name, "linked", 1, "name", op->name));
}

/* The service gave a key: store it where members cannot read it. */
static void session_store(struct scrobble_op *op, const char *name, const char *key)
{
    snprintf(op->name, sizeof(op->name), "%s", name);
    char *id = session_docid(op->user, op->s->svcs[op->svc].name);
    char *k = strdup(key); /* key may be op->key itself (a token service) */
    free(op->key);
    op->key = k;
    if (!id || !op->key ||
        couch_update(op->s->couch, op->s->private_db, id, session_apply, op, session_saved, op) < 0)
        op_error(op, 503, "unavailable", "out of memory");
    free(id);
}

/* ---- Audioscrobbler 2.0 (Last.fm, Libre.fm) ---- */

static enum scrobble_outcome as_outcome(const struct couch_response *r, char *msg, size_t len)
{
    int code;
    return scrobble_as_outcome(r->error, r->status, r->body, &code, msg, len);
}

static int as_call(struct svc *v, const char *method, struct scrobble_param *p, size_t n, int post,
                   couch_cb cb, void *arg)
{
    char *form = scrobble_as_form(p, n, v->secret);
    if (!form)
        return -ENOMEM;
    int r;
    if (post) {
        r = couch_request_text(v->http, "POST", "/", "application/x-www-form-urlencoded", form,
                               NULL, COUCH_NO_RETRY, cb, arg);
    } else {
        size_t len = strlen(form) + 3;
        char *path = malloc(len);
        r = path ? (snprintf(path, len, "/?%s", form),
                    couch_request(v->http, "GET", path, NULL, NULL, COUCH_NO_RETRY, cb, arg))
                 : -ENOMEM;
        free(path);
    }
    free(form);
    LOG(E_DEBUG, L_SCROBBLE, "%s: %s", v->name, method);
    return r;
}

static void as_token_cb(const struct couch_response *r, void *arg)
{
    struct scrobble_op *op = arg;
    struct scrobble *s = op->s;
    struct svc *v = &s->svcs[op->svc];
    char msg[256];
    const char *token = json_string_value(json_object_get(r->body, "token"));
    if (as_outcome(r, msg, sizeof(msg)) != SCROBBLE_OK || !token || strlen(token) >= 128) {
        LOG(E_WARN, L_SCROBBLE, "%s: auth.getToken for %s: %s", v->name, op->user,
            token ? msg : "no token in the answer");
        op_error(op, 502, "service_error", "The service did not give a token; try again later.");
        return;
    }
    struct pending *p = NULL;
    for (struct pending *x = s->pendings; x; x = x->next)
        if (x->svc == op->svc && !strcmp(x->user, op->user))
            p = x;
    if (!p && (p = calloc(1, sizeof(*p)))) {
        p->next = s->pendings;
        s->pendings = p;
    }
    if (!p) {
        op_error(op, 503, "unavailable", "out of memory");
        return;
    }
    snprintf(p->user, sizeof(p->user), "%s", op->user);
    p->svc = op->svc;
    snprintf(p->token, sizeof(p->token), "%s", token);
    p->at = time(NULL);
    char *k = couch_escape(v->key), *t = couch_escape(token);
    json_t *url = json_sprintf("%s?api_key=%s&token=%s", v->auth, k ? k : "", t ? t : "");
    free(k);
    free(t);
    op_finish(op, 200,
              json_pack("{s:s,s:s,s:o}", "service", v->name, "state", "approve", "url",
                        url ? url : json_null()));
}

static int as_link(struct svc *v, struct scrobble_op *op, const char *token)
{
    struct scrobble_param p[] = {{"method", "auth.getToken"}, {"api_key", v->key}};
    return as_call(v, "auth.getToken", p, 2, 0, as_token_cb, op);
}

static void as_session_cb(const struct couch_response *r, void *arg)
{
    struct scrobble_op *op = arg;
    struct svc *v = &op->s->svcs[op->svc];
    char msg[256];
    int code;
    enum scrobble_outcome o =
        scrobble_as_outcome(r->error, r->status, r->body, &code, msg, sizeof(msg));
    json_t *sess = json_object_get(r->body, "session");
    const char *name = json_string_value(json_object_get(sess, "name"));
    const char *key = json_string_value(json_object_get(sess, "key"));
    if (o == SCROBBLE_OK && name && key && strlen(name) < 128) {
        session_store(op, name, key);
        return;
    }
    LOG(E_INFO, L_SCROBBLE, "%s: auth.getSession for %s: %s", v->name, op->user,
        o == SCROBBLE_OK ? "no session in the answer" : msg);
    if (code == 14) {
        char why[256];
        snprintf(why, sizeof(why),
                 "%s has not been told yet that you allow IMES: open the link, approve, then "
                 "press Done.",
                 v->label);
        op_error(op, 409, "not_approved", why);
    } else if (code == 4 || code == 15) {
        op_error(op, 410, "expired", "That approval link expired; press Link again.");
    } else {
        op_error(op, 502, "service_error", "The service did not answer as expected; try again.");
    }
}

static int as_complete(struct svc *v, struct scrobble_op *op, const char *token)
{
    struct scrobble_param p[] = {
        {"method", "auth.getSession"}, {"api_key", v->key}, {"token", token}};
    return as_call(v, "auth.getSession", p, 3, 0, as_session_cb, op);
}

static int as_send(struct svc *v, const char *key, const struct scrobble_track *t, int scrobble,
                   couch_cb cb, void *arg)
{
    char ts[32], dur[32];
    snprintf(ts, sizeof(ts), "%lld", t->timestamp);
    snprintf(dur, sizeof(dur), "%d", (int)(t->duration + 0.5));
    struct scrobble_param p[8] = {
        {"method", scrobble ? "track.scrobble" : "track.updateNowPlaying"},
        {"api_key", v->key},
        {"sk", key},
        {"artist", t->artist},
        {"track", t->title}};
    size_t n = 5;
    if (t->album[0])
        p[n++] = (struct scrobble_param){"album", t->album};
    if (t->duration > 0)
        p[n++] = (struct scrobble_param){"duration", dur};
    if (scrobble)
        p[n++] = (struct scrobble_param){"timestamp", ts};
    return as_call(v, p[0].value, p, n, 1, cb, arg);
}

static const struct svc_ops audioscrobbler_ops = {
    .kind = "approve",
    .link = as_link,
    .complete = as_complete,
    .send = as_send,
    .outcome = as_outcome,
};

/* ---- ListenBrainz ---- */

static enum scrobble_outcome lb_outcome(const struct couch_response *r, char *msg, size_t len)
{
    return scrobble_lb_outcome(r->error, r->status, r->body, msg, len);
}

static void lb_validated(const struct couch_response *r, void *arg)
{
    struct scrobble_op *op = arg;
    struct svc *v = &op->s->svcs[op->svc];
    char msg[256];
    enum scrobble_outcome o = lb_outcome(r, msg, sizeof(msg));
    const char *name = json_string_value(json_object_get(r->body, "user_name"));
    if (o == SCROBBLE_OK && json_is_true(json_object_get(r->body, "valid")) && name &&
        strlen(name) < 128) {
        session_store(op, name, op->key);
        return;
    }
    LOG(E_INFO, L_SCROBBLE, "%s: token of %s not accepted: %s", v->name, op->user,
        o == SCROBBLE_OK ? "valid is not true" : msg);
    if (o == SCROBBLE_RETRY)
        op_error(op, 502, "service_error", "ListenBrainz cannot be reached; try again later.");
    else
        op_error(op, 400, "bad_token",
                 "ListenBrainz did not accept this token. Copy your user token from "
                 "listenbrainz.org/settings and paste it again.");
}

static int lb_link(struct svc *v, struct scrobble_op *op, const char *token)
{
    if (!token || !*token || strlen(token) > 256 || strpbrk(token, "\r\n")) {
        op_error(op, 400, "bad_token", "Paste your ListenBrainz user token first.");
        return 0;
    }
    if (!(op->key = strdup(token)))
        return -ENOMEM;
    char auth[300];
    snprintf(auth, sizeof(auth), "Authorization: Token %s", token);
    const char *const h[] = {auth, NULL};
    return couch_request(v->http, "GET", "/1/validate-token", NULL, h, COUCH_NO_RETRY, lb_validated,
                         op);
}

static int lb_send(struct svc *v, const char *key, const struct scrobble_track *t, int scrobble,
                   couch_cb cb, void *arg)
{
    json_t *body = scrobble_lb_payload(t, !scrobble);
    if (!body)
        return -ENOMEM;
    char auth[300];
    snprintf(auth, sizeof(auth), "Authorization: Token %s", key);
    const char *const h[] = {auth, NULL};
    int r = couch_request(v->http, "POST", "/1/submit-listens", body, h, COUCH_NO_RETRY, cb, arg);
    json_decref(body);
    return r;
}

static const struct svc_ops listenbrainz_ops = {
    .kind = "token",
    .link = lb_link,
    .complete = NULL,
    .send = lb_send,
    .outcome = lb_outcome,
};

/* ---- the queue ---- */

static void qitem_free(struct qitem *q)
{
    free(q->rev);
    free(q);
}

static void queue_remove(struct scrobble *s, struct qitem *q)
{
    for (struct qitem **p = &s->queue; *p; p = &(*p)->next)
        if (*p == q) {
            *p = q->next;
            break;
        }
}

static json_t *track_json(const struct scrobble_track *t)
{
    return json_pack("{s:s,s:s,s:s,s:f,s:I}", "artist", t->artist, "title", t->title, "album",
                     t->album, "duration", t->duration, "timestamp", (json_int_t)t->timestamp);
}

static int track_parse(const json_t *j, struct scrobble_track *t)
{
    memset(t, 0, sizeof(*t));
    const char *a = json_string_value(json_object_get(j, "artist"));
    const char *ti = json_string_value(json_object_get(j, "title"));
    const char *al = json_string_value(json_object_get(j, "album"));
    json_t *ts = json_object_get(j, "timestamp");
    if (!a || !ti || !json_is_integer(ts))
        return -EINVAL;
    snprintf(t->artist, sizeof(t->artist), "%s", a);
    snprintf(t->title, sizeof(t->title), "%s", ti);
    snprintf(t->album, sizeof(t->album), "%s", al ? al : "");
    t->duration = json_number_value(json_object_get(j, "duration"));
    t->timestamp = (long long)json_integer_value(ts);
    return 0;
}

static void queue_deleted(const struct couch_response *r, void *arg)
{
    struct qitem *q = arg;
    if (r->error || (r->status >= 300 && r->status != 404))
        LOG(E_WARN, L_SCROBBLE, "cannot delete %s: %s", q->id, r->errmsg);
    qitem_free(q);
}

/* Done with an item (sent, or refused for good): out of memory and CouchDB. */
static void queue_done(struct scrobble *s, struct qitem *q)
{
    queue_remove(s, q);
    if (!q->rev || couch_delete(s->couch, s->private_db, q->id, q->rev, queue_deleted, q) < 0)
        qitem_free(q);
}

static void queue_written(const struct couch_response *r, void *arg)
{
    struct qitem *q = arg;
    const char *rev = json_string_value(json_object_get(r->body, "rev"));
    q->writing = 0;
    if (r->error || r->status >= 300 || !rev) {
        LOG(E_ERROR, L_SCROBBLE, "cannot queue %s: %s (kept in memory only)", q->id, r->errmsg);
        return;
    }
    free(q->rev);
    q->rev = strdup(rev);
    LOG(E_INFO, L_SCROBBLE, "queued %s for a later try", q->id);
}

static void queue_add(struct scrobble *s, const char *user, int svc, const struct scrobble_track *t)
{
    struct qitem *q = calloc(1, sizeof(*q));
    if (!q)
        return;
    q->s = s;
    snprintf(q->user, sizeof(q->user), "%s", user);
    q->svc = svc;
    q->track = *t;
    q->attempts = 1;
    q->next_try = ev_now(s->loop) + RETRY_FIRST_S;
    snprintf(q->id, sizeof(q->id), "scrobble:queue:%lld:%s:%s:%u", t->timestamp, user,
             s->svcs[svc].name, s->queue_seq++);
    struct qitem **p = &s->queue; /* oldest first */
    while (*p)
        p = &(*p)->next;
    *p = q;
    json_t *doc = json_pack("{s:s,s:s,s:s,s:o}", "type", "scrobble-queue", "user", user, "service",
                            s->svcs[svc].name, "track", track_json(t));
    if (doc && couch_put(s->couch, s->private_db, q->id, doc, queue_written, q) == 0)
        q->writing = 1;
    else
        LOG(E_ERROR, L_SCROBBLE, "cannot queue %s (kept in memory only)", q->id);
    json_decref(doc);
}

/* ---- sending ---- */

struct send {
    struct scrobble *s;
    struct send *next_live, **prev_live; /* s->sends */
    char user[NAME_MAX_LEN + 1];
    int svc;
    int scrobble;
    struct scrobble_track track;
    struct qitem *q; /* a retry of this queued item, or NULL */
};

static void send_free(struct send *x)
{
    if (x->prev_live) {
        *x->prev_live = x->next_live;
        if (x->next_live)
            x->next_live->prev_live = x->prev_live;
    }
    free(x);
}

static void sent_cb(const struct couch_response *r, void *arg)
{
    struct send *x = arg;
    struct scrobble *s = x->s;
    struct svc *v = &s->svcs[x->svc];
    char msg[256];
    enum scrobble_outcome o = v->ops->outcome(r, msg, sizeof(msg));
    const char *what = x->scrobble ? "scrobble" : "now playing";
    if (o == SCROBBLE_OK) {
        LOG(E_INFO, L_SCROBBLE, "%s: %s of %s: %s - %s", v->name, what, x->user, x->track.artist,
            x->track.title);
        if (x->q)
            queue_done(s, x->q);
    } else if (o == SCROBBLE_RETRY && x->scrobble) {
        LOG(E_WARN, L_SCROBBLE, "%s: %s of %s (%s - %s) failed, will retry: %s", v->name, what,
            x->user, x->track.artist, x->track.title, msg);
        if (x->q) {
            struct qitem *q = x->q;
            double delay = RETRY_FIRST_S;
            for (int i = 1; i < q->attempts && delay < RETRY_MAX_S; i++)
                delay *= 2;
            q->attempts++;
            q->next_try = ev_now(s->loop) + (delay < RETRY_MAX_S ? delay : RETRY_MAX_S);
            q->busy = 0;
        } else {
            queue_add(s, x->user, x->svc, &x->track);
        }
    } else {
        LOG(E_WARN, L_SCROBBLE, "%s: %s of %s (%s - %s) refused%s: %s", v->name, what, x->user,
            x->track.artist, x->track.title, o == SCROBBLE_AUTH ? " (link the account again)" : "",
            msg);
        if (x->q)
            queue_done(s, x->q);
    }
    send_free(x);
}

static void send_one(struct scrobble *s, const char *user, int svc, const struct scrobble_track *t,
                     int scrobble, struct qitem *q)
{
    struct session *ses = session_find(s, user, svc);
    struct svc *v = &s->svcs[svc];
    struct send *x = calloc(1, sizeof(*x));
    if (!ses || !v->http || !x) {
        if (q) {
            LOG(E_INFO, L_SCROBBLE, "%s: dropping %s: %s is not linked any more", v->name, q->id,
                user);
            queue_done(s, q);
        }
        free(x);
        return;
    }
    x->s = s;
    snprintf(x->user, sizeof(x->user), "%s", user);
    x->svc = svc;
    x->scrobble = scrobble;
    x->track = *t;
    x->q = q;
    if (q)
        q->busy = 1;
    if (v->ops->send(v, ses->key, t, scrobble, sent_cb, x) < 0) {
        LOG(E_ERROR, L_SCROBBLE, "%s: cannot send for %s", v->name, user);
        if (q)
            q->busy = 0;
        else if (scrobble)
            queue_add(s, user, svc, t);
        free(x);
        return;
    }
    x->next_live = s->sends;
    if (s->sends)
        s->sends->prev_live = &x->next_live;
    s->sends = x;
    x->prev_live = &s->sends;
}

static void history_written(const struct couch_response *r, void *arg)
{
    if (r->error || r->status >= 300)
        LOG(E_WARN, L_SCROBBLE, "cannot write listening history: %s", r->errmsg);
}

/* history:<user>:<began>:<file> in imes_private: what counted as played. */
static void history_add(struct scrobble *s, const char *user, const struct chan *c)
{
    char id[512];
    snprintf(id, sizeof(id), "history:%s:%lld:%s", user, c->track.timestamp, c->file);
    json_t *doc = json_pack("{s:s,s:s,s:s,s:s,s:o}", "type", "history", "user", user, "channel",
                            c->name, "file", c->file, "track", track_json(&c->track));
    if (doc && couch_put(s->couch, s->private_db, id, doc, history_written, NULL) < 0)
        LOG(E_WARN, L_SCROBBLE, "cannot write %s", id);
    json_decref(doc);
}

static void send_all(struct scrobble *s, const char *user, const struct scrobble_track *t,
                     int scrobble)
{
    for (int i = 0; i < NSVC; i++)
        if (session_find(s, user, i))
            send_one(s, user, i, t, scrobble, NULL);
}

/* ---- following the player ---- */

static struct chan *chan_get(struct scrobble *s, const char *name)
{
    for (struct chan *c = s->chans; c; c = c->next)
        if (!strcmp(c->name, name))
            return c;
    struct chan *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->s = s;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->next = s->chans;
    s->chans = c;
    return c;
}

static void listeners_clear(struct chan *c)
{
    while (c->listeners) {
        struct listener *l = c->listeners;
        c->listeners = l->next;
        free(l);
    }
}

struct meta_req {
    struct scrobble *s;
    char chan[NAME_MAX_LEN + 1];
    unsigned gen;
};

static void meta_cb(const struct couch_response *r, void *arg)
{
    struct meta_req *m = arg;
    struct chan *c = NULL;
    for (struct chan *x = m->s->chans; x; x = x->next)
        if (!strcmp(x->name, m->chan))
            c = x;
    if (c && c->gen == m->gen) {
        long long began = c->track.timestamp;
        int usable = r->status == 200 && scrobble_track_from_file(r->body, &c->track) == 0;
        c->track.timestamp = began;
        if (usable) {
            c->meta = 1;
        } else {
            c->meta = -1;
            LOG(E_INFO, L_SCROBBLE, "channel %s: %s cannot be scrobbled (%s)", c->name, c->file,
                r->status == 200 ? "no artist or title" : r->errmsg);
        }
    }
    free(m);
}

static void on_event(const json_t *ev, void *arg)
{
    struct scrobble *s = arg;
    if (strcmp(json_string_value(json_object_get(ev, "type")) ?: "", "channel") != 0)
        return;
    const char *name = json_string_value(json_object_get(ev, "name"));
    const char *entry = json_string_value(json_object_get(ev, "entry"));
    const char *file = json_string_value(json_object_get(ev, "file"));
    const char *state = json_string_value(json_object_get(ev, "state"));
    if (!name || !entry || !file || !state)
        return;
    struct chan *c = chan_get(s, name);
    if (!c)
        return;
    int was_playing = c->playing;
    c->playing = !strcmp(state, "playing") && *file;
    if (c->playing && !was_playing)
        c->last_tick = ev_now(s->loop); /* a pause does not count as listening */
    if (!strcmp(c->entry, entry) && !strcmp(c->file, file))
        return;
    /* another track: whatever was heard of the last one stays as it is */
    snprintf(c->entry, sizeof(c->entry), "%s", entry);
    snprintf(c->file, sizeof(c->file), "%s", file);
    listeners_clear(c);
    c->gen++;
    c->meta = 0;
    c->last_tick = ev_now(s->loop);
    memset(&c->track, 0, sizeof(c->track));
    if (!*file)
        return;
    /* when it began: a track resumed mid-way (after a restart) began earlier */
    double pos = json_number_value(json_object_get(ev, "position"));
    c->track.timestamp = (long long)time(NULL) - (pos > 0 && pos < 1e7 ? (long long)pos : 0);
    struct meta_req *m = calloc(1, sizeof(*m));
    if (!m)
        return;
    m->s = s;
    snprintf(m->chan, sizeof(m->chan), "%s", name);
    m->gen = c->gen;
    if (couch_get(s->couch, s->db, file, meta_cb, m) < 0)
        free(m);
}

static void chan_tick(struct scrobble *s, struct chan *c, double now)
{
    double dt = now - c->last_tick;
    c->last_tick = now;
    if (!c->playing || c->meta < 0)
        return;
    json_t *aud = player_channel_audience(s->player, c->name);
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
    {
        const char *user = json_string_value(v);
        struct listener *l = c->listeners;
        while (l && strcmp(l->user, user))
            l = l->next;
        if (!l) {
            if (!(l = calloc(1, sizeof(*l))))
                break;
            snprintf(l->user, sizeof(l->user), "%s", user);
            l->next = c->listeners;
            c->listeners = l;
            dt = dt > TICK_S ? TICK_S : dt; /* counted from now on */
        }
        l->heard += dt;
        if (c->meta != 1)
            continue;
        if (!l->now_playing_sent) {
            l->now_playing_sent = 1;
            send_all(s, user, &c->track, 0);
        }
        double need = scrobble_threshold(c->track.duration);
        if (!l->scrobbled && need > 0 && l->heard >= need) {
            l->scrobbled = 1;
            LOG(E_DEBUG, L_SCROBBLE, "channel %s: %s heard %.0f s of %s - %s: it counts", c->name,
                user, l->heard, c->track.artist, c->track.title);
            history_add(s, user, c);
            send_all(s, user, &c->track, 1);
        }
    }
    json_decref(aud);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct scrobble *s = w->data;
    double now = ev_now(loop);
    for (struct chan *c = s->chans; c; c = c->next)
        chan_tick(s, c, now);
    for (struct qitem *q = s->sessions_loaded ? s->queue : NULL, *next; q; q = next) {
        next = q->next;
        if (!q->busy && !q->writing && q->next_try <= now)
            send_one(s, q->user, q->svc, &q->track, 1, q);
    }
    for (struct pending **p = &s->pendings; *p;) {
        if (time(NULL) - (*p)->at > PENDING_MAX_S) {
            struct pending *x = *p;
            *p = x->next;
            free(x);
        } else {
            p = &(*p)->next;
        }
    }
}

/* ---- loading ---- */

static void loaded_sessions(const struct couch_response *r, void *arg)
{
    struct scrobble *s = arg;
    size_t i;
    json_t *row;
    if (r->status != 200)
        LOG(E_ERROR, L_SCROBBLE, "cannot read the scrobbler sessions: %s", r->errmsg);
    else
        s->sessions_loaded = 1;
    json_array_foreach(json_object_get(r->body, "rows"), i, row)
    {
        json_t *doc = json_object_get(row, "doc");
        const char *user = json_string_value(json_object_get(doc, "user"));
        const char *key = json_string_value(json_object_get(doc, "key"));
        int svc = svc_index(s, json_string_value(json_object_get(doc, "service")));
        if (user && key && svc >= 0 && strlen(user) <= NAME_MAX_LEN)
            session_remember(s, user, svc, key, json_string_value(json_object_get(doc, "name")));
    }
}

static void loaded_queue(const struct couch_response *r, void *arg)
{
    struct scrobble *s = arg;
    size_t i, n = 0;
    json_t *row;
    if (r->status != 200)
        LOG(E_ERROR, L_SCROBBLE, "cannot read the scrobble queue: %s", r->errmsg);
    json_array_foreach(json_object_get(r->body, "rows"), i, row)
    {
        json_t *doc = json_object_get(row, "doc");
        const char *id = json_string_value(json_object_get(doc, "_id"));
        const char *rev = json_string_value(json_object_get(doc, "_rev"));
        const char *user = json_string_value(json_object_get(doc, "user"));
        int svc = svc_index(s, json_string_value(json_object_get(doc, "service")));
        struct qitem *q = calloc(1, sizeof(*q));
        if (!q)
            break;
        if (!id || !rev || !user || svc < 0 || strlen(id) >= sizeof(q->id) ||
            strlen(user) > NAME_MAX_LEN ||
            track_parse(json_object_get(doc, "track"), &q->track) < 0 || !(q->rev = strdup(rev))) {
            LOG(E_WARN, L_SCROBBLE, "ignoring malformed queue document %s", id ? id : "?");
            free(q);
            continue;
        }
        q->s = s;
        snprintf(q->id, sizeof(q->id), "%s", id);
        snprintf(q->user, sizeof(q->user), "%s", user);
        q->svc = svc;
        q->attempts = 1;
        q->next_try = 0; /* now: the service may be back */
        struct qitem **p = &s->queue;
        while (*p)
            p = &(*p)->next;
        *p = q;
        n++;
    }
    if (n)
        LOG(E_INFO, L_SCROBBLE, "%zu queued scrobbles to send", n);
}

static int load_prefix(struct scrobble *s, const char *prefix, couch_cb cb)
{
    char *q = couch_prefix_query(prefix, NULL, 0, 1);
    char *p = couch_path(s->private_db, NULL);
    int r = -ENOMEM;
    if (q && p) {
        size_t n = strlen(p) + strlen(q) + 2;
        char *path = malloc(n);
        if (path) {
            snprintf(path, n, "%s/%s", p, q);
            r = couch_request(s->couch, "GET", path, NULL, NULL, COUCH_RETRY_LONG, cb, s);
            free(path);
        }
    }
    free(q);
    free(p);
    return r;
}

int scrobble_start(struct scrobble *s)
{
    int r;
    if ((r = load_prefix(s, "scrobble:session:", loaded_sessions)) < 0 ||
        (r = load_prefix(s, "scrobble:queue:", loaded_queue)) < 0)
        return r;
    if ((r = player_subscribe(s->player, on_event, s)) < 0)
        return r;
    s->subscribed = 1;
    ev_timer_start(s->loop, &s->tick);
    return 0;
}

/* ---- the web app's requests ---- */

static json_t *services_json(struct scrobble *s, const char *user)
{
    json_t *list = json_array();
    for (int i = 0; list && i < NSVC; i++) {
        struct svc *v = &s->svcs[i];
        struct session *x = session_find(s, user, i);
        json_array_append_new(list,
                              json_pack("{s:s,s:s,s:b,s:s,s:b,s:s}", "service", v->name, "label",
                                        v->label, "enabled", v->http != NULL, "kind", v->ops->kind,
                                        "linked", x != NULL, "name", x ? x->name : ""));
    }
    return json_pack("{s:o}", "services", list ? list : json_array());
}

static void unlinked_get(const struct couch_response *r, void *arg);

static void unlinked(const struct couch_response *r, void *arg)
{
    struct scrobble_op *op = arg;
    if (r->error || (r->status >= 300 && r->status != 404)) {
        op_error(op, 503, "unavailable", "The link could not be removed; try again.");
        return;
    }
    LOG(E_INFO, L_SCROBBLE, "%s unlinked from %s", op->user, op->s->svcs[op->svc].label);
    op_finish(op, 200, json_pack("{s:s,s:b}", "service", op->s->svcs[op->svc].name, "linked", 0));
}

static void unlinked_get(const struct couch_response *r, void *arg)
{
    struct scrobble_op *op = arg;
    const char *rev = json_string_value(json_object_get(r->body, "_rev"));
    char *id = session_docid(op->user, op->s->svcs[op->svc].name);
    if (r->status == 404) {
        free(id);
        unlinked(r, op);
        return;
    }
    if (!rev || !id || couch_delete(op->s->couch, op->s->private_db, id, rev, unlinked, op) < 0)
        op_error(op, 503, "unavailable", "The link could not be removed; try again.");
    free(id);
}

struct scrobble_op *scrobble_api(struct scrobble *s, const char *user, const char *method,
                                 const char *body, size_t len, scrobble_reply_fn reply, void *arg)
{
    struct scrobble_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->s = s;
    op->loop = s->loop;
    ev_timer_init(&op->later, op_deliver, 0., 0.);
    op->later.data = op;
    op->next_live = s->ops;
    if (s->ops)
        s->ops->prev_live = &op->next_live;
    s->ops = op;
    op->prev_live = &s->ops;
    op->reply = reply;
    op->arg = arg;
    snprintf(op->user, sizeof(op->user), "%s", user);
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD")) {
        op_finish(op, 200, services_json(s, user));
        return op;
    }
    json_error_t jerr;
    json_t *req = json_loadb(body, len, 0, &jerr);
    const char *action = json_string_value(json_object_get(req, "action"));
    const char *service = json_string_value(json_object_get(req, "service"));
    const char *token = json_string_value(json_object_get(req, "token"));
    int svc = svc_index(s, service);
    int r = 0;
    if (!action || svc < 0) {
        op_error(op, 400, "bad_request",
                 "Send {\"action\": \"link\"|\"complete\"|\"unlink\", \"service\": "
                 "\"lastfm\"|\"librefm\"|\"listenbrainz\"}.");
    } else if (op->svc = svc, !s->svcs[svc].http && strcmp(action, "unlink") != 0) {
        op_error(op, 409, "not_configured",
                 "This service is not set up on this server (config.yaml scrobbler: section).");
    } else if (!strcmp(action, "link")) {
        r = s->svcs[svc].ops->link(&s->svcs[svc], op, token);
    } else if (!strcmp(action, "complete") && s->svcs[svc].ops->complete) {
        struct pending *p = NULL;
        for (struct pending *x = s->pendings; x; x = x->next)
            if (x->svc == svc && !strcmp(x->user, user))
                p = x;
        if (!p) {
            op_error(op, 409, "not_started", "Press Link first.");
        } else {
            r = s->svcs[svc].ops->complete(&s->svcs[svc], op, p->token);
        }
    } else if (!strcmp(action, "unlink")) {
        session_forget(s, user, svc);
        char *id = session_docid(user, s->svcs[svc].name);
        r = id ? couch_get(s->couch, s->private_db, id, unlinked_get, op) : -ENOMEM;
        free(id);
    } else {
        op_error(op, 400, "bad_request", "Unknown action.");
    }
    json_decref(req);
    if (r < 0)
        op_error(op, 503, "unavailable", "The request could not be sent; try again.");
    return op;
}

/* ---- life cycle ---- */

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

struct scrobble *scrobble_new(struct ev_loop *loop, const struct scrobble_options *o)
{
    struct scrobble *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    s->couch = o->couch;
    s->player = o->player;
    s->db = strdup(o->db);
    s->private_db = strdup(o->private_db);
    const struct config *cfg = o->cfg;
    struct {
        const char *name, *label, *key, *secret, *api, *auth;
        const struct svc_ops *ops;
    } def[NSVC] = {
        {"lastfm", "Last.fm", cfg->scrobbler.lastfm_key, cfg->scrobbler.lastfm_secret,
         cfg->scrobbler.lastfm_api, cfg->scrobbler.lastfm_auth, &audioscrobbler_ops},
        {"librefm", "Libre.fm", cfg->scrobbler.librefm_key, cfg->scrobbler.librefm_secret,
         cfg->scrobbler.librefm_api, cfg->scrobbler.librefm_auth, &audioscrobbler_ops},
        {"listenbrainz", "ListenBrainz", "", "", cfg->scrobbler.listenbrainz_api, "",
         &listenbrainz_ops},
    };
    for (int i = 0; i < NSVC; i++) {
        struct svc *v = &s->svcs[i];
        v->name = def[i].name;
        v->label = def[i].label;
        v->ops = def[i].ops;
        v->key = dup_or_empty(def[i].key);
        v->secret = dup_or_empty(def[i].secret);
        v->api = dup_or_empty(def[i].api);
        v->auth = dup_or_empty(def[i].auth);
        int wanted =
            v->api && *v->api &&
            (v->ops == &listenbrainz_ops || (v->key && *v->key && v->secret && *v->secret));
        if (wanted && !(v->http = couch_new(loop, v->api)))
            LOG(E_ERROR, L_SCROBBLE, "%s: cannot use %s", v->label, v->api);
        LOG(E_INFO, L_SCROBBLE, "%s: %s", v->label, v->http ? v->api : "off");
    }
    ev_timer_init(&s->tick, tick_cb, TICK_S, TICK_S);
    s->tick.data = s;
    if (!s->db || !s->private_db) {
        scrobble_free(&s);
        return NULL;
    }
    return s;
}

void scrobble_free(struct scrobble **sp)
{
    struct scrobble *s = sp ? *sp : NULL;
    if (!s)
        return;
    ev_timer_stop(s->loop, &s->tick);
    if (s->subscribed)
        player_unsubscribe(s->player, on_event, s);
    for (int i = 0; i < NSVC; i++) {
        struct svc *v = &s->svcs[i];
        couch_free(&v->http); /* answers in flight are dropped without their callbacks */
        free(v->key);
        free(v->secret);
        free(v->api);
        free(v->auth);
    }
    /* what was in flight to the services was dropped with their clients */
    while (s->sends)
        send_free(s->sends);
    while (s->ops) {
        json_decref(s->ops->answer);
        op_free(s->ops);
    }
    while (s->sessions)
        session_forget(s, s->sessions->user, s->sessions->svc);
    while (s->pendings) {
        struct pending *p = s->pendings;
        s->pendings = p->next;
        free(p);
    }
    while (s->chans) {
        struct chan *c = s->chans;
        s->chans = c->next;
        listeners_clear(c);
        free(c);
    }
    while (s->queue) {
        struct qitem *q = s->queue;
        s->queue = q->next;
        qitem_free(q);
    }
    free(s->db);
    free(s->private_db);
    free(s);
    *sp = NULL;
}
