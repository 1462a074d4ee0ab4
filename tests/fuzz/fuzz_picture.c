/*
 * Fuzz target: cover art bytes (an embedded picture is whatever a tag says)
 * through picture_process. Any input must either give thumbnails that fit
 * their boxes, are JPEGs and make a document, or fail with a message; never
 * crash, leak or allocate without bound.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "library/picture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (picture_global_init() != 0)
            abort();
        ready = 1;
    }
    struct picture_result r;
    char err[256] = "";
    int ret = picture_process(data, size, &r, err, sizeof(err));
    if (ret < 0) {
        if (!err[0]) {
            fprintf(stderr, "error %d without a message\n", ret);
            __builtin_trap();
        }
        return 0;
    }
    for (int i = 0; i < PICTURE_SIZES; i++) {
        if (r.thumbs[i].width < 1 || r.thumbs[i].height < 1 ||
            r.thumbs[i].width > picture_sizes[i] || r.thumbs[i].height > picture_sizes[i] ||
            r.thumbs[i].len < 3 || memcmp(r.thumbs[i].jpeg, "\xff\xd8\xff", 3) != 0) {
            fprintf(stderr, "thumbnail %d: %dx%d, %zu bytes\n", picture_sizes[i], r.thumbs[i].width,
                    r.thumbs[i].height, r.thumbs[i].len);
            __builtin_trap();
        }
    }
    json_t *doc = picture_doc(&r);
    if (!doc)
        __builtin_trap();
    json_decref(doc);
    picture_result_clear(&r);
    return 0;
}
