/*
 * imesd's URLs for people and their scripts (everything but the device
 * streams, which are listener.h's):
 *
 * - GET or POST /delegate/<name>/<token>/pause, /pause/<seconds> (a whole
 *   number, 1 to 3600) and /unpause: a delegate holds its devices paused
 *   (indefinitely, for a while) or lets go. 200 {"delegate", "paused",
 *   "until"} (until: ISO 8601 UTC, or null); a wrong token, an unknown
 *   delegate and a malformed URL are the same 404; bad seconds (with a right
 *   token) 400 with a message saying what is allowed.
 * - GET /api/events: the web app's live connection, Server-Sent Events.
 *   Authenticated with the CouchDB session cookie or Basic (auth.h); without
 *   either 401 with WWW-Authenticate: Basic realm="IMES", logged in but not an
 *   IMES member 403. While it is open the user is present (player.h presence);
 *   the first event is "snapshot" (player_snapshot), then one "state" event
 *   per player event, and a ": keep-alive" comment every 15 s.
 * - GET /api/whoami: {"name", "roles"} of whoever the credentials belong to.
 * - GET and POST /api/scrobble: the member's scrobbler accounts, link and
 *   unlink (scrobble.h scrobble_api; the body is JSON, at most 4 KiB, sent
 *   as text/plain by the web app to spare a CORS preflight).
 *
 * Each SSE client's output is bounded: one that does not read its events is
 * dropped alone. Metrics: imes_api_events_clients, imes_api_events_drops_total,
 * imes_api_delegate_requests_total{result}.
 *
 * Lifetime: like listener.h: right before or after httpd_free (freeing it
 * closes its connections and ends their presence), before the player.
 * Thread: loop.
 */
#ifndef IMES_API_H
#define IMES_API_H

#include <ev.h>
#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"

struct httpd;
struct player;
struct auth;
struct api;

/* Registers /delegate/ (GET, POST), /api/events and /api/whoami on h and
 * subscribes to the player's events. NULL (logged) on failure. */
struct api *api_new(struct ev_loop *loop, struct httpd *h, struct player *pl, struct auth *auth);
void api_free(struct api **a);

/* Where /api/scrobble goes (until set it answers 503). */
struct scrobble;
void api_set_scrobble(struct api *a, struct scrobble *s);

/* Replaces the keep-alive interval (15 s), for tests and tuning. */
void api_set_keepalive(struct api *a, double seconds);

/* Live /api/events connections now. */
size_t api_event_clients(const struct api *a);

/* ---- pure helpers (for tests) ---- */

enum api_delegate_action { API_PAUSE, API_PAUSE_FOR, API_UNPAUSE };

struct api_delegate_url {
    char name[64 + 1];
    char token[128 + 1];
    enum api_delegate_action action;
    char seconds[16]; /* API_PAUSE_FOR: the text as given (cut to fit) */
};

/* Parses a decoded path "/delegate/<name>/<token>/pause[/<seconds>]" or
 * ".../unpause". 0, or -ENOENT for anything else. The seconds are not
 * checked here (that answer is for callers with the right token). */
int api_parse_delegate(const char *path, struct api_delegate_url *out);

/* "1".."3600" (digits only) into *out: 0, or -EINVAL. */
int api_parse_seconds(const char *s, int *out);

/* Appends one SSE event: "event: <event>\n", one "data: " line per line of
 * data (a JSON text when data is JSON, compact, so one line), "\n". event
 * may be NULL (a message without a name). 0 or -E2BIG / -ENOMEM. */
int api_sse_format(struct buf *out, const char *event, const char *data);
int api_sse_json(struct buf *out, const char *event, const json_t *data);

#endif
