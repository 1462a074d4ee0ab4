/*
 * Fuzz target: what a scrobble service answers (scrobble/service.h). The
 * input is the body of an answer; the first byte picks the HTTP status. Both
 * answer readers and the file-document reader must classify it or refuse it,
 * never crash, and keep their messages NUL-terminated within the buffer.
 */
#include <stdint.h>
#include <string.h>

#include "scrobble/service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 400, 401, 403, 404, 429, 500, 503};
    long status = size ? statuses[data[0] % 8] : 200;
    json_error_t jerr;
    json_t *body =
        size ? json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, &jerr) : NULL;
    char msg[64];
    int code;
    enum scrobble_outcome o = scrobble_as_outcome(0, status, body, &code, msg, sizeof(msg));
    if (o > SCROBBLE_REJECTED || strnlen(msg, sizeof(msg)) == sizeof(msg))
        __builtin_trap();
    o = scrobble_lb_outcome(0, status, body, msg, sizeof(msg));
    if (o > SCROBBLE_REJECTED || strnlen(msg, sizeof(msg)) == sizeof(msg))
        __builtin_trap();
    struct scrobble_track t;
    if (scrobble_track_from_file(body, &t) == 0) {
        if (!t.artist[0] || !t.title[0] || !(t.duration >= 0))
            __builtin_trap();
        json_t *p = scrobble_lb_payload(&t, 0);
        json_decref(p);
    }
    json_decref(body);
    return 0;
}
