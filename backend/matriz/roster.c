/*
 * The Matriz roster in imesd (see roster.h).
 *
 * A join goes: Basic credentials checked against CouchDB's _session (auth.h)
 * → the name reserved (a second join of that name is 409 from here on) →
 * OPTIONS sent to the peer's RTSP port (a non-blocking connect on the loop)
 * → the peer:<name> document written online → the SSE stream opened. Its
 * close callback, which httpd runs once whatever happened, writes it offline.
 *
 * Every name has an entry that holds the state wanted for its document; one
 * couch_update at a time writes it, and a change made meanwhile is written
 * right after (the update function reads the entry when it runs, so a write
 * always carries the newest state).
 */
#include "matriz/roster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/hmap.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/token.h"
#include "couch/couch.h"
#include "state/auth.h"
#include "stream/httpd.h"

/* A comment this often keeps proxies from closing an idle stream and lets the
 * peer notice within a few seconds that imesd is gone (it treats 3 missed
 * keep-alives as a dead connection). */
#define KEEPALIVE_S 5.0
/* An RTSP server on a working link answers OPTIONS in milliseconds; 2 s also
 * covers a transatlantic handshake with a retransmitted SYN... almost. */
#define PROBE_TIMEOUT_S 2.0
#define PROBE_MAX       4096
/* Stats writes per peer: the web app refreshes about this often anyway. */
#define STATS_INTERVAL_S 2.0
#define STATS_MAX        (64u << 10)
#define ROLE             "matriz_peer"

static const char unauthorized[] =
    "{\"error\":\"unauthorized\",\"reason\":\"A Matriz peer joins with Basic credentials: "
    "its name and the key `imes peer add` printed.\"}\n";
static const char forbidden[] =
    "{\"error\":\"forbidden\",\"reason\":\"This user is not a Matriz peer (role matriz_peer).\"}\n";
static const char conflict[] =
    "{\"error\":\"conflict\",\"reason\":\"A peer of this name is joined already.\"}\n";
static const char not_joined[] =
    "{\"error\":\"conflict\",\"reason\":\"This peer is not joined: join first.\"}\n";
static const char unavailable[] =
    "{\"error\":\"unavailable\",\"reason\":\"The database cannot be reached; try again "
    "shortly.\"}\n";

struct entry;

enum client_kind { C_JOIN, C_STATS };
enum client_state { C_AUTH, C_PROBE, C_OPEN };

struct client {
    struct roster *r;
    struct client *prev, *next;
    struct httpd_conn *conn;
    uint64_t id;
    enum client_kind kind;
    enum client_state state;
    struct auth_wait *wait;
    struct entry *entry; /* C_PROBE, C_OPEN: the name this connection holds */
    struct roster_join join;
    char address[64];
    json_t *stats; /* C_STATS: the body */
    /* the OPTIONS probe */
    int fd;
    ev_io io;
    ev_timer timer;
    struct buf in;
    size_t sent;
    char request[512];
};

struct entry {
    struct roster *r;
    char *name;
    char *docid;
    struct client *holder; /* the connection that holds the name, or NULL */
    /* wanted state of the document */
    int online;
    int known; /* online or offline was decided here (else only stats) */
    char address[64];
    char url[400];
    char codec[ROSTER_CODEC_MAX + 1];
    char session[TOKEN_HEX_LEN + 1];
    int reachable;
    time_t since;
    json_t *stats;
    int writing, dirty;
    double stats_written; /* ev_now of the last stats write */
    ev_timer stats_timer;
};

struct roster {
    struct ev_loop *loop;
    struct httpd *httpd;
    struct couch *couch;
    struct auth *auth;
    char *db;
    double keepalive_s, probe_timeout_s;
    struct hmap *entries; /* name -> struct entry */
    struct client *all;
    size_t online;
    ev_timer keepalive;
    int sweeping;
    struct {
        uint64_t ok, unauthorized, forbidden, conflict, bad, unavailable, unreachable, stats;
    } st;
};

/* ---- pure helpers ---- */

int roster_parse_join(const char *query, struct roster_join *j, const char **why)
{
    char v[ROSTER_HOST_MAX + 2];
    int r;
    memset(j, 0, sizeof(*j));
    j->rtsp_port = 8554;
    strcpy(j->codec, "opus");
    strcpy(j->path, "/stream");
    *why = NULL;

    if ((r = http_query_get(query, "rtsp_port", v, sizeof(v))) == 0) {
        char *end;
        long p = strtol(v, &end, 10);
        if (!*v || *end || p < 1 || p > 65535)
            return *why = "rtsp_port must be a port number, 1 to 65535", -EINVAL;
        j->rtsp_port = (int)p;
    } else if (r != -ENOENT) {
        return *why = "rtsp_port is malformed", -EINVAL;
    }
    if ((r = http_query_get(query, "host", v, sizeof(v))) == 0) {
        if (!*v || strlen(v) > ROSTER_HOST_MAX)
            return *why = "host must be a host name or address", -EINVAL;
        for (const char *p = v; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || strchr(".-:", *p)))
                return *why = "host may hold only letters, digits, '.', '-' and ':'", -EINVAL;
        strcpy(j->host, v);
    } else if (r != -ENOENT) {
        return *why = "host is malformed or too long", -EINVAL;
    }
    if ((r = http_query_get(query, "codec", v, sizeof(v))) == 0) {
        if (strcmp(v, "opus") != 0 && strcmp(v, "L16") != 0 && strcmp(v, "L24") != 0)
            return *why = "codec must be opus, L16 or L24", -EINVAL;
        strcpy(j->codec, v);
    } else if (r != -ENOENT) {
        return *why = "codec is malformed", -EINVAL;
    }
    if ((r = http_query_get(query, "path", v, sizeof(v))) == 0) {
        if (v[0] != '/' || strlen(v) > ROSTER_PATH_MAX)
            return *why = "path must start with '/' (at most 127 bytes)", -EINVAL;
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
                return *why = "path may not hold spaces or control characters", -EINVAL;
        strcpy(j->path, v);
    } else if (r != -ENOENT) {
        return *why = "path is malformed or too long", -EINVAL;
    }
    return 0;
}

int roster_peer_address(const char *peer, char *out, size_t outlen)
{
    const char *start = peer, *end;
    if (!peer || !*peer)
        return -EINVAL;
    if (*peer == '[') {
        start = peer + 1;
        end = strchr(start, ']');
    } else {
        end = strrchr(peer, ':');
    }
    if (!end || end == start || (size_t)(end - start) >= outlen)
        return -EINVAL;
    memcpy(out, start, (size_t)(end - start));
    out[end - start] = '\0';
    return 0;
}

int roster_rtsp_url(const char *host, int port, const char *path, char *out, size_t outlen)
{
    int v6 = strchr(host, ':') != NULL;
    int n =
        snprintf(out, outlen, "rtsp://%s%s%s:%d%s", v6 ? "[" : "", host, v6 ? "]" : "", port, path);
    return n < 0 || (size_t)n >= outlen ? -ENOSPC : 0;
}

/* ---- the peer documents ---- */

static void entry_write(struct entry *e);

static int entry_apply(json_t *doc, void *arg)
{
    struct entry *e = arg;
    char now[TIMEUTIL_ISO8601_LEN];
    timeutil_iso8601(time(NULL), now, sizeof(now));
    json_object_set_new(doc, "type", json_string("peer"));
    json_object_set_new(doc, "name", json_string(e->name));
    if (e->known) {
        json_object_set_new(doc, "online", json_boolean(e->online));
        if (e->online) {
            char since[TIMEUTIL_ISO8601_LEN];
            timeutil_iso8601(e->since, since, sizeof(since));
            json_object_set_new(doc, "address", json_string(e->address));
            json_object_set_new(doc, "rtsp_url", json_string(e->url));
            json_object_set_new(doc, "reachable", json_boolean(e->reachable));
            json_object_set_new(doc, "codec", json_string(e->codec));
            json_object_set_new(doc, "session", json_string(e->session));
            json_object_set_new(doc, "since", json_string(since));
        } else {
            /* The last address and URL stay, for the web app to show; the
             * session does not, so nobody connects to a peer that left. */
            json_object_set_new(doc, "session", json_null());
            json_object_set_new(doc, "reachable", json_false());
            json_object_set_new(doc, "stats", json_null());
        }
    }
    if (e->stats && e->online)
        json_object_set(doc, "stats", e->stats);
    json_object_set_new(doc, "updated", json_string(now));
    return 1;
}

static void entry_written(const struct couch_response *resp, void *arg)
{
    struct entry *e = arg;
    e->writing = 0;
    if (resp->error || resp->status >= 300)
        LOG(E_WARN, L_MATRIZ, "cannot write %s (%s): %s", e->docid,
            e->online ? "online" : "offline", resp->errmsg);
    else
        LOG(E_DEBUG, L_MATRIZ, "%s written (%s)", e->docid, e->online ? "online" : "offline");
    if (e->dirty)
        entry_write(e);
}

static void entry_write(struct entry *e)
{
    if (e->writing) {
        e->dirty = 1;
        return;
    }
    e->dirty = 0;
    e->writing = 1;
    /* Leaving and stopping must be written even across a CouchDB restart. */
    if (couch_update(e->r->couch, e->r->db, e->docid, entry_apply, e, entry_written, e) < 0) {
        e->writing = 0;
        LOG(E_WARN, L_MATRIZ, "cannot write %s: out of memory", e->docid);
    }
}

static void entry_free(void *p)
{
    struct entry *e = p;
    ev_timer_stop(e->r->loop, &e->stats_timer);
    json_decref(e->stats);
    free(e->name);
    free(e->docid);
    free(e);
}

static void stats_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct entry *e = w->data;
    e->stats_written = ev_now(loop);
    entry_write(e);
}

static struct entry *entry_get(struct roster *r, const char *name)
{
    struct entry *e = hmap_get(r->entries, name);
    if (e)
        return e;
    if (!(e = calloc(1, sizeof(*e))))
        return NULL;
    e->r = r;
    e->name = strdup(name);
    if (!e->name || asprintf(&e->docid, "peer:%s", name) < 0 ||
        hmap_set(r->entries, name, e, NULL) < 0) {
        free(e->name);
        free(e);
        return NULL;
    }
    ev_timer_init(&e->stats_timer, stats_timer_cb, 0., 0.);
    e->stats_timer.data = e;
    return e;
}

/* ---- clients ---- */

static void probe_stop(struct client *c)
{
    if (c->fd >= 0) {
        ev_io_stop(c->r->loop, &c->io);
        close(c->fd);
        c->fd = -1;
    }
    ev_timer_stop(c->r->loop, &c->timer);
    buf_free(&c->in);
}

static void client_free(struct client *c)
{
    struct roster *r = c->r;
    auth_cancel(&c->wait);
    probe_stop(c);
    json_decref(c->stats);
    if (c->entry && c->entry->holder == c)
        c->entry->holder = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else if (r->all == c)
        r->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void on_close(struct httpd_conn *conn, void *arg)
{
    struct client *c = arg;
    struct roster *r = c->r;
    if (c->state == C_OPEN && c->entry) {
        struct entry *e = c->entry;
        r->online--;
        e->online = 0;
        e->known = 1;
        LOG(E_INFO, L_MATRIZ, "peer %s left (conn %llu)", e->name, (unsigned long long)c->id);
        entry_write(e);
    }
    client_free(c);
}

static void respond(struct client *c, int status, const char *headers, const char *body)
{
    httpd_conn_set_callbacks(c->conn, NULL, NULL, NULL);
    httpd_respond_headers(c->conn, status, headers, "application/json", body, strlen(body));
    client_free(c);
}

static void respond_bad(struct client *c, const char *why)
{
    json_t *j = json_pack("{s:s,s:s}", "error", "bad_request", "reason", why);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    c->r->st.bad++;
    respond(c, 400, NULL, text ? text : "{\"error\":\"bad_request\"}");
    free(text);
}

static void keepalive_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct roster *r = w->data;
    static const char comment[] = ": keep-alive\n\n";
    for (struct client *c = r->all, *next; c; c = next) {
        next = c->next;
        if (c->state == C_OPEN && httpd_stream_write(c->conn, comment, sizeof(comment) - 1) < 0)
            httpd_conn_close(c->conn); /* does not read: the close callback says offline */
    }
}

static void join_open(struct client *c, int reachable)
{
    struct roster *r = c->r;
    struct entry *e = c->entry;
    static const char headers[] = "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
    probe_stop(c);
    if (httpd_stream_start(c->conn, 200, "text/event-stream", headers) < 0) {
        httpd_conn_close(c->conn);
        return;
    }
    c->state = C_OPEN;
    r->online++;
    r->st.ok++;
    if (!reachable)
        r->st.unreachable++;
    e->online = 1;
    e->known = 1;
    e->reachable = reachable;
    e->since = time(NULL);
    snprintf(e->address, sizeof(e->address), "%s", c->address);
    snprintf(e->codec, sizeof(e->codec), "%s", c->join.codec);
    if (roster_rtsp_url(*c->join.host ? c->join.host : c->address, c->join.rtsp_port, c->join.path,
                        e->url, sizeof(e->url)) < 0)
        e->url[0] = '\0';
    if (token_generate(e->session, sizeof(e->session)) < 0)
        snprintf(e->session, sizeof(e->session), "%llx", (unsigned long long)c->id);
    json_decref(e->stats);
    e->stats = NULL;
    entry_write(e);
    LOG(E_INFO, L_MATRIZ, "peer %s joined from %s (conn %llu): %s, RTSP %s", e->name,
        httpd_conn_peer(c->conn), (unsigned long long)c->id, e->url,
        reachable ? "reachable" : "NOT reachable");

    json_t *ev =
        json_pack("{s:s,s:s,s:s,s:b,s:s,s:s}", "name", e->name, "address", e->address, "rtsp_url",
                  e->url, "reachable", reachable, "codec", e->codec, "session", e->session);
    char *data = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    struct buf b;
    buf_init(&b, 8192);
    if (data && buf_printf(&b, "event: joined\ndata: %s\n\n", data) == 0)
        httpd_stream_write(c->conn, b.data, b.len);
    buf_free(&b);
    free(data);
    if (!ev_is_active(&r->keepalive)) {
        ev_timer_set(&r->keepalive, r->keepalive_s, r->keepalive_s);
        ev_timer_start(r->loop, &r->keepalive);
    }
}

/* ---- the OPTIONS probe ---- */

static void probe_done(struct client *c, int ok, const char *why)
{
    if (!ok)
        LOG(E_WARN, L_MATRIZ, "peer %s: RTSP at %s port %d does not answer: %s", c->entry->name,
            c->address, c->join.rtsp_port, why);
    join_open(c, ok);
}

static void probe_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    probe_done(w->data, 0, "timed out");
}

static void probe_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct client *c = w->data;
    if (revents & EV_WRITE) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (c->sent == 0 && (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)) {
            probe_done(c, 0, strerror(err ? err : errno));
            return;
        }
        size_t total = strlen(c->request);
        ssize_t n = send(c->fd, c->request + c->sent, total - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            probe_done(c, 0, strerror(errno));
            return;
        }
        if (n > 0)
            c->sent += (size_t)n;
        if (c->sent == total) {
            ev_io_stop(loop, w);
            ev_io_set(w, c->fd, EV_READ);
            ev_io_start(loop, w);
        }
        return;
    }
    char tmp[1024];
    ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        probe_done(c, 0, n == 0 ? "closed without an answer" : strerror(errno));
        return;
    }
    if (buf_append(&c->in, tmp, (size_t)n) < 0) {
        probe_done(c, 0, "answer too long");
        return;
    }
    if (!strstr(c->in.data, "\r\n\r\n") && !strstr(c->in.data, "\n\n"))
        return;
    int ok = strncmp(c->in.data, "RTSP/1.0 200", 12) == 0;
    char line[80];
    snprintf(line, sizeof(line), "%.*s", (int)strcspn(c->in.data, "\r\n"), c->in.data);
    probe_done(c, ok, line);
}

static void probe_start(struct client *c)
{
    struct roster *r = c->r;
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, c->address, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)c->join.rtsp_port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, c->address, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)c->join.rtsp_port);
        sl = sizeof(*s6);
    } else {
        probe_done(c, 0, "not a numeric address");
        return;
    }
    char url[400];
    roster_rtsp_url(c->address, c->join.rtsp_port, c->join.path, url, sizeof(url));
    snprintf(c->request, sizeof(c->request),
             "OPTIONS %s RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: imesd-matriz-probe\r\n\r\n", url);
    c->state = C_PROBE;
    c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        probe_done(c, 0, strerror(errno));
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
        probe_done(c, 0, strerror(errno));
        return;
    }
    ev_io_init(&c->io, probe_io_cb, c->fd, EV_WRITE);
    c->io.data = c;
    ev_io_start(r->loop, &c->io);
    ev_timer_init(&c->timer, probe_timeout_cb, r->probe_timeout_s, 0.);
    c->timer.data = c;
    ev_timer_start(r->loop, &c->timer);
}

/* ---- requests ---- */

static void stats_take(struct client *c, struct entry *e)
{
    struct roster *r = c->r;
    json_decref(e->stats);
    e->stats = json_incref(c->stats);
    r->st.stats++;
    double now = ev_now(r->loop), wait = e->stats_written + STATS_INTERVAL_S - now;
    if (!ev_is_active(&e->stats_timer)) {
        if (wait <= 0) {
            e->stats_written = now;
            entry_write(e);
        } else {
            ev_timer_set(&e->stats_timer, wait, 0.);
            ev_timer_start(r->loop, &e->stats_timer);
        }
    }
    respond(c, 204, NULL, "");
}

static void on_session(int result, const struct auth_user *u, void *arg)
{
    struct client *c = arg;
    struct roster *r = c->r;
    c->wait = NULL;
    if (result < 0) {
        r->st.unavailable++;
        respond(c, 503, "Retry-After: 5\r\n", unavailable);
        return;
    }
    if (result == 0) {
        r->st.unauthorized++;
        LOG(E_INFO, L_MATRIZ, "join refused (conn %llu %s): wrong or no credentials",
            (unsigned long long)c->id, httpd_conn_peer(c->conn));
        respond(c, 401, "WWW-Authenticate: Basic realm=\"IMES Matriz\"\r\n", unauthorized);
        return;
    }
    if (!auth_has_role(u->roles, ROLE) || !auth_name_valid(u->name)) {
        r->st.forbidden++;
        respond(c, 403, NULL, forbidden);
        return;
    }
    struct entry *e = entry_get(r, u->name);
    if (!e) {
        respond(c, 503, "Retry-After: 5\r\n", unavailable);
        return;
    }
    if (c->kind == C_STATS) {
        if (!e->holder || e->holder->state != C_OPEN) {
            respond(c, 409, NULL, not_joined);
            return;
        }
        stats_take(c, e);
        return;
    }
    if (e->holder) {
        r->st.conflict++;
        LOG(E_WARN, L_MATRIZ, "join of %s refused (conn %llu %s): joined already from %s", u->name,
            (unsigned long long)c->id, httpd_conn_peer(c->conn),
            e->holder->state == C_OPEN ? e->address : "(joining)");
        respond(c, 409, NULL, conflict);
        return;
    }
    e->holder = c;
    c->entry = e;
    probe_start(c);
}

static struct client *client_new(struct roster *r, struct httpd_conn *conn, enum client_kind kind)
{
    struct client *c = calloc(1, sizeof(*c));
    if (!c) {
        httpd_respond(conn, 503, "text/plain; charset=utf-8", "out of memory\n", 14);
        return NULL;
    }
    c->r = r;
    c->conn = conn;
    c->id = httpd_conn_id(conn);
    c->kind = kind;
    c->fd = -1;
    buf_init(&c->in, PROBE_MAX);
    c->next = r->all;
    if (r->all)
        r->all->prev = c;
    r->all = c;
    httpd_conn_set_callbacks(conn, NULL, on_close, c);
    return c;
}

static void check_credentials(struct client *c, const struct http_request *req)
{
    c->wait = auth_session_check(c->r->auth, http_request_header(req, "Authorization"), NULL,
                                 on_session, c);
    if (!c->wait)
        respond(c, 503, "Retry-After: 5\r\n", unavailable);
}

static void join_route(struct httpd_conn *conn, const struct http_request *req, void *arg)
{
    struct roster *r = arg;
    struct client *c = client_new(r, conn, C_JOIN);
    const char *why;
    if (!c)
        return;
    if (roster_parse_join(req->query, &c->join, &why) < 0) {
        respond_bad(c, why);
        return;
    }
    if (roster_peer_address(httpd_conn_peer(conn), c->address, sizeof(c->address)) < 0) {
        respond_bad(c, "cannot tell the address of this connection");
        return;
    }
    check_credentials(c, req);
}

static void stats_route(struct httpd_conn *conn, const struct http_request *req, void *arg)
{
    struct roster *r = arg;
    struct client *c = client_new(r, conn, C_STATS);
    json_error_t jerr;
    if (!c)
        return;
    if (req->body_len > STATS_MAX) {
        respond(c, 413, NULL, "{\"error\":\"too_large\",\"reason\":\"stats are at most 64 KiB\"}");
        return;
    }
    c->stats = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!json_is_object(c->stats)) {
        respond_bad(c, "the body must be a JSON object of link stats");
        return;
    }
    check_credentials(c, req);
}

/* ---- stale documents at start ---- */

static void sweep_page(struct roster *r, const char *after);

static void sweep_done(const struct couch_response *resp, void *arg)
{
    struct roster *r = arg;
    size_t i, n = 0;
    json_t *row;
    const char *last = NULL;
    if (resp->error || resp->status != 200) {
        LOG(E_WARN, L_MATRIZ, "cannot read the peer documents: %s (stale ones stay online)",
            resp->errmsg);
        r->sweeping = 0;
        return;
    }
    json_array_foreach(json_object_get(resp->body, "rows"), i, row)
    {
        json_t *doc = json_object_get(row, "doc");
        const char *id = json_string_value(json_object_get(row, "id"));
        n++;
        last = id;
        if (!id || strncmp(id, "peer:", 5) != 0 || !json_is_true(json_object_get(doc, "online")))
            continue;
        struct entry *e = entry_get(r, id + 5);
        if (!e || e->known)
            continue; /* joined meanwhile: that write wins */
        e->known = 1;
        e->online = 0;
        LOG(E_INFO, L_MATRIZ, "%s was online when imesd stopped: now offline", id);
        entry_write(e);
    }
    if (n == 100 && last) {
        char *after = strdup(last);
        sweep_page(r, after);
        free(after);
    } else {
        r->sweeping = 0;
    }
}

static void sweep_page(struct roster *r, const char *after)
{
    char *q = couch_prefix_query("peer:", after, 100, 1);
    char *dbp = couch_path(r->db, NULL);
    char *path = NULL;
    if (q && dbp && asprintf(&path, "%s/%s", dbp, q) >= 0 &&
        couch_request(r->couch, "GET", path, NULL, NULL, COUCH_RETRY_LONG, sweep_done, r) == 0)
        r->sweeping = 1;
    else
        r->sweeping = 0;
    free(path);
    free(q);
    free(dbp);
}

/* ---- module ---- */

static int collect(struct buf *out, void *arg)
{
    struct roster *r = arg;
    int e = metrics_gauge(out, "imes_matriz_peers_online", "Matriz peers joined now.",
                          (double)r->online);
    const struct {
        const char *label;
        uint64_t v;
    } joins[] = {
        {"ok", r->st.ok},
        {"unauthorized", r->st.unauthorized},
        {"forbidden", r->st.forbidden},
        {"conflict", r->st.conflict},
        {"bad_request", r->st.bad},
        {"unavailable", r->st.unavailable},
    };
    if (!e)
        e = metrics_family(out, "imes_matriz_joins_total", "counter", "Joins, by result.");
    for (size_t i = 0; !e && i < sizeof(joins) / sizeof(joins[0]); i++)
        e = metrics_sample(out, "imes_matriz_joins_total", "result", joins[i].label,
                           (double)joins[i].v);
    if (!e)
        e = metrics_counter(out, "imes_matriz_joins_unreachable_total",
                            "Joins whose RTSP port did not answer OPTIONS.",
                            (double)r->st.unreachable);
    if (!e)
        e = metrics_counter(out, "imes_matriz_stats_posts_total", "Link stats posted by peers.",
                            (double)r->st.stats);
    return e;
}

struct roster *roster_new(struct ev_loop *loop, struct httpd *h, struct couch *couch,
                          struct auth *auth, const struct roster_options *opt)
{
    struct roster *r = calloc(1, sizeof(*r));
    int e;
    if (!r || !(r->db = strdup(opt->db)) || !(r->entries = hmap_new())) {
        LOG(E_ERROR, L_MATRIZ, "roster: out of memory");
        goto fail;
    }
    r->loop = loop;
    r->httpd = h;
    r->couch = couch;
    r->auth = auth;
    r->keepalive_s = opt->keepalive_s > 0 ? opt->keepalive_s : KEEPALIVE_S;
    r->probe_timeout_s = opt->probe_timeout_s > 0 ? opt->probe_timeout_s : PROBE_TIMEOUT_S;
    ev_timer_init(&r->keepalive, keepalive_cb, r->keepalive_s, r->keepalive_s);
    r->keepalive.data = r;
    if ((e = httpd_add_route(h, "GET", "/matriz/join", join_route, r)) < 0 ||
        (e = httpd_add_route(h, "POST", "/matriz/stats", stats_route, r)) < 0) {
        LOG(E_ERROR, L_MATRIZ, "roster: cannot add routes: %s", strerror(-e));
        goto fail;
    }
    metrics_add_collector(collect, r);
    sweep_page(r, NULL);
    return r;
fail:
    if (r) {
        hmap_free(&r->entries, NULL);
        free(r->db);
        free(r);
    }
    return NULL;
}

void roster_free(struct roster **rp)
{
    struct roster *r = rp ? *rp : NULL;
    if (!r)
        return;
    /* Empty if httpd_free ran first (it closed every connection). */
    while (r->all) {
        struct client *c = r->all;
        httpd_conn_set_callbacks(c->conn, NULL, NULL, NULL);
        httpd_conn_close(c->conn);
        if (c->state == C_OPEN)
            r->online--;
        client_free(c);
    }
    ev_timer_stop(r->loop, &r->keepalive);
    metrics_remove_collector(collect, r);
    hmap_free(&r->entries, entry_free);
    free(r->db);
    free(r);
    *rp = NULL;
}

size_t roster_online(const struct roster *r)
{
    return r->online;
}
