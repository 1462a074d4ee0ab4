/*
 * Logging by severity and module domain, for operators: one line per event.
 *
 * LOG(E_INFO, L_COUCH, "GET %s: %d", path, status);
 *
 * The level is tested before the arguments are formatted, so a debug line costs
 * a compare when debug is off. Output goes to stderr or to a file; log_reopen()
 * (called on SIGHUP) reopens that file so logrotate can move it away.
 * Thread: any (one write(2) per line, so lines from threads never interleave).
 */
#ifndef IMES_LOG_H
#define IMES_LOG_H

#include <stdarg.h>

enum log_severity { E_FATAL = 0, E_ERROR, E_WARN, E_INFO, E_DEBUG };

enum log_domain {
    L_MAIN = 0,
    L_CONFIG,
    L_WORKER,
    L_COUCH,
    L_CHANGES,
    L_HTTP,
    L_RTSP,
    L_CLI,
    L_LIBRARY,
    L_MEDIA,
    L_STATE,
    L_SCROBBLE,
    L_MATRIZ,
    L_DOMAIN_COUNT
};

extern int log_level;

/* Level names: "fatal", "error", "warn", "info", "debug". Returns -1 if unknown. */
int log_level_parse(const char *name);

/* path NULL or "" logs to stderr. Returns 0 or -errno. */
int log_open(const char *path, int level);
int log_reopen(void);
void log_close(void);

void log_write(int severity, int domain, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG(sev, dom, ...)                                                                         \
    do {                                                                                           \
        if ((sev) <= log_level)                                                                    \
            log_write((sev), (dom), __VA_ARGS__);                                                  \
    } while (0)

#endif
