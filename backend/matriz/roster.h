/*
 * The Matriz roster, imesd's side: performer peers join here and imesd keeps
 * their peer:<name> documents (shared/DESIGN.md, "Matriz").
 *
 *     GET /matriz/join?rtsp_port=8554[&host=H][&codec=opus|L16|L24][&path=/stream]
 *     Authorization: Basic <peer name>:<key>          (a CouchDB user with role matriz_peer)
 *
 * - Wrong or missing credentials: 401; a user without the role matriz_peer: 403;
 *   a bad query: 400; a peer of that name already joined (or joining): 409 —
 *   the second is refused, the first keeps its place; CouchDB away: 503.
 * - Otherwise imesd sends "OPTIONS rtsp://<address>:<rtsp_port><path>" to the
 *   peer's RTSP port (address: the connection's IP; the URL written uses
 *   host= when given, for peers behind NAT), writes peer:<name> online with
 *   address, rtsp_url, reachable (whether OPTIONS got "RTSP/1.0 200" within
 *   2 s), codec, a fresh session id and since/updated, and answers with a
 *   Server-Sent Events stream: one "joined" event carrying that document, then
 *   a ": keep-alive" comment every 5 s (the peer's way to see imesd is gone).
 * - The moment that connection closes (peer killed, network gone as far as TCP
 *   can tell, imesd stopping) the document is written offline.
 * - Writes to one peer's document are serialized: at most one in flight, and
 *   the last wanted state is what ends up written (a quick leave and rejoin
 *   cannot land out of order).
 * - At start every peer document still online (imesd was killed) is written
 *   offline: nobody is joined to a fresh imesd.
 *
 *     POST /matriz/stats (same credentials, a JSON object of link stats)
 *
 * merges {"stats": <body>} into the caller's own peer document (peers never
 * write peer documents themselves: validate_doc_update lets only imesd). At
 * most one write per peer per 2 s; a body beyond 64 KiB is 413. 204 on success
 * (written or coalesced), 409 if that peer is not joined.
 *
 * Lifetime: roster_new after the httpd and auth; httpd_free closes the join
 * connections (offline writes go out then); roster_free once the loop ended.
 * Metrics: imes_matriz_peers_online, imes_matriz_joins_total{result}.
 * Thread: loop.
 */
#ifndef IMES_MATRIZ_ROSTER_H
#define IMES_MATRIZ_ROSTER_H

#include <ev.h>
#include <stddef.h>

struct httpd;
struct couch;
struct auth;
struct roster;

struct roster_options {
    const char *db;         /* database.name (copied) */
    double keepalive_s;     /* 0 = 5 */
    double probe_timeout_s; /* 0 = 2 */
};

/* Registers /matriz/join and /matriz/stats on h and starts marking stale
 * online documents offline. NULL (logged) on failure. */
struct roster *roster_new(struct ev_loop *loop, struct httpd *h, struct couch *couch,
                          struct auth *auth, const struct roster_options *opt);
void roster_free(struct roster **r);

/* Peers joined now. */
size_t roster_online(const struct roster *r);

/* ---- pure helpers (for tests) ---- */

#define ROSTER_HOST_MAX  255
#define ROSTER_CODEC_MAX 15
#define ROSTER_PATH_MAX  127

struct roster_join {
    int rtsp_port;                    /* 1..65535, default 8554 */
    char host[ROSTER_HOST_MAX + 1];   /* "" = the connection's address */
    char codec[ROSTER_CODEC_MAX + 1]; /* "opus" (default), "L16" or "L24" */
    char path[ROSTER_PATH_MAX + 1];   /* "/stream" (default) */
};

/* Parses the query of /matriz/join (NULL = all defaults). 0, or -EINVAL with
 * *why set to a static text saying what is wrong. */
int roster_parse_join(const char *query, struct roster_join *out, const char **why);

/* The address part of httpd_conn_peer(): "192.0.2.1:5000" → "192.0.2.1",
 * "[2001:db8::1]:5000" → "2001:db8::1". 0 or -EINVAL. */
int roster_peer_address(const char *peer, char *out, size_t outlen);

/* "rtsp://host:port/path", with [] around an IPv6 host. 0 or -ENOSPC. */
int roster_rtsp_url(const char *host, int port, const char *path, char *out, size_t outlen);

#endif
