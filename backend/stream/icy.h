/*
 * ICY (SHOUTcast/Icecast) metadata in an MP3 stream, for HTTP listeners that
 * sent "Icy-MetaData: 1": after every metaint bytes of audio, one length
 * byte n and n * 16 bytes of "StreamTitle='...';" padded with NULs; n = 0
 * (a single zero byte) when the title has not changed since the last block
 * this listener got.
 *
 * The block is built once per title change (icy_meta_set, by the channel)
 * and copied into each listener's queue; each listener keeps only its
 * position and the generation it last got (struct icy).
 *
 *   icy_meta_set(&meta, "Artist - Title");               // channel, on track change
 *   icy_init(&y, 16000);                                  // listener, at connect
 *   icy_write(&y, &meta, frame, frame_len, &out);         // for every MP3 frame
 *
 * Thread: loop.
 */
#ifndef IMES_ICY_H
#define IMES_ICY_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* "icy-metaint" we announce: Icecast's and SHOUTcast's usual value. */
#define ICY_METAINT 16000
/* The length byte counts 16-byte blocks: at most 255 of them. */
#define ICY_META_MAX (255 * 16)

struct icy_meta {
    uint64_t gen; /* bumped on every change; 0: no title yet */
    size_t len;   /* bytes of block, length byte included */
    uint8_t block[1 + ICY_META_MAX];
};

struct icy {
    size_t metaint;
    size_t left;       /* audio bytes before the next metadata block */
    uint64_t gen_sent; /* the meta generation this listener has */
};

/* No title: every block is the single zero byte. */
void icy_meta_init(struct icy_meta *m);
/* Sets the title (UTF-8; NULL is ""). An apostrophe becomes U+2019 (’) and
 * control characters become spaces, so no title can end the field early
 * for any client (ffmpeg and VLC end it at "';", others at the first
 * "'"; there is no escape every client understands). Titles longer than
 * fits in 255 * 16 bytes are cut at a character boundary. Returns 1 if the
 * block changed, 0 if the title was the same. */
int icy_meta_set(struct icy_meta *m, const char *title);

void icy_init(struct icy *y, size_t metaint);
/* Appends len bytes of the audio stream to out with the metadata blocks
 * due within them. 0, or -E2BIG / -ENOMEM with out and y unchanged. */
int icy_write(struct icy *y, const struct icy_meta *m, const uint8_t *data, size_t len,
              struct buf *out);

#endif
