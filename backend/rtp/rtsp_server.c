/*
 * The RTSP server: see rtsp_server.h for the contract. Requests come from
 * httpd's RTSP hook; each RTSP connection gets a `struct rconn` (found by
 * httpd's connection id) that owns its sessions and at most one pending
 * provider lookup (httpd reads no further request until we answer). A
 * session owns its source, its payloader and a small queue of copied frames
 * that its own ev_timer sends on time. UDP goes through two sockets shared by
 * all sessions; RTCP coming back is parsed and kept per session for /metrics,
 * and an XR RRTR in it is answered with a DLRR block (rtcp_in, send_sr).
 *
 * A session never frees itself inside its source's callbacks (wake, read):
 * it is marked dead and its timer, set to fire at once, frees it.
 */
#include "rtp/rtsp_server.h"
#include "rtp/rtcp.h"
#include "rtp/sdp.h"
#include "rtp/rtsp_transport.h"

#include "core/buf.h"
#include "core/hmap.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "stream/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* Frames a session holds: 256 MP3 frames are 6 s, far more than the
 * start-up cushion; a source that runs further ahead waits. */
#define QMAX 256
/* The pacing clock fires this much before a frame is due, and a frame due
 * within this much is sent: a timerfd wakes the loop some tens of
 * microseconds after its time, so aiming a little early centres the send
 * times on the schedule. (Errors are counted both ways: |send - due|.) */
#define EARLY 0.0001
/* Frames later than this (the source stalled) re-anchor the schedule rather
 * than go out in a rush the client would have to absorb. */
#define RESYNC 0.25
/* Session schedules start on a grid of this step, so that sessions of one
 * source (whose frames last whole milliseconds: 24 ms MP3, 20 ms Opus) fall
 * due together: at most 12 wakeups per MP3 frame period whatever the number
 * of sessions, instead of one per session. It delays a start by < 2 ms. */
#define GRID 0.002
/* Session expiry and sender reports are checked this often. */
#define SWEEP 0.25
/* An RTCP XR RRTR from the client is answered at once (SR + DLRR) unless
 * our last compound went out less than this long ago; then the DLRR rides
 * with the next one. */
#define RRTR_REPLY_GAP 0.2
/* Pacing error histogram: 10 µs buckets up to 100 ms. */
#define HIST_STEP    1e-5
#define HIST_BUCKETS 10001
#define URL_MAX      1024
#define METHODS      "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, TEARDOWN"

enum close_reason { CR_TEARDOWN, CR_CONNECTION, CR_TIMEOUT, CR_SOURCE, CR_SHUTDOWN, CR_COUNT };
static const char *const reason_names[CR_COUNT] = {"teardown", "connection", "timeout", "source",
                                                   "shutdown"};

struct qframe {
    uint8_t *data;
    size_t len, cap;
    uint32_t samples;
};

struct rconn;

struct session {
    struct rtsp_server *S;
    struct rconn *rc;
    struct session *cnext;         /* the connection's sessions */
    struct session *snext, *sprev; /* the server's */
    char id[17];
    struct rtsp_source *src;
    struct rtsp_transport tr;
    struct sockaddr_storage rtp_to, rtcp_to;
    socklen_t to_len;
    int playing, dead, in_pump, started;
    enum close_reason dead_reason;
    struct rtp_payloader pay;
    uint32_t ts_base;
    uint64_t samples_total; /* at sample_rate, pause gaps included */
    double anchor;          /* monotonic time of media_pos 0 */
    uint64_t media_pos, burst_end;
    double paused_at;
    double next_due; /* monotonic time the queue's head is due; 0 = waiting for the source */
    struct qframe q[QMAX];
    unsigned qhead, qlen;
    ev_timer timer;
    double last_seen;
    double next_sr;
    int have_last;
    double last_due;
    uint32_t last_ts;
    int have_rr;
    struct rtcp_block rr;
    double rtt;
    int have_rrtr;        /* the client's last XR RRTR (RFC 3611), answered by DLRR */
    uint32_t rrtr_ssrc;   /* its sender */
    uint32_t rrtr_mid;    /* middle 32 bits of its NTP time */
    double rrtr_at;       /* when it came (timeutil_mono) */
    double last_rtcp_out; /* when our last compound went out (timeutil_mono) */
    char url[URL_MAX];
    char path[URL_MAX]; /* the provider's path: requests must name it */
};

struct rconn {
    struct rtsp_server *S;
    struct httpd_conn *c;
    char key[24];
    struct session *sessions;
    struct rtsp_open *pending;
};

enum op_kind { OP_DESCRIBE, OP_SETUP };

struct rtsp_open {
    struct rtsp_server *S;
    struct rconn *rc;
    enum op_kind kind;
    struct rtsp_transport tr;
    char url[URL_MAX];
    char path[URL_MAX];
    void *data;
};

struct rtsp_server {
    struct ev_loop *loop;
    struct httpd *httpd;
    struct rtsp_provider prov;
    void *prov_arg;
    double timeout, sr_interval, cushion, startup;
    int live;
    size_t max_sessions, mtu;
    char prefix[64];
    char cname[RTCP_CNAME_MAX + 1];
    int family; /* of the UDP sockets */
    int rtp_fd, rtcp_fd, rtp_port;
    ev_io rtp_io, rtcp_io;
    ev_timer sweep;
    /* The pacing clock: one timerfd for every session, armed (absolute,
     * CLOCK_MONOTONIC, nanoseconds) at the earliest due frame. libev's own
     * timers sleep in whole milliseconds through epoll (at least 1 ms), too
     * coarse for a 1 ms goal. */
    int tfd;
    ev_io tfd_io;
    double armed;          /* what tfd is set to, 0 = disarmed */
    int in_pacing;         /* on_pacing runs: it sets the clock once, at its end */
    struct hmap *conns;    /* key: connection id */
    struct hmap *sessions; /* key: session id */
    struct session *all;
    size_t nsessions, nplaying, ntcp;
    struct {
        uint64_t sessions, closed[CR_COUNT], requests, errors;
        uint64_t packets, octets, dropped, rtcp_sent, rtcp_recv, rtcp_bad, resyncs;
    } st;
    uint64_t hist[HIST_BUCKETS];
    uint64_t hist_n;
    double hist_max;
    uint8_t frame_buf[4 + 65536];
};

/* ---- helpers ---- */

static uint64_t random64(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof(v), 0) == (ssize_t)sizeof(v))
        return v;
    return (uint64_t)(timeutil_mono() * 1e9) * 6364136223846793005ull + 1442695040888963407ull;
}

static int reply(struct rconn *rc, int status, const char *headers, const char *ctype,
                 const char *body, size_t len)
{
    if (status >= 400)
        rc->S->st.errors++;
    return httpd_respond_headers(rc->c, status, headers, ctype, body, len);
}

static int reply_text(struct rconn *rc, int status, const char *headers, const char *text)
{
    return reply(rc, status, headers, text ? "text/plain; charset=utf-8" : NULL, text,
                 text ? strlen(text) : 0);
}

static void session_header(const struct session *s, char *out, size_t cap)
{
    snprintf(out, cap, "Session: %s;timeout=%.0f\r\n", s->id, s->S->timeout);
}

/* The Session header's id (up to ';'), or "" if none; -EINVAL if too long. */
static int session_id_of(const struct http_request *req, char *out, size_t cap)
{
    const char *v = http_request_header(req, "Session");
    out[0] = '\0';
    if (!v)
        return 0;
    size_t n = strcspn(v, "; \t");
    if (n == 0 || n >= cap)
        return -EINVAL;
    memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

static void pacing_record(struct rtsp_server *S, double err)
{
    if (err < 0)
        err = -err;
    size_t b = (size_t)(err / HIST_STEP);
    if (b >= HIST_BUCKETS)
        b = HIST_BUCKETS - 1;
    S->hist[b]++;
    S->hist_n++;
    if (err > S->hist_max)
        S->hist_max = err;
}

static double pacing_quantile(const struct rtsp_server *S, double q)
{
    if (S->hist_n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)S->hist_n), seen = 0;
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        seen += S->hist[b];
        if (seen > want)
            return (double)(b + 1) * HIST_STEP;
    }
    return S->hist_max;
}

/* ---- the pacing clock ---- */

/* Makes the pacing clock fire by t (monotonic) at the latest. */
static void sched_at(struct rtsp_server *S, double t)
{
    if (t <= 0 || S->in_pacing || (S->armed > 0 && S->armed <= t))
        return;
    S->armed = t;
    double at = t - EARLY;
    struct itimerspec its = {0};
    if (at <= 0)
        at = 1e-9;
    its.it_value.tv_sec = (time_t)at;
    its.it_value.tv_nsec = (long)((at - (double)its.it_value.tv_sec) * 1e9);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1; /* all zero would disarm */
    timerfd_settime(S->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* ---- sending ---- */

static int send_tcp(struct session *s, unsigned channel, const uint8_t *pkt, size_t len)
{
    struct rtsp_server *S = s->S;
    if (!s->rc || len > 65535)
        return -EPIPE;
    S->frame_buf[0] = '$';
    S->frame_buf[1] = (uint8_t)channel;
    rtp_wr16(S->frame_buf + 2, (uint16_t)len);
    memcpy(S->frame_buf + 4, pkt, len);
    return httpd_stream_write(s->rc->c, S->frame_buf, len + 4);
}

static int emit_rtp(const uint8_t *pkt, size_t len, void *arg)
{
    struct session *s = arg;
    struct rtsp_server *S = s->S;
    int ok;
    if (s->tr.tcp) {
        ok = send_tcp(s, (unsigned)s->tr.interleaved[0], pkt, len) == 0;
    } else {
        ok = sendto(S->rtp_fd, pkt, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                    (const struct sockaddr *)&s->rtp_to, s->to_len) == (ssize_t)len;
    }
    if (ok) {
        S->st.packets++;
        S->st.octets += len;
    } else {
        S->st.dropped++;
    }
    return 0; /* a lost packet does not stop the frame's other fragments */
}

static void send_rtcp(struct session *s, const uint8_t *pkt, size_t len)
{
    struct rtsp_server *S = s->S;
    int ok;
    if (s->tr.tcp)
        ok = send_tcp(s, (unsigned)s->tr.interleaved[1], pkt, len) == 0;
    else
        ok = sendto(S->rtcp_fd, pkt, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                    (const struct sockaddr *)&s->rtcp_to, s->to_len) == (ssize_t)len;
    if (ok)
        S->st.rtcp_sent++;
}

static uint32_t rtp_ts_at(const struct session *s, uint64_t samples)
{
    const struct rtsp_source *src = s->src;
    return s->ts_base + (uint32_t)(samples * src->fmt.clock_rate / src->sample_rate);
}

static void send_sr(struct session *s, int bye)
{
    uint8_t b[RTCP_MAX_PACKET];
    int n = 0, r;
    double now = timeutil_mono();
    struct rtcp_sender_info si = {
        .ntp = rtcp_ntp_now(),
        .packets = (uint32_t)s->pay.packets,
        .octets = (uint32_t)s->pay.octets,
    };
    if (s->have_last)
        si.rtp_ts = s->last_ts + (uint32_t)(int64_t)((now - s->last_due) * s->src->fmt.clock_rate);
    else
        si.rtp_ts = rtp_ts_at(s, s->samples_total);
    r = rtcp_write_sr(b, sizeof(b), s->pay.ssrc, &si, NULL, 0);
    if (r < 0)
        return;
    n += r;
    r = rtcp_write_sdes_cname(b + n, sizeof(b) - (size_t)n, s->pay.ssrc, s->S->cname);
    if (r > 0)
        n += r;
    if (s->have_rrtr) {
        struct rtcp_dlrr d = {.ssrc = s->rrtr_ssrc,
                              .lrr = s->rrtr_mid,
                              .dlrr = rtcp_delay_units(timeutil_mono(), s->rrtr_at)};
        r = rtcp_write_xr_dlrr(b + n, sizeof(b) - (size_t)n, s->pay.ssrc, &d, 1);
        if (r > 0)
            n += r;
    }
    if (bye) {
        r = rtcp_write_bye(b + n, sizeof(b) - (size_t)n, s->pay.ssrc);
        if (r > 0)
            n += r;
    }
    send_rtcp(s, b, (size_t)n);
    s->last_rtcp_out = now;
}

/* ---- sessions ---- */

static void session_free(struct session *s, enum close_reason why)
{
    struct rtsp_server *S = s->S;
    ev_timer_stop(S->loop, &s->timer);
    if (s->rc) {
        struct session **pp = &s->rc->sessions;
        while (*pp && *pp != s)
            pp = &(*pp)->cnext;
        if (*pp)
            *pp = s->cnext;
        if (!s->rc->sessions)
            httpd_conn_set_idle_timeout(s->rc->c, S->timeout);
    }
    if (s->sprev)
        s->sprev->snext = s->snext;
    else
        S->all = s->snext;
    if (s->snext)
        s->snext->sprev = s->sprev;
    hmap_remove(S->sessions, s->id);
    S->nsessions--;
    if (s->tr.tcp)
        S->ntcp--;
    if (s->playing)
        S->nplaying--;
    S->st.closed[why]++;
    LOG(E_INFO, L_RTSP, "session %s (%s, %s): closed (%s) after %llu packets", s->id, s->src->name,
        s->tr.tcp ? "tcp" : "udp", reason_names[why], (unsigned long long)s->pay.packets);
    if (s->src->ops->close)
        s->src->ops->close(s->src);
    for (unsigned i = 0; i < QMAX; i++)
        free(s->q[i].data);
    free(s);
}

static void arm(struct session *s, double after)
{
    ev_timer_stop(s->S->loop, &s->timer);
    ev_timer_set(&s->timer, after > 0 ? after : 0., 0.);
    ev_timer_start(s->S->loop, &s->timer);
}

/* Ends a session from anywhere (even inside its source's callbacks): the
 * timer frees it. */
static void session_kill(struct session *s, enum close_reason why)
{
    if (s->dead)
        return;
    s->dead = 1;
    s->dead_reason = why;
    arm(s, 0);
}

/* Copies what the source has ready into the queue. <0 if it ended. */
static int fill(struct session *s)
{
    while (s->qlen < QMAX) {
        struct rtsp_frame f;
        int r = s->src->ops->read(s->src, &f);
        if (r == 0)
            return 0;
        if (r < 0) {
            LOG(E_INFO, L_RTSP, "session %s (%s): the source ended (%d)", s->id, s->src->name, r);
            session_kill(s, CR_SOURCE);
            return -1;
        }
        struct qframe *q = &s->q[(s->qhead + s->qlen) % QMAX];
        if (f.len > q->cap) {
            uint8_t *d = realloc(q->data, f.len);
            if (!d) {
                session_kill(s, CR_SOURCE);
                return -1;
            }
            q->data = d;
            q->cap = f.len;
        }
        if (f.len)
            memcpy(q->data, f.data, f.len);
        q->len = f.len;
        q->samples = f.samples;
        s->qlen++;
    }
    return 0;
}

static void pump(struct session *s)
{
    struct rtsp_server *S = s->S;
    if (s->in_pump || s->dead || !s->playing)
        return;
    s->in_pump = 1;
    s->next_due = 0;
    const double rate = s->src->sample_rate;
    if (fill(s) < 0)
        goto out;
    for (;;) {
        if (s->qlen == 0 && (fill(s) < 0 || s->qlen == 0))
            break;
        struct qframe *f = &s->q[s->qhead];
        double now = timeutil_mono();
        double due = S->live ? now : s->anchor + (double)s->media_pos / rate;
        if (due - now > EARLY) {
            s->next_due = due;
            sched_at(S, due);
            break;
        }
        int burst = s->media_pos < s->burst_end;
        double late = now - due;
        if (late > RESYNC && !burst) {
            s->anchor = ceil((s->anchor + late) / GRID) * GRID;
            due = now;
            late = 0;
            S->st.resyncs++;
        }
        uint32_t ts = rtp_ts_at(s, s->samples_total);
        int first = !s->have_last;
        rtp_payload_frame(&s->pay, f->data, f->len, ts, first, emit_rtp, s);
        if (!burst)
            pacing_record(S, late);
        s->have_last = 1;
        s->last_due = due;
        s->last_ts = ts;
        s->media_pos += f->samples;
        s->samples_total += f->samples;
        s->qhead = (s->qhead + 1) % QMAX;
        s->qlen--;
        if (s->dead)
            break;
    }
out:
    s->in_pump = 0;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct session *s = w->data;
    if (s->dead) {
        if (s->started)
            send_sr(s, 1);
        session_free(s, s->dead_reason);
        return;
    }
    pump(s);
}

/* The pacing clock fired: every session with a frame due goes, and the
 * clock is set again for the earliest that is left. */
static void on_pacing(struct ev_loop *loop, ev_io *w, int revents)
{
    struct rtsp_server *S = w->data;
    uint64_t expirations;
    if (read(S->tfd, &expirations, sizeof(expirations)) < 0 && S->armed == 0)
        return;
    S->armed = 0;
    S->in_pacing = 1;
    double now = timeutil_mono(), next = 0;
    for (struct session *s = S->all; s; s = s->snext) {
        if (s->next_due > 0 && s->next_due - now <= EARLY)
            pump(s);
        if (s->next_due > 0 && (next == 0 || s->next_due < next))
            next = s->next_due;
    }
    S->in_pacing = 0;
    sched_at(S, next);
}

static void on_wake(void *arg)
{
    pump(arg);
}

static int session_play(struct session *s)
{
    struct rtsp_server *S = s->S;
    double now = timeutil_mono();
    int r = s->src->ops->start(s->src, on_wake, s);
    if (r < 0)
        return r;
    if (s->paused_at > 0) /* the RTP clock ran on during the pause */
        s->samples_total += (uint64_t)((now - s->paused_at) * s->src->sample_rate);
    s->playing = 1;
    s->started = 1;
    S->nplaying++;
    s->qhead = s->qlen = 0;
    s->media_pos = 0;
    s->have_last = 0;
    if (fill(s) < 0)
        return 0; /* the session is dead: the timer frees it */
    uint64_t buffered = 0;
    for (unsigned i = 0; i < s->qlen; i++)
        buffered += s->q[(s->qhead + i) % QMAX].samples;
    /* The source delivers in real time after its burst, each frame about
     * when it is heard; the schedule runs `cushion` behind that, so that
     * frames wait in the queue for their time rather than the other way
     * round. What the burst holds beyond the cushion goes out at once. */
    const double rate = s->src->sample_rate;
    uint64_t cushion = (uint64_t)(S->cushion * rate);
    uint64_t burst = buffered > cushion ? buffered - cushion : 0;
    if (S->startup >= 0 && (double)burst > S->startup * rate)
        burst = (uint64_t)(S->startup * rate); /* the rest is paced: more cushion */
    s->burst_end = burst;
    s->anchor = ceil((now - (double)burst / rate) / GRID) * GRID;
    s->next_sr = ev_now(S->loop) + (S->sr_interval < 1 ? S->sr_interval : 1.0);
    return 0;
}

static void session_pause(struct session *s)
{
    if (!s->playing)
        return;
    if (s->src->ops->stop)
        s->src->ops->stop(s->src);
    s->playing = 0;
    s->S->nplaying--;
    s->qhead = s->qlen = 0;
    /* the timeline continues from what was sent */
    s->paused_at = timeutil_mono();
    s->next_due = 0;
    ev_timer_stop(s->S->loop, &s->timer);
}

static int peer_addr(struct rtsp_server *S, struct httpd_conn *c, struct sockaddr_storage *out,
                     socklen_t *len)
{
    char host[64];
    const char *p = httpd_conn_peer(c);
    const char *end;
    if (*p == '[') {
        end = strchr(p, ']');
        if (!end)
            return -EINVAL;
        p++;
    } else {
        end = strrchr(p, ':');
        if (!end)
            return -EINVAL;
    }
    size_t n = (size_t)(end - p);
    if (n >= sizeof(host))
        return -EINVAL;
    memcpy(host, p, n);
    host[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (S->family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)out;
        a->sin_family = AF_INET;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -EAFNOSUPPORT;
        *len = sizeof(*a);
        return 0;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
    a->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
        char mapped[80];
        snprintf(mapped, sizeof(mapped), "::ffff:%s", host);
        if (inet_pton(AF_INET6, mapped, &a->sin6_addr) != 1)
            return -EINVAL;
    }
    *len = sizeof(*a);
    return 0;
}

static void set_port(struct sockaddr_storage *a, int port)
{
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *)a)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)a)->sin6_port = htons((uint16_t)port);
}

static struct session *session_new(struct rtsp_server *S, struct rconn *rc, struct rtsp_source *src,
                                   const struct rtsp_transport *tr, const char *url)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->S = S;
    s->rc = rc;
    s->src = src;
    s->tr = *tr;
    snprintf(s->url, sizeof(s->url), "%s", url);
    do {
        snprintf(s->id, sizeof(s->id), "%016" PRIX64, random64());
    } while (hmap_get(S->sessions, s->id));
    if (hmap_set(S->sessions, s->id, s, NULL) < 0) {
        free(s);
        return NULL;
    }
    uint64_t r = random64();
    s->ts_base = (uint32_t)r;
    rtp_payloader_init(&s->pay, &src->fmt, (uint32_t)(r >> 32), (uint16_t)random64(), S->mtu);
    s->tr.has_ssrc = 1;
    s->tr.ssrc = s->pay.ssrc;
    ev_timer_init(&s->timer, on_timer, 0., 0.);
    s->timer.data = s;
    s->last_seen = ev_now(S->loop);
    s->cnext = rc->sessions;
    rc->sessions = s;
    s->snext = S->all;
    if (S->all)
        S->all->sprev = s;
    S->all = s;
    S->nsessions++;
    S->st.sessions++;
    if (tr->tcp)
        S->ntcp++;
    httpd_conn_set_idle_timeout(rc->c, 0);
    return s;
}

static struct session *session_find(struct rtsp_server *S, const char *id)
{
    struct session *s = hmap_get(S->sessions, id);
    return s && !s->dead ? s : NULL;
}

/* ---- provider answers ---- */

static void describe_done(struct rtsp_open *op, struct rtsp_source *src)
{
    struct rconn *rc = op->rc;
    struct sdp_media m = {.fmt = src->fmt, .bitrate_kbps = src->bitrate_kbps};
    snprintf(m.control, sizeof(m.control), "trackID=0");
    if (src->fmtp)
        snprintf(m.fmtp, sizeof(m.fmtp), "%s", src->fmtp);
    else
        sdp_fmtp_default(&m);
    char host[64] = "0.0.0.0";
    const char *peer = httpd_conn_peer(rc->c);
    if (*peer == '[' && strchr(peer, ']'))
        host[0] = '\0'; /* IPv6: the SDP origin address is informational */
    struct sdp_session ss = {.id = random64() >> 1, .origin_addr = host, .name = src->name};
    char sdp[2048];
    int n = sdp_write(sdp, sizeof(sdp), &ss, &m);
    char headers[URL_MAX + 64];
    size_t ul = strlen(op->url);
    snprintf(headers, sizeof(headers), "Content-Base: %s%s\r\n", op->url,
             ul && op->url[ul - 1] == '/' ? "" : "/");
    if (n < 0)
        reply_text(rc, 500, NULL, "cannot describe this stream\n");
    else if (strncmp(op->url, "rtsp://", 7) == 0 || strncmp(op->url, "rtsps://", 8) == 0)
        reply(rc, 200, headers, "application/sdp", sdp, (size_t)n);
    else
        reply(rc, 200, NULL, "application/sdp", sdp, (size_t)n);
    if (src->ops->close)
        src->ops->close(src);
}

static void setup_done(struct rtsp_open *op, struct rtsp_source *src)
{
    struct rtsp_server *S = op->S;
    struct rconn *rc = op->rc;
    struct rtsp_transport tr = op->tr;
    struct sockaddr_storage to;
    socklen_t to_len = 0;
    if (!tr.tcp && peer_addr(S, rc->c, &to, &to_len) < 0) {
        reply_text(rc, 461, NULL, "no UDP transport to this address family\n");
        src->ops->close(src);
        return;
    }
    if (S->nsessions >= S->max_sessions) {
        reply_text(rc, 453, NULL, "too many sessions\n");
        src->ops->close(src);
        return;
    }
    struct session *s = session_new(S, rc, src, &tr, op->url);
    if (s)
        snprintf(s->path, sizeof(s->path), "%s", op->path);
    if (!s) {
        reply_text(rc, 503, NULL, "out of memory\n");
        src->ops->close(src);
        return;
    }
    if (!tr.tcp) {
        s->rtp_to = to;
        s->rtcp_to = to;
        s->to_len = to_len;
        set_port(&s->rtp_to, tr.client_port[0]);
        set_port(&s->rtcp_to, tr.client_port[1]);
        s->tr.server_port[0] = S->rtp_port;
        s->tr.server_port[1] = S->rtp_port + 1;
        s->tr.destination[0] = '\0';
    }
    char t[256], headers[512];
    if (rtsp_transport_write(&s->tr, t, sizeof(t)) < 0)
        t[0] = '\0';
    int n = snprintf(headers, sizeof(headers), "Transport: %s\r\n", t);
    session_header(s, headers + n, sizeof(headers) - (size_t)n);
    LOG(E_INFO, L_RTSP, "session %s (%s): set up for %s over %s, ssrc %08" PRIX32, s->id, src->name,
        httpd_conn_peer(rc->c), tr.tcp ? "tcp" : "udp", s->pay.ssrc);
    reply(rc, 200, headers, NULL, NULL, 0);
}

void rtsp_open_done(struct rtsp_open *op, int status, struct rtsp_source *src)
{
    struct rconn *rc = op->rc;
    if (rc)
        rc->pending = NULL;
    if (!rc) { /* cannot happen: a cancelled op is never answered */
        if (src && src->ops->close)
            src->ops->close(src);
        free(op);
        return;
    }
    if (status == 200 && src) {
        if (op->kind == OP_DESCRIBE)
            describe_done(op, src);
        else
            setup_done(op, src);
    } else {
        if (src && src->ops->close)
            src->ops->close(src);
        if (status < 400 || status > 599)
            status = 500;
        reply_text(rc, status, NULL, status == 404 ? "no such stream\n" : "try again later\n");
    }
    free(op);
}

void rtsp_open_set_data(struct rtsp_open *op, void *data)
{
    op->data = data;
}

void *rtsp_open_data(const struct rtsp_open *op)
{
    return op->data;
}

static void start_open(struct rconn *rc, const struct http_request *req, enum op_kind kind,
                       const char *path, const struct rtsp_transport *tr)
{
    struct rtsp_server *S = rc->S;
    struct rtsp_open *op = calloc(1, sizeof(*op));
    if (!op) {
        reply_text(rc, 503, NULL, "out of memory\n");
        return;
    }
    op->S = S;
    op->rc = rc;
    op->kind = kind;
    if (tr)
        op->tr = *tr;
    snprintf(op->url, sizeof(op->url), "%s", req->target);
    snprintf(op->path, sizeof(op->path), "%s", path);
    rc->pending = op;
    if (S->prov.open(S->prov_arg, op, path, req->query) < 0 && rc->pending == op) {
        rc->pending = NULL;
        free(op);
        reply_text(rc, 503, NULL, "try again later\n");
    }
}

/* ---- connections ---- */

static void on_conn_close(struct httpd_conn *c, void *arg)
{
    struct rconn *rc = arg;
    struct rtsp_server *S = rc->S;
    if (rc->pending) {
        if (S->prov.cancel)
            S->prov.cancel(S->prov_arg, rc->pending);
        free(rc->pending);
        rc->pending = NULL;
    }
    while (rc->sessions) {
        struct session *s = rc->sessions;
        rc->sessions = s->cnext;
        s->rc = NULL; /* the connection is going: no more interleaved data */
        if (!s->tr.tcp && s->started)
            send_sr(s, 1);
        session_free(s, s->dead ? s->dead_reason : CR_CONNECTION);
    }
    hmap_remove(S->conns, rc->key);
    free(rc);
}

static struct rconn *conn_get(struct rtsp_server *S, struct httpd_conn *c)
{
    char key[24];
    snprintf(key, sizeof(key), "%" PRIu64, httpd_conn_id(c));
    struct rconn *rc = hmap_get(S->conns, key);
    if (rc)
        return rc;
    rc = calloc(1, sizeof(*rc));
    if (!rc)
        return NULL;
    rc->S = S;
    rc->c = c;
    memcpy(rc->key, key, sizeof(key));
    if (hmap_set(S->conns, rc->key, rc, NULL) < 0) {
        free(rc);
        return NULL;
    }
    httpd_conn_set_callbacks(c, NULL, on_conn_close, rc);
    httpd_conn_set_idle_timeout(c, S->timeout);
    return rc;
}

/* ---- methods ---- */

/* The provider's path for a SETUP URL: without "/trackID=0". -ENOENT for
 * another track. */
static int strip_control(const char *path, char *out, size_t cap)
{
    size_t n = strlen(path);
    if (n >= cap)
        return -ENOENT;
    memcpy(out, path, n + 1);
    const char *slash = strrchr(out, '/');
    if (slash && strncmp(slash, "/trackID=", 9) == 0) {
        if (strcmp(slash + 9, "0") != 0)
            return -ENOENT;
        out[slash - out] = '\0';
    }
    n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    return 0;
}

static void do_setup(struct rconn *rc, const struct http_request *req, const char *sid)
{
    struct rtsp_server *S = rc->S;
    if (*sid) {
        struct session *s = session_find(S, sid);
        if (!s)
            reply_text(rc, 454, NULL, NULL);
        else if (s->playing)
            reply_text(rc, 455, "Allow: PLAY, PAUSE, GET_PARAMETER, TEARDOWN\r\n", NULL);
        else
            reply_text(rc, 459, NULL, "a session carries one stream\n");
        return;
    }
    const char *tv = http_request_header(req, "Transport");
    if (!tv) {
        reply_text(rc, 400, NULL, "SETUP needs a Transport header\n");
        return;
    }
    struct rtsp_transport tr;
    int r = rtsp_transport_parse(tv, &tr);
    if (r == -ENOTSUP || (r == 0 && !tr.tcp && S->rtp_fd < 0)) {
        reply_text(rc, 461, NULL, NULL);
        return;
    }
    if (r < 0) {
        reply_text(rc, 400, NULL, "malformed Transport header\n");
        return;
    }
    if (S->nsessions >= S->max_sessions) {
        reply_text(rc, 453, NULL, "too many sessions\n");
        return;
    }
    char path[URL_MAX];
    if (strip_control(req->path, path, sizeof(path)) < 0) {
        reply_text(rc, 404, NULL, "no such stream\n");
        return;
    }
    start_open(rc, req, OP_SETUP, path, &tr);
}

static void do_play(struct rconn *rc, const struct http_request *req, struct session *s)
{
    const char *range = http_request_header(req, "Range");
    if (range && strncmp(range, "npt=", 4) != 0 && strncmp(range, "clock=", 6) != 0 &&
        strncmp(range, "smpte", 5) != 0) {
        reply_text(rc, 457, NULL, NULL);
        return;
    }
    if (!s->playing) {
        int r = session_play(s);
        if (r < 0) {
            reply_text(rc, r == -ENOENT ? 404 : 503, NULL,
                       r == -ENOENT ? "no such stream\n" : "try again later\n");
            return;
        }
    }
    char headers[URL_MAX + 256];
    int n = snprintf(headers, sizeof(headers),
                     "Range: npt=now-\r\nRTP-Info: url=%s;seq=%u;rtptime=%" PRIu32 "\r\n", s->url,
                     s->pay.seq, rtp_ts_at(s, s->samples_total));
    session_header(s, headers + n, sizeof(headers) - (size_t)n);
    reply(rc, 200, headers, NULL, NULL, 0);
    LOG(E_DEBUG, L_RTSP, "session %s: PLAY", s->id);
    arm(s, 0); /* the first frames go right after the answer */
}

static void on_request(struct httpd_conn *c, const struct http_request *req, void *arg)
{
    struct rtsp_server *S = arg;
    S->st.requests++;
    struct rconn *rc = conn_get(S, c);
    if (!rc) {
        S->st.errors++;
        httpd_respond(c, 503, NULL, NULL, 0);
        return;
    }
    const char *m = req->method;
    if (!http_request_header(req, "CSeq")) {
        reply_text(rc, 400, NULL, "CSeq is missing\n");
        return;
    }
    const char *require = http_request_header(req, "Require");
    if (require) {
        char h[512];
        snprintf(h, sizeof(h), "Unsupported: %.400s\r\n", require);
        reply_text(rc, 551, h, NULL);
        return;
    }
    char sid[40];
    if (session_id_of(req, sid, sizeof(sid)) < 0) {
        reply_text(rc, 454, NULL, NULL);
        return;
    }
    struct session *s = *sid ? session_find(S, sid) : NULL;
    if (s)
        s->last_seen = ev_now(S->loop);

    if (strcmp(m, "OPTIONS") == 0) {
        if (*sid && !s)
            reply_text(rc, 454, NULL, NULL);
        else
            reply(rc, 200, "Public: " METHODS "\r\n", NULL, NULL, 0);
    } else if (strcmp(m, "DESCRIBE") == 0) {
        char path[URL_MAX];
        if (strip_control(req->path, path, sizeof(path)) < 0)
            reply_text(rc, 404, NULL, "no such stream\n");
        else
            start_open(rc, req, OP_DESCRIBE, path, NULL);
    } else if (strcmp(m, "SETUP") == 0) {
        do_setup(rc, req, sid);
    } else if (strcmp(m, "PLAY") == 0 || strcmp(m, "PAUSE") == 0 || strcmp(m, "TEARDOWN") == 0) {
        char path[URL_MAX];
        if (!s) {
            reply_text(rc, 454, NULL, NULL);
        } else if (strcmp(req->path, "*") != 0 &&
                   (strip_control(req->path, path, sizeof(path)) < 0 ||
                    strcmp(path, s->path) != 0)) {
            /* another stream's URL: this session has only its own */
            reply_text(rc, 404, NULL, "no such stream in this session\n");
        } else if (m[1] == 'L') {
            do_play(rc, req, s);
        } else if (m[1] == 'A') {
            char h[128];
            session_pause(s);
            session_header(s, h, sizeof(h));
            reply(rc, 200, h, NULL, NULL, 0);
        } else {
            reply(rc, 200, NULL, NULL, NULL, 0);
            if (s->started)
                send_sr(s, 1);
            s->started = 0;
            session_free(s, CR_TEARDOWN);
        }
    } else if (strcmp(m, "GET_PARAMETER") == 0) {
        if (*sid && !s) {
            reply_text(rc, 454, NULL, NULL);
        } else {
            char h[128] = "";
            if (s)
                session_header(s, h, sizeof(h));
            reply(rc, 200, h[0] ? h : NULL, NULL, NULL, 0);
        }
    } else if (strcmp(m, "ANNOUNCE") == 0 || strcmp(m, "RECORD") == 0 ||
               strcmp(m, "REDIRECT") == 0 || strcmp(m, "SET_PARAMETER") == 0) {
        reply_text(rc, 405, "Allow: " METHODS "\r\n", NULL);
    } else {
        reply_text(rc, 501, "Public: " METHODS "\r\n", NULL);
    }
}

/* ---- RTCP in ---- */

static void rtcp_in(struct rtsp_server *S, struct session *known, const uint8_t *data, size_t len,
                    const struct sockaddr_storage *from)
{
    struct rtcp_info info;
    if (rtcp_parse(data, len, &info) < 0) {
        S->st.rtcp_bad++;
        return;
    }
    S->st.rtcp_recv++;
    struct session *s = known;
    if (!s && from) {
        for (struct session *x = S->all; x && !s; x = x->snext) {
            if (x->tr.tcp || x->rtcp_to.ss_family != from->ss_family)
                continue;
            if (from->ss_family == AF_INET) {
                const struct sockaddr_in *a = (const void *)from, *b = (const void *)&x->rtcp_to;
                if (a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr)
                    s = x;
            } else {
                const struct sockaddr_in6 *a = (const void *)from, *b = (const void *)&x->rtcp_to;
                if (a->sin6_port == b->sin6_port &&
                    memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0)
                    s = x;
            }
        }
    }
    for (int i = 0; !s && i < info.nblocks; i++)
        for (struct session *x = S->all; x && !s; x = x->snext)
            if (x->pay.ssrc == info.blocks[i].ssrc && !x->tr.tcp)
                s = x;
    if (!s || s->dead)
        return;
    s->last_seen = ev_now(S->loop);
    for (int i = 0; i < info.nblocks; i++) {
        if (info.blocks[i].ssrc != s->pay.ssrc)
            continue;
        s->have_rr = 1;
        s->rr = info.blocks[i];
        s->rtt = rtcp_rtt(rtcp_ntp_mid(rtcp_ntp_now()), s->rr.lsr, s->rr.dlsr);
    }
    if (info.has_rrtr) {
        /* The client wants its round trip too (RFC 3611 §4.4-4.5): answer
         * with a DLRR block now, and count that as the next report. */
        double now = timeutil_mono();
        s->have_rrtr = 1;
        s->rrtr_ssrc = info.rrtr_ssrc;
        s->rrtr_mid = rtcp_ntp_mid(info.rrtr_ntp);
        s->rrtr_at = now;
        if (s->playing && now - s->last_rtcp_out >= RRTR_REPLY_GAP) {
            send_sr(s, 0);
            s->next_sr = ev_now(S->loop) + rtcp_interval(S->sr_interval);
        }
    }
    if (info.bye)
        LOG(E_DEBUG, L_RTSP, "session %s: RTCP BYE from the client", s->id);
}

static void on_udp(struct ev_loop *loop, ev_io *w, int revents)
{
    struct rtsp_server *S = w->data;
    uint8_t b[2048];
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(w->fd, b, sizeof(b), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n < 0)
            break;
        if (w->fd == S->rtcp_fd)
            rtcp_in(S, NULL, b, (size_t)n, &from);
        /* RTP port: clients' NAT "punch" packets; nothing to do */
    }
}

static void on_frame(struct httpd_conn *c, unsigned channel, const uint8_t *data, size_t len,
                     void *arg)
{
    struct rtsp_server *S = arg;
    char key[24];
    snprintf(key, sizeof(key), "%" PRIu64, httpd_conn_id(c));
    struct rconn *rc = hmap_get(S->conns, key);
    if (!rc)
        return;
    for (struct session *s = rc->sessions; s; s = s->cnext) {
        if (!s->tr.tcp)
            continue;
        if ((int)channel == s->tr.interleaved[1]) {
            rtcp_in(S, s, data, len, NULL);
            return;
        }
        if ((int)channel == s->tr.interleaved[0]) {
            s->last_seen = ev_now(S->loop);
            return;
        }
    }
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rtsp_server *S = w->data;
    double now = ev_now(loop);
    for (struct session *s = S->all, *next; s; s = next) {
        next = s->snext;
        if (s->dead)
            continue;
        if (now - s->last_seen > S->timeout) {
            LOG(E_INFO, L_RTSP, "session %s (%s): no keep-alive or RTCP for %.0f s", s->id,
                s->src->name, now - s->last_seen);
            session_kill(s, CR_TIMEOUT);
            continue;
        }
        if (s->playing && s->have_last && now >= s->next_sr) {
            send_sr(s, 0);
            s->next_sr = now + rtcp_interval(S->sr_interval);
        }
    }
}

/* ---- metrics ---- */

static int family(struct buf *out, const struct rtsp_server *S, char *name, size_t cap,
                  const char *what, const char *type, const char *help)
{
    snprintf(name, cap, "%s_%s", S->prefix, what);
    return metrics_family(out, name, type, help);
}

static int collect(struct buf *out, void *arg)
{
    struct rtsp_server *S = arg;
    char n[128];
    int r = family(out, S, n, sizeof(n), "sessions", "gauge", "RTSP sessions now, by transport.");
    if (!r)
        r = metrics_sample(out, n, "transport", "udp", (double)(S->nsessions - S->ntcp));
    if (!r)
        r = metrics_sample(out, n, "transport", "tcp", (double)S->ntcp);
    if (!r)
        r = family(out, S, n, sizeof(n), "sessions_playing", "gauge", "RTSP sessions playing.");
    if (!r)
        r = metrics_sample(out, n, NULL, NULL, (double)S->nplaying);
    if (!r)
        r = family(out, S, n, sizeof(n), "sessions_total", "counter", "RTSP sessions set up.");
    if (!r)
        r = metrics_sample(out, n, NULL, NULL, (double)S->st.sessions);
    if (!r)
        r = family(out, S, n, sizeof(n), "sessions_closed_total", "counter",
                   "RTSP sessions ended, by reason.");
    for (int i = 0; i < CR_COUNT && !r; i++)
        r = metrics_sample(out, n, "reason", reason_names[i], (double)S->st.closed[i]);
    struct {
        const char *what, *help;
        uint64_t v;
    } counters[] = {
        {"requests_total", "RTSP requests.", S->st.requests},
        {"request_errors_total", "RTSP requests answered 4xx/5xx.", S->st.errors},
        {"rtp_packets_total", "RTP packets sent.", S->st.packets},
        {"rtp_octets_total", "RTP bytes sent (headers included).", S->st.octets},
        {"rtp_dropped_total", "RTP packets not sent (socket or TCP queue full).", S->st.dropped},
        {"rtcp_sent_total", "RTCP compound packets sent.", S->st.rtcp_sent},
        {"rtcp_received_total", "Valid RTCP compound packets received.", S->st.rtcp_recv},
        {"rtcp_bad_total", "Invalid RTCP packets received.", S->st.rtcp_bad},
        {"pacing_resyncs_total", "Times a late source re-anchored a session's schedule.",
         S->st.resyncs},
        {"pacing_packets_total", "Frames counted in the pacing error.", S->hist_n},
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]) && !r; i++) {
        r = family(out, S, n, sizeof(n), counters[i].what, "counter", counters[i].help);
        if (!r)
            r = metrics_sample(out, n, NULL, NULL, (double)counters[i].v);
    }
    if (!r)
        r = family(out, S, n, sizeof(n), "pacing_error_seconds", "gauge",
                   "|Frame send time - its due time| (start-up bursts excluded), quantiles.");
    if (!r)
        r = metrics_sample(out, n, "quantile", "0.5", pacing_quantile(S, 0.5));
    if (!r)
        r = metrics_sample(out, n, "quantile", "0.99", pacing_quantile(S, 0.99));
    if (!r)
        r = metrics_sample(out, n, "quantile", "1", S->hist_max);
    static const char *const rr_what[] = {"rr_fraction_lost", "rr_cumulative_lost",
                                          "rr_jitter_seconds", "rtt_seconds"};
    static const char *const rr_help[] = {
        "Fraction lost in the client's last receiver report, per session.",
        "Packets lost as the client's last receiver report counts them, per session.",
        "Interarrival jitter from the client's last receiver report, per session.",
        "Round-trip time from the client's last receiver report, per session."};
    for (int k = 0; k < 4 && !r; k++) {
        r = family(out, S, n, sizeof(n), rr_what[k], "gauge", rr_help[k]);
        for (struct session *s = S->all; s && !r; s = s->snext) {
            if (!s->have_rr)
                continue;
            double v = k == 0   ? s->rr.fraction_lost / 256.0
                       : k == 1 ? (double)s->rr.cumulative_lost
                       : k == 2 ? (double)s->rr.jitter / s->src->fmt.clock_rate
                                : s->rtt;
            r = metrics_sample(out, n, "session", s->id, v);
        }
    }
    return r;
}

/* ---- module ---- */

static int open_udp(struct rtsp_server *S, const char *host, int port)
{
    struct sockaddr_storage a;
    socklen_t len;
    memset(&a, 0, sizeof(a));
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a;
        char h[64];
        snprintf(h, sizeof(h), "%s", host[0] == '[' ? host + 1 : host);
        char *e = strchr(h, ']');
        if (e)
            *e = '\0';
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, h, &a6->sin6_addr) != 1)
            return -EINVAL;
        len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&a;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return -EINVAL;
        len = sizeof(*a4);
    }
    S->family = a.ss_family;
    int fd = socket(a.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (a.ss_family == AF_INET6) {
        int off = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    }
    /* Room for a burst to 100 sessions without EAGAIN. */
    int sndbuf = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (bind(fd, (struct sockaddr *)&a, len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

struct rtsp_server *rtsp_server_new(struct ev_loop *loop, struct httpd *h,
                                    const struct rtsp_server_options *opt,
                                    const struct rtsp_provider *prov, void *prov_arg)
{
    struct rtsp_server *S = calloc(1, sizeof(*S));
    if (!S) {
        errno = ENOMEM;
        return NULL;
    }
    S->loop = loop;
    S->httpd = h;
    S->prov = *prov;
    S->prov_arg = prov_arg;
    S->timeout = opt->session_timeout_s > 0 ? opt->session_timeout_s : 60;
    S->sr_interval = opt->sr_interval_s > 0 ? opt->sr_interval_s : 5;
    S->live = opt->live;
    S->cushion = opt->cushion_s > 0 ? opt->cushion_s : opt->cushion_s < 0 ? 0 : 0.1;
    S->startup = opt->startup_s == 0 ? -1 : opt->startup_s < 0 ? 0 : opt->startup_s;
    S->max_sessions = opt->max_sessions ? opt->max_sessions : 1024;
    S->mtu = opt->mtu;
    snprintf(S->prefix, sizeof(S->prefix), "%s",
             opt->metrics_prefix ? opt->metrics_prefix : "imes_rtsp");
    if (opt->cname) {
        snprintf(S->cname, sizeof(S->cname), "%s", opt->cname);
    } else {
        char host[128] = "localhost";
        gethostname(host, sizeof(host) - 1);
        snprintf(S->cname, sizeof(S->cname), "imes@%s", host);
    }
    S->rtp_fd = S->rtcp_fd = -1;
    S->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (S->tfd < 0) {
        LOG(E_ERROR, L_RTSP, "timerfd: %s", strerror(errno));
        free(S);
        return NULL;
    }
    S->family = AF_INET;
    S->conns = hmap_new();
    S->sessions = hmap_new();
    if (!S->conns || !S->sessions) {
        errno = ENOMEM;
        goto fail;
    }
    if (opt->rtp_port > 0) {
        const char *host = opt->bind_host ? opt->bind_host : "0.0.0.0";
        int fd = open_udp(S, host, opt->rtp_port);
        if (fd < 0) {
            LOG(E_ERROR, L_RTSP, "cannot bind RTP to %s port %d: %s", host, opt->rtp_port,
                strerror(-fd));
            errno = -fd;
            goto fail;
        }
        S->rtp_fd = fd;
        fd = open_udp(S, host, opt->rtp_port + 1);
        if (fd < 0) {
            LOG(E_ERROR, L_RTSP, "cannot bind RTCP to %s port %d: %s", host, opt->rtp_port + 1,
                strerror(-fd));
            errno = -fd;
            goto fail;
        }
        S->rtcp_fd = fd;
        S->rtp_port = opt->rtp_port;
        ev_io_init(&S->rtp_io, on_udp, S->rtp_fd, EV_READ);
        ev_io_init(&S->rtcp_io, on_udp, S->rtcp_fd, EV_READ);
        S->rtp_io.data = S->rtcp_io.data = S;
        ev_io_start(loop, &S->rtp_io);
        ev_io_start(loop, &S->rtcp_io);
    }
    ev_timer_init(&S->sweep, on_sweep, SWEEP, SWEEP);
    S->sweep.data = S;
    ev_timer_start(loop, &S->sweep);
    ev_io_init(&S->tfd_io, on_pacing, S->tfd, EV_READ);
    S->tfd_io.data = S;
    ev_io_start(loop, &S->tfd_io);
    httpd_set_rtsp_handler(h, on_request, on_frame, S);
    metrics_add_collector(collect, S);
    LOG(E_INFO, L_RTSP, "RTSP: RTP from port %d, RTCP %d, session timeout %.0f s", S->rtp_port,
        S->rtp_port ? S->rtp_port + 1 : 0, S->timeout);
    return S;
fail:
    if (S->rtp_fd >= 0)
        close(S->rtp_fd);
    close(S->tfd);
    hmap_free(&S->conns, NULL);
    hmap_free(&S->sessions, NULL);
    free(S);
    return NULL;
}

void rtsp_server_free(struct rtsp_server **sp)
{
    struct rtsp_server *S = sp ? *sp : NULL;
    if (!S)
        return;
    httpd_set_rtsp_handler(S->httpd, NULL, NULL, NULL);
    metrics_remove_collector(collect, S);
    const char *k;
    void *v;
    /* Connections stay with httpd; forget them (and their pending lookups). */
    for (size_t i = 0; hmap_next(S->conns, &i, &k, &v);) {
        struct rconn *rc = v;
        httpd_conn_set_callbacks(rc->c, NULL, NULL, NULL);
        if (rc->pending) {
            if (S->prov.cancel)
                S->prov.cancel(S->prov_arg, rc->pending);
            free(rc->pending);
        }
        for (struct session *s = rc->sessions; s; s = s->cnext)
            s->rc = NULL;
        rc->sessions = NULL;
        hmap_remove(S->conns, k);
        free(rc);
    }
    while (S->all)
        session_free(S->all, CR_SHUTDOWN);
    ev_timer_stop(S->loop, &S->sweep);
    ev_io_stop(S->loop, &S->tfd_io);
    close(S->tfd);
    if (S->rtp_fd >= 0) {
        ev_io_stop(S->loop, &S->rtp_io);
        close(S->rtp_fd);
    }
    if (S->rtcp_fd >= 0) {
        ev_io_stop(S->loop, &S->rtcp_io);
        close(S->rtcp_fd);
    }
    hmap_free(&S->conns, NULL);
    hmap_free(&S->sessions, NULL);
    free(S);
    *sp = NULL;
}

size_t rtsp_server_sessions(const struct rtsp_server *S)
{
    return S->nsessions;
}

size_t rtsp_server_playing(const struct rtsp_server *S)
{
    return S->nplaying;
}

int rtsp_server_rtp_port(const struct rtsp_server *S)
{
    return S->rtp_port;
}
