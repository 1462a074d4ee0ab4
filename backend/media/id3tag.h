/*
 * ID3v2.2/2.3/2.4 and ID3v1 tags, into media_info: text frames (every
 * encoding to UTF-8, ID3v2.4's NUL-separated values as a list), TXXX by
 * description, COMM without description, APIC/PIC pictures, UFID from
 * MusicBrainz, RVA2 and TXXX ReplayGain, TCON genre numbers.
 *
 * libmpg123 finds the tags and hands us their raw bytes; the parsing is
 * ours because libmpg123 reads ID3v2.3 unsynchronisation frame by frame (a
 * whole-tag scheme in 2.3), and leaves out UFID and RVA2.
 * Everything is bounds-checked: the tag is outside input.
 * Thread: any (no state).
 */
#ifndef IMES_ID3TAG_H
#define IMES_ID3TAG_H

#include <stddef.h>
#include <stdint.h>

#include "media/decoder.h"

/* A whole ID3v2 tag, header included. Returns the number of frames read
 * (0 if it is not a tag we can read) or -ENOMEM. */
int id3tag_parse_v2(const uint8_t *tag, size_t len, struct media_info *info, int flags);

/* The 128 bytes of an ID3v1(.1) tag ("TAG" first). */
int id3tag_parse_v1(const uint8_t *tag, size_t len, struct media_info *info);

#endif
