/*
 * RTSP device streams (see rtsp.h): the provider behind rtsp_server. open()
 * parses the URL and checks the token; a source remembers the device and
 * codec, attaches to the player at start() (PLAY) and detaches at stop()
 * (PAUSE) and close().
 */
#include "stream/rtsp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/token.h"
#include "rtp/rtsp_server.h"
#include "state/player.h"
#include "stream/http_parser.h"

/* The player's start-up burst for a session: the server keeps 0.1 s of it
 * as its cushion (rtsp_server_options.cushion_s: frames are queued before
 * they are due, whenever the player's batched wakes come) and sends the
 * other 0.2 s at once for a quick start. */
#define BURST_S 0.3

struct rtsp_device {
    struct ev_loop *loop;
    struct player *player;
    struct auth *auth;
    struct rtsp_server *server;
};

struct dsource {
    struct rtsp_source base; /* first: the server's view */
    struct rtsp_device *D;
    char device[AUTH_NAME_MAX + 1];
    enum rtsp_device_codec codec;
    struct player_attachment *att;
    rtsp_wake_fn wake;
    void *wake_arg;
};

/* A token check in flight (the server's pending open). */
struct check {
    struct rtsp_device *D;
    struct rtsp_open *op;
    struct auth_wait *wait;
    struct rtsp_device_url u;
};

static const char *const codec_names[] = {"mp3", "opus"};

/* ---- URL ---- */

int rtsp_device_parse_path(const char *path, struct rtsp_device_url *u)
{
    static const char prefix[] = "/device/";
    memset(u, 0, sizeof(*u));
    if (!path || strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return -ENOENT;
    const char *p = path + sizeof(prefix) - 1;
    char codec[8];
    int r = http_path_segment(&p, u->name, sizeof(u->name));
    if (r != 1)
        goto bad;
    r = http_path_segment(&p, u->token, sizeof(u->token));
    if (r < 0)
        goto bad;
    u->codec = RTSP_DEVICE_MP3;
    if (r == 1 && *p) {
        if (http_path_segment(&p, codec, sizeof(codec)) < 0 || *p)
            goto bad;
        if (strcmp(codec, "opus") == 0)
            u->codec = RTSP_DEVICE_OPUS;
        else if (strcmp(codec, "mp3") != 0)
            goto bad;
    }
    if (!auth_name_valid(u->name) || !token_well_formed(u->token))
        goto bad;
    return 0;
bad:
    explicit_bzero(u, sizeof(*u));
    return -ENOENT;
}

/* ---- sources ---- */

static void on_player_wake(void *arg)
{
    struct dsource *s = arg;
    if (s->wake)
        s->wake(s->wake_arg);
}

static int src_start(struct rtsp_source *base, rtsp_wake_fn wake, void *arg)
{
    struct dsource *s = (struct dsource *)base;
    s->wake = wake;
    s->wake_arg = arg;
    if (!s->att)
        s->att = player_attach(s->D->player, s->device, codec_names[s->codec], BURST_S,
                               on_player_wake, s);
    if (!s->att) {
        LOG(E_INFO, L_RTSP, "device %s: not known to the player", s->device);
        return -ENOENT;
    }
    return 0;
}

static int src_read(struct rtsp_source *base, struct rtsp_frame *f)
{
    struct dsource *s = (struct dsource *)base;
    if (!s->att)
        return 0;
    struct player_frame pf;
    int r = player_read(s->att, &pf);
    if (r < 0)
        return -EPIPE; /* fell behind: the frames it needs are gone */
    if (r == 0)
        return 0;
    f->data = pf.data;
    f->len = pf.len;
    f->samples = pf.samples > 0 ? (uint32_t)pf.samples : 0;
    return 1;
}

static void src_stop(struct rtsp_source *base)
{
    struct dsource *s = (struct dsource *)base;
    if (s->att)
        player_detach(&s->att);
    s->wake = NULL;
}

static void src_close(struct rtsp_source *base)
{
    struct dsource *s = (struct dsource *)base;
    if (s->att)
        player_detach(&s->att);
    free(s);
}

static const struct rtsp_source_ops source_ops = {
    .start = src_start,
    .read = src_read,
    .stop = src_stop,
    .close = src_close,
};

static struct dsource *source_new(struct rtsp_device *D, const struct rtsp_device_url *u)
{
    struct dsource *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base.ops = &source_ops;
    s->D = D;
    s->codec = u->codec;
    memcpy(s->device, u->name, sizeof(s->device));
    snprintf(s->base.name, sizeof(s->base.name), "%s", u->name);
    s->base.sample_rate = 48000; /* the player's frames count 48 kHz samples */
    if (u->codec == RTSP_DEVICE_OPUS) {
        rtp_format_default(&s->base.fmt, RTP_ENC_OPUS, 48000, 2);
    } else {
        rtp_format_default(&s->base.fmt, RTP_ENC_MPA, 48000, 2);
    }
    return s;
}

/* ---- provider ---- */

static void on_token(int result, void *arg)
{
    struct check *k = arg;
    struct rtsp_open *op = k->op;
    struct rtsp_device *D = k->D;
    struct rtsp_device_url u = k->u;
    explicit_bzero(k, sizeof(*k));
    free(k);
    if (result == 1) {
        struct dsource *s = source_new(D, &u);
        rtsp_open_done(op, s ? 200 : 503, s ? &s->base : NULL);
    } else {
        rtsp_open_done(op, result == 0 ? 404 : 503, NULL);
    }
    explicit_bzero(&u, sizeof(u));
}

static int prov_open(void *arg, struct rtsp_open *op, const char *path, const char *query)
{
    struct rtsp_device *D = arg;
    struct rtsp_device_url u;
    if (rtsp_device_parse_path(path, &u) < 0) {
        rtsp_open_done(op, 404, NULL);
        return 0;
    }
    struct check *k = calloc(1, sizeof(*k));
    if (!k) {
        explicit_bzero(&u, sizeof(u));
        return -ENOMEM;
    }
    k->D = D;
    k->op = op;
    k->u = u;
    explicit_bzero(&u, sizeof(u));
    k->wait = auth_token_check(D->auth, "device", k->u.name, k->u.token, on_token, k);
    if (!k->wait) {
        explicit_bzero(k, sizeof(*k));
        free(k);
        return -ENOMEM;
    }
    rtsp_open_set_data(op, k);
    return 0;
}

static void prov_cancel(void *arg, struct rtsp_open *op)
{
    struct check *k = rtsp_open_data(op);
    if (!k)
        return;
    auth_cancel(&k->wait);
    explicit_bzero(k, sizeof(*k));
    free(k);
}

static const struct rtsp_provider provider = {.open = prov_open, .cancel = prov_cancel};

struct rtsp_device *rtsp_device_new(struct ev_loop *loop, struct httpd *h, struct player *pl,
                                    struct auth *auth, const struct rtsp_device_options *opt)
{
    struct rtsp_device *D = calloc(1, sizeof(*D));
    if (!D) {
        LOG(E_ERROR, L_RTSP, "RTSP: out of memory");
        return NULL;
    }
    D->loop = loop;
    D->player = pl;
    D->auth = auth;
    struct rtsp_server_options so = {
        .bind_host = opt->bind_host,
        .rtp_port = opt->rtp_port,
        .session_timeout_s = opt->session_timeout_s,
        .metrics_prefix = "imes_rtsp",
    };
    if (!(D->server = rtsp_server_new(loop, h, &so, &provider, D))) {
        free(D);
        return NULL;
    }
    return D;
}

void rtsp_device_free(struct rtsp_device **dp)
{
    struct rtsp_device *D = dp ? *dp : NULL;
    if (!D)
        return;
    rtsp_server_free(&D->server);
    free(D);
    *dp = NULL;
}
