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
    char *mime; /* "image/jpeg", "image/png", ... or NULL if unknown */
    int type;   /* ID3v2/FLAC picture type: 3 = front cover, 0 = other */
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
    int bitrate;         /* average bits per second (file size / duration if not stated) */
    int bits_per_sample; /* of a lossless source, 0 for lossy */
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

void media_info_init(struct media_info *info);  /* empty tags, NAN gains */
void media_info_clear(struct media_info *info); /* frees everything */
/* Adds one value to a tag (key lower-cased and mapped to the normalized name
 * by media_tag_key). Empty and repeated values are dropped; ReplayGain keys
 * go into info->rg instead; "3/12" under a track or disc key becomes number
 * and total. Returns 0 or -ENOMEM. */
int media_info_add_tag(struct media_info *info, const char *key, const char *value);
/* Takes ownership of data. */
int media_info_add_picture(struct media_info *info, const char *mime, int type,
                           const char *description, uint8_t *data, size_t len);
/* Parses ReplayGain values ("-6.20 dB", "0.988") from tag text into info->rg.
 * Knows REPLAYGAIN_TRACK_GAIN/PEAK, REPLAYGAIN_ALBUM_GAIN/PEAK keys in any case.
 * Returns 1 if key was a ReplayGain key, 0 if not. */
int media_info_replaygain_tag(struct media_info *info, const char *key, const char *value);

/* ---- for the plugins ---- */

/* What outside input may make us hold: longer values, more values per key,
 * more keys or pictures are dropped (tags are outside input). */
#define MEDIA_TAG_MAX_LEN     (64 * 1024)
#define MEDIA_TAG_MAX_VALUES  64
#define MEDIA_TAG_MAX_KEYS    256
#define MEDIA_PICTURE_MAX_LEN (16 * 1024 * 1024)
#define MEDIA_PICTURE_MAX     16

/* The normalized name of a format's tag key ("TPE2", "album_artist",
 * "WM/AlbumArtist", "\xa9ART", "MusicBrainz Album Id" ...), written into out
 * (64 bytes are enough). Keys the table does not know are kept lower-cased
 * with spaces as '_'. Returns NULL for keys that are not tags (encoder
 * settings, iTunNORM, ReplayGain ...) or not printable. */
const char *media_tag_key(const char *key, char *out, size_t outlen);
/* 1 if key is in the table of known names (for formats such as ID3 whose
 * unknown frames are technical, not free-form). */
int media_tag_known(const char *key);
/* Like media_info_add_tag, for values of n bytes that need not be
 * NUL-terminated (text that is not UTF-8 is taken as Latin-1). */
int media_info_add_tagn(struct media_info *info, const char *key, const char *value, size_t n);
/* One "KEY=value" Vorbis comment (FLAC, Ogg Vorbis, Opus); knows
 * METADATA_BLOCK_PICTURE and the older COVERART. */
int media_info_add_vorbis_comment(struct media_info *info, const char *comment, size_t len,
                                  int flags);
/* A FLAC PICTURE block body (also the base64 METADATA_BLOCK_PICTURE);
 * -EINVAL if malformed. */
int media_info_add_flac_picture(struct media_info *info, const uint8_t *data, size_t len);
/* Copies picture bytes (the caller keeps its own). */
int media_info_copy_picture(struct media_info *info, const char *mime, int type,
                            const char *description, const uint8_t *data, size_t len);
/* Adds the tags of src whose keys dst lacks, then the ReplayGain values dst
 * lacks and src's pictures if dst has none (a second tag of a file, such as
 * APE after ID3v2, fills gaps and never overrides). */
void media_info_merge_missing(struct media_info *dst, struct media_info *src);
/* "image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp" by the
 * first bytes, or NULL. */
const char *media_image_mime(const uint8_t *data, size_t len);
/* ID3v1 genre number to name (0..191); NULL if out of range. */
const char *media_id3_genre(int n);
/* Base64 decode (RFC 4648, whitespace ignored, padding optional).
 * Returns a malloc'd buffer and its length, or NULL if malformed. */
uint8_t *media_base64_decode(const char *in, size_t inlen, size_t *outlen);
/* A locale-independent decimal ("-6.20 dB", "+1,5"): 0 and *out, or -EINVAL. */
int media_parse_decimal(const char *s, double *out);

struct decoder; /* a plugin's open file */

enum { DECODER_WANT_PICTURES = 1 << 0 };

struct decoder_ops {
    const char *name;              /* "mpg123", "flac", ... */
    const char *const *extensions; /* lower-case, without dot; NULL-ended */
    /* How sure the plugin is that these first bytes are its format: 0 no,
     * 1 maybe (by extension only), 2 yes (magic). May be NULL (extension only). */
    int (*probe)(const uint8_t *head, size_t len);
    /* Opens path; returns 0 or a negative errno (-EINVAL: not this format or
     * broken, -ENOENT, -EIO...). On failure *errmsg may point at a static text. */
    int (*open)(struct decoder **d, const char *path, const char **errmsg);
    /* Fills info (format, duration, tags, ReplayGain; pictures if asked).
     * Called once per open: a plugin may hand its pictures over rather
     * than copy them. */
    int (*read_info)(struct decoder *d, struct media_info *info, int flags);
    /* Decodes up to max_frames into pcm (max_frames * channels floats).
     * Returns frames decoded, 0 at the end, or a negative errno. */
    long (*read)(struct decoder *d, float *pcm, size_t max_frames);
    /* To a frame position (samples per channel). Optional. */
    int (*seek)(struct decoder *d, int64_t frame);
    void (*close)(struct decoder *d);
};

/* The registry, NULL-ended, and its members (tests and fuzzers call them
 * directly). */
extern const struct decoder_ops *const decoder_plugins[];
extern const struct decoder_ops decoder_mpg123, decoder_flac, decoder_vorbis, decoder_opus,
    decoder_avcodec, decoder_mpc;

/* The plugin for a file: magic first, then extension. NULL if none. */
const struct decoder_ops *decoder_for_file(const char *path, const uint8_t *head, size_t len);

/* Opens any supported file: picks the plugin, opens, fills info.
 * On failure returns a negative errno (-ENOENT: the file is gone) and a
 * human-readable reason in errbuf ("empty file", "not an audio file
 * (unknown format)", "truncated MP3: shorter than its Info frame says"...),
 * and leaves nothing to free: *ops and *d NULL, info cleared. */
int decoder_open_file(const char *path, int flags, const struct decoder_ops **ops,
                      struct decoder **d, struct media_info *info, char *errbuf, size_t errlen);

#endif
