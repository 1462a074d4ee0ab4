/*
 * An adaptive jitter buffer for one incoming Matriz link: RTP payloads go in
 * as they arrive (any order), one frame comes out per call, on the listener's
 * clock, with as little delay as the measured jitter allows.
 *
 * Playout is by time, not by fill level. Every packet's relative delay
 * d = arrival - timestamp / rate is kept for the last `window_s`; the frame
 * with timestamp T plays at T / rate + d_min + target, where d_min is the
 * smallest delay in the window (the path's own delay, and the two clocks'
 * offset) and target = (largest - smallest delay in the window) + headroom,
 * clamped to [min_ms, max_ms] — where "largest" leaves out the slowest
 * late_percent (1 %) of the window: those are concealed rather than making
 * everyone wait for a rare straggler. So a steady link plays `headroom` behind the
 * fastest packet, and a jittery one waits just long enough for its slowest.
 *
 * Drift between the sender's and the listener's clocks is measured (the
 * least-squares slope of the delays over the window) and taken out, so a
 * slow sender's newest packets do not count as its slowest.
 *
 * Changes of target are applied at once when the delay must grow (a
 * concealed frame is inserted: PLC), and at most one frame per `shrink_s`
 * when it may shrink (a frame is skipped), so a single spike does not make
 * the output stutter for long.
 *
 * What comes out for each frame: the packet (JITTER_PACKET); or, when it is
 * missing, JITTER_CONCEAL, with the next packet attached when it is there
 * already (Opus in-band FEC can rebuild the lost frame from it; otherwise
 * the decoder's PLC fills in); or JITTER_SILENCE before the first packet and
 * after the sender went quiet for `reset_s` (the link then starts over, so a
 * restarted sender with new sequence numbers and timestamps is picked up).
 *
 * Input is checked, not trusted: payloads beyond JITTER_MAX_PAYLOAD, a
 * timestamp off the sender's frame grid, duplicates, packets too late for
 * their slot or too far ahead are dropped and counted.
 *
 * `now` is the listener's smooth clock (seconds, monotonic): the nominal time
 * of the frame being produced (start + frames out / rate), not the jittery
 * wall time of an audio callback. Arrival times are on the same clock.
 * Thread: one (not locked; the matriz peer feeds it on its audio thread).
 */
#ifndef IMES_MATRIZ_JITTER_H
#define IMES_MATRIZ_JITTER_H

#include <stddef.h>
#include <stdint.h>

#define JITTER_MAX_PAYLOAD 1500 /* one UDP datagram on Ethernet, the most RTP carries here */

struct jitter;

struct jitter_options {
    int rate;            /* RTP clock: 48000 */
    int frame;           /* samples per packet (per channel): 120, 240, 480 */
    double min_ms;       /* least delay target; 0 = none */
    double max_ms;       /* most: 0 = 200 */
    double headroom_ms;  /* added to the measured jitter; 0 = 1 ms (scheduling noise) */
    double window_s;     /* jitter is measured over this long: 0 = 2 s */
    double shrink_s;     /* at most one skipped frame per: 0 = 0.25 s */
    double reset_s;      /* quiet this long = the stream starts over: 0 = 1 s */
    double late_percent; /* the target may leave this share of the window's packets
                          * late (concealed): 0 = 1 %, < 0 = none (cover the slowest) */
    int period;          /* the listener's frames per audio period, 0 = not known. It
                          * takes a frame at the start of the period in which the
                          * frame begins to play (jitter_get_ahead): up to
                          * period - gcd(period, frame) samples early, which the
                          * buffer keeps room for before it shrinks */
};

enum jitter_result {
    JITTER_SILENCE = 0, /* nothing to play (not started) */
    JITTER_PACKET,      /* the frame's packet: out->data, out->len */
    JITTER_CONCEAL,     /* lost or late: conceal; out->fec/fec_len is the next packet if here */
};

struct jitter_frame {
    const uint8_t *data; /* valid until the next jitter_put/jitter_get */
    size_t len;
    const uint8_t *fec; /* JITTER_CONCEAL: the following packet, or NULL */
    size_t fec_len;
    int64_t ts; /* the frame's timestamp, extended */
};

struct jitter_stats {
    uint64_t received;  /* packets accepted */
    uint64_t lost;      /* by sequence numbers: expected - received (RFC 3550), never < 0 */
    uint64_t late;      /* arrived after their frame was played or concealed */
    uint64_t duplicate; /* a second copy of a packet already held */
    uint64_t bad;       /* too large, off the frame grid, too far ahead */
    uint64_t reordered; /* arrived after a later one (and still in time) */
    uint64_t played;    /* frames out as packets */
    uint64_t concealed; /* frames out as JITTER_CONCEAL */
    uint64_t fec;       /* of those, with the next packet attached */
    uint64_t inserted;  /* concealed frames added to grow the delay */
    uint64_t skipped;   /* frames dropped to shrink it */
    uint64_t resets;    /* starts over (first packet included) */
    double jitter_ms;   /* RFC 3550 interarrival jitter */
    double spread_ms;   /* largest - smallest relative delay in the window */
    double drift_ppm;   /* the sender's clock against ours (negative: it is slow) */
    double target_ms;   /* the delay aimed at, after the fastest packet */
    double depth_ms;    /* audio held now: newest timestamp + frame - play position */
};

/* NULL if out of memory or an option is out of range (rate, frame > 0;
 * min <= max). */
struct jitter *jitter_new(const struct jitter_options *opt);
void jitter_free(struct jitter **j);

/* Forgets every packet and measurement: the next packet starts a new stream
 * (a new SSRC: the sender restarted). Counters are kept. No allocation. */
void jitter_reset(struct jitter *j);

/* A packet arrived at time `arrival`. 0 if taken; -EMSGSIZE (too large),
 * -EINVAL (off the frame grid, too far ahead), -EALREADY (duplicate),
 * -ETIME (too late), all counted. The payload is copied. */
int jitter_put(struct jitter *j, uint16_t seq, uint32_t ts, const uint8_t *payload, size_t len,
               double arrival);

/* The frame to play at `now`. */
enum jitter_result jitter_get(struct jitter *j, double now, struct jitter_frame *out);
/* The same, for a listener that takes the frame `ahead` seconds before it
 * plays (at the start of the period it begins in): given only if the
 * window's slowest packet would be here by then, as well as `headroom`
 * before it plays (else held back a frame, as for a growing target). */
enum jitter_result jitter_get_ahead(struct jitter *j, double now, double ahead,
                                    struct jitter_frame *out);

void jitter_get_stats(const struct jitter *j, struct jitter_stats *st);

#endif
