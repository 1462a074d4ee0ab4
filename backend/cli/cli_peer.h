/*
 * `imes peer add NAME [--new-key]`: a Matriz performer peer. Makes the CouchDB
 * user NAME with the role matriz_peer and a generated key as its password
 * (printed once: CouchDB keeps only its hash), the roster entry peer:NAME
 * (offline until the peer joins imesd), and lets matriz_peer read the main
 * database (the peer follows the roster there through _changes).
 */
#ifndef IMES_CLI_PEER_H
#define IMES_CLI_PEER_H

#include "cli/cli.h"

extern const struct cli_command cli_peer_command;

#endif
