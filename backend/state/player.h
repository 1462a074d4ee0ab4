/*
 * The player: imesd's playback state on the loop. It holds the control
 * documents (channels, playlist entries, aggregates, devices, delegates,
 * users) as the changes feed delivers them, applies the rules (rules.h) to
 * decide which channels play and which devices are muted, runs one pipeline
 * per playing channel (media/pipeline.h) on the audio workers, releases its
 * frames into the channel's rings on the monotonic clock, and publishes what
 * it does in status: documents.
 *
 * Listeners (HTTP streams, later RTSP sessions) attach to a *device*, not a
 * channel: the player decides what that device hears right now — its
 * channel's frames, or silence frames while it is muted, its room plays
 * nothing, or it is in no room — and follows room and channel changes, so a
 * listener's stream never breaks. Presence (the web app's live connection)
 * and delegate holds come in through this interface too.
 * Thread: loop.
 */
#ifndef IMES_PLAYER_H
#define IMES_PLAYER_H

#include <ev.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct couch;
struct worker_pool;
struct player;

struct player_options {
    struct couch *couch;
    const char *db;
    struct worker_pool *audio;   /* the audio worker(s): produce calls only */
    struct worker_pool *workers; /* decoding ahead, other blocking work */
};

struct player *player_new(struct ev_loop *loop, const struct player_options *opt);
void player_free(struct player **pl);

/* Loads every control document (channels, entries, aggregates, devices,
 * delegates, users, and the channels' last status for resuming), then
 * starts. done(err, arg) once. */
int player_load(struct player *pl, void (*done)(int err, void *arg), void *arg);

/* A changed document from the feed (changes_apply_fn semantics: 0 applied,
 * 1 not ours, -EINVAL not understood). */
int player_apply(struct player *pl, const char *id, const char *rev, int deleted, json_t *doc);

/* Saves every channel's position and stops (shutdown); done once written. */
void player_stop(struct player *pl, void (*done)(void *arg), void *arg);

/* ---- listeners ---- */

struct player_frame {
    const uint8_t *data; /* valid until the next player_read on this attachment */
    size_t len;
    int samples; /* per channel at 48 kHz */
    int silence; /* a silence frame (muted, paused, or nothing to play) */
};

struct player_attachment;
/* Called when frames can be read (after the loop released some). */
typedef void (*player_wake_fn)(void *arg);

/* Attaches a listener of `codec` ("mp3", "opus") to a device; it gets about
 * burst_s seconds of recent frames at once for a fast start. NULL if the
 * device or codec is unknown. Counts as a connected listener of the device
 * for the rules until detached. */
struct player_attachment *player_attach(struct player *pl, const char *device, const char *codec,
                                        double burst_s, player_wake_fn wake, void *arg);
void player_detach(struct player_attachment **a);

/* Frames are released every 20 ms or so, and by default every release wakes
 * every listener. One that needs them less often (an HTTP stream, whose
 * client buffers seconds) asks to be woken at most every `seconds`: fewer,
 * larger writes, a fraction of the CPU with thousands of listeners. Right
 * after any change of what plays or who is muted, every release wakes it
 * anyway, so the changed frames leave as soon as they are due. 0: every
 * release (the default; what an RTP sender pacing each packet wants). */
void player_set_batch(struct player_attachment *a, double seconds);

/* The next frame for this listener: 1 and fills out, 0 if none is due yet,
 * -1 if it fell so far behind that frames it needs are gone (drop it). */
int player_read(struct player_attachment *a, struct player_frame *out);

/* The codec header to begin a listener's stream (Opus: OpusHead, OpusTags;
 * MP3: none). Returns 0 with data, or -ENOENT past the last. */
int player_header(struct player_attachment *a, int index, const uint8_t **data, size_t *len);

/* "Artist - Title" of what the device hears, or "" (for ICY StreamTitle). */
const char *player_title(struct player_attachment *a);

/* Who hears `channel` for scrobbling right now (DESIGN.md): users present
 * and free of lockout, with scrobbling on, whose aggregate plays it. A new
 * JSON array of names (empty if none or the channel is unknown), or NULL
 * when out of memory. */
json_t *player_channel_audience(struct player *pl, const char *channel);

/* ---- presence and delegates ---- */

/* The web app of `user` opened / closed its live connection. Presence lasts
 * session_timeout (user doc) after the last one closes. */
void player_presence_open(struct player *pl, const char *user);
void player_presence_close(struct player *pl, const char *user);

/* A delegate holds its devices paused for `seconds` (-1: until unpaused) or
 * lets go (0). Returns 0, or -ENOENT for an unknown delegate. */
int player_delegate_hold(struct player *pl, const char *delegate, double seconds);

/* Live events for the web app's /api/events: a JSON object per change of a
 * channel's state (now playing, position, playing/paused/auto-paused) or a
 * device's (connected, muted and why). */
typedef void (*player_event_fn)(const json_t *event, void *arg);
int player_subscribe(struct player *pl, player_event_fn fn, void *arg);
void player_unsubscribe(struct player *pl, player_event_fn fn, void *arg);
/* The current state of everything as one JSON object (a new subscriber's
 * first event). Caller owns it. */
json_t *player_snapshot(struct player *pl);

#endif
