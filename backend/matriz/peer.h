/*
 * A Matriz peer's control plane: joins imesd's roster and stays joined,
 * follows the roster in CouchDB and keeps one link per other online peer.
 *
 * - Join: GET <imesd>/matriz/join with this peer's credentials, kept open
 *   (SSE). A refusal, a drop or 16 s without a keep-alive (imesd sends one
 *   every 5 s) → join again after a backoff of 0.5 s doubling to 5 s.
 * - Roster: a continuous _changes feed of the peer: documents
 *   (filter imes/peers) with the peer's credentials, from the start each
 *   run (its checkpoint is deleted at start), reconnecting with backoff.
 *   Every other peer that is online with a session and an RTSP URL gets a
 *   link; a changed session (it rejoined) replaces the link; offline or
 *   deleted closes it.
 * - A link owns an audio output pair named after the peer (audio.h); the
 *   media of a link (RTSP session, jitter buffer, decoder) hangs on the
 *   matriz_link_ops given to matriz_peer_new, so that the control plane is
 *   tested without RTP.
 * - Stats: each link's stats (link_ops.stats) are posted to
 *   <imesd>/matriz/stats every 2 s.
 * Thread: loop (the audio backend calls into the link ops' process on its
 * own thread).
 */
#ifndef IMES_MATRIZ_PEER_H
#define IMES_MATRIZ_PEER_H

#include <ev.h>
#include <jansson.h>

#include "matriz/audio.h"
#include "matriz/peer_config.h"

struct matriz_peer;

/* What a link does with its media. All optional. */
struct matriz_link_ops {
    /* A link to name at rtsp_url opened; returns its media state (or NULL). */
    void *(*open)(void *arg, const char *name, const char *rtsp_url, const char *codec);
    /* Thread: audio. Fills out[0], out[1] (frames each) for this link. */
    void (*process)(void *media, const struct audio_block *b, float *l, float *r);
    /* Link stats as JSON (a new reference), or NULL. */
    json_t *(*stats)(void *media);
    /* The link closes: stop and free the media. */
    void (*close)(void *media);
    /* Thread: audio. The captured input, once per period before the links. */
    void (*capture)(void *arg, const struct audio_block *b);
    /* Thread: audio. After the outputs are filled: period number `cycle`,
     * slots (bits) the outputs that play a link. May be NULL. */
    void (*record)(void *arg, const struct audio_block *b, uint32_t slots, uint64_t cycle);
    /* From period `cycle` on, output `slot` plays name (NULL: none). May be NULL. */
    void (*record_slot)(void *arg, int slot, const char *name, uint64_t cycle);
};

/* Sets up (nothing runs until matriz_peer_start). NULL (logged) on failure. */
struct matriz_peer *matriz_peer_new(struct ev_loop *loop, const struct peer_config *cfg,
                                    const struct matriz_link_ops *ops, void *ops_arg);
int matriz_peer_start(struct matriz_peer *p);
/* Leaves the roster and closes every link; done (may be NULL) is called once
 * that is finished (bounded by a short grace time). */
void matriz_peer_stop(struct matriz_peer *p, void (*done)(void *arg), void *arg);
void matriz_peer_free(struct matriz_peer **p);

/* The audio backend in use (after start), for tests and the RTSP source. */
int matriz_peer_rate(const struct matriz_peer *p);
/* Whether the join is open now; links now. */
int matriz_peer_joined(const struct matriz_peer *p);
size_t matriz_peer_links(const struct matriz_peer *p);

#endif
