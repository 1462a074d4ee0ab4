/*
 * inotify watcher (see watch.h). One inotify instance, read by an ev_io on
 * the loop; each read is turned into reports that are queued and handed to
 * the owner's callback only after the whole read is processed, so the
 * callback may call anything here, even watch_free.
 *
 * Folders: inotify is not recursive, so every folder has its own watch
 * descriptor. They are kept in two maps: wd -> folder (events name their wd)
 * and path -> folder in a sorted tree, where a folder and everything under it
 * are one range: a moved folder's watches are renamed in place (the kernel
 * keeps them on the inodes), a removed one's are dropped, without a walk of
 * the disk. The scanner adds folders from worker threads, so both maps are
 * under a mutex.
 *
 * Files: the kernel says IN_CLOSE_WRITE when a writer closes, which for a
 * copier that reopens (or a tag editor) is not the end. A file is reported
 * only when `settle` seconds pass after its last close with nothing else
 * happening to it; an IN_MODIFY in between means someone writes again, and
 * the report waits for the next close. Since every file waits the same time,
 * the waiting files form a FIFO and one ev_timer serves them all.
 *
 * Moves: rename(2) gives IN_MOVED_FROM and IN_MOVED_TO with one cookie,
 * almost always in one read. A FROM whose TO has not come within 50 ms went
 * out of the watched folders; a TO without a FROM came in from outside (or
 * from a temporary name, which is how downloaders and rsync finish a file).
 */
#include "library/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "core/log.h"
#include "core/timeutil.h"

#define DIR_MASK                                                                                   \
    (IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |            \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

/* rename(2) queues FROM and TO back to back; 50 ms covers a read that split
 * them and a busy loop, and is still short for a file moved away. */
#define MOVE_WINDOW 0.05
/* A timer may wake a hair before a deadline read from another clock. */
#define EPSILON 0.001
/* Reads per wake-up before other watchers get a turn (64 KiB each). */
#define MAX_READS 8
#define READ_BUF  65536

struct wdir {
    int wd;
    char *path;
};

/* A file waiting for `settle` quiet seconds; in arming order = due order. */
struct pending {
    char *path;
    ev_tstamp due;
    struct pending *prev, *next;
};

/* An IN_MOVED_FROM waiting for its IN_MOVED_TO. */
struct move_from {
    uint32_t cookie;
    char *path;
    int is_dir;
    int was_pending; /* the file had not settled: the report follows it */
    ev_tstamp due;
    struct move_from *prev, *next;
};

struct report {
    enum watch_event ev;
    char *path, *old_path;
    int is_dir;
    struct report *next;
};

struct watch {
    struct ev_loop *loop;
    ev_io io;
    ev_timer timer;
    int fd;
    double settle;
    watch_cb cb;
    void *arg;

    pthread_mutex_t lock; /* by_wd and by_path: watch_add_dir runs on workers */
    GHashTable *by_wd;    /* wd -> struct wdir */
    GTree *by_path;       /* path -> the same struct wdir */

    /* Loop thread only. */
    GHashTable *pending; /* path -> struct pending */
    struct pending *pend_head, *pend_tail;
    struct move_from *from_head, *from_tail;
    struct report *rep_head, *rep_tail;
    int dispatching;
    int closing;
    char buf[READ_BUF] __attribute__((aligned(__alignof__(struct inotify_event))));
};

static atomic_int enospc_logged;

/* Deadlines are kept on the monotonic clock: ev_now is wall-clock time, and
 * a clock set back an hour would hold every report back an hour. */
static ev_tstamp mono(void)
{
    return timeutil_mono();
}

const char *watch_event_name(enum watch_event ev)
{
    switch (ev) {
    case WATCH_FILE_CHANGED:
        return "FILE_CHANGED";
    case WATCH_FILE_REMOVED:
        return "FILE_REMOVED";
    case WATCH_MOVED:
        return "MOVED";
    case WATCH_DIR_ADDED:
        return "DIR_ADDED";
    case WATCH_DIR_REMOVED:
        return "DIR_REMOVED";
    case WATCH_OVERFLOW:
        return "OVERFLOW";
    }
    return "?";
}

/* Hidden files and the names programs give files they are still writing:
 * rsync's .name.XXXXXX, browsers' .part/.crdownload, editors' backup~. */
static int ignored_name(const char *name)
{
    static const char *const suffixes[] = {".part",       ".partial",  ".tmp", ".temp",
                                           ".crdownload", ".download", ".swp"};
    size_t len = strlen(name);
    if (len == 0 || name[0] == '.' || name[len - 1] == '~')
        return 1;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t sl = strlen(suffixes[i]);
        if (len > sl && strcasecmp(name + len - sl, suffixes[i]) == 0)
            return 1;
    }
    return 0;
}

static char *join(const char *dir, const char *name)
{
    return g_strconcat(dir, strcmp(dir, "/") == 0 ? "" : "/", name, NULL);
}

/* path is prefix or below it. */
static int is_under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0)
        return 0;
    return path[n] == '\0' || path[n] == '/' || strcmp(prefix, "/") == 0;
}

/* prefix + the part of path below old (path is under old). */
static char *rebase(const char *path, const char *old, const char *prefix)
{
    return g_strconcat(prefix, path + strlen(old), NULL);
}

static void report(struct watch *w, enum watch_event ev, const char *path, const char *old_path,
                   int is_dir)
{
    struct report *r = g_new0(struct report, 1);
    r->ev = ev;
    r->path = g_strdup(path);
    r->old_path = g_strdup(old_path);
    r->is_dir = is_dir;
    if (w->rep_tail)
        w->rep_tail->next = r;
    else
        w->rep_head = r;
    w->rep_tail = r;
}

static void report_free(struct report *r)
{
    g_free(r->path);
    g_free(r->old_path);
    g_free(r);
}

/* ---- folders (under w->lock) ---- */

static void dir_forget(struct watch *w, struct wdir *d)
{
    g_hash_table_remove(w->by_wd, GINT_TO_POINTER(d->wd));
    g_tree_remove(w->by_path, d->path);
    g_free(d->path);
    g_free(d);
}

/* The watched folders at path and below it, in path order. */
static GPtrArray *dirs_under(struct watch *w, const char *path)
{
    GPtrArray *a = g_ptr_array_new();
    struct wdir *d = g_tree_lookup(w->by_path, path);
    if (d)
        g_ptr_array_add(a, d);
    /* Everything below path sorts in one run from path + "/" (a sibling like
     * "path-2" sorts before it, "path0" after). */
    char *from = strcmp(path, "/") == 0 ? g_strdup("/") : g_strconcat(path, "/", NULL);
    for (GTreeNode *n = g_tree_lower_bound(w->by_path, from); n; n = g_tree_node_next(n)) {
        const char *key = g_tree_node_key(n);
        if (strncmp(key, from, strlen(from)) != 0)
            break;
        if (g_tree_node_value(n) != d)
            g_ptr_array_add(a, g_tree_node_value(n));
    }
    g_free(from);
    return a;
}

static void log_enospc(const char *path)
{
    if (atomic_exchange(&enospc_logged, 1))
        return;
    long max = -1;
    FILE *f = fopen("/proc/sys/fs/inotify/max_user_watches", "re");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = -1;
        fclose(f);
    }
    LOG(E_ERROR, L_LIBRARY,
        "inotify: out of watches at %s (fs.inotify.max_user_watches = %ld): changes in "
        "further folders are not seen until it is raised, e.g. sysctl -w "
        "fs.inotify.max_user_watches=%ld (and in /etc/sysctl.d/ to keep it)",
        path, max, max > 0 ? max * 4 : 524288);
}

static int add_locked(struct watch *w, const char *path)
{
    if (g_tree_lookup(w->by_path, path))
        return 0;
    int wd = inotify_add_watch(w->fd, path, DIR_MASK);
    if (wd < 0) {
        int e = errno;
        if (e == ENOSPC)
            log_enospc(path);
        else if (e != ENOENT && e != ENOTDIR)
            LOG(E_WARN, L_LIBRARY, "inotify: cannot watch %s: %s", path, strerror(e));
        return -e;
    }
    struct wdir *d = g_hash_table_lookup(w->by_wd, GINT_TO_POINTER(wd));
    if (d) {
        /* The same folder under a second name (a symlink or bind mount, a
         * loop): watched once, under the name it was first seen by. */
        LOG(E_DEBUG, L_LIBRARY, "inotify: %s is %s, already watched", path, d->path);
        return 0;
    }
    d = g_new0(struct wdir, 1);
    d->wd = wd;
    d->path = g_strdup(path);
    g_hash_table_insert(w->by_wd, GINT_TO_POINTER(wd), d);
    g_tree_insert(w->by_path, d->path, d);
    return 0;
}

/* ---- files waiting to settle (loop thread) ---- */

static void pend_unlink(struct watch *w, struct pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        w->pend_head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        w->pend_tail = p->prev;
    p->prev = p->next = NULL;
}

static void pend_append(struct watch *w, struct pending *p)
{
    p->prev = w->pend_tail;
    p->next = NULL;
    if (w->pend_tail)
        w->pend_tail->next = p;
    else
        w->pend_head = p;
    w->pend_tail = p;
}

static void pend_free(struct watch *w, struct pending *p)
{
    pend_unlink(w, p);
    g_hash_table_remove(w->pending, p->path);
    g_free(p->path);
    g_free(p);
}

/* The file changed: report it after `settle` quiet seconds from now. */
static void arm(struct watch *w, const char *path)
{
    struct pending *p = g_hash_table_lookup(w->pending, path);
    if (p) {
        pend_unlink(w, p);
    } else {
        p = g_new0(struct pending, 1);
        p->path = g_strdup(path);
        g_hash_table_insert(w->pending, p->path, p);
    }
    p->due = mono() + w->settle;
    pend_append(w, p);
}

/* Returns whether a report was waiting. */
static int disarm(struct watch *w, const char *path)
{
    struct pending *p = g_hash_table_lookup(w->pending, path);
    if (!p)
        return 0;
    pend_free(w, p);
    return 1;
}

/* ---- moves ---- */

static void from_unlink(struct watch *w, struct move_from *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        w->from_head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        w->from_tail = f->prev;
}

static void from_free(struct move_from *f)
{
    g_free(f->path);
    g_free(f);
}

/* Everything recorded under folder old now lives under new. */
static void rename_tree(struct watch *w, const char *old, const char *new)
{
    GPtrArray *a = dirs_under(w, old);
    for (guint i = 0; i < a->len; i++) {
        struct wdir *d = a->pdata[i];
        g_tree_remove(w->by_path, d->path);
    }
    for (guint i = 0; i < a->len; i++) {
        struct wdir *d = a->pdata[i];
        char *p = rebase(d->path, old, new);
        g_free(d->path);
        d->path = p;
        /* A stale entry at the target (a folder replaced by this rename,
         * whose IN_IGNORED has not been read yet) gives way. */
        struct wdir *stale = g_tree_lookup(w->by_path, p);
        if (stale)
            dir_forget(w, stale);
        g_tree_insert(w->by_path, d->path, d);
    }
    g_ptr_array_free(a, TRUE);

    for (struct pending *p = w->pend_head; p; p = p->next) {
        if (!is_under(p->path, old))
            continue;
        g_hash_table_steal(w->pending, p->path);
        char *np = rebase(p->path, old, new);
        g_free(p->path);
        p->path = np;
        struct pending *clash = g_hash_table_lookup(w->pending, np);
        if (clash)
            pend_free(w, clash); /* cannot be p: p was stolen */
        g_hash_table_insert(w->pending, p->path, p);
    }
    for (struct move_from *f = w->from_head; f; f = f->next) {
        if (is_under(f->path, old)) {
            char *np = rebase(f->path, old, new);
            g_free(f->path);
            f->path = np;
        }
    }
}

/* A folder and all below it are gone from the watched tree. */
static void drop_tree(struct watch *w, const char *path)
{
    GPtrArray *a = dirs_under(w, path);
    for (guint i = 0; i < a->len; i++) {
        struct wdir *d = a->pdata[i];
        /* Fails with EINVAL for a deleted folder, whose watch is already gone. */
        inotify_rm_watch(w->fd, d->wd);
        dir_forget(w, d);
    }
    g_ptr_array_free(a, TRUE);
    for (struct pending *p = w->pend_head, *next; p; p = next) {
        next = p->next;
        if (is_under(p->path, path))
            pend_free(w, p);
    }
}

static int parent_watched(struct watch *w, const char *path)
{
    char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return slash == path && path[1] && g_tree_lookup(w->by_path, "/") != NULL;
    char *parent = g_strndup(path, (gsize)(slash - path));
    int r = g_tree_lookup(w->by_path, parent) != NULL;
    g_free(parent);
    return r;
}

/* A folder appeared: watched at once, so that files created in it from now
 * on are seen; the scanner's walk catches those created before. */
static void dir_appeared(struct watch *w, const char *path)
{
    int r = add_locked(w, path);
    if (r == -ENOENT || r == -ENOTDIR)
        return; /* already gone again: its IN_DELETE follows */
    report(w, WATCH_DIR_ADDED, path, NULL, 1);
}

static void moved(struct watch *w, struct move_from *f, const char *path)
{
    if (f->is_dir) {
        if (g_tree_lookup(w->by_path, f->path))
            rename_tree(w, f->path, path);
        else
            add_locked(w, path);
        report(w, WATCH_MOVED, path, f->path, 1);
        return;
    }
    disarm(w, path); /* a file replaced by this one */
    report(w, WATCH_MOVED, path, f->path, 0);
    if (f->was_pending)
        arm(w, path);
}

/* A move whose other half never came. */
static void move_expired(struct watch *w, struct move_from *f)
{
    if (f->is_dir) {
        drop_tree(w, f->path);
        report(w, WATCH_DIR_REMOVED, f->path, NULL, 1);
    } else {
        report(w, WATCH_FILE_REMOVED, f->path, NULL, 0);
    }
}

/* A file that appeared without being written: a hard link or a symlink. A
 * file being written also starts with IN_CREATE, but has one link and will
 * have an IN_CLOSE_WRITE. The lstat is of a name the kernel has just
 * created, in the dentry cache, so it does not wait on the disk. */
static int created_whole(const char *path)
{
    struct stat st;
    if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    return S_ISLNK(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink > 1);
}

static void handle(struct watch *w, const struct inotify_event *ie)
{
    if (ie->mask & IN_Q_OVERFLOW) {
        LOG(E_WARN, L_LIBRARY, "inotify: queue overflow, events lost");
        report(w, WATCH_OVERFLOW, NULL, NULL, 0);
        return;
    }
    struct wdir *d = g_hash_table_lookup(w->by_wd, GINT_TO_POINTER(ie->wd));
    if (!d)
        return; /* a watch already dropped; its last events and IN_IGNORED */
    if (ie->mask & IN_IGNORED) {
        dir_forget(w, d);
        return;
    }
    if (ie->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
        /* A folder's parent reports its deletion or move; one with no
         * watched parent is a top folder, and nobody else will. */
        if (!parent_watched(w, d->path)) {
            char *path = g_strdup(d->path);
            drop_tree(w, path);
            report(w, WATCH_DIR_REMOVED, path, NULL, 1);
            g_free(path);
        }
        return;
    }
    if (ie->len == 0 || ignored_name(ie->name))
        return;

    int is_dir = (ie->mask & IN_ISDIR) != 0;
    char *path = join(d->path, ie->name);
    if (ie->mask & IN_CREATE) {
        if (is_dir)
            dir_appeared(w, path);
        else if (created_whole(path))
            arm(w, path);
    } else if (ie->mask & IN_MODIFY) {
        disarm(w, path); /* written again: wait for the next close */
    } else if (ie->mask & IN_CLOSE_WRITE) {
        arm(w, path);
    } else if (ie->mask & IN_DELETE) {
        if (is_dir) {
            drop_tree(w, path);
            report(w, WATCH_DIR_REMOVED, path, NULL, 1);
        } else {
            disarm(w, path);
            report(w, WATCH_FILE_REMOVED, path, NULL, 0);
        }
    } else if (ie->mask & IN_MOVED_FROM) {
        struct move_from *f = g_new0(struct move_from, 1);
        f->cookie = ie->cookie;
        f->path = path;
        path = NULL;
        f->is_dir = is_dir;
        f->was_pending = !is_dir && disarm(w, f->path);
        f->due = mono() + MOVE_WINDOW;
        f->prev = w->from_tail;
        if (w->from_tail)
            w->from_tail->next = f;
        else
            w->from_head = f;
        w->from_tail = f;
    } else if (ie->mask & IN_MOVED_TO) {
        struct move_from *f = w->from_tail;
        while (f && f->cookie != ie->cookie)
            f = f->prev; /* the FROM is nearly always the last one */
        if (f) {
            from_unlink(w, f);
            moved(w, f, path);
            from_free(f);
        } else if (is_dir) {
            dir_appeared(w, path);
        } else {
            arm(w, path);
        }
    }
    g_free(path);
}

/* Reports due by now, moves whose partner never came. */
static void expire(struct watch *w)
{
    ev_tstamp now = mono() + EPSILON;
    while (w->from_head && w->from_head->due <= now) {
        struct move_from *f = w->from_head;
        from_unlink(w, f);
        move_expired(w, f);
        from_free(f);
    }
    while (w->pend_head && w->pend_head->due <= now) {
        struct pending *p = w->pend_head;
        report(w, WATCH_FILE_CHANGED, p->path, NULL, 0);
        pend_free(w, p);
    }
}

static void destroy(struct watch *w)
{
    ev_io_stop(w->loop, &w->io);
    ev_timer_stop(w->loop, &w->timer);
    close(w->fd);
    while (w->rep_head) {
        struct report *r = w->rep_head;
        w->rep_head = r->next;
        report_free(r);
    }
    while (w->from_head) {
        struct move_from *f = w->from_head;
        w->from_head = f->next;
        from_free(f);
    }
    while (w->pend_head)
        pend_free(w, w->pend_head);
    g_hash_table_destroy(w->pending);
    GList *all = g_hash_table_get_values(w->by_wd);
    for (GList *l = all; l; l = l->next)
        dir_forget(w, l->data);
    g_list_free(all);
    g_hash_table_destroy(w->by_wd);
    g_tree_destroy(w->by_path);
    pthread_mutex_destroy(&w->lock);
    g_free(w);
}

/* Hands the queued reports to the owner. Returns 1 if the owner freed the
 * watcher meanwhile (it is gone now: touch nothing). */
static int dispatch(struct watch *w)
{
    w->dispatching++;
    while (w->rep_head && !w->closing) {
        struct report *r = w->rep_head;
        w->rep_head = r->next;
        if (!w->rep_head)
            w->rep_tail = NULL;
        w->cb(r->ev, r->path, r->old_path, r->is_dir, w->arg);
        report_free(r);
    }
    w->dispatching--;
    if (w->closing && !w->dispatching) {
        destroy(w);
        return 1;
    }
    return 0;
}

static void schedule(struct watch *w)
{
    ev_tstamp due = 0;
    int any = 0;
    if (w->from_head) {
        due = w->from_head->due;
        any = 1;
    }
    if (w->pend_head && (!any || w->pend_head->due < due)) {
        due = w->pend_head->due;
        any = 1;
    }
    ev_timer_stop(w->loop, &w->timer);
    if (!any)
        return;
    ev_tstamp in = due - mono();
    ev_timer_set(&w->timer, in > 0 ? in : 0, 0);
    ev_timer_start(w->loop, &w->timer);
}

/* Reads what the kernel has, reports what is due, hands reports over. The
 * timer reads too: a FROM whose TO is already queued but not yet read must
 * not be taken for a move out just because the timer ran first. */
static void pump(struct watch *w)
{
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < MAX_READS; i++) {
        ssize_t n = read(w->fd, w->buf, sizeof(w->buf));
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                LOG(E_ERROR, L_LIBRARY, "inotify: read: %s", strerror(errno));
            break;
        }
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
            const struct inotify_event *ie = (const struct inotify_event *)(w->buf + off);
            handle(w, ie);
            off += (ssize_t)sizeof(struct inotify_event) + ie->len;
        }
        if ((size_t)n < sizeof(w->buf) - sizeof(struct inotify_event) - NAME_MAX - 1)
            break; /* the queue is drained: no need for another read(2) */
    }
    expire(w);
    pthread_mutex_unlock(&w->lock);
    if (dispatch(w))
        return;
    schedule(w);
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    pump(io->data);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    pump(t->data);
}

struct watch *watch_new(struct ev_loop *loop, double settle_s, watch_cb cb, void *arg)
{
    if (!loop || !cb || !(settle_s >= 0)) {
        errno = EINVAL;
        return NULL;
    }
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        LOG(E_ERROR, L_LIBRARY, "inotify_init1: %s%s", strerror(e),
            e == EMFILE ? " (raise fs.inotify.max_user_instances)" : "");
        errno = e;
        return NULL;
    }
    struct watch *w = g_new0(struct watch, 1);
    w->loop = loop;
    w->fd = fd;
    w->settle = settle_s;
    w->cb = cb;
    w->arg = arg;
    pthread_mutex_init(&w->lock, NULL);
    w->by_wd = g_hash_table_new(g_direct_hash, g_direct_equal);
    w->by_path = g_tree_new((GCompareFunc)strcmp);
    w->pending = g_hash_table_new(g_str_hash, g_str_equal);
    ev_io_init(&w->io, io_cb, fd, EV_READ);
    w->io.data = w;
    ev_timer_init(&w->timer, timer_cb, 0, 0);
    w->timer.data = w;
    ev_io_start(loop, &w->io);
    return w;
}

void watch_free(struct watch **wp)
{
    struct watch *w = wp ? *wp : NULL;
    if (!w)
        return;
    *wp = NULL;
    if (w->dispatching) {
        /* Called from the owner's callback: dispatch() frees on the way out. */
        w->closing = 1;
        ev_io_stop(w->loop, &w->io);
        ev_timer_stop(w->loop, &w->timer);
        return;
    }
    destroy(w);
}

/* Thread: any */
int watch_add_dir(struct watch *w, const char *path)
{
    if (!w || !path || path[0] != '/')
        return -EINVAL;
    /* One slash between components and none at the end, so that a folder
     * has one key however the caller spelled it. */
    size_t len = strlen(path);
    char *norm = g_malloc(len + 1);
    size_t j = 0;
    for (size_t i = 0; i < len; i++)
        if (path[i] != '/' || j == 0 || norm[j - 1] != '/')
            norm[j++] = path[i];
    if (j > 1 && norm[j - 1] == '/')
        j--;
    norm[j] = '\0';
    pthread_mutex_lock(&w->lock);
    int r = add_locked(w, norm);
    pthread_mutex_unlock(&w->lock);
    g_free(norm);
    return r;
}

/* Thread: any */
int watch_count(const struct watch *w)
{
    struct watch *mw = (struct watch *)w; /* the lock, not the content */
    pthread_mutex_lock(&mw->lock);
    int n = (int)g_hash_table_size(mw->by_wd);
    pthread_mutex_unlock(&mw->lock);
    return n;
}
