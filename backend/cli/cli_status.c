/*
 * `imes status` (see cli_status.h). Exit status 0 when CouchDB answers and
 * both databases exist; 1 otherwise. imesd not running is reported, not an
 * error: status is also what one runs before starting it.
 */
#include "cli/cli_status.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "couch/couch.h"

/* /healthz answers at once or not at all; a hung imesd must not hang status. */
#define HEALTHZ_CONNECT_TIMEOUT_MS 2000
#define HEALTHZ_TIMEOUT_MS         4000
#define HEALTHZ_BODY_MAX           512

static const char status_usage[] =
    "usage: imes [-c FILE] status\n"
    "\n"
    "Shows whether CouchDB answers (and its version), whether both databases\n"
    "exist and how many documents of each type they hold, imesd's own status\n"
    "document, and whether imesd's /healthz answers at backend.public.\n"
    "Exits 1 if CouchDB does not answer or a database is missing.\n"
    "\n"
    "  -h, --help  this help\n";

static void print_server(json_t *welcome)
{
    const char *version = json_string_value(json_object_get(welcome, "version"));
    const char *vendor =
        json_string_value(json_object_get(json_object_get(welcome, "vendor"), "name"));
    const char *kind = json_object_get(welcome, "couchdb")           ? "CouchDB"
                       : json_object_get(welcome, "express-pouchdb") ? "pouchdb-server"
                       : vendor                                      ? vendor
                                                                     : "server";

    printf(" (%s %s)\n", kind, version ? version : "of unknown version");
}

/* Prints the database's document count; returns 0, or 1 if it is missing. */
static int print_db(struct cli *cli, const char *db)
{
    json_t *info = NULL;
    long st = cli_get(cli, db, NULL, &info);
    int r = 0;

    if (st == 200) {
        json_t *n = json_object_get(info, "doc_count");
        printf("database %s: %" JSON_INTEGER_FORMAT " documents\n", db,
               json_is_integer(n) ? json_integer_value(n) : (json_int_t)-1);
    } else if (st == 404) {
        printf("database %s: missing (run imes init)\n", db);
        r = 1;
    } else if (st > 0) {
        printf("database %s: cannot read (%ld %s)\n", db, st,
               json_string_value(json_object_get(info, "error"))
                   ? json_string_value(json_object_get(info, "error"))
                   : "");
        r = 1;
    } else {
        r = 1;
    }
    json_decref(info);
    return r;
}

static void print_types(struct cli *cli)
{
    char *db = couch_path(cli->db, "_design/imes"), path[512];
    json_t *body = NULL, *rows, *row;
    long st;
    size_t i;

    snprintf(path, sizeof(path), "%s/_view/by_type?group=true", db);
    free(db);
    st = cli_request(cli, "GET", path, NULL, &body);
    if (st == 200 && json_is_array(rows = json_object_get(body, "rows"))) {
        printf("documents by type:%s\n", json_array_size(rows) ? "" : " none");
        json_array_foreach(rows, i, row)
        {
            const char *key = json_string_value(json_object_get(row, "key"));
            json_t *value = json_object_get(row, "value");
            if (key && json_is_integer(value))
                printf("  %-12s %" JSON_INTEGER_FORMAT "\n", key, json_integer_value(value));
        }
    } else if (st == 404) {
        printf("documents by type: unknown (no design doc _design/imes: run imes init)\n");
    } else if (st > 0) {
        printf("documents by type: unknown (%ld %s)\n", st,
               json_string_value(json_object_get(body, "error"))
                   ? json_string_value(json_object_get(body, "error"))
                   : "");
    }
    json_decref(body);
}

static void print_imesd_doc(struct cli *cli)
{
    static const char *const fields[] = {"state",   "feed",    "last_seq", "changes_applied",
                                         "started", "updated", NULL};
    json_t *doc = NULL;
    long st = cli_get(cli, cli->db, "status:backend:imesd", &doc);

    if (st == 200 && json_is_object(doc)) {
        printf("imesd status (%s/status:backend:imesd):\n", cli->db);
        for (const char *const *f = fields; *f; f++) {
            json_t *v = json_object_get(doc, *f);
            char *s;
            if (!v)
                continue;
            s = json_is_string(v) ? strdup(json_string_value(v))
                                  : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            printf("  %-16s %s\n", *f, s ? s : "?");
            free(s);
        }
    } else if (st == 404) {
        printf("imesd status: none written yet (%s/status:backend:imesd)\n", cli->db);
    }
    json_decref(doc);
}

static size_t healthz_body(char *data, size_t size, size_t nmemb, void *arg)
{
    char *body = arg;
    size_t have = strlen(body), n = size * nmemb;

    if (have < HEALTHZ_BODY_MAX)
        strncat(body, data, n < HEALTHZ_BODY_MAX - have ? n : HEALTHZ_BODY_MAX - have);
    return n;
}

/* A plain blocking GET: the CLI has nothing else to do meanwhile. */
static void print_healthz(struct cli *cli)
{
    const char *base = cli->cfg.backend.public_url;
    char url[1024], body[HEALTHZ_BODY_MAX + 1] = "", errbuf[CURL_ERROR_SIZE] = "";
    CURL *h;
    CURLcode rc;
    long code = 0;

    if (!base || !*base) {
        printf("imesd /healthz: backend.public is not set\n");
        return;
    }
    snprintf(url, sizeof(url), "%s/healthz", base);
    h = curl_easy_init();
    if (!h) {
        printf("imesd %s: cannot set up libcurl\n", url);
        return;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)HEALTHZ_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)HEALTHZ_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, healthz_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        printf("imesd %s: not answering (%s)\n", url, *errbuf ? errbuf : curl_easy_strerror(rc));
        return;
    }
    body[strcspn(body, "\r\n")] = '\0';
    printf("imesd %s: %s (%ld%s%s)\n", url, code == 200 ? "answers" : "answers with an error", code,
           *body ? " " : "", body);
}

static int status_run(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    json_t *welcome = NULL;
    int c, r, missing = 0;

    optind = 0;
    while ((c = cli_getopt(&cli_status_command, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'h':
            fputs(status_usage, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error(&cli_status_command, "unexpected argument %s", argv[optind]);
    if ((r = cli_connect(cli, &welcome)) != 0) {
        /* cli_connect said why; say it in status form too. */
        if (r == CLI_EXIT_FAIL && cli->couch)
            printf("couchdb %s: not reachable\n", couch_url_safe(cli->couch));
        if (cli->cfg_loaded)
            print_healthz(cli);
        return r;
    }
    printf("couchdb %s: reachable", couch_url_safe(cli->couch));
    print_server(welcome);
    json_decref(welcome);
    missing |= print_db(cli, cli->db);
    missing |= print_db(cli, cli->db_private);
    if (!missing)
        print_types(cli);
    print_imesd_doc(cli);
    print_healthz(cli);
    return missing ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

const struct cli_command cli_status_command = {
    .name = "status",
    .summary = "CouchDB, the databases and documents per type, imesd's status and health",
    .usage = status_usage,
    .run = status_run,
};
