/*
 * A channel's audio pipeline, the worker side of playback:
 *
 *   deck (decoder plugin → ReplayGain → libsoxr to 48 kHz stereo float)
 *     ─▶ mixer (crossfade between decks, fade on pause/resume)
 *     ─▶ encoders (one per codec: LAME MP3, Opus) ─▶ frames out
 *
 * The channel player (state/player.c, on the loop) owns one pipeline and
 * calls pipeline_produce() on the audio worker, one call in flight at a time,
 * for a few tens of milliseconds of output each: the frames come back with
 * their sample position and the player releases them into the channel's
 * rings when they fall due. Between calls (never during one) the player
 * gives commands: the next track, play a track now, play or pause.
 *
 * Decks decode ahead (about a second) so a slow disk read does not starve
 * the output; a deck for the next track is opened before the current one
 * ends, so the crossfade starts on time. While paused and fully faded out,
 * or with nothing to play, the output is each encoder's silence frame (no
 * encoding work), so devices keep a flowing stream.
 * Thread: one thread at a time (the player serializes calls).
 */
#ifndef IMES_PIPELINE_H
#define IMES_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "media/encoder.h"

#define PIPELINE_RATE       48000
#define PIPELINE_CHANNELS   2
#define PIPELINE_MAX_CODECS 4

struct pipeline_track {
    uint64_t id; /* the player's handle for this track (e.g. entry number) */
    const char *path;
    double start;   /* seconds into the file to begin (resume after restart) */
    double gain_db; /* ReplayGain chosen by the player (album → track → 0 dB) */
    double peak;    /* linear peak for that gain's clipping protection; 0: unknown */
};

struct pipeline_params {
    const struct encoder_ops *codecs[PIPELINE_MAX_CODECS];
    int bitrates[PIPELINE_MAX_CODECS]; /* bits per second; 0: the encoder's default */
    int ncodecs;
    double crossfade; /* seconds between tracks (0.5 default; 0: gapless cut); up to 15 */
    double fade;      /* seconds of fade on pause and resume; 0: the default 0.2,
                       * negative: none; up to 5 */
};

/* Every track that starts (is heard) gets exactly one TRACK_ENDED or, if
 * it broke mid-way, TRACK_FAILED; a track that cannot be opened (or has
 * no audio after its start) gets TRACK_FAILED alone. */
enum pipeline_event_kind {
    PIPELINE_TRACK_STARTED = 1, /* its first sample is at pts */
    PIPELINE_TRACK_ENDED,       /* pts is just after its last sample (crossfade counted) */
    /* Could not be opened: pts is where that was found (a queued track is
     * opened about 3 s + crossfade before it is due). Broke while
     * decoding: it plays what it had, and pts is just after that, in
     * place of TRACK_ENDED. error says why. */
    PIPELINE_TRACK_FAILED,
    /* Nothing is queued to follow `track`: the current track ends within
     * 5 s + crossfade, or the queued / play_now track `track` just failed
     * (continue after that one, not with it). Once per occasion. */
    PIPELINE_NEED_NEXT,
    PIPELINE_PAUSED, /* the fade-out after pipeline_set_playing(0) is done; track: the
                      * paused one (0: none) */
};

struct pipeline_event {
    enum pipeline_event_kind kind;
    uint64_t track;
    int64_t pts;     /* output sample position the event belongs to */
    char error[128]; /* TRACK_FAILED: why */
};

struct pipeline_frame {
    int codec; /* index into params.codecs */
    const uint8_t *data;
    size_t len;
    int samples;
    /* Of its first sample, in the output stream. The first frames of a
     * codec are before 0 (its delay: MP3 -1105, Opus -312); every frame
     * ends at or before pts_end. */
    int64_t pts;
    int silence; /* an encoder silence frame (paused, nothing to play), not encoded audio */
};

/* Filled by pipeline_produce; valid until the next produce call. */
struct pipeline_output {
    const struct pipeline_frame *frames;
    size_t nframes;
    const struct pipeline_event *events;
    size_t nevents;
    int64_t pts_end; /* output samples produced so far in total */
    uint64_t track;  /* the track audible now, or paused (0: none); in a
                      * crossfade the incoming one */
    double position; /* seconds into that track's file at pts_end */
};

struct pipeline;

/* Opens the encoders. Returns NULL with a reason in err. */
struct pipeline *pipeline_new(const struct pipeline_params *params, char *err, size_t errlen);
void pipeline_free(struct pipeline **p);

/* The codec header for new listeners of codec i (see encoder_ops.header). */
int pipeline_header(struct pipeline *p, int codec, int index, const uint8_t **data, size_t *len);
/* The silence frame of codec i (for muted listeners). */
int pipeline_silence(struct pipeline *p, int codec, struct encoded_frame *out);

/* Commands, between produce calls; they only take note (no file work on
 * the caller's thread), the next produce call acts. The track's strings
 * are copied. 0, -EINVAL (no path) or -ENOMEM. A new pipeline is playing
 * and has nothing queued. */
/* The track to play when the current one ends (replaces a queued one). With
 * nothing playing it starts at once (paused: when resumed). */
int pipeline_queue_next(struct pipeline *p, const struct pipeline_track *t);
/* Play t now: crossfade from whatever plays into it (over the crossfade,
 * or the fade if the crossfade is 0; paused: a switch). If t fails, the
 * queued track plays now instead, or else what plays fades out. */
int pipeline_play_now(struct pipeline *p, const struct pipeline_track *t);
/* Stop after the current track / clear what is queued. */
void pipeline_clear_next(struct pipeline *p);
/* Fade out to silence (0) or back in (1). */
void pipeline_set_playing(struct pipeline *p, int playing);
void pipeline_set_crossfade(struct pipeline *p, double seconds);

/* Thread: worker. Produces `samples` more output samples (per channel, at
 * 48 kHz; e.g. 960 for 20 ms; at most 48000), encoded by every codec.
 * Returns 0, -EINVAL, -ENOMEM or an encoder's error; a track's failure
 * is an event, not an error. */
int pipeline_produce(struct pipeline *p, int samples, struct pipeline_output *out);

#endif
