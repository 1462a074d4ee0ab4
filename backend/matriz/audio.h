/*
 * Audio I/O of a Matriz peer behind one interface: the sound card through
 * JACK, or files and a generated tone for machines without one (tests,
 * servers). Backends are `const struct audio_ops` tables in a NULL-ended
 * registry (audio_find).
 *
 * The model is JACK's: the backend owns the audio thread and calls the
 * peer's process function once per period with the captured stereo input
 * and one stereo output per remote peer to fill; it then sums those into the
 * mix pair itself. Outputs are added and removed (from the main thread) as
 * remote peers come and go; a slot not in use is NULL in the block.
 *
 *     const struct audio_ops *ops = audio_find("file");
 *     struct audio *a;
 *     ops->open(&a, &opt, process, peer);   ... slot = ops->add_output(a, "porto");
 *     ops->start(a);                         ... ops->remove_output(a, slot);
 *     ops->close(&a);
 *
 * file: input is a WAV file (PCM 16/24/32-bit or float, 48 kHz, 1 or 2
 *   channels; played in a loop) or a sine tone (tone_hz, tone_dbfs), or
 *   silence; outputs are 16-bit stereo WAV files in output_dir, one per
 *   remote peer (<name>.wav, kept open across leaving and rejoining, silent
 *   while the peer is away, so all files stay aligned with mix.wav) and
 *   mix.wav. Paced in real time on the monotonic clock, one period at a
 *   time; a period more than 50 ms late re-anchors the clock (logged).
 *   Headers are rewritten every second, so the files are readable while the
 *   peer runs and after it is killed.
 * jack: client `name`; capture ports in_1, in_2 (connected to the ports
 *   matching connect_capture, when given); per remote peer <name>_L and
 *   <name>_R; mix_L, mix_R. Rate and period are the server's.
 * Thread: open/start/add_output/remove_output/close on the main thread; the
 * process function on the backend's audio thread.
 */
#ifndef IMES_MATRIZ_AUDIO_H
#define IMES_MATRIZ_AUDIO_H

#include <stdint.h>

#define AUDIO_MAX_OUTPUTS 32 /* remote peers at once */
#define AUDIO_NAME_MAX    64

struct audio_block {
    uint32_t frames;   /* in this period */
    double now;        /* the first frame's time: start + frames before / rate (smooth) */
    uint64_t position; /* frames before this block */
    const float *in[2];
    float *out[AUDIO_MAX_OUTPUTS][2]; /* NULL where no output is in use; filled by process */
};

/* Thread: audio. Must not block (JACK: real-time). Outputs are zeroed before. */
typedef void (*audio_process_fn)(struct audio_block *b, void *arg);

struct audio_options {
    const char *name; /* JACK client name; file: for logs */
    int rate;         /* file: 48000 (JACK: the server's) */
    int period;       /* file: frames per period, 16..4096 (JACK: the server's) */
    /* file */
    const char *input;      /* a WAV file, or NULL/"" for the tone */
    double tone_hz;         /* 0 = silence */
    double tone_dbfs;       /* level of the tone, e.g. -12 */
    const char *output_dir; /* NULL/"" = outputs are dropped */
    /* jack */
    const char *connect_capture; /* a regular expression of ports, NULL = none */
    const char *server;          /* JACK server name, NULL = default */
};

struct audio;

struct audio_ops {
    const char *name;
    /* 0, or <0 with the reason logged. */
    int (*open)(struct audio **out, const struct audio_options *opt, audio_process_fn fn,
                void *arg);
    int (*start)(struct audio *a);
    /* An output pair for a remote peer: its slot (0..AUDIO_MAX_OUTPUTS-1), or
     * -ENOSPC, -EEXIST (that name is in use), -EIO. */
    int (*add_output)(struct audio *a, const char *peer);
    void (*remove_output)(struct audio *a, int slot);
    /* The sample rate and period in effect. */
    int (*rate)(const struct audio *a);
    int (*period)(const struct audio *a);
    /* Stops the audio thread, closes everything, sets *a to NULL. */
    void (*close)(struct audio **a);
};

extern const struct audio_ops audio_file_ops;

/* The backend called name ("file", "jack"), or NULL (unknown, or not built
 * into this program: JACK is linked into matriz only). */
const struct audio_ops *audio_find(const char *name);

/* ---- shared by the backends ---- */

/* Sums the outputs in use into mix (frames each), clipping at ±1. */
void audio_mix(const struct audio_block *b, float *mix_l, float *mix_r);

#endif
