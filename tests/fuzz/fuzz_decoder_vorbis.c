/*
 * Fuzz target: Ogg Vorbis through libvorbisfile, with Vorbis comments and base64
 * METADATA_BLOCK_PICTURE. The corpus holds small real files made with ffmpeg/mpcenc and tag-heavy
 * ones; see fuzz_decoder.h for what each input goes through.
 */
#include "fuzz_decoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decoder(&decoder_vorbis, data, size);
    return 0;
}
