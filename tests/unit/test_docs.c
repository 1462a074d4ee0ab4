/* The user-written documents (state/docs.h): ids, defaults, every field's
 * check and the message naming it. One table of (document, expected error
 * prefix or NULL); values are checked separately. The same cases, as far as
 * CouchDB goes, are in tests/integration/access.test.mjs against
 * validate_doc_update.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "state/docs.h"

#define UID "0123456789abcdef"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *doc = json_loads(text, 0, &e);
    if (!doc)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return doc;
}

enum kind { CHANNEL, ENTRY, AGGREGATE, USER, DEVICE, DELEGATE };

static int run(enum kind k, json_t *doc, char *err)
{
    union {
        struct docs_channel c;
        struct docs_entry e;
        struct docs_aggregate a;
        struct docs_user u;
        struct docs_device d;
        struct docs_delegate g;
    } out;
    int r;

    switch (k) {
    case CHANNEL:
        return docs_channel_parse(doc, &out.c, err, DOCS_ERR_MAX);
    case ENTRY:
        return docs_entry_parse(doc, &out.e, err, DOCS_ERR_MAX);
    case AGGREGATE:
        return docs_aggregate_parse(doc, &out.a, err, DOCS_ERR_MAX);
    case USER:
        return docs_user_parse(doc, &out.u, err, DOCS_ERR_MAX);
    case DEVICE:
        return docs_device_parse(doc, &out.d, err, DOCS_ERR_MAX);
    case DELEGATE:
        r = docs_delegate_parse(doc, &out.g, err, DOCS_ERR_MAX);
        docs_delegate_clear(&out.g);
        return r;
    }
    return -1;
}

static const struct {
    enum kind kind;
    const char *json;
    const char *error; /* NULL: accepted; else the start of the message */
} cases[] = {
    /* channel */
    {CHANNEL, "{\"_id\": \"channel:jazz\"}", NULL},
    {CHANNEL,
     "{\"_id\": \"channel:jazz\", \"type\": \"channel\", \"paused\": true, \"replaygain\": "
     "\"track\", \"crossfade\": 10, \"play\": {\"entry\": \"entry:c~jazz:" UID
     "\", \"request\": \"n-1_X\"}, \"skip\": \"abc\"}",
     NULL},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"play\": null, \"skip\": null}", NULL},
    {CHANNEL, "{\"_id\": \"channel:\"}", "_id:"},
    {CHANNEL, "{\"_id\": \"channel:a~b\"}", "_id:"},
    {CHANNEL, "{\"_id\": \"channel:a:b\"}", "_id:"},
    {CHANNEL, "{\"_id\": \"channel:-x\"}", "_id:"},
    {CHANNEL, "{\"_id\": \"channels:x\"}", "_id:"},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"type\": \"device\"}", "type:"},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"paused\": \"yes\"}", "paused:"},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"paused\": null}", "paused:"},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"replaygain\": \"loud\"}",
     "replaygain: must be one of album, track, off"},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"crossfade\": 10.5}",
     "crossfade: must be a number from 0 to 10"},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"crossfade\": -0.1}", "crossfade:"},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"crossfade\": \"1\"}", "crossfade:"},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"play\": \"entry:c~jazz:" UID "\"}", "play"},
    {CHANNEL,
     "{\"_id\": \"channel:jazz\", \"play\": {\"entry\": \"entry:c~blues:" UID
     "\", \"request\": \"x\"}}",
     "play.entry: must be an entry of this channel: entry:c~jazz:<uid>"},
    {CHANNEL,
     "{\"_id\": \"channel:jazz\", \"play\": {\"entry\": \"entry:c~jazz:123\", "
     "\"request\": \"x\"}}",
     "play.entry:"},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"play\": {\"entry\": \"entry:c~jazz:" UID "\"}}",
     "play.request:"},
    {CHANNEL,
     "{\"_id\": \"channel:jazz\", \"play\": {\"entry\": \"entry:c~jazz:" UID
     "\", \"request\": \"a b\"}}",
     "play.request:"},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"skip\": \"\"}", "skip:"},
    {CHANNEL, "{\"_id\": \"channel:jazz\", \"skip\": 5}", "skip:"},
    {CHANNEL,
     "{\"_id\": \"channel:jazz\", \"skip\": "
     "\"12345678901234567890123456789012345678901234567890123456789012345\"}",
     "skip:"},
    {CHANNEL, "[1]", "document:"},
    /* entry */
    {ENTRY,
     "{\"_id\": \"entry:c~jazz:" UID "\", \"type\": \"entry\", \"playlist\": \"c~jazz\", "
     "\"file\": \"file:abc\", \"key\": \"a0\", \"added_by\": \"alice\", \"added\": "
     "\"2024-05-01T12:00:00Z\"}",
     NULL},
    {ENTRY,
     "{\"_id\": \"entry:u~alice~mix.1:" UID "\", \"playlist\": \"u~alice~mix.1\", "
     "\"file\": \"file:abc\", \"key\": \"Zz\", \"added_by\": \"alice\", \"added\": \"x\"}",
     NULL},
    {ENTRY, "{\"_id\": \"entry:jazz:a0\", \"playlist\": \"jazz\"}", "_id:"},
    {ENTRY, "{\"_id\": \"entry:c~jazz:0123456789ABCDEF\"}", "_id:"},
    {ENTRY, "{\"_id\": \"entry:c~jazz:" UID "0\"}", "_id:"},
    {ENTRY, "{\"_id\": \"entry:u~alice:" UID "\"}", "_id:"},
    {ENTRY, "{\"_id\": \"entry:u~alice~:" UID "\"}", "_id:"},
    {ENTRY, "{\"_id\": \"entry:u~~mix:" UID "\"}", "_id:"},
    {ENTRY, "{\"_id\": \"entry:x~jazz:" UID "\"}", "_id:"},
    {ENTRY, "{\"_id\": \"entry:c~jazz:" UID "\", \"playlist\": \"c~blues\"}", "playlist:"},
    {ENTRY, "{\"_id\": \"entry:c~jazz:" UID "\", \"playlist\": \"c~jazz\"}", "file:"},
    {ENTRY, "{\"_id\": \"entry:c~jazz:" UID "\", \"playlist\": \"c~jazz\", \"file\": \"abc\"}",
     "file:"},
    {ENTRY, "{\"_id\": \"entry:c~jazz:" UID "\", \"playlist\": \"c~jazz\", \"file\": \"file:\"}",
     "file:"},
    {ENTRY, "{\"_id\": \"entry:c~jazz:" UID "\", \"playlist\": \"c~jazz\", \"file\": \"file:a\"}",
     "key:"},
    {ENTRY,
     "{\"_id\": \"entry:c~jazz:" UID "\", \"playlist\": \"c~jazz\", \"file\": \"file:a\", "
     "\"key\": \"a00\"}",
     "key:"},
    {ENTRY,
     "{\"_id\": \"entry:c~jazz:" UID "\", \"playlist\": \"c~jazz\", \"file\": \"file:a\", "
     "\"key\": 7}",
     "key:"},
    {ENTRY,
     "{\"_id\": \"entry:c~jazz:" UID "\", \"playlist\": \"c~jazz\", \"file\": \"file:a\", "
     "\"key\": \"a0\"}",
     "added_by:"},
    {ENTRY,
     "{\"_id\": \"entry:c~jazz:" UID "\", \"playlist\": \"c~jazz\", \"file\": \"file:a\", "
     "\"key\": \"a0\", \"added_by\": \"alice\"}",
     "added:"},
    /* aggregate */
    {AGGREGATE, "{\"_id\": \"aggregate:home\", \"channel\": \"jazz\"}", NULL},
    {AGGREGATE, "{\"_id\": \"aggregate:home\", \"channel\": null}", NULL},
    {AGGREGATE, "{\"_id\": \"aggregate:home\"}", NULL},
    {AGGREGATE, "{\"_id\": \"aggregate:home\", \"channel\": 5}", "channel:"},
    {AGGREGATE, "{\"_id\": \"aggregate:home\", \"channel\": \"\"}", "channel:"},
    {AGGREGATE, "{\"_id\": \"aggregate:home\", \"channel\": \"a~b\"}", "channel:"},
    /* user */
    {USER, "{\"_id\": \"user:alice\"}", NULL},
    {USER,
     "{\"_id\": \"user:alice\", \"aggregate\": \"home\", \"lockout\": true, "
     "\"session_timeout\": 0, \"scrobbling\": true}",
     NULL},
    {USER, "{\"_id\": \"user:alice\", \"lockout\": \"no\"}", "lockout:"},
    {USER, "{\"_id\": \"user:alice\", \"session_timeout\": -1}",
     "session_timeout: must be a number of at least 0"},
    {USER, "{\"_id\": \"user:alice\", \"session_timeout\": \"long\"}", "session_timeout:"},
    {USER, "{\"_id\": \"user:alice\", \"aggregate\": 3}", "aggregate:"},
    {USER, "{\"_id\": \"user:alice\", \"scrobbling\": 1}", "scrobbling:"},
    /* device */
    {DEVICE, "{\"_id\": \"device:kitchen\", \"aggregate\": \"home\", \"codec\": \"opus\"}", NULL},
    {DEVICE, "{\"_id\": \"device:kitchen\", \"aggregate\": null}", NULL},
    {DEVICE, "{\"_id\": \"device:kitchen\", \"codec\": \"flac\"}",
     "codec: must be one of mp3, opus"},
    {DEVICE, "{\"_id\": \"device:kitchen\", \"aggregate\": true}", "aggregate:"},
    /* delegate */
    {DELEGATE, "{\"_id\": \"delegate:phone\", \"devices\": [\"kitchen\", \"hall\"]}", NULL},
    {DELEGATE, "{\"_id\": \"delegate:phone\", \"devices\": []}", NULL},
    {DELEGATE, "{\"_id\": \"delegate:phone\"}", "devices:"},
    {DELEGATE, "{\"_id\": \"delegate:phone\", \"devices\": \"kitchen\"}", "devices:"},
    {DELEGATE, "{\"_id\": \"delegate:phone\", \"devices\": [\"kitchen\", 3]}",
     "devices: item 1 must be a device name"},
};

static void table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[DOCS_ERR_MAX] = "";
        json_t *doc = parse(cases[i].json);
        int r = run(cases[i].kind, doc, err);
        json_decref(doc);
        if (!cases[i].error && r != 0)
            fail_msg("case %zu %s: refused: %s", i, cases[i].json, err);
        if (cases[i].error && r != -EINVAL)
            fail_msg("case %zu %s: accepted, want %s", i, cases[i].json, cases[i].error);
        if (cases[i].error && strncmp(err, cases[i].error, strlen(cases[i].error)) != 0)
            fail_msg("case %zu %s: error \"%s\", want \"%s...\"", i, cases[i].json, err,
                     cases[i].error);
    }
}

static void defaults_and_values(void **state)
{
    char err[DOCS_ERR_MAX];
    struct docs_channel c;
    struct docs_entry e;
    struct docs_user u;
    struct docs_device d;
    struct docs_aggregate a;
    struct docs_delegate g;
    json_t *doc;

    doc = parse("{\"_id\": \"channel:jazz\"}");
    assert_int_equal(docs_channel_parse(doc, &c, err, sizeof(err)), 0);
    json_decref(doc);
    assert_string_equal(c.name, "jazz");
    assert_false(c.paused);
    assert_int_equal(c.replaygain, DOCS_RG_ALBUM);
    assert_true(c.crossfade == 0.5);
    assert_string_equal(c.play_entry, "");
    assert_string_equal(c.skip, "");

    doc = parse("{\"_id\": \"channel:jazz\", \"paused\": true, \"replaygain\": \"off\", "
                "\"crossfade\": 0, \"play\": {\"entry\": \"entry:c~jazz:" UID
                "\", \"request\": \"r1\"}, \"skip\": \"s1\"}");
    assert_int_equal(docs_channel_parse(doc, &c, err, sizeof(err)), 0);
    json_decref(doc);
    assert_true(c.paused);
    assert_int_equal(c.replaygain, DOCS_RG_OFF);
    assert_true(c.crossfade == 0);
    assert_string_equal(c.play_entry, "entry:c~jazz:" UID);
    assert_string_equal(c.play_request, "r1");
    assert_string_equal(c.skip, "s1");
    assert_string_equal(docs_replaygain_str(c.replaygain), "off");

    doc = parse("{\"_id\": \"entry:u~alice~mix:" UID "\", \"playlist\": \"u~alice~mix\", "
                "\"file\": \"file:0011\", \"key\": \"a0V\", \"added_by\": \"bob\", "
                "\"added\": \"2024-05-01T12:00:00Z\"}");
    assert_int_equal(docs_entry_parse(doc, &e, err, sizeof(err)), 0);
    json_decref(doc);
    assert_string_equal(e.playlist, "u~alice~mix");
    assert_int_equal(e.pl.kind, DOCS_PLAYLIST_USER);
    assert_string_equal(e.pl.owner, "alice");
    assert_string_equal(e.pl.name, "mix");
    assert_string_equal(e.uid, UID);
    assert_string_equal(e.file, "file:0011");
    assert_string_equal(e.key, "a0V");
    assert_string_equal(e.added_by, "bob");

    doc = parse("{\"_id\": \"user:alice\"}");
    assert_int_equal(docs_user_parse(doc, &u, err, sizeof(err)), 0);
    json_decref(doc);
    assert_string_equal(u.aggregate, "");
    assert_false(u.lockout);
    assert_true(u.session_timeout == 300);
    assert_false(u.scrobbling);

    doc = parse("{\"_id\": \"device:kitchen\", \"aggregate\": \"home\", \"codec\": \"opus\"}");
    assert_int_equal(docs_device_parse(doc, &d, err, sizeof(err)), 0);
    json_decref(doc);
    assert_string_equal(d.aggregate, "home");
    assert_int_equal(d.codec, DOCS_CODEC_OPUS);
    assert_string_equal(docs_codec_str(d.codec), "opus");

    doc = parse("{\"_id\": \"aggregate:home\", \"channel\": \"jazz\"}");
    assert_int_equal(docs_aggregate_parse(doc, &a, err, sizeof(err)), 0);
    json_decref(doc);
    assert_string_equal(a.channel, "jazz");

    doc = parse("{\"_id\": \"delegate:phone\", \"devices\": [\"kitchen\", \"hall\"]}");
    assert_int_equal(docs_delegate_parse(doc, &g, err, sizeof(err)), 0);
    json_decref(doc);
    assert_int_equal(g.ndevices, 2);
    assert_string_equal(g.devices[1], "hall");
    docs_delegate_clear(&g);
    assert_null(g.devices);
}

static void ids(void **state)
{
    char pl[DOCS_PLAYLIST_MAX + 1], uid[DOCS_UID_LEN + 1];
    struct docs_playlist p;
    char name64[65], id[DOCS_ENTRY_ID_MAX + 2];

    assert_int_equal(docs_entry_id_parse("entry:c~jazz:" UID, pl, uid), 0);
    assert_string_equal(pl, "c~jazz");
    assert_string_equal(uid, UID);
    assert_int_equal(docs_entry_id_parse("entry:c~jazz:" UID, NULL, NULL), 0);
    assert_int_equal(docs_entry_id_parse(NULL, pl, uid), -EINVAL);
    assert_int_equal(docs_entry_id_parse("entry:c~jazz", pl, uid), -EINVAL);
    assert_int_equal(docs_entry_id_parse("entry:c~ja:zz:" UID, pl, uid), -EINVAL);
    assert_int_equal(docs_playlist_parse("c~jazz", &p), 0);
    assert_int_equal(p.kind, DOCS_PLAYLIST_CHANNEL);
    assert_string_equal(p.owner, "jazz");
    assert_int_equal(docs_playlist_parse("u~a~b~c", &p), -EINVAL);
    assert_int_equal(docs_playlist_parse("c~", &p), -EINVAL);
    assert_int_equal(docs_playlist_parse("", &p), -EINVAL);
    assert_int_equal(docs_channel_playlist("jazz", pl, sizeof(pl)), 0);
    assert_string_equal(pl, "c~jazz");
    assert_int_equal(docs_channel_playlist("ja~zz", pl, sizeof(pl)), -EINVAL);
    assert_int_equal(docs_channel_playlist("jazz", pl, 6), -EINVAL);
    /* The longest id there can be fits. */
    memset(name64, 'n', 64);
    name64[64] = '\0';
    snprintf(id, sizeof(id), "entry:u~%s~%s:" UID, name64, name64);
    assert_int_equal(strlen(id), DOCS_ENTRY_ID_MAX);
    assert_int_equal(docs_entry_id_parse(id, pl, uid), 0);
    assert_true(docs_name_ok(name64));
    assert_true(docs_name_ok("a@b.c-d_e"));
    assert_false(docs_name_ok("_x"));
    assert_false(docs_name_ok("a b"));
    assert_false(docs_name_ok(""));
    assert_false(docs_name_ok(NULL));
    assert_true(docs_nonce_ok("0a-_Z"));
    assert_false(docs_nonce_ok("a.b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table),
        cmocka_unit_test(defaults_and_values),
        cmocka_unit_test(ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
