/*
 * A peer's media (see media.h): the glue between the control plane's links
 * and the RTP modules. Each link's receive path (rx) is made when its
 * session first plays, with the format its SDP announced, and published to
 * the audio thread through an atomic pointer; it lives as long as the link
 * (a reconnected session keeps feeding it: a new SSRC restarts its jitter
 * buffer).
 */
#include "matriz/media.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "matriz/recorder.h"
#include "matriz/rx.h"
#include "matriz/tx.h"
#include "rtp/rtsp_client.h"
#include "rtp/rtsp_server.h"
#include "stream/httpd.h"

#define BACKOFF_FIRST 0.5
#define BACKOFF_MAX   5.0
/* RTCP reports, both ways (RFC 3550 §6.2 lets a small session go below 5 s). */
#define RTCP_INTERVAL_S 1.0

struct media {
    struct ev_loop *loop;
    const struct peer_config *cfg;
    struct httpd *httpd;
    struct rtsp_server *server;
    struct tx *tx;
    struct recorder *rec;
};

struct link_media {
    struct media *m;
    char *name, *url;
    struct rtsp_client *client;
    _Atomic(struct rx *) rx;
    struct rtp_format fmt;
    double backoff;
    ev_timer retry;
    int tcp;
    uint64_t last_octets;
    double last_stats_at;
};

struct media *media_new(struct ev_loop *loop, const struct peer_config *cfg)
{
    struct media *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->loop = loop;
    m->cfg = cfg;
    enum rtp_encoding enc = strcmp(cfg->send.codec, "L16") == 0   ? RTP_ENC_L16
                            : strcmp(cfg->send.codec, "L24") == 0 ? RTP_ENC_L24
                                                                  : RTP_ENC_OPUS;
    struct tx_options to = {.enc = enc,
                            .frame = cfg->frame,
                            .bitrate = cfg->send.bitrate,
                            .fec = cfg->send.fec,
                            .loss_percent = cfg->send.loss_percent,
                            .name = cfg->peer.name};
    if (!(m->tx = tx_new(loop, &to)))
        goto fail;
    if (*cfg->record.dir) {
        struct recorder_options ro = {
            .dir = cfg->record.dir, .rate = 48000, .mix = cfg->record.what.n == 0};
        for (size_t i = 0; i < cfg->record.what.n; i++) {
            const char *w = cfg->record.what.v[i];
            ro.mix |= strcmp(w, "mix") == 0;
            ro.self |= strcmp(w, "self") == 0;
            ro.peers |= strcmp(w, "peers") == 0;
        }
        m->rec = recorder_new(&ro); /* NULL: logged; the peer plays on unrecorded */
    }
    struct httpd_options ho = {
        .bind_host = cfg->net.bind_host, .bind_port = cfg->net.port, .server_name = "matriz"};
    if (!(m->httpd = httpd_new(loop, &ho))) {
        LOG(E_ERROR, L_MATRIZ, "cannot listen for RTSP on %s port %d", cfg->net.bind_host,
            cfg->net.port);
        goto fail;
    }
    struct rtsp_server_options so = {
        .bind_host = cfg->net.bind_host,
        .rtp_port = cfg->net.rtp_min,
        /* Live audio: nothing is held back to send as a start-up burst, and
         * a frame leaves the moment the sound card delivered it (no cushion
         * behind the source: that would add its length to the latency). */
        .startup_s = -1,
        .cushion_s = -1,
        .live = 1,
        /* Receivers' reports come every second: a session whose receiver is
         * gone ends soon, not after a minute. Our reports too (not every 5 s
         * as imesd's): a handful of members, a few hundred bytes a second,
         * and the stats posted every 2 s see a fresh RTT and loss. */
        .session_timeout_s = 10,
        .sr_interval_s = RTCP_INTERVAL_S,
        .metrics_prefix = "matriz_rtsp",
    };
    if (!(m->server = rtsp_server_new(loop, m->httpd, &so, &tx_provider, m->tx))) {
        LOG(E_ERROR, L_MATRIZ, "cannot start the RTSP server (RTP port %d)", cfg->net.rtp_min);
        goto fail;
    }
    LOG(E_INFO, L_MATRIZ, "serving rtsp://%s:%d/stream (%s, %s ms frames)", cfg->net.bind_host,
        cfg->net.port, cfg->send.codec, cfg->send.frame_ms);
    return m;
fail:
    media_free(&m);
    return NULL;
}

void media_free(struct media **mp)
{
    struct media *m = *mp;
    if (!m)
        return;
    rtsp_server_free(&m->server);
    httpd_free(&m->httpd);
    tx_free(&m->tx);
    recorder_free(&m->rec);
    free(m);
    *mp = NULL;
}

/* ---- links ---- */

static void link_connect(struct link_media *lm);

static void on_ready(void *arg, const struct sdp_media *sm, int tcp)
{
    struct link_media *lm = arg;
    lm->backoff = BACKOFF_FIRST;
    lm->tcp = tcp;
    struct rx *rx = atomic_load(&lm->rx);
    if (rx && (sm->fmt.enc != lm->fmt.enc || sm->fmt.pt != lm->fmt.pt ||
               sm->fmt.channels != lm->fmt.channels)) {
        LOG(E_WARN, L_MATRIZ, "link to %s: its format changed; rejoin to take it up", lm->name);
        return;
    }
    if (rx)
        return;
    const struct peer_config *c = lm->m->cfg;
    struct rx_options ro = {.fmt = sm->fmt,
                            .min_ms = c->jitter.min_ms,
                            .max_ms = c->jitter.max_ms,
                            .headroom_ms = c->jitter.headroom_ms};
    lm->fmt = sm->fmt;
    if (!(rx = rx_new(&ro)))
        LOG(E_ERROR, L_MATRIZ, "link to %s: cannot play %s/%u/%d", lm->name,
            rtp_encoding_name(sm->fmt.enc), sm->fmt.clock_rate, sm->fmt.channels);
    atomic_store(&lm->rx, rx);
}

static void on_rtp(void *arg, const struct rtp_packet *p, double arrival)
{
    struct link_media *lm = arg;
    struct rx *rx = atomic_load(&lm->rx);
    if (rx)
        rx_push_packet(rx, p, arrival);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    link_connect(w->data);
}

static void on_end(void *arg, int err, const char *why)
{
    struct link_media *lm = arg;
    /* The client is freed by the next attempt (not inside its own callback). */
    LOG(E_WARN, L_MATRIZ, "link to %s: %s; again in %.1f s", lm->name, why, lm->backoff);
    ev_timer_set(&lm->retry, lm->backoff, 0.);
    ev_timer_start(lm->m->loop, &lm->retry);
    lm->backoff = lm->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : lm->backoff * 2;
}

static const struct rtsp_client_callbacks client_cbs = {
    .ready = on_ready, .rtp = on_rtp, .end = on_end};

static void link_connect(struct link_media *lm)
{
    const struct peer_config *c = lm->m->cfg;
    char cname[160];
    snprintf(cname, sizeof(cname), "matriz-%s", c->peer.name);
    rtsp_client_free(&lm->client);
    struct rtsp_client_options o = {
        .url = lm->url,
        .bind_host = strcmp(c->net.bind_host, "0.0.0.0") == 0 ? NULL : c->net.bind_host,
        .udp_min = c->net.rtp_min + 2,
        .udp_max = c->net.rtp_max,
        .cname = cname,
        /* RRs (with the XR RRTR that brings back our RTT) every second. */
        .rr_interval_s = RTCP_INTERVAL_S,
        /* Keep-alives measure the RTSP round trip: often enough for the
         * stats posted every 2 s. */
        .keepalive_s = 2,
        /* A request unanswered for 2 s is a link lost (a peer across the
         * world answers in a few hundred ms): try again, with backoff, rather
         * than keep the performance silent for the default 5 s. */
        .timeout_s = 2,
    };
    lm->client = rtsp_client_new(lm->m->loop, &o, &client_cbs, lm);
    if (!lm->client || rtsp_client_start(lm->client) < 0) {
        rtsp_client_free(&lm->client);
        LOG(E_WARN, L_MATRIZ, "link to %s: cannot connect to %s (a numeric host is needed)",
            lm->name, lm->url);
        ev_timer_set(&lm->retry, BACKOFF_MAX, 0.);
        ev_timer_start(lm->m->loop, &lm->retry);
    }
}

static void *link_open(void *arg, const char *name, const char *url, const char *codec)
{
    struct media *m = arg;
    struct link_media *lm = calloc(1, sizeof(*lm));
    if (!lm || !(lm->name = strdup(name)) || !(lm->url = strdup(url))) {
        if (lm)
            free(lm->name);
        free(lm);
        return NULL;
    }
    lm->m = m;
    lm->backoff = BACKOFF_FIRST;
    ev_timer_init(&lm->retry, retry_cb, 0., 0.);
    lm->retry.data = lm;
    link_connect(lm);
    return lm;
}

/* Thread: audio. */
static void link_process(void *media, const struct audio_block *b, float *l, float *r)
{
    struct link_media *lm = media;
    struct rx *rx = atomic_load(&lm->rx);
    if (rx)
        rx_pull(rx, l, r, b->frames, b->now);
}

static json_t *link_stats(void *media)
{
    struct link_media *lm = media;
    struct rx *rx = atomic_load(&lm->rx);
    struct rtsp_client_stats cs = {.rtt_s = -1, .rtsp_rtt_s = -1};
    struct rx_stats rs;
    if (lm->client)
        rtsp_client_get_stats(lm->client, &cs); /* (an ended one says playing 0) */
    if (!rx)
        return json_pack("{s:b}", "playing", 0);
    rx_get_stats(rx, &rs);
    double now = ev_now(lm->m->loop);
    uint64_t octets = cs.rtp_octets;
    double kbps = lm->last_stats_at > 0 && now > lm->last_stats_at && octets >= lm->last_octets
                      ? (double)(octets - lm->last_octets) * 8 / 1000 / (now - lm->last_stats_at)
                      : 0;
    lm->last_octets = octets;
    lm->last_stats_at = now;
    uint64_t expected = rs.jb.received + rs.jb.lost;
    return json_pack("{s:b,s:s,s:f,s:f,s:f,s:f,s:I,s:I,s:I,s:I,s:f,s:f,s:I,s:f,s:i}", "playing",
                     cs.playing, "transport", lm->tcp ? "tcp" : "udp", "rtt_ms",
                     cs.rtt_s >= 0 ? cs.rtt_s * 1000 : -1.0, "rtsp_rtt_ms",
                     cs.rtsp_rtt_s >= 0 ? cs.rtsp_rtt_s * 1000 : -1.0, "jitter_ms", rs.jb.jitter_ms,
                     "loss", expected ? (double)rs.jb.lost / (double)expected : 0.0, "lost",
                     (json_int_t)rs.jb.lost, "late", (json_int_t)rs.jb.late, "concealed",
                     (json_int_t)rs.jb.concealed, "fec", (json_int_t)rs.jb.fec, "depth_ms",
                     rs.jb.depth_ms, "target_ms", rs.jb.target_ms, "packets", (json_int_t)rs.pushed,
                     "kbps", kbps, "frame", rs.frame);
}

static void link_close(void *media)
{
    struct link_media *lm = media;
    struct rx *rx = atomic_load(&lm->rx);
    ev_timer_stop(lm->m->loop, &lm->retry);
    rtsp_client_free(&lm->client);
    rx_free(&rx);
    free(lm->name);
    free(lm->url);
    free(lm);
}

/* Thread: audio. */
static void capture(void *arg, const struct audio_block *b)
{
    struct media *m = arg;
    tx_capture(m->tx, b->in[0], b->in[1], b->frames);
}

/* Thread: audio. */
static void record(void *arg, const struct audio_block *b, uint32_t slots, uint64_t cycle)
{
    struct media *m = arg;
    if (m->rec)
        recorder_write(m->rec, b, slots, cycle);
}

static void record_slot(void *arg, int slot, const char *name, uint64_t cycle)
{
    struct media *m = arg;
    recorder_slot(m->rec, slot, name, cycle);
}

const struct matriz_link_ops media_link_ops = {
    .open = link_open,
    .process = link_process,
    .stats = link_stats,
    .close = link_close,
    .capture = capture,
    .record = record,
    .record_slot = record_slot,
};
