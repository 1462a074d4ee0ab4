/*
 * The encoder registry: the codecs a channel can be streamed in, looked up
 * by the names that config.yaml (stream.codecs) and device documents use.
 * The plugins themselves are enc_lame.c and enc_opus.c.
 */
#include "media/encoder.h"

#include <string.h>

const struct encoder_ops *const encoder_plugins[] = {
    &encoder_mp3,
    &encoder_opus,
    NULL,
};

const struct encoder_ops *encoder_by_name(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; encoder_plugins[i]; i++)
        if (!strcmp(encoder_plugins[i]->name, name))
            return encoder_plugins[i];
    return NULL;
}
