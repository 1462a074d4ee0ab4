/*
 * The decoder registry and what all plugins share: choosing the plugin for a
 * file (magic first, extension second, so a mislabelled file is still read by
 * the right library), and the media_info they fill: tag names of every format
 * mapped to one set of keys, ReplayGain text, pictures (FLAC PICTURE blocks,
 * base64 METADATA_BLOCK_PICTURE), limits on what a file may make us hold.
 *
 * Tags are outside input: every helper here bounds lengths and counts, takes
 * text that is not UTF-8 as Latin-1 (JSON needs UTF-8), and never fails on
 * content, only on memory.
 */
#include "media/decoder.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

const struct decoder_ops *const decoder_plugins[] = {
    &decoder_mpg123, &decoder_flac, &decoder_vorbis, &decoder_opus, &decoder_avcodec,
    &decoder_mpc,    NULL,
};

/* ---- tag keys ---- */

struct key_map {
    const char *from; /* lower-case */
    const char *to;   /* NULL: not a tag */
};

/* Every format's name for the same field. ID3v2.2/2.3/2.4 frame ids, Vorbis
 * comment and APE names, libavformat's generic names (which is what it makes
 * of MP4 atoms and ASF attributes), the raw MP4 atoms and WM/ attributes.
 * Sorted once at first use, so the order here is free. */
static struct key_map key_table[] = {
    /* ID3v2.3/2.4 */
    {"tit1", "grouping"},
    {"tit2", "title"},
    {"tit3", "subtitle"},
    {"tpe1", "artist"},
    {"tpe2", "albumartist"},
    {"tpe3", "conductor"},
    {"tpe4", "remixer"},
    {"talb", "album"},
    {"trck", "tracknumber"},
    {"tpos", "discnumber"},
    {"tdrc", "date"},
    {"tyer", "date"},
    {"tdor", "originaldate"},
    {"tory", "originaldate"},
    {"tcon", "genre"},
    {"tcom", "composer"},
    {"text", "lyricist"},
    {"tsop", "artistsort"},
    {"tsoa", "albumsort"},
    {"tsot", "titlesort"},
    {"tso2", "albumartistsort"},
    {"tsoc", "composersort"},
    {"tsst", "discsubtitle"},
    {"tpub", "label"},
    {"tsrc", "isrc"},
    {"tcmp", "compilation"},
    {"tbpm", "bpm"},
    {"tmed", "media"},
    {"tlan", "language"},
    {"tcop", "copyright"},
    {"tmoo", "mood"},
    {"comm", "comment"},
    {"uslt", "lyrics"},
    /* ID3v2.2 */
    {"tt1", "grouping"},
    {"tt2", "title"},
    {"tt3", "subtitle"},
    {"tp1", "artist"},
    {"tp2", "albumartist"},
    {"tp3", "conductor"},
    {"tp4", "remixer"},
    {"tal", "album"},
    {"trk", "tracknumber"},
    {"tpa", "discnumber"},
    {"tye", "date"},
    {"tor", "originaldate"},
    {"tco", "genre"},
    {"tcm", "composer"},
    {"txt", "lyricist"},
    {"tst", "titlesort"},
    {"tsa", "albumsort"},
    {"tsp", "artistsort"},
    {"ts2", "albumartistsort"},
    {"tsc", "composersort"},
    {"tpb", "label"},
    {"trc", "isrc"},
    {"tcp", "compilation"},
    {"tbp", "bpm"},
    {"tmt", "media"},
    {"tla", "language"},
    {"tcr", "copyright"},
    {"com", "comment"},
    /* Vorbis comments, APE, libavformat's generic names */
    {"title", "title"},
    {"artist", "artist"},
    {"album", "album"},
    {"albumartist", "albumartist"},
    {"album artist", "albumartist"},
    {"album_artist", "albumartist"},
    {"tracknumber", "tracknumber"},
    {"track", "tracknumber"},
    {"tracktotal", "tracktotal"},
    {"totaltracks", "tracktotal"},
    {"discnumber", "discnumber"},
    {"disc", "discnumber"},
    {"disctotal", "disctotal"},
    {"totaldiscs", "disctotal"},
    {"date", "date"},
    {"year", "date"},
    {"originaldate", "originaldate"},
    {"genre", "genre"},
    {"composer", "composer"},
    {"comment", "comment"},
    {"description", "comment"},
    {"grouping", "grouping"},
    {"artistsort", "artistsort"},
    {"albumsort", "albumsort"},
    {"titlesort", "titlesort"},
    {"albumartistsort", "albumartistsort"},
    {"composersort", "composersort"},
    {"sort_name", "titlesort"},
    {"sort_artist", "artistsort"},
    {"sort_album", "albumsort"},
    {"sort_album_artist", "albumartistsort"},
    {"sort_composer", "composersort"},
    {"publisher", "label"},
    {"organization", "label"},
    /* MP4 atoms, when a name reaches us unmapped */
    {"\xc2\xa9nam", "title"},
    {"\xc2\xa9"
     "art",
     "artist"},
    {"\xc2\xa9"
     "alb",
     "album"},
    {"aart", "albumartist"},
    {"trkn", "tracknumber"},
    {"disk", "discnumber"},
    {"\xc2\xa9"
     "day",
     "date"},
    {"\xc2\xa9gen", "genre"},
    {"\xc2\xa9wrt", "composer"},
    {"\xc2\xa9"
     "cmt",
     "comment"},
    {"\xc2\xa9grp", "grouping"},
    {"soar", "artistsort"},
    {"soal", "albumsort"},
    {"sonm", "titlesort"},
    {"soaa", "albumartistsort"},
    {"soco", "composersort"},
    {"cpil", "compilation"},
    /* ASF */
    {"author", "artist"},
    {"wm/albumartist", "albumartist"},
    {"wm/albumtitle", "album"},
    {"wm/tracknumber", "tracknumber"},
    {"wm/partofset", "discnumber"},
    {"wm/year", "date"},
    {"wm/genre", "genre"},
    {"wm/composer", "composer"},
    {"wm/conductor", "conductor"},
    {"wm/artistsortorder", "artistsort"},
    {"wm/albumsortorder", "albumsort"},
    {"wm/titlesortorder", "titlesort"},
    {"wm/albumartistsortorder", "albumartistsort"},
    {"wm/composersortorder", "composersort"},
    {"wm/contentgroupdescription", "grouping"},
    {"wm/setsubtitle", "discsubtitle"},
    {"wm/publisher", "label"},
    {"wm/isrc", "isrc"},
    {"wm/mood", "mood"},
    {"wm/beatsperminute", "bpm"},
    {"wm/language", "language"},
    {"wm/iscompilation", "compilation"},
    {"wm/originalreleasetime", "originaldate"},
    {"wm/originalreleaseyear", "originalyear"},
    {"wm/subtitle", "subtitle"},
    /* WM/Track counts from 0 and is only written beside WM/TrackNumber. */
    {"wm/track", NULL},
    /* Not tags: encoders, container bookkeeping, gain handled elsewhere. */
    {"encoder", NULL},
    {"encoded_by", NULL},
    {"encoded by", NULL},
    {"encodedby", NULL},
    {"encoding settings", NULL},
    {"major_brand", NULL},
    {"minor_version", NULL},
    {"compatible_brands", NULL},
    {"creation_time", NULL},
    {"handler_name", NULL},
    {"vendor_id", NULL},
    {"duration", NULL},
    {"itunnorm", NULL},
    {"itunsmpb", NULL},
    {"itunpgap", NULL},
    {"itunes_cddb_1", NULL},
    {"wm/encodingsettings", NULL},
    {"wm/encodingtime", NULL},
    {"wm/tool", NULL},
    {"wm/toolname", NULL},
    {"wm/toolversion", NULL},
    {"wm/mediaprimaryclassid", NULL},
    {"wm/wmcontentid", NULL},
    {"wm/wmcollectionid", NULL},
    {"wm/wmcollectiongroupid", NULL},
    {"wm/uniquefileidentifier", NULL},
    {"wm/provider", NULL},
    {"wm/providerrating", NULL},
    {"wm/providerstyle", NULL},
    {"wm/mediaclassprimaryid", NULL},
    {"wm/mediaclasssecondaryid", NULL},
    {"isvbr", NULL},
    {"deviceconformancetemplate", NULL},
    {"wmfsdkversion", NULL},
    {"wmfsdkneeded", NULL},
    {"metadata_block_picture", NULL},
    {"coverart", NULL},
    {"coverartmime", NULL},
    {"replaygain_reference_loudness", NULL},
    {"r128_track_gain", NULL},
    {"r128_album_gain", NULL},
    {"waveformatextensible_channel_mask", NULL},
    {"gapless_playback", NULL},
    {"hd_video", NULL},
    {"media_type", NULL},
};

static pthread_once_t key_table_once = PTHREAD_ONCE_INIT;

static int key_cmp(const void *a, const void *b)
{
    return strcmp(((const struct key_map *)a)->from, ((const struct key_map *)b)->from);
}

static void key_table_sort(void)
{
    qsort(key_table, sizeof(key_table) / sizeof(key_table[0]), sizeof(key_table[0]), key_cmp);
}

/* Lower-cases key into out (ASCII only: UTF-8 bytes pass unchanged). 0 if it
 * does not fit or holds control characters. */
static int lower_key(const char *key, char *out, size_t outlen)
{
    size_t i;
    for (i = 0; key[i]; i++) {
        unsigned char c = (unsigned char)key[i];
        if (i + 1 >= outlen || c < 0x20 || c == 0x7f)
            return 0;
        out[i] = (char)tolower(c);
    }
    out[i] = '\0';
    return i > 0;
}

static const struct key_map *key_lookup(const char *lower)
{
    pthread_once(&key_table_once, key_table_sort);
    struct key_map k = {.from = lower};
    return bsearch(&k, key_table, sizeof(key_table) / sizeof(key_table[0]), sizeof(key_table[0]),
                   key_cmp);
}

static int valid_utf8(const uint8_t *s, size_t n);

const char *media_tag_key(const char *key, char *out, size_t outlen)
{
    char low[64];

    if (!key || !lower_key(key, low, sizeof(low)) || outlen < sizeof(low))
        return NULL;
    if (!valid_utf8((const uint8_t *)low, strlen(low)))
        return NULL;
    if (!strncmp(low, "replaygain_", 11))
        return NULL;
    const struct key_map *m = key_lookup(low);
    if (m) {
        if (!m->to)
            return NULL;
        snprintf(out, outlen, "%s", m->to);
        return out;
    }
    /* MusicBrainz ids are spelled "MusicBrainz Album Artist Id" (ID3 TXXX,
     * APE, MP4), "MusicBrainz/Album Artist Id" (ASF) and
     * "MUSICBRAINZ_ALBUMARTISTID" (Vorbis): one key for all. */
    if (!strncmp(low, "musicbrainz", 11) && (low[11] == ' ' || low[11] == '/' || low[11] == '_')) {
        size_t o = (size_t)snprintf(out, outlen, "musicbrainz_");
        for (const char *p = low + 12; *p && o + 1 < outlen; p++)
            if (*p != ' ' && *p != '_')
                out[o++] = *p;
        out[o] = '\0';
        return o > 12 ? out : NULL;
    }
    /* Free-form names ("CATALOGNUMBER", "Acoustid Id") as Picard spells
     * them in Vorbis comments. */
    size_t i;
    for (i = 0; low[i]; i++)
        out[i] = low[i] == ' ' ? '_' : low[i];
    out[i] = '\0';
    return out;
}

int media_tag_known(const char *key)
{
    char low[64];
    if (!key || !lower_key(key, low, sizeof(low)))
        return 0;
    const struct key_map *m = key_lookup(low);
    return m && m->to;
}

/* ---- media_info ---- */

void media_info_init(struct media_info *info)
{
    memset(info, 0, sizeof(*info));
    info->frames = -1;
    info->tags = json_object();
    info->rg.track_gain = NAN;
    info->rg.track_peak = NAN;
    info->rg.album_gain = NAN;
    info->rg.album_peak = NAN;
}

void media_info_clear(struct media_info *info)
{
    json_decref(info->tags);
    for (size_t i = 0; i < info->npictures; i++) {
        free(info->pictures[i].mime);
        free(info->pictures[i].description);
        free(info->pictures[i].data);
    }
    free(info->pictures);
    memset(info, 0, sizeof(*info));
    info->frames = -1;
    info->rg.track_gain = NAN;
    info->rg.track_peak = NAN;
    info->rg.album_gain = NAN;
    info->rg.album_peak = NAN;
}

static int valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            if (c == 0)
                return 0;
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        /* Overlong forms, surrogates and code points past U+10FFFF are not
         * UTF-8 (and jansson refuses them). */
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return 0;
        i += k + 1;
    }
    return 1;
}

/* A json string of n bytes: UTF-8 as is, anything else taken as Latin-1
 * (what old taggers wrote into Vorbis and APE fields). */
static json_t *text_json(const char *s, size_t n)
{
    if (valid_utf8((const uint8_t *)s, n))
        return json_stringn(s, n);
    char *u = malloc(n * 2 + 1);
    if (!u)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == 0)
            continue;
        if (c < 0x80) {
            u[o++] = (char)c;
        } else {
            u[o++] = (char)(0xc0 | (c >> 6));
            u[o++] = (char)(0x80 | (c & 0x3f));
        }
    }
    json_t *j = json_stringn(u, o);
    free(u);
    return j;
}

static void trim(const char **s, size_t *n)
{
    while (*n && isspace((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && isspace((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

static int add_value(struct media_info *info, const char *key, const char *v, size_t n)
{
    /* Trailing NULs are padding (ID3, APE, ASF write them), not text. */
    while (n && v[n - 1] == '\0')
        n--;
    if (n == 0 || n > MEDIA_TAG_MAX_LEN || memchr(v, '\0', n))
        return 0;
    json_t *arr = json_object_get(info->tags, key);
    if (!arr) {
        if (json_object_size(info->tags) >= MEDIA_TAG_MAX_KEYS)
            return 0;
        arr = json_array();
        if (!arr || json_object_set_new(info->tags, key, arr) < 0)
            return -ENOMEM;
    }
    if (json_array_size(arr) >= MEDIA_TAG_MAX_VALUES)
        return 0;
    json_t *s = text_json(v, n);
    if (!s)
        return -ENOMEM;
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x)
    {
        if (json_equal(x, s)) {
            json_decref(s);
            return 0;
        }
    }
    return json_array_append_new(arr, s) < 0 ? -ENOMEM : 0;
}

int media_info_add_tagn(struct media_info *info, const char *key, const char *value, size_t n)
{
    char nk[64];

    if (!info || !key || !value || n == 0)
        return 0;
    while (n && value[n - 1] == '\0')
        n--;
    if (n == 0 || n > MEDIA_TAG_MAX_LEN)
        return 0;
    if (!strncasecmp(key, "replaygain_", 11)) {
        char tmp[64];
        size_t m = n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1;
        memcpy(tmp, value, m);
        tmp[m] = '\0';
        media_info_replaygain_tag(info, key, tmp);
        return 0;
    }
    if (!media_tag_key(key, nk, sizeof(nk)))
        return 0;
    /* "3/12" under a number key is number and total (ID3 TRCK/TPOS, APE,
     * libavformat's MP4 trkn/disk). */
    const char *total = NULL;
    if (!strcmp(nk, "tracknumber"))
        total = "tracktotal";
    else if (!strcmp(nk, "discnumber"))
        total = "disctotal";
    const char *slash = total ? memchr(value, '/', n) : NULL;
    if (slash) {
        const char *a = value, *b = slash + 1;
        size_t an = (size_t)(slash - value), bn = n - an - 1;
        trim(&a, &an);
        trim(&b, &bn);
        /* "0" is how MP4 says "not set". */
        int r = 0;
        if (an && !(an == 1 && a[0] == '0'))
            r = add_value(info, nk, a, an);
        if (r == 0 && bn && !(bn == 1 && b[0] == '0'))
            r = add_value(info, total, b, bn);
        return r;
    }
    return add_value(info, nk, value, n);
}

int media_info_add_tag(struct media_info *info, const char *key, const char *value)
{
    if (!value)
        return 0;
    return media_info_add_tagn(info, key, value, strlen(value));
}

int media_info_copy_picture(struct media_info *info, const char *mime, int type,
                            const char *description, const uint8_t *data, size_t len)
{
    if (!len || len > MEDIA_PICTURE_MAX_LEN || info->npictures >= MEDIA_PICTURE_MAX)
        return 0;
    uint8_t *copy = malloc(len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, data, len);
    return media_info_add_picture(info, mime, type, description, copy, len);
}

int media_info_add_picture(struct media_info *info, const char *mime, int type,
                           const char *description, uint8_t *data, size_t len)
{
    if (!data || !len || len > MEDIA_PICTURE_MAX_LEN || info->npictures >= MEDIA_PICTURE_MAX) {
        free(data);
        return 0;
    }
    /* The bytes say what the image is better than the tag does: taggers
     * write "image/jpg", "JPG", "-->" (a link) or nothing. */
    const char *sniffed = media_image_mime(data, len);
    if (!sniffed && mime && !strcmp(mime, "-->")) {
        free(data); /* a URL, not a picture */
        return 0;
    }
    struct media_picture *p = realloc(info->pictures, (info->npictures + 1) * sizeof(*p));
    if (!p) {
        free(data);
        return -ENOMEM;
    }
    info->pictures = p;
    p = &info->pictures[info->npictures];
    memset(p, 0, sizeof(*p));
    const char *m = sniffed ? sniffed : mime;
    p->mime = m && *m ? strndup(m, 64) : NULL;
    /* The description is outside text too: it must be UTF-8 to be shown. */
    if (description && *description) {
        size_t dn = strnlen(description, 1024);
        p->description =
            valid_utf8((const uint8_t *)description, dn) ? strndup(description, dn) : NULL;
    }
    p->type = type >= 0 && type <= 20 ? type : 0;
    p->data = data;
    p->len = len;
    info->npictures++;
    return 0;
}

const char *media_image_mime(const uint8_t *d, size_t n)
{
    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        return "image/jpeg";
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8))
        return "image/png";
    if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6)))
        return "image/gif";
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4))
        return "image/webp";
    if (n >= 2 && d[0] == 'B' && d[1] == 'M')
        return "image/bmp";
    return NULL;
}

/* ---- ReplayGain ---- */

int media_parse_decimal(const char *s, double *out)
{
    /* The digits go into an integer and are divided once by a power of ten
     * (both exact in a double up to 15 digits), so "0.95" is the double
     * nearest 0.95, not 0.9500000000000001 as repeated division gives.
     * Locale-free on purpose: tags are written in any locale. */
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    long long mant = 0;
    int neg = 0, digits = 0, sig = 0, frac = 0, drop = 0;

    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (sig < 15) {
            mant = mant * 10 + (*s - '0');
            sig += mant > 0;
        } else {
            drop++; /* integer digits past 15: a scale, not precision */
        }
    }
    /* Some taggers write the decimal separator of their locale. */
    if (*s == '.' || *s == ',') {
        s++;
        for (; *s >= '0' && *s <= '9'; s++, digits++) {
            if (sig < 15 && frac < 15) {
                mant = mant * 10 + (*s - '0');
                sig += mant > 0;
                frac++;
            }
        }
    }
    if (!digits)
        return -EINVAL;
    while (*s == ' ')
        s++;
    if (*s && strncasecmp(s, "db", 2) != 0 && strncasecmp(s, "lufs", 4) != 0)
        return -EINVAL;
    double v = (double)mant / pow10[frac];
    while (drop-- > 0)
        v *= 10;
    *out = neg ? -v : v;
    return 0;
}

int media_info_replaygain_tag(struct media_info *info, const char *key, const char *value)
{
    static const struct {
        const char *key;
        size_t off;
        int peak;
    } rg_keys[] = {
        {"replaygain_track_gain", offsetof(struct replaygain, track_gain), 0},
        {"replaygain_track_peak", offsetof(struct replaygain, track_peak), 1},
        {"replaygain_album_gain", offsetof(struct replaygain, album_gain), 0},
        {"replaygain_album_peak", offsetof(struct replaygain, album_peak), 1},
    };
    if (!key)
        return 0;
    for (size_t i = 0; i < sizeof(rg_keys) / sizeof(rg_keys[0]); i++) {
        if (strcasecmp(key, rg_keys[i].key))
            continue;
        double v, *dst = (double *)((char *)&info->rg + rg_keys[i].off);
        /* The first value a file states wins; a later tag only fills gaps. */
        if (value && isnan(*dst) && media_parse_decimal(value, &v) == 0 &&
            (rg_keys[i].peak ? v >= 0 && v < 100 : v > -100 && v < 100))
            *dst = v;
        return 1;
    }
    return 0;
}

/* ---- pictures in Vorbis comments and FLAC ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int media_info_add_flac_picture(struct media_info *info, const uint8_t *d, size_t n)
{
    size_t o = 0;
    char mime[65], desc[1025];

    if (n < 32)
        return -EINVAL;
    uint32_t type = be32(d);
    uint32_t ml = be32(d + 4);
    o = 8;
    if (ml > n - o || n - o - ml < 4)
        return -EINVAL;
    snprintf(mime, sizeof(mime), "%.*s", (int)(ml < 64 ? ml : 64), (const char *)d + o);
    o += ml;
    uint32_t dl = be32(d + o);
    o += 4;
    if (dl > n - o || n - o - dl < 20)
        return -EINVAL;
    snprintf(desc, sizeof(desc), "%.*s", (int)(dl < 1024 ? dl : 1024), (const char *)d + o);
    o += dl + 16; /* width, height, depth, colours */
    uint32_t len = be32(d + o);
    o += 4;
    if (len > n - o)
        return -EINVAL;
    return media_info_copy_picture(info, mime, (int)type, desc, d + o, len);
}

uint8_t *media_base64_decode(const char *in, size_t n, size_t *outlen)
{
    uint8_t *out = malloc(n / 4 * 3 + 3);
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+' || c == '-')
            v = 62;
        else if (c == '/' || c == '_')
            v = 63;
        else if (c == '=')
            break;
        else if (isspace(c))
            continue;
        else {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    *outlen = o;
    return out;
}

int media_info_add_vorbis_comment(struct media_info *info, const char *c, size_t len, int flags)
{
    char key[64];
    const char *eq = memchr(c, '=', len);

    if (!eq || eq == c || (size_t)(eq - c) >= sizeof(key))
        return 0;
    memcpy(key, c, (size_t)(eq - c));
    key[eq - c] = '\0';
    const char *v = eq + 1;
    size_t vn = len - (size_t)(eq - c) - 1;

    if (!strcasecmp(key, "METADATA_BLOCK_PICTURE") || !strcasecmp(key, "COVERART")) {
        if (!(flags & DECODER_WANT_PICTURES) || info->npictures >= MEDIA_PICTURE_MAX)
            return 0;
        size_t bn;
        uint8_t *bin = media_base64_decode(v, vn, &bn);
        if (!bin)
            return 0; /* broken base64: not our error to report */
        int r;
        if (!strcasecmp(key, "COVERART")) {
            /* The pre-2009 way: the bare image, type unknown. */
            r = media_info_add_picture(info, NULL, 3, NULL, bin, bn);
            return r;
        }
        r = media_info_add_flac_picture(info, bin, bn);
        free(bin);
        return r == -ENOMEM ? r : 0;
    }
    return media_info_add_tagn(info, key, v, vn);
}

void media_info_merge_missing(struct media_info *dst, struct media_info *src)
{
    const char *key;
    json_t *arr;
    json_object_foreach(src->tags, key, arr)
    {
        if (json_object_get(dst->tags, key) || json_object_size(dst->tags) >= MEDIA_TAG_MAX_KEYS)
            continue;
        json_object_set(dst->tags, key, arr);
    }
    if (isnan(dst->rg.track_gain))
        dst->rg.track_gain = src->rg.track_gain;
    if (isnan(dst->rg.track_peak))
        dst->rg.track_peak = src->rg.track_peak;
    if (isnan(dst->rg.album_gain))
        dst->rg.album_gain = src->rg.album_gain;
    if (isnan(dst->rg.album_peak))
        dst->rg.album_peak = src->rg.album_peak;
    if (dst->npictures == 0 && src->npictures) {
        dst->pictures = src->pictures;
        dst->npictures = src->npictures;
        src->pictures = NULL;
        src->npictures = 0;
    }
}

/* ---- genres ---- */

/* ID3v1 genres: 0-79 the original list, 80-147 Winamp's, 148-191 later
 * Winamp additions, in the names current taggers use. */
static const char *const id3_genres[] = {"Blues",
                                         "Classic Rock",
                                         "Country",
                                         "Dance",
                                         "Disco",
                                         "Funk",
                                         "Grunge",
                                         "Hip-Hop",
                                         "Jazz",
                                         "Metal",
                                         "New Age",
                                         "Oldies",
                                         "Other",
                                         "Pop",
                                         "R&B",
                                         "Rap",
                                         "Reggae",
                                         "Rock",
                                         "Techno",
                                         "Industrial",
                                         "Alternative",
                                         "Ska",
                                         "Death Metal",
                                         "Pranks",
                                         "Soundtrack",
                                         "Euro-Techno",
                                         "Ambient",
                                         "Trip-Hop",
                                         "Vocal",
                                         "Jazz+Funk",
                                         "Fusion",
                                         "Trance",
                                         "Classical",
                                         "Instrumental",
                                         "Acid",
                                         "House",
                                         "Game",
                                         "Sound Clip",
                                         "Gospel",
                                         "Noise",
                                         "Alternative Rock",
                                         "Bass",
                                         "Soul",
                                         "Punk",
                                         "Space",
                                         "Meditative",
                                         "Instrumental Pop",
                                         "Instrumental Rock",
                                         "Ethnic",
                                         "Gothic",
                                         "Darkwave",
                                         "Techno-Industrial",
                                         "Electronic",
                                         "Pop-Folk",
                                         "Eurodance",
                                         "Dream",
                                         "Southern Rock",
                                         "Comedy",
                                         "Cult",
                                         "Gangsta",
                                         "Top 40",
                                         "Christian Rap",
                                         "Pop/Funk",
                                         "Jungle",
                                         "Native American",
                                         "Cabaret",
                                         "New Wave",
                                         "Psychedelic",
                                         "Rave",
                                         "Showtunes",
                                         "Trailer",
                                         "Lo-Fi",
                                         "Tribal",
                                         "Acid Punk",
                                         "Acid Jazz",
                                         "Polka",
                                         "Retro",
                                         "Musical",
                                         "Rock & Roll",
                                         "Hard Rock",
                                         "Folk",
                                         "Folk-Rock",
                                         "National Folk",
                                         "Swing",
                                         "Fast Fusion",
                                         "Bebop",
                                         "Latin",
                                         "Revival",
                                         "Celtic",
                                         "Bluegrass",
                                         "Avantgarde",
                                         "Gothic Rock",
                                         "Progressive Rock",
                                         "Psychedelic Rock",
                                         "Symphonic Rock",
                                         "Slow Rock",
                                         "Big Band",
                                         "Chorus",
                                         "Easy Listening",
                                         "Acoustic",
                                         "Humour",
                                         "Speech",
                                         "Chanson",
                                         "Opera",
                                         "Chamber Music",
                                         "Sonata",
                                         "Symphony",
                                         "Booty Bass",
                                         "Primus",
                                         "Porn Groove",
                                         "Satire",
                                         "Slow Jam",
                                         "Club",
                                         "Tango",
                                         "Samba",
                                         "Folklore",
                                         "Ballad",
                                         "Power Ballad",
                                         "Rhythmic Soul",
                                         "Freestyle",
                                         "Duet",
                                         "Punk Rock",
                                         "Drum Solo",
                                         "A Cappella",
                                         "Euro-House",
                                         "Dance Hall",
                                         "Goa",
                                         "Drum & Bass",
                                         "Club-House",
                                         "Hardcore",
                                         "Terror",
                                         "Indie",
                                         "BritPop",
                                         "Afro-Punk",
                                         "Polsk Punk",
                                         "Beat",
                                         "Christian Gangsta Rap",
                                         "Heavy Metal",
                                         "Black Metal",
                                         "Crossover",
                                         "Contemporary Christian",
                                         "Christian Rock",
                                         "Merengue",
                                         "Salsa",
                                         "Thrash Metal",
                                         "Anime",
                                         "JPop",
                                         "Synthpop",
                                         "Abstract",
                                         "Art Rock",
                                         "Baroque",
                                         "Bhangra",
                                         "Big Beat",
                                         "Breakbeat",
                                         "Chillout",
                                         "Downtempo",
                                         "Dub",
                                         "EBM",
                                         "Eclectic",
                                         "Electro",
                                         "Electroclash",
                                         "Emo",
                                         "Experimental",
                                         "Garage",
                                         "Global",
                                         "IDM",
                                         "Illbient",
                                         "Industro-Goth",
                                         "Jam Band",
                                         "Krautrock",
                                         "Leftfield",
                                         "Lounge",
                                         "Math Rock",
                                         "New Romantic",
                                         "Nu-Breakz",
                                         "Post-Punk",
                                         "Post-Rock",
                                         "Psytrance",
                                         "Shoegaze",
                                         "Space Rock",
                                         "Trop Rock",
                                         "World Music",
                                         "Neoclassical",
                                         "Audiobook",
                                         "Audio Theatre",
                                         "Neue Deutsche Welle",
                                         "Podcast",
                                         "Indie Rock",
                                         "G-Funk",
                                         "Dubstep",
                                         "Garage Rock",
                                         "Psybient"};

const char *media_id3_genre(int n)
{
    if (n < 0 || (size_t)n >= sizeof(id3_genres) / sizeof(id3_genres[0]))
        return NULL;
    return id3_genres[n];
}

/* ---- choosing and opening ---- */

/* Size of an ID3v2 tag at the start of head (header and footer included),
 * 0 if there is none. */
static size_t id3v2_size(const uint8_t *h, size_t n)
{
    if (n < 10 || memcmp(h, "ID3", 3) || h[3] == 0xff || h[4] == 0xff ||
        ((h[6] | h[7] | h[8] | h[9]) & 0x80))
        return 0;
    size_t size = (size_t)h[6] << 21 | (size_t)h[7] << 14 | (size_t)h[8] << 7 | h[9];
    return size + 10 + ((h[5] & 0x10) ? 10 : 0);
}

static const char *extension(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    return dot ? dot + 1 : NULL;
}

const struct decoder_ops *decoder_for_file(const char *path, const uint8_t *head, size_t len)
{
    const uint8_t *p = head;
    size_t n = head ? len : 0;
    uint8_t after[4096]; /* two MP3 frames, so the probe can be sure */

    /* An ID3v2 tag in front says little: FLAC and Musepack files carry them
     * too. Probe what follows it. */
    size_t skip = id3v2_size(p, n);
    if (skip) {
        if (skip < n) {
            p += skip;
            n -= skip;
        } else {
            n = 0;
            int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
            if (fd >= 0) {
                ssize_t got = pread(fd, after, sizeof(after), (off_t)skip);
                n = got > 0 ? (size_t)got : 0;
                p = after;
                close(fd);
            }
        }
    }
    const struct decoder_ops *best = NULL;
    int score = 0;
    for (const struct decoder_ops *const *o = decoder_plugins; *o; o++) {
        int s = (*o)->probe && n ? (*o)->probe(p, n) : 0;
        if (s > score) {
            score = s;
            best = *o;
        }
    }
    if (score >= 2)
        return best;

    const char *ext = path ? extension(path) : NULL;
    if (ext) {
        for (const struct decoder_ops *const *o = decoder_plugins; *o; o++)
            for (const char *const *e = (*o)->extensions; e && *e; e++)
                if (!strcasecmp(ext, *e))
                    return *o;
    }
    if (skip)
        return &decoder_mpg123; /* ID3v2 and nothing else known: most likely MP3 */
    return best;
}

int decoder_open_file(const char *path, int flags, const struct decoder_ops **ops_out,
                      struct decoder **d_out, struct media_info *info, char *errbuf, size_t errlen)
{
    uint8_t head[4096];
    struct stat st;
    const char *msg = NULL;
    struct decoder *d = NULL;
    int r;

    *ops_out = NULL;
    *d_out = NULL;
    memset(info, 0, sizeof(*info));
    info->frames = -1;
    if (errlen)
        errbuf[0] = '\0';

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        snprintf(errbuf, errlen, "cannot open: %s", strerror(errno));
        return r;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(errbuf, errlen, "not a regular file");
        return -EINVAL;
    }
    if (st.st_size == 0) {
        close(fd);
        snprintf(errbuf, errlen, "empty file");
        return -EINVAL;
    }
    ssize_t n = pread(fd, head, sizeof(head), 0);
    int e = errno;
    close(fd);
    if (n < 0) {
        snprintf(errbuf, errlen, "cannot read: %s", strerror(e));
        return -e;
    }
    const struct decoder_ops *ops = decoder_for_file(path, head, (size_t)n);
    if (!ops) {
        snprintf(errbuf, errlen, "not an audio file (unknown format)");
        return -EINVAL;
    }
    r = ops->open(&d, path, &msg);
    if (r < 0) {
        snprintf(errbuf, errlen, "%s", msg ? msg : strerror(-r));
        LOG(E_DEBUG, L_MEDIA, "%s: %s: %s", path, ops->name, errbuf);
        return r;
    }
    media_info_init(info);
    if (!info->tags) {
        ops->close(d);
        snprintf(errbuf, errlen, "out of memory");
        return -ENOMEM;
    }
    r = ops->read_info(d, info, flags);
    if (r == 0 && (info->rate <= 0 || info->rate > 1000000 || info->channels <= 0 ||
                   info->channels > 64 || !isfinite(info->duration) || info->duration < 0)) {
        snprintf(errbuf, errlen, "%s: unusable format: %d Hz, %d channels", ops->name, info->rate,
                 info->channels);
        r = -EINVAL;
    }
    if (r < 0) {
        if (!errbuf[0])
            snprintf(errbuf, errlen, "%s: %s", ops->name, strerror(-r));
        media_info_clear(info);
        ops->close(d);
        return r;
    }
    if (info->bitrate <= 0 && info->duration > 0)
        info->bitrate = (int)((double)st.st_size * 8 / info->duration);
    *ops_out = ops;
    *d_out = d;
    return 0;
}
