/*
 * Folder tree -> design document (see couchapp.h). Entries are read in name
 * order so the same tree always gives the same document, which lets
 * `imes init` see that nothing changed and leave the stored one alone.
 */
#include "cli/couchapp.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* A design doc travels in one request and CouchDB caps requests at 4 GiB by
 * default (max_http_request_size), but a web app far past this is a mistake. */
#define COUCHAPP_FILE_MAX  (64u << 20)
#define COUCHAPP_DEPTH_MAX 16

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/vnd.microsoft.icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"opus", "audio/ogg"},
    {"pdf", "application/pdf"},
};

const char *couchapp_content_type(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');

    if (dot && dot[1]) {
        for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]); i++) {
            if (strcasecmp(dot + 1, content_types[i].ext) == 0)
                return content_types[i].type;
        }
    }
    return "application/octet-stream";
}

static char *base64(const unsigned char *in, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    size_t i = 0;

    if (!out)
        return NULL;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

/* Reads a whole file. Returns 0, or -1 with err filled. */
static int read_file(const char *path, unsigned char **data, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    unsigned char *d;
    size_t n;

    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 ||
        (unsigned long long)st.st_size > COUCHAPP_FILE_MAX) {
        snprintf(err, errlen, "%s: unreadable or larger than %u MiB", path,
                 COUCHAPP_FILE_MAX >> 20);
        fclose(f);
        return -1;
    }
    d = malloc((size_t)st.st_size + 1);
    if (!d) {
        snprintf(err, errlen, "%s: out of memory", path);
        fclose(f);
        return -1;
    }
    n = fread(d, 1, (size_t)st.st_size, f);
    if (ferror(f) || n != (size_t)st.st_size) {
        snprintf(err, errlen, "%s: read error", path);
        free(d);
        fclose(f);
        return -1;
    }
    fclose(f);
    d[n] = '\0';
    *data = d;
    *len = n;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of dir worth reading, sorted. Returns the count or -1. */
static int list_dir(const char *dir, char ***names_out, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len == 0 || e->d_name[len - 1] == '~')
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof(*names));
            if (!nn)
                goto oom;
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name)))
            goto oom;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    *names_out = names;
    return (int)n;
oom:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    snprintf(err, errlen, "%s: out of memory", dir);
    return -1;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Everything below _attachments/: every file, named by its path below _attachments. */
static int load_attachments(json_t *atts, const char *dir, const char *prefix, int depth, char *err,
                            size_t errlen)
{
    char **names;
    int n = list_dir(dir, &names, err, errlen), r = 0;

    if (n < 0)
        return -1;
    if (depth > COUCHAPP_DEPTH_MAX) {
        snprintf(err, errlen, "%s: folders nested too deep", dir);
        free_names(names, n);
        return -1;
    }
    for (int i = 0; i < n && r == 0; i++) {
        char path[4096], name[2048];
        struct stat st;

        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= sizeof(path) ||
            (size_t)snprintf(name, sizeof(name), "%s%s", prefix, names[i]) >= sizeof(name)) {
            snprintf(err, errlen, "%s/%s: path too long", dir, names[i]);
            r = -1;
            break;
        }
        if (stat(path, &st) != 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            r = -1;
        } else if (S_ISDIR(st.st_mode)) {
            char sub[sizeof(name) + 1];
            snprintf(sub, sizeof(sub), "%s/", name);
            r = load_attachments(atts, path, sub, depth + 1, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            unsigned char *data;
            size_t len;
            char *b64;

            if (read_file(path, &data, &len, err, errlen) < 0) {
                r = -1;
                break;
            }
            b64 = base64(data, len);
            free(data);
            if (!b64) {
                snprintf(err, errlen, "%s: out of memory", path);
                r = -1;
                break;
            }
            json_object_set_new(atts, name,
                                json_pack("{s:s, s:s}", "content_type",
                                          couchapp_content_type(names[i]), "data", b64));
            free(b64);
        }
    }
    free_names(names, n);
    return r;
}

static json_t *file_value(const char *path, bool is_json, char *err, size_t errlen)
{
    unsigned char *data;
    size_t len, start = 0;
    json_t *v;

    if (read_file(path, &data, &len, err, errlen) < 0)
        return NULL;
    if (is_json) {
        json_error_t jerr;
        v = json_loadb((const char *)data, len, JSON_DECODE_ANY, &jerr);
        if (!v)
            snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
        free(data);
        return v;
    }
    while (start < len && strchr(" \t\r\n", data[start]))
        start++;
    while (len > start && strchr(" \t\r\n", data[len - 1]))
        len--;
    v = json_stringn((const char *)data + start, len - start);
    if (!v)
        snprintf(err, errlen, "%s: not UTF-8 text", path);
    free(data);
    return v;
}

static int load_tree(json_t *obj, const char *dir, int depth, char *err, size_t errlen)
{
    char **names;
    int n = list_dir(dir, &names, err, errlen), r = 0;

    if (n < 0)
        return -1;
    if (depth > COUCHAPP_DEPTH_MAX) {
        snprintf(err, errlen, "%s: folders nested too deep", dir);
        free_names(names, n);
        return -1;
    }
    for (int i = 0; i < n && r == 0; i++) {
        char path[4096], key[1024];
        struct stat st;
        json_t *v;

        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= sizeof(path)) {
            snprintf(err, errlen, "%s/%s: path too long", dir, names[i]);
            r = -1;
            break;
        }
        if (stat(path, &st) != 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            r = -1;
            break;
        }
        snprintf(key, sizeof(key), "%s", names[i]);
        if (S_ISDIR(st.st_mode)) {
            if (depth == 0 && strcmp(names[i], "_attachments") == 0) {
                v = json_object();
                r = load_attachments(v, path, "", 0, err, errlen);
            } else {
                v = json_object();
                r = load_tree(v, path, depth + 1, err, errlen);
            }
        } else if (S_ISREG(st.st_mode)) {
            char *dot = strrchr(key, '.');
            bool is_json = dot && strcmp(dot, ".json") == 0;
            if (dot && dot != key)
                *dot = '\0';
            v = file_value(path, is_json, err, errlen);
            if (!v)
                r = -1;
        } else {
            continue; /* sockets, fifos: not part of a design doc */
        }
        if (r == 0 && json_object_get(obj, key)) {
            snprintf(err, errlen, "%s: a second entry for \"%s\"", path, key);
            r = -1;
        }
        if (r == 0)
            json_object_set_new(obj, key, v);
        else
            json_decref(v);
    }
    free_names(names, n);
    return r;
}

json_t *couchapp_load(const char *dir, char *err, size_t errlen)
{
    json_t *doc = json_object();
    char id[512];
    size_t len = strlen(dir);
    const char *base;

    while (len > 1 && dir[len - 1] == '/')
        len--;
    base = dir + len;
    while (base > dir && base[-1] != '/')
        base--;
    if (load_tree(doc, dir, 0, err, errlen) < 0) {
        json_decref(doc);
        return NULL;
    }
    if (!json_object_get(doc, "_id")) {
        snprintf(id, sizeof(id), "_design/%.*s", (int)(dir + len - base), base);
        json_object_set_new(doc, "_id", json_string(id));
    }
    if (!json_object_get(doc, "language"))
        json_object_set_new(doc, "language", json_string("javascript"));
    return doc;
}

/* A copy without _rev and with attachments reduced to content_type and data
 * (NULL data when the server sent a stub, which then never compares equal). */
static json_t *normalized(const json_t *doc)
{
    json_t *copy = json_deep_copy(doc), *atts, *att;
    const char *name;

    if (!copy)
        return NULL;
    json_object_del(copy, "_rev");
    atts = json_object_get(copy, "_attachments");
    if (json_is_object(atts)) {
        json_object_foreach(atts, name, att)
        {
            json_object_set_new(atts, name,
                                json_pack("{s:O?, s:O?}", "content_type",
                                          json_object_get(att, "content_type"), "data",
                                          json_object_get(att, "data")));
        }
    }
    return copy;
}

bool couchapp_same(const json_t *built, const json_t *stored)
{
    json_t *a = normalized(built), *b = normalized(stored);
    bool same = a && b && json_equal(a, b);

    json_decref(a);
    json_decref(b);
    return same;
}
