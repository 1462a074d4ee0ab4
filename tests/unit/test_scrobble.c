/* The scrobble services' pure parts (backend/scrobble/service.h): last.fm's
 * play rule, the Audioscrobbler 2.0 signature and form (the signature
 * vectors are md5 of the concatenation the spec describes, computed apart
 * with Python's hashlib), ListenBrainz payloads, and the sorting of answers,
 * malformed ones included, into done / retry / auth / refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scrobble/service.h"

static void rule(void **state)
{
    assert_true(scrobble_threshold(0) < 0);
    assert_true(scrobble_threshold(-5) < 0);
    assert_true(scrobble_threshold(NAN) < 0);
    assert_true(scrobble_threshold(30) < 0); /* "longer than 30 seconds" */
    assert_true(fabs(scrobble_threshold(31) - 15.5) < 1e-9);
    assert_true(fabs(scrobble_threshold(32) - 16) < 1e-9);
    assert_true(fabs(scrobble_threshold(479) - 239.5) < 1e-9);
    assert_true(fabs(scrobble_threshold(480) - 240) < 1e-9);  /* half = 4 min */
    assert_true(fabs(scrobble_threshold(3600) - 240) < 1e-9); /* 4 minutes at most */
    assert_true(fabs(scrobble_threshold(INFINITY) - 240) < 1e-9);
}

static void signature(void **state)
{
    /* The example of last.fm's authentication spec: api_key xxxxxxxxxx,
     * method auth.getSession, token yyyyyy, secret ilovecher. */
    struct scrobble_param p[] = {
        {"token", "yyyyyy"}, {"method", "auth.getSession"}, {"api_key", "xxxxxxxxxx"}};
    char sig[33];
    assert_int_equal(scrobble_as_signature(p, 3, "ilovecher", sig), 0);
    assert_string_equal(sig, "b87d61da3cda91a8b6746c4aef55d6f8");
    /* format and callback are not signed */
    struct scrobble_param q[] = {{"format", "json"},
                                 {"token", "yyyyyy"},
                                 {"callback", "f"},
                                 {"method", "auth.getSession"},
                                 {"api_key", "xxxxxxxxxx"}};
    assert_int_equal(scrobble_as_signature(q, 5, "ilovecher", sig), 0);
    assert_string_equal(sig, "b87d61da3cda91a8b6746c4aef55d6f8");
    /* UTF-8 values, reserved characters, sorted by name */
    struct scrobble_param t[] = {{"method", "track.scrobble"},
                                 {"artist", "AC/DC & Co"},
                                 {"track", "T\xc3\xaate"},
                                 {"album", "S\xc3\xa9"
                                           "ance"},
                                 {"timestamp", "1700000000"},
                                 {"duration", "240"},
                                 {"sk", "sess"},
                                 {"api_key", "k"}};
    assert_int_equal(scrobble_as_signature(t, 8, "sec", sig), 0);
    assert_string_equal(sig, "e2b92545f22aa8ffa6e2380e83c40f8a");
    assert_int_equal(scrobble_as_signature(NULL, 0, "", sig), 0);
    assert_string_equal(sig, "d41d8cd98f00b204e9800998ecf8427e"); /* md5("") */
}

static void form(void **state)
{
    struct scrobble_param p[] = {
        {"method", "track.updateNowPlaying"}, {"artist", "AC/DC & Co"}, {"track", "a=b+c"}};
    char *f = scrobble_as_form(p, 3, "s");
    char sig[33];
    assert_non_null(f);
    assert_int_equal(scrobble_as_signature(p, 3, "s", sig), 0);
    char want[512];
    snprintf(want, sizeof(want),
             "method=track.updateNowPlaying&artist=AC%%2FDC%%20%%26%%20Co&track=a%%3Db%%2Bc&"
             "api_sig=%s&format=json",
             sig);
    assert_string_equal(f, want);
    free(f);
}

static void track_from_file(void **state)
{
    struct scrobble_track t;
    json_t *doc = json_loads("{\"duration\": 31.6, \"tags\": {\"artist\": [\"A\", \"B\"], "
                             "\"title\": \"T\", \"album\": \"L\"}}",
                             0, NULL);
    assert_int_equal(scrobble_track_from_file(doc, &t), 0);
    assert_string_equal(t.artist, "A");
    assert_string_equal(t.title, "T");
    assert_string_equal(t.album, "L");
    assert_true(fabs(t.duration - 31.6) < 1e-9);
    json_decref(doc);
    doc = json_loads("{\"tags\": {\"albumartist\": \"AA\", \"title\": \"T\"}}", 0, NULL);
    assert_int_equal(scrobble_track_from_file(doc, &t), 0);
    assert_string_equal(t.artist, "AA");
    assert_string_equal(t.album, "");
    assert_true(t.duration == 0);
    json_decref(doc);
    /* nothing a service would take; wrong types; not an object at all */
    const char *bad[] = {"{\"tags\": {\"title\": \"T\"}}",
                         "{\"tags\": {\"artist\": \"A\"}}",
                         "{\"tags\": {\"artist\": 5, \"title\": {}}, \"duration\": \"x\"}",
                         "{\"tags\": []}",
                         "[]",
                         "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        doc = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        assert_int_equal(scrobble_track_from_file(doc, &t), -EINVAL);
        json_decref(doc);
    }
    assert_int_equal(scrobble_track_from_file(NULL, &t), -EINVAL);
}

static enum scrobble_outcome as(long status, const char *text, int *code)
{
    char msg[256];
    json_t *body = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    enum scrobble_outcome o = scrobble_as_outcome(0, status, body, code, msg, sizeof(msg));
    assert_true(strlen(msg) < sizeof(msg));
    json_decref(body);
    return o;
}

static void as_answers(void **state)
{
    int code;
    assert_int_equal(as(200, "{\"token\": \"abc\"}", &code), SCROBBLE_OK);
    assert_int_equal(code, 0);
    assert_int_equal(as(403, "{\"error\": 9, \"message\": \"Invalid session key\"}", &code),
                     SCROBBLE_AUTH);
    assert_int_equal(code, 9);
    assert_int_equal(as(403, "{\"error\": 14, \"message\": \"not authorized\"}", &code),
                     SCROBBLE_AUTH);
    assert_int_equal(as(403, "{\"error\": 4}", &code), SCROBBLE_AUTH);
    assert_int_equal(as(200, "{\"error\": 11, \"message\": \"offline\"}", &code), SCROBBLE_RETRY);
    assert_int_equal(as(200, "{\"error\": 16}", &code), SCROBBLE_RETRY);
    assert_int_equal(as(429, "{\"error\": 29}", &code), SCROBBLE_RETRY);
    assert_int_equal(as(400, "{\"error\": 6, \"message\": \"Invalid parameters\"}", &code),
                     SCROBBLE_REJECTED);
    assert_int_equal(as(400, "{\"error\": 13}", &code), SCROBBLE_REJECTED);
    /* malformed answers never crash: not JSON, wrong types, empty, HTML */
    assert_int_equal(as(200, NULL, &code), SCROBBLE_RETRY);
    assert_int_equal(as(200, "[1, 2]", &code), SCROBBLE_RETRY);
    assert_int_equal(as(200, "\"ok\"", &code), SCROBBLE_RETRY);
    assert_int_equal(as(502, "{}", &code), SCROBBLE_RETRY);
    assert_int_equal(as(404, "{}", &code), SCROBBLE_REJECTED);
    assert_int_equal(as(200, "{\"error\": \"9\", \"message\": 5}", &code), SCROBBLE_REJECTED);
    assert_int_equal(as(200, "{\"error\": 99999999999}", &code), SCROBBLE_REJECTED);
    char msg[8]; /* a short buffer is cut, not overrun */
    json_t *body = json_loads("{\"error\": 9, \"message\": \"a long message indeed\"}", 0, NULL);
    assert_int_equal(scrobble_as_outcome(0, 403, body, &code, msg, sizeof(msg)), SCROBBLE_AUTH);
    assert_int_equal(strlen(msg), 7);
    json_decref(body);
    assert_int_equal(scrobble_as_outcome(-ECONNREFUSED, 0, NULL, &code, msg, sizeof(msg)),
                     SCROBBLE_RETRY);
}

static enum scrobble_outcome lb(int error, long status, const char *text)
{
    char msg[256];
    json_t *body = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    enum scrobble_outcome o = scrobble_lb_outcome(error, status, body, msg, sizeof(msg));
    json_decref(body);
    return o;
}

static void lb_answers(void **state)
{
    assert_int_equal(lb(0, 200, "{\"status\": \"ok\"}"), SCROBBLE_OK);
    assert_int_equal(lb(0, 200, NULL), SCROBBLE_OK); /* the status says it */
    assert_int_equal(lb(0, 401, "{\"code\": 401, \"error\": \"Invalid authorization token.\"}"),
                     SCROBBLE_AUTH);
    assert_int_equal(lb(0, 400, "{\"code\": 400, \"error\": \"bad\"}"), SCROBBLE_REJECTED);
    assert_int_equal(lb(0, 400, "{\"error\": 7}"), SCROBBLE_REJECTED);
    assert_int_equal(lb(0, 429, NULL), SCROBBLE_RETRY);
    assert_int_equal(lb(0, 503, "<html>"), SCROBBLE_RETRY);
    assert_int_equal(lb(-ETIMEDOUT, 0, NULL), SCROBBLE_RETRY);
    assert_int_equal(lb(0, 302, NULL), SCROBBLE_RETRY);
}

static void lb_payload(void **state)
{
    struct scrobble_track t = {
        .artist = "A", .title = "T", .album = "L", .duration = 31.5, .timestamp = 1700000000};
    json_t *j = scrobble_lb_payload(&t, 0);
    json_t *want = json_loads(
        "{\"listen_type\": \"single\", \"payload\": [{\"listened_at\": 1700000000, "
        "\"track_metadata\": {\"artist_name\": \"A\", \"track_name\": \"T\", \"release_name\": "
        "\"L\", \"additional_info\": {\"submission_client\": \"IMES\", \"duration_ms\": "
        "31500}}}]}",
        0, NULL);
    assert_true(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    t.album[0] = '\0';
    t.duration = 0;
    j = scrobble_lb_payload(&t, 1);
    want = json_loads("{\"listen_type\": \"playing_now\", \"payload\": [{\"track_metadata\": "
                      "{\"artist_name\": \"A\", \"track_name\": \"T\", \"additional_info\": "
                      "{\"submission_client\": \"IMES\"}}}]}",
                      0, NULL);
    assert_true(json_equal(j, want));
    json_decref(j);
    json_decref(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rule),       cmocka_unit_test(signature),
        cmocka_unit_test(form),       cmocka_unit_test(track_from_file),
        cmocka_unit_test(as_answers), cmocka_unit_test(lb_answers),
        cmocka_unit_test(lb_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
