/*
 * ICY metadata interleaving (see icy.h). A listener's state is two counters,
 * so 2,000 MP3 listeners share one prepared block and pay only for copying
 * it when it changes.
 * Thread: loop.
 */
#include "stream/icy.h"

#include <errno.h>
#include <string.h>

#define ICY_PREFIX "StreamTitle='"
#define ICY_SUFFIX "';"
/* U+2019 RIGHT SINGLE QUOTATION MARK, the typographic apostrophe. */
#define ICY_APOSTROPHE "\xe2\x80\x99"

void icy_meta_init(struct icy_meta *m)
{
    m->gen = 0;
    m->len = 1;
    m->block[0] = 0;
}

int icy_meta_set(struct icy_meta *m, const char *title)
{
    uint8_t b[1 + ICY_META_MAX];
    const size_t room = ICY_META_MAX - (sizeof(ICY_PREFIX) - 1) - (sizeof(ICY_SUFFIX) - 1);
    uint8_t *t = b + 1 + sizeof(ICY_PREFIX) - 1;
    size_t n = 0;
    memcpy(b + 1, ICY_PREFIX, sizeof(ICY_PREFIX) - 1);
    for (const unsigned char *s = (const unsigned char *)(title ? title : ""); *s; s++) {
        size_t need = *s == '\'' ? 3 : 1;
        if (n + need > room) {
            /* Cut before the character that does not fit, not inside it. */
            if ((*s & 0xc0) == 0x80) {
                while (n > 0 && (t[n - 1] & 0xc0) == 0x80)
                    n--;
                if (n > 0 && t[n - 1] >= 0xc0)
                    n--;
            }
            break;
        }
        if (*s == '\'')
            memcpy(t + n, ICY_APOSTROPHE, 3);
        else
            t[n] = *s < 0x20 || *s == 0x7f ? ' ' : *s;
        n += need;
    }
    memcpy(t + n, ICY_SUFFIX, sizeof(ICY_SUFFIX) - 1);
    size_t len = sizeof(ICY_PREFIX) - 1 + n + sizeof(ICY_SUFFIX) - 1;
    size_t blocks = (len + 15) / 16;
    b[0] = (uint8_t)blocks;
    memset(b + 1 + len, 0, blocks * 16 - len);
    size_t total = 1 + blocks * 16;
    if (m->gen && m->len == total && !memcmp(m->block, b, total))
        return 0;
    memcpy(m->block, b, total);
    m->len = total;
    m->gen++;
    return 1;
}

void icy_init(struct icy *y, size_t metaint)
{
    y->metaint = metaint ? metaint : ICY_METAINT;
    y->left = y->metaint;
    y->gen_sent = 0;
}

static const uint8_t zero_block = 0;

int icy_write(struct icy *y, const struct icy_meta *m, const uint8_t *data, size_t len,
              struct buf *out)
{
    /* How much this call appends, so that it appends all of it or nothing. */
    size_t total = len;
    if (len >= y->left) {
        size_t points = 1 + (len - y->left) / y->metaint;
        size_t first = m->gen != y->gen_sent ? m->len : 1;
        total += first + (points - 1);
    }
    if (total > out->max - out->len)
        return -E2BIG;
    size_t start = out->len;
    struct icy saved = *y;
    while (len) {
        size_t n = len < y->left ? len : y->left;
        int r = buf_append(out, data, n);
        if (r < 0)
            goto fail;
        data += n;
        len -= n;
        y->left -= n;
        if (y->left)
            break;
        if (m->gen != y->gen_sent)
            r = buf_append(out, m->block, m->len);
        else
            r = buf_append(out, &zero_block, 1);
        if (r < 0)
            goto fail;
        y->gen_sent = m->gen;
        y->left = y->metaint;
    }
    return 0;
fail:
    out->len = start;
    if (out->data)
        out->data[start] = '\0';
    *y = saved;
    return -ENOMEM;
}
