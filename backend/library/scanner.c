/*
 * Library scanner: see scanner.h.
 *
 *   scan:  walk (worker) ─▶ diff against memory (loop) ─▶ read jobs (workers)
 *            ─▶ documents queued (loop) ─▶ _bulk_docs batches ─▶ gone files
 *            deleted ─▶ done
 *
 * Reading and writing overlap: a batch goes out as soon as it is full, so the
 * database is busy while workers read. Documents are built on the workers
 * (jansson objects owned by one thread at a time); ids and revisions are
 * assigned on the loop, which alone owns the in-memory state.
 */
#include "scanner.h"

#include <dirent.h>
#include <glib.h> /* g_base64_*: glib comes with libvips */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/hmap.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/worker.h"
#include "couch/couch.h"
#include "library/picture.h"
#include "media/decoder.h"

#define DEFAULT_BATCH      500
#define DEFAULT_READ_BATCH 16
/* Two bulk writes in flight keep pouchdb-server busy without piling up. */
#define MAX_BULKS_INFLIGHT 2
/* A lone inotify change waits this long for company before it is written. */
#define FLUSH_DELAY       0.02
#define STATUS_INTERVAL   1.0
#define PROGRESS_INTERVAL 0.1
#define FINGERPRINT_SPAN  (64 * 1024)
#define MAX_COVER_FILE    (32u << 20)
#define LOAD_PAGE         2000

struct entry {
    char id[40]; /* "file:<16 hex>" */
    char *rev;
    long long size, mtime, mtime_ns;
    char fp[41];
    unsigned gen;
};

struct walked {
    char *path;
    long long size, mtime, mtime_ns;
};

struct read_result {
    struct walked f;
    char fp[41];
    json_t *doc;      /* without _id/_rev */
    json_t *pictures; /* array of picture docs to write, or NULL */
    int missing;      /* the file vanished before it was read */
};

struct read_job {
    struct scanner *s;
    unsigned scan_id; /* 0: not part of a scan (inotify) */
    struct read_result *items;
    size_t n;
};

struct bulk_ctx {
    struct scanner *s;
    json_t *docs; /* what was sent, for conflicts */
};

struct waiter {
    scanner_done_fn done;
    void *arg;
    struct waiter *next;
};

struct scanner {
    struct ev_loop *loop;
    struct couch *couch;
    struct worker_pool *workers;
    const struct strlist *roots;
    char *db;
    int batch, read_batch;
    void (*dir_hook)(const char *, void *);
    void *dir_hook_arg;
    void (*progress_cb)(const struct scanner_progress *, int, void *);
    void *progress_arg;

    struct hmap *files; /* path -> struct entry */

    pthread_mutex_t pic_lock;
    struct hmap *pictures; /* picture id -> PIC_* (guarded by pic_lock) */
    struct hmap *covers;   /* folder -> picture id or "" (guarded), per scan */

    /* the scan in progress */
    int busy;
    unsigned gen;
    unsigned scan_id;
    char *under;
    int walking;
    int removing;
    struct hmap *gone_fp; /* "size:fp" -> path of an entry not seen (yet) */
    struct waiter *waiters;
    int queued_full;
    struct waiter *queued_waiters;
    struct scanner_progress prog;
    struct scanner_progress last;
    ev_tstamp started;
    time_t started_wall;

    /* writing */
    json_t *queue; /* docs waiting for _bulk_docs */
    int bulks_inflight;
    int scan_jobs;  /* read jobs of the current scan not finished */
    int other_jobs; /* inotify read jobs */
    int singles;    /* couch_update / put in flight */
    ev_timer flush_timer;

    ev_timer progress_timer;
    ev_timer status_timer;
    int status_busy, status_dirty;

    scanner_done_fn load_done;
    void *load_arg;
    char *load_next; /* startkey of the next page */
    int load_pictures;
};

enum { PIC_PROCESSING = 1, PIC_KNOWN = 2, PIC_BAD = 3 };

static void maybe_finish_scan(struct scanner *s);
static void flush(struct scanner *s, int force);

/* ---- helpers ---- */

static const char *const audio_exts[] = {"mp3", "mp2", "flac", "ogg", "oga",  "opus",
                                         "m4a", "m4b", "mp4",  "aac", "alac", "wma",
                                         "asf", "mpc", "mp+",  "mpp", NULL};

int scanner_is_audio_name(const char *name)
{
    if (name[0] == '.')
        return 0;
    const char *dot = strrchr(name, '.');
    if (!dot || !dot[1])
        return 0;
    for (int i = 0; audio_exts[i]; i++)
        if (strcasecmp(dot + 1, audio_exts[i]) == 0)
            return 1;
    return 0;
}

static int under_prefix(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Valid UTF-8 as it is; otherwise each byte that does not start a valid
 * sequence becomes U+FFFD, so the text can go into JSON. Caller frees. */
static char *utf8_lossy(const char *s, size_t n)
{
    char *out = malloc(n * 3 + 1);
    if (!out)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)s[i + k] >> 6) == 2;
        if (ok && len == 2 && c < 0xc2)
            ok = 0; /* overlong */
        if (ok && len == 3) {
            unsigned cp = ((c & 15u) << 12) | (((unsigned char)s[i + 1] & 63u) << 6) |
                          ((unsigned char)s[i + 2] & 63u);
            ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
        }
        if (ok && len == 4) {
            unsigned cp = ((c & 7u) << 18) | (((unsigned char)s[i + 1] & 63u) << 12);
            ok = cp >= 0x10000 && cp <= 0x10ffff;
        }
        if (ok && c == 0)
            ok = 0;
        if (ok) {
            memcpy(out + j, s + i, len);
            j += len;
            i += len;
        } else {
            memcpy(out + j, "\xef\xbf\xbd", 3);
            j += 3;
            i++;
        }
    }
    out[j] = '\0';
    return out;
}

/* Sets path, folder and name of a file document. File names are bytes; one
 * that is not UTF-8 is shown with replacement characters, and its bytes are
 * kept in path_raw (base64) so the scanner finds the document again. */
static void set_path_fields(json_t *doc, const char *path, json_t *warnings)
{
    const char *slash = strrchr(path, '/');
    size_t n = strlen(path);
    json_t *p = json_stringn(path, n);
    if (p) {
        json_object_set_new(doc, "path", p);
        json_object_del(doc, "path_raw");
    } else {
        char *lossy = utf8_lossy(path, n);
        gchar *raw = g_base64_encode((const guchar *)path, n);
        json_object_set_new(doc, "path", json_string(lossy ? lossy : ""));
        json_object_set_new(doc, "path_raw", json_string(raw));
        if (warnings)
            json_array_append_new(warnings, json_string("file name is not valid UTF-8: shown "
                                                        "with replacement characters"));
        free(lossy);
        g_free(raw);
    }
    size_t dn = slash ? (size_t)(slash - path) : 0;
    char *folder = utf8_lossy(path, dn);
    char *name = utf8_lossy(slash ? slash + 1 : path, n - (slash ? dn + 1 : 0));
    json_object_set_new(doc, "folder", json_string(folder ? folder : ""));
    json_object_set_new(doc, "name", json_string(name ? name : ""));
    free(folder);
    free(name);
}

static void new_id(char out[40])
{
    unsigned char r[8];
    if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
        /* never expected; fall back on time and address entropy */
        unsigned long long t = (unsigned long long)time(NULL) ^ (unsigned long long)(size_t)out;
        memcpy(r, &t, sizeof(r));
    }
    snprintf(out, 40, "file:%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
             r[6], r[7]);
}

static void entry_free(void *p)
{
    struct entry *e = p;
    if (e)
        free(e->rev);
    free(e);
}

static void set_rev(struct entry *e, const char *rev)
{
    free(e->rev);
    e->rev = rev ? strdup(rev) : NULL;
}

static void fp_key(char *out, size_t len, long long size, const char *fp)
{
    snprintf(out, len, "%lld:%s", size, fp);
}

/* ---- walking (worker) ---- */

struct walk_job {
    struct scanner *s;
    char **dirs;
    size_t ndirs;
    struct walked *files;
    size_t n, cap;
    unsigned long errors;
};

static int walk_add(struct walk_job *w, const char *path, const struct stat *st)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 1024;
        struct walked *f = realloc(w->files, cap * sizeof(*f));
        if (!f)
            return -ENOMEM;
        w->files = f;
        w->cap = cap;
    }
    struct walked *f = &w->files[w->n];
    if (!(f->path = strdup(path)))
        return -ENOMEM;
    f->size = (long long)st->st_size;
    f->mtime = (long long)st->st_mtim.tv_sec;
    f->mtime_ns = (long long)st->st_mtim.tv_nsec;
    w->n++;
    return 0;
}

/* Thread: worker */
static void walk_dir(struct walk_job *w, const char *dir, int depth)
{
    if (depth > 64) {
        LOG(E_WARN, L_LIBRARY, "%s: folders nested too deep; not followed", dir);
        return;
    }
    DIR *d = opendir(dir);
    if (!d) {
        LOG(E_WARN, L_LIBRARY, "cannot read folder %s: %s", dir, strerror(errno));
        w->errors++;
        return;
    }
    if (w->s->dir_hook)
        w->s->dir_hook(dir, w->s->dir_hook_arg);
    int dfd = dirfd(d);
    struct dirent *de;
    char path[PATH_MAX];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue; /* ".", "..", hidden files and folders */
        int n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (n < 0 || (size_t)n >= sizeof(path))
            continue;
        if (de->d_type == DT_DIR) {
            walk_dir(w, path, depth + 1);
            continue;
        }
        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN && de->d_type != DT_LNK)
            continue;
        if (de->d_type != DT_UNKNOWN && !scanner_is_audio_name(de->d_name))
            continue;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, 0) < 0)
            continue; /* vanished, or a dangling link */
        if (S_ISDIR(st.st_mode)) {
            if (de->d_type == DT_LNK)
                LOG(E_DEBUG, L_LIBRARY, "%s: link to a folder; not followed", path);
            else
                walk_dir(w, path, depth + 1);
        } else if (S_ISREG(st.st_mode) && scanner_is_audio_name(de->d_name)) {
            walk_add(w, path, &st);
        }
    }
    closedir(d);
}

static int cmp_walked(const void *a, const void *b)
{
    return strcmp(((const struct walked *)a)->path, ((const struct walked *)b)->path);
}

/* Thread: worker */
static void walk_work(void *arg)
{
    struct walk_job *w = arg;
    for (size_t i = 0; i < w->ndirs; i++)
        walk_dir(w, w->dirs[i], 0);
    if (w->n)
        qsort(w->files, w->n, sizeof(*w->files), cmp_walked);
}

static void walk_job_free(struct walk_job *w)
{
    for (size_t i = 0; i < w->ndirs; i++)
        free(w->dirs[i]);
    free(w->dirs);
    for (size_t i = 0; i < w->n; i++)
        free(w->files[i].path);
    free(w->files);
    free(w);
}

/* ---- reading (worker) ---- */

/* Thread: worker. Size and sha1 of the first and last 64 KiB. */
static int fingerprint(const char *path, long long size, char out[41])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t head = size < FINGERPRINT_SPAN ? (size_t)size : FINGERPRINT_SPAN;
    size_t tail = size > FINGERPRINT_SPAN ? FINGERPRINT_SPAN : 0;
    uint8_t *buf = malloc(sizeof(long long) + head + tail);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    memcpy(buf, &size, sizeof(long long));
    ssize_t a = pread(fd, buf + sizeof(long long), head, 0);
    ssize_t b = tail ? pread(fd, buf + sizeof(long long) + head, tail, size - (long long)tail) : 0;
    close(fd);
    if (a < 0 || b < 0) {
        free(buf);
        return -EIO;
    }
    picture_sha1_hex(buf, sizeof(long long) + (size_t)a + (size_t)b, out);
    free(buf);
    return 0;
}

/* Thread: worker. The picture id for these bytes; processes and queues the
 * picture document when nobody has yet. NULL if the image is unusable. */
static char *ensure_picture(struct scanner *s, const uint8_t *data, size_t len, json_t **pics,
                            const char *where)
{
    char sha[41], id[64];
    picture_sha1_hex(data, len, sha);
    snprintf(id, sizeof(id), "picture:%s", sha);
    pthread_mutex_lock(&s->pic_lock);
    intptr_t state = (intptr_t)hmap_get(s->pictures, id);
    if (!state)
        hmap_set(s->pictures, id, (void *)(intptr_t)PIC_PROCESSING, NULL);
    pthread_mutex_unlock(&s->pic_lock);
    if (state == PIC_BAD)
        return NULL;
    if (state)
        return strdup(id); /* known, or being processed by another job */

    struct picture_result r;
    char err[256];
    int rc = picture_process(data, len, &r, err, sizeof(err));
    pthread_mutex_lock(&s->pic_lock);
    hmap_set(s->pictures, id, (void *)(intptr_t)(rc < 0 ? PIC_BAD : PIC_PROCESSING), NULL);
    pthread_mutex_unlock(&s->pic_lock);
    if (rc < 0) {
        LOG(E_WARN, L_LIBRARY, "%s: cover art not usable: %s", where, err);
        return NULL;
    }
    json_t *doc = picture_doc(&r);
    picture_result_clear(&r);
    if (!doc)
        return NULL;
    if (!*pics)
        *pics = json_array();
    json_array_append_new(*pics, doc);
    return strdup(id);
}

/* Thread: worker. The folder's cover file as a picture id, or NULL. */
static char *folder_picture(struct scanner *s, const char *folder, json_t **pics)
{
    pthread_mutex_lock(&s->pic_lock);
    const char *known = hmap_get(s->covers, folder);
    char *id = known ? strdup(known) : NULL;
    pthread_mutex_unlock(&s->pic_lock);
    if (id) {
        if (!*id) {
            free(id);
            return NULL;
        }
        return id;
    }
    char path[PATH_MAX];
    char *result = NULL;
    if (picture_find_folder_cover(folder, path, sizeof(path)) == 0) {
        FILE *f = fopen(path, "rb");
        struct stat st;
        if (f && fstat(fileno(f), &st) == 0 && st.st_size > 0 &&
            (unsigned long long)st.st_size <= MAX_COVER_FILE) {
            uint8_t *data = malloc((size_t)st.st_size);
            if (data && fread(data, 1, (size_t)st.st_size, f) == (size_t)st.st_size)
                result = ensure_picture(s, data, (size_t)st.st_size, pics, path);
            free(data);
        }
        if (f)
            fclose(f);
    }
    pthread_mutex_lock(&s->pic_lock);
    char *copy = strdup(result ? result : "");
    void *old = NULL;
    if (copy && hmap_set(s->covers, folder, copy, &old) < 0)
        free(copy);
    free(old);
    pthread_mutex_unlock(&s->pic_lock);
    return result;
}

static int valid_mbid(const char *s)
{
    /* 8-4-4-4-12 hex digits */
    static const int groups[] = {8, 4, 4, 4, 12};
    for (int g = 0; g < 5; g++) {
        for (int i = 0; i < groups[g]; i++, s++)
            if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
                return 0;
        if (g < 4 && *s++ != '-')
            return 0;
    }
    return *s == '\0';
}

static int is_number_tag(const char *k)
{
    return !strcmp(k, "tracknumber") || !strcmp(k, "tracktotal") || !strcmp(k, "discnumber") ||
           !strcmp(k, "disctotal");
}

/* Thread: worker. Decoder tags -> document tags: numbers as integers, MusicBrainz
 * ids validated, everything else lists of strings as written. */
static json_t *clean_tags(json_t *tags, json_t *warnings)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(tags, k, v)
    {
        if (!json_is_array(v) || json_array_size(v) == 0)
            continue;
        if (is_number_tag(k)) {
            const char *t = json_string_value(json_array_get(v, 0));
            char *end;
            long n = t ? strtol(t, &end, 10) : -1;
            if (t && end != t && n >= 0 && n < 100000)
                json_object_set_new(out, k, json_integer(n));
            else
                json_array_append_new(warnings,
                                      json_sprintf("%s: not a number: %s", k, t ? t : "?"));
            continue;
        }
        if (!strncmp(k, "musicbrainz_", 12)) {
            json_t *ok = json_array();
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x)
            {
                const char *t = json_string_value(x);
                if (t && valid_mbid(t))
                    json_array_append(ok, x);
                else
                    json_array_append_new(
                        warnings, json_sprintf("%s: not a MusicBrainz id: %s", k, t ? t : "?"));
            }
            if (json_array_size(ok))
                json_object_set_new(out, k, ok);
            else
                json_decref(ok);
            continue;
        }
        json_object_set(out, k, v);
    }
    return out;
}

static void set_gain(json_t *rg, const char *key, double v, double lo, double hi, json_t *warnings)
{
    if (isnan(v))
        return;
    if (!isfinite(v) || v < lo || v > hi) {
        json_array_append_new(warnings, json_sprintf("replaygain %s out of range: %g", key, v));
        return;
    }
    json_object_set_new(rg, key, json_real(v));
}

/* Thread: worker */
static void read_one(struct scanner *s, struct read_result *r)
{
    char err[256] = "";
    const struct decoder_ops *ops = NULL;
    struct decoder *d = NULL;
    struct media_info info;
    struct stat st;

    if (stat(r->f.path, &st) < 0) {
        r->missing = 1;
        return;
    }
    r->f.size = (long long)st.st_size;
    r->f.mtime = (long long)st.st_mtim.tv_sec;
    r->f.mtime_ns = (long long)st.st_mtim.tv_nsec;

    const char *slash = strrchr(r->f.path, '/');
    char *folder = strndup(r->f.path, slash ? (size_t)(slash - r->f.path) : 0);
    json_t *doc = json_object();
    json_t *warnings = json_array();
    char now[32];
    timeutil_iso8601(time(NULL), now, sizeof(now));
    json_object_set_new(doc, "type", json_string("file"));
    set_path_fields(doc, r->f.path, warnings);
    json_object_set_new(doc, "size", json_integer(r->f.size));
    json_object_set_new(doc, "mtime", json_integer(r->f.mtime));
    json_object_set_new(doc, "mtime_ns", json_integer(r->f.mtime_ns));
    json_object_set_new(doc, "scanned", json_string(now));
    if (fingerprint(r->f.path, r->f.size, r->fp) == 0)
        json_object_set_new(doc, "fingerprint", json_string(r->fp));
    int rc = decoder_open_file(r->f.path, DECODER_WANT_PICTURES, &ops, &d, &info, err, sizeof(err));
    if (rc < 0) {
        if (rc == -ENOENT) {
            r->missing = 1;
            json_decref(doc);
            doc = NULL;
            goto done;
        }
        json_object_set_new(doc, "error", json_string(err[0] ? err : strerror(-rc)));
        goto done;
    }
    json_object_set_new(doc, "container", json_string(info.container));
    json_object_set_new(doc, "codec", json_string(info.codec));
    json_object_set_new(doc, "duration", json_real(info.duration));
    json_object_set_new(doc, "rate", json_integer(info.rate));
    json_object_set_new(doc, "channels", json_integer(info.channels));
    json_object_set_new(doc, "bitrate", json_integer(info.bitrate));
    if (info.bits_per_sample > 0)
        json_object_set_new(doc, "bits_per_sample", json_integer(info.bits_per_sample));
    json_object_set_new(doc, "tags", clean_tags(info.tags, warnings));
    json_t *rg = json_object();
    set_gain(rg, "track_gain", info.rg.track_gain, -60, 60, warnings);
    set_gain(rg, "track_peak", info.rg.track_peak, 0, 10, warnings);
    set_gain(rg, "album_gain", info.rg.album_gain, -60, 60, warnings);
    set_gain(rg, "album_peak", info.rg.album_peak, 0, 10, warnings);
    json_object_set_new(doc, "replaygain", rg);

    json_t *pics = json_array();
    for (size_t i = 0; i < info.npictures; i++) {
        char *id =
            ensure_picture(s, info.pictures[i].data, info.pictures[i].len, &r->pictures, r->f.path);
        if (id) {
            int dup = 0;
            size_t j;
            json_t *x;
            json_array_foreach(pics, j, x) dup |= !strcmp(json_string_value(x), id);
            if (!dup)
                json_array_append_new(pics, json_string(id));
            free(id);
        }
    }
    if (json_array_size(pics) == 0 && folder) {
        char *id = folder_picture(s, folder, &r->pictures);
        if (id) {
            json_array_append_new(pics, json_string(id));
            free(id);
        }
    }
    json_object_set_new(doc, "pictures", pics);
    media_info_clear(&info);
    ops->close(d);

done:
    if (doc && json_array_size(warnings))
        json_object_set(doc, "warnings", warnings);
    json_decref(warnings);
    free(folder);
    r->doc = doc;
}

/* Thread: worker */
static void read_work(void *arg)
{
    struct read_job *j = arg;
    for (size_t i = 0; i < j->n; i++)
        read_one(j->s, &j->items[i]);
}

/* ---- writing (loop) ---- */

static void progress_changed(struct scanner *s)
{
    s->status_dirty = 1;
}

static void queue_doc(struct scanner *s, json_t *doc)
{
    json_array_append_new(s->queue, doc);
    if (json_array_size(s->queue) >= (size_t)s->batch)
        flush(s, 0);
    else if (!ev_is_active(&s->flush_timer))
        ev_timer_start(s->loop, &s->flush_timer);
}

static void conflict_retry_done(const struct couch_response *resp, void *arg)
{
    struct scanner *s = arg;
    s->singles--;
    if (resp->error || resp->status >= 300)
        LOG(E_WARN, L_LIBRARY, "cannot write a file document: %s", resp->errmsg);
    maybe_finish_scan(s);
}

/* Replaces the stored document with ours whatever its revision (we own it). */
static int overwrite_fn(json_t *doc, void *arg)
{
    json_t *ours = arg;
    json_t *rev = json_incref(json_object_get(doc, "_rev"));
    json_object_clear(doc);
    json_object_update(doc, ours);
    if (rev)
        json_object_set_new(doc, "_rev", rev);
    else
        json_object_del(doc, "_rev");
    return 1;
}

struct overwrite_ctx {
    struct scanner *s;
    json_t *doc;
    char *path;
};

static void overwrite_done(const struct couch_response *resp, void *arg)
{
    struct overwrite_ctx *o = arg;
    struct scanner *s = o->s;
    const char *rev = json_string_value(json_object_get(resp->body, "rev"));
    struct entry *e = o->path ? hmap_get(s->files, o->path) : NULL;
    if (e && rev && !strcmp(e->id, json_string_value(json_object_get(o->doc, "_id"))))
        set_rev(e, rev);
    json_decref(o->doc);
    free(o->path);
    free(o);
    conflict_retry_done(resp, s);
}

static void bulk_done(const struct couch_response *resp, void *arg)
{
    struct bulk_ctx *b = arg;
    struct scanner *s = b->s;
    s->bulks_inflight--;
    if (resp->error || resp->status >= 300 || !json_is_array(resp->body)) {
        LOG(E_ERROR, L_LIBRARY, "writing %zu documents failed: %s", json_array_size(b->docs),
            resp->errmsg);
    } else {
        /* Results are matched by id: pouchdb-server may shuffle them. */
        struct hmap *by_id = hmap_new();
        size_t i;
        json_t *d;
        json_array_foreach(b->docs, i, d)
            hmap_set(by_id, json_string_value(json_object_get(d, "_id")), d, NULL);
        json_t *row;
        json_array_foreach(resp->body, i, row)
        {
            const char *id = json_string_value(json_object_get(row, "id"));
            json_t *sent = id ? hmap_get(by_id, id) : NULL;
            if (!sent)
                continue;
            const char *path = json_string_value(json_object_get(sent, "path"));
            const char *rev = json_string_value(json_object_get(row, "rev"));
            const char *error = json_string_value(json_object_get(row, "error"));
            int deleted = json_is_true(json_object_get(sent, "_deleted"));
            if (!error) {
                struct entry *e = path ? hmap_get(s->files, path) : NULL;
                if (e && !deleted && !strcmp(e->id, id))
                    set_rev(e, rev);
                if (!deleted)
                    s->prog.written++;
                continue;
            }
            if (!strcmp(error, "conflict") && !deleted) {
                /* Someone else wrote it (an `imes scan` beside imesd): ours is newer. */
                struct overwrite_ctx *o = calloc(1, sizeof(*o));
                o->s = s;
                o->doc = json_incref(sent);
                o->path = path ? strdup(path) : NULL;
                json_object_del(o->doc, "_rev");
                s->singles++;
                if (couch_update(s->couch, s->db, id, overwrite_fn, o->doc, overwrite_done, o) <
                    0) {
                    s->singles--;
                    json_decref(o->doc);
                    free(o->path);
                    free(o);
                }
            } else if (!deleted || strcmp(error, "not_found") != 0) {
                LOG(E_WARN, L_LIBRARY, "%s: not written: %s: %s", id, error,
                    json_string_value(json_object_get(row, "reason")) ?: "");
            }
        }
        hmap_free(&by_id, NULL);
    }
    json_decref(b->docs);
    free(b);
    progress_changed(s);
    flush(s, 0);
    maybe_finish_scan(s);
}

static void flush(struct scanner *s, int force)
{
    while (json_array_size(s->queue) > 0 && s->bulks_inflight < MAX_BULKS_INFLIGHT) {
        size_t n = json_array_size(s->queue);
        if (!force && n < (size_t)s->batch && ev_is_active(&s->flush_timer))
            return;
        json_t *docs = json_array();
        size_t take = n < (size_t)s->batch ? n : (size_t)s->batch;
        for (size_t i = 0; i < take; i++)
            json_array_append(docs, json_array_get(s->queue, i));
        for (size_t i = 0; i < take; i++)
            json_array_remove(s->queue, 0);
        struct bulk_ctx *b = calloc(1, sizeof(*b));
        b->s = s;
        b->docs = docs;
        s->bulks_inflight++;
        if (couch_bulk(s->couch, s->db, docs, bulk_done, b) < 0) {
            s->bulks_inflight--;
            LOG(E_ERROR, L_LIBRARY, "cannot send %zu documents", take);
            json_decref(docs);
            free(b);
        }
    }
}

static void flush_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct scanner *s = w->data;
    flush(s, 1);
}

static void picture_put_done(const struct couch_response *resp, void *arg)
{
    struct scanner *s = arg;
    s->singles--;
    const char *id = json_string_value(json_object_get(resp->body, "id"));
    if (!resp->error && (resp->status == 201 || resp->status == 202 || resp->status == 409)) {
        if (resp->status != 409)
            s->prog.pictures++;
    } else {
        LOG(E_WARN, L_LIBRARY, "cannot write a picture: %s", resp->errmsg);
    }
    (void)id;
    maybe_finish_scan(s);
}

static void apply_result(struct scanner *s, struct read_result *r, int in_scan)
{
    if (r->pictures) {
        size_t i;
        json_t *p;
        json_array_foreach(r->pictures, i, p)
        {
            const char *id = json_string_value(json_object_get(p, "_id"));
            pthread_mutex_lock(&s->pic_lock);
            hmap_set(s->pictures, id, (void *)(intptr_t)PIC_KNOWN, NULL);
            pthread_mutex_unlock(&s->pic_lock);
            s->singles++;
            if (couch_put(s->couch, s->db, id, p, picture_put_done, s) < 0)
                s->singles--;
        }
        json_decref(r->pictures);
        r->pictures = NULL;
    }
    if (in_scan)
        s->prog.read++;
    if (r->missing || !r->doc)
        return;
    if (json_object_get(r->doc, "error"))
        s->prog.errors++;

    struct entry *e = hmap_get(s->files, r->f.path);
    if (!e && in_scan && r->fp[0] && s->gone_fp) {
        /* A file new here but with the content of one gone: moved while
         * nobody watched. It keeps its id. */
        char key[80];
        fp_key(key, sizeof(key), r->f.size, r->fp);
        char *old_path = hmap_remove(s->gone_fp, key);
        if (old_path) {
            e = hmap_remove(s->files, old_path);
            if (e) {
                LOG(E_INFO, L_LIBRARY, "moved %s -> %s (%s)", old_path, r->f.path, e->id);
                hmap_set(s->files, r->f.path, e, NULL);
                s->prog.moved++;
            }
            free(old_path);
        }
    }
    if (!e) {
        e = calloc(1, sizeof(*e));
        new_id(e->id);
        hmap_set(s->files, r->f.path, e, NULL);
    }
    e->size = r->f.size;
    e->mtime = r->f.mtime;
    e->mtime_ns = r->f.mtime_ns;
    memcpy(e->fp, r->fp, sizeof(e->fp));
    e->gen = s->gen;
    json_object_set_new(r->doc, "_id", json_string(e->id));
    if (e->rev)
        json_object_set_new(r->doc, "_rev", json_string(e->rev));
    queue_doc(s, r->doc);
    r->doc = NULL;
}

static void read_done(void *arg, int status)
{
    struct read_job *j = arg;
    struct scanner *s = j->s;
    int in_scan = j->scan_id && j->scan_id == s->scan_id && s->busy;
    for (size_t i = 0; i < j->n; i++) {
        struct read_result *r = &j->items[i];
        if (status == 0)
            apply_result(s, r, in_scan);
        json_decref(r->doc);
        json_decref(r->pictures);
        free(r->f.path);
    }
    if (j->scan_id)
        s->scan_jobs--;
    else
        s->other_jobs--;
    free(j->items);
    free(j);
    progress_changed(s);
    maybe_finish_scan(s);
}

static int submit_reads(struct scanner *s, struct walked *files, size_t n, unsigned scan_id)
{
    for (size_t i = 0; i < n; i += (size_t)s->read_batch) {
        size_t m = n - i < (size_t)s->read_batch ? n - i : (size_t)s->read_batch;
        struct read_job *j = calloc(1, sizeof(*j));
        if (!j)
            return -ENOMEM;
        j->s = s;
        j->scan_id = scan_id;
        j->items = calloc(m, sizeof(*j->items));
        j->n = m;
        for (size_t k = 0; k < m; k++) {
            j->items[k].f = files[i + k];
            files[i + k].path = NULL; /* moved into the job */
        }
        if (scan_id)
            s->scan_jobs++;
        else
            s->other_jobs++;
        if (worker_submit(s->workers, read_work, read_done, j) < 0) {
            read_done(j, -ECANCELED);
            return -ESHUTDOWN;
        }
    }
    return 0;
}

/* ---- status document ---- */

static int status_apply(json_t *doc, void *arg)
{
    struct scanner *s = arg;
    const struct scanner_progress *p = s->busy ? &s->prog : &s->last;
    char started[32], now[32];
    timeutil_iso8601(s->started_wall, started, sizeof(started));
    timeutil_iso8601(time(NULL), now, sizeof(now));
    json_object_set_new(doc, "type", json_string("status"));
    json_object_set_new(doc, "kind", json_string("scan"));
    json_object_set_new(doc, "state", json_string(s->busy ? "scanning" : "idle"));
    json_object_set_new(doc, "phase", json_string(p->phase ? p->phase : "idle"));
    json_object_set_new(doc, "files", json_integer((json_int_t)hmap_count(s->files)));
    json_object_set_new(doc, "seen", json_integer((json_int_t)p->seen));
    json_object_set_new(doc, "unchanged", json_integer((json_int_t)p->unchanged));
    json_object_set_new(doc, "to_read", json_integer((json_int_t)p->to_read));
    json_object_set_new(doc, "read", json_integer((json_int_t)p->read));
    json_object_set_new(doc, "written", json_integer((json_int_t)p->written));
    json_object_set_new(doc, "removed", json_integer((json_int_t)p->removed));
    json_object_set_new(doc, "moved", json_integer((json_int_t)p->moved));
    json_object_set_new(doc, "errors", json_integer((json_int_t)p->errors));
    json_object_set_new(doc, "pictures", json_integer((json_int_t)p->pictures));
    json_object_set_new(doc, "started", json_string(started));
    json_object_set_new(doc, "updated", json_string(now));
    json_object_set_new(doc, "elapsed", json_real(p->elapsed));
    return 1;
}

static void status_written(const struct couch_response *resp, void *arg)
{
    struct scanner *s = arg;
    s->status_busy = 0;
    s->singles--;
    if (resp->error || resp->status >= 300)
        LOG(E_WARN, L_LIBRARY, "cannot write status:scan: %s", resp->errmsg);
    maybe_finish_scan(s);
}

static void status_write(struct scanner *s)
{
    if (s->status_busy || !s->status_dirty)
        return;
    s->status_dirty = 0;
    s->status_busy = 1;
    s->singles++;
    if (couch_update(s->couch, s->db, "status:scan", status_apply, s, status_written, s) < 0) {
        s->status_busy = 0;
        s->singles--;
    }
}

static void status_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    status_write(w->data);
}

static void progress_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct scanner *s = w->data;
    s->prog.elapsed = ev_now(loop) - s->started;
    if (s->progress_cb && s->busy)
        s->progress_cb(&s->prog, 0, s->progress_arg);
}

/* ---- the scan ---- */

static void finish_scan(struct scanner *s, int err)
{
    s->prog.elapsed = ev_now(s->loop) - s->started;
    s->prog.phase = err ? "failed" : "done";
    s->last = s->prog;
    s->busy = 0;
    ev_timer_stop(s->loop, &s->progress_timer);
    hmap_free(&s->gone_fp, free);
    free(s->under);
    s->under = NULL;
    LOG(E_INFO, L_LIBRARY,
        "scan %s in %.2f s: %lu files, %lu unchanged, %lu read, %lu written, %lu moved, %lu "
        "removed, %lu unreadable, %lu pictures",
        err ? "failed" : "done", s->prog.elapsed, s->prog.seen, s->prog.unchanged, s->prog.read,
        s->prog.written, s->prog.moved, s->prog.removed, s->prog.errors, s->prog.pictures);
    s->status_dirty = 1;
    status_write(s);
    if (s->progress_cb)
        s->progress_cb(&s->last, 1, s->progress_arg);
    struct waiter *w = s->waiters;
    s->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        if (w->done)
            w->done(err, w->arg);
        free(w);
        w = next;
    }
    if (s->queued_full) {
        s->queued_full = 0;
        struct waiter *q = s->queued_waiters;
        s->queued_waiters = NULL;
        scanner_scan(s, NULL, NULL, NULL);
        s->waiters = q;
    }
}

/* The paths of the known files that keep() accepts, collected before the
 * caller changes the map. Plain strings: paths are bytes and need not be
 * UTF-8. NULL-ended; free with g_strfreev. */
typedef int (*path_filter)(const struct scanner *s, const char *path, const struct entry *e,
                           const char *arg);

static char **collect_paths(const struct scanner *s, path_filter keep, const char *arg)
{
    GPtrArray *a = g_ptr_array_new();
    size_t pos = 0;
    const char *path;
    void *v;
    while (hmap_next(s->files, &pos, &path, &v))
        if (keep(s, path, v, arg))
            g_ptr_array_add(a, g_strdup(path));
    g_ptr_array_add(a, NULL);
    return (char **)g_ptr_array_free(a, FALSE);
}

static int is_under(const struct scanner *s, const char *path, const struct entry *e,
                    const char *dir)
{
    return under_prefix(path, dir);
}

/* Not seen by this scan, and inside what it scanned. */
static int not_seen(const struct scanner *s, const char *path, const struct entry *e,
                    const char *arg)
{
    return e->gen != s->gen && (!s->under || under_prefix(path, s->under));
}

static void remove_gone(struct scanner *s)
{
    s->removing = 1;
    s->prog.phase = "removing";
    char **gone = collect_paths(s, not_seen, NULL);
    for (char **p = gone; *p; p++) {
        struct entry *e = hmap_remove(s->files, *p);
        if (!e)
            continue;
        LOG(E_INFO, L_LIBRARY, "gone: %s (%s)", *p, e->id);
        if (e->rev) {
            queue_doc(s, json_pack("{s:s,s:s,s:b}", "_id", e->id, "_rev", e->rev, "_deleted", 1));
            s->prog.removed++;
        }
        entry_free(e);
    }
    g_strfreev(gone);
    flush(s, 1);
}

static void maybe_finish_scan(struct scanner *s)
{
    if (!s->busy || s->walking || s->scan_jobs > 0)
        return;
    if (json_array_size(s->queue) > 0) {
        flush(s, 1);
        return;
    }
    if (s->bulks_inflight > 0 || s->singles > (s->status_busy ? 1 : 0))
        return;
    if (!s->removing) {
        remove_gone(s);
        if (json_array_size(s->queue) > 0 || s->bulks_inflight > 0)
            return;
    }
    finish_scan(s, 0);
}

static void walk_done(void *arg, int status)
{
    struct walk_job *w = arg;
    struct scanner *s = w->s;
    s->walking = 0;
    if (status < 0) {
        walk_job_free(w);
        finish_scan(s, status);
        return;
    }
    s->gen++;
    s->prog.seen = w->n;
    s->prog.phase = "reading";
    /* Diff against memory: unchanged files are only marked as seen; the
     * rest are compacted to the front of the array and read. */
    size_t nread = 0;
    for (size_t i = 0; i < w->n; i++) {
        struct entry *e = hmap_get(s->files, w->files[i].path);
        if (e && e->size == w->files[i].size && e->mtime == w->files[i].mtime &&
            e->mtime_ns == w->files[i].mtime_ns) {
            e->gen = s->gen;
            s->prog.unchanged++;
            free(w->files[i].path);
            w->files[i].path = NULL;
        } else {
            struct walked keep = w->files[i];
            w->files[i].path = NULL;
            w->files[nread++] = keep;
        }
    }
    s->prog.to_read = nread;
    /* Candidates for offline moves: known files the walk did not see. */
    s->gone_fp = hmap_new();
    size_t pos = 0;
    const char *path;
    void *v;
    while (hmap_next(s->files, &pos, &path, &v)) {
        struct entry *e = v;
        if (e->gen != s->gen && e->fp[0] && (!s->under || under_prefix(path, s->under))) {
            char key[80];
            fp_key(key, sizeof(key), e->size, e->fp);
            char *old = NULL;
            hmap_set(s->gone_fp, key, strdup(path), (void **)&old);
            free(old);
        }
    }
    LOG(E_INFO, L_LIBRARY, "walked %lu audio files in %.2f s: %lu new or changed", s->prog.seen,
        ev_now(s->loop) - s->started, s->prog.to_read);
    int rc = submit_reads(s, w->files, nread, s->scan_id);
    for (size_t i = 0; i < w->n; i++)
        free(w->files[i].path);
    free(w->files);
    w->files = NULL;
    w->n = 0;
    walk_job_free(w);
    if (rc < 0)
        LOG(E_ERROR, L_LIBRARY, "cannot queue reads: %s", strerror(-rc));
    progress_changed(s);
    maybe_finish_scan(s);
}

int scanner_scan(struct scanner *s, const char *under, scanner_done_fn done, void *arg)
{
    if (s->busy) {
        /* Coalesce: one full scan follows the current one. */
        s->queued_full = 1;
        if (done) {
            struct waiter *w = calloc(1, sizeof(*w));
            w->done = done;
            w->arg = arg;
            w->next = s->queued_waiters;
            s->queued_waiters = w;
        }
        return -EINPROGRESS;
    }
    struct walk_job *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->s = s;
    if (under) {
        w->dirs = calloc(1, sizeof(char *));
        w->dirs[0] = strdup(under);
        w->ndirs = 1;
    } else {
        w->dirs = calloc(s->roots->n ? s->roots->n : 1, sizeof(char *));
        for (size_t i = 0; i < s->roots->n; i++)
            w->dirs[w->ndirs++] = strdup(s->roots->v[i]);
    }
    memset(&s->prog, 0, sizeof(s->prog));
    s->prog.phase = "walking";
    s->busy = 1;
    s->walking = 1;
    s->removing = 0;
    s->scan_id++;
    s->under = under ? strdup(under) : NULL;
    s->started = ev_now(s->loop);
    ev_now_update(s->loop);
    s->started = ev_now(s->loop);
    s->started_wall = time(NULL);
    pthread_mutex_lock(&s->pic_lock);
    hmap_free(&s->covers, free); /* cover files may have changed since */
    s->covers = hmap_new();
    pthread_mutex_unlock(&s->pic_lock);
    if (done) {
        struct waiter *wt = calloc(1, sizeof(*wt));
        wt->done = done;
        wt->arg = arg;
        s->waiters = wt;
    }
    ev_timer_start(s->loop, &s->progress_timer);
    s->status_dirty = 1;
    LOG(E_INFO, L_LIBRARY, "scan of %s started", under ? under : "every media folder");
    int rc = worker_submit(s->workers, walk_work, walk_done, w);
    if (rc < 0) {
        walk_job_free(w);
        s->walking = 0;
        finish_scan(s, rc);
        return rc;
    }
    return 0;
}

/* ---- inotify ---- */

void scanner_file_changed(struct scanner *s, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!scanner_is_audio_name(slash ? slash + 1 : path))
        return;
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    struct walked f = {.path = strdup(path)};
    if (!f.path)
        return;
    LOG(E_DEBUG, L_LIBRARY, "changed: %s", path);
    submit_reads(s, &f, 1, 0);
    free(f.path);
}

void scanner_file_removed(struct scanner *s, const char *path)
{
    struct entry *e = hmap_remove(s->files, path);
    if (!e)
        return;
    LOG(E_INFO, L_LIBRARY, "removed: %s (%s)", path, e->id);
    if (e->rev)
        queue_doc(s, json_pack("{s:s,s:s,s:b}", "_id", e->id, "_rev", e->rev, "_deleted", 1));
    entry_free(e);
}

void scanner_dir_removed(struct scanner *s, const char *dir)
{
    char **gone = collect_paths(s, is_under, dir);
    for (char **p = gone; *p; p++)
        scanner_file_removed(s, *p);
    g_strfreev(gone);
}

struct move_ctx {
    struct scanner *s;
    char *path;
    char *id;
};

static int move_fn(json_t *doc, void *arg)
{
    struct move_ctx *m = arg;
    const char *slash = strrchr(m->path, '/');
    json_object_set_new(doc, "type", json_string("file"));
    json_object_set_new(doc, "path", json_string(m->path));
    json_object_set_new(doc, "folder",
                        json_stringn(m->path, slash ? (size_t)(slash - m->path) : 0));
    json_object_set_new(doc, "name", json_string(slash ? slash + 1 : m->path));
    return 1;
}

static void move_done(const struct couch_response *resp, void *arg)
{
    struct move_ctx *m = arg;
    struct scanner *s = m->s;
    s->singles--;
    const char *rev = json_string_value(json_object_get(resp->body, "rev"));
    struct entry *e = hmap_get(s->files, m->path);
    if (resp->error || resp->status >= 300)
        LOG(E_WARN, L_LIBRARY, "cannot record the move of %s: %s", m->id, resp->errmsg);
    else if (e && rev && !strcmp(e->id, m->id))
        set_rev(e, rev);
    free(m->path);
    free(m->id);
    free(m);
    maybe_finish_scan(s);
}

static void move_one(struct scanner *s, const char *old_path, const char *new_path)
{
    struct entry *e = hmap_remove(s->files, old_path);
    if (!e) {
        scanner_file_changed(s, new_path); /* not known yet: read it */
        return;
    }
    scanner_file_removed(s, new_path); /* moved over a known file: its document goes */
    void *prev = NULL;
    hmap_set(s->files, new_path, e, &prev);
    if (prev && prev != e)
        entry_free(prev); /* moved over another file: that one is gone */
    LOG(E_INFO, L_LIBRARY, "moved %s -> %s (%s)", old_path, new_path, e->id);
    struct move_ctx *m = calloc(1, sizeof(*m));
    m->s = s;
    m->path = strdup(new_path);
    m->id = strdup(e->id);
    s->singles++;
    if (couch_update(s->couch, s->db, e->id, move_fn, m, move_done, m) < 0) {
        s->singles--;
        free(m->path);
        free(m->id);
        free(m);
    }
}

void scanner_moved(struct scanner *s, const char *old_path, const char *new_path, int is_dir)
{
    if (!is_dir) {
        const char *slash = strrchr(new_path, '/');
        if (!scanner_is_audio_name(slash ? slash + 1 : new_path)) {
            scanner_file_removed(s, old_path); /* renamed to something we don't read */
            return;
        }
        move_one(s, old_path, new_path);
        return;
    }
    size_t n = strlen(old_path);
    char **moves = collect_paths(s, is_under, old_path);
    for (char **p = moves; *p; p++) {
        char to[PATH_MAX];
        snprintf(to, sizeof(to), "%s%s", new_path, *p + n);
        move_one(s, *p, to);
    }
    g_strfreev(moves);
}

/* ---- loading ---- */

static void load_page(struct scanner *s);

static void load_finish(struct scanner *s, int err)
{
    free(s->load_next);
    s->load_next = NULL;
    if (!err)
        LOG(E_INFO, L_LIBRARY, "%zu known files, %zu known pictures", hmap_count(s->files),
            hmap_count(s->pictures));
    scanner_done_fn done = s->load_done;
    s->load_done = NULL;
    if (done)
        done(err, s->load_arg);
}

static void load_page_done(const struct couch_response *resp, void *arg)
{
    struct scanner *s = arg;
    if (resp->error || resp->status != 200) {
        LOG(E_ERROR, L_LIBRARY, "cannot load the library from %s: %s", s->db, resp->errmsg);
        load_finish(s, resp->error ? resp->error : -EIO);
        return;
    }
    json_t *rows = json_object_get(resp->body, "rows");
    size_t i, n = json_array_size(rows);
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        if (!id)
            continue;
        free(s->load_next);
        s->load_next = strdup(id);
        if (s->load_pictures) {
            pthread_mutex_lock(&s->pic_lock);
            hmap_set(s->pictures, id, (void *)(intptr_t)PIC_KNOWN, NULL);
            pthread_mutex_unlock(&s->pic_lock);
            continue;
        }
        json_t *doc = json_object_get(row, "doc");
        const char *path = json_string_value(json_object_get(doc, "path"));
        const char *raw = json_string_value(json_object_get(doc, "path_raw"));
        gchar *decoded = NULL;
        if (raw) { /* a file name that is not UTF-8: its bytes */
            gsize len = 0;
            guchar *bytes = g_base64_decode(raw, &len);
            if (bytes && len > 0 && !memchr(bytes, 0, len))
                decoded = g_strndup((const gchar *)bytes, len);
            g_free(bytes);
            path = decoded;
        }
        if (!path || !*path || strlen(id) >= sizeof(((struct entry *)0)->id)) {
            g_free(decoded);
            continue;
        }
        struct entry *e = calloc(1, sizeof(*e));
        snprintf(e->id, sizeof(e->id), "%s", id);
        set_rev(e, json_string_value(json_object_get(doc, "_rev")));
        e->size = json_integer_value(json_object_get(doc, "size"));
        e->mtime = json_integer_value(json_object_get(doc, "mtime"));
        e->mtime_ns = json_integer_value(json_object_get(doc, "mtime_ns"));
        const char *fp = json_string_value(json_object_get(doc, "fingerprint"));
        if (fp && strlen(fp) == 40)
            memcpy(e->fp, fp, 41);
        void *old = NULL;
        hmap_set(s->files, path, e, &old);
        if (old) {
            /* Two documents for one path (e.g. two scanners raced): keep one. */
            LOG(E_WARN, L_LIBRARY, "%s: two documents (%s, %s); the first is dropped", path,
                ((struct entry *)old)->id, e->id);
            queue_doc(s, json_pack("{s:s,s:s,s:b}", "_id", ((struct entry *)old)->id, "_rev",
                                   ((struct entry *)old)->rev ?: "", "_deleted", 1));
            entry_free(old);
        }
        g_free(decoded);
    }
    if (n < LOAD_PAGE) { /* the last page */
        if (!s->load_pictures) {
            s->load_pictures = 1;
            free(s->load_next);
            s->load_next = NULL;
            load_page(s);
            return;
        }
        load_finish(s, 0);
        return;
    }
    load_page(s);
}

static void load_page(struct scanner *s)
{
    const char *prefix = s->load_pictures ? "picture:" : "file:";
    /* Pictures: only their ids (known or not); files: the whole documents. */
    char *query = couch_prefix_query(prefix, s->load_next, LOAD_PAGE, !s->load_pictures);
    char *dbp = couch_path(s->db, NULL);
    char *path = NULL;
    if (!query || !dbp || asprintf(&path, "%s/%s", dbp, query) < 0)
        path = NULL;
    if (!path ||
        couch_request(s->couch, "GET", path, NULL, NULL, COUCH_RETRY_LONG, load_page_done, s) < 0)
        load_finish(s, -ENOMEM);
    free(path);
    free(dbp);
    free(query);
}

int scanner_load(struct scanner *s, scanner_done_fn done, void *arg)
{
    if (s->load_done || s->busy)
        return -EBUSY;
    s->load_done = done;
    s->load_arg = arg;
    s->load_pictures = 0;
    free(s->load_next);
    s->load_next = NULL;
    load_page(s);
    return 0;
}

/* ---- life cycle ---- */

struct scanner *scanner_new(struct ev_loop *loop, struct couch *c, struct worker_pool *workers,
                            const struct scanner_options *opt)
{
    struct scanner *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    s->couch = c;
    s->workers = workers;
    s->roots = opt->roots;
    s->db = strdup(opt->db);
    s->batch = opt->batch > 0 ? opt->batch : DEFAULT_BATCH;
    s->read_batch = opt->read_batch > 0 ? opt->read_batch : DEFAULT_READ_BATCH;
    s->dir_hook = opt->dir_hook;
    s->dir_hook_arg = opt->dir_hook_arg;
    s->progress_cb = opt->progress;
    s->progress_arg = opt->progress_arg;
    s->files = hmap_new();
    s->pictures = hmap_new();
    s->covers = hmap_new();
    s->queue = json_array();
    pthread_mutex_init(&s->pic_lock, NULL);
    ev_timer_init(&s->flush_timer, flush_timer_cb, FLUSH_DELAY, 0.);
    s->flush_timer.data = s;
    ev_timer_init(&s->progress_timer, progress_timer_cb, PROGRESS_INTERVAL, PROGRESS_INTERVAL);
    s->progress_timer.data = s;
    ev_timer_init(&s->status_timer, status_timer_cb, STATUS_INTERVAL, STATUS_INTERVAL);
    s->status_timer.data = s;
    ev_timer_start(loop, &s->status_timer);
    ev_unref(loop); /* the status timer alone must not keep a loop alive */
    if (!s->db || !s->files || !s->pictures || !s->covers || !s->queue) {
        scanner_free(&s);
        return NULL;
    }
    picture_global_init();
    return s;
}

void scanner_free(struct scanner **sp)
{
    struct scanner *s = *sp;
    if (!s)
        return;
    ev_ref(s->loop);
    ev_timer_stop(s->loop, &s->status_timer);
    ev_timer_stop(s->loop, &s->flush_timer);
    ev_timer_stop(s->loop, &s->progress_timer);
    hmap_free(&s->files, entry_free);
    hmap_free(&s->pictures, NULL);
    hmap_free(&s->covers, free);
    hmap_free(&s->gone_fp, free);
    json_decref(s->queue);
    for (struct waiter *w = s->waiters, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    for (struct waiter *w = s->queued_waiters, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    pthread_mutex_destroy(&s->pic_lock);
    free(s->under);
    free(s->load_next);
    free(s->db);
    free(s);
    *sp = NULL;
}

int scanner_busy(const struct scanner *s)
{
    return s->busy || s->scan_jobs || s->other_jobs || s->bulks_inflight ||
           json_array_size(s->queue) > 0 || s->singles > 0;
}

const struct scanner_progress *scanner_last(const struct scanner *s)
{
    return &s->last;
}

size_t scanner_file_count(const struct scanner *s)
{
    return hmap_count(s->files);
}
