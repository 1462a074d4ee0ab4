/*
 * WAV files for the Matriz file backend: reading PCM (16, 24, 32-bit
 * integer or 32-bit float, any rate, 1 or 2 channels) as float, writing
 * 16-bit PCM stereo. The parser is pure (wav_parse_header) and fuzzed.
 * Thread: any (one file per thread).
 */
#ifndef IMES_MATRIZ_WAV_H
#define IMES_MATRIZ_WAV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct wav_format {
    int rate;
    int channels;
    int bits;           /* 16, 24, 32 */
    int is_float;       /* WAVE_FORMAT_IEEE_FLOAT (32 bits) */
    size_t data_offset; /* where the samples start */
    uint64_t data_len;  /* bytes of samples (as the header says, clamped to the file) */
};

/* Parses a RIFF/WAVE header from the first len bytes of a file of
 * file_len bytes. 0, -EINVAL (not a WAV file we read), -ENOTSUP (a format
 * other than the above), -EAGAIN (len too short for the header: read more). */
int wav_parse_header(const uint8_t *data, size_t len, uint64_t file_len, struct wav_format *out);

struct wav_reader;
/* Opens path; NULL with errno set (EINVAL/ENOTSUP for a file we cannot read). */
struct wav_reader *wav_reader_open(const char *path, struct wav_format *fmt);
/* Reads up to frames frames as interleaved float (channels as in the file).
 * Returns frames read; 0 at the end; <0 on error. */
long wav_reader_read(struct wav_reader *r, float *out, size_t frames);
int wav_reader_rewind(struct wav_reader *r);
void wav_reader_close(struct wav_reader **r);

struct wav_writer;
/* Creates path (truncating): 16-bit PCM stereo at rate. NULL with errno. */
struct wav_writer *wav_writer_open(const char *path, int rate);
/* Writes frames of left and right (clipped to ±1). 0 or -errno. */
int wav_writer_write(struct wav_writer *w, const float *l, const float *r, size_t frames);
/* Frames written so far. */
uint64_t wav_writer_frames(const struct wav_writer *w);
/* Rewrites the header's sizes for what is written so far (and flushes). */
int wav_writer_sync(struct wav_writer *w);
void wav_writer_close(struct wav_writer **w);

#endif
