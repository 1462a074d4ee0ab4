/*
 * Who may do what on imesd's own URLs, with short caches in front of CouchDB:
 *
 * - Tokens: a device's or delegate's URL carries a secret token that `imes`
 *   stored as doc token:device:NAME / token:delegate:NAME (field "token") in
 *   the private database. A found token is kept 60 s, an absent one 5 s; the
 *   URL's token is compared with token_equal (constant time). A wrong token,
 *   an unknown name and a malformed name or token all give the same answer
 *   (no oracle for callers to tell them apart).
 * - Sessions: the web app's requests carry the CouchDB session cookie
 *   (AuthSession) or Basic credentials. They are forwarded as they came to
 *   GET /_session without imesd's own credentials; the answer is kept 30 s
 *   (5 s when not logged in) under a keyed hash (HMAC-SHA256) of the
 *   credential, never the credential itself, which is never logged.
 *
 * Every check answers through its callback, exactly once, from a later loop
 * iteration (a cached answer too, so callers have one path), unless it is
 * cancelled first. Concurrent checks of the same key share one CouchDB
 * request. CouchDB errors (unreachable, 5xx) are not cached: the check
 * answers -EAGAIN and the next one asks again.
 *
 *     a = auth_new(loop, couch, &(struct auth_options){.private_db = "imes_private"});
 *     w = auth_token_check(a, "device", name, token, on_token, conn);
 *     ... client left first: auth_cancel(&w);
 *     auth_free(&a);
 *
 * Caches are bounded (max_entries each): expired entries go first, then any
 * settled one. Metrics: imes_auth_lookups_total{kind}, imes_auth_cache_hits_total{kind},
 * imes_auth_lookup_errors_total.
 * Thread: loop.
 */
#ifndef IMES_AUTH_H
#define IMES_AUTH_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct couch;
struct auth;
struct auth_wait;

/* Longest token accepted from a URL (tokens are 32 hex digits; an admin may
 * have stored a longer one by hand). */
#define AUTH_TOKEN_MAX 128
/* Device, delegate and user names as `imes` accepts them (cli_name_ok). */
#define AUTH_NAME_MAX 64

struct auth_options {
    const char *private_db; /* database.private_name (copied) */
    double token_ttl;       /* a found token; 0 = 60 s */
    double negative_ttl;    /* no such token / not logged in; 0 = 5 s */
    double session_ttl;     /* a logged-in session; 0 = 30 s */
    size_t max_entries;     /* per cache; 0 = 4096 */
    /* The clock the caches run on; NULL = ev_now(loop). For tests. */
    double (*clock)(void *arg);
    void *clock_arg;
};

struct auth *auth_new(struct ev_loop *loop, struct couch *couch, const struct auth_options *opt);
/* Frees and sets *a to NULL. Pending checks are dropped without their
 * callbacks (cancel them first if their args need it). Not from inside an
 * auth callback. A lookup still in flight in couch is detached and freed by
 * its own answer (or by couch_free, which drops it). */
void auth_free(struct auth **a);

/* 1 if name is a device/delegate/user name `imes` accepts: 1 to 64 of
 * [A-Za-z0-9._@-], not starting with '.', '_' or '-'. */
bool auth_name_valid(const char *name);

/* result: 1 the token is the stored one; 0 it is not, there is none, or the
 * name or token is malformed; -EAGAIN CouchDB could not be asked. */
typedef void (*auth_token_cb)(int result, void *arg);
/* kind: "device" or "delegate". The strings are copied. Returns the pending
 * check (for auth_cancel), or NULL when out of memory (cb never called). */
struct auth_wait *auth_token_check(struct auth *a, const char *kind, const char *name,
                                   const char *token, auth_token_cb cb, void *arg);

/* Whether a CouchDB roles array (of a session or a _users doc) holds role. */
bool auth_has_role(const json_t *roles, const char *role);

struct auth_user {
    const char *name;    /* the CouchDB user */
    const json_t *roles; /* array of role strings */
    bool member;         /* has imes_user, imes_admin or _admin */
};
/* result: 1 logged in (user valid during the call only); 0 no usable
 * credentials, wrong ones, or an expired session (user NULL); -EAGAIN
 * CouchDB could not be asked (user NULL). */
typedef void (*auth_session_cb)(int result, const struct auth_user *user, void *arg);
/* authorization: the request's Authorization header or NULL (only "Basic"
 * is used); cookie: its Cookie header or NULL (only AuthSession is used).
 * Basic wins when both are there. Returns the pending check, or NULL when
 * out of memory. */
struct auth_wait *auth_session_check(struct auth *a, const char *authorization, const char *cookie,
                                     auth_session_cb cb, void *arg);

/* Cancels a pending check: its callback will not be called. Sets *w to
 * NULL; NULL and *w == NULL are fine. Not for a check whose callback is
 * running (it is no longer pending then). */
void auth_cancel(struct auth_wait **w);

/* Forgets a cached token (e.g. after `imes device add --new-token` was seen). */
void auth_forget_token(struct auth *a, const char *kind, const char *name);

/* Entries cached, for tests and metrics. */
size_t auth_cached_tokens(const struct auth *a);
size_t auth_cached_sessions(const struct auth *a);

#endif
