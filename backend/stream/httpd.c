/*
 * The HTTP/RTSP listener: see httpd.h for the contract.
 *
 * Each connection is a small state machine driven by three watchers (read,
 * write, one timer) and one pump, conn_run(), which every event ends in:
 * parse and dispatch what has arrived, send what is queued, and when the queue
 * empties either start the close (lingering) or tell the owner (drain).
 * Handlers only queue bytes; sending happens in the pump or in the write
 * callback, so no handler ever runs inside another call of the same
 * connection, and a connection closed anywhere is only marked: the reaper, a
 * zero-delay timer, runs its close callback and frees it on the next loop
 * iteration (Redis freeClientAsync, libuv uv_close).
 *
 * One timer per connection with one deadline that depends on what we are
 * waiting for (head, body, next request, the client to read, the linger). It
 * is only moved earlier eagerly; when it fires early it re-arms itself, so a
 * stream writing 50 times a second does not reschedule it 50 times.
 *
 * Errors are answered and then the connection is closed by "lingering":
 * shutdown(SHUT_WR), then read and drop what the client still sends for a
 * moment. A plain close() with unread input makes the kernel send RST, which
 * can destroy the answer before the client reads it (the 431 to a client
 * still sending its 20 KiB head, say).
 */
#include "httpd.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_HEADER_TIMEOUT  10.0 /* generous for a phone on a bad link, short for slowloris */
#define DEFAULT_IDLE_TIMEOUT    30.0 /* keep-alive: longer than browsers' reuse gap */
#define DEFAULT_MAX_OUTPUT      (1u << 20)         /* ~25 s of 320 kbit/s MP3 for a stream */
#define MAX_OUTPUT_QUEUE        ((size_t)64 << 20) /* sanity bound for one response */
#define LINGER_S                2.0 /* long enough for the client to read our error */
#define LINGER_MAX_DISCARD      (256 * 1024)
#define READ_CHUNK              16384
#define SPARE_INPUTS            32
#define ACCEPT_BATCH            64  /* accepts per event: fair to the other watchers */
#define ACCEPT_PAUSE_S          1.0 /* out of fds: retry later instead of spinning */
#define MAX_REJECTING           64  /* connections being told 503 at once */

enum timer_kind { T_NONE, T_HEADER, T_BODY, T_IDLE, T_WRITE, T_LINGER };

struct route {
    char *method; /* NULL = any */
    char *path;
    size_t len;
    int prefix;
    httpd_handler fn;
    void *arg;
};

struct httpd {
    struct ev_loop *loop;
    struct httpd_options opt;
    char *bind_host;
    char *server_name;
    int fd;
    ev_io accept_w;
    ev_timer accept_pause;
    ev_timer reaper;
    int freeing;

    struct route *routes;
    size_t nroutes;
    httpd_handler rtsp_fn;
    httpd_frame_handler frame_fn;
    void *rtsp_arg;

    struct httpd_conn *conns;   /* every connection, closing ones too */
    struct httpd_conn *closing; /* marked, to be freed by the reaper */
    size_t nconns;              /* not counting those told 503 */
    size_t nrejecting;
    uint64_t next_id;
    ev_tstamp reject_logged;

    time_t date_t;
    char date[40];

    /* Parsers and input buffers of connections that need them no more
     * (streams, closed ones), for the next connections: each would
     * otherwise leave a hole of a few KiB between the long-lived
     * allocations of a stream, thousands of times over. */
    struct spare_input {
        struct http_parser *parser;
        struct buf in;
    } spares[SPARE_INPUTS];
    size_t nspares;

    struct {
        uint64_t accepted, rejected, bad, timeouts, overflows;
        uint64_t by_class[6]; /* [1] = 1xx ... [5] = 5xx */
    } st;
};

struct httpd_conn {
    struct httpd *h;
    struct httpd_conn *prev, *next, *next_closing;
    int fd;
    uint64_t id;
    char peer[64];
    ev_io rio, wio;
    ev_timer timer;
    ev_tstamp timer_at;

    struct buf in;
    struct buf out;
    size_t out_off; /* sent bytes at the front of out */
    struct http_parser *parser;

    ev_tstamp req_start, last_read, last_write, idle_since, linger_start;
    double idle_timeout;
    size_t discarded;
    unsigned requests;
    int in_callback;

    /* the request being answered */
    int req_pending;
    int head;
    int keep_alive;
    enum http_version version;
    char cseq[32];

    int is_rtsp, streaming, close_after_flush, closing, lingering, peer_eof, rejecting;
    int continue_sent, close_notified, resume;

    httpd_drain_cb on_drain;
    httpd_close_cb on_close;
    void *cb_arg;
};

enum resp_flags { RESP_STREAM = 1, RESP_CLOSE = 2 };

static void conn_run(struct httpd_conn *c);
static void conn_update(struct httpd_conn *c);
static void release_request_state(struct httpd_conn *c);
static void release_input(struct httpd_conn *c);

const char *httpd_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Parameter Not Understood"; /* RTSP (RFC 2326 §7.1.1) */
    case 453:
        return "Not Enough Bandwidth";
    case 454:
        return "Session Not Found";
    case 455:
        return "Method Not Valid in This State";
    case 456:
        return "Header Field Not Valid for Resource";
    case 457:
        return "Invalid Range";
    case 459:
        return "Aggregate Operation Not Allowed";
    case 460:
        return "Only Aggregate Operation Allowed";
    case 461:
        return "Unsupported Transport";
    case 462:
        return "Destination Unreachable";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "Version Not Supported";
    case 551:
        return "Option not supported"; /* RTSP (RFC 2326 §7.1.1) */
    default:
        return "Unknown";
    }
}

/* RFC 7231 §7.1.1.1 IMF-fixdate, by hand: strftime's %a/%b follow the locale. */
static const char *http_date(struct httpd *h)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)ev_now(h->loop);
    if (t != h->date_t) {
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(h->date, sizeof(h->date), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
                 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        h->date_t = t;
    }
    return h->date;
}

static size_t out_pending(const struct httpd_conn *c)
{
    return c->out.len - c->out_off;
}

static int out_append(struct httpd_conn *c, const void *data, size_t len)
{
    /* Drop what was sent once it is most of the buffer: memmove stays cheap. */
    if (c->out_off && c->out_off * 2 >= c->out.len) {
        buf_consume(&c->out, c->out_off);
        c->out_off = 0;
    }
    if (out_pending(c) == 0)
        c->last_write = ev_now(c->h->loop); /* the write-stall clock starts now */
    int r = buf_append(&c->out, data, len);
    return r == -E2BIG ? -ENOMEM : r;
}

/* ---- closing ---- */

static void reaper_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void conn_close(struct httpd_conn *c)
{
    if (c->closing)
        return;
    struct httpd *h = c->h;
    c->closing = 1;
    ev_io_stop(h->loop, &c->rio);
    ev_io_stop(h->loop, &c->wio);
    ev_timer_stop(h->loop, &c->timer);
    c->next_closing = h->closing;
    h->closing = c;
    if (!h->freeing && !ev_is_active(&h->reaper)) {
        ev_timer_set(&h->reaper, 0., 0.);
        ev_timer_start(h->loop, &h->reaper);
    }
}

static void conn_destroy(struct httpd_conn *c)
{
    struct httpd *h = c->h;
    c->closing = 1;
    if (c->on_close && !c->close_notified) {
        c->close_notified = 1;
        c->on_close(c, c->cb_arg);
    }
    ev_io_stop(h->loop, &c->rio);
    ev_io_stop(h->loop, &c->wio);
    ev_timer_stop(h->loop, &c->timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->rejecting)
        h->nrejecting--;
    else
        h->nconns--;
    LOG(E_DEBUG, L_HTTP, "conn %llu %s: closed after %u requests", (unsigned long long)c->id,
        c->peer, c->requests);
    close(c->fd);
    release_input(c);
    buf_free(&c->out);
    free(c);
}

static void reaper_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct httpd *h = w->data;
    /* Close callbacks may close more connections: they join the list. */
    while (h->closing) {
        struct httpd_conn *c = h->closing;
        h->closing = c->next_closing;
        conn_destroy(c);
    }
}

static void start_linger(struct httpd_conn *c)
{
    if (c->peer_eof) {
        conn_close(c); /* the client has stopped sending: nothing to wait for */
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->lingering = 1;
    c->linger_start = ev_now(c->h->loop);
    c->discarded = 0;
    buf_reset(&c->in);
}

/* ---- responses ---- */

static int headers_valid(const char *headers)
{
    if (!headers || !*headers)
        return 1;
    size_t n = strlen(headers);
    if (n < 3 || headers[n - 2] != '\r' || headers[n - 1] != '\n' || headers[0] == '\r')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)headers[i];
        if (ch == '\n' && (i == 0 || headers[i - 1] != '\r'))
            return 0;
        if (ch == '\r' && headers[i + 1] != '\n')
            return 0;
        if (ch == '\n' && headers[i + 1] == '\r')
            return 0; /* an empty line would end the head early */
        if (ch < 0x20 && ch != '\t' && ch != '\r' && ch != '\n')
            return 0;
    }
    return 1;
}

static void count_status(struct httpd *h, int status)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        h->st.by_class[cls]++;
}

static int queue_response(struct httpd_conn *c, int status, const char *headers, const char *ctype,
                          const void *body, size_t len, int flags)
{
    struct httpd *h = c->h;
    int rtsp = c->version == RTSP_VERSION_1_0;
    int no_body = status == 204 || status == 304;
    int keep = c->keep_alive && !c->peer_eof && !(flags & (RESP_STREAM | RESP_CLOSE));
    struct buf b;
    int r;

    buf_init(&b, 16384 + (headers ? strlen(headers) : 0));
    r = buf_printf(&b, "%s %d %s\r\n", rtsp ? "RTSP/1.0" : "HTTP/1.1", status,
                   httpd_reason(status));
    if (r == 0 && rtsp && c->cseq[0])
        r = buf_printf(&b, "CSeq: %s\r\n", c->cseq);
    if (r == 0)
        r = buf_printf(&b, "Server: %s\r\nDate: %s\r\n", h->server_name, http_date(h));
    if (r == 0 && ctype && !no_body)
        r = buf_printf(&b, "Content-Type: %s\r\n", ctype);
    if (r == 0 && !(flags & RESP_STREAM) && !no_body)
        r = buf_printf(&b, "Content-Length: %zu\r\n", len);
    if (r == 0 && !keep)
        r = buf_puts(&b, "Connection: close\r\n");
    else if (r == 0 && c->version == HTTP_VERSION_1_0)
        r = buf_puts(&b, "Connection: keep-alive\r\n");
    if (r == 0 && headers)
        r = buf_puts(&b, headers);
    if (r == 0)
        r = buf_puts(&b, "\r\n");
    size_t sent = 0;
    if (r == 0 && (flags & RESP_STREAM) && out_pending(c) == 0) {
        /* Straight to the socket, as the stream's data will go: a stream
         * keeps no output buffer while its client keeps up. */
        ssize_t n = send(c->fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent = (size_t)n;
            c->last_write = ev_now(h->loop);
        }
    }
    if (r == 0 && sent < b.len)
        r = out_append(c, b.data + sent, b.len - sent);
    if (r == 0 && len && !no_body && !c->head)
        r = out_append(c, body, len);
    buf_free(&b);
    if (r < 0) {
        LOG(E_ERROR, L_HTTP, "conn %llu %s: cannot queue a %d response: %s",
            (unsigned long long)c->id, c->peer, status, strerror(-r));
        conn_close(c);
        return -ENOMEM;
    }

    LOG(E_DEBUG, L_HTTP, "conn %llu %s: %d %zu bytes", (unsigned long long)c->id, c->peer, status,
        len);
    count_status(h, status);
    c->req_pending = 0;
    c->req_start = c->idle_since = ev_now(h->loop);
    if ((flags & RESP_STREAM) && !c->head) {
        c->streaming = 1;
        release_request_state(c); /* answered later than its request: no handler holds it */
    } else if (!keep) {
        c->close_after_flush = 1;
    }
    if (!c->in_callback)
        conn_update(c);
    return 0;
}

/* An answer that ends the connection: parser errors, timeouts, 503. */
static void respond_error(struct httpd_conn *c, int status, const char *why)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, httpd_reason(status), why);
    c->head = 0;
    c->keep_alive = 0;
    c->cseq[0] = '\0';
    queue_response(c, status, NULL, "text/plain; charset=utf-8", body, (size_t)n, RESP_CLOSE);
}

int httpd_respond_headers(struct httpd_conn *c, int status, const char *headers,
                          const char *content_type, const void *body, size_t len)
{
    if (c->closing || c->close_after_flush)
        return -EPIPE;
    if (!c->req_pending || status < 200 || status > 999 || !headers_valid(headers) ||
        (len && !body))
        return -EINVAL;
    return queue_response(c, status, headers, content_type, body, len, 0);
}

int httpd_respond(struct httpd_conn *c, int status, const char *content_type, const void *body,
                  size_t len)
{
    return httpd_respond_headers(c, status, NULL, content_type, body, len);
}

/* The secret in device and delegate URLs ("/device/NAME/TOKEN/...") never
 * goes into a log: the third path segment is shown as "*". */
static void redact_target(const char *target, char *out, size_t len)
{
    snprintf(out, len, "%s", target);
    if (strncmp(out, "/device/", 8) != 0 && strncmp(out, "/delegate/", 10) != 0)
        return;
    char *name = strchr(out + 1, '/') + 1;
    char *token = strchr(name, '/');
    if (!token || !token[1])
        return;
    char *end = token + 1 + strcspn(token + 1, "/?");
    memmove(token + 2, end, strlen(end) + 1);
    token[1] = '*';
}

/* A stream's socket gets a small kernel send buffer: Linux grows an unread
 * socket's buffer to megabytes (minutes of audio), which would hide a
 * reader that stopped from our own bounded queue for that long. */
#define STREAM_SNDBUF (64 * 1024)

int httpd_stream_start(struct httpd_conn *c, int status, const char *content_type,
                       const char *headers)
{
    if (c->closing || c->close_after_flush)
        return -EPIPE;
    if (!c->req_pending || status < 200 || status > 999 || !headers_valid(headers))
        return -EINVAL;
    int sndbuf = STREAM_SNDBUF;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    return queue_response(c, status, headers, content_type, NULL, 0, RESP_STREAM);
}

int httpd_stream_write(struct httpd_conn *c, const void *data, size_t len)
{
    if (c->closing || c->close_after_flush || c->lingering)
        return -EPIPE;
    if (!c->streaming && !c->is_rtsp)
        return -EINVAL;
    /* Checked before anything is sent: a frame goes out whole or not at all
     * (a partial RTSP interleaved frame would break the framing for good). */
    if (len > c->h->opt.max_output || out_pending(c) > c->h->opt.max_output - len) {
        c->h->st.overflows++;
        return -ENOBUFS;
    }
    if (out_pending(c) == 0 && len > 0) {
        /* The common case of a reader that keeps up: straight to the socket,
         * no copy, no loop iteration. send() runs no callback, so this is
         * safe from anywhere. */
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            LOG(E_DEBUG, L_HTTP, "conn %llu %s: send: %s", (unsigned long long)c->id, c->peer,
                strerror(errno));
            conn_close(c);
            return -EPIPE;
        }
        if (n > 0) {
            c->last_write = ev_now(c->h->loop);
            data = (const char *)data + n;
            len -= (size_t)n;
        }
        if (len == 0)
            return 0;
    }
    int r = out_append(c, data, len);
    if (r < 0)
        return r;
    if (!c->in_callback)
        conn_update(c);
    return 0;
}

void httpd_conn_set_callbacks(struct httpd_conn *c, httpd_drain_cb on_drain,
                              httpd_close_cb on_close, void *arg)
{
    c->on_drain = on_drain;
    c->on_close = on_close;
    c->cb_arg = arg;
}

void httpd_conn_close(struct httpd_conn *c)
{
    conn_close(c);
}

void httpd_conn_end(struct httpd_conn *c)
{
    if (c->closing || c->lingering)
        return;
    c->close_after_flush = 1;
    if (out_pending(c) == 0)
        start_linger(c);
    if (!c->in_callback)
        conn_update(c);
}

size_t httpd_conn_pending(const struct httpd_conn *c)
{
    return out_pending(c);
}

void httpd_conn_set_idle_timeout(struct httpd_conn *c, double seconds)
{
    c->idle_timeout = seconds > 0 ? seconds : 0;
    if (!c->in_callback)
        conn_update(c);
}

const char *httpd_conn_peer(const struct httpd_conn *c)
{
    return c->peer;
}

uint64_t httpd_conn_id(const struct httpd_conn *c)
{
    return c->id;
}

/* ---- requests ---- */

static int method_matches(const struct route *r, const char *method)
{
    return !r->method || strcmp(r->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

static void route_request(struct httpd_conn *c, const struct http_request *req)
{
    struct httpd *h = c->h;
    const struct route *best = NULL;
    size_t best_score = 0;
    int path_found = 0;

    for (size_t i = 0; i < h->nroutes; i++) {
        const struct route *r = &h->routes[i];
        int match =
            r->prefix ? strncmp(req->path, r->path, r->len) == 0 : strcmp(req->path, r->path) == 0;
        if (!match)
            continue;
        path_found = 1;
        size_t score = r->prefix ? r->len : SIZE_MAX;
        if (method_matches(r, req->method) && (!best || score > best_score)) {
            best = r;
            best_score = score;
        }
    }
    if (best) {
        best->fn(c, req, best->arg);
        return;
    }
    if (!path_found) {
        httpd_respond(c, 404, "text/plain; charset=utf-8", "404 Not Found\n", 14);
        return;
    }

    /* 405 must say what is allowed (RFC 7231 §6.5.5). */
    struct buf allow;
    buf_init(&allow, 4096);
    int get = 0;
    int r = buf_puts(&allow, "Allow: ");
    for (size_t i = 0; i < h->nroutes && r == 0; i++) {
        const struct route *rt = &h->routes[i];
        int match = rt->prefix ? strncmp(req->path, rt->path, rt->len) == 0
                               : strcmp(req->path, rt->path) == 0;
        if (!match || !rt->method || strstr(allow.data, rt->method))
            continue;
        get |= strcmp(rt->method, "GET") == 0;
        r = buf_printf(&allow, "%s%s", allow.len > 7 ? ", " : "", rt->method);
    }
    if (r == 0 && get && !strstr(allow.data, "HEAD"))
        r = buf_puts(&allow, ", HEAD");
    if (r == 0)
        r = buf_puts(&allow, "\r\n");
    httpd_respond_headers(c, 405, r == 0 ? allow.data : NULL, "text/plain; charset=utf-8",
                          "405 Method Not Allowed\n", 23);
    buf_free(&allow);
}

static void dispatch(struct httpd_conn *c, const struct http_request *req)
{
    struct httpd *h = c->h;

    c->req_pending = 1;
    c->head = strcmp(req->method, "HEAD") == 0;
    c->keep_alive = req->keep_alive;
    c->version = req->version;
    c->continue_sent = 0;
    c->cseq[0] = '\0';
    c->requests++;
    if (log_level >= E_DEBUG) {
        char shown[256];
        redact_target(req->target, shown, sizeof(shown));
        LOG(E_DEBUG, L_HTTP, "conn %llu %s: %s %s %s", (unsigned long long)c->id, c->peer,
            req->method, shown, http_version_string(req->version));
    }

    if (req->version == RTSP_VERSION_1_0) {
        /* CSeq is echoed verbatim: the parser let no control character in. */
        const char *cseq = http_request_header(req, "CSeq");
        if (cseq && strlen(cseq) < sizeof(c->cseq))
            strcpy(c->cseq, cseq);
        c->is_rtsp = 1;
        if (h->rtsp_fn)
            h->rtsp_fn(c, req, h->rtsp_arg);
        else
            httpd_respond(c, 501, NULL, NULL, 0);
        return;
    }
    route_request(c, req);
}

static int can_process(const struct httpd_conn *c)
{
    return !c->closing && !c->req_pending && !c->close_after_flush && !c->streaming &&
           !c->lingering && !c->rejecting && out_pending(c) < c->h->opt.max_output;
}

static void process_input(struct httpd_conn *c)
{
    struct httpd *h = c->h;

    while (can_process(c) && c->in.len > 0) {
        struct http_message m;
        enum http_result r = http_parse(c->parser, c->in.data, c->in.len, &m);
        if (r == HTTP_NEED_MORE) {
            if (http_parser_expects_continue(c->parser) && !c->continue_sent) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                c->continue_sent = 1;
                if (out_append(c, cont, sizeof(cont) - 1) < 0)
                    conn_close(c);
            }
            return;
        }
        if (r == HTTP_ERROR) {
            h->st.bad++;
            LOG(E_INFO, L_HTTP, "conn %llu %s: bad request: %d %s", (unsigned long long)c->id,
                c->peer, m.status, m.error);
            c->version = m.version;
            respond_error(c, m.status, m.error);
            return;
        }
        buf_consume(&c->in, m.consumed);
        c->req_start = ev_now(h->loop); /* what is left starts the next message */
        if (r == HTTP_FRAME) {
            if (!c->is_rtsp) {
                h->st.bad++;
                c->version = HTTP_VERSION_1_1;
                respond_error(c, 400, "interleaved frame outside RTSP");
                return;
            }
            if (h->frame_fn)
                h->frame_fn(c, m.frame.channel, m.frame.data, m.frame.len, h->rtsp_arg);
            continue;
        }
        dispatch(c, &m.req);
    }
}

/* ---- I/O ---- */

/* Sends what it can. Returns 1 if the queue is now empty, else 0. */
static int conn_flush(struct httpd_conn *c)
{
    while (out_pending(c) > 0) {
        ssize_t n =
            send(c->fd, c->out.data + c->out_off, out_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->last_write = ev_now(c->h->loop);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        LOG(E_DEBUG, L_HTTP, "conn %llu %s: send: %s", (unsigned long long)c->id, c->peer,
            n < 0 ? strerror(errno) : "0 bytes");
        conn_close(c);
        return 0;
    }
    /* A stream's queue fills only while its client lags: once it has caught
     * up, the memory goes back rather than stay with every listener. */
    if (c->streaming)
        buf_free(&c->out);
    else
        buf_reset(&c->out);
    c->out_off = 0;
    return 1;
}

/* A stream reads no more requests: its parser and input buffer (a few KiB
 * each, times thousands of listeners) go as soon as no handler can still
 * hold the request they carry. */
static void release_input(struct httpd_conn *c)
{
    struct httpd *h = c->h;
    if (!c->parser)
        return;
    if (h->nspares < SPARE_INPUTS && !h->freeing) {
        struct spare_input *sp = &h->spares[h->nspares++];
        http_parser_reset(c->parser);
        buf_reset(&c->in);
        sp->parser = c->parser;
        sp->in = c->in;
        c->parser = NULL;
    } else {
        http_parser_free(&c->parser);
        buf_free(&c->in);
    }
    buf_init(&c->in, 0);
}

static void release_request_state(struct httpd_conn *c)
{
    if (c->streaming && !c->in_callback)
        release_input(c);
}

/* The pump: see the top of the file. */
static void conn_run(struct httpd_conn *c)
{
    int round;

    c->in_callback++;
    c->resume = 0;
    /* Bounded: a client pipelining megabytes of answers, or a drain callback
     * that always refills a fast socket, must not keep the loop here. If the
     * rounds run out, resume marks the connection to go on in the next loop
     * iteration (through the write watcher: the socket is writable). */
    for (round = 0; round < 8 && !c->closing; round++) {
        process_input(c);
        if (c->closing || out_pending(c) == 0)
            break;
        if (!conn_flush(c))
            break;
        c->idle_since = ev_now(c->h->loop);
        if (c->close_after_flush) {
            start_linger(c);
            break;
        }
        if (c->on_drain)
            c->on_drain(c, c->cb_arg);
    }
    if (round == 8)
        c->resume = 1;
    if (!c->closing && c->peer_eof && !c->req_pending && out_pending(c) == 0 && !c->lingering)
        conn_close(c); /* the client is gone and has nothing more coming */
    c->in_callback--;
    release_request_state(c);
    if (!c->closing)
        conn_update(c);
}

static int discarding(const struct httpd_conn *c)
{
    return c->lingering || c->streaming || c->rejecting || c->close_after_flush;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct httpd_conn *c = w->data;
    char tmp[READ_CHUNK];

    if (c->closing)
        return;
    ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        LOG(E_DEBUG, L_HTTP, "conn %llu %s: recv: %s", (unsigned long long)c->id, c->peer,
            strerror(errno));
        conn_close(c);
        return;
    }
    if (n == 0) {
        c->peer_eof = 1;
        ev_io_stop(loop, &c->rio);
        /* A listener hung up, our goodbye was read, or (like nginx, rather than
         * wait for a half-closed client) a request in progress was given up:
         * its handler learns it from the close callback. */
        if (c->lingering || c->streaming || c->rejecting || c->req_pending) {
            conn_close(c);
            return;
        }
        conn_run(c);
        return;
    }
    c->last_read = ev_now(loop);
    if (discarding(c)) {
        c->discarded += (size_t)n;
        if (c->lingering && c->discarded > LINGER_MAX_DISCARD)
            conn_close(c);
        return;
    }
    if (c->in.len == 0 && !http_parser_head_done(c->parser))
        c->req_start = ev_now(loop);
    if (buf_append(&c->in, tmp, (size_t)n) < 0) {
        /* Cannot happen within the parser's limits; never grow past them. */
        c->h->st.bad++;
        respond_error(c, 400, "request too large");
    }
    conn_run(c);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct httpd_conn *c = w->data;
    if (!c->closing)
        conn_run(c);
}

/* What the connection waits for, and until when. */
static enum timer_kind conn_deadline(const struct httpd_conn *c, ev_tstamp *at)
{
    const struct httpd_options *o = &c->h->opt;
    if (c->closing)
        return T_NONE;
    if (c->lingering) {
        *at = c->linger_start + LINGER_S;
        return T_LINGER;
    }
    if (out_pending(c) > 0) {
        *at = c->last_write + o->idle_timeout_s;
        return T_WRITE;
    }
    if (c->req_pending || c->streaming || c->rejecting || c->close_after_flush)
        return T_NONE; /* the handler's or the stream's business */
    if (http_parser_head_done(c->parser)) {
        *at = c->last_read + o->header_timeout_s;
        return T_BODY;
    }
    if (c->in.len > 0 || (c->requests == 0 && !c->is_rtsp)) {
        *at = c->req_start + o->header_timeout_s;
        return T_HEADER;
    }
    if (c->idle_timeout <= 0)
        return T_NONE;
    /* Bytes in (RTCP receiver reports as interleaved frames, say) are life too. */
    *at = (c->idle_since > c->last_read ? c->idle_since : c->last_read) + c->idle_timeout;
    return T_IDLE;
}

static void conn_update(struct httpd_conn *c)
{
    struct ev_loop *loop = c->h->loop;
    if (c->closing)
        return;

    int want_read = !c->peer_eof && (discarding(c) || can_process(c) || c->in.len < HTTP_MAX_HEAD);
    if (want_read && !ev_is_active(&c->rio))
        ev_io_start(loop, &c->rio);
    else if (!want_read && ev_is_active(&c->rio))
        ev_io_stop(loop, &c->rio);
    int want_write = out_pending(c) > 0 || c->resume;
    if (want_write && !ev_is_active(&c->wio))
        ev_io_start(loop, &c->wio);
    else if (!want_write && ev_is_active(&c->wio))
        ev_io_stop(loop, &c->wio);

    ev_tstamp at = 0;
    if (conn_deadline(c, &at) == T_NONE) {
        ev_timer_stop(loop, &c->timer);
        return;
    }
    /* Only ever move it earlier here; timer_cb re-arms when it fires early. */
    if (!ev_is_active(&c->timer) || at < c->timer_at) {
        ev_tstamp now = ev_now(loop);
        ev_timer_stop(loop, &c->timer);
        ev_timer_set(&c->timer, at > now ? at - now : 0., 0.);
        ev_timer_start(loop, &c->timer);
        c->timer_at = at;
    }
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct httpd_conn *c = w->data;
    struct httpd *h = c->h;
    ev_tstamp at = 0, now = ev_now(loop);
    enum timer_kind kind = conn_deadline(c, &at);

    if (kind == T_NONE)
        return;
    if (at > now + 0.001) {
        ev_timer_set(&c->timer, at - now, 0.);
        ev_timer_start(loop, &c->timer);
        c->timer_at = at;
        return;
    }
    switch (kind) {
    case T_HEADER:
    case T_BODY:
        h->st.timeouts++;
        LOG(E_INFO, L_HTTP, "conn %llu %s: request %s not complete within %.0f s",
            (unsigned long long)c->id, c->peer, kind == T_HEADER ? "head" : "body",
            h->opt.header_timeout_s);
        if (c->in.len == 0 && c->requests == 0) {
            conn_close(c); /* never said a word: no one to answer */
            return;
        }
        c->version = HTTP_VERSION_1_1;
        c->in_callback++;
        respond_error(c, 408, "request not complete in time");
        c->in_callback--;
        break;
    case T_WRITE:
        h->st.timeouts++;
        LOG(E_INFO, L_HTTP, "conn %llu %s: client read nothing for %.0f s, closing",
            (unsigned long long)c->id, c->peer, h->opt.idle_timeout_s);
        conn_close(c);
        return;
    case T_IDLE:
    case T_LINGER:
    default:
        conn_close(c);
        return;
    }
    conn_run(c);
}

/* ---- accepting ---- */

static void format_peer(char *out, size_t n, const struct sockaddr_storage *ss)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
        snprintf(out, n, "%s:%u", ip, ntohs(s->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
        snprintf(out, n, "[%s]:%u", ip, ntohs(s->sin6_port));
    } else {
        snprintf(out, n, "?");
    }
}

static struct httpd_conn *conn_new(struct httpd *h, int fd, const struct sockaddr_storage *ss)
{
    struct http_limits lim = {.max_body = h->opt.max_body};
    struct httpd_conn *c = calloc(1, sizeof(*c));
    if (!c)
        goto fail_conn;
    /* The input holds at most one message being parsed plus one read. */
    size_t in_max = HTTP_MAX_HEAD + h->opt.max_body + 65540 + READ_CHUNK;
    if (h->nspares) {
        struct spare_input *sp = &h->spares[--h->nspares];
        c->parser = sp->parser;
        c->in = sp->in;
    } else {
        c->parser = http_parser_new(&lim);
        if (!c->parser)
            goto fail_parser;
        buf_init(&c->in, in_max);
    }
    c->h = h;
    c->fd = fd;
    c->id = ++h->next_id;
    format_peer(c->peer, sizeof(c->peer), ss);
    buf_init(&c->out, h->opt.max_output + MAX_OUTPUT_QUEUE);
    c->idle_timeout = h->opt.idle_timeout_s;
    c->req_start = c->idle_since = c->last_read = c->last_write = ev_now(h->loop);
    ev_io_init(&c->rio, read_cb, fd, EV_READ);
    ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
    ev_init(&c->timer, timer_cb);
    c->rio.data = c->wio.data = c->timer.data = c;

    int one = 1;
    /* Small answers and RTSP replies must not wait for Nagle. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    return c;

fail_parser:
    free(c);
fail_conn:
    return NULL;
}

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct httpd *h = w->data;
    ev_io_start(loop, &h->accept_w);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct httpd *h = w->data;

    for (int k = 0; k < ACCEPT_BATCH; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(h->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            LOG(E_WARN, L_HTTP, "accept: %s; pausing for %.0f s", strerror(errno), ACCEPT_PAUSE_S);
            ev_io_stop(loop, &h->accept_w);
            ev_timer_set(&h->accept_pause, ACCEPT_PAUSE_S, 0.);
            ev_timer_start(loop, &h->accept_pause);
            return;
        }
        int reject = h->nconns >= (size_t)h->opt.max_connections;
        if (reject && h->nrejecting >= MAX_REJECTING) {
            h->st.rejected++;
            close(fd); /* too many even to say no politely */
            continue;
        }
        struct httpd_conn *c = conn_new(h, fd, &ss);
        if (!c) {
            LOG(E_ERROR, L_HTTP, "accept: out of memory");
            close(fd);
            continue;
        }
        h->st.accepted++;
        if (!reject) {
            h->nconns++;
            LOG(E_DEBUG, L_HTTP, "conn %llu %s: accepted", (unsigned long long)c->id, c->peer);
            conn_update(c);
            continue;
        }
        c->rejecting = 1;
        h->nrejecting++;
        h->st.rejected++;
        if (ev_now(loop) - h->reject_logged >= 1.0) { /* one line a second under a flood */
            LOG(E_WARN, L_HTTP, "conn %llu %s: %zu connections open, answering 503",
                (unsigned long long)c->id, c->peer, h->nconns);
            h->reject_logged = ev_now(loop);
        }
        c->in_callback++;
        respond_error(c, 503, "too many connections");
        c->in_callback--;
        conn_run(c);
    }
}

/* ---- the server ---- */

static int httpd_collect(struct buf *out, void *arg)
{
    static const char *const classes[] = {NULL, "1xx", "2xx", "3xx", "4xx", "5xx"};
    struct httpd *h = arg;
    int r = metrics_gauge(out, "imes_http_connections_open", "Open HTTP and RTSP connections.",
                          (double)h->nconns);
    if (r == 0)
        r = metrics_counter(out, "imes_http_connections_total", "Connections accepted.",
                            (double)h->st.accepted);
    if (r == 0)
        r = metrics_counter(out, "imes_http_connections_rejected_total",
                            "Connections answered 503 beyond max_connections.",
                            (double)h->st.rejected);
    if (r == 0)
        r = metrics_family(out, "imes_http_requests_total", "counter",
                           "Responses sent, by status class.");
    for (int i = 1; i <= 5 && r == 0; i++)
        r = metrics_sample(out, "imes_http_requests_total", "class", classes[i],
                           (double)h->st.by_class[i]);
    if (r == 0)
        r = metrics_counter(out, "imes_http_bad_requests_total",
                            "Requests the parser refused (malformed or too large).",
                            (double)h->st.bad);
    if (r == 0)
        r = metrics_counter(out, "imes_http_timeouts_total",
                            "Connections cut off by a head, body or write timeout.",
                            (double)h->st.timeouts);
    if (r == 0)
        r = metrics_counter(out, "imes_http_stream_overflows_total",
                            "Stream writes refused because the output queue was full.",
                            (double)h->st.overflows);
    return r;
}

static int parse_bind(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    char tmp[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        if (n - 2 >= sizeof(tmp))
            return -EINVAL;
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        host = tmp;
    }
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof(*s4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return 0;
    }
    return -EINVAL;
}

static int listen_on(struct httpd *h)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int one = 1, zero = 0, r;

    /* Numeric only: resolving a name would block the loop (getaddrinfo). */
    if (parse_bind(h->bind_host, h->opt.bind_port, &ss, &sl) < 0) {
        LOG(E_ERROR, L_HTTP, "bind_host \"%s\": not a numeric IPv4 or IPv6 address", h->bind_host);
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        goto fail_socket;
    }
    /* A restarted imesd must not wait out TIME_WAIT of its old connections. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6 &&
        IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr))
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)); /* "::" serves v4 too */
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 511) < 0) {
        r = -errno;
        goto fail_bind;
    }
    h->fd = fd;
    return 0;

fail_bind:
    close(fd);
fail_socket:
    LOG(E_ERROR, L_HTTP, "listen on %s port %d: %s", h->bind_host, h->opt.bind_port, strerror(-r));
    return r;
}

struct httpd *httpd_new(struct ev_loop *loop, const struct httpd_options *opt)
{
    int r = -ENOMEM;
    struct httpd *h = calloc(1, sizeof(*h));
    if (!h)
        goto fail_alloc;
    h->loop = loop;
    h->fd = -1;
    h->opt = *opt;
    if (h->opt.bind_port < 0 || h->opt.bind_port > 65535 || h->opt.max_connections < 0 ||
        h->opt.header_timeout_s < 0 || h->opt.idle_timeout_s < 0) {
        LOG(E_ERROR, L_HTTP, "bad listener options (port %d, max_connections %d)", h->opt.bind_port,
            h->opt.max_connections);
        r = -EINVAL;
        goto fail_strings;
    }
    if (!h->opt.max_connections)
        h->opt.max_connections = DEFAULT_MAX_CONNECTIONS;
    if (h->opt.header_timeout_s == 0)
        h->opt.header_timeout_s = DEFAULT_HEADER_TIMEOUT;
    if (h->opt.idle_timeout_s == 0)
        h->opt.idle_timeout_s = DEFAULT_IDLE_TIMEOUT;
    if (!h->opt.max_body)
        h->opt.max_body = HTTP_MAX_BODY;
    if (!h->opt.max_output)
        h->opt.max_output = DEFAULT_MAX_OUTPUT;
    h->bind_host = strdup(opt->bind_host ? opt->bind_host : "0.0.0.0");
    h->server_name = strdup(opt->server_name ? opt->server_name : "imesd");
    if (!h->bind_host || !h->server_name)
        goto fail_strings;
    h->opt.bind_host = h->bind_host;
    h->opt.server_name = h->server_name;

    r = listen_on(h);
    if (r < 0)
        goto fail_listen;
    r = metrics_add_collector(httpd_collect, h);
    if (r < 0) {
        LOG(E_ERROR, L_HTTP, "cannot register metrics: %s", strerror(-r));
        goto fail_metrics;
    }

    ev_io_init(&h->accept_w, accept_cb, h->fd, EV_READ);
    h->accept_w.data = h;
    ev_init(&h->accept_pause, accept_pause_cb);
    h->accept_pause.data = h;
    ev_init(&h->reaper, reaper_cb);
    h->reaper.data = h;
    ev_io_start(loop, &h->accept_w);
    LOG(E_INFO, L_HTTP, "listening for HTTP and RTSP on %s port %d", h->bind_host, httpd_port(h));
    return h;

fail_metrics:
    close(h->fd);
fail_listen:
fail_strings:
    free(h->bind_host);
    free(h->server_name);
    free(h);
fail_alloc:
    errno = -r;
    return NULL;
}

void httpd_free(struct httpd **hp)
{
    if (!hp || !*hp)
        return;
    struct httpd *h = *hp;
    h->freeing = 1;
    metrics_remove_collector(httpd_collect, h);
    ev_io_stop(h->loop, &h->accept_w);
    ev_timer_stop(h->loop, &h->accept_pause);
    ev_timer_stop(h->loop, &h->reaper);
    close(h->fd);
    while (h->conns)
        conn_destroy(h->conns);
    h->closing = NULL; /* every one of them was in conns */
    for (size_t i = 0; i < h->nroutes; i++) {
        free(h->routes[i].method);
        free(h->routes[i].path);
    }
    free(h->routes);
    for (size_t i = 0; i < h->nspares; i++) {
        http_parser_free(&h->spares[i].parser);
        buf_free(&h->spares[i].in);
    }
    free(h->bind_host);
    free(h->server_name);
    free(h);
    *hp = NULL;
}

int httpd_port(const struct httpd *h)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(h->fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int httpd_add_route(struct httpd *h, const char *method, const char *path, httpd_handler fn,
                    void *arg)
{
    if (!path || path[0] != '/' || !fn || (method && !*method))
        return -EINVAL;
    struct route *rs = realloc(h->routes, (h->nroutes + 1) * sizeof(*rs));
    if (!rs)
        return -ENOMEM;
    h->routes = rs;
    struct route *r = &rs[h->nroutes];
    r->method = method ? strdup(method) : NULL;
    r->path = strdup(path);
    if ((method && !r->method) || !r->path) {
        free(r->method);
        free(r->path);
        return -ENOMEM;
    }
    r->len = strlen(path);
    r->prefix = path[r->len - 1] == '/'; /* "/" alone: every path */
    r->fn = fn;
    r->arg = arg;
    h->nroutes++;
    return 0;
}

void httpd_set_rtsp_handler(struct httpd *h, httpd_handler fn, httpd_frame_handler frame_fn,
                            void *arg)
{
    h->rtsp_fn = fn;
    h->frame_fn = frame_fn;
    h->rtsp_arg = arg;
}
