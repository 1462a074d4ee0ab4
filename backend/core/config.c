/*
 * Configuration: one declarative table of options (key, type, default, check,
 * why) drives the YAML reader, the defaults and config.yaml.example.
 *
 * The file is loaded with libyaml's document API so that every node keeps its
 * line; an error names "FILE:LINE: KEY: what is wrong" and the caller exits 2.
 * Keys are "section.name" with one level of nesting, as in the example.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "log.h"

/* The table's short names for the option types (config.h). */
#define T_STR     CONFIG_STR
#define T_INT     CONFIG_INT
#define T_BOOL    CONFIG_BOOL
#define T_ENUM    CONFIG_ENUM
#define T_STRLIST CONFIG_STRLIST
#define T_DIRLIST CONFIG_DIRLIST

static const char *check_http_url(const char *v)
{
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
        return "must be an http:// or https:// URL";
    return NULL;
}

static const char *check_http_url_or_empty(const char *v)
{
    return *v ? check_http_url(v) : NULL;
}

static const char *check_rtsp_url_or_empty(const char *v)
{
    if (*v && strncmp(v, "rtsp://", 7) != 0 && strncmp(v, "rtsps://", 8) != 0)
        return "must be an rtsp:// URL";
    return NULL;
}

static const char *check_db_name(const char *v)
{
    /* CouchDB's rule: ^[a-z][a-z0-9_$()+/-]*$ ; we keep '/' out, it breaks URLs. */
    if (!*v || *v < 'a' || *v > 'z')
        return "must start with a lower-case letter";
    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("_$()+-", *p)))
            return "may hold only a-z, 0-9 and _$()+-";
    if (strlen(v) > 200)
        return "is too long";
    return NULL;
}

static const char *const log_levels[] = {"fatal", "error", "warn", "info", "debug", NULL};

#define OFF(f) offsetof(struct config, f)

static const struct config_option options[] = {
    {"media", T_DIRLIST, OFF(media), NULL, 0, 0, NULL, NULL,
     "Music folders scanned into the library (each must exist; relative to this file)."},

    {"database.url", T_STR, OFF(database.url), "http://admin:admin@127.0.0.1:5984", 0, 0, NULL,
     check_http_url,
     "CouchDB server URL with admin credentials: imesd and imes act as the backend."},
    {"database.name", T_STR, OFF(database.name), "imes", 0, 0, NULL, check_db_name,
     "Main database; the private one (tokens, history, queues) is <name>_private."},
    {"database.origin", T_STR, OFF(database.origin), "", 0, 0, NULL, check_http_url_or_empty,
     "Public URL the web app is served from (empty: the CouchDB URL without credentials)."},

    {"backend.bind_host", T_STR, OFF(backend.bind_host), "0.0.0.0", 0, 0, NULL, NULL,
     "Address imesd listens on for HTTP and RTSP (0.0.0.0 or :: for every interface)."},
    {"backend.bind_port", T_INT, OFF(backend.bind_port), "9997", 1, 65535, NULL, NULL,
     "TCP port for HTTP and RTSP; the request line tells them apart."},
    {"backend.rtp_port", T_INT, OFF(backend.rtp_port), "9998", 1, 65534, NULL, NULL,
     "UDP port RTP is sent from; RTCP uses the next port."},
    {"backend.public", T_STR, OFF(backend.public_url), "", 0, 0, NULL, check_http_url_or_empty,
     "Base URL devices use for HTTP streams (empty: http://<bind_host or localhost>:<bind_port>)."},
    {"backend.public_rtsp", T_STR, OFF(backend.public_rtsp), "", 0, 0, NULL,
     check_rtsp_url_or_empty, "Base URL for RTSP (empty: rtsp:// on the host and port of public)."},
    {"backend.public_delegate", T_STR, OFF(backend.public_delegate), "", 0, 0, NULL,
     check_http_url_or_empty, "Base URL printed for delegate pause/unpause links (empty: public)."},
    {"backend.workers", T_INT, OFF(backend.workers), "0", 0, 256, NULL, NULL,
     "Worker threads for decoding, encoding and scanning (0: one per CPU core)."},
    {"backend.max_connections", T_INT, OFF(backend.max_connections), "1024", 1, 1000000, NULL, NULL,
     "Open HTTP/RTSP connections at most; more are answered 503."},
    {"backend.header_timeout", T_INT, OFF(backend.header_timeout), "10", 1, 3600, NULL, NULL,
     "Seconds a client has to send a whole request head (against slow senders)."},
    {"backend.idle_timeout", T_INT, OFF(backend.idle_timeout), "30", 1, 86400, NULL, NULL,
     "Seconds an idle keep-alive connection stays open."},

    {"scrobbler.lastfm_key", T_STR, OFF(scrobbler.lastfm_key), "", 0, 0, NULL, NULL,
     "Last.fm API account key (www.last.fm/api/account/create); empty: Last.fm is off."},
    {"scrobbler.lastfm_secret", T_STR, OFF(scrobbler.lastfm_secret), "", 0, 0, NULL, NULL,
     "Last.fm shared secret that signs every request (api_sig)."},
    {"scrobbler.lastfm_api", T_STR, OFF(scrobbler.lastfm_api), "https://ws.audioscrobbler.com/2.0/",
     0, 0, NULL, check_http_url, "Last.fm API endpoint (Audioscrobbler 2.0)."},
    {"scrobbler.lastfm_auth", T_STR, OFF(scrobbler.lastfm_auth), "https://www.last.fm/api/auth/", 0,
     0, NULL, check_http_url, "Page where a user approves IMES for their Last.fm account."},
    {"scrobbler.librefm_key", T_STR, OFF(scrobbler.librefm_key), "", 0, 0, NULL, NULL,
     "Libre.fm API key (any 32 characters will do); empty: Libre.fm is off."},
    {"scrobbler.librefm_secret", T_STR, OFF(scrobbler.librefm_secret), "", 0, 0, NULL, NULL,
     "Libre.fm shared secret (api_sig)."},
    {"scrobbler.librefm_api", T_STR, OFF(scrobbler.librefm_api), "https://libre.fm/2.0/", 0, 0,
     NULL, check_http_url, "Libre.fm API endpoint (Audioscrobbler 2.0)."},
    {"scrobbler.librefm_auth", T_STR, OFF(scrobbler.librefm_auth), "https://libre.fm/api/auth/", 0,
     0, NULL, check_http_url, "Page where a user approves IMES for their Libre.fm account."},
    {"scrobbler.listenbrainz_api", T_STR, OFF(scrobbler.listenbrainz_api),
     "https://api.listenbrainz.org", 0, 0, NULL, check_http_url_or_empty,
     "ListenBrainz API root (users paste their own token); empty: ListenBrainz is off."},

    {"log.level", T_ENUM, OFF(log.level), "info", 0, 0, log_levels, NULL,
     "Least severity logged: fatal, error, warn, info or debug."},
    {"log.file", T_STR, OFF(log.file), "", 0, 0, NULL, NULL,
     "Log file (empty: standard error); reopened on SIGHUP for log rotation."},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static const struct config_schema imesd_schema = {
    .options = options,
    .count = N_OPTIONS,
    .intro = "# IMES configuration: every option with its default and why it is there.\n"
             "# Generated from the option table in backend/core/config.c by\n"
             "# `imesd --example-config`; a test keeps the two identical.\n"
             "# Copy it to config.yaml and change what you need; unknown keys are errors.\n",
};

static void *field(void *cfg, const struct config_option *o)
{
    return (char *)cfg + o->offset;
}

static void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int strlist_add(struct strlist *l, const char *s)
{
    char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    l->v = v;
    if (!(l->v[l->n] = strdup(s)))
        return -ENOMEM;
    l->n++;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL};
    static const char *const no[] = {"false", "no", "off", "0", NULL};
    for (int i = 0; yes[i]; i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
    for (int i = 0; no[i]; i++)
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    return -1;
}

/* Sets a scalar option from text. Returns NULL or what is wrong. */
static const char *set_scalar(void *cfg, const struct config_option *o, const char *v)
{
    void *f = field(cfg, o);
    switch (o->type) {
    case T_STR:
    case T_ENUM: {
        if (o->type == T_ENUM) {
            int ok = 0;
            for (int i = 0; o->choices[i]; i++)
                ok |= strcmp(v, o->choices[i]) == 0;
            if (!ok)
                return "is not one of the allowed values";
        }
        if (o->check) {
            const char *why = o->check(v);
            if (why)
                return why;
        }
        char *s = strdup(v);
        if (!s)
            return "out of memory";
        free(*(char **)f);
        *(char **)f = s;
        return NULL;
    }
    case T_INT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (!*v || *end || errno)
            return "must be a whole number";
        if (n < o->min || n > o->max)
            return "is out of range";
        *(int *)f = (int)n;
        return NULL;
    }
    case T_BOOL: {
        int b;
        if (parse_bool(v, &b) < 0)
            return "must be true or false";
        *(int *)f = b;
        return NULL;
    }
    default:
        return "must be a list";
    }
}

void config_schema_defaults(const struct config_schema *s, void *cfg)
{
    for (size_t i = 0; i < s->count; i++) {
        const struct config_option *o = &s->options[i];
        if (o->type == T_STRLIST || o->type == T_DIRLIST)
            continue;
        const char *why = set_scalar(cfg, o, o->def);
        if (why) /* a broken default is a bug in the table above */
            abort();
    }
}

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    config_schema_defaults(&imesd_schema, cfg);
}

void config_schema_free(const struct config_schema *s, void *cfg)
{
    for (size_t i = 0; i < s->count; i++) {
        const struct config_option *o = &s->options[i];
        void *f = field(cfg, o);
        if (o->type == T_STR || o->type == T_ENUM) {
            free(*(char **)f);
            *(char **)f = NULL;
        } else if (o->type == T_STRLIST || o->type == T_DIRLIST) {
            strlist_free(f);
        }
    }
}

void config_free(struct config *cfg)
{
    config_schema_free(&imesd_schema, cfg);
    free(cfg->database.private_name);
    cfg->database.private_name = NULL;
    free(cfg->path);
    cfg->path = NULL;
}

struct loader {
    const struct config_schema *schema;
    void *cfg;
    yaml_document_t *doc;
    const char *name; /* file name for messages */
    char *dir;        /* folder of the file, for relative media paths */
    char *err;
    size_t errlen;
    unsigned char *seen; /* per option of the schema */
};

static int fail(struct loader *ld, const yaml_node_t *node, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct loader *ld, const yaml_node_t *node, const char *key, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    unsigned long line = node ? (unsigned long)node->start_mark.line + 1 : 1;
    if (key)
        snprintf(ld->err, ld->errlen, "%s:%lu: %s: %s", ld->name, line, key, what);
    else
        snprintf(ld->err, ld->errlen, "%s:%lu: %s", ld->name, line, what);
    return -1;
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain "~", "null" or empty scalar. */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = scalar(n);
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0;
}

static int set_dir(struct loader *ld, const yaml_node_t *n, const char *key, struct strlist *l)
{
    if (n->type != YAML_SCALAR_NODE)
        return fail(ld, n, key, "each entry must be a folder path");
    const char *p = scalar(n);
    if (!*p)
        return fail(ld, n, key, "empty folder path");
    char joined[PATH_MAX];
    if (p[0] != '/' && ld->dir)
        snprintf(joined, sizeof(joined), "%s/%s", ld->dir, p);
    else
        snprintf(joined, sizeof(joined), "%s", p);
    struct stat st;
    if (stat(joined, &st) < 0)
        return fail(ld, n, key, "%s: %s", p, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail(ld, n, key, "%s: not a folder", p);
    char real[PATH_MAX];
    if (!realpath(joined, real))
        return fail(ld, n, key, "%s: %s", p, strerror(errno));
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], real) == 0)
            return fail(ld, n, key, "%s: listed twice", p);
    if (strlist_add(l, real) < 0)
        return fail(ld, n, key, "out of memory");
    return 0;
}

static int set_option(struct loader *ld, const struct config_option *o, const yaml_node_t *v)
{
    void *f = field(ld->cfg, o);
    if (o->type == T_STRLIST || o->type == T_DIRLIST) {
        struct strlist *l = f;
        strlist_free(l);
        if (is_null(v))
            return 0;
        if (v->type == YAML_SCALAR_NODE) /* one folder written without a list */
            return o->type == T_DIRLIST ? set_dir(ld, v, o->key, l)
                                        : (strlist_add(l, scalar(v)) < 0 ? -1 : 0);
        if (v->type != YAML_SEQUENCE_NODE)
            return fail(ld, v, o->key, "must be a list");
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
            if (o->type == T_DIRLIST) {
                if (set_dir(ld, item, o->key, l) < 0)
                    return -1;
            } else if (item->type != YAML_SCALAR_NODE || strlist_add(l, scalar(item)) < 0) {
                return fail(ld, item, o->key, "each entry must be a string");
            }
        }
        return 0;
    }
    if (v->type != YAML_SCALAR_NODE)
        return fail(ld, v, o->key, "must be a single value, not a %s",
                    v->type == YAML_MAPPING_NODE ? "mapping" : "list");
    const char *text = scalar(v);
    if (is_null(v) && o->type != T_STR)
        return fail(ld, v, o->key, "has no value");
    if (is_null(v))
        text = "";
    const char *why = set_scalar(ld->cfg, o, text);
    if (why) {
        if (o->type == T_INT)
            return fail(ld, v, o->key, "\"%s\" %s (%ld to %ld)", text, why, o->min, o->max);
        if (o->type == T_ENUM) {
            char list[128] = "";
            for (int i = 0; o->choices[i]; i++) {
                strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
                strncat(list, o->choices[i], sizeof(list) - strlen(list) - 1);
            }
            return fail(ld, v, o->key, "\"%s\" %s (%s)", text, why, list);
        }
        return fail(ld, v, o->key, "\"%s\" %s", text, why);
    }
    return 0;
}

static const struct config_option *find_option(const struct config_schema *s, const char *key)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->options[i].key, key) == 0)
            return &s->options[i];
    return NULL;
}

static int is_section(const struct config_schema *s, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < s->count; i++)
        if (strncmp(s->options[i].key, name, n) == 0 && s->options[i].key[n] == '.')
            return 1;
    return 0;
}

static int load_mapping(struct loader *ld, const yaml_node_t *map, const char *prefix)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return fail(ld, k, prefix, "keys must be plain names");
        char key[256];
        snprintf(key, sizeof(key), "%s%s%s", prefix ? prefix : "", prefix ? "." : "", scalar(k));
        const struct config_option *o = find_option(ld->schema, key);
        if (o) {
            size_t idx = (size_t)(o - ld->schema->options);
            if (ld->seen[idx])
                return fail(ld, k, key, "set twice");
            ld->seen[idx] = 1;
            if (set_option(ld, o, v) < 0)
                return -1;
            continue;
        }
        if (!prefix && is_section(ld->schema, key)) {
            if (is_null(v))
                continue; /* "database:" with nothing under it: all defaults */
            if (v->type != YAML_MAPPING_NODE)
                return fail(ld, v, key, "must be a section of options");
            if (load_mapping(ld, v, key) < 0)
                return -1;
            continue;
        }
        return fail(ld, k, key, "unknown key");
    }
    return 0;
}

static int derive_urls(struct config *cfg);

static int load_parser(const struct config_schema *s, void *cfg, yaml_parser_t *parser,
                       const char *name, char *errbuf, size_t errlen)
{
    struct loader ld = {.schema = s, .cfg = cfg, .name = name, .err = errbuf, .errlen = errlen};
    yaml_document_t doc;
    int ret = -1;

    if (!(ld.seen = calloc(s->count ? s->count : 1, 1))) {
        snprintf(errbuf, errlen, "%s: out of memory", name);
        return -1;
    }
    if (!yaml_parser_load(parser, &doc)) {
        snprintf(errbuf, errlen, "%s:%lu: syntax error: %s%s%s", name,
                 (unsigned long)parser->problem_mark.line + 1,
                 parser->problem ? parser->problem : "invalid YAML", parser->context ? " " : "",
                 parser->context ? parser->context : "");
        free(ld.seen);
        return -1;
    }
    ld.doc = &doc;
    char *slash = strrchr(name, '/');
    ld.dir = slash ? strndup(name, (size_t)(slash - name)) : strdup(".");

    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || is_null(root))
        ret = 0; /* an empty file: all defaults */
    else if (root->type != YAML_MAPPING_NODE)
        ret = fail(&ld, root, NULL, "the top level must be a mapping of sections");
    else
        ret = load_mapping(&ld, root, NULL);

    free(ld.dir);
    free(ld.seen);
    yaml_document_delete(&doc);
    return ret;
}

int config_schema_load_string(const struct config_schema *s, void *cfg, const char *name,
                              const char *yaml, size_t len, char *errbuf, size_t errlen)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(errbuf, errlen, "%s: out of memory", name);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    int r = load_parser(s, cfg, &parser, name, errbuf, errlen);
    yaml_parser_delete(&parser);
    return r;
}

int config_load_string(struct config *cfg, const char *name, const char *yaml, size_t len,
                       char *errbuf, size_t errlen)
{
    int r = config_schema_load_string(&imesd_schema, cfg, name, yaml, len, errbuf, errlen);
    if (r == 0 && derive_urls(cfg) < 0) {
        snprintf(errbuf, errlen, "%s: out of memory", name);
        return -1;
    }
    return r;
}

/* Fills the derived values: URLs left empty, the private database name. */
static int derive_urls(struct config *cfg)
{
    char url[512];
    const char *h = cfg->backend.bind_host;
    int wildcard = !*h || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0;
    int v6 = !wildcard && strchr(h, ':');
    if (!*cfg->backend.public_url) {
        snprintf(url, sizeof(url), "http://%s%s%s:%d", v6 ? "[" : "", wildcard ? "localhost" : h,
                 v6 ? "]" : "", cfg->backend.bind_port);
        free(cfg->backend.public_url);
        cfg->backend.public_url = strdup(url);
    }
    if (!*cfg->backend.public_rtsp) {
        /* the host and port of public, with the rtsp scheme */
        const char *hostport = strstr(cfg->backend.public_url, "://") + 3;
        size_t n = strcspn(hostport, "/");
        snprintf(url, sizeof(url), "rtsp://%.*s", (int)n, hostport);
        free(cfg->backend.public_rtsp);
        cfg->backend.public_rtsp = strdup(url);
    }
    free(cfg->database.private_name);
    if (asprintf(&cfg->database.private_name, "%s_private", cfg->database.name) < 0) {
        cfg->database.private_name = NULL;
        return -ENOMEM;
    }
    if (!*cfg->backend.public_delegate) {
        free(cfg->backend.public_delegate);
        cfg->backend.public_delegate = strdup(cfg->backend.public_url);
    }
    /* URLs are joined with paths: keep them without a trailing slash. */
    char *const urls[] = {cfg->backend.public_url, cfg->backend.public_rtsp,
                          cfg->backend.public_delegate, cfg->database.url};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        if (!urls[i])
            return -ENOMEM;
        size_t n = strlen(urls[i]);
        while (n > 0 && urls[i][n - 1] == '/')
            urls[i][--n] = '\0';
    }
    return 0;
}

int config_schema_load(const struct config_schema *s, void *cfg, const char *path, char *errbuf,
                       size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        snprintf(errbuf, errlen, "%s: out of memory", path);
        return -1;
    }
    yaml_parser_set_input_file(&parser, f);
    int r = load_parser(s, cfg, &parser, path, errbuf, errlen);
    yaml_parser_delete(&parser);
    fclose(f);
    return r;
}

int config_load(struct config *cfg, const char *path, char *errbuf, size_t errlen)
{
    int r = config_schema_load(&imesd_schema, cfg, path, errbuf, errlen);
    if (r == 0 && derive_urls(cfg) < 0) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
        return -1;
    }
    if (r == 0 && !(cfg->path = strdup(path)))
        return -1;
    return r;
}

char *config_database_url_safe(const struct config *cfg)
{
    const char *u = cfg->database.url;
    const char *scheme_end = strstr(u, "://");
    const char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
    const char *slash = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
    if (!at || (slash && slash < at))
        return strdup(u);
    size_t n = (size_t)(scheme_end + 3 - u);
    char *out = malloc(strlen(u) + 1);
    if (!out)
        return NULL;
    memcpy(out, u, n);
    strcpy(out + n, at + 1);
    return out;
}

/* A default as it reads in YAML: strings that YAML would misread are quoted. */
static void write_value(FILE *out, const struct config_option *o)
{
    if (o->type == T_STRLIST || o->type == T_DIRLIST) {
        fputs("[]", out);
        return;
    }
    const char *d = o->def;
    int quote = o->type == T_STR && (!*d || strpbrk(d, ":#{}[],&*!|>'\"%@`") != NULL);
    fprintf(out, quote ? "\"%s\"" : "%s", d);
}

void config_write_example(FILE *out)
{
    config_schema_write_example(&imesd_schema, out);
}

void config_schema_write_example(const struct config_schema *s, FILE *out)
{
    fputs(s->intro ? s->intro : "", out);
    const char *section = NULL;
    size_t section_len = 0;
    for (size_t i = 0; i < s->count; i++) {
        const struct config_option *o = &s->options[i];
        const char *dot = strchr(o->key, '.');
        if (!dot) {
            section = NULL;
            fprintf(out, "\n# %s\n%s: ", o->why, o->key);
            write_value(out, o);
            fputc('\n', out);
            continue;
        }
        size_t len = (size_t)(dot - o->key);
        if (!section || len != section_len || strncmp(section, o->key, len) != 0) {
            section = o->key;
            section_len = len;
            fprintf(out, "\n%.*s:\n", (int)len, o->key);
        }
        fprintf(out, "  # %s\n  %s: ", o->why, dot + 1);
        write_value(out, o);
        fputc('\n', out);
    }
}
