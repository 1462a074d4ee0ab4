/*
 * ID3v2 and ID3v1 parsing for the MP3 plugin (see id3tag.h for why it is
 * ours and not libmpg123's). ID3v2 in brief: a 10-byte header (version,
 * flags, syncsafe size), an optional extended header, then frames: id (3
 * chars in 2.2, 4 after), size, flags (2.3+), body. Text bodies start with
 * an encoding byte: 0 Latin-1, 1 UTF-16 with BOM, 2 UTF-16BE, 3 UTF-8.
 * "Unsynchronisation" inserts a 0 after every 0xFF that could look like an
 * MPEG sync; 2.2/2.3 apply it to the whole tag, 2.4 to single frames.
 */
#include "media/id3tag.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static size_t syncsafe(const uint8_t *p)
{
    return (size_t)(p[0] & 0x7f) << 21 | (size_t)(p[1] & 0x7f) << 14 | (size_t)(p[2] & 0x7f) << 7 |
           (p[3] & 0x7f);
}

/* Undoes unsynchronisation (FF 00 -> FF) in place; returns the new length. */
static size_t unsync(uint8_t *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        p[o++] = p[i];
        if (p[i] == 0xff && i + 1 < n && p[i + 1] == 0)
            i++;
    }
    return o;
}

/* ---- text ---- */

/* Length of the string at p in encoding enc: *content bytes of text, and
 * the bytes consumed including its terminator (all of n if unterminated). */
static size_t string_len(int enc, const uint8_t *p, size_t n, size_t *content)
{
    if (enc == 1 || enc == 2) {
        for (size_t i = 0; i + 1 < n; i += 2)
            if (p[i] == 0 && p[i + 1] == 0) {
                *content = i;
                return i + 2;
            }
        *content = n & ~(size_t)1;
        return n;
    }
    const uint8_t *z = memchr(p, 0, n);
    *content = z ? (size_t)(z - p) : n;
    return z ? *content + 1 : n;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* n bytes of text in encoding enc as UTF-8 (malloc'd, *outlen bytes).
 * Every UTF-16 unit gives at most 3 bytes, every Latin-1 byte 2. */
static char *to_utf8(int enc, const uint8_t *p, size_t n, size_t *outlen)
{
    char *o = malloc(n * 2 + 4);
    size_t k = 0;
    if (!o)
        return NULL;
    if (enc == 3) {
        memcpy(o, p, n);
        k = n;
    } else if (enc == 0) {
        for (size_t i = 0; i < n; i++)
            k += put_utf8(o + k, p[i]);
    } else {
        /* Without a byte order mark, encoding 1 is what Windows wrote
         * (little endian), encoding 2 big endian as the spec says. */
        int le = enc == 1;
        size_t i = 0;
        while (i + 1 < n &&
               ((p[i] == 0xff && p[i + 1] == 0xfe) || (p[i] == 0xfe && p[i + 1] == 0xff))) {
            le = p[i] == 0xff;
            i += 2;
        }
        for (; i + 1 < n; i += 2) {
            uint32_t u =
                le ? (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 : (uint32_t)p[i] << 8 | p[i + 1];
            if (u >= 0xd800 && u < 0xdc00 && i + 3 < n) {
                uint32_t l = le ? (uint32_t)p[i + 2] | (uint32_t)p[i + 3] << 8
                                : (uint32_t)p[i + 2] << 8 | p[i + 3];
                if (l >= 0xdc00 && l < 0xe000) {
                    u = 0x10000 + ((u - 0xd800) << 10) + (l - 0xdc00);
                    i += 2;
                } else {
                    u = 0xfffd;
                }
            } else if (u >= 0xd800 && u < 0xe000) {
                u = 0xfffd;
            }
            if (u == 0 || u == 0xfeff)
                continue;
            k += put_utf8(o + k, u);
        }
    }
    *outlen = k;
    return o;
}

/* ID3 genres: "(17)", "17", "(17)Rock" (the text refines the number),
 * "(RX)" remix, "(CR)" cover, or a name. */
static int add_genre(struct media_info *info, const char *g, size_t n)
{
    char buf[256];
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    memcpy(buf, g, n);
    buf[n] = '\0';
    char *s = buf;
    while (*s == '(') {
        char *close = strchr(s, ')');
        if (!close || close - s > 8)
            break;
        *close = '\0';
        const char *name = NULL;
        char *end;
        long v = strtol(s + 1, &end, 10);
        if (end != s + 1 && !*end)
            name = media_id3_genre((int)v);
        else if (!strcmp(s + 1, "RX"))
            name = "Remix";
        else if (!strcmp(s + 1, "CR"))
            name = "Cover";
        s = close + 1;
        if (name && !*s) {
            int r = media_info_add_tag(info, "genre", name);
            if (r < 0)
                return r;
        }
    }
    if (!*s)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (end != s && !*end && media_id3_genre((int)v))
        return media_info_add_tag(info, "genre", media_id3_genre((int)v));
    return media_info_add_tag(info, "genre", s);
}

/* Every string of a text body (ID3v2.4 separates values with NUL; some
 * 2.3 writers do too) as one value of key. */
static int add_strings(struct media_info *info, const char *key, int enc, const uint8_t *p,
                       size_t n, int genre)
{
    while (n > 0) {
        size_t content, used = string_len(enc, p, n, &content), len;
        char *s = to_utf8(enc, p, content, &len);
        if (!s)
            return -ENOMEM;
        int r = genre ? add_genre(info, s, len) : media_info_add_tagn(info, key, s, len);
        free(s);
        if (r < 0)
            return r;
        p += used;
        n -= used;
    }
    return 0;
}

/* One string as a NUL-terminated UTF-8 copy (for TXXX and COMM
 * descriptions); *used bytes consumed. */
static char *one_string(int enc, const uint8_t *p, size_t n, size_t *used)
{
    size_t content, len;
    *used = string_len(enc, p, n, &content);
    char *s = to_utf8(enc, p, content, &len);
    if (s)
        s[len] = '\0';
    return s;
}

/* ---- frames ---- */

/* RVA2: identification, then per channel: type, gain (s16 BE, 1/512 dB),
 * peak bits, peak. Only the master volume (type 1) is ReplayGain. */
static void parse_rva2(struct media_info *info, const uint8_t *p, size_t n)
{
    const uint8_t *z = memchr(p, 0, n);
    if (!z)
        return;
    size_t idlen = (size_t)(z - p);
    int album = idlen == 5 && !strncasecmp((const char *)p, "album", 5);
    if (!album && !(idlen == 5 && !strncasecmp((const char *)p, "track", 5)))
        return;
    size_t o = idlen + 1;
    while (n - o >= 4) {
        int type = p[o];
        double gain = (int16_t)(uint16_t)(p[o + 1] << 8 | p[o + 2]) / 512.0;
        int bits = p[o + 3];
        size_t pb = ((size_t)bits + 7) / 8;
        o += 4;
        if (pb > n - o)
            return;
        double peak = NAN;
        if (bits > 0 && bits <= 32) {
            uint64_t v = 0;
            for (size_t i = 0; i < pb; i++)
                v = v << 8 | p[o + i];
            v >>= pb * 8 - (size_t)bits;
            peak = (double)v / (double)(1ull << (bits - 1));
        }
        o += pb;
        if (type != 1)
            continue;
        double *g = album ? &info->rg.album_gain : &info->rg.track_gain;
        double *pk = album ? &info->rg.album_peak : &info->rg.track_peak;
        if (isnan(*g))
            *g = gain;
        if (isnan(*pk) && !isnan(peak))
            *pk = peak;
        return;
    }
}

static int parse_picture(struct media_info *info, int v22, const uint8_t *p, size_t n)
{
    char mime[64];
    size_t o;
    if (n < 4)
        return 0;
    int enc = p[0];
    if (enc > 3)
        return 0;
    if (v22) {
        /* A three-letter image format instead of a MIME type. */
        snprintf(mime, sizeof(mime), "image/%.3s", (const char *)p + 1);
        for (char *c = mime + 6; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        o = 4;
    } else {
        const uint8_t *z = memchr(p + 1, 0, n - 1);
        if (!z)
            return 0;
        size_t ml = (size_t)(z - p) - 1;
        snprintf(mime, sizeof(mime), "%.*s", (int)(ml < 63 ? ml : 63), (const char *)p + 1);
        o = (size_t)(z - p) + 1;
    }
    if (o >= n)
        return 0;
    int type = p[o++];
    size_t used;
    char *desc = one_string(enc, p + o, n - o, &used);
    if (!desc)
        return -ENOMEM;
    o += used;
    int r = 0;
    if (o < n)
        r = media_info_copy_picture(info, mime[0] ? mime : NULL, type, desc, p + o, n - o);
    free(desc);
    return r;
}

static int frame(struct media_info *info, int flags, int ver, const char *id, const uint8_t *p,
                 size_t n)
{
    int v22 = ver == 2;
    if (n == 0)
        return 0;
    if (!strcmp(id, v22 ? "TXX" : "TXXX")) {
        int enc = p[0];
        size_t used;
        if (enc > 3)
            return 0;
        char *desc = one_string(enc, p + 1, n - 1, &used);
        if (!desc)
            return -ENOMEM;
        int r = desc[0] ? add_strings(info, desc, enc, p + 1 + used, n - 1 - used, 0) : 0;
        free(desc);
        return r;
    }
    if (id[0] == 'T') {
        int enc = p[0];
        if (enc > 3 || !media_tag_known(id))
            return 0; /* unknown text frames are technical (TSSE, TLEN...) */
        int genre = !strcmp(id, v22 ? "TCO" : "TCON");
        return add_strings(info, id, enc, p + 1, n - 1, genre);
    }
    if (!strcmp(id, v22 ? "COM" : "COMM")) {
        int enc = p[0];
        size_t used;
        if (enc > 3 || n < 4)
            return 0;
        char *desc = one_string(enc, p + 4, n - 4, &used);
        if (!desc)
            return -ENOMEM;
        /* Comments with a description are other programs' data (iTunNORM,
         * iTunSMPB...); the one without is the user's. */
        int r = desc[0] ? 0 : add_strings(info, "comment", enc, p + 4 + used, n - 4 - used, 0);
        free(desc);
        return r;
    }
    if (!strcmp(id, v22 ? "UFI" : "UFID")) {
        const uint8_t *z = memchr(p, 0, n);
        if (z && (size_t)(z - p) == 22 && !memcmp(p, "http://musicbrainz.org", 22))
            return media_info_add_tagn(info, "musicbrainz_trackid", (const char *)z + 1,
                                       n - (size_t)(z - p) - 1);
        return 0;
    }
    if (!v22 && !strcmp(id, "RVA2")) {
        parse_rva2(info, p, n);
        return 0;
    }
    if (!strcmp(id, v22 ? "PIC" : "APIC") && (flags & DECODER_WANT_PICTURES))
        return parse_picture(info, v22, p, n);
    return 0;
}

int id3tag_parse_v2(const uint8_t *raw, size_t rawlen, struct media_info *info, int flags)
{
    if (rawlen < 10 || memcmp(raw, "ID3", 3))
        return 0;
    int ver = raw[3], tflags = raw[5];
    size_t size = syncsafe(raw + 6);
    if (ver < 2 || ver > 4 || size > rawlen - 10)
        return 0;
    if (ver == 2 && (tflags & 0x40))
        return 0; /* 2.2 compression: never defined, never used */
    uint8_t *t = malloc(size ? size : 1);
    if (!t)
        return -ENOMEM;
    memcpy(t, raw + 10, size);
    size_t n = size, o = 0;
    if ((tflags & 0x80) && ver < 4)
        n = unsync(t, n);
    if ((tflags & 0x40) && ver >= 3 && n >= 4) {
        size_t ext = ver == 4 ? syncsafe(t) : (size_t)be32(t) + 4;
        o = ext <= n ? ext : n;
    }
    size_t hdr = ver == 2 ? 6 : 10, idlen = ver == 2 ? 3 : 4;
    int frames = 0, r = 0;
    while (n - o >= hdr) {
        const uint8_t *f = t + o;
        char id[5] = "";
        size_t flen;
        int fflags = 0;
        for (size_t i = 0; i < idlen; i++) {
            if (!((f[i] >= 'A' && f[i] <= 'Z') || (f[i] >= '0' && f[i] <= '9')))
                goto done; /* padding, or garbage: the frames are over */
            id[i] = (char)f[i];
        }
        if (ver == 2)
            flen = (size_t)f[3] << 16 | (size_t)f[4] << 8 | f[5];
        else if (ver == 3)
            flen = be32(f + 4);
        else
            flen = syncsafe(f + 4);
        if (ver > 2)
            fflags = f[8] << 8 | f[9];
        o += hdr;
        if (flen > n - o)
            break;
        uint8_t *body = t + o;
        size_t blen = flen;
        o += flen;
        frames++;
        if (ver == 3) {
            if (fflags & 0xc0)
                continue;        /* compressed or encrypted */
            if (fflags & 0x20) { /* group id */
                if (blen < 1)
                    continue;
                body++;
                blen--;
            }
        } else if (ver == 4) {
            if (fflags & 0x0c)
                continue;
            if (fflags & 0x40) {
                if (blen < 1)
                    continue;
                body++;
                blen--;
            }
            if (fflags & 0x01) { /* data length indicator */
                if (blen < 4)
                    continue;
                body += 4;
                blen -= 4;
            }
            if ((fflags & 0x02) || (tflags & 0x80))
                blen = unsync(body, blen);
        }
        r = frame(info, flags, ver, id, body, blen);
        if (r < 0)
            break;
    }
done:
    free(t);
    return r < 0 ? r : frames;
}

static int v1_field(struct media_info *info, const char *key, const uint8_t *f, size_t n)
{
    const uint8_t *z = memchr(f, 0, n);
    if (z)
        n = (size_t)(z - f);
    while (n && f[n - 1] == ' ')
        n--;
    return media_info_add_tagn(info, key, (const char *)f, n);
}

int id3tag_parse_v1(const uint8_t *t, size_t len, struct media_info *info)
{
    if (len < 128 || memcmp(t, "TAG", 3))
        return 0;
    int r = 0;
    r |= v1_field(info, "title", t + 3, 30);
    r |= v1_field(info, "artist", t + 33, 30);
    r |= v1_field(info, "album", t + 63, 30);
    r |= v1_field(info, "date", t + 93, 4);
    /* ID3v1.1: a zero before the last comment byte makes that the track. */
    if (t[125] == 0 && t[126] != 0) {
        char tr[8];
        snprintf(tr, sizeof(tr), "%d", t[126]);
        r |= media_info_add_tag(info, "tracknumber", tr);
        r |= v1_field(info, "comment", t + 97, 28);
    } else {
        r |= v1_field(info, "comment", t + 97, 30);
    }
    const char *g = media_id3_genre(t[127]);
    if (g)
        r |= media_info_add_tag(info, "genre", g);
    return r < 0 ? -ENOMEM : 1;
}
