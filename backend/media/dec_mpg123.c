/*
 * MP3 (and MP2) through libmpg123: float PCM at the file's rate, gapless
 * (the LAME/Info frame's encoder delay and padding are cut), exact length.
 *
 * Metadata comes from three places, in this order of trust: ID3v2
 * (libmpg123 finds it and keeps its raw bytes, id3tag.c parses them), an
 * APEv2 tag at the end (fills gaps), and ID3v1 when neither has anything.
 *
 * Length: the Info/Xing frame's count is exact and cheap; without one the
 * file is scanned frame by frame (libmpg123 reads only headers). A file
 * shorter than its Info frame says it is truncated.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mpg123.h>

#include "core/log.h"
#include "media/apetag.h"
#include "media/id3tag.h"
#include "media/decoder.h"

struct decoder {
    mpg123_handle *mh;
    int fd;
    long rate;
    int channels;
    int64_t frames;   /* exact, or -1 */
    int64_t pos;      /* frames delivered */
    int bitrate;      /* bits/s */
    off_t audio_len;  /* bytes between the tags */
    int64_t info_len; /* bytes of audio the Info/Xing frame claims, or -1 */
};

static const char *const mpg123_exts[] = {"mp3", "mp2", "mpga", NULL};

/* ---- frame headers ---- */

static const int mpeg_rates[3][3] = {
    {44100, 48000, 32000}, /* MPEG 1 */
    {22050, 24000, 16000}, /* MPEG 2 */
    {11025, 12000, 8000},  /* MPEG 2.5 */
};
/* kbit/s by [MPEG1?][layer-1][index] */
static const short mpeg_kbps[2][3][15] = {
    {{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
     {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
     {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}},
    {{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
     {0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
     {0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}},
};

struct mpeg_hdr {
    int v1; /* MPEG 1 (else 2 or 2.5) */
    int layer;
    int rate;
    int mono;
    int bri;    /* bitrate index */
    long bps;   /* bits per second */
    int spf;    /* samples per frame */
    size_t len; /* frame bytes */
};

static int mpeg_header(const uint8_t *h, struct mpeg_hdr *m)
{
    if (h[0] != 0xff || (h[1] & 0xe0) != 0xe0)
        return 0;
    int ver = (h[1] >> 3) & 3; /* 0: 2.5, 1: reserved, 2: 2, 3: 1 */
    int layer = 4 - ((h[1] >> 1) & 3);
    int bri = h[2] >> 4, sri = (h[2] >> 2) & 3, pad = (h[2] >> 1) & 1;
    if (ver == 1 || layer == 4 || bri == 0 || bri == 15 || sri == 3 || (h[3] & 3) == 2)
        return 0;
    m->v1 = ver == 3;
    m->layer = layer;
    m->rate = mpeg_rates[ver == 3 ? 0 : ver == 2 ? 1 : 2][sri];
    m->mono = (h[3] >> 6) == 3;
    long bps = mpeg_kbps[m->v1][layer - 1][bri] * 1000L;
    m->bri = bri;
    m->bps = bps;
    m->spf = layer == 1 ? 384 : layer == 3 && !m->v1 ? 576 : 1152;
    if (layer == 1)
        m->len = (size_t)((12 * bps / m->rate + pad) * 4);
    else if (layer == 3 && !m->v1)
        m->len = (size_t)(72 * bps / m->rate + pad);
    else
        m->len = (size_t)(144 * bps / m->rate + pad);
    return m->len >= 4;
}

static int mpg123_probe(const uint8_t *h, size_t n)
{
    struct mpeg_hdr a, b;
    if (n >= 4 && mpeg_header(h, &a)) {
        /* One header can be chance; a second one where the first frame ends
         * is not. */
        if (n >= a.len + 4)
            return mpeg_header(h + a.len, &b) && b.rate == a.rate && b.layer == a.layer ? 2 : 0;
        return 1;
    }
    return 0;
}

/* ---- whole-file facts: tags around the audio, the Info frame ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static off_t id3v2_len(const uint8_t *h)
{
    if (memcmp(h, "ID3", 3) || h[3] == 0xff || ((h[6] | h[7] | h[8] | h[9]) & 0x80))
        return 0;
    return ((off_t)h[6] << 21 | (off_t)h[7] << 14 | (off_t)h[8] << 7 | h[9]) + 10 +
           ((h[5] & 0x10) ? 10 : 0);
}

/* The first frame header in b (two in a row, so not chance) at or after
 * offset 0; its offset, or -1. */
static long find_frame(const uint8_t *b, size_t n, struct mpeg_hdr *m)
{
    struct mpeg_hdr next;
    for (size_t i = 0; i + 4 <= n; i++) {
        if (b[i] != 0xff || !mpeg_header(b + i, m))
            continue;
        if (i + m->len + 4 <= n && mpeg_header(b + i + m->len, &next) && next.rate == m->rate &&
            next.layer == m->layer)
            return (long)i;
    }
    return -1;
}

/* A file without an Info frame is nearly always constant bitrate (every
 * VBR encoder writes one). If frames sampled at a quarter, half and three
 * quarters in have the first frame's bitrate, the length follows from the
 * size, to a frame; reading every header instead costs the whole file.
 * Returns the samples per channel, or -1 when the file looks VBR. */
static int64_t cbr_length(int fd, off_t start, off_t audio_len)
{
    uint8_t b[4096];
    struct mpeg_hdr first, m;
    ssize_t n = pread(fd, b, sizeof(b), start);
    long at = n > 0 ? find_frame(b, (size_t)n, &first) : -1;
    if (at < 0 || first.bps <= 0)
        return -1;
    for (int k = 1; k <= 3; k++) {
        n = pread(fd, b, sizeof(b), start + audio_len * k / 4);
        if (n <= 0 || find_frame(b, (size_t)n, &m) < 0 || m.bri != first.bri ||
            m.rate != first.rate)
            return -1;
    }
    double frame_bytes = (double)first.spf / 8 * first.bps / first.rate;
    int64_t frames = (int64_t)((double)(audio_len - at) / frame_bytes + 0.5);
    return frames * first.spf;
}

/* The bytes the Xing/Info or VBRI header says the stream has, or -1.
 * *cbr: LAME names the header "Info" in a constant bitrate file.
 * *counted: the header has a frame count (so the length is exact). */
static int64_t info_frame_bytes(int fd, off_t at, int *cbr, int *counted)
{
    uint8_t buf[4096];
    struct mpeg_hdr m;
    /* The first frame, past any padding between the ID3v2 tag and it. */
    ssize_t n = pread(fd, buf, sizeof(buf), at);
    long first = n > 0 ? find_frame(buf, (size_t)n, &m) : -1;
    if (first < 0 || m.layer != 3 || (size_t)first + 4 + 32 + 20 > (size_t)n)
        return -1;
    const uint8_t *b = buf + first;
    size_t side = m.v1 ? (m.mono ? 17 : 32) : (m.mono ? 9 : 17);
    const uint8_t *x = b + 4 + side;
    if (!memcmp(x, "Xing", 4) || !memcmp(x, "Info", 4)) {
        *cbr = !memcmp(x, "Info", 4);
        uint32_t flags = be32(x + 4);
        *counted = (flags & 1) && be32(x + 8) > 0;
        const uint8_t *p = x + 8;
        if (flags & 1)
            p += 4; /* frames */
        if (!(flags & 2))
            return -1;
        return be32(p);
    }
    x = b + 4 + 32;
    if (!memcmp(x, "VBRI", 4)) {
        *counted = be32(x + 14) > 0;
        return be32(x + 10);
    }
    return -1;
}

/* ---- the plugin ---- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
    mpg123_init(); /* a no-op since 1.27, needed before */
}

static void mpg123_close_dec(struct decoder *d)
{
    if (!d)
        return;
    if (d->mh) {
        mpg123_close(d->mh);
        mpg123_delete(d->mh);
    }
    if (d->fd >= 0)
        close(d->fd);
    free(d);
}

static int mpg123_open_dec(struct decoder **out, const char *path, const char **errmsg)
{
    int err;
    struct stat st;
    uint8_t head[10];

    pthread_once(&init_once, global_init);
    struct decoder *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->info_len = -1;
    d->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (d->fd < 0) {
        err = -errno;
        free(d);
        return err;
    }
    d->mh = mpg123_new(NULL, &err);
    if (!d->mh) {
        mpg123_close_dec(d);
        return -ENOMEM;
    }
    mpg123_param(d->mh, MPG123_FLAGS,
                 MPG123_QUIET | MPG123_GAPLESS | MPG123_FORCE_FLOAT | MPG123_SKIP_ID3V2 |
                     MPG123_STORE_RAW_ID3,
                 0);
    mpg123_format_none(d->mh);
    const long *rates;
    size_t nrates;
    mpg123_rates(&rates, &nrates);
    for (size_t i = 0; i < nrates; i++)
        mpg123_format(d->mh, rates[i], MPG123_MONO | MPG123_STEREO, MPG123_ENC_FLOAT_32);

    if (fstat(d->fd, &st) < 0 || mpg123_open_fd(d->mh, d->fd) != MPG123_OK) {
        *errmsg = "cannot open MP3 stream";
        mpg123_close_dec(d);
        return -EIO;
    }
    int enc;
    if (mpg123_getformat(d->mh, &d->rate, &d->channels, &enc) != MPG123_OK) {
        *errmsg = "not an MP3 file: no MPEG audio frames";
        mpg123_close_dec(d);
        return -EINVAL;
    }
    /* Keep the channel count for the whole file: libmpg123 converts a
     * stream that switches between mono and stereo. Every rate stays
     * allowed: a broken stream may switch rates, and a rate libmpg123
     * cannot output makes it decode into a buffer sized for another
     * format (1.31.2; found by fuzzing). */
    mpg123_format_none(d->mh);
    for (size_t i = 0; i < nrates; i++)
        mpg123_format(d->mh, rates[i], d->channels == 1 ? MPG123_MONO : MPG123_STEREO,
                      MPG123_ENC_FLOAT_32);

    /* What lies between the tags, for the truncation check and the bitrate. */
    off_t start = 0, end = st.st_size;
    if (pread(d->fd, head, sizeof(head), 0) == (ssize_t)sizeof(head))
        start = id3v2_len(head);
    uint8_t v1[3];
    struct apetag_loc ape;
    if (end >= 128 && pread(d->fd, v1, 3, end - 128) == 3 && !memcmp(v1, "TAG", 3))
        end -= 128;
    if (apetag_find(d->fd, end, &ape) == 1)
        end = ape.start;
    d->audio_len = end > start ? end - start : 0;
    int cbr = 0, counted = 0;
    d->info_len = info_frame_bytes(d->fd, start, &cbr, &counted);
    /* The Info frame counts itself and the audio; a few KiB of slack for
     * encoders that count differently. */
    if (d->info_len > 0 && d->audio_len + 4096 < d->info_len) {
        *errmsg = "truncated MP3: shorter than its Info frame says";
        LOG(E_DEBUG, L_MEDIA, "%s: %lld of %lld bytes of audio", path, (long long)d->audio_len,
            (long long)d->info_len);
        mpg123_close_dec(d);
        return -EINVAL;
    }

    /* Without a frame count, libmpg123's length is a guess from the first
     * frame; for CBR we know better cheaply, for VBR only counting the
     * frames (reading the whole file) is exact. */
    int64_t len = counted ? -1 : cbr_length(d->fd, start, d->audio_len);
    if (len >= 0)
        cbr = 1;
    if (!counted && len < 0 && mpg123_scan(d->mh) != MPG123_OK) {
        *errmsg = "MP3 stream unreadable";
        mpg123_close_dec(d);
        return -EIO;
    }
    if (len < 0)
        len = (int64_t)mpg123_length(d->mh);
    d->frames = len >= 0 ? len : -1;
    if (d->frames == 0) {
        *errmsg = "MP3 without audio frames";
        mpg123_close_dec(d);
        return -EINVAL;
    }

    struct mpg123_frameinfo fi;
    /* libmpg123 calls every file with an Info frame VBR, and every file
     * without one CBR. */
    if (cbr && mpg123_info(d->mh, &fi) == MPG123_OK)
        d->bitrate = fi.bitrate * 1000;
    else if (d->frames > 0)
        d->bitrate = (int)((double)(d->info_len > 0 ? d->info_len : d->audio_len) * 8 * d->rate /
                           (double)d->frames);
    *out = d;
    return 0;
}

static int mpg123_read_info(struct decoder *d, struct media_info *info, int flags)
{
    struct mpg123_frameinfo fi;
    int layer = 3;

    if (mpg123_info(d->mh, &fi) == MPG123_OK)
        layer = fi.layer;
    snprintf(info->container, sizeof(info->container), "%s", layer == 3 ? "mp3" : "mpeg");
    snprintf(info->codec, sizeof(info->codec), "mp%d", layer);
    info->rate = (int)d->rate;
    info->channels = d->channels;
    info->frames = d->frames;
    info->duration = d->frames > 0 ? (double)d->frames / (double)d->rate : 0;
    info->bitrate = d->bitrate;

    unsigned char *v1 = NULL, *v2 = NULL;
    size_t n1 = 0, n2 = 0;
    if (mpg123_id3_raw(d->mh, &v1, &n1, &v2, &n2) != MPG123_OK)
        v1 = v2 = NULL;
    int r = v2 ? id3tag_parse_v2(v2, n2, info, flags) : 0;
    if (r < 0)
        return r;

    struct media_info ape;
    media_info_init(&ape);
    if (!ape.tags)
        return -ENOMEM;
    if (apetag_read(d->fd, &ape, flags) == 1)
        media_info_merge_missing(info, &ape);
    media_info_clear(&ape);

    if (v1 && json_object_size(info->tags) == 0 && id3tag_parse_v1(v1, n1, info) < 0)
        return -ENOMEM;
    return 0;
}

static long mpg123_read_pcm(struct decoder *d, float *pcm, size_t max_frames)
{
    size_t bytes = max_frames * (size_t)d->channels * sizeof(float), done = 0;

    for (int tries = 0; tries < 4; tries++) {
        int r = mpg123_read(d->mh, (unsigned char *)pcm, bytes, &done);
        if (r == MPG123_NEW_FORMAT) {
            long rate;
            int ch, enc;
            if (mpg123_getformat(d->mh, &rate, &ch, &enc) != MPG123_OK || ch != d->channels ||
                enc != MPG123_ENC_FLOAT_32)
                return -EIO;
            /* A rate change mid-file: only broken files do it; the pitch
             * of the rest is wrong, nothing worse. */
            if (rate != d->rate)
                LOG(E_DEBUG, L_MEDIA, "mpg123: rate changes from %ld to %ld", d->rate, rate);
            if (done)
                break;
            continue;
        }
        if (r == MPG123_DONE && done == 0)
            return 0;
        if (r != MPG123_OK && r != MPG123_DONE) {
            LOG(E_DEBUG, L_MEDIA, "mpg123: %s", mpg123_strerror(d->mh));
            if (!done)
                return -EIO;
        }
        break;
    }
    long frames = (long)(done / ((size_t)d->channels * sizeof(float)));
    d->pos += frames;
    return frames;
}

static int mpg123_seek_dec(struct decoder *d, int64_t frame)
{
    off_t r = mpg123_seek(d->mh, (off_t)frame, SEEK_SET);
    if (r < 0)
        return -EIO;
    d->pos = r;
    return 0;
}

const struct decoder_ops decoder_mpg123 = {
    .name = "mpg123",
    .extensions = mpg123_exts,
    .probe = mpg123_probe,
    .open = mpg123_open_dec,
    .read_info = mpg123_read_info,
    .read = mpg123_read_pcm,
    .seek = mpg123_seek_dec,
    .close = mpg123_close_dec,
};
