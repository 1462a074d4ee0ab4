/*
 * Logging: see log.h. A line is "2026-11-21 06:40:01.123 [info] couch: message".
 * Each line is formatted into a stack buffer and written with one write(2).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int log_level = E_INFO;

static const char *const severity_names[] = {"fatal", "error", "warn", "info", "debug"};
static const char *const domain_names[L_DOMAIN_COUNT] = {
    [L_MAIN] = "main",     [L_CONFIG] = "config",   [L_WORKER] = "worker",
    [L_COUCH] = "couch",   [L_CHANGES] = "changes", [L_HTTP] = "http",
    [L_RTSP] = "rtsp",     [L_CLI] = "cli",         [L_LIBRARY] = "library",
    [L_MEDIA] = "media",   [L_STATE] = "state",     [L_SCROBBLE] = "scrobble",
    [L_MATRIZ] = "matriz",
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = STDERR_FILENO;
static char log_path[4096];

int log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(severity_names) / sizeof(severity_names[0]); i++)
        if (strcmp(name, severity_names[i]) == 0)
            return (int)i;
    return -1;
}

static int open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

int log_open(const char *path, int level)
{
    log_level = level;
    if (!path || !*path)
        return 0;
    int fd = open_file(path);
    if (fd < 0)
        return fd;
    pthread_mutex_lock(&log_lock);
    snprintf(log_path, sizeof(log_path), "%s", path);
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

int log_reopen(void)
{
    if (!log_path[0])
        return 0;
    int fd = open_file(log_path);
    if (fd < 0)
        return fd;
    pthread_mutex_lock(&log_lock);
    int old = log_fd;
    log_fd = fd;
    pthread_mutex_unlock(&log_lock);
    if (old != STDERR_FILENO)
        close(old);
    return 0;
}

void log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = STDERR_FILENO;
    log_path[0] = '\0';
    pthread_mutex_unlock(&log_lock);
}

void log_write(int severity, int domain, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    if (severity < 0 || severity > E_DEBUG)
        severity = E_ERROR;
    const char *dom = (domain >= 0 && domain < L_DOMAIN_COUNT && domain_names[domain])
                          ? domain_names[domain]
                          : "?";
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02d %02d:%02d:%02d.%03d [%s] %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), severity_names[severity], dom);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: keep the line whole rather than split */
    /* Control characters from outside input would let a client forge log lines. */
    for (size_t i = (size_t)n; i < len; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = '?';
    line[len++] = '\n';

    pthread_mutex_lock(&log_lock);
    ssize_t r = write(log_fd, line, len);
    (void)r;
    pthread_mutex_unlock(&log_lock);
}
