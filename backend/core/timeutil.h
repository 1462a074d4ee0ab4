/*
 * Time, the two ways IMES needs it: the monotonic clock for deadlines and
 * media pacing (wall-clock time jumps), and ISO 8601 UTC text for documents.
 * Thread: any.
 */
#ifndef IMES_TIMEUTIL_H
#define IMES_TIMEUTIL_H

#include <stddef.h>
#include <time.h>

#define TIMEUTIL_ISO8601_LEN 32 /* "2026-11-21T07:00:00Z" and its NUL, with room */

/* Seconds on CLOCK_MONOTONIC. */
double timeutil_mono(void);

/* t as "YYYY-MM-DDTHH:MM:SSZ" into out (TIMEUTIL_ISO8601_LEN bytes). */
void timeutil_iso8601(time_t t, char *out, size_t len);

#endif
