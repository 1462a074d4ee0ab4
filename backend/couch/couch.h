/*
 * CouchDB client: libcurl's multi interface driven by the libev loop, jansson
 * for JSON. Every request is asynchronous; its callback runs on the loop thread
 * exactly once if the call returned 0, never if it returned an error.
 *
 * Works against Apache CouchDB 3 and pouchdb-server (shared/COUCHDB-NOTES.md):
 * always sends Content-Type and Accept: application/json, never interprets
 * sequences, branches on status and the "error" field only.
 *
 * Transport failures (connection refused, reset, timeout) and 5xx answers are
 * retried with exponential backoff (0.25 s doubling to 8 s) unless the request
 * asked for COUCH_NO_RETRY; retries stop when couch_shutdown() is called.
 * Thread: loop.
 */
#ifndef IMES_COUCH_H
#define IMES_COUCH_H

#include <ev.h>
#include <jansson.h>
#include <stddef.h>

struct couch;

struct couch_response {
    long status;     /* HTTP status; 0 when no answer was had */
    int error;       /* 0, or -errno-style for transport failures (-ECONNREFUSED,
                      * -ETIMEDOUT, -ECONNRESET, -ECANCELED at shutdown, -EPROTO) */
    json_t *body;    /* the parsed JSON body (borrowed: valid during the callback;
                      * json_incref it to keep it), or NULL */
    const char *raw; /* the raw body, NUL-terminated, and its length */
    size_t raw_len;
    const char *errmsg; /* "error: reason" from CouchDB or the transport, for logs */
};

typedef void (*couch_cb)(const struct couch_response *resp, void *arg);

enum couch_flags {
    COUCH_NO_RETRY = 1 << 0,   /* fail at the first transport error or 5xx */
    COUCH_RETRY_LONG = 1 << 1, /* keep retrying for minutes (writes that must not be lost) */
    COUCH_NO_AUTH = 1 << 2,    /* do not send the configured credentials */
    COUCH_QUICK = 1 << 3,      /* give up after a few seconds without an answer (a read
                                * with a fallback: a server that accepts connections but
                                * hangs must not hold it for minutes) */
};

/* url is database.url, e.g. "http://admin:secret@127.0.0.1:5984" (credentials
 * optional). Returns NULL if libcurl cannot be set up or the URL is unusable. */
struct couch *couch_new(struct ev_loop *loop, const char *url);
void couch_free(struct couch **c);

struct ev_loop *couch_loop(const struct couch *c);

/* The server URL without credentials (for messages). */
const char *couch_url_safe(const struct couch *c);

/* A request. path starts with '/' and is already escaped (see couch_path).
 * body may be NULL; it is serialized at once, the caller keeps its reference.
 * extra_headers is NULL or a NULL-terminated array of "Name: value" strings. */
int couch_request(struct couch *c, const char *method, const char *path, json_t *body,
                  const char *const *extra_headers, int flags, couch_cb cb, void *arg);

/* The same with a body that is not JSON (an HTML form for a web service such
 * as a scrobbler, whose base URL this client was made with): content_type
 * and body as given (body may be NULL). The answer is parsed as JSON when it
 * is JSON. */
int couch_request_text(struct couch *c, const char *method, const char *path,
                       const char *content_type, const char *body, const char *const *extra_headers,
                       int flags, couch_cb cb, void *arg);

/* Builds "/<db>/<docid>" with each part URL-escaped ("_design/x" and "_local/x"
 * keep their slash). Returns a malloc'd string. docid may be NULL. */
char *couch_path(const char *db, const char *docid);

/* URL-escapes s for a path segment or query value (JSON keys of views:
 * escape the serialized JSON). Returns a malloc'd string. */
char *couch_escape(const char *s);

/* The query, relative to a database, for the documents whose id starts with
 * prefix: "_all_docs?startkey=...&endkey=..." (after the id `after`, when
 * not NULL; at most limit rows, 0 for all; with the documents when
 * include_docs). The way to page through one kind of document without a
 * view (views are slow to build on pouchdb-server). malloc'd, NULL if out
 * of memory. */
char *couch_prefix_query(const char *prefix, const char *after, int limit, int include_docs);

int couch_get(struct couch *c, const char *db, const char *docid, couch_cb cb, void *arg);
/* PUT doc (with its _rev if it has one). */
int couch_put(struct couch *c, const char *db, const char *docid, json_t *doc, couch_cb cb,
              void *arg);
int couch_delete(struct couch *c, const char *db, const char *docid, const char *rev, couch_cb cb,
                 void *arg);
/* POST /db/_bulk_docs {"docs": docs}. Results come back matched by id, not order. */
int couch_bulk(struct couch *c, const char *db, json_t *docs, couch_cb cb, void *arg);
/* GET /db/_design/ddoc/_view/view?query (query without '?', may be NULL). */
int couch_view(struct couch *c, const char *db, const char *ddoc, const char *view,
               const char *query, couch_cb cb, void *arg);

/* Read-modify-write of a backend-owned document. fn gets the current document
 * (or {"_id": docid} when there is none) and changes it in place; it returns 1
 * to write it, 0 if nothing changed (no write), or a negative error. A 409
 * Conflict is resolved by re-reading and re-applying fn. cb gets the final
 * response (the PUT's, or the GET's when nothing changed). */
typedef int (*couch_update_fn)(json_t *doc, void *arg);
int couch_update(struct couch *c, const char *db, const char *docid, couch_update_fn fn,
                 void *fn_arg, couch_cb cb, void *arg);

/* A streaming GET (continuous _changes): on_line is called once with (NULL, 0)
 * when a 2xx answer's head has arrived (the stream is open), then for every complete
 * non-empty line (heartbeat newlines are skipped); on_end once when the stream
 * ends for any reason. Not retried: the caller reconnects. If no byte arrives
 * for idle_timeout_s seconds the stream is aborted with -ETIMEDOUT.
 * Returns a handle for couch_stream_cancel, or NULL. */
struct couch_stream;
typedef void (*couch_line_cb)(const char *line, size_t len, void *arg);
struct couch_stream *couch_stream_get(struct couch *c, const char *path, int idle_timeout_s,
                                      couch_line_cb on_line, couch_cb on_end, void *arg);
/* Ends the stream; on_end is called with -ECANCELED (from the loop, not inside this call). */
void couch_stream_cancel(struct couch_stream *s);

/* Requests in flight (streams excluded). */
int couch_pending(const struct couch *c);

/* Stop retrying: pending retries fail with -ECANCELED; requests in flight finish. */
void couch_shutdown(struct couch *c);

/* For the CLI: runs the loop until one request completes. Returns its status,
 * or its negative error; *body_out gets a new reference to the body (or NULL). */
long couch_sync(struct couch *c, const char *method, const char *path, json_t *body, int flags,
                json_t **body_out);

#endif
