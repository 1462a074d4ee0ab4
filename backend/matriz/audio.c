/*
 * The audio backend registry and what the backends share (see audio.h).
 * JACK's backend lives in audio_jack.c, which only the matriz program (and
 * the tests that need it) link, with libjack: audio_jack_ops is declared
 * weak here, so every other program links without libjack and finds no
 * "jack" backend.
 */
#include "matriz/audio.h"

#include <stddef.h>
#include <string.h>

extern const struct audio_ops audio_jack_ops __attribute__((weak));

const struct audio_ops *audio_find(const char *name)
{
    if (!name)
        return NULL;
    if (strcmp(name, "file") == 0)
        return &audio_file_ops;
    if (strcmp(name, "jack") == 0 && &audio_jack_ops != NULL)
        return &audio_jack_ops;
    return NULL;
}

void audio_mix(const struct audio_block *b, float *mix_l, float *mix_r)
{
    memset(mix_l, 0, b->frames * sizeof(float));
    memset(mix_r, 0, b->frames * sizeof(float));
    for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++) {
        if (!b->out[s][0])
            continue;
        for (uint32_t i = 0; i < b->frames; i++) {
            mix_l[i] += b->out[s][0][i];
            mix_r[i] += b->out[s][1][i];
        }
    }
    for (uint32_t i = 0; i < b->frames; i++) {
        mix_l[i] = mix_l[i] > 1.f ? 1.f : mix_l[i] < -1.f ? -1.f : mix_l[i];
        mix_r[i] = mix_r[i] > 1.f ? 1.f : mix_r[i] < -1.f ? -1.f : mix_r[i];
    }
}
