/*
 * Ogg Vorbis through libvorbisfile. The length is exact (the last page's
 * granule position, found by bisection, not by reading the file), tags are
 * the first link's Vorbis comments, pictures the base64
 * METADATA_BLOCK_PICTURE comments. A chained file whose later links change
 * the channel count keeps the first link's layout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vorbis/vorbisfile.h>

#include "core/log.h"
#include "media/decoder.h"

struct decoder {
    OggVorbis_File vf;
    int channels;
    long rate;
    int64_t frames;
    int warned;
};

static const char *const vorbis_exts[] = {"ogg", "oga", NULL};

/* The first packet of the first page says what the stream is. */
static int ogg_first_packet(const uint8_t *h, size_t n, const char *magic, size_t mlen)
{
    if (n < 27 || memcmp(h, "OggS", 4))
        return 0;
    size_t data = 27 + (size_t)h[26];
    return n >= data + mlen && !memcmp(h + data, magic, mlen) ? 2 : 1;
}

static int vorbis_probe(const uint8_t *h, size_t n)
{
    int r = ogg_first_packet(h, n, "\x01vorbis", 7);
    return r == 2 ? 2 : 0;
}

static const char *ov_error(int r)
{
    switch (r) {
    case OV_ENOTVORBIS:
        return "not an Ogg Vorbis file";
    case OV_EBADHEADER:
        return "broken Vorbis header";
    case OV_EVERSION:
        return "unsupported Vorbis version";
    case OV_EREAD:
        return "read error";
    default:
        return "unreadable Ogg Vorbis file";
    }
}

static void vorbis_close(struct decoder *d)
{
    if (!d)
        return;
    ov_clear(&d->vf); /* closes the FILE */
    free(d);
}

static int vorbis_open(struct decoder **out, const char *path, const char **errmsg)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    struct decoder *d = calloc(1, sizeof(*d));
    if (!d) {
        fclose(f);
        return -ENOMEM;
    }
    int r = ov_open_callbacks(f, &d->vf, NULL, 0, OV_CALLBACKS_DEFAULT);
    if (r < 0) {
        /* On failure libvorbisfile leaves the FILE to us. */
        fclose(f);
        free(d);
        *errmsg = ov_error(r);
        return r == OV_EREAD ? -EIO : -EINVAL;
    }
    vorbis_info *vi = ov_info(&d->vf, 0);
    if (!vi || vi->channels <= 0 || vi->rate <= 0) {
        vorbis_close(d);
        *errmsg = "Vorbis header with an unusable format";
        return -EINVAL;
    }
    d->channels = vi->channels;
    d->rate = vi->rate;
    ogg_int64_t total = ov_seekable(&d->vf) ? ov_pcm_total(&d->vf, -1) : -1;
    d->frames = total >= 0 ? (int64_t)total : -1;
    if (d->frames == 0) {
        vorbis_close(d);
        *errmsg = "Ogg Vorbis without audio";
        return -EINVAL;
    }
    *out = d;
    return 0;
}

static int vorbis_read_info(struct decoder *d, struct media_info *info, int flags)
{
    snprintf(info->container, sizeof(info->container), "ogg");
    snprintf(info->codec, sizeof(info->codec), "vorbis");
    info->rate = (int)d->rate;
    info->channels = d->channels;
    info->frames = d->frames;
    info->duration = d->frames > 0 ? (double)d->frames / (double)d->rate : 0;
    long br = ov_bitrate(&d->vf, -1);
    info->bitrate = br > 0 ? (int)br : 0;

    vorbis_comment *vc = ov_comment(&d->vf, 0);
    for (int i = 0; vc && i < vc->comments; i++) {
        if (vc->user_comments[i] && vc->comment_lengths[i] > 0) {
            int r = media_info_add_vorbis_comment(info, vc->user_comments[i],
                                                  (size_t)vc->comment_lengths[i], flags);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static long vorbis_read(struct decoder *d, float *pcm, size_t max_frames)
{
    float **in;
    int link;
    int want = max_frames > 65536 ? 65536 : (int)max_frames;

    /* Holes (lost pages) are reported and skipped; a few in a row are a
     * broken file, not a reason to spin. */
    for (int tries = 0; tries < 16; tries++) {
        long n = ov_read_float(&d->vf, &in, want, &link);
        if (n == OV_HOLE)
            continue;
        if (n < 0)
            return -EIO;
        if (n == 0)
            return 0;
        vorbis_info *vi = ov_info(&d->vf, link);
        int ch = vi ? vi->channels : d->channels;
        if (ch != d->channels && !d->warned) {
            LOG(E_INFO, L_MEDIA, "vorbis: link %d has %d channels, the file %d", link, ch,
                d->channels);
            d->warned = 1;
        }
        for (int c = 0; c < d->channels; c++) {
            float *o = pcm + c;
            for (long i = 0; i < n; i++, o += d->channels)
                *o = c < ch ? in[c][i] : 0.0f;
        }
        return n;
    }
    return -EIO;
}

static int vorbis_seek(struct decoder *d, int64_t frame)
{
    return ov_pcm_seek(&d->vf, (ogg_int64_t)frame) == 0 ? 0 : -EIO;
}

const struct decoder_ops decoder_vorbis = {
    .name = "vorbis",
    .extensions = vorbis_exts,
    .probe = vorbis_probe,
    .open = vorbis_open,
    .read_info = vorbis_read_info,
    .read = vorbis_read,
    .seek = vorbis_seek,
    .close = vorbis_close,
};
