/*
 * Library scanner: keeps the `file:` documents of the music folders current.
 *
 * The scanner holds the library's state in memory (path -> id, rev, size,
 * mtime, fingerprint), loaded once from CouchDB by scanner_load. A scan walks
 * the folders on a worker thread (stat only), reads just the files whose size
 * or mtime changed (decoder plugins on workers, in batches), writes documents
 * with _bulk_docs in batches while reading goes on, and finally deletes the
 * documents of files that are gone. A new file whose content fingerprint
 * (size + sha1 of its first and last 64 KiB) matches a file gone in the same
 * scan is a move made while nobody watched: it keeps that file's id, so
 * playlist entries keep pointing at it. inotify events (watch.h) arrive
 * through scanner_file_changed/removed/moved and reuse the same paths.
 *
 * Progress is kept in the `status:scan` document (written at most once a
 * second) and handed to an optional progress callback.
 * Thread: loop, except dir_hook (worker).
 */
#ifndef IMES_SCANNER_H
#define IMES_SCANNER_H

#include <ev.h>

#include "core/config.h"

struct couch;
struct worker_pool;
struct scanner;

struct scanner_progress {
    const char *phase;       /* "loading", "walking", "reading", "removing", "done", "failed" */
    unsigned long seen;      /* audio files found by the walk */
    unsigned long unchanged; /* of those, size and mtime as known */
    unsigned long to_read;   /* new or changed */
    unsigned long read;      /* read so far */
    unsigned long written;   /* documents written */
    unsigned long removed;   /* documents of files gone */
    unsigned long moved;     /* new paths matched to a gone file's id */
    unsigned long errors;    /* files that could not be read (doc with "error") */
    unsigned long pictures;  /* picture documents written */
    double elapsed;          /* seconds since the scan began */
};

struct scanner_options {
    const struct strlist *roots; /* the media folders */
    const char *db;
    int batch;      /* documents per _bulk_docs; 0: 500 */
    int read_batch; /* files per worker job; 0: 16 */
    /* Called for each folder the walk enters, on the walking worker thread
     * (imesd registers inotify watches here). May be NULL. */
    void (*dir_hook)(const char *path, void *arg);
    void *dir_hook_arg;
    /* Called on the loop on progress (at most 10 times a second) and once
     * when a scan ends. May be NULL. */
    void (*progress)(const struct scanner_progress *p, int done, void *arg);
    void *progress_arg;
};

struct scanner *scanner_new(struct ev_loop *loop, struct couch *c, struct worker_pool *workers,
                            const struct scanner_options *opt);
void scanner_free(struct scanner **s);

typedef void (*scanner_done_fn)(int err, void *arg);

/* Loads the known files and pictures from CouchDB. 0 or a negative errno;
 * done is called once (err 0 or negative). */
int scanner_load(struct scanner *s, scanner_done_fn done, void *arg);

/* Scans every media folder (or only folder `under` and below, which must be
 * inside one). If a scan is running, another full scan is queued to follow
 * it (-EINPROGRESS is returned and done is called after that one). */
int scanner_scan(struct scanner *s, const char *under, scanner_done_fn done, void *arg);

int scanner_busy(const struct scanner *s);
const struct scanner_progress *scanner_last(const struct scanner *s);
size_t scanner_file_count(const struct scanner *s);

/* inotify: a settled new or written file; a deleted file; a move within the
 * folders (for a folder, every file under it moves and keeps its id). */
void scanner_file_changed(struct scanner *s, const char *path);
void scanner_file_removed(struct scanner *s, const char *path);
void scanner_dir_removed(struct scanner *s, const char *path);
void scanner_moved(struct scanner *s, const char *old_path, const char *new_path, int is_dir);

/* Whether a file name has an extension we read. */
int scanner_is_audio_name(const char *name);

#endif
