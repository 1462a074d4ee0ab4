/*
 * Fuzz target: MP4 and ASF through libavformat/libavcodec/libswresample, with tags and attached
 * pictures. The corpus holds small real files made with ffmpeg/mpcenc and tag-heavy ones; see
 * fuzz_decoder.h for what each input goes through.
 */
#include "fuzz_decoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decoder(&decoder_avcodec, data, size);
    return 0;
}
