/*
 * Scrobbling: what the rooms play goes to the listeners' Last.fm, Libre.fm
 * and ListenBrainz accounts.
 *
 * - Linking (through /api/scrobble, api.h): Last.fm and Libre.fm use the
 *   Audioscrobbler 2.0 desktop flow (auth.getToken, the user approves at the
 *   service's auth page, auth.getSession gives a session key); ListenBrainz
 *   takes the user's token, checked with /1/validate-token. Keys live in
 *   imes_private as scrobble:session:<user>:<service>, which members cannot
 *   read.
 * - Playing: it follows the player's channel events; while a channel plays,
 *   each second counts for every user player_channel_audience() names
 *   (present, free of lockout, scrobbling on, in a room on that channel).
 *   A listener gets "now playing" when they start hearing a track and one
 *   scrobble once they have heard enough of it (scrobble_threshold).
 * - History: each play that counts is also written to imes_private as
 *   history:<user>:<began>:<file> (linked services or not).
 * - Nothing lost: a scrobble the service could not take now is written to
 *   imes_private as scrobble:queue:... and sent again with backoff (2 s
 *   doubling to 10 min), also after a restart; the doc is deleted once the
 *   service took it (or refused it for good, which is logged).
 * Thread: loop.
 */
#ifndef IMES_SCROBBLE_H
#define IMES_SCROBBLE_H

#include <ev.h>
#include <jansson.h>
#include <stddef.h>

struct couch;
struct player;
struct config;
struct scrobble;

struct scrobble_options {
    struct couch *couch;    /* the database */
    const char *db;         /* imes: file docs */
    const char *private_db; /* imes_private: sessions and the queue */
    struct player *player;
    const struct config *cfg; /* the scrobbler: section (strings copied) */
};

/* NULL (logged) on failure. Services without their settings are off. */
struct scrobble *scrobble_new(struct ev_loop *loop, const struct scrobble_options *o);
/* Loads sessions and the queue, then follows the player. 0 or -errno. */
int scrobble_start(struct scrobble *s);
/* Before the player and the couch client. */
void scrobble_free(struct scrobble **s);

/* The web app's requests for one logged-in member (api.c routes them):
 *   GET  -> 200 {"services": [{"service", "label", "enabled", "kind":
 *           "approve"|"token", "linked", "name"}]}
 *   POST {"action": "link", "service", "token"?}: Last.fm/Libre.fm -> 200
 *           {"service", "state": "approve", "url"}; ListenBrainz (token) ->
 *           200 {"service", "linked": true, "name"} or 400 bad_token
 *   POST {"action": "complete", "service"} -> 200 {"linked": true, "name"},
 *           409 not_approved while the user has not approved yet
 *   POST {"action": "unlink", "service"} -> 200 {"linked": false}
 * Errors are {"error", "reason"} with a reason a person can act on. reply
 * gets a new reference to the body; it is called once, from the loop (never
 * inside this call), unless the op is cancelled first. NULL when out of
 * memory (reply never called). */
typedef void (*scrobble_reply_fn)(int status, json_t *body, void *arg);
struct scrobble_op;
struct scrobble_op *scrobble_api(struct scrobble *s, const char *user, const char *method,
                                 const char *body, size_t len, scrobble_reply_fn reply, void *arg);
void scrobble_op_cancel(struct scrobble_op **op);

#endif
