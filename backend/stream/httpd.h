/*
 * imesd's HTTP/1.x and RTSP/1.0 listener on one port (backend.bind_port): the
 * request line tells them apart. One libev loop owns every socket and timer.
 *
 *     struct httpd_options o = {.bind_host = "0.0.0.0", .bind_port = 9997};
 *     struct httpd *h = httpd_new(loop, &o);
 *     httpd_add_route(h, "GET", "/healthz", healthz, NULL);     exact path
 *     httpd_add_route(h, NULL, "/device/", device, state);      prefix: ends in '/'
 *     httpd_set_rtsp_handler(h, rtsp_request, rtsp_frame, rtsp);
 *     ...
 *     httpd_free(&h);
 *
 * Routing: among the routes whose path matches (exact, or a prefix ending in
 * '/'), an exact match beats a prefix and a longer prefix beats a shorter one;
 * a route for "GET" also serves HEAD. A path that matches only routes of other
 * methods gets 405 with Allow, no match at all 404.
 *
 * A handler gets the connection and the parsed request (valid during the call
 * only). It answers with httpd_respond*() or httpd_stream_start(), right away
 * or later (after a CouchDB request, say): until it does, the connection reads
 * no further request. A handler that answers later should set a close callback
 * (httpd_conn_set_callbacks): the client may go away first (one that shuts
 * down its sending side while its request is pending counts as gone).
 *
 * Connection lifetime: a connection is never freed inside its own callback
 * chain. Closing marks it; it is freed on the next loop iteration, right after
 * its close callback runs (once, whatever the reason: client left, error,
 * timeout, httpd_conn_close, httpd_free). After the close callback returns the
 * pointer is invalid; every call on a closing connection returns -EPIPE.
 *
 * Limits and timeouts: the whole request head must arrive within
 * header_timeout_s of its first byte (of the accept, for a new connection),
 * else 408 and close (slowloris); a body must keep arriving (no gap longer than
 * header_timeout_s); a keep-alive connection waiting for its next request is
 * closed after idle_timeout_s; so is one whose client stops reading what we
 * send for idle_timeout_s. Parser errors are answered with their status (400,
 * 413, 414, 431, 501, 505) and a short text, then the connection closes.
 * Beyond max_connections a client gets 503 and is closed.
 *
 * Metrics (registered with metrics_add_collector while the httpd lives):
 * imes_http_connections_open, imes_http_connections_total,
 * imes_http_connections_rejected_total, imes_http_requests_total{class},
 * imes_http_bad_requests_total, imes_http_timeouts_total,
 * imes_http_stream_overflows_total.
 *
 * Thread: loop (every function, every callback).
 */
#ifndef IMES_HTTPD_H
#define IMES_HTTPD_H

#include "stream/http_parser.h"

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

struct httpd;
struct httpd_conn;

struct httpd_options {
    const char *bind_host;   /* numeric IPv4 or IPv6 ("0.0.0.0", "::", "127.0.0.1",
                              * "[::1]"); NULL = "0.0.0.0". "::" also accepts IPv4. */
    int bind_port;           /* 0 = an ephemeral port: see httpd_port() */
    int max_connections;     /* 0 = 1024 */
    double header_timeout_s; /* 0 = 10 */
    double idle_timeout_s;   /* 0 = 30 */
    size_t max_body;         /* request bodies; 0 = HTTP_MAX_BODY (1 MiB) */
    size_t max_output;       /* per-connection output queue for streams; 0 = 1 MiB */
    const char *server_name; /* Server header; NULL = "imesd" */
};

typedef void (*httpd_handler)(struct httpd_conn *c, const struct http_request *req, void *arg);
/* An RTSP interleaved frame from the client ('$', channel, payload). */
typedef void (*httpd_frame_handler)(struct httpd_conn *c, unsigned channel, const uint8_t *data,
                                    size_t len, void *arg);
/* The output queue went empty: the place to write more of a stream. */
typedef void (*httpd_drain_cb)(struct httpd_conn *c, void *arg);
/* The connection is going away (see above). */
typedef void (*httpd_close_cb)(struct httpd_conn *c, void *arg);

/* Binds and listens. Returns NULL (logged, errno set) on a bad option, an
 * address that is not numeric, or a bind/listen error (EADDRINUSE, ...). */
struct httpd *httpd_new(struct ev_loop *loop, const struct httpd_options *opt);
/* Closes the listener and every connection (running their close callbacks),
 * frees and sets *h to NULL. Not from inside an httpd callback. */
void httpd_free(struct httpd **h);
/* The bound port (useful with bind_port 0), or -errno. */
int httpd_port(const struct httpd *h);

/* method NULL = any method. path "/x" matches only "/x"; "/x/" matches every
 * path starting with "/x/" ("/" alone: every path). The strings are copied.
 * 0, -EINVAL, -ENOMEM. */
int httpd_add_route(struct httpd *h, const char *method, const char *path, httpd_handler fn,
                    void *arg);
/* Requests with version RTSP/1.0 go to fn, interleaved frames to frame_fn
 * (either may be NULL). Without fn, RTSP requests get "501 Not Implemented"
 * echoing CSeq; without frame_fn, frames are dropped. */
void httpd_set_rtsp_handler(struct httpd *h, httpd_handler fn, httpd_frame_handler frame_fn,
                            void *arg);

/* Answers the pending request: status line (HTTP/1.1, or RTSP/1.0 echoing CSeq
 * for RTSP), Server, Date, Content-Type (if given), Content-Length, Connection
 * (keep-alive for 1.1, close for 1.0 unless the client asked keep-alive), then
 * the body, which is left out for HEAD, 204 and 304. The body is copied.
 * Returns 0, -EINVAL (no request pending, status out of 100..999),
 * -EPIPE (closing), -ENOMEM. */
int httpd_respond(struct httpd_conn *c, int status, const char *content_type, const void *body,
                  size_t len);
/* The same with extra header lines: NULL or "Name: value\r\n..." (each line
 * ending in CRLF; -EINVAL otherwise), e.g. "Location: /x\r\n" or, for RTSP,
 * "Session: 12345678\r\nTransport: ...\r\n". */
int httpd_respond_headers(struct httpd_conn *c, int status, const char *headers,
                          const char *content_type, const void *body, size_t len);

/* Starts an endless response: status line and headers without Content-Length,
 * "Connection: close" (the stream ends when the connection does). headers as
 * in httpd_respond_headers. For HEAD, only the head is sent and the connection
 * then closes. From then on the connection reads nothing more but notices when
 * the client leaves (close callback). 0, -EINVAL, -EPIPE, -ENOMEM. */
int httpd_stream_start(struct httpd_conn *c, int status, const char *content_type,
                       const char *headers);
/* Queues bytes of a started stream, or of an RTSP connection at any time (RTP
 * over TCP: interleaved frames after the PLAY response). The queue is bounded
 * by max_output: -ENOBUFS if len would not fit, and nothing is queued, so that
 * the caller can drop that slow reader alone (httpd_conn_close) or skip data.
 * Data is taken whole or not at all. (With an empty queue the bytes go
 * straight to the socket; only what the kernel does not take is queued.)
 * 0, -ENOBUFS, -EINVAL (not streaming), -EPIPE (closing), -ENOMEM. */
int httpd_stream_write(struct httpd_conn *c, const void *data, size_t len);

/* Callbacks for this connection until changed (NULL to clear). */
void httpd_conn_set_callbacks(struct httpd_conn *c, httpd_drain_cb on_drain,
                              httpd_close_cb on_close, void *arg);
/* Closes now, dropping unsent output. */
void httpd_conn_close(struct httpd_conn *c);
/* Closes once every queued byte is sent (ends a stream). */
void httpd_conn_end(struct httpd_conn *c);
/* Bytes queued and not yet sent. */
size_t httpd_conn_pending(const struct httpd_conn *c);
/* Replaces idle_timeout_s for this connection (0 = none), e.g. for an RTSP
 * control connection whose session lives on over UDP, or one carrying
 * interleaved RTP to a client that sends nothing back. (The idle clock runs
 * from the last answer sent or byte received, whichever is later.) */
void httpd_conn_set_idle_timeout(struct httpd_conn *c, double seconds);
/* "192.0.2.1:50000" or "[2001:db8::1]:50000", for logs. */
const char *httpd_conn_peer(const struct httpd_conn *c);
/* A number unique to this connection within the process, for logs. */
uint64_t httpd_conn_id(const struct httpd_conn *c);

/* "OK", "Not Found", "Session Not Found" (RTSP), ...; "Unknown" if unknown. */
const char *httpd_reason(int status);

#endif
