/*
 * APEv2/APEv1 tag reader for the MP3 and Musepack plugins (libmpg123 skips
 * APE tags, libmpcdec ignores them). Layout, from the end of the file:
 * [header 32] items... footer 32 [ID3v1 128]; the footer's size counts the
 * items and the footer, not the header. Each item: value length (LE32),
 * flags (LE32), key (ASCII, NUL-terminated), value.
 */
#include "media/apetag.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int read_at(int fd, void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EINVAL; /* shorter than its own header says */
        done += (size_t)n;
    }
    return 0;
}

static int footer_at(int fd, off_t end, struct apetag_loc *loc)
{
    uint8_t f[APETAG_FOOTER_LEN];

    if (end < APETAG_FOOTER_LEN)
        return 0;
    int r = read_at(fd, f, sizeof(f), end - APETAG_FOOTER_LEN);
    if (r < 0)
        return r == -EINVAL ? 0 : r;
    if (memcmp(f, "APETAGEX", 8))
        return 0;
    uint32_t version = le32(f + 8), size = le32(f + 12), count = le32(f + 16),
             tflags = le32(f + 20);
    /* Bit 29 set means this is a header, not a footer. */
    if ((version != 1000 && version != 2000) || (tflags & (1u << 29)) || size < APETAG_FOOTER_LEN ||
        size > APETAG_MAX_LEN || (off_t)size > end)
        return 0;
    int has_header = version == 2000 && (tflags & (1u << 31));
    off_t start = end - (off_t)size - (has_header ? APETAG_FOOTER_LEN : 0);
    if (start < 0)
        return 0;
    loc->start = start;
    loc->len = end - start;
    loc->items = end - (off_t)size;
    loc->items_len = size - APETAG_FOOTER_LEN;
    loc->count = count;
    loc->version = version;
    return 1;
}

int apetag_find(int fd, off_t end, struct apetag_loc *loc)
{
    int r = footer_at(fd, end, loc);
    if (r != 0)
        return r;
    /* ID3v1 comes last when both are there. */
    uint8_t tag[3];
    if (end >= 128 && read_at(fd, tag, 3, end - 128) == 0 && !memcmp(tag, "TAG", 3))
        return footer_at(fd, end - 128, loc);
    return 0;
}

static int cover_type(const char *key)
{
    if (!strcasecmp(key, "Cover Art (Front)"))
        return 3;
    if (!strcasecmp(key, "Cover Art (Back)"))
        return 4;
    return 0;
}

int apetag_parse_items(const uint8_t *p, size_t n, uint32_t count, uint32_t version,
                       struct media_info *info, int flags)
{
    size_t o = 0;
    uint32_t i;

    for (i = 0; i < count; i++) {
        if (n - o < 8 + 2)
            break;
        uint32_t vlen = le32(p + o), iflags = le32(p + o + 4);
        o += 8;
        const uint8_t *key = p + o;
        const uint8_t *nul = memchr(key, '\0', n - o);
        if (!nul || nul == key || nul - key > 255)
            break;
        size_t klen = (size_t)(nul - key);
        o += klen + 1;
        if (vlen > n - o)
            break;
        const uint8_t *v = p + o;
        o += vlen;

        /* Keys are printable ASCII; anything else means we lost the thread. */
        int bad = 0;
        for (size_t k = 0; k < klen; k++)
            bad |= key[k] < 0x20 || key[k] > 0x7e;
        if (bad)
            break;
        const char *ks = (const char *)key;
        int kind = version == 2000 ? (int)((iflags >> 1) & 3) : 0;

        if (!strncasecmp(ks, "Cover Art", 9)) {
            if (kind != 1 || !(flags & DECODER_WANT_PICTURES))
                continue;
            /* A file name, NUL, then the image. */
            const uint8_t *z = memchr(v, '\0', vlen);
            if (!z)
                continue;
            size_t off = (size_t)(z - v) + 1;
            int r = media_info_copy_picture(info, NULL, cover_type(ks), NULL, v + off, vlen - off);
            if (r < 0)
                return r;
            continue;
        }
        if (kind != 0)
            continue; /* binary or a link: not text */
        /* Several values of one key are separated by NUL. */
        size_t s = 0;
        while (s < vlen) {
            const uint8_t *z = memchr(v + s, '\0', vlen - s);
            size_t e = z ? (size_t)(z - v) : vlen;
            if (e > s) {
                int r = media_info_add_tagn(info, ks, (const char *)v + s, e - s);
                if (r < 0)
                    return r;
            }
            s = e + 1;
        }
    }
    return (int)i;
}

int apetag_read(int fd, struct media_info *info, int flags)
{
    struct apetag_loc loc;
    struct stat st;
    /* fstat, not lseek: the fd may be a decoding library's, mid-read. */
    if (fstat(fd, &st) < 0)
        return -errno;
    int r = apetag_find(fd, st.st_size, &loc);
    if (r <= 0)
        return r;
    if (loc.items_len == 0)
        return 1;
    uint8_t *buf = malloc(loc.items_len);
    if (!buf)
        return -ENOMEM;
    r = read_at(fd, buf, loc.items_len, loc.items);
    if (r == 0) {
        r = apetag_parse_items(buf, loc.items_len, loc.count, loc.version, info, flags);
        if (r >= 0) {
            if ((uint32_t)r < loc.count)
                LOG(E_DEBUG, L_MEDIA, "APE tag: %d of %u items readable", r, loc.count);
            r = 1;
        }
    } else if (r == -EINVAL) {
        r = 0;
    }
    free(buf);
    return r;
}
