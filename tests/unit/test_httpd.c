/*
 * The listener, tested the libuv way: a real ev loop runs httpd on an
 * ephemeral port in the test's thread; a client thread talks to it over real
 * sockets and records what it got; callbacks count; the loop stops when the
 * client is done and the expected callbacks have run; then everything is
 * asserted in the test's thread (cmocka must not fail from another thread).
 * SIGPIPE is left at its default: a write to a gone client must not kill us.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "stream/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WATCHDOG_S 15.0

struct ctx;
typedef void (*client_fn)(struct ctx *t);

struct ctx {
    struct ev_loop *loop;
    struct httpd *h;
    int port;
    ev_async done;
    ev_timer watchdog;
    int timed_out;
    int client_done;
    int want_closes;
    int closes;
    client_fn client;

    /* what the client saw */
    char got[4][20000];
    size_t got_len[4];
    double elapsed;
    int flag;

    /* server side */
    struct httpd_conn *conn;
    ev_timer work;
    int stream_writes;
    int enobufs;
    int in_write;
    int close_in_write;
    int frames;
    unsigned frame_channel;
    char seen_method[32];
    char seen_cseq[32];
};

/* ---- client side (runs in its own thread) ---- */

struct client {
    int fd;
    int head; /* the next response answers HEAD: no body */
    char buf[70000];
    size_t len;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int client_connect_to(struct client *cl, int family, const char *ip, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&ss;
        s->sin_family = AF_INET;
        s->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, ip, &s->sin_addr);
        sl = sizeof(*s);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &s->sin6_addr);
        sl = sizeof(*s);
    }
    cl->len = 0;
    cl->head = 0;
    cl->fd = socket(family, SOCK_STREAM, 0);
    if (cl->fd < 0)
        return -1;
    struct timeval tv = {5, 0};
    setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(cl->fd, (struct sockaddr *)&ss, sl) < 0) {
        close(cl->fd);
        cl->fd = -1;
        return -1;
    }
    return 0;
}

static int client_connect(struct client *cl, int port)
{
    return client_connect_to(cl, AF_INET, "127.0.0.1", port);
}

static void send_str(struct client *cl, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(cl->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void send_s(struct client *cl, const char *s)
{
    send_str(cl, s, strlen(s));
}

/* Reads until the server closes (or 5 s pass); appends to out. */
static size_t read_until_close(struct client *cl, char *out, size_t cap)
{
    size_t n = cl->len < cap - 1 ? cl->len : cap - 1;
    memcpy(out, cl->buf, n);
    cl->len = 0;
    for (;;) {
        ssize_t r = recv(cl->fd, out + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            break;
    }
    out[n] = '\0';
    return n;
}

/* Reads one response (head + Content-Length body) into out. 0 on failure. */
static size_t read_response(struct client *cl, char *out, size_t cap)
{
    char *end;
    for (;;) {
        cl->buf[cl->len] = '\0';
        end = strstr(cl->buf, "\r\n\r\n");
        if (end)
            break;
        ssize_t r = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len, 0);
        if (r <= 0)
            return 0;
        cl->len += (size_t)r;
    }
    size_t head = (size_t)(end - cl->buf) + 4;
    size_t body = 0;
    char *cl_hdr = strcasestr(cl->buf, "\r\nContent-Length:");
    if (cl_hdr && cl_hdr < end)
        body = strtoul(cl_hdr + 17, NULL, 10);
    if (strncmp(cl->buf, "HTTP/1.1 100", 12) == 0 || cl->head)
        body = 0;
    cl->head = 0;
    while (cl->len < head + body) {
        ssize_t r = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len, 0);
        if (r <= 0)
            return 0;
        cl->len += (size_t)r;
    }
    size_t n = head + body < cap - 1 ? head + body : cap - 1;
    memcpy(out, cl->buf, n);
    out[n] = '\0';
    memmove(cl->buf, cl->buf + head + body, cl->len - head - body);
    cl->len -= head + body;
    return n;
}

static void client_close(struct client *cl)
{
    if (cl->fd >= 0)
        close(cl->fd);
    cl->fd = -1;
}

static void *client_thread(void *arg)
{
    struct ctx *t = arg;
    t->client(t);
    ev_async_send(t->loop, &t->done);
    return NULL;
}

/* ---- server side ---- */

static void maybe_break(struct ctx *t)
{
    if (t->client_done && t->closes >= t->want_closes)
        ev_break(t->loop, EVBREAK_ALL);
}

static void done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    struct ctx *t = w->data;
    t->client_done = 1;
    maybe_break(t);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ctx *t = w->data;
    t->timed_out = 1;
    ev_break(loop, EVBREAK_ALL);
}

static void on_close_count(struct httpd_conn *c, void *arg)
{
    struct ctx *t = arg;
    t->closes++;
    if (t->in_write)
        t->close_in_write = 1;
    if (ev_is_active(&t->work))
        ev_timer_stop(t->loop, &t->work);
    t->conn = NULL;
    maybe_break(t);
}

static void h_hello(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    httpd_respond(c, 200, "text/plain", "hello\n", 6);
}

static void h_echo(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    httpd_respond(c, 200, "application/octet-stream", req->body, req->body_len);
}

static void h_path(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%s %s %s", (const char *)arg, req->method, req->path);
    httpd_respond(c, 200, "text/plain", body, (size_t)n);
}

static void later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ctx *t = w->data;
    if (t->conn) {
        httpd_respond(t->conn, 200, "text/plain", "later\n", 6);
        httpd_conn_set_callbacks(t->conn, NULL, NULL, NULL);
        t->conn = NULL;
    }
}

static void h_later(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    struct ctx *t = arg;
    t->conn = c;
    httpd_conn_set_callbacks(c, NULL, on_close_count, t);
    ev_timer_init(&t->work, later_cb, 0.05, 0.);
    t->work.data = t;
    ev_timer_start(t->loop, &t->work);
}

static void h_never(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    struct ctx *t = arg;
    t->conn = c;
    httpd_conn_set_callbacks(c, NULL, on_close_count, t);
}

static void stream_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ctx *t = w->data;
    char chunk[1000];
    memset(chunk, 'a', sizeof(chunk));
    t->in_write = 1;
    int r = httpd_stream_write(t->conn, chunk, sizeof(chunk));
    t->in_write = 0;
    if (r == 0)
        t->stream_writes++;
}

static void h_stream(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    struct ctx *t = arg;
    assert_int_equal(httpd_stream_start(c, 200, "audio/mpeg", "Cache-Control: no-cache\r\n"), 0);
    t->conn = c;
    httpd_conn_set_callbacks(c, NULL, on_close_count, t);
    ev_timer_init(&t->work, stream_tick, 0.005, 0.005);
    t->work.data = t;
    ev_timer_start(t->loop, &t->work);
}

static void flood_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ctx *t = w->data;
    static char chunk[16384];
    for (int i = 0; i < 64 && t->conn; i++) {
        t->in_write = 1;
        int r = httpd_stream_write(t->conn, chunk, sizeof(chunk));
        t->in_write = 0;
        if (r == -ENOBUFS) {
            /* the slow reader is dropped alone */
            t->enobufs++;
            t->in_write = 1;
            httpd_conn_close(t->conn);
            t->in_write = 0;
            ev_timer_stop(loop, w);
            return;
        }
        assert_int_equal(r, 0);
        t->stream_writes++;
    }
}

static void h_flood(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    struct ctx *t = arg;
    httpd_stream_start(c, 200, "audio/ogg", NULL);
    t->conn = c;
    httpd_conn_set_callbacks(c, NULL, on_close_count, t);
    ev_timer_init(&t->work, flood_tick, 0.001, 0.001);
    t->work.data = t;
    ev_timer_start(t->loop, &t->work);
}

static void h_short_stream(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    struct ctx *t = arg;
    httpd_conn_set_callbacks(c, NULL, on_close_count, t);
    assert_int_equal(httpd_stream_start(c, 200, "audio/mpeg", NULL), 0);
    if (!t->flag++) {
        assert_int_equal(httpd_stream_write(c, "bye", 3), 0);
        httpd_conn_end(c);
        assert_int_equal(httpd_stream_write(c, "x", 1), -EPIPE);
    }
}

static void h_metrics(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    if (metrics_render(&b) == 0)
        httpd_respond(c, 200, METRICS_CONTENT_TYPE, b.data, b.len);
    else
        httpd_respond(c, 500, "text/plain", "metrics failed\n", 15);
    buf_free(&b);
}

static void rtsp_request(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    struct ctx *t = arg;
    const char *cseq = http_request_header(req, "CSeq");
    snprintf(t->seen_method, sizeof(t->seen_method), "%s", req->method);
    snprintf(t->seen_cseq, sizeof(t->seen_cseq), "%s", cseq ? cseq : "");
    if (strcmp(req->method, "OPTIONS") == 0) {
        httpd_respond_headers(c, 200, "Public: OPTIONS, GET_PARAMETER\r\n", NULL, NULL, 0);
        return;
    }
    httpd_respond(c, 200, "text/parameters", "ok\r\n", 4);
    /* RTP over the RTSP connection (interleaved), after the response */
    httpd_stream_write(c, "$\x01\x00\x03xyz", 7);
}

static void rtsp_frame(struct httpd_conn *c, unsigned channel, const uint8_t *data, size_t len,
                       void *arg)
{
    struct ctx *t = arg;
    t->frames++;
    t->frame_channel = channel;
}

static int setup_opts(struct ctx *t, const struct httpd_options *opt)
{
    memset(t, 0, sizeof(*t));
    t->loop = ev_loop_new(EVFLAG_AUTO);
    t->h = httpd_new(t->loop, opt);
    if (!t->h)
        return -1;
    t->port = httpd_port(t->h);
    assert_true(t->port > 0);
    assert_int_equal(httpd_add_route(t->h, "GET", "/hello", h_hello, t), 0);
    assert_int_equal(httpd_add_route(t->h, "POST", "/echo", h_echo, t), 0);
    assert_int_equal(httpd_add_route(t->h, "PUT", "/echo", h_echo, t), 0);
    assert_int_equal(httpd_add_route(t->h, NULL, "/files/", h_path, "files"), 0);
    assert_int_equal(httpd_add_route(t->h, "GET", "/files/special", h_path, "special"), 0);
    assert_int_equal(httpd_add_route(t->h, "GET", "/later", h_later, t), 0);
    assert_int_equal(httpd_add_route(t->h, "GET", "/never", h_never, t), 0);
    assert_int_equal(httpd_add_route(t->h, "GET", "/stream", h_stream, t), 0);
    assert_int_equal(httpd_add_route(t->h, "GET", "/flood", h_flood, t), 0);
    assert_int_equal(httpd_add_route(t->h, "GET", "/metrics", h_metrics, t), 0);
    assert_int_equal(httpd_add_route(t->h, "GET", "/short", h_short_stream, t), 0);
    assert_int_equal(httpd_add_route(t->h, "GET", "bad", h_hello, t), -EINVAL);
    ev_async_init(&t->done, done_cb);
    t->done.data = t;
    ev_async_start(t->loop, &t->done);
    ev_timer_init(&t->watchdog, watchdog_cb, WATCHDOG_S, 0.);
    t->watchdog.data = t;
    ev_timer_start(t->loop, &t->watchdog);
    ev_init(&t->work, NULL);
    return 0;
}

static void setup(struct ctx *t, double header_timeout, double idle_timeout)
{
    struct httpd_options opt = {.bind_host = "127.0.0.1",
                                .header_timeout_s = header_timeout,
                                .idle_timeout_s = idle_timeout};
    assert_int_equal(setup_opts(t, &opt), 0);
}

static void run(struct ctx *t, client_fn fn, int want_closes)
{
    pthread_t thr;
    t->client = fn;
    t->want_closes = want_closes;
    assert_int_equal(pthread_create(&thr, NULL, client_thread, t), 0);
    ev_run(t->loop, 0);
    pthread_join(thr, NULL);
    assert_false(t->timed_out);
}

static void teardown(struct ctx *t)
{
    if (ev_is_active(&t->work))
        ev_timer_stop(t->loop, &t->work);
    httpd_free(&t->h);
    assert_null(t->h);
    ev_loop_destroy(t->loop);
}

static struct ctx T; /* big: not on the stack */

/* ---- tests ---- */

static void c_basic(struct ctx *t)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    /* keep-alive: everything on one connection */
    send_s(&cl, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    t->got_len[0] = read_response(&cl, t->got[0], sizeof(t->got[0]));
    send_s(&cl, "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
    t->got_len[1] = read_response(&cl, t->got[1], sizeof(t->got[1]));
    send_s(&cl, "DELETE /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    t->got_len[2] = read_response(&cl, t->got[2], sizeof(t->got[2]));
    send_s(&cl, "HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    cl.head = 1;
    t->got_len[3] = read_response(&cl, t->got[3], sizeof(t->got[3]));
    /* nothing may follow the HEAD response's head */
    send_s(&cl, "GET /hello HTTP/1.0\r\n\r\n");
    char rest[1024];
    read_until_close(&cl, rest, sizeof(rest));
    t->flag = strncmp(rest, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(rest, "Connection: close") &&
              strstr(rest, "\r\n\r\nhello\n") && !strstr(rest, "\r\n\r\nhello\nHTTP");
    client_close(&cl);
}

static void test_basic(void **state)
{
    setup(&T, 0, 0);
    run(&T, c_basic, 0);
    assert_true(strncmp(T.got[0], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(T.got[0], "Content-Length: 6\r\n"));
    assert_non_null(strstr(T.got[0], "Content-Type: text/plain\r\n"));
    assert_non_null(strstr(T.got[0], "Server: imesd\r\n"));
    assert_non_null(strstr(T.got[0], "Date: "));
    assert_null(strstr(T.got[0], "Connection: close"));
    assert_non_null(strstr(T.got[0], "\r\n\r\nhello\n"));
    assert_true(strncmp(T.got[1], "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    assert_true(strncmp(T.got[2], "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0);
    assert_non_null(strstr(T.got[2], "Allow: GET, HEAD\r\n"));
    assert_true(strncmp(T.got[3], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(T.got[3], "Content-Length: 6\r\n"));
    assert_true(T.flag);
    teardown(&T);
}

static void c_routes(struct ctx *t)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    send_s(&cl, "DELETE /files/a%20b HTTP/1.1\r\nHost: a\r\n\r\n"
                "GET /files/special HTTP/1.1\r\nHost: a\r\n\r\n"
                "POST /files/special HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
                "PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    for (int i = 0; i < 4; i++)
        t->got_len[i] = read_response(&cl, t->got[i], sizeof(t->got[i]));
    client_close(&cl);
}

static void test_routes_and_pipelining(void **state)
{
    setup(&T, 0, 0);
    run(&T, c_routes, 0);
    assert_non_null(strstr(T.got[0], "\r\n\r\nfiles DELETE /files/a b"));
    assert_non_null(strstr(T.got[1], "\r\n\r\nspecial GET /files/special"));
    assert_non_null(strstr(T.got[2], "\r\n\r\nfiles POST /files/special"));
    assert_non_null(strstr(T.got[3], "\r\n\r\nhello"));
    teardown(&T);
}

/* One request per connection; the answer is all the server sends. */
static void exchange(struct ctx *t, int i, const char *req, size_t len)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    send_str(&cl, req, len);
    t->got_len[i] = read_until_close(&cl, t->got[i], sizeof(t->got[i]));
    client_close(&cl);
}

static void c_bad(struct ctx *t)
{
    static char big[20000];
    exchange(t, 0, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
    int n = snprintf(big, sizeof(big), "GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(big + n, 'v', 17000);
    strcpy(big + n + 17000, "\r\n\r\n");
    exchange(t, 1, big, strlen(big));
    exchange(t, 2, "GET /hello HTTP/3.0\r\nHost: a\r\n\r\n", 33);
    const char *te = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n0\r\n\r\n";
    exchange(t, 3, te, strlen(te));
}

static void test_bad_requests(void **state)
{
    setup(&T, 0, 0);
    run(&T, c_bad, 0);
    assert_true(strncmp(T.got[0], "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    assert_non_null(strstr(T.got[0], "Connection: close\r\n"));
    assert_true(strncmp(T.got[1], "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46) == 0);
    assert_true(strncmp(T.got[2], "HTTP/1.1 505 Version Not Supported\r\n", 36) == 0);
    assert_true(strncmp(T.got[3], "HTTP/1.1 501 Not Implemented\r\n", 30) == 0);

    struct buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(&b), 0);
    assert_non_null(strstr(b.data, "imes_http_bad_requests_total 4\n"));
    assert_non_null(strstr(b.data, "imes_http_requests_total{class=\"4xx\"} 2\n"));
    assert_non_null(strstr(b.data, "imes_http_requests_total{class=\"5xx\"} 2\n"));
    buf_free(&b);
    teardown(&T);
}

static void c_trickle(struct ctx *t)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    double t0 = now_s();
    send_s(&cl, "GET /hello HTTP/1.1\r\nHost: a\r\n");
    /* a header line every 200 ms: progress, but the head never ends */
    while (now_s() - t0 < 5) {
        struct pollfd p = {.fd = cl.fd, .events = POLLIN};
        if (poll(&p, 1, 200) > 0)
            break;
        send_s(&cl, "X-Slow: 1\r\n");
    }
    t->got_len[0] = read_until_close(&cl, t->got[0], sizeof(t->got[0]));
    t->elapsed = now_s() - t0;
    client_close(&cl);

    /* a client that connects and says nothing is dropped without a word */
    if (client_connect(&cl, t->port) < 0)
        return;
    t0 = now_s();
    t->got_len[1] = read_until_close(&cl, t->got[1], sizeof(t->got[1]));
    t->elapsed = now_s() - t0 > t->elapsed ? now_s() - t0 : t->elapsed;
    client_close(&cl);
}

static void test_header_timeout(void **state)
{
    setup(&T, 1, 0);
    run(&T, c_trickle, 0);
    assert_true(strncmp(T.got[0], "HTTP/1.1 408 Request Timeout\r\n", 30) == 0);
    assert_int_equal(T.got_len[1], 0);
    assert_true(T.elapsed > 0.8 && T.elapsed < 3.0);
    struct buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(&b), 0);
    assert_non_null(strstr(b.data, "imes_http_timeouts_total 2\n"));
    buf_free(&b);
    teardown(&T);
}

static void c_idle(struct ctx *t)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    send_s(&cl, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    t->got_len[0] = read_response(&cl, t->got[0], sizeof(t->got[0]));
    double t0 = now_s();
    t->got_len[1] = read_until_close(&cl, t->got[1], sizeof(t->got[1]));
    t->elapsed = now_s() - t0;
    client_close(&cl);
}

static void test_idle_timeout(void **state)
{
    setup(&T, 0, 1);
    run(&T, c_idle, 0);
    assert_true(strncmp(T.got[0], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_int_equal(T.got_len[1], 0);
    assert_true(T.elapsed > 0.8 && T.elapsed < 3.0);
    teardown(&T);
}

static void c_rtsp_501(struct ctx *t)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    send_s(&cl, "OPTIONS rtsp://127.0.0.1/device/d/t RTSP/1.0\r\nCSeq: 7\r\n"
                "User-Agent: test\r\n\r\n");
    t->got_len[0] = read_response(&cl, t->got[0], sizeof(t->got[0]));
    /* the connection stays open for the next request */
    send_s(&cl, "DESCRIBE rtsp://127.0.0.1/device/d/t RTSP/1.0\r\nCSeq: 8\r\n\r\n");
    t->got_len[1] = read_response(&cl, t->got[1], sizeof(t->got[1]));
    client_close(&cl);
}

static void test_rtsp_501(void **state)
{
    setup(&T, 0, 0);
    run(&T, c_rtsp_501, 0);
    assert_true(strncmp(T.got[0], "RTSP/1.0 501 Not Implemented\r\n", 30) == 0);
    assert_non_null(strstr(T.got[0], "\r\nCSeq: 7\r\n"));
    assert_non_null(strstr(T.got[0], "Content-Length: 0\r\n"));
    assert_true(strncmp(T.got[1], "RTSP/1.0 501 Not Implemented\r\n", 30) == 0);
    assert_non_null(strstr(T.got[1], "\r\nCSeq: 8\r\n"));
    teardown(&T);
}

static void c_rtsp(struct ctx *t)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    send_s(&cl, "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    t->got_len[0] = read_response(&cl, t->got[0], sizeof(t->got[0]));
    /* a receiver report over the connection, then a keep-alive */
    send_str(&cl, "$\x01\x00\x02hi", 6);
    send_s(&cl, "GET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 2\r\nSession: 1\r\n\r\n");
    t->got_len[1] = read_response(&cl, t->got[1], sizeof(t->got[1]));
    /* then the interleaved frame the server wrote after its answer */
    while (cl.len < 7) {
        ssize_t r = recv(cl.fd, cl.buf + cl.len, sizeof(cl.buf) - cl.len, 0);
        if (r <= 0)
            break;
        cl.len += (size_t)r;
    }
    t->flag = cl.len == 7 && memcmp(cl.buf, "$\x01\x00\x03xyz", 7) == 0;
    client_close(&cl);
}

static void test_rtsp_handler(void **state)
{
    setup(&T, 0, 0);
    httpd_set_rtsp_handler(T.h, rtsp_request, rtsp_frame, &T);
    run(&T, c_rtsp, 0);
    assert_true(strncmp(T.got[0], "RTSP/1.0 200 OK\r\nCSeq: 1\r\n", 26) == 0);
    assert_non_null(strstr(T.got[0], "Public: OPTIONS, GET_PARAMETER\r\n"));
    assert_non_null(strstr(T.got[1], "\r\nCSeq: 2\r\n"));
    assert_non_null(strstr(T.got[1], "\r\n\r\nok\r\n"));
    assert_string_equal(T.seen_method, "GET_PARAMETER");
    assert_string_equal(T.seen_cseq, "2");
    assert_int_equal(T.frames, 1);
    assert_int_equal(T.frame_channel, 1);
    assert_true(T.flag);
    teardown(&T);
}

static void c_frame_outside_rtsp(struct ctx *t)
{
    exchange(t, 0, "$\x00\x00\x01x", 5);
}

static void test_frame_outside_rtsp(void **state)
{
    setup(&T, 0, 0);
    httpd_set_rtsp_handler(T.h, rtsp_request, rtsp_frame, &T);
    run(&T, c_frame_outside_rtsp, 0);
    assert_true(strncmp(T.got[0], "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    assert_int_equal(T.frames, 0);
    teardown(&T);
}

static void c_stream(struct ctx *t)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    send_s(&cl, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t n = 0;
    while (n < 6000) {
        ssize_t r = recv(cl.fd, t->got[0] + n, sizeof(t->got[0]) - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    t->got[0][n] = '\0';
    t->got_len[0] = n;
    client_close(&cl); /* the listener leaves; the server keeps writing */
}

static void test_stream_client_leaves(void **state)
{
    setup(&T, 0, 0);
    run(&T, c_stream, 1);
    assert_true(strncmp(T.got[0], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(T.got[0], "Content-Type: audio/mpeg\r\n"));
    assert_non_null(strstr(T.got[0], "Cache-Control: no-cache\r\n"));
    assert_non_null(strstr(T.got[0], "Connection: close\r\n"));
    assert_null(strstr(T.got[0], "Content-Length"));
    assert_non_null(strstr(T.got[0], "\r\n\r\naaaaaaaaaa"));
    assert_int_equal(T.closes, 1);
    assert_false(T.close_in_write);
    assert_true(T.stream_writes >= 6);
    assert_null(T.conn);
    teardown(&T);
}

static void c_flood(struct ctx *t)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    send_s(&cl, "GET /flood HTTP/1.1\r\nHost: a\r\n\r\n");
    usleep(300000); /* reads nothing: the server's queue fills */
    t->got_len[0] = read_until_close(&cl, t->got[0], sizeof(t->got[0]));
    client_close(&cl);
}

static void test_stream_overflow(void **state)
{
    struct httpd_options opt = {.bind_host = "127.0.0.1", .max_output = 65536};
    assert_int_equal(setup_opts(&T, &opt), 0);
    run(&T, c_flood, 1);
    assert_int_equal(T.enobufs, 1);
    assert_int_equal(T.closes, 1);
    assert_false(T.close_in_write); /* closed later, not inside httpd_conn_close */
    assert_true(T.stream_writes >= 4);
    struct buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(&b), 0);
    assert_non_null(strstr(b.data, "imes_http_stream_overflows_total 1\n"));
    buf_free(&b);
    teardown(&T);
}

static void c_many(struct ctx *t)
{
    static char reqs[1000 * 40];
    struct client cl;
    size_t n = 0;
    if (client_connect(&cl, t->port) < 0)
        return;
    for (int i = 0; i < 1000; i++)
        n += (size_t)sprintf(reqs + n, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    send_str(&cl, reqs, n);
    int ok = 0;
    for (int i = 0; i < 1000; i++) {
        char r[512];
        if (!read_response(&cl, r, sizeof(r)) || !strstr(r, "\r\n\r\nhello\n"))
            break;
        ok++;
    }
    t->flag = ok;
    client_close(&cl);
}

static void test_many_pipelined(void **state)
{
    /* A small output queue: the server must stop and resume many times. */
    struct httpd_options opt = {.bind_host = "127.0.0.1", .max_output = 4096};
    assert_int_equal(setup_opts(&T, &opt), 0);
    run(&T, c_many, 0);
    assert_int_equal(T.flag, 1000);
    teardown(&T);
}

static void c_short(struct ctx *t)
{
    exchange(t, 0, "GET /short HTTP/1.1\r\nHost: a\r\n\r\n", 33);
    exchange(t, 1, "HEAD /short HTTP/1.1\r\nHost: a\r\n\r\n", 34);
}

static void test_stream_end_and_head(void **state)
{
    setup(&T, 0, 0);
    run(&T, c_short, 2);
    assert_true(strncmp(T.got[0], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(T.got[0], "\r\n\r\nbye"));
    assert_int_equal(strlen(strstr(T.got[0], "\r\n\r\n")), 7);
    assert_true(strncmp(T.got[1], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(T.got[1], "Content-Type: audio/mpeg\r\n"));
    assert_int_equal(strlen(strstr(T.got[1], "\r\n\r\n")), 4); /* nothing after the head */
    assert_int_equal(T.closes, 2);
    teardown(&T);
}

static void c_deferred(struct ctx *t)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    /* pipelined: the second waits for the first's late answer */
    send_s(&cl, "GET /later HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    t->got_len[0] = read_response(&cl, t->got[0], sizeof(t->got[0]));
    t->got_len[1] = read_response(&cl, t->got[1], sizeof(t->got[1]));
    client_close(&cl);

    /* a client that gives up while its request is pending */
    if (client_connect(&cl, t->port) < 0)
        return;
    send_s(&cl, "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    usleep(100000);
    client_close(&cl);
}

static void test_deferred_response(void **state)
{
    setup(&T, 0, 0);
    run(&T, c_deferred, 1);
    assert_non_null(strstr(T.got[0], "\r\n\r\nlater\n"));
    assert_non_null(strstr(T.got[1], "\r\n\r\nhello\n"));
    assert_int_equal(T.closes, 1); /* only /never's: /later cleared its callback */
    teardown(&T);
}

static void c_continue(struct ctx *t)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    send_s(&cl, "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                "Content-Length: 5\r\n\r\n");
    t->got_len[0] = read_response(&cl, t->got[0], sizeof(t->got[0]));
    send_s(&cl, "howdy");
    t->got_len[1] = read_response(&cl, t->got[1], sizeof(t->got[1]));
    client_close(&cl);
}

static void test_expect_continue(void **state)
{
    setup(&T, 0, 0);
    run(&T, c_continue, 0);
    assert_string_equal(T.got[0], "HTTP/1.1 100 Continue\r\n\r\n");
    assert_true(strncmp(T.got[1], "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(T.got[1], "\r\n\r\nhowdy"));
    teardown(&T);
}

static void c_max_conn(struct ctx *t)
{
    struct client a, b, c;
    if (client_connect(&a, t->port) < 0 || client_connect(&b, t->port) < 0)
        return;
    usleep(100000);
    if (client_connect(&c, t->port) < 0)
        return;
    t->got_len[0] = read_until_close(&c, t->got[0], sizeof(t->got[0]));
    client_close(&c);
    send_s(&a, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    t->got_len[1] = read_response(&a, t->got[1], sizeof(t->got[1]));
    client_close(&a);
    client_close(&b);
}

static void test_max_connections(void **state)
{
    struct httpd_options opt = {.bind_host = "127.0.0.1", .max_connections = 2};
    assert_int_equal(setup_opts(&T, &opt), 0);
    run(&T, c_max_conn, 0);
    assert_true(strncmp(T.got[0], "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
    assert_true(strncmp(T.got[1], "HTTP/1.1 200 OK\r\n", 17) == 0);
    teardown(&T);
}

static void c_metrics(struct ctx *t)
{
    struct client cl;
    if (client_connect(&cl, t->port) < 0)
        return;
    send_s(&cl, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
    t->got_len[0] = read_response(&cl, t->got[0], sizeof(t->got[0]));
    t->got_len[1] = read_response(&cl, t->got[1], sizeof(t->got[1]));
    client_close(&cl);
}

static void test_metrics_route(void **state)
{
    setup(&T, 0, 0);
    run(&T, c_metrics, 0);
    const char *m = T.got[1];
    assert_non_null(strstr(m, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(m, "# TYPE imes_http_connections_open gauge\n"));
    assert_non_null(strstr(m, "\nimes_http_connections_open 1\n"));
    assert_non_null(strstr(m, "\nimes_http_connections_total 1\n"));
    assert_non_null(strstr(m, "# TYPE imes_http_requests_total counter\n"));
    assert_non_null(strstr(m, "\nimes_http_requests_total{class=\"2xx\"} 1\n"));
    assert_non_null(strstr(m, "\nimes_http_timeouts_total 0\n"));
    teardown(&T);
}

static void c_ipv6(struct ctx *t)
{
    struct client cl;
    if (client_connect_to(&cl, AF_INET6, "::1", t->port) < 0)
        return;
    send_s(&cl, "GET /hello HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    t->got_len[0] = read_response(&cl, t->got[0], sizeof(t->got[0]));
    client_close(&cl);
}

static void test_ipv6(void **state)
{
    struct httpd_options opt = {.bind_host = "[::1]"};
    if (setup_opts(&T, &opt) < 0) {
        ev_loop_destroy(T.loop);
        skip(); /* no IPv6 loopback here */
    }
    run(&T, c_ipv6, 0);
    assert_true(strncmp(T.got[0], "HTTP/1.1 200 OK\r\n", 17) == 0);
    teardown(&T);
}

static void test_bind_errors(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct httpd_options bad = {.bind_host = "localhost"}; /* names would block */
    assert_null(httpd_new(loop, &bad));
    assert_int_equal(errno, EINVAL);
    struct httpd_options neg = {.bind_host = "127.0.0.1", .bind_port = 70000};
    assert_null(httpd_new(loop, &neg));

    struct httpd_options any = {.bind_host = "127.0.0.1"};
    struct httpd *h = httpd_new(loop, &any);
    assert_non_null(h);
    struct httpd_options same = {.bind_host = "127.0.0.1", .bind_port = httpd_port(h)};
    assert_null(httpd_new(loop, &same));
    assert_int_equal(errno, EADDRINUSE);
    httpd_free(&h);
    httpd_free(&h);
    ev_loop_destroy(loop);
}

static int collect_a(struct buf *out, void *arg)
{
    return metrics_counter(out, "test_a_total", "A \\ counter\nwith two lines.", *(double *)arg);
}

static void test_metrics_format(void **state)
{
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(metrics_sample(&b, "x", "l", "a\"b\\c\nd", 1), 0);
    assert_string_equal(b.data, "x{l=\"a\\\"b\\\\c\\nd\"} 1\n");
    buf_reset(&b);
    assert_int_equal(metrics_sample(&b, "x", NULL, NULL, 1.5), 0);
    assert_int_equal(metrics_sample(&b, "x", NULL, NULL, NAN), 0);
    assert_int_equal(metrics_sample(&b, "x", NULL, NULL, INFINITY), 0);
    assert_int_equal(metrics_sample(&b, "x", NULL, NULL, -3), 0);
    assert_int_equal(metrics_sample(&b, "x", NULL, NULL, 1e20), 0);
    assert_int_equal(metrics_sample(&b, "x", NULL, NULL, 18446744073709551615.0), 0);
    assert_string_equal(b.data, "x 1.5\nx NaN\nx +Inf\nx -3\nx 1e+20\nx 1.8446744073709552e+19\n");
    buf_reset(&b);
    assert_int_equal(metrics_gauge(&b, "imes_g", "G.", 2), 0);
    assert_string_equal(b.data, "# HELP imes_g G.\n# TYPE imes_g gauge\nimes_g 2\n");
    assert_int_equal(metrics_family(&b, "9bad", "counter", "x"), -EINVAL);
    assert_int_equal(metrics_sample(&b, "bad-name", NULL, NULL, 1), -EINVAL);
    assert_int_equal(metrics_sample(&b, "ok", "bad label", "v", 1), -EINVAL);

    double v = 41;
    buf_reset(&b);
    assert_int_equal(metrics_add_collector(collect_a, &v), 0);
    assert_int_equal(metrics_add_collector(collect_a, &v), -EEXIST);
    v = 42;
    assert_int_equal(metrics_render(&b), 0);
    assert_string_equal(b.data, "# HELP test_a_total A \\\\ counter\\nwith two lines.\n"
                                "# TYPE test_a_total counter\ntest_a_total 42\n");
    metrics_remove_collector(collect_a, &v);
    buf_reset(&b);
    assert_int_equal(metrics_render(&b), 0);
    assert_int_equal(b.len, 0);

    /* a full buffer is an error, not a truncated page */
    struct buf small;
    buf_init(&small, 8);
    assert_int_equal(metrics_add_collector(collect_a, &v), 0);
    assert_int_equal(metrics_render(&small), -E2BIG);
    metrics_remove_collector(collect_a, &v);
    buf_free(&small);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_format),        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_routes_and_pipelining), cmocka_unit_test(test_many_pipelined),
        cmocka_unit_test(test_bad_requests),          cmocka_unit_test(test_header_timeout),
        cmocka_unit_test(test_idle_timeout),          cmocka_unit_test(test_rtsp_501),
        cmocka_unit_test(test_rtsp_handler),          cmocka_unit_test(test_frame_outside_rtsp),
        cmocka_unit_test(test_stream_client_leaves),  cmocka_unit_test(test_stream_overflow),
        cmocka_unit_test(test_stream_end_and_head),   cmocka_unit_test(test_deferred_response),
        cmocka_unit_test(test_expect_continue),       cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_metrics_route),         cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_bind_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
