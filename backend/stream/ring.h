/*
 * A channel's ring of encoded frames, one per codec: written by the channel as
 * frames become due (paced on the monotonic clock), read by any number of
 * listeners through their own cursor (a sequence number), never copied per
 * listener. A cursor older than the oldest frame kept means that listener fell
 * too far behind: it is dropped alone.
 * Thread: loop.
 */
#ifndef IMES_RING_H
#define IMES_RING_H

#include <stddef.h>
#include <stdint.h>

struct ring_frame {
    uint64_t seq;       /* 0, 1, 2, ... since the ring was made */
    const uint8_t *data;
    size_t len;
    int samples;        /* per channel, at 48 kHz */
    int64_t pts;        /* sample position in the channel's stream */
    double due;         /* monotonic time it was released */
    int silence;        /* the channel was paused / silent */
};

struct ring;

/* capacity: frames kept (e.g. 10 s of 20 ms frames = 500); bytes_max: a hard
 * limit on the data kept. */
struct ring *ring_new(size_t capacity, size_t bytes_max);
void ring_free(struct ring **r);

/* Appends a copy of a frame; the oldest go when full. Returns its seq. */
uint64_t ring_push(struct ring *r, const uint8_t *data, size_t len, int samples, int64_t pts,
                   double due, int silence);

/* The frame with this seq: 1 and fills out, 0 if not written yet, -1 if it is
 * gone (the reader fell behind). */
int ring_get(const struct ring *r, uint64_t seq, struct ring_frame *out);

uint64_t ring_next_seq(const struct ring *r);   /* seq the next push gets */
uint64_t ring_oldest_seq(const struct ring *r); /* oldest kept */
/* The seq from which a new listener starts to get `seconds` of burst. */
uint64_t ring_burst_start(const struct ring *r, double seconds);

#endif
