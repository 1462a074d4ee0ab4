/*
 * Token and session checks (state/auth.h), tested the libuv way: one ev loop
 * runs a fake CouchDB (an httpd on an ephemeral port answering from tables)
 * and the real couch client and auth module against it; callbacks count and
 * record, the loop stops when the expected ones ran, then everything is
 * asserted. The caches run on a fake clock that the test moves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "couch/couch.h"
#include "state/auth.h"
#include "stream/httpd.h"

#define TOKEN  "0123456789abcdef0123456789abcdef"
#define TOKEN2 "fedcba9876543210fedcba9876543210"
/* "alice:wonder" and "mallory:guess" */
#define BASIC_GOOD "YWxpY2U6d29uZGVy"
#define BASIC_BAD  "bWFsbG9yeTpndWVzcw=="

struct fx {
    struct ev_loop *loop;
    struct httpd *h;
    struct couch *couch;
    struct auth *auth;
    ev_timer watchdog;
    int timed_out;
    double clock;

    /* the fake CouchDB */
    int requests;
    int fail;          /* answer 500 to everything */
    int outsider_role; /* alice has no IMES role */
    char last_path[256];
    char last_authz[512];
    char last_cookie[512];

    /* callbacks */
    int want, calls;
    int results[16];
    char names[16][64];
    int members[16];
};

static double fake_clock(void *arg)
{
    return ((struct fx *)arg)->clock;
}

static void copy_header(const struct http_request *req, const char *name, char *out, size_t n)
{
    const char *v = http_request_header(req, name);
    snprintf(out, n, "%s", v ? v : "");
}

static void fake_couch(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    struct fx *f = arg;
    char body[512];
    f->requests++;
    snprintf(f->last_path, sizeof(f->last_path), "%s", req->path);
    copy_header(req, "Authorization", f->last_authz, sizeof(f->last_authz));
    copy_header(req, "Cookie", f->last_cookie, sizeof(f->last_cookie));
    if (f->fail) {
        httpd_respond(c, 500, "application/json", "{\"error\":\"boom\"}", 16);
        return;
    }
    if (strcmp(req->path, "/priv/token:device:kitchen") == 0 ||
        strcmp(req->path, "/priv/token:delegate:phone") == 0) {
        snprintf(body, sizeof(body), "{\"_id\":\"x\",\"token\":\"%s\"}", TOKEN);
        httpd_respond(c, 200, "application/json", body, strlen(body));
        return;
    }
    if (strcmp(req->path, "/priv/token:device:notoken") == 0) {
        httpd_respond(c, 200, "application/json", "{\"_id\":\"x\"}", 10);
        return;
    }
    if (strcmp(req->path, "/_session") == 0) {
        const char *who = NULL;
        if (strcmp(f->last_authz, "Basic " BASIC_GOOD) == 0)
            who = "alice";
        else if (strcmp(f->last_cookie, "AuthSession=Ym9iOjEyMzQ6YWJj") == 0)
            who = "bob";
        else if (strncmp(f->last_authz, "Basic ", 6) == 0) {
            httpd_respond(c, 401, "application/json", "{\"error\":\"unauthorized\"}", 24);
            return;
        }
        if (who)
            snprintf(body, sizeof(body),
                     "{\"ok\":true,\"userCtx\":{\"name\":\"%s\",\"roles\":[\"%s\"]}}", who,
                     f->outsider_role ? "other" : "imes_user");
        else
            snprintf(body, sizeof(body), "{\"ok\":true,\"userCtx\":{\"name\":null,\"roles\":[]}}");
        httpd_respond(c, 200, "application/json", body, strlen(body));
        return;
    }
    httpd_respond(c, 404, "application/json", "{\"error\":\"not_found\"}", 21);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct fx *f = w->data;
    f->timed_out = 1;
    ev_break(loop, EVBREAK_ALL);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char url[128];
    f->loop = ev_loop_new(EVFLAG_AUTO);
    struct httpd_options ho = {.bind_host = "127.0.0.1"};
    f->h = httpd_new(f->loop, &ho);
    assert_non_null(f->h);
    httpd_add_route(f->h, NULL, "/", fake_couch, f);
    /* The admin credentials go with token reads, never with session checks. */
    snprintf(url, sizeof(url), "http://admin:secret@127.0.0.1:%d", httpd_port(f->h));
    f->couch = couch_new(f->loop, url);
    assert_non_null(f->couch);
    f->clock = 1000.0;
    struct auth_options ao = {.private_db = "priv", .clock = fake_clock, .clock_arg = f};
    f->auth = auth_new(f->loop, f->couch, &ao);
    assert_non_null(f->auth);
    ev_timer_init(&f->watchdog, watchdog_cb, 10., 0.);
    f->watchdog.data = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    auth_free(&f->auth);
    couch_free(&f->couch);
    httpd_free(&f->h);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

/* Runs the loop until `want` more callbacks ran. */
static void run_for(struct fx *f, int more)
{
    f->want = f->calls + more;
    ev_timer_set(&f->watchdog, 10., 0.);
    ev_timer_start(f->loop, &f->watchdog);
    ev_run(f->loop, 0);
    ev_timer_stop(f->loop, &f->watchdog);
    assert_false(f->timed_out);
    assert_int_equal(f->calls, f->want);
}

static void on_token(int result, void *arg)
{
    struct fx *f = arg;
    f->results[f->calls++ % 16] = result;
    if (f->calls >= f->want)
        ev_break(f->loop, EVBREAK_ONE);
}

static void on_session(int result, const struct auth_user *u, void *arg)
{
    struct fx *f = arg;
    int i = f->calls % 16;
    f->results[i] = result;
    snprintf(f->names[i], sizeof(f->names[i]), "%s", u ? u->name : "-");
    f->members[i] = u ? u->member : -1;
    if (u) {
        assert_true(json_is_array(u->roles));
    }
    f->calls++;
    if (f->calls >= f->want)
        ev_break(f->loop, EVBREAK_ONE);
}

static int check_token(struct fx *f, const char *kind, const char *name, const char *token)
{
    assert_non_null(auth_token_check(f->auth, kind, name, token, on_token, f));
    run_for(f, 1);
    return f->results[(f->calls - 1) % 16];
}

static void token_found_and_cached(void **state)
{
    struct fx *f = *state;
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN), 1);
    assert_int_equal(f->requests, 1);
    assert_string_equal(f->last_path, "/priv/token:device:kitchen");
    assert_string_equal(f->last_authz, "Basic YWRtaW46c2VjcmV0"); /* admin:secret */
    /* Cached: right and wrong tokens are answered without asking again. */
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN2), 0);
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN "00"), 0);
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN), 1);
    assert_int_equal(f->requests, 1);
    /* The delegate of the same name is another document. */
    assert_int_equal(check_token(f, "delegate", "kitchen", TOKEN), 0);
    assert_int_equal(f->requests, 2);
    /* 59 s later still cached; past 60 s asked again. */
    f->clock += 59;
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN), 1);
    assert_int_equal(f->requests, 2);
    f->clock += 2;
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN), 1);
    assert_int_equal(f->requests, 3);
}

static void token_absent_cached_briefly(void **state)
{
    struct fx *f = *state;
    assert_int_equal(check_token(f, "device", "garage", TOKEN), 0);
    assert_int_equal(f->requests, 1);
    f->clock += 4;
    assert_int_equal(check_token(f, "device", "garage", TOKEN), 0);
    assert_int_equal(f->requests, 1);
    f->clock += 1.5;
    assert_int_equal(check_token(f, "device", "garage", TOKEN), 0);
    assert_int_equal(f->requests, 2);
    /* A document without a token string is no token. */
    assert_int_equal(check_token(f, "device", "notoken", TOKEN), 0);
    assert_int_equal(f->requests, 3);
}

static void token_malformed_never_asks(void **state)
{
    struct fx *f = *state;
    assert_int_equal(check_token(f, "device", "kitchen", "short"), 0);
    assert_int_equal(check_token(f, "device", "kitchen", "0123456789ABCDEF0123456789ABCDEF"), 0);
    assert_int_equal(check_token(f, "device", "_design", TOKEN), 0);
    assert_int_equal(check_token(f, "device", "a/b", TOKEN), 0);
    assert_int_equal(check_token(f, "device", "", TOKEN), 0);
    assert_int_equal(check_token(f, "device", NULL, TOKEN), 0);
    assert_int_equal(check_token(f, "device", "kitchen", NULL), 0);
    assert_int_equal(check_token(f, "peer", "kitchen", TOKEN), 0);
    char longtok[AUTH_TOKEN_MAX + 2];
    memset(longtok, 'a', sizeof(longtok) - 1);
    longtok[sizeof(longtok) - 1] = '\0';
    assert_int_equal(check_token(f, "device", "kitchen", longtok), 0);
    assert_int_equal(f->requests, 0);
}

static void token_concurrent_share_one_request(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 5; i++)
        assert_non_null(
            auth_token_check(f->auth, "delegate", "phone", i == 2 ? TOKEN2 : TOKEN, on_token, f));
    run_for(f, 5);
    assert_int_equal(f->requests, 1);
    int ok = 0;
    for (int i = 0; i < 5; i++)
        ok += f->results[i];
    assert_int_equal(ok, 4);
    /* In the order they were asked. */
    assert_int_equal(f->results[2], 0);
}

static void token_errors_not_cached(void **state)
{
    struct fx *f = *state;
    f->fail = 1;
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN), -EAGAIN);
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN), -EAGAIN);
    assert_int_equal(f->requests, 2);
    f->fail = 0;
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN), 1);
    assert_int_equal(f->requests, 3);
    assert_int_equal(auth_cached_tokens(f->auth), 1);
}

static void token_cancel(void **state)
{
    struct fx *f = *state;
    struct auth_wait *a = auth_token_check(f->auth, "device", "kitchen", TOKEN, on_token, f);
    struct auth_wait *b = auth_token_check(f->auth, "device", "kitchen", TOKEN, on_token, f);
    struct auth_wait *c = auth_token_check(f->auth, "device", "kitchen", "junk", on_token, f);
    auth_cancel(&a);
    auth_cancel(&c);
    assert_null(a);
    assert_null(c);
    run_for(f, 1);
    (void)b;
    assert_int_equal(f->results[0], 1);
    /* Nothing else comes. */
    ev_timer_set(&f->watchdog, 0.3, 0.);
    f->want = 99;
    ev_timer_start(f->loop, &f->watchdog);
    ev_run(f->loop, 0);
    f->timed_out = 0;
    assert_int_equal(f->calls, 1);
    /* Cancelled while its lookup is in flight: the lookup completes (and
     * fills the cache), no callback. */
    f->clock += 100;
    struct auth_wait *d = auth_token_check(f->auth, "device", "kitchen", TOKEN, on_token, f);
    auth_cancel(&d);
    ev_timer_set(&f->watchdog, 0.3, 0.);
    ev_timer_start(f->loop, &f->watchdog);
    ev_run(f->loop, 0);
    f->timed_out = 0;
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->requests, 2);
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN), 1);
    assert_int_equal(f->requests, 2);
}

static void token_forget(void **state)
{
    struct fx *f = *state;
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN), 1);
    auth_forget_token(f->auth, "device", "kitchen");
    assert_int_equal(check_token(f, "device", "kitchen", TOKEN), 1);
    assert_int_equal(f->requests, 2);
}

static void cache_bounded(void **state)
{
    struct fx *f = *state;
    auth_free(&f->auth);
    struct auth_options ao = {
        .private_db = "priv", .clock = fake_clock, .clock_arg = f, .max_entries = 3};
    f->auth = auth_new(f->loop, f->couch, &ao);
    char name[16];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "dev%d", i);
        assert_int_equal(check_token(f, "device", name, TOKEN), 0);
        assert_true(auth_cached_tokens(f->auth) <= 3);
    }
    assert_int_equal(f->requests, 10);
}

static int check_session(struct fx *f, const char *authz, const char *cookie)
{
    assert_non_null(auth_session_check(f->auth, authz, cookie, on_session, f));
    run_for(f, 1);
    return f->results[(f->calls - 1) % 16];
}

static void session_basic(void **state)
{
    struct fx *f = *state;
    assert_int_equal(check_session(f, "Basic " BASIC_GOOD, NULL), 1);
    assert_string_equal(f->names[0], "alice");
    assert_int_equal(f->members[0], 1);
    assert_string_equal(f->last_path, "/_session");
    /* Forwarded as it came, without imesd's own credentials. */
    assert_string_equal(f->last_authz, "Basic " BASIC_GOOD);
    assert_string_equal(f->last_cookie, "");
    /* Cached 30 s; scheme case and extra spaces are the same credential. */
    assert_int_equal(check_session(f, "basic   " BASIC_GOOD, "AuthSession=zzz"), 1);
    assert_int_equal(f->requests, 1);
    f->clock += 31;
    assert_int_equal(check_session(f, "Basic " BASIC_GOOD, NULL), 1);
    assert_int_equal(f->requests, 2);
    /* Wrong credentials: 401 from CouchDB → not logged in, cached 5 s. */
    assert_int_equal(check_session(f, "Basic " BASIC_BAD, NULL), 0);
    assert_int_equal(check_session(f, "Basic " BASIC_BAD, NULL), 0);
    assert_int_equal(f->requests, 3);
    f->clock += 6;
    assert_int_equal(check_session(f, "Basic " BASIC_BAD, NULL), 0);
    assert_int_equal(f->requests, 4);
    assert_int_equal(auth_cached_sessions(f->auth), 2);
}

static void session_cookie(void **state)
{
    struct fx *f = *state;
    assert_int_equal(check_session(f, NULL, "theme=dark; AuthSession=Ym9iOjEyMzQ6YWJj; x=1"), 1);
    assert_string_equal(f->names[0], "bob");
    assert_string_equal(f->last_cookie, "AuthSession=Ym9iOjEyMzQ6YWJj");
    assert_string_equal(f->last_authz, "");
    assert_int_equal(check_session(f, NULL, "AuthSession=Ym9iOjEyMzQ6YWJj"), 1);
    assert_int_equal(f->requests, 1);
    /* An expired or made-up cookie: CouchDB answers name null. */
    assert_int_equal(check_session(f, NULL, "AuthSession=b2xkOjE6eA"), 0);
    assert_int_equal(f->requests, 2);
    /* Logged in, but not an IMES member. */
    f->outsider_role = 1;
    f->clock += 31;
    assert_int_equal(check_session(f, NULL, "AuthSession=Ym9iOjEyMzQ6YWJj"), 1);
    assert_int_equal(f->members[f->calls - 1], 0);
}

static void session_junk_never_asks(void **state)
{
    struct fx *f = *state;
    assert_int_equal(check_session(f, NULL, NULL), 0);
    assert_int_equal(check_session(f, "Bearer abc", NULL), 0);
    assert_int_equal(check_session(f, "Basic ", NULL), 0);
    assert_int_equal(check_session(f, "Basic a b", NULL), 0);
    assert_int_equal(check_session(f, "Basic ab=c", NULL), 0);
    assert_int_equal(check_session(f, NULL, "theme=dark"), 0);
    assert_int_equal(check_session(f, NULL, "AuthSession="), 0);
    assert_int_equal(check_session(f, NULL, "AuthSession=a\"b"), 0);
    assert_int_equal(check_session(f, NULL, "XAuthSession=abc"), 0);
    /* A Bearer header hides no cookie behind it: Authorization was given. */
    assert_int_equal(check_session(f, "Bearer abc", "AuthSession=Ym9iOjEyMzQ6YWJj"), 0);
    assert_int_equal(f->requests, 0);
}

static void session_errors(void **state)
{
    struct fx *f = *state;
    f->fail = 1;
    assert_int_equal(check_session(f, "Basic " BASIC_GOOD, NULL), -EAGAIN);
    f->fail = 0;
    assert_int_equal(check_session(f, "Basic " BASIC_GOOD, NULL), 1);
    assert_int_equal(f->requests, 2);
}

static void names(void **state)
{
    assert_true(auth_name_valid("kitchen"));
    assert_true(auth_name_valid("Living.Room-2_b@home"));
    assert_false(auth_name_valid(""));
    assert_false(auth_name_valid(NULL));
    assert_false(auth_name_valid("_users"));
    assert_false(auth_name_valid(".hidden"));
    assert_false(auth_name_valid("-x"));
    assert_false(auth_name_valid("a b"));
    assert_false(auth_name_valid("a/b"));
    assert_false(auth_name_valid("a%2f"));
    assert_false(auth_name_valid("k\xc3\xbc"
                                 "che"));
    char n[70];
    memset(n, 'a', 64);
    n[64] = '\0';
    assert_true(auth_name_valid(n));
    n[64] = 'a';
    n[65] = '\0';
    assert_false(auth_name_valid(n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test_setup_teardown(token_found_and_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(token_absent_cached_briefly, setup, teardown),
        cmocka_unit_test_setup_teardown(token_malformed_never_asks, setup, teardown),
        cmocka_unit_test_setup_teardown(token_concurrent_share_one_request, setup, teardown),
        cmocka_unit_test_setup_teardown(token_errors_not_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(token_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(token_forget, setup, teardown),
        cmocka_unit_test_setup_teardown(cache_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(session_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(session_cookie, setup, teardown),
        cmocka_unit_test_setup_teardown(session_junk_never_asks, setup, teardown),
        cmocka_unit_test_setup_teardown(session_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
