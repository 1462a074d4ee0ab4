/*
 * `imes peer add` (see cli_peer.h). The key is a token (core/token.h) used as
 * the CouchDB password of the peer's user: the peer joins imesd with Basic
 * credentials NAME:KEY and reads the roster with the same. Re-adding a peer
 * keeps its key (which cannot be shown again) unless --new-key replaces it;
 * an existing user without the role matriz_peer is never turned into a peer.
 */
#include "cli/cli_peer.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/token.h"
#include "couch/couch.h"
#include "state/auth.h"

#define ROLE "matriz_peer"

static const char peer_usage[] =
    "usage: imes [-c FILE] peer add NAME [--new-key]\n"
    "\n"
    "Makes NAME a Matriz peer: the CouchDB user NAME with the role matriz_peer\n"
    "and a generated key as its password, and the roster entry peer:NAME. The\n"
    "key is printed once (only its hash is stored): put it into the peer's\n"
    "peer.yaml. Re-adding keeps the key unless --new-key replaces it.\n"
    "\n"
    "  --new-key   make a new key (the old one stops working)\n"
    "  -h, --help  this help\n";

static const struct cli_command add_command = {.name = "peer add", .usage = peer_usage};

struct login_edit {
    const char *name;
    const char *key; /* NULL: keep the password */
    bool refused;
};

static int login_edit(json_t *doc, bool existed, void *arg)
{
    struct login_edit *le = arg;
    json_t *roles = json_object_get(doc, "roles");
    if (existed && !auth_has_role(roles, ROLE)) {
        le->refused = true;
        fprintf(stderr, "imes peer add: %s is a user but not a Matriz peer; not changed\n",
                le->name);
        return -1;
    }
    if (existed && !le->key)
        return 0;
    if (!json_is_array(roles)) {
        roles = json_array();
        json_object_set_new(doc, "roles", roles);
    }
    if (!auth_has_role(roles, ROLE))
        json_array_append_new(roles, json_string(ROLE));
    json_object_set_new(doc, "name", json_string(le->name));
    json_object_set_new(doc, "type", json_string("user"));
    json_object_set_new(doc, "password", json_string(le->key));
    return 1;
}

static int roster_edit(json_t *doc, bool existed, void *arg)
{
    const char *name = arg;
    if (existed)
        return 0;
    json_object_set_new(doc, "type", json_string("peer"));
    json_object_set_new(doc, "name", json_string(name));
    json_object_set_new(doc, "online", json_false());
    return 1;
}

static int peer_add(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"new-key", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool renew = false;
    char id[128], key[TOKEN_HEX_LEN + 1];
    struct login_edit le = {0};
    const char *name;
    int c, r;

    optind = 0;
    while ((c = cli_getopt(&add_command, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'n':
            renew = true;
            break;
        case 'h':
            fputs(peer_usage, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if ((r = cli_name_arg(&add_command, "peer", argc, argv, &name)) != 0)
        return r;
    if ((r = cli_connect(cli, NULL)) != 0)
        return r;

    snprintf(id, sizeof(id), "org.couchdb.user:%s", name);
    /* A new user always gets a key; an existing peer only with --new-key. */
    json_t *existing = NULL;
    long st = cli_get(cli, "_users", id, &existing);
    json_decref(existing);
    if (st != 200 && st != 404)
        return cli_fail(st, NULL, "GET _users/%s:", id);
    if (st == 404 || renew) {
        if ((r = token_generate(key, sizeof(key))) < 0) {
            fprintf(stderr, "imes peer add: cannot make a key: getrandom: %s\n", strerror(-r));
            return CLI_EXIT_FAIL;
        }
        le.key = key;
    }
    le.name = name;
    r = cli_update_doc(cli, "_users", id, login_edit, &le, NULL);
    if (r < 0) {
        explicit_bzero(key, sizeof(key));
        return le.refused ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    printf("peer %s %s (role %s)\n", name,
           r == CLI_DOC_CREATED   ? "created"
           : r == CLI_DOC_UPDATED ? "updated"
                                  : "exists",
           ROLE);

    snprintf(id, sizeof(id), "peer:%s", name);
    if (cli_update_doc(cli, cli->db, id, roster_edit, (void *)name, NULL) < 0) {
        explicit_bzero(key, sizeof(key));
        return CLI_EXIT_FAIL;
    }
    if (le.key)
        printf("key %s\n", key);
    else
        printf("key kept (shown only when made; --new-key makes a new one)\n");
    printf("imesd %s\n", cli->cfg.backend.public_url ? cli->cfg.backend.public_url : "");
    explicit_bzero(key, sizeof(key));
    return CLI_EXIT_OK;
}

static int peer_run(struct cli *cli, int argc, char **argv)
{
    static const struct cli_subcommand subs[] = {{"add", peer_add}, {NULL, NULL}};
    return cli_run_subcommand(cli, &cli_peer_command, subs, argc, argv);
}

const struct cli_command cli_peer_command = {
    .name = "peer",
    .summary = "peer add NAME [--new-key]: a Matriz performer site and its key",
    .usage = peer_usage,
    .run = peer_run,
};
