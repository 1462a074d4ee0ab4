/*
 * RTSP device streams: rtsp://<host>:<port>/device/<name>/<token> plays a
 * device over RTSP/RTP (backend/rtp/rtsp_server.h does the protocol); this
 * module is the provider that turns such a URL into a source.
 *
 *     rtsp://host:9997/device/<name>/<token>        MP3 as RFC 2250 MPA (PT 14)
 *     rtsp://host:9997/device/<name>/<token>/mp3    the same
 *     rtsp://host:9997/device/<name>/<token>/opus   Opus as RFC 7587 (PT 96)
 *
 * (A path suffix rather than a query: clients build the SETUP URL from the
 * DESCRIBE URL plus "/trackID=0", which a query would end up in the middle
 * of.) The token is checked exactly as for HTTP streams (auth.h: a wrong
 * token, an unknown device and a malformed URL are one and the same 404).
 * At PLAY the session attaches to the device in the player, like an HTTP
 * listener, and reads the channel's shared encoders' frames (silence while
 * the device is muted); PAUSE detaches, so a paused session does not keep a
 * room playing.
 *
 * Free before the httpd and the player (it frees its server, which closes
 * every session).
 * Thread: loop.
 */
#ifndef IMES_STREAM_RTSP_H
#define IMES_STREAM_RTSP_H

#include <ev.h>
#include <stddef.h>

#include "state/auth.h"

struct httpd;
struct player;
struct rtsp_device;

struct rtsp_device_options {
    const char *bind_host;    /* UDP sockets: as the httpd's */
    int rtp_port;             /* backend.rtp_port; RTCP on rtp_port + 1 */
    double session_timeout_s; /* 0 = 60 */
};

struct rtsp_device *rtsp_device_new(struct ev_loop *loop, struct httpd *h, struct player *pl,
                                    struct auth *auth, const struct rtsp_device_options *opt);
void rtsp_device_free(struct rtsp_device **d);

/* ---- URL parsing (pure; for tests and the fuzzer) ---- */

enum rtsp_device_codec { RTSP_DEVICE_MP3 = 0, RTSP_DEVICE_OPUS = 1 };

struct rtsp_device_url {
    char name[AUTH_NAME_MAX + 1];
    char token[AUTH_TOKEN_MAX + 1];
    enum rtsp_device_codec codec;
};

/* "/device/<name>/<token>[/mp3|/opus]" (a trailing '/' allowed): 0, or
 * -ENOENT for anything else (the caller answers 404). */
int rtsp_device_parse_path(const char *path, struct rtsp_device_url *u);

#endif
