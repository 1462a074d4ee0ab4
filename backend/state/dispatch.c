/*
 * Change dispatch: see dispatch.h. One table row per user-written document
 * type: its prefix, the shape check, and (later) the handler that acts on it.
 * The log line "applied <id> <rev>" is the record operators and tests read.
 */
#include "dispatch.h"

#include <errno.h>
#include <string.h>

#include "core/log.h"

typedef const char *(*shape_fn)(json_t *doc);

/* Optional field of a given kind: absent or null is fine. */
static int opt_is(json_t *doc, const char *key, int (*is)(const json_t *))
{
    json_t *v = json_object_get(doc, key);
    return !v || json_is_null(v) || is(v);
}

static int is_bool(const json_t *v)
{
    return json_is_boolean(v);
}
static int is_string(const json_t *v)
{
    return json_is_string(v);
}
static int is_number(const json_t *v)
{
    return json_is_number(v);
}
static int is_array(const json_t *v)
{
    return json_is_array(v);
}

static const char *shape_channel(json_t *doc)
{
    if (!opt_is(doc, "paused", is_bool))
        return "paused must be true or false";
    json_t *rg = json_object_get(doc, "replaygain");
    if (rg && !json_is_null(rg)) {
        const char *m = json_string_value(rg);
        if (!m || (strcmp(m, "album") && strcmp(m, "track") && strcmp(m, "off")))
            return "replaygain must be album, track or off";
    }
    if (!opt_is(doc, "crossfade", is_number))
        return "crossfade must be a number of seconds";
    return NULL;
}

static const char *shape_entry(json_t *doc)
{
    if (!json_is_string(json_object_get(doc, "file")))
        return "file must be a file id";
    if (!json_is_string(json_object_get(doc, "key")))
        return "key must be a string";
    return NULL;
}

static const char *shape_aggregate(json_t *doc)
{
    return opt_is(doc, "channel", is_string) ? NULL : "channel must be a channel name";
}

static const char *shape_device(json_t *doc)
{
    if (!opt_is(doc, "aggregate", is_string))
        return "aggregate must be an aggregate name";
    if (!opt_is(doc, "codec", is_string))
        return "codec must be mp3 or opus";
    return NULL;
}

static const char *shape_delegate(json_t *doc)
{
    return opt_is(doc, "devices", is_array) ? NULL : "devices must be a list of device names";
}

static const char *shape_user(json_t *doc)
{
    if (!opt_is(doc, "lockout", is_bool))
        return "lockout must be true or false";
    if (!opt_is(doc, "session_timeout", is_number))
        return "session_timeout must be a number of seconds";
    if (!opt_is(doc, "aggregate", is_string))
        return "aggregate must be an aggregate name";
    return NULL;
}

static struct {
    const char *prefix;
    shape_fn shape;
    unsigned long applied;
} types[] = {
    {"channel:", shape_channel, 0},     {"entry:", shape_entry, 0},
    {"aggregate:", shape_aggregate, 0}, {"device:", shape_device, 0},
    {"delegate:", shape_delegate, 0},   {"user:", shape_user, 0},
};

#define N_TYPES (sizeof(types) / sizeof(types[0]))

/* Written by imesd itself: nothing to act on. */
static const char *const backend_owned[] = {"file:", "picture:", "status:", "peer:", NULL};

int dispatch_apply(const char *id, const char *rev, int deleted, json_t *doc, void *arg)
{
    for (int i = 0; backend_owned[i]; i++)
        if (strncmp(id, backend_owned[i], strlen(backend_owned[i])) == 0)
            return 1;
    for (size_t i = 0; i < N_TYPES; i++) {
        if (strncmp(id, types[i].prefix, strlen(types[i].prefix)) != 0)
            continue;
        if (!deleted) {
            const char *why = doc ? types[i].shape(doc) : "no document in the feed";
            if (why) {
                LOG(E_WARN, L_STATE, "%s %s: %s", id, rev, why);
                return -EINVAL;
            }
        }
        types[i].applied++;
        LOG(E_INFO, L_STATE, "applied %s %s%s", id, rev, deleted ? " (deleted)" : "");
        return 0;
    }
    return -ENOENT;
}

const char *dispatch_type_name(int i, unsigned long *applied)
{
    if (i < 0 || (size_t)i >= N_TYPES)
        return NULL;
    if (applied)
        *applied = types[i].applied;
    return types[i].prefix;
}
