/*
 * MP4 (AAC, ALAC) and ASF (WMA) through libavformat/libavcodec, converted
 * to interleaved float by libswresample. Only the mov/mp4 and asf demuxers
 * are used, chosen by magic or extension, never by libavformat's probing:
 * the other few hundred demuxers are attack surface we have no use for.
 *
 * Opening reads the container header only (no avformat_find_stream_info,
 * which decodes): codec parameters, the exact length (MP4: the track's
 * duration after the edit list, i.e. without the encoder's priming samples),
 * tags from the format metadata (libavformat maps MP4 atoms and WM/
 * attributes to its generic names; freeform "----" atoms keep their names,
 * which is where MusicBrainz ids and replaygain_* live; iTunNORM is Apple's
 * own loudness data, not ReplayGain, and is dropped), and pictures from the
 * attached_pic streams (MP4 covr, ASF WM/Picture). The codec is opened on
 * the first read.
 *
 * Limits: libavformat keeps one value per key, so multi-valued MP4/ASF tags
 * arrive as their first (MP4) or last (ASF) value.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#include "core/log.h"
#include "media/decoder.h"

/* Packets one read may consume without producing audio (other streams,
 * undecodable packets) before the file counts as broken. */
#define MAX_IDLE_PACKETS 512
/* Samples decoded and dropped before a seek target: two AAC frames, one
 * WMA frame; enough for the overlap of the frame before the target. */
#define SEEK_PREROLL 2048

struct decoder {
    AVFormatContext *fmt;
    AVCodecContext *cc;
    SwrContext *swr;
    AVPacket *pkt;
    AVFrame *frame;
    const AVCodec *codec;
    int stream;
    int asf;
    int rate, channels;
    int64_t frames;  /* exact length, -1 if unknown */
    int64_t pos;     /* frames handed out */
    int64_t skip_to; /* after a seek: drop decoded samples before this */
    int eof;         /* demuxer done, decoder flushed */
    int codec_open;
    int codec_err; /* why the codec could not be opened */
    float *buf;
    size_t buf_cap, buf_len, buf_pos; /* frames */
    off_t size;
};

static const char *const avcodec_exts[] = {"m4a", "mp4", "m4b", "m4p", "alac", "wma", "asf", NULL};

static const uint8_t asf_guid[16] = {0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11,
                                     0xa6, 0xd9, 0x00, 0xaa, 0x00, 0x62, 0xce, 0x6c};

/* 1 MP4, 2 ASF, 0 neither. */
static int container_of(const uint8_t *h, size_t n)
{
    if (n >= 8 && !memcmp(h + 4, "ftyp", 4))
        return 1;
    if (n >= 16 && !memcmp(h, asf_guid, 16))
        return 2;
    return 0;
}

static int avcodec_probe(const uint8_t *h, size_t n)
{
    return container_of(h, n) ? 2 : 0;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
    /* libavformat reports every oddity of a broken file on stderr; ours is
     * the one error that goes into the file doc. */
    av_log_set_level(AV_LOG_FATAL);
}

static void avcodec_close_dec(struct decoder *d)
{
    if (!d)
        return;
    avcodec_free_context(&d->cc);
    swr_free(&d->swr);
    av_packet_free(&d->pkt);
    av_frame_free(&d->frame);
    avformat_close_input(&d->fmt);
    free(d->buf);
    free(d);
}

static int fail(struct decoder *d, const char **errmsg, const char *msg, int err)
{
    *errmsg = msg;
    avcodec_close_dec(d);
    return err;
}

static const char *codec_name(enum AVCodecID id)
{
    switch (id) {
    case AV_CODEC_ID_AAC:
        return "aac";
    case AV_CODEC_ID_ALAC:
        return "alac";
    case AV_CODEC_ID_WMAV1:
    case AV_CODEC_ID_WMAV2:
        return "wma";
    case AV_CODEC_ID_WMAPRO:
        return "wmapro";
    case AV_CODEC_ID_WMALOSSLESS:
        return "wmalossless";
    case AV_CODEC_ID_WMAVOICE:
        return "wmavoice";
    case AV_CODEC_ID_MP3:
        return "mp3";
    default:
        return avcodec_get_name(id);
    }
}

static int lossless(enum AVCodecID id)
{
    return id == AV_CODEC_ID_ALAC || id == AV_CODEC_ID_WMALOSSLESS || id == AV_CODEC_ID_FLAC;
}

static int avcodec_open_dec(struct decoder **out, const char *path, const char **errmsg)
{
    uint8_t head[16];
    struct stat st;

    pthread_once(&init_once, global_init);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = pread(fd, head, sizeof(head), 0);
    int ok = fstat(fd, &st) == 0;
    close(fd);
    int kind = container_of(head, n > 0 ? (size_t)n : 0);
    if (!kind) {
        const char *slash = strrchr(path, '/');
        const char *dot = strrchr(slash ? slash : path, '.');
        if (dot && (!strcasecmp(dot, ".wma") || !strcasecmp(dot, ".asf")))
            kind = 2;
        else if (dot && n >= 8)
            kind = 1; /* an MP4 may start with another box than ftyp */
    }
    if (!kind || !ok) {
        *errmsg = "not an MP4 or ASF file";
        return -EINVAL;
    }

    struct decoder *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->stream = -1;
    d->frames = -1;
    d->asf = kind == 2;
    d->size = st.st_size;
    const AVInputFormat *ifmt = av_find_input_format(d->asf ? "asf" : "mov");
    AVDictionary *opts = NULL;
    /* A path is a file, whatever it looks like. */
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    int r = avformat_open_input(&d->fmt, path, ifmt, &opts);
    av_dict_free(&opts);
    if (r < 0) {
        d->fmt = NULL;
        if (r == AVERROR(ENOENT) || r == AVERROR(EACCES))
            return fail(d, errmsg, NULL, r);
        return fail(d, errmsg, d->asf ? "not an ASF file or broken" : "not an MP4 file or broken",
                    -EINVAL);
    }
    r = av_find_best_stream(d->fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &d->codec, 0);
    if (r == AVERROR_STREAM_NOT_FOUND)
        return fail(d, errmsg, "no audio track", -EINVAL);
    if (r < 0 || !d->codec)
        return fail(d, errmsg, "audio codec not supported", -EINVAL);
    d->stream = r;
    AVStream *s = d->fmt->streams[r];
    AVCodecParameters *par = s->codecpar;
    /* Some headers leave the format to the first frame (AAC with a PCE). */
    if (par->sample_rate <= 0 || par->ch_layout.nb_channels <= 0) {
        if (avformat_find_stream_info(d->fmt, NULL) < 0 || par->sample_rate <= 0 ||
            par->ch_layout.nb_channels <= 0)
            return fail(d, errmsg, "audio track with an unusable format", -EINVAL);
    }
    d->rate = par->sample_rate;
    d->channels = par->ch_layout.nb_channels;
    if (d->rate > 1000000 || d->channels > 64)
        return fail(d, errmsg, "audio track with an unusable format", -EINVAL);

    if (s->duration > 0 && s->time_base.num > 0 && s->time_base.den > 0)
        d->frames = av_rescale_q(s->duration, s->time_base, (AVRational){1, d->rate});
    else if (d->fmt->duration > 0)
        d->frames = av_rescale(d->fmt->duration, d->rate, AV_TIME_BASE);

    /* MP4 knows where every sample is: one past the end of the file means
     * the file was cut. */
    int entries = avformat_index_get_entries_count(s);
    if (!d->asf && entries > 0) {
        const AVIndexEntry *e = avformat_index_get_entry(s, entries - 1);
        if (e && e->pos + e->size > d->size)
            return fail(d, errmsg, "truncated MP4: samples past the end of the file", -EINVAL);
    }
    if (entries == 0 && !d->asf)
        return fail(d, errmsg, "MP4 without audio samples", -EINVAL);
    *out = d;
    return 0;
}

static int picture_type(const AVStream *s)
{
    const AVDictionaryEntry *c = av_dict_get(s->metadata, "comment", NULL, 0);
    if (!c)
        return 3; /* MP4 covr says nothing; it is the cover */
    if (!strcasecmp(c->value, "Cover (front)"))
        return 3;
    if (!strcasecmp(c->value, "Cover (back)"))
        return 4;
    return 0;
}

static int avcodec_read_info(struct decoder *d, struct media_info *info, int flags)
{
    AVStream *s = d->fmt->streams[d->stream];
    AVCodecParameters *par = s->codecpar;

    snprintf(info->container, sizeof(info->container), "%s", d->asf ? "asf" : "mp4");
    snprintf(info->codec, sizeof(info->codec), "%s", codec_name(par->codec_id));
    info->rate = d->rate;
    info->channels = d->channels;
    info->frames = d->frames;
    info->duration = d->frames > 0 ? (double)d->frames / d->rate : 0;
    if (lossless(par->codec_id))
        info->bits_per_sample =
            par->bits_per_raw_sample ? par->bits_per_raw_sample : par->bits_per_coded_sample;
    if (par->bit_rate > 0 && par->bit_rate < INT32_MAX)
        info->bitrate = (int)par->bit_rate;
    else if (d->fmt->bit_rate > 0 && d->fmt->bit_rate < INT32_MAX)
        info->bitrate = (int)d->fmt->bit_rate;

    const AVDictionaryEntry *e = NULL;
    while ((e = av_dict_get(d->fmt->metadata, "", e, AV_DICT_IGNORE_SUFFIX))) {
        int r = media_info_add_tag(info, e->key, e->value);
        if (r < 0)
            return r;
    }
    if (!(flags & DECODER_WANT_PICTURES))
        return 0;
    for (unsigned i = 0; i < d->fmt->nb_streams; i++) {
        AVStream *p = d->fmt->streams[i];
        if (!(p->disposition & AV_DISPOSITION_ATTACHED_PIC) || !p->attached_pic.data ||
            p->attached_pic.size <= 0)
            continue;
        const AVDictionaryEntry *t = av_dict_get(p->metadata, "title", NULL, 0);
        int r = media_info_copy_picture(info, NULL, picture_type(p), t ? t->value : NULL,
                                        p->attached_pic.data, (size_t)p->attached_pic.size);
        if (r < 0)
            return r;
    }
    return 0;
}

static int open_codec_once(struct decoder *d);

/* The codec opens on first use; if it cannot, every later call says so
 * (an unopened AVCodecContext must not reach avcodec_flush_buffers). */
static int open_codec(struct decoder *d)
{
    if (d->codec_err)
        return d->codec_err;
    if (d->codec_open)
        return 0;
    int r = open_codec_once(d);
    if (r < 0) {
        d->codec_err = r;
        return r;
    }
    d->codec_open = 1;
    return 0;
}

static int open_codec_once(struct decoder *d)
{
    AVStream *s = d->fmt->streams[d->stream];
    d->cc = avcodec_alloc_context3(d->codec);
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->cc || !d->pkt || !d->frame)
        return -ENOMEM;
    if (avcodec_parameters_to_context(d->cc, s->codecpar) < 0)
        return -ENOMEM;
    d->cc->pkt_timebase = s->time_base;
    d->cc->thread_count = 1; /* we are one job on a shared worker pool */
    if (avcodec_open2(d->cc, d->codec, NULL) < 0)
        return -EINVAL;
    return 0;
}

/* (Re)builds the converter when the decoded format differs from its input. */
static int setup_swr(struct decoder *d, const AVFrame *f)
{
    /* Zeroed: av_channel_layout_copy uninits its destination first. */
    AVChannelLayout out = {0}, in = {0};
    int r;
    if (d->swr)
        return 0;
    av_channel_layout_default(&out, d->channels);
    /* Same layout in and out where possible: no remixing, just the format. */
    if (f->ch_layout.nb_channels == d->channels && f->ch_layout.order != AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_copy(&out, &f->ch_layout);
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&in, f->ch_layout.nb_channels);
    else
        av_channel_layout_copy(&in, &f->ch_layout);
    r = swr_alloc_set_opts2(&d->swr, &out, AV_SAMPLE_FMT_FLT, d->rate, &in, f->format,
                            f->sample_rate, 0, NULL);
    av_channel_layout_uninit(&out);
    av_channel_layout_uninit(&in);
    if (r < 0 || swr_init(d->swr) < 0) {
        swr_free(&d->swr);
        return -EINVAL;
    }
    return 0;
}

/* Converts one decoded frame into d->buf. */
static int convert(struct decoder *d, AVFrame *f)
{
    if (f->nb_samples <= 0 || f->ch_layout.nb_channels <= 0 || f->sample_rate <= 0)
        return 0;
    int r = setup_swr(d, f);
    if (r < 0)
        return r;
    int want = swr_get_out_samples(d->swr, f->nb_samples);
    if (want < 0)
        return -EINVAL;
    if ((size_t)want > d->buf_cap) {
        float *b = realloc(d->buf, (size_t)want * d->channels * sizeof(float));
        if (!b)
            return -ENOMEM;
        d->buf = b;
        d->buf_cap = (size_t)want;
    }
    uint8_t *outp = (uint8_t *)d->buf;
    int n = swr_convert(d->swr, &outp, want, (const uint8_t **)f->extended_data, f->nb_samples);
    if (n < 0) {
        /* The format changed mid-stream: convert from the new one next time. */
        swr_free(&d->swr);
        return 0;
    }
    d->buf_len = (size_t)n;
    d->buf_pos = 0;

    /* After a seek, decoding starts at a packet before the target. */
    if (d->skip_to > 0 && f->best_effort_timestamp != AV_NOPTS_VALUE) {
        AVStream *s = d->fmt->streams[d->stream];
        int64_t at = av_rescale_q(f->best_effort_timestamp, s->time_base, (AVRational){1, d->rate});
        if (at + n <= d->skip_to) {
            d->buf_len = 0;
        } else if (at < d->skip_to) {
            d->buf_pos = (size_t)(d->skip_to - at);
            d->skip_to = 0;
        } else {
            d->skip_to = 0;
        }
        if (d->buf_len)
            d->pos = at + (int64_t)d->buf_pos;
    }
    return 0;
}

static long avcodec_read(struct decoder *d, float *pcm, size_t max_frames)
{
    int r;
    if ((r = open_codec(d)) < 0)
        return r;
    for (int idle = 0; d->buf_pos >= d->buf_len; idle++) {
        if (idle > MAX_IDLE_PACKETS)
            return -EIO;
        r = avcodec_receive_frame(d->cc, d->frame);
        if (r == 0) {
            r = convert(d, d->frame);
            av_frame_unref(d->frame);
            if (r < 0)
                return r;
            continue;
        }
        if (r == AVERROR_EOF)
            return 0;
        if (r != AVERROR(EAGAIN))
            return -EIO;
        if (d->eof)
            return 0;
        r = av_read_frame(d->fmt, d->pkt);
        if (r < 0) {
            d->eof = 1;
            avcodec_send_packet(d->cc, NULL); /* drain */
            continue;
        }
        if (d->pkt->stream_index == d->stream) {
            /* A broken packet costs its samples, not the file. */
            r = avcodec_send_packet(d->cc, d->pkt);
            if (r < 0 && r != AVERROR(EAGAIN) && r != AVERROR_INVALIDDATA)
                LOG(E_DEBUG, L_MEDIA, "avcodec: packet refused: %d", r);
        }
        av_packet_unref(d->pkt);
    }
    size_t n = d->buf_len - d->buf_pos;
    if (n > max_frames)
        n = max_frames;
    /* The container's length is exact; decoders may add padding at the end. */
    if (d->frames > 0) {
        if (d->pos >= d->frames)
            return 0;
        if ((int64_t)n > d->frames - d->pos)
            n = (size_t)(d->frames - d->pos);
    }
    memcpy(pcm, d->buf + d->buf_pos * d->channels, n * d->channels * sizeof(float));
    d->buf_pos += n;
    d->pos += (int64_t)n;
    return (long)n;
}

static int avcodec_seek_dec(struct decoder *d, int64_t frame)
{
    int r;
    if ((r = open_codec(d)) < 0)
        return r;
    AVStream *s = d->fmt->streams[d->stream];
    /* Transform codecs (AAC, WMA) overlap each frame with the one before:
     * the first frame decoded after a seek is wrong. Start a little early
     * and drop what comes before the target. */
    int64_t preroll = lossless(s->codecpar->codec_id) ? 0 : SEEK_PREROLL;
    if (s->codecpar->seek_preroll > preroll)
        preroll = s->codecpar->seek_preroll;
    int64_t from = frame > preroll ? frame - preroll : 0;
    int64_t ts = av_rescale_q(from, (AVRational){1, d->rate}, s->time_base);
    if (av_seek_frame(d->fmt, d->stream, ts, AVSEEK_FLAG_BACKWARD) < 0)
        return -EIO;
    avcodec_flush_buffers(d->cc);
    if (d->swr) {
        swr_free(&d->swr);
    }
    d->eof = 0;
    d->buf_len = d->buf_pos = 0;
    d->skip_to = frame;
    d->pos = frame;
    return 0;
}

const struct decoder_ops decoder_avcodec = {
    .name = "avcodec",
    .extensions = avcodec_exts,
    .probe = avcodec_probe,
    .open = avcodec_open_dec,
    .read_info = avcodec_read_info,
    .read = avcodec_read,
    .seek = avcodec_seek_dec,
    .close = avcodec_close_dec,
};
