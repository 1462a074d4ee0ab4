/*
 * Change dispatch: see dispatch.h. One table row per user-written document
 * type: its prefix, the shape check, and (later) the handler that acts on it.
 * The log line "applied <id> <rev>" is the record operators and tests read.
 */
#include "dispatch.h"

#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "state/docs.h"

typedef const char *(*shape_fn)(json_t *doc);

/* The shape checks are the parsers of state/docs.h, which name the field
 * that is wrong. Thread: loop (one buffer for the answer is enough). */
static char shape_err[DOCS_ERR_MAX];

static const char *shape_channel(json_t *doc)
{
    struct docs_channel c;
    return docs_channel_parse(doc, &c, shape_err, sizeof(shape_err)) < 0 ? shape_err : NULL;
}

static const char *shape_entry(json_t *doc)
{
    struct docs_entry e;
    return docs_entry_parse(doc, &e, shape_err, sizeof(shape_err)) < 0 ? shape_err : NULL;
}

static const char *shape_aggregate(json_t *doc)
{
    struct docs_aggregate a;
    return docs_aggregate_parse(doc, &a, shape_err, sizeof(shape_err)) < 0 ? shape_err : NULL;
}

static const char *shape_device(json_t *doc)
{
    struct docs_device d;
    return docs_device_parse(doc, &d, shape_err, sizeof(shape_err)) < 0 ? shape_err : NULL;
}

static const char *shape_delegate(json_t *doc)
{
    struct docs_delegate d;
    int r = docs_delegate_parse(doc, &d, shape_err, sizeof(shape_err));
    docs_delegate_clear(&d);
    return r < 0 ? shape_err : NULL;
}

static const char *shape_user(json_t *doc)
{
    struct docs_user u;
    return docs_user_parse(doc, &u, shape_err, sizeof(shape_err)) < 0 ? shape_err : NULL;
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
