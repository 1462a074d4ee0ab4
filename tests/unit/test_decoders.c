/*
 * Decoder plugins against real files: every format is made at test time by
 * ffmpeg (and mpcenc for Musepack) from a 2 s 440 Hz sine, tagged by ffmpeg
 * where ffmpeg can and by the small writers below where it cannot
 * (multi-valued Vorbis comments and ID3v2.4 frames, UFID, RVA2, MP4
 * freeform atoms, ASF WM/Picture, APEv2, the Musepack header's gain).
 * Asserted exactly: length, rate, channels, every tag, ReplayGain, the
 * picture bytes, and that the decoded audio is the 440 Hz tone. Broken files
 * must give an error, not a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <FLAC/metadata.h>

#include "media/apetag.h"
#include "media/decoder.h"

#define RATE    44100
#define SECONDS 2
#define TONE    440.0
#define TITLE                                                                                      \
    "\xc3\x86r\xc3\xb8sk\xc3\xb8"                                                                  \
    "bing \xe2\x80\x94 \xe6\x9d\xb1\xe4\xba\xac"
#define MB_ALBUM  "8b4a1f3c-2f0e-4f43-9d0c-1f0e6b7c9a11"
#define MB_TRACK  "0d6e5c3a-9b1f-4a7e-8c2d-3e4f5a6b7c8d"
#define MB_ARTIST "5b11f4ce-a62d-471e-81fc-a69a8278c7da"

static char dir[256];
static char cover_path[300];
static uint8_t *cover;
static size_t cover_len;

/* ---- helpers ---- */

static const char *path(const char *name)
{
    static char bufs[8][512];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int r = system(cmd);
    if (r != 0)
        fprintf(stderr, "command failed (%d): %s\n", r, cmd);
    return r;
}

static uint8_t *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *p, const void *data, size_t len)
{
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* A growable byte string for the tag writers. */
struct bytes {
    uint8_t *p;
    size_t n;
};

static void put(struct bytes *b, const void *d, size_t n)
{
    b->p = realloc(b->p, b->n + n + 1);
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_s(struct bytes *b, const char *s)
{
    put(b, s, strlen(s));
}
static void put_u8(struct bytes *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}
static void put_le32(struct bytes *b, uint32_t v)
{
    uint8_t c[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, c, 4);
}
static void put_le16(struct bytes *b, unsigned v)
{
    uint8_t c[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(b, c, 2);
}
static void put_be32(struct bytes *b, uint32_t v)
{
    uint8_t c[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, c, 4);
}
static void put_syncsafe(struct bytes *b, uint32_t v)
{
    uint8_t c[4] = {(uint8_t)((v >> 21) & 0x7f), (uint8_t)((v >> 14) & 0x7f),
                    (uint8_t)((v >> 7) & 0x7f), (uint8_t)(v & 0x7f)};
    put(b, c, 4);
}
/* UTF-8 (BMP only, which is all the tests use) to UTF-16LE, NUL-terminated. */
static void put_utf16le(struct bytes *b, const char *s, int nul)
{
    const uint8_t *u = (const uint8_t *)s;
    while (*u) {
        unsigned cp;
        if (*u < 0x80)
            cp = *u++;
        else if ((*u & 0xe0) == 0xc0) {
            cp = (unsigned)(u[0] & 0x1f) << 6 | (u[1] & 0x3f);
            u += 2;
        } else {
            cp = (unsigned)(u[0] & 0x0f) << 12 | (unsigned)(u[1] & 0x3f) << 6 | (u[2] & 0x3f);
            u += 3;
        }
        put_le16(b, cp);
    }
    if (nul)
        put_le16(b, 0);
}

static char *base64(const uint8_t *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(n / 3 * 4 + 8), *p = o;
    size_t i;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = tab[(v >> 6) & 63];
        *p++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    *p = '\0';
    return o;
}

/* A FLAC PICTURE block body for the cover. */
static struct bytes flac_picture(int type, const char *mime, const char *desc)
{
    struct bytes b = {0};
    put_be32(&b, (uint32_t)type);
    put_be32(&b, (uint32_t)strlen(mime));
    put_s(&b, mime);
    put_be32(&b, (uint32_t)strlen(desc));
    put_s(&b, desc);
    put_be32(&b, 32);
    put_be32(&b, 32);
    put_be32(&b, 24);
    put_be32(&b, 0);
    put_be32(&b, (uint32_t)cover_len);
    put(&b, cover, cover_len);
    return b;
}

/* ---- opening, asserting ---- */

struct opened {
    const struct decoder_ops *ops;
    struct decoder *d;
    struct media_info info;
};

static void open_ok(const char *p, struct opened *o)
{
    char err[256];
    int r = decoder_open_file(p, DECODER_WANT_PICTURES, &o->ops, &o->d, &o->info, err, sizeof(err));
    if (r != 0)
        fail_msg("%s: %d %s", p, r, err);
}

static void close_ok(struct opened *o)
{
    media_info_clear(&o->info);
    o->ops->close(o->d);
}

static void open_fails(const char *p, int want_err)
{
    const struct decoder_ops *ops = (const void *)1;
    struct decoder *d = (void *)1;
    struct media_info info;
    char err[256] = "";
    int r = decoder_open_file(p, DECODER_WANT_PICTURES, &ops, &d, &info, err, sizeof(err));
    if (r >= 0)
        fail_msg("%s opened, should not have", p);
    if (want_err)
        assert_int_equal(r, want_err);
    assert_null(ops);
    assert_null(d);
    assert_null(info.tags);
    assert_int_equal(info.npictures, 0);
    /* The reason goes into the file doc: it must say something. */
    assert_true(strlen(err) > 5);
    printf("    %s: %s\n", strrchr(p, '/') + 1, err);
}

static void tag_is(const struct media_info *info, const char *key, const char *v0, const char *v1)
{
    json_t *a = json_object_get(info->tags, key);
    if (!a) {
        char *all = json_dumps(info->tags, JSON_SORT_KEYS);
        fail_msg("no tag %s in %s", key, all);
    }
    size_t want = v1 ? 2 : 1;
    if (json_array_size(a) != want) {
        char *all = json_dumps(a, 0);
        fail_msg("tag %s: %s, want %zu values", key, all, want);
    }
    assert_string_equal(json_string_value(json_array_get(a, 0)), v0);
    if (v1)
        assert_string_equal(json_string_value(json_array_get(a, 1)), v1);
}

static void no_tag(const struct media_info *info, const char *key)
{
    if (json_object_get(info->tags, key)) {
        char *all = json_dumps(info->tags, JSON_SORT_KEYS);
        fail_msg("unexpected tag %s in %s", key, all);
    }
}

/* The tags ffmpeg writes in every format (common_meta below). */
static void common_tags_are(const struct media_info *info)
{
    tag_is(info, "title", TITLE, NULL);
    tag_is(info, "album", "The Album", NULL);
    tag_is(info, "albumartist", "Various Artists", NULL);
    tag_is(info, "tracknumber", "3", NULL);
    tag_is(info, "tracktotal", "12", NULL);
    tag_is(info, "discnumber", "1", NULL);
    tag_is(info, "disctotal", "2", NULL);
    tag_is(info, "date", "2001-05-03", NULL);
    tag_is(info, "genre", "Jazz", NULL);
    tag_is(info, "composer", "Com Poser", NULL);
    no_tag(info, "encoder");
}

static void format_is(const struct media_info *info, const char *container, const char *codec,
                      int rate, double tolerance_s)
{
    assert_string_equal(info->container, container);
    assert_string_equal(info->codec, codec);
    assert_int_equal(info->rate, rate);
    assert_int_equal(info->channels, 1);
    if (fabs(info->duration - SECONDS) > tolerance_s)
        fail_msg("duration %.6f, want %d +- %.4f", info->duration, SECONDS, tolerance_s);
    if (tolerance_s < 0.001)
        assert_int_equal(info->frames, (int64_t)SECONDS * rate);
    assert_true(info->bitrate > 1000 && info->bitrate < 1500000);
}

static void picture_is_cover(const struct media_info *info, size_t i, int type)
{
    assert_true(info->npictures > i);
    const struct media_picture *p = &info->pictures[i];
    assert_int_equal(p->len, cover_len);
    assert_memory_equal(p->data, cover, cover_len);
    assert_string_equal(p->mime, "image/png");
    if (type >= 0)
        assert_int_equal(p->type, type);
}

static void gain_is(double got, double want)
{
    if (isnan(want)) {
        if (!isnan(got))
            fail_msg("gain %f, want none", got);
        return;
    }
    if (!(fabs(got - want) < 1e-6))
        fail_msg("gain %f, want %f", got, want);
}

/* Decodes everything, checks the count, and measures the tone in the
 * second from 0.5 s: rising zero crossings, interpolated. */
static void audio_is_tone(struct opened *o, int check_count)
{
    int rate = o->info.rate, ch = o->info.channels;
    size_t cap = (size_t)rate * (SECONDS + 1);
    float *all = malloc(cap * (size_t)ch * sizeof(float));
    size_t got = 0;
    for (int rounds = 0; rounds < 100000; rounds++) {
        size_t want = cap - got < 1000 ? cap - got : 1000; /* odd sizes on purpose */
        if (want == 0)
            break;
        long n = o->ops->read(o->d, all + got * (size_t)ch, want);
        assert_true(n >= 0);
        if (n == 0)
            break;
        assert_true((size_t)n <= want);
        got += (size_t)n;
    }
    if (check_count)
        assert_int_equal((int64_t)got, o->info.frames);
    else
        assert_true(fabs((double)got / rate - SECONDS) < 0.05);

    size_t start = (size_t)rate / 2, end = start + (size_t)rate;
    assert_true(got >= end);
    double first = -1, last = -1, energy = 0;
    int crossings = 0;
    for (size_t i = start; i < end; i++) {
        float a = all[(i - 1) * (size_t)ch], b = all[i * (size_t)ch];
        energy += (double)b * b;
        if (a < 0 && b >= 0) {
            double t = (double)(i - 1) + a / (a - b);
            if (first < 0)
                first = t;
            last = t;
            crossings++;
        }
    }
    double rms = sqrt(energy / (double)(end - start));
    assert_true(rms > 0.02 && rms < 1.0);
    assert_true(crossings > 10);
    double f = (crossings - 1) / ((last - first) / rate);
    if (fabs(f - TONE) > 2)
        fail_msg("tone %.2f Hz, want %.0f", f, TONE);
    free(all);
}

/* After a seek to 1 s, the next samples are the tone 1 s in: the sine
 * starts at phase 0, so sample n is sin(2 pi 440 n / rate) * amplitude. */
static void seek_works(struct opened *o)
{
    if (!o->ops->seek)
        return;
    int rate = o->info.rate;
    assert_int_equal(o->ops->seek(o->d, rate), 0);
    float buf[4096 * 2];
    size_t got = 0;
    while (got < 2048) {
        long n = o->ops->read(o->d, buf + got * (size_t)o->info.channels, 2048 - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    /* Correlate with the expected phase: a wrong position shows as a low
     * or negative correlation. */
    double dot = 0, norm = 0;
    for (size_t i = 0; i < 2048; i++) {
        double ref = sin(2 * M_PI * TONE * (double)(rate + (long)i) / rate);
        dot += buf[i * (size_t)o->info.channels] * ref;
        norm += (double)buf[i * (size_t)o->info.channels] * buf[i * (size_t)o->info.channels];
    }
    double corr = dot / sqrt(norm * 1024 + 1e-12);
    if (corr < 0.9)
        fail_msg("after seeking to 1 s: correlation %.3f with the expected tone", corr);
}

/* ---- test files ---- */

/* Arguments for ffmpeg: the tone, and the tags every format gets. */
#define TONE_IN  "-f lavfi -i sine=frequency=440:sample_rate=44100:duration=2"
#define COVER_IN "-i %s -map 0 -map 1 -c:v copy -disposition:v attached_pic"
#define FF       "ffmpeg -nostdin -v error -y "
#define COMMON_META                                                                                \
    "-metadata 'title=" TITLE "' -metadata album='The Album' -metadata "                           \
    "album_artist='Various Artists' -metadata track=3/12 -metadata disc=1/2 -metadata "            \
    "date=2001-05-03 -metadata genre=Jazz -metadata composer='Com Poser' "

static int make_files(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/imes-test-decoders-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cover_path, sizeof(cover_path), "%s/cover.png", dir);
    /* A small PNG with some structure, so bytes compare meaningfully. */
    if (sh(FF "-f lavfi -i testsrc=size=32x32 -frames:v 1 %s", cover_path))
        return -1;
    cover = slurp(cover_path, &cover_len);
    return 0;
}

static int remove_files(void **state)
{
    if (!getenv("KEEP"))
        sh("rm -rf '%s'", dir);
    free(cover);
    return 0;
}

/* ---- MP3 ---- */

static void mp3_ffmpeg(void **state)
{
    const char *p = path("ff.mp3");
    assert_int_equal(sh(FF TONE_IN " " COVER_IN " -id3v2_version 4 " COMMON_META
                                   "-metadata artist=Alpha -metadata artist-sort='Alpha, The' "
                                   "-metadata 'MusicBrainz Album Id=" MB_ALBUM "' "
                                   "-metadata 'MusicBrainz Artist Id=" MB_ARTIST "' "
                                   "-metadata REPLAYGAIN_TRACK_GAIN='-6.50 dB' "
                                   "-metadata REPLAYGAIN_TRACK_PEAK=0.988 "
                                   "-metadata replaygain_album_gain='-7.25 dB' "
                                   "-c:a libmp3lame -b:a 128k %s",
                        cover_path, p),
                     0);
    struct opened o;
    open_ok(p, &o);
    assert_string_equal(o.ops->name, "mpg123");
    /* The LAME Info frame's delay and padding make MP3 exact too. */
    format_is(&o.info, "mp3", "mp3", RATE, 0.0005);
    assert_int_equal(o.info.bitrate, 128000);
    common_tags_are(&o.info);
    tag_is(&o.info, "artist", "Alpha", NULL);
    tag_is(&o.info, "artistsort", "Alpha, The", NULL);
    tag_is(&o.info, "musicbrainz_albumid", MB_ALBUM, NULL);
    tag_is(&o.info, "musicbrainz_artistid", MB_ARTIST, NULL);
    gain_is(o.info.rg.track_gain, -6.5);
    gain_is(o.info.rg.track_peak, 0.988);
    gain_is(o.info.rg.album_gain, -7.25);
    gain_is(o.info.rg.album_peak, NAN);
    assert_int_equal(o.info.npictures, 1);
    picture_is_cover(&o.info, 0, -1);
    audio_is_tone(&o, 1);
    seek_works(&o);
    close_ok(&o);
}

/* An MP3 without tags, to put our own in front or behind. */
static const char *bare_mp3(void)
{
    const char *p = path("bare.mp3");
    if (access(p, F_OK) != 0)
        assert_int_equal(sh(FF TONE_IN " -id3v2_version 0 -write_xing 1 -c:a libmp3lame "
                                       "-b:a 128k %s",
                            p),
                         0);
    return p;
}

static void id3_frame(struct bytes *t, int ver, const char *id, const void *body, size_t n)
{
    put(t, id, 4);
    if (ver == 4)
        put_syncsafe(t, (uint32_t)n);
    else
        put_be32(t, (uint32_t)n);
    put_u8(t, 0);
    put_u8(t, 0);
    put(t, body, n);
}

/* Text frame, UTF-8 (encoding 3), values separated by NUL (ID3v2.4). */
static void id3_text(struct bytes *t, const char *id, const char *v0, const char *v1)
{
    struct bytes b = {0};
    put_u8(&b, 3);
    put_s(&b, v0);
    if (v1) {
        put_u8(&b, 0);
        put_s(&b, v1);
    }
    id3_frame(t, 4, id, b.p, b.n);
    free(b.p);
}

static void id3_txxx(struct bytes *t, int ver, const char *desc, const char *v)
{
    struct bytes b = {0};
    put_u8(&b, ver == 4 ? 3 : 0);
    put_s(&b, desc);
    put_u8(&b, 0);
    put_s(&b, v);
    id3_frame(t, ver, "TXXX", b.p, b.n);
    free(b.p);
}

static void prepend_id3(const char *out, const char *in, int ver, int flags, struct bytes *frames)
{
    struct bytes f = {0};
    put_s(&f, "ID3");
    put_u8(&f, (unsigned)ver);
    put_u8(&f, 0);
    put_u8(&f, (unsigned)flags);
    put_syncsafe(&f, (uint32_t)frames->n);
    put(&f, frames->p, frames->n);
    size_t n;
    uint8_t *audio = slurp(in, &n);
    put(&f, audio, n);
    spit(out, f.p, f.n);
    free(audio);
    free(f.p);
}

static void mp3_id3v24(void **state)
{
    struct bytes t = {0};
    id3_text(&t, "TIT2", TITLE, NULL);
    id3_text(&t, "TPE1", "Alpha", "Beta"); /* multi-valued */
    id3_text(&t, "TPE2", "Various Artists", NULL);
    id3_text(&t, "TALB", "The Album", NULL);
    id3_text(&t, "TRCK", "3/12", NULL);
    id3_text(&t, "TPOS", "1/2", NULL);
    id3_text(&t, "TDRC", "2001-05-03", NULL);
    id3_text(&t, "TCON", "8", "Bebop"); /* a genre number and a name */
    id3_text(&t, "TCOM", "Com Poser", NULL);
    id3_text(&t, "TSOP", "Alpha, The", NULL);
    id3_text(&t, "TSOA", "Album, The", NULL);
    id3_text(&t, "TSOT", "Title sort", NULL);
    id3_text(&t, "TSO2", "Various", NULL);
    id3_text(&t, "TSSE", "LAME", NULL); /* encoder settings: not a tag */
    id3_txxx(&t, 4, "MusicBrainz Album Id", MB_ALBUM);
    id3_txxx(&t, 4, "MusicBrainz Release Group Id", "rg-id");
    struct bytes u = {0};
    put_s(&u, "http://musicbrainz.org");
    put_u8(&u, 0);
    put_s(&u, MB_TRACK);
    id3_frame(&t, 4, "UFID", u.p, u.n);
    free(u.p);
    /* RVA2: track, master volume -6.5 dB (x512), 16-bit peak 0.5. */
    struct bytes r = {0};
    put_s(&r, "track");
    put_u8(&r, 0);
    put_u8(&r, 1);
    int16_t g = (int16_t)(-6.5 * 512);
    put_u8(&r, (uint8_t)((uint16_t)g >> 8));
    put_u8(&r, (uint8_t)g);
    put_u8(&r, 16);
    put_u8(&r, 0x40);
    put_u8(&r, 0x00);
    id3_frame(&t, 4, "RVA2", r.p, r.n);
    free(r.p);
    struct bytes c = {0};
    put_u8(&c, 3);
    put_s(&c, "eng");
    put_u8(&c, 0); /* empty description: the comment */
    put_s(&c, "a comment");
    id3_frame(&t, 4, "COMM", c.p, c.n);
    free(c.p);
    c = (struct bytes){0};
    put_u8(&c, 3);
    put_s(&c, "eng");
    put_s(&c, "iTunNORM");
    put_u8(&c, 0);
    put_s(&c, " 00000001 00000002");
    id3_frame(&t, 4, "COMM", c.p, c.n);
    free(c.p);
    struct bytes a = {0};
    put_u8(&a, 3);
    put_s(&a, "image/png");
    put_u8(&a, 0);
    put_u8(&a, 3);
    put_s(&a, "front");
    put_u8(&a, 0);
    put(&a, cover, cover_len);
    id3_frame(&t, 4, "APIC", a.p, a.n);
    free(a.p);

    const char *p = path("v24.mp3");
    prepend_id3(p, bare_mp3(), 4, 0, &t);
    free(t.p);
    struct opened o;
    open_ok(p, &o);
    format_is(&o.info, "mp3", "mp3", RATE, 0.0005);
    tag_is(&o.info, "title", TITLE, NULL);
    tag_is(&o.info, "artist", "Alpha", "Beta");
    tag_is(&o.info, "albumartist", "Various Artists", NULL);
    tag_is(&o.info, "tracknumber", "3", NULL);
    tag_is(&o.info, "tracktotal", "12", NULL);
    tag_is(&o.info, "discnumber", "1", NULL);
    tag_is(&o.info, "disctotal", "2", NULL);
    tag_is(&o.info, "genre", "Jazz", "Bebop");
    tag_is(&o.info, "artistsort", "Alpha, The", NULL);
    tag_is(&o.info, "albumsort", "Album, The", NULL);
    tag_is(&o.info, "titlesort", "Title sort", NULL);
    tag_is(&o.info, "albumartistsort", "Various", NULL);
    tag_is(&o.info, "musicbrainz_albumid", MB_ALBUM, NULL);
    tag_is(&o.info, "musicbrainz_releasegroupid", "rg-id", NULL);
    tag_is(&o.info, "musicbrainz_trackid", MB_TRACK, NULL);
    tag_is(&o.info, "comment", "a comment", NULL);
    no_tag(&o.info, "tsse");
    gain_is(o.info.rg.track_gain, -6.5);
    gain_is(o.info.rg.track_peak, 0.5);
    gain_is(o.info.rg.album_gain, NAN);
    assert_int_equal(o.info.npictures, 1);
    picture_is_cover(&o.info, 0, 3);
    assert_string_equal(o.info.pictures[0].description, "front");
    audio_is_tone(&o, 1);
    close_ok(&o);
}

/* Tag-wide unsynchronisation: FF followed by 00 or >= E0 gets a 00. */
static struct bytes unsynchronise(const struct bytes *in)
{
    struct bytes o = {0};
    for (size_t i = 0; i < in->n; i++) {
        put_u8(&o, in->p[i]);
        if (in->p[i] == 0xff && (i + 1 == in->n || in->p[i + 1] == 0 || in->p[i + 1] >= 0xe0))
            put_u8(&o, 0);
    }
    return o;
}

static void mp3_id3v23_utf16(void **state)
{
    struct bytes t = {0};
    /* TIT2 in UTF-16 with BOM, as ID3v2.3 writers do. */
    struct bytes b = {0};
    put_u8(&b, 1);
    put_u8(&b, 0xff);
    put_u8(&b, 0xfe);
    put_utf16le(&b, TITLE, 1);
    id3_frame(&t, 3, "TIT2", b.p, b.n);
    free(b.p);
    b = (struct bytes){0};
    put_u8(&b, 0);
    put_s(&b, "Alpha");
    id3_frame(&t, 3, "TPE1", b.p, b.n);
    free(b.p);
    b = (struct bytes){0};
    put_u8(&b, 0);
    put_s(&b, "(8)");
    id3_frame(&t, 3, "TCON", b.p, b.n);
    free(b.p);
    b = (struct bytes){0};
    put_u8(&b, 0);
    put_s(&b, "2001");
    id3_frame(&t, 3, "TYER", b.p, b.n);
    free(b.p);
    b = (struct bytes){0};
    put_u8(&b, 0);
    put_s(&b, "7");
    id3_frame(&t, 3, "TRCK", b.p, b.n);
    free(b.p);
    id3_txxx(&t, 3, "replaygain_album_gain", "+1,50 dB"); /* a decimal comma */
    struct bytes u = {0};
    put_s(&u, "http://musicbrainz.org");
    put_u8(&u, 0);
    put_s(&u, MB_TRACK);
    id3_frame(&t, 3, "UFID", u.p, u.n);
    free(u.p);
    b = (struct bytes){0};
    put_u8(&b, 0);
    put_s(&b, "image/png");
    put_u8(&b, 0);
    put_u8(&b, 4);
    put_u8(&b, 0);
    put(&b, cover, cover_len);
    /* Bytes that unsynchronisation must escape. */
    id3_frame(&t, 3, "APIC", b.p, b.n);
    free(b.p);
    struct bytes s = unsynchronise(&t);
    const char *p = path("v23.mp3");
    prepend_id3(p, bare_mp3(), 3, 0x80, &s);
    free(s.p);
    free(t.p);

    struct opened o;
    open_ok(p, &o);
    format_is(&o.info, "mp3", "mp3", RATE, 0.0005);
    tag_is(&o.info, "title", TITLE, NULL);
    tag_is(&o.info, "artist", "Alpha", NULL);
    tag_is(&o.info, "genre", "Jazz", NULL);
    tag_is(&o.info, "date", "2001", NULL);
    tag_is(&o.info, "tracknumber", "7", NULL);
    no_tag(&o.info, "tracktotal");
    tag_is(&o.info, "musicbrainz_trackid", MB_TRACK, NULL);
    gain_is(o.info.rg.album_gain, 1.5);
    picture_is_cover(&o.info, 0, 4);
    close_ok(&o);
}

/* APEv2 tag: header, items, footer. */
static void ape_item(struct bytes *b, const char *key, const void *v, size_t n, int binary)
{
    put_le32(b, (uint32_t)n);
    put_le32(b, binary ? 2 : 0);
    put_s(b, key);
    put_u8(b, 0);
    put(b, v, n);
}

static void ape_head(struct bytes *b, uint32_t size, uint32_t count, int header)
{
    put_s(b, "APETAGEX");
    put_le32(b, 2000);
    put_le32(b, size);
    put_le32(b, count);
    put_le32(b, (1u << 31) | (header ? (1u << 29) : 0));
    put_le32(b, 0);
    put_le32(b, 0);
}

static struct bytes ape_tag(void)
{
    struct bytes items = {0};
    int count = 0;
#define TEXT(k, v)                                                                                 \
    do {                                                                                           \
        ape_item(&items, k, v, sizeof(v) - 1, 0);                                                  \
        count++;                                                                                   \
    } while (0)
    TEXT("Title", TITLE);
    TEXT("Artist", "Alpha\0Beta");
    TEXT("Album", "The Album");
    TEXT("Album Artist", "Various Artists");
    TEXT("Track", "3/12");
    TEXT("Disc", "1/2");
    TEXT("Year", "2001-05-03");
    TEXT("Genre", "Jazz");
    TEXT("Composer", "Com Poser");
    TEXT("ARTISTSORT", "Alpha, The");
    TEXT("MUSICBRAINZ_TRACKID", MB_TRACK);
    TEXT("MUSICBRAINZ_ALBUMID", MB_ALBUM);
    TEXT("REPLAYGAIN_ALBUM_GAIN", "-7.25 dB");
    TEXT("REPLAYGAIN_ALBUM_PEAK", "0.75");
#undef TEXT
    struct bytes cv = {0};
    put_s(&cv, "cover.png");
    put_u8(&cv, 0);
    put(&cv, cover, cover_len);
    ape_item(&items, "Cover Art (Front)", cv.p, cv.n, 1);
    count++;
    free(cv.p);
    /* An item claiming more than the tag holds ends parsing, harmlessly. */
    struct bytes t = {0};
    uint32_t size = (uint32_t)items.n + APETAG_FOOTER_LEN;
    ape_head(&t, size, (uint32_t)count, 1);
    put(&t, items.p, items.n);
    ape_head(&t, size, (uint32_t)count, 0);
    free(items.p);
    return t;
}

static void ape_tags_are(const struct media_info *info)
{
    tag_is(info, "title", TITLE, NULL);
    tag_is(info, "artist", "Alpha", "Beta");
    tag_is(info, "albumartist", "Various Artists", NULL);
    tag_is(info, "tracknumber", "3", NULL);
    tag_is(info, "tracktotal", "12", NULL);
    tag_is(info, "discnumber", "1", NULL);
    tag_is(info, "disctotal", "2", NULL);
    tag_is(info, "date", "2001-05-03", NULL);
    tag_is(info, "artistsort", "Alpha, The", NULL);
    tag_is(info, "musicbrainz_trackid", MB_TRACK, NULL);
    tag_is(info, "musicbrainz_albumid", MB_ALBUM, NULL);
    gain_is(info->rg.album_gain, -7.25);
    gain_is(info->rg.album_peak, 0.75);
    assert_int_equal(info->npictures, 1);
    picture_is_cover(info, 0, 3);
}

static void append(const char *out, const char *in, const void *tail, size_t n)
{
    size_t len;
    uint8_t *d = slurp(in, &len);
    d = realloc(d, len + n);
    memcpy(d + len, tail, n);
    spit(out, d, len + n);
    free(d);
}

static void mp3_ape_and_id3v1(void **state)
{
    /* APE, then ID3v1 after it (the order taggers use). The APE tag wins
     * over ID3v1; ID3v1 alone is the last resort. */
    struct bytes t = ape_tag();
    uint8_t v1[128] = "TAG";
    memcpy(v1 + 3, "v1 title", 8);
    memcpy(v1 + 33, "v1 artist", 9);
    memcpy(v1 + 63, "v1 album", 8);
    memcpy(v1 + 93, "1999", 4);
    v1[126] = 9; /* ID3v1.1 track */
    v1[127] = 8; /* Jazz */
    put(&t, v1, 128);
    const char *p = path("ape.mp3");
    append(p, bare_mp3(), t.p, t.n);
    free(t.p);
    struct opened o;
    open_ok(p, &o);
    format_is(&o.info, "mp3", "mp3", RATE, 0.0005);
    ape_tags_are(&o.info);
    audio_is_tone(&o, 1);
    close_ok(&o);

    p = path("v1.mp3");
    append(p, bare_mp3(), v1, 128);
    open_ok(p, &o);
    format_is(&o.info, "mp3", "mp3", RATE, 0.0005);
    tag_is(&o.info, "title", "v1 title", NULL);
    tag_is(&o.info, "artist", "v1 artist", NULL);
    tag_is(&o.info, "album", "v1 album", NULL);
    tag_is(&o.info, "date", "1999", NULL);
    tag_is(&o.info, "tracknumber", "9", NULL);
    tag_is(&o.info, "genre", "Jazz", NULL);
    assert_int_equal(o.info.npictures, 0);
    close_ok(&o);
}

static void mp3_without_info_frame(void **state)
{
    /* No Xing/Info frame: the length comes from scanning, and without the
     * LAME delay it is the encoded length, one frame granular. */
    const char *p = path("noxing.mp3");
    assert_int_equal(
        sh(FF TONE_IN " -id3v2_version 0 -write_xing 0 -c:a libmp3lame -b:a 128k %s", p), 0);
    struct opened o;
    open_ok(p, &o);
    format_is(&o.info, "mp3", "mp3", RATE, 1152.0 * 2 / RATE);
    assert_int_equal(o.info.bitrate, 128000);
    audio_is_tone(&o, 0);
    close_ok(&o);

    /* VBR without an Info frame: counted frame by frame, so the count is
     * what decoding gives. */
    p = path("vbr-noxing.mp3");
    assert_int_equal(sh(FF TONE_IN " -id3v2_version 0 -write_xing 0 -c:a libmp3lame -q:a 2 %s", p),
                     0);
    open_ok(p, &o);
    format_is(&o.info, "mp3", "mp3", RATE, 1152.0 * 2 / RATE);
    audio_is_tone(&o, 1);
    close_ok(&o);
}

static void mp3_id3v22(void **state)
{
    struct bytes t = {0};
    struct bytes b = {0};
    put_u8(&b, 1);
    put_u8(&b, 0xff);
    put_u8(&b, 0xfe);
    put_utf16le(&b, TITLE, 1);
#define V22(id, body)                                                                              \
    do {                                                                                           \
        put_s(&t, id);                                                                             \
        put_u8(&t, 0);                                                                             \
        put_u8(&t, (unsigned)((body).n >> 8));                                                     \
        put_u8(&t, (unsigned)((body).n & 0xff));                                                   \
        put(&t, (body).p, (body).n);                                                               \
        free((body).p);                                                                            \
        (body) = (struct bytes){0};                                                                \
    } while (0)
    V22("TT2", b);
    put_u8(&b, 0);
    put_s(&b, "Alpha");
    V22("TP1", b);
    put_u8(&b, 0);
    put_s(&b, "5/9");
    V22("TRK", b);
    put_u8(&b, 0);
    put_s(&b, "eng");
    put_u8(&b, 0);
    put_s(&b, "old comment");
    V22("COM", b);
    put_s(&b, "http://musicbrainz.org");
    put_u8(&b, 0);
    put_s(&b, MB_TRACK);
    V22("UFI", b);
    put_u8(&b, 0);
    put_s(&b, "PNG");
    put_u8(&b, 3);
    put_u8(&b, 0);
    put(&b, cover, cover_len);
    V22("PIC", b);
#undef V22
    const char *p = path("v22.mp3");
    prepend_id3(p, bare_mp3(), 2, 0, &t);
    free(t.p);
    struct opened o;
    open_ok(p, &o);
    tag_is(&o.info, "title", TITLE, NULL);
    tag_is(&o.info, "artist", "Alpha", NULL);
    tag_is(&o.info, "tracknumber", "5", NULL);
    tag_is(&o.info, "tracktotal", "9", NULL);
    tag_is(&o.info, "comment", "old comment", NULL);
    tag_is(&o.info, "musicbrainz_trackid", MB_TRACK, NULL);
    picture_is_cover(&o.info, 0, 3);
    close_ok(&o);
}

/* ---- FLAC ---- */

static void flac_add_comments(const char *p, const char *const *comments)
{
    FLAC__Metadata_Chain *c = FLAC__metadata_chain_new();
    assert_true(FLAC__metadata_chain_read(c, p));
    FLAC__Metadata_Iterator *it = FLAC__metadata_iterator_new();
    FLAC__metadata_iterator_init(it, c);
    int done = 0;
    do {
        if (FLAC__metadata_iterator_get_block_type(it) == FLAC__METADATA_TYPE_VORBIS_COMMENT) {
            FLAC__StreamMetadata *b = FLAC__metadata_iterator_get_block(it);
            for (const char *const *s = comments; *s; s++) {
                FLAC__StreamMetadata_VorbisComment_Entry e = {(FLAC__uint32)strlen(*s),
                                                              (FLAC__byte *)*s};
                assert_true(FLAC__metadata_object_vorbiscomment_append_comment(b, e, true));
            }
            done = 1;
        }
    } while (FLAC__metadata_iterator_next(it));
    assert_true(done);
    FLAC__metadata_iterator_delete(it);
    assert_true(FLAC__metadata_chain_write(c, true, false));
    FLAC__metadata_chain_delete(c);
}

static void flac(void **state)
{
    const char *p = path("t.flac");
    assert_int_equal(sh(FF TONE_IN " " COVER_IN " " COMMON_META
                                   "-metadata artist=Alpha -metadata ARTISTSORT='Alpha, The' "
                                   "-metadata MUSICBRAINZ_ALBUMID=" MB_ALBUM " "
                                   "-metadata MUSICBRAINZ_TRACKID=" MB_TRACK " "
                                   "-metadata REPLAYGAIN_TRACK_GAIN='-6.50 dB' "
                                   "-metadata REPLAYGAIN_TRACK_PEAK=0.988 "
                                   "-metadata REPLAYGAIN_ALBUM_GAIN='-7.25 dB' "
                                   "-metadata REPLAYGAIN_ALBUM_PEAK=1.05 %s",
                        cover_path, p),
                     0);
    static const char *const more[] = {"ARTIST=Beta", NULL};
    flac_add_comments(p, more);
    struct opened o;
    open_ok(p, &o);
    assert_string_equal(o.ops->name, "flac");
    format_is(&o.info, "flac", "flac", RATE, 0.0005);
    assert_int_equal(o.info.bits_per_sample, 16);
    common_tags_are(&o.info);
    tag_is(&o.info, "artist", "Alpha", "Beta");
    tag_is(&o.info, "artistsort", "Alpha, The", NULL);
    tag_is(&o.info, "musicbrainz_albumid", MB_ALBUM, NULL);
    tag_is(&o.info, "musicbrainz_trackid", MB_TRACK, NULL);
    gain_is(o.info.rg.track_gain, -6.5);
    gain_is(o.info.rg.track_peak, 0.988);
    gain_is(o.info.rg.album_gain, -7.25);
    gain_is(o.info.rg.album_peak, 1.05);
    assert_int_equal(o.info.npictures, 1);
    picture_is_cover(&o.info, 0, -1);
    audio_is_tone(&o, 1);
    seek_works(&o);
    close_ok(&o);
}

/* ---- Ogg: a comment header of our own, pages after it copied ---- */

static struct bytes comment_packet(int opus, const char *const *comments)
{
    struct bytes b = {0};
    if (opus)
        put_s(&b, "OpusTags");
    else {
        put_u8(&b, 3);
        put_s(&b, "vorbis");
    }
    put_le32(&b, 4);
    put_s(&b, "test");
    uint32_t n = 0;
    while (comments[n])
        n++;
    put_le32(&b, n);
    for (uint32_t i = 0; i < n; i++) {
        put_le32(&b, (uint32_t)strlen(comments[i]));
        put_s(&b, comments[i]);
    }
    if (!opus)
        put_u8(&b, 1); /* framing bit */
    return b;
}

static uint32_t ogg_crc(const uint8_t *d, size_t n)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint32_t)d[i] << 24;
        for (int k = 0; k < 8; k++)
            crc = crc & 0x80000000u ? crc << 1 ^ 0x04c11db7u : crc << 1;
    }
    return crc;
}

/* One page of whole packets (granule 0: header pages). */
static void ogg_page_out(struct bytes *out, uint32_t serial, uint32_t seq, int bos,
                         struct bytes *packets, int n)
{
    struct bytes h = {0}, body = {0};
    put_s(&h, "OggS");
    put_u8(&h, 0);
    put_u8(&h, bos ? 2 : 0);
    put_le32(&h, 0);
    put_le32(&h, 0);
    put_le32(&h, serial);
    put_le32(&h, seq);
    put_le32(&h, 0); /* CRC, set below */
    struct bytes lace = {0};
    for (int i = 0; i < n; i++) {
        size_t len = packets[i].n;
        for (; len >= 255; len -= 255)
            put_u8(&lace, 255);
        put_u8(&lace, (unsigned)len);
        put(&body, packets[i].p, packets[i].n);
    }
    assert_true(lace.n <= 255);
    put_u8(&h, (unsigned)lace.n);
    put(&h, lace.p, lace.n);
    put(&h, body.p, body.n);
    uint32_t crc = ogg_crc(h.p, h.n);
    h.p[22] = (uint8_t)crc;
    h.p[23] = (uint8_t)(crc >> 8);
    h.p[24] = (uint8_t)(crc >> 16);
    h.p[25] = (uint8_t)(crc >> 24);
    put(out, h.p, h.n);
    free(h.p);
    free(body.p);
    free(lace.p);
}

/* Rewrites the header pages with a new comment packet. Both Vorbis and
 * Opus start audio on a fresh page, so the pages after the headers are
 * copied with new sequence numbers and checksums. */
static void ogg_set_comments(const char *p, int opus, const char *const *comments)
{
    size_t len, o = 0;
    uint8_t *in = slurp(p, &len);
    struct bytes pk[3] = {{0}};
    int nhdr = opus ? 2 : 3, got = 0;
    uint32_t serial = 0;

    /* Collect the header packets from the first pages. */
    while (got < nhdr) {
        assert_true(o + 27 <= len && !memcmp(in + o, "OggS", 4));
        serial = in[o + 14] | in[o + 15] << 8 | in[o + 16] << 16 | (uint32_t)in[o + 17] << 24;
        int nseg = in[o + 26];
        const uint8_t *lace = in + o + 27, *body = lace + nseg;
        for (int i = 0; i < nseg && got < nhdr; i++) {
            put(&pk[got], body, lace[i]);
            body += lace[i];
            if (lace[i] < 255)
                got++;
        }
        o = (size_t)(body - in);
        size_t rest = 0;
        for (int i = 0; i < nseg; i++)
            rest += lace[i];
        o = (size_t)(lace + nseg - in) + rest;
    }
    struct bytes out = {0};
    free(pk[1].p);
    pk[1] = comment_packet(opus, comments);
    uint32_t seq = 0;
    ogg_page_out(&out, serial, seq++, 1, &pk[0], 1);
    ogg_page_out(&out, serial, seq++, 0, &pk[1], nhdr - 1);
    while (o + 27 <= len) {
        int nseg = in[o + 26];
        size_t hl = 27 + (size_t)nseg, bl = 0;
        for (int i = 0; i < nseg; i++)
            bl += in[o + 27 + i];
        uint8_t *pg = malloc(hl + bl);
        memcpy(pg, in + o, hl + bl);
        pg[18] = (uint8_t)seq;
        pg[19] = (uint8_t)(seq >> 8);
        pg[20] = (uint8_t)(seq >> 16);
        pg[21] = (uint8_t)(seq >> 24);
        seq++;
        memset(pg + 22, 0, 4);
        uint32_t crc = ogg_crc(pg, hl + bl);
        pg[22] = (uint8_t)crc;
        pg[23] = (uint8_t)(crc >> 8);
        pg[24] = (uint8_t)(crc >> 16);
        pg[25] = (uint8_t)(crc >> 24);
        put(&out, pg, hl + bl);
        free(pg);
        o += hl + bl;
    }
    spit(p, out.p, out.n);
    for (int i = 0; i < 3; i++)
        free(pk[i].p);
    free(out.p);
    free(in);
}

static char *picture_comment(void)
{
    struct bytes pic = flac_picture(3, "image/png", "front");
    char *b64 = base64(pic.p, pic.n);
    char *c = malloc(strlen(b64) + 32);
    sprintf(c, "METADATA_BLOCK_PICTURE=%s", b64);
    free(b64);
    free(pic.p);
    return c;
}

static void ogg_common_tags(const struct media_info *info)
{
    common_tags_are(info);
    tag_is(info, "artist", "Alpha", "Beta");
    tag_is(info, "artistsort", "Alpha, The", NULL);
    tag_is(info, "musicbrainz_albumid", MB_ALBUM, NULL);
    tag_is(info, "musicbrainz_trackid", MB_TRACK, NULL);
    no_tag(info, "metadata_block_picture");
    assert_int_equal(info->npictures, 1);
    picture_is_cover(info, 0, 3);
    assert_string_equal(info->pictures[0].description, "front");
}

static void vorbis(void **state)
{
    const char *p = path("t.ogg");
    assert_int_equal(sh(FF TONE_IN " -c:a libvorbis %s", p), 0);
    char *pic = picture_comment();
    const char *comments[] = {"TITLE=" TITLE,
                              "ARTIST=Alpha",
                              "ARTIST=Beta",
                              "ALBUM=The Album",
                              "ALBUMARTIST=Various Artists",
                              "TRACKNUMBER=3",
                              "TRACKTOTAL=12",
                              "DISCNUMBER=1/2",
                              "DATE=2001-05-03",
                              "GENRE=Jazz",
                              "COMPOSER=Com Poser",
                              "ARTISTSORT=Alpha, The",
                              "MUSICBRAINZ_ALBUMID=" MB_ALBUM,
                              "MUSICBRAINZ_TRACKID=" MB_TRACK,
                              "REPLAYGAIN_TRACK_GAIN=-6.50 dB",
                              "REPLAYGAIN_TRACK_PEAK=0.98800",
                              "replaygain_album_gain=-7.25 dB",
                              "REPLAYGAIN_ALBUM_PEAK=1.05",
                              pic,
                              NULL};
    ogg_set_comments(p, 0, comments);
    free(pic);
    struct opened o;
    open_ok(p, &o);
    assert_string_equal(o.ops->name, "vorbis");
    format_is(&o.info, "ogg", "vorbis", RATE, 0.0005);
    ogg_common_tags(&o.info);
    gain_is(o.info.rg.track_gain, -6.5);
    gain_is(o.info.rg.track_peak, 0.988);
    gain_is(o.info.rg.album_gain, -7.25);
    gain_is(o.info.rg.album_peak, 1.05);
    audio_is_tone(&o, 1);
    seek_works(&o);
    close_ok(&o);
}

static void opus(void **state)
{
    const char *p = path("t.opus");
    assert_int_equal(sh(FF TONE_IN " -c:a libopus -b:a 64k %s", p), 0);
    char *pic = picture_comment();
    const char *comments[] = {"TITLE=" TITLE,
                              "ARTIST=Alpha",
                              "ARTIST=Beta",
                              "ALBUM=The Album",
                              "ALBUMARTIST=Various Artists",
                              "TRACKNUMBER=3/12",
                              "DISCNUMBER=1",
                              "DISCTOTAL=2",
                              "DATE=2001-05-03",
                              "GENRE=Jazz",
                              "COMPOSER=Com Poser",
                              "ARTISTSORT=Alpha, The",
                              "MUSICBRAINZ_ALBUMID=" MB_ALBUM,
                              "MUSICBRAINZ_TRACKID=" MB_TRACK,
                              "R128_TRACK_GAIN=-2816",          /* -11 dB */
                              "REPLAYGAIN_TRACK_GAIN=-1.00 dB", /* loses to R128 */
                              "R128_ALBUM_GAIN=256",
                              pic,
                              NULL};
    ogg_set_comments(p, 1, comments);
    free(pic);
    struct opened o;
    open_ok(p, &o);
    assert_string_equal(o.ops->name, "opus");
    format_is(&o.info, "ogg", "opus", 48000, 0.0005);
    ogg_common_tags(&o.info);
    gain_is(o.info.rg.track_gain, -11 + 5);
    gain_is(o.info.rg.album_gain, 1 + 5);
    gain_is(o.info.rg.track_peak, NAN);
    no_tag(&o.info, "r128_track_gain");
    audio_is_tone(&o, 1);
    seek_works(&o);
    close_ok(&o);
}

/* ---- MP4 ---- */

static uint32_t rd_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Offset of the child box `type` in [start, end), or 0. */
static size_t mp4_find(const uint8_t *d, size_t start, size_t end, const char *type)
{
    for (size_t o = start; o + 8 <= end;) {
        uint32_t size = rd_be32(d + o);
        if (size < 8 || o + size > end)
            return 0;
        if (!memcmp(d + o + 4, type, 4))
            return o;
        o += size;
    }
    return 0;
}

static void mp4_freeform(struct bytes *b, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    put_be32(b, (uint32_t)(8 + 28 + 12 + nl + 16 + vl));
    put_s(b, "----");
    put_be32(b, 28);
    put_s(b, "mean");
    put_be32(b, 0);
    put_s(b, "com.apple.iTunes");
    put_be32(b, (uint32_t)(12 + nl));
    put_s(b, "name");
    put_be32(b, 0);
    put_s(b, name);
    put_be32(b, (uint32_t)(16 + vl));
    put_s(b, "data");
    put_be32(b, 1); /* UTF-8 */
    put_be32(b, 0);
    put_s(b, value);
}

/* An ilst item with one UTF-8 data atom (ffmpeg writes no sort atoms). */
static void mp4_item(struct bytes *b, const char *type, const char *value)
{
    size_t vl = strlen(value);
    put_be32(b, (uint32_t)(8 + 16 + vl));
    put_s(b, type);
    put_be32(b, (uint32_t)(16 + vl));
    put_s(b, "data");
    put_be32(b, 1);
    put_be32(b, 0);
    put_s(b, value);
}

/* Adds sort atoms and iTunes freeform atoms at the end of moov/udta/meta/ilst. ffmpeg
 * writes moov after mdat, so no chunk offset moves. */
static void mp4_add_freeform(const char *p)
{
    size_t len;
    uint8_t *d = slurp(p, &len);
    size_t moov = mp4_find(d, 0, len, "moov");
    size_t mdat = mp4_find(d, 0, len, "mdat");
    assert_true(moov > mdat);
    size_t udta = mp4_find(d, moov + 8, moov + rd_be32(d + moov), "udta");
    assert_true(udta);
    size_t meta = mp4_find(d, udta + 8, udta + rd_be32(d + udta), "meta");
    assert_true(meta);
    size_t ilst = mp4_find(d, meta + 12, meta + rd_be32(d + meta), "ilst");
    assert_true(ilst);
    struct bytes add = {0};
    mp4_item(&add, "soar", "Alpha, The");
    mp4_item(&add, "soal", "Album, The");
    mp4_item(&add, "sonm", "Title sort");
    mp4_item(&add, "soaa", "Various");
    mp4_freeform(&add, "MusicBrainz Track Id", MB_TRACK);
    mp4_freeform(&add, "MusicBrainz Album Id", MB_ALBUM);
    mp4_freeform(&add, "replaygain_track_gain", "-6.50 dB");
    mp4_freeform(&add, "replaygain_track_peak", "0.988");
    mp4_freeform(&add, "replaygain_album_gain", "-7.25 dB");
    mp4_freeform(&add, "iTunNORM", " 00000A2C 00000A2C 00003C5F");
    size_t at = ilst + rd_be32(d + ilst);
    struct bytes out = {0};
    put(&out, d, at);
    put(&out, add.p, add.n);
    put(&out, d + at, len - at);
    size_t boxes[] = {moov, udta, meta, ilst};
    for (int i = 0; i < 4; i++)
        wr_be32(out.p + boxes[i], rd_be32(out.p + boxes[i]) + (uint32_t)add.n);
    spit(p, out.p, out.n);
    free(out.p);
    free(add.p);
    free(d);
}

static void mp4_check(const char *p, const char *codec, int lossless)
{
    struct opened o;
    open_ok(p, &o);
    assert_string_equal(o.ops->name, "avcodec");
    format_is(&o.info, "mp4", codec, RATE, 0.0005);
    assert_int_equal(o.info.bits_per_sample, lossless ? 16 : 0);
    common_tags_are(&o.info);
    tag_is(&o.info, "artist", "Alpha", NULL);
    tag_is(&o.info, "artistsort", "Alpha, The", NULL);
    tag_is(&o.info, "albumsort", "Album, The", NULL);
    tag_is(&o.info, "titlesort", "Title sort", NULL);
    tag_is(&o.info, "albumartistsort", "Various", NULL);
    tag_is(&o.info, "musicbrainz_trackid", MB_TRACK, NULL);
    tag_is(&o.info, "musicbrainz_albumid", MB_ALBUM, NULL);
    no_tag(&o.info, "itunnorm");
    gain_is(o.info.rg.track_gain, -6.5);
    gain_is(o.info.rg.track_peak, 0.988);
    gain_is(o.info.rg.album_gain, -7.25);
    gain_is(o.info.rg.album_peak, NAN);
    assert_int_equal(o.info.npictures, 1);
    picture_is_cover(&o.info, 0, 3);
    audio_is_tone(&o, 1);
    seek_works(&o);
    close_ok(&o);
}

#define MP4_META COMMON_META "-metadata artist=Alpha "

static void mp4_aac(void **state)
{
    const char *p = path("aac.m4a");
    assert_int_equal(
        sh(FF TONE_IN " " COVER_IN " " MP4_META "-c:a aac -b:a 128k %s", cover_path, p), 0);
    mp4_add_freeform(p);
    mp4_check(p, "aac", 0);
}

static void mp4_alac(void **state)
{
    const char *p = path("alac.m4a");
    assert_int_equal(sh(FF TONE_IN " " COVER_IN " " MP4_META "-c:a alac %s", cover_path, p), 0);
    mp4_add_freeform(p);
    mp4_check(p, "alac", 1);
}

/* ---- ASF ---- */

static const uint8_t asf_header_guid[16] = {0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11,
                                            0xa6, 0xd9, 0x00, 0xaa, 0x00, 0x62, 0xce, 0x6c};
static const uint8_t asf_ecd_guid[16] = {0x40, 0xa4, 0xd0, 0xd2, 0x07, 0xe3, 0xd2, 0x11,
                                         0x97, 0xf0, 0x00, 0xa0, 0xc9, 0x5e, 0xa8, 0x50};

static uint64_t rd_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static void wr_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Adds a WM/Picture attribute to the Extended Content Description object
 * (ffmpeg's ASF muxer writes no pictures). */
static void asf_add_picture(const char *p)
{
    size_t len;
    uint8_t *d = slurp(p, &len);
    assert_memory_equal(d, asf_header_guid, 16);
    uint32_t nobj = d[24] | d[25] << 8 | d[26] << 16 | (uint32_t)d[27] << 24;
    size_t o = 30, ecd = 0;
    for (uint32_t i = 0; i < nobj; i++) {
        if (!memcmp(d + o, asf_ecd_guid, 16))
            ecd = o;
        o += rd_le64(d + o + 16);
    }
    assert_true(ecd);
    struct bytes v = {0};
    put_u8(&v, 3);
    put_le32(&v, (uint32_t)cover_len);
    put_utf16le(&v, "image/png", 1);
    put_utf16le(&v, "front", 1);
    put(&v, cover, cover_len);
    struct bytes a = {0};
    struct bytes name = {0};
    put_utf16le(&name, "WM/Picture", 1);
    put_le16(&a, (unsigned)name.n);
    put(&a, name.p, name.n);
    put_le16(&a, 1); /* byte array */
    put_le16(&a, (unsigned)v.n);
    put(&a, v.p, v.n);
    size_t at = ecd + rd_le64(d + ecd + 16);
    struct bytes out = {0};
    put(&out, d, at);
    put(&out, a.p, a.n);
    put(&out, d + at, len - at);
    wr_le64(out.p + 16, rd_le64(out.p + 16) + a.n);
    wr_le64(out.p + ecd + 16, rd_le64(out.p + ecd + 16) + a.n);
    unsigned count = out.p[ecd + 24] | out.p[ecd + 25] << 8;
    count++;
    out.p[ecd + 24] = (uint8_t)count;
    out.p[ecd + 25] = (uint8_t)(count >> 8);
    spit(p, out.p, out.n);
    free(out.p);
    free(a.p);
    free(v.p);
    free(name.p);
    free(d);
}

static void wma(void **state)
{
    const char *p = path("t.wma");
    assert_int_equal(sh(FF TONE_IN
                        " " COMMON_META
                        "-metadata artist=Alpha -metadata 'WM/ArtistSortOrder=Alpha, The' "
                        "-metadata 'MusicBrainz/Album Id=" MB_ALBUM "' "
                        "-metadata 'MusicBrainz/Track Id=" MB_TRACK "' "
                        "-metadata replaygain_track_gain='-6.50 dB' "
                        "-metadata replaygain_album_peak=0.75 "
                        "-c:a wmav2 -b:a 128k %s",
                        p),
                     0);
    asf_add_picture(p);
    struct opened o;
    open_ok(p, &o);
    assert_string_equal(o.ops->name, "avcodec");
    /* WMA states its length in 100 ns units including the last frame's
     * padding: within one 2048-sample frame. */
    format_is(&o.info, "asf", "wma", RATE, 2048.0 / RATE);
    common_tags_are(&o.info);
    tag_is(&o.info, "artist", "Alpha", NULL);
    tag_is(&o.info, "artistsort", "Alpha, The", NULL);
    tag_is(&o.info, "musicbrainz_albumid", MB_ALBUM, NULL);
    tag_is(&o.info, "musicbrainz_trackid", MB_TRACK, NULL);
    gain_is(o.info.rg.track_gain, -6.5);
    gain_is(o.info.rg.album_peak, 0.75);
    assert_int_equal(o.info.npictures, 1);
    picture_is_cover(&o.info, 0, 3);
    assert_string_equal(o.info.pictures[0].description, "front");
    audio_is_tone(&o, 0);
    close_ok(&o);
}

/* ---- Musepack ---- */

static void mpc(void **state)
{
    const char *wav = path("t.wav"), *raw = path("raw.mpc"), *p = path("t.mpc");
    assert_int_equal(sh(FF TONE_IN " %s", wav), 0);
    assert_int_equal(sh("mpcenc --silent --overwrite %s %s", wav, raw), 0);
    /* SV8 "RG" packet: version, then title gain, title peak, album gain,
     * album peak (16 bits each) in libmpcdec's units; mpcenc leaves them 0. */
    size_t len;
    uint8_t *d = slurp(raw, &len);
    uint8_t *rg = NULL;
    for (size_t i = 4; i + 12 < len && i < 256; i++)
        if (d[i] == 'R' && d[i + 1] == 'G' && d[i + 2] == 12) {
            rg = d + i + 3;
            break;
        }
    assert_non_null(rg);
    const uint16_t gain = 18130; /* 64.82 - 18130 / 256 = -6.0003 dB */
    const uint16_t peak = (uint16_t)lround(256 * 20 * log10(0.5 * 32767));
    rg[0] = 1;
    rg[1] = gain >> 8;
    rg[2] = gain & 0xff;
    rg[3] = peak >> 8;
    rg[4] = peak & 0xff;
    spit(raw, d, len);
    free(d);
    struct bytes t = ape_tag();
    append(p, raw, t.p, t.n);
    free(t.p);

    struct opened o;
    open_ok(p, &o);
    assert_string_equal(o.ops->name, "mpc");
    format_is(&o.info, "mpc", "musepack", RATE, 0.0005);
    ape_tags_are(&o.info);
    gain_is(o.info.rg.track_gain, 64.82 - gain / 256.0);
    gain_is(o.info.rg.track_peak, pow(10, peak / 256.0 / 20) / 32767);
    assert_true(fabs(o.info.rg.track_peak - 0.5) < 1e-3);
    audio_is_tone(&o, 1);
    seek_works(&o);
    close_ok(&o);
}

/* ---- broken and mislabelled ---- */

static void broken_files(void **state)
{
    spit(path("empty.mp3"), "", 0);
    open_fails(path("empty.mp3"), -EINVAL);
    open_fails(path("does-not-exist.mp3"), -ENOENT);

    /* The first KiB of a tagged MP3. */
    size_t len;
    uint8_t *d = slurp(path("ff.mp3"), &len);
    spit(path("cut.mp3"), d, 1024);
    open_fails(path("cut.mp3"), 0);
    /* Cut in the middle: the Info frame says how long it was. */
    spit(path("half.mp3"), d, len / 2);
    open_fails(path("half.mp3"), 0);
    free(d);

    d = slurp(path("t.flac"), &len);
    spit(path("cut.flac"), d, len / 3);
    open_fails(path("cut.flac"), 0);
    free(d);
    d = slurp(path("aac.m4a"), &len);
    spit(path("cut.m4a"), d, len / 2);
    open_fails(path("cut.m4a"), 0);
    free(d);
    d = slurp(path("t.opus"), &len);
    spit(path("cut.opus"), d, 200);
    open_fails(path("cut.opus"), 0);
    free(d);

    uint8_t rnd[8192];
    srand(42);
    for (size_t i = 0; i < sizeof(rnd); i++)
        rnd[i] = (uint8_t)rand();
    const char *const names[] = {"random.flac", "random.mp3", "random.ogg", "random.opus",
                                 "random.m4a",  "random.wma", "random.mpc", "random.xyz"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        spit(path(names[i]), rnd, sizeof(rnd));
        open_fails(path(names[i]), 0);
    }
    const char *text = "This is not music, only a text file that is named .mp3.\n";
    spit(path("text.mp3"), text, strlen(text));
    open_fails(path("text.mp3"), -EINVAL);
    /* A directory is not a file. */
    open_fails(dir, 0);
}

static void mislabelled_files(void **state)
{
    /* A FLAC named .mp3 is read as FLAC, with everything in it. */
    size_t len;
    uint8_t *d = slurp(path("t.flac"), &len);
    spit(path("flac-really.mp3"), d, len);
    free(d);
    struct opened o;
    open_ok(path("flac-really.mp3"), &o);
    assert_string_equal(o.ops->name, "flac");
    format_is(&o.info, "flac", "flac", RATE, 0.0005);
    tag_is(&o.info, "title", TITLE, NULL);
    picture_is_cover(&o.info, 0, -1);
    audio_is_tone(&o, 1);
    close_ok(&o);

    /* Opus named .ogg, MP3 named .m4a, MP4 without an extension. */
    const char *const pairs[][3] = {{"t.opus", "opus-really.ogg", "opus"},
                                    {"ff.mp3", "mp3-really.m4a", "mpg123"},
                                    {"aac.m4a", "m4a-really", "avcodec"},
                                    {"t.mpc", "mpc-really.flac", "mpc"},
                                    {"t.wma", "wma-really.mp3", "avcodec"}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        d = slurp(path(pairs[i][0]), &len);
        spit(path(pairs[i][1]), d, len);
        free(d);
        open_ok(path(pairs[i][1]), &o);
        assert_string_equal(o.ops->name, pairs[i][2]);
        tag_is(&o.info, "title", TITLE, NULL);
        close_ok(&o);
    }

    /* An MP3 with a large ID3v2 tag named .flac: the frames after the tag
     * say what it is. */
    struct bytes big = {0};
    id3_text(&big, "TIT2", TITLE, NULL);
    uint8_t pad[8192] = {0};
    id3_frame(&big, 4, "PRIV", pad, sizeof(pad));
    prepend_id3(path("mp3-really.flac"), bare_mp3(), 4, 0, &big);
    free(big.p);
    open_ok(path("mp3-really.flac"), &o);
    assert_string_equal(o.ops->name, "mpg123");
    tag_is(&o.info, "title", TITLE, NULL);
    close_ok(&o);

    /* FLAC behind an ID3v2 tag (some taggers do this) is still FLAC. */
    struct bytes t = {0};
    id3_text(&t, "TIT2", "id3 title", NULL);
    prepend_id3(path("id3.flac"), path("t.flac"), 4, 0, &t);
    free(t.p);
    open_ok(path("id3.flac"), &o);
    assert_string_equal(o.ops->name, "flac");
    tag_is(&o.info, "title", TITLE, NULL);
    close_ok(&o);
}

/* Decode jobs run side by side on the worker pool: every plugin must work
 * with others (and itself) decoding on other threads. */
static void *decode_all(void *arg)
{
    static const char *const files[] = {"ff.mp3",  "v24.mp3",  "t.flac", "t.ogg", "t.opus",
                                        "aac.m4a", "alac.m4a", "t.wma",  "t.mpc"};
    float *pcm = malloc(4096 * sizeof(float));
    long failures = 0;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            const struct decoder_ops *ops;
            struct decoder *d;
            struct media_info info;
            char err[256], p[512];
            snprintf(p, sizeof(p), "%s/%s", dir, files[i]); /* path() is not thread-safe */
            if (decoder_open_file(p, DECODER_WANT_PICTURES, &ops, &d, &info, err, sizeof(err)) <
                0) {
                failures++;
                continue;
            }
            int64_t total = 0;
            long n;
            while ((n = ops->read(d, pcm, 4096 / (size_t)info.channels)) > 0)
                total += n;
            if (n < 0 || total < info.rate)
                failures++;
            media_info_clear(&info);
            ops->close(d);
        }
    }
    free(pcm);
    return (void *)failures;
}

static void parallel(void **state)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, decode_all, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *failures;
        pthread_join(t[i], &failures);
        assert_int_equal((long)failures, 0);
    }
}

/* ---- the pure parts ---- */

static void tag_keys(void **state)
{
    char b[64];
    static const char *const pairs[][2] = {
        {"TIT2", "title"},
        {"TPE1", "artist"},
        {"TPE2", "albumartist"},
        {"TYER", "date"},
        {"TSO2", "albumartistsort"},
        {"album_artist", "albumartist"},
        {"ALBUM ARTIST", "albumartist"},
        {"\xc2\xa9"
         "ART",
         "artist"},
        {"aART", "albumartist"},
        {"soaa", "albumartistsort"},
        {"trkn", "tracknumber"},
        {"WM/AlbumArtist", "albumartist"},
        {"WM/PartOfSet", "discnumber"},
        {"Author", "artist"},
        {"TOTALTRACKS", "tracktotal"},
        {"MusicBrainz Album Artist Id", "musicbrainz_albumartistid"},
        {"MusicBrainz/Album Artist Id", "musicbrainz_albumartistid"},
        {"MUSICBRAINZ_ALBUMARTISTID", "musicbrainz_albumartistid"},
        {"Acoustid Id", "acoustid_id"},
        {"CATALOGNUMBER", "catalognumber"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const char *k = media_tag_key(pairs[i][0], b, sizeof(b));
        if (!k || strcmp(k, pairs[i][1]))
            fail_msg("%s -> %s, want %s", pairs[i][0], k ? k : "NULL", pairs[i][1]);
    }
    static const char *const dropped[] = {
        "iTunNORM", "encoder", "REPLAYGAIN_TRACK_GAIN", "WM/Track", "major_brand", "", "a\x01z"};
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        assert_null(media_tag_key(dropped[i], b, sizeof(b)));
    assert_true(media_tag_known("TCON"));
    assert_false(media_tag_known("TSSE"));
}

static void tag_values(void **state)
{
    struct media_info info;
    media_info_init(&info);
    assert_int_equal(media_info_add_tag(&info, "TRACKNUMBER", " 3 / 12 "), 0);
    assert_int_equal(media_info_add_tag(&info, "disc", "0/2"), 0);
    assert_int_equal(media_info_add_tag(&info, "ARTIST", "A"), 0);
    assert_int_equal(media_info_add_tag(&info, "artist", "A"), 0); /* repeated */
    assert_int_equal(media_info_add_tag(&info, "artist", ""), 0);
    assert_int_equal(media_info_add_tagn(&info, "album", "Caf\xe9", 4), 0); /* Latin-1 */
    assert_int_equal(media_info_add_tagn(&info, "comment", "x\0y", 3), 0);  /* dropped */
    assert_int_equal(media_info_add_tag(&info, "REPLAYGAIN_TRACK_GAIN", "-6,20 dB"), 0);
    assert_int_equal(media_info_add_tag(&info, "REPLAYGAIN_TRACK_PEAK", "nan"), 0);
    assert_int_equal(media_info_add_tag(&info, "REPLAYGAIN_ALBUM_GAIN", "1e999"), 0);
    tag_is(&info, "tracknumber", "3", NULL);
    tag_is(&info, "tracktotal", "12", NULL);
    no_tag(&info, "discnumber");
    tag_is(&info, "disctotal", "2", NULL);
    tag_is(&info, "artist", "A", NULL);
    tag_is(&info, "album", "Caf\xc3\xa9", NULL);
    no_tag(&info, "comment");
    gain_is(info.rg.track_gain, -6.2);
    gain_is(info.rg.track_peak, NAN);
    assert_true(isnan(info.rg.album_gain) || fabs(info.rg.album_gain) < 100);
    /* Bounded: many values of one key stop at the limit. */
    for (int i = 0; i < MEDIA_TAG_MAX_VALUES + 10; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        media_info_add_tag(&info, "genre", v);
    }
    assert_int_equal(json_array_size(json_object_get(info.tags, "genre")), MEDIA_TAG_MAX_VALUES);
    media_info_clear(&info);

    size_t n;
    uint8_t *b = media_base64_decode("aGVs\nbG8=", 9, &n);
    assert_non_null(b);
    assert_int_equal(n, 5);
    assert_memory_equal(b, "hello", 5);
    free(b);
    assert_null(media_base64_decode("a*b", 3, &n));
    assert_string_equal(media_id3_genre(8), "Jazz");
    assert_string_equal(media_id3_genre(191), "Psybient");
    assert_null(media_id3_genre(192));
    assert_null(media_id3_genre(-1));
}

static void flac_picture_bounds(void **state)
{
    struct media_info info;
    media_info_init(&info);
    struct bytes pic = flac_picture(3, "image/png", "d");
    assert_int_equal(media_info_add_flac_picture(&info, pic.p, pic.n), 0);
    picture_is_cover(&info, 0, 3);
    /* Every shorter prefix is malformed, none is read past. */
    for (size_t n = 0; n < pic.n; n++) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, pic.p, n);
        assert_int_equal(media_info_add_flac_picture(&info, c, n), -EINVAL);
        free(c);
    }
    /* Lengths near 2^32 must not wrap. */
    wr_be32(pic.p + 4, 0xfffffffc);
    assert_int_equal(media_info_add_flac_picture(&info, pic.p, pic.n), -EINVAL);
    free(pic.p);
    assert_int_equal(info.npictures, 1);
    media_info_clear(&info);
}

static void apetag_bounds(void **state)
{
    struct bytes t = ape_tag();
    size_t items = t.n - 2 * APETAG_FOOTER_LEN;
    struct media_info info;
    media_info_init(&info);
    int r =
        apetag_parse_items(t.p + APETAG_FOOTER_LEN, items, 15, 2000, &info, DECODER_WANT_PICTURES);
    assert_int_equal(r, 15);
    ape_tags_are(&info);
    media_info_clear(&info);
    /* Every truncation, and a count larger than the items. */
    for (size_t n = 0; n < items; n += 7) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, t.p + APETAG_FOOTER_LEN, n);
        media_info_init(&info);
        r = apetag_parse_items(c, n, 1000, 2000, &info, DECODER_WANT_PICTURES);
        assert_true(r >= 0 && r < 15);
        media_info_clear(&info);
        free(c);
    }
    /* A footer whose size points before the file start is not a tag. */
    struct apetag_loc loc;
    wr_be32(t.p + t.n - APETAG_FOOTER_LEN + 12, 0);
    t.p[t.n - APETAG_FOOTER_LEN + 12] = 0xff;
    t.p[t.n - APETAG_FOOTER_LEN + 13] = 0xff;
    spit(path("ape.bin"), t.p, t.n);
    int fd = open(path("ape.bin"), O_RDONLY);
    assert_int_equal(apetag_find(fd, (off_t)t.n, &loc), 0);
    close(fd);
    free(t.p);
}

static void registry(void **state)
{
    int n = 0;
    for (const struct decoder_ops *const *o = decoder_plugins; *o; o++, n++) {
        assert_non_null((*o)->name);
        assert_non_null((*o)->open);
        assert_non_null((*o)->read_info);
        assert_non_null((*o)->read);
        assert_non_null((*o)->close);
        assert_non_null((*o)->extensions);
    }
    assert_int_equal(n, 6);
    uint8_t flac_head[] = "fLaC\0\0\0\x22";
    assert_ptr_equal(decoder_for_file("/x/a.mp3", flac_head, 8), &decoder_flac);
    assert_ptr_equal(decoder_for_file("/x/a.M4A", (const uint8_t *)"", 0), &decoder_avcodec);
    assert_ptr_equal(decoder_for_file("/x/a.opus", NULL, 0), &decoder_opus);
    assert_null(decoder_for_file("/x/a.txt", (const uint8_t *)"hello", 5));
    assert_null(decoder_for_file("/x.mp3/a", NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registry),
        cmocka_unit_test(tag_keys),
        cmocka_unit_test(tag_values),
        cmocka_unit_test(flac_picture_bounds),
        cmocka_unit_test(apetag_bounds),
        cmocka_unit_test(mp3_ffmpeg),
        cmocka_unit_test(mp3_id3v24),
        cmocka_unit_test(mp3_id3v23_utf16),
        cmocka_unit_test(mp3_ape_and_id3v1),
        cmocka_unit_test(mp3_without_info_frame),
        cmocka_unit_test(mp3_id3v22),
        cmocka_unit_test(flac),
        cmocka_unit_test(vorbis),
        cmocka_unit_test(opus),
        cmocka_unit_test(mp4_aac),
        cmocka_unit_test(mp4_alac),
        cmocka_unit_test(wma),
        cmocka_unit_test(mpc),
        cmocka_unit_test(broken_files),
        cmocka_unit_test(mislabelled_files),
        cmocka_unit_test(parallel),
    };
    return cmocka_run_group_tests(tests, make_files, remove_files);
}
