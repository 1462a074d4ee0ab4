/*
 * The delegate endpoints and the web app's /api/ (see api.h).
 *
 * Every request here waits for a check (a token or a session, auth.h) before
 * it is answered, so each gets a small client struct that lives until it is
 * answered, or, for /api/events, until the connection closes; the close
 * callback, which httpd runs once whatever happened, cancels the check, ends
 * the user's presence and frees it.
 *
 * Player events are serialized once and written to every live client; a
 * client whose queue already holds SSE_MAX_PENDING is dropped alone.
 */
#include "stream/api.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/metrics.h"
#include "core/token.h"
#include "state/auth.h"
#include "scrobble/scrobble.h"
#include "state/player.h"
#include "stream/http_parser.h"
#include "stream/httpd.h"

/* Comments on an idle event stream: proxies (nginx's proxy_read_timeout is
 * 60 s) and browsers keep it open, and a client that vanished without a FIN
 * is found by the failing write. */
#define KEEPALIVE_S 15.0
/* Events a client has not read yet: far more than a burst of state changes
 * (a few hundred bytes each), little enough per client. */
#define SSE_MAX_PENDING (256u << 10)
#define SCRATCH_MAX     (4u << 20)
#define MAX_SECONDS     3600

static const char not_found[] = "Not Found\n";
static const char unauthorized[] =
    "{\"error\":\"unauthorized\",\"reason\":\"Log in to IMES: a CouchDB session cookie "
    "(AuthSession) or Basic credentials.\"}\n";
static const char forbidden[] =
    "{\"error\":\"forbidden\",\"reason\":\"This user is not an IMES member (role imes_user).\"}\n";
static const char unavailable[] =
    "{\"error\":\"unavailable\",\"reason\":\"The database cannot be reached; try again "
    "shortly.\"}\n";

enum client_kind { C_EVENTS, C_WHOAMI, C_DELEGATE, C_SCROBBLE };
enum client_state { C_WAITING, C_OPEN, C_DROPPED };

struct client {
    struct api *api;
    struct client *prev, *next; /* api->all */
    struct httpd_conn *conn;
    uint64_t id;
    enum client_kind kind;
    enum client_state state;
    int head;
    struct auth_wait *wait;
    char *user; /* C_OPEN events: whose presence this is */
    struct api_delegate_url url;
    /* C_SCROBBLE: the request, kept while the session is checked */
    char method[8];
    char *body;
    size_t body_len;
    struct scrobble_op *op;
    char cors[384]; /* CORS response headers for the web app's origin, or "" */
};

struct api {
    struct ev_loop *loop;
    struct httpd *httpd;
    struct player *player;
    struct auth *auth;
    struct scrobble *scrobble; /* NULL: /api/scrobble answers 503 */
    struct client *all;
    size_t open;
    int subscribed;
    double keepalive_s;
    ev_timer keepalive;
    struct buf scratch;
    struct {
        uint64_t events_total, drops, delegate_ok, delegate_bad, delegate_denied;
    } st;
};

/* ---- pure helpers ---- */

int api_parse_delegate(const char *path, struct api_delegate_url *u)
{
    static const char prefix[] = "/delegate/";
    char action[16];
    int r;
    memset(u, 0, sizeof(*u));
    if (!path || strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return -ENOENT;
    const char *p = path + sizeof(prefix) - 1;
    if (http_path_segment(&p, u->name, sizeof(u->name)) != 1 ||
        http_path_segment(&p, u->token, sizeof(u->token)) != 1 ||
        (r = http_path_segment(&p, action, sizeof(action))) < 0)
        goto bad;
    if (!auth_name_valid(u->name) || !token_well_formed(u->token))
        goto bad;
    if (strcmp(action, "unpause") == 0 && r == 0) {
        u->action = API_UNPAUSE;
    } else if (strcmp(action, "pause") == 0 && r == 0) {
        u->action = API_PAUSE;
    } else if (strcmp(action, "pause") == 0) {
        /* Whatever follows is the seconds, checked once the token is: "",
         * "abc" and "5/x" are all bad seconds, not a bad URL. */
        u->action = API_PAUSE_FOR;
        snprintf(u->seconds, sizeof(u->seconds), "%s", p);
    } else {
        goto bad;
    }
    return 0;
bad:
    explicit_bzero(u, sizeof(*u));
    return -ENOENT;
}

int api_parse_seconds(const char *s, int *out)
{
    long v = 0;
    size_t n = 0;
    if (!s)
        return -EINVAL;
    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 6)
            return -EINVAL;
        v = v * 10 + (s[n] - '0');
    }
    if (n == 0 || v < 1 || v > MAX_SECONDS)
        return -EINVAL;
    *out = (int)v;
    return 0;
}

int api_sse_format(struct buf *out, const char *event, const char *data)
{
    size_t before = out->len;
    int r = 0;
    if (event)
        r = buf_printf(out, "event: %s\n", event);
    /* A line break inside data would end the field: each line is its own
     * "data:" field, which the client joins with "\n" again. */
    const char *p = data ? data : "";
    while (!r) {
        size_t n = strcspn(p, "\r\n");
        r = buf_puts(out, "data: ");
        if (!r)
            r = buf_append(out, p, n);
        if (!r)
            r = buf_puts(out, "\n");
        if (!p[n])
            break;
        p += n + (p[n] == '\r' && p[n + 1] == '\n' ? 2 : 1);
    }
    if (!r)
        r = buf_puts(out, "\n");
    if (r)
        out->len = before, out->data[before] = '\0';
    return r;
}

int api_sse_json(struct buf *out, const char *event, const json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return -ENOMEM;
    int r = api_sse_format(out, event, text);
    free(text);
    return r;
}

/* ---- clients ---- */

static void client_free(struct client *c)
{
    struct api *a = c->api;
    auth_cancel(&c->wait);
    scrobble_op_cancel(&c->op);
    free(c->body);
    if (c->prev)
        c->prev->next = c->next;
    else if (a->all == c)
        a->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    explicit_bzero(&c->url, sizeof(c->url));
    free(c->user);
    free(c);
}

static void keepalive_update(struct api *a)
{
    if (a->open > 0 && !ev_is_active(&a->keepalive)) {
        ev_timer_set(&a->keepalive, a->keepalive_s, a->keepalive_s);
        ev_timer_start(a->loop, &a->keepalive);
    } else if (a->open == 0 && ev_is_active(&a->keepalive)) {
        ev_timer_stop(a->loop, &a->keepalive);
    }
}

static void on_close(struct httpd_conn *conn, void *arg)
{
    struct client *c = arg;
    struct api *a = c->api;
    if (c->state != C_WAITING && c->user) {
        a->open--;
        player_presence_close(a->player, c->user);
        if (c->state == C_OPEN)
            LOG(E_INFO, L_HTTP, "events: %s left (conn %llu)", c->user, (unsigned long long)c->id);
        keepalive_update(a);
    }
    client_free(c);
}

static void respond_and_forget(struct client *c, int status, const char *headers, const char *ctype,
                               const char *body)
{
    httpd_conn_set_callbacks(c->conn, NULL, NULL, NULL);
    httpd_respond_headers(c->conn, status, headers, ctype, body, strlen(body));
    client_free(c);
}

static void respond_json(struct client *c, int status, const char *headers, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) {
        respond_and_forget(c, 500, NULL, "text/plain; charset=utf-8", "out of memory\n");
        return;
    }
    size_t n = strlen(text);
    httpd_conn_set_callbacks(c->conn, NULL, NULL, NULL);
    char *body = realloc(text, n + 2);
    if (body) {
        text = body;
        text[n++] = '\n';
        text[n] = '\0';
    }
    httpd_respond_headers(c->conn, status, headers, "application/json", text, n);
    free(text);
    client_free(c);
}

static void drop(struct client *c, const char *why)
{
    struct api *a = c->api;
    c->state = C_DROPPED;
    a->st.drops++;
    LOG(E_INFO, L_HTTP, "events: %s (conn %llu %s) dropped: %s", c->user, (unsigned long long)c->id,
        httpd_conn_peer(c->conn), why);
    httpd_conn_close(c->conn);
}

/* Writes bytes to one live client, dropping it if it does not keep up. */
static void client_write(struct client *c, const char *data, size_t len)
{
    if (c->state != C_OPEN)
        return;
    if (httpd_conn_pending(c->conn) > SSE_MAX_PENDING) {
        drop(c, "does not read its events");
        return;
    }
    int r = httpd_stream_write(c->conn, data, len);
    if (r == -ENOBUFS)
        drop(c, "output queue overflowed");
}

static void on_event(const json_t *ev, void *arg)
{
    struct api *a = arg;
    if (a->open == 0)
        return;
    buf_reset(&a->scratch);
    if (api_sse_json(&a->scratch, "state", ev) < 0) {
        LOG(E_WARN, L_HTTP, "events: an event could not be serialized");
        return;
    }
    a->st.events_total++;
    for (struct client *c = a->all; c; c = c->next)
        if (c->kind == C_EVENTS)
            client_write(c, a->scratch.data, a->scratch.len);
    buf_reset(&a->scratch);
}

static void keepalive_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct api *a = w->data;
    static const char comment[] = ": keep-alive\n\n";
    for (struct client *c = a->all; c; c = c->next)
        if (c->kind == C_EVENTS)
            client_write(c, comment, sizeof(comment) - 1);
}

static void events_open(struct client *c, const struct auth_user *u)
{
    struct api *a = c->api;
    char headers[512];
    snprintf(headers, sizeof(headers), "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n%s",
             c->cors);
    if (c->head) {
        httpd_conn_set_callbacks(c->conn, NULL, NULL, NULL);
        httpd_stream_start(c->conn, 200, "text/event-stream", headers);
        client_free(c);
        return;
    }
    if (!(c->user = strdup(u->name))) {
        respond_and_forget(c, 503, "Retry-After: 5\r\n", "text/plain; charset=utf-8",
                           "out of memory\n");
        return;
    }
    if (httpd_stream_start(c->conn, 200, "text/event-stream", headers) < 0) {
        free(c->user);
        c->user = NULL; /* closing: the close callback frees it */
        httpd_conn_close(c->conn);
        return;
    }
    c->state = C_OPEN;
    a->open++;
    player_presence_open(a->player, c->user);
    keepalive_update(a);
    LOG(E_INFO, L_HTTP, "events: %s joined (conn %llu %s)", c->user, (unsigned long long)c->id,
        httpd_conn_peer(c->conn));
    json_t *snap = player_snapshot(a->player);
    buf_reset(&a->scratch);
    if (!snap || api_sse_json(&a->scratch, "snapshot", snap) < 0) {
        json_decref(snap);
        drop(c, "snapshot could not be serialized");
        return;
    }
    json_decref(snap);
    client_write(c, a->scratch.data, a->scratch.len);
    buf_reset(&a->scratch);
}

static void scrobble_replied(int status, json_t *body, void *arg)
{
    struct client *c = arg;
    char headers[512];
    c->op = NULL;
    snprintf(headers, sizeof(headers), "Cache-Control: no-store\r\n%s", c->cors);
    respond_json(c, status, headers, body);
}

static void on_session(int result, const struct auth_user *u, void *arg)
{
    struct client *c = arg;
    c->wait = NULL;
    char headers[512];
    if (result < 0) {
        snprintf(headers, sizeof(headers), "Retry-After: 5\r\n%s", c->cors);
        respond_and_forget(c, 503, headers, "application/json", unavailable);
        return;
    }
    if (result == 0) {
        /* A page's own login form, not the browser's Basic dialog, for a
         * cross-origin request from the web app. */
        snprintf(headers, sizeof(headers), "%s%s",
                 c->cors[0] ? "" : "WWW-Authenticate: Basic realm=\"IMES\"\r\n", c->cors);
        respond_and_forget(c, 401, headers, "application/json", unauthorized);
        return;
    }
    if (c->kind == C_WHOAMI) {
        snprintf(headers, sizeof(headers), "Cache-Control: no-store\r\n%s", c->cors);
        respond_json(c, 200, headers,
                     json_pack("{s:s,s:O}", "name", u->name, "roles", (json_t *)u->roles));
        return;
    }
    if (!u->member) {
        respond_and_forget(c, 403, c->cors[0] ? c->cors : NULL, "application/json", forbidden);
        return;
    }
    if (c->kind == C_SCROBBLE) {
        if (!c->api->scrobble ||
            !(c->op = scrobble_api(c->api->scrobble, u->name, c->method, c->body ? c->body : "",
                                   c->body_len, scrobble_replied, c))) {
            snprintf(headers, sizeof(headers), "Retry-After: 5\r\n%s", c->cors);
            respond_and_forget(c, 503, headers, "application/json", unavailable);
        }
        return;
    }
    events_open(c, u);
}

static void delegate_act(struct client *c)
{
    struct api *a = c->api;
    int seconds = 0;
    double hold = c->url.action == API_UNPAUSE ? 0 : -1;
    if (c->url.action == API_PAUSE_FOR) {
        if (api_parse_seconds(c->url.seconds, &seconds) < 0) {
            a->st.delegate_bad++;
            respond_json(c, 400, "Cache-Control: no-store\r\n",
                         json_pack("{s:s,s:s}", "error", "bad_request", "reason",
                                   "seconds must be a whole number from 1 to 3600, as in "
                                   "/pause/600; /pause alone pauses until /unpause"));
            return;
        }
        hold = seconds;
    }
    if (player_delegate_hold(a->player, c->url.name, hold) < 0) {
        /* A token without its delegate document: no such delegate either. */
        a->st.delegate_denied++;
        respond_and_forget(c, 404, NULL, "text/plain; charset=utf-8", not_found);
        return;
    }
    a->st.delegate_ok++;
    char until[32];
    json_t *until_j = json_null();
    if (seconds > 0) {
        timeutil_iso8601(time(NULL) + seconds, until, sizeof(until));
        until_j = json_string(until);
    }
    LOG(E_INFO, L_HTTP, "delegate %s: %s%s%s (conn %llu %s)", c->url.name,
        hold == 0 ? "unpause" : "pause", seconds > 0 ? " until " : "", seconds > 0 ? until : "",
        (unsigned long long)c->id, httpd_conn_peer(c->conn));
    respond_json(
        c, 200, "Cache-Control: no-store\r\n",
        json_pack("{s:s,s:b,s:o}", "delegate", c->url.name, "paused", hold != 0, "until", until_j));
}

static void on_delegate_token(int result, void *arg)
{
    struct client *c = arg;
    c->wait = NULL;
    if (result == 1) {
        delegate_act(c);
    } else if (result == 0) {
        c->api->st.delegate_denied++;
        respond_and_forget(c, 404, NULL, "text/plain; charset=utf-8", not_found);
    } else {
        respond_and_forget(c, 503, "Retry-After: 5\r\n", "application/json", unavailable);
    }
}

/* The web app is served by CouchDB, on another port of the same host when no
 * proxy puts both under one origin (nginx/imes.conf does). The session cookie
 * is per host, so the browser sends it here too; the page may read the answer
 * when this says so. Only an Origin on the request's own host is allowed:
 * another site's page gets no credentialed access. */
static void cors_headers(const struct http_request *req, char *out, size_t outlen)
{
    const char *origin = http_request_header(req, "Origin");
    const char *host = http_request_header(req, "Host");
    out[0] = '\0';
    if (!origin || !host || strlen(origin) > 256)
        return;
    const char *oh = strstr(origin, "://");
    if (!oh || strncmp(origin, "http", 4) != 0)
        return;
    oh += 3;
    /* host names without ports; [v6]:port keeps its brackets */
    size_t ol = oh[0] == '[' ? strcspn(oh, "]") + 1 : strcspn(oh, ":/");
    size_t hl = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
    if (ol == 0 || ol != hl || strncasecmp(oh, host, ol) != 0)
        return;
    for (const char *p = origin; *p; p++)
        if (*p == '\r' || *p == '\n')
            return;
    snprintf(out, outlen,
             "Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Credentials: true\r\n"
             "Vary: Origin\r\n",
             origin);
}

static struct client *client_new(struct api *a, struct httpd_conn *conn,
                                 const struct http_request *req, enum client_kind kind)
{
    struct client *c = calloc(1, sizeof(*c));
    if (!c) {
        httpd_respond(conn, 503, "text/plain; charset=utf-8", "out of memory\n", 14);
        return NULL;
    }
    c->api = a;
    c->conn = conn;
    c->id = httpd_conn_id(conn);
    c->kind = kind;
    c->head = strcmp(req->method, "HEAD") == 0;
    c->next = a->all;
    if (a->all)
        a->all->prev = c;
    a->all = c;
    httpd_conn_set_callbacks(conn, NULL, on_close, c);
    return c;
}

static void delegate_route(struct httpd_conn *conn, const struct http_request *req, void *arg)
{
    struct api *a = arg;
    struct api_delegate_url u;
    if (api_parse_delegate(req->path, &u) < 0) {
        a->st.delegate_denied++;
        httpd_respond(conn, 404, "text/plain; charset=utf-8", not_found, strlen(not_found));
        return;
    }
    struct client *c = client_new(a, conn, req, C_DELEGATE);
    if (!c) {
        explicit_bzero(&u, sizeof(u));
        return;
    }
    c->url = u;
    explicit_bzero(&u, sizeof(u));
    c->wait =
        auth_token_check(a->auth, "delegate", c->url.name, c->url.token, on_delegate_token, c);
    explicit_bzero(c->url.token, sizeof(c->url.token));
    if (!c->wait)
        respond_and_forget(c, 503, "Retry-After: 5\r\n", "text/plain; charset=utf-8",
                           "out of memory\n");
}

static void session_route(struct httpd_conn *conn, const struct http_request *req, struct api *a,
                          enum client_kind kind)
{
    struct client *c = client_new(a, conn, req, kind);
    if (!c)
        return;
    cors_headers(req, c->cors, sizeof(c->cors));
    c->wait = auth_session_check(a->auth, http_request_header(req, "Authorization"),
                                 http_request_header(req, "Cookie"), on_session, c);
    if (!c->wait)
        respond_and_forget(c, 503, "Retry-After: 5\r\n", "text/plain; charset=utf-8",
                           "out of memory\n");
}

static void events_route(struct httpd_conn *conn, const struct http_request *req, void *arg)
{
    session_route(conn, req, arg, C_EVENTS);
}

/* The web app posts as text/plain (a "simple" cross-origin request: no
 * preflight); the body is JSON all the same. */
static void scrobble_route(struct httpd_conn *conn, const struct http_request *req, void *arg)
{
    struct api *a = arg;
    if (req->body_len > 4096) {
        httpd_respond(conn, 413, "application/json", "{\"error\":\"too_large\"}\n", 22);
        return;
    }
    struct client *c = client_new(a, conn, req, C_SCROBBLE);
    if (!c)
        return;
    snprintf(c->method, sizeof(c->method), "%s", req->method);
    if (req->body_len && !(c->body = strndup(req->body, req->body_len))) {
        respond_and_forget(c, 503, "Retry-After: 5\r\n", "text/plain; charset=utf-8",
                           "out of memory\n");
        return;
    }
    c->body_len = req->body_len;
    cors_headers(req, c->cors, sizeof(c->cors));
    c->wait = auth_session_check(a->auth, http_request_header(req, "Authorization"),
                                 http_request_header(req, "Cookie"), on_session, c);
    if (!c->wait)
        respond_and_forget(c, 503, "Retry-After: 5\r\n", "text/plain; charset=utf-8",
                           "out of memory\n");
}

static void whoami_route(struct httpd_conn *conn, const struct http_request *req, void *arg)
{
    session_route(conn, req, arg, C_WHOAMI);
}

/* ---- module ---- */

static int collect(struct buf *out, void *arg)
{
    struct api *a = arg;
    int r = metrics_gauge(out, "imes_api_events_clients", "Live /api/events connections.",
                          (double)a->open);
    if (!r)
        r = metrics_counter(out, "imes_api_events_sent_total",
                            "Player events sent to /api/events clients.",
                            (double)a->st.events_total);
    if (!r)
        r = metrics_counter(out, "imes_api_events_drops_total",
                            "/api/events clients dropped for not reading.", (double)a->st.drops);
    if (!r)
        r = metrics_family(out, "imes_api_delegate_requests_total", "counter",
                           "Delegate pause/unpause requests, by result.");
    if (!r)
        r = metrics_sample(out, "imes_api_delegate_requests_total", "result", "ok",
                           (double)a->st.delegate_ok);
    if (!r)
        r = metrics_sample(out, "imes_api_delegate_requests_total", "result", "bad_request",
                           (double)a->st.delegate_bad);
    if (!r)
        r = metrics_sample(out, "imes_api_delegate_requests_total", "result", "not_found",
                           (double)a->st.delegate_denied);
    return r;
}

struct api *api_new(struct ev_loop *loop, struct httpd *h, struct player *pl, struct auth *auth)
{
    struct api *a = calloc(1, sizeof(*a));
    int r;
    if (!a) {
        LOG(E_ERROR, L_HTTP, "api: out of memory");
        return NULL;
    }
    a->loop = loop;
    a->httpd = h;
    a->player = pl;
    a->auth = auth;
    buf_init(&a->scratch, SCRATCH_MAX);
    a->keepalive_s = KEEPALIVE_S;
    ev_timer_init(&a->keepalive, keepalive_cb, KEEPALIVE_S, KEEPALIVE_S);
    a->keepalive.data = a;
    if ((r = player_subscribe(pl, on_event, a)) < 0) {
        LOG(E_ERROR, L_HTTP, "api: cannot subscribe to the player's events: %s", strerror(-r));
        goto fail;
    }
    a->subscribed = 1;
    if ((r = httpd_add_route(h, "GET", "/delegate/", delegate_route, a)) < 0 ||
        (r = httpd_add_route(h, "POST", "/delegate/", delegate_route, a)) < 0 ||
        (r = httpd_add_route(h, "GET", "/api/events", events_route, a)) < 0 ||
        (r = httpd_add_route(h, "GET", "/api/whoami", whoami_route, a)) < 0 ||
        (r = httpd_add_route(h, "GET", "/api/scrobble", scrobble_route, a)) < 0 ||
        (r = httpd_add_route(h, "POST", "/api/scrobble", scrobble_route, a)) < 0) {
        LOG(E_ERROR, L_HTTP, "api: cannot add routes: %s", strerror(-r));
        goto fail;
    }
    metrics_add_collector(collect, a);
    return a;
fail:
    if (a->subscribed)
        player_unsubscribe(pl, on_event, a);
    buf_free(&a->scratch);
    free(a);
    return NULL;
}

void api_free(struct api **ap)
{
    struct api *a = ap ? *ap : NULL;
    if (!a)
        return;
    /* Empty if httpd_free ran first; else close what is left. */
    while (a->all) {
        struct client *c = a->all;
        httpd_conn_set_callbacks(c->conn, NULL, NULL, NULL);
        httpd_conn_close(c->conn);
        if (c->state != C_WAITING && c->user)
            player_presence_close(a->player, c->user);
        client_free(c);
    }
    ev_timer_stop(a->loop, &a->keepalive);
    if (a->subscribed)
        player_unsubscribe(a->player, on_event, a);
    metrics_remove_collector(collect, a);
    buf_free(&a->scratch);
    free(a);
    *ap = NULL;
}

void api_set_scrobble(struct api *a, struct scrobble *s)
{
    a->scrobble = s;
}

void api_set_keepalive(struct api *a, double seconds)
{
    if (seconds > 0)
        a->keepalive_s = seconds;
    if (ev_is_active(&a->keepalive)) {
        ev_timer_stop(a->loop, &a->keepalive);
        keepalive_update(a);
    }
}

size_t api_event_clients(const struct api *a)
{
    return a->open;
}
