/*
 * `imes scan`: a one-off scan of the media folders into CouchDB, with a
 * progress bar on a terminal. The same scanner imesd runs at start-up.
 */
#ifndef IMES_CLI_SCAN_H
#define IMES_CLI_SCAN_H

#include "cli/cli.h"

extern const struct cli_command cli_scan_command;

#endif
