/*
 * The RTSP Transport header (backend/rtp/rtsp_transport.h): what ffmpeg,
 * GStreamer, VLC and live555 send, alternatives (the first servable one
 * wins), defaults (interleaved 0-1), what we refuse (461: multicast, other
 * profiles, record, UDP without client_port; 400: malformed numbers), and
 * the answers we write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "rtp/rtsp_transport.h"

static void test_clients(void **state)
{
    struct rtsp_transport t;
    /* ffmpeg UDP */
    assert_int_equal(rtsp_transport_parse("RTP/AVP/UDP;unicast;client_port=5000-5001", &t), 0);
    assert_int_equal(t.tcp, 0);
    assert_int_equal(t.client_port[0], 5000);
    assert_int_equal(t.client_port[1], 5001);
    /* ffmpeg TCP, with mode */
    assert_int_equal(rtsp_transport_parse("RTP/AVP/TCP;unicast;interleaved=4-5;mode=play", &t), 0);
    assert_int_equal(t.tcp, 1);
    assert_int_equal(t.interleaved[0], 4);
    assert_int_equal(t.interleaved[1], 5);
    /* GStreamer: several alternatives */
    assert_int_equal(rtsp_transport_parse("RTP/AVP;multicast;client_port=6000-6001, "
                                          "RTP/AVP;unicast;client_port=6002-6003",
                                          &t),
                     0);
    assert_int_equal(t.client_port[0], 6002);
    /* a single port: RTCP on the next */
    assert_int_equal(rtsp_transport_parse("RTP/AVP;unicast;client_port=7000", &t), 0);
    assert_int_equal(t.client_port[1], 7001);
    /* TCP without interleaved: 0-1; quoted mode; ssrc; case */
    assert_int_equal(rtsp_transport_parse("rtp/avp/tcp;UNICAST;mode=\"PLAY\";ssrc=0000ABCD", &t),
                     0);
    assert_int_equal(t.interleaved[0], 0);
    assert_int_equal(t.interleaved[1], 1);
    assert_int_equal(t.has_ssrc, 1);
    assert_int_equal(t.ssrc, 0xabcd);
    /* unknown parameters and empty ones are ignored */
    assert_int_equal(rtsp_transport_parse("RTP/AVP;unicast;;x-foo=bar;client_port=1-2;", &t), 0);
    assert_string_equal(t.destination, "");
}

static void test_refusals(void **state)
{
    struct rtsp_transport t;
    assert_int_equal(rtsp_transport_parse("RTP/AVP;multicast;port=5000-5001", &t), -ENOTSUP);
    assert_int_equal(rtsp_transport_parse("RTP/SAVP;unicast;client_port=1-2", &t), -ENOTSUP);
    assert_int_equal(rtsp_transport_parse("RTP/AVP;unicast", &t), -ENOTSUP);
    assert_int_equal(rtsp_transport_parse("RTP/AVP/TCP;interleaved=0-1;mode=record", &t), -ENOTSUP);
    assert_int_equal(rtsp_transport_parse("RTP/AVP;unicast;client_port=a-b", &t), -EINVAL);
    assert_int_equal(rtsp_transport_parse("RTP/AVP;unicast;client_port=65536", &t), -EINVAL);
    assert_int_equal(rtsp_transport_parse("RTP/AVP;unicast;client_port=65535", &t), -EINVAL);
    assert_int_equal(rtsp_transport_parse("RTP/AVP;unicast;client_port=1-2-3", &t), -EINVAL);
    assert_int_equal(rtsp_transport_parse("RTP/AVP/TCP;interleaved=256-257", &t), -EINVAL);
    assert_int_equal(rtsp_transport_parse("RTP/AVP;ssrc=123456789", &t), -EINVAL);
    assert_int_equal(rtsp_transport_parse("RTP/AVP;ssrc=xyz", &t), -EINVAL);
    assert_int_equal(rtsp_transport_parse("RTP/AVP;mode=dance;client_port=1-2", &t), -EINVAL);
    assert_int_equal(rtsp_transport_parse("", &t), -EINVAL);
    assert_int_equal(rtsp_transport_parse(";unicast", &t), -EINVAL);
    assert_int_equal(rtsp_transport_parse(NULL, &t), -EINVAL);
    /* one malformed and one unsupported: unsupported wins (461) */
    assert_int_equal(rtsp_transport_parse("RTP/AVP;client_port=x,RTP/SAVP;client_port=1-2", &t),
                     -ENOTSUP);
    char longv[RTSP_TRANSPORT_MAX + 2];
    memset(longv, 'a', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    assert_int_equal(rtsp_transport_parse(longv, &t), -EINVAL);
}

static void test_write(void **state)
{
    char out[256];
    struct rtsp_transport t = {.client_port = {5000, 5001},
                               .server_port = {9998, 9999},
                               .has_ssrc = 1,
                               .ssrc = 0xdeadbeef};
    int n = rtsp_transport_write(&t, out, sizeof(out));
    assert_string_equal(out, "RTP/AVP;unicast;client_port=5000-5001;server_port=9998-9999;"
                             "ssrc=DEADBEEF");
    assert_int_equal(n, (int)strlen(out));
    struct rtsp_transport back;
    assert_int_equal(rtsp_transport_parse(out, &back), 0);
    assert_int_equal(back.server_port[0], 9998);
    assert_int_equal(back.ssrc, 0xdeadbeef);
    struct rtsp_transport tcp = {.tcp = 1, .interleaved = {2, 3}};
    rtsp_transport_write(&tcp, out, sizeof(out));
    assert_string_equal(out, "RTP/AVP/TCP;unicast;interleaved=2-3");
    assert_int_equal(rtsp_transport_write(&t, out, 20), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clients),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
