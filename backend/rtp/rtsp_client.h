/*
 * An RTSP 1.0 client (RFC 2326) that receives one RTP audio stream: what a
 * Matriz peer runs to every other peer. On libev, built on the RTP, RTCP,
 * SDP and Transport modules of this folder.
 *
 *     DESCRIBE url → sdp_parse → SETUP <control> (UDP client_port pair from
 *     udp_min..udp_max, or TCP interleaved 0-1) → PLAY → RTP/RTCP flow
 *     GET_PARAMETER every keepalive_s (its round trip is measured);
 *     RTCP receiver reports (+ SDES CNAME, + an XR RRTR block) every
 *     rr_interval_s, randomised to 0.5-1.5 x (RFC 3550 §6.3.1);
 *     TEARDOWN when freed.
 *
 * UDP first: when no RTP packet has come over UDP udp_wait_s after PLAY
 * (a firewall, a NAT), the session is torn down and set up again
 * interleaved on the RTSP connection. force_tcp skips UDP.
 *
 * Incoming RTP is checked (sent from the server's address; rtp_parse; the
 * payload type the SDP announced;
 * once known, the SSRC) and handed over with its arrival time on the
 * monotonic clock (timeutil_mono, the clock of the audio side). RTCP sender
 * reports are kept for the receiver reports' LSR/DLSR. The round-trip time
 * comes from RTCP XR (RFC 3611): each RR goes with a Receiver Reference Time
 * block, the sender answers with a DLRR block (rtsp_server does), and
 * rtt_s = arrival - LRR - DLRR. The round trip of the keep-alive requests
 * is kept too (rtsp_rtt_s: the server's request handling included).
 *
 * Every answer is parsed by rtsp_response_parse (pure; fuzzed): bounded
 * head (16 KiB) and body (64 KiB); anything malformed ends the session with
 * -EPROTO. Requests time out after timeout_s (-ETIMEDOUT); a connection the
 * server closes, or an RTCP BYE from the sender, ends it with -ECONNRESET; no
 * RTP for rx_timeout_s while playing (the path is gone) with -ETIMEDOUT. end() is called exactly
 * once per started client, never from inside rtsp_client_start or _free; the client
 * must not be freed inside end() (free it later: a timer, the next attempt).
 *
 * Hosts in the URL must be numeric (IPv4, [IPv6]): name resolution blocks,
 * and the loop must not (resolve on a worker first).
 * Thread: loop.
 */
#ifndef IMES_RTSP_CLIENT_H
#define IMES_RTSP_CLIENT_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "rtp/rtcp.h"
#include "rtp/rtp.h"
#include "rtp/sdp.h"

#define RTSP_CLIENT_MAX_HEAD 16384
#define RTSP_CLIENT_MAX_BODY 65536

struct rtsp_client;

struct rtsp_client_options {
    const char *url;       /* rtsp://host[:port]/path (copied) */
    const char *bind_host; /* numeric, for the UDP sockets; NULL = any */
    int udp_min, udp_max;  /* UDP ports for the RTP/RTCP pair; 0 = TCP only */
    int force_tcp;
    double udp_wait_s;    /* 0 = 1.5 */
    double timeout_s;     /* per request; 0 = 5 */
    double keepalive_s;   /* 0 = min(session timeout / 2, 15) */
    double rr_interval_s; /* 0 = 1 */
    double rx_timeout_s;  /* playing and no RTP this long: the session ends; 0 = 3 */
    const char *cname;    /* SDES CNAME; NULL = "matriz" */
};

struct rtsp_client_callbacks {
    /* PLAY answered: the stream's format, and whether it is interleaved. */
    void (*ready)(void *arg, const struct sdp_media *m, int tcp);
    /* One RTP packet (valid during the call). arrival: timeutil_mono(). */
    void (*rtp)(void *arg, const struct rtp_packet *p, double arrival);
    /* The session is over: err is -ECONNREFUSED, -ECONNRESET, -ETIMEDOUT,
     * -EPROTO (a malformed or refused answer: why says which) or -ENOTSUP
     * (a stream we do not play). */
    void (*end)(void *arg, int err, const char *why);
};

struct rtsp_client_stats {
    int playing, tcp;
    uint64_t rtp_packets, rtp_octets, rtp_bad, rtcp_in, rtcp_bad, frames_bad;
    uint32_t ssrc;
    double rtt_s;      /* RTCP round trip from the last XR DLRR answer, -1 none yet */
    double rtsp_rtt_s; /* the last keep-alive's round trip, -1 none yet */
    double sr_age_s;   /* since the last sender report, -1 none yet */
    int fallbacks;     /* UDP → TCP */
};

/* NULL on bad options (an unparsable URL, a host that is not numeric). */
struct rtsp_client *rtsp_client_new(struct ev_loop *loop, const struct rtsp_client_options *opt,
                                    const struct rtsp_client_callbacks *cb, void *arg);
/* Connects. 0, or <0 (and end() is never called). */
int rtsp_client_start(struct rtsp_client *c);
/* Sends TEARDOWN when playing (best effort), closes, frees; no callback
 * after this. NULL and *c == NULL are fine. */
void rtsp_client_free(struct rtsp_client **c);
void rtsp_client_get_stats(const struct rtsp_client *c, struct rtsp_client_stats *st);

/* ---- pure helpers (tests, fuzzing) ---- */

/* rtsp://host[:port][/path]: host (without []), port (554 when absent). 0
 * or -EINVAL. */
int rtsp_url_split(const char *url, char *host, size_t hostlen, int *port);

/* The URL a SETUP goes to: control as given when absolute ("rtsp://...");
 * else base (Content-Base, or the DESCRIBE URL) + "/" + control; base alone
 * for "*" or "". 0 or -ENOSPC. */
int rtsp_control_url(const char *base, const char *control, char *out, size_t outlen);

struct rtsp_response {
    int is_frame;
    /* frame */
    unsigned channel;
    const uint8_t *data; /* into the parsed bytes */
    size_t len;
    /* response */
    int status;
    int cseq;               /* -1 if absent */
    char session[128];      /* without ";timeout=" */
    int session_timeout;    /* seconds, 0 if absent */
    char transport[1024];   /* "" if absent */
    char content_base[512]; /* "" if absent */
    char content_type[128]; /* "" if absent */
    const char *body;       /* into the parsed bytes */
    size_t body_len;
};

/* Parses one message from the front of data: an answer ("RTSP/1.0 200
 * OK\r\n" + headers + Content-Length body) or an interleaved frame ('$',
 * channel, 16-bit length, payload). Returns the bytes it takes (> 0), 0 when
 * more are needed, -EINVAL for a malformed one, -E2BIG beyond the limits.
 * Never reads outside data[0..len). */
int rtsp_response_parse(const uint8_t *data, size_t len, struct rtsp_response *out);

#endif
