/*
 * The option table: defaults, every type, every kind of bad file (each must
 * name file, line and key), and config.yaml.example kept identical to what
 * the table generates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"

static int load(struct config *cfg, const char *yaml, char *err)
{
    config_defaults(cfg);
    return config_load_string(cfg, "test.yaml", yaml, strlen(yaml), err, CONFIG_ERRLEN);
}

static void test_defaults(void **state)
{
    struct config cfg;
    char err[CONFIG_ERRLEN];
    assert_int_equal(load(&cfg, "", err), 0);
    assert_string_equal(cfg.database.url, "http://admin:admin@127.0.0.1:5984");
    assert_string_equal(cfg.database.name, "imes");
    assert_int_equal(cfg.backend.bind_port, 9997);
    assert_int_equal(cfg.backend.rtp_port, 9998);
    assert_int_equal(cfg.media.n, 0);
    assert_string_equal(cfg.log.level, "info");
    /* derived public URLs follow bind_port */
    assert_string_equal(cfg.backend.public_url, "http://localhost:9997");
    assert_string_equal(cfg.backend.public_rtsp, "rtsp://localhost:9997");
    assert_string_equal(cfg.backend.public_delegate, "http://localhost:9997");
    config_free(&cfg);
}

static void test_values(void **state)
{
    struct config cfg;
    char err[CONFIG_ERRLEN];
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "media:\n  - /tmp\n  - %s\n"
             "database:\n  url: http://u:p@db:5984/\n  name: music\n"
             "backend:\n  bind_host: 127.0.0.1\n  bind_port: 8000\n"
             "  public: https://music.example.org/b/\n"
             "log:\n  level: debug\n",
             "/");
    assert_int_equal(load(&cfg, yaml, err), 0);
    assert_int_equal(cfg.media.n, 2);
    assert_string_equal(cfg.media.v[0], "/tmp");
    assert_string_equal(cfg.media.v[1], "/");
    assert_string_equal(cfg.database.url, "http://u:p@db:5984"); /* trailing slash dropped */
    assert_string_equal(cfg.database.name, "music");
    assert_string_equal(cfg.database.private_name, "music_private");
    assert_int_equal(cfg.backend.bind_port, 8000);
    assert_string_equal(cfg.backend.public_url, "https://music.example.org/b");
    assert_string_equal(cfg.backend.public_rtsp, "rtsp://music.example.org");
    assert_string_equal(cfg.log.level, "debug");
    char *safe = config_database_url_safe(&cfg);
    assert_string_equal(safe, "http://db:5984");
    free(safe);
    config_free(&cfg);
}

static void test_single_media_folder(void **state)
{
    struct config cfg;
    char err[CONFIG_ERRLEN];
    assert_int_equal(load(&cfg, "media: /tmp\n", err), 0);
    assert_int_equal(cfg.media.n, 1);
    config_free(&cfg);
}

/* Each bad file and the exact message it must give. */
static const struct {
    const char *yaml;
    const char *message;
} bad[] = {
    {"database:\n  nmae: x\n", "test.yaml:2: database.nmae: unknown key"},
    {"colour: red\n", "test.yaml:1: colour: unknown key"},
    {"backend:\n  bind_port: many\n",
     "test.yaml:2: backend.bind_port: \"many\" must be a whole number (1 to 65535)"},
    {"backend:\n  bind_port: 70000\n",
     "test.yaml:2: backend.bind_port: \"70000\" is out of range (1 to 65535)"},
    {"backend:\n  bind_port:\n", "test.yaml:2: backend.bind_port: has no value"},
    {"backend:\n  bind_port: [1, 2]\n",
     "test.yaml:2: backend.bind_port: must be a single value, not a list"},
    {"log:\n  level: loud\n",
     "test.yaml:2: log.level: \"loud\" is not one of the allowed values (fatal, error, warn, "
     "info, debug)"},
    {"database:\n  url: ftp://x\n",
     "test.yaml:2: database.url: \"ftp://x\" must be an http:// or https:// URL"},
    {"database:\n  name: Music\n",
     "test.yaml:2: database.name: \"Music\" must start with a lower-case letter"},
    {"media:\n  - /nonexistent/music\n",
     "test.yaml:2: media: /nonexistent/music: No such file or directory"},
    {"media:\n  - /etc/hostname\n", "test.yaml:2: media: /etc/hostname: not a folder"},
    {"media:\n  - /tmp\n  - /tmp\n", "test.yaml:3: media: /tmp: listed twice"},
    {"media:\n  a: b\n", "test.yaml:2: media: must be a list"},
    {"database: 5\n", "test.yaml:1: database: must be a section of options"},
    {"- a\n- b\n", "test.yaml:1: the top level must be a mapping of sections"},
    {"log:\n  level: info\n  level: debug\n", "test.yaml:3: log.level: set twice"},
    {"backend:\n  bind_port: 1\n bad indent: 2\n", NULL}, /* syntax error: line checked below */
    {"database: {url: \"http://x\n", NULL},
};

static void test_bad_files(void **state)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct config cfg;
        char err[CONFIG_ERRLEN] = "";
        int r = load(&cfg, bad[i].yaml, err);
        if (r == 0)
            fail_msg("accepted bad config #%zu: %s", i, bad[i].yaml);
        if (bad[i].message) {
            if (strcmp(err, bad[i].message) != 0)
                fail_msg("#%zu: got \"%s\", want \"%s\"", i, err, bad[i].message);
        } else {
            assert_non_null(strstr(err, "test.yaml:"));
            assert_non_null(strstr(err, "syntax error"));
        }
        config_free(&cfg);
    }
}

static void test_missing_file(void **state)
{
    struct config cfg;
    char err[CONFIG_ERRLEN];
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, "/nonexistent/config.yaml", err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/config.yaml: No such file or directory");
    config_free(&cfg);
}

static void test_relative_media(void **state)
{
    char dir[] = "/tmp/imes-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[512], path[512];
    snprintf(sub, sizeof(sub), "%s/music", dir);
    mkdir(sub, 0755);
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("media:\n  - music\n", f);
    fclose(f);
    struct config cfg;
    char err[CONFIG_ERRLEN];
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
    assert_string_equal(cfg.media.v[0], sub);
    config_free(&cfg);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

/* The committed example is exactly what the table generates, and loads. */
static void test_example_matches_table(void **state)
{
    char *generated = NULL;
    size_t glen = 0;
    FILE *g = open_memstream(&generated, &glen);
    config_write_example(g);
    fclose(g);

    FILE *f = fopen(IMES_SOURCE_DIR "/config.yaml.example", "rb");
    if (!f)
        fail_msg("config.yaml.example missing: run build/bin/imesd --example-config > "
                 "config.yaml.example");
    char *committed = calloc(1, glen + 2);
    size_t n = fread(committed, 1, glen + 1, f);
    fclose(f);
    if (n != glen || memcmp(committed, generated, glen) != 0)
        fail_msg("config.yaml.example differs from the option table; regenerate it with "
                 "build/bin/imesd --example-config > config.yaml.example");

    struct config cfg;
    char err[CONFIG_ERRLEN];
    config_defaults(&cfg);
    if (config_load_string(&cfg, "config.yaml.example", generated, glen, err, sizeof(err)) != 0)
        fail_msg("the example does not load: %s", err);
    config_free(&cfg);
    free(committed);
    free(generated);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_single_media_folder),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_relative_media),
        cmocka_unit_test(test_example_matches_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
