/*
 * ICY metadata interleaving, read back the way a client reads it: a block
 * after every metaint bytes whatever the chunk sizes, the title on the
 * first block and after each change, a zero byte otherwise, apostrophes and
 * control characters made harmless, long titles cut at 255 * 16 bytes on a
 * character boundary, and all-or-nothing appends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stream/icy.h"

/* What a client sees: the audio bytes, and the metadata text of each block
 * ("" for a zero-length block), NULs stripped. */
struct parsed {
    uint8_t *audio;
    size_t audio_len;
    char titles[64][ICY_META_MAX + 1];
    int nblocks;
};

static void parse(const uint8_t *s, size_t len, size_t metaint, struct parsed *p)
{
    size_t i = 0;
    p->audio_len = 0;
    p->nblocks = 0;
    while (i < len) {
        size_t n = len - i < metaint ? len - i : metaint;
        memcpy(p->audio + p->audio_len, s + i, n);
        p->audio_len += n;
        i += n;
        if (n < metaint)
            break;
        assert_true(i < len); /* a block follows every full interval */
        size_t blen = (size_t)s[i++] * 16;
        assert_true(i + blen <= len);
        assert_true(p->nblocks < 64);
        memcpy(p->titles[p->nblocks], s + i, blen);
        p->titles[p->nblocks][blen] = '\0';
        /* padding is NULs only */
        size_t tl = strlen(p->titles[p->nblocks]);
        for (size_t k = tl; k < blen; k++)
            assert_int_equal(s[i + k], 0);
        if (blen)
            assert_true(blen - tl < 16);
        p->nblocks++;
        i += blen;
    }
}

static void test_placement(void **state)
{
    const size_t metaint = 1000, total = 10500;
    uint8_t *audio = malloc(total);
    for (size_t i = 0; i < total; i++)
        audio[i] = (uint8_t)(i * 7 + 3);
    struct parsed *p = calloc(1, sizeof(*p));
    p->audio = malloc(total);
    struct icy_meta meta;
    icy_meta_init(&meta);
    assert_int_equal(icy_meta_set(&meta, "Artist - Title"), 1);
    assert_int_equal(icy_meta_set(&meta, "Artist - Title"), 0);
    uint64_t gen = meta.gen;

    size_t chunks[] = {1, 999, 1000, 1, 1500, 3, 2997, 417, 1000, 2000, 582};
    for (int round = 0; round < 3; round++) {
        struct icy y;
        icy_init(&y, metaint);
        struct buf out;
        buf_init(&out, 1 << 20);
        size_t at = 0, changed_at = 0;
        uint32_t x = 1;
        for (int c = 0; at < total; c++) {
            size_t n;
            if (round == 0)
                n = chunks[c % (sizeof(chunks) / sizeof(chunks[0]))];
            else if (round == 1)
                n = 576; /* MP3 frames at 192 kbit/s, 48 kHz */
            else {
                x = x * 1103515245 + 12345;
                n = 1 + (x >> 16) % 3000;
            }
            if (n > total - at)
                n = total - at;
            if (round == 0 && at >= 4500 && !changed_at) {
                icy_meta_set(&meta, "Second - Song");
                changed_at = at;
            }
            assert_int_equal(icy_write(&y, &meta, audio + at, n, &out), 0);
            at += n;
        }
        parse((const uint8_t *)out.data, out.len, metaint, p);
        assert_int_equal(p->audio_len, total);
        assert_memory_equal(p->audio, audio, total);
        assert_int_equal(p->nblocks, 10);
        if (round == 0) {
            /* the change lands on the first block after the bytes already
             * written when it happened */
            int changed = (int)(changed_at / metaint);
            assert_true(changed >= 4 && changed < 9);
            assert_string_equal(p->titles[0], "StreamTitle='Artist - Title';");
            for (int b = 1; b < 10; b++)
                assert_string_equal(p->titles[b],
                                    b == changed ? "StreamTitle='Second - Song';" : "");
        } else {
            /* a listener joining later gets the current title first */
            assert_string_equal(p->titles[0], "StreamTitle='Second - Song';");
            for (int b = 1; b < 10; b++)
                assert_string_equal(p->titles[b], "");
        }
        /* exact layout of the first block */
        assert_int_equal((uint8_t)out.data[metaint], 2);
        buf_free(&out);
    }
    assert_int_equal(meta.gen, gen + 1);
    free(p->audio);
    free(p);
    free(audio);
}

static void test_boundary(void **state)
{
    /* Ending a write exactly at metaint puts the block right there. */
    struct icy_meta meta;
    icy_meta_init(&meta);
    struct icy y;
    icy_init(&y, 16);
    struct buf out;
    buf_init(&out, 4096);
    uint8_t a[16];
    memset(a, 'a', sizeof(a));
    assert_int_equal(icy_write(&y, &meta, a, 16, &out), 0);
    assert_int_equal(out.len, 17);
    assert_int_equal(out.data[16], 0); /* no title yet: empty block */
    assert_int_equal(icy_write(&y, &meta, a, 0, &out), 0);
    assert_int_equal(out.len, 17);
    icy_meta_set(&meta, NULL);
    assert_int_equal(icy_write(&y, &meta, a, 16, &out), 0);
    assert_int_equal(out.len, 17 + 16 + 1 + 16);
    assert_int_equal(out.data[33], 1);
    assert_memory_equal(out.data + 34, "StreamTitle='';\0", 16);
    /* default metaint */
    icy_init(&y, 0);
    assert_int_equal(y.metaint, ICY_METAINT);
    buf_free(&out);
}

static void test_escaping(void **state)
{
    struct icy_meta meta;
    icy_meta_init(&meta);
    icy_meta_set(&meta, "Don't Stop';StreamUrl='x\n\t\x7f");
    const char *want =
        "StreamTitle='Don\xe2\x80\x99t Stop\xe2\x80\x99;StreamUrl=\xe2\x80\x99x   ';";
    size_t wl = strlen(want);
    assert_int_equal(meta.block[0], (wl + 15) / 16);
    assert_int_equal(meta.len, 1 + (wl + 15) / 16 * 16);
    assert_memory_equal(meta.block + 1, want, wl);
    for (size_t i = 1 + wl; i < meta.len; i++)
        assert_int_equal(meta.block[i], 0);
    /* no apostrophe left inside the value: only the two delimiters */
    int quotes = 0;
    for (size_t i = 1; i < meta.len; i++)
        quotes += meta.block[i] == '\'';
    assert_int_equal(quotes, 2);
    /* UTF-8 passes through */
    icy_meta_set(&meta, "Sigur R\xc3\xb3s \xe2\x80\x94 \xe6\x9d\xb1\xe4\xba\xac");
    assert_memory_equal(meta.block + 1,
                        "StreamTitle='Sigur R\xc3\xb3s \xe2\x80\x94 \xe6\x9d\xb1\xe4\xba\xac';",
                        strlen("StreamTitle='Sigur R\xc3\xb3s \xe2\x80\x94 "
                               "\xe6\x9d\xb1\xe4\xba\xac';"));
}

static int valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int len = s[i] < 0x80 ? 1 : s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : s[i] >= 0xc0 ? 2 : 0;
        if (!len || i + (size_t)len > n)
            return 0;
        for (int k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += (size_t)len;
    }
    return 1;
}

static void test_long_titles(void **state)
{
    struct icy_meta meta;
    icy_meta_init(&meta);
    const size_t room = ICY_META_MAX - strlen("StreamTitle='';");
    char *t = malloc(10000);
    /* ASCII: cut to exactly fill 255 blocks */
    memset(t, 'a', 9999);
    t[9999] = '\0';
    icy_meta_set(&meta, t);
    assert_int_equal(meta.block[0], 255);
    assert_int_equal(meta.len, 1 + ICY_META_MAX);
    assert_memory_equal(meta.block + 1 + ICY_META_MAX - 2, "';", 2);
    /* 2-byte characters: the odd byte left over is not split */
    for (int off = 0; off < 3; off++) {
        size_t n = 0;
        for (int i = 0; i < off; i++)
            t[n++] = 'x';
        while (n < 9990) {
            t[n++] = (char)0xc3;
            t[n++] = (char)0xa9;
        }
        t[n] = '\0';
        icy_meta_set(&meta, t);
        const uint8_t *text = meta.block + 1 + strlen("StreamTitle='");
        size_t tl = strnlen((const char *)meta.block + 1, meta.len - 1) - strlen("StreamTitle='';");
        assert_true(tl <= room && tl >= room - 1);
        assert_true(valid_utf8(text, tl));
        assert_memory_equal(text + tl, "';", 2);
    }
    /* 3-byte apostrophes at the end: never a partial one */
    memset(t, '\'', 5000);
    t[5000] = '\0';
    icy_meta_set(&meta, t);
    size_t tl = strnlen((const char *)meta.block + 1, meta.len - 1) - strlen("StreamTitle='';");
    assert_int_equal(tl, room / 3 * 3);
    free(t);
}

static void test_all_or_nothing(void **state)
{
    struct icy_meta meta;
    icy_meta_init(&meta);
    icy_meta_set(&meta, "A fairly long title that needs three blocks of sixteen");
    struct icy y;
    icy_init(&y, 100);
    struct buf out;
    buf_init(&out, 150);
    uint8_t a[200] = {0};
    assert_int_equal(icy_write(&y, &meta, a, 90, &out), 0);
    struct icy before = y;
    /* 20 bytes + a 65-byte block would pass the 150-byte limit */
    assert_int_equal(icy_write(&y, &meta, a, 20, &out), -E2BIG);
    assert_int_equal(out.len, 90);
    assert_memory_equal(&y, &before, sizeof(y));
    assert_int_equal(icy_write(&y, &meta, a, 9, &out), 0);
    assert_int_equal(out.len, 99);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placement),      cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_escaping),       cmocka_unit_test(test_long_titles),
        cmocka_unit_test(test_all_or_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
