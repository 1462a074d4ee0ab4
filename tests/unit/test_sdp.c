/*
 * SDP for one audio stream (backend/rtp/sdp.h): what DESCRIBE answers for
 * MPA, Opus and L24, read back by the parser; SDPs as other servers write
 * them (live555, GStreamer, ffmpeg: LF or CRLF, session-level control and
 * c=, static payload types without rtpmap); refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "rtp/sdp.h"

static void test_write_mpa(void **state)
{
    struct sdp_media m = {.control = "trackID=0"};
    rtp_format_default(&m.fmt, RTP_ENC_MPA, 48000, 2);
    sdp_fmtp_default(&m);
    char text[1024];
    int n = sdp_write(text, sizeof(text),
                      &(struct sdp_session){.origin_addr = "127.0.0.1", .name = "kitchen"}, &m);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(text));
    assert_non_null(strstr(text, "v=0\r\n"));
    assert_non_null(strstr(text, "s=kitchen\r\n"));
    assert_non_null(strstr(text, "c=IN IP4 0.0.0.0\r\n"));
    assert_non_null(strstr(text, "m=audio 0 RTP/AVP 14\r\n"));
    assert_non_null(strstr(text, "a=rtpmap:14 MPA/90000\r\n"));
    assert_null(strstr(text, "a=fmtp"));
    struct sdp_media p;
    assert_int_equal(sdp_parse(text, (size_t)n, &p), 0);
    assert_int_equal(p.fmt.enc, RTP_ENC_MPA);
    assert_int_equal(p.fmt.pt, 14);
    assert_int_equal(p.fmt.clock_rate, 90000);
    assert_string_equal(p.control, "trackID=0");
    assert_int_equal(sdp_write(text, 40, &(struct sdp_session){0}, &m), -ENOSPC);
    struct sdp_media bad = m;
    strcpy(bad.control, "x\r\nm=video");
    assert_int_equal(sdp_write(text, sizeof(text), &(struct sdp_session){0}, &bad), -EINVAL);
}

static void test_write_opus_l24(void **state)
{
    struct sdp_media m = {.bitrate_kbps = 128};
    rtp_format_default(&m.fmt, RTP_ENC_OPUS, 48000, 2);
    m.fmt.pt = 101;
    sdp_fmtp_default(&m);
    char text[1024];
    int n = sdp_write(text, sizeof(text), &(struct sdp_session){.origin_addr = "::1"}, &m);
    assert_true(n > 0);
    assert_non_null(strstr(text, "IN IP6 ::1\r\n"));
    assert_non_null(strstr(text, "a=rtpmap:101 opus/48000/2\r\n"));
    assert_non_null(
        strstr(text, "a=fmtp:101 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1\r\n"));
    assert_non_null(strstr(text, "b=AS:128\r\n"));
    struct sdp_media p;
    assert_int_equal(sdp_parse(text, (size_t)n, &p), 0);
    assert_int_equal(p.fmt.enc, RTP_ENC_OPUS);
    assert_int_equal(p.fmt.pt, 101);
    assert_int_equal(p.fmt.channels, 2);
    assert_int_equal(p.bitrate_kbps, 128);
    assert_string_equal(p.fmtp, "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1");

    rtp_format_default(&m.fmt, RTP_ENC_L24, 44100, 1);
    sdp_fmtp_default(&m);
    n = sdp_write(text, sizeof(text), &(struct sdp_session){0}, &m);
    assert_non_null(strstr(text, "a=rtpmap:96 L24/44100/1\r\n"));
    assert_int_equal(sdp_parse(text, (size_t)n, &p), 0);
    assert_int_equal(p.fmt.enc, RTP_ENC_L24);
    assert_int_equal(p.fmt.clock_rate, 44100);
    assert_int_equal(p.fmt.channels, 1);
}

static void test_parse_others(void **state)
{
    /* LF lines, session-level control and c=, video first, static PT 14 */
    static const char a[] = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=x\nc=IN IP4 10.0.0.2/127\n"
                            "a=control:rtsp://h/s\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\n"
                            "a=control:v\nm=audio 5004 RTP/AVP 14\n";
    struct sdp_media p;
    assert_int_equal(sdp_parse(a, sizeof(a) - 1, &p), 0);
    assert_int_equal(p.fmt.enc, RTP_ENC_MPA);
    assert_int_equal(p.port, 5004);
    assert_string_equal(p.conn_addr, "10.0.0.2");
    assert_string_equal(p.control, "rtsp://h/s");
    /* L16 static PT 10 */
    static const char b[] = "v=0\r\nm=audio 0 RTP/AVP 10\r\n";
    assert_int_equal(sdp_parse(b, sizeof(b) - 1, &p), 0);
    assert_int_equal(p.fmt.enc, RTP_ENC_L16);
    assert_int_equal(p.fmt.clock_rate, 44100);
    assert_int_equal(p.fmt.channels, 2);
    /* the rtpmap of another payload type is ignored; then an unknown codec */
    static const char c[] = "v=0\r\nm=audio 0 RTP/AVP 97 96\r\na=rtpmap:96 opus/48000/2\r\n"
                            "a=rtpmap:97 AAC/44100\r\n";
    assert_int_equal(sdp_parse(c, sizeof(c) - 1, &p), -ENOTSUP);
    static const char d[] = "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 OPUS/48000/2\r\n";
    assert_int_equal(sdp_parse(d, sizeof(d) - 1, &p), 0);
    assert_int_equal(p.fmt.enc, RTP_ENC_OPUS);
    /* refusals */
    static const char e[] = "v=0\r\nm=video 0 RTP/AVP 96\r\n";
    assert_int_equal(sdp_parse(e, sizeof(e) - 1, &p), -EINVAL);
    static const char f[] = "v=0\r\nm=audio 0 RTP/SAVP 96\r\n";
    assert_int_equal(sdp_parse(f, sizeof(f) - 1, &p), -ENOTSUP);
    static const char g[] = "v=0\r\nm=audio 99999 RTP/AVP 14\r\n";
    assert_int_equal(sdp_parse(g, sizeof(g) - 1, &p), -EINVAL);
    static const char h[] = "v=0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 opus/0/2\r\n";
    assert_int_equal(sdp_parse(h, sizeof(h) - 1, &p), -EINVAL);
    assert_int_equal(sdp_parse(NULL, 0, &p), -EINVAL);
    /* a length that ends inside the text: nothing beyond it is read */
    assert_int_equal(sdp_parse(b, 12, &p), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_mpa),
        cmocka_unit_test(test_write_opus_l24),
        cmocka_unit_test(test_parse_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
