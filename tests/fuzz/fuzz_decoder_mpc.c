/*
 * Fuzz target: Musepack SV7/SV8 through libmpcdec, with the APEv2 tag and header ReplayGain.
 * The corpus holds small real files made with ffmpeg/mpcenc and tag-heavy
 * ones; see fuzz_decoder.h for what each input goes through.
 */
#include "fuzz_decoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decoder(&decoder_mpc, data, size);
    return 0;
}
