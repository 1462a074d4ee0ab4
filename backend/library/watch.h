/*
 * inotify watcher for the music folders: recursive watches, new folders
 * picked up, moves paired into one event, writes settled so that a file being
 * copied is reported once, when it is complete.
 *
 * Events reported (paths are absolute):
 *   WATCH_FILE_CHANGED  a file was written (IN_CLOSE_WRITE) or arrived
 *                       (moved in from outside, hard link), and then nothing
 *                       happened to it for `settle` seconds.
 *   WATCH_FILE_REMOVED  deleted, or moved out of the watched folders.
 *   WATCH_MOVED         a file or folder moved within the watched folders
 *                       (old_path -> path; is_dir set for folders; the files
 *                       under a moved folder are not reported one by one).
 *   WATCH_DIR_ADDED     a folder appeared (created or moved in): the scanner
 *                       scans it; its subfolders are watched by that scan
 *                       through watch_add_dir.
 *   WATCH_DIR_REMOVED   a folder was deleted or moved out.
 *   WATCH_OVERFLOW      the kernel queue overflowed: events were lost, the
 *                       owner must rescan everything.
 * Thread: loop, except watch_add_dir (any thread: the scanner's walk on a
 * worker registers the folders it visits).
 */
#ifndef IMES_WATCH_H
#define IMES_WATCH_H

#include <ev.h>

enum watch_event {
    WATCH_FILE_CHANGED = 1,
    WATCH_FILE_REMOVED,
    WATCH_MOVED,
    WATCH_DIR_ADDED,
    WATCH_DIR_REMOVED,
    WATCH_OVERFLOW,
};

typedef void (*watch_cb)(enum watch_event ev, const char *path, const char *old_path, int is_dir,
                         void *arg);

struct watch;

/* settle_s: quiet time after the last write before a file is reported
 * (e.g. 0.3). Returns NULL with errno set (EMFILE when out of inotify instances). */
struct watch *watch_new(struct ev_loop *loop, double settle_s, watch_cb cb, void *arg);
void watch_free(struct watch **w);

/* Watches one folder (not recursive: the caller walks). Idempotent.
 * Returns 0, or -ENOSPC when fs.inotify.max_user_watches is reached (logged
 * once with the sysctl to raise), or another negative errno. */
int watch_add_dir(struct watch *w, const char *path);

/* Folders watched now. */
int watch_count(const struct watch *w);

const char *watch_event_name(enum watch_event ev);

#endif
