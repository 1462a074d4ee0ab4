/*
 * Incremental HTTP/1.x and RTSP/1.0 request parser. Pure: no I/O, no clock,
 * no global state, so it is unit-tested and fuzzed on its own.
 *
 * The caller keeps the bytes it has read and not yet consumed, and calls
 * http_parse() with all of them each time more arrive. The parser remembers how
 * far it has looked, so a request sent one byte at a time costs O(n) in total.
 * When it answers HTTP_REQUEST or HTTP_FRAME, msg->consumed bytes belong to
 * that message: the caller drops them from the front of its buffer and calls
 * again with the rest (pipelining). Between two messages the data passed must
 * keep starting with the same bytes; the parser must see every byte once.
 *
 *     for (;;) {
 *         struct http_message m;
 *         enum http_result r = http_parse(p, in.data, in.len, &m);
 *         if (r == HTTP_NEED_MORE)
 *             break;                      // read more, call again
 *         if (r == HTTP_ERROR)
 *             answer m.status, close;     // sticky until http_parser_reset()
 *         ... use m.req or m.frame ...    // valid until the next http_parse()
 *         buf_consume(&in, m.consumed);
 *     }
 *
 * Limits (struct http_limits, 0 = default): request line 8 KiB (else 414), the
 * whole head 16 KiB and 100 header fields (else 431), body by Content-Length up
 * to max_body (else 413). Errors carry the status to answer: 400 for anything
 * malformed (request line, header syntax, control characters, bare CR, obs-fold,
 * duplicate or invalid Content-Length, bad percent-escapes or %00 in the path,
 * ".." path segments, a missing or repeated Host in HTTP/1.1), 501 for any
 * Transfer-Encoding (requests here never need chunked bodies), 505 for an
 * HTTP/x.y or RTSP/x.y version other than HTTP/1.0, HTTP/1.1 and RTSP/1.0.
 *
 * A message starting with '$' is an RTSP interleaved frame (RFC 2326 §10.12):
 * '$', channel byte, 16-bit big-endian length, payload.
 *
 * Memory: one parser holds at most about 2 x head limit + max_body (+ 64 KiB for
 * a frame) and reuses it from message to message.
 */
#ifndef IMES_HTTP_PARSER_H
#define IMES_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_LINE    8192       /* request line, without CRLF */
#define HTTP_MAX_HEAD    16384      /* request line + header fields + blank line */
#define HTTP_MAX_HEADERS 100        /* header fields */
#define HTTP_MAX_BODY    (1u << 20) /* default Content-Length limit */

enum http_version {
    HTTP_VERSION_UNKNOWN = 0, /* not (yet) known: no request line parsed */
    HTTP_VERSION_1_0,
    HTTP_VERSION_1_1,
    RTSP_VERSION_1_0,
};

struct http_header {
    const char *name;  /* as sent */
    const char *value; /* without leading and trailing whitespace */
};

/* Every string is NUL-terminated and owned by the parser: valid until the next
 * http_parse(), http_parser_reset() or http_parser_free(). Copy what you keep. */
struct http_request {
    const char *method; /* case-sensitive, as sent: "GET", "OPTIONS", ... */
    const char *target; /* raw request-target: "/a%20b?x=1", "rtsp://h/p", "*" */
    const char *path;   /* percent-decoded path of the target ("*" for "*"); an
                         * absolute-form target ("http://host/p", "rtsp://host/p")
                         * gives its path, "/" if it has none */
    const char *query;  /* raw text after '?', NULL if there is no '?' */
    enum http_version version;
    int keep_alive; /* 1.1 and RTSP: unless "Connection: close"; 1.0: only with
                     * "Connection: keep-alive" */
    const struct http_header *headers;
    size_t nheaders;
    const char *body; /* Content-Length bytes (NUL-terminated too), "" if none */
    size_t body_len;
};

struct http_frame {
    unsigned channel;
    const uint8_t *data; /* owned by the parser, like the request strings */
    size_t len;
};

enum http_result {
    HTTP_NEED_MORE = 0, /* nothing complete yet: read more and call again */
    HTTP_REQUEST,       /* msg->req */
    HTTP_FRAME,         /* msg->frame */
    HTTP_ERROR,         /* msg->status and msg->error */
};

struct http_message {
    enum http_result result; /* the same as the return value */
    size_t consumed;         /* HTTP_REQUEST, HTTP_FRAME: bytes of this message */
    struct http_request req;
    struct http_frame frame;
    int status;                /* HTTP_ERROR: 400, 413, 414, 431, 501, 505 (500: out of memory) */
    const char *error;         /* HTTP_ERROR: a short static text for the body and logs */
    enum http_version version; /* HTTP_ERROR: of the request line, if it was read */
};

struct http_limits {
    size_t max_line;    /* 0 = HTTP_MAX_LINE */
    size_t max_head;    /* 0 = HTTP_MAX_HEAD */
    size_t max_headers; /* 0 = HTTP_MAX_HEADERS */
    size_t max_body;    /* 0 = HTTP_MAX_BODY */
};

struct http_parser;

/* lim may be NULL for every default. Returns NULL only when out of memory. */
struct http_parser *http_parser_new(const struct http_limits *lim);
/* Frees and sets *p to NULL; NULL and *p == NULL are fine. */
void http_parser_free(struct http_parser **p);
/* Forgets any partial message and a sticky error (the next byte starts a message). */
void http_parser_reset(struct http_parser *p);

/* See the top of this file. msg is always filled. Never fails on any input: bad
 * input is HTTP_ERROR with the status to answer. */
enum http_result http_parse(struct http_parser *p, const void *data, size_t len,
                            struct http_message *msg);

/* After HTTP_NEED_MORE: 1 if the head is complete and only body bytes are
 * missing (the caller's head timeout no longer applies), else 0. */
int http_parser_head_done(const struct http_parser *p);

/* For routes of the form /a/<x>/<y>/...: copies the path segment at *p (up
 * to the next '/' or the end) into out and moves *p past it and its '/'.
 * Returns 1 if a '/' followed, 0 at the end of the path, -ENOENT for an
 * empty segment or one that does not fit in outlen (with its NUL). */
int http_path_segment(const char **p, char *out, size_t outlen);
/* 1 if, in addition, the request asked "Expect: 100-continue": the caller should
 * send "HTTP/1.1 100 Continue" once so that the client sends its body. */
int http_parser_expects_continue(const struct http_parser *p);

/* The first header named name (case-insensitive), or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);

/* 1 if the comma-separated list value ("keep-alive, Upgrade") holds token
 * (case-insensitive), else 0. value may be NULL. */
int http_header_has_token(const char *value, const char *token);

/* Decodes %XX escapes of in[0..len) into out, which has room for len + 1 bytes
 * (out == in is allowed), and NUL-terminates it. plus_space turns '+' into ' '
 * (query strings). Returns 0 with *out_len set (out_len may be NULL), or -EINVAL
 * on a truncated or non-hex escape, on %00 and on a NUL byte in the input. */
int http_percent_decode(const char *in, size_t len, char *out, size_t *out_len, int plus_space);

/* Looks up name in a query string "a=1&b=x%20y" (names and values decoded, '+'
 * as space; a name without '=' has the value ""). Returns 0 with the value in
 * out, -ENOENT if absent, -EINVAL on a bad escape, -E2BIG if outlen is too small.
 * query may be NULL (-ENOENT). */
int http_query_get(const char *query, const char *name, char *out, size_t outlen);

/* "HTTP/1.0", "HTTP/1.1", "RTSP/1.0", or "HTTP/1.1" for HTTP_VERSION_UNKNOWN. */
const char *http_version_string(enum http_version v);

#endif
