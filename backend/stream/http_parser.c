/*
 * Incremental HTTP/1.x and RTSP/1.0 request parser: see http_parser.h.
 *
 * The head is read line by line. Each line is checked the moment its LF
 * arrives, so a client speaking something else (TLS, garbage) is answered
 * after its first line rather than after a timeout, and the size limits are
 * checked on partial lines too, so a client can never make us hold more than
 * the limits whatever it sends. The checks run in the same order whether the
 * bytes come at once or one by one (the fuzz target asserts that): limits
 * first, then the syntax of the completed line.
 *
 * Strings of the message are copied into one reusable buffer (store) as they
 * are parsed, NUL-terminated, and referred to by offset until the message is
 * complete, because the buffer may move as it grows. The caller's bytes are
 * never modified.
 *
 * Strict where leniency has been used for request smuggling (RFC 7230 §3.3.3,
 * §9.5): no obs-fold, no whitespace before ':', no bare CR, one Content-Length
 * at most, no Transfer-Encoding at all.
 */
#include "http_parser.h"

#include "core/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum pstate {
    P_START, /* before a message: skipping empty lines */
    P_HEAD,  /* reading request line and header fields */
    P_BODY,  /* head done, waiting for Content-Length bytes */
    P_FRAME, /* '$' seen: waiting for the whole interleaved frame */
    P_DONE,  /* a message was returned: the next call starts the next one */
    P_ERROR, /* sticky until http_parser_reset() */
};

struct hdr_off {
    size_t name;
    size_t value;
};

struct http_parser {
    struct http_limits lim;
    enum pstate state;
    size_t pos;        /* bytes of the caller's data already examined */
    size_t head_start; /* first byte of the request line or frame */
    size_t line_start; /* first byte of the line being read */
    size_t head_end;   /* first body byte */
    int have_reqline;

    /* the message being parsed (offsets into store) */
    size_t method, target, path, query; /* query == SIZE_MAX: none */
    enum http_version version;
    size_t nheaders;
    struct hdr_off *hoff;
    int has_length;
    size_t content_length;
    int host_count;
    int expect_continue;
    int conn_close, conn_keep_alive;

    int err_status;
    const char *err_text;

    struct buf store;
    struct http_header *headers; /* pointers into store, filled at the end */
};

/* RFC 7230 §3.2.6 tchar: the characters of methods and header names. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The start of a request line, complete or not: a method of tchars and its
 * space. Checked on partial lines too, so that a client speaking another
 * protocol (a TLS ClientHello has no LF) is answered at once. Methods are
 * short (the longest RTSP one, SET_PARAMETER, has 13 letters), and a bound far
 * below max_line keeps the order of errors the same however bytes arrive. */
#define METHOD_MAX 32

static int method_prefix_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n && i <= METHOD_MAX; i++) {
        if (s[i] == ' ')
            return 1;
        if (!is_tchar(s[i]))
            return 0;
    }
    return n <= METHOD_MAX;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes into out (at most outcap bytes including the NUL). Returns the
 * decoded length, -EINVAL or -E2BIG. */
static long pct_decode(const char *in, size_t len, char *out, size_t outcap, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (len - i < 3)
                return -EINVAL;
            int hi = hexval((unsigned char)in[i + 1]);
            int lo = hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (unsigned char)(hi << 4 | lo);
            if (c == 0)
                return -EINVAL; /* %00 would cut C strings short behind our back */
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        } else if (c == 0) {
            return -EINVAL;
        }
        if (o + 1 >= outcap)
            return -E2BIG;
        out[o++] = (char)c;
    }
    if (o >= outcap)
        return -E2BIG;
    out[o] = '\0';
    return (long)o;
}

int http_percent_decode(const char *in, size_t len, char *out, size_t *out_len, int plus_space)
{
    long n = pct_decode(in, len, out, len + 1, plus_space);
    if (n < 0)
        return (int)n;
    if (out_len)
        *out_len = (size_t)n;
    return 0;
}

int http_query_get(const char *query, const char *name, char *out, size_t outlen)
{
    if (!query)
        return -ENOENT;
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        /* Names we look up are short; a longer one cannot match any of them. */
        char key[256];
        long kn = pct_decode(p, klen, key, sizeof(key), 1);
        if (kn == -EINVAL)
            return -EINVAL;
        if (kn >= 0 && strcmp(key, name) == 0) {
            if (!eq) {
                if (outlen < 1)
                    return -E2BIG;
                out[0] = '\0';
                return 0;
            }
            long vn = pct_decode(eq + 1, plen - klen - 1, out, outlen, 1);
            return vn < 0 ? (int)vn : 0;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return -ENOENT;
}

int http_header_has_token(const char *value, const char *token)
{
    if (!value)
        return 0;
    size_t tlen = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tlen && strncasecmp(s, token, tlen) == 0)
            return 1;
    }
    return 0;
}

const char *http_version_string(enum http_version v)
{
    switch (v) {
    case HTTP_VERSION_1_0:
        return "HTTP/1.0";
    case RTSP_VERSION_1_0:
        return "RTSP/1.0";
    default:
        return "HTTP/1.1";
    }
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static void message_reset(struct http_parser *p)
{
    p->state = P_START;
    p->pos = p->head_start = p->line_start = p->head_end = 0;
    p->have_reqline = 0;
    p->method = p->target = p->path = 0;
    p->query = SIZE_MAX;
    p->version = HTTP_VERSION_UNKNOWN;
    p->nheaders = 0;
    p->has_length = 0;
    p->content_length = 0;
    p->host_count = 0;
    p->expect_continue = 0;
    p->conn_close = p->conn_keep_alive = 0;
    p->err_status = 0;
    p->err_text = NULL;
    buf_reset(&p->store);
}

struct http_parser *http_parser_new(const struct http_limits *lim)
{
    struct http_parser *p = calloc(1, sizeof(*p));
    if (!p)
        goto fail_parser;
    if (lim)
        p->lim = *lim;
    if (!p->lim.max_line)
        p->lim.max_line = HTTP_MAX_LINE;
    if (!p->lim.max_head)
        p->lim.max_head = HTTP_MAX_HEAD;
    if (!p->lim.max_headers)
        p->lim.max_headers = HTTP_MAX_HEADERS;
    if (!p->lim.max_body)
        p->lim.max_body = HTTP_MAX_BODY;
    p->hoff = calloc(p->lim.max_headers, sizeof(*p->hoff));
    if (!p->hoff)
        goto fail_hoff;
    p->headers = calloc(p->lim.max_headers, sizeof(*p->headers));
    if (!p->headers)
        goto fail_headers;
    /* The head's strings are at most the head plus a NUL each and the decoded
     * path (never longer than the target); a frame is at most 64 KiB. */
    size_t body = p->lim.max_body > 65535 ? p->lim.max_body : 65535;
    buf_init(&p->store, 2 * p->lim.max_head + 2 * p->lim.max_headers + 64 + body);
    message_reset(p);
    return p;

fail_headers:
    free(p->hoff);
fail_hoff:
    free(p);
fail_parser:
    return NULL;
}

void http_parser_free(struct http_parser **pp)
{
    if (!pp || !*pp)
        return;
    struct http_parser *p = *pp;
    buf_free(&p->store);
    free(p->headers);
    free(p->hoff);
    free(p);
    *pp = NULL;
}

void http_parser_reset(struct http_parser *p)
{
    message_reset(p);
}

int http_parser_head_done(const struct http_parser *p)
{
    return p->state == P_BODY;
}

int http_parser_expects_continue(const struct http_parser *p)
{
    return p->state == P_BODY && p->expect_continue;
}

static enum http_result report_error(struct http_parser *p, struct http_message *m)
{
    m->result = HTTP_ERROR;
    m->status = p->err_status;
    m->error = p->err_text;
    m->version = p->version;
    return HTTP_ERROR;
}

static enum http_result fail(struct http_parser *p, struct http_message *m, int status,
                             const char *text)
{
    p->state = P_ERROR;
    p->err_status = status;
    p->err_text = text;
    return report_error(p, m);
}

/* Appends s[0..n) and a NUL to store; *off receives where it starts. */
static int store_str(struct http_parser *p, const void *s, size_t n, size_t *off)
{
    *off = p->store.len;
    int r = buf_append(&p->store, s, n);
    if (r == 0)
        r = buf_append(&p->store, "", 1);
    return r;
}

static int ieq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* Splits and checks the request-target; stores target, path and query.
 * Returns 0 or an HTTP status. */
static int parse_target(struct http_parser *p, const char *t, size_t n, const char **why)
{
    const char *path = t;
    size_t plen = n;

    *why = "bad request target";
    if (memchr(t, '#', n))
        return 400; /* fragments are never sent to a server */
    if (n == 1 && t[0] == '*') {
        path = "*";
    } else if (t[0] != '/') {
        /* absolute-form: proxies' and RTSP's "rtsp://host:port/path" */
        const char *colon = memchr(t, ':', n);
        if (!colon)
            return 400;
        size_t slen = (size_t)(colon - t);
        if (!ieq(t, slen, "http") && !ieq(t, slen, "https") && !ieq(t, slen, "rtsp") &&
            !ieq(t, slen, "rtsps"))
            return 400;
        if (n - slen < 3 || colon[1] != '/' || colon[2] != '/')
            return 400;
        const char *auth = colon + 3;
        const char *end = t + n;
        const char *a = auth;
        while (a < end && *a != '/' && *a != '?')
            a++;
        if (a == auth)
            return 400; /* no host */
        path = a;
        plen = (size_t)(end - a);
    }

    const char *q = path[0] == '*' ? NULL : memchr(path, '?', plen);
    size_t raw_path_len = q ? (size_t)(q - path) : plen;
    if (path[0] == '*')
        raw_path_len = 1;

    int r = store_str(p, t, n, &p->target);
    if (r < 0)
        return 500;
    if (q) {
        r = store_str(p, q + 1, (size_t)(path + plen - q - 1), &p->query);
        if (r < 0)
            return 500;
    }
    p->path = p->store.len;
    if (raw_path_len == 0) {
        r = buf_append(&p->store, "/", 2); /* "http://host" or "rtsp://host?x" */
    } else {
        /* Decode straight into store: reserve room, then decode in place. */
        size_t start = p->store.len;
        r = buf_append(&p->store, path, raw_path_len);
        if (r == 0)
            r = buf_append(&p->store, "", 1);
        if (r < 0)
            return 500;
        char *d = p->store.data + start;
        long dn = pct_decode(d, raw_path_len, d, raw_path_len + 1, 0);
        if (dn < 0) {
            *why = "bad percent-escape in path";
            return 400;
        }
        p->store.len = start + (size_t)dn + 1;
        /* ".." would let a prefix route ("/device/") be escaped; no client
         * that matters sends it (they resolve dot segments themselves). */
        const char *s = d;
        while ((s = strstr(s, "..")) != NULL) {
            if ((s == d || s[-1] == '/') && (s[2] == '\0' || s[2] == '/')) {
                *why = "\"..\" segment in path";
                return 400;
            }
            s += 2;
        }
    }
    if (r < 0)
        return 500;
    return 0;
}

static int parse_request_line(struct http_parser *p, const char *s, size_t n, const char **why)
{
    size_t i = 0;
    *why = "bad request line";
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i >= n || s[i] != ' ')
        return 400;
    size_t t0 = i + 1, j = t0;
    /* Targets are ASCII: no controls, no space, nothing above 0x7e. */
    while (j < n && (unsigned char)s[j] > 0x20 && (unsigned char)s[j] < 0x7f)
        j++;
    if (j == t0 || j >= n || s[j] != ' ')
        return 400;
    const char *v = s + j + 1;
    size_t vn = n - j - 1;
    if (vn != 8 || (memcmp(v, "HTTP/", 5) != 0 && memcmp(v, "RTSP/", 5) != 0) || v[5] < '0' ||
        v[5] > '9' || v[6] != '.' || v[7] < '0' || v[7] > '9')
        return 400;
    if (memcmp(v, "HTTP/1.1", 8) == 0) {
        p->version = HTTP_VERSION_1_1;
    } else if (memcmp(v, "HTTP/1.0", 8) == 0) {
        p->version = HTTP_VERSION_1_0;
    } else if (memcmp(v, "RTSP/1.0", 8) == 0) {
        p->version = RTSP_VERSION_1_0;
    } else {
        *why = "unsupported protocol version";
        return 505;
    }
    if (store_str(p, s, i, &p->method) < 0)
        return 500;
    return parse_target(p, s + t0, j - t0, why);
}

static int parse_content_length(struct http_parser *p, const char *v, size_t n, const char **why)
{
    *why = "bad Content-Length";
    if (p->has_length) {
        *why = "duplicate Content-Length";
        return 400;
    }
    if (n == 0 || n > 19)
        return 400; /* 19 digits always fit in 64 bits */
    unsigned long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 400;
        x = x * 10 + (unsigned)(v[i] - '0');
    }
    if (x > p->lim.max_body) {
        *why = "request body too large";
        return 413;
    }
    p->has_length = 1;
    p->content_length = (size_t)x;
    return 0;
}

static int parse_header_line(struct http_parser *p, const char *s, size_t n, const char **why)
{
    *why = "bad header field";
    if (s[0] == ' ' || s[0] == '\t') {
        *why = "obsolete line folding";
        return 400;
    }
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i >= n || s[i] != ':')
        return 400;
    if (p->nheaders >= p->lim.max_headers) {
        *why = "too many header fields";
        return 431;
    }
    size_t v = i + 1, e = n;
    while (v < e && (s[v] == ' ' || s[v] == '\t'))
        v++;
    while (e > v && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    for (size_t k = v; k < e; k++) {
        unsigned char c = (unsigned char)s[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            *why = c == '\r' ? "bare CR in header field" : "control character in header field";
            return 400;
        }
    }
    const char *val = s + v;
    size_t vn = e - v;
    struct hdr_off *h = &p->hoff[p->nheaders];
    if (store_str(p, s, i, &h->name) < 0 || store_str(p, val, vn, &h->value) < 0)
        return 500;
    p->nheaders++;

    if (ieq(s, i, "content-length"))
        return parse_content_length(p, val, vn, why);
    if (ieq(s, i, "transfer-encoding")) {
        *why = "Transfer-Encoding is not supported in requests";
        return 501;
    }
    if (ieq(s, i, "host"))
        p->host_count++;
    else if (ieq(s, i, "expect") && ieq(val, vn, "100-continue"))
        p->expect_continue = 1;
    else if (ieq(s, i, "connection")) {
        const char *cv = p->store.data + h->value;
        p->conn_close |= http_header_has_token(cv, "close");
        p->conn_keep_alive |= http_header_has_token(cv, "keep-alive");
    }
    return 0;
}

/* The blank line was read: checks that need the whole head. */
static int head_complete(struct http_parser *p, const char **why)
{
    *why = "missing or repeated Host header";
    if (p->host_count > 1 || (p->version == HTTP_VERSION_1_1 && p->host_count == 0))
        return 400; /* RFC 7230 §5.4 */
    return 0;
}

static int finish_request(struct http_parser *p, struct http_message *m, const char *data)
{
    size_t body;
    /* Only the body is copied late: the caller's data is valid now. */
    if (store_str(p, data + p->head_end, p->content_length, &body) < 0)
        return -ENOMEM; /* store's limit covers max_body: only malloc can fail */
    const char *base = p->store.data;
    for (size_t i = 0; i < p->nheaders; i++) {
        p->headers[i].name = base + p->hoff[i].name;
        p->headers[i].value = base + p->hoff[i].value;
    }
    struct http_request *r = &m->req;
    r->method = base + p->method;
    r->target = base + p->target;
    r->path = base + p->path;
    r->query = p->query == SIZE_MAX ? NULL : base + p->query;
    r->version = p->version;
    r->keep_alive =
        p->version == HTTP_VERSION_1_0 ? p->conn_keep_alive && !p->conn_close : !p->conn_close;
    r->headers = p->headers;
    r->nheaders = p->nheaders;
    r->body = base + body;
    r->body_len = p->content_length;
    m->result = HTTP_REQUEST;
    m->consumed = p->head_end + p->content_length;
    p->state = P_DONE;
    return 0;
}

enum http_result http_parse(struct http_parser *p, const void *data, size_t len,
                            struct http_message *m)
{
    const unsigned char *d = data;
    const char *why = NULL;
    int st;

    memset(m, 0, sizeof(*m));
    if (p->state == P_DONE)
        message_reset(p);
    if (p->state == P_ERROR)
        return report_error(p, m);
    if (len < p->pos)
        message_reset(p); /* the caller dropped bytes it had shown us: start over */

    if (p->state == P_START) {
        /* RFC 7230 §3.5: ignore empty lines before a request line (some
         * clients send a CRLF after a POST body). */
        while (p->pos < len && (d[p->pos] == '\r' || d[p->pos] == '\n')) {
            if (d[p->pos] == '\r') {
                if (p->pos + 1 >= len)
                    return HTTP_NEED_MORE;
                if (d[p->pos + 1] != '\n')
                    return fail(p, m, 400, "bare CR");
                p->pos++;
            }
            p->pos++;
            if (p->pos > p->lim.max_head)
                return fail(p, m, 400, "too many empty lines");
        }
        if (p->pos == len)
            return HTTP_NEED_MORE;
        p->head_start = p->line_start = p->pos;
        p->state = d[p->pos] == '$' ? P_FRAME : P_HEAD;
    }

    if (p->state == P_FRAME) {
        size_t have = len - p->head_start;
        p->pos = len;
        if (have < 4)
            return HTTP_NEED_MORE;
        const unsigned char *f = d + p->head_start;
        size_t flen = (size_t)f[2] << 8 | f[3];
        if (have < 4 + flen)
            return HTTP_NEED_MORE;
        size_t off;
        if (store_str(p, f + 4, flen, &off) < 0)
            return fail(p, m, 500, "out of memory");
        m->frame.channel = f[1];
        m->frame.data = (const uint8_t *)p->store.data + off;
        m->frame.len = flen;
        m->result = HTTP_FRAME;
        m->consumed = p->head_start + 4 + flen;
        p->state = P_DONE;
        return HTTP_FRAME;
    }

    while (p->state == P_HEAD) {
        const unsigned char *nl = memchr(d + p->pos, '\n', len - p->pos);
        if (!nl) {
            p->pos = len;
            if (!p->have_reqline && !method_prefix_ok(d + p->line_start, len - p->line_start))
                return fail(p, m, 400, "bad request method");
            /* +1: a line of exactly max_line may be waiting for its LF after CR */
            if (!p->have_reqline && len - p->line_start > p->lim.max_line + 1)
                return fail(p, m, 414, "request line too long");
            if (len - p->head_start > p->lim.max_head)
                return fail(p, m, 431, "request head too large");
            return HTTP_NEED_MORE;
        }
        size_t i = (size_t)(nl - d);
        size_t end = i > p->line_start && d[i - 1] == '\r' ? i - 1 : i;
        const char *line = (const char *)d + p->line_start;
        size_t n = end - p->line_start;
        p->pos = i + 1;
        p->line_start = i + 1;
        if (!p->have_reqline && !method_prefix_ok((const unsigned char *)line, n))
            return fail(p, m, 400, "bad request method");
        if (!p->have_reqline && n > p->lim.max_line)
            return fail(p, m, 414, "request line too long");
        if (i + 1 - p->head_start > p->lim.max_head)
            return fail(p, m, 431, "request head too large");
        if (!p->have_reqline) {
            st = parse_request_line(p, line, n, &why);
            p->have_reqline = 1;
        } else if (n == 0) {
            st = head_complete(p, &why);
            p->head_end = i + 1;
            p->state = P_BODY;
        } else {
            st = parse_header_line(p, line, n, &why);
        }
        if (st == 500)
            return fail(p, m, 500, "out of memory");
        if (st)
            return fail(p, m, st, why);
    }

    /* P_BODY */
    p->pos = len;
    if (len - p->head_end < p->content_length)
        return HTTP_NEED_MORE;
    if (finish_request(p, m, (const char *)d) < 0)
        return fail(p, m, 500, "out of memory");
    return HTTP_REQUEST;
}

int http_path_segment(const char **p, char *out, size_t outlen)
{
    const char *s = *p, *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 0 || n >= outlen)
        return -ENOENT;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = e ? e + 1 : s + n;
    return e ? 1 : 0;
}
