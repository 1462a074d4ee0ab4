/*
 * Changes follower: a continuous _changes feed (heartbeat, include_docs) that
 * resumes from a checkpoint kept in a _local document, so that after a restart
 * of imesd or of CouchDB every change made meanwhile is handed over once.
 *
 * Sequences are opaque: the raw JSON value is kept and sent back URL-encoded.
 * The checkpoint is written at most once a second while changes flow, and on
 * stop. A revision already handed over in this run (a feed resumed from an
 * older checkpoint after a reconnect) is not handed over again.
 * A dropped or silent feed (no heartbeat for three periods) reconnects with
 * backoff (0.5 s doubling to 5 s).
 * Thread: loop.
 */
#ifndef IMES_CHANGES_H
#define IMES_CHANGES_H

#include <jansson.h>

#include "couch/couch.h"

struct changes;

enum changes_state {
    CHANGES_STOPPED = 0,
    CHANGES_CONNECTING, /* reading the checkpoint or opening the feed */
    CHANGES_LIVE,       /* the feed is open */
    CHANGES_DOWN,       /* failed; waiting to reconnect */
};

/* Called for each change: id, rev, deleted and doc (with include_docs) from
 * the feed row. Returns 0 if applied, 1 if there was nothing to do (not
 * counted), or a negative error if the document could not be understood (it
 * is then logged once and skipped). */
typedef int (*changes_apply_fn)(const char *id, const char *rev, int deleted, json_t *doc,
                                void *arg);

struct changes_options {
    const char *db;
    const char *checkpoint_id; /* e.g. "_local/imesd-changes" */
    const char *filter;        /* "ddoc/name" or NULL */
    int heartbeat_ms;          /* 0: 10000 */
};

struct changes *changes_new(struct couch *c, const struct changes_options *opt,
                            changes_apply_fn apply, void *arg);
int changes_start(struct changes *ch);
/* Closes the feed and writes the checkpoint; done (may be NULL) runs when the
 * checkpoint is written (or failed). Returns 0, or -EALREADY if stopped. */
int changes_stop(struct changes *ch, void (*done)(void *arg), void *arg);
void changes_free(struct changes **ch);

enum changes_state changes_state(const struct changes *ch);
const char *changes_state_name(enum changes_state st);
/* The last sequence handed over (borrowed JSON value, or NULL). */
json_t *changes_last_seq(const struct changes *ch);
unsigned long changes_applied(const struct changes *ch);
unsigned long changes_skipped(const struct changes *ch);
unsigned long changes_reconnects(const struct changes *ch);

#endif
