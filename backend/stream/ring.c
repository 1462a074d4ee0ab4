/*
 * The ring of encoded frames (see ring.h): a fixed array of slots indexed by
 * seq % capacity, and one slab of bytes_max bytes that the frames' data goes
 * into one after another, wrapping at the end. Both are allocated once, so a
 * push never allocates and never fails for memory.
 *
 * Data positions are kept as 64-bit byte counts that only grow ("virtual"
 * positions); the slab offset is the position modulo bytes_max. A frame
 * that would straddle the end of the slab starts at the next multiple of
 * bytes_max instead, and the oldest frames go while the kept data, from the
 * oldest frame's start to the new frame's end, would be longer than the
 * slab: data spanning at most bytes_max virtual bytes never overlaps itself.
 * Thread: loop.
 */
#include "stream/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RING_RATE 48000.0

struct slot {
    uint64_t vpos; /* virtual position of its data */
    size_t len;
    int64_t pts;
    double due;
    int samples;
    int silence;
};

struct ring {
    struct slot *slots;
    size_t capacity;
    uint8_t *slab;
    size_t bytes_max;
    uint64_t next;   /* seq of the next push */
    uint64_t oldest; /* seq of the oldest frame kept; == next when empty */
    uint64_t vend;   /* virtual position after the newest frame's data */
    size_t bytes;    /* data bytes kept */
};

struct ring *ring_new(size_t capacity, size_t bytes_max)
{
    if (!capacity || !bytes_max)
        return NULL;
    struct ring *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->slots = calloc(capacity, sizeof(*r->slots));
    r->slab = malloc(bytes_max);
    if (!r->slots || !r->slab) {
        free(r->slots);
        free(r->slab);
        free(r);
        return NULL;
    }
    r->capacity = capacity;
    r->bytes_max = bytes_max;
    return r;
}

void ring_free(struct ring **rp)
{
    struct ring *r = *rp;
    if (!r)
        return;
    free(r->slots);
    free(r->slab);
    free(r);
    *rp = NULL;
}

static struct slot *slot_of(const struct ring *r, uint64_t seq)
{
    return &r->slots[seq % r->capacity];
}

static void drop_oldest(struct ring *r)
{
    r->bytes -= slot_of(r, r->oldest)->len;
    r->oldest++;
}

int64_t ring_push(struct ring *r, const uint8_t *data, size_t len, int samples, int64_t pts,
                  double due, int silence)
{
    if (len > r->bytes_max)
        return -E2BIG;
    if (r->next - r->oldest == r->capacity)
        drop_oldest(r);
    uint64_t v = r->vend;
    if (v % r->bytes_max + len > r->bytes_max)
        v += r->bytes_max - v % r->bytes_max;
    uint64_t end = v + len;
    while (r->oldest != r->next && end - slot_of(r, r->oldest)->vpos > r->bytes_max)
        drop_oldest(r);
    if (len)
        memcpy(r->slab + v % r->bytes_max, data, len);
    struct slot *s = slot_of(r, r->next);
    s->vpos = v;
    s->len = len;
    s->samples = samples;
    s->pts = pts;
    s->due = due;
    s->silence = silence;
    r->vend = end;
    r->bytes += len;
    return (int64_t)r->next++;
}

int ring_get(const struct ring *r, uint64_t seq, struct ring_frame *out)
{
    if (seq >= r->next)
        return 0;
    if (seq < r->oldest)
        return -1;
    const struct slot *s = slot_of(r, seq);
    out->seq = seq;
    out->data = r->slab + s->vpos % r->bytes_max;
    out->len = s->len;
    out->samples = s->samples;
    out->pts = s->pts;
    out->due = s->due;
    out->silence = s->silence;
    return 1;
}

uint64_t ring_next_seq(const struct ring *r)
{
    return r->next;
}

uint64_t ring_oldest_seq(const struct ring *r)
{
    return r->oldest;
}

uint64_t ring_burst_start(const struct ring *r, double seconds)
{
    uint64_t seq = r->next;
    double want = seconds * RING_RATE, got = 0;
    while (got < want && seq > r->oldest) {
        seq--;
        got += slot_of(r, seq)->samples;
    }
    return seq;
}

size_t ring_bytes(const struct ring *r)
{
    return r->bytes;
}
