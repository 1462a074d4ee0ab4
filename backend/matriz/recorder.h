/*
 * Optional recording of a Matriz peer's audio (peer.yaml `record`): the mix
 * it hears, its own input ("self"), and each remote peer apart, as 16-bit
 * stereo WAV files named after what they hold and the UTC time they began:
 *
 *     <dir>/mix-20261121T101500Z.wav   self-....wav   peer-porto-....wav
 *
 * The audio thread copies each period into a lock-free ring (no lock, no
 * allocation, no I/O); a writer thread of its own empties it into the files,
 * rewriting their headers every second (a killed peer leaves readable files)
 * and on recorder_free (SIGINT/SIGTERM: complete files). A remote peer's file
 * begins when its link does and ends when it leaves; a new one begins when it
 * comes back.
 *
 * Problems never stop the performance: a folder that cannot be written to
 * means no recording (logged at start); a failed write (disk full) closes
 * that file (logged, with the reason); a writer that falls behind drops
 * audio, logged as how much.
 *
 * Thread: recorder_write on the audio thread; the rest on the loop thread.
 */
#ifndef IMES_MATRIZ_RECORDER_H
#define IMES_MATRIZ_RECORDER_H

#include <stdint.h>

#include "matriz/audio.h"

struct recorder_options {
    const char *dir;
    int mix, self, peers; /* what to record */
    int rate;
};

/* NULL when nothing is to be recorded, or with the reason logged (the
 * folder is missing or not writable, out of memory). */
struct recorder *recorder_new(const struct recorder_options *o);
/* Writes what is still in the ring, closes the files (valid headers). */
void recorder_free(struct recorder **r);

/* The period just processed, number `cycle` (counting from 0); slots: the
 * outputs (bits) that play a link. Thread: audio. */
void recorder_write(struct recorder *r, const struct audio_block *b, uint32_t slots,
                    uint64_t cycle);

/* From period `cycle` on, output `slot` plays the peer called name (NULL:
 * none: its file ends). */
void recorder_slot(struct recorder *r, int slot, const char *name, uint64_t cycle);

#endif
