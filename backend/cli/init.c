/*
 * `imes init` (see init.h). Who may do what is decided by two things this
 * sets up: each database's _security (who may read at all) and the
 * validate_doc_update of its design document (who may write which document).
 *
 *   <name>:          members roles imes_user, imes_admin, matriz_peer (Matriz peers
 *                    follow the roster of peer: docs); admins role imes_admin
 *   <name>_private:  members and admins role imes_admin only
 *
 * A database whose members list is empty is public in CouchDB, so both always
 * name members. Roles and names already in _security (added by an operator)
 * are kept: init only adds what is missing.
 */
#include "cli/init.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/couchapp.h"
#include "couch/couch.h"

static const char init_usage[] =
    "usage: imes [-c FILE] init [--couchapp DIR]\n"
    "\n"
    "Creates the databases NAME and NAME_private (database.name) and _users if\n"
    "missing, sets their _security (IMES admins are admins of _users, so they\n"
    "can add users) and pushes the design documents from the couchapp folder.\n"
    "Safe to run again: only what differs is written.\n"
    "\n"
    "  --couchapp DIR  the folder holding imes/ and imes_private/ (default:\n"
    "                  $IMES_COUCHAPP, else the source tree's couchapp/)\n"
    "  -h, --help      this help\n";

const char *init_couchapp_dir(const char *explicit_dir)
{
    const char *env = getenv("IMES_COUCHAPP");

    if (explicit_dir && *explicit_dir)
        return explicit_dir;
    if (env && *env)
        return env;
    return IMES_SOURCE_DIR "/couchapp";
}

/* Whether database.url logs us in as a server admin: creating databases and
 * writing _security need it, and pouchdb-server even crashes on an anonymous
 * PUT /db once an admin exists. */
static int check_admin(struct cli *cli)
{
    json_t *body = NULL, *roles;
    const char *name;
    long st = cli_request(cli, "GET", "/_session", NULL, &body);
    bool admin = false;
    size_t i;
    json_t *r;

    if (st < 0)
        return CLI_EXIT_FAIL;
    if (st != 200) {
        cli_fail(st, body, "GET /_session:");
        json_decref(body);
        return CLI_EXIT_FAIL;
    }
    roles = json_object_get(json_object_get(body, "userCtx"), "roles");
    name = json_string_value(json_object_get(json_object_get(body, "userCtx"), "name"));
    json_array_foreach(roles, i, r)
    {
        if (json_is_string(r) && strcmp(json_string_value(r), "_admin") == 0)
            admin = true;
    }
    if (!admin) {
        fprintf(stderr,
                "imes: database.url must log in as a CouchDB server admin; %s logs in as %s\n",
                couch_url_safe(cli->couch), name ? name : "nobody (no credentials)");
    }
    json_decref(body);
    return admin ? 0 : CLI_EXIT_FAIL;
}

static int ensure_db(struct cli *cli, const char *db)
{
    json_t *body = NULL;
    char *path = couch_path(db, NULL);
    long st;
    int r = 0;

    st = cli_request(cli, "GET", path, NULL, &body);
    if (st == 200) {
        printf("database %s exists\n", db);
    } else if (st == 404) {
        json_decref(body);
        body = NULL;
        st = cli_request(cli, "PUT", path, NULL, &body);
        if (st == 201 || st == 202)
            printf("created database %s\n", db);
        else if (st == 412)
            printf("database %s exists\n", db); /* created in between */
        else
            r = cli_fail(st, body, "PUT %s:", path);
    } else {
        r = cli_fail(st, body, "GET %s:", path);
    }
    json_decref(body);
    free(path);
    return r;
}

/* Adds role to sec[section].roles if missing; returns 1 if it did. */
static int add_role(json_t *sec, const char *section, const char *role)
{
    json_t *part = json_object_get(sec, section), *roles, *v;
    size_t i;

    if (!json_is_object(part)) {
        part = json_object();
        json_object_set_new(sec, section, part);
    }
    if (!json_is_array(json_object_get(part, "names")))
        json_object_set_new(part, "names", json_array());
    roles = json_object_get(part, "roles");
    if (!json_is_array(roles)) {
        roles = json_array();
        json_object_set_new(part, "roles", roles);
    }
    json_array_foreach(roles, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), role) == 0)
            return 0;
    }
    json_array_append_new(roles, json_string(role));
    return 1;
}

static int ensure_security(struct cli *cli, const char *db, const char *const *admin_roles,
                           const char *const *member_roles)
{
    char *dbpath = couch_path(db, NULL), path[512];
    json_t *sec = NULL, *before, *resp = NULL;
    long st;
    int r = 0;

    snprintf(path, sizeof(path), "%s/_security", dbpath);
    free(dbpath);
    st = cli_request(cli, "GET", path, NULL, &sec);
    if (st != 200 || !json_is_object(sec)) {
        r = cli_fail(st, sec, "GET %s:", path);
        json_decref(sec);
        return r;
    }
    before = json_deep_copy(sec);
    for (; *admin_roles; admin_roles++)
        add_role(sec, "admins", *admin_roles);
    for (; *member_roles; member_roles++)
        add_role(sec, "members", *member_roles);
    if (json_equal(before, sec)) {
        printf("security of %s unchanged\n", db);
    } else {
        st = cli_request(cli, "PUT", path, sec, &resp);
        if (st == 200 || st == 201) {
            char *s = json_dumps(sec, JSON_COMPACT);
            printf("security of %s set: %s\n", db, s ? s : "");
            free(s);
        } else {
            r = cli_fail(st, resp, "PUT %s:", path);
        }
    }
    json_decref(resp);
    json_decref(before);
    json_decref(sec);
    return r;
}

/* doc is the design doc built from the folder; it gets the stored _rev. */
static int ensure_ddoc(struct cli *cli, const char *db, json_t *doc)
{
    char *docpath, path[1024];
    json_t *stored = NULL, *resp = NULL;
    const char *id = json_string_value(json_object_get(doc, "_id"));
    long st;
    int r = 0;

    docpath = couch_path(db, id);
    /* attachments=true: their data, to compare with what the folder holds. */
    snprintf(path, sizeof(path), "%s?attachments=true", docpath);
    st = cli_request(cli, "GET", path, NULL, &stored);
    if (st == 200 && json_is_object(stored)) {
        if (couchapp_same(doc, stored)) {
            printf("design doc %s in %s unchanged\n", id, db);
            goto out;
        }
        json_object_set(doc, "_rev", json_object_get(stored, "_rev"));
    } else if (st != 404) {
        r = cli_fail(st, stored, "GET %s:", docpath);
        goto out;
    }
    st = cli_request(cli, "PUT", docpath, doc, &resp);
    if (st == 201 || st == 202)
        printf("design doc %s in %s %s\n", id, db,
               json_object_get(doc, "_rev") ? "updated" : "created");
    else
        r = cli_fail(st, resp, "PUT %s:", docpath);
out:
    json_decref(resp);
    json_decref(stored);
    free(docpath);
    return r;
}

static int init_run(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"couchapp", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const main_admins[] = {"imes_admin", NULL};
    static const char *const main_members[] = {"imes_user", "imes_admin", "matriz_peer", NULL};
    static const char *const priv_admins[] = {"imes_admin", NULL};
    static const char *const priv_members[] = {"imes_admin", NULL};
    /* IMES admins manage people (the web app's Admin > Users): as admins of
     * _users they may create users and give them roles; CouchDB's own _users
     * rules still forbid system roles (_admin) and reading is left as it is
     * (no members: people keep reading only their own document). */
    static const char *const users_admins[] = {"imes_admin", NULL};
    static const char *const no_roles[] = {NULL};
    const char *couchapp = NULL;
    char dir[4096], err[1024];
    json_t *ddoc = NULL, *pddoc = NULL;
    int c, r;

    optind = 0;
    while ((c = cli_getopt(&init_command, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'C':
            couchapp = optarg;
            break;
        case 'h':
            fputs(init_usage, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error(&init_command, "unexpected argument %s", argv[optind]);
    couchapp = init_couchapp_dir(couchapp);

    /* Build both design documents first: a broken tree stops init before it
     * touches the server. */
    snprintf(dir, sizeof(dir), "%s/imes", couchapp);
    ddoc = couchapp_load(dir, err, sizeof(err));
    if (ddoc) {
        snprintf(dir, sizeof(dir), "%s/imes_private", couchapp);
        pddoc = couchapp_load(dir, err, sizeof(err));
    }
    if (!ddoc || !pddoc) {
        fprintf(stderr,
                "imes init: design document: %s (the couchapp folder is given by "
                "--couchapp DIR or IMES_COUCHAPP)\n",
                err);
        r = CLI_EXIT_USAGE;
        goto out;
    }

    if ((r = cli_connect(cli, NULL)) != 0 || (r = check_admin(cli)) != 0)
        goto out;
    if ((r = ensure_db(cli, "_users")) != 0 || (r = ensure_db(cli, cli->db)) != 0 ||
        (r = ensure_db(cli, cli->db_private)) != 0)
        goto out;
    if ((r = ensure_security(cli, "_users", users_admins, no_roles)) != 0 ||
        (r = ensure_security(cli, cli->db, main_admins, main_members)) != 0 ||
        (r = ensure_security(cli, cli->db_private, priv_admins, priv_members)) != 0)
        goto out;
    if ((r = ensure_ddoc(cli, cli->db, ddoc)) != 0 ||
        (r = ensure_ddoc(cli, cli->db_private, pddoc)) != 0)
        goto out;
    r = CLI_EXIT_OK;
out:
    json_decref(ddoc);
    json_decref(pddoc);
    return r;
}

const struct cli_command init_command = {
    .name = "init",
    .summary = "create the databases, their security and design documents (safe to re-run)",
    .usage = init_usage,
    .run = init_run,
};
