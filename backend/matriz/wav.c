/*
 * WAV reading and writing (see wav.h). Only what Matriz needs: canonical
 * RIFF/WAVE with a fmt chunk (PCM or IEEE float, WAVE_FORMAT_EXTENSIBLE
 * with either subformat) and a data chunk; other chunks are skipped.
 */
#include "matriz/wav.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

int wav_parse_header(const uint8_t *d, size_t len, uint64_t file_len, struct wav_format *f)
{
    memset(f, 0, sizeof(*f));
    if (len < 12)
        return len < file_len ? -EAGAIN : -EINVAL;
    if (memcmp(d, "RIFF", 4) != 0 || memcmp(d + 8, "WAVE", 4) != 0)
        return -EINVAL;
    size_t pos = 12;
    int have_fmt = 0;
    for (;;) {
        if (pos + 8 > len)
            return pos + 8 <= file_len && len < file_len ? -EAGAIN : -EINVAL;
        uint32_t size = le32(d + pos + 4);
        const uint8_t *body = d + pos + 8;
        if (memcmp(d + pos, "fmt ", 4) == 0) {
            if (size < 16)
                return -EINVAL;
            if (pos + 8 + 16 > len)
                return -EAGAIN;
            unsigned tag = le16(body);
            f->channels = le16(body + 2);
            f->rate = (int)le32(body + 4);
            f->bits = le16(body + 14);
            if (tag == 0xfffe) { /* WAVE_FORMAT_EXTENSIBLE: the subformat's tag */
                if (size < 40)
                    return -EINVAL;
                if (pos + 8 + 26 > len)
                    return -EAGAIN;
                tag = le16(body + 24);
            }
            if (tag == 3)
                f->is_float = 1;
            else if (tag != 1)
                return -ENOTSUP;
            if (f->channels < 1 || f->channels > 2 || f->rate < 8000 || f->rate > 384000)
                return -ENOTSUP;
            if (f->is_float ? f->bits != 32 : (f->bits != 16 && f->bits != 24 && f->bits != 32))
                return -ENOTSUP;
            have_fmt = 1;
        } else if (memcmp(d + pos, "data", 4) == 0) {
            if (!have_fmt)
                return -EINVAL;
            f->data_offset = pos + 8;
            uint64_t avail = file_len > f->data_offset ? file_len - f->data_offset : 0;
            /* A header written before the end (0 or 0xffffffff) means "to the end". */
            f->data_len = size == 0 || size == 0xffffffffu || size > avail ? avail : size;
            size_t frame = (size_t)f->channels * (size_t)(f->bits / 8);
            f->data_len -= f->data_len % frame;
            return 0;
        }
        uint64_t next = (uint64_t)pos + 8 + size + (size & 1);
        if (next > file_len || next > SIZE_MAX)
            return -EINVAL;
        pos = (size_t)next;
    }
}

struct wav_reader {
    FILE *f;
    struct wav_format fmt;
    uint64_t left;
    uint8_t *raw;
    size_t raw_cap;
};

struct wav_reader *wav_reader_open(const char *path, struct wav_format *fmt)
{
    struct wav_reader *r = calloc(1, sizeof(*r));
    uint8_t head[4096];
    struct stat st;
    if (!r)
        return NULL;
    if (!(r->f = fopen(path, "rb")) || fstat(fileno(r->f), &st) < 0)
        goto fail;
    size_t n = fread(head, 1, sizeof(head), r->f);
    int e = wav_parse_header(head, n, (uint64_t)st.st_size, &r->fmt);
    if (e < 0) {
        errno = e == -EAGAIN ? EINVAL : -e;
        goto fail;
    }
    if (fseek(r->f, (long)r->fmt.data_offset, SEEK_SET) < 0)
        goto fail;
    r->left = r->fmt.data_len;
    *fmt = r->fmt;
    return r;
fail : {
    int saved = errno;
    wav_reader_close(&r);
    errno = saved;
    return NULL;
}
}

long wav_reader_read(struct wav_reader *r, float *out, size_t frames)
{
    size_t bps = (size_t)r->fmt.bits / 8, fsz = bps * (size_t)r->fmt.channels;
    uint64_t can = r->left / fsz;
    if (frames > can)
        frames = (size_t)can;
    if (frames == 0)
        return 0;
    if (r->raw_cap < frames * fsz) {
        uint8_t *p = realloc(r->raw, frames * fsz);
        if (!p)
            return -ENOMEM;
        r->raw = p;
        r->raw_cap = frames * fsz;
    }
    size_t got = fread(r->raw, fsz, frames, r->f);
    r->left -= got * fsz;
    size_t n = got * (size_t)r->fmt.channels;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = r->raw + i * bps;
        if (r->fmt.is_float) {
            uint32_t u = le32(s);
            float v;
            memcpy(&v, &u, 4);
            out[i] = v;
        } else if (bps == 2) {
            out[i] = (float)(int16_t)le16(s) / 32768.f;
        } else if (bps == 3) {
            int32_t v =
                (int32_t)((uint32_t)s[0] << 8 | (uint32_t)s[1] << 16 | (uint32_t)s[2] << 24);
            out[i] = (float)(v / 2147483648.0);
        } else {
            out[i] = (float)((int32_t)le32(s) / 2147483648.0);
        }
    }
    return (long)got;
}

int wav_reader_rewind(struct wav_reader *r)
{
    if (fseek(r->f, (long)r->fmt.data_offset, SEEK_SET) < 0)
        return -errno;
    r->left = r->fmt.data_len;
    return 0;
}

void wav_reader_close(struct wav_reader **rp)
{
    struct wav_reader *r = *rp;
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    free(r->raw);
    free(r);
    *rp = NULL;
}

struct wav_writer {
    FILE *f;
    int rate;
    uint64_t bytes;
    int16_t *buf;
    size_t cap;
};

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void header(uint8_t h[44], int rate, uint64_t bytes)
{
    uint32_t data = bytes > 0xffffffffu - 36 ? 0xffffffffu - 36 : (uint32_t)bytes;
    memcpy(h, "RIFF", 4);
    put32(h + 4, 36 + data);
    memcpy(h + 8, "WAVEfmt ", 8);
    put32(h + 16, 16);
    h[20] = 1, h[21] = 0; /* PCM */
    h[22] = 2, h[23] = 0; /* stereo */
    put32(h + 24, (uint32_t)rate);
    put32(h + 28, (uint32_t)rate * 4);
    h[32] = 4, h[33] = 0;  /* block align */
    h[34] = 16, h[35] = 0; /* bits */
    memcpy(h + 36, "data", 4);
    put32(h + 40, data);
}

struct wav_writer *wav_writer_open(const char *path, int rate)
{
    struct wav_writer *w = calloc(1, sizeof(*w));
    uint8_t h[44];
    if (!w)
        return NULL;
    w->rate = rate;
    header(h, rate, 0);
    if (!(w->f = fopen(path, "wb")) || fwrite(h, 1, 44, w->f) != 44) {
        int saved = errno;
        if (w->f)
            fclose(w->f);
        free(w);
        errno = saved;
        return NULL;
    }
    return w;
}

int wav_writer_write(struct wav_writer *w, const float *l, const float *r, size_t frames)
{
    if (w->cap < frames * 2) {
        int16_t *p = realloc(w->buf, frames * 2 * sizeof(*p));
        if (!p)
            return -ENOMEM;
        w->buf = p;
        w->cap = frames * 2;
    }
    for (size_t i = 0; i < frames; i++) {
        for (int c = 0; c < 2; c++) {
            float v = (c ? r : l)[i] * 32767.f;
            v = v > 32767.f ? 32767.f : v < -32768.f ? -32768.f : v;
            int16_t s = (int16_t)(v >= 0 ? v + 0.5f : v - 0.5f);
            uint8_t *b = (uint8_t *)&w->buf[2 * i + c];
            b[0] = (uint8_t)s;
            b[1] = (uint8_t)((uint16_t)s >> 8);
        }
    }
    if (fwrite(w->buf, 4, frames, w->f) != frames)
        return -errno;
    w->bytes += frames * 4;
    return 0;
}

uint64_t wav_writer_frames(const struct wav_writer *w)
{
    return w->bytes / 4;
}

int wav_writer_sync(struct wav_writer *w)
{
    uint8_t h[44];
    header(h, w->rate, w->bytes);
    long pos = ftell(w->f);
    if (pos < 0 || fseek(w->f, 0, SEEK_SET) < 0 || fwrite(h, 1, 44, w->f) != 44 ||
        fseek(w->f, pos, SEEK_SET) < 0 || fflush(w->f) != 0)
        return -errno;
    return 0;
}

void wav_writer_close(struct wav_writer **wp)
{
    struct wav_writer *w = *wp;
    if (!w)
        return;
    wav_writer_sync(w);
    fclose(w->f);
    free(w->buf);
    free(w);
    *wp = NULL;
}
