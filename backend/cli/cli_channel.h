/*
 * `imes channel add NAME [--replaygain MODE] [--crossfade S]`: the
 * channel:NAME document (state/docs.h), as the web app writes it.
 */
#ifndef IMES_CLI_CHANNEL_H
#define IMES_CLI_CHANNEL_H

#include "cli/cli.h"

extern const struct cli_command cli_channel_command;

#endif
