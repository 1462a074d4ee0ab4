/*
 * libFuzzer target for the RTP side's parsers of outside input
 * (backend/rtp/): RTP packets, RFC 2250 headers, RTCP compounds, SDP, the
 * Transport header and imesd's RTSP device paths, all on the same bytes.
 *
 * Besides "never crash, never read out of bounds" it checks properties: a
 * parsed RTP payload lies inside the packet; whatever rtcp_parse accepts
 * has its counts in range; a Transport it accepts writes back to one it
 * accepts again, the same; and the payloaders, fed the input as a frame,
 * emit packets that parse back to the very bytes (MPA fragments reassemble
 * by Frag_offset), with sequence numbers in order.
 */
#include "rtp/rtcp.h"
#include "rtp/rtp.h"
#include "rtp/rtsp_transport.h"
#include "rtp/sdp.h"
#include "stream/rtsp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_rtp: %s\n", what);
        abort();
    }
}

struct reassembly {
    uint8_t out[70000];
    size_t len;
    int packets;
    uint16_t seq;
    const struct rtp_payloader *p;
};

static int collect(const uint8_t *pkt, size_t len, void *arg)
{
    struct reassembly *r = arg;
    struct rtp_packet p;
    check(len <= r->p->mtu, "packet over the MTU");
    check(rtp_parse(pkt, len, &p) == 0, "own packet does not parse");
    check(p.h.seq == (uint16_t)(r->seq + r->packets), "sequence out of order");
    const uint8_t *payload = p.payload;
    size_t n = p.payload_len;
    if (r->p->fmt.enc == RTP_ENC_MPA) {
        uint16_t off;
        check(rtp_mpa_parse(payload, n, &off) == 0, "own MPA header does not parse");
        check(off == r->len, "Frag_offset is not what came before");
        payload += RTP_MPA_HEADER;
        n -= RTP_MPA_HEADER;
    }
    check(r->len + n <= sizeof(r->out), "too much payload");
    memcpy(r->out + r->len, payload, n);
    r->len += n;
    r->packets++;
    return 0;
}

static void payload_roundtrip(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    enum rtp_encoding enc = (enum rtp_encoding)(data[0] % 4);
    size_t mtu = 64 + (size_t)data[1] * 8;
    struct rtp_format f;
    if (rtp_format_default(&f, enc, 48000, 1 + (data[0] >> 7)) < 0)
        return;
    static struct reassembly r;
    struct rtp_payloader p;
    rtp_payloader_init(&p, &f, 0x1234, (uint16_t)(size * 977), mtu);
    r.len = 0;
    r.packets = 0;
    r.seq = p.seq;
    r.p = &p;
    const uint8_t *frame = data + 2;
    size_t len = size - 2;
    int n = rtp_payload_frame(&p, frame, len, 90000, data[0] & 1, collect, &r);
    if (n < 0)
        return; /* refused: too big for Opus, not whole PCM samples */
    check(n == r.packets, "count");
    check(r.len == len && memcmp(r.out, frame, len) == 0, "payload does not come back");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rtp_packet p;
    if (rtp_parse(data, size, &p) == 0) {
        check(p.payload >= data && p.payload + p.payload_len <= data + size, "payload outside");
        uint16_t off;
        rtp_mpa_parse(p.payload, p.payload_len, &off);
    }
    struct rtcp_info info;
    if (rtcp_parse(data, size, &info) == 0) {
        check(info.nblocks >= 0 && info.nblocks <= RTCP_MAX_BLOCKS, "blocks");
        check(strlen(info.cname) <= RTCP_CNAME_MAX, "cname");
        check(info.ndlrr >= 0 && info.ndlrr <= RTCP_MAX_DLRR, "dlrr sub-blocks");
        check(info.has_rrtr == 0 || info.has_rrtr == 1, "rrtr");
    }
    struct sdp_media m;
    sdp_parse((const char *)data, size, &m);

    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct rtsp_transport t, t2;
    if (rtsp_transport_parse(s, &t) == 0) {
        char out[RTSP_TRANSPORT_MAX + 256];
        int n = rtsp_transport_write(&t, out, sizeof(out));
        check(n > 0, "an accepted Transport does not write");
        check(rtsp_transport_parse(out, &t2) == 0, "a written Transport does not parse");
        /* (what does not apply to the transport, like interleaved= on UDP, is
         * not written back) */
        check(t2.tcp == t.tcp && t2.has_ssrc == t.has_ssrc && t2.ssrc == t.ssrc &&
                  (t.tcp ? t2.interleaved[0] == t.interleaved[0] &&
                               t2.interleaved[1] == t.interleaved[1]
                         : t2.client_port[0] == t.client_port[0] &&
                               t2.client_port[1] == t.client_port[1]),
              "Transport changed on the way back");
    }
    struct rtsp_device_url u;
    if (rtsp_device_parse_path(s, &u) == 0)
        check(u.name[0] && u.token[0], "empty name or token accepted");
    free(s);

    struct rtcp_recv_stats st = {0};
    for (size_t i = 0; i + 1 < size && i < 512; i += 2) {
        rtcp_recv_packet(&st, (uint16_t)(data[i] << 8 | data[i + 1]), (uint32_t)i * 960,
                         (uint32_t)i * 960 + data[i]);
        if (i % 64 == 0) {
            struct rtcp_block b;
            rtcp_recv_block(&st, 1, 0, 0, &b);
        }
    }
    payload_roundtrip(data, size);
    return 0;
}
