/*
 * The adaptive jitter buffer (see jitter.h).
 *
 * Packets sit in a ring of slots indexed by their frame number (extended
 * timestamp / frame), so reordering costs nothing and a lookup is one index.
 * Timestamps and sequence numbers are extended to 64 bits against the
 * newest seen (RFC 3550 A.1 style), so wrap-around needs no special case.
 * The relative delays of the last window_s are kept in a second ring; their
 * smallest and largest give the path delay and the spread the target covers.
 */
#include "matriz/jitter.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_MAX 4096 /* 2 s of 2.5 ms frames is 800; room for longer windows */

struct slot {
    int64_t ts; /* extended timestamp, or INT64_MIN when empty */
    size_t len;
    uint8_t data[JITTER_MAX_PAYLOAD];
};

struct jitter {
    struct jitter_options o;
    double frame_s;
    double lead;   /* samples: how early a frame may be fetched (options.period) */
    size_t nslots; /* a power of two */
    struct slot *slots;

    int started; /* a packet since the last reset */
    int playing; /* next_ts is set */
    int64_t first_ts, newest_ts, next_ts;
    uint32_t last_ts32;
    int64_t last_ext;
    /* sequence numbers of this run, for loss */
    uint16_t last_seq16;
    int64_t seq_ext, seq_base, seq_max;
    uint64_t run_received, lost_before;

    double *hist, *hist_at, *scratch;
    double drift;
    size_t hist_cap, hist_len, hist_pos;
    double d_min, d_max, prev_d;
    int have_prev;
    double last_arrival, last_shrink;

    struct jitter_stats st;
};

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

struct jitter *jitter_new(const struct jitter_options *opt)
{
    struct jitter_options o = *opt;
    if (o.rate <= 0 || o.frame <= 0 || o.min_ms < 0 || o.max_ms < 0)
        return NULL;
    if (o.max_ms == 0)
        o.max_ms = 200;
    if (o.headroom_ms <= 0)
        o.headroom_ms = 1;
    if (o.window_s <= 0)
        o.window_s = 2;
    if (o.shrink_s <= 0)
        o.shrink_s = 0.25;
    if (o.reset_s <= 0)
        o.reset_s = 1;
    if (o.late_percent == 0)
        o.late_percent = 1;
    if (o.late_percent < 0 || o.late_percent > 50)
        o.late_percent = 0;
    if (o.min_ms > o.max_ms)
        return NULL;
    struct jitter *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->o = o;
    j->frame_s = (double)o.frame / o.rate;
    if (o.period > 0) {
        int a = o.period, b = o.frame;
        while (b) {
            int t = a % b;
            a = b;
            b = t;
        }
        j->lead = o.period - a;
    }
    /* Room for the longest delay twice over (packets up to max_ms ahead of
     * the play position, and as many behind it that may still be asked for
     * as FEC), plus slack. */
    j->nslots = pow2_at_least((size_t)(2 * o.max_ms / 1000 / j->frame_s) + 16);
    j->hist_cap = (size_t)ceil(o.window_s / j->frame_s);
    if (j->hist_cap < 8)
        j->hist_cap = 8;
    if (j->hist_cap > HISTORY_MAX)
        j->hist_cap = HISTORY_MAX;
    j->slots = malloc(j->nslots * sizeof(*j->slots));
    j->hist = malloc(j->hist_cap * sizeof(*j->hist));
    j->scratch = malloc(j->hist_cap * sizeof(*j->scratch));
    j->hist_at = malloc(j->hist_cap * sizeof(*j->hist_at));
    if (!j->slots || !j->hist || !j->scratch || !j->hist_at) {
        jitter_free(&j);
        return NULL;
    }
    for (size_t i = 0; i < j->nslots; i++)
        j->slots[i].ts = INT64_MIN;
    j->st.target_ms = o.min_ms;
    return j;
}

void jitter_free(struct jitter **jp)
{
    struct jitter *j = *jp;
    if (!j)
        return;
    free(j->slots);
    free(j->hist);
    free(j->scratch);
    free(j->hist_at);
    free(j);
    *jp = NULL;
}

static struct slot *slot_of(struct jitter *j, int64_t ts)
{
    int64_t n = (ts - j->first_ts) / j->o.frame;
    return &j->slots[(size_t)n & (j->nslots - 1)];
}

static struct slot *find(struct jitter *j, int64_t ts)
{
    struct slot *s = slot_of(j, ts);
    return s->ts == ts ? s : NULL;
}

static void reset(struct jitter *j)
{
    for (size_t i = 0; i < j->nslots; i++)
        j->slots[i].ts = INT64_MIN;
    if (j->started) {
        int64_t expected = j->seq_max - j->seq_base + 1;
        if (expected > (int64_t)j->run_received)
            j->lost_before += (uint64_t)(expected - (int64_t)j->run_received);
    }
    j->started = 0;
    j->playing = 0;
    j->hist_len = j->hist_pos = 0;
    j->have_prev = 0;
    j->run_received = 0;
}

void jitter_reset(struct jitter *j)
{
    reset(j);
}

static double target_s(const struct jitter *j)
{
    double t = (j->d_max - j->d_min) + j->o.headroom_ms / 1000;
    if (t < j->o.min_ms / 1000)
        t = j->o.min_ms / 1000;
    if (t > j->o.max_ms / 1000)
        t = j->o.max_ms / 1000;
    return t;
}

/* The k-th smallest of v[0..n) (quickselect; v is reordered). */
static double kth(double *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, m = hi;
        while (i <= m) {
            while (v[i] < pivot)
                i++;
            while (v[m] > pivot)
                m--;
            if (i <= m) {
                double t = v[i];
                v[i] = v[m];
                v[m] = t;
                i++;
                if (m == 0)
                    break;
                m--;
            }
        }
        if (k <= m)
            hi = m;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

/* Drift between the two clocks (the sender's audio clock against ours)
 * shows as relative delays that grow or shrink steadily; the window's
 * delays are brought to what they would be now along the least-squares
 * slope, so that a slow sender's newest packets are not always "the
 * slowest" (and half of them late). Bounded, and only from half a window
 * on: sound cards differ by well under 0.5 %, and the bursts of a link's
 * first second must not pass for drift (each wrong step of it would be a
 * concealed frame inserted or a frame skipped). */
#define DRIFT_MAX 0.005

static void history_add(struct jitter *j, double d, double arrival)
{
    j->hist[j->hist_pos] = d;
    j->hist_at[j->hist_pos] = arrival;
    j->hist_pos = (j->hist_pos + 1) % j->hist_cap;
    if (j->hist_len < j->hist_cap)
        j->hist_len++;
    size_t n = j->hist_len;
    double slope = 0;
    if (n >= 32 && n >= j->hist_cap / 2) {
        double st = 0, sd = 0, stt = 0, std_ = 0;
        for (size_t i = 0; i < n; i++) {
            double t = j->hist_at[i] - arrival;
            st += t;
            sd += j->hist[i];
            stt += t * t;
            std_ += t * j->hist[i];
        }
        double den = n * stt - st * st;
        if (den > 1e-12)
            slope = (n * std_ - st * sd) / den;
        if (slope > DRIFT_MAX)
            slope = DRIFT_MAX;
        if (slope < -DRIFT_MAX)
            slope = -DRIFT_MAX;
    }
    j->drift = slope;
    double lo = 1e300, hi = -1e300;
    for (size_t i = 0; i < n; i++) {
        double e = j->hist[i] + slope * (arrival - j->hist_at[i]);
        j->scratch[i] = e;
        if (e < lo)
            lo = e;
        if (e > hi)
            hi = e;
    }
    j->d_min = lo;
    j->d_max = hi;
    /* What the target covers: all but late_percent of the window. Left
     * late, those few are concealed; covered, one stall would hold the
     * whole window's delay up for everyone. */
    size_t skip = (size_t)(n * j->o.late_percent / 100);
    if (skip > 0 && n > 16)
        j->d_max = kth(j->scratch, n, n - 1 - skip);
}

int jitter_put(struct jitter *j, uint16_t seq, uint32_t ts, const uint8_t *payload, size_t len,
               double arrival)
{
    if (len == 0 || len > JITTER_MAX_PAYLOAD) {
        j->st.bad++;
        return -EMSGSIZE;
    }
    if (!j->started) {
        reset(j);
        j->started = 1;
        j->st.resets++;
        j->first_ts = j->newest_ts = j->last_ext = ts;
        j->last_ts32 = ts;
        j->last_seq16 = seq;
        j->seq_ext = j->seq_base = j->seq_max = seq;
        j->last_shrink = arrival;
    }
    int64_t ext = j->last_ext + (int32_t)(ts - j->last_ts32);
    if ((ext - j->first_ts) % j->o.frame != 0) {
        j->st.bad++;
        return -EINVAL;
    }
    int64_t span = (int64_t)j->nslots * j->o.frame;
    int64_t ref = j->playing ? j->next_ts : j->newest_ts;
    if (ext >= ref + span || ext <= ref - span) {
        j->st.bad++;
        return -EINVAL;
    }
    j->last_ts32 = ts;
    j->last_ext = ext;
    j->last_arrival = arrival;

    /* Its delay counts even when it is too late: lateness is what makes
     * the target grow. */
    double d = arrival - (double)ext / j->o.rate;
    if (j->have_prev) {
        double dd = fabs(d - j->prev_d);
        j->st.jitter_ms += (dd * 1000 - j->st.jitter_ms) / 16;
    }
    j->prev_d = d;
    j->have_prev = 1;
    history_add(j, d, arrival);

    int64_t seq_ext = j->seq_ext + (int16_t)(uint16_t)(seq - j->last_seq16);
    j->last_seq16 = seq;
    j->seq_ext = seq_ext;

    if (j->playing && ext < j->next_ts) {
        j->run_received++; /* lost is the network's loss; late is counted apart */
        j->st.late++;
        return -ETIME;
    }
    struct slot *s = slot_of(j, ext);
    if (s->ts == ext) {
        j->st.duplicate++;
        return -EALREADY;
    }
    s->ts = ext;
    s->len = len;
    memcpy(s->data, payload, len);
    if (ext < j->newest_ts)
        j->st.reordered++;
    else
        j->newest_ts = ext;
    if (seq_ext > j->seq_max)
        j->seq_max = seq_ext;
    if (seq_ext < j->seq_base)
        j->seq_base = seq_ext;
    j->run_received++;
    j->st.received++;
    return 0;
}

static int64_t align(const struct jitter *j, double ts)
{
    double n = floor((ts - (double)j->first_ts) / j->o.frame);
    return j->first_ts + (int64_t)n * j->o.frame;
}

enum jitter_result jitter_get(struct jitter *j, double now, struct jitter_frame *out)
{
    return jitter_get_ahead(j, now, 0, out);
}

enum jitter_result jitter_get_ahead(struct jitter *j, double now, double ahead,
                                    struct jitter_frame *out)
{
    memset(out, 0, sizeof(*out));
    if (j->started && now - j->last_arrival > j->o.reset_s)
        reset(j);
    if (!j->started)
        return JITTER_SILENCE;

    double target = target_s(j);
    /* the timestamp due now (the path's delay carried along the drift) */
    double base = j->d_min + j->drift * (now - j->last_arrival);
    double ideal = (now - base - target) * j->o.rate;
    /* This frame is taken `ahead` before it plays: by then it must be here
     * (the window's slowest would be: the headroom may go to it, being for
     * what the window did not see). Whether to shrink goes by the frame
     * taken furthest ahead (lead). */
    double room = j->o.headroom_ms / 1000 * j->o.rate;
    double fetch = ideal - fmax(0, ahead * j->o.rate - room);
    double worst = ideal - fmax(0, j->lead - room);
    if (!j->playing) {
        j->next_ts = align(j, fetch);
        j->playing = 1;
    } else {
        double err = worst - (double)j->next_ts;
        if (fetch - (double)j->next_ts < -1) { /* (a sample of rounding) */
            /* Ahead of the target (any amount would make packets late that
             * the target covers): hold back one frame. */
            j->st.inserted++;
            j->st.concealed++;
            out->ts = j->next_ts;
            return JITTER_CONCEAL;
        }
        if (err > j->o.max_ms / 1000 * j->o.rate + j->o.frame) {
            /* Far behind (the sender stalled, the clock jumped): catch up. */
            int64_t to = align(j, worst);
            j->st.skipped += (uint64_t)((to - j->next_ts) / j->o.frame);
            j->next_ts = to;
            j->last_shrink = now;
        } else if (err >= j->o.frame + fmin(0.5 * j->o.frame, 0.001 * j->o.rate) &&
                   now - j->last_shrink >= j->o.shrink_s) {
            /* (a frame later than needed, and some: what is left after the
             * skip keeps a small change of target from inserting it back) */
            j->st.skipped++;
            j->next_ts += j->o.frame;
            j->last_shrink = now;
        }
    }

    int64_t ts = j->next_ts;
    j->next_ts += j->o.frame;
    out->ts = ts;
    j->st.target_ms = target * 1000;
    if (ts < j->first_ts)
        return JITTER_SILENCE; /* before the first packet: nothing to conceal */
    struct slot *s = find(j, ts);
    if (s) {
        s->ts = INT64_MIN; /* played; data stays valid until the next call */
        out->data = s->data;
        out->len = s->len;
        j->st.played++;
        return JITTER_PACKET;
    }
    struct slot *next = find(j, ts + j->o.frame);
    if (next) {
        out->fec = next->data;
        out->fec_len = next->len;
        j->st.fec++;
    }
    j->st.concealed++;
    return JITTER_CONCEAL;
}

void jitter_get_stats(const struct jitter *j, struct jitter_stats *st)
{
    *st = j->st;
    uint64_t lost = j->lost_before;
    if (j->started) {
        int64_t expected = j->seq_max - j->seq_base + 1;
        if (expected > (int64_t)j->run_received)
            lost += (uint64_t)(expected - (int64_t)j->run_received);
    }
    st->lost = lost;
    st->spread_ms = j->started ? (j->d_max - j->d_min) * 1000 : 0;
    st->drift_ppm = j->started ? -j->drift * 1e6 : 0;
    st->target_ms = j->started ? target_s(j) * 1000 : j->o.min_ms;
    st->depth_ms = j->playing && j->newest_ts + j->o.frame > j->next_ts
                       ? (double)(j->newest_ts + j->o.frame - j->next_ts) / j->o.rate * 1000
                       : 0;
}
