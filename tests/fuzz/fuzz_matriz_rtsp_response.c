/*
 * libFuzzer target for the RTSP client's answer parser (rtp/rtsp_client.h):
 * answers and interleaved frames from a server we do not control. Besides
 * "never crash, never read out of bounds": what it takes is within the
 * input, a message complete at n bytes parses the same with more bytes
 * after it, and fewer bytes never give a different complete message. The
 * URL helpers get the same bytes.
 */
#include "rtp/rtsp_client.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rtsp_response r, again;
    size_t pos = 0;
    for (int msgs = 0; pos < size && msgs < 64; msgs++) {
        int n = rtsp_response_parse(data + pos, size - pos, &r);
        if (n <= 0)
            break;
        if ((size_t)n > size - pos)
            abort();
        /* The same message seen exactly: the same answer. */
        int m = rtsp_response_parse(data + pos, (size_t)n, &again);
        if (m != n || again.status != r.status || again.cseq != r.cseq ||
            again.body_len != r.body_len || again.is_frame != r.is_frame)
            abort();
        /* One byte short: not complete (or, for a body-less head, still not
         * beyond what was there). */
        if (n > 1 && rtsp_response_parse(data + pos, (size_t)n - 1, &again) > n - 1)
            abort();
        if (!r.is_frame && r.body_len &&
            (r.body < (const char *)data + pos ||
             r.body + r.body_len > (const char *)data + pos + n))
            abort();
        pos += (size_t)n;
    }
    char text[512], host[64], url[600];
    size_t k = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, k);
    text[k] = '\0';
    int port;
    if (rtsp_url_split(text, host, sizeof(host), &port) == 0 && (port < 1 || port > 65535))
        abort();
    rtsp_control_url("rtsp://127.0.0.1:8554/stream/", text, url, sizeof(url));
    return 0;
}
