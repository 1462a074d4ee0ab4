/*
 * Parsers of the user-written documents (see docs.h for the schemas). Each
 * checks the _id first, then every field it knows in the order of the
 * schema, and stops at the first problem: the message names that field.
 * Keep in step with couchapp/imes/validate_doc_update.js.
 */
#include "state/docs.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool docs_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > DOCS_NAME_MAX || s[0] == '.' || s[0] == '_' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@'))
            return false;
    }
    return true;
}

bool docs_nonce_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > DOCS_NONCE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Copies the n bytes at s into a name buffer if they form a valid name. */
static bool take_name(const char *s, size_t n, char *out)
{
    if (n == 0 || n > DOCS_NAME_MAX)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return docs_name_ok(out);
}

int docs_playlist_parse(const char *playlist, struct docs_playlist *out)
{
    const char *tilde;

    memset(out, 0, sizeof(*out));
    if (!playlist)
        return -EINVAL;
    if (strncmp(playlist, "c~", 2) == 0) {
        out->kind = DOCS_PLAYLIST_CHANNEL;
        return take_name(playlist + 2, strlen(playlist + 2), out->owner) ? 0 : -EINVAL;
    }
    if (strncmp(playlist, "u~", 2) != 0)
        return -EINVAL;
    out->kind = DOCS_PLAYLIST_USER;
    tilde = strchr(playlist + 2, '~');
    if (!tilde || !take_name(playlist + 2, (size_t)(tilde - playlist - 2), out->owner) ||
        !take_name(tilde + 1, strlen(tilde + 1), out->name))
        return -EINVAL;
    return 0;
}

static bool is_uid(const char *s)
{
    for (size_t i = 0; i < DOCS_UID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[DOCS_UID_LEN] == '\0';
}

int docs_entry_id_parse(const char *id, char *playlist, char *uid)
{
    const char *colon;
    struct docs_playlist pl;
    char buf[DOCS_PLAYLIST_MAX + 1];
    size_t n;

    if (!id || strncmp(id, "entry:", 6) != 0)
        return -EINVAL;
    id += 6;
    colon = strchr(id, ':');
    if (!colon || (n = (size_t)(colon - id)) > DOCS_PLAYLIST_MAX)
        return -EINVAL;
    memcpy(buf, id, n);
    buf[n] = '\0';
    if (docs_playlist_parse(buf, &pl) < 0 || !is_uid(colon + 1))
        return -EINVAL;
    if (playlist)
        memcpy(playlist, buf, n + 1);
    if (uid)
        memcpy(uid, colon + 1, DOCS_UID_LEN + 1);
    return 0;
}

int docs_channel_playlist(const char *channel, char *out, size_t size)
{
    if (!docs_name_ok(channel) || size < strlen(channel) + 3)
        return -EINVAL;
    snprintf(out, size, "c~%s", channel);
    return 0;
}

/* ---- field checks: each returns 0, or -EINVAL after writing the message ---- */

static int fail(char *err, size_t errlen, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, const char *field, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (err && errlen) {
        n = snprintf(err, errlen, "%s: ", field);
        if (n >= 0 && (size_t)n < errlen) {
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

/* The _id: "<prefix>:<name>" with a valid name, copied to name. Also the
 * type field, which must be the prefix when present. */
static int check_id(json_t *doc, const char *prefix, char *name, char *err, size_t errlen)
{
    const char *id = json_string_value(json_object_get(doc, "_id"));
    size_t pl = strlen(prefix);
    json_t *type;

    if (!json_is_object(doc))
        return fail(err, errlen, "document", "must be a JSON object");
    if (!id || strncmp(id, prefix, pl) != 0 || id[pl] != ':')
        return fail(err, errlen, "_id", "must start with \"%s:\"", prefix);
    if (name && !take_name(id + pl + 1, strlen(id + pl + 1), name))
        return fail(
            err, errlen, "_id",
            "\"%s\": the name must be 1 to 64 of letters, digits, . _ - @ (not first . _ -)", id);
    type = json_object_get(doc, "type");
    if (type && !(json_is_string(type) && strcmp(json_string_value(type), prefix) == 0))
        return fail(err, errlen, "type", "must be \"%s\" (the _id prefix)", prefix);
    return 0;
}

static int opt_bool(json_t *doc, const char *field, bool *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(doc, field);

    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return fail(err, errlen, field, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

/* A number from min to max (max < 0: no upper bound). */
static int opt_number(json_t *doc, const char *field, double min, double max, double *out,
                      char *err, size_t errlen)
{
    json_t *v = json_object_get(doc, field);
    double x;

    if (!v)
        return 0;
    x = json_number_value(v);
    if (!json_is_number(v) || !isfinite(x) || x < min || (max >= 0 && x > max)) {
        if (max >= 0)
            return fail(err, errlen, field, "must be a number from %g to %g", min, max);
        return fail(err, errlen, field, "must be a number of at least %g", min);
    }
    *out = x;
    return 0;
}

/* null, absent or a valid name; out gets "" for none. */
static int opt_name(json_t *doc, const char *field, char *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(doc, field);

    out[0] = '\0';
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || !docs_name_ok(json_string_value(v)))
        return fail(err, errlen, field,
                    "must be null or a name (1 to 64 of letters, digits, . _ - @)");
    strcpy(out, json_string_value(v));
    return 0;
}

/* One of names[] (NULL-ended); *out gets its index. */
static int opt_enum(json_t *doc, const char *field, const char *const *names, int *out, char *err,
                    size_t errlen)
{
    json_t *v = json_object_get(doc, field);
    const char *s = json_string_value(v);
    char list[128] = "";

    if (!v)
        return 0;
    for (int i = 0; names[i]; i++) {
        if (s && strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", names[i]);
    }
    return fail(err, errlen, field, "must be one of %s", list);
}

/* A required string of 1 to max bytes, copied to out. */
static int req_string(json_t *doc, const char *field, size_t max, char *out, const char *what,
                      char *err, size_t errlen)
{
    const char *s = json_string_value(json_object_get(doc, field));

    if (!s || !*s || strlen(s) > max)
        return fail(err, errlen, field, "must be %s", what);
    strcpy(out, s);
    return 0;
}

/* ---- the documents ---- */

static const char *const replaygain_names[] = {"album", "track", "off", NULL};
static const char *const codec_names[] = {"mp3", "opus", NULL};

const char *docs_replaygain_str(enum docs_replaygain rg)
{
    return (unsigned)rg < 3 ? replaygain_names[rg] : "?";
}

const char *docs_codec_str(enum docs_codec c)
{
    return (unsigned)c < 2 ? codec_names[c] : "?";
}

int docs_channel_parse(json_t *doc, struct docs_channel *out, char *err, size_t errlen)
{
    int rg = DOCS_RG_ALBUM;
    json_t *play, *skip;
    int r;

    memset(out, 0, sizeof(*out));
    out->replaygain = DOCS_RG_ALBUM;
    out->crossfade = DOCS_DEFAULT_CROSSFADE;
    if ((r = check_id(doc, "channel", out->name, err, errlen)) < 0 ||
        (r = opt_bool(doc, "paused", &out->paused, err, errlen)) < 0 ||
        (r = opt_enum(doc, "replaygain", replaygain_names, &rg, err, errlen)) < 0 ||
        (r = opt_number(doc, "crossfade", 0, DOCS_CROSSFADE_MAX, &out->crossfade, err, errlen)) < 0)
        return r;
    out->replaygain = (enum docs_replaygain)rg;

    play = json_object_get(doc, "play");
    if (play && !json_is_null(play)) {
        const char *entry = json_string_value(json_object_get(play, "entry"));
        const char *req = json_string_value(json_object_get(play, "request"));
        char pl[DOCS_PLAYLIST_MAX + 1], want[DOCS_PLAYLIST_MAX + 1];
        if (!json_is_object(play))
            return fail(err, errlen, "play", "must be null or {\"entry\": ..., \"request\": ...}");
        docs_channel_playlist(out->name, want, sizeof(want));
        if (docs_entry_id_parse(entry, pl, NULL) < 0 || strcmp(pl, want) != 0)
            return fail(err, errlen, "play.entry",
                        "must be an entry of this channel: entry:%s:<uid>", want);
        if (!docs_nonce_ok(req))
            return fail(err, errlen, "play.request",
                        "must be a nonce: 1 to 64 of letters, digits, _ -");
        strcpy(out->play_entry, entry);
        strcpy(out->play_request, req);
    }
    skip = json_object_get(doc, "skip");
    if (skip && !json_is_null(skip)) {
        if (!docs_nonce_ok(json_string_value(skip)))
            return fail(err, errlen, "skip",
                        "must be null or a nonce: 1 to 64 of letters, digits, _ -");
        strcpy(out->skip, json_string_value(skip));
    }
    return 0;
}

int docs_entry_parse(json_t *doc, struct docs_entry *out, char *err, size_t errlen)
{
    const char *id = json_string_value(json_object_get(doc, "_id"));
    const char *s;
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = check_id(doc, "entry", NULL, err, errlen)) < 0)
        return r;
    if (strlen(id) > DOCS_ENTRY_ID_MAX || docs_entry_id_parse(id, out->playlist, out->uid) < 0)
        return fail(err, errlen, "_id",
                    "must be entry:c~<channel>:<uid> or entry:u~<user>~<playlist>:<uid> "
                    "(uid: 16 lowercase hex digits)");
    strcpy(out->id, id);
    docs_playlist_parse(out->playlist, &out->pl);
    s = json_string_value(json_object_get(doc, "playlist"));
    if (!s || strcmp(s, out->playlist) != 0)
        return fail(err, errlen, "playlist", "must be \"%s\" (as in the _id)", out->playlist);
    s = json_string_value(json_object_get(doc, "file"));
    if (!s || strncmp(s, "file:", 5) != 0 || !s[5] || strlen(s) > DOCS_FILE_ID_MAX)
        return fail(err, errlen, "file", "must be a file id (\"file:...\")");
    strcpy(out->file, s);
    s = json_string_value(json_object_get(doc, "key"));
    if (!fracindex_valid(s))
        return fail(err, errlen, "key",
                    "must be a fractional index key (base 62, see fracindex.h)");
    strcpy(out->key, s);
    if ((r = req_string(doc, "added_by", DOCS_NAME_MAX, out->added_by,
                        "the name of the user who added the entry", err, errlen)) < 0 ||
        (r = req_string(doc, "added", DOCS_TIME_MAX, out->added, "when it was added (ISO 8601)",
                        err, errlen)) < 0)
        return r;
    return 0;
}

int docs_aggregate_parse(json_t *doc, struct docs_aggregate *out, char *err, size_t errlen)
{
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = check_id(doc, "aggregate", out->name, err, errlen)) < 0 ||
        (r = opt_name(doc, "channel", out->channel, err, errlen)) < 0)
        return r;
    return 0;
}

int docs_user_parse(json_t *doc, struct docs_user *out, char *err, size_t errlen)
{
    int r;

    memset(out, 0, sizeof(*out));
    out->session_timeout = DOCS_DEFAULT_SESSION_TIMEOUT;
    if ((r = check_id(doc, "user", out->name, err, errlen)) < 0 ||
        (r = opt_name(doc, "aggregate", out->aggregate, err, errlen)) < 0 ||
        (r = opt_bool(doc, "lockout", &out->lockout, err, errlen)) < 0 ||
        (r = opt_number(doc, "session_timeout", 0, -1, &out->session_timeout, err, errlen)) < 0 ||
        (r = opt_bool(doc, "scrobbling", &out->scrobbling, err, errlen)) < 0)
        return r;
    return 0;
}

int docs_device_parse(json_t *doc, struct docs_device *out, char *err, size_t errlen)
{
    int codec = DOCS_CODEC_MP3;
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = check_id(doc, "device", out->name, err, errlen)) < 0 ||
        (r = opt_name(doc, "aggregate", out->aggregate, err, errlen)) < 0 ||
        (r = opt_enum(doc, "codec", codec_names, &codec, err, errlen)) < 0)
        return r;
    out->codec = (enum docs_codec)codec;
    return 0;
}

void docs_delegate_clear(struct docs_delegate *d)
{
    free(d->devices);
    d->devices = NULL;
    d->ndevices = 0;
}

int docs_delegate_parse(json_t *doc, struct docs_delegate *out, char *err, size_t errlen)
{
    json_t *list, *v;
    size_t i, n;
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = check_id(doc, "delegate", out->name, err, errlen)) < 0)
        return r;
    list = json_object_get(doc, "devices");
    n = json_array_size(list);
    if (!json_is_array(list) || n > DOCS_DEVICES_MAX)
        return fail(err, errlen, "devices", "must be a list of at most %d device names",
                    DOCS_DEVICES_MAX);
    json_array_foreach(list, i, v)
    {
        if (!docs_name_ok(json_string_value(v)))
            return fail(err, errlen, "devices", "item %zu must be a device name", i);
    }
    if (n > 0) {
        out->devices = calloc(n, sizeof(*out->devices));
        if (!out->devices) {
            if (err && errlen)
                snprintf(err, errlen, "devices: out of memory");
            return -ENOMEM;
        }
    }
    json_array_foreach(list, i, v) strcpy(out->devices[i], json_string_value(v));
    out->ndevices = n;
    return 0;
}
