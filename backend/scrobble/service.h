/*
 * What the scrobble services are asked and how their answers are read: the
 * play rule, Audioscrobbler 2.0 signatures and forms (Last.fm, Libre.fm),
 * ListenBrainz payloads, and the sorting of answers into "done", "try again
 * later" and "refused". Pure functions, no I/O: scrobble.c sends what these
 * build. Every parser here takes answers from outside: a malformed one is a
 * reason to try again later, never a crash.
 */
#ifndef IMES_SCROBBLE_SERVICE_H
#define IMES_SCROBBLE_SERVICE_H

#include <jansson.h>
#include <stddef.h>

struct scrobble_track {
    char artist[256];
    char title[256];
    char album[256];
    double duration;     /* seconds; 0 unknown */
    long long timestamp; /* UNIX time the track began playing */
};

/* last.fm's rule: a track counts as played after half its length or 4
 * minutes, whichever comes first, and only if it is longer than 30 s.
 * The seconds of listening needed, or -1 when it never counts. */
double scrobble_threshold(double duration);

/* Fills t from a file: document (tags.artist, tags.title, tags.album,
 * duration; artist falls back to tags.albumartist). -EINVAL when it lacks an
 * artist or a title (nothing a service would take). */
int scrobble_track_from_file(const json_t *doc, struct scrobble_track *t);

/* ---- Audioscrobbler 2.0 ---- */

struct scrobble_param {
    const char *name;
    const char *value;
};

/* api_sig: the parameters sorted by name, each name then its value joined
 * with nothing between, the shared secret appended, MD5 in lowercase hex
 * (32 digits and a NUL in out). "format" and "callback" are not signed. */
int scrobble_as_signature(const struct scrobble_param *p, size_t n, const char *secret,
                          char out[33]);

/* The request as application/x-www-form-urlencoded text: the parameters,
 * api_sig, format=json. malloc'd, NULL when out of memory. */
char *scrobble_as_form(const struct scrobble_param *p, size_t n, const char *secret);

enum scrobble_outcome {
    SCROBBLE_OK,
    SCROBBLE_RETRY,    /* unreachable, 5xx, a malformed answer, "try later" codes */
    SCROBBLE_AUTH,     /* the session, token or key is not (or no longer) valid */
    SCROBBLE_REJECTED, /* the request itself was refused: sending it again will not help */
};

/* An Audioscrobbler answer: transport error (negative) or HTTP status, and
 * the parsed body (NULL if it was not JSON). *code gets the API's error
 * number (0 for none) and msg its message or what was wrong. */
enum scrobble_outcome scrobble_as_outcome(int error, long status, const json_t *body, int *code,
                                          char *msg, size_t msglen);

/* ---- ListenBrainz ---- */

/* {"listen_type": "single" | "playing_now", "payload": [{"listened_at"
 * (single only), "track_metadata": {"artist_name", "track_name",
 * "release_name"?, "additional_info": {"duration_ms"?, "submission_client"}}}]} */
json_t *scrobble_lb_payload(const struct scrobble_track *t, int playing_now);

/* A ListenBrainz answer (status 200 with {"status": "ok"}; 400/401 with
 * {"code", "error"}). */
enum scrobble_outcome scrobble_lb_outcome(int error, long status, const json_t *body, char *msg,
                                          size_t msglen);

#endif
