/*
 * Shared body of the decoder fuzz targets (one per plugin, so that each
 * library's corpus and coverage stay its own): the input goes into a memfd
 * that the plugin opens by its /proc/self/fd path, as it would a file; then
 * open, read_info with pictures, a little decoding, a seek, a little more.
 * Whatever the bytes, the plugin must fail cleanly or give a sane format.
 */
#ifndef IMES_FUZZ_DECODER_H
#define IMES_FUZZ_DECODER_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "media/decoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Enough decoding to run every decoder's main loop and its end-of-stream
 * handling on small inputs, not so much that a long valid stream makes a
 * slow input. */
#define FUZZ_READS  32
#define FUZZ_FRAMES 4096

static const char *fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-decoder", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
        abort();
    return path;
}

static void fuzz_decoder(const struct decoder_ops *ops, const uint8_t *data, size_t size)
{
    static float pcm[FUZZ_FRAMES * 64];
    const char *path = fuzz_file(data, size);
    struct decoder *d = NULL;
    const char *msg = NULL;

    /* The probe must never read past what it is given. */
    if (ops->probe) {
        uint8_t *copy = malloc(size ? size : 1);
        memcpy(copy, data, size);
        ops->probe(copy, size);
        free(copy);
    }
    /* Choosing the plugin reads past an ID3v2 tag: also outside input. */
    decoder_for_file(path, data, size);
    int r = ops->open(&d, path, &msg);
    if (r < 0) {
        if (d)
            abort(); /* failure leaves nothing behind */
        return;
    }
    struct media_info info;
    media_info_init(&info);
    r = ops->read_info(d, &info, DECODER_WANT_PICTURES);
    if (r == 0) {
        /* What the scanner stores must be JSON-able text. */
        char *s = json_dumps(info.tags, 0);
        if (!s)
            abort();
        free(s);
        for (size_t i = 0; i < info.npictures; i++)
            if (!info.pictures[i].data || !info.pictures[i].len)
                abort();
    }
    if (r == 0 && info.channels > 0 && info.channels <= 64 && info.rate > 0) {
        long n = 0;
        for (int i = 0; i < FUZZ_READS; i++) {
            n = ops->read(d, pcm, FUZZ_FRAMES);
            if (n < 0 || n == 0)
                break;
            if (n > FUZZ_FRAMES)
                abort();
        }
        if (ops->seek && info.frames > 0 && ops->seek(d, info.frames / 2) == 0) {
            n = ops->read(d, pcm, FUZZ_FRAMES);
            if (n > FUZZ_FRAMES)
                abort();
        }
    }
    media_info_clear(&info);
    ops->close(d);
}

#endif
