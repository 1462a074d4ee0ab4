/*
 * Fuzz target: the documents users write (channel, entry, aggregate, user,
 * device, delegate), as imesd receives them from the changes feed. The input
 * is a JSON object; each parser of state/docs.h must accept it or refuse it
 * with a message naming the field, never crash, and fill its struct fully.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "state/docs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return 0;
    }
    char err[DOCS_ERR_MAX];
    struct docs_channel c;
    struct docs_entry e;
    struct docs_aggregate a;
    struct docs_user u;
    struct docs_device d;
    struct docs_delegate g;
    docs_channel_parse(doc, &c, err, sizeof(err));
    docs_entry_parse(doc, &e, err, sizeof(err));
    docs_aggregate_parse(doc, &a, err, sizeof(err));
    docs_user_parse(doc, &u, err, sizeof(err));
    docs_device_parse(doc, &d, err, sizeof(err));
    if (docs_delegate_parse(doc, &g, err, sizeof(err)) == 0 && g.ndevices > DOCS_DEVICES_MAX)
        __builtin_trap();
    docs_delegate_clear(&g);
    const char *id = json_string_value(json_object_get(doc, "_id"));
    if (id) {
        char playlist[DOCS_PLAYLIST_MAX + 1], uid[DOCS_UID_LEN + 1];
        struct docs_playlist p;
        if (docs_entry_id_parse(id, playlist, uid) == 0)
            docs_playlist_parse(playlist, &p);
    }
    json_decref(doc);
    return 0;
}
