/*
 * `imes device add` (see cli_device.h). Re-adding a device changes only what
 * the options name (an aggregate or codec not given stays as it was) and keeps
 * its token, so the URLs already configured in the room's players keep
 * working; --new-token replaces it (and cuts off the old URLs).
 */
#include "cli/cli_device.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "couch/couch.h"

static const char device_usage[] =
    "usage: imes [-c FILE] device add NAME [--aggregate A] [--codec mp3|opus] [--new-token]\n"
    "\n"
    "Creates or updates device:NAME and its secret token, and prints the URLs a\n"
    "player in the room uses (HTTP MP3, HTTP Ogg Opus, RTSP). Re-adding keeps\n"
    "the token and prints it again; options not given keep their values.\n"
    "\n"
    "  --aggregate A  the room (aggregate:A) the device is in; \"\" for none\n"
    "  --codec C      preferred codec: mp3 (default) or opus\n"
    "  --new-token    replace the token (the old URLs stop working)\n"
    "  -h, --help     this help\n";

struct device_edit {
    const char *aggregate; /* NULL: not given; "": none */
    const char *codec;     /* NULL: not given */
};

static int device_edit(json_t *doc, bool existed, void *arg)
{
    const struct device_edit *de = arg;
    json_t *before = json_deep_copy(doc);
    int changed;

    if (!existed || !json_is_string(json_object_get(doc, "type")))
        json_object_set_new(doc, "type", json_string("device"));
    if (de->aggregate)
        json_object_set_new(doc, "aggregate",
                            *de->aggregate ? json_string(de->aggregate) : json_null());
    else if (!json_object_get(doc, "aggregate"))
        json_object_set_new(doc, "aggregate", json_null());
    if (de->codec)
        json_object_set_new(doc, "codec", json_string(de->codec));
    else if (!json_is_string(json_object_get(doc, "codec")))
        json_object_set_new(doc, "codec", json_string("mp3"));
    changed = !existed || !json_equal(before, doc);
    json_decref(before);
    return changed;
}

static const char *result_word(int r)
{
    return r == CLI_DOC_CREATED ? "created" : r == CLI_DOC_UPDATED ? "updated" : "unchanged";
}

/* For messages about the subcommand: "imes device add: ...". */
static const struct cli_command add_command = {.name = "device add", .usage = device_usage};

static int device_add(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"aggregate", required_argument, NULL, 'a'},
        {"codec", required_argument, NULL, 'c'},
        {"new-token", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct device_edit de = {0};
    bool renew = false;
    char id[128], token[CLI_TOKEN_MAX + 1];
    json_t *doc = NULL;
    const char *name, *pub, *rtsp;
    int c, r, rt;

    optind = 0;
    while ((c = cli_getopt(&add_command, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'a':
            de.aggregate = optarg;
            break;
        case 'c':
            de.codec = optarg;
            break;
        case 'n':
            renew = true;
            break;
        case 'h':
            fputs(device_usage, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if ((r = cli_name_arg(&add_command, "device", argc, argv, &name)) != 0)
        return r;
    if (de.aggregate && *de.aggregate && !cli_name_ok("aggregate", de.aggregate))
        return CLI_EXIT_USAGE;
    if (de.codec && strcmp(de.codec, "mp3") != 0 && strcmp(de.codec, "opus") != 0)
        return cli_usage_error(&add_command, "--codec %s: mp3 or opus", de.codec);
    if ((r = cli_connect(cli, NULL)) != 0)
        return r;

    snprintf(id, sizeof(id), "device:%s", name);
    r = cli_update_doc(cli, cli->db, id, device_edit, &de, &doc);
    if (r < 0)
        return CLI_EXIT_FAIL;
    rt = cli_token(cli, "device", name, renew, token);
    if (rt < 0) {
        json_decref(doc);
        return CLI_EXIT_FAIL;
    }
    {
        const char *agg = json_string_value(json_object_get(doc, "aggregate"));
        const char *codec = json_string_value(json_object_get(doc, "codec"));
        printf("device %s %s (aggregate %s, codec %s)\n", name, result_word(r), agg ? agg : "none",
               codec ? codec : "mp3");
    }
    printf("token %s\n", rt == CLI_DOC_UNCHANGED ? "kept"
                         : rt == CLI_DOC_CREATED ? "created"
                                                 : "replaced");
    json_decref(doc);

    pub = cli->cfg.backend.public_url ? cli->cfg.backend.public_url : "";
    rtsp = cli->cfg.backend.public_rtsp ? cli->cfg.backend.public_rtsp : "";
    printf("%s/device/%s/%s/stream.mp3\n", pub, name, token);
    printf("%s/device/%s/%s/stream.opus\n", pub, name, token);
    printf("%s/device/%s/%s\n", rtsp, name, token);
    return CLI_EXIT_OK;
}

static int device_run(struct cli *cli, int argc, char **argv)
{
    static const struct cli_subcommand subs[] = {{"add", device_add}, {NULL, NULL}};
    return cli_run_subcommand(cli, &cli_device_command, subs, argc, argv);
}

const struct cli_command cli_device_command = {
    .name = "device",
    .summary = "device add NAME [--aggregate A] [--codec mp3|opus]: a room's player and its URLs",
    .usage = device_usage,
    .run = device_run,
};
