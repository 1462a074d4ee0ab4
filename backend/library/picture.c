/*
 * Cover art (see picture.h). The bytes come from outside (a tag, a file
 * beside the music), so the format is decided from their magic bytes, the
 * libvips loader that would read them must be the one for that format, and
 * the header is checked against size limits before a single pixel is
 * decoded. Scaling is libvips' thumbnail: JPEG and WebP shrink on load, PNG
 * streams, so even a large cover costs a few MB. The 512 px version is made
 * once, kept in memory, and the smaller ones are made from it.
 *
 * libvips is initialised once, with its operation cache off and one thread
 * per pipeline: we already run one picture per worker thread, and a cache
 * would only hold on to images we never look at again. Loaders that libvips
 * marks untrusted (ImageMagick, SVG, matlab, FITS...) are blocked, except
 * ImageMagick's buffer loader, which is the only one that reads BMP, and is
 * only ever handed bytes that start like a BMP.
 */
#include "library/picture.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <glib.h>
#include <vips/vips.h>

#include "core/log.h"

const int picture_sizes[PICTURE_SIZES] = {512, 256, 128, 64};

/* An embedded picture or cover file above this is not cover art. */
#define MAX_BYTES (32u << 20)
/* Formats libvips streams or shrinks while loading (JPEG, PNG, WebP) cost
 * little memory at any size; 64 MP is a 8000x8000 scan, more than any cover.
 * GIF and BMP are decoded whole into RGBA, so they get a quarter of that
 * (16 MP = 64 MB). */
#define MAX_PIXELS       (64ll * 1000 * 1000)
#define MAX_PIXELS_WHOLE (16ll * 1000 * 1000)
/* A web-page quality that keeps a 512 px cover around 40-60 kB. */
#define JPEG_Q 85

struct format {
    const char *mime;
    const char *loader; /* the libvips class that must claim these bytes */
    int whole;          /* decoded whole, not streamed */
};

static const struct format formats[] = {
    {"image/jpeg", "VipsForeignLoadJpegBuffer", 0},  {"image/png", "VipsForeignLoadPngBuffer", 0},
    {"image/webp", "VipsForeignLoadWebpBuffer", 0},  {"image/gif", "VipsForeignLoadNsgifBuffer", 1},
    {"image/bmp", "VipsForeignLoadMagickBuffer", 1},
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_status = -EAGAIN;

/* libvips warns through GLib's log, to stderr by default: a broken cover
 * can print hundreds of lines. They go to our log at debug level; the one
 * error that matters is reported by picture_process. */
static void vips_log_to_ours(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                             gpointer data)
{
    LOG(E_DEBUG, L_LIBRARY, "libvips: %s", msg);
}

static void init_vips(void)
{
    if (VIPS_INIT("imesd")) {
        LOG(E_ERROR, L_LIBRARY, "libvips: cannot start: %s", vips_error_buffer());
        vips_error_clear();
        init_status = -ENOSYS;
        return;
    }
    g_log_set_handler(
        "VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG,
        vips_log_to_ours, NULL);
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_concurrency_set(1);
    vips_block_untrusted_set(TRUE);
    vips_operation_block_set("VipsForeignLoadMagickBuffer", FALSE);
    init_status = 0;
}

int picture_global_init(void)
{
    pthread_once(&init_once, init_vips);
    return init_status;
}

void picture_global_deinit(void)
{
    if (init_status == 0)
        vips_shutdown();
    init_status = -ESHUTDOWN;
}

void picture_sha1_hex(const uint8_t *data, size_t len, char out[41])
{
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA1);
    /* g_checksum_update takes a gssize; inputs here are far below that. */
    g_checksum_update(c, data, (gssize)len);
    snprintf(out, 41, "%s", g_checksum_get_string(c));
    g_checksum_free(c);
}

/* The format of some bytes, from their magic numbers only. */
static const struct format *sniff(const uint8_t *d, size_t n)
{
    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        return &formats[0];
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
        return &formats[1];
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return &formats[2];
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
        return &formats[3];
    /* "BM" alone is too common a start for text; a BMP also has a 14-byte
     * file header followed by a DIB header whose size is one of the known
     * ones (12 OS/2, 40, 52, 56, 64, 108, 124). */
    if (n >= 18 && d[0] == 'B' && d[1] == 'M') {
        uint32_t dib = d[14] | d[15] << 8 | d[16] << 16 | (uint32_t)d[17] << 24;
        if (dib == 12 || dib == 40 || dib == 52 || dib == 56 || dib == 64 || dib == 108 ||
            dib == 124)
            return &formats[4];
    }
    return NULL;
}

/* libvips' message for the failure that just happened on this thread: its
 * error buffer is process-wide, so this is the first line of what is there. */
static void vips_reason(const char *what, char *err, size_t errlen)
{
    char *msg = vips_error_buffer_copy();
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = '\0';
    snprintf(err, errlen, "%s: %s", what, msg[0] ? msg : "cannot decode");
    g_free(msg);
}

/* 8-bit sRGB or grey, alpha flattened on white (covers with transparency are
 * meant to be seen on a light page more often than on black), in memory. */
static VipsImage *to_jpegable(VipsImage *in)
{
    VipsImage *t[4] = {NULL, NULL, NULL, NULL};
    VipsImage *out = NULL;
    VipsInterpretation target = vips_image_guess_interpretation(in);
    target = (target == VIPS_INTERPRETATION_B_W || target == VIPS_INTERPRETATION_GREY16)
                 ? VIPS_INTERPRETATION_B_W
                 : VIPS_INTERPRETATION_sRGB;
    if (vips_colourspace(in, &t[0], target, NULL))
        goto done;
    if (vips_image_hasalpha(t[0])) {
        double white[3] = {255, 255, 255};
        int nb = target == VIPS_INTERPRETATION_B_W ? 1 : 3;
        VipsArrayDouble *bg = vips_array_double_new(white, nb);
        int r = vips_flatten(t[0], &t[1], "background", bg, NULL);
        vips_area_unref(VIPS_AREA(bg));
        if (r)
            goto done;
    } else {
        t[1] = t[0];
        g_object_ref(t[1]);
    }
    if (vips_cast_uchar(t[1], &t[2], NULL))
        goto done;
    out = vips_image_copy_memory(t[2]);
done:
    for (int i = 0; i < 4; i++)
        if (t[i])
            g_object_unref(t[i]);
    return out;
}

static int save_jpeg(VipsImage *img, int box, struct picture_result *out, int i)
{
    void *buf = NULL;
    size_t len = 0;
    if (vips_jpegsave_buffer(img, &buf, &len, "Q", JPEG_Q, "strip", TRUE, "optimize_coding", TRUE,
                             NULL))
        return -1;
    out->thumbs[i].size = box;
    out->thumbs[i].width = vips_image_get_width(img);
    out->thumbs[i].height = vips_image_get_height(img);
    out->thumbs[i].jpeg = buf;
    out->thumbs[i].len = len;
    return 0;
}

/* Thread: worker */
int picture_process(const uint8_t *data, size_t len, struct picture_result *out, char *err,
                    size_t errlen)
{
    char dummy[1];
    VipsImage *head = NULL, *big = NULL, *mem = NULL;
    const struct format *fmt;
    int ret;

    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    memset(out, 0, sizeof(*out));
    if (init_status != 0) {
        snprintf(err, errlen, "libvips not initialised");
        return -ENOSYS;
    }
    if (!data || len == 0) {
        snprintf(err, errlen, "not an image: empty");
        return -EINVAL;
    }
    if (len > MAX_BYTES) {
        snprintf(err, errlen, "image too large: %zu bytes", len);
        return -EFBIG;
    }
    fmt = sniff(data, len);
    if (!fmt) {
        snprintf(err, errlen, "not an image: starts %02x %02x %02x %02x", data[0],
                 len > 1 ? data[1] : 0, len > 2 ? data[2] : 0, len > 3 ? data[3] : 0);
        return -EINVAL;
    }
    /* The loader libvips picks is asked first, so bytes that merely start
     * like a PNG are never handed to some other loader that also claims them. */
    const char *loader = vips_foreign_find_load_buffer(data, len);
    if (!loader || strcmp(loader, fmt->loader) != 0) {
        vips_error_clear();
        snprintf(err, errlen, "not a readable %s", fmt->mime);
        return -EINVAL;
    }

    /* Header only: libvips reads pixels lazily, and not before we know the size. */
    head = vips_image_new_from_buffer(data, len, "", NULL);
    if (!head) {
        vips_reason(fmt->mime, err, errlen);
        return -EINVAL;
    }
    int w = vips_image_get_width(head), h = vips_image_get_height(head);
    long long limit = fmt->whole ? MAX_PIXELS_WHOLE : MAX_PIXELS;
    if ((long long)w * h > limit) {
        snprintf(err, errlen, "image too large: %d x %d", w, h);
        ret = -EFBIG;
        goto fail_head;
    }
    /* Reported as displayed: the thumbnails are turned upright too. */
    if (vips_image_get_orientation_swap(head)) {
        int t = w;
        w = h;
        h = t;
    }

    VipsImage *t = NULL;
    /* Height too, or a tall image would fit 512 wide only. fail_on for the
     * loader: a truncated JPEG or PNG is an error, not a grey-padded cover
     * (thumbnail's own "fail_on" does not reach the loader in 8.14). */
    if (vips_thumbnail_buffer((void *)data, len, &t, picture_sizes[0], "height", picture_sizes[0],
                              "size", VIPS_SIZE_DOWN, "option_string", "fail_on=truncated", NULL)) {
        vips_reason(fmt->mime, err, errlen);
        ret = -EINVAL;
        goto fail_head;
    }
    big = t;
    mem = to_jpegable(big); /* decoding happens here */
    if (!mem) {
        vips_reason(fmt->mime, err, errlen);
        ret = -EINVAL;
        goto fail_big;
    }
    if (save_jpeg(mem, picture_sizes[0], out, 0)) {
        vips_reason("JPEG encoding", err, errlen);
        ret = -EIO;
        goto fail_thumbs;
    }
    for (int i = 1; i < PICTURE_SIZES; i++) {
        VipsImage *s = NULL;
        int box = picture_sizes[i];
        if (vips_thumbnail_image(mem, &s, box, "height", box, "size", VIPS_SIZE_DOWN, "no_rotate",
                                 TRUE, NULL) ||
            save_jpeg(s, box, out, i)) {
            if (s)
                g_object_unref(s);
            vips_reason("scaling", err, errlen);
            ret = -EIO;
            goto fail_thumbs;
        }
        g_object_unref(s);
    }

    out->original = g_memdup2(data, len);
    out->original_len = len;
    picture_sha1_hex(data, len, out->sha1);
    snprintf(out->mime, sizeof(out->mime), "%s", fmt->mime);
    out->width = w;
    out->height = h;
    g_object_unref(mem);
    g_object_unref(big);
    g_object_unref(head);
    return 0;

fail_thumbs:
    picture_result_clear(out);
    g_object_unref(mem);
fail_big:
    g_object_unref(big);
fail_head:
    g_object_unref(head);
    return ret;
}

void picture_result_clear(struct picture_result *r)
{
    if (!r)
        return;
    g_free(r->original);
    for (int i = 0; i < PICTURE_SIZES; i++)
        g_free(r->thumbs[i].jpeg);
    memset(r, 0, sizeof(*r));
}

/* Cover file names, best first: a base name, then an extension. */
static const char *const cover_bases[] = {"cover", "folder", "front"};
static const char *const cover_exts[] = {"jpg", "jpeg", "png", "webp"};
#define N_BASES (sizeof(cover_bases) / sizeof(cover_bases[0]))
#define N_EXTS  (sizeof(cover_exts) / sizeof(cover_exts[0]))

/* The rank of a file name as a cover (lower is better), or -1. */
static int cover_rank(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return -1;
    size_t blen = (size_t)(dot - name);
    for (size_t b = 0; b < N_BASES; b++) {
        if (blen != strlen(cover_bases[b]) || strncasecmp(name, cover_bases[b], blen) != 0)
            continue;
        for (size_t e = 0; e < N_EXTS; e++)
            if (strcasecmp(dot + 1, cover_exts[e]) == 0)
                return (int)(b * N_EXTS + e);
    }
    return -1;
}

/* Thread: worker */
int picture_find_folder_cover(const char *dir, char *out, size_t outlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int best = -1;
    char best_name[256] = "";
    struct dirent *de;
    const char *sep = dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/";
    while ((de = readdir(d))) {
        int r = cover_rank(de->d_name);
        if (r < 0 || (best >= 0 && r > best))
            continue;
        /* Cover.jpg and cover.JPG side by side: the same pick every time. */
        if (r == best && strcmp(de->d_name, best_name) > 0)
            continue;
        /* A folder named cover.jpg, a dangling link or an empty file is not a cover. */
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
            continue;
        best = r;
        snprintf(best_name, sizeof(best_name), "%s", de->d_name);
    }
    closedir(d);
    if (best < 0)
        return -ENOENT;
    if ((size_t)snprintf(out, outlen, "%s%s%s", dir, sep, best_name) >= outlen)
        return -ENAMETOOLONG;
    return 0;
}

static json_t *attachment(const char *type, const uint8_t *data, size_t len)
{
    gchar *b64 = g_base64_encode(data, len);
    json_t *a = json_pack("{s:s, s:s}", "content_type", type, "data", b64);
    g_free(b64);
    return a;
}

json_t *picture_doc(const struct picture_result *r)
{
    char id[64];
    snprintf(id, sizeof(id), "picture:%s", r->sha1);
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:i, s:i, s:I}", "_id", id, "type", "picture", "mime", r->mime,
                  "width", r->width, "height", r->height, "length", (json_int_t)r->original_len);
    json_t *sizes = json_array();
    json_t *thumbs = json_object();
    json_t *att = json_object();
    if (!doc || !sizes || !thumbs || !att)
        goto fail;
    if (json_object_set_new(att, "original", attachment(r->mime, r->original, r->original_len)))
        goto fail;
    for (int i = 0; i < PICTURE_SIZES; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%d.jpg", r->thumbs[i].size);
        if (json_array_append_new(sizes, json_integer(r->thumbs[i].size)) ||
            json_object_set_new(thumbs, name,
                                json_pack("{s:i, s:i}", "width", r->thumbs[i].width, "height",
                                          r->thumbs[i].height)) ||
            json_object_set_new(att, name,
                                attachment("image/jpeg", r->thumbs[i].jpeg, r->thumbs[i].len)))
            goto fail;
    }
    /* json_object_set_new takes its value even when it fails. */
    int bad = json_object_set_new(doc, "sizes", sizes);
    bad |= json_object_set_new(doc, "thumbs", thumbs);
    bad |= json_object_set_new(doc, "_attachments", att);
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
fail:
    json_decref(sizes);
    json_decref(thumbs);
    json_decref(att);
    json_decref(doc);
    return NULL;
}
