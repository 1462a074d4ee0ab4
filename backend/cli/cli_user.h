/*
 * `imes user add NAME [--admin]`: a CouchDB login (_users) with the IMES
 * roles, and the user's own settings document user:NAME in the main database.
 */
#ifndef IMES_CLI_USER_H
#define IMES_CLI_USER_H

#include "cli/cli.h"

extern const struct cli_command cli_user_command;

#endif
