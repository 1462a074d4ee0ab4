/*
 * Cover art: an embedded picture or a cover file beside the music, decoded
 * and scaled with libvips into JPEG thumbnails that fit 512, 256, 128 and
 * 64 px, and stored once per distinct image as `picture:<sha1>` (sha1 of the
 * original bytes) with the original and the thumbnails as attachments.
 * Thread: worker (picture_process, picture_find_folder_cover); any (the rest).
 */
#ifndef IMES_PICTURE_H
#define IMES_PICTURE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define PICTURE_SIZES 4
extern const int picture_sizes[PICTURE_SIZES]; /* 512, 256, 128, 64 */

struct picture_result {
    char sha1[41];     /* of the original bytes, lower-case hex */
    char mime[32];     /* of the original, as detected from its bytes */
    int width, height; /* of the original */
    uint8_t *original; /* a copy of the input */
    size_t original_len;
    struct {
        int size; /* the box it fits (512...) */
        int width, height;
        uint8_t *jpeg;
        size_t len;
    } thumbs[PICTURE_SIZES];
};

/* Call once before the first picture_process (libvips start-up); idempotent. */
int picture_global_init(void);

/* Decodes and scales. Returns 0, or a negative errno with a reason in err
 * ("not an image", "image too large: 30000 x 30000") for data that is not a
 * usable image. Refuses images over 64 megapixels or 32 MiB. */
int picture_process(const uint8_t *data, size_t len, struct picture_result *out, char *err,
                    size_t errlen);
void picture_result_clear(struct picture_result *r);

/* Only the sha1 of some bytes (to check whether picture:<sha1> exists before
 * doing the scaling work). out holds 41 bytes. */
void picture_sha1_hex(const uint8_t *data, size_t len, char out[41]);

/* The cover file of a folder, if any: cover.jpg, folder.jpg, front.* (jpg,
 * jpeg, png, webp; any letter case), in that order of preference. Returns 0
 * and the full path in out, or -ENOENT. */
int picture_find_folder_cover(const char *dir, char *out, size_t outlen);

/* The picture document: {_id: "picture:<sha1>", type: "picture", mime, width,
 * height, sizes: [...], _attachments: {"original": ..., "512.jpg": ..., ...}}
 * with inline base64 attachments, ready for PUT or _bulk_docs. */
json_t *picture_doc(const struct picture_result *r);

#endif
