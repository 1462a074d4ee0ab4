/*
 * HTTP device streams (see listener.h): route, token check, attach to the
 * player, and the per-listener pump that turns the device's frames into the
 * bytes of one HTTP response that never ends.
 *
 * A stream goes WAITING (token check in flight) → STREAMING → DROPPED
 * (we closed it) or GONE (the connection is closing); the close callback,
 * which httpd runs once whatever happened, detaches and frees it. Frames are
 * copied once, into a scratch buffer shared by all streams (everything runs
 * on the loop), so that each pump round is a single send.
 */
#include "stream/listener.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/token.h"
#include "state/auth.h"
#include "state/player.h"
#include "stream/http_parser.h"
#include "stream/httpd.h"
#include "stream/icy.h"
#include "stream/oggmux.h"

/* A new listener gets this much recent audio at once: players start as soon
 * as their own buffer holds about a second, so they start at once. */
#define BURST_S 1.0
/* Reading stops while the connection's queue holds more than this much
 * audio: enough to ride out a short stall of the client, little enough that
 * a listener never runs far ahead in our memory instead of the ring. */
#define QUEUE_S 0.5
/* Before a stream has shown its bitrate: MP3's highest (320 kbit/s), so the
 * first limit errs on the side of letting the burst through. */
#define DEFAULT_BYTES_PER_S 40000.0
/* A client that takes nothing for this long while we have audio for it is
 * dropped: the ring keeps about 10 s, so its frames are gone by then anyway,
 * and it should not hold a connection and a cursor until httpd's idle
 * timeout. */
#define STALL_S 10.0
/* Woken with new frames at most this often (changes still leave at once,
 * see player_set_batch): players buffer seconds, and one send of 0.3 s costs
 * the kernel about what one send of a 24 ms frame does (per listener per
 * second: 3 sends instead of 42). */
#define BATCH_S 0.3
/* One pump round writes at most this much (and one frame more): a single
 * send for a burst at usual bitrates (1 s of 320 kbit/s MP3 is 40 kB). */
#define WRITE_CHUNK (64u << 10)
/* The scratch buffer: a round plus a frame, its framing and ICY blocks. */
#define SCRATCH_MAX (1u << 20)
/* Codec header packets a listener's stream begins with (Opus: 2). */
#define MAX_HEADERS 4

static const char not_found[] = "Not Found\n";
static const char listen_unauthorized[] =
    "Log in to IMES to listen here: this stream needs your CouchDB session cookie "
    "(AuthSession) or Basic credentials.\n";
static const char listen_forbidden[] = "This user is not an IMES member (role imes_user).\n";
static const char unavailable[] = "The database cannot be reached; try again shortly.\n";
static const char *const codec_names[] = {"mp3", "opus"};

enum stream_state { S_WAITING, S_STREAMING, S_DROPPED, S_GONE };
enum drop_reason { DROP_BEHIND, DROP_OVERFLOW, DROP_STALLED, DROP_REASONS };
static const char *const drop_names[DROP_REASONS] = {"behind", "overflow", "stalled"};
static const char *const drop_why[DROP_REASONS] = {
    "fell behind: the frames it needs are gone",
    "output queue overflowed",
    "client took nothing for ",
};

struct stream {
    struct listener *L;
    struct stream *prev, *next;
    struct httpd_conn *conn;
    uint64_t id;
    enum stream_state state;
    struct auth_wait *wait;
    struct player_attachment *att;
    char name[sizeof(((struct listener_url *)0)->name)];
    enum listener_codec codec;
    int head;
    int counted;  /* in open[] */
    int personal; /* /listen/: the session's user's personal device */
    int in_pump;
    /* ICY (MP3 with Icy-MetaData: 1) */
    int icy;
    struct icy y;
    struct icy_meta *meta;
    /* Opus */
    struct oggmux *ogg;
    /* accounting */
    uint64_t bytes, samples;
    double started;
    int stalled;
    double stalled_since;
};

struct listener {
    struct ev_loop *loop;
    struct httpd *httpd;
    struct player *player;
    struct auth *auth;
    struct stream *all;
    size_t open[2];
    double queue_s, stall_s;
    struct buf scratch;
    struct {
        uint64_t connects[2], bytes[2], drops[DROP_REASONS];
    } st;
};

/* ---- URL ---- */

int listener_parse_path(const char *path, struct listener_url *u)
{
    static const char prefix[] = "/device/";
    char file[16];
    memset(u, 0, sizeof(*u));
    if (!path || strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return -ENOENT;
    const char *p = path + sizeof(prefix) - 1;
    if (http_path_segment(&p, u->name, sizeof(u->name)) != 1 ||
        http_path_segment(&p, u->token, sizeof(u->token)) != 1 ||
        http_path_segment(&p, file, sizeof(file)) != 0)
        goto bad;
    if (!auth_name_valid(u->name) || !token_well_formed(u->token))
        goto bad;
    if (strcmp(file, "stream.mp3") == 0)
        u->codec = LISTENER_MP3;
    else if (strcmp(file, "stream.opus") == 0)
        u->codec = LISTENER_OPUS;
    else
        goto bad;
    return 0;
bad:
    explicit_bzero(u, sizeof(*u));
    return -ENOENT;
}

int listener_parse_listen_path(const char *path, enum listener_codec *codec)
{
    if (!path)
        return -ENOENT;
    if (strcmp(path, "/listen/stream.mp3") == 0)
        *codec = LISTENER_MP3;
    else if (strcmp(path, "/listen/stream.opus") == 0)
        *codec = LISTENER_OPUS;
    else
        return -ENOENT;
    return 0;
}

int listener_personal_device(const char *user, char *out, size_t outlen)
{
    if (!user || !auth_name_valid(user))
        return -EINVAL;
    int n = snprintf(out, outlen, "%s%s", LISTENER_PERSONAL_PREFIX, user);
    if (n < 0 || (size_t)n >= outlen || !auth_name_valid(out)) {
        if (outlen)
            out[0] = '\0';
        return -ENAMETOOLONG;
    }
    return 0;
}

/* ---- streams ---- */

static void stream_free(struct stream *s)
{
    struct listener *L = s->L;
    auth_cancel(&s->wait);
    if (s->att)
        player_detach(&s->att);
    if (s->prev)
        s->prev->next = s->next;
    else if (L->all == s)
        L->all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    oggmux_free(&s->ogg);
    free(s->meta);
    free(s);
}

static void on_close(struct httpd_conn *c, void *arg)
{
    struct stream *s = arg;
    struct listener *L = s->L;
    if (s->counted) {
        L->open[s->codec]--;
        if (s->state != S_DROPPED)
            LOG(E_INFO, L_HTTP, "device %s: %s listener conn %llu left after %.0f s (%llu bytes)",
                s->name, codec_names[s->codec], (unsigned long long)s->id,
                ev_now(L->loop) - s->started, (unsigned long long)s->bytes);
    }
    stream_free(s);
}

/* Answers a request that will not become a stream and forgets it. */
static void answer_and_forget(struct stream *s, int status, const char *headers, const char *body)
{
    httpd_conn_set_callbacks(s->conn, NULL, NULL, NULL);
    httpd_respond_headers(s->conn, status, headers, "text/plain; charset=utf-8", body,
                          strlen(body));
    stream_free(s);
}

static void drop(struct stream *s, enum drop_reason why)
{
    struct listener *L = s->L;
    s->state = S_DROPPED;
    L->st.drops[why]++;
    char stall[32] = "";
    if (why == DROP_STALLED)
        snprintf(stall, sizeof(stall), "%.0f s", L->stall_s);
    LOG(E_INFO, L_HTTP, "device %s: %s listener conn %llu %s dropped after %.0f s: %s%s", s->name,
        codec_names[s->codec], (unsigned long long)s->id, httpd_conn_peer(s->conn),
        ev_now(L->loop) - s->started, drop_why[why], stall);
    httpd_conn_close(s->conn);
}

/* Bytes of queue that hold QUEUE_S of this stream's audio. */
static size_t queue_limit(const struct stream *s)
{
    const double queue_s = s->L->queue_s;
    double rate = DEFAULT_BYTES_PER_S;
    if (s->samples >= 4800) /* 0.1 s seen: its own rate */
        rate = (double)s->bytes * 48000.0 / (double)s->samples;
    double limit = rate * queue_s;
    return limit < 4096 ? 4096 : (size_t)limit;
}

static int append_frame(struct stream *s, const struct player_frame *f, struct buf *out)
{
    if (s->codec == LISTENER_OPUS)
        return oggmux_packet(s->ogg, f->data, f->len, f->samples, out);
    if (s->icy)
        return icy_write(&s->y, s->meta, f->data, f->len, out);
    return buf_append(out, f->data, f->len);
}

/* Writes the scratch buffer. 0, or <0 when the stream is over (dropped or
 * going away). */
static int flush_scratch(struct stream *s)
{
    struct listener *L = s->L;
    if (L->scratch.len == 0)
        return 0;
    int r = httpd_stream_write(s->conn, L->scratch.data, L->scratch.len);
    if (r == -ENOBUFS) {
        drop(s, DROP_OVERFLOW);
        return r;
    }
    if (r < 0) {
        s->state = S_GONE; /* closing: the close callback comes */
        return r;
    }
    s->bytes += L->scratch.len;
    L->st.bytes[s->codec] += L->scratch.len;
    buf_reset(&L->scratch);
    return 0;
}

static void pump(struct stream *s)
{
    struct listener *L = s->L;
    if (s->state != S_STREAMING || s->in_pump)
        return;
    s->in_pump = 1;
    if (s->icy)
        icy_meta_set(s->meta, player_title(s->att));
    /* Bounded: the ring holds seconds; a round is up to WRITE_CHUNK. */
    for (int round = 0; round < 64 && s->state == S_STREAMING; round++) {
        size_t pending = httpd_conn_pending(s->conn), limit = queue_limit(s);
        if (pending >= limit) {
            double t = ev_now(L->loop);
            if (!s->stalled) {
                s->stalled = 1;
                s->stalled_since = t;
            } else if (t - s->stalled_since > L->stall_s) {
                drop(s, DROP_STALLED);
            }
            break;
        }
        s->stalled = 0;
        buf_reset(&L->scratch);
        size_t room = limit - pending;
        if (room > WRITE_CHUNK)
            room = WRITE_CHUNK;
        int r = 1;
        while (L->scratch.len < room) {
            struct player_frame f;
            r = player_read(s->att, &f);
            if (r <= 0)
                break;
            s->samples += (uint64_t)(f.samples > 0 ? f.samples : 0);
            if (append_frame(s, &f, &L->scratch) < 0) {
                r = -2;
                break;
            }
        }
        if (r == -1) {
            buf_reset(&L->scratch);
            drop(s, DROP_BEHIND);
            break;
        }
        if (r == -2) {
            buf_reset(&L->scratch);
            drop(s, DROP_OVERFLOW);
            break;
        }
        if (flush_scratch(s) < 0 || r == 0)
            break; /* over, or nothing more is due */
    }
    buf_reset(&L->scratch);
    s->in_pump = 0;
}

static void on_wake(void *arg)
{
    pump(arg);
}

static void on_drain(struct httpd_conn *c, void *arg)
{
    pump(arg);
}

static uint32_t random_serial(const struct stream *s)
{
    uint32_t v;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
        return v;
    return (uint32_t)(s->id * 2654435761u) ^ (uint32_t)(ev_now(s->L->loop) * 1e6);
}

/* The Ogg header pages: OpusHead and OpusTags from the player. */
static int opus_headers(struct stream *s)
{
    struct oggmux_header h[MAX_HEADERS];
    int n = 0;
    while (n < MAX_HEADERS && player_header(s->att, n, &h[n].data, &h[n].len) == 0)
        n++;
    if (n == 0) {
        LOG(E_ERROR, L_HTTP, "device %s: the player has no Opus header", s->name);
        return -ENOENT;
    }
    if (!(s->ogg = oggmux_new(random_serial(s), OGGMUX_PAGE_SAMPLES)))
        return -ENOMEM;
    int r = oggmux_headers(s->ogg, h, n, &s->L->scratch);
    if (r < 0)
        LOG(E_ERROR, L_HTTP, "device %s: Ogg headers: %s", s->name, strerror(-r));
    return r;
}

static void start(struct stream *s)
{
    struct listener *L = s->L;
    char headers[256];
    int n = snprintf(headers, sizeof(headers),
                     "Cache-Control: no-cache, no-store\r\nicy-name: %s\r\n", s->name);
    if (s->icy)
        snprintf(headers + n, sizeof(headers) - (size_t)n, "icy-metaint: %d\r\n", ICY_METAINT);
    const char *ctype = s->codec == LISTENER_OPUS ? "audio/ogg" : "audio/mpeg";

    if (s->head) {
        httpd_conn_set_callbacks(s->conn, NULL, NULL, NULL);
        httpd_stream_start(s->conn, 200, ctype, headers);
        stream_free(s);
        return;
    }
    s->att = player_attach(L->player, s->name, codec_names[s->codec], BURST_S, on_wake, s);
    if (!s->att) {
        LOG(E_INFO, L_HTTP, "device %s: not known to the player (conn %llu): 404", s->name,
            (unsigned long long)s->id);
        if (s->personal) {
            char body[160];
            snprintf(body, sizeof(body),
                     "There is no personal device %s yet: turn on Listen here in the web app.\n",
                     s->name);
            answer_and_forget(s, 404, NULL, body);
        } else {
            answer_and_forget(s, 404, NULL, not_found);
        }
        return;
    }
    player_set_batch(s->att, BATCH_S);
    if (s->icy) {
        if (!(s->meta = malloc(sizeof(*s->meta)))) {
            answer_and_forget(s, 503, "Retry-After: 5\r\n", "out of memory\n");
            return;
        }
        icy_meta_init(s->meta);
        icy_init(&s->y, ICY_METAINT);
    }
    if (httpd_stream_start(s->conn, 200, ctype, headers) < 0) {
        s->state = S_GONE; /* closing: the close callback frees it */
        httpd_conn_close(s->conn);
        return;
    }
    s->state = S_STREAMING;
    s->counted = 1;
    s->started = ev_now(L->loop);
    L->open[s->codec]++;
    L->st.connects[s->codec]++;
    httpd_conn_set_callbacks(s->conn, on_drain, on_close, s);
    LOG(E_INFO, L_HTTP, "device %s: %s listener conn %llu %s%s attached", s->name,
        codec_names[s->codec], (unsigned long long)s->id, httpd_conn_peer(s->conn),
        s->icy ? " (ICY)" : "");
    buf_reset(&L->scratch);
    if (s->codec == LISTENER_OPUS) {
        if (opus_headers(s) < 0 || flush_scratch(s) < 0) {
            buf_reset(&L->scratch);
            if (s->state == S_STREAMING) {
                s->state = S_GONE;
                httpd_conn_close(s->conn);
            }
            return;
        }
    }
    pump(s);
}

static void on_token(int result, void *arg)
{
    struct stream *s = arg;
    s->wait = NULL;
    if (result == 1) {
        start(s);
    } else if (result == 0) {
        answer_and_forget(s, 404, NULL, not_found);
    } else {
        answer_and_forget(s, 503, "Retry-After: 5\r\n", unavailable);
    }
}

static void on_session(int result, const struct auth_user *u, void *arg)
{
    struct stream *s = arg;
    s->wait = NULL;
    if (result < 0) {
        answer_and_forget(s, 503, "Retry-After: 5\r\n", unavailable);
        return;
    }
    if (result == 0) {
        /* No WWW-Authenticate: an <audio> element must not pop a login
         * dialog; the web app logs in with its own form. */
        answer_and_forget(s, 401, "Cache-Control: no-store\r\n", listen_unauthorized);
        return;
    }
    if (!u->member) {
        answer_and_forget(s, 403, "Cache-Control: no-store\r\n", listen_forbidden);
        return;
    }
    if (listener_personal_device(u->name, s->name, sizeof(s->name)) < 0) {
        LOG(E_INFO, L_HTTP, "listen: user %s has a name too long for a personal device (conn %llu)",
            u->name, (unsigned long long)s->id);
        answer_and_forget(s, 404, NULL,
                          "This user's name is too long for a personal device (web-<name>).\n");
        return;
    }
    start(s);
}

/* A stream waiting for its check, or NULL (answered 503). */
static struct stream *stream_new(struct listener *L, struct httpd_conn *c,
                                 const struct http_request *req, enum listener_codec codec)
{
    struct stream *s = calloc(1, sizeof(*s));
    if (!s) {
        httpd_respond(c, 503, "text/plain; charset=utf-8", "out of memory\n", 14);
        return NULL;
    }
    s->L = L;
    s->conn = c;
    s->id = httpd_conn_id(c);
    s->codec = codec;
    s->head = strcmp(req->method, "HEAD") == 0;
    const char *icy = http_request_header(req, "Icy-MetaData");
    s->icy = s->codec == LISTENER_MP3 && icy && strcmp(icy, "1") == 0;
    s->next = L->all;
    if (L->all)
        L->all->prev = s;
    L->all = s;
    httpd_conn_set_callbacks(c, NULL, on_close, s);
    return s;
}

static void device_route(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    struct listener *L = arg;
    struct listener_url u;
    if (listener_parse_path(req->path, &u) < 0) {
        httpd_respond(c, 404, "text/plain; charset=utf-8", not_found, strlen(not_found));
        return;
    }
    struct stream *s = stream_new(L, c, req, u.codec);
    if (!s) {
        explicit_bzero(&u, sizeof(u));
        return;
    }
    memcpy(s->name, u.name, sizeof(s->name));
    s->wait = auth_token_check(L->auth, "device", u.name, u.token, on_token, s);
    explicit_bzero(&u, sizeof(u));
    if (!s->wait)
        answer_and_forget(s, 503, "Retry-After: 5\r\n", "out of memory\n");
}

static void listen_route(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    struct listener *L = arg;
    enum listener_codec codec;
    if (listener_parse_listen_path(req->path, &codec) < 0) {
        static const char body[] = "Not Found: the personal stream is /listen/stream.mp3 or "
                                   "/listen/stream.opus\n";
        httpd_respond(c, 404, "text/plain; charset=utf-8", body, strlen(body));
        return;
    }
    struct stream *s = stream_new(L, c, req, codec);
    if (!s)
        return;
    s->personal = 1;
    s->wait = auth_session_check(L->auth, http_request_header(req, "Authorization"),
                                 http_request_header(req, "Cookie"), on_session, s);
    if (!s->wait)
        answer_and_forget(s, 503, "Retry-After: 5\r\n", "out of memory\n");
}

/* ---- module ---- */

static int collect(struct buf *out, void *arg)
{
    struct listener *L = arg;
    int r = metrics_family(out, "imes_stream_listeners", "gauge",
                           "HTTP device streams open now, by codec.");
    for (int i = 0; i < 2 && !r; i++)
        r = metrics_sample(out, "imes_stream_listeners", "codec", codec_names[i],
                           (double)L->open[i]);
    if (!r)
        r = metrics_family(out, "imes_stream_connects_total", "counter",
                           "HTTP device streams started, by codec.");
    for (int i = 0; i < 2 && !r; i++)
        r = metrics_sample(out, "imes_stream_connects_total", "codec", codec_names[i],
                           (double)L->st.connects[i]);
    if (!r)
        r = metrics_family(out, "imes_stream_bytes_sent_total", "counter",
                           "Bytes of HTTP device streams handed to the sockets, by codec.");
    for (int i = 0; i < 2 && !r; i++)
        r = metrics_sample(out, "imes_stream_bytes_sent_total", "codec", codec_names[i],
                           (double)L->st.bytes[i]);
    if (!r)
        r = metrics_family(out, "imes_stream_drops_total", "counter",
                           "HTTP listeners dropped for not keeping up, by reason.");
    for (int i = 0; i < DROP_REASONS && !r; i++)
        r = metrics_sample(out, "imes_stream_drops_total", "reason", drop_names[i],
                           (double)L->st.drops[i]);
    return r;
}

struct listener *listener_new(struct ev_loop *loop, struct httpd *h, struct player *pl,
                              struct auth *auth)
{
    struct listener *L = calloc(1, sizeof(*L));
    if (!L) {
        LOG(E_ERROR, L_HTTP, "listener: out of memory");
        return NULL;
    }
    L->loop = loop;
    L->httpd = h;
    L->player = pl;
    L->auth = auth;
    L->queue_s = QUEUE_S;
    L->stall_s = STALL_S;
    buf_init(&L->scratch, SCRATCH_MAX);
    int r = httpd_add_route(h, "GET", "/device/", device_route, L);
    if (r >= 0)
        r = httpd_add_route(h, "GET", "/listen/", listen_route, L);
    if (r < 0) {
        LOG(E_ERROR, L_HTTP, "listener: cannot add the /device/ and /listen/ routes: %s",
            strerror(-r));
        buf_free(&L->scratch);
        free(L);
        return NULL;
    }
    metrics_add_collector(collect, L);
    return L;
}

void listener_free(struct listener **lp)
{
    struct listener *L = lp ? *lp : NULL;
    if (!L)
        return;
    /* Empty if httpd_free ran first; else close what is left (the httpd is
     * freed next, so no request reaches the route meanwhile). */
    while (L->all) {
        struct stream *s = L->all;
        httpd_conn_set_callbacks(s->conn, NULL, NULL, NULL);
        httpd_conn_close(s->conn);
        stream_free(s);
    }
    metrics_remove_collector(collect, L);
    buf_free(&L->scratch);
    free(L);
    *lp = NULL;
}

void listener_set_limits(struct listener *L, double queue_s, double stall_s)
{
    if (queue_s > 0)
        L->queue_s = queue_s;
    if (stall_s > 0)
        L->stall_s = stall_s;
}

size_t listener_count(const struct listener *L)
{
    return L->open[0] + L->open[1];
}
