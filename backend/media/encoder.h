/*
 * Encoder plugins: one `const struct encoder_ops` per codec (LAME MP3, Opus),
 * used once per channel per codec: the channel's mixed 48 kHz float PCM goes
 * in, whole codec frames come out into the channel's ring (stream/ring.h),
 * which every listener of that codec reads.
 *
 * The ring holds bare codec frames (MP3 frames, Opus packets), not a
 * container: each listener frames them itself (Ogg pages for Opus over HTTP,
 * RTP payloads for RTSP, ICY metadata for MP3), so a listener can join at any
 * frame, and a muted device can be given the codec's silence frame within its
 * own valid stream.
 *
 * Life: open (may adjust params, e.g. Opus frame size) → write PCM → read
 * frames until none → ... → flush at the end. The codec header (Opus:
 * OpusHead/OpusTags) is read after open and sent to every new listener.
 * A muted or paused listener gets silence() frames in place of the
 * channel's, so the silence must decode without the frames around it (MP3:
 * no bit reservoir, see enc_lame.c).
 * Thread: one thread at a time per encoder (a worker).
 */
#ifndef IMES_ENCODER_H
#define IMES_ENCODER_H

#include <stddef.h>
#include <stdint.h>

struct encoder_params {
    int rate;      /* input rate in Hz: 48000 */
    int channels;  /* input channels: 2 */
    int bitrate;   /* bits per second: MP3 192000, Opus 128000 by default */
    int frame_us;  /* Opus: 2500, 5000, 10000, 20000 (default), 40000, 60000; MP3: ignored */
    int lowdelay;  /* Opus: OPUS_APPLICATION_RESTRICTED_LOWDELAY (Matriz) */
    int fec;       /* Opus: in-band FEC (SILK only: see enc_opus.c) */
    int loss_perc; /* Opus, with fec: expected packet loss in % (0: 10) */
};

/* One encoded frame. data is owned by the encoder until the next call
 * (the silence frame's until close). */
struct encoded_frame {
    const uint8_t *data;
    size_t len;
    int samples; /* PCM samples per channel it covers (MP3 1152, Opus 960 at 20 ms) */
    /* Sample position of its first sample in the decoded stream, which begins
     * with delay() samples of codec delay: frame k of a fixed-size codec is
     * at k * samples, and input sample n comes out at n + delay(). */
    int64_t pts;
};

struct encoder;

struct encoder_ops {
    const char *name;         /* "mp3", "opus" */
    const char *content_type; /* of the HTTP stream: "audio/mpeg", "audio/ogg" */
    /* Fills in params left 0 (bitrate, frame_us) with the codec's
     * defaults. Returns 0 or a negative errno, with *errmsg saying why. */
    int (*open)(struct encoder **e, struct encoder_params *params, const char **errmsg);
    /* The codec header for new listeners (Opus: OpusHead, OpusTags; MP3:
     * none). index 0, 1, ... until it returns -ENOENT. Valid until close. */
    int (*header)(struct encoder *e, int index, const uint8_t **data, size_t *len);
    /* Takes frames of interleaved float PCM. Returns 0 or a negative errno. */
    int (*write)(struct encoder *e, const float *pcm, size_t frames);
    /* The next whole encoded frame: 1 and fills out, 0 if none is ready, or
     * a negative errno. */
    int (*read)(struct encoder *e, struct encoded_frame *out);
    /* Pads and encodes what is buffered (end of stream); then read. Writes
     * after it fail with -EINVAL. */
    int (*flush)(struct encoder *e);
    /* Samples of delay the codec adds (MP3 encoder + decoder delay, Opus
     * pre-skip). */
    int (*delay)(struct encoder *e);
    /* A frame of digital silence that decodes on its own anywhere in this
     * encoder's stream, in place of any frame of the same length: what a
     * muted or paused listener gets so its player stays connected. Encoded
     * once (at open); out->data stays valid until close, out->pts is 0.
     * Returns 0 or a negative errno. */
    int (*silence)(struct encoder *e, struct encoded_frame *out);
    void (*close)(struct encoder *e);
};

extern const struct encoder_ops encoder_mp3;
extern const struct encoder_ops encoder_opus;
/* NULL-ended registry, for lookups by name. */
extern const struct encoder_ops *const encoder_plugins[];
const struct encoder_ops *encoder_by_name(const char *name);

#endif
