/*
 * What every `imes` command shares: the loaded configuration, a CouchDB
 * connection driven synchronously (couch_sync on a private loop), option
 * parsing that reports unknown options the same way everywhere, and the
 * read-modify-write of one document.
 *
 * Exit codes: 0 done, 1 it failed (CouchDB unreachable or refused), 2 the
 * command line or the configuration is wrong. Messages go to stderr as
 * "imes: ...", results to stdout.
 * Thread: main (the CLI has no other).
 */
#ifndef IMES_CLI_H
#define IMES_CLI_H

#include <jansson.h>
#include <stdbool.h>

#include "core/config.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

#define CLI_TOKEN_MAX 128

struct couch;

struct cli {
    const char *config_path; /* -c, IMES_CONFIG, or "config.yaml" */
    struct config cfg;
    bool cfg_loaded;
    struct ev_loop *loop;
    struct couch *couch;
    const char *db;         /* database.name (owned by cfg) */
    const char *db_private; /* database.private_name (owned by cfg) */
};

/* A command: "init", "user add", ... run gets argv with argv[0] the command's
 * own name (getopt style). Returns an exit code. */
struct cli_command {
    const char *name;
    const char *summary; /* one line for `imes --help` */
    const char *usage;   /* the full help, starting with "usage: imes ..." */
    int (*run)(struct cli *cli, int argc, char **argv);
};

/* Reads the configuration; prints the error and returns CLI_EXIT_USAGE if it
 * cannot. */
int cli_load_config(struct cli *cli);

/* Loads the configuration if needed, connects and checks the server with
 * GET /. Prints a message naming the URL (without the password) and returns
 * CLI_EXIT_FAIL if CouchDB does not answer. *welcome (may be NULL) gets the
 * body of GET /. */
int cli_connect(struct cli *cli, json_t **welcome);

void cli_deinit(struct cli *cli);

/* One request, no retries. Returns the HTTP status, or a negative error after
 * printing that CouchDB cannot be reached. *out (may be NULL) gets a new
 * reference to the body or NULL. */
long cli_request(struct cli *cli, const char *method, const char *path, json_t *body, json_t **out);

/* GET /db/docid (docid may be NULL for the database itself). */
long cli_get(struct cli *cli, const char *db, const char *docid, json_t **out);

/* Prints "imes: WHAT: STATUS error: reason" from a CouchDB answer (nothing
 * more when status < 0: cli_request has spoken already). Returns CLI_EXIT_FAIL. */
int cli_fail(long status, json_t *body, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Read-modify-write of one document. fn gets the stored document or, when
 * there is none, {"_id": docid} with existed false; it edits it in place and
 * returns 1 to write it, 0 to leave it, or a negative value to give up (after
 * printing why). A conflict (someone wrote in between) re-reads and re-applies.
 * On success *doc_out (may be NULL) gets the document as written or read. */
enum cli_doc_result { CLI_DOC_CREATED = 1, CLI_DOC_UPDATED, CLI_DOC_UNCHANGED };
typedef int (*cli_edit_fn)(json_t *doc, bool existed, void *arg);
/* Returns a cli_doc_result, or -1 after printing the error. */
int cli_update_doc(struct cli *cli, const char *db, const char *docid, cli_edit_fn fn, void *arg,
                   json_t **doc_out);

/* Makes sure token:<kind>:<name> exists in the private database and copies its
 * token to out (CLI_TOKEN_MAX + 1 bytes). An existing well-formed token is kept
 * (it may be longer than a new one, up to CLI_TOKEN_MAX, if set by hand);
 * renew makes a new one. Returns a
 * cli_doc_result, or -1 after printing the error. */
int cli_token(struct cli *cli, const char *kind, const char *name, bool renew, char *out);

/* Whether name is usable in document ids and URLs: 1 to 64 of [A-Za-z0-9._@-],
 * not starting with '.', '_' or '-'. Prints why not, naming what. */
bool cli_name_ok(const char *what, const char *name);
/* The one NAME operand after the options (argv[optind]) of a command like
 * "imes channel add NAME": missing, followed by another argument, or not a
 * valid name is a usage error (printed). 0 and *name, or CLI_EXIT_USAGE. */
int cli_name_arg(const struct cli_command *cmd, const char *what, int argc, char **argv,
                 const char **name);

/* getopt_long with the messages of this CLI. Returns the option, -1 at the end,
 * or '?' after printing "imes CMD: unknown option ..." (or a missing argument)
 * and the usage; the caller then returns CLI_EXIT_USAGE. optind must be 0
 * before the first call for a new argv. */
struct option;
int cli_getopt(const struct cli_command *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* Prints "imes CMD: MESSAGE" and the usage to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const struct cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A command made of subcommands ("imes channel add ..."). */
struct cli_subcommand {
    const char *name;
    int (*run)(struct cli *cli, int argc, char **argv); /* argv[0] is the subcommand */
};
/* Runs the subcommand argv[1] names among subs (ended by a NULL name):
 * "--help", "-h" and "help" print cmd's usage; none or an unknown one is a
 * usage error that lists them. */
int cli_run_subcommand(struct cli *cli, const struct cli_command *cmd,
                       const struct cli_subcommand *subs, int argc, char **argv);

/* Whether argv holds --help or -h before any "--". */
bool cli_wants_help(int argc, char **argv);

#endif
