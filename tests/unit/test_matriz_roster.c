/* The roster's pure helpers: the /matriz/join query, the connection's address
 * and the RTSP URL written into peer documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "matriz/roster.h"

static void join_defaults(void **state)
{
    struct roster_join j;
    const char *why;
    assert_int_equal(roster_parse_join(NULL, &j, &why), 0);
    assert_int_equal(j.rtsp_port, 8554);
    assert_string_equal(j.codec, "opus");
    assert_string_equal(j.path, "/stream");
    assert_string_equal(j.host, "");
    assert_int_equal(roster_parse_join("", &j, &why), 0);
    assert_int_equal(roster_parse_join("other=1", &j, &why), 0);
}

static void join_values(void **state)
{
    struct roster_join j;
    const char *why;
    assert_int_equal(
        roster_parse_join("rtsp_port=9000&host=site.example.org&codec=L24&path=%2Flive", &j, &why),
        0);
    assert_int_equal(j.rtsp_port, 9000);
    assert_string_equal(j.host, "site.example.org");
    assert_string_equal(j.codec, "L24");
    assert_string_equal(j.path, "/live");
    assert_int_equal(roster_parse_join("host=2001:db8::1", &j, &why), 0);
    assert_string_equal(j.host, "2001:db8::1");
}

static void join_refused(void **state)
{
    static const char *const bad[] = {
        "rtsp_port=0", "rtsp_port=65536", "rtsp_port=", "rtsp_port=12a", "rtsp_port=%zz",
        "codec=mp3",   "codec=",          "host=",      "host=a%20b",    "host=a/b",
        "path=stream", "path=/a%20b",     "path=/%01",  "host=a%00",
    };
    struct roster_join j;
    const char *why;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(roster_parse_join(bad[i], &j, &why), -EINVAL);
        assert_non_null(why);
    }
    char longhost[400] = "host=";
    memset(longhost + 5, 'a', 300);
    assert_int_equal(roster_parse_join(longhost, &j, &why), -EINVAL);
}

static void peer_address(void **state)
{
    char a[64];
    assert_int_equal(roster_peer_address("192.0.2.1:5000", a, sizeof(a)), 0);
    assert_string_equal(a, "192.0.2.1");
    assert_int_equal(roster_peer_address("[2001:db8::1]:5000", a, sizeof(a)), 0);
    assert_string_equal(a, "2001:db8::1");
    assert_int_equal(roster_peer_address("", a, sizeof(a)), -EINVAL);
    assert_int_equal(roster_peer_address(NULL, a, sizeof(a)), -EINVAL);
    assert_int_equal(roster_peer_address(":5000", a, sizeof(a)), -EINVAL);
    assert_int_equal(roster_peer_address("[2001:db8::1:5000", a, sizeof(a)), -EINVAL);
    assert_int_equal(roster_peer_address("192.0.2.1:5000", a, 4), -EINVAL);
}

static void rtsp_url(void **state)
{
    char u[64];
    assert_int_equal(roster_rtsp_url("192.0.2.1", 8554, "/stream", u, sizeof(u)), 0);
    assert_string_equal(u, "rtsp://192.0.2.1:8554/stream");
    assert_int_equal(roster_rtsp_url("2001:db8::1", 8554, "/stream", u, sizeof(u)), 0);
    assert_string_equal(u, "rtsp://[2001:db8::1]:8554/stream");
    assert_int_equal(roster_rtsp_url("a-very-long-host-name.example.org", 8554, "/stream", u, 20),
                     -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(join_defaults), cmocka_unit_test(join_values),
        cmocka_unit_test(join_refused),  cmocka_unit_test(peer_address),
        cmocka_unit_test(rtsp_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
