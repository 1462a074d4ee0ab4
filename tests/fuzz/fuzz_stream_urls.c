/*
 * Fuzz target: the paths of device streams and delegate links, as the HTTP
 * parser hands them over (decoded). Anything must parse or be refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream/api.h"
#include "stream/listener.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *path = malloc(size + 1);
    if (!path)
        return 0;
    memcpy(path, data, size);
    path[size] = '\0';
    struct listener_url lu;
    struct api_delegate_url du;
    listener_parse_path(path, &lu);
    if (api_parse_delegate(path, &du) == 0 && du.action == API_PAUSE_FOR) {
        int seconds;
        api_parse_seconds(du.seconds, &seconds);
    }
    free(path);
    return 0;
}
