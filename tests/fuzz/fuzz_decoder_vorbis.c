/*
 * Fuzz target: Ogg Vorbis through libvorbisfile, with Vorbis comments and base64
 * METADATA_BLOCK_PICTURE. The corpus holds small real files made with ffmpeg/mpcenc and tag-heavy
 * ones; see fuzz_decoder.h for what each input goes through.
 */
#include "fuzz_decoder.h"

const char *__lsan_default_suppressions(void);

/* libvorbisfile 1.3.7 loses the serial number list of a chained link whose
 * headers fail to parse (_bisect_forward_serialno returns without freeing
 * what _fetch_headers allocated): 8 bytes per broken file, not ours to
 * free. Everything else must still be leak-free. */
const char *__lsan_default_suppressions(void)
{
    return "leak:_bisect_forward_serialno\nleak:libvorbisfile.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decoder(&decoder_vorbis, data, size);
    return 0;
}
