/*
 * Playback commands (see cli_playback.h). Each writes what the web app
 * writes (state/docs.h), so imesd cannot tell them apart:
 *
 *   enqueue   looks files up in the library search view (["path", folder]
 *             for a PATH, ["any", word] prefixes for a QUERY), orders them
 *             album / disc / track, and appends one entry document per file
 *             after the playlist's last key (fractional keys, jittered: two
 *             people appending at once get two blocks, not a zipper), with
 *             _bulk_docs.
 *   pause, resume, play, skip  one read-modify-write of channel:NAME;
 *             play and skip carry a fresh random nonce, so imesd acts once
 *             per request.
 *   playlist  the queue in order: position, entry id, artist – title.
 *
 * A channel's entries are read with _all_docs over the id range
 * "entry:c~NAME:" .. "entry:c~NAME:\ufff0" (no view: views are slow to build
 * on pouchdb-server) and sorted here by (key, _id) in byte order.
 */
#include "cli/cli_playback.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "core/hmap.h"
#include "core/timeutil.h"
#include "couch/couch.h"
#include "state/docs.h"
#include "state/fracindex.h"

/* One enqueue adds at most this many entries: a whole library by mistake
 * ("imes enqueue jazz a") is better refused than queued. */
#define ENQUEUE_MAX 10000
/* Entries per _bulk_docs request. */
#define BULK_BATCH 500
/* Query words looked up (one view request each). */
#define QUERY_WORDS_MAX 16
#define WORD_MAX        256
/* U+FFF0: sorts after every character a name or word holds. */
#define HIGH "\xef\xbf\xb0"

int cli_nonce(char out[17])
{
    unsigned char r[8];
    size_t got = 0;

    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

int cli_need_doc(struct cli *cli, const char *type, const char *name, const char *hint,
                 json_t **doc)
{
    char id[128];
    json_t *body = NULL;
    long st;

    if (doc)
        *doc = NULL;
    snprintf(id, sizeof(id), "%s:%s", type, name);
    st = cli_get(cli, cli->db, id, &body);
    if (st == 200) {
        if (doc)
            *doc = body;
        else
            json_decref(body);
        return 0;
    }
    if (st == 404) {
        if (hint)
            fprintf(stderr, "imes: no %s %s (make it with: %s)\n", type, name, hint);
        else
            fprintf(stderr, "imes: no %s %s\n", type, name);
    } else {
        cli_fail(st, body, "GET %s/%s:", cli->db, id);
    }
    json_decref(body);
    return CLI_EXIT_FAIL;
}

static int need_channel(struct cli *cli, const char *name)
{
    char hint[128];
    snprintf(hint, sizeof(hint), "imes channel add %s", name);
    return cli_need_doc(cli, "channel", name, hint, NULL);
}

/* "?startkey=...&endkey=..." values: JSON, URL-escaped. */
static char *json_param(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    char *e = s ? couch_escape(s) : NULL;
    free(s);
    return e;
}

/* GET or POST /<db>/<rest>; *out gets the body of a 200. */
static int db_request(struct cli *cli, const char *method, const char *rest, json_t *body,
                      json_t **out)
{
    char *db = couch_path(cli->db, NULL);
    size_t n = strlen(db) + strlen(rest) + 2;
    char *path = malloc(n);
    long st;

    *out = NULL;
    if (!path) {
        free(db);
        fprintf(stderr, "imes: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    snprintf(path, n, "%s/%s", db, rest);
    free(db);
    st = cli_request(cli, method, path, body, out);
    if (st != 200) {
        cli_fail(st, *out, "%s %s:", method, path);
        json_decref(*out);
        *out = NULL;
        free(path);
        return CLI_EXIT_FAIL;
    }
    free(path);
    return 0;
}

static int by_key_then_id(const void *x, const void *y)
{
    json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
    const char *ka = json_string_value(json_object_get(a, "key"));
    const char *kb = json_string_value(json_object_get(b, "key"));
    int c = strcmp(ka ? ka : "", kb ? kb : "");

    if (c)
        return c;
    return strcmp(json_string_value(json_object_get(a, "_id")),
                  json_string_value(json_object_get(b, "_id")));
}

/* The entries of channel's playlist in order: *out gets a new array of the
 * entry documents. */
static int load_entries(struct cli *cli, const char *channel, json_t **out)
{
    char lo[200];
    json_t *body = NULL, *row, **v = NULL;
    char *rest;
    size_t i, n = 0;
    int r;

    *out = NULL;
    snprintf(lo, sizeof(lo), "entry:c~%s:", channel);
    if (!(rest = couch_prefix_query(lo, NULL, 0, 1))) {
        fprintf(stderr, "imes: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    r = db_request(cli, "GET", rest, NULL, &body);
    free(rest);
    if (r)
        return r;
    v = calloc(json_array_size(json_object_get(body, "rows")) + 1, sizeof(*v));
    if (!v) {
        json_decref(body);
        fprintf(stderr, "imes: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    json_array_foreach(json_object_get(body, "rows"), i, row)
    {
        json_t *doc = json_object_get(row, "doc");
        if (json_is_object(doc) && json_is_string(json_object_get(doc, "_id")))
            v[n++] = doc;
    }
    qsort(v, n, sizeof(*v), by_key_then_id);
    *out = json_array();
    for (i = 0; i < n; i++)
        json_array_append(*out, v[i]);
    free(v);
    json_decref(body);
    return 0;
}

/* The file documents of ids (an array of strings): an object id -> doc of
 * those that exist. */
static int load_files(struct cli *cli, json_t *ids, json_t **out)
{
    json_t *body = NULL, *req, *row;
    size_t i;
    int r;

    *out = json_object();
    if (json_array_size(ids) == 0)
        return 0;
    req = json_pack("{s:O}", "keys", ids);
    r = db_request(cli, "POST", "_all_docs?include_docs=true", req, &body);
    json_decref(req);
    if (r) {
        json_decref(*out);
        *out = NULL;
        return r;
    }
    json_array_foreach(json_object_get(body, "rows"), i, row)
    {
        json_t *doc = json_object_get(row, "doc");
        const char *id = json_string_value(json_object_get(row, "id"));
        if (id && json_is_object(doc))
            json_object_set(*out, id, doc);
    }
    json_decref(body);
    return 0;
}

/* The first value of a tag (the scanner stores lists of strings). */
static const char *tag0(json_t *file, const char *tag)
{
    json_t *v = json_object_get(json_object_get(file, "tags"), tag);
    if (json_is_array(v))
        v = json_array_get(v, 0);
    return json_string_value(v);
}

static long tagnum(json_t *file, const char *tag)
{
    json_t *v = json_object_get(json_object_get(file, "tags"), tag);
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

/* "artist – title" of a file document (NULL: the file is gone). */
static void print_line(size_t pos, const char *entry_id, const char *file_id, json_t *file)
{
    if (!file) {
        printf("%zu  %s  (file %s is no longer in the library)\n", pos, entry_id,
               file_id ? file_id : "?");
        return;
    }
    const char *artist = tag0(file, "artist");
    const char *title = tag0(file, "title");
    const char *name = json_string_value(json_object_get(file, "name"));
    if (!artist)
        artist = tag0(file, "albumartist");
    printf("%zu  %s  %s \xe2\x80\x93 %s\n", pos, entry_id, artist ? artist : "(unknown artist)",
           title  ? title
           : name ? name
                  : file_id);
}

/* Common front of the one-channel commands: options (--help only), then
 * exactly nargs arguments, the first a channel name. Returns -1 to go on. */
static int one_channel_args(const struct cli_command *cmd, int argc, char **argv, int nargs,
                            const char *second)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 0;
    while ((c = cli_getopt(cmd, argc, argv, "h", longopts)) != -1) {
        if (c == 'h') {
            fputs(cmd->usage, stdout);
            return CLI_EXIT_OK;
        }
        return CLI_EXIT_USAGE;
    }
    if (argc - optind < nargs)
        return cli_usage_error(cmd, "%s missing", argc - optind < 1 ? "CHANNEL" : second);
    if (argc - optind > nargs)
        return cli_usage_error(cmd, "unexpected argument %s", argv[optind + nargs]);
    if (!cli_name_ok("channel", argv[optind]))
        return CLI_EXIT_USAGE;
    return -1;
}

/* ---- pause, resume, skip, play ---- */

struct channel_set {
    const char *name;
    int paused;             /* -1: leave */
    const char *skip;       /* NULL: leave */
    const char *play_entry; /* NULL: leave */
    const char *play_request;
};

static int channel_set_edit(json_t *doc, bool existed, void *arg)
{
    const struct channel_set *cs = arg;
    json_t *before;
    int changed;

    if (!existed) {
        fprintf(stderr, "imes: no channel %s (make it with: imes channel add %s)\n", cs->name,
                cs->name);
        return -1;
    }
    before = json_deep_copy(doc);
    if (cs->paused >= 0)
        json_object_set_new(doc, "paused", json_boolean(cs->paused));
    if (cs->skip)
        json_object_set_new(doc, "skip", json_string(cs->skip));
    if (cs->play_entry)
        json_object_set_new(
            doc, "play",
            json_pack("{s:s,s:s}", "entry", cs->play_entry, "request", cs->play_request));
    changed = !json_equal(before, doc);
    json_decref(before);
    return changed;
}

static int set_channel(struct cli *cli, struct channel_set *cs)
{
    char id[128];
    snprintf(id, sizeof(id), "channel:%s", cs->name);
    return cli_update_doc(cli, cli->db, id, channel_set_edit, cs, NULL);
}

static int pause_or_resume(const struct cli_command *cmd, struct cli *cli, int argc, char **argv,
                           bool pause)
{
    struct channel_set cs = {.paused = pause};
    int r = one_channel_args(cmd, argc, argv, 1, NULL);

    if (r >= 0)
        return r;
    cs.name = argv[optind];
    if ((r = cli_connect(cli, NULL)) != 0)
        return r;
    r = set_channel(cli, &cs);
    if (r < 0)
        return CLI_EXIT_FAIL;
    if (r == CLI_DOC_UNCHANGED)
        printf("channel %s was %s\n", cs.name, pause ? "already paused" : "not paused");
    else
        printf("channel %s %s\n", cs.name, pause ? "paused" : "resumed");
    return CLI_EXIT_OK;
}

static const char pause_usage[] =
    "usage: imes [-c FILE] pause CHANNEL\n"
    "\n"
    "Pauses channel CHANNEL (channel:CHANNEL.paused = true): its rooms hear it\n"
    "fade out; `imes resume CHANNEL` goes on where it stopped.\n"
    "\n"
    "  -h, --help  this help\n";

static int pause_run(struct cli *cli, int argc, char **argv)
{
    return pause_or_resume(&cli_pause_command, cli, argc, argv, true);
}

const struct cli_command cli_pause_command = {
    .name = "pause",
    .summary = "pause CHANNEL: pause a channel",
    .usage = pause_usage,
    .run = pause_run,
};

static const char resume_usage[] =
    "usage: imes [-c FILE] resume CHANNEL\n"
    "\n"
    "Resumes channel CHANNEL (channel:CHANNEL.paused = false). It plays when its\n"
    "playlist has a next entry and a device on it is connected and not muted.\n"
    "\n"
    "  -h, --help  this help\n";

static int resume_run(struct cli *cli, int argc, char **argv)
{
    return pause_or_resume(&cli_resume_command, cli, argc, argv, false);
}

const struct cli_command cli_resume_command = {
    .name = "resume",
    .summary = "resume CHANNEL: resume a paused channel",
    .usage = resume_usage,
    .run = resume_run,
};

static const char skip_usage[] =
    "usage: imes [-c FILE] skip CHANNEL\n"
    "\n"
    "Asks channel CHANNEL to go to its next entry now: channel:CHANNEL.skip gets\n"
    "a new random nonce, and imesd skips once per nonce.\n"
    "\n"
    "  -h, --help  this help\n";

static int skip_run(struct cli *cli, int argc, char **argv)
{
    struct channel_set cs = {.paused = -1};
    char nonce[17];
    int r = one_channel_args(&cli_skip_command, argc, argv, 1, NULL);

    if (r >= 0)
        return r;
    cs.name = argv[optind];
    if ((r = cli_nonce(nonce)) < 0) {
        fprintf(stderr, "imes: getrandom: %s\n", strerror(-r));
        return CLI_EXIT_FAIL;
    }
    cs.skip = nonce;
    if ((r = cli_connect(cli, NULL)) != 0)
        return r;
    if (set_channel(cli, &cs) < 0)
        return CLI_EXIT_FAIL;
    printf("channel %s: skip requested (%s)\n", cs.name, nonce);
    return CLI_EXIT_OK;
}

const struct cli_command cli_skip_command = {
    .name = "skip",
    .summary = "skip CHANNEL: go to the next entry now",
    .usage = skip_usage,
    .run = skip_run,
};

static const char play_usage[] =
    "usage: imes [-c FILE] play CHANNEL ENTRY\n"
    "\n"
    "Plays ENTRY of channel CHANNEL now, and resumes the channel if it was\n"
    "paused: channel:CHANNEL.play = {entry, request: a new random nonce},\n"
    "paused = false. ENTRY is an entry id (entry:c~CHANNEL:...) or a position\n"
    "in the playlist, 1 for the first (see `imes playlist CHANNEL`).\n"
    "\n"
    "  -h, --help  this help\n";

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int play_run(struct cli *cli, int argc, char **argv)
{
    struct channel_set cs = {.paused = 0};
    char nonce[17], pl[DOCS_PLAYLIST_MAX + 1], want[DOCS_PLAYLIST_MAX + 1], id[256];
    const char *which;
    json_t *entries = NULL;
    size_t pos = 0;
    int r = one_channel_args(&cli_play_command, argc, argv, 2, "ENTRY");

    if (r >= 0)
        return r;
    cs.name = argv[optind];
    which = argv[optind + 1];
    docs_channel_playlist(cs.name, want, sizeof(want));
    if (!all_digits(which) && (docs_entry_id_parse(which, pl, NULL) < 0 || strcmp(pl, want) != 0))
        return cli_usage_error(&cli_play_command,
                               "ENTRY %s: a position (1, 2, ...) or an entry id entry:%s:<uid>",
                               which, want);
    if ((r = cli_connect(cli, NULL)) != 0)
        return r;
    if ((r = need_channel(cli, cs.name)) != 0)
        return r;
    if ((r = load_entries(cli, cs.name, &entries)) != 0)
        return r;
    if (all_digits(which)) {
        unsigned long p = strtoul(which, NULL, 10);
        size_t n = json_array_size(entries);
        if (p < 1 || p > n) {
            if (n == 0)
                fprintf(stderr, "imes: channel %s has an empty playlist\n", cs.name);
            else
                fprintf(stderr, "imes: channel %s has %zu entries: no position %s\n", cs.name, n,
                        which);
            json_decref(entries);
            return CLI_EXIT_FAIL;
        }
        pos = p;
        snprintf(id, sizeof(id), "%s",
                 json_string_value(json_object_get(json_array_get(entries, p - 1), "_id")));
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e)
        {
            if (strcmp(json_string_value(json_object_get(e, "_id")), which) == 0)
                pos = i + 1;
        }
        if (!pos) {
            fprintf(stderr, "imes: channel %s has no entry %s\n", cs.name, which);
            json_decref(entries);
            return CLI_EXIT_FAIL;
        }
        snprintf(id, sizeof(id), "%s", which);
    }
    json_decref(entries);
    if ((r = cli_nonce(nonce)) < 0) {
        fprintf(stderr, "imes: getrandom: %s\n", strerror(-r));
        return CLI_EXIT_FAIL;
    }
    cs.play_entry = id;
    cs.play_request = nonce;
    if (set_channel(cli, &cs) < 0)
        return CLI_EXIT_FAIL;
    printf("channel %s: play %s (position %zu) requested (%s)\n", cs.name, id, pos, nonce);
    return CLI_EXIT_OK;
}

const struct cli_command cli_play_command = {
    .name = "play",
    .summary = "play CHANNEL ENTRY: play an entry (id or position) now",
    .usage = play_usage,
    .run = play_run,
};

/* ---- playlist ---- */

static const char playlist_usage[] =
    "usage: imes [-c FILE] playlist CHANNEL\n"
    "\n"
    "Lists the playlist of channel CHANNEL in play order, one entry a line:\n"
    "position, entry id, artist \xe2\x80\x93 title.\n"
    "\n"
    "  -h, --help  this help\n";

/* Prints entries (in order) as lines numbered from first. */
static int print_entries(struct cli *cli, json_t *entries, size_t first)
{
    json_t *ids = json_array(), *files = NULL, *e;
    size_t i;
    int r;

    json_array_foreach(entries, i, e)
    {
        json_t *f = json_object_get(e, "file");
        if (json_is_string(f))
            json_array_append(ids, f);
    }
    r = load_files(cli, ids, &files);
    json_decref(ids);
    if (r)
        return r;
    json_array_foreach(entries, i, e)
    {
        const char *fid = json_string_value(json_object_get(e, "file"));
        print_line(first + i, json_string_value(json_object_get(e, "_id")), fid,
                   fid ? json_object_get(files, fid) : NULL);
    }
    json_decref(files);
    return 0;
}

static int playlist_run(struct cli *cli, int argc, char **argv)
{
    json_t *entries = NULL;
    const char *name;
    int r = one_channel_args(&cli_playlist_command, argc, argv, 1, NULL);

    if (r >= 0)
        return r;
    name = argv[optind];
    if ((r = cli_connect(cli, NULL)) != 0)
        return r;
    if ((r = need_channel(cli, name)) != 0)
        return r;
    if ((r = load_entries(cli, name, &entries)) != 0)
        return r;
    if (json_array_size(entries) == 0)
        fprintf(stderr, "imes: channel %s has an empty playlist\n", name);
    r = print_entries(cli, entries, 1);
    json_decref(entries);
    return r;
}

const struct cli_command cli_playlist_command = {
    .name = "playlist",
    .summary = "playlist CHANNEL: the channel's queue in order",
    .usage = playlist_usage,
    .run = playlist_run,
};

/* ---- enqueue ---- */

static const char enqueue_usage[] =
    "usage: imes [-c FILE] enqueue CHANNEL QUERY...\n"
    "       imes [-c FILE] enqueue CHANNEL PATH...\n"
    "\n"
    "Appends files of the library to the playlist of channel CHANNEL and prints\n"
    "what it added. Arguments that exist on disk are PATHs: a file, or a folder\n"
    "and every file below it (they must be inside a `media` folder and scanned).\n"
    "Otherwise the arguments are a QUERY: files whose artist, album artist,\n"
    "album or title has a word starting with each word given (\"sine conc\"\n"
    "finds The Sine Waves' Concert A). Files are added in album, disc, track\n"
    "order, each once. Exits 1 when nothing matched.\n"
    "\n"
    "  -h, --help  this help\n";

/* Appends codepoint c to buf as UTF-8. */
static void put_utf8(char *buf, size_t *n, size_t cap, uint32_t c)
{
    char t[4];
    size_t k;

    if (c < 0x80) {
        t[0] = (char)c;
        k = 1;
    } else if (c < 0x800) {
        t[0] = (char)(0xC0 | (c >> 6));
        t[1] = (char)(0x80 | (c & 0x3F));
        k = 2;
    } else if (c < 0x10000) {
        t[0] = (char)(0xE0 | (c >> 12));
        t[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        t[2] = (char)(0x80 | (c & 0x3F));
        k = 3;
    } else {
        t[0] = (char)(0xF0 | (c >> 18));
        t[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        t[3] = (char)(0x80 | (c & 0x3F));
        k = 4;
    }
    if (*n + k < cap) {
        memcpy(buf + *n, t, k);
        *n += k;
    }
}

/* The next codepoint of a NUL-terminated UTF-8 string (U+FFFD for a bad
 * byte, which is skipped). */
static uint32_t next_utf8(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c;
    int k;

    if (s[0] < 0x80) {
        *p = s + 1;
        return s[0];
    }
    if ((s[0] & 0xE0) == 0xC0) {
        c = s[0] & 0x1F;
        k = 1;
    } else if ((s[0] & 0xF0) == 0xE0) {
        c = s[0] & 0x0F;
        k = 2;
    } else if ((s[0] & 0xF8) == 0xF0) {
        c = s[0] & 0x07;
        k = 3;
    } else {
        *p = s + 1;
        return 0xFFFD;
    }
    for (int i = 1; i <= k; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *p = s + 1;
            return 0xFFFD;
        }
        c = c << 6 | (s[i] & 0x3F);
    }
    *p = s + k + 1;
    return c;
}

/* What separates words in the search view's words(). */
static bool separator(uint32_t c)
{
    if (c < 0x80)
        return c == ' ' || (c >= '\t' && c <= '\r') ||
               strchr("-_.,;:!?\"()[]{}/\\&+*#@~`|<>=", (int)c);
    return (c >= 0x2010 && c <= 0x2015) || c == 0x2018 || c == 0x201C || c == 0x201D || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

/* The view's fold() (lower case, accents off, ß æ œ ø ł đ spelled out) for
 * ASCII and Latin-1; other letters pass unchanged, so a query in another
 * script should be typed as the view stores it. */
static const char *const latin1_fold[64] = {
    "a", "a", "a", "a",        "a",        "a",  "ae", "c", "e", "e",        "e",        "e", "i",
    "i", "i", "i", "\xc3\xb0", "n",        "o",  "o",  "o", "o", "o",        "\xc3\x97", "o", "u",
    "u", "u", "u", "y",        "\xc3\xbe", "ss", "a",  "a", "a", "a",        "a",        "a", "ae",
    "c", "e", "e", "e",        "e",        "i",  "i",  "i", "i", "\xc3\xb0", "n",        "o", "o",
    "o", "o", "o", "\xc3\xb7", "o",        "u",  "u",  "u", "u", "y",        "\xc3\xbe", "y",
};

static void fold_into(char *buf, size_t *n, size_t cap, uint32_t c)
{
    const char *s = NULL;

    if (c >= 'A' && c <= 'Z')
        c += 32;
    if (c >= 0xC0 && c <= 0xFF)
        s = latin1_fold[c - 0xC0];
    else if (c == 0x141 || c == 0x142)
        s = "l";
    else if (c == 0x110 || c == 0x111)
        s = "d";
    else if (c == 0x152 || c == 0x153)
        s = "oe";
    if (!s) {
        put_utf8(buf, n, cap, c);
        return;
    }
    for (; *s && *n + 1 < cap; s++)
        buf[(*n)++] = *s;
}

/* Splits s into folded words, appended to words (a JSON array). */
static void query_words(const char *s, json_t *words)
{
    const unsigned char *p = (const unsigned char *)s;
    char w[WORD_MAX];
    size_t n = 0;

    for (;;) {
        uint32_t c = *p ? next_utf8(&p) : 0;
        if (c == '\'' || c == 0x2019)
            continue; /* "Don't" is one word */
        if (c == 0 || separator(c)) {
            if (n) {
                w[n] = '\0';
                json_array_append_new(words, json_string(w));
                n = 0;
            }
            if (c == 0)
                return;
            continue;
        }
        fold_into(w, &n, sizeof(w), c);
    }
}

/* Rows of the search view between [field, lo] and [field, hi]. */
static int search(struct cli *cli, const char *field, const char *lo, const char *hi, bool docs,
                  json_t **rows)
{
    json_t *kl = json_pack("[s,s]", field, lo), *kh = json_pack("[s,s]", field, hi), *body = NULL;
    char *el = json_param(kl), *eh = json_param(kh), *rest = NULL;
    int r;

    json_decref(kl);
    json_decref(kh);
    *rows = NULL;
    if (!el || !eh ||
        asprintf(&rest, "_design/imes/_view/search?startkey=%s&endkey=%s%s", el, eh,
                 docs ? "&include_docs=true" : "") < 0) {
        free(el);
        free(eh);
        fprintf(stderr, "imes: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    free(el);
    free(eh);
    r = db_request(cli, "GET", rest, NULL, &body);
    free(rest);
    if (r)
        return r;
    *rows = json_incref(json_object_get(body, "rows"));
    json_decref(body);
    if (!json_is_array(*rows)) {
        json_decref(*rows);
        *rows = json_array();
    }
    return 0;
}

/* The files of a PATH on disk into found (id -> doc). Returns how many, or
 * -1 after a message (not in a media folder, or the request failed). */
static int files_of_path(struct cli *cli, const char *arg, json_t *found)
{
    char real[PATH_MAX], *lo = NULL, *hi = NULL, *folder = NULL;
    const struct strlist *roots = &cli->cfg.media;
    struct stat st;
    json_t *rows = NULL, *row;
    bool inside = false, dir;
    size_t i, rl;
    int count = 0, r;

    if (!realpath(arg, real) || stat(real, &st) < 0) {
        fprintf(stderr, "imes enqueue: %s: %s\n", arg, strerror(errno));
        return -1;
    }
    dir = S_ISDIR(st.st_mode);
    for (i = 0; i < roots->n; i++) {
        size_t n = strlen(roots->v[i]);
        if (strncmp(real, roots->v[i], n) == 0 && (real[n] == '/' || real[n] == '\0'))
            inside = true;
    }
    if (!inside) {
        fprintf(stderr, "imes enqueue: %s is not inside a media folder of %s\n", arg,
                cli->config_path);
        return -1;
    }
    rl = strlen(real);
    if (dir) {
        /* The folder and every folder below: a prefix range, then exact. */
        if (asprintf(&lo, "%s", real) < 0 || asprintf(&hi, "%s" HIGH, real) < 0)
            goto oom;
    } else {
        const char *slash = strrchr(real, '/');
        folder = strndup(real, slash ? (size_t)(slash - real) : 0);
        if (!folder || !(lo = strdup(folder)) || !(hi = strdup(folder)))
            goto oom;
    }
    r = search(cli, "path", lo, hi, true, &rows);
    if (r) {
        count = -1;
        goto out;
    }
    json_array_foreach(rows, i, row)
    {
        json_t *doc = json_object_get(row, "doc");
        const char *path = json_string_value(json_object_get(doc, "path"));
        const char *id = json_string_value(json_object_get(row, "id"));
        bool match;
        if (!path || !id)
            continue;
        if (dir)
            match = strncmp(path, real, rl) == 0 && (path[rl] == '/' || rl == 1);
        else
            match = strcmp(path, real) == 0;
        if (match && !json_object_get(found, id)) {
            json_object_set(found, id, doc);
            count++;
        }
    }
    if (count == 0)
        fprintf(stderr, "imes enqueue: %s: no scanned file there (`imes scan` reads new files)\n",
                arg);
out:
    json_decref(rows);
    free(lo);
    free(hi);
    free(folder);
    return count;
oom:
    fprintf(stderr, "imes: out of memory\n");
    count = -1;
    goto out;
}

/* The files matching every word of words (prefixes) into found. */
static int files_of_query(struct cli *cli, json_t *words, json_t *found)
{
    json_t *w, *rows = NULL, *row;
    size_t i, j;

    json_array_foreach(words, i, w)
    {
        char hi[WORD_MAX + 4];
        struct hmap *seen = NULL;
        const char *id;
        void *it;
        int r;

        snprintf(hi, sizeof(hi), "%s" HIGH, json_string_value(w));
        /* The first word brings the documents; the others only ids to keep. */
        r = search(cli, "any", json_string_value(w), hi, i == 0, &rows);
        if (r)
            return -1;
        if (i == 0) {
            json_array_foreach(rows, j, row)
            {
                json_t *doc = json_object_get(row, "doc");
                if ((id = json_string_value(json_object_get(row, "id"))) && json_is_object(doc))
                    json_object_set(found, id, doc);
            }
        } else {
            if (!(seen = hmap_new())) {
                json_decref(rows);
                fprintf(stderr, "imes: out of memory\n");
                return -1;
            }
            json_array_foreach(rows, j, row)
            {
                if ((id = json_string_value(json_object_get(row, "id"))))
                    hmap_set(seen, id, (void *)1, NULL);
            }
            json_object_foreach_safe(found, it, id, row)
            {
                if (!hmap_get(seen, id))
                    json_object_del(found, id);
            }
            hmap_free(&seen, NULL);
        }
        json_decref(rows);
        rows = NULL;
        if (json_object_size(found) == 0)
            break;
    }
    return (int)json_object_size(found);
}

/* Album, disc, track order (album artist, then path, keep equal albums of
 * different artists apart and the order total). */
static int by_album_disc_track(const void *x, const void *y)
{
    json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
    const char *sa, *sb;
    long na, nb;
    int c;

    sa = tag0(a, "album");
    sb = tag0(b, "album");
    if ((c = strcmp(sa ? sa : "", sb ? sb : "")))
        return c;
    sa = tag0(a, "albumartist") ? tag0(a, "albumartist") : tag0(a, "artist");
    sb = tag0(b, "albumartist") ? tag0(b, "albumartist") : tag0(b, "artist");
    if ((c = strcmp(sa ? sa : "", sb ? sb : "")))
        return c;
    na = tagnum(a, "discnumber");
    nb = tagnum(b, "discnumber");
    if (na != nb)
        return na < nb ? -1 : 1;
    na = tagnum(a, "tracknumber");
    nb = tagnum(b, "tracknumber");
    if (na != nb)
        return na < nb ? -1 : 1;
    sa = json_string_value(json_object_get(a, "path"));
    sb = json_string_value(json_object_get(b, "path"));
    return strcmp(sa ? sa : "", sb ? sb : "");
}

/* Who the entries are added by: the name CouchDB knows this login by, as
 * the web app writes its user's name. */
static char *session_name(struct cli *cli)
{
    json_t *body = NULL;
    const char *name;
    char *out;

    if (cli_request(cli, "GET", "/_session", NULL, &body) == 200 &&
        (name = json_string_value(json_object_get(json_object_get(body, "userCtx"), "name"))) &&
        *name)
        out = strdup(name);
    else
        out = strdup("admin"); /* admin party: no name at all */
    json_decref(body);
    return out;
}

/* Writes docs with _bulk_docs in batches; returns how many were refused. */
static size_t bulk_write(struct cli *cli, json_t *docs)
{
    size_t refused = 0, total = json_array_size(docs);

    for (size_t at = 0; at < total; at += BULK_BATCH) {
        json_t *batch = json_array(), *body = NULL, *req, *res;
        struct hmap *ok = hmap_new();
        size_t i;
        int r;

        for (i = at; i < total && i < at + BULK_BATCH; i++)
            json_array_append(batch, json_array_get(docs, i));
        req = json_pack("{s:o}", "docs", batch);
        /* 201 from _bulk_docs is "processed", not "all written": check each. */
        {
            char *db = couch_path(cli->db, NULL), path[512];
            snprintf(path, sizeof(path), "%s/_bulk_docs", db);
            free(db);
            long st = cli_request(cli, "POST", path, req, &body);
            r = st == 201 || st == 200 ? 0 : (cli_fail(st, body, "POST %s:", path), -1);
        }
        json_decref(req);
        if (r == 0 && ok) {
            json_array_foreach(body, i, res)
            {
                const char *id = json_string_value(json_object_get(res, "id"));
                if (id && json_is_true(json_object_get(res, "ok")))
                    hmap_set(ok, id, (void *)1, NULL);
                else if (id)
                    fprintf(stderr, "imes enqueue: %s refused: %s: %s\n", id,
                            json_string_value(json_object_get(res, "error")),
                            json_string_value(json_object_get(res, "reason")));
            }
        }
        for (i = at; i < total && i < at + BULK_BATCH; i++) {
            json_t *d = json_array_get(docs, i);
            const char *id = json_string_value(json_object_get(d, "_id"));
            if (!ok || !hmap_get(ok, id)) {
                refused++;
                json_object_set_new(d, "refused", json_true()); /* not printed as added */
            }
        }
        hmap_free(&ok, NULL);
        json_decref(body);
    }
    return refused;
}

static int enqueue_run(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *channel, *k;
    json_t *found = json_object(), *words = json_array(), *entries = NULL, *docs = NULL, *v;
    json_t **files = NULL;
    char **keys = NULL, *added_by = NULL, playlist[DOCS_PLAYLIST_MAX + 1], now[32];
    size_t nfiles = 0, i, existing, refused, paths = 0;
    int c, r = CLI_EXIT_FAIL, first;
    time_t t = time(NULL);

    optind = 0;
    while ((c = cli_getopt(&cli_enqueue_command, argc, argv, "h", longopts)) != -1) {
        if (c == 'h') {
            fputs(enqueue_usage, stdout);
            r = CLI_EXIT_OK;
        } else {
            r = CLI_EXIT_USAGE;
        }
        goto out;
    }
    if (argc - optind < 2) {
        r = cli_usage_error(&cli_enqueue_command,
                            argc - optind < 1 ? "CHANNEL missing" : "what to add is missing");
        goto out;
    }
    channel = argv[optind];
    first = optind + 1;
    if (!cli_name_ok("channel", channel)) {
        r = CLI_EXIT_USAGE;
        goto out;
    }
    for (int a = first; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) == 0)
            paths++;
    }
    if (paths && paths != (size_t)(argc - first)) {
        r = cli_usage_error(&cli_enqueue_command,
                            "give either PATHs that exist or QUERY words, not both");
        goto out;
    }
    if (!paths) {
        for (int a = first; a < argc; a++)
            query_words(argv[a], words);
        if (json_array_size(words) == 0) {
            r = cli_usage_error(&cli_enqueue_command, "the query has no words");
            goto out;
        }
        if (json_array_size(words) > QUERY_WORDS_MAX) {
            r = cli_usage_error(&cli_enqueue_command, "at most %d query words", QUERY_WORDS_MAX);
            goto out;
        }
    }
    if ((r = cli_connect(cli, NULL)) != 0 || (r = need_channel(cli, channel)) != 0)
        goto out;
    r = CLI_EXIT_FAIL;

    if (paths) {
        for (int a = first; a < argc; a++)
            if (files_of_path(cli, argv[a], found) < 0)
                goto out;
    } else if (files_of_query(cli, words, found) < 0) {
        goto out;
    }
    nfiles = json_object_size(found);
    if (nfiles == 0) {
        fprintf(stderr, "imes enqueue: nothing matched");
        for (int a = first; a < argc; a++)
            fprintf(stderr, " %s", argv[a]);
        fputc('\n', stderr);
        goto out;
    }
    if (nfiles > ENQUEUE_MAX) {
        fprintf(stderr, "imes enqueue: %zu files matched; at most %d at once (narrow it down)\n",
                nfiles, ENQUEUE_MAX);
        goto out;
    }
    files = calloc(nfiles, sizeof(*files));
    keys = calloc(nfiles, sizeof(*keys));
    if (!files || !keys) {
        fprintf(stderr, "imes: out of memory\n");
        goto out;
    }
    i = 0;
    json_object_foreach(found, k, v) files[i++] = v;
    qsort(files, nfiles, sizeof(*files), by_album_disc_track);

    /* After the last entry, as things stand now. */
    if (load_entries(cli, channel, &entries) != 0)
        goto out;
    existing = json_array_size(entries);
    k = existing ? json_string_value(json_object_get(json_array_get(entries, existing - 1), "key"))
                 : NULL;
    if (k && !fracindex_valid(k)) {
        fprintf(stderr, "imes enqueue: the last entry of %s has a bad key \"%s\"\n", channel, k);
        goto out;
    }
    if ((c = fracindex_n_between_jitter(k, NULL, nfiles, keys)) < 0) {
        fprintf(stderr, "imes enqueue: no sort keys after \"%s\": %s\n", k ? k : "", strerror(-c));
        goto out;
    }
    if (!(added_by = session_name(cli)))
        goto out;
    docs_channel_playlist(channel, playlist, sizeof(playlist));
    timeutil_iso8601(t, now, sizeof(now));
    docs = json_array();
    for (i = 0; i < nfiles; i++) {
        char uid[17], id[DOCS_ENTRY_ID_MAX + 1];
        if ((c = cli_nonce(uid)) < 0) {
            fprintf(stderr, "imes: getrandom: %s\n", strerror(-c));
            goto out;
        }
        snprintf(id, sizeof(id), "entry:%s:%s", playlist, uid);
        json_array_append_new(docs, json_pack("{s:s,s:s,s:s,s:O,s:s,s:s,s:s}", "_id", id, "type",
                                              "entry", "playlist", playlist, "file",
                                              json_object_get(files[i], "_id"), "key", keys[i],
                                              "added_by", added_by, "added", now));
    }
    refused = bulk_write(cli, docs);
    printf("channel %s: %zu added", channel, nfiles - refused);
    if (nfiles - refused == 1)
        printf(" (position %zu)", existing + 1);
    else if (nfiles > refused)
        printf(" (positions %zu-%zu)", existing + 1, existing + nfiles - refused);
    if (refused)
        printf(", %zu refused", refused);
    putchar('\n');
    {
        size_t pos = existing + 1;
        json_array_foreach(docs, i, v)
        {
            if (json_object_get(v, "refused"))
                continue;
            print_line(pos++, json_string_value(json_object_get(v, "_id")),
                       json_string_value(json_object_get(v, "file")), files[i]);
        }
    }
    r = refused ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
    if (keys)
        fracindex_free_keys(keys, nfiles);
    free(keys);
    free(files);
    free(added_by);
    json_decref(docs);
    json_decref(entries);
    json_decref(found);
    json_decref(words);
    return r;
}

const struct cli_command cli_enqueue_command = {
    .name = "enqueue",
    .summary = "enqueue CHANNEL QUERY|PATH...: add files to a channel's playlist",
    .usage = enqueue_usage,
    .run = enqueue_run,
};
