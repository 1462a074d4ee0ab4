/*
 * Configuration: config.yaml read with libyaml into one declarative table of
 * options (key, type, default, check, why). Every consumer reads the typed
 * struct config; nothing else parses YAML.
 *
 * config.yaml.example is generated from the same table (config_write_example)
 * and a test keeps the committed copy identical, so the two never drift.
 */
#ifndef IMES_CONFIG_H
#define IMES_CONFIG_H

#include <stddef.h>
#include <stdio.h>

struct strlist {
    char **v;
    size_t n;
};

struct config {
    char *path; /* the file it was read from, or NULL for defaults only */

    struct strlist media; /* music folders */

    struct {
        char *url; /* http://user:pass@host:port, admin credentials */
        char *name;
        char *origin;
        char *private_name; /* derived: <name>_private (tokens, history, queues) */
    } database;

    struct {
        char *bind_host;
        int bind_port;
        int rtp_port;
        char *public_url;      /* backend.public */
        char *public_rtsp;     /* backend.public_rtsp */
        char *public_delegate; /* backend.public_delegate */
        int workers;
        int max_connections;
        int header_timeout;
        int idle_timeout;
    } backend;

    struct {
        char *lastfm_key, *lastfm_secret, *lastfm_api, *lastfm_auth;
        char *librefm_key, *librefm_secret, *librefm_api, *librefm_auth;
        char *listenbrainz_api;
    } scrobbler;

    struct {
        char *level;
        char *file;
    } log;
};

/* Error text is written to errbuf as "FILE:LINE: KEY: what is wrong". */
#define CONFIG_ERRLEN 512

/* Fills cfg with every default. */
void config_defaults(struct config *cfg);

/* Reads path over the defaults. Returns 0, or -1 with errbuf filled (the caller
 * prints it and exits with status 2). Unset values keep their defaults. */
int config_load(struct config *cfg, const char *path, char *errbuf, size_t errlen);

/* The same, from a string (tests, fuzzing); name is used in messages. */
int config_load_string(struct config *cfg, const char *name, const char *yaml, size_t len,
                       char *errbuf, size_t errlen);

void config_free(struct config *cfg);

/* Writes config.yaml.example: every option, its default and one line of why. */
void config_write_example(FILE *out);

/* ---- the machinery, for other programs' files (the Matriz peer's peer.yaml) ----
 *
 * A schema is a table of options, each a "section.name" key (or a bare top
 * key), its type, where it lives in the caller's struct (offsetof), its
 * default as YAML text, limits or choices, an extra check and one line of
 * why. Loading, defaults, freeing and the example file all come from it, with
 * the same error messages as config.yaml's. */
enum config_type {
    CONFIG_STR,     /* char * */
    CONFIG_INT,     /* int, within [min, max] */
    CONFIG_BOOL,    /* int 0/1 */
    CONFIG_ENUM,    /* char *, one of choices */
    CONFIG_STRLIST, /* struct strlist */
    CONFIG_DIRLIST, /* struct strlist of existing folders (relative to the file) */
};

struct config_option {
    const char *key;
    enum config_type type;
    size_t offset;
    const char *def;            /* as it would be written in YAML; NULL for an empty list */
    long min, max;              /* CONFIG_INT */
    const char *const *choices; /* CONFIG_ENUM, NULL-ended */
    /* Extra check of a string value: NULL if fine, else what is wrong. */
    const char *(*check)(const char *value);
    const char *why; /* one line for the example file */
};

struct config_schema {
    const struct config_option *options;
    size_t count;
    const char *intro; /* the example file's opening comment lines */
};

/* Sets every option of s in the struct at base to its default (base zeroed
 * first by the caller). */
void config_schema_defaults(const struct config_schema *s, void *base);
/* Reads a file (or a string) over the defaults: 0, or -1 with errbuf
 * "FILE:LINE: KEY: what is wrong". Unknown keys are errors. */
int config_schema_load(const struct config_schema *s, void *base, const char *path, char *errbuf,
                       size_t errlen);
int config_schema_load_string(const struct config_schema *s, void *base, const char *name,
                              const char *yaml, size_t len, char *errbuf, size_t errlen);
/* Frees the strings and lists of s's options in base. */
void config_schema_free(const struct config_schema *s, void *base);
/* Every option with its default and why. */
void config_schema_write_example(const struct config_schema *s, FILE *out);

/* The URL of database.url with user:password removed, for messages. Caller frees. */
char *config_database_url_safe(const struct config *cfg);

#endif
