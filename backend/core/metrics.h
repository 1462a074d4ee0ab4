/*
 * A tiny Prometheus registry: modules register a collector that appends text
 * exposition lines (format 0.0.4) to a buffer, and /metrics renders them all.
 * Values are read when rendered, so modules keep plain counters in their own
 * structs and nothing is locked or copied in between.
 *
 *     static int httpd_collect(struct buf *out, void *arg)
 *     {
 *         struct httpd *h = arg;
 *         int r = metrics_counter(out, "imes_http_timeouts_total",
 *                                 "Connections cut off by a timeout.", h->timeouts);
 *         if (r == 0)
 *             r = metrics_family(out, "imes_http_requests_total", "counter", "Requests.");
 *         if (r == 0)
 *             r = metrics_sample(out, "imes_http_requests_total", "class", "2xx", h->c2xx);
 *         return r;
 *     }
 *     metrics_add_collector(httpd_collect, h);  ... metrics_remove_collector(httpd_collect, h);
 *
 * The /metrics route (in imesd's main) is then:
 *
 *     struct buf b;
 *     buf_init(&b, 1 << 20);
 *     if (metrics_render(&b) == 0)
 *         httpd_respond(c, 200, METRICS_CONTENT_TYPE, b.data, b.len);
 *     else
 *         httpd_respond(c, 500, "text/plain", "metrics failed\n", 15);
 *     buf_free(&b);
 *
 * Each metric family must be written by one collector only (Prometheus rejects
 * a family that appears twice). Names are imes_<module>_<what>[_total].
 * Thread: loop (the registry and the collectors are not locked).
 */
#ifndef IMES_METRICS_H
#define IMES_METRICS_H

#include "core/buf.h"

#define METRICS_CONTENT_TYPE   "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_MAX_COLLECTORS 64

/* Appends lines to out; returns 0 or a negative errno (from buf_*: -E2BIG). */
typedef int (*metrics_collector)(struct buf *out, void *arg);

/* 0, -EEXIST if (fn, arg) is already registered, -ENOSPC past
 * METRICS_MAX_COLLECTORS. Collectors render in the order they were added. */
int metrics_add_collector(metrics_collector fn, void *arg);
/* Removes (fn, arg) if registered. */
void metrics_remove_collector(metrics_collector fn, void *arg);

/* Runs every collector into out (appending). 0 or the first collector error. */
int metrics_render(struct buf *out);

/* "# HELP name help" and "# TYPE name type" (type: "counter", "gauge",
 * "untyped"). -EINVAL for a name Prometheus would reject. */
int metrics_family(struct buf *out, const char *name, const char *type, const char *help);
/* One sample line: name{label="value"} v, or name v when label is NULL. The
 * label value is escaped; integers are written without exponent or decimals. */
int metrics_sample(struct buf *out, const char *name, const char *label, const char *label_value,
                   double value);
/* A family with a single unlabelled sample. */
int metrics_counter(struct buf *out, const char *name, const char *help, double value);
int metrics_gauge(struct buf *out, const char *name, const char *help, double value);

#endif
