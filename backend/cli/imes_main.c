/*
 * imes: the admin CLI. `imes [-c FILE] COMMAND ...` — bootstrap the databases
 * and design documents (init), users, devices, delegates, status. Each command
 * lives in its own module in backend/cli/ and is listed in the table below;
 * this file only finds the configuration and dispatches.
 *
 * Exit codes: 0 done, 1 failed (CouchDB unreachable or refused), 2 bad command
 * line or configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_aggregate.h"
#include "cli/cli_channel.h"
#include "cli/cli_delegate.h"
#include "cli/cli_device.h"
#include "cli/cli_peer.h"
#include "cli/cli_playback.h"
#include "cli/cli_status.h"
#include "cli/cli_scan.h"
#include "cli/cli_user.h"
#include "cli/init.h"
#include "core/log.h"

static const struct cli_command *const commands[] = {
    &init_command,        &cli_user_command,     &cli_device_command,  &cli_delegate_command,
    &cli_status_command,  &cli_scan_command,     &cli_channel_command, &cli_aggregate_command,
    &cli_enqueue_command, &cli_playlist_command, &cli_play_command,    &cli_pause_command,
    &cli_resume_command,  &cli_skip_command,     &cli_peer_command,    NULL,
};

static void usage(FILE *out)
{
    fputs("usage: imes [-c FILE] COMMAND [ARGS]\n"
          "\n"
          "The IMES admin tool. FILE is the configuration (default: $IMES_CONFIG,\n"
          "else config.yaml in the current directory).\n"
          "\n"
          "Commands:\n",
          out);
    for (const struct cli_command *const *c = commands; *c; c++)
        fprintf(out, "  %-9s %s\n", (*c)->name, (*c)->summary);
    fputs("  help      help [COMMAND]: this list, or a command's help\n"
          "\n"
          "`imes COMMAND --help` explains each. Exit status: 0 done, 1 failed,\n"
          "2 wrong command line or configuration.\n",
          out);
}

static const struct cli_command *find_command(const char *name)
{
    for (const struct cli_command *const *c = commands; *c; c++) {
        if (strcmp((*c)->name, name) == 0)
            return *c;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    const struct cli_command *cmd;
    const char *env = getenv("IMES_CONFIG");
    int i = 1, r;

    cli.config_path = env && *env ? env : "config.yaml";
    /* Global options come before the command. */
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "imes: %s needs a file\n", a);
                usage(stderr);
                return CLI_EXIT_USAGE;
            }
            cli.config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            cli.config_path = a + 9;
        } else {
            fprintf(stderr, "imes: unknown option %s\n", a);
            usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "imes: which command?\n");
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        if (i + 1 >= argc) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        if (!(cmd = find_command(argv[i + 1]))) {
            fprintf(stderr, "imes: unknown command %s\n", argv[i + 1]);
            usage(stderr);
            return CLI_EXIT_USAGE;
        }
        fputs(cmd->usage, stdout);
        return CLI_EXIT_OK;
    }
    if (!(cmd = find_command(argv[i]))) {
        fprintf(stderr, "imes: unknown command %s\n", argv[i]);
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    /* Library code logs warnings to stderr; the CLI's own messages are plain. */
    log_open(NULL, E_WARN);
    r = cmd->run(&cli, argc - i, argv + i);
    cli_deinit(&cli);
    log_close();
    return r;
}
