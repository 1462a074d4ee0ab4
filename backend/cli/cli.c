/*
 * Shared machinery of the `imes` commands (see cli.h). The CLI talks to
 * CouchDB through the same client as imesd, run one request at a time with
 * couch_sync on a private loop and without retries: an admin at a terminal
 * wants a clear failure at once, not a backoff.
 */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "core/token.h"
#include "core/timeutil.h"
#include "couch/couch.h"

/* How often a read-modify-write is retried when someone else keeps writing the
 * same document in between; more than a handful means something is wrong. */
#define CLI_CONFLICT_TRIES 5

int cli_load_config(struct cli *cli)
{
    char err[CONFIG_ERRLEN];

    if (cli->cfg_loaded)
        return 0;
    config_defaults(&cli->cfg);
    if (access(cli->config_path, F_OK) != 0) {
        fprintf(stderr, "imes: %s: %s (name another with -c FILE or IMES_CONFIG)\n",
                cli->config_path, strerror(errno));
        config_free(&cli->cfg);
        return CLI_EXIT_USAGE;
    }
    if (config_load(&cli->cfg, cli->config_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "imes: %s\n", err);
        config_free(&cli->cfg);
        return CLI_EXIT_USAGE;
    }
    cli->cfg_loaded = true;
    cli->db = cli->cfg.database.name;
    cli->db_private = cli->cfg.database.private_name;
    return 0;
}

int cli_connect(struct cli *cli, json_t **welcome)
{
    json_t *body = NULL;
    long st;
    int r;

    if (welcome)
        *welcome = NULL;
    if ((r = cli_load_config(cli)) != 0)
        return r;
    if (!cli->loop) {
        cli->loop = ev_loop_new(EVFLAG_AUTO);
        if (!cli->loop) {
            fprintf(stderr, "imes: cannot create an event loop\n");
            return CLI_EXIT_FAIL;
        }
    }
    if (!cli->couch) {
        cli->couch = couch_new(cli->loop, cli->cfg.database.url);
        if (!cli->couch) {
            char *safe = config_database_url_safe(&cli->cfg);
            fprintf(stderr, "imes: database.url %s: cannot use this URL\n", safe ? safe : "?");
            free(safe);
            return CLI_EXIT_USAGE;
        }
    }
    st = cli_request(cli, "GET", "/", NULL, &body);
    if (st < 0) {
        json_decref(body);
        return CLI_EXIT_FAIL;
    }
    if (st != 200) {
        cli_fail(st, body, "CouchDB at %s answers GET / with", couch_url_safe(cli->couch));
        json_decref(body);
        return CLI_EXIT_FAIL;
    }
    if (welcome)
        *welcome = body;
    else
        json_decref(body);
    return 0;
}

void cli_deinit(struct cli *cli)
{
    if (cli->couch)
        couch_free(&cli->couch);
    if (cli->loop) {
        ev_loop_destroy(cli->loop);
        cli->loop = NULL;
    }
    if (cli->cfg_loaded)
        config_free(&cli->cfg);
    cli->cfg_loaded = false;
    cli->db = cli->db_private = NULL; /* owned by cfg */
}

long cli_request(struct cli *cli, const char *method, const char *path, json_t *body, json_t **out)
{
    json_t *resp = NULL;
    long st = couch_sync(cli->couch, method, path, body, COUCH_NO_RETRY, &resp);

    if (st <= 0) {
        int err = st < 0 ? (int)-st : EPROTO;
        fprintf(stderr, "imes: cannot reach CouchDB at %s: %s\n", couch_url_safe(cli->couch),
                strerror(err));
        json_decref(resp);
        resp = NULL;
        st = -err;
    }
    if (out)
        *out = resp;
    else
        json_decref(resp);
    return st;
}

long cli_get(struct cli *cli, const char *db, const char *docid, json_t **out)
{
    char *path = couch_path(db, docid);
    long st;

    if (!path) {
        fprintf(stderr, "imes: out of memory\n");
        if (out)
            *out = NULL;
        return -ENOMEM;
    }
    st = cli_request(cli, "GET", path, NULL, out);
    free(path);
    return st;
}

int cli_fail(long status, json_t *body, const char *fmt, ...)
{
    va_list ap;
    const char *error = NULL, *reason = NULL;

    if (status < 0)
        return CLI_EXIT_FAIL;
    if (json_is_object(body)) {
        error = json_string_value(json_object_get(body, "error"));
        reason = json_string_value(json_object_get(body, "reason"));
    }
    fputs("imes: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " %ld", status);
    if (error)
        fprintf(stderr, " %s", error);
    if (reason)
        fprintf(stderr, ": %s", reason);
    fputc('\n', stderr);
    return CLI_EXIT_FAIL;
}

int cli_update_doc(struct cli *cli, const char *db, const char *docid, cli_edit_fn fn, void *arg,
                   json_t **doc_out)
{
    char *path = couch_path(db, docid);
    int result = -1;

    if (doc_out)
        *doc_out = NULL;
    if (!path) {
        fprintf(stderr, "imes: out of memory\n");
        return -1;
    }
    for (int attempt = 0; attempt < CLI_CONFLICT_TRIES; attempt++) {
        json_t *doc = NULL, *resp = NULL;
        bool existed;
        long st = cli_request(cli, "GET", path, NULL, &doc);
        int w;

        if (st < 0)
            break;
        if (st == 404) {
            json_decref(doc);
            doc = json_pack("{s:s}", "_id", docid);
            existed = false;
        } else if (st == 200 && json_is_object(doc)) {
            existed = true;
        } else {
            cli_fail(st, doc, "GET %s:", path);
            json_decref(doc);
            break;
        }
        w = fn(doc, existed, arg);
        if (w < 0) {
            json_decref(doc);
            break;
        }
        if (w == 0) {
            result = CLI_DOC_UNCHANGED;
            if (doc_out)
                *doc_out = doc;
            else
                json_decref(doc);
            break;
        }
        st = cli_request(cli, "PUT", path, doc, &resp);
        if (st == 201 || st == 202) {
            const char *rev = json_string_value(json_object_get(resp, "rev"));
            if (rev)
                json_object_set_new(doc, "_rev", json_string(rev));
            result = existed ? CLI_DOC_UPDATED : CLI_DOC_CREATED;
            if (doc_out)
                *doc_out = json_incref(doc);
        } else if (st == 409) {
            json_decref(resp);
            json_decref(doc);
            continue; /* written in between: read it again */
        } else {
            cli_fail(st, resp, "PUT %s:", path);
        }
        json_decref(resp);
        json_decref(doc);
        break;
    }
    if (result < 0 && doc_out && *doc_out) {
        json_decref(*doc_out);
        *doc_out = NULL;
    }
    free(path);
    return result;
}

struct token_edit {
    const char *kind;
    const char *name;
    bool renew;
};

static int token_edit(json_t *doc, bool existed, void *arg)
{
    const struct token_edit *te = arg;
    char token[TOKEN_HEX_LEN + 1], now[32];
    time_t t = time(NULL);
    int r;

    const char *old = json_string_value(json_object_get(doc, "token"));

    if (existed && !te->renew && token_well_formed(old) && strlen(old) <= CLI_TOKEN_MAX)
        return 0;
    if ((r = token_generate(token, sizeof(token))) < 0) {
        fprintf(stderr, "imes: cannot make a token: getrandom: %s\n", strerror(-r));
        return -1;
    }
    timeutil_iso8601(t, now, sizeof(now));
    json_object_set_new(doc, "type", json_string("token"));
    json_object_set_new(doc, "kind", json_string(te->kind));
    json_object_set_new(doc, "name", json_string(te->name));
    json_object_set_new(doc, "token", json_string(token));
    json_object_set_new(doc, "created", json_string(now));
    explicit_bzero(token, sizeof(token));
    return 1;
}

int cli_token(struct cli *cli, const char *kind, const char *name, bool renew, char *out)
{
    struct token_edit te = {.kind = kind, .name = name, .renew = renew};
    json_t *doc = NULL;
    char id[256];
    const char *token;
    int r;

    snprintf(id, sizeof(id), "token:%s:%s", kind, name);
    r = cli_update_doc(cli, cli->db_private, id, token_edit, &te, &doc);
    if (r < 0)
        return -1;
    token = json_string_value(json_object_get(doc, "token"));
    if (!token || strlen(token) > CLI_TOKEN_MAX) {
        fprintf(stderr, "imes: %s/%s has no usable token\n", cli->db_private, id);
        json_decref(doc);
        return -1;
    }
    snprintf(out, CLI_TOKEN_MAX + 1, "%s", token);
    json_decref(doc);
    return r;
}

bool cli_name_ok(const char *what, const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 64) {
        fprintf(stderr, "imes: %s name must be 1 to 64 characters\n", what);
        return false;
    }
    if (name[0] == '.' || name[0] == '_' || name[0] == '-') {
        fprintf(stderr, "imes: %s name \"%s\" must not start with '%c'\n", what, name, name[0]);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@')) {
            fprintf(stderr,
                    "imes: %s name \"%s\": '%c' is not allowed (letters, digits, . _ - @ are)\n",
                    what, name, c);
            return false;
        }
    }
    return true;
}

int cli_usage_error(const struct cli_command *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "imes %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", cmd->usage);
    return CLI_EXIT_USAGE;
}

int cli_name_arg(const struct cli_command *cmd, const char *what, int argc, char **argv,
                 const char **name)
{
    if (optind >= argc)
        return cli_usage_error(cmd, "NAME missing");
    if (optind + 1 < argc)
        return cli_usage_error(cmd, "unexpected argument %s", argv[optind + 1]);
    if (!cli_name_ok(what, argv[optind]))
        return CLI_EXIT_USAGE;
    *name = argv[optind];
    return 0;
}

int cli_run_subcommand(struct cli *cli, const struct cli_command *cmd,
                       const struct cli_subcommand *subs, int argc, char **argv)
{
    if (argc < 2) {
        char names[256] = "";
        size_t n = 0;
        for (const struct cli_subcommand *sc = subs; sc->name; sc++)
            n += (size_t)snprintf(names + n, n < sizeof(names) ? sizeof(names) - n : 0, "%s%s",
                                  sc == subs ? "" : ", ", sc->name);
        return cli_usage_error(cmd, "which? (%s)", names);
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(cmd->usage, stdout);
        return CLI_EXIT_OK;
    }
    for (const struct cli_subcommand *sc = subs; sc->name; sc++)
        if (strcmp(argv[1], sc->name) == 0)
            return sc->run(cli, argc - 1, argv + 1);
    return cli_usage_error(cmd, "unknown subcommand %s", argv[1]);
}

int cli_getopt(const struct cli_command *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    char opts[64];
    int c;

    /* A leading ':' makes a missing argument ':' rather than '?', and with
     * opterr 0 getopt prints nothing: the messages are ours. */
    snprintf(opts, sizeof(opts), ":%s", shortopts);
    opterr = 0;
    c = getopt_long(argc, argv, opts, longopts, NULL);
    if (c == '?') {
        if (optopt)
            cli_usage_error(cmd, "unknown option -%c", optopt);
        else
            cli_usage_error(cmd, "unknown option %s", argv[optind - 1]);
        return '?';
    }
    if (c == ':') {
        cli_usage_error(cmd, "option %s needs a value", argv[optind - 1]);
        return '?';
    }
    return c;
}

bool cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    }
    return false;
}
