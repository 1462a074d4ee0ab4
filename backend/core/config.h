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

/* The URL of database.url with user:password removed, for messages. Caller frees. */
char *config_database_url_safe(const struct config *cfg);

#endif
