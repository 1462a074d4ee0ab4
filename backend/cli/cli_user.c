/*
 * `imes user add` (see cli_user.h). The password comes from stdin when that
 * is not a terminal (scripts, tests: the first line), else it is asked twice
 * without echo. The _users document gets the password in clear: CouchDB (and
 * pouchdb-server) replace it with a PBKDF2 hash as they store it.
 *
 * Re-adding a user sets the password again and the IMES roles to what the
 * command says (so `user add carol` without --admin takes admin away); other
 * roles an operator gave are kept. user:NAME is only created, never
 * overwritten: it holds the user's own settings.
 */
#include "cli/cli_user.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "couch/couch.h"

/* Longer than any passphrase, short enough to notice a binary on stdin. */
#define PASSWORD_MAX 1024

static const char user_usage[] =
    "usage: imes [-c FILE] user add NAME [--admin]\n"
    "\n"
    "Creates or updates the CouchDB user NAME (roles imes_user, and imes_admin\n"
    "with --admin) and makes the settings document user:NAME if missing. The\n"
    "password is read from stdin when it is not a terminal, else asked twice.\n"
    "Re-adding sets the password and the IMES roles again.\n"
    "\n"
    "  --admin     make NAME an IMES admin (devices, delegates, private data)\n"
    "  -h, --help  this help\n";

/* Reads one line from f into buf without its line end. Returns its length or
 * -1 at EOF / when too long. */
static int read_line(FILE *f, char *buf, size_t size)
{
    size_t n;

    if (!fgets(buf, (int)size, f))
        return -1;
    n = strlen(buf);
    if (n == size - 1 && buf[n - 1] != '\n')
        return -1;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return (int)n;
}

static int ask(const char *prompt, char *buf, size_t size)
{
    struct termios old, quiet;
    bool restore;
    int n;

    fputs(prompt, stderr);
    fflush(stderr);
    restore = tcgetattr(STDIN_FILENO, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    n = read_line(stdin, buf, size);
    if (restore)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    return n;
}

/* Returns 0 with the password in buf, or an exit code after saying why. */
static int read_password(const char *name, char *buf, size_t size)
{
    char again[PASSWORD_MAX + 2];
    char prompt[128];
    int n;

    if (!isatty(STDIN_FILENO)) {
        n = read_line(stdin, buf, size);
        if (n <= 0) {
            fprintf(stderr, "imes user add: no password on stdin (one line, not empty)\n");
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    snprintf(prompt, sizeof(prompt), "Password for %s: ", name);
    n = ask(prompt, buf, size);
    if (n <= 0) {
        fprintf(stderr, "imes user add: empty password\n");
        return CLI_EXIT_USAGE;
    }
    n = ask("Again: ", again, sizeof(again));
    if (n < 0 || strcmp(buf, again) != 0) {
        explicit_bzero(again, sizeof(again));
        fprintf(stderr, "imes user add: the passwords differ\n");
        return CLI_EXIT_USAGE;
    }
    explicit_bzero(again, sizeof(again));
    return 0;
}

struct login_edit {
    const char *name;
    const char *password;
    bool admin;
};

static int is_imes_role(const char *r)
{
    return r && (strcmp(r, "imes_user") == 0 || strcmp(r, "imes_admin") == 0);
}

static int login_edit(json_t *doc, bool existed, void *arg)
{
    const struct login_edit *le = arg;
    json_t *old = json_object_get(doc, "roles"), *roles = json_array(), *v;
    size_t i;

    json_array_append_new(roles, json_string("imes_user"));
    if (le->admin)
        json_array_append_new(roles, json_string("imes_admin"));
    json_array_foreach(old, i, v)
    {
        if (json_is_string(v) && !is_imes_role(json_string_value(v)))
            json_array_append(roles, v);
    }
    json_object_set_new(doc, "roles", roles);
    json_object_set_new(doc, "name", json_string(le->name));
    json_object_set_new(doc, "type", json_string("user"));
    json_object_set_new(doc, "password", json_string(le->password));
    return 1;
}

static int settings_edit(json_t *doc, bool existed, void *arg)
{
    if (existed)
        return 0;
    json_object_set_new(doc, "type", json_string("user"));
    json_object_set_new(doc, "aggregate", json_null());
    json_object_set_new(doc, "lockout", json_false());
    json_object_set_new(doc, "session_timeout", json_integer(300));
    json_object_set_new(doc, "scrobbling", json_false());
    return 1;
}

/* For messages about the subcommand: "imes user add: ...". */
static const struct cli_command add_command = {.name = "user add", .usage = user_usage};

static int user_add(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"admin", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char password[PASSWORD_MAX + 2], id[128];
    struct login_edit le = {0};
    const char *name;
    int c, r;

    optind = 0;
    while ((c = cli_getopt(&add_command, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'a':
            le.admin = true;
            break;
        case 'h':
            fputs(user_usage, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if ((r = cli_name_arg(&add_command, "user", argc, argv, &name)) != 0)
        return r;
    /* Check the configuration and the server before asking for a password. */
    if ((r = cli_connect(cli, NULL)) != 0)
        return r;
    if ((r = read_password(name, password, sizeof(password))) != 0)
        return r;

    le.name = name;
    le.password = password;
    snprintf(id, sizeof(id), "org.couchdb.user:%s", name);
    r = cli_update_doc(cli, "_users", id, login_edit, &le, NULL);
    explicit_bzero(password, sizeof(password));
    if (r < 0)
        return CLI_EXIT_FAIL;
    printf("user %s %s (roles imes_user%s)\n", name, r == CLI_DOC_CREATED ? "created" : "updated",
           le.admin ? ", imes_admin" : "");

    snprintf(id, sizeof(id), "user:%s", name);
    r = cli_update_doc(cli, cli->db, id, settings_edit, NULL, NULL);
    if (r < 0)
        return CLI_EXIT_FAIL;
    printf("settings %s/%s %s\n", cli->db, id, r == CLI_DOC_CREATED ? "created" : "exist");
    return CLI_EXIT_OK;
}

static int user_run(struct cli *cli, int argc, char **argv)
{
    static const struct cli_subcommand subs[] = {{"add", user_add}, {NULL, NULL}};
    return cli_run_subcommand(cli, &cli_user_command, subs, argc, argv);
}

const struct cli_command cli_user_command = {
    .name = "user",
    .summary = "user add NAME [--admin]: create or update a login and its settings",
    .usage = user_usage,
    .run = user_run,
};
