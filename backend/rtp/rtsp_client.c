/*
 * The RTSP client (see rtsp_client.h).
 *
 *   connect ─▶ DESCRIBE ─▶ SETUP ─▶ PLAY ─▶ playing ──(no UDP RTP in udp_wait_s)──┐
 *                            ▲                                                  │
 *                            └──────────── TEARDOWN, SETUP interleaved ◀────────┘
 *
 * One request is outstanding at a time (keep-alives included), so an answer
 * is matched by its CSeq against the one request in flight. The connection's
 * input is one buffer that holds answers and interleaved frames alike.
 * Callbacks that may free the client (end) are only ever called from a
 * timer or I/O callback, and nothing of the client is touched after them.
 */
#include "rtp/rtsp_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "rtp/rtsp_transport.h"

#define MAX_INPUT (RTSP_CLIENT_MAX_HEAD + RTSP_CLIENT_MAX_BODY + 65536 + 4)
#define UDP_MAX   2048

enum step { S_CONNECT, S_DESCRIBE, S_SETUP, S_PLAY, S_PLAYING, S_TEARDOWN, S_DONE };

struct rtsp_client {
    struct ev_loop *loop;
    struct rtsp_client_options o;
    struct rtsp_client_callbacks cb;
    void *arg;
    char *url, *cname;
    char host[64];
    int port;
    struct sockaddr_storage addr;
    socklen_t addrlen;

    int fd;
    ev_io rio, wio;
    struct buf in, out;
    enum step step;
    int cseq;
    int waiting;             /* a request is in flight */
    const char *waiting_for; /* its method, for messages */
    double sent_at;
    ev_timer timeout;

    struct sdp_media media;
    char base[512];
    char control[600];
    char session[128];
    int session_timeout;
    int tcp;

    int udp[2];
    int udp_port[2];
    int server_port[2];
    ev_io uio[2];
    ev_timer udp_wait;
    ev_timer keepalive;
    ev_timer rr;
    ev_timer rx; /* nothing received while playing */
    double last_rx;

    struct rtcp_recv_stats rs;
    int have_rs;
    uint32_t ssrc;
    int have_ssrc;
    uint64_t last_sr_ntp;
    double last_sr_at;

    struct rtsp_client_stats st;
    int ended;
};

/* ---- pure helpers ---- */

int rtsp_url_split(const char *url, char *host, size_t hostlen, int *port)
{
    if (!url || strncasecmp(url, "rtsp://", 7) != 0)
        return -EINVAL;
    const char *h = url + 7, *end;
    const char *path = strchr(h, '/');
    const char *stop = path ? path : h + strlen(h);
    const char *pp;
    if (*h == '[') {
        end = memchr(h, ']', (size_t)(stop - h));
        if (!end)
            return -EINVAL;
        h++;
        pp = end + 1;
    } else {
        end = memchr(h, ':', (size_t)(stop - h));
        if (!end)
            end = stop;
        pp = end;
    }
    if (end == h || (size_t)(end - h) >= hostlen)
        return -EINVAL;
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
    *port = 554;
    if (pp < stop) {
        if (*pp != ':' || pp + 1 == stop)
            return -EINVAL;
        long v = 0;
        for (const char *p = pp + 1; p < stop; p++) {
            if (*p < '0' || *p > '9' || v > 65535)
                return -EINVAL;
            v = v * 10 + (*p - '0');
        }
        if (v < 1 || v > 65535)
            return -EINVAL;
        *port = (int)v;
    }
    return 0;
}

int rtsp_control_url(const char *base, const char *control, char *out, size_t outlen)
{
    int n;
    if (control && strncasecmp(control, "rtsp://", 7) == 0)
        n = snprintf(out, outlen, "%s", control);
    else if (!control || !*control || strcmp(control, "*") == 0)
        n = snprintf(out, outlen, "%s", base);
    else {
        size_t bl = strlen(base);
        int slash = bl > 0 && base[bl - 1] == '/';
        n = snprintf(out, outlen, "%s%s%s", base, slash ? "" : "/", control);
    }
    return n < 0 || (size_t)n >= outlen ? -ENOSPC : 0;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

int rtsp_response_parse(const uint8_t *d, size_t len, struct rtsp_response *r)
{
    memset(r, 0, sizeof(*r));
    r->cseq = -1;
    if (len == 0)
        return 0;
    if (d[0] == '$') {
        if (len < 4)
            return 0;
        size_t n = (size_t)d[2] << 8 | d[3];
        if (len < 4 + n)
            return 0;
        r->is_frame = 1;
        r->channel = d[1];
        r->data = d + 4;
        r->len = n;
        return (int)(4 + n);
    }
    /* The head ends at the first empty line (CRLF or LF). */
    size_t scan = len < RTSP_CLIENT_MAX_HEAD ? len : RTSP_CLIENT_MAX_HEAD;
    size_t head_end = 0, body_at = 0;
    for (size_t i = 0; i < scan; i++) {
        if (d[i] != '\n')
            continue;
        if (i + 1 < len && d[i + 1] == '\n') {
            head_end = i + 1;
            body_at = i + 2;
            break;
        }
        if (i + 2 < len && d[i + 1] == '\r' && d[i + 2] == '\n') {
            head_end = i + 1;
            body_at = i + 3;
            break;
        }
    }
    if (!body_at)
        return len >= RTSP_CLIENT_MAX_HEAD ? -E2BIG : 0;
    if (head_end < 13 || memcmp(d, "RTSP/1.0 ", 9) != 0)
        return -EINVAL;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (d[i] < '0' || d[i] > '9')
            return -EINVAL;
        status = status * 10 + (d[i] - '0');
    }
    if (d[12] != ' ' && d[12] != '\r' && d[12] != '\n')
        return -EINVAL;
    if (status < 100)
        return -EINVAL;
    r->status = status;
    long clen = 0;
    int have_clen = 0;
    size_t pos = 0;
    while (pos < head_end && d[pos] != '\n')
        pos++;
    pos++; /* past the status line */
    while (pos < head_end) {
        size_t e = pos;
        while (e < head_end && d[e] != '\n')
            e++;
        size_t le = e;
        if (le > pos && d[le - 1] == '\r')
            le--;
        const uint8_t *colon = memchr(d + pos, ':', le - pos);
        if (!colon || colon == d + pos)
            return -EINVAL;
        size_t nlen = (size_t)(colon - (d + pos));
        const char *name = (const char *)d + pos;
        const char *v = (const char *)colon + 1;
        size_t vlen = (size_t)((const char *)d + le - v);
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        for (size_t i = 0; i < vlen; i++)
            if ((unsigned char)v[i] < 0x20 && v[i] != '\t')
                return -EINVAL;
#define IS(h) (nlen == sizeof(h) - 1 && strncasecmp(name, h, nlen) == 0)
        if (IS("Content-Length")) {
            if (have_clen || vlen == 0 || vlen > 9)
                return -EINVAL;
            clen = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -EINVAL;
                clen = clen * 10 + (v[i] - '0');
            }
            have_clen = 1;
        } else if (IS("CSeq")) {
            long cs = 0;
            if (vlen == 0 || vlen > 9)
                return -EINVAL;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -EINVAL;
                cs = cs * 10 + (v[i] - '0');
            }
            r->cseq = (int)cs;
        } else if (IS("Session")) {
            const char *semi = memchr(v, ';', vlen);
            size_t idl = semi ? (size_t)(semi - v) : vlen;
            if (idl == 0 || idl >= sizeof(r->session))
                return -EINVAL;
            copy_value(r->session, sizeof(r->session), v, idl);
            if (semi) {
                const char *t = semi + 1;
                size_t tl = vlen - idl - 1;
                while (tl && *t == ' ')
                    t++, tl--;
                if (tl > 8 && strncasecmp(t, "timeout=", 8) == 0) {
                    int to = 0;
                    for (size_t i = 8; i < tl && t[i] >= '0' && t[i] <= '9' && to < 100000; i++)
                        to = to * 10 + (t[i] - '0');
                    r->session_timeout = to;
                }
            }
        } else if (IS("Transport")) {
            if (vlen >= sizeof(r->transport))
                return -EINVAL;
            copy_value(r->transport, sizeof(r->transport), v, vlen);
        } else if (IS("Content-Base")) {
            copy_value(r->content_base, sizeof(r->content_base), v, vlen);
        } else if (IS("Content-Type")) {
            copy_value(r->content_type, sizeof(r->content_type), v, vlen);
        }
#undef IS
        pos = e + 1;
    }
    if (clen > RTSP_CLIENT_MAX_BODY)
        return -E2BIG;
    if (len - body_at < (size_t)clen)
        return 0;
    r->body = (const char *)d + body_at;
    r->body_len = (size_t)clen;
    return (int)(body_at + (size_t)clen);
}

/* ---- the session ---- */

static void end_session(struct rtsp_client *c, int err, const char *why);

static void udp_close(struct rtsp_client *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->udp[i] >= 0) {
            ev_io_stop(c->loop, &c->uio[i]);
            close(c->udp[i]);
            c->udp[i] = -1;
        }
    }
}

static void conn_close(struct rtsp_client *c)
{
    if (c->fd >= 0) {
        ev_io_stop(c->loop, &c->rio);
        ev_io_stop(c->loop, &c->wio);
        close(c->fd);
        c->fd = -1;
    }
    udp_close(c);
    ev_timer_stop(c->loop, &c->timeout);
    ev_timer_stop(c->loop, &c->udp_wait);
    ev_timer_stop(c->loop, &c->keepalive);
    ev_timer_stop(c->loop, &c->rr);
    ev_timer_stop(c->loop, &c->rx);
}

static void end_session(struct rtsp_client *c, int err, const char *why)
{
    if (c->ended)
        return;
    c->ended = 1;
    c->step = S_DONE;
    c->st.playing = 0;
    conn_close(c);
    LOG(E_INFO, L_RTSP, "rtsp client %s: session over: %s", c->url, why);
    if (c->cb.end)
        c->cb.end(c->arg, err, why); /* may free c: nothing after this */
}

static int flush_out(struct rtsp_client *c)
{
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            return -errno;
        }
        buf_consume(&c->out, (size_t)n);
    }
    if (c->out.len > 0 && !ev_is_active(&c->wio))
        ev_io_start(c->loop, &c->wio);
    else if (c->out.len == 0 && ev_is_active(&c->wio))
        ev_io_stop(c->loop, &c->wio);
    return 0;
}

static int send_request(struct rtsp_client *c, const char *method, const char *url,
                        const char *extra)
{
    c->cseq++;
    int r = buf_printf(&c->out, "%s %s RTSP/1.0\r\nCSeq: %d\r\nUser-Agent: IMES-Matriz\r\n%s%s%s",
                       method, url, c->cseq, c->session[0] ? "Session: " : "", c->session,
                       c->session[0] ? "\r\n" : "");
    if (r == 0 && extra)
        r = buf_puts(&c->out, extra);
    if (r == 0)
        r = buf_puts(&c->out, "\r\n");
    if (r < 0)
        return r;
    c->waiting = 1;
    c->waiting_for = method;
    c->sent_at = timeutil_mono();
    ev_timer_stop(c->loop, &c->timeout);
    ev_timer_set(&c->timeout, c->o.timeout_s, 0.);
    ev_timer_start(c->loop, &c->timeout);
    return flush_out(c);
}

static int udp_open_pair(struct rtsp_client *c)
{
    int span = c->o.udp_max - c->o.udp_min + 1;
    if (span < 2)
        return -ENOSPC;
    int tries = span / 2, start = (int)((unsigned)rand() % (unsigned)(span / 2));
    for (int k = 0; k < tries; k++) {
        int base = c->o.udp_min + ((start + k) % (span / 2)) * 2;
        if (base % 2)
            base++;
        if (base + 1 > c->o.udp_max)
            continue;
        int ok = 1;
        for (int i = 0; i < 2 && ok; i++) {
            struct sockaddr_storage ss;
            memset(&ss, 0, sizeof(ss));
            socklen_t sl;
            if (c->addr.ss_family == AF_INET6) {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons((uint16_t)(base + i));
                s6->sin6_addr = in6addr_any;
                if (c->o.bind_host)
                    inet_pton(AF_INET6, c->o.bind_host, &s6->sin6_addr);
                sl = sizeof(*s6);
            } else {
                struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
                s4->sin_family = AF_INET;
                s4->sin_port = htons((uint16_t)(base + i));
                s4->sin_addr.s_addr = htonl(INADDR_ANY);
                if (c->o.bind_host && inet_pton(AF_INET, c->o.bind_host, &s4->sin_addr) != 1)
                    s4->sin_addr.s_addr = htonl(INADDR_ANY);
                sl = sizeof(*s4);
            }
            c->udp[i] = socket(c->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->udp[i] < 0 || bind(c->udp[i], (struct sockaddr *)&ss, sl) < 0)
                ok = 0;
        }
        if (ok) {
            c->udp_port[0] = base;
            c->udp_port[1] = base + 1;
            /* Room for bursts: a few hundred ms of packets. */
            int sz = 256 * 1024;
            setsockopt(c->udp[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
            return 0;
        }
        udp_close(c);
    }
    return -EADDRINUSE;
}

static void send_rtcp(struct rtsp_client *c, const uint8_t *b, size_t n)
{
    if (c->tcp) {
        uint8_t h[4] = {'$', 1, (uint8_t)(n >> 8), (uint8_t)n};
        if (c->out.len < 65536 && buf_append(&c->out, h, 4) == 0 && buf_append(&c->out, b, n) == 0)
            flush_out(c);
        return;
    }
    if (c->udp[1] < 0 || !c->server_port[1])
        return;
    struct sockaddr_storage to = c->addr;
    if (to.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&to)->sin6_port = htons((uint16_t)c->server_port[1]);
    else
        ((struct sockaddr_in *)&to)->sin_port = htons((uint16_t)c->server_port[1]);
    sendto(c->udp[1], b, n, 0, (struct sockaddr *)&to, c->addrlen);
}

/* Our own SSRC: any fixed value will do for a receiver; the low bits of our
 * RTP port keep two links of one peer apart in the server's stats. */
static uint32_t my_ssrc(const struct rtsp_client *c)
{
    return 0x4d5a0000u | (uint32_t)(c->udp_port[0] & 0xffff);
}

static void rr_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rtsp_client *c = w->data;
    uint8_t b[RTCP_MAX_PACKET];
    struct rtcp_block blk;
    int nb = 0, n, k;
    if (c->have_rs && c->have_ssrc) {
        uint32_t lsr = 0, dlsr = 0;
        if (c->last_sr_ntp) {
            lsr = rtcp_ntp_mid(c->last_sr_ntp);
            dlsr = rtcp_delay_units(timeutil_mono(), c->last_sr_at);
        }
        rtcp_recv_block(&c->rs, c->ssrc, lsr, dlsr, &blk);
        nb = 1;
    }
    uint32_t me = my_ssrc(c);
    n = rtcp_write_rr(b, sizeof(b), me, nb ? &blk : NULL, nb);
    if (n < 0)
        return;
    k = rtcp_write_sdes_cname(b + n, sizeof(b) - (size_t)n, me, c->cname);
    if (k > 0)
        n += k;
    /* The time we send at: the sender's DLRR answer gives our RTT. */
    k = rtcp_write_xr_rrtr(b + n, sizeof(b) - (size_t)n, me, rtcp_ntp_now());
    if (k > 0)
        n += k;
    send_rtcp(c, b, (size_t)n);
    if (!c->ended) {
        ev_timer_set(&c->rr, rtcp_interval(c->o.rr_interval_s), 0.);
        ev_timer_start(loop, &c->rr);
    }
}

static void handle_rtp(struct rtsp_client *c, const uint8_t *d, size_t len)
{
    double arrival = timeutil_mono();
    struct rtp_packet p;
    if (rtp_parse(d, len, &p) < 0 || p.h.pt != c->media.fmt.pt) {
        c->st.rtp_bad++;
        return;
    }
    if (!c->have_ssrc) {
        c->have_ssrc = 1;
        c->ssrc = p.h.ssrc;
        c->st.ssrc = p.h.ssrc;
    } else if (p.h.ssrc != c->ssrc) {
        c->st.rtp_bad++; /* a stray stream on our port */
        return;
    }
    if (!c->have_rs) {
        rtcp_recv_init(&c->rs, p.h.seq);
        c->have_rs = 1;
    }
    rtcp_recv_packet(&c->rs, p.h.seq, p.h.ts, (uint32_t)(arrival * c->media.fmt.clock_rate));
    c->st.rtp_packets++;
    c->st.rtp_octets += p.payload_len;
    c->last_rx = arrival;
    if (ev_is_active(&c->udp_wait))
        ev_timer_stop(c->loop, &c->udp_wait);
    if (c->cb.rtp)
        c->cb.rtp(c->arg, &p, arrival);
}

static void handle_rtcp(struct rtsp_client *c, const uint8_t *d, size_t len)
{
    struct rtcp_info info;
    if (rtcp_parse(d, len, &info) < 0) {
        c->st.rtcp_bad++;
        return;
    }
    c->st.rtcp_in++;
    if (info.has_sr) {
        c->last_sr_ntp = info.sr.ntp;
        c->last_sr_at = timeutil_mono();
    }
    uint32_t arrival = rtcp_ntp_mid(rtcp_ntp_now());
    for (int i = 0; i < info.ndlrr; i++) {
        if (info.dlrr[i].ssrc != my_ssrc(c))
            continue;
        double rtt = rtcp_rtt(arrival, info.dlrr[i].lrr, info.dlrr[i].dlrr);
        if (rtt >= 0)
            c->st.rtt_s = rtt;
    }
    if (info.bye && c->have_ssrc && info.bye_ssrc == c->ssrc)
        end_session(c, -ECONNRESET, "the sender said BYE");
}

static int same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

static void udp_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct rtsp_client *c = w->data;
    int rtcp = w == &c->uio[1];
    uint8_t b[UDP_MAX];
    for (int i = 0; i < 64; i++) { /* bounded: other links get their turn */
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(w->fd, b, sizeof(b), 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            break;
        if (!same_host(&from, &c->addr)) {
            c->st.rtp_bad++; /* not from the server: someone else's datagram */
            continue;
        }
        if (rtcp)
            handle_rtcp(c, b, (size_t)n);
        else
            handle_rtp(c, b, (size_t)n);
        if (c->ended)
            return;
    }
}

static void rx_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rtsp_client *c = w->data;
    double quiet = timeutil_mono() - c->last_rx;
    if (c->step != S_PLAYING || ev_is_active(&c->udp_wait))
        return;
    if (quiet >= c->o.rx_timeout_s) {
        char why[80];
        snprintf(why, sizeof(why), "no RTP for %.1f s", quiet);
        end_session(c, -ETIMEDOUT, why);
    }
}

static void keepalive_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rtsp_client *c = w->data;
    if (c->step != S_PLAYING || c->waiting)
        return;
    if (send_request(c, "GET_PARAMETER", c->base, NULL) < 0)
        end_session(c, -ECONNRESET, "cannot send a keep-alive");
}

static int do_setup(struct rtsp_client *c)
{
    char extra[RTSP_TRANSPORT_MAX + 16];
    struct rtsp_transport t;
    memset(&t, 0, sizeof(t));
    t.interleaved[0] = 0;
    t.interleaved[1] = 1;
    if (!c->tcp) {
        if (udp_open_pair(c) < 0) {
            LOG(E_WARN, L_RTSP, "rtsp client %s: no free UDP port pair in %d-%d: interleaved",
                c->url, c->o.udp_min, c->o.udp_max);
            c->tcp = 1;
        } else {
            t.client_port[0] = c->udp_port[0];
            t.client_port[1] = c->udp_port[1];
        }
    }
    t.tcp = c->tcp;
    char tv[RTSP_TRANSPORT_MAX];
    if (rtsp_transport_write(&t, tv, sizeof(tv)) < 0)
        return -ENOSPC;
    snprintf(extra, sizeof(extra), "Transport: %s\r\n", tv);
    c->step = S_SETUP;
    return send_request(c, "SETUP", c->control, extra);
}

static void udp_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rtsp_client *c = w->data;
    if (c->step != S_PLAYING || c->tcp || c->st.rtp_packets > 0)
        return;
    LOG(E_WARN, L_RTSP, "rtsp client %s: no RTP over UDP in %.1f s: switching to TCP", c->url,
        c->o.udp_wait_s);
    c->st.fallbacks++;
    /* Tear the UDP session down and set up an interleaved one on the same
     * connection. The TEARDOWN's answer is not waited for (the SETUP that
     * follows carries no session id). */
    ev_timer_stop(loop, &c->keepalive);
    ev_timer_stop(loop, &c->rr);
    c->step = S_TEARDOWN;
    if (send_request(c, "TEARDOWN", c->base, NULL) < 0)
        end_session(c, -ECONNRESET, "cannot send TEARDOWN");
}

static void on_answer(struct rtsp_client *c, const struct rtsp_response *r)
{
    char why[160];
    if (!c->waiting || r->cseq != c->cseq) {
        c->st.frames_bad++; /* an answer to nothing we asked: ignored */
        return;
    }
    c->waiting = 0;
    ev_timer_stop(c->loop, &c->timeout);
    if (c->step == S_TEARDOWN) { /* the UDP → TCP switch */
        c->session[0] = '\0';
        udp_close(c);
        c->tcp = 1;
        c->have_ssrc = c->have_rs = 0;
        if (do_setup(c) < 0)
            end_session(c, -ECONNRESET, "cannot send SETUP");
        return;
    }
    if (r->status == 461 && c->step == S_SETUP && !c->tcp) {
        /* Unsupported Transport: a server without UDP. Ask interleaved. */
        LOG(E_INFO, L_RTSP, "rtsp client %s: no UDP at the server: interleaved", c->url);
        c->st.fallbacks++;
        udp_close(c);
        c->tcp = 1;
        if (do_setup(c) < 0)
            end_session(c, -ECONNRESET, "cannot send SETUP");
        return;
    }
    if (r->status != 200) {
        snprintf(why, sizeof(why), "%s answered %d", c->waiting_for, r->status);
        end_session(c, -EPROTO, why);
        return;
    }
    switch (c->step) {
    case S_DESCRIBE: {
        int e = r->body_len ? sdp_parse(r->body, r->body_len, &c->media) : -EINVAL;
        if (e < 0) {
            end_session(c, e == -ENOTSUP ? -ENOTSUP : -EPROTO,
                        e == -ENOTSUP ? "the stream's encoding is not one we play"
                                      : "DESCRIBE: no usable SDP");
            return;
        }
        if (r->content_base[0])
            snprintf(c->base, sizeof(c->base), "%s", r->content_base);
        /* Content-Base often ends in '/': the session URL is without it. */
        char base[512];
        snprintf(base, sizeof(base), "%s", c->base);
        if (rtsp_control_url(base, c->media.control, c->control, sizeof(c->control)) < 0) {
            end_session(c, -EPROTO, "DESCRIBE: control URL too long");
            return;
        }
        size_t bl = strlen(c->base);
        if (bl > 8 && c->base[bl - 1] == '/')
            c->base[bl - 1] = '\0';
        if (do_setup(c) < 0)
            end_session(c, -ECONNRESET, "cannot send SETUP");
        return;
    }
    case S_SETUP: {
        struct rtsp_transport t;
        if (!r->session[0] || rtsp_transport_parse(r->transport, &t) < 0 || t.tcp != c->tcp) {
            end_session(c, -EPROTO, "SETUP: no session, or a transport we did not ask for");
            return;
        }
        snprintf(c->session, sizeof(c->session), "%s", r->session);
        c->session_timeout = r->session_timeout > 0 ? r->session_timeout : 60;
        c->server_port[0] = t.server_port[0];
        c->server_port[1] = t.server_port[1];
        if (t.has_ssrc) {
            c->have_ssrc = 1;
            c->ssrc = t.ssrc;
            c->st.ssrc = t.ssrc;
        }
        c->step = S_PLAY;
        if (send_request(c, "PLAY", c->base, "Range: npt=0.000-\r\n") < 0)
            end_session(c, -ECONNRESET, "cannot send PLAY");
        return;
    }
    case S_PLAY: {
        c->step = S_PLAYING;
        c->st.playing = 1;
        c->st.tcp = c->tcp;
        if (!c->tcp) {
            for (int i = 0; i < 2; i++) {
                ev_io_init(&c->uio[i], udp_cb, c->udp[i], EV_READ);
                c->uio[i].data = c;
                ev_io_start(c->loop, &c->uio[i]);
            }
            if (!c->o.force_tcp && c->st.rtp_packets == 0) {
                ev_timer_set(&c->udp_wait, c->o.udp_wait_s, 0.);
                ev_timer_start(c->loop, &c->udp_wait);
            }
        }
        double ka = c->o.keepalive_s > 0 ? c->o.keepalive_s : c->session_timeout / 2.0;
        if (ka > 15)
            ka = 15;
        ev_timer_set(&c->keepalive, ka, ka);
        ev_timer_start(c->loop, &c->keepalive);
        ev_timer_set(&c->rr, rtcp_interval(c->o.rr_interval_s), 0.);
        ev_timer_start(c->loop, &c->rr);
        c->last_rx = timeutil_mono();
        ev_timer_set(&c->rx, c->o.rx_timeout_s / 4, c->o.rx_timeout_s / 4);
        ev_timer_start(c->loop, &c->rx);
        LOG(E_INFO, L_RTSP, "rtsp client %s: playing %s/%u over %s", c->url,
            rtp_encoding_name(c->media.fmt.enc), c->media.fmt.clock_rate,
            c->tcp ? "TCP (interleaved)" : "UDP");
        if (c->cb.ready)
            c->cb.ready(c->arg, &c->media, c->tcp);
        return;
    }
    case S_PLAYING: /* a keep-alive */
        c->st.rtsp_rtt_s = timeutil_mono() - c->sent_at;
        return;
    default:
        return;
    }
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct rtsp_client *c = w->data;
    char tmp[16384];
    ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        end_session(c, -ECONNRESET, n == 0 ? "the server closed the connection" : strerror(errno));
        return;
    }
    if (buf_append(&c->in, tmp, (size_t)n) < 0) {
        end_session(c, -EPROTO, "input beyond the limit");
        return;
    }
    while (c->in.len > 0 && !c->ended) {
        struct rtsp_response r;
        int k = rtsp_response_parse((const uint8_t *)c->in.data, c->in.len, &r);
        if (k == 0)
            break;
        if (k < 0) {
            end_session(c, -EPROTO,
                        k == -E2BIG ? "an answer beyond the limits" : "a malformed answer");
            return;
        }
        if (r.is_frame) {
            if (c->tcp && c->step == S_PLAYING && r.channel == 0)
                handle_rtp(c, r.data, r.len);
            else if (c->tcp && r.channel == 1)
                handle_rtcp(c, r.data, r.len);
            else
                c->st.frames_bad++;
        } else {
            on_answer(c, &r);
        }
        if (c->ended)
            return;
        buf_consume(&c->in, (size_t)k);
    }
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct rtsp_client *c = w->data;
    if (c->step == S_CONNECT) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            end_session(c, err == ECONNREFUSED ? -ECONNREFUSED : -ECONNRESET, strerror(err));
            return;
        }
        ev_io_stop(loop, w);
        ev_io_start(loop, &c->rio);
        c->step = S_DESCRIBE;
        if (send_request(c, "DESCRIBE", c->url, "Accept: application/sdp\r\n") < 0)
            end_session(c, -ECONNRESET, "cannot send DESCRIBE");
        return;
    }
    if (flush_out(c) < 0)
        end_session(c, -ECONNRESET, strerror(errno));
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rtsp_client *c = w->data;
    char why[96];
    snprintf(why, sizeof(why), "no answer to %s in %.1f s",
             c->step == S_CONNECT ? "the connection" : c->waiting_for, c->o.timeout_s);
    end_session(c, -ETIMEDOUT, why);
}

struct rtsp_client *rtsp_client_new(struct ev_loop *loop, const struct rtsp_client_options *opt,
                                    const struct rtsp_client_callbacks *cb, void *arg)
{
    struct rtsp_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->o = *opt;
    c->cb = *cb;
    c->arg = arg;
    c->fd = c->udp[0] = c->udp[1] = -1;
    if (c->o.udp_wait_s <= 0)
        c->o.udp_wait_s = 1.5;
    if (c->o.timeout_s <= 0)
        c->o.timeout_s = 5;
    if (c->o.rr_interval_s <= 0)
        c->o.rr_interval_s = 1;
    if (c->o.rx_timeout_s <= 0)
        c->o.rx_timeout_s = 3;
    c->tcp = opt->force_tcp || opt->udp_min <= 0;
    c->st.rtt_s = c->st.rtsp_rtt_s = -1;
    c->url = strdup(opt->url ? opt->url : "");
    c->cname = strdup(opt->cname ? opt->cname : "matriz");
    buf_init(&c->in, MAX_INPUT);
    buf_init(&c->out, 1u << 20);
    if (!c->url || !c->cname || rtsp_url_split(c->url, c->host, sizeof(c->host), &c->port) < 0)
        goto fail;
    memset(&c->addr, 0, sizeof(c->addr));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&c->addr;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&c->addr;
    if (inet_pton(AF_INET, c->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)c->port);
        c->addrlen = sizeof(*s4);
    } else if (inet_pton(AF_INET6, c->host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)c->port);
        c->addrlen = sizeof(*s6);
    } else {
        goto fail;
    }
    snprintf(c->base, sizeof(c->base), "%s", c->url);
    ev_timer_init(&c->timeout, timeout_cb, c->o.timeout_s, 0.);
    ev_timer_init(&c->udp_wait, udp_wait_cb, c->o.udp_wait_s, 0.);
    ev_timer_init(&c->keepalive, keepalive_cb, 15., 15.);
    ev_timer_init(&c->rr, rr_cb, 1., 0.);
    ev_timer_init(&c->rx, rx_cb, 1., 1.);
    c->timeout.data = c->udp_wait.data = c->keepalive.data = c->rr.data = c->rx.data = c;
    return c;
fail:
    free(c->url);
    free(c->cname);
    free(c);
    return NULL;
}

int rtsp_client_start(struct rtsp_client *c)
{
    c->fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    if (connect(c->fd, (struct sockaddr *)&c->addr, c->addrlen) < 0 && errno != EINPROGRESS) {
        int e = -errno;
        close(c->fd);
        c->fd = -1;
        return e;
    }
    ev_io_init(&c->rio, read_cb, c->fd, EV_READ);
    ev_io_init(&c->wio, write_cb, c->fd, EV_WRITE);
    c->rio.data = c->wio.data = c;
    c->step = S_CONNECT;
    ev_io_start(c->loop, &c->wio);
    ev_timer_set(&c->timeout, c->o.timeout_s, 0.);
    ev_timer_start(c->loop, &c->timeout);
    return 0;
}

void rtsp_client_free(struct rtsp_client **cp)
{
    struct rtsp_client *c = cp ? *cp : NULL;
    if (!c)
        return;
    if (c->fd >= 0 && c->step == S_PLAYING && c->session[0]) {
        /* Best effort: what the socket takes now, no waiting. */
        buf_reset(&c->out);
        c->cseq++;
        buf_printf(&c->out, "TEARDOWN %s RTSP/1.0\r\nCSeq: %d\r\nSession: %s\r\n\r\n", c->base,
                   c->cseq, c->session);
        send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    conn_close(c);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c->url);
    free(c->cname);
    free(c);
    *cp = NULL;
}

void rtsp_client_get_stats(const struct rtsp_client *c, struct rtsp_client_stats *st)
{
    *st = c->st;
    st->sr_age_s = c->last_sr_ntp ? timeutil_mono() - c->last_sr_at : -1;
}
