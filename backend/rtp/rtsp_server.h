/*
 * An RTSP 1.0 server (RFC 2326) sending RTP/RTCP (RFC 3550) for live audio
 * sources, on top of httpd's RTSP hook (the HTTP port serves both). One
 * implementation for imesd's device streams and the Matriz peer: the server
 * knows nothing of players or encoders; a *provider* maps a URL to a
 * *source* that hands out encoded frames.
 *
 *     static const struct rtsp_provider prov = {.open = my_open, .cancel = my_cancel};
 *     struct rtsp_server *s = rtsp_server_new(loop, httpd, &opt, &prov, my_state);
 *     ...
 *     rtsp_server_free(&s);   (before httpd_free)
 *
 * Methods: OPTIONS, DESCRIBE (SDP: one audio media, a=control:trackID=0,
 * Content-Base: the request URL + "/"), SETUP, PLAY, PAUSE, GET_PARAMETER
 * (keep-alive), TEARDOWN. ANNOUNCE, RECORD, REDIRECT and SET_PARAMETER get
 * 405 with Allow; anything else 501. Errors: 400 (no CSeq, bad Transport or
 * Range syntax), 404 (what the provider says), 454 Session Not Found, 455
 * Method Not Valid In This State (SETUP of a session that plays), 459
 * Aggregate Operation Not Allowed (a second SETUP into one session: a source
 * has one stream), 461 Unsupported Transport (multicast, another profile,
 * UDP when the server has no RTP port), 551 Option Not Supported (Require),
 * 453 Not Enough Bandwidth (max_sessions), 503 (provider unavailable).
 *
 * URLs: DESCRIBE and SETUP open the request path through the provider;
 * SETUP's path may carry the media control suffix "/trackID=0", which is
 * removed first (so the provider sees the same path for both).
 *
 * Sessions: a random 64-bit id, "Session: <16 hex>;timeout=<s>". A session
 * belongs to the RTSP connection that set it up and is freed by TEARDOWN,
 * when that connection closes (a vanished client), when its source ends, or
 * after session_timeout_s without a request naming it or an RTCP packet from
 * its client (RTCP receiver reports over UDP, or interleaved on the
 * connection). While a connection owns sessions, httpd's idle timeout is off
 * for it: the session timeout governs.
 *
 * Transports: RTP/AVP over UDP unicast to the RTSP peer's address at its
 * client_port (a destination= other than the peer is ignored: no reflection
 * to third parties), sent from one socket bound to rtp_port, RTCP from
 * rtp_port + 1 (shared by every session; incoming RTCP is matched to its
 * session by source address, else by the SSRC its report blocks are about);
 * RTP/AVP/TCP interleaved on the RTSP connection (channels as asked, 0-1 by
 * default). A TCP client that does not read loses packets (counted), never
 * stalls anyone else.
 *
 * Pacing: each session sends a frame when it is due on the monotonic clock
 * (one timerfd for all sessions, nanosecond resolution): anchor + (samples
 * before it) / sample_rate. The schedule runs cushion_s behind the source's
 * own delivery, so frames are queued before they are due and the sender's
 * timing alone decides when they leave; at PLAY, what the source's start-up
 * burst holds beyond the cushion goes out at once (up to startup_s). A session whose frames
 * come late by more than RESYNC (see .c) re-anchors instead of rushing.
 * RTP timestamps advance by the audio's
 * duration (and by the wall time of a PAUSE, so a client's clock stays
 * right). A sender report (NTP/RTP pair, packet and octet counts) plus SDES
 * CNAME goes out min(sr_interval_s, 1 s) after PLAY and then every
 * sr_interval_s, randomised to 0.5-1.5 x (RFC 3550 §6.3.1); a BYE at
 * TEARDOWN. A client that sends an RTCP XR RRTR block (RFC 3611 §4.4, as
 * rtsp_client does) is answered with a DLRR block (§4.5) in an SR at once
 * (unless a compound went out < 0.2 s before) and in every SR after, so
 * that the client knows its round-trip time too.
 *
 * Metrics (prefix from the options, "imes_rtsp" by default): <p>_sessions
 * {transport}, <p>_sessions_playing, <p>_sessions_total, <p>_sessions_closed_total
 * {reason: teardown, connection, timeout, source}, <p>_requests_total,
 * <p>_request_errors_total, <p>_rtp_packets_total, <p>_rtp_octets_total,
 * <p>_rtp_dropped_total, <p>_rtcp_sent_total, <p>_rtcp_received_total,
 * <p>_rtcp_bad_total, per session that reported: <p>_rr_fraction_lost,
 * <p>_rr_cumulative_lost, <p>_rr_jitter_seconds, <p>_rtt_seconds {session};
 * and the pacing error (|send time - due time|, start-up bursts excluded):
 * <p>_pacing_error_seconds{quantile="0.5"|"0.99"|"1"}, <p>_pacing_packets_total.
 * Thread: loop.
 */
#ifndef IMES_RTSP_SERVER_H
#define IMES_RTSP_SERVER_H

#include "rtp/rtp.h"

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

struct httpd;
struct rtsp_server;
struct rtsp_open;

/* One encoded frame (MPA: an MP3 frame; Opus: an Opus packet; L16/L24: a
 * block of big-endian PCM). */
struct rtsp_frame {
    const uint8_t *data; /* valid until the next read on this source */
    size_t len;
    uint32_t samples; /* its duration at the source's sample_rate */
};

typedef void (*rtsp_wake_fn)(void *arg);

struct rtsp_source;
struct rtsp_source_ops {
    /* PLAY: frames begin to flow; wake(arg) whenever new ones can be read
     * (may be called from inside read: the server copes). 0, or <0 (the PLAY
     * is answered 404 for -ENOENT, else 503). */
    int (*start)(struct rtsp_source *s, rtsp_wake_fn wake, void *arg);
    /* The next frame: 1 (filled), 0 (none ready now), <0 (the source is gone
     * or this reader fell behind: the session ends). */
    int (*read)(struct rtsp_source *s, struct rtsp_frame *f);
    /* PAUSE: no more frames or wakes until start() again. May be NULL. */
    void (*stop)(struct rtsp_source *s);
    /* The session is over: free everything (stop() is not called first). */
    void (*close)(struct rtsp_source *s);
};

/* A source as the provider hands it over: providers embed this as the first
 * member of their own struct. */
struct rtsp_source {
    const struct rtsp_source_ops *ops;
    struct rtp_format fmt; /* payload format (rtp_format_default) */
    uint32_t sample_rate;  /* of rtsp_frame.samples (48000 for MP3/Opus here) */
    int bitrate_kbps;      /* SDP b=AS, 0 = none */
    const char *fmtp;      /* SDP a=fmtp value, NULL = sdp_fmtp_default */
    char name[96];         /* SDP s= and logs */
};

struct rtsp_provider {
    /* Looks up a path (query may be NULL). Must answer with rtsp_open_done
     * exactly once, now or from a later callback, unless cancel(op) comes
     * first (the client left). Return <0 (and never answer) when it cannot
     * even start: the request gets 503. */
    int (*open)(void *arg, struct rtsp_open *op, const char *path, const char *query);
    void (*cancel)(void *arg, struct rtsp_open *op);
};

/* The provider's answer: status 200 with a source (ownership passes to the
 * server, which calls its close), or an RTSP status (404, 503, ...) and
 * src NULL. */
void rtsp_open_done(struct rtsp_open *op, int status, struct rtsp_source *src);
/* A pointer of the provider's kept with a pending open (to find its own
 * state again in cancel). NULL until set. */
void rtsp_open_set_data(struct rtsp_open *op, void *data);
void *rtsp_open_data(const struct rtsp_open *op);

struct rtsp_server_options {
    const char *bind_host;      /* for the UDP sockets, numeric; NULL = "0.0.0.0" */
    int rtp_port;               /* RTP from here, RTCP from +1; 0 = TCP interleaved only */
    double session_timeout_s;   /* 0 = 60 (RFC 2326 §12.37's default) */
    double sr_interval_s;       /* 0 = 5 (RFC 3550 §6.2's minimum; a small session like
                                 * Matriz's may go lower: §6.2 scales it to its bandwidth) */
    double cushion_s;           /* schedule behind the source's delivery; 0 = 0.1 s, <0 = none */
    double startup_s;           /* at most this much audio at once at PLAY (what is beyond
                                 * is paced); 0 = no limit, <0 = none at all */
    size_t max_sessions;        /* 0 = 1024 */
    size_t mtu;                 /* 0 = RTP_DEFAULT_MTU */
    const char *metrics_prefix; /* NULL = "imes_rtsp" */
    const char *cname;          /* SDES CNAME; NULL = "imes@<hostname>" */
    int live;                   /* a live source (a sound card): each frame leaves the
                                 * moment the source gives it, no schedule of our own —
                                 * the source's clock paces, and a sound card running a
                                 * little fast cannot make frames wait longer and longer */
};

/* Installs itself as h's RTSP handler and opens the UDP sockets. NULL on
 * error (logged; errno set: EADDRINUSE for a taken rtp_port, ...). */
struct rtsp_server *rtsp_server_new(struct ev_loop *loop, struct httpd *h,
                                    const struct rtsp_server_options *opt,
                                    const struct rtsp_provider *prov, void *prov_arg);
/* Frees every session (their sources closed), the sockets, and unhooks from
 * httpd. Call before httpd_free. */
void rtsp_server_free(struct rtsp_server **s);

/* Sessions now (all / playing). */
size_t rtsp_server_sessions(const struct rtsp_server *s);
size_t rtsp_server_playing(const struct rtsp_server *s);
/* The bound RTP port (useful with rtp_port set), or 0. */
int rtsp_server_rtp_port(const struct rtsp_server *s);

#endif
