/*
 * Decoder plugins: one `const struct decoder_ops` per library (libmpg123,
 * libFLAC, libvorbisfile, libopusfile, libavformat/libavcodec, libmpcdec),
 * listed in a NULL-ended registry (decoder.c). Each plugin both decodes audio
 * and reads its own format's metadata: tags, ReplayGain, pictures, exact
 * duration.
 *
 * Audio is pulled (read N frames), not pushed into a sink as MPD does: decode
 * jobs run on the shared worker pool and must return after a bounded amount
 * of work, so a plugin may never block waiting for its consumer.
 *
 * PCM is interleaved float32 in [-1, 1] at the file's own rate and channel
 * count; resampling and mixing are the pipeline's job.
 * Thread: worker (every op). A decoder is used by one thread at a time.
 */
#ifndef IMES_DECODER_H
#define IMES_DECODER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* ReplayGain as the file states it. NAN where absent. */
struct replaygain {
    double track_gain; /* dB */
    double track_peak; /* linear, 1.0 = full scale */
    double album_gain;
    double album_peak;
};

/* An embedded picture; data owned by the media_info. */
struct media_picture {
    char *mime;       /* "image/jpeg", "image/png", ... or NULL if unknown */
    int type;         /* ID3v2/FLAC picture type: 3 = front cover, 0 = other */
    char *description;
    uint8_t *data;
    size_t len;
};

struct media_info {
    char container[16]; /* "mp3", "flac", "ogg", "mp4", "asf", "mpc" */
    char codec[16];     /* "mp3", "flac", "vorbis", "opus", "aac", "alac", "wma", "musepack" */
    double duration;    /* seconds, exact where the format allows */
    int64_t frames;     /* samples per channel, -1 if unknown */
    int rate;           /* Hz of the decoded PCM */
    int channels;
    int bitrate;          /* average bits per second (file size / duration if not stated) */
    int bits_per_sample;  /* of a lossless source, 0 for lossy */
    /* Tags with normalized lower-case keys, each value an array of strings
     * (multi-valued tags stay lists), unicode as written:
     * title, artist, album, albumartist, tracknumber, tracktotal, discnumber,
     * disctotal, date, genre, composer, artistsort, albumsort, titlesort,
     * albumartistsort, musicbrainz_trackid, musicbrainz_albumid,
     * musicbrainz_artistid, musicbrainz_albumartistid, musicbrainz_releasegroupid,
     * comment, ... Numbers stay strings here ("3/12" is split into
     * tracknumber "3" and tracktotal "12"); validation is the scanner's. */
    json_t *tags;
    struct replaygain rg;
    struct media_picture *pictures;
    size_t npictures;
};

void media_info_init(struct media_info *info);   /* empty tags, NAN gains */
void media_info_clear(struct media_info *info);  /* frees everything */
/* Adds one value to a tag (key lower-cased and mapped to the normalized name
 * by media_tag_key). Empty values are dropped. Returns 0 or -ENOMEM. */
int media_info_add_tag(struct media_info *info, const char *key, const char *value);
/* Takes ownership of data. */
int media_info_add_picture(struct media_info *info, const char *mime, int type,
                           const char *description, uint8_t *data, size_t len);
/* Parses ReplayGain values ("-6.20 dB", "0.988") from tag text into info->rg.
 * Knows REPLAYGAIN_TRACK_GAIN/PEAK, REPLAYGAIN_ALBUM_GAIN/PEAK keys in any case.
 * Returns 1 if key was a ReplayGain key, 0 if not. */
int media_info_replaygain_tag(struct media_info *info, const char *key, const char *value);

struct decoder; /* a plugin's open file */

enum { DECODER_WANT_PICTURES = 1 << 0 };

struct decoder_ops {
    const char *name;                /* "mpg123", "flac", ... */
    const char *const *extensions;   /* lower-case, without dot; NULL-ended */
    /* How sure the plugin is that these first bytes are its format: 0 no,
     * 1 maybe (by extension only), 2 yes (magic). May be NULL (extension only). */
    int (*probe)(const uint8_t *head, size_t len);
    /* Opens path; returns 0 or a negative errno (-EINVAL: not this format or
     * broken, -ENOENT, -EIO...). On failure *errmsg may point at a static text. */
    int (*open)(struct decoder **d, const char *path, const char **errmsg);
    /* Fills info (format, duration, tags, ReplayGain; pictures if asked). */
    int (*read_info)(struct decoder *d, struct media_info *info, int flags);
    /* Decodes up to max_frames into pcm (max_frames * channels floats).
     * Returns frames decoded, 0 at the end, or a negative errno. */
    long (*read)(struct decoder *d, float *pcm, size_t max_frames);
    /* To a frame position (samples per channel). Optional. */
    int (*seek)(struct decoder *d, int64_t frame);
    void (*close)(struct decoder *d);
};

/* The registry, NULL-ended. */
extern const struct decoder_ops *const decoder_plugins[];

/* The plugin for a file: magic first, then extension. NULL if none. */
const struct decoder_ops *decoder_for_file(const char *path, const uint8_t *head, size_t len);

/* Opens any supported file: picks the plugin, opens, fills info.
 * On failure returns a negative errno and a human-readable reason in
 * errbuf ("not an audio file", "truncated MP3: no frames", ...). */
int decoder_open_file(const char *path, int flags, const struct decoder_ops **ops,
                      struct decoder **d, struct media_info *info, char *errbuf, size_t errlen);

#endif
