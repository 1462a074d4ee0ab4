/*
 * The RTSP Transport header (RFC 2326 §12.39) for RTP audio: parsed from a
 * client's SETUP (a comma-separated list of alternatives, the first usable
 * one wins) and written back in the answer, or the other way round on the
 * client side. Pure. Thread: any.
 *
 *     RTP/AVP;unicast;client_port=5000-5001
 *     RTP/AVP/UDP;unicast;client_port=5000-5001;server_port=9998-9999;ssrc=1A2B3C4D
 *     RTP/AVP/TCP;unicast;interleaved=0-1;mode=play
 */
#ifndef IMES_RTSP_TRANSPORT_H
#define IMES_RTSP_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#define RTSP_TRANSPORT_MAX 1024 /* longest header value accepted */

struct rtsp_transport {
    int tcp;            /* RTP/AVP/TCP (interleaved), else UDP */
    int multicast;      /* "multicast" was asked for (we serve unicast only) */
    int client_port[2]; /* UDP: RTP and RTCP ports of the client, 0 = absent */
    int server_port[2]; /* UDP: ours (in answers) */
    int interleaved[2]; /* TCP: channels, -1 = absent */
    int has_ssrc;
    uint32_t ssrc;
    int record;           /* mode=record (else play) */
    char destination[64]; /* destination=, "" = absent */
};

/* Parses the first alternative we can serve: RTP/AVP over UDP unicast with a
 * client_port, or RTP/AVP/TCP (interleaved channels default to 0-1 when
 * absent: RFC 2326 leaves the choice to the server). Returns 0, -ENOTSUP when
 * every alternative is well-formed but none is servable (multicast, another
 * profile, a UDP one without client_port, mode=record): 461 Unsupported
 * Transport; -EINVAL when the header is malformed (400). */
int rtsp_transport_parse(const char *value, struct rtsp_transport *out);

/* Writes t as one header value ("RTP/AVP;unicast;client_port=...;
 * server_port=...;ssrc=..." or "RTP/AVP/TCP;unicast;interleaved=a-b;
 * ssrc=..."). Returns its length, or -ENOSPC. */
int rtsp_transport_write(const struct rtsp_transport *t, char *out, size_t cap);

#endif
