/*
 * CouchDB client on libcurl's multi interface, driven by the libev loop:
 * curl's socket callback maps each socket to an ev_io, its timer callback to
 * one ev_timer (curl docs/examples/evhiperfifo.c). Finished transfers are
 * collected after curl_multi_socket_action returns, never inside a curl
 * callback, so a completion callback may start new requests freely.
 *
 * Failed attempts (no answer, or 5xx) wait on a per-request ev_timer with
 * exponential backoff and are sent again. Streams (continuous _changes) are
 * never retried here: their owner reconnects with its own policy.
 */
#include "couch.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"

/* Bodies of single answers: a big view page is a few MB; past this something
 * is wrong and we would rather fail than swallow the machine's memory. */
#define BODY_MAX (256u << 20)
/* One line of a feed: one change with its document. */
#define LINE_MAX_BYTES    (16u << 20)
#define CONNECT_TIMEOUT_S 5
/* Whole-request limit; view builds on pouchdb-server can take tens of seconds. */
#define REQUEST_TIMEOUT_S    300
#define QUICK_TIMEOUT_S      3 /* COUCH_QUICK */
#define RETRY_FIRST          0.25
#define RETRY_MAX            8.0
#define RETRY_ATTEMPTS       6   /* 0.25+0.5+1+2+4+8 s: about 16 s of trying */
#define RETRY_LONG_SECONDS   300 /* COUCH_RETRY_LONG: keep trying for 5 minutes */
#define UPDATE_MAX_CONFLICTS 20

struct couch {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    char *base;     /* scheme://host:port[/prefix], no credentials, no trailing '/' */
    char *username; /* decoded, or NULL */
    char *password;
    int pending;
    int shutting_down;
    struct req *waiting; /* requests waiting for a retry */
    struct req *all;     /* every request alive, for couch_free */
};

struct req {
    struct couch *c;
    CURL *easy;
    char *method;
    char *url;
    char *body; /* serialized JSON, or NULL */
    struct curl_slist *headers;
    int flags;
    couch_cb cb;
    void *arg;
    struct buf resp;
    char errbuf[CURL_ERROR_SIZE];
    int attempts;
    ev_tstamp first_try;
    ev_timer retry;
    struct req *next_waiting, **prev_waiting;
    struct req *next_all, **prev_all;
    int attached; /* added to the multi handle */
    /* streams */
    int is_stream;
    int finished;
    int cancelled;
    int opened;
    int cancel_error; /* -ECANCELED, or -ETIMEDOUT for a silent stream */
    couch_line_cb on_line;
    ev_timer cancel_timer;
    ev_timer idle_timer; /* no byte for idle_s: the stream is dead */
    double idle_s;
    ev_tstamp last_rx;
};

struct sock {
    ev_io io;
    struct couch *c;
    curl_socket_t fd;
};

static void req_free(struct req *r)
{
    if (r->prev_all) {
        *r->prev_all = r->next_all;
        if (r->next_all)
            r->next_all->prev_all = r->prev_all;
    }
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    buf_free(&r->resp);
    free(r->method);
    free(r->url);
    free(r->body);
    free(r);
}

/* ---- libev <-> curl glue ---- */

static void check_multi_info(struct couch *c);

static void sock_cb_ev(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sock *s = (struct sock *)w;
    struct couch *c = s->c;
    int action =
        ((revents & EV_READ) ? CURL_CSELECT_IN : 0) | ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(c->multi, s->fd, action, &running);
    check_multi_info(c);
}

static void timer_cb_ev(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct couch *c = w->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(c);
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct couch *c = userp;
    ev_timer_stop(c->loop, &c->timer);
    if (timeout_ms >= 0) {
        /* 0 means "now": let the loop call us back rather than recursing. */
        ev_timer_set(&c->timer, timeout_ms / 1000.0, 0.);
        ev_timer_start(c->loop, &c->timer);
    }
    return 0;
}

static int curl_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
    struct couch *c = userp;
    struct sock *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(c->loop, &s->io);
            free(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->c = c;
        s->fd = fd;
        curl_multi_assign(c->multi, fd, s);
    } else {
        ev_io_stop(c->loop, &s->io);
    }
    int events = ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    ev_io_init(&s->io, sock_cb_ev, fd, events);
    ev_io_start(c->loop, &s->io);
    return 0;
}

/* ---- requests ---- */

static size_t write_body_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
    struct req *r = userp;
    size_t n = size * nmemb;
    if (buf_append(&r->resp, ptr, n) < 0)
        return 0; /* over BODY_MAX: curl fails the transfer with CURLE_WRITE_ERROR */
    return n;
}

/* The stream counts as open when a 2xx head is complete, not at the first
 * heartbeat (which may be seconds later). */
static size_t header_stream_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
    struct req *r = userp;
    size_t n = size * nmemb;
    long status = 0;
    r->last_rx = ev_now(r->c->loop);
    if (r->opened || r->cancelled || !(n == 2 && ptr[0] == '\r' && ptr[1] == '\n'))
        return n;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        r->opened = 1;
        r->on_line(NULL, 0, r->arg);
    }
    return n;
}

static size_t write_stream_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
    struct req *r = userp;
    size_t n = size * nmemb;
    if (r->cancelled)
        return 0;
    r->last_rx = ev_now(r->c->loop);
    for (size_t i = 0; i < n; i++) {
        if (ptr[i] != '\n') {
            if (buf_append(&r->resp, ptr + i, 1) < 0)
                return 0;
            continue;
        }
        size_t len = r->resp.len;
        while (len > 0 && r->resp.data[len - 1] == '\r')
            len--;
        if (len > 0) /* empty lines are heartbeats */
            r->on_line(r->resp.data, len, r->arg);
        buf_reset(&r->resp);
        if (r->cancelled)
            return 0;
    }
    return n;
}

static int req_start(struct req *r)
{
    struct couch *c = r->c;
    CURL *e = r->easy;
    if (!e) {
        if (!(e = r->easy = curl_easy_init()))
            return -ENOMEM;
    } else {
        curl_easy_reset(e);
    }
    buf_reset(&r->resp);
    r->errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    if (r->is_stream) {
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_stream_cb);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_stream_cb);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    } else {
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_body_cb);
        curl_easy_setopt(e, CURLOPT_TIMEOUT,
                         (long)((r->flags & COUCH_QUICK) ? QUICK_TIMEOUT_S : REQUEST_TIMEOUT_S));
    }
    if (c->username && !(r->flags & COUCH_NO_AUTH)) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, c->username);
        curl_easy_setopt(e, CURLOPT_PASSWORD, c->password ? c->password : "");
    }
    if (strcmp(r->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
        if (r->body) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
        } else if (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
        }
    }
    r->attempts++;
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
        return -EIO;
    r->attached = 1;
    return 0;
}

static int curl_to_errno(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    case CURLE_WRITE_ERROR:
        return -E2BIG;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EPROTO;
    }
}

static void retry_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void waiting_remove(struct req *r)
{
    if (!r->prev_waiting)
        return;
    *r->prev_waiting = r->next_waiting;
    if (r->next_waiting)
        r->next_waiting->prev_waiting = r->prev_waiting;
    r->prev_waiting = NULL;
    r->next_waiting = NULL;
}

/* Calls the callback with what the last attempt got, then frees the request. */
static void req_complete(struct req *r, long status, int error, const char *errtext)
{
    struct couch *c = r->c;
    struct couch_response resp = {.status = status, .error = error};
    json_error_t jerr;
    char msg[512] = "";

    if (r->resp.len && !r->is_stream)
        resp.body = json_loadb(r->resp.data, r->resp.len, JSON_DECODE_ANY, &jerr);
    resp.raw = r->resp.data ? r->resp.data : "";
    resp.raw_len = r->resp.len;
    if (error) {
        snprintf(msg, sizeof(msg), "%s", errtext && *errtext ? errtext : strerror(-error));
    } else if (status >= 400) {
        const char *e = json_string_value(json_object_get(resp.body, "error"));
        const char *why = json_string_value(json_object_get(resp.body, "reason"));
        snprintf(msg, sizeof(msg), "%ld %s%s%s", status, e ? e : "error", why ? ": " : "",
                 why ? why : "");
    }
    resp.errmsg = msg;
    if (!r->is_stream)
        c->pending--;
    if (r->cb)
        r->cb(&resp, r->arg);
    json_decref(resp.body);
    req_free(r);
}

static int should_retry(struct req *r, long status, int error)
{
    struct couch *c = r->c;
    if (r->is_stream || (r->flags & COUCH_NO_RETRY) || c->shutting_down)
        return 0;
    if (error == -E2BIG || error == -ENOMEM)
        return 0;
    if (!error && status < 500)
        return 0;
    if (r->flags & COUCH_RETRY_LONG)
        return ev_now(c->loop) - r->first_try < RETRY_LONG_SECONDS;
    return r->attempts < RETRY_ATTEMPTS;
}

static void req_done(struct req *r, CURLcode rc)
{
    struct couch *c = r->c;
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(c->multi, r->easy);
    r->attached = 0;
    int error = curl_to_errno(rc);
    if (r->is_stream && r->cancelled)
        error = r->cancel_error;
    if (error)
        status = r->is_stream ? status : 0;

    if (should_retry(r, status, error)) {
        double delay = RETRY_FIRST;
        for (int i = 1; i < r->attempts && delay < RETRY_MAX; i++)
            delay *= 2;
        if (delay > RETRY_MAX)
            delay = RETRY_MAX;
        LOG(E_DEBUG, L_COUCH, "%s %s: %s; retry %d in %.2f s", r->method, r->url,
            error ? (r->errbuf[0] ? r->errbuf : strerror(-error)) : "server error", r->attempts,
            delay);
        ev_timer_init(&r->retry, retry_timer_cb, delay, 0.);
        r->retry.data = r;
        ev_timer_start(c->loop, &r->retry);
        r->next_waiting = c->waiting;
        if (c->waiting)
            c->waiting->prev_waiting = &r->next_waiting;
        c->waiting = r;
        r->prev_waiting = &c->waiting;
        return;
    }
    if (r->is_stream) {
        if (r->finished)
            return;
        r->finished = 1;
        ev_timer_stop(c->loop, &r->cancel_timer);
        ev_timer_stop(c->loop, &r->idle_timer);
    }
    req_complete(r, status, error,
                 error == -ETIMEDOUT && r->is_stream ? "no data, not even a heartbeat" : r->errbuf);
}

static void retry_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct req *r = w->data;
    waiting_remove(r);
    if (r->c->shutting_down) {
        req_complete(r, 0, -ECANCELED, "shutting down");
        return;
    }
    int err = req_start(r);
    if (err < 0)
        req_complete(r, 0, err, "cannot start request");
}

static void check_multi_info(struct couch *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct req *r;
        CURLcode rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        req_done(r, rc);
    }
}

static struct req *req_new(struct couch *c, const char *method, const char *path, json_t *body,
                           const char *text, const char *ctype, const char *const *extra_headers,
                           int flags)
{
    struct req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->c = c;
    r->flags = flags;
    buf_init(&r->resp, BODY_MAX);
    size_t ulen = strlen(c->base) + strlen(path) + 1;
    r->url = malloc(ulen);
    r->method = strdup(method);
    if (!r->url || !r->method)
        goto fail;
    snprintf(r->url, ulen, "%s%s", c->base, path);
    if (body && !(r->body = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY)))
        goto fail;
    if (text && !(r->body = strdup(text)))
        goto fail;
    /* Both servers misbehave without these (COUCHDB-NOTES.md: 415, empty docs,
     * text/plain or multipart answers). "Expect:" off: no 100-continue round trip. */
    char ctype_header[128];
    snprintf(ctype_header, sizeof(ctype_header), "Content-Type: %s",
             ctype ? ctype : "application/json");
    const char *const std_headers[] = {ctype_header, "Accept: application/json", "Expect:", NULL};
    for (int i = 0; std_headers[i]; i++) {
        struct curl_slist *h = curl_slist_append(r->headers, std_headers[i]);
        if (!h)
            goto fail;
        r->headers = h;
    }
    for (int i = 0; extra_headers && extra_headers[i]; i++) {
        struct curl_slist *h = curl_slist_append(r->headers, extra_headers[i]);
        if (!h)
            goto fail;
        r->headers = h;
    }
    r->first_try = ev_now(c->loop);
    r->next_all = c->all;
    if (c->all)
        c->all->prev_all = &r->next_all;
    c->all = r;
    r->prev_all = &c->all;
    return r;
fail:
    req_free(r);
    return NULL;
}

static int req_submit(struct req *r, couch_cb cb, void *arg)
{
    if (!r)
        return -ENOMEM;
    r->cb = cb;
    r->arg = arg;
    int err = req_start(r);
    if (err < 0) {
        req_free(r);
        return err;
    }
    r->c->pending++;
    return 0;
}

int couch_request(struct couch *c, const char *method, const char *path, json_t *body,
                  const char *const *extra_headers, int flags, couch_cb cb, void *arg)
{
    return req_submit(req_new(c, method, path, body, NULL, NULL, extra_headers, flags), cb, arg);
}

int couch_request_text(struct couch *c, const char *method, const char *path,
                       const char *content_type, const char *body, const char *const *extra_headers,
                       int flags, couch_cb cb, void *arg)
{
    return req_submit(req_new(c, method, path, NULL, body, content_type, extra_headers, flags), cb,
                      arg);
}

/* ---- streams ---- */

static void cancel_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct req *r = w->data;
    if (r->finished)
        return;
    r->finished = 1;
    ev_timer_stop(loop, &r->idle_timer);
    curl_multi_remove_handle(r->c->multi, r->easy);
    r->attached = 0;
    req_complete(r, 0, r->cancel_error,
                 r->cancel_error == -ETIMEDOUT ? "no data, not even a heartbeat" : "cancelled");
}

/* A heartbeat is one byte every few seconds: an average-speed limit (libcurl's
 * LOW_SPEED_*) would call that too slow; what matters is that bytes keep
 * coming at all. */
static void idle_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct req *r = w->data;
    double quiet = ev_now(loop) - r->last_rx;
    if (quiet < r->idle_s) {
        ev_timer_set(w, r->idle_s - quiet, 0.);
        ev_timer_start(loop, w);
        return;
    }
    if (r->finished || r->cancelled)
        return;
    LOG(E_WARN, L_COUCH, "GET %s: nothing received for %.0f s; closing", r->url, quiet);
    r->cancelled = 1;
    r->cancel_error = -ETIMEDOUT;
    ev_timer_start(loop, &r->cancel_timer);
}

struct couch_stream *couch_stream_get(struct couch *c, const char *path, int idle_timeout_s,
                                      couch_line_cb on_line, couch_cb on_end, void *arg)
{
    struct req *r = req_new(c, "GET", path, NULL, NULL, NULL, NULL, COUCH_NO_RETRY);
    if (!r)
        return NULL;
    buf_init(&r->resp, LINE_MAX_BYTES);
    r->is_stream = 1;
    r->on_line = on_line;
    r->cb = on_end;
    r->arg = arg;
    ev_timer_init(&r->cancel_timer, cancel_timer_cb, 0., 0.);
    r->cancel_timer.data = r;
    r->cancel_error = -ECANCELED;
    ev_timer_init(&r->idle_timer, idle_timer_cb, idle_timeout_s, 0.);
    r->idle_timer.data = r;
    r->idle_s = idle_timeout_s;
    r->last_rx = ev_now(c->loop);
    if (req_start(r) < 0) {
        req_free(r);
        return NULL;
    }
    /* A feed that sends not even its heartbeat for this long is dead (a
     * half-open TCP connection after the server vanished). */
    if (idle_timeout_s > 0)
        ev_timer_start(c->loop, &r->idle_timer);
    return (struct couch_stream *)r;
}

void couch_stream_cancel(struct couch_stream *s)
{
    struct req *r = (struct req *)s;
    if (!r || r->finished || r->cancelled)
        return;
    r->cancelled = 1;
    ev_timer_start(r->c->loop, &r->cancel_timer);
}

/* ---- conveniences ---- */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static char *url_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[j++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return out;
}

static void escape_into(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-_.~", ch)) {
            buf_append(b, s, 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            buf_append(b, e, 3);
        }
    }
}

char *couch_escape(const char *s)
{
    struct buf b;
    buf_init(&b, 1u << 20);
    escape_into(&b, s);
    return buf_steal(&b);
}

char *couch_prefix_query(const char *prefix, const char *after, int limit, int include_docs)
{
    json_t *sk = json_string(after ? after : prefix);
    json_t *ek = json_sprintf("%s\xef\xbf\xb0", prefix); /* U+FFF0: past every id of the prefix */
    char *sks = sk ? json_dumps(sk, JSON_ENCODE_ANY) : NULL;
    char *eks = ek ? json_dumps(ek, JSON_ENCODE_ANY) : NULL;
    char *out = NULL;
    if (sks && eks) {
        struct buf b;
        buf_init(&b, 1u << 16);
        buf_puts(&b, "_all_docs?startkey=");
        escape_into(&b, sks);
        buf_puts(&b, "&endkey=");
        escape_into(&b, eks);
        if (include_docs)
            buf_puts(&b, "&include_docs=true");
        if (limit > 0)
            buf_printf(&b, "&limit=%d", limit);
        if (after)
            buf_puts(&b, "&skip=1");
        out = buf_steal(&b);
    }
    free(sks);
    free(eks);
    json_decref(sk);
    json_decref(ek);
    return out;
}

char *couch_path(const char *db, const char *docid)
{
    struct buf b;
    buf_init(&b, 1u << 20);
    buf_puts(&b, "/");
    escape_into(&b, db);
    if (docid) {
        buf_puts(&b, "/");
        if (strncmp(docid, "_design/", 8) == 0 || strncmp(docid, "_local/", 7) == 0) {
            size_t n = strchr(docid, '/') - docid + 1;
            buf_append(&b, docid, n);
            docid += n;
        }
        escape_into(&b, docid);
    }
    return buf_steal(&b);
}

int couch_get(struct couch *c, const char *db, const char *docid, couch_cb cb, void *arg)
{
    char *p = couch_path(db, docid);
    if (!p)
        return -ENOMEM;
    int r = couch_request(c, "GET", p, NULL, NULL, 0, cb, arg);
    free(p);
    return r;
}

int couch_put(struct couch *c, const char *db, const char *docid, json_t *doc, couch_cb cb,
              void *arg)
{
    char *p = couch_path(db, docid);
    if (!p)
        return -ENOMEM;
    int r = couch_request(c, "PUT", p, doc, NULL, 0, cb, arg);
    free(p);
    return r;
}

int couch_delete(struct couch *c, const char *db, const char *docid, const char *rev, couch_cb cb,
                 void *arg)
{
    struct buf b;
    buf_init(&b, 1u << 20);
    char *p = couch_path(db, docid);
    if (!p)
        return -ENOMEM;
    buf_puts(&b, p);
    free(p);
    buf_puts(&b, "?rev=");
    escape_into(&b, rev ? rev : "");
    int r = couch_request(c, "DELETE", b.data, NULL, NULL, 0, cb, arg);
    buf_free(&b);
    return r;
}

int couch_bulk(struct couch *c, const char *db, json_t *docs, couch_cb cb, void *arg)
{
    struct buf b;
    buf_init(&b, 1u << 20);
    char *p = couch_path(db, NULL);
    if (!p)
        return -ENOMEM;
    buf_printf(&b, "%s/_bulk_docs", p);
    free(p);
    json_t *body = json_pack("{s:O}", "docs", docs);
    int r = body ? couch_request(c, "POST", b.data, body, NULL, 0, cb, arg) : -ENOMEM;
    json_decref(body);
    buf_free(&b);
    return r;
}

int couch_view(struct couch *c, const char *db, const char *ddoc, const char *view,
               const char *query, couch_cb cb, void *arg)
{
    struct buf b;
    buf_init(&b, 1u << 20);
    char *p = couch_path(db, NULL);
    if (!p)
        return -ENOMEM;
    buf_puts(&b, p);
    free(p);
    buf_puts(&b, "/_design/");
    escape_into(&b, ddoc);
    buf_puts(&b, "/_view/");
    escape_into(&b, view);
    if (query && *query)
        buf_printf(&b, "?%s", query);
    int r = couch_request(c, "GET", b.data, NULL, NULL, 0, cb, arg);
    buf_free(&b);
    return r;
}

/* ---- read-modify-write ---- */

struct update {
    struct couch *c;
    char *path;
    couch_update_fn fn;
    void *fn_arg;
    couch_cb cb;
    void *arg;
    int conflicts;
};

static void update_get_cb(const struct couch_response *resp, void *arg);

static void update_finish(struct update *u, const struct couch_response *resp)
{
    if (u->cb)
        u->cb(resp, u->arg);
    free(u->path);
    free(u);
}

static void update_fail(struct update *u, int error, const char *why)
{
    struct couch_response resp = {.error = error, .raw = "", .errmsg = why};
    update_finish(u, &resp);
}

static void update_put_cb(const struct couch_response *resp, void *arg)
{
    struct update *u = arg;
    if (resp->status == 409 && ++u->conflicts < UPDATE_MAX_CONFLICTS) {
        /* Someone wrote between our read and our write: read again, apply again. */
        LOG(E_DEBUG, L_COUCH, "conflict on %s, re-applying (%d)", u->path, u->conflicts);
        int err = couch_request(u->c, "GET", u->path, NULL, NULL, 0, update_get_cb, u);
        if (err < 0)
            update_fail(u, err, "cannot re-read after a conflict");
        return;
    }
    update_finish(u, resp);
}

static void update_get_cb(const struct couch_response *resp, void *arg)
{
    struct update *u = arg;
    json_t *doc;
    if (resp->status == 200 && json_is_object(resp->body)) {
        doc = json_deep_copy(resp->body);
    } else if (resp->status == 404) {
        doc = json_object(); /* new (or deleted: a PUT without _rev recreates it) */
    } else {
        update_finish(u, resp);
        return;
    }
    if (!doc) {
        update_fail(u, -ENOMEM, "out of memory");
        return;
    }
    int changed = u->fn(doc, u->fn_arg);
    if (changed <= 0) {
        json_decref(doc);
        if (changed < 0)
            update_fail(u, changed, "update refused by its function");
        else
            update_finish(u, resp);
        return;
    }
    int err = couch_request(u->c, "PUT", u->path, doc, NULL, 0, update_put_cb, u);
    json_decref(doc);
    if (err < 0)
        update_fail(u, err, "cannot write");
}

int couch_update(struct couch *c, const char *db, const char *docid, couch_update_fn fn,
                 void *fn_arg, couch_cb cb, void *arg)
{
    struct update *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->c = c;
    u->fn = fn;
    u->fn_arg = fn_arg;
    u->cb = cb;
    u->arg = arg;
    if (!(u->path = couch_path(db, docid))) {
        free(u);
        return -ENOMEM;
    }
    int err = couch_request(c, "GET", u->path, NULL, NULL, 0, update_get_cb, u);
    if (err < 0) {
        free(u->path);
        free(u);
    }
    return err;
}

/* ---- life cycle ---- */

struct couch *couch_new(struct ev_loop *loop, const char *url)
{
    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return NULL;
        curl_ready = 1;
    }
    const char *scheme_end = strstr(url, "://");
    if (!scheme_end || (strncmp(url, "http", 4) != 0))
        return NULL;
    struct couch *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;

    /* Split "scheme://user:pass@rest" into base URL and decoded credentials. */
    const char *host = scheme_end + 3;
    const char *at = strchr(host, '@');
    const char *slash = strchr(host, '/');
    if (at && (!slash || at < slash)) {
        const char *colon = memchr(host, ':', (size_t)(at - host));
        c->username = url_decode(host, (size_t)((colon ? colon : at) - host));
        c->password = colon ? url_decode(colon + 1, (size_t)(at - colon - 1)) : strdup("");
        size_t n = (size_t)(host - url);
        c->base = malloc(strlen(url) + 1);
        if (c->base) {
            memcpy(c->base, url, n);
            strcpy(c->base + n, at + 1);
        }
    } else {
        c->base = strdup(url);
    }
    if (!c->base)
        goto fail;
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';

    if (!(c->multi = curl_multi_init()))
        goto fail;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    ev_timer_init(&c->timer, timer_cb_ev, 0., 0.);
    c->timer.data = c;
    return c;
fail:
    free(c->base);
    free(c->username);
    free(c->password);
    free(c);
    return NULL;
}

struct ev_loop *couch_loop(const struct couch *c)
{
    return c->loop;
}

const char *couch_url_safe(const struct couch *c)
{
    return c->base;
}

int couch_pending(const struct couch *c)
{
    return c->pending;
}

void couch_shutdown(struct couch *c)
{
    c->shutting_down = 1;
    /* Requests waiting for a retry give up now; those on the wire finish. */
    while (c->waiting) {
        struct req *r = c->waiting;
        waiting_remove(r);
        ev_timer_stop(c->loop, &r->retry);
        req_complete(r, 0, -ECANCELED, "shutting down");
    }
}

void couch_free(struct couch **cp)
{
    struct couch *c = *cp;
    if (!c)
        return;
    couch_shutdown(c);
    /* Whatever is still on the wire is dropped without its callback. */
    while (c->all) {
        struct req *r = c->all;
        if (r->attached)
            curl_multi_remove_handle(c->multi, r->easy);
        if (r->is_stream) {
            ev_timer_stop(c->loop, &r->cancel_timer);
            ev_timer_stop(c->loop, &r->idle_timer);
        }
        req_free(r);
    }
    ev_timer_stop(c->loop, &c->timer);
    curl_multi_cleanup(c->multi);
    free(c->base);
    free(c->username);
    free(c->password);
    free(c);
    *cp = NULL;
}

/* ---- synchronous use (CLI) ---- */

struct sync_state {
    int done;
    long status;
    json_t *body;
};

static void sync_cb(const struct couch_response *resp, void *arg)
{
    struct sync_state *s = arg;
    s->done = 1;
    s->status = resp->error ? resp->error : resp->status;
    s->body = resp->body ? json_incref(resp->body) : NULL;
    if (!s->body && resp->raw_len)
        s->body = json_stringn(resp->raw, resp->raw_len);
}

long couch_sync(struct couch *c, const char *method, const char *path, json_t *body, int flags,
                json_t **body_out)
{
    struct sync_state s = {0};
    int err = couch_request(c, method, path, body, NULL, flags, sync_cb, &s);
    if (err < 0)
        return err;
    while (!s.done)
        ev_run(c->loop, EVRUN_ONCE);
    if (body_out)
        *body_out = s.body;
    else
        json_decref(s.body);
    return s.status;
}
