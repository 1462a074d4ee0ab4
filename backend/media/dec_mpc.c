/*
 * Musepack (SV7 and SV8) through libmpcdec. Length is exact (the stream
 * header's sample count minus the leading silence), tags and cover come
 * from the APEv2 tag at the end (apetag.c), ReplayGain from the stream
 * header and, where it has none, from the APE tag.
 *
 * The header's gains: libmpcdec hands SV7 and SV8 alike in SV8 form, the
 * gain as 256 * (the loudness in dB the track plays at, against a 64.82 dB
 * reference), the peak as 256 * 20 * log10(peak in 16-bit units). As MPD:
 * gain dB = 64.82 - gain / 256, peak = 10^(peak / 256 / 20) / 32767.
 * 0 means "not computed".
 *
 * libmpcdec is old and trusts its input more than we would: the reader
 * below bounds every access to the file, the magic is checked before
 * libmpcdec sees the file, and an SV7 length is checked against the size. It also rebuilds its
 * global Huffman tables in every mpc_decoder_init (its own FIXME says so) while other decoders read
 * them: all libmpcdec calls hold one lock. Musepack is rare enough that
 * decoding two files at once is not worth a race.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mpc/mpcdec.h>

#include "core/log.h"
#include "media/apetag.h"
#include "media/decoder.h"

struct decoder {
    FILE *f;
    mpc_reader reader;
    mpc_demux *demux;
    mpc_streaminfo si;
    int channels, rate;
    int64_t frames, pos;
    MPC_SAMPLE_FORMAT buf[MPC_DECODER_BUFFER_LENGTH];
    size_t buf_len, buf_pos; /* frames */
    int32_t size;
};

static pthread_mutex_t mpc_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const mpc_exts[] = {"mpc", "mp+", "mpp", NULL};

static int mpc_probe(const uint8_t *h, size_t n)
{
    if (n >= 4 && !memcmp(h, "MPCK", 4))
        return 2;
    if (n >= 4 && !memcmp(h, "MP+", 3) && (h[3] & 0x0f) >= 7)
        return 2;
    return 0;
}

static mpc_int32_t r_read(mpc_reader *r, void *ptr, mpc_int32_t size)
{
    struct decoder *d = r->data;
    if (size <= 0)
        return 0;
    return (mpc_int32_t)fread(ptr, 1, (size_t)size, d->f);
}

static mpc_bool_t r_seek(mpc_reader *r, mpc_int32_t offset)
{
    struct decoder *d = r->data;
    if (offset < 0 || offset > d->size)
        return MPC_FALSE;
    return fseek(d->f, offset, SEEK_SET) == 0;
}

static mpc_int32_t r_tell(mpc_reader *r)
{
    struct decoder *d = r->data;
    return (mpc_int32_t)ftell(d->f);
}

static mpc_int32_t r_size(mpc_reader *r)
{
    struct decoder *d = r->data;
    return d->size;
}

static mpc_bool_t r_canseek(mpc_reader *r)
{
    return MPC_TRUE;
}

static void mpc_close_dec(struct decoder *d)
{
    if (!d)
        return;
    if (d->demux) {
        pthread_mutex_lock(&mpc_lock);
        mpc_demux_exit(d->demux);
        pthread_mutex_unlock(&mpc_lock);
    }
    if (d->f)
        fclose(d->f);
    free(d);
}

static int mpc_fail(struct decoder *d, const char **errmsg, const char *msg, int err)
{
    *errmsg = msg;
    mpc_close_dec(d);
    return err;
}

static int mpc_open_dec(struct decoder **out, const char *path, const char **errmsg)
{
    struct stat st;
    uint8_t head[10];

    struct decoder *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->f = fopen(path, "rb");
    if (!d->f) {
        int e = -errno;
        free(d);
        return e;
    }
    if (fstat(fileno(d->f), &st) < 0 || st.st_size > INT32_MAX)
        return mpc_fail(d, errmsg, "Musepack file too large", -EINVAL);
    d->size = (int32_t)st.st_size;
    /* Check the magic ourselves (after an ID3v2 tag, which libmpcdec skips
     * too): libmpcdec would otherwise try SV4-6 parsing on anything. */
    size_t n = fread(head, 1, sizeof(head), d->f);
    long at = 0;
    if (n == sizeof(head) && !memcmp(head, "ID3", 3)) {
        at = ((long)(head[6] & 0x7f) << 21 | (long)(head[7] & 0x7f) << 14 |
              (long)(head[8] & 0x7f) << 7 | (head[9] & 0x7f)) +
             10 + ((head[5] & 0x10) ? 10 : 0);
        n = fseek(d->f, at, SEEK_SET) == 0 ? fread(head, 1, 4, d->f) : 0;
    }
    if (n < 4 || !mpc_probe(head, 4))
        return mpc_fail(d, errmsg, "not a Musepack file", -EINVAL);
    rewind(d->f);

    d->reader = (mpc_reader){
        .read = r_read,
        .seek = r_seek,
        .tell = r_tell,
        .get_size = r_size,
        .canseek = r_canseek,
        .data = d,
    };
    pthread_mutex_lock(&mpc_lock);
    d->demux = mpc_demux_init(&d->reader);
    if (d->demux)
        mpc_demux_get_info(d->demux, &d->si);
    pthread_mutex_unlock(&mpc_lock);
    if (!d->demux)
        return mpc_fail(d, errmsg, "broken Musepack header", -EINVAL);
    if (d->si.channels < 1 || d->si.channels > 2 || d->si.sample_freq == 0)
        return mpc_fail(d, errmsg, "Musepack header with an unusable format", -EINVAL);
    d->channels = (int)d->si.channels;
    d->rate = (int)d->si.sample_freq;
    mpc_int64_t len = mpc_streaminfo_get_length_samples(&d->si);
    if (len <= 0)
        return mpc_fail(d, errmsg, "Musepack without audio", -EINVAL);
    /* An SV7 frame (1152 samples) starts with its 20-bit length: a header
     * claiming more frames than the file has room for is broken or cut,
     * and libmpcdec would walk those frames one by one on a seek, for as
     * long as the header says (found by fuzzing). */
    if (d->si.stream_version < 8 && (uint64_t)d->si.samples / MPC_FRAME_LENGTH * 20 >
                                        (uint64_t)(d->size - d->si.header_position) * 8)
        return mpc_fail(d, errmsg, "truncated Musepack: shorter than its header says", -EINVAL);
    d->frames = len;
    *out = d;
    return 0;
}

static void header_gain(double *gain, double *peak, mpc_uint16_t g, mpc_uint16_t p)
{
    if (g == 0 || p == 0)
        return;
    *gain = MPC_OLD_GAIN_REF - g / 256.0;
    *peak = pow(10, p / 256.0 / 20) / 32767;
}

static int mpc_read_info(struct decoder *d, struct media_info *info, int flags)
{
    snprintf(info->container, sizeof(info->container), "mpc");
    snprintf(info->codec, sizeof(info->codec), "musepack");
    info->rate = d->rate;
    info->channels = d->channels;
    info->frames = d->frames;
    info->duration = (double)d->frames / d->rate;
    if (d->si.average_bitrate > 0 && d->si.average_bitrate < INT32_MAX)
        info->bitrate = (int)d->si.average_bitrate;

    header_gain(&info->rg.track_gain, &info->rg.track_peak, d->si.gain_title, d->si.peak_title);
    header_gain(&info->rg.album_gain, &info->rg.album_peak, d->si.gain_album, d->si.peak_album);
    int r = apetag_read(fileno(d->f), info, flags);
    return r < 0 && r != -EINVAL ? r : 0;
}

static long mpc_read_dec(struct decoder *d, float *pcm, size_t max_frames)
{
    /* A frame's worth per round; a stream that yields no samples for many
     * frames in a row is broken, not slow. */
    for (int rounds = 0; d->buf_pos >= d->buf_len; rounds++) {
        mpc_frame_info fi;
        if (rounds > 64 || d->pos >= d->frames)
            return rounds > 64 ? -EIO : 0;
        fi.buffer = d->buf;
        pthread_mutex_lock(&mpc_lock);
        mpc_status st = mpc_demux_decode(d->demux, &fi);
        pthread_mutex_unlock(&mpc_lock);
        if (st != MPC_STATUS_OK)
            return -EIO;
        if (fi.bits == -1)
            return 0;
        if (fi.samples > MPC_FRAME_LENGTH)
            return -EIO;
        d->buf_len = fi.samples;
        d->buf_pos = 0;
    }
    size_t n = d->buf_len - d->buf_pos;
    if (n > max_frames)
        n = max_frames;
    if ((int64_t)n > d->frames - d->pos)
        n = (size_t)(d->frames - d->pos);
    const MPC_SAMPLE_FORMAT *in = d->buf + d->buf_pos * d->channels;
    for (size_t i = 0; i < n * (size_t)d->channels; i++) {
#ifdef MPC_FIXED_POINT
        pcm[i] = (float)in[i] / (float)(1 << MPC_FIXED_POINT_FRACTPART);
#else
        pcm[i] = in[i];
#endif
    }
    d->buf_pos += n;
    d->pos += (int64_t)n;
    return (long)n;
}

static int mpc_seek_dec(struct decoder *d, int64_t frame)
{
    if (frame < 0 || frame >= d->frames)
        return -EINVAL;
    pthread_mutex_lock(&mpc_lock);
    mpc_status st = mpc_demux_seek_sample(d->demux, (mpc_uint64_t)frame);
    pthread_mutex_unlock(&mpc_lock);
    if (st != MPC_STATUS_OK)
        return -EIO;
    d->buf_len = d->buf_pos = 0;
    d->pos = frame;
    return 0;
}

const struct decoder_ops decoder_mpc = {
    .name = "mpc",
    .extensions = mpc_exts,
    .probe = mpc_probe,
    .open = mpc_open_dec,
    .read_info = mpc_read_info,
    .read = mpc_read_dec,
    .seek = mpc_seek_dec,
    .close = mpc_close_dec,
};
