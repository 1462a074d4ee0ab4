/*
 * The frame ring: seqs, slot wraparound, the byte budget (every kept frame's
 * bytes intact however the slab wraps), gone and not-yet frames, the burst
 * start, and a million pushes of random sizes with a reader following.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stream/ring.h"

/* Frame content derived from its seq, so any frame can be checked. */
static void fill(uint8_t *b, size_t len, uint64_t seq)
{
    uint32_t x = (uint32_t)(seq * 2654435761u) | 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)x;
    }
}

static int intact(const struct ring_frame *f)
{
    uint8_t want[4096];
    fill(want, f->len, f->seq);
    return !memcmp(want, f->data, f->len);
}

static uint64_t push(struct ring *r, size_t len, uint64_t seq)
{
    uint8_t b[4096];
    fill(b, len, seq);
    int64_t s = ring_push(r, b, len, 960, (int64_t)seq * 960, (double)seq * 0.02, 0);
    assert_true(s >= 0);
    assert_int_equal((uint64_t)s, seq);
    return (uint64_t)s;
}

static void test_basic(void **state)
{
    struct ring *r = ring_new(8, 4096);
    assert_non_null(r);
    struct ring_frame f;
    assert_int_equal(ring_next_seq(r), 0);
    assert_int_equal(ring_get(r, 0, &f), 0);
    assert_int_equal(ring_burst_start(r, 1.0), 0);
    for (uint64_t i = 0; i < 3; i++)
        push(r, 100 + i, i);
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(ring_get(r, i, &f), 1);
        assert_int_equal(f.seq, i);
        assert_int_equal(f.len, 100 + i);
        assert_int_equal(f.samples, 960);
        assert_int_equal(f.pts, (int64_t)i * 960);
        assert_true(f.due == (double)i * 0.02);
        assert_int_equal(f.silence, 0);
        assert_true(intact(&f));
    }
    assert_int_equal(ring_get(r, 3, &f), 0);
    assert_int_equal(ring_bytes(r), 303);
    /* silence flag and an empty frame */
    assert_int_equal(ring_push(r, NULL, 0, 960, 0, 0, 1), 3);
    assert_int_equal(ring_get(r, 3, &f), 1);
    assert_int_equal(f.len, 0);
    assert_int_equal(f.silence, 1);
    ring_free(&r);
    assert_null(r);
    ring_free(&r);
    assert_null(ring_new(0, 100));
    assert_null(ring_new(100, 0));
}

static void test_slot_wraparound(void **state)
{
    struct ring *r = ring_new(4, 1 << 16);
    struct ring_frame f;
    for (uint64_t i = 0; i < 10; i++)
        push(r, 50, i);
    assert_int_equal(ring_next_seq(r), 10);
    assert_int_equal(ring_oldest_seq(r), 6);
    assert_int_equal(ring_get(r, 5, &f), -1);
    assert_int_equal(ring_get(r, 0, &f), -1);
    for (uint64_t i = 6; i < 10; i++) {
        assert_int_equal(ring_get(r, i, &f), 1);
        assert_int_equal(f.seq, i);
        assert_true(intact(&f));
    }
    assert_int_equal(ring_get(r, 10, &f), 0);
    assert_int_equal(ring_bytes(r), 200);
    ring_free(&r);
}

static void test_byte_budget(void **state)
{
    struct ring *r = ring_new(100, 100);
    struct ring_frame f;
    /* 30-byte frames: the fourth does not fit after the third (90 + 30 >
     * 100), starts at the slab's beginning and pushes the first out. */
    for (uint64_t i = 0; i < 4; i++)
        push(r, 30, i);
    assert_int_equal(ring_oldest_seq(r), 1);
    assert_int_equal(ring_get(r, 0, &f), -1);
    for (uint64_t i = 1; i < 4; i++) {
        assert_int_equal(ring_get(r, i, &f), 1);
        assert_true(intact(&f));
    }
    /* A frame of the whole budget leaves only itself. */
    push(r, 100, 4);
    assert_int_equal(ring_oldest_seq(r), 4);
    assert_int_equal(ring_bytes(r), 100);
    assert_int_equal(ring_get(r, 4, &f), 1);
    assert_true(intact(&f));
    /* Too large: refused, nothing changes. */
    uint8_t big[101] = {0};
    assert_int_equal(ring_push(r, big, sizeof(big), 960, 0, 0, 0), -E2BIG);
    assert_int_equal(ring_next_seq(r), 5);
    assert_int_equal(ring_oldest_seq(r), 4);
    /* Random sizes: what is kept is intact and within budget. */
    uint32_t x = 1;
    for (uint64_t i = 5; i < 5000; i++) {
        x = x * 1103515245 + 12345;
        push(r, (x >> 16) % 101, i);
        assert_true(ring_bytes(r) <= 100);
        for (uint64_t s = ring_oldest_seq(r); s < ring_next_seq(r); s++) {
            assert_int_equal(ring_get(r, s, &f), 1);
            assert_true(intact(&f));
        }
    }
    ring_free(&r);
}

static void test_burst_start(void **state)
{
    struct ring *r = ring_new(500, 1 << 20);
    for (uint64_t i = 0; i < 30; i++)
        push(r, 10, i);
    /* 30 frames of 20 ms: a 1 s burst takes all there is. */
    assert_int_equal(ring_burst_start(r, 1.0), 0);
    assert_int_equal(ring_burst_start(r, 0.2), 20);
    assert_int_equal(ring_burst_start(r, 0.21), 19);
    assert_int_equal(ring_burst_start(r, 0), 30);
    assert_int_equal(ring_burst_start(r, -1), 30);
    for (uint64_t i = 30; i < 600; i++)
        push(r, 10, i);
    assert_int_equal(ring_oldest_seq(r), 100);
    assert_int_equal(ring_burst_start(r, 1.0), 550);
    assert_int_equal(ring_burst_start(r, 100.0), 100);
    ring_free(&r);
}

static void test_million(void **state)
{
    /* 10 s of 20 ms frames, a 256 KiB budget: sizes up to 1500 bytes make
     * the budget, not the slots, the limit part of the time. */
    struct ring *r = ring_new(500, 256 * 1024);
    struct ring_frame f;
    uint64_t cursor = 0, gone = 0, read = 0;
    uint32_t x = 7;
    for (uint64_t i = 0; i < 1000000; i++) {
        x = x * 1103515245 + 12345;
        push(r, 1 + (x >> 8) % 1500, i);
        /* A reader that keeps up most of the time and sometimes stalls. */
        if (i % 1000 < 900) {
            int g;
            while ((g = ring_get(r, cursor, &f)) != 0) {
                if (g < 0) {
                    gone++;
                    cursor = ring_oldest_seq(r);
                    continue;
                }
                assert_int_equal(f.seq, cursor);
                if (cursor % 997 == 0)
                    assert_true(intact(&f));
                cursor++;
                read++;
            }
        }
    }
    assert_int_equal(ring_next_seq(r), 1000000);
    assert_true(ring_bytes(r) <= 256 * 1024);
    assert_int_equal(gone, 0); /* 100 frames stalled never pass the ring */
    assert_true(read > 900000);
    for (uint64_t s = ring_oldest_seq(r); s < ring_next_seq(r); s++) {
        assert_int_equal(ring_get(r, s, &f), 1);
        assert_true(intact(&f));
    }
    /* A reader that stalled longer than the ring holds is told so. */
    assert_int_equal(ring_get(r, 1000000 - 600, &f), -1);
    ring_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),       cmocka_unit_test(test_slot_wraparound),
        cmocka_unit_test(test_byte_budget), cmocka_unit_test(test_burst_start),
        cmocka_unit_test(test_million),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
