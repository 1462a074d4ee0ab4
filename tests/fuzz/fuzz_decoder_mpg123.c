/*
 * Fuzz target: MP3 through libmpg123, with our ID3v2/ID3v1 and APEv2 readers (also fed the bytes
 * directly, where they get far more executions than behind a valid MP3 frame). The corpus holds
 * small real files made with ffmpeg/mpcenc and tag-heavy ones; see fuzz_decoder.h for what each
 * input goes through.
 */
#include "fuzz_decoder.h"
#include "media/apetag.h"
#include "media/id3tag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decoder(&decoder_mpg123, data, size);

    /* The tag readers on their own: the first bytes as item count and
     * version, the rest as items; the whole input as an ID3 tag. */
    struct media_info info;
    media_info_init(&info);
    if (size >= 2)
        apetag_parse_items(data + 2, size - 2, data[0], data[1] & 1 ? 2000 : 1000, &info,
                           DECODER_WANT_PICTURES);
    id3tag_parse_v2(data, size, &info, DECODER_WANT_PICTURES);
    id3tag_parse_v1(data, size, &info);
    char *s = json_dumps(info.tags, 0);
    if (!s)
        abort();
    free(s);
    media_info_clear(&info);
    return 0;
}
