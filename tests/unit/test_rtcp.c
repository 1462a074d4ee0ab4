/*
 * RTCP (backend/rtp/rtcp.h): SR + SDES + BYE built and parsed back; RR with
 * report blocks (24-bit signed loss); the compound checks of RFC 3550 A.2;
 * NTP time and RTT from LSR/DLSR; RTCP XR (RFC 3611) RRTR and DLRR blocks
 * built and parsed back, unknown blocks skipped, malformed ones rejected, and
 * the receiver's RTT from them (across the 32-bit wrap); the randomised
 * interval; receiver statistics (A.1 probation, wrap-around, loss and
 * fraction lost per A.3, jitter per A.8).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rtp/rtcp.h"
#include "rtp/rtp.h"

static void test_sr_sdes_bye(void **state)
{
    uint8_t b[RTCP_MAX_PACKET];
    struct rtcp_sender_info si = {
        .ntp = 0xe1234567890abcdeull, .rtp_ts = 42, .packets = 7, .octets = 3000};
    struct rtcp_block blk = {.ssrc = 9,
                             .fraction_lost = 12,
                             .cumulative_lost = -5,
                             .ext_highest_seq = 70000,
                             .jitter = 33,
                             .lsr = 1,
                             .dlsr = 2};
    int n = rtcp_write_sr(b, sizeof(b), 0x11223344, &si, &blk, 1);
    assert_int_equal(n, 52);
    int m = rtcp_write_sdes_cname(b + n, sizeof(b) - (size_t)n, 0x11223344, "imes@host");
    assert_int_equal(m % 4, 0);
    n += m;
    m = rtcp_write_bye(b + n, sizeof(b) - (size_t)n, 0x11223344);
    assert_int_equal(m, 8);
    n += m;
    struct rtcp_info info;
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), 0);
    assert_int_equal(info.has_sr, 1);
    assert_int_equal(info.sender_ssrc, 0x11223344);
    assert_true(info.sr.ntp == si.ntp);
    assert_int_equal(info.sr.rtp_ts, 42);
    assert_int_equal(info.sr.packets, 7);
    assert_int_equal(info.sr.octets, 3000);
    assert_int_equal(info.nblocks, 1);
    assert_int_equal(info.blocks[0].cumulative_lost, -5);
    assert_int_equal(info.blocks[0].fraction_lost, 12);
    assert_int_equal(info.blocks[0].ext_highest_seq, 70000);
    assert_int_equal(info.blocks[0].jitter, 33);
    assert_int_equal(info.has_cname, 1);
    assert_string_equal(info.cname, "imes@host");
    assert_int_equal(info.bye, 1);
    assert_int_equal(info.bye_ssrc, 0x11223344);
    assert_int_equal(rtcp_write_sr(b, 27, 1, &si, NULL, 0), -ENOSPC);
    assert_int_equal(rtcp_write_rr(b, sizeof(b), 1, &blk, 32), -EINVAL);
}

static void test_rr_and_validity(void **state)
{
    uint8_t b[256];
    struct rtcp_block blk[2] = {{.ssrc = 1, .cumulative_lost = 0x7fffff},
                                {.ssrc = 2, .cumulative_lost = 0x1000000}};
    int n = rtcp_write_rr(b, sizeof(b), 5, blk, 2);
    assert_int_equal(n, 56);
    struct rtcp_info info;
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), 0);
    assert_int_equal(info.has_sr, 0);
    assert_int_equal(info.nblocks, 2);
    assert_int_equal(info.blocks[1].cumulative_lost, 0x7fffff); /* clamped to 24 bits */
    /* length word too big, not a multiple of 4, wrong version, first not SR/RR */
    assert_int_equal(rtcp_parse(b, (size_t)n - 4, &info), -EINVAL);
    assert_int_equal(rtcp_parse(b, 6, &info), -EINVAL);
    b[0] = (uint8_t)(b[0] & 0x3f);
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), -EINVAL);
    b[0] |= 0x80;
    uint8_t bye[8];
    rtcp_write_bye(bye, sizeof(bye), 3);
    assert_int_equal(rtcp_parse(bye, 8, &info), -EINVAL);
    /* an RR claiming 3 blocks in a 1-block length */
    n = rtcp_write_rr(b, sizeof(b), 5, blk, 1);
    b[0] = (uint8_t)((b[0] & 0xe0) | 3);
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), -EINVAL);
    /* padding on the first packet is invalid */
    n = rtcp_write_rr(b, sizeof(b), 5, NULL, 0);
    b[0] |= 0x20;
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), -EINVAL);
    /* unknown types after the RR are skipped */
    n = rtcp_write_rr(b, sizeof(b), 5, NULL, 0);
    uint8_t app[12] = {0x80, 204, 0, 2, 0, 0, 0, 5, 'n', 'a', 'm', 'e'};
    memcpy(b + n, app, sizeof(app));
    assert_int_equal(rtcp_parse(b, (size_t)n + sizeof(app), &info), 0);
}

static void test_ntp_rtt(void **state)
{
    uint64_t ntp = rtcp_ntp_now();
    uint64_t unix_s = (ntp >> 32) - 2208988800u;
    assert_true(llabs((long long)unix_s - (long long)time(NULL)) <= 1);
    /* arrival 10.5 s, LSR 10.0 s, DLSR 0.25 s: RTT 0.25 s */
    uint32_t arrival = (10u << 16) | 0x8000, lsr = 10u << 16, dlsr = 0x4000;
    assert_true(rtcp_rtt(arrival, lsr, dlsr) == 0.25);
    assert_true(rtcp_rtt(arrival, 0, dlsr) < 0);
    assert_true(rtcp_rtt(lsr, arrival, 0) < 0);
    assert_int_equal(rtcp_ntp_mid(0x0001000200030004ull), 0x00020003);
}

static void test_xr_round_trip(void **state)
{
    uint8_t b[RTCP_MAX_PACKET];
    struct rtcp_info info;
    /* The receiver: RR + SDES + XR(RRTR), as rtsp_client sends them. */
    const uint64_t t_rrtr = 0xe1234567890abcdeull;
    int n = rtcp_write_rr(b, sizeof(b), 0x4d5a1234, NULL, 0);
    n += rtcp_write_sdes_cname(b + n, sizeof(b) - (size_t)n, 0x4d5a1234, "matriz-porto");
    int m = rtcp_write_xr_rrtr(b + n, sizeof(b) - (size_t)n, 0x4d5a1234, t_rrtr);
    assert_int_equal(m, 20);
    n += m;
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), 0);
    assert_int_equal(info.has_rrtr, 1);
    assert_int_equal(info.rrtr_ssrc, 0x4d5a1234);
    assert_true(info.rrtr_ntp == t_rrtr);
    assert_int_equal(info.ndlrr, 0);
    assert_string_equal(info.cname, "matriz-porto");
    /* The sender got it at monotonic 100.0 and answers at 100.25. */
    struct rtcp_dlrr d[2] = {
        {.ssrc = info.rrtr_ssrc,
         .lrr = rtcp_ntp_mid(info.rrtr_ntp),
         .dlrr = rtcp_delay_units(100.25, 100.0)},
        {.ssrc = 7, .lrr = 1, .dlrr = 2},
    };
    assert_int_equal(d[0].dlrr, 16384);
    struct rtcp_sender_info si = {.ntp = 1};
    n = rtcp_write_sr(b, sizeof(b), 0x11223344, &si, NULL, 0);
    m = rtcp_write_xr_dlrr(b + n, sizeof(b) - (size_t)n, 0x11223344, d, 2);
    assert_int_equal(m, 12 + 24);
    n += m;
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), 0);
    assert_int_equal(info.has_rrtr, 0);
    assert_int_equal(info.ndlrr, 2);
    assert_int_equal(info.dlrr[0].ssrc, 0x4d5a1234);
    assert_int_equal(info.dlrr[0].lrr, (uint32_t)(t_rrtr >> 16));
    assert_int_equal(info.dlrr[0].dlrr, 16384);
    assert_int_equal(info.dlrr[1].ssrc, 7);
    /* back at the receiver 0.3 s after it sent the RRTR: RTT 0.05 s */
    uint32_t arrival = rtcp_ntp_mid(t_rrtr) + (uint32_t)(0.3 * 65536);
    double rtt = rtcp_rtt(arrival, info.dlrr[0].lrr, info.dlrr[0].dlrr);
    assert_true(rtt > 0.0499 && rtt < 0.0501);
    /* across the wrap of the middle 32 bits: LRR 0xfffff000, DLRR 0x800,
     * arrival 0x400 -> 0xc00 units = 46.875 ms */
    assert_true(rtcp_rtt(0x400, 0xfffff000u, 0x800) == 0xc00 / 65536.0);
    /* an answer that would make the RTT negative (DLRR too long) is no RTT */
    assert_true(rtcp_rtt(arrival, info.dlrr[0].lrr, (uint32_t)(0.4 * 65536)) < 0);
    /* the delay units: none for a negative delay, clamped at 32 bits */
    assert_int_equal(rtcp_delay_units(1.0, 2.0), 0);
    assert_int_equal(rtcp_delay_units(1e6, 0), UINT32_MAX);
    /* building: room and counts */
    assert_int_equal(rtcp_write_xr_rrtr(b, 19, 1, 2), -ENOSPC);
    assert_int_equal(rtcp_write_xr_dlrr(b, 23, 1, d, 1), -ENOSPC);
    assert_int_equal(rtcp_write_xr_dlrr(b, sizeof(b), 1, d, 0), -EINVAL);
    assert_int_equal(rtcp_write_xr_dlrr(b, sizeof(b), 1, d, RTCP_MAX_DLRR + 1), -EINVAL);
}

/* RR + one XR packet made of the given words (after the XR header). */
static int rr_xr(uint8_t *b, const uint32_t *words, int nwords)
{
    int n = rtcp_write_rr(b, 256, 5, NULL, 0);
    b[n] = 0x80;
    b[n + 1] = RTCP_XR;
    rtp_wr16(b + n + 2, (uint16_t)nwords);
    for (int i = 0; i < nwords; i++)
        rtp_wr32(b + n + 4 + 4 * i, words[i]);
    return n + 4 + 4 * nwords;
}

static void test_xr_malformed(void **state)
{
    uint8_t b[256];
    struct rtcp_info info;
    /* an unknown block (BT 42, 2 words) before an RRTR: skipped by length */
    uint32_t ok[] = {9, 0x2a000002, 1, 2, 0x04000002, 0x11112222, 0x33334444};
    int n = rr_xr(b, ok, 7);
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), 0);
    assert_int_equal(info.has_rrtr, 1);
    assert_int_equal(info.rrtr_ssrc, 9);
    assert_true(info.rrtr_ntp == 0x1111222233334444ull);
    /* an empty XR (just the SSRC) and an empty DLRR are fine */
    uint32_t empty[] = {9};
    n = rr_xr(b, empty, 1);
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), 0);
    uint32_t empty_dlrr[] = {9, 0x05000000};
    n = rr_xr(b, empty_dlrr, 2);
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), 0);
    assert_int_equal(info.ndlrr, 0);
    /* rejected: no SSRC; a block longer than the packet (unknown type,
     * claims 3 words, has 2); an RRTR of the wrong size; a DLRR that is not
     * whole sub-blocks */
    static const struct {
        uint32_t w[5];
        int n;
    } bad[] = {
        {{0}, 0},
        {{9, 0x2a000003, 1, 2}, 4},
        {{9, 0x04000003, 1, 2, 3}, 5},
        {{9, 0x05000002, 1, 2}, 4},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = rr_xr(b, bad[i].w, bad[i].n);
        assert_int_equal(rtcp_parse(b, (size_t)n, &info), -EINVAL);
    }
    /* padding that leaves half a block header */
    uint32_t padded[] = {9, 0x04000002, 1, 2, 0x00000002};
    n = rr_xr(b, padded, 5);
    b[n - 5 * 4 - 4] |= 0x20; /* the XR's P bit */
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), -EINVAL);
    /* ... and padding of a whole word is fine */
    padded[4] = 4;
    n = rr_xr(b, padded, 5);
    b[n - 5 * 4 - 4] |= 0x20;
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), 0);
    assert_int_equal(info.has_rrtr, 1);
    /* more DLRR sub-blocks than kept: the rest are skipped, not overrun */
    uint32_t many[2 + 3 * (RTCP_MAX_DLRR + 2)] = {9, 0x05000000 | 3 * (RTCP_MAX_DLRR + 2)};
    for (int i = 0; i < 3 * (RTCP_MAX_DLRR + 2); i++)
        many[2 + i] = (uint32_t)i;
    n = rr_xr(b, many, 2 + 3 * (RTCP_MAX_DLRR + 2));
    assert_int_equal(rtcp_parse(b, (size_t)n, &info), 0);
    assert_int_equal(info.ndlrr, RTCP_MAX_DLRR);
    assert_int_equal(info.dlrr[RTCP_MAX_DLRR - 1].dlrr, 3 * (RTCP_MAX_DLRR - 1) + 2);
}

static void test_interval(void **state)
{
    double lo = 10, hi = 0;
    for (int i = 0; i < 2000; i++) {
        double v = rtcp_interval(1.0);
        assert_true(v >= 0.5 && v < 1.5);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    /* spread over the whole range (not a constant) */
    assert_true(lo < 0.55 && hi > 1.45);
    double v = rtcp_interval(5.0);
    assert_true(v >= 2.5 && v < 7.5);
}

static void test_recv_stats(void **state)
{
    struct rtcp_recv_stats s = {0};
    /* probation: the first packet alone does not count */
    assert_int_equal(rtcp_recv_packet(&s, 65530, 0, 0), 0);
    assert_int_equal(rtcp_recv_packet(&s, 65531, 960, 960), 1);
    /* across the wrap, one lost (65534) */
    for (uint16_t q = 65532; q != 3; q++) {
        if (q == 65534)
            continue;
        assert_int_equal(
            rtcp_recv_packet(&s, q, (uint32_t)(q - 65530) * 960u, (uint32_t)(q - 65530) * 960u), 1);
    }
    assert_int_equal(rtcp_recv_ext_max(&s), 65536 + 2);
    struct rtcp_block b;
    rtcp_recv_block(&s, 77, 0, 0, &b);
    assert_int_equal(b.ssrc, 77);
    assert_int_equal(b.ext_highest_seq, 65538);
    assert_int_equal(b.cumulative_lost, 1);
    assert_int_equal(b.fraction_lost, 256 / 8); /* 1 of 8 expected */
    assert_int_equal(b.jitter, 0);              /* perfectly regular arrival */
    /* the next interval: nothing lost */
    assert_int_equal(rtcp_recv_packet(&s, 3, 9 * 960, 9 * 960), 1);
    rtcp_recv_block(&s, 77, 0, 0, &b);
    assert_int_equal(b.fraction_lost, 0);
    assert_int_equal(b.cumulative_lost, 1);
    /* jitter: every other packet 160 units late -> J converges toward 160 */
    struct rtcp_recv_stats j = {0};
    for (uint32_t i = 0; i < 2000; i++)
        rtcp_recv_packet(&j, (uint16_t)i, i * 960, i * 960 + (i % 2 ? 160 : 0));
    uint32_t jit = rtcp_recv_jitter(&j);
    assert_true(jit >= 140 && jit <= 170);
    /* a huge jump is not believed at once, a second one in sequence is */
    struct rtcp_recv_stats k = {0};
    rtcp_recv_packet(&k, 100, 0, 0);
    rtcp_recv_packet(&k, 101, 0, 0);
    assert_int_equal(rtcp_recv_packet(&k, 30000, 0, 0), 0);
    assert_int_equal(rtcp_recv_packet(&k, 30001, 0, 0), 1);
    assert_int_equal(rtcp_recv_ext_max(&k), 30001);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sr_sdes_bye),  cmocka_unit_test(test_rr_and_validity),
        cmocka_unit_test(test_ntp_rtt),      cmocka_unit_test(test_xr_round_trip),
        cmocka_unit_test(test_xr_malformed), cmocka_unit_test(test_interval),
        cmocka_unit_test(test_recv_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
