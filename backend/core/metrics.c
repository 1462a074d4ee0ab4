/*
 * Prometheus text registry: see metrics.h. A fixed table of collectors is
 * enough: modules register once at start (httpd, channels, couch), so there is
 * nothing to grow and nothing to free at exit.
 */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

struct collector {
    metrics_collector fn;
    void *arg;
};

static struct collector collectors[METRICS_MAX_COLLECTORS];
static size_t ncollectors;

int metrics_add_collector(metrics_collector fn, void *arg)
{
    for (size_t i = 0; i < ncollectors; i++)
        if (collectors[i].fn == fn && collectors[i].arg == arg)
            return -EEXIST;
    if (ncollectors >= METRICS_MAX_COLLECTORS)
        return -ENOSPC;
    collectors[ncollectors].fn = fn;
    collectors[ncollectors].arg = arg;
    ncollectors++;
    return 0;
}

void metrics_remove_collector(metrics_collector fn, void *arg)
{
    for (size_t i = 0; i < ncollectors; i++) {
        if (collectors[i].fn == fn && collectors[i].arg == arg) {
            memmove(&collectors[i], &collectors[i + 1],
                    (ncollectors - i - 1) * sizeof(collectors[0]));
            ncollectors--;
            return;
        }
    }
}

int metrics_render(struct buf *out)
{
    for (size_t i = 0; i < ncollectors; i++) {
        int r = collectors[i].fn(out, collectors[i].arg);
        if (r < 0)
            return r;
    }
    return 0;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* (also used for label names, which may not have ':'
 * but nobody here would write one). */
static int valid_name(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return 0;
    return 1;
}

/* Escapes backslash and newline (HELP text), and '"' too for label values. */
static int append_escaped(struct buf *out, const char *s, int quote)
{
    int r = 0;
    for (; *s && r == 0; s++) {
        if (*s == '\\')
            r = buf_puts(out, "\\\\");
        else if (*s == '\n')
            r = buf_puts(out, "\\n");
        else if (*s == '"' && quote)
            r = buf_puts(out, "\\\"");
        else
            r = buf_append(out, s, 1);
    }
    return r;
}

int metrics_family(struct buf *out, const char *name, const char *type, const char *help)
{
    if (!valid_name(name))
        return -EINVAL;
    int r = buf_printf(out, "# HELP %s ", name);
    if (r == 0)
        r = append_escaped(out, help ? help : "", 0);
    if (r == 0)
        r = buf_printf(out, "\n# TYPE %s %s\n", name, type);
    return r;
}

static int append_value(struct buf *out, double v)
{
    if (isnan(v))
        return buf_puts(out, "NaN\n");
    if (isinf(v))
        return buf_puts(out, v > 0 ? "+Inf\n" : "-Inf\n");
    /* Counters are integers: write them so, exactly up to 2^53. */
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return buf_printf(out, "%.0f\n", v);
    return buf_printf(out, "%.17g\n", v);
}

int metrics_sample(struct buf *out, const char *name, const char *label, const char *label_value,
                   double value)
{
    if (!valid_name(name) || (label && !valid_name(label)))
        return -EINVAL;
    int r = buf_puts(out, name);
    if (r == 0 && label) {
        r = buf_printf(out, "{%s=\"", label);
        if (r == 0)
            r = append_escaped(out, label_value ? label_value : "", 1);
        if (r == 0)
            r = buf_puts(out, "\"}");
    }
    if (r == 0)
        r = buf_puts(out, " ");
    if (r == 0)
        r = append_value(out, value);
    return r;
}

int metrics_counter(struct buf *out, const char *name, const char *help, double value)
{
    int r = metrics_family(out, name, "counter", help);
    return r ? r : metrics_sample(out, name, NULL, NULL, value);
}

int metrics_gauge(struct buf *out, const char *name, const char *help, double value)
{
    int r = metrics_family(out, name, "gauge", help);
    return r ? r : metrics_sample(out, name, NULL, NULL, value);
}
