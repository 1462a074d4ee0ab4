/*
 * Routes each changed document from the feed to the part of imesd that owns
 * its type, chosen by the id prefix ("channel:", "device:", ...). Documents the
 * backend writes itself (file:, picture:, status:, peer:) are not routed.
 *
 * Each type has a shape check first: a document that does not fit (a field of
 * the wrong type) is refused with -EINVAL, logged once by the follower and
 * skipped; it never stops the feed. Later issues hang the real work (playback
 * rules, rooms, devices) on the handlers of this table.
 * Thread: loop.
 */
#ifndef IMES_DISPATCH_H
#define IMES_DISPATCH_H

#include <jansson.h>

/* Returns 0 if applied, 1 for a backend-owned document (nothing to do), -EINVAL if the document is
 * malformed, -ENOENT for an id prefix nobody owns. Fits changes_apply_fn; arg is unused (NULL). */
int dispatch_apply(const char *id, const char *rev, int deleted, json_t *doc, void *arg);

/* For /metrics: the name of type i and how many of its changes were applied;
 * returns NULL past the last type. */
const char *dispatch_type_name(int i, unsigned long *applied);

#endif
