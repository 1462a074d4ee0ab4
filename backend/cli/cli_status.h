/*
 * `imes status`: is CouchDB there (and which), do both databases exist and
 * how full are they (documents per type, from the by_type view), what imesd
 * last said about itself (status:backend:imesd) and whether its /healthz
 * answers at backend.public.
 */
#ifndef IMES_CLI_STATUS_H
#define IMES_CLI_STATUS_H

#include "cli/cli.h"

extern const struct cli_command cli_status_command;

#endif
