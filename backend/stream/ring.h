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
    uint64_t seq; /* 0, 1, 2, ... since the ring was made */
    const uint8_t *data;
    size_t len;
    int samples; /* per channel, at 48 kHz */
    int64_t pts; /* sample position in the channel's stream */
    double due;  /* monotonic time it was released */
    int silence; /* the channel was paused / silent */
};

struct ring;

/* capacity: frames kept (e.g. 10 s of 20 ms frames = 500); bytes_max: a hard
 * limit on the data kept, allocated here once (one slab). NULL if either is 0
 * or out of memory. */
struct ring *ring_new(size_t capacity, size_t bytes_max);
void ring_free(struct ring **r);

/* Appends a copy of a frame; the oldest go when the slots or the bytes are
 * used up. Returns its seq, or -E2BIG if len is more than bytes_max (the
 * ring is then unchanged). A frame's data is never split, so up to one
 * frame's length of the slab can go unused where the data wraps. */
int64_t ring_push(struct ring *r, const uint8_t *data, size_t len, int samples, int64_t pts,
                  double due, int silence);

/* The frame with this seq: 1 and fills out, 0 if not written yet, -1 if it is
 * gone (the reader fell behind). out->data stays valid until the next push. */
int ring_get(const struct ring *r, uint64_t seq, struct ring_frame *out);

uint64_t ring_next_seq(const struct ring *r);   /* seq the next push gets */
uint64_t ring_oldest_seq(const struct ring *r); /* oldest kept */
/* The seq from which a new listener starts to get `seconds` of burst: the
 * newest frames whose samples (at 48 kHz) add up to at least that, or all
 * that are kept; ring_next_seq when seconds <= 0 or the ring is empty. */
uint64_t ring_burst_start(const struct ring *r, double seconds);
size_t ring_bytes(const struct ring *r); /* data bytes kept (metrics) */

#endif
