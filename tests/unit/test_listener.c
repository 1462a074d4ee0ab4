/*
 * HTTP device streams (stream/listener.h) and the delegate and /api/
 * endpoints (stream/api.h), tested the libuv way: one ev loop in the test's
 * thread runs httpd on an ephemeral port with both modules, a fake CouchDB
 * on the same httpd (token documents, /_session) behind the real couch
 * client and auth module, and a fake player defined here (the player.h
 * functions these modules call, nothing else, so state/player.c is never
 * linked in): it releases a numbered frame every 20 ms. Clients run in a
 * thread over real sockets and record what they got; the loop stops when
 * they are done; everything is asserted in the test's thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
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

#include "core/buf.h"
#include "core/metrics.h"
#include "couch/couch.h"
#include "state/auth.h"
#include "state/player.h"
#include "stream/api.h"
#include "stream/httpd.h"
#include "stream/listener.h"

#define TOKEN      "0123456789abcdef0123456789abcdef"
#define DTOKEN     "aaaabbbbccccddddaaaabbbbccccdddd"
#define BASIC_GOOD "YWxpY2U6d29uZGVy" /* alice:wonder */
/* Session cookies the fake CouchDB knows (anything else: not logged in). */
#define COOKIE_ALICE "YWxpY2U6NjU0MzIxOmFiYw"
#define COOKIE_BOB   "Ym9iOjY1NDMyMTphYmM"
#define FRAME_MS     20
#define KEPT         100 /* frames the fake ring keeps (2 s) */
#define BURST        50  /* frames a new listener gets (1 s) */

/* ---- the fake player ---- */

struct player {
    struct ev_loop *loop;
    ev_timer tick;
    uint64_t produced;
    size_t frame_len;
    struct player_attachment *atts;
    int attaches, detaches, open_presence, closed_presence, holds;
    double last_hold;
    char last_user[64], last_delegate[64];
    player_event_fn sub_fn;
    void *sub_arg;
    const char *title;
};

struct player_attachment {
    struct player *pl;
    struct player_attachment *next, *prev;
    int opus;
    uint64_t cursor;
    player_wake_fn wake;
    void *arg;
    uint8_t frame[65536];
};

static const uint8_t opus_head[19] = {'O',  'p',  'u',  's',  'H', 'e', 'a', 'd', 1, 2,
                                      0x38, 0x01, 0x80, 0xbb, 0,   0,   0,   0,   0};
static const uint8_t opus_tags[20] = {'O', 'p', 'u', 's', 'T', 'a', 'g', 's', 4, 0,
                                      0,   0,   't', 'e', 's', 't', 0,   0,   0, 0};

struct player_attachment *player_attach(struct player *pl, const char *device, const char *codec,
                                        double burst_s, player_wake_fn wake, void *arg)
{
    if (strcmp(device, "kitchen") != 0 && strcmp(device, "den") != 0 &&
        strcmp(device, "web-alice") != 0)
        return NULL;
    struct player_attachment *a = calloc(1, sizeof(*a));
    a->pl = pl;
    a->opus = strcmp(codec, "opus") == 0;
    a->wake = wake;
    a->arg = arg;
    assert_true(burst_s > 0.9 && burst_s < 1.1);
    a->cursor = pl->produced > BURST ? pl->produced - BURST : 0;
    a->next = pl->atts;
    if (pl->atts)
        pl->atts->prev = a;
    pl->atts = a;
    pl->attaches++;
    return a;
}

void player_detach(struct player_attachment **ap)
{
    struct player_attachment *a = *ap;
    struct player *pl = a->pl;
    if (a->prev)
        a->prev->next = a->next;
    else
        pl->atts = a->next;
    if (a->next)
        a->next->prev = a->prev;
    pl->detaches++;
    free(a);
    *ap = NULL;
}

/* Frame n: its number (4 bytes, big-endian), then bytes (n + i) & 0xff. */
void player_set_batch(struct player_attachment *a, double seconds)
{
    (void)a;
    (void)seconds;
}

int player_read(struct player_attachment *a, struct player_frame *out)
{
    struct player *pl = a->pl;
    if (a->cursor + KEPT < pl->produced)
        return -1;
    if (a->cursor >= pl->produced)
        return 0;
    uint64_t n = a->cursor++;
    a->frame[0] = (uint8_t)(n >> 24);
    a->frame[1] = (uint8_t)(n >> 16);
    a->frame[2] = (uint8_t)(n >> 8);
    a->frame[3] = (uint8_t)n;
    for (size_t i = 4; i < pl->frame_len; i++)
        a->frame[i] = (uint8_t)(n + i);
    out->data = a->frame;
    out->len = pl->frame_len;
    out->samples = 960;
    out->silence = 0;
    return 1;
}

int player_header(struct player_attachment *a, int index, const uint8_t **data, size_t *len)
{
    if (!a->opus || index > 1)
        return -ENOENT;
    *data = index == 0 ? opus_head : opus_tags;
    *len = index == 0 ? sizeof(opus_head) : sizeof(opus_tags);
    return 0;
}

const char *player_title(struct player_attachment *a)
{
    return a->pl->title;
}

void player_presence_open(struct player *pl, const char *user)
{
    pl->open_presence++;
    snprintf(pl->last_user, sizeof(pl->last_user), "%s", user);
}

void player_presence_close(struct player *pl, const char *user)
{
    pl->closed_presence++;
    assert_string_equal(user, pl->last_user);
}

int player_delegate_hold(struct player *pl, const char *delegate, double seconds)
{
    if (strcmp(delegate, "phone") != 0)
        return -ENOENT;
    pl->holds++;
    pl->last_hold = seconds;
    snprintf(pl->last_delegate, sizeof(pl->last_delegate), "%s", delegate);
    return 0;
}

int player_subscribe(struct player *pl, player_event_fn fn, void *arg)
{
    pl->sub_fn = fn;
    pl->sub_arg = arg;
    return 0;
}

void player_unsubscribe(struct player *pl, player_event_fn fn, void *arg)
{
    if (pl->sub_fn == fn && pl->sub_arg == arg)
        pl->sub_fn = NULL;
}

json_t *player_channel_audience(struct player *pl, const char *channel)
{
    return json_array(); /* nobody scrobbles here */
}

json_t *player_snapshot(struct player *pl)
{
    return json_pack("{s:s,s:{}}", "type", "snapshot", "channels");
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct player *pl = w->data;
    pl->produced++;
    for (struct player_attachment *a = pl->atts, *next; a; a = next) {
        next = a->next;
        a->wake(a->arg);
    }
    if (pl->sub_fn && pl->produced % 10 == 0) {
        json_t *ev = json_pack("{s:s,s:I}", "type", "channel", "tick", (json_int_t)pl->produced);
        pl->sub_fn(ev, pl->sub_arg);
        json_decref(ev);
    }
}

/* ---- fixture ---- */

struct fx {
    struct ev_loop *loop;
    struct httpd *h;
    struct couch *couch;
    struct auth *auth;
    struct listener *lsn;
    struct api *api;
    struct player pl;
    int port;
    ev_async done;
    ev_timer watchdog;
    int timed_out;

    /* what clients saw */
    char *got[3];
    size_t got_len[3];
    int flag;
    double t_drop;
};

static void fake_couch(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    char body[256];
    if (strcmp(req->path, "/priv/token:device:kitchen") == 0 ||
        strcmp(req->path, "/priv/token:device:den") == 0 ||
        strcmp(req->path, "/priv/token:device:gone") == 0) {
        snprintf(body, sizeof(body), "{\"token\":\"%s\"}", TOKEN);
        httpd_respond(c, 200, "application/json", body, strlen(body));
    } else if (strcmp(req->path, "/priv/token:delegate:phone") == 0 ||
               strcmp(req->path, "/priv/token:delegate:nodoc") == 0) {
        snprintf(body, sizeof(body), "{\"token\":\"%s\"}", DTOKEN);
        httpd_respond(c, 200, "application/json", body, strlen(body));
    } else if (strcmp(req->path, "/_session") == 0) {
        const char *a = http_request_header(req, "Authorization");
        const char *k = http_request_header(req, "Cookie");
        if (!a && k && strcmp(k, "AuthSession=" COOKIE_BOB) == 0)
            snprintf(body, sizeof(body),
                     "{\"ok\":true,\"userCtx\":{\"name\":\"bob\",\"roles\":[\"imes_user\"]}}");
        else if ((a && strcmp(a, "Basic " BASIC_GOOD) == 0) ||
                 (!a && k && strcmp(k, "AuthSession=" COOKIE_ALICE) == 0))
            snprintf(body, sizeof(body),
                     "{\"ok\":true,\"userCtx\":{\"name\":\"alice\",\"roles\":[\"imes_user\"]}}");
        else if (a && strcmp(a, "Basic b3V0OnNpZGVy") == 0) /* out:sider */
            snprintf(body, sizeof(body),
                     "{\"ok\":true,\"userCtx\":{\"name\":\"out\",\"roles\":[]}}");
        else
            snprintf(body, sizeof(body), "{\"ok\":true,\"userCtx\":{\"name\":null,\"roles\":[]}}");
        httpd_respond(c, 200, "application/json", body, strlen(body));
    } else {
        httpd_respond(c, 404, "application/json", "{\"error\":\"not_found\"}", 21);
    }
}

static void done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct fx *f = w->data;
    f->timed_out = 1;
    ev_break(loop, EVBREAK_ALL);
}

static int setup_with(void **state, size_t max_output, size_t frame_len)
{
    struct fx *f = calloc(1, sizeof(*f));
    char url[128];
    f->loop = ev_loop_new(EVFLAG_AUTO);
    struct httpd_options ho = {.bind_host = "127.0.0.1", .max_output = max_output};
    f->h = httpd_new(f->loop, &ho);
    assert_non_null(f->h);
    f->port = httpd_port(f->h);
    httpd_add_route(f->h, NULL, "/priv/", fake_couch, f);
    httpd_add_route(f->h, NULL, "/_session", fake_couch, f);
    snprintf(url, sizeof(url), "http://admin:secret@127.0.0.1:%d", f->port);
    f->couch = couch_new(f->loop, url);
    struct auth_options ao = {.private_db = "priv"};
    f->auth = auth_new(f->loop, f->couch, &ao);
    f->pl.loop = f->loop;
    f->pl.frame_len = frame_len;
    f->pl.title = "The Sine Waves - Concert A";
    f->pl.produced = 200; /* the ring is full: a new listener gets its burst */
    ev_timer_init(&f->pl.tick, tick_cb, FRAME_MS / 1000.0, FRAME_MS / 1000.0);
    f->pl.tick.data = &f->pl;
    ev_timer_start(f->loop, &f->pl.tick);
    f->lsn = listener_new(f->loop, f->h, &f->pl, f->auth);
    f->api = api_new(f->loop, f->h, &f->pl, f->auth);
    assert_non_null(f->lsn);
    assert_non_null(f->api);
    ev_async_init(&f->done, done_cb);
    ev_async_start(f->loop, &f->done);
    ev_timer_init(&f->watchdog, watchdog_cb, 30., 0.);
    f->watchdog.data = f;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 0, 400);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    /* The documented order: httpd first (closing every stream, which
     * detaches), then the modules, then the player. */
    httpd_free(&f->h);
    api_free(&f->api);
    listener_free(&f->lsn);
    auth_free(&f->auth);
    couch_free(&f->couch);
    assert_null(f->pl.atts);
    assert_int_equal(f->pl.attaches, f->pl.detaches);
    assert_int_equal(f->pl.open_presence, f->pl.closed_presence);
    assert_null(f->pl.sub_fn);
    ev_timer_stop(f->loop, &f->pl.tick);
    ev_async_stop(f->loop, &f->done);
    ev_loop_destroy(f->loop);
    for (int i = 0; i < 3; i++)
        free(f->got[i]);
    free(f);
    return 0;
}

/* ---- clients (in their own thread) ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cl_connect(int port, int rcvbuf)
{
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &s.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (connect(fd, (struct sockaddr *)&s, sizeof(s)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads until want bytes, the peer closes, or timeout_s; returns the count. */
static size_t cl_read(int fd, char *buf, size_t cap, size_t want, double timeout_s)
{
    size_t len = 0;
    double end = now_s() + timeout_s;
    while (len < want && len < cap) {
        double left = end - now_s();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    return len;
}

static char *request(struct fx *f, const char *req, size_t want, double timeout_s, size_t *len,
                     int rcvbuf)
{
    int fd = cl_connect(f->port, rcvbuf);
    if (fd < 0)
        return NULL;
    send(fd, req, strlen(req), MSG_NOSIGNAL);
    size_t cap = want + 1;
    char *buf = malloc(cap + 1);
    *len = cl_read(fd, buf, cap, want, timeout_s);
    buf[*len] = '\0';
    close(fd);
    return buf;
}

struct job {
    struct fx *f;
    void (*fn)(struct fx *f);
};

static void *job_main(void *arg)
{
    struct job *j = arg;
    j->fn(j->f);
    ev_async_send(j->f->loop, &j->f->done);
    return NULL;
}

static void run_loop_for(struct fx *f, double s)
{
    ev_timer t;
    ev_timer_init(&t, watchdog_cb, s, 0.);
    t.data = f;
    ev_timer_start(f->loop, &t);
    ev_run(f->loop, 0);
    ev_timer_stop(f->loop, &t);
    f->timed_out = 0;
}

static void run_client(struct fx *f, void (*fn)(struct fx *f))
{
    pthread_t th;
    struct job j = {f, fn};
    ev_timer_set(&f->watchdog, 30., 0.);
    ev_timer_start(f->loop, &f->watchdog);
    pthread_create(&th, NULL, job_main, &j);
    ev_run(f->loop, 0);
    ev_timer_stop(f->loop, &f->watchdog);
    pthread_join(th, NULL);
    assert_false(f->timed_out);
    /* Let close callbacks run. */
    run_loop_for(f, 0.2);
}

/* The body after the head, and the head NUL-terminated in place. */
static char *split_head(char *resp, size_t len, size_t *body_len)
{
    char *e = strstr(resp, "\r\n\r\n");
    if (!e)
        return NULL;
    e[2] = '\0'; /* the head keeps its last CRLF */
    *body_len = len - (size_t)(e + 4 - resp);
    return e + 4;
}

static char *metrics_text(void)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    metrics_render(&b);
    return buf_steal(&b);
}

/* ---- URL parsing ---- */

static void parse_device_urls(void **state)
{
    struct listener_url u;
    assert_int_equal(listener_parse_path("/device/kitchen/" TOKEN "/stream.mp3", &u), 0);
    assert_string_equal(u.name, "kitchen");
    assert_string_equal(u.token, TOKEN);
    assert_int_equal(u.codec, LISTENER_MP3);
    assert_int_equal(listener_parse_path("/device/a.b@c/" TOKEN "/stream.opus", &u), 0);
    assert_int_equal(u.codec, LISTENER_OPUS);
    const char *bad[] = {
        "/device/kitchen/" TOKEN "/stream.ogg",
        "/device/kitchen/" TOKEN "/stream.mp3/",
        "/device/kitchen/" TOKEN "/stream.mp3/x",
        "/device/kitchen/" TOKEN,
        "/device/kitchen/" TOKEN "/",
        "/device/kitchen/stream.mp3",
        "/device//" TOKEN "/stream.mp3",
        "/device/_x/" TOKEN "/stream.mp3",
        "/device/a b/" TOKEN "/stream.mp3",
        "/device/kitchen/0123/stream.mp3",
        "/device/kitchen/0123456789ABCDEF0123456789ABCDEF/stream.mp3",
        "/device/kitchen//stream.mp3",
        "/device/",
        "/devices/kitchen/" TOKEN "/stream.mp3",
        "",
        NULL,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(listener_parse_path(bad[i], &u), -ENOENT);
        assert_string_equal(u.token, ""); /* nothing of a token kept */
    }
}

static void parse_listen_urls(void **state)
{
    enum listener_codec c = LISTENER_OPUS;
    assert_int_equal(listener_parse_listen_path("/listen/stream.mp3", &c), 0);
    assert_int_equal(c, LISTENER_MP3);
    assert_int_equal(listener_parse_listen_path("/listen/stream.opus", &c), 0);
    assert_int_equal(c, LISTENER_OPUS);
    const char *bad[] = {
        "/listen/stream.ogg",  "/listen/stream.mp3/", "/listen/", "/listen", "/listen/x/stream.mp3",
        "/listen//stream.mp3", "/LISTEN/stream.mp3",  "",         NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(listener_parse_listen_path(bad[i], &c), -ENOENT);

    char name[AUTH_NAME_MAX + 1];
    assert_int_equal(listener_personal_device("alice", name, sizeof(name)), 0);
    assert_string_equal(name, "web-alice");
    assert_int_equal(listener_personal_device("a.b@c", name, sizeof(name)), 0);
    assert_string_equal(name, "web-a.b@c");
    char user[65];
    memset(user, 'u', 60);
    user[60] = '\0';
    assert_int_equal(listener_personal_device(user, name, sizeof(name)), 0);
    assert_int_equal(strlen(name), 64);
    user[60] = 'u';
    user[61] = '\0';
    assert_int_equal(listener_personal_device(user, name, sizeof(name)), -ENAMETOOLONG);
    assert_string_equal(name, "");
    assert_int_equal(listener_personal_device("alice", name, 8), -ENAMETOOLONG);
    assert_int_equal(listener_personal_device("", name, sizeof(name)), -EINVAL);
    assert_int_equal(listener_personal_device("a/b", name, sizeof(name)), -EINVAL);
    assert_int_equal(listener_personal_device(NULL, name, sizeof(name)), -EINVAL);
}

static void parse_delegate_urls(void **state)
{
    struct api_delegate_url u;
    assert_int_equal(api_parse_delegate("/delegate/phone/" DTOKEN "/pause", &u), 0);
    assert_int_equal(u.action, API_PAUSE);
    assert_string_equal(u.name, "phone");
    assert_int_equal(api_parse_delegate("/delegate/phone/" DTOKEN "/unpause", &u), 0);
    assert_int_equal(u.action, API_UNPAUSE);
    assert_int_equal(api_parse_delegate("/delegate/phone/" DTOKEN "/pause/90", &u), 0);
    assert_int_equal(u.action, API_PAUSE_FOR);
    assert_string_equal(u.seconds, "90");
    assert_int_equal(api_parse_delegate("/delegate/phone/" DTOKEN "/pause/", &u), 0);
    assert_string_equal(u.seconds, "");
    assert_int_equal(api_parse_delegate("/delegate/phone/" DTOKEN "/pause/5/x", &u), 0);
    assert_string_equal(u.seconds, "5/x");
    assert_int_equal(api_parse_delegate("/delegate/phone/" DTOKEN "/unpause/", &u), -ENOENT);
    assert_int_equal(api_parse_delegate("/delegate/phone/" DTOKEN "/stop", &u), -ENOENT);
    assert_int_equal(api_parse_delegate("/delegate/phone/" DTOKEN, &u), -ENOENT);
    assert_int_equal(api_parse_delegate("/delegate/phone/xyz/pause", &u), -ENOENT);
    assert_int_equal(api_parse_delegate("/delegate/.x/" DTOKEN "/pause", &u), -ENOENT);
    assert_int_equal(api_parse_delegate("/device/phone/" DTOKEN "/pause", &u), -ENOENT);

    int s = 0;
    assert_int_equal(api_parse_seconds("1", &s), 0);
    assert_int_equal(s, 1);
    assert_int_equal(api_parse_seconds("3600", &s), 0);
    assert_int_equal(s, 3600);
    assert_int_equal(api_parse_seconds("0600", &s), 0);
    assert_int_equal(s, 600);
    const char *bad[] = {"0",  "3601",        "",    "-5", "+5", "5s", "1.5",
                         " 5", "99999999999", "abc", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(api_parse_seconds(bad[i], &s), -EINVAL);
}

static void sse_format(void **state)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(api_sse_format(&b, "state", "{\"a\":1}"), 0);
    assert_string_equal(b.data, "event: state\ndata: {\"a\":1}\n\n");
    buf_reset(&b);
    assert_int_equal(api_sse_format(&b, NULL, "one\ntwo\r\nthree\rfour"), 0);
    assert_string_equal(b.data, "data: one\ndata: two\ndata: three\ndata: four\n\n");
    buf_reset(&b);
    assert_int_equal(api_sse_format(&b, "x", ""), 0);
    assert_string_equal(b.data, "event: x\ndata: \n\n");
    buf_reset(&b);
    json_t *j = json_pack("{s:s}", "title", "line\nbreak");
    assert_int_equal(api_sse_json(&b, "snapshot", j), 0);
    json_decref(j);
    assert_string_equal(b.data, "event: snapshot\ndata: {\"title\":\"line\\nbreak\"}\n\n");
    buf_free(&b);
    /* Too big: -E2BIG and the buffer as it was. */
    buf_init(&b, 16);
    buf_puts(&b, "keep");
    assert_int_equal(api_sse_format(&b, "state", "0123456789abcdef"), -E2BIG);
    assert_string_equal(b.data, "keep");
    buf_free(&b);
}

/* ---- streams ---- */

/* Checks that body holds whole fake frames numbered from some n on, without
 * a gap; returns how many. */
static int check_frames(const uint8_t *p, size_t len, size_t frame_len, uint32_t *first)
{
    int n = 0;
    uint32_t expect = 0;
    for (size_t off = 0; off + frame_len <= len; off += frame_len, n++) {
        uint32_t seq = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
                       (uint32_t)p[off + 2] << 8 | p[off + 3];
        if (n == 0)
            *first = expect = seq;
        if (seq != expect)
            return -1;
        for (size_t i = 4; i < frame_len; i++)
            if (p[off + i] != (uint8_t)(seq + i))
                return -1;
        expect++;
    }
    return n;
}

static void client_mp3(struct fx *f)
{
    f->got[0] = request(f, "GET /device/kitchen/" TOKEN "/stream.mp3 HTTP/1.1\r\nHost: x\r\n\r\n",
                        400 * 80 + 4096, 3.0, &f->got_len[0], 0);
}

static void mp3_stream(void **state)
{
    struct fx *f = *state;
    run_client(f, client_mp3);
    size_t blen = 0;
    char *body = split_head(f->got[0], f->got_len[0], &blen);
    assert_non_null(body);
    const char *head = f->got[0];
    assert_non_null(strstr(head, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strcasestr(head, "\r\nContent-Type: audio/mpeg\r\n"));
    assert_non_null(strcasestr(head, "\r\nCache-Control: no-cache"));
    assert_non_null(strcasestr(head, "\r\nicy-name: kitchen\r\n"));
    assert_null(strcasestr(head, "Content-Length"));
    assert_null(strcasestr(head, "icy-metaint"));
    uint32_t first = 0;
    int n = check_frames((const uint8_t *)body, blen, 400, &first);
    /* The burst (1 s = 50 frames) at once, then live frames. */
    assert_true(n >= 60);
    assert_true(first >= 200 - BURST && first <= 200 - BURST + 10);
    assert_int_equal(f->pl.attaches, 1);
    assert_int_equal(f->pl.detaches, 1);
    assert_int_equal(listener_count(f->lsn), 0);
    char *m = metrics_text();
    assert_non_null(strstr(m, "imes_stream_connects_total{codec=\"mp3\"} 1\n"));
    assert_non_null(strstr(m, "imes_stream_listeners{codec=\"mp3\"} 0\n"));
    assert_non_null(strstr(m, "imes_stream_bytes_sent_total{codec=\"mp3\"} "));
    free(m);
}

static void client_icy(struct fx *f)
{
    f->got[0] = request(f,
                        "GET /device/kitchen/" TOKEN "/stream.mp3 HTTP/1.1\r\nHost: x\r\n"
                        "Icy-MetaData: 1\r\n\r\n",
                        40000, 5.0, &f->got_len[0], 0);
}

static void mp3_icy(void **state)
{
    struct fx *f = *state;
    run_client(f, client_icy);
    size_t blen = 0;
    char *body = split_head(f->got[0], f->got_len[0], &blen);
    assert_non_null(body);
    assert_non_null(strcasestr(f->got[0], "\r\nicy-metaint: 16000\r\n"));
    assert_true(blen > 16000 + 1 + 48 + 16000 + 1);
    /* 16000 bytes of audio, the title block, 16000 more, a zero byte. */
    const uint8_t *p = (const uint8_t *)body;
    size_t n = p[16000] * 16u;
    assert_true(n > 0);
    assert_memory_equal(p + 16001, "StreamTitle='The Sine Waves - Concert A';", 41);
    assert_int_equal(p[16001 + n + 16000], 0);
    /* The audio without the metadata is the frames, gapless. */
    uint8_t *audio = malloc(32000);
    memcpy(audio, p, 16000);
    memcpy(audio + 16000, p + 16001 + n, 16000);
    uint32_t first;
    assert_int_equal(check_frames(audio, 32000, 400, &first), 80);
    free(audio);
}

static void client_opus(struct fx *f)
{
    f->got[0] = request(f,
                        "GET /device/den/" TOKEN "/stream.opus HTTP/1.1\r\nHost: x\r\n"
                        "Icy-MetaData: 1\r\n\r\n",
                        20000, 3.0, &f->got_len[0], 0);
}

static void opus_stream(void **state)
{
    struct fx *f = *state;
    run_client(f, client_opus);
    size_t blen = 0;
    char *body = split_head(f->got[0], f->got_len[0], &blen);
    assert_non_null(body);
    assert_non_null(strcasestr(f->got[0], "\r\nContent-Type: audio/ogg\r\n"));
    assert_null(strcasestr(f->got[0], "icy-metaint")); /* ICY is for MP3 only */
    const uint8_t *p = (const uint8_t *)body;
    /* Page 0: BOS, granule 0, OpusHead alone. */
    assert_memory_equal(p, "OggS", 4);
    assert_int_equal(p[5], 0x02);
    uint32_t serial = p[14] | p[15] << 8 | p[16] << 16 | (uint32_t)p[17] << 24;
    size_t segs = p[26], plen = 0;
    for (size_t i = 0; i < segs; i++)
        plen += p[27 + i];
    assert_int_equal(plen, sizeof(opus_head));
    assert_memory_equal(p + 27 + segs, "OpusHead", 8);
    /* Walk the pages: OpusTags next, then one 400-byte packet per page with
     * the granule going up by 960. */
    size_t off = 27 + segs + plen;
    int pages = 1;
    int64_t granule_prev = 0;
    while (off + 27 <= blen) {
        assert_memory_equal(p + off, "OggS", 4);
        uint32_t s2 =
            p[off + 14] | p[off + 15] << 8 | p[off + 16] << 16 | (uint32_t)p[off + 17] << 24;
        assert_int_equal(s2, serial);
        int64_t g = 0;
        for (int i = 7; i >= 0; i--)
            g = g << 8 | p[off + 6 + (size_t)i];
        segs = p[off + 26];
        plen = 0;
        for (size_t i = 0; i < segs; i++)
            plen += p[off + 27 + i];
        if (off + 27 + segs + plen > blen)
            break;
        if (pages == 1) {
            assert_memory_equal(p + off + 27 + segs, "OpusTags", 8);
            assert_int_equal(g, 0);
        } else {
            assert_int_equal(plen, 400);
            assert_int_equal(g, granule_prev + 960);
        }
        granule_prev = g;
        off += 27 + segs + plen;
        pages++;
    }
    assert_true(pages > 40);
}

static void client_not_found(struct fx *f)
{
    /* Wrong token, a device without a token, a malformed URL, and a device
     * whose token is right but that the player does not know. */
    f->got[0] = request(f,
                        "GET /device/kitchen/fedcba9876543210fedcba9876543210/stream.mp3 "
                        "HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        4096, 3.0, &f->got_len[0], 0);
    f->got[1] = request(f,
                        "GET /device/garage/" TOKEN "/stream.mp3 HTTP/1.1\r\nHost: x\r\n"
                        "Connection: close\r\n\r\n",
                        4096, 3.0, &f->got_len[1], 0);
    f->got[2] = request(f,
                        "GET /device/kitchen/" TOKEN "/stream.wav HTTP/1.1\r\nHost: x\r\n"
                        "Connection: close\r\n\r\n",
                        4096, 3.0, &f->got_len[2], 0);
    size_t len;
    char *r = request(f,
                      "GET /device/gone/" TOKEN "/stream.mp3 HTTP/1.1\r\nHost: x\r\n"
                      "Connection: close\r\n\r\n",
                      4096, 3.0, &len, 0);
    f->flag = strstr(r, "HTTP/1.1 404 ") == r;
    free(r);
}

static void client_listen(struct fx *f)
{
    f->got[0] = request(f,
                        "GET /listen/stream.mp3 HTTP/1.1\r\nHost: x\r\n"
                        "Cookie: theme=dark; AuthSession=" COOKIE_ALICE "\r\n\r\n",
                        400 * 80 + 4096, 3.0, &f->got_len[0], 0);
}

/* The session cookie is the key: the user's own personal device plays. */
static void listen_stream(void **state)
{
    struct fx *f = *state;
    run_client(f, client_listen);
    size_t blen = 0;
    char *body = split_head(f->got[0], f->got_len[0], &blen);
    assert_non_null(body);
    const char *head = f->got[0];
    assert_non_null(strstr(head, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strcasestr(head, "\r\nContent-Type: audio/mpeg\r\n"));
    assert_non_null(strcasestr(head, "\r\nicy-name: web-alice\r\n"));
    uint32_t first = 0;
    assert_true(check_frames((const uint8_t *)body, blen, 400, &first) >= 60);
    assert_int_equal(f->pl.attaches, 1);
    assert_int_equal(f->pl.detaches, 1);
}

static void client_listen_refused(struct fx *f)
{
    /* no credentials; a made-up cookie; a logged-in non-member */
    f->got[0] = request(f,
                        "GET /listen/stream.mp3 HTTP/1.1\r\nHost: x\r\n"
                        "Connection: close\r\n\r\n",
                        4096, 3.0, &f->got_len[0], 0);
    f->got[1] = request(f,
                        "GET /listen/stream.opus HTTP/1.1\r\nHost: x\r\n"
                        "Cookie: AuthSession=bm90OmEgY29va2ll\r\nConnection: close\r\n\r\n",
                        4096, 3.0, &f->got_len[1], 0);
    f->got[2] = request(f,
                        "GET /listen/stream.mp3 HTTP/1.1\r\nHost: x\r\n"
                        "Authorization: Basic b3V0OnNpZGVy\r\nConnection: close\r\n\r\n",
                        4096, 3.0, &f->got_len[2], 0);
    /* bob is a member without a personal device; and a bad path */
    size_t len;
    char *r = request(f,
                      "GET /listen/stream.mp3 HTTP/1.1\r\nHost: x\r\n"
                      "Cookie: AuthSession=" COOKIE_BOB "\r\nConnection: close\r\n\r\n",
                      4096, 3.0, &len, 0);
    f->flag = strstr(r, "HTTP/1.1 404 ") == r && strstr(r, "no personal device web-bob") &&
              strstr(r, "Listen here");
    free(r);
    r = request(f,
                "GET /listen/stream.wav HTTP/1.1\r\nHost: x\r\n"
                "Cookie: AuthSession=" COOKIE_ALICE "\r\nConnection: close\r\n\r\n",
                4096, 3.0, &len, 0);
    f->flag = f->flag && strstr(r, "HTTP/1.1 404 ") == r && strstr(r, "/listen/stream.mp3");
    free(r);
}

static void listen_refused(void **state)
{
    struct fx *f = *state;
    run_client(f, client_listen_refused);
    for (int i = 0; i < 2; i++) {
        assert_non_null(strstr(f->got[i], "HTTP/1.1 401 Unauthorized\r\n"));
        assert_non_null(strstr(f->got[i], "Log in to IMES to listen here"));
        assert_null(strcasestr(f->got[i], "WWW-Authenticate"));
    }
    assert_non_null(strstr(f->got[2], "HTTP/1.1 403 Forbidden\r\n"));
    assert_non_null(strstr(f->got[2], "not an IMES member"));
    assert_true(f->flag);
    assert_int_equal(f->pl.attaches, 0);
    assert_int_equal(listener_count(f->lsn), 0);
}

/* The Date header aside, the three answers are byte for byte the same. */
static void strip_date(char *s)
{
    char *d = strstr(s, "\r\nDate: ");
    if (d) {
        char *e = strstr(d + 2, "\r\n");
        memmove(d, e, strlen(e) + 1);
    }
}

static void not_found_is_one_answer(void **state)
{
    struct fx *f = *state;
    run_client(f, client_not_found);
    for (int i = 0; i < 3; i++) {
        assert_non_null(f->got[i]);
        strip_date(f->got[i]);
    }
    assert_non_null(strstr(f->got[0], "HTTP/1.1 404 Not Found\r\n"));
    assert_string_equal(f->got[0], f->got[1]);
    assert_string_equal(f->got[0], f->got[2]);
    assert_true(f->flag);
    assert_int_equal(f->pl.attaches, 0);
}

static void client_head(struct fx *f)
{
    f->got[0] = request(f, "HEAD /device/kitchen/" TOKEN "/stream.mp3 HTTP/1.1\r\nHost: x\r\n\r\n",
                        4096, 3.0, &f->got_len[0], 0);
}

static void head_does_not_attach(void **state)
{
    struct fx *f = *state;
    run_client(f, client_head);
    assert_non_null(strstr(f->got[0], "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strcasestr(f->got[0], "Content-Type: audio/mpeg"));
    size_t blen = 0;
    assert_non_null(split_head(f->got[0], f->got_len[0], &blen));
    assert_int_equal(blen, 0);
    assert_int_equal(f->pl.attaches, 0);
}

/* A: a small receive buffer and never reads. B: reads all the time. After
 * 5 s, B's last second is counted and A is drained: a dropped A ends (EOF
 * or reset) once its buffered bytes are read, a live one would not. */
static void client_slow_and_fast(struct fx *f)
{
    static const char req[] =
        "GET /device/kitchen/" TOKEN "/stream.mp3 HTTP/1.1\r\nHost: x\r\n\r\n";
    int a = cl_connect(f->port, 4096);
    int b = cl_connect(f->port, 0);
    send(a, req, sizeof(req) - 1, MSG_NOSIGNAL);
    send(b, req, sizeof(req) - 1, MSG_NOSIGNAL);
    char *buf = malloc(1 << 20);
    size_t total = 0, last = 0;
    double start = now_s();
    while (now_s() - start < 5.0) {
        size_t n = cl_read(b, buf, 1 << 20, 1 << 20, 0.1);
        total += n;
        if (now_s() - start > 4.0)
            last += n;
    }
    f->got_len[0] = total;
    f->got_len[1] = last;
    /* Drain A. */
    double t = now_s();
    f->flag = 0;
    while (now_s() - t < 5.0) {
        struct pollfd p = {.fd = a, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(a, buf, 1 << 20, 0);
        if (n <= 0) {
            f->flag = 1;
            break;
        }
        f->got_len[2] += (size_t)n;
    }
    free(buf);
    close(a);
    close(b);
}

static int setup_big_frames(void **state)
{
    /* 32 kB every 20 ms (1.6 MB/s): A's socket buffers, which the kernel
     * grows to some MB, fill within a few seconds. */
    return setup_with(state, 0, 32000);
}

static void slow_reader_dropped_alone(void **state)
{
    struct fx *f = *state;
    listener_set_limits(f->lsn, 0.05, 1.0);
    run_client(f, client_slow_and_fast);
    assert_true(f->flag); /* A ended */
    assert_true(f->got_len[2] > 0);
    assert_true(f->got_len[1] > 32000 * 25); /* B's last second: live */
    char *m = metrics_text();
    assert_non_null(strstr(m, "imes_stream_drops_total{reason=\"stalled\"} 1\n"));
    assert_non_null(strstr(m, "imes_stream_drops_total{reason=\"behind\"} 0\n"));
    free(m);
    assert_int_equal(f->pl.attaches, 2);
    assert_int_equal(f->pl.detaches, 2);
}

static int setup_small_queue(void **state)
{
    /* A queue smaller than one pump round: the first write overflows. */
    return setup_with(state, 2048, 400);
}

static void client_overflow(struct fx *f)
{
    f->got[0] = request(f, "GET /device/kitchen/" TOKEN "/stream.mp3 HTTP/1.1\r\nHost: x\r\n\r\n",
                        1 << 20, 2.0, &f->got_len[0], 0);
}

static void overflow_dropped(void **state)
{
    struct fx *f = *state;
    run_client(f, client_overflow);
    char *m = metrics_text();
    assert_non_null(strstr(m, "imes_stream_drops_total{reason=\"overflow\"} 1\n"));
    free(m);
    assert_int_equal(f->pl.detaches, 1);
}

static void client_behind(struct fx *f)
{
    static const char req[] =
        "GET /device/kitchen/" TOKEN "/stream.mp3 HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = cl_connect(f->port, 0);
    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
    char *buf = malloc(1 << 20);
    f->got_len[0] = cl_read(fd, buf, 1 << 20, 1 << 20, 3.0);
    free(buf);
    close(fd);
}

static void behind_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct player *pl = w->data;
    pl->produced += 1000; /* the ring moved on without this listener */
}

static void behind_dropped(void **state)
{
    struct fx *f = *state;
    ev_timer t;
    ev_timer_init(&t, behind_timer, 0.5, 0.);
    t.data = &f->pl;
    ev_timer_start(f->loop, &t);
    run_client(f, client_behind);
    ev_timer_stop(f->loop, &t);
    char *m = metrics_text();
    assert_non_null(strstr(m, "imes_stream_drops_total{reason=\"behind\"} 1\n"));
    free(m);
    /* It got its burst and live frames, then the server closed. */
    assert_true(f->got_len[0] > 400 * 50);
    assert_int_equal(f->pl.detaches, 1);
}

/* ---- delegates ---- */

static int status_of(const char *resp)
{
    int s = 0;
    if (!resp || sscanf(resp, "HTTP/1.1 %d", &s) != 1)
        return -1;
    return s;
}

struct answer {
    int status;
    char body[2048];
};

static void ask(struct fx *f, const char *method, const char *path, struct answer *a,
                const char *extra)
{
    char req[1024];
    size_t len;
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n", method,
             path, extra ? extra : "");
    char *r = request(f, req, 8192, 3.0, &len, 0);
    a->status = status_of(r);
    char *b = r ? strstr(r, "\r\n\r\n") : NULL;
    snprintf(a->body, sizeof(a->body), "%s", b ? b + 4 : "");
    if (b) {
        *b = '\0';
        /* the head in front of the body, for header checks */
        char tmp[600];
        snprintf(tmp, sizeof(tmp), "%.500s", a->body);
        snprintf(a->body, sizeof(a->body), "%.1000s\n--\n%s", r, tmp);
    }
    free(r);
}

static struct answer dl[12];

static void client_delegates(struct fx *f)
{
    ask(f, "GET", "/delegate/phone/" DTOKEN "/pause", &dl[0], NULL);
    ask(f, "POST", "/delegate/phone/" DTOKEN "/pause/600", &dl[1], "Content-Length: 0\r\n");
    ask(f, "GET", "/delegate/phone/" DTOKEN "/unpause", &dl[2], NULL);
    ask(f, "GET", "/delegate/phone/" DTOKEN "/pause/0", &dl[3], NULL);
    ask(f, "GET", "/delegate/phone/" DTOKEN "/pause/abc", &dl[4], NULL);
    ask(f, "GET", "/delegate/phone/" DTOKEN "/pause/3601", &dl[5], NULL);
    /* Bad seconds with a wrong token: 404, the seconds are nobody's business. */
    ask(f, "GET", "/delegate/phone/" TOKEN "/pause/abc", &dl[6], NULL);
    ask(f, "GET", "/delegate/phone/" TOKEN "/pause", &dl[7], NULL);
    ask(f, "GET", "/delegate/nodoc/" DTOKEN "/pause", &dl[8], NULL);
    ask(f, "GET", "/delegate/phone/" DTOKEN "/resume", &dl[9], NULL);
    ask(f, "PUT", "/delegate/phone/" DTOKEN "/pause", &dl[10], "Content-Length: 0\r\n");
}

static void delegates(void **state)
{
    struct fx *f = *state;
    run_client(f, client_delegates);
    assert_int_equal(dl[0].status, 200);
    assert_non_null(strstr(dl[0].body, "{\"delegate\":\"phone\",\"paused\":true,\"until\":null}"));
    assert_non_null(strcasestr(dl[0].body, "Content-Type: application/json"));
    assert_non_null(strcasestr(dl[0].body, "Cache-Control: no-store"));
    assert_int_equal(dl[1].status, 200);
    assert_non_null(strstr(dl[1].body, "\"paused\":true,\"until\":\"20"));
    assert_non_null(strstr(dl[1].body, "Z\"}"));
    assert_int_equal(dl[2].status, 200);
    assert_non_null(strstr(dl[2].body, "{\"delegate\":\"phone\",\"paused\":false,\"until\":null}"));
    assert_int_equal(f->pl.holds, 3);
    assert_true(f->pl.last_hold == 0);
    for (int i = 3; i <= 5; i++) {
        assert_int_equal(dl[i].status, 400);
        assert_non_null(strstr(dl[i].body, "1 to 3600"));
    }
    for (int i = 6; i <= 9; i++)
        assert_int_equal(dl[i].status, 404);
    assert_int_equal(dl[10].status, 405);
}

/* ---- /api/events and /api/whoami ---- */

static void client_events(struct fx *f)
{
    size_t len;
    f->got[0] = request(f, "GET /api/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 4096,
                        3.0, &f->got_len[0], 0);
    f->got[1] = request(f,
                        "GET /api/events HTTP/1.1\r\nHost: x\r\n"
                        "Authorization: Basic " BASIC_GOOD "\r\n\r\n",
                        1 << 16, 1.0, &f->got_len[1], 0);
    f->got[2] = request(f,
                        "GET /api/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        "Authorization: Basic " BASIC_GOOD "\r\n\r\n",
                        4096, 3.0, &f->got_len[2], 0);
    char *r = request(f,
                      "GET /api/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Authorization: Basic b3V0OnNpZGVy\r\n\r\n",
                      4096, 3.0, &len, 0);
    f->flag = status_of(r);
    free(r);
}

static void events(void **state)
{
    struct fx *f = *state;
    api_set_keepalive(f->api, 0.3);
    run_client(f, client_events);
    assert_int_equal(status_of(f->got[0]), 401);
    assert_non_null(strstr(f->got[0], "\r\nWWW-Authenticate: Basic realm=\"IMES\"\r\n"));
    assert_int_equal(status_of(f->got[1]), 200);
    assert_non_null(strcasestr(f->got[1], "\r\nContent-Type: text/event-stream\r\n"));
    assert_non_null(strcasestr(f->got[1], "\r\nCache-Control: no-cache\r\n"));
    size_t blen = 0;
    char *body = split_head(f->got[1], f->got_len[1], &blen);
    assert_non_null(body);
    const char snap[] = "event: snapshot\ndata: {\"type\":\"snapshot\",\"channels\":{}}\n\n";
    assert_memory_equal(body, snap, sizeof(snap) - 1);
    /* A second's worth of ticks: five state events (one every 10 ticks). */
    int states = 0;
    for (char *p = body; (p = strstr(p, "event: state\ndata: {\"type\":\"channel\"")); p++)
        states++;
    assert_true(states >= 3);
    /* And a comment now and then (every 0.3 s here). */
    int comments = 0;
    for (char *p = body; (p = strstr(p, "\n\n: keep-alive\n\n")); p++)
        comments++;
    assert_true(comments >= 2);
    assert_string_equal(f->pl.last_user, "alice");
    assert_int_equal(f->pl.open_presence, 1);
    assert_int_equal(f->pl.closed_presence, 1);
    assert_int_equal(api_event_clients(f->api), 0);
    assert_int_equal(status_of(f->got[2]), 200);
    assert_non_null(strstr(f->got[2], "{\"name\":\"alice\",\"roles\":[\"imes_user\"]}"));
    assert_int_equal(f->flag, 403);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_device_urls),
        cmocka_unit_test(parse_listen_urls),
        cmocka_unit_test(parse_delegate_urls),
        cmocka_unit_test(sse_format),
        cmocka_unit_test_setup_teardown(mp3_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(mp3_icy, setup, teardown),
        cmocka_unit_test_setup_teardown(opus_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(not_found_is_one_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(head_does_not_attach, setup, teardown),
        cmocka_unit_test_setup_teardown(listen_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(listen_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(slow_reader_dropped_alone, setup_big_frames, teardown),
        cmocka_unit_test_setup_teardown(overflow_dropped, setup_small_queue, teardown),
        cmocka_unit_test_setup_teardown(behind_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(delegates, setup, teardown),
        cmocka_unit_test_setup_teardown(events, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
