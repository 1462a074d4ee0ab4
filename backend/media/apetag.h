/*
 * APEv2 (and APEv1) tags, as MP3 and Musepack files carry them at their end:
 * text items (UTF-8, several values separated by NUL), ReplayGain items and
 * binary cover items ("Cover Art (Front)" = file name, NUL, image bytes).
 * Shared by the mpg123 and mpc plugins. Everything from the file is
 * bounds-checked: a broken tag is skipped, never trusted.
 * Thread: worker.
 */
#ifndef IMES_APETAG_H
#define IMES_APETAG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "media/decoder.h"

#define APETAG_FOOTER_LEN 32
#define APETAG_MAX_LEN    (32 * 1024 * 1024) /* room for a large cover, no more */

/* Where an APE tag sits in a file. */
struct apetag_loc {
    off_t start; /* first byte of the tag (its header, if it has one) */
    off_t len;   /* bytes from start to the end of the footer */
    off_t items; /* first item */
    size_t items_len;
    uint32_t count;   /* items */
    uint32_t version; /* 1000 or 2000 */
};

/* Looks for a tag whose footer ends at `end` or, if an ID3v1 tag ends
 * there, just before that ID3v1 tag. Returns 1 and fills loc, 0 if there is
 * none or it is malformed, or a negative errno on read errors. */
int apetag_find(int fd, off_t end, struct apetag_loc *loc);

/* Parses items (what follows the header; items_len bytes holding count
 * items) into info: tags by their normalized names, ReplayGain, and with
 * DECODER_WANT_PICTURES the cover items. Stops at the first malformed item.
 * Returns the number of items read or -ENOMEM. */
int apetag_parse_items(const uint8_t *items, size_t items_len, uint32_t count, uint32_t version,
                       struct media_info *info, int flags);

/* apetag_find at the end of the file, then apetag_parse_items. Returns 1 if
 * a tag was read, 0 if none, or a negative errno. */
int apetag_read(int fd, struct media_info *info, int flags);

#endif
