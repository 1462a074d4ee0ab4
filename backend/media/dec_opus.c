/*
 * Ogg Opus through libopusfile, which decodes at 48 kHz (Opus's own rate;
 * the input rate in the header is only informative) and applies the
 * header's output gain, as RFC 7845 asks.
 *
 * ReplayGain: R128_TRACK_GAIN / R128_ALBUM_GAIN are Q7.8 dB relative to the
 * output gain, aiming at -23 LUFS; ReplayGain aims at about -18 LUFS, so
 * they become ReplayGain by adding 5 dB (as MPD and beets do). Since the
 * output gain is already in the decoded audio, the values apply on top of
 * it, as the spec means them. REPLAYGAIN_* comments, which some taggers
 * write into Opus files anyway, count only where R128 tags are absent.
 * Opus has no peak tags.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <opus/opusfile.h>

#include "core/log.h"
#include "media/decoder.h"

#define OPUS_RATE             48000
#define R128_TO_REPLAYGAIN_DB 5.0 /* -18 LUFS (ReplayGain) minus -23 LUFS (R128) */
/* 120 ms (Opus's longest packet) of 8 channels: one read never needs more. */
#define OPUS_TMP_FLOATS (5760 * 8)

struct decoder {
    OggOpusFile *of;
    int channels;
    int64_t frames;
    float *tmp; /* decoded, not yet handed out */
    int tmp_ch;
    size_t tmp_frames, tmp_pos;
};

static const char *const opus_exts[] = {"opus", NULL};

static int opus_probe(const uint8_t *h, size_t n)
{
    if (n < 27 || memcmp(h, "OggS", 4))
        return 0;
    size_t data = 27 + (size_t)h[26];
    return n >= data + 8 && !memcmp(h + data, "OpusHead", 8) ? 2 : 0;
}

static const char *op_error(int r)
{
    switch (r) {
    case OP_ENOTFORMAT:
        return "not an Ogg Opus file";
    case OP_EBADHEADER:
        return "broken Opus header";
    case OP_EVERSION:
        return "unsupported Opus version";
    case OP_EIMPL:
        return "unsupported Opus feature";
    case OP_EREAD:
        return "read error";
    case OP_EBADLINK:
    case OP_EBADTIMESTAMP:
        return "broken Ogg Opus stream";
    default:
        return "unreadable Ogg Opus file";
    }
}

static void opus_close(struct decoder *d)
{
    if (!d)
        return;
    if (d->of)
        op_free(d->of);
    free(d->tmp);
    free(d);
}

static int opus_open(struct decoder **out, const char *path, const char **errmsg)
{
    int err = 0;
    struct decoder *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->of = op_open_file(path, &err);
    if (!d->of) {
        free(d);
        if (err == OP_EFAULT) {
            FILE *f = fopen(path, "rb");
            if (!f)
                return -errno;
            fclose(f);
        }
        *errmsg = op_error(err);
        return err == OP_EREAD ? -EIO : -EINVAL;
    }
    d->channels = op_channel_count(d->of, 0);
    d->tmp = malloc(OPUS_TMP_FLOATS * sizeof(float));
    if (!d->tmp) {
        opus_close(d);
        return -ENOMEM;
    }
    ogg_int64_t total = op_seekable(d->of) ? op_pcm_total(d->of, -1) : -1;
    d->frames = total >= 0 ? (int64_t)total : -1;
    if (d->channels <= 0 || d->frames == 0) {
        *errmsg =
            d->channels <= 0 ? "Opus header with an unusable format" : "Ogg Opus without audio";
        opus_close(d);
        return -EINVAL;
    }
    *out = d;
    return 0;
}

/* A Q7.8 decimal integer, as RFC 7845 writes R128 gains. */
static int parse_q78(const char *v, double *db)
{
    char *end;
    long q = strtol(v, &end, 10);
    if (end == v || *end || q < -32768 || q > 32767)
        return -EINVAL;
    *db = q / 256.0;
    return 0;
}

static int opus_read_info(struct decoder *d, struct media_info *info, int flags)
{
    snprintf(info->container, sizeof(info->container), "ogg");
    snprintf(info->codec, sizeof(info->codec), "opus");
    info->rate = OPUS_RATE;
    info->channels = d->channels;
    info->frames = d->frames;
    info->duration = d->frames > 0 ? (double)d->frames / OPUS_RATE : 0;
    opus_int32 br = op_bitrate(d->of, -1);
    info->bitrate = br > 0 ? (int)br : 0;

    const OpusTags *t = op_tags(d->of, 0);
    if (!t)
        return 0;
    /* R128 first, so that REPLAYGAIN_* comments only fill gaps. */
    for (int i = 0; i < t->comments; i++) {
        const char *c = t->user_comments[i];
        double db;
        if (!c)
            continue;
        if (!strncasecmp(c, "R128_TRACK_GAIN=", 16) && parse_q78(c + 16, &db) == 0)
            info->rg.track_gain = db + R128_TO_REPLAYGAIN_DB;
        else if (!strncasecmp(c, "R128_ALBUM_GAIN=", 16) && parse_q78(c + 16, &db) == 0)
            info->rg.album_gain = db + R128_TO_REPLAYGAIN_DB;
    }
    for (int i = 0; i < t->comments; i++) {
        if (t->user_comments[i] && t->comment_lengths[i] > 0) {
            int r = media_info_add_vorbis_comment(info, t->user_comments[i],
                                                  (size_t)t->comment_lengths[i], flags);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static long opus_read(struct decoder *d, float *pcm, size_t max_frames)
{
    /* Samples come through tmp: a chained file's next link may have another
     * channel count, known only after the read, so what we ask for cannot
     * be sized to the caller's buffer. */
    for (int tries = 0; d->tmp_pos >= d->tmp_frames; tries++) {
        int li = -1;
        if (tries >= 16)
            return -EIO;
        int n = op_read_float(d->of, d->tmp, (int)OPUS_TMP_FLOATS, &li);
        if (n == OP_HOLE)
            continue;
        if (n < 0)
            return -EIO;
        if (n == 0)
            return 0;
        int ch = op_channel_count(d->of, li);
        if (ch <= 0)
            return -EIO;
        d->tmp_ch = ch;
        d->tmp_frames = (size_t)n;
        d->tmp_pos = 0;
    }
    size_t n = d->tmp_frames - d->tmp_pos;
    if (n > max_frames)
        n = max_frames;
    const float *in = d->tmp + d->tmp_pos * (size_t)d->tmp_ch;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < d->channels; c++)
            pcm[i * (size_t)d->channels + c] = c < d->tmp_ch ? in[i * (size_t)d->tmp_ch + c] : 0.0f;
    d->tmp_pos += n;
    return (long)n;
}

static int opus_seek(struct decoder *d, int64_t frame)
{
    d->tmp_pos = d->tmp_frames = 0;
    return op_pcm_seek(d->of, (ogg_int64_t)frame) == 0 ? 0 : -EIO;
}

const struct decoder_ops decoder_opus = {
    .name = "opus",
    .extensions = opus_exts,
    .probe = opus_probe,
    .open = opus_open,
    .read_info = opus_read_info,
    .read = opus_read,
    .seek = opus_seek,
    .close = opus_close,
};
