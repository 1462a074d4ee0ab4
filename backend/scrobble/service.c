/*
 * The scrobble services' wire formats (see service.h). MD5 comes from GLib,
 * which imesd already links (libvips needs it); URL escaping from the
 * CouchDB client's escaper, which keeps RFC 3986's unreserved set as is.
 */
#include "scrobble/service.h"

#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "couch/couch.h"

/* last.fm: "the track must be longer than 30 seconds" and "played for at
 * least half its duration, or for 4 minutes (whichever occurs earlier)". */
#define MIN_LENGTH_S 30.0
#define ENOUGH_S     240.0

double scrobble_threshold(double duration)
{
    if (!(duration > MIN_LENGTH_S))
        return -1;
    double half = duration / 2;
    return half < ENOUGH_S ? half : ENOUGH_S;
}

static void copy_tag(char *out, size_t outlen, const json_t *v)
{
    const char *s = json_string_value(v);
    if (!s && json_is_array(v)) /* multi-valued tags: the first */
        s = json_string_value(json_array_get(v, 0));
    snprintf(out, outlen, "%s", s ? s : "");
}

int scrobble_track_from_file(const json_t *doc, struct scrobble_track *t)
{
    memset(t, 0, sizeof(*t));
    const json_t *tags = json_object_get(doc, "tags");
    copy_tag(t->artist, sizeof(t->artist), json_object_get(tags, "artist"));
    if (!t->artist[0])
        copy_tag(t->artist, sizeof(t->artist), json_object_get(tags, "albumartist"));
    copy_tag(t->title, sizeof(t->title), json_object_get(tags, "title"));
    copy_tag(t->album, sizeof(t->album), json_object_get(tags, "album"));
    double d = json_number_value(json_object_get(doc, "duration"));
    t->duration = d > 0 && d < 1e7 ? d : 0;
    return t->artist[0] && t->title[0] ? 0 : -EINVAL;
}

/* ---- Audioscrobbler 2.0 ---- */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct scrobble_param *)a)->name,
                  ((const struct scrobble_param *)b)->name);
}

int scrobble_as_signature(const struct scrobble_param *p, size_t n, const char *secret,
                          char out[33])
{
    struct scrobble_param *sorted = malloc((n ? n : 1) * sizeof(*sorted));
    if (!sorted)
        return -ENOMEM;
    if (n)
        memcpy(sorted, p, n * sizeof(*p));
    qsort(sorted, n, sizeof(*sorted), by_name);
    GChecksum *md5 = g_checksum_new(G_CHECKSUM_MD5);
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(sorted[i].name, "format") || !strcmp(sorted[i].name, "callback"))
            continue;
        g_checksum_update(md5, (const guchar *)sorted[i].name, (gssize)strlen(sorted[i].name));
        g_checksum_update(md5, (const guchar *)sorted[i].value, (gssize)strlen(sorted[i].value));
    }
    g_checksum_update(md5, (const guchar *)secret, (gssize)strlen(secret));
    snprintf(out, 33, "%s", g_checksum_get_string(md5));
    g_checksum_free(md5);
    free(sorted);
    return 0;
}

static void form_pair(struct buf *b, const char *name, const char *value)
{
    char *v = couch_escape(value);
    buf_printf(b, "%s%s=%s", b->len ? "&" : "", name, v ? v : "");
    free(v);
}

char *scrobble_as_form(const struct scrobble_param *p, size_t n, const char *secret)
{
    char sig[33];
    if (scrobble_as_signature(p, n, secret, sig) < 0)
        return NULL;
    struct buf b;
    buf_init(&b, 1u << 20);
    for (size_t i = 0; i < n; i++)
        form_pair(&b, p[i].name, p[i].value);
    form_pair(&b, "api_sig", sig);
    form_pair(&b, "format", "json");
    return buf_steal(&b);
}

enum scrobble_outcome scrobble_as_outcome(int error, long status, const json_t *body, int *code,
                                          char *msg, size_t msglen)
{
    *code = 0;
    if (error) {
        snprintf(msg, msglen, "unreachable: %s", strerror(-error));
        return SCROBBLE_RETRY;
    }
    const json_t *e = json_object_get(body, "error");
    if (e && !json_is_integer(e)) {
        snprintf(msg, msglen, "HTTP %ld with a malformed error", status);
        return status >= 500 ? SCROBBLE_RETRY : SCROBBLE_REJECTED;
    }
    if (e) {
        json_int_t v = json_integer_value(e);
        *code = v > 0 && v < 1000 ? (int)v : -1;
        const char *m = json_string_value(json_object_get(body, "message"));
        snprintf(msg, msglen, "error %d: %s", *code, m ? m : "(no message)");
        switch (*code) {
        case 8:  /* operation failed: most likely the backend service failed */
        case 11: /* service offline */
        case 16: /* temporary error processing the request */
        case 29: /* rate limit exceeded */
            return SCROBBLE_RETRY;
        case 4:  /* invalid authentication token */
        case 9:  /* invalid session key */
        case 10: /* invalid API key */
        case 14: /* token not authorized */
        case 15: /* token expired */
        case 26: /* API key suspended */
            return SCROBBLE_AUTH;
        default:
            return SCROBBLE_REJECTED;
        }
    }
    if (status >= 500 || status == 0 || status == 429) {
        snprintf(msg, msglen, "HTTP %ld", status);
        return SCROBBLE_RETRY;
    }
    if (!json_is_object(body)) {
        snprintf(msg, msglen, "HTTP %ld with an answer that is not a JSON object", status);
        return SCROBBLE_RETRY;
    }
    if (status >= 400) {
        snprintf(msg, msglen, "HTTP %ld", status);
        return SCROBBLE_REJECTED;
    }
    msg[0] = '\0';
    return SCROBBLE_OK;
}

/* ---- ListenBrainz ---- */

json_t *scrobble_lb_payload(const struct scrobble_track *t, int playing_now)
{
    json_t *info = json_pack("{s:s}", "submission_client", "IMES");
    json_t *meta = json_pack("{s:s,s:s}", "artist_name", t->artist, "track_name", t->title);
    json_t *listen = json_object();
    json_t *out =
        json_pack("{s:s,s:[]}", "listen_type", playing_now ? "playing_now" : "single", "payload");
    if (!info || !meta || !listen || !out) {
        json_decref(info);
        json_decref(meta);
        json_decref(listen);
        json_decref(out);
        return NULL;
    }
    if (t->album[0])
        json_object_set_new(meta, "release_name", json_string(t->album));
    if (t->duration > 0)
        json_object_set_new(info, "duration_ms", json_integer((json_int_t)(t->duration * 1000)));
    json_object_set_new(meta, "additional_info", info);
    if (!playing_now)
        json_object_set_new(listen, "listened_at", json_integer(t->timestamp));
    json_object_set_new(listen, "track_metadata", meta);
    json_array_append_new(json_object_get(out, "payload"), listen);
    return out;
}

enum scrobble_outcome scrobble_lb_outcome(int error, long status, const json_t *body, char *msg,
                                          size_t msglen)
{
    if (error) {
        snprintf(msg, msglen, "unreachable: %s", strerror(-error));
        return SCROBBLE_RETRY;
    }
    const char *why = json_string_value(json_object_get(body, "error"));
    if (!why)
        why = json_string_value(json_object_get(body, "message"));
    snprintf(msg, msglen, "HTTP %ld%s%s", status, why ? ": " : "", why ? why : "");
    if (status == 401 || status == 403)
        return SCROBBLE_AUTH;
    if (status >= 500 || status == 0 || status == 429)
        return SCROBBLE_RETRY;
    if (status >= 400)
        return SCROBBLE_REJECTED;
    if (status >= 200 && status < 300) {
        msg[0] = '\0';
        return SCROBBLE_OK;
    }
    return SCROBBLE_RETRY;
}
