/*
 * Fuzz target: FLAC and Ogg FLAC through libFLAC, with Vorbis comments and PICTURE blocks.
 * The corpus holds small real files made with ffmpeg/mpcenc and tag-heavy
 * ones; see fuzz_decoder.h for what each input goes through.
 */
#include "fuzz_decoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decoder(&decoder_flac, data, size);
    return 0;
}
