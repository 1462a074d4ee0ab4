/*
 * SDP (RFC 4566) for one audio stream: what an RTSP DESCRIBE answers, and
 * the subset a client needs to read back (m=, c=, a=rtpmap, a=fmtp,
 * a=control). Pure. Thread: any.
 *
 *     struct sdp_media m = {.fmt = fmt, .control = "trackID=0"};
 *     sdp_fmtp_default(&m);                    // Opus: sprop-stereo..., MPA: none
 *     n = sdp_write(text, sizeof(text), &(struct sdp_session){.origin_addr = "127.0.0.1",
 *                                                              .name = "speaker"}, &m);
 */
#ifndef IMES_SDP_H
#define IMES_SDP_H

#include "rtp/rtp.h"

#include <stddef.h>
#include <stdint.h>

#define SDP_MAX_TEXT 255 /* fmtp, control, names */

struct sdp_session {
    uint64_t id;             /* o= sess-id (and version); 0 = 1 */
    const char *origin_addr; /* o= and c= address: numeric IPv4 or IPv6; NULL = 0.0.0.0 */
    const char *name;        /* s=; NULL or "" = "-" */
    const char *info;        /* i=, may be NULL */
};

struct sdp_media {
    struct rtp_format fmt;
    uint16_t port;                  /* m= port: 0 for RTSP (the transport decides) */
    char fmtp[SDP_MAX_TEXT + 1];    /* a=fmtp:<pt> value, "" = none */
    char control[SDP_MAX_TEXT + 1]; /* a=control, "" = none */
    char conn_addr[64];             /* parse: c= address of the media or session, if any */
    int bitrate_kbps;               /* b=AS; 0 = none */
};

/* A sensible a=fmtp for the format: Opus "minptime=10;useinbandfec=1" plus
 * "stereo=1;sprop-stereo=1" for 2 channels; MPA and L16/L24 none. */
void sdp_fmtp_default(struct sdp_media *m);

/* Writes the SDP text (CRLF lines) with one m=audio. Returns its length, or
 * -ENOSPC, -EINVAL (a string with CR/LF in it, a bad payload type). */
int sdp_write(char *out, size_t cap, const struct sdp_session *s, const struct sdp_media *m);

/* Reads the first m=audio of an SDP text (LF or CRLF lines): its payload
 * type (the first format listed), the rtpmap of that type (or the static
 * defaults of PT 14 MPA, 10/11 L16), fmtp, control (media level, else
 * session level) and c=. -EINVAL if there is no m=audio, -ENOTSUP if its
 * encoding is none of MPA, opus, L16, L24. Never reads beyond len. */
int sdp_parse(const char *text, size_t len, struct sdp_media *out);

#endif
