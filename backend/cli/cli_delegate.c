/*
 * `imes delegate add` (see cli_delegate.h). The --device list given is the
 * delegate's whole list: re-adding with other devices replaces it. The token
 * is kept unless --new-token. A device that does not exist (yet) is accepted
 * with a note, so delegates and devices can be set up in either order.
 */
#include "cli/cli_delegate.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "couch/couch.h"

/* A delegate mutes the devices of a few rooms; hundreds is a typo loop. */
#define DELEGATE_DEVICES_MAX 256

static const char delegate_usage[] =
    "usage: imes [-c FILE] delegate add NAME --device D [--device D2 ...] [--new-token]\n"
    "\n"
    "Creates or updates delegate:NAME, which may pause (mute) the devices named,\n"
    "and its secret token, and prints the URLs a phone or script calls. The\n"
    "devices given replace the delegate's list. Re-adding keeps the token.\n"
    "\n"
    "  --device D   a device the delegate may pause (repeat for more)\n"
    "  --new-token  replace the token (the old URLs stop working)\n"
    "  -h, --help   this help\n";

struct delegate_edit {
    json_t *devices;
};

static int delegate_edit(json_t *doc, bool existed, void *arg)
{
    const struct delegate_edit *de = arg;
    json_t *before = json_deep_copy(doc);
    int changed;

    json_object_set_new(doc, "type", json_string("delegate"));
    json_object_set(doc, "devices", de->devices);
    changed = !existed || !json_equal(before, doc);
    json_decref(before);
    return changed;
}

/* For messages about the subcommand: "imes delegate add: ...". */
static const struct cli_command add_command = {.name = "delegate add", .usage = delegate_usage};

static int delegate_add(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"device", required_argument, NULL, 'd'},
        {"new-token", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct delegate_edit de = {.devices = json_array()};
    bool renew = false;
    char id[128], token[CLI_TOKEN_MAX + 1];
    const char *name, *pub;
    json_t *v;
    size_t i;
    int c, r = CLI_EXIT_USAGE, rd, rt;

    optind = 0;
    while ((c = cli_getopt(&add_command, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'd':
            if (!cli_name_ok("device", optarg))
                goto out;
            if (json_array_size(de.devices) >= DELEGATE_DEVICES_MAX) {
                r = cli_usage_error(&add_command, "more than %d devices", DELEGATE_DEVICES_MAX);
                goto out;
            }
            /* Given twice is the same device once. */
            json_array_foreach(de.devices, i, v)
            {
                if (strcmp(json_string_value(v), optarg) == 0)
                    break;
            }
            if (i == json_array_size(de.devices))
                json_array_append_new(de.devices, json_string(optarg));
            break;
        case 'n':
            renew = true;
            break;
        case 'h':
            fputs(delegate_usage, stdout);
            r = CLI_EXIT_OK;
            goto out;
        default:
            goto out;
        }
    }
    if ((r = cli_name_arg(&add_command, "delegate", argc, argv, &name)) != 0)
        goto out;
    if (json_array_size(de.devices) == 0) {
        r = cli_usage_error(&add_command, "at least one --device D is needed");
        goto out;
    }
    if ((r = cli_connect(cli, NULL)) != 0)
        goto out;

    r = CLI_EXIT_FAIL;
    snprintf(id, sizeof(id), "delegate:%s", name);
    rd = cli_update_doc(cli, cli->db, id, delegate_edit, &de, NULL);
    if (rd < 0)
        goto out;
    rt = cli_token(cli, "delegate", name, renew, token);
    if (rt < 0)
        goto out;
    printf("delegate %s %s (devices", name,
           rd == CLI_DOC_CREATED   ? "created"
           : rd == CLI_DOC_UPDATED ? "updated"
                                   : "unchanged");
    json_array_foreach(de.devices, i, v) printf(" %s", json_string_value(v));
    printf(")\n");
    json_array_foreach(de.devices, i, v)
    {
        char did[128];
        long st;

        snprintf(did, sizeof(did), "device:%s", json_string_value(v));
        st = cli_get(cli, cli->db, did, NULL);
        if (st < 0)
            goto out;
        if (st == 404)
            printf("note: %s does not exist (yet)\n", did);
    }
    printf("token %s\n", rt == CLI_DOC_UNCHANGED ? "kept"
                         : rt == CLI_DOC_CREATED ? "created"
                                                 : "replaced");
    pub = cli->cfg.backend.public_delegate ? cli->cfg.backend.public_delegate : "";
    printf("%s/delegate/%s/%s/pause\n", pub, name, token);
    printf("%s/delegate/%s/%s/pause/<seconds>\n", pub, name, token);
    printf("%s/delegate/%s/%s/unpause\n", pub, name, token);
    r = CLI_EXIT_OK;
out:
    json_decref(de.devices);
    return r;
}

static int delegate_run(struct cli *cli, int argc, char **argv)
{
    static const struct cli_subcommand subs[] = {{"add", delegate_add}, {NULL, NULL}};
    return cli_run_subcommand(cli, &cli_delegate_command, subs, argc, argv);
}

const struct cli_command cli_delegate_command = {
    .name = "delegate",
    .summary = "delegate add NAME --device D ...: who may pause which devices, and its URLs",
    .usage = delegate_usage,
    .run = delegate_run,
};
