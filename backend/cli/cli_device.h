/*
 * `imes device add NAME [--aggregate A] [--codec mp3|opus] [--new-token]`:
 * the device:NAME document (the room it is in, its codec) and its secret
 * token in the private database; prints the device's stream URLs.
 */
#ifndef IMES_CLI_DEVICE_H
#define IMES_CLI_DEVICE_H

#include "cli/cli.h"

extern const struct cli_command cli_device_command;

#endif
