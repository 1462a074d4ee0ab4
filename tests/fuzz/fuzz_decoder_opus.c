/*
 * Fuzz target: Ogg Opus through libopusfile, with R128 gains and base64 pictures.
 * The corpus holds small real files made with ffmpeg/mpcenc and tag-heavy
 * ones; see fuzz_decoder.h for what each input goes through.
 */
#include "fuzz_decoder.h"

const char *__lsan_default_suppressions(void);

/* libopusfile 0.12 loses a parsed OpusTags when op_open fails after
 * parsing it (a broken header later in the same stream): a few bytes per
 * broken file, freed by nobody since the library returns no handle. */
const char *__lsan_default_suppressions(void)
{
    return "leak:libopusfile.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decoder(&decoder_opus, data, size);
    return 0;
}
