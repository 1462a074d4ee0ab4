/*
 * Ogg framing of Opus packets for one HTTP listener (RFC 3533, RFC 7845).
 * The channel's ring holds bare Opus packets; each listener wraps them in
 * its own logical stream: its own serial, page numbers from 0, and granule
 * positions counting the samples it got itself, since it joins mid-stream.
 *
 *   m = oggmux_new(serial, OGGMUX_PAGE_SAMPLES);
 *   oggmux_headers(m, hdrs, 2, &out);       // OpusHead page (BOS), OpusTags page
 *   oggmux_packet(m, data, len, 960, &out); // a page when 20 ms are ready
 *
 * Every function appends whole pages to out (the listener's send queue) or
 * nothing: when out would pass its limit, -E2BIG and out unchanged. After
 * -E2BIG or -ENOMEM the muxer may still hold the packet for its next page,
 * so the stream cannot simply go on: the caller drops that listener (a slow
 * reader is dropped alone). The packet bytes are copied once, into out;
 * the CRC is libogg's.
 * Thread: loop (one muxer per listener, no sharing).
 */
#ifndef IMES_OGGMUX_H
#define IMES_OGGMUX_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Samples (48 kHz) a page holds before it goes out: one 20 ms packet.
 * An HTTP listener cannot play a packet before its page is complete, so a
 * page is latency; 20 ms pages cost 27 + 2 bytes per 20 ms (11.6 kbit/s,
 * 9% of 128 kbit/s) against 5.8 kbit/s for 40 ms pages. */
#define OGGMUX_PAGE_SAMPLES 960

struct oggmux;

struct oggmux_header {
    const uint8_t *data;
    size_t len;
};

/* page_samples: a page goes out once its packets hold at least this many
 * samples (0: every packet on its own page). NULL if out of memory. */
struct oggmux *oggmux_new(uint32_t serial, int page_samples);
void oggmux_free(struct oggmux **m);

/* The header pages, granule 0: the first header packet (OpusHead) alone on
 * the first page (BOS), each further one (OpusTags) on its own page, so
 * audio starts on a fresh page as RFC 7845 asks. Call once, first.
 * 0, -EINVAL if called twice, -EMSGSIZE for a packet over 64769 bytes,
 * -E2BIG, -ENOMEM. */
int oggmux_headers(struct oggmux *m, const struct oggmux_header *hdr, int n, struct buf *out);

/* One Opus packet of `samples` samples per channel (48 kHz). Appends a page
 * to out when the page is full by page_samples or by Ogg's 255 segments;
 * otherwise keeps the packet (a copy) for the next page.
 * 0, -EINVAL before the headers, -EMSGSIZE, -E2BIG, -ENOMEM. */
int oggmux_packet(struct oggmux *m, const uint8_t *data, size_t len, int samples, struct buf *out);

/* Puts the packets kept so far on a page now; with eos, that page (or an
 * empty one) ends the stream. 0, -E2BIG, -ENOMEM. */
int oggmux_flush(struct oggmux *m, int eos, struct buf *out);

/* Granule position after the last packet given: samples so far. */
int64_t oggmux_granule(const struct oggmux *m);

#endif
