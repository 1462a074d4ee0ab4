/* peer.yaml: the option table, its generated example and the checks beyond
 * the table (required options, ranges that depend on each other). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matriz/peer_config.h"

static int load(struct peer_config *c, const char *yaml, char *err)
{
    peer_config_defaults(c);
    return peer_config_load_string(c, "peer.yaml", yaml, strlen(yaml), err, CONFIG_ERRLEN);
}

static void defaults_and_values(void **state)
{
    struct peer_config c;
    char err[CONFIG_ERRLEN];
    assert_int_equal(load(&c, "peer:\n  name: lisboa\n  key: k\n", err), 0);
    assert_string_equal(c.peer.imesd, "http://127.0.0.1:9997");
    assert_int_equal(c.net.port, 8554);
    assert_int_equal(c.net.rtp_min, 8600);
    assert_int_equal(c.net.rtp_max, 8700);
    assert_string_equal(c.send.codec, "opus");
    assert_int_equal(c.frame, 240);
    assert_int_equal(c.send.bitrate, 96000);
    assert_false(c.send.fec);
    assert_string_equal(c.audio.backend, "jack");
    peer_config_free(&c);

    assert_int_equal(load(&c,
                          "peer: {name: porto, key: k, imesd: 'https://x.example/b'}\n"
                          "send: {codec: L24, frame_ms: 2.5, fec: yes}\n"
                          "audio: {backend: file, tone_hz: 660, tone_dbfs: -20}\n"
                          "jitter: {min_ms: 2, max_ms: 40}\n",
                          err),
                     0);
    assert_string_equal(c.send.codec, "L24");
    assert_int_equal(c.frame, 120);
    assert_true(c.send.fec);
    assert_int_equal(c.audio.tone_hz, 660);
    assert_int_equal(c.audio.tone_dbfs, -20);
    assert_int_equal(c.jitter.max_ms, 40);
    assert_string_equal(c.record.dir, "");
    assert_int_equal(c.record.what.n, 0);
    peer_config_free(&c);

    assert_int_equal(
        load(&c, "peer: {name: a, key: k}\nrecord: {dir: /tmp/rec, what: [mix, peers, self]}\n",
             err),
        0);
    assert_string_equal(c.record.dir, "/tmp/rec");
    assert_int_equal(c.record.what.n, 3);
    assert_string_equal(c.record.what.v[1], "peers");
    peer_config_free(&c);
}

static void refused(void **state)
{
    static const struct {
        const char *yaml, *says;
    } bad[] = {
        {"peer: {key: k}\n", "peer.name: required"},
        {"peer: {name: a}\n", "peer.key: required"},
        {"peer: {name: -a, key: k}\n", "peer.name"},
        {"peer: {name: a, key: k, imesd: 'http://u:p@h'}\n", "credentials"},
        {"peer: {name: a, key: k}\nsend: {frame_ms: 3}\n", "send.frame_ms"},
        {"peer: {name: a, key: k}\nsend: {codec: mp3}\n", "send.codec"},
        {"peer: {name: a, key: k}\nnet: {rtp_min: 9000, rtp_max: 9001}\n", "net.rtp_max"},
        {"peer: {name: a, key: k}\njitter: {min_ms: 50, max_ms: 10}\n", "jitter.min_ms"},
        {"peer: {name: a, key: k}\nnope: 1\n", "unknown key"},
        {"peer: {name: a, key: k}\naudio: {rate: 44100}\n", "audio.rate"},
        {"peer: {name: a, key: k}\nrecord: {what: [mix, video]}\n", "record.what: video"},
        {"peer: {name: a, key: k}\nrecord: {what: [all]}\n", "record.what: all"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct peer_config c;
        char err[CONFIG_ERRLEN] = "";
        assert_int_equal(load(&c, bad[i].yaml, err), -1);
        if (!strstr(err, bad[i].says))
            fail_msg("%s: \"%s\" does not say %s", bad[i].yaml, err, bad[i].says);
        peer_config_free(&c);
    }
}

/* The committed example is exactly what the table generates, and loads
 * once the two required options are filled in. */
static void example_matches_table(void **state)
{
    char *gen = NULL;
    size_t glen = 0;
    FILE *g = open_memstream(&gen, &glen);
    peer_config_write_example(g);
    fclose(g);
    FILE *f = fopen(IMES_SOURCE_DIR "/peer.yaml.example", "rb");
    if (!f)
        fail_msg(
            "peer.yaml.example missing: build/bin/matriz --example-config > peer.yaml.example");
    char *committed = calloc(1, glen + 2);
    size_t n = fread(committed, 1, glen + 1, f);
    fclose(f);
    if (n != glen || memcmp(committed, gen, glen) != 0)
        fail_msg("peer.yaml.example differs from the option table; regenerate it with "
                 "build/bin/matriz --example-config > peer.yaml.example");
    char *filled = NULL;
    size_t flen = 0;
    FILE *m = open_memstream(&filled, &flen);
    fputs(gen, m);
    fclose(m);
    char *p = strstr(filled, "name: \"\"");
    assert_non_null(p);
    memcpy(p, "name: a\"\"", 9);
    memcpy(p, "name: 'a'", 9);
    p = strstr(filled, "key: \"\"");
    memcpy(p, "key: 'k'", 8);
    struct peer_config c;
    char err[CONFIG_ERRLEN];
    peer_config_defaults(&c);
    if (peer_config_load_string(&c, "peer.yaml.example", filled, flen, err, sizeof(err)) != 0)
        fail_msg("the example does not load: %s", err);
    assert_string_equal(c.peer.name, "a");
    peer_config_free(&c);
    free(filled);
    free(committed);
    free(gen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_and_values),
        cmocka_unit_test(refused),
        cmocka_unit_test(example_matches_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
