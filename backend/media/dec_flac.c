/*
 * FLAC (native and in Ogg) through libFLAC's stream decoder.
 *
 * Opening reads only the metadata blocks: STREAMINFO (rate, channels, bits,
 * the exact sample count), VORBIS_COMMENT (tags, ReplayGain, base64
 * METADATA_BLOCK_PICTURE for files that went through Ogg taggers) and
 * PICTURE. Audio frames are decoded on read into one frame's worth of
 * interleaved float and handed out from there.
 *
 * A STREAMINFO without a sample count (streamed encodes) is the one case we
 * decode the whole file to learn the length: there is no other exact way.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <FLAC/stream_decoder.h>

#include "core/log.h"
#include "media/decoder.h"

struct decoder {
    FLAC__StreamDecoder *sd;
    int ogg;
    unsigned rate, channels, bps;
    uint64_t total; /* samples per channel, 0 if unknown */
    unsigned min_framesize, max_blocksize;
    int have_streaminfo;
    int metadata_done; /* ignore blocks seen again after a reset */
    int counting;      /* write callback only counts (unknown length) */
    uint64_t counted;
    int fatal; /* the error callback saw an unparseable stream */
    float *buf;
    size_t buf_cap, buf_len, buf_pos; /* in frames */
    struct media_info meta;           /* tags and pictures, handed over */
    off_t size;
    uint64_t audio_start;
};

static const char *const flac_exts[] = {"flac", "fla", "oga", NULL};

static int flac_probe(const uint8_t *h, size_t n)
{
    if (n >= 4 && !memcmp(h, "fLaC", 4))
        return 2;
    /* Ogg FLAC: the first packet is 0x7f "FLAC". */
    if (n >= 27 && !memcmp(h, "OggS", 4)) {
        size_t data = 27 + (size_t)h[26];
        if (n >= data + 5 && !memcmp(h + data,
                                     "\x7f"
                                     "FLAC",
                                     5))
            return 2;
    }
    return 0;
}

static FLAC__StreamDecoderWriteStatus write_cb(const FLAC__StreamDecoder *sd,
                                               const FLAC__Frame *frame,
                                               const FLAC__int32 *const buffer[], void *ctx)
{
    struct decoder *d = ctx;
    unsigned n = frame->header.blocksize, ch = frame->header.channels;
    unsigned bps = frame->header.bits_per_sample ? frame->header.bits_per_sample : d->bps;

    if (d->counting) {
        d->counted += n;
        return FLAC__STREAM_DECODER_WRITE_STATUS_CONTINUE;
    }
    if (n > d->buf_cap) {
        float *b = realloc(d->buf, (size_t)n * d->channels * sizeof(float));
        if (!b)
            return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
        d->buf = b;
        d->buf_cap = n;
    }
    if (bps < 4 || bps > 32)
        return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
    float scale = (float)ldexp(1.0, -(int)(bps - 1));
    /* A frame whose channel count differs from STREAMINFO (a broken
     * file) still fits our layout: missing channels are silent. */
    for (unsigned c = 0; c < d->channels; c++) {
        float *o = d->buf + c;
        if (c < ch) {
            const FLAC__int32 *in = buffer[c];
            for (unsigned i = 0; i < n; i++, o += d->channels)
                *o = (float)in[i] * scale;
        } else {
            for (unsigned i = 0; i < n; i++, o += d->channels)
                *o = 0;
        }
    }
    d->buf_len = n;
    d->buf_pos = 0;
    return FLAC__STREAM_DECODER_WRITE_STATUS_CONTINUE;
}

static void metadata_cb(const FLAC__StreamDecoder *sd, const FLAC__StreamMetadata *m, void *ctx)
{
    struct decoder *d = ctx;
    if (d->metadata_done)
        return;
    switch (m->type) {
    case FLAC__METADATA_TYPE_STREAMINFO:
        d->rate = m->data.stream_info.sample_rate;
        d->channels = m->data.stream_info.channels;
        d->bps = m->data.stream_info.bits_per_sample;
        d->total = m->data.stream_info.total_samples;
        d->min_framesize = m->data.stream_info.min_framesize;
        d->max_blocksize = m->data.stream_info.max_blocksize;
        d->have_streaminfo = 1;
        break;
    case FLAC__METADATA_TYPE_VORBIS_COMMENT:
        for (FLAC__uint32 i = 0; i < m->data.vorbis_comment.num_comments; i++) {
            const FLAC__StreamMetadata_VorbisComment_Entry *e = &m->data.vorbis_comment.comments[i];
            if (e->entry)
                media_info_add_vorbis_comment(&d->meta, (const char *)e->entry, e->length,
                                              DECODER_WANT_PICTURES);
        }
        break;
    case FLAC__METADATA_TYPE_PICTURE: {
        const FLAC__StreamMetadata_Picture *p = &m->data.picture;
        if (p->data && p->data_length)
            media_info_copy_picture(&d->meta, p->mime_type, (int)p->type,
                                    (const char *)p->description, p->data, p->data_length);
        break;
    }
    default:
        break;
    }
}

static void error_cb(const FLAC__StreamDecoder *sd, FLAC__StreamDecoderErrorStatus status,
                     void *ctx)
{
    struct decoder *d = ctx;
    /* Lost sync and CRC errors are recoverable: libFLAC skips to the next
     * frame. An unparseable stream is not. */
    if (status == FLAC__STREAM_DECODER_ERROR_STATUS_UNPARSEABLE_STREAM)
        d->fatal = 1;
}

static void flac_close(struct decoder *d)
{
    if (!d)
        return;
    if (d->sd) {
        FLAC__stream_decoder_finish(d->sd);
        FLAC__stream_decoder_delete(d->sd);
    }
    free(d->buf);
    media_info_clear(&d->meta);
    free(d);
}

static int flac_fail(struct decoder *d, const char **errmsg, const char *msg, int err)
{
    *errmsg = msg;
    flac_close(d);
    return err;
}

static int flac_open(struct decoder **out, const char *path, const char **errmsg)
{
    struct stat st;
    uint8_t head[4] = {0};

    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    if (fstat(fileno(f), &st) < 0 || fread(head, 1, 4, f) < 4) {
        fclose(f);
        *errmsg = "not a FLAC file: too short";
        return -EINVAL;
    }
    /* libFLAC looks for "fLaC" anywhere, reading a whole misnamed disk
     * image if it must: we want it first, or right after an ID3v2 tag. */
    uint8_t magic[10] = {0};
    long after = 0;
    memcpy(magic, head, 4);
    if (!memcmp(head, "ID3", 3) && fread(magic + 4, 1, 6, f) == 6 &&
        !((magic[6] | magic[7] | magic[8] | magic[9]) & 0x80)) {
        after = ((long)magic[6] << 21 | (long)magic[7] << 14 | (long)magic[8] << 7 | magic[9]) +
                10 + ((magic[5] & 0x10) ? 10 : 0);
        if (fseek(f, after, SEEK_SET) != 0 || fread(magic, 1, 4, f) != 4)
            memset(magic, 0, 4);
    }
    if (memcmp(magic, "fLaC", 4) && memcmp(head, "OggS", 4)) {
        fclose(f);
        *errmsg = "not a FLAC file";
        return -EINVAL;
    }
    rewind(f);
    struct decoder *d = calloc(1, sizeof(*d));
    if (!d) {
        fclose(f);
        return -ENOMEM;
    }
    media_info_init(&d->meta);
    d->size = st.st_size;
    d->ogg = !memcmp(head, "OggS", 4);
    d->sd = FLAC__stream_decoder_new();
    if (!d->sd || !d->meta.tags) {
        fclose(f);
        return flac_fail(d, errmsg, NULL, -ENOMEM);
    }
    FLAC__stream_decoder_set_md5_checking(d->sd, false);
    FLAC__stream_decoder_set_metadata_respond(d->sd, FLAC__METADATA_TYPE_VORBIS_COMMENT);
    FLAC__stream_decoder_set_metadata_respond(d->sd, FLAC__METADATA_TYPE_PICTURE);
    /* init_FILE takes the FILE over, also when it fails. */
    FLAC__StreamDecoderInitStatus is =
        d->ogg ? FLAC__stream_decoder_init_ogg_FILE(d->sd, f, write_cb, metadata_cb, error_cb, d)
               : FLAC__stream_decoder_init_FILE(d->sd, f, write_cb, metadata_cb, error_cb, d);
    if (is != FLAC__STREAM_DECODER_INIT_STATUS_OK)
        return flac_fail(d, errmsg, "FLAC decoder init failed", -EIO);
    if (!FLAC__stream_decoder_process_until_end_of_metadata(d->sd) || !d->have_streaminfo ||
        d->fatal)
        return flac_fail(d, errmsg, "not a FLAC file: no STREAMINFO", -EINVAL);
    d->metadata_done = 1;
    if (d->rate == 0 || d->channels == 0 || d->bps < 4)
        return flac_fail(d, errmsg, "FLAC STREAMINFO with an unusable format", -EINVAL);
    if (!FLAC__stream_decoder_get_decode_position(d->sd, &d->audio_start))
        d->audio_start = 0;

    /* Every frame is at least min_framesize bytes: a file too short to hold
     * the frames STREAMINFO counts has been cut. */
    if (!d->ogg && d->total && d->min_framesize && d->max_blocksize &&
        (uint64_t)d->size < d->audio_start + d->total / d->max_blocksize * d->min_framesize)
        return flac_fail(d, errmsg, "truncated FLAC: shorter than STREAMINFO says", -EINVAL);

    if (d->total == 0) {
        d->counting = 1;
        FLAC__bool ok = FLAC__stream_decoder_process_until_end_of_stream(d->sd);
        d->counting = 0;
        d->total = d->counted;
        if (!ok || !FLAC__stream_decoder_reset(d->sd) ||
            !FLAC__stream_decoder_process_until_end_of_metadata(d->sd))
            return flac_fail(d, errmsg, "FLAC stream unreadable", -EIO);
        if (d->total == 0)
            return flac_fail(d, errmsg, "FLAC without audio frames", -EINVAL);
    }
    d->buf_cap = d->max_blocksize ? d->max_blocksize : 4608;
    d->buf = malloc(d->buf_cap * d->channels * sizeof(float));
    if (!d->buf)
        return flac_fail(d, errmsg, NULL, -ENOMEM);
    *out = d;
    return 0;
}

static int flac_read_info(struct decoder *d, struct media_info *info, int flags)
{
    snprintf(info->container, sizeof(info->container), "%s", d->ogg ? "ogg" : "flac");
    snprintf(info->codec, sizeof(info->codec), "flac");
    info->rate = (int)d->rate;
    info->channels = (int)d->channels;
    info->bits_per_sample = (int)d->bps;
    info->frames = (int64_t)d->total;
    info->duration = (double)d->total / d->rate;
    if (info->duration > 0 && (uint64_t)d->size > d->audio_start)
        info->bitrate = (int)((double)((uint64_t)d->size - d->audio_start) * 8 / info->duration);

    json_t *tags = json_deep_copy(d->meta.tags);
    if (!tags)
        return -ENOMEM;
    json_decref(info->tags);
    info->tags = tags;
    info->rg = d->meta.rg;
    if (flags & DECODER_WANT_PICTURES) {
        /* Handed over, not copied: they can be large. */
        for (size_t i = 0; i < d->meta.npictures; i++) {
            struct media_picture *p = &d->meta.pictures[i];
            media_info_add_picture(info, p->mime, p->type, p->description, p->data, p->len);
            p->data = NULL;
        }
    }
    return 0;
}

static long flac_read(struct decoder *d, float *pcm, size_t max_frames)
{
    /* Each round decodes one frame; a broken stream may need a few to
     * resync, never unboundedly many. */
    for (int rounds = 0; d->buf_pos >= d->buf_len; rounds++) {
        FLAC__StreamDecoderState s = FLAC__stream_decoder_get_state(d->sd);
        if (s == FLAC__STREAM_DECODER_END_OF_STREAM)
            return 0;
        if (rounds > 64 || d->fatal || s >= FLAC__STREAM_DECODER_OGG_ERROR)
            return -EIO;
        if (!FLAC__stream_decoder_process_single(d->sd))
            return FLAC__stream_decoder_get_state(d->sd) == FLAC__STREAM_DECODER_END_OF_STREAM
                       ? 0
                       : -EIO;
    }
    size_t n = d->buf_len - d->buf_pos;
    if (n > max_frames)
        n = max_frames;
    memcpy(pcm, d->buf + d->buf_pos * d->channels, n * d->channels * sizeof(float));
    d->buf_pos += n;
    return (long)n;
}

static int flac_seek(struct decoder *d, int64_t frame)
{
    d->buf_len = d->buf_pos = 0;
    if (frame < 0 || (d->total && (uint64_t)frame >= d->total))
        return -EINVAL;
    if (!FLAC__stream_decoder_seek_absolute(d->sd, (FLAC__uint64)frame)) {
        if (FLAC__stream_decoder_get_state(d->sd) == FLAC__STREAM_DECODER_SEEK_ERROR)
            FLAC__stream_decoder_flush(d->sd);
        d->buf_len = d->buf_pos = 0;
        return -EIO;
    }
    return 0;
}

const struct decoder_ops decoder_flac = {
    .name = "flac",
    .extensions = flac_exts,
    .probe = flac_probe,
    .open = flac_open,
    .read_info = flac_read_info,
    .read = flac_read,
    .seek = flac_seek,
    .close = flac_close,
};
