/*
 * HTTP device streams: GET (and HEAD) /device/<name>/<token>/stream.mp3 and
 * /device/<name>/<token>/stream.opus, what a room's player (a browser, VLC,
 * mpv, a Sonos, an ffmpeg) opens and keeps open.
 *
 * After the token check (auth.h; any failure of it is the same 404) the
 * listener attaches to the device in the player (player.h), which decides
 * what the device hears (its channel, or silence), and gets about a second
 * of recent frames for a fast start. MP3 goes out as the bare frames, with
 * ICY metadata (StreamTitle every 16000 bytes) for clients that sent
 * "Icy-MetaData: 1"; Opus goes out as Ogg, one logical stream per listener
 * (oggmux.h, a random serial, OpusHead and OpusTags first).
 *
 * The pump: on the player's wake and on the connection's drain, frames are
 * read and written until none is due or the connection's output queue holds
 * more than about 0.5 s of audio. A listener that falls behind is dropped
 * alone, the others go on: the player no longer has its frames
 * (player_read -1), the queue overflowed (-ENOBUFS), or its client took
 * nothing for 10 s. Each drop is logged once and counted.
 *
 * Personal streams: GET (and HEAD) /listen/stream.mp3 and /listen/stream.opus
 * play the personal device of the logged-in user (the web app's "Listen
 * here"): device web-<user>, a device document that user writes for herself
 * (couchapp/imes/validate_doc_update.js). No token: the CouchDB session
 * cookie (AuthSession) or Basic credentials are checked (auth_session_check,
 * cached), so the app needs no secret it cannot read. Without a valid
 * session: 401 (no WWW-Authenticate, so an <audio> element pops no dialog);
 * not a member: 403; no such device in the player yet: 404 saying so. The
 * device is like any other for the player: its room's rules mute it.
 *
 * Metrics: imes_stream_listeners{codec}, imes_stream_bytes_sent_total{codec},
 * imes_stream_drops_total{reason}, imes_stream_connects_total{codec}.
 *
 * Lifetime: the route points at the listener module, so once it is freed
 * the httpd must take no more requests: free it right before httpd_free
 * (it closes its streams and detaches them from the player) or after it
 * (httpd_free closes every stream; the close callbacks detach). Either way
 * before the player.
 * Thread: loop.
 */
#ifndef IMES_LISTENER_H
#define IMES_LISTENER_H

#include <ev.h>
#include <stddef.h>

struct httpd;
struct player;
struct auth;
struct listener;

/* Registers the "/device/" and "/listen/" routes on h. NULL (logged) on failure. */
struct listener *listener_new(struct ev_loop *loop, struct httpd *h, struct player *pl,
                              struct auth *auth);
void listener_free(struct listener **l);

/* Replaces the queue limit (0.5 s of audio) and the time a client may take
 * nothing before it is dropped (10 s); 0 keeps a value. For tests and
 * tuning. */
void listener_set_limits(struct listener *l, double queue_s, double stall_s);

/* Streams open now (for tests and metrics). */
size_t listener_count(const struct listener *l);

/* ---- URL parsing (pure; for tests) ---- */

enum listener_codec { LISTENER_MP3 = 0, LISTENER_OPUS = 1 };

struct listener_url {
    char name[64 + 1];
    char token[128 + 1];
    enum listener_codec codec;
};

/* Parses a decoded request path "/device/<name>/<token>/stream.<mp3|opus>".
 * 0, or -ENOENT for anything else (a malformed name or token too): the
 * caller answers 404 to it exactly as to a wrong token. */
int listener_parse_path(const char *path, struct listener_url *out);

/* The personal device's name is this prefix and the user's name. */
#define LISTENER_PERSONAL_PREFIX "web-"

/* Parses a decoded request path "/listen/stream.<mp3|opus>": 0 with *codec
 * set, or -ENOENT. */
int listener_parse_listen_path(const char *path, enum listener_codec *codec);

/* Writes user's personal device name ("web-<user>") to out: 0, -EINVAL (not
 * a valid user name), -ENAMETOOLONG (longer than a device name may be, or
 * than outlen; out is "" then). */
int listener_personal_device(const char *user, char *out, size_t outlen);

#endif
