/* The adaptive jitter buffer, driven by simulated links: a sender making a
 * packet per frame, a network with a base delay, jitter, loss and
 * reordering, and a listener taking one frame per frame duration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "matriz/jitter.h"

#define RATE  48000
#define FRAME 240 /* 5 ms */
#define FS    ((double)FRAME / RATE)

/* A deterministic generator, so a failure repeats. */
static uint32_t rnd_state = 1;
static double rnd(void)
{
    rnd_state = rnd_state * 1664525u + 1013904223u;
    return (rnd_state >> 8) / 16777216.0;
}

struct pkt {
    double arrival;
    uint16_t seq;
    uint32_t ts;
};

static int by_arrival(const void *a, const void *b)
{
    double x = ((const struct pkt *)a)->arrival, y = ((const struct pkt *)b)->arrival;
    return x < y ? -1 : x > y;
}

struct link {
    double base;   /* s */
    double jitter; /* s: uniform extra delay 0..jitter */
    double loss;   /* probability */
    uint32_t ts0;
    uint16_t seq0;
};

struct result {
    int packets, concealed, silence, out_of_order;
    double first_packet_at;
};

/* Sends n frames starting at time t0 over lk; the listener takes a frame
 * every FS from t0 + phase on, for n + 100 frames. The payload of a packet
 * is its frame number, so the output order can be checked. */
static int tail = 100; /* frames the listener goes on after the last sent */

static struct result run(struct jitter *j, const struct link *lk, int n, double t0, double phase)
{
    struct pkt *p = calloc((size_t)n, sizeof(*p));
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (rnd() < lk->loss)
            continue;
        p[m].arrival = t0 + i * FS + lk->base + rnd() * lk->jitter;
        p[m].seq = (uint16_t)(lk->seq0 + i);
        p[m].ts = lk->ts0 + (uint32_t)(i * FRAME);
        m++;
    }
    qsort(p, (size_t)m, sizeof(*p), by_arrival);
    struct result r = {0};
    int next = 0;
    int64_t last_frame = -1;
    for (int k = 0; k < n + tail; k++) {
        double now = t0 + phase + k * FS;
        while (next < m && p[next].arrival <= now) {
            uint8_t payload[4];
            uint32_t f = (p[next].ts - lk->ts0) / FRAME;
            memcpy(payload, &f, 4);
            jitter_put(j, p[next].seq, p[next].ts, payload, 4, p[next].arrival);
            next++;
        }
        struct jitter_frame fr;
        enum jitter_result res = jitter_get(j, now, &fr);
        if (res == JITTER_PACKET) {
            uint32_t f;
            assert_int_equal(fr.len, 4);
            memcpy(&f, fr.data, 4);
            if ((int64_t)f <= last_frame)
                r.out_of_order++;
            last_frame = f;
            if (!r.packets)
                r.first_packet_at = now;
            r.packets++;
        } else if (res == JITTER_CONCEAL) {
            /* (after the last packet the listener goes on: not a loss) */
            if ((uint32_t)((uint32_t)fr.ts - lk->ts0) / FRAME < (uint32_t)n)
                r.concealed++;
        } else {
            r.silence++;
        }
    }
    free(p);
    return r;
}

static struct jitter *make(double min_ms, double max_ms)
{
    struct jitter_options o = {.rate = RATE, .frame = FRAME, .min_ms = min_ms, .max_ms = max_ms};
    struct jitter *j = jitter_new(&o);
    assert_non_null(j);
    return j;
}

static void steady_link_plays_everything_with_little_delay(void **state)
{
    struct jitter *j = make(0, 100);
    struct link lk = {.base = 0.020, .ts0 = 1000, .seq0 = 7};
    struct result r = run(j, &lk, 2000, 10.0, 0.0013);
    struct jitter_stats st;
    jitter_get_stats(j, &st);
    assert_int_equal(r.out_of_order, 0);
    assert_true(r.packets >= 1990);
    assert_true(r.concealed <= 2);
    assert_int_equal(st.lost, 0);
    assert_int_equal(st.late, 0);
    /* Delay after the fastest packet: the headroom (1 ms) and less than a frame
     * of phase between arrival and the listener's tick. */
    assert_true(st.target_ms < 1.5);
    jitter_free(&j);
    assert_null(j);
}

static void jitter_grows_the_delay_then_few_late(void **state)
{
    struct jitter *j = make(0, 100);
    struct link lk = {.base = 0.020, .jitter = 0.012, .ts0 = 0xfffff000u, .seq0 = 65500};
    rnd_state = 42;
    struct result r = run(j, &lk, 4000, 3.0, 0.002); /* 20 s, timestamps and seq wrap */
    struct jitter_stats st;
    jitter_get_stats(j, &st);
    assert_int_equal(r.out_of_order, 0);
    assert_true(st.target_ms > 10 && st.target_ms < 15);
    /* Once measured, nearly everything is in time. */
    assert_true(st.late < 40);
    assert_true(r.packets > 3900);
    assert_int_equal(st.lost, 0);
    assert_true(st.jitter_ms > 1 && st.jitter_ms < 12);
    jitter_free(&j);
}

static void delay_shrinks_when_jitter_stops(void **state)
{
    struct jitter *j = make(0, 100);
    rnd_state = 7;
    struct link noisy = {.base = 0.020, .jitter = 0.030, .ts0 = 0, .seq0 = 0};
    tail = 0; /* the same stream goes on below */
    run(j, &noisy, 1000, 1.0, 0.001);
    tail = 100;
    struct jitter_stats st;
    jitter_get_stats(j, &st);
    assert_true(st.target_ms > 20);
    /* The same stream goes on, now steady: after the window (2 s) and the
     * shrinking (a frame per 0.25 s), the delay is low again. */
    struct link calm = {.base = 0.020, .ts0 = 1000 * FRAME, .seq0 = 1000};
    struct result r = run(j, &calm, 4000, 1.0 + 1000 * FS, 0.001);
    jitter_get_stats(j, &st);
    assert_true(st.target_ms < 1.5);
    assert_true(st.depth_ms < 1.5 + 5 + 0.1);
    assert_true(st.skipped >= 3);
    print_message("shrinking: %d concealed, %llu skipped, late %llu\n", r.concealed,
                  (unsigned long long)st.skipped, (unsigned long long)st.late);
    assert_true(r.concealed < 40);
    jitter_free(&j);
}

static void loss_is_concealed_with_fec_of_the_next(void **state)
{
    struct jitter *j = make(10, 100); /* 10 ms: the next packet is here when one is lost */
    uint8_t b[1] = {0};
    int concealed = 0, fec = 0;
    for (int i = 0; i < 100; i++) {
        double t = i * FS;
        if (i != 50 && i != 70 && i != 71)
            assert_int_equal(jitter_put(j, (uint16_t)i, (uint32_t)(i * FRAME), b, 1, t + 0.01), 0);
        struct jitter_frame fr;
        enum jitter_result res = jitter_get(j, t + 0.01, &fr);
        if (res == JITTER_CONCEAL) {
            concealed++;
            if (fr.fec) {
                fec++;
                assert_true(fr.ts == 50 * FRAME || fr.ts == 71 * FRAME);
            }
        }
    }
    struct jitter_stats st;
    jitter_get_stats(j, &st);
    assert_int_equal(concealed, 3);
    assert_int_equal(fec, 2); /* 50 (51 is there) and 71 (72); 70's next is lost too */
    assert_int_equal(st.lost, 3);
    assert_int_equal(st.concealed, 3);
    jitter_free(&j);
}

static void reordering_within_the_delay_costs_nothing(void **state)
{
    struct jitter *j = make(0, 100);
    rnd_state = 3;
    /* 8 ms of jitter with 5 ms frames: neighbours arrive swapped often. */
    struct link lk = {.base = 0.005, .jitter = 0.008};
    struct result r = run(j, &lk, 3000, 0, 0);
    struct jitter_stats st;
    jitter_get_stats(j, &st);
    assert_true(st.reordered > 100);
    assert_int_equal(r.out_of_order, 0);
    assert_true(st.late < 30);
    jitter_free(&j);
}

/* A steady link with a rare straggler (1 in 250 packets 40 ms late): the
 * target stays low and the straggler is concealed, unless asked to cover
 * every packet. */
static void rare_stragglers_do_not_raise_the_delay(void **state)
{
    for (int cover = 0; cover < 2; cover++) {
        struct jitter_options o = {.rate = RATE, .frame = FRAME, .max_ms = 100};
        o.late_percent = cover ? -1 : 0;
        struct jitter *j = jitter_new(&o);
        uint8_t b[4] = {0};
        int late = 0;
        for (int i = 0; i < 2000; i++) {
            double t = i * FS;
            double arrival = t + 0.010 + (i % 250 == 100 ? 0.040 : 0);
            /* (a straggler arrives after the packets sent after it) */
            if (i % 250 != 100)
                jitter_put(j, (uint16_t)i, (uint32_t)(i * FRAME), b, 4, arrival);
            if (i % 250 == 108)
                late += jitter_put(j, (uint16_t)(i - 8), (uint32_t)((i - 8) * FRAME), b, 4,
                                   (i - 8) * FS + 0.050) == -ETIME;
            struct jitter_frame fr;
            jitter_get(j, t + 0.0101, &fr);
        }
        struct jitter_stats st;
        jitter_get_stats(j, &st);
        print_message("cover %d: target %.1f ms, %d stragglers late\n", cover, st.target_ms, late);
        if (cover)
            assert_true(st.target_ms > 40);
        else
            assert_true(st.target_ms < 3 && late >= 6);
        jitter_free(&j);
    }
}

/* The sender's clock 0.3 % slow (or fast) against ours, with a little
 * jitter: the drift is measured and nearly nothing is late. */
static void clock_drift_is_taken_out(void **state)
{
    for (int sign = -1; sign <= 1; sign += 2) {
        struct jitter *j = make(0, 100);
        uint8_t b[4] = {0};
        rnd_state = 5;
        double speed = 1 + sign * 0.003; /* sender seconds per our second */
        int k = 0;
        double next_arrival = 0;
        for (int i = 0; i < 4000; i++) {
            double arrival = i * FS / speed + 0.010 + rnd() * 0.001;
            /* the listener runs on our clock, a frame at a time */
            while (k * FS < arrival) {
                struct jitter_frame fr;
                jitter_get(j, k * FS, &fr);
                k++;
            }
            jitter_put(j, (uint16_t)i, (uint32_t)(i * FRAME), b, 4, arrival);
            next_arrival = arrival;
        }
        (void)next_arrival;
        struct jitter_stats st;
        jitter_get_stats(j, &st);
        print_message("drift %+.0f ppm measured %.0f ppm: late %llu, target %.2f ms, skipped %llu, "
                      "inserted %llu\n",
                      (speed - 1) * 1e6, st.drift_ppm, (unsigned long long)st.late, st.target_ms,
                      (unsigned long long)st.skipped, (unsigned long long)st.inserted);
        assert_true(fabs(st.drift_ppm - (speed - 1) * 1e6) < 1000);
        assert_true(st.late < 80); /* < 2 % */
        assert_true(st.target_ms < 4);
        jitter_free(&j);
    }
}

static void bad_input_is_counted_and_dropped(void **state)
{
    struct jitter *j = make(0, 50);
    uint8_t big[JITTER_MAX_PAYLOAD + 1] = {0};
    struct jitter_stats st;
    assert_int_equal(jitter_put(j, 1, 0, big, sizeof(big), 0), -EMSGSIZE);
    assert_int_equal(jitter_put(j, 1, 0, big, 0, 0), -EMSGSIZE);
    assert_int_equal(jitter_put(j, 1, 0, big, 10, 0), 0);
    assert_int_equal(jitter_put(j, 1, 0, big, 10, 0.001), -EALREADY);
    assert_int_equal(jitter_put(j, 2, 100, big, 10, 0.002), -EINVAL);           /* off the grid */
    assert_int_equal(jitter_put(j, 3, 240u * 100000, big, 10, 0.003), -EINVAL); /* far ahead */
    struct jitter_frame fr;
    for (int i = 0; i < 5; i++)
        jitter_get(j, 0.005 * i, &fr);
    /* ts 0 was played: a copy now is too late */
    assert_int_equal(jitter_put(j, 1, 0, big, 10, 0.03), -ETIME);
    jitter_get_stats(j, &st);
    assert_int_equal(st.bad, 4);
    assert_int_equal(st.duplicate, 1);
    assert_int_equal(st.late, 1);
    assert_int_equal(st.received, 1);
    jitter_free(&j);
    struct jitter_options o = {.rate = 0, .frame = 240};
    assert_null(jitter_new(&o));
    o = (struct jitter_options){.rate = RATE, .frame = 240, .min_ms = 50, .max_ms = 20};
    assert_null(jitter_new(&o));
}

static void a_quiet_sender_starts_over(void **state)
{
    struct jitter *j = make(0, 100);
    struct link a = {.base = 0.010, .ts0 = 5000, .seq0 = 100};
    run(j, &a, 200, 0, 0.001);
    struct jitter_frame fr;
    /* 2 s of nothing: silence, and a new sender (new timestamps) is taken up. */
    assert_int_equal(jitter_get(j, 4.0, &fr), JITTER_SILENCE);
    struct link b = {.base = 0.010, .ts0 = 123456789, .seq0 = 9};
    struct result r = run(j, &b, 400, 5.0, 0.001);
    struct jitter_stats st;
    jitter_get_stats(j, &st);
    assert_true(r.packets >= 395);
    assert_int_equal(st.resets, 2);
    assert_int_equal(st.lost, 0);
    jitter_free(&j);
}

static void fuzzish_never_crashes(void **state)
{
    struct jitter *j = make(0, 30);
    uint8_t b[64] = {0};
    rnd_state = 99;
    for (int i = 0; i < 200000; i++) {
        uint32_t ts = rnd() < 0.9 ? (uint32_t)(i * FRAME) : (uint32_t)(rnd() * 4294967295.0);
        jitter_put(j, (uint16_t)(rnd() * 65536), ts, b, 1 + (size_t)(rnd() * 63), i * FS * 0.7);
        struct jitter_frame fr;
        if (i % 2)
            jitter_get(j, i * FS * 0.7 + rnd() * 0.05, &fr);
    }
    struct jitter_stats st;
    jitter_get_stats(j, &st);
    assert_true(st.received > 0);
    jitter_free(&j);
}

/* Sender and listener on one audio clock with periods of `period` frames
 * (one JACK server): a frame leaves at the start of the period after its
 * last sample (+ 0.1-0.4 ms), and the listener, as rx does, takes a frame
 * at the start of the period in which it begins to play. Told the period,
 * the buffer allows for that fetch ahead of play: nothing is late. */
static int periods_late(int frame, int period, int tell, double *latency_ms)
{
    struct jitter_options o = {.rate = RATE, .frame = frame, .max_ms = 60};
    if (tell)
        o.period = period;
    struct jitter *j = jitter_new(&o);
    assert_non_null(j);
    rnd_state = 7;
    int ncyc = RATE * 10 / period, fill = 0, sent = 0, fifo = 0, late = 0, n = 0;
    double lat = 0, pending[64];
    int npending = 0, pending_seq[64];
    uint8_t b[4] = {0};
    for (int c = 0; c < ncyc; c++) {
        double t = (double)c * period / RATE;
        /* what arrived since the last period: before this one starts */
        for (int i = 0; i < npending;)
            if (pending[i] <= t) {
                if (jitter_put(j, (uint16_t)pending_seq[i], (uint32_t)(pending_seq[i] * frame), b,
                               4, pending[i]) == -ETIME)
                    late++;
                pending[i] = pending[--npending];
                pending_seq[i] = pending_seq[npending];
            } else {
                i++;
            }
        for (int done = 0; done < period;) {
            if (fifo == 0) {
                struct jitter_frame fr;
                enum jitter_result res =
                    tell ? jitter_get_ahead(j, t + (double)done / RATE, (double)done / RATE, &fr)
                         : jitter_get(j, t + (double)done / RATE, &fr);
                if (res == JITTER_PACKET && c > ncyc / 2) {
                    lat += (t + (double)done / RATE) * RATE - (double)fr.ts;
                    n++;
                }
                fifo = frame;
            }
            int take = fifo < period - done ? fifo : period - done;
            fifo -= take;
            done += take;
        }
        for (int i = 0; i < period; i++)
            if (++fill == frame) {
                fill = 0;
                pending[npending] = t + (double)period / RATE + 0.0001 + 0.0003 * rnd();
                pending_seq[npending++] = sent++;
            }
    }
    *latency_ms = n ? lat / n / RATE * 1000 : -1;
    jitter_free(&j);
    return late;
}

static void frames_fetched_a_period_ahead_are_allowed_for(void **state)
{
    static const int cases[][2] = {{64, 64}, {120, 64}, {240, 64}, {240, 128}, {120, 128}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double ms;
        int late = periods_late(cases[i][0], cases[i][1], 1, &ms);
        print_message("frame %d, period %d: %d late, %.2f ms\n", cases[i][0], cases[i][1], late,
                      ms);
        assert_int_equal(late, 0);
        /* at most: a frame to fill, the period to send it in, the fetch
         * allowance, the headroom and the noise, and up to a frame and a
         * millisecond of grid before the buffer shrinks */
        assert_true(ms > 0 && ms < 1000.0 * (2 * cases[i][0] + 2 * cases[i][1]) / RATE + 2.5);
        late = periods_late(cases[i][0], cases[i][1], 0, &ms);
        print_message("  (not told the period: %d late, %.2f ms)\n", late, ms);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(steady_link_plays_everything_with_little_delay),
        cmocka_unit_test(jitter_grows_the_delay_then_few_late),
        cmocka_unit_test(delay_shrinks_when_jitter_stops),
        cmocka_unit_test(loss_is_concealed_with_fec_of_the_next),
        cmocka_unit_test(reordering_within_the_delay_costs_nothing),
        cmocka_unit_test(rare_stragglers_do_not_raise_the_delay),
        cmocka_unit_test(clock_drift_is_taken_out),
        cmocka_unit_test(bad_input_is_counted_and_dropped),
        cmocka_unit_test(a_quiet_sender_starts_over),
        cmocka_unit_test(fuzzish_never_crashes),
        cmocka_unit_test(frames_fetched_a_period_ahead_are_allowed_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
