/*
 * The request parser, table-driven: every case is parsed twice, all at once
 * and one byte at a time, and both must give the same answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "stream/http_parser.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pcase {
    const char *name;
    const char *in;
    size_t len; /* 0: strlen(in) */
    enum http_result result;
    int status; /* HTTP_ERROR */
    const char *method, *path, *query, *body;
    enum http_version version;
    int keep_alive;
};

#define H11         "Host: example.org\r\n"
#define NUL_REQUEST "GET / HTTP/1.1\r\n" H11 "X: a\0z\r\n\r\n"

static const struct pcase cases[] = {
    /* requests */
    {"simple GET", "GET / HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_REQUEST, 0, "GET", "/", NULL, "",
     HTTP_VERSION_1_1, 1},
    {"decoded path and raw query", "GET /a%20b/c%2Fd?x=1&y=%41 HTTP/1.1\r\n" H11 "\r\n", 0,
     HTTP_REQUEST, 0, "GET", "/a b/c/d", "x=1&y=%41", "", HTTP_VERSION_1_1, 1},
    {"empty query", "GET /q? HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_REQUEST, 0, "GET", "/q", "", "",
     HTTP_VERSION_1_1, 1},
    {"HTTP/1.0 closes", "HEAD /x HTTP/1.0\r\n\r\n", 0, HTTP_REQUEST, 0, "HEAD", "/x", NULL, "",
     HTTP_VERSION_1_0, 0},
    {"HTTP/1.0 keep-alive", "GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, HTTP_REQUEST, 0,
     "GET", "/x", NULL, "", HTTP_VERSION_1_0, 1},
    {"HTTP/1.1 close", "GET /x HTTP/1.1\r\n" H11 "Connection: TE, close\r\n\r\n", 0, HTTP_REQUEST,
     0, "GET", "/x", NULL, "", HTTP_VERSION_1_1, 0},
    {"bare LF line ends", "GET / HTTP/1.1\n" H11 "\n", 0, HTTP_REQUEST, 0, "GET", "/", NULL, "",
     HTTP_VERSION_1_1, 1},
    {"leading empty lines", "\r\n\nGET / HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_REQUEST, 0, "GET", "/",
     NULL, "", HTTP_VERSION_1_1, 1},
    {"absolute-form", "GET http://example.org:80/p%21?q HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_REQUEST,
     0, "GET", "/p!", "q", "", HTTP_VERSION_1_1, 1},
    {"absolute-form without path", "GET http://example.org HTTP/1.1\r\n" H11 "\r\n", 0,
     HTTP_REQUEST, 0, "GET", "/", NULL, "", HTTP_VERSION_1_1, 1},
    {"asterisk-form", "OPTIONS * HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_REQUEST, 0, "OPTIONS", "*", NULL,
     "", HTTP_VERSION_1_1, 1},
    {"RTSP OPTIONS", "OPTIONS rtsp://127.0.0.1:9997/device/d/t RTSP/1.0\r\nCSeq: 1\r\n\r\n", 0,
     HTTP_REQUEST, 0, "OPTIONS", "/device/d/t", NULL, "", RTSP_VERSION_1_0, 1},
    {"RTSP DESCRIBE without path", "DESCRIBE RTSP://h RTSP/1.0\r\nCSeq: 2\r\n\r\n", 0, HTTP_REQUEST,
     0, "DESCRIBE", "/", NULL, "", RTSP_VERSION_1_0, 1},
    {"RTSP SET_PARAMETER with body",
     "SET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 4\r\n\r\nab\r\n", 0,
     HTTP_REQUEST, 0, "SET_PARAMETER", "/x", NULL, "ab\r\n", RTSP_VERSION_1_0, 1},
    {"POST body", "POST /api HTTP/1.1\r\n" H11 "Content-Length: 5\r\n\r\nhello", 0, HTTP_REQUEST, 0,
     "POST", "/api", NULL, "hello", HTTP_VERSION_1_1, 1},
    {"Content-Length 0", "POST /api HTTP/1.1\r\n" H11 "Content-Length: 0\r\n\r\n", 0, HTTP_REQUEST,
     0, "POST", "/api", NULL, "", HTTP_VERSION_1_1, 1},
    {"obs-text and tabs in a value", "GET / HTTP/1.1\r\n" H11 "X-T: caf\xc3\xa9\t x \t\r\n\r\n", 0,
     HTTP_REQUEST, 0, "GET", "/", NULL, "", HTTP_VERSION_1_1, 1},
    {"empty header value", "GET / HTTP/1.1\r\n" H11 "X-Empty:\r\n\r\n", 0, HTTP_REQUEST, 0, "GET",
     "/", NULL, "", HTTP_VERSION_1_1, 1},
    {"dots that are not segments", "GET /a..b/.c/... HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_REQUEST, 0,
     "GET", "/a..b/.c/...", NULL, "", HTTP_VERSION_1_1, 1},
    {"unknown method is a token", "BREW /pot HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_REQUEST, 0, "BREW",
     "/pot", NULL, "", HTTP_VERSION_1_1, 1},

    /* 400 */
    {"no version (HTTP/0.9)", "GET /\r\n\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL, NULL, 0, 0},
    {"double space", "GET  / HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL, NULL,
     0, 0},
    {"trailing space", "GET / HTTP/1.1 \r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL, NULL,
     0, 0},
    {"method too long", "GETGETGETGETGETGETGETGETGETGETGET / HTTP/1.1\r\n" H11 "\r\n", 0,
     HTTP_ERROR, 400, NULL, NULL, NULL, NULL, 0, 0},
    {"bad method char", "G@T / HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL, NULL,
     0, 0},
    {"lowercase version", "GET / http/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL,
     NULL, 0, 0},
    {"version garbage", "GET / HTTP/1.x\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL, NULL,
     0, 0},
    {"TLS hello", "\x16\x03\x01\x02", 0, HTTP_ERROR, 400, NULL, NULL, NULL, NULL, 0, 0},
    {"control char in target", "GET /a\x01 HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL,
     NULL, NULL, 0, 0},
    {"non-ASCII target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL,
     NULL, NULL, 0, 0},
    {"relative target", "GET foo HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL,
     NULL, 0, 0},
    {"unknown scheme", "GET ftp://h/x HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL,
     NULL, NULL, 0, 0},
    {"absolute-form without host", "GET http:///x HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400,
     NULL, NULL, NULL, NULL, 0, 0},
    {"fragment", "GET /a#b HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL, NULL, 0,
     0},
    {"bad escape", "GET /a%zz HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL, NULL,
     0, 0},
    {"truncated escape", "GET /a%2 HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL,
     NULL, 0, 0},
    {"%00", "GET /a%00b HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL, NULL, 0, 0},
    {"dot-dot segment", "GET /device/../admin HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL,
     NULL, NULL, NULL, 0, 0},
    {"encoded dot-dot", "GET /a/%2e%2E HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL,
     NULL, NULL, 0, 0},
    {"space in header name", "GET / HTTP/1.1\r\n" H11 "Bad Name: x\r\n\r\n", 0, HTTP_ERROR, 400,
     NULL, NULL, NULL, NULL, 0, 0},
    {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, HTTP_ERROR, 400, NULL, NULL,
     NULL, NULL, 0, 0},
    {"no colon", "GET / HTTP/1.1\r\n" H11 "NoColon\r\n\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL,
     NULL, 0, 0},
    {"empty header name", "GET / HTTP/1.1\r\n" H11 ": x\r\n\r\n", 0, HTTP_ERROR, 400, NULL, NULL,
     NULL, NULL, 0, 0},
    {"obs-fold", "GET / HTTP/1.1\r\n" H11 "X: a\r\n b\r\n\r\n", 0, HTTP_ERROR, 400, NULL, NULL,
     NULL, NULL, 0, 0},
    {"control char in value", "GET / HTTP/1.1\r\n" H11 "X: a\x01z\r\n\r\n", 0, HTTP_ERROR, 400,
     NULL, NULL, NULL, NULL, 0, 0},
    {"DEL in value", "GET / HTTP/1.1\r\n" H11 "X: a\x7fz\r\n\r\n", 0, HTTP_ERROR, 400, NULL, NULL,
     NULL, NULL, 0, 0},
    {"NUL in value", NUL_REQUEST, sizeof(NUL_REQUEST) - 1, HTTP_ERROR, 400, NULL, NULL, NULL, NULL,
     0, 0},
    {"bare CR in value", "GET / HTTP/1.1\r\n" H11 "X: a\rz\r\n\r\n", 0, HTTP_ERROR, 400, NULL, NULL,
     NULL, NULL, 0, 0},
    {"bare CR in request line", "GET /\r HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL,
     NULL, NULL, 0, 0},
    {"bare CR before request", "\rGET / HTTP/1.1\r\n" H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL,
     NULL, NULL, 0, 0},
    {"duplicate Content-Length",
     "POST / HTTP/1.1\r\n" H11 "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", 0, HTTP_ERROR,
     400, NULL, NULL, NULL, NULL, 0, 0},
    {"Content-Length letters", "POST / HTTP/1.1\r\n" H11 "Content-Length: abc\r\n\r\n", 0,
     HTTP_ERROR, 400, NULL, NULL, NULL, NULL, 0, 0},
    {"Content-Length negative", "POST / HTTP/1.1\r\n" H11 "Content-Length: -1\r\n\r\n", 0,
     HTTP_ERROR, 400, NULL, NULL, NULL, NULL, 0, 0},
    {"Content-Length plus", "POST / HTTP/1.1\r\n" H11 "Content-Length: +1\r\n\r\nx", 0, HTTP_ERROR,
     400, NULL, NULL, NULL, NULL, 0, 0},
    {"Content-Length list", "POST / HTTP/1.1\r\n" H11 "Content-Length: 1, 1\r\n\r\nx", 0,
     HTTP_ERROR, 400, NULL, NULL, NULL, NULL, 0, 0},
    {"Content-Length empty", "POST / HTTP/1.1\r\n" H11 "Content-Length:\r\n\r\n", 0, HTTP_ERROR,
     400, NULL, NULL, NULL, NULL, 0, 0},
    {"Content-Length overflow",
     "POST / HTTP/1.1\r\n" H11 "Content-Length: 99999999999999999999999\r\n\r\n", 0, HTTP_ERROR,
     400, NULL, NULL, NULL, NULL, 0, 0},
    {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL, NULL,
     0, 0},
    {"two Hosts", "GET / HTTP/1.1\r\n" H11 H11 "\r\n", 0, HTTP_ERROR, 400, NULL, NULL, NULL, NULL,
     0, 0},

    /* 413, 501, 505 */
    {"body over 1 MiB", "POST / HTTP/1.1\r\n" H11 "Content-Length: 1048577\r\n\r\n", 0, HTTP_ERROR,
     413, NULL, NULL, NULL, NULL, 0, 0},
    {"chunked", "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0,
     HTTP_ERROR, 501, NULL, NULL, NULL, NULL, 0, 0},
    {"Transfer-Encoding with Content-Length",
     "POST / HTTP/1.1\r\n" H11 "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 0,
     HTTP_ERROR, 501, NULL, NULL, NULL, NULL, 0, 0},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n" H11 "\r\n", 0, HTTP_ERROR, 505, NULL, NULL, NULL, NULL, 0, 0},
    {"HTTP/1.2", "GET / HTTP/1.2\r\n" H11 "\r\n", 0, HTTP_ERROR, 505, NULL, NULL, NULL, NULL, 0, 0},
    {"RTSP/2.0", "OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n", 0, HTTP_ERROR, 505, NULL, NULL, NULL,
     NULL, 0, 0},
};

static enum http_result parse_all(struct http_parser *p, const char *in, size_t len,
                                  struct http_message *m)
{
    return http_parse(p, in, len, m);
}

/* Shows the data one byte more each time, as a slow client would send it. */
static enum http_result parse_bytewise(struct http_parser *p, const char *in, size_t len,
                                       struct http_message *m)
{
    enum http_result r = HTTP_NEED_MORE;
    for (size_t n = 1; n <= len; n++) {
        r = http_parse(p, in, n, m);
        if (r != HTTP_NEED_MORE)
            return r;
    }
    return r;
}

static void check_case(const struct pcase *c, struct http_message *m, enum http_result r,
                       size_t len)
{
    if (r != c->result || (r == HTTP_ERROR && m->status != c->status)) {
        fprintf(stderr, "case \"%s\": result %d status %d (%s), want %d status %d\n", c->name, r,
                m->status, m->error ? m->error : "", c->result, c->status);
        fail();
    }
    assert_int_equal(m->result, r);
    if (r == HTTP_ERROR) {
        assert_non_null(m->error);
        return;
    }
    assert_int_equal(m->consumed, len);
    assert_string_equal(m->req.method, c->method);
    assert_string_equal(m->req.path, c->path);
    if (c->query)
        assert_string_equal(m->req.query, c->query);
    else
        assert_null(m->req.query);
    assert_int_equal(m->req.version, c->version);
    assert_int_equal(m->req.keep_alive, c->keep_alive);
    assert_int_equal(m->req.body_len, strlen(c->body));
    assert_memory_equal(m->req.body, c->body, m->req.body_len);
    assert_int_equal(m->req.body[m->req.body_len], '\0');
}

static void test_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct pcase *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->in);
        struct http_message m;

        struct http_parser *p = http_parser_new(NULL);
        assert_non_null(p);
        check_case(c, &m, parse_all(p, c->in, len, &m), len);
        http_parser_free(&p);
        assert_null(p);

        p = http_parser_new(NULL);
        check_case(c, &m, parse_bytewise(p, c->in, len, &m), len);
        http_parser_free(&p);
    }
}

static void test_headers(void **state)
{
    const char *in = "GET / HTTP/1.1\r\nHost: example.org\r\nX-Multi:  a, b  \r\n"
                     "x-multi: second\r\nCSeq: 42\r\n\r\n";
    struct http_parser *p = http_parser_new(NULL);
    struct http_message m;
    assert_int_equal(http_parse(p, in, strlen(in), &m), HTTP_REQUEST);
    assert_int_equal(m.req.nheaders, 4);
    assert_string_equal(m.req.headers[1].name, "X-Multi");
    assert_string_equal(m.req.headers[1].value, "a, b");
    assert_string_equal(http_request_header(&m.req, "x-MULTI"), "a, b"); /* the first */
    assert_string_equal(http_request_header(&m.req, "HOST"), "example.org");
    assert_string_equal(http_request_header(&m.req, "cseq"), "42");
    assert_null(http_request_header(&m.req, "Content-Length"));
    assert_string_equal(m.req.target, "/");
    http_parser_free(&p);
    http_parser_free(&p); /* NULL is fine */
}

static void test_pipelined(void **state)
{
    const char *in = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                     "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
                     "\r\n" /* tolerated between requests */
                     "GET /three HTTP/1.1\r\nHost: a\r\n\r\n"
                     "GET /fo";
    const char *want[] = {"/one", "/two", "/three"};
    size_t off = 0, len = strlen(in);
    struct http_parser *p = http_parser_new(NULL);
    struct http_message m;

    for (int i = 0; i < 3; i++) {
        assert_int_equal(http_parse(p, in + off, len - off, &m), HTTP_REQUEST);
        assert_string_equal(m.req.path, want[i]);
        if (i == 1)
            assert_string_equal(m.req.body, "xyz");
        off += m.consumed;
    }
    assert_int_equal(http_parse(p, in + off, len - off, &m), HTTP_NEED_MORE);
    assert_string_equal(in + off, "GET /fo");
    http_parser_free(&p);
}

static void test_pipelined_bytewise(void **state)
{
    /* A client trickling two requests: the second one's first bytes arrive
     * with the end of the first. */
    const char *in = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t len = strlen(in), start = 0, got = 0;
    struct http_parser *p = http_parser_new(NULL);
    struct http_message m;
    for (size_t n = 1; n <= len; n++) {
        enum http_result r = http_parse(p, in + start, n - start, &m);
        if (r == HTTP_REQUEST) {
            assert_string_equal(m.req.path, got == 0 ? "/a" : "/b");
            start += m.consumed;
            got++;
        } else {
            assert_int_equal(r, HTTP_NEED_MORE);
        }
    }
    assert_int_equal(got, 2);
    assert_int_equal(start, len);
    http_parser_free(&p);
}

static void test_interleaved_frames(void **state)
{
    static const char in[] = "$\x01\x00\x03"
                             "abc"
                             "$\x00\x00\x00"
                             "GET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 9\r\n\r\n"
                             "$\x02\x01\x00";
    size_t len = sizeof(in) - 1, off = 0;
    struct http_parser *p = http_parser_new(NULL);
    struct http_message m;

    assert_int_equal(http_parse(p, in, 3, &m), HTTP_NEED_MORE);
    assert_int_equal(http_parse(p, in, 6, &m), HTTP_NEED_MORE);
    assert_int_equal(http_parse(p, in, len, &m), HTTP_FRAME);
    assert_int_equal(m.frame.channel, 1);
    assert_int_equal(m.frame.len, 3);
    assert_memory_equal(m.frame.data, "abc", 3);
    assert_int_equal(m.consumed, 7);
    off += m.consumed;

    assert_int_equal(http_parse(p, in + off, len - off, &m), HTTP_FRAME);
    assert_int_equal(m.frame.channel, 0);
    assert_int_equal(m.frame.len, 0);
    off += m.consumed;

    assert_int_equal(http_parse(p, in + off, len - off, &m), HTTP_REQUEST);
    assert_string_equal(m.req.method, "GET_PARAMETER");
    assert_int_equal(m.req.version, RTSP_VERSION_1_0);
    assert_string_equal(http_request_header(&m.req, "CSeq"), "9");
    off += m.consumed;

    /* 256-byte payload announced, 0 here yet */
    assert_int_equal(http_parse(p, in + off, len - off, &m), HTTP_NEED_MORE);
    char big[4 + 256];
    memcpy(big, "$\x02\x01\x00", 4);
    memset(big + 4, 'z', 256);
    assert_int_equal(parse_bytewise(p, big, sizeof(big), &m), HTTP_FRAME);
    assert_int_equal(m.frame.channel, 2);
    assert_int_equal(m.frame.len, 256);
    assert_int_equal(m.frame.data[255], 'z');
    http_parser_free(&p);
}

static void test_max_frame(void **state)
{
    size_t len = 4 + 65535;
    unsigned char *in = malloc(len);
    in[0] = '$';
    in[1] = 7;
    in[2] = 0xff;
    in[3] = 0xff;
    memset(in + 4, 0xab, 65535);
    struct http_parser *p = http_parser_new(NULL);
    struct http_message m;
    assert_int_equal(http_parse(p, in, len - 1, &m), HTTP_NEED_MORE);
    assert_int_equal(http_parse(p, in, len, &m), HTTP_FRAME);
    assert_int_equal(m.frame.len, 65535);
    assert_int_equal(m.consumed, len);
    http_parser_free(&p);
    free(in);
}

/* "GET /aaa...a HTTP/1.1" of exactly n bytes. */
static char *request_line(size_t n)
{
    char *s = malloc(n + 64);
    size_t k = n - 14;
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', k);
    strcpy(s + 5 + k, " HTTP/1.1\r\nHost: a\r\n\r\n");
    return s;
}

static void expect_status(const char *in, size_t len, const struct http_limits *lim, int status)
{
    struct http_message m;
    struct http_parser *p = http_parser_new(lim);
    enum http_result r = http_parse(p, in, len, &m);
    if (status == 0) {
        assert_int_equal(r, HTTP_REQUEST);
    } else {
        assert_int_equal(r, HTTP_ERROR);
        assert_int_equal(m.status, status);
    }
    http_parser_free(&p);
    /* The same, byte by byte. */
    p = http_parser_new(lim);
    r = parse_bytewise(p, in, len, &m);
    if (status == 0) {
        assert_int_equal(r, HTTP_REQUEST);
    } else {
        assert_int_equal(r, HTTP_ERROR);
        assert_int_equal(m.status, status);
    }
    http_parser_free(&p);
}

static void test_request_line_limit(void **state)
{
    char *s = request_line(HTTP_MAX_LINE);
    expect_status(s, strlen(s), NULL, 0);
    free(s);
    s = request_line(HTTP_MAX_LINE + 1);
    expect_status(s, strlen(s), NULL, 414);
    free(s);

    /* 414 as soon as the line is too long, without waiting for its end */
    s = request_line(HTTP_MAX_LINE * 2);
    struct http_parser *p = http_parser_new(NULL);
    struct http_message m;
    assert_int_equal(http_parse(p, s, HTTP_MAX_LINE + 2, &m), HTTP_ERROR);
    assert_int_equal(m.status, 414);
    /* sticky */
    assert_int_equal(http_parse(p, s, HTTP_MAX_LINE + 3, &m), HTTP_ERROR);
    assert_int_equal(m.status, 414);
    /* until reset */
    http_parser_reset(p);
    assert_int_equal(http_parse(p, "GET / HTTP/1.0\r\n\r\n", 18, &m), HTTP_REQUEST);
    http_parser_free(&p);
    free(s);
}

/* A head of exactly n bytes: "GET / HTTP/1.1\r\nHost: a\r\nX: vvv...\r\n\r\n". */
static char *head_of(size_t n)
{
    const char *pre = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    size_t k = n - strlen(pre) - 4;
    char *s = malloc(n + 1);
    strcpy(s, pre);
    memset(s + strlen(pre), 'v', k);
    strcpy(s + strlen(pre) + k, "\r\n\r\n");
    return s;
}

static void test_head_limit(void **state)
{
    char *s = head_of(HTTP_MAX_HEAD);
    assert_int_equal(strlen(s), HTTP_MAX_HEAD);
    expect_status(s, strlen(s), NULL, 0);
    free(s);
    s = head_of(HTTP_MAX_HEAD + 1);
    expect_status(s, strlen(s), NULL, 431);
    free(s);

    /* 431 without waiting for the end of an endless header */
    s = head_of(HTTP_MAX_HEAD * 2);
    struct http_parser *p = http_parser_new(NULL);
    struct http_message m;
    assert_int_equal(http_parse(p, s, HTTP_MAX_HEAD, &m), HTTP_NEED_MORE);
    assert_int_equal(http_parse(p, s, HTTP_MAX_HEAD + 1, &m), HTTP_ERROR);
    assert_int_equal(m.status, 431);
    assert_int_equal(m.version, HTTP_VERSION_1_1);
    http_parser_free(&p);
    free(s);
}

static void test_header_count(void **state)
{
    char s[8192];
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: a\r\n");
        for (int i = 1; i < HTTP_MAX_HEADERS + extra; i++)
            n += (size_t)sprintf(s + n, "X-%d: %d\r\n", i, i);
        n += (size_t)sprintf(s + n, "\r\n");
        expect_status(s, n, NULL, extra ? 431 : 0);
    }
}

static void test_limits(void **state)
{
    struct http_limits lim = {.max_body = 10, .max_line = 32, .max_head = 100, .max_headers = 2};
    const char *ok = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
    expect_status(ok, strlen(ok), &lim, 0);
    const char *big = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n0123456789a";
    expect_status(big, strlen(big), &lim, 413);
    const char *longline = "GET /0123456789012345678901 HTTP/1.1\r\nHost: a\r\n\r\n";
    expect_status(longline, strlen(longline), &lim, 414);
    const char *many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    expect_status(many, strlen(many), &lim, 431);
    /* a body over the default limit gets 413 before any of it is sent */
    const char *huge = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000000\r\n\r\n";
    expect_status(huge, strlen(huge), NULL, 413);
}

static void test_expect_continue(void **state)
{
    const char *head = "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                       "Content-Length: 4\r\n\r\n";
    char in[256];
    snprintf(in, sizeof(in), "%sbody", head);
    struct http_parser *p = http_parser_new(NULL);
    struct http_message m;
    assert_int_equal(http_parse(p, in, strlen(head) - 1, &m), HTTP_NEED_MORE);
    assert_int_equal(http_parser_head_done(p), 0);
    assert_int_equal(http_parser_expects_continue(p), 0);
    assert_int_equal(http_parse(p, in, strlen(head), &m), HTTP_NEED_MORE);
    assert_int_equal(http_parser_head_done(p), 1);
    assert_int_equal(http_parser_expects_continue(p), 1);
    assert_int_equal(http_parse(p, in, strlen(head) + 2, &m), HTTP_NEED_MORE);
    assert_int_equal(http_parse(p, in, strlen(in), &m), HTTP_REQUEST);
    assert_string_equal(m.req.body, "body");
    assert_int_equal(http_parser_head_done(p), 0);
    http_parser_free(&p);
}

static void test_percent_decode(void **state)
{
    static const struct {
        const char *in;
        int plus;
        int ret;
        const char *out;
    } t[] = {
        {"", 0, 0, ""},
        {"abc", 0, 0, "abc"},
        {"a%20b", 0, 0, "a b"},
        {"%41%42%43", 0, 0, "ABC"},
        {"%c3%A9", 0, 0, "\xc3\xa9"},
        {"a+b", 0, 0, "a+b"},
        {"a+b", 1, 0, "a b"},
        {"%2B", 1, 0, "+"},
        {"%", 0, -EINVAL, NULL},
        {"%4", 0, -EINVAL, NULL},
        {"%4g", 0, -EINVAL, NULL},
        {"%g4", 0, -EINVAL, NULL},
        {"x%00y", 0, -EINVAL, NULL},
        {"%%41", 0, -EINVAL, NULL},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char out[64];
        size_t n = 99;
        int r = http_percent_decode(t[i].in, strlen(t[i].in), out, &n, t[i].plus);
        assert_int_equal(r, t[i].ret);
        if (r == 0) {
            assert_string_equal(out, t[i].out);
            assert_int_equal(n, strlen(t[i].out));
        }
    }
    /* in place, and a NUL byte in the input */
    char s[] = "a%2Fb";
    assert_int_equal(http_percent_decode(s, strlen(s), s, NULL, 0), 0);
    assert_string_equal(s, "a/b");
    char out[8];
    assert_int_equal(http_percent_decode("a\0b", 3, out, NULL, 0), -EINVAL);
}

static void test_query(void **state)
{
    char out[16];
    const char *q = "a=1&name=J%C3%B6rg+M&empty=&flag&a=2&long=0123456789abcdefXYZ&bad=%zz";
    assert_int_equal(http_query_get(q, "a", out, sizeof(out)), 0);
    assert_string_equal(out, "1");
    assert_int_equal(http_query_get(q, "name", out, sizeof(out)), 0);
    assert_string_equal(out, "J\xc3\xb6rg M");
    assert_int_equal(http_query_get(q, "empty", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(http_query_get(q, "flag", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(http_query_get(q, "nope", out, sizeof(out)), -ENOENT);
    assert_int_equal(http_query_get(q, "long", out, sizeof(out)), -E2BIG);
    assert_int_equal(http_query_get(q, "bad", out, sizeof(out)), -EINVAL);
    assert_int_equal(http_query_get(NULL, "a", out, sizeof(out)), -ENOENT);
    assert_int_equal(http_query_get("", "a", out, sizeof(out)), -ENOENT);
    assert_int_equal(http_query_get("k%20y=v", "k y", out, sizeof(out)), 0);
    assert_string_equal(out, "v");
}

static void test_tokens(void **state)
{
    assert_true(http_header_has_token("close", "close"));
    assert_true(http_header_has_token("Keep-Alive", "keep-alive"));
    assert_true(http_header_has_token("TE ,  Upgrade, close ", "close"));
    assert_true(http_header_has_token(",,close,,", "close"));
    assert_false(http_header_has_token("closed", "close"));
    assert_false(http_header_has_token("", "close"));
    assert_false(http_header_has_token(NULL, "close"));
    assert_string_equal(http_version_string(HTTP_VERSION_1_0), "HTTP/1.0");
    assert_string_equal(http_version_string(RTSP_VERSION_1_0), "RTSP/1.0");
    assert_string_equal(http_version_string(HTTP_VERSION_1_1), "HTTP/1.1");
}

static void test_error_carries_version(void **state)
{
    const char *in = "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nBad Header: x\r\n\r\n";
    struct http_parser *p = http_parser_new(NULL);
    struct http_message m;
    assert_int_equal(http_parse(p, in, strlen(in), &m), HTTP_ERROR);
    assert_int_equal(m.status, 400);
    assert_int_equal(m.version, RTSP_VERSION_1_0);
    http_parser_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_pipelined_bytewise),
        cmocka_unit_test(test_interleaved_frames),
        cmocka_unit_test(test_max_frame),
        cmocka_unit_test(test_request_line_limit),
        cmocka_unit_test(test_head_limit),
        cmocka_unit_test(test_header_count),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_error_carries_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
