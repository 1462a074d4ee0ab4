/*
 * Cover art: images made at test time with ffmpeg go through
 * picture_process, and what comes out is checked with libvips itself (each
 * thumbnail decodes as a JPEG that fits its box, keeps the aspect ratio and
 * is never larger than the original). Bad bytes must give an error with a
 * message, never a crash or a huge allocation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <vips/vips.h>

#include "library/picture.h"

static char tmp[] = "/tmp/imes-test-picture-XXXXXX";
static int have_ffmpeg;

static char *tpath(const char *name)
{
    static char p[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", tmp, name);
    return p[i];
}

static int make(const char *name, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "ffmpeg -nostdin -loglevel error -y %s -frames:v 1 '%s'", args,
             tpath(name));
    return system(cmd) == 0 ? 0 : -1;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    gchar *data = NULL;
    gsize n = 0;
    if (!g_file_get_contents(path, &data, &n, NULL))
        return NULL;
    *len = n;
    return (uint8_t *)data;
}

static void spit(const char *path, const void *data, size_t len)
{
    assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
}

static int group_setup(void **state)
{
    if (!mkdtemp(tmp))
        return -1;
    if (picture_global_init() != 0)
        return -1;
    have_ffmpeg = system("ffmpeg -version >/dev/null 2>&1") == 0;
    if (!have_ffmpeg)
        return 0;
    int r = 0;
    r |= make("big.jpg", "-f lavfi -i testsrc=size=1200x900");
    r |= make("small.png", "-f lavfi -i testsrc=size=100x100");
    r |= make("tall.png", "-f lavfi -i testsrc=size=90x1200");
    r |= make("pic.webp", "-f lavfi -i testsrc=size=300x200");
    r |= make("pic.gif", "-f lavfi -i testsrc=size=120x90");
    r |= make("pic.bmp", "-f lavfi -i testsrc=size=120x90");
    r |= make("grey.jpg", "-f lavfi -i testsrc=size=640x480 -pix_fmt gray");
    r |= make("deep.png", "-f lavfi -i testsrc=size=600x600 -pix_fmt rgb48be");
    r |= make("alpha.png", "-f lavfi -i color=c=red@0.5:size=700x350,format=rgba");
    return r;
}

static int group_teardown(void **state)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        return -1;
    picture_global_deinit();
    return 0;
}

/* The sha1 the coreutils tool computes, to check ours against. */
static void sha1sum(const char *path, char out[41])
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "sha1sum '%s'", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%40s", out), 1);
    pclose(p);
}

/* Each thumbnail: a JPEG that libvips reads back at the size we were told,
 * inside its box, aspect ratio within a pixel, and no larger than the
 * original in either direction. */
static void check_thumbs(const struct picture_result *r)
{
    for (int i = 0; i < PICTURE_SIZES; i++) {
        int box = picture_sizes[i];
        assert_int_equal(r->thumbs[i].size, box);
        assert_non_null(r->thumbs[i].jpeg);
        assert_true(r->thumbs[i].len > 100);
        assert_memory_equal(r->thumbs[i].jpeg, "\xff\xd8\xff", 3);
        VipsImage *img = vips_image_new_from_buffer(r->thumbs[i].jpeg, r->thumbs[i].len, "", NULL);
        assert_non_null(img);
        const char *loader = NULL;
        assert_int_equal(vips_image_get_string(img, "vips-loader", &loader), 0);
        assert_string_equal(loader, "jpegload_buffer");
        int w = vips_image_get_width(img), h = vips_image_get_height(img);
        assert_int_equal(w, r->thumbs[i].width);
        assert_int_equal(h, r->thumbs[i].height);
        /* decodes completely, not just the header */
        double avg;
        assert_int_equal(vips_avg(img, &avg, NULL), 0);
        g_object_unref(img);
        assert_true(w <= box && h <= box);
        assert_true(w <= r->width && h <= r->height);
        /* fills the box in one direction, unless the original is smaller */
        assert_true(w == box || h == box || (w == r->width && h == r->height));
        long long cross = (long long)w * r->height - (long long)h * r->width;
        assert_true(llabs(cross) <= (r->width > r->height ? r->width : r->height));
    }
}

static void process_file(const char *name, struct picture_result *r)
{
    size_t len = 0;
    uint8_t *data = slurp(tpath(name), &len);
    assert_non_null(data);
    char err[256] = "";
    int ret = picture_process(data, len, r, err, sizeof(err));
    if (ret != 0)
        fail_msg("%s: %s", name, err);
    assert_int_equal(r->original_len, len);
    assert_memory_equal(r->original, data, len);
    char expect[41];
    sha1sum(tpath(name), expect);
    assert_string_equal(r->sha1, expect);
    g_free(data);
}

static void test_jpeg_four_sizes(void **state)
{
    if (!have_ffmpeg)
        skip();
    struct picture_result r;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    process_file("big.jpg", &r);
    clock_gettime(CLOCK_MONOTONIC, &b);
    print_message("1200x900 JPEG to 4 thumbnails: %.1f ms\n",
                  (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
    assert_string_equal(r.mime, "image/jpeg");
    assert_int_equal(r.width, 1200);
    assert_int_equal(r.height, 900);
    static const int expect[PICTURE_SIZES][2] = {{512, 384}, {256, 192}, {128, 96}, {64, 48}};
    for (int i = 0; i < PICTURE_SIZES; i++) {
        assert_int_equal(r.thumbs[i].width, expect[i][0]);
        assert_int_equal(r.thumbs[i].height, expect[i][1]);
    }
    check_thumbs(&r);
    picture_result_clear(&r);
    assert_null(r.original);
    assert_null(r.thumbs[0].jpeg);
    picture_result_clear(&r); /* twice is fine */
}

static void test_small_png_not_upscaled(void **state)
{
    if (!have_ffmpeg)
        skip();
    struct picture_result r;
    process_file("small.png", &r);
    assert_string_equal(r.mime, "image/png");
    assert_int_equal(r.width, 100);
    assert_int_equal(r.height, 100);
    static const int expect[PICTURE_SIZES] = {100, 100, 100, 64};
    for (int i = 0; i < PICTURE_SIZES; i++) {
        assert_int_equal(r.thumbs[i].width, expect[i]);
        assert_int_equal(r.thumbs[i].height, expect[i]);
    }
    check_thumbs(&r);
    picture_result_clear(&r);
}

static void test_tall_png(void **state)
{
    if (!have_ffmpeg)
        skip();
    struct picture_result r;
    process_file("tall.png", &r);
    assert_int_equal(r.thumbs[0].height, 512);
    assert_int_equal(r.thumbs[0].width, 38); /* 90 * 512 / 1200 = 38.4 */
    assert_int_equal(r.thumbs[3].height, 64);
    check_thumbs(&r);
    picture_result_clear(&r);
}

static void test_other_formats(void **state)
{
    if (!have_ffmpeg)
        skip();
    static const struct {
        const char *file, *mime;
        int w, h;
    } cases[] = {
        {"pic.webp", "image/webp", 300, 200}, {"pic.gif", "image/gif", 120, 90},
        {"pic.bmp", "image/bmp", 120, 90},    {"grey.jpg", "image/jpeg", 640, 480},
        {"deep.png", "image/png", 600, 600},  {"alpha.png", "image/png", 700, 350},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct picture_result r;
        process_file(cases[i].file, &r);
        assert_string_equal(r.mime, cases[i].mime);
        assert_int_equal(r.width, cases[i].w);
        assert_int_equal(r.height, cases[i].h);
        check_thumbs(&r);
        picture_result_clear(&r);
    }
    /* Half-transparent red flattened on white is light red, not dark red. */
    struct picture_result r;
    process_file("alpha.png", &r);
    VipsImage *img = vips_image_new_from_buffer(r.thumbs[3].jpeg, r.thumbs[3].len, "", NULL);
    assert_non_null(img);
    assert_int_equal(vips_image_get_bands(img), 3);
    double *px = NULL;
    int n = 0;
    assert_int_equal(vips_getpoint(img, &px, &n, 10, 10, NULL), 0);
    assert_true(px[0] > 240 && px[1] > 100 && px[1] < 160);
    g_free(px);
    g_object_unref(img);
    picture_result_clear(&r);
}

/* The mime comes from the bytes, whatever the file is called. */
static void test_mime_from_bytes(void **state)
{
    if (!have_ffmpeg)
        skip();
    size_t len = 0;
    uint8_t *data = slurp(tpath("small.png"), &len);
    spit(tpath("lies.jpg"), data, len);
    g_free(data);
    struct picture_result r;
    process_file("lies.jpg", &r);
    assert_string_equal(r.mime, "image/png");
    picture_result_clear(&r);
}

static void test_same_bytes_same_sha1(void **state)
{
    char a[41], b[41];
    picture_sha1_hex((const uint8_t *)"abc", 3, a);
    assert_string_equal(a, "a9993e364706816aba3e25717850c26c9cd0d89d");
    picture_sha1_hex((const uint8_t *)"", 0, b);
    assert_string_equal(b, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    if (!have_ffmpeg)
        skip();
    size_t len = 0;
    uint8_t *data = slurp(tpath("big.jpg"), &len);
    uint8_t *copy = g_memdup2(data, len);
    struct picture_result r1, r2;
    assert_int_equal(picture_process(data, len, &r1, NULL, 0), 0);
    assert_int_equal(picture_process(copy, len, &r2, NULL, 0), 0);
    assert_string_equal(r1.sha1, r2.sha1);
    picture_sha1_hex(data, len, a);
    assert_string_equal(a, r1.sha1);
    copy[len / 2] ^= 1; /* (a flipped bit in the entropy data still decodes) */
    picture_sha1_hex(copy, len, b);
    assert_string_not_equal(a, b);
    picture_result_clear(&r1);
    picture_result_clear(&r2);
    g_free(data);
    g_free(copy);
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A valid PNG signature and IHDR claiming w x h, 8-bit RGB, then a tiny IDAT
 * and IEND: what a decompression bomb looks like to a header reader. */
static size_t png_header(uint8_t *out, uint32_t w, uint32_t h)
{
    size_t n = 0;
    memcpy(out, "\x89PNG\r\n\x1a\n", 8);
    n = 8;
    uint8_t ihdr[17] = {'I', 'H', 'D', 'R'};
    put32(ihdr + 4, w);
    put32(ihdr + 8, h);
    ihdr[12] = 8; /* bit depth */
    ihdr[13] = 2; /* RGB */
    put32(out + n, 13);
    memcpy(out + n + 4, ihdr, 17);
    put32(out + n + 21, crc32_of(ihdr, 17));
    n += 25;
    static const uint8_t idat[] = {'I',  'D',  'A',  'T',  0x78, 0x9c,
                                   0x03, 0x00, 0x00, 0x00, 0x00, 0x01};
    put32(out + n, sizeof(idat) - 4);
    memcpy(out + n + 4, idat, sizeof(idat));
    put32(out + n + 4 + sizeof(idat), crc32_of(idat, sizeof(idat)));
    n += 8 + sizeof(idat);
    put32(out + n, 0);
    memcpy(out + n + 4, "IEND", 4);
    put32(out + n + 8, crc32_of((const uint8_t *)"IEND", 4));
    return n + 12;
}

static void expect_error(const uint8_t *data, size_t len, int code, const char *needle)
{
    struct picture_result r;
    char err[256] = "";
    memset(&r, 0xaa, sizeof(r));
    int ret = picture_process(data, len, &r, err, sizeof(err));
    if (ret != code)
        fail_msg("%s: expected %d, got %d (%s)", needle ? needle : "", code, ret, err);
    assert_true(strlen(err) > 0);
    if (needle && !strstr(err, needle))
        fail_msg("'%s' not in '%s'", needle, err);
    assert_null(r.original);
    assert_null(r.thumbs[0].jpeg);
    picture_result_clear(&r);
}

static void test_bad_inputs(void **state)
{
    static const uint8_t random10[10] = {0x13, 0x37, 0xc0, 0xff, 0xee,
                                         0x00, 0x42, 0x99, 0x01, 0x7f};
    expect_error(NULL, 0, -EINVAL, "not an image");
    expect_error((const uint8_t *)"", 0, -EINVAL, "not an image");
    expect_error(random10, sizeof(random10), -EINVAL, "not an image");
    expect_error((const uint8_t *)"BM not really a bitmap", 22, -EINVAL, "not an image");
    /* A JPEG or PNG start followed by junk */
    uint8_t junk[64];
    memset(junk, 0x5a, sizeof(junk));
    memcpy(junk, "\xff\xd8\xff\xe0", 4);
    expect_error(junk, sizeof(junk), -EINVAL, "image/jpeg");
    memcpy(junk, "\x89PNG\r\n\x1a\n", 8);
    expect_error(junk, sizeof(junk), -EINVAL, "image/png");

    uint8_t png[128];
    size_t n = png_header(png, 30000, 30000);
    expect_error(png, n, -EFBIG, "image too large: 30000 x 30000");
    /* A small claimed size with no pixel data is a broken image, not a crash. */
    n = png_header(png, 300, 300);
    expect_error(png, n, -EINVAL, "image/png");

    uint8_t *big = g_malloc(33u << 20);
    memcpy(big, "\xff\xd8\xff\xe0", 4);
    expect_error(big, 33u << 20, -EFBIG, "image too large");
    g_free(big);

    if (!have_ffmpeg)
        skip();
    size_t len = 0;
    uint8_t *data = slurp(tpath("big.jpg"), &len);
    expect_error(data, len / 2, -EINVAL, "image/jpeg");
    g_free(data);
    data = slurp(tpath("small.png"), &len);
    expect_error(data, len - 20, -EINVAL, "image/png");
    g_free(data);
}

static void test_err_may_be_null(void **state)
{
    /* err may be NULL and the result is still cleared */
    struct picture_result r;
    assert_int_equal(picture_process((const uint8_t *)"x", 1, &r, NULL, 0), -EINVAL);
    assert_null(r.original);
}

struct job {
    const uint8_t *data;
    size_t len;
    struct picture_result r;
    int ret;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    j->ret = picture_process(j->data, j->len, &j->r, NULL, 0);
    return NULL;
}

/* Workers run picture_process side by side: same input, same output. */
static void test_concurrent(void **state)
{
    if (!have_ffmpeg)
        skip();
    size_t len = 0;
    uint8_t *data = slurp(tpath("big.jpg"), &len);
    struct job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){.data = data, .len = len};
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(jobs[i].ret, 0);
        assert_string_equal(jobs[i].r.sha1, jobs[0].r.sha1);
        for (int k = 0; k < PICTURE_SIZES; k++) {
            assert_int_equal(jobs[i].r.thumbs[k].len, jobs[0].r.thumbs[k].len);
            assert_memory_equal(jobs[i].r.thumbs[k].jpeg, jobs[0].r.thumbs[k].jpeg,
                                jobs[0].r.thumbs[k].len);
        }
    }
    for (int i = 0; i < 4; i++)
        picture_result_clear(&jobs[i].r);
    g_free(data);
}

static void touch(const char *dir, const char *name, const char *content)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    spit(p, content, strlen(content));
}

static void expect_cover(const char *dir, const char *name)
{
    char out[600], want[600];
    assert_int_equal(picture_find_folder_cover(dir, out, sizeof(out)), 0);
    snprintf(want, sizeof(want), "%s/%s", dir, name);
    assert_string_equal(out, want);
}

static void test_folder_cover(void **state)
{
    char dir[512], p[600];
    snprintf(dir, sizeof(dir), "%s/album", tmp);
    assert_int_equal(mkdir(dir, 0755), 0);
    char out[600];
    assert_int_equal(picture_find_folder_cover(dir, out, sizeof(out)), -ENOENT);
    touch(dir, "01 - song.flac", "x");
    touch(dir, "back.jpg", "x");
    touch(dir, "frontal.jpg", "x");
    touch(dir, "cover.txt", "x");
    assert_int_equal(picture_find_folder_cover(dir, out, sizeof(out)), -ENOENT);
    touch(dir, "FRONT.WebP", "x");
    expect_cover(dir, "FRONT.WebP");
    touch(dir, "front.png", "x");
    expect_cover(dir, "front.png"); /* png before webp */
    touch(dir, "Front.JPG", "x");
    expect_cover(dir, "Front.JPG");
    touch(dir, "Folder.Jpeg", "x");
    expect_cover(dir, "Folder.Jpeg");
    touch(dir, "folder.jpg", "x");
    expect_cover(dir, "folder.jpg");
    touch(dir, "COVER.PNG", "x");
    expect_cover(dir, "COVER.PNG");
    /* an empty cover.jpg and a folder called Cover.jpg do not count */
    touch(dir, "cover.jpg", "");
    snprintf(p, sizeof(p), "%s/Cover.jpg", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    expect_cover(dir, "COVER.PNG");
    touch(dir, "cover.jpg", "jpeg");
    expect_cover(dir, "cover.jpg");
    /* trailing slash on the folder: still one slash */
    char slashed[520];
    snprintf(slashed, sizeof(slashed), "%s/", dir);
    assert_int_equal(picture_find_folder_cover(slashed, out, sizeof(out)), 0);
    snprintf(p, sizeof(p), "%s/cover.jpg", dir);
    assert_string_equal(out, p);
    assert_int_equal(picture_find_folder_cover(dir, out, 10), -ENAMETOOLONG);
    snprintf(p, sizeof(p), "%s/nonexistent", tmp);
    assert_int_equal(picture_find_folder_cover(p, out, sizeof(out)), -ENOENT);
}

static void check_attachment(json_t *att, const char *name, const char *type, const uint8_t *data,
                             size_t len)
{
    json_t *a = json_object_get(att, name);
    assert_non_null(a);
    assert_string_equal(json_string_value(json_object_get(a, "content_type")), type);
    const char *b64 = json_string_value(json_object_get(a, "data"));
    assert_non_null(b64);
    gsize n = 0;
    guchar *raw = g_base64_decode(b64, &n);
    assert_int_equal(n, len);
    assert_memory_equal(raw, data, len);
    g_free(raw);
}

static void test_doc(void **state)
{
    if (!have_ffmpeg)
        skip();
    struct picture_result r;
    process_file("pic.webp", &r);
    json_t *doc = picture_doc(&r);
    assert_non_null(doc);
    char id[64];
    snprintf(id, sizeof(id), "picture:%s", r.sha1);
    assert_string_equal(json_string_value(json_object_get(doc, "_id")), id);
    assert_string_equal(json_string_value(json_object_get(doc, "type")), "picture");
    assert_string_equal(json_string_value(json_object_get(doc, "mime")), "image/webp");
    assert_int_equal(json_integer_value(json_object_get(doc, "width")), 300);
    assert_int_equal(json_integer_value(json_object_get(doc, "height")), 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "length")), r.original_len);
    json_t *sizes = json_object_get(doc, "sizes");
    assert_int_equal(json_array_size(sizes), PICTURE_SIZES);
    json_t *att = json_object_get(doc, "_attachments");
    assert_int_equal(json_object_size(att), PICTURE_SIZES + 1);
    check_attachment(att, "original", "image/webp", r.original, r.original_len);
    for (int i = 0; i < PICTURE_SIZES; i++) {
        char name[16];
        snprintf(name, sizeof(name), "%d.jpg", picture_sizes[i]);
        assert_int_equal(json_integer_value(json_array_get(sizes, (size_t)i)), picture_sizes[i]);
        check_attachment(att, name, "image/jpeg", r.thumbs[i].jpeg, r.thumbs[i].len);
        json_t *t = json_object_get(json_object_get(doc, "thumbs"), name);
        assert_int_equal(json_integer_value(json_object_get(t, "width")), r.thumbs[i].width);
        assert_int_equal(json_integer_value(json_object_get(t, "height")), r.thumbs[i].height);
    }
    json_decref(doc);
    picture_result_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jpeg_four_sizes),
        cmocka_unit_test(test_small_png_not_upscaled),
        cmocka_unit_test(test_tall_png),
        cmocka_unit_test(test_other_formats),
        cmocka_unit_test(test_mime_from_bytes),
        cmocka_unit_test(test_same_bytes_same_sha1),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_err_may_be_null),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_folder_cover),
        cmocka_unit_test(test_doc),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
