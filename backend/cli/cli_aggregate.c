/*
 * `imes aggregate add|join` (see cli_aggregate.h). The channel and the user
 * named must exist: a room playing a channel nobody made, or a user joining
 * a room that is not there, is a typo, and the web app would not offer it.
 */
#include "cli/cli_aggregate.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_playback.h"

static const char aggregate_usage[] =
    "usage: imes [-c FILE] aggregate add NAME [--channel C]\n"
    "       imes [-c FILE] aggregate join AGGREGATE USER\n"
    "\n"
    "add: creates or updates aggregate:NAME, a room whose devices play channel C\n"
    "(\"\" for none). Without --channel a new room plays nothing and an existing\n"
    "one keeps its channel.\n"
    "join: puts USER in the room AGGREGATE (user:USER.aggregate), so their\n"
    "presence unmutes its devices.\n"
    "\n"
    "  --channel C  the channel the room plays (it must exist)\n"
    "  -h, --help   this help\n";

static const char *result_word(int r)
{
    return r == CLI_DOC_CREATED ? "created" : r == CLI_DOC_UPDATED ? "updated" : "unchanged";
}

struct aggregate_edit {
    const char *channel; /* NULL: not given; "": none */
};

static int aggregate_edit(json_t *doc, bool existed, void *arg)
{
    const struct aggregate_edit *ae = arg;
    json_t *before = json_deep_copy(doc);
    int changed;

    json_object_set_new(doc, "type", json_string("aggregate"));
    if (ae->channel)
        json_object_set_new(doc, "channel", *ae->channel ? json_string(ae->channel) : json_null());
    else if (!json_object_get(doc, "channel"))
        json_object_set_new(doc, "channel", json_null());
    changed = !existed || !json_equal(before, doc);
    json_decref(before);
    return changed;
}

static const struct cli_command add_command = {.name = "aggregate add", .usage = aggregate_usage};
static const struct cli_command join_command = {.name = "aggregate join", .usage = aggregate_usage};

static int aggregate_add(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"channel", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct aggregate_edit ae = {0};
    json_t *doc = NULL;
    const char *name, *ch;
    char id[128], hint[128];
    int c, r;

    optind = 0;
    while ((c = cli_getopt(&add_command, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'c':
            ae.channel = optarg;
            break;
        case 'h':
            fputs(aggregate_usage, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if ((r = cli_name_arg(&add_command, "aggregate", argc, argv, &name)) != 0)
        return r;
    if (ae.channel && *ae.channel && !cli_name_ok("channel", ae.channel))
        return CLI_EXIT_USAGE;
    if ((r = cli_connect(cli, NULL)) != 0)
        return r;
    if (ae.channel && *ae.channel) {
        snprintf(hint, sizeof(hint), "imes channel add %s", ae.channel);
        if ((r = cli_need_doc(cli, "channel", ae.channel, hint, NULL)) != 0)
            return r;
    }

    snprintf(id, sizeof(id), "aggregate:%s", name);
    r = cli_update_doc(cli, cli->db, id, aggregate_edit, &ae, &doc);
    if (r < 0)
        return CLI_EXIT_FAIL;
    ch = json_string_value(json_object_get(doc, "channel"));
    printf("aggregate %s %s (channel %s)\n", name, result_word(r), ch ? ch : "none");
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int join_edit(json_t *doc, bool existed, void *arg)
{
    const char *aggregate = arg;
    const char *now = json_string_value(json_object_get(doc, "aggregate"));

    if (!existed) {
        /* Checked just before; gone in between. */
        fprintf(stderr, "imes: no user %s\n", json_string_value(json_object_get(doc, "_id")) + 5);
        return -1;
    }
    if (now && strcmp(now, aggregate) == 0)
        return 0;
    json_object_set_new(doc, "aggregate", json_string(aggregate));
    return 1;
}

static int aggregate_join(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *aggregate, *user, *ch;
    json_t *agg = NULL;
    char id[128], hint[128];
    int c, r;

    optind = 0;
    while ((c = cli_getopt(&join_command, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'h':
            fputs(aggregate_usage, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (optind + 2 > argc)
        return cli_usage_error(&join_command, "AGGREGATE and USER, please");
    if (optind + 2 < argc)
        return cli_usage_error(&join_command, "unexpected argument %s", argv[optind + 2]);
    aggregate = argv[optind];
    user = argv[optind + 1];
    if (!cli_name_ok("aggregate", aggregate) || !cli_name_ok("user", user))
        return CLI_EXIT_USAGE;
    if ((r = cli_connect(cli, NULL)) != 0)
        return r;
    snprintf(hint, sizeof(hint), "imes aggregate add %s --channel CHANNEL", aggregate);
    if ((r = cli_need_doc(cli, "aggregate", aggregate, hint, &agg)) != 0)
        return r;
    snprintf(hint, sizeof(hint), "imes user add %s", user);
    if ((r = cli_need_doc(cli, "user", user, hint, NULL)) != 0) {
        json_decref(agg);
        return r;
    }

    snprintf(id, sizeof(id), "user:%s", user);
    r = cli_update_doc(cli, cli->db, id, join_edit, (void *)aggregate, NULL);
    if (r < 0) {
        json_decref(agg);
        return CLI_EXIT_FAIL;
    }
    ch = json_string_value(json_object_get(agg, "channel"));
    printf("user %s %s aggregate %s (channel %s)\n", user,
           r == CLI_DOC_UNCHANGED ? "was already in" : "joined", aggregate, ch ? ch : "none");
    json_decref(agg);
    return CLI_EXIT_OK;
}

static int aggregate_run(struct cli *cli, int argc, char **argv)
{
    static const struct cli_subcommand subs[] = {
        {"add", aggregate_add}, {"join", aggregate_join}, {NULL, NULL}};
    return cli_run_subcommand(cli, &cli_aggregate_command, subs, argc, argv);
}

const struct cli_command cli_aggregate_command = {
    .name = "aggregate",
    .summary = "aggregate add NAME [--channel C] | join AGGREGATE USER: rooms",
    .usage = aggregate_usage,
    .run = aggregate_run,
};
