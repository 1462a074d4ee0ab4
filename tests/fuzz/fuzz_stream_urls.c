/*
 * Fuzz target: the paths of device streams (/device/, /listen/) and delegate
 * links, as the HTTP parser hands them over (decoded), and personal device
 * names made from user names. Anything must parse or be refused.
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
    enum listener_codec codec;
    if (listener_parse_listen_path(path, &codec) < 0) {
        /* a user name from a session: any string is refused or fits */
        char name[65];
        listener_personal_device(path, name, sizeof(name));
    }
    if (api_parse_delegate(path, &du) == 0 && du.action == API_PAUSE_FOR) {
        int seconds;
        api_parse_seconds(du.seconds, &seconds);
    }
    free(path);
    return 0;
}
