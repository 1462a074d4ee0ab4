/* The RTSP client: its pure parts (URLs, answers), and whole sessions against
 * the RTSP server of backend/rtp on one loop: UDP, TCP interleaved, the
 * switch to TCP when UDP does not arrive, the end of a session, and the
 * client's RTT from RTCP (its XR RRTR answered by the server's DLRR). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "rtp/rtsp_client.h"
#include "rtp/rtsp_server.h"
#include "stream/httpd.h"

/* ---- pure ---- */

static void url_split(void **state)
{
    char h[64];
    int port;
    assert_int_equal(rtsp_url_split("rtsp://127.0.0.1:8554/stream", h, sizeof(h), &port), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(port, 8554);
    assert_int_equal(rtsp_url_split("rtsp://[::1]:9/x", h, sizeof(h), &port), 0);
    assert_string_equal(h, "::1");
    assert_int_equal(port, 9);
    assert_int_equal(rtsp_url_split("RTSP://host", h, sizeof(h), &port), 0);
    assert_int_equal(port, 554);
    static const char *const bad[] = {"http://h/x",   "rtsp://",       "rtsp://:5/x",
                                      "rtsp://h:/x",  "rtsp://h:0/x",  "rtsp://h:70000/",
                                      "rtsp://h:1a/", "rtsp://[::1/x", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(rtsp_url_split(bad[i], h, sizeof(h), &port), -EINVAL);
    assert_int_equal(rtsp_url_split("rtsp://averyveryverylonghostname/x", h, 8, &port), -EINVAL);
}

static void control_url(void **state)
{
    char u[128];
    assert_int_equal(rtsp_control_url("rtsp://h/s/", "trackID=0", u, sizeof(u)), 0);
    assert_string_equal(u, "rtsp://h/s/trackID=0");
    assert_int_equal(rtsp_control_url("rtsp://h/s", "trackID=0", u, sizeof(u)), 0);
    assert_string_equal(u, "rtsp://h/s/trackID=0");
    assert_int_equal(rtsp_control_url("rtsp://h/s", "rtsp://o/t", u, sizeof(u)), 0);
    assert_string_equal(u, "rtsp://o/t");
    assert_int_equal(rtsp_control_url("rtsp://h/s", "*", u, sizeof(u)), 0);
    assert_string_equal(u, "rtsp://h/s");
    assert_int_equal(rtsp_control_url("rtsp://h/s", "x", u, 8), -ENOSPC);
}

static int parse(const char *text, struct rtsp_response *r)
{
    return rtsp_response_parse((const uint8_t *)text, strlen(text), r);
}

static void answers(void **state)
{
    struct rtsp_response r;
    const char *ok = "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 0123ABCD;timeout=60\r\n"
                     "Transport: RTP/AVP;unicast;client_port=8600-8601;server_port=9998-9999\r\n"
                     "Content-Base: rtsp://h/s/\r\nContent-Length: 4\r\n\r\nv=0\nRTSP";
    int n = parse(ok, &r);
    assert_int_equal(n, (int)strlen(ok) - 4);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.cseq, 3);
    assert_string_equal(r.session, "0123ABCD");
    assert_int_equal(r.session_timeout, 60);
    assert_string_equal(r.content_base, "rtsp://h/s/");
    assert_memory_equal(r.body, "v=0\n", 4);
    /* LF only, no reason phrase */
    assert_true(parse("RTSP/1.0 454\nCSeq: 9\n\n", &r) > 0);
    assert_int_equal(r.status, 454);
    /* incomplete: head, body, frame */
    assert_int_equal(parse("RTSP/1.0 200 OK\r\nCSeq: 3\r\n", &r), 0);
    assert_int_equal(parse("RTSP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc", &r), 0);
    const uint8_t frame[] = {'$', 1, 0, 3, 'a', 'b', 'c', 'R'};
    assert_int_equal(rtsp_response_parse(frame, 6, &r), 0);
    assert_int_equal(rtsp_response_parse(frame, sizeof(frame), &r), 7);
    assert_true(r.is_frame);
    assert_int_equal(r.channel, 1);
    assert_int_equal(r.len, 3);
    /* malformed */
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\n\r\n",
        "RTSP/1.0 2x0 OK\r\n\r\n",
        "RTSP/1.0 099 X\r\n\r\n",
        "RTSP/1.0 200 OK\r\nno colon\r\n\r\n",
        "RTSP/1.0 200 OK\r\n: empty name\r\n\r\n",
        "RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n",
        "RTSP/1.0 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "RTSP/1.0 200 OK\r\nCSeq: 1x\r\n\r\n",
        "RTSP/1.0 200 OK\r\nSession: ;timeout=5\r\n\r\n",
        "RTSP/1.0 200 OK\r\nX: a\001b\r\n\r\n",
        NULL,
    };
    for (int i = 0; bad[i]; i++)
        if (parse(bad[i], &r) != -EINVAL)
            fail_msg("accepted: %s", bad[i]);
    assert_int_equal(parse("RTSP/1.0 200 OK\r\nContent-Length: 999999\r\n\r\n", &r), -E2BIG);
    char *huge = malloc(RTSP_CLIENT_MAX_HEAD + 100);
    memset(huge, 'a', RTSP_CLIENT_MAX_HEAD + 99);
    huge[RTSP_CLIENT_MAX_HEAD + 99] = '\0';
    memcpy(huge, "RTSP/1.0 200 OK\r\nX: ", 20);
    assert_int_equal(parse(huge, &r), -E2BIG);
    free(huge);
}

/* ---- sessions against the server ---- */

/* A live source: a 5 ms frame of 8 counting bytes every 5 ms. */
struct live {
    struct rtsp_source base;
    struct ev_loop *loop;
    ev_timer tick;
    rtsp_wake_fn wake;
    void *wake_arg;
    uint8_t frame[8];
    int ready;
    uint32_t made;
};

static void live_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct live *l = w->data;
    for (int i = 0; i < 8; i++)
        l->frame[i] = (uint8_t)(l->made + (unsigned)i);
    l->made++;
    l->ready = 1;
    if (l->wake)
        l->wake(l->wake_arg);
}

static int live_start(struct rtsp_source *s, rtsp_wake_fn wake, void *arg)
{
    struct live *l = (struct live *)s;
    l->wake = wake;
    l->wake_arg = arg;
    ev_timer_start(l->loop, &l->tick);
    return 0;
}

static int live_read(struct rtsp_source *s, struct rtsp_frame *f)
{
    struct live *l = (struct live *)s;
    if (!l->ready)
        return 0;
    l->ready = 0;
    f->data = l->frame;
    f->len = sizeof(l->frame);
    f->samples = 240;
    return 1;
}

static void live_stop(struct rtsp_source *s)
{
    struct live *l = (struct live *)s;
    ev_timer_stop(l->loop, &l->tick);
}

static void live_close(struct rtsp_source *s)
{
    live_stop(s);
    free(s);
}

static const struct rtsp_source_ops live_ops = {
    .start = live_start, .read = live_read, .stop = live_stop, .close = live_close};

static int open_source(void *arg, struct rtsp_open *op, const char *path, const char *query)
{
    struct ev_loop *loop = arg;
    if (strcmp(path, "/stream") != 0) {
        rtsp_open_done(op, 404, NULL);
        return 0;
    }
    struct live *l = calloc(1, sizeof(*l));
    l->base.ops = &live_ops;
    rtp_format_default(&l->base.fmt, RTP_ENC_OPUS, 48000, 2);
    l->base.sample_rate = 48000;
    snprintf(l->base.name, sizeof(l->base.name), "test");
    l->loop = loop;
    ev_timer_init(&l->tick, live_tick, 0.005, 0.005);
    l->tick.data = l;
    rtsp_open_done(op, 200, &l->base);
    return 0;
}

static void cancel_open(void *arg, struct rtsp_open *op)
{
}

static const struct rtsp_provider provider = {.open = open_source, .cancel = cancel_open};

struct rig {
    struct ev_loop *loop;
    struct httpd *h;
    struct rtsp_server *srv;
    char url[128];
    /* what the client saw */
    int ready, tcp, ended, end_err;
    uint32_t packets;
    int out_of_order;
    uint16_t last_seq;
    double first_arrival, last_arrival;
    struct rtsp_client *c;
    uint32_t stop_after;
};

static void on_ready(void *arg, const struct sdp_media *m, int tcp)
{
    struct rig *r = arg;
    r->ready++;
    r->tcp = tcp;
    assert_int_equal(m->fmt.enc, RTP_ENC_OPUS);
    assert_int_equal(m->fmt.clock_rate, 48000);
}

static void on_rtp(void *arg, const struct rtp_packet *p, double arrival)
{
    struct rig *r = arg;
    if (r->packets && (uint16_t)(p->h.seq - r->last_seq) != 1)
        r->out_of_order++;
    if (!r->packets)
        r->first_arrival = arrival;
    r->last_arrival = arrival;
    r->last_seq = p->h.seq;
    r->packets++;
    assert_int_equal(p->payload_len, 8);
    if (r->stop_after && r->packets >= r->stop_after)
        ev_break(r->loop, EVBREAK_ALL);
}

static void on_end(void *arg, int err, const char *why)
{
    struct rig *r = arg;
    r->ended++;
    r->end_err = err;
    ev_break(r->loop, EVBREAK_ALL);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static int rtp_port_free(int p)
{
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(p + i))};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (!ok)
            return 0;
    }
    return 1;
}

static void rig_up_sr(struct rig *r, int udp, double sr_interval)
{
    memset(r, 0, sizeof(*r));
    r->loop = ev_loop_new(0);
    struct httpd_options ho = {.bind_host = "127.0.0.1", .bind_port = 0};
    r->h = httpd_new(r->loop, &ho);
    assert_non_null(r->h);
    int rtp = 0;
    if (udp)
        for (int tries = 0; tries < 100 && !rtp; tries++) {
            int p = 30000 + 2 * (rand() % 10000);
            if (rtp_port_free(p))
                rtp = p;
        }
    struct rtsp_server_options so = {
        .bind_host = "127.0.0.1", .rtp_port = rtp, .startup_s = -1, .sr_interval_s = sr_interval};
    r->srv = rtsp_server_new(r->loop, r->h, &so, &provider, r->loop);
    assert_non_null(r->srv);
    snprintf(r->url, sizeof(r->url), "rtsp://127.0.0.1:%d/stream", httpd_port(r->h));
}

static void rig_up(struct rig *r, int udp)
{
    rig_up_sr(r, udp, 0);
}

static void rig_down(struct rig *r)
{
    rtsp_client_free(&r->c);
    rtsp_server_free(&r->srv);
    httpd_free(&r->h);
    ev_loop_destroy(r->loop);
}

static void run_for(struct rig *r, double s)
{
    ev_timer t;
    ev_timer_init(&t, timeout_cb, s, 0.);
    ev_timer_start(r->loop, &t);
    ev_run(r->loop, 0);
    ev_timer_stop(r->loop, &t);
}

static const struct rtsp_client_callbacks cbs = {.ready = on_ready, .rtp = on_rtp, .end = on_end};

static void session(void **state, int udp_server, struct rtsp_client_options o, int expect_tcp,
                    int expect_fallback)
{
    struct rig r;
    rig_up(&r, udp_server);
    o.url = r.url;
    o.rx_timeout_s = 1;
    r.c = rtsp_client_new(r.loop, &o, &cbs, &r);
    assert_non_null(r.c);
    assert_int_equal(rtsp_client_start(r.c), 0);
    r.stop_after = 200; /* 1 s of packets */
    run_for(&r, 6);
    struct rtsp_client_stats st;
    rtsp_client_get_stats(r.c, &st);
    print_message("%s: %u packets in %.3f s, ready %d, tcp %d, fallbacks %d, ended %d (%d)\n",
                  r.url, r.packets, r.last_arrival - r.first_arrival, r.ready, r.tcp, st.fallbacks,
                  r.ended, r.end_err);
    assert_int_equal(r.ended, 0);
    assert_true(r.ready >= 1);
    assert_int_equal(r.tcp, expect_tcp);
    assert_int_equal(st.fallbacks, expect_fallback);
    /* It stops the loop at 200; a busy machine can deliver a few more in
     * the same pass (the server sends the frames that fell due together). */
    assert_true(r.packets >= 200 && r.packets <= 210);
    assert_int_equal(r.out_of_order, 0);
    /* paced in real time: 200 frames of 5 ms, not a burst */
    assert_true(r.last_arrival - r.first_arrival > 0.9);
    /* keep-alive RTT appears after a keep-alive; the session goes on meanwhile */
    assert_true(st.playing);
    /* The server ends: the client hears it. */
    rtsp_server_free(&r.srv);
    run_for(&r, 2);
    assert_int_equal(r.ended, 1);
    rig_down(&r);
}

static void udp_session(void **state)
{
    session(state, 1, (struct rtsp_client_options){.udp_min = 41000, .udp_max = 41100}, 0, 0);
}

static void tcp_session(void **state)
{
    session(state, 1, (struct rtsp_client_options){.force_tcp = 1}, 1, 0);
}

static void server_without_udp_means_tcp(void **state)
{
    /* The server has no RTP port: it refuses UDP (461) and the client asks
     * again interleaved. */
    session(state, 0, (struct rtsp_client_options){.udp_min = 41200, .udp_max = 41300}, 1, 1);
}

static void udp_that_never_arrives_falls_back_to_tcp(void **state)
{
    /* Our UDP sockets on 127.0.0.2 while the server sends to 127.0.0.1 (the
     * RTSP connection's address): like a firewall dropping it. */
    session(state, 1,
            (struct rtsp_client_options){
                .udp_min = 41400, .udp_max = 41500, .bind_host = "127.0.0.2", .udp_wait_s = 0.3},
            1, 1);
}

/* The server keeps imesd's 5 s between its own reports; the client reports
 * every 0.2 s (randomised), each RR with an RRTR: every one is answered at
 * once with a DLRR (at most one per 0.2 s), and the client knows its RTT —
 * a loopback's, well under 100 ms — and keeps it fresh. */
static void rtt_from_rtcp(void **state, int tcp)
{
    struct rig r;
    rig_up_sr(&r, 1, 5);
    struct rtsp_client_options o = {.url = r.url,
                                    .udp_min = 41600,
                                    .udp_max = 41700,
                                    .force_tcp = tcp,
                                    .rr_interval_s = 0.2,
                                    .keepalive_s = 0.5};
    r.c = rtsp_client_new(r.loop, &o, &cbs, &r);
    assert_non_null(r.c);
    assert_int_equal(rtsp_client_start(r.c), 0);
    struct rtsp_client_stats st;
    rtsp_client_get_stats(r.c, &st);
    assert_true(st.rtt_s < 0 && st.rtsp_rtt_s < 0); /* none yet */
    run_for(&r, 2.5);
    rtsp_client_get_stats(r.c, &st);
    print_message("%s over %s: RTT %.3f ms from RTCP, %.3f ms RTSP; %llu RTCP compounds in\n",
                  r.url, r.tcp ? "TCP" : "UDP", st.rtt_s * 1000, st.rtsp_rtt_s * 1000,
                  (unsigned long long)st.rtcp_in);
    assert_int_equal(r.ended, 0);
    assert_int_equal(r.tcp, tcp);
    assert_true(st.rtt_s >= 0 && st.rtt_s < 0.1);
    assert_true(st.rtsp_rtt_s >= 0 && st.rtsp_rtt_s < 0.1);
    /* answers come with the RRs, not just with the 5 s sender reports */
    assert_true(st.rtcp_in >= 4);
    assert_int_equal(st.rtcp_bad, 0);
    rig_down(&r);
}

static void rtt_from_rtcp_udp(void **state)
{
    rtt_from_rtcp(state, 0);
}

static void rtt_from_rtcp_tcp(void **state)
{
    rtt_from_rtcp(state, 1);
}

static void refused_and_unknown(void **state)
{
    struct rig r;
    rig_up(&r, 1);
    char url[160];
    snprintf(url, sizeof(url), "rtsp://127.0.0.1:%d/nope", httpd_port(r.h));
    struct rtsp_client_options o = {.url = url, .force_tcp = 1};
    r.c = rtsp_client_new(r.loop, &o, &cbs, &r);
    assert_int_equal(rtsp_client_start(r.c), 0);
    run_for(&r, 3);
    assert_int_equal(r.ended, 1);
    assert_int_equal(r.end_err, -EPROTO);
    rtsp_client_free(&r.c);
    /* nobody listening */
    r.ended = 0;
    o.url = "rtsp://127.0.0.1:1/stream";
    r.c = rtsp_client_new(r.loop, &o, &cbs, &r);
    assert_int_equal(rtsp_client_start(r.c), 0);
    run_for(&r, 3);
    assert_int_equal(r.ended, 1);
    assert_int_equal(r.end_err, -ECONNREFUSED);
    rig_down(&r);
    o.url = "rtsp://not-numeric.example/stream";
    assert_null(rtsp_client_new(EV_DEFAULT, &o, &cbs, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_split),
        cmocka_unit_test(control_url),
        cmocka_unit_test(answers),
        cmocka_unit_test(udp_session),
        cmocka_unit_test(tcp_session),
        cmocka_unit_test(server_without_udp_means_tcp),
        cmocka_unit_test(udp_that_never_arrives_falls_back_to_tcp),
        cmocka_unit_test(rtt_from_rtcp_udp),
        cmocka_unit_test(rtt_from_rtcp_tcp),
        cmocka_unit_test(refused_and_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
