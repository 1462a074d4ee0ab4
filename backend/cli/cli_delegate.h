/*
 * `imes delegate add NAME --device D [--device D2 ...] [--new-token]`: the
 * delegate:NAME document (the devices it may mute) and its secret token in
 * the private database; prints its pause/unpause URLs.
 */
#ifndef IMES_CLI_DELEGATE_H
#define IMES_CLI_DELEGATE_H

#include "cli/cli.h"

extern const struct cli_command cli_delegate_command;

#endif
