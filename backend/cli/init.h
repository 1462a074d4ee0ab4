/*
 * `imes init`: makes the server ready for IMES, and can be run again at any
 * time (after an upgrade, or to repair): creates _users, <name> and
 * <name>_private if missing, gives both their _security, and pushes the design
 * documents built from couchapp/. Each step compares first and writes only
 * what differs, and says what it did.
 */
#ifndef IMES_INIT_H
#define IMES_INIT_H

#include "cli/cli.h"

extern const struct cli_command init_command;

/* The couchapp folder: explicit (--couchapp), else $IMES_COUCHAPP, else the
 * source tree's couchapp/. Returns a string not to be freed. */
const char *init_couchapp_dir(const char *explicit_dir);

#endif
