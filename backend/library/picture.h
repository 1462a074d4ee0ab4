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
    int width, height; /* of the original, as displayed (EXIF orientation applied) */
    uint8_t *original; /* a copy of the input (owned; picture_result_clear frees) */
    size_t original_len;
    struct {
        int size;          /* the box it fits (512...) */
        int width, height; /* never larger than the original: no upscaling */
        uint8_t *jpeg;     /* owned; picture_result_clear frees */
        size_t len;
    } thumbs[PICTURE_SIZES];
};

/* Call once before the first picture_process (libvips start-up); idempotent
 * and thread-safe. Returns 0 or -ENOSYS. picture_global_deinit shuts libvips
 * down at exit, once no picture_process runs any more; no init after it. */
int picture_global_init(void);
void picture_global_deinit(void);

/* Decodes and scales. JPEG, PNG, WebP, GIF (first frame) and BMP, told apart
 * by their bytes. Returns 0 and fills out (the caller clears it), or a
 * negative errno with a reason in err and out left empty: -EINVAL for data
 * that is not a usable image ("not an image: starts 00 01 02 03",
 * "image/jpeg: VipsJpeg: Premature end of input file"), -EFBIG over the
 * limits ("image too large: 30000 x 30000"): 32 MiB, 64 megapixels (16 for
 * GIF and BMP, which are decoded whole), -EIO when encoding fails, -ENOSYS
 * before picture_global_init. err may be NULL. */
int picture_process(const uint8_t *data, size_t len, struct picture_result *out, char *err,
                    size_t errlen);
/* Frees what picture_process allocated and zeroes r; NULL or zeroed is fine. */
void picture_result_clear(struct picture_result *r);

/* Only the sha1 of some bytes (to check whether picture:<sha1> exists before
 * doing the scaling work). out holds 41 bytes. */
void picture_sha1_hex(const uint8_t *data, size_t len, char out[41]);

/* The cover file of a folder, if any: cover.*, folder.*, front.* in that
 * order, each with the extension jpg, jpeg, png, webp in that order, in any
 * letter case (Cover.JPG); only non-empty regular files (or links to them).
 * Returns 0 and the full path in out, -ENOENT when there is none,
 * -ENAMETOOLONG, or the errno of opendir. */
int picture_find_folder_cover(const char *dir, char *out, size_t outlen);

/* The picture document, ready for PUT or _bulk_docs, with inline base64
 * attachments: {_id: "picture:<sha1>", type: "picture", mime, width, height,
 * length (of the original), sizes: [512, 256, 128, 64],
 * thumbs: {"512.jpg": {width, height}, ...},
 * _attachments: {"original": {content_type: <mime>, data}, "512.jpg":
 * {content_type: "image/jpeg", data}, "256.jpg", "128.jpg", "64.jpg"}}.
 * Returns a new reference, or NULL when out of memory. */
json_t *picture_doc(const struct picture_result *r);

#endif
