/*
 * RTP packets and payload formats (backend/rtp/rtp.h): headers written and
 * read back bit for bit against RFC 3550 §5.1; every malformed packet
 * (version, CSRC count, extension length, padding) refused; MPA frames
 * (RFC 2250) in one packet or fragmented with the right Frag_offset; Opus
 * one packet per frame; L16/L24 cut at sample boundaries with timestamps
 * advancing by the samples before; sequence numbers wrapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rtp/rtp.h"

struct got {
    uint8_t pkt[16][2048];
    size_t len[16];
    int n;
};

static int keep(const uint8_t *p, size_t len, void *arg)
{
    struct got *g = arg;
    if (g->n >= 16)
        return -ENOSPC;
    memcpy(g->pkt[g->n], p, len);
    g->len[g->n++] = len;
    return 0;
}

static void test_header_roundtrip(void **state)
{
    uint8_t b[64];
    struct rtp_header h = {.marker = 1,
                           .pt = 96,
                           .seq = 0xfffe,
                           .ts = 0x89abcdef,
                           .ssrc = 0x01020304,
                           .cc = 2,
                           .csrc = {7, 0xffffffff}};
    int n = rtp_header_write(b, sizeof(b), &h);
    assert_int_equal(n, 20);
    assert_int_equal(b[0], 0x82); /* V=2, P=0, X=0, CC=2 */
    assert_int_equal(b[1], 0x80 | 96);
    assert_int_equal(b[2], 0xff);
    assert_int_equal(b[3], 0xfe);
    assert_int_equal(rtp_rd32(b + 4), 0x89abcdef);
    assert_int_equal(rtp_rd32(b + 8), 0x01020304);
    struct rtp_packet p;
    assert_int_equal(rtp_parse(b, (size_t)n, &p), 0);
    assert_int_equal(p.h.marker, 1);
    assert_int_equal(p.h.pt, 96);
    assert_int_equal(p.h.seq, 0xfffe);
    assert_int_equal(p.h.ts, 0x89abcdef);
    assert_int_equal(p.h.cc, 2);
    assert_int_equal(p.h.csrc[1], 0xffffffff);
    assert_int_equal(p.payload_len, 0);
    assert_int_equal(rtp_header_write(b, 19, &h), -ENOSPC);
    h.pt = 128;
    assert_int_equal(rtp_header_write(b, sizeof(b), &h), -EINVAL);
}

static void test_parse_rejects(void **state)
{
    struct rtp_packet p;
    uint8_t b[64] = {0x80, 14, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xaa, 0xbb};
    assert_int_equal(rtp_parse(b, 14, &p), 0);
    assert_int_equal(p.payload_len, 2);
    assert_int_equal(p.payload[0], 0xaa);
    assert_int_equal(rtp_parse(b, 11, &p), -EINVAL); /* short */
    assert_int_equal(rtp_parse(NULL, 0, &p), -EINVAL);
    b[0] = 0x40; /* version 1 */
    assert_int_equal(rtp_parse(b, 14, &p), -EINVAL);
    b[0] = 0x81; /* one CSRC, but only 2 bytes follow */
    assert_int_equal(rtp_parse(b, 14, &p), -EINVAL);
    /* extension: header says 1 word, but nothing follows the ext header */
    uint8_t e[16] = {0x90, 14, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0, 1};
    assert_int_equal(rtp_parse(e, 16, &p), -EINVAL);
    e[15] = 0;
    assert_int_equal(rtp_parse(e, 16, &p), 0);
    assert_int_equal(p.h.has_ext, 1);
    assert_int_equal(p.h.ext_profile, 0xbede);
    assert_int_equal(p.payload_len, 0);
    /* padding: count 0, larger than the payload, and a good one */
    uint8_t q[16] = {0xa0, 14, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 0, 0};
    assert_int_equal(rtp_parse(q, 16, &p), -EINVAL);
    q[15] = 5;
    assert_int_equal(rtp_parse(q, 16, &p), -EINVAL);
    q[15] = 4;
    assert_int_equal(rtp_parse(q, 16, &p), 0);
    assert_int_equal(p.payload_len, 0);
    assert_int_equal(p.padding, 4);
    q[15] = 2;
    assert_int_equal(rtp_parse(q, 16, &p), 0);
    assert_int_equal(p.payload_len, 2);
}

static void test_mpa(void **state)
{
    struct rtp_format f;
    assert_int_equal(rtp_format_default(&f, RTP_ENC_MPA, 48000, 2), 0);
    assert_int_equal(f.pt, 14);
    assert_int_equal(f.clock_rate, 90000);
    struct rtp_payloader pl;
    rtp_payloader_init(&pl, &f, 0xabcdef01, 65535, 0);
    uint8_t frame[417];
    for (size_t i = 0; i < sizeof(frame); i++)
        frame[i] = (uint8_t)i;
    frame[0] = 0xff;
    struct got g = {.n = 0};
    assert_int_equal(rtp_payload_frame(&pl, frame, sizeof(frame), 1000, 0, keep, &g), 1);
    assert_int_equal(g.len[0], 12 + 4 + 417);
    struct rtp_packet p;
    assert_int_equal(rtp_parse(g.pkt[0], g.len[0], &p), 0);
    assert_int_equal(p.h.pt, 14);
    assert_int_equal(p.h.seq, 65535);
    assert_int_equal(p.h.ts, 1000);
    uint16_t off = 1;
    assert_int_equal(rtp_mpa_parse(p.payload, p.payload_len, &off), 0);
    assert_int_equal(off, 0);
    assert_memory_equal(p.payload + 4, frame, sizeof(frame));
    assert_int_equal(pl.seq, 0); /* wrapped */
    assert_int_equal(pl.octets, 4 + 417);

    /* A frame larger than the MTU: fragments with Frag_offset, one timestamp. */
    uint8_t big[3000];
    memset(big, 0x5a, sizeof(big));
    rtp_payloader_init(&pl, &f, 1, 100, 1000);
    g.n = 0;
    assert_int_equal(rtp_payload_frame(&pl, big, sizeof(big), 7, 0, keep, &g), 4);
    size_t total = 0;
    for (int i = 0; i < g.n; i++) {
        assert_true(g.len[i] <= 1000);
        assert_int_equal(rtp_parse(g.pkt[i], g.len[i], &p), 0);
        assert_int_equal(p.h.ts, 7);
        assert_int_equal(p.h.seq, 100 + i);
        assert_int_equal(rtp_mpa_parse(p.payload, p.payload_len, &off), 0);
        assert_int_equal(off, total);
        total += p.payload_len - 4;
    }
    assert_int_equal(total, sizeof(big));
    uint8_t mbz[4] = {0, 1, 0, 0};
    assert_int_equal(rtp_mpa_parse(mbz, 4, &off), -EINVAL);
    assert_int_equal(rtp_mpa_parse(mbz, 3, &off), -EINVAL);
}

static void test_opus(void **state)
{
    struct rtp_format f;
    assert_int_equal(rtp_format_default(&f, RTP_ENC_OPUS, 0, 1), 0);
    assert_int_equal(f.pt, 96);
    assert_int_equal(f.clock_rate, 48000);
    assert_int_equal(f.channels, 2); /* RFC 7587: always opus/48000/2 */
    struct rtp_payloader pl;
    rtp_payloader_init(&pl, &f, 5, 0, 0);
    uint8_t pkt[200] = {0xfc};
    struct got g = {.n = 0};
    assert_int_equal(rtp_payload_frame(&pl, pkt, sizeof(pkt), 960, 1, keep, &g), 1);
    struct rtp_packet p;
    assert_int_equal(rtp_parse(g.pkt[0], g.len[0], &p), 0);
    assert_int_equal(p.h.marker, 1);
    assert_int_equal(p.payload_len, 200);
    assert_int_equal(p.payload[0], 0xfc);
    uint8_t huge[1500] = {0};
    assert_int_equal(rtp_payload_frame(&pl, huge, sizeof(huge), 0, 0, keep, &g), -EMSGSIZE);
    assert_string_equal(rtp_encoding_name(RTP_ENC_OPUS), "opus");
}

static void test_pcm(void **state)
{
    struct rtp_format f;
    assert_int_equal(rtp_format_default(&f, RTP_ENC_L16, 48000, 2), 0);
    assert_int_equal(rtp_format_default(&f, RTP_ENC_L16, 48000, 0), -EINVAL);
    assert_int_equal(rtp_format_default(&f, RTP_ENC_L24, 48000, 2), 0);
    assert_int_equal(f.clock_rate, 48000);
    struct rtp_payloader pl;
    rtp_payloader_init(&pl, &f, 5, 10, 12 + 60); /* 10 stereo L24 frames a packet */
    uint8_t pcm[25 * 6];
    for (size_t i = 0; i < sizeof(pcm); i++)
        pcm[i] = (uint8_t)i;
    struct got g = {.n = 0};
    assert_int_equal(rtp_payload_frame(&pl, pcm, sizeof(pcm), 1000, 0, keep, &g), 3);
    uint32_t want_ts[] = {1000, 1010, 1020};
    size_t want_len[] = {60, 60, 30};
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        struct rtp_packet p;
        assert_int_equal(rtp_parse(g.pkt[i], g.len[i], &p), 0);
        assert_int_equal(p.h.ts, want_ts[i]);
        assert_int_equal(p.payload_len, want_len[i]);
        assert_memory_equal(p.payload, pcm + off, want_len[i]);
        off += want_len[i];
    }
    assert_int_equal(rtp_payload_frame(&pl, pcm, 7, 0, 0, keep, &g), -EINVAL); /* not whole */

    int16_t s16[3] = {1, -2, 0x1234};
    uint8_t be[6];
    rtp_l16_from_s16(be, s16, 3);
    uint8_t want16[6] = {0, 1, 0xff, 0xfe, 0x12, 0x34};
    assert_memory_equal(be, want16, 6);
    int32_t s32[2] = {0x12345600, -256};
    uint8_t b24[6];
    rtp_l24_from_s32(b24, s32, 2);
    uint8_t want24[6] = {0x12, 0x34, 0x56, 0xff, 0xff, 0xff};
    assert_memory_equal(b24, want24, 6);
}

static int stop_second(const uint8_t *p, size_t len, void *arg)
{
    int *n = arg;
    return ++*n == 2 ? -EPIPE : 0;
}

static void test_emit_error(void **state)
{
    struct rtp_format f;
    rtp_format_default(&f, RTP_ENC_MPA, 48000, 2);
    struct rtp_payloader pl;
    rtp_payloader_init(&pl, &f, 1, 0, 100);
    uint8_t big[500] = {0};
    int n = 0;
    assert_int_equal(rtp_payload_frame(&pl, big, sizeof(big), 0, 0, stop_second, &n), -EPIPE);
    assert_int_equal(pl.seq, 1); /* only the first packet counted */
    assert_int_equal(pl.packets, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_mpa),
        cmocka_unit_test(test_opus),
        cmocka_unit_test(test_pcm),
        cmocka_unit_test(test_emit_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
