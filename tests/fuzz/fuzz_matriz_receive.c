/*
 * libFuzzer target for a Matriz link's receive path (matriz/rx.h: RTP
 * parsing, the jitter buffer, Opus and L16/L24 decoding, loss concealment)
 * as it meets datagrams from the network.
 *
 * The input is a script: a first byte picks the format (Opus, L16 stereo,
 * L24 mono), then records of [length: 2 bytes][time step: 1 byte][bytes],
 * each a datagram arriving step/4 ms after the one before; every few
 * datagrams the listener pulls a period of audio. Every output sample must
 * be finite and within [-2, 2]. The same datagrams also go through
 * rtp_parse/rtcp_parse on their own, and the whole input through the WAV
 * header parser of the file backend.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "matriz/rx.h"
#include "matriz/wav.h"
#include "rtp/rtcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct wav_format wf;
    wav_parse_header(data, size, size, &wf);

    struct rx_options o = {.max_ms = 40, .ring = 64};
    switch (data[0] % 3) {
    case 0:
        rtp_format_default(&o.fmt, RTP_ENC_OPUS, 48000, 2);
        break;
    case 1:
        rtp_format_default(&o.fmt, RTP_ENC_L16, 48000, 2);
        break;
    default:
        rtp_format_default(&o.fmt, RTP_ENC_L24, 48000, 1);
        break;
    }
    struct rx *rx = rx_new(&o);
    if (!rx)
        abort();
    float l[128], r[128];
    double t = 1000.0, listen = 1000.0;
    size_t pos = 1;
    for (int n = 0; pos + 3 <= size && n < 2000; n++) {
        size_t len = (size_t)data[pos] << 8 | data[pos + 1];
        t += data[pos + 2] / 4000.0;
        pos += 3;
        if (len > size - pos)
            len = size - pos;
        struct rtp_packet p;
        struct rtcp_info ri;
        rtp_parse(data + pos, len, &p);
        rtcp_parse(data + pos, len, &ri);
        rx_push(rx, data + pos, len, t);
        pos += len;
        if (n % 3 == 2) {
            while (listen < t) {
                rx_pull(rx, l, r, 128, listen);
                for (int i = 0; i < 128; i++)
                    if (!isfinite(l[i]) || !isfinite(r[i]) || fabsf(l[i]) > 2 || fabsf(r[i]) > 2)
                        abort();
                listen += 128 / 48000.0;
            }
        }
    }
    struct rx_stats st;
    rx_get_stats(rx, &st);
    rx_free(&rx);
    return 0;
}
