/*
 * `imes channel add` (see cli_channel.h). A new channel starts as
 * state/docs.h gives the defaults (not paused, ReplayGain album, 0.5 s
 * crossfade), written out so the document says what it does. Re-adding
 * changes only what the options name; paused, play and skip are left alone.
 */
#include "cli/cli_channel.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/docs.h"

static const char channel_usage[] =
    "usage: imes [-c FILE] channel add NAME [--replaygain MODE] [--crossfade S]\n"
    "\n"
    "Creates or updates channel:NAME, a stream that rooms (aggregates) play.\n"
    "Its playlist is filled with `imes enqueue NAME ...`. Options not given keep\n"
    "their values (a new channel: album, 0.5 s, not paused).\n"
    "\n"
    "  --replaygain MODE  album (default), track or off\n"
    "  --crossfade S      seconds of crossfade between tracks, 0 to 10\n"
    "  -h, --help         this help\n";

struct channel_edit {
    const char *replaygain; /* NULL: not given */
    double crossfade;       /* NAN: not given */
};

static int channel_edit(json_t *doc, bool existed, void *arg)
{
    const struct channel_edit *ce = arg;
    json_t *before = json_deep_copy(doc);
    int changed;

    json_object_set_new(doc, "type", json_string("channel"));
    if (!json_is_boolean(json_object_get(doc, "paused")))
        json_object_set_new(doc, "paused", json_false());
    if (ce->replaygain)
        json_object_set_new(doc, "replaygain", json_string(ce->replaygain));
    else if (!json_is_string(json_object_get(doc, "replaygain")))
        json_object_set_new(doc, "replaygain", json_string("album"));
    if (!isnan(ce->crossfade))
        json_object_set_new(doc, "crossfade", json_real(ce->crossfade));
    else if (!json_is_number(json_object_get(doc, "crossfade")))
        json_object_set_new(doc, "crossfade", json_real(DOCS_DEFAULT_CROSSFADE));
    changed = !existed || !json_equal(before, doc);
    json_decref(before);
    return changed;
}

/* For messages about the subcommand: "imes channel add: ...". */
static const struct cli_command add_command = {.name = "channel add", .usage = channel_usage};

static int channel_add(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"replaygain", required_argument, NULL, 'r'},
        {"crossfade", required_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct channel_edit ce = {.crossfade = NAN};
    json_t *doc = NULL;
    char id[128], *end;
    const char *name;
    int c, r;

    optind = 0;
    while ((c = cli_getopt(&add_command, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'r':
            if (strcmp(optarg, "album") && strcmp(optarg, "track") && strcmp(optarg, "off"))
                return cli_usage_error(&add_command, "--replaygain %s: album, track or off",
                                       optarg);
            ce.replaygain = optarg;
            break;
        case 'x':
            errno = 0;
            ce.crossfade = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(ce.crossfade >= 0) ||
                ce.crossfade > DOCS_CROSSFADE_MAX)
                return cli_usage_error(&add_command, "--crossfade %s: seconds from 0 to %g", optarg,
                                       DOCS_CROSSFADE_MAX);
            break;
        case 'h':
            fputs(channel_usage, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if ((r = cli_name_arg(&add_command, "channel", argc, argv, &name)) != 0)
        return r;
    if ((r = cli_connect(cli, NULL)) != 0)
        return r;

    snprintf(id, sizeof(id), "channel:%s", name);
    r = cli_update_doc(cli, cli->db, id, channel_edit, &ce, &doc);
    if (r < 0)
        return CLI_EXIT_FAIL;
    printf("channel %s %s (replaygain %s, crossfade %g s%s)\n", name,
           r == CLI_DOC_CREATED   ? "created"
           : r == CLI_DOC_UPDATED ? "updated"
                                  : "unchanged",
           json_string_value(json_object_get(doc, "replaygain")),
           json_number_value(json_object_get(doc, "crossfade")),
           json_is_true(json_object_get(doc, "paused")) ? ", paused" : "");
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int channel_run(struct cli *cli, int argc, char **argv)
{
    static const struct cli_subcommand subs[] = {{"add", channel_add}, {NULL, NULL}};
    return cli_run_subcommand(cli, &cli_channel_command, subs, argc, argv);
}

const struct cli_command cli_channel_command = {
    .name = "channel",
    .summary = "channel add NAME [--replaygain M] [--crossfade S]: a stream rooms play",
    .usage = channel_usage,
    .run = channel_run,
};
