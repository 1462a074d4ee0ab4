/*
 * `imes aggregate add NAME [--channel C]` and `imes aggregate join AGGREGATE
 * USER`: a room (aggregate:NAME, the channel it plays) and who is in it
 * (user:USER.aggregate), the same document writes the web app makes.
 */
#ifndef IMES_CLI_AGGREGATE_H
#define IMES_CLI_AGGREGATE_H

#include "cli/cli.h"

extern const struct cli_command cli_aggregate_command;

#endif
