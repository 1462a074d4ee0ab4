/*
 * The documents users write (shared/DESIGN.md, "Data"), exactly, and their
 * parsers for imesd: JSON in, plain C structs out, or an error that names
 * the field ("crossfade: must be a number from 0 to 10"). The same checks
 * are couchapp/imes/validate_doc_update.js, so CouchDB refuses what imesd
 * would; backend/state/dispatch.c runs these parsers as its shape checks.
 *
 * Names (of channels, aggregates, users, devices, delegates, user
 * playlists) are 1 to 64 characters of [A-Za-z0-9._@-], not starting with
 * '.', '_' or '-' (cli_name_ok): no ':' and no '~', so ids split without
 * ambiguity. An optional field may be left out and then has the default
 * shown; when present it must have the right type. `type`, when present,
 * must be the _id prefix. Unknown fields are kept by CouchDB and ignored.
 *
 * channel:<name>          a stream that rooms play; written by members
 *   type        "channel"
 *   paused      true | false                        default false
 *   replaygain  "album" | "track" | "off"           default "album"
 *   crossfade   seconds, a number from 0 to 10      default 0.5
 *   play        null | {"entry": "entry:c~<name>:<uid>", "request": NONCE}
 *               "play this entry now": imesd acts once per new request
 *               nonce (`imes play` also sets paused false in the same write)
 *   skip        null | NONCE: "go to the next entry now", once per new nonce
 *   NONCE is 1 to 64 characters of [A-Za-z0-9_-], random (the CLI writes
 *   16 hex digits). The playlist of channel <name> is "c~<name>".
 *
 * entry:<playlist>:<uid>  one entry of a playlist; written by members
 *   <playlist>  "c~<channel>" (a channel's queue: any member may write it) or
 *               "u~<user>~<name>" (a user's own playlist: that user or an
 *               admin only)
 *   <uid>       16 lowercase hex digits, random
 *   type        "entry"
 *   playlist    required, the <playlist> of the _id
 *   file        required, the file's id: "file:..." (at most 128 characters)
 *   key         required, the sort key: a fractional index (fracindex.h);
 *               entries are ordered by (key, _id) in byte order
 *   added_by    required, the user who added it (a member adding one writes
 *               their own name; admins and imesd may write any)
 *   added       required, when: ISO 8601 UTC, "2024-05-01T12:00:00Z"
 *   Moving an entry changes `key` only (playlist, file, added_by and added
 *   never change); removing it deletes the document. Nothing else is
 *   rewritten.
 *
 * aggregate:<name>        a room: the devices and users in it; members
 *   type        "aggregate"
 *   channel     null | channel name                 default null
 *
 * user:<name>             a user's settings; written by that user or admins
 *   type            "user"
 *   aggregate       null | aggregate name           default null
 *   lockout         true | false                    default false
 *   session_timeout seconds >= 0                    default 300
 *   scrobbling      true | false                    default false
 *
 * device:<name>           a room's player; written by admins
 *   type        "device"
 *   aggregate   null | aggregate name               default null
 *   codec       "mp3" | "opus"                      default "mp3"
 *
 * delegate:<name>         may pause (mute) devices; written by admins
 *   type        "delegate"
 *   devices     required, a list of device names (at most 256)
 *
 * Thread: any (no state).
 */
#ifndef IMES_DOCS_H
#define IMES_DOCS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "state/fracindex.h"

#define DOCS_NAME_MAX      64
#define DOCS_NONCE_MAX     64
#define DOCS_UID_LEN       16
#define DOCS_PLAYLIST_MAX  (2 + DOCS_NAME_MAX + 1 + DOCS_NAME_MAX) /* "u~" user "~" name */
#define DOCS_ENTRY_ID_MAX  (6 + DOCS_PLAYLIST_MAX + 1 + DOCS_UID_LEN)
#define DOCS_FILE_ID_MAX   128
#define DOCS_TIME_MAX      40
#define DOCS_DEVICES_MAX   256
#define DOCS_ERR_MAX       256
#define DOCS_CROSSFADE_MAX 10.0

#define DOCS_DEFAULT_CROSSFADE       0.5
#define DOCS_DEFAULT_SESSION_TIMEOUT 300.0

/* Whether s is a valid name (see above). */
bool docs_name_ok(const char *s);

/* Whether s is a valid nonce: 1 to 64 of [A-Za-z0-9_-]. */
bool docs_nonce_ok(const char *s);

enum docs_playlist_kind { DOCS_PLAYLIST_CHANNEL, DOCS_PLAYLIST_USER };

struct docs_playlist {
    enum docs_playlist_kind kind;
    char owner[DOCS_NAME_MAX + 1]; /* the channel, or the user */
    char name[DOCS_NAME_MAX + 1];  /* the user's playlist name; "" for a channel */
};

/* "c~jazz" or "u~alice~roadtrip" (names as above). 0 or -EINVAL. */
int docs_playlist_parse(const char *playlist, struct docs_playlist *out);

/* "entry:<playlist>:<uid>": 0 or -EINVAL; playlist (DOCS_PLAYLIST_MAX + 1
 * bytes) and uid (DOCS_UID_LEN + 1) may be NULL. */
int docs_entry_id_parse(const char *id, char *playlist, char *uid);

/* "c~<channel>" into out (DOCS_PLAYLIST_MAX + 1 bytes). 0 or -EINVAL. */
int docs_channel_playlist(const char *channel, char *out, size_t size);

enum docs_replaygain { DOCS_RG_ALBUM, DOCS_RG_TRACK, DOCS_RG_OFF };
enum docs_codec { DOCS_CODEC_MP3, DOCS_CODEC_OPUS };

struct docs_channel {
    char name[DOCS_NAME_MAX + 1];
    bool paused;
    enum docs_replaygain replaygain;
    double crossfade;
    char play_entry[DOCS_ENTRY_ID_MAX + 1]; /* "" when no play request */
    char play_request[DOCS_NONCE_MAX + 1];  /* "" when none */
    char skip[DOCS_NONCE_MAX + 1];          /* "" when none */
};

struct docs_entry {
    char id[DOCS_ENTRY_ID_MAX + 1];
    char playlist[DOCS_PLAYLIST_MAX + 1];
    struct docs_playlist pl;
    char uid[DOCS_UID_LEN + 1];
    char file[DOCS_FILE_ID_MAX + 1];
    char key[FRACINDEX_MAX + 1];
    char added_by[DOCS_NAME_MAX + 1];
    char added[DOCS_TIME_MAX + 1];
};

struct docs_aggregate {
    char name[DOCS_NAME_MAX + 1];
    char channel[DOCS_NAME_MAX + 1]; /* "" for none */
};

struct docs_user {
    char name[DOCS_NAME_MAX + 1];
    char aggregate[DOCS_NAME_MAX + 1]; /* "" for none */
    bool lockout;
    double session_timeout;
    bool scrobbling;
};

struct docs_device {
    char name[DOCS_NAME_MAX + 1];
    char aggregate[DOCS_NAME_MAX + 1]; /* "" for none */
    enum docs_codec codec;
};

struct docs_delegate {
    char name[DOCS_NAME_MAX + 1];
    char (*devices)[DOCS_NAME_MAX + 1]; /* malloc'd; docs_delegate_clear frees */
    size_t ndevices;
};

/* Each parses doc (with its "_id") into out. Returns 0, or -EINVAL with
 * "FIELD: what is wrong" in err (errlen bytes, DOCS_ERR_MAX is enough);
 * -ENOMEM for a delegate's list. out is fully set either way (defaults on
 * error), so it never holds garbage. */
int docs_channel_parse(json_t *doc, struct docs_channel *out, char *err, size_t errlen);
int docs_entry_parse(json_t *doc, struct docs_entry *out, char *err, size_t errlen);
int docs_aggregate_parse(json_t *doc, struct docs_aggregate *out, char *err, size_t errlen);
int docs_user_parse(json_t *doc, struct docs_user *out, char *err, size_t errlen);
int docs_device_parse(json_t *doc, struct docs_device *out, char *err, size_t errlen);
int docs_delegate_parse(json_t *doc, struct docs_delegate *out, char *err, size_t errlen);
void docs_delegate_clear(struct docs_delegate *d);

const char *docs_replaygain_str(enum docs_replaygain rg);
const char *docs_codec_str(enum docs_codec c);

#endif
