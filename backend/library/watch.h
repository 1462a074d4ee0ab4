/*
 * inotify watcher for the music folders: recursive watches, new folders
 * picked up, moves paired into one event, writes settled so that a file being
 * copied is reported once, when it is complete.
 *
 * Events reported (paths are absolute, one slash between components, none
 * at the end; old_path is NULL except for WATCH_MOVED):
 *   WATCH_FILE_CHANGED  a file was written (IN_CLOSE_WRITE) or arrived
 *                       (moved in from outside or renamed from a temporary
 *                       name, hard link, symlink), and then nothing happened
 *                       to it for `settle` seconds. A write after a close
 *                       (IN_MODIFY) holds the report back until the next
 *                       close: a copier that reopens and appends is reported
 *                       once, after its last close, unless it pauses longer
 *                       than `settle` between closes.
 *   WATCH_FILE_REMOVED  deleted, or moved out of the watched folders (or to
 *                       a hidden or temporary name).
 *   WATCH_MOVED         a file or folder moved within the watched folders
 *                       (old_path -> path; is_dir set for folders; the files
 *                       under a moved folder are not reported one by one).
 *                       A file may replace an existing one at path. A file
 *                       moved before it settled gets its FILE_CHANGED later,
 *                       under the new path; old_path may then be a path that
 *                       was never reported.
 *   WATCH_DIR_ADDED     a folder appeared (created or moved in): it is
 *                       watched already; the scanner scans it and watches
 *                       its subfolders through watch_add_dir.
 *   WATCH_DIR_REMOVED   a folder was deleted or moved out: everything under
 *                       path is gone (a deleted tree also reports each file
 *                       and subfolder the kernel saw go; a moved-out one not).
 *   WATCH_OVERFLOW      the kernel queue overflowed: events were lost, the
 *                       owner must rescan everything. path is NULL.
 * Hidden names (".x", which includes rsync's temporaries) and names of files
 * still being written ("*.part", "*.partial", "*.tmp", "*.temp",
 * "*.crdownload", "*.download", "*.swp", "x~") are not reported, and hidden
 * folders are not watched when they appear.
 * The callback runs on the loop; it may call watch_add_dir and watch_free.
 * Thread: loop, except watch_add_dir and watch_count (any thread: the
 * scanner's walk on a worker registers the folders it visits).
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
 * (e.g. 0.3; 0 reports on the next loop iteration). Returns NULL with errno
 * set (EMFILE when out of inotify instances, EINVAL for a bad argument). */
struct watch *watch_new(struct ev_loop *loop, double settle_s, watch_cb cb, void *arg);
/* Stops and frees; reports not yet delivered are dropped. Safe from inside
 * the callback (the watcher is freed when the callback returns, and no
 * further report is delivered). No watch_add_dir may be running or start:
 * stop the scanner first. Nulls *w. */
void watch_free(struct watch **w);

/* Watches one folder (not recursive: the caller walks). Idempotent, also for
 * one folder reached under two names (a symlink): watched once, under the
 * first. path must be absolute; repeated and trailing slashes are dropped.
 * Returns 0, or -ENOSPC when fs.inotify.max_user_watches is reached (logged
 * once per process with the sysctl to raise), -ENOENT, -ENOTDIR, -EACCES,
 * -EINVAL. */
int watch_add_dir(struct watch *w, const char *path);

/* Folders watched now. */
int watch_count(const struct watch *w);

/* "FILE_CHANGED", "FILE_REMOVED", "MOVED", "DIR_ADDED", "DIR_REMOVED", "OVERFLOW". */
const char *watch_event_name(enum watch_event ev);

#endif
