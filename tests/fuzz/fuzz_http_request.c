/*
 * libFuzzer target for the request parser (stream/http_parser.h).
 *
 * Besides "never crash, never read out of bounds", it checks that the parser
 * is truly incremental: the input, parsed as pipelined messages, must give the
 * same sequence of results whether it is shown all at once or in small pieces
 * (piece sizes are taken from the input itself). It does so with the default
 * limits and with tiny ones, so that the limit paths are easy to reach. The
 * percent-decoding and query helpers get the same bytes.
 */
#include "stream/http_parser.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RECORDS 512

struct record {
    int result;
    int status;
    size_t consumed;
    uint64_t hash;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return s ? fnv(h, s, strlen(s) + 1) : fnv(h, "\xff", 1);
}

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_http_request: %s\n", what);
        abort();
    }
}

static uint64_t request_hash(const struct http_request *r, size_t consumed)
{
    check(r->method && r->target && r->path && r->body && r->headers, "NULL field");
    check(r->method[0] != '\0', "empty method");
    check(r->path[0] == '/' || strcmp(r->path, "*") == 0, "path not absolute");
    check(r->body_len <= consumed, "body longer than the message");
    check(r->body[r->body_len] == '\0', "body not terminated");
    check(r->version == HTTP_VERSION_1_0 || r->version == HTTP_VERSION_1_1 ||
              r->version == RTSP_VERSION_1_0,
          "bad version");
    uint64_t h = 14695981039346656037ULL;
    h = fnv_str(h, r->method);
    h = fnv_str(h, r->target);
    h = fnv_str(h, r->path);
    h = fnv_str(h, r->query);
    h = fnv(h, &r->version, sizeof(r->version));
    h = fnv(h, &r->keep_alive, sizeof(r->keep_alive));
    for (size_t i = 0; i < r->nheaders; i++) {
        check(http_request_header(r, r->headers[i].name) != NULL, "header lookup failed");
        h = fnv_str(h, r->headers[i].name);
        h = fnv_str(h, r->headers[i].value);
    }
    return fnv(h, r->body, r->body_len);
}

/* Parses data as a sequence of messages, growing the visible part by pieces
 * of the given sizes (0: everything at once). Returns the number of records. */
static size_t run(const struct http_limits *lim, const uint8_t *data, size_t size, int pieces,
                  struct record *rec)
{
    struct http_parser *p = http_parser_new(lim);
    size_t n = 0, start = 0, end = pieces ? 0 : size, k = 0;

    check(p != NULL, "http_parser_new failed");
    while (n < MAX_RECORDS) {
        struct http_message m;
        enum http_result r = http_parse(p, data + start, end - start, &m);
        check(m.result == r, "result mismatch");
        if (r == HTTP_NEED_MORE) {
            if (end == size) {
                rec[n++] = (struct record){.result = r};
                break;
            }
            /* 1..16 bytes at a time, the sizes drawn from the input */
            end += 1 + (size_t)(data[(k++ * 7) % size] & 15);
            if (end > size)
                end = size;
            continue;
        }
        struct record *o = &rec[n++];
        o->result = r;
        if (r == HTTP_ERROR) {
            check(m.status >= 400 && m.status <= 505 && m.error, "bad error");
            o->status = m.status;
            break;
        }
        check(m.consumed > 0 && m.consumed <= end - start, "bad consumed");
        o->consumed = m.consumed;
        if (r == HTTP_REQUEST) {
            o->hash = request_hash(&m.req, m.consumed);
        } else {
            check(m.frame.len + 4 <= m.consumed && m.frame.channel < 256, "bad frame");
            o->hash = fnv(m.frame.channel, m.frame.data, m.frame.len);
        }
        start += m.consumed;
    }
    http_parser_free(&p);
    return n;
}

static void differential(const struct http_limits *lim, const uint8_t *data, size_t size)
{
    static struct record whole[MAX_RECORDS], pieces[MAX_RECORDS];
    size_t a = run(lim, data, size, 0, whole);
    size_t b = run(lim, data, size, 1, pieces);
    check(a == b, "whole and piecewise parses differ in length");
    for (size_t i = 0; i < a; i++) {
        if (whole[i].result != pieces[i].result || whole[i].status != pieces[i].status ||
            whole[i].consumed != pieces[i].consumed || whole[i].hash != pieces[i].hash) {
            fprintf(stderr, "message %zu: whole %d/%d/%zu, piecewise %d/%d/%zu\n", i,
                    whole[i].result, whole[i].status, whole[i].consumed, pieces[i].result,
                    pieces[i].status, pieces[i].consumed);
            check(0, "whole and piecewise parses differ");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct http_limits tiny = {
        .max_line = 64, .max_head = 256, .max_headers = 4, .max_body = 64};

    if (size == 0)
        return 0;
    differential(NULL, data, size);
    differential(&tiny, data, size);

    char *s = malloc(size + 1);
    char *out = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    size_t n;
    if (http_percent_decode(s, size, out, &n, data[0] & 1) == 0)
        check(n <= size && out[n] == '\0' && strlen(out) == n, "bad decode");
    char v[32];
    http_query_get(s, "a", v, sizeof(v));
    http_query_get(s, "", v, 1);
    http_header_has_token(s, "close");
    free(out);
    free(s);
    return 0;
}
