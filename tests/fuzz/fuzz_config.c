/*
 * Fuzz target: config.yaml parsing through the option table. Any input must
 * either load or fail with a message naming the file; never crash or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    char err[CONFIG_ERRLEN];
    config_defaults(&cfg);
    err[0] = '\0';
    if (config_load_string(&cfg, "fuzz.yaml", (const char *)data, size, err, sizeof(err)) < 0 &&
        strncmp(err, "fuzz.yaml:", 10) != 0 && strncmp(err, "fuzz.yaml: ", 11) != 0) {
        fprintf(stderr, "error without a location: %s\n", err);
        __builtin_trap();
    }
    config_free(&cfg);
    return 0;
}
