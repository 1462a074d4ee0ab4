/*
 * inotify watcher, tested the libuv way: a real loop watches a temporary
 * tree, the test (or a helper thread, where timing matters) changes files,
 * the loop runs until the expected reports arrive or a timeout, and then a
 * little longer, so that the exact list of reports is asserted, not just
 * its first entries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "library/watch.h"

struct rec {
    enum watch_event ev;
    char path[512];
    char old[512];
    int is_dir;
    double t;
};

#define MAX_RECS 64

static struct rec recs[MAX_RECS];
static int nrec, overflows, want;
static struct ev_loop *loop;
static struct watch *w;
static char root[64], outside[64];
static int free_in_cb;

static void cb(enum watch_event ev, const char *path, const char *old_path, int is_dir, void *arg)
{
    if (ev == WATCH_OVERFLOW) {
        assert_null(path);
        overflows++;
    }
    if (nrec < MAX_RECS) {
        struct rec *r = &recs[nrec];
        r->ev = ev;
        snprintf(r->path, sizeof(r->path), "%s", path ? path : "");
        snprintf(r->old, sizeof(r->old), "%s", old_path ? old_path : "");
        r->is_dir = is_dir;
        r->t = ev_time();
    }
    nrec++;
    if (free_in_cb) {
        watch_free(&w);
        assert_null(w);
    }
    if (want && nrec >= want)
        ev_break(loop, EVBREAK_ALL);
}

static void timeout_cb(struct ev_loop *l, ev_timer *t, int revents)
{
    ev_break(l, EVBREAK_ALL);
}

/* Runs the loop until n reports in all or `timeout` seconds. */
static void run_until(int n, double timeout)
{
    if (nrec >= n)
        return;
    ev_timer t;
    ev_timer_init(&t, timeout_cb, timeout, 0);
    ev_timer_start(loop, &t);
    want = n;
    ev_run(loop, 0);
    want = 0;
    ev_timer_stop(loop, &t);
}

/* Runs the loop for `s` seconds: what would come late comes now. */
static void run_for(double s)
{
    run_until(1 << 30, s);
}

static const char *at(const char *dir, const char *rel)
{
    static char p[8][512];
    static int i;
    i = (i + 1) % 8;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, rel);
    return p[i];
}

static void expect(int i, enum watch_event ev, const char *path, const char *old, int is_dir)
{
    if (i >= nrec)
        fail_msg("report %d (%s %s) missing: only %d", i, watch_event_name(ev), path, nrec);
    struct rec *r = &recs[i];
    if (r->ev != ev || strcmp(r->path, path) != 0 || strcmp(r->old, old ? old : "") != 0 ||
        r->is_dir != is_dir)
        fail_msg("report %d: got %s %s (from '%s', dir %d), expected %s %s (from '%s', dir %d)", i,
                 watch_event_name(r->ev), r->path, r->old, r->is_dir, watch_event_name(ev), path,
                 old ? old : "", is_dir);
}

static void dump(void)
{
    for (int i = 0; i < nrec && i < MAX_RECS; i++)
        print_message("  %d: %s %s %s %d\n", i, watch_event_name(recs[i].ev), recs[i].path,
                      recs[i].old, recs[i].is_dir);
}

static void expect_count(int n)
{
    if (nrec != n) {
        dump();
        fail_msg("expected %d reports, got %d", n, nrec);
    }
}

static void write_file(const char *path, const char *content)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    assert_int_equal(close(fd), 0);
}

static void start(double settle)
{
    snprintf(root, sizeof(root), "/tmp/imes-test-watch-XXXXXX");
    snprintf(outside, sizeof(outside), "/tmp/imes-test-outside-XXXXXX");
    assert_non_null(mkdtemp(root));
    assert_non_null(mkdtemp(outside));
    loop = ev_loop_new(EVFLAG_AUTO);
    w = watch_new(loop, settle, cb, NULL);
    assert_non_null(w);
    assert_int_equal(watch_add_dir(w, root), 0);
    nrec = overflows = want = free_in_cb = 0;
    memset(recs, 0, sizeof(recs));
}

static int teardown(void **state)
{
    watch_free(&w);
    if (loop)
        ev_loop_destroy(loop);
    loop = NULL;
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", root, outside);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_write_reported_after_settle(void **state)
{
    start(0.2);
    double before = ev_time();
    write_file(at(root, "a.flac"), "one");
    run_until(1, 3);
    run_for(0.4);
    expect_count(1);
    expect(0, WATCH_FILE_CHANGED, at(root, "a.flac"), NULL, 0);
    assert_true(recs[0].t - before >= 0.2 - 0.02);
}

struct writer {
    const char *path;
    int chunks;
    int reopen;          /* close and reopen (append) between chunks */
    useconds_t pause_us; /* between chunks */
    double last_close;   /* just before the last close(2) */
};

static void *writer_main(void *arg)
{
    struct writer *wr = arg;
    char chunk[65536];
    memset(chunk, 'x', sizeof(chunk));
    int fd = open(wr->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    for (int i = 0; i < wr->chunks; i++) {
        if (wr->reopen && i > 0)
            fd = open(wr->path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
            abort();
        if (wr->reopen || i == wr->chunks - 1) {
            wr->last_close = ev_time();
            close(fd);
        }
        if (i < wr->chunks - 1)
            usleep(wr->pause_us);
    }
    return NULL;
}

static void run_writer(struct writer *wr, double settle)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, wr), 0);
    /* The loop runs while the writer writes: reports would come now. */
    run_for(wr->chunks * wr->pause_us / 1e6 + settle + 0.5);
    pthread_join(th, NULL);
    run_for(settle + 0.2);
}

/* A slow copy through one open file: one report, after the close. */
static void test_slow_copy_one_fd(void **state)
{
    start(0.3);
    struct writer wr = {.path = at(root, "big.flac"), .chunks = 10, .pause_us = 100000};
    run_writer(&wr, 0.3);
    expect_count(1);
    expect(0, WATCH_FILE_CHANGED, at(root, "big.flac"), NULL, 0);
    assert_true(recs[0].t - wr.last_close >= 0.3 - 0.02);
}

/* A copier that closes and reopens to append: each close arms the report,
 * each write after it disarms it again, so with pauses shorter than
 * `settle` there is one report, after the final close. */
static void test_slow_copy_reopening(void **state)
{
    start(0.3);
    struct writer wr = {
        .path = at(root, "big.flac"), .chunks = 10, .reopen = 1, .pause_us = 100000};
    run_writer(&wr, 0.3);
    expect_count(1);
    expect(0, WATCH_FILE_CHANGED, at(root, "big.flac"), NULL, 0);
    assert_true(recs[0].t - wr.last_close >= 0.3 - 0.02);
}

/* The limit of the rule: pauses longer than `settle` between closes look
 * like finished files, and each is reported (the scanner reads the file
 * again each time; the last report is the complete file). */
static void test_reopening_with_long_pauses(void **state)
{
    start(0.05);
    struct writer wr = {.path = at(root, "big.flac"), .chunks = 4, .reopen = 1, .pause_us = 250000};
    run_writer(&wr, 0.05);
    if (nrec < 2) {
        dump();
        fail_msg("expected one report per pause, got %d", nrec);
    }
    for (int i = 0; i < nrec; i++)
        expect(i, WATCH_FILE_CHANGED, at(root, "big.flac"), NULL, 0);
    assert_true(recs[nrec - 1].t - wr.last_close >= 0.05 - 0.02);
}

static void test_rename_file(void **state)
{
    start(0.1);
    write_file(at(root, "a.flac"), "a");
    run_until(1, 2);
    assert_int_equal(rename(at(root, "a.flac"), at(root, "b.flac")), 0);
    run_until(2, 2);
    run_for(0.3);
    expect_count(2);
    expect(0, WATCH_FILE_CHANGED, at(root, "a.flac"), NULL, 0);
    expect(1, WATCH_MOVED, at(root, "b.flac"), at(root, "a.flac"), 0);
}

/* Renamed before it settled: the move, then the report under the new name. */
static void test_rename_before_settled(void **state)
{
    start(0.2);
    write_file(at(root, "a.flac"), "a");
    assert_int_equal(rename(at(root, "a.flac"), at(root, "b.flac")), 0);
    run_until(2, 2);
    run_for(0.4);
    expect_count(2);
    expect(0, WATCH_MOVED, at(root, "b.flac"), at(root, "a.flac"), 0);
    expect(1, WATCH_FILE_CHANGED, at(root, "b.flac"), NULL, 0);
}

static void test_rename_folder(void **state)
{
    start(0.1);
    assert_int_equal(mkdir(at(root, "d1"), 0755), 0);
    assert_int_equal(mkdir(at(root, "d1/sub"), 0755), 0);
    assert_int_equal(mkdir(at(root, "other"), 0755), 0);
    assert_int_equal(watch_add_dir(w, at(root, "d1")), 0);
    assert_int_equal(watch_add_dir(w, at(root, "d1/sub")), 0);
    assert_int_equal(watch_add_dir(w, at(root, "other")), 0);
    run_for(0.1); /* the three IN_CREATE|IN_ISDIR */
    nrec = 0;
    assert_int_equal(watch_count(w), 4);
    assert_int_equal(rename(at(root, "d1"), at(root, "other/d2")), 0);
    run_until(1, 2);
    write_file(at(root, "other/d2/sub/x.flac"), "x");
    run_until(2, 2);
    run_for(0.3);
    expect_count(2);
    expect(0, WATCH_MOVED, at(root, "other/d2"), at(root, "d1"), 1);
    expect(1, WATCH_FILE_CHANGED, at(root, "other/d2/sub/x.flac"), NULL, 0);
    assert_int_equal(watch_count(w), 4);
    /* the old names are free: watching them again is a new watch */
    assert_int_equal(mkdir(at(root, "d1"), 0755), 0);
    run_until(3, 2);
    expect(2, WATCH_DIR_ADDED, at(root, "d1"), NULL, 1);
    assert_int_equal(watch_count(w), 5);
}

static void test_move_out(void **state)
{
    start(0.1);
    write_file(at(root, "a.flac"), "a");
    assert_int_equal(mkdir(at(root, "dir"), 0755), 0);
    assert_int_equal(watch_add_dir(w, at(root, "dir")), 0);
    run_until(2, 2);
    nrec = 0;
    assert_int_equal(rename(at(root, "a.flac"), at(outside, "a.flac")), 0);
    assert_int_equal(rename(at(root, "dir"), at(outside, "dir")), 0);
    run_until(2, 2);
    run_for(0.3);
    expect_count(2);
    expect(0, WATCH_FILE_REMOVED, at(root, "a.flac"), NULL, 0);
    expect(1, WATCH_DIR_REMOVED, at(root, "dir"), NULL, 1);
    assert_int_equal(watch_count(w), 1);
    /* nothing comes from the folder that left */
    write_file(at(outside, "dir/b.flac"), "b");
    run_for(0.3);
    expect_count(2);
}

static void test_move_in(void **state)
{
    start(0.1);
    write_file(at(outside, "a.flac"), "a");
    assert_int_equal(mkdir(at(outside, "dir"), 0755), 0);
    assert_int_equal(rename(at(outside, "a.flac"), at(root, "a.flac")), 0);
    assert_int_equal(rename(at(outside, "dir"), at(root, "dir")), 0);
    run_until(2, 2);
    run_for(0.3);
    expect_count(2);
    expect(0, WATCH_DIR_ADDED, at(root, "dir"), NULL, 1);
    expect(1, WATCH_FILE_CHANGED, at(root, "a.flac"), NULL, 0);
    assert_int_equal(watch_count(w), 2);
}

/* What downloaders and rsync do: write a temporary name, rename it. */
static void test_temporary_then_rename(void **state)
{
    start(0.1);
    write_file(at(root, "song.flac.part"), "a");
    write_file(at(root, ".song2.flac.Xy12ab"), "b");
    run_for(0.3);
    expect_count(0);
    assert_int_equal(rename(at(root, "song.flac.part"), at(root, "song.flac")), 0);
    assert_int_equal(rename(at(root, ".song2.flac.Xy12ab"), at(root, "song2.flac")), 0);
    run_until(2, 2);
    run_for(0.3);
    expect_count(2);
    expect(0, WATCH_FILE_CHANGED, at(root, "song.flac"), NULL, 0);
    expect(1, WATCH_FILE_CHANGED, at(root, "song2.flac"), NULL, 0);
    /* and the other way: to a hidden name is gone */
    assert_int_equal(rename(at(root, "song.flac"), at(root, ".song.flac")), 0);
    run_until(3, 2);
    expect(2, WATCH_FILE_REMOVED, at(root, "song.flac"), NULL, 0);
}

static void test_links(void **state)
{
    start(0.1);
    write_file(at(outside, "a.flac"), "a");
    assert_int_equal(link(at(outside, "a.flac"), at(root, "hard.flac")), 0);
    assert_int_equal(symlink(at(outside, "a.flac"), at(root, "soft.flac")), 0);
    run_until(2, 2);
    run_for(0.3);
    expect_count(2);
    expect(0, WATCH_FILE_CHANGED, at(root, "hard.flac"), NULL, 0);
    expect(1, WATCH_FILE_CHANGED, at(root, "soft.flac"), NULL, 0);
}

static void test_mkdir_then_files(void **state)
{
    start(0.1);
    assert_int_equal(mkdir(at(root, "new"), 0755), 0);
    run_until(1, 2);
    expect(0, WATCH_DIR_ADDED, at(root, "new"), NULL, 1);
    assert_int_equal(watch_count(w), 2);
    /* watched already: a file in it is seen */
    write_file(at(root, "new/a.flac"), "a");
    /* a subfolder made before the scanner got there: the scanner watches it */
    assert_int_equal(mkdir(at(root, "new/sub"), 0755), 0);
    run_until(3, 2);
    expect(1, WATCH_DIR_ADDED, at(root, "new/sub"), NULL, 1);
    expect(2, WATCH_FILE_CHANGED, at(root, "new/a.flac"), NULL, 0);
    assert_int_equal(watch_add_dir(w, at(root, "new/sub")), 0); /* idempotent */
    assert_int_equal(watch_count(w), 3);
    write_file(at(root, "new/sub/b.flac"), "b");
    run_until(4, 2);
    run_for(0.3);
    expect_count(4);
    expect(3, WATCH_FILE_CHANGED, at(root, "new/sub/b.flac"), NULL, 0);
}

static void test_delete(void **state)
{
    start(0.1);
    assert_int_equal(mkdir(at(root, "dir"), 0755), 0);
    write_file(at(root, "a.flac"), "a");
    run_until(2, 2);
    nrec = 0;
    assert_int_equal(watch_count(w), 2);
    assert_int_equal(unlink(at(root, "a.flac")), 0);
    assert_int_equal(rmdir(at(root, "dir")), 0);
    run_until(2, 2);
    run_for(0.3);
    expect_count(2);
    expect(0, WATCH_FILE_REMOVED, at(root, "a.flac"), NULL, 0);
    expect(1, WATCH_DIR_REMOVED, at(root, "dir"), NULL, 1);
    assert_int_equal(watch_count(w), 1);
}

/* A file deleted before it settled: no report of a change, only the removal. */
static void test_delete_before_settled(void **state)
{
    start(0.3);
    write_file(at(root, "a.flac"), "a");
    assert_int_equal(unlink(at(root, "a.flac")), 0);
    run_until(1, 2);
    run_for(0.5);
    expect_count(1);
    expect(0, WATCH_FILE_REMOVED, at(root, "a.flac"), NULL, 0);
}

static void test_top_folder_removed(void **state)
{
    start(0.1);
    assert_int_equal(rmdir(root), 0);
    run_until(1, 2);
    run_for(0.2);
    expect_count(1);
    expect(0, WATCH_DIR_REMOVED, root, NULL, 1);
    assert_int_equal(watch_count(w), 0);
}

static void test_hidden_and_temporary_ignored(void **state)
{
    start(0.05);
    static const char *const names[] = {".hidden.flac", "a.part",    "b.tmp",       "c.flac~",
                                        "d.crdownload", "e.PARTIAL", ".f.flac.aB3", "g.temp"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        write_file(at(root, names[i]), "x");
    assert_int_equal(mkdir(at(root, ".hiddendir"), 0755), 0);
    assert_int_equal(unlink(at(root, "a.part")), 0);
    write_file(at(root, "visible.flac"), "x");
    run_until(1, 2);
    run_for(0.3);
    expect_count(1);
    expect(0, WATCH_FILE_CHANGED, at(root, "visible.flac"), NULL, 0);
    assert_int_equal(watch_count(w), 1);
}

static void test_add_dir_arguments(void **state)
{
    start(0.1);
    char messy[128];
    snprintf(messy, sizeof(messy), "/%s//", root); /* "//tmp/...//" */
    assert_int_equal(watch_add_dir(w, messy), 0);
    assert_int_equal(watch_count(w), 1);
    assert_int_equal(watch_add_dir(w, "relative/path"), -EINVAL);
    assert_int_equal(watch_add_dir(w, at(root, "missing")), -ENOENT);
    write_file(at(root, "file"), "x");
    assert_int_equal(watch_add_dir(w, at(root, "file")), -ENOTDIR);
    /* the same folder through a symlink: one watch */
    assert_int_equal(symlink(root, at(outside, "link")), 0);
    assert_int_equal(watch_add_dir(w, at(outside, "link")), 0);
    assert_int_equal(watch_count(w), 1);
    assert_string_equal(watch_event_name(WATCH_MOVED), "MOVED");
    assert_null(watch_new(loop, -1, cb, NULL));
    assert_int_equal(errno, EINVAL);
}

struct adder {
    int id;
    int failures;
};

static void *adder_main(void *arg)
{
    struct adder *a = arg;
    char p[128];
    for (int i = 0; i < 50; i++) {
        /* every thread adds the same 50 folders, in its own order */
        snprintf(p, sizeof(p), "%s/d%02d", root, (i * 7 + a->id * 13) % 50);
        if (watch_add_dir(w, p) != 0)
            a->failures++;
        (void)watch_count(w);
    }
    return NULL;
}

/* The scanner adds folders from worker threads. */
static void test_add_dir_from_threads(void **state)
{
    start(0.1);
    char p[128];
    for (int i = 0; i < 50; i++) {
        snprintf(p, sizeof(p), "%s/d%02d", root, i);
        assert_int_equal(mkdir(p, 0755), 0);
    }
    run_for(0.1);
    int before = watch_count(w); /* some added by their IN_CREATE already */
    assert_true(before >= 1);
    struct adder adders[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        adders[i] = (struct adder){.id = i};
        assert_int_equal(pthread_create(&th[i], NULL, adder_main, &adders[i]), 0);
    }
    run_for(0.1); /* the loop keeps reading meanwhile */
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(adders[i].failures, 0);
    }
    assert_int_equal(watch_count(w), 51);
    write_file(at(root, "d33/x.flac"), "x");
    nrec = 0;
    run_until(1, 2);
    expect(0, WATCH_FILE_CHANGED, at(root, "d33/x.flac"), NULL, 0);
}

/* Freed from inside its own callback: nothing more is delivered, nothing
 * is touched afterwards (the sanitizer build checks the latter). */
static void test_free_in_callback(void **state)
{
    start(0.0);
    write_file(at(root, "a.flac"), "a");
    write_file(at(root, "b.flac"), "b");
    unlink(at(root, "a.flac"));
    free_in_cb = 1;
    run_for(0.3);
    expect_count(1);
    assert_null(w);
}

/* A real overflow: more events than the kernel queues (fs.inotify.
 * max_queued_events, 16384 by default) while the loop is not reading. */
static void test_overflow(void **state)
{
    long max = 0;
    FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 0;
        fclose(f);
    }
    if (max <= 0 || max > 200000) {
        print_message("max_queued_events %ld: overflow not tested\n", max);
        skip();
    }
    start(5.0); /* nothing settles during the test */
    /* two events per file: IN_CREATE and IN_CLOSE_WRITE */
    long files = max / 2 + 100;
    for (long i = 0; i < files; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%06ld", i);
        int fd = open(at(root, name), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
    run_until(1, 3);
    run_for(0.2);
    assert_int_equal(overflows, 1);
    expect_count(1);
    expect(0, WATCH_OVERFLOW, "", NULL, 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_teardown(name, teardown)
    const struct CMUnitTest tests[] = {
        T(test_write_reported_after_settle),
        T(test_slow_copy_one_fd),
        T(test_slow_copy_reopening),
        T(test_reopening_with_long_pauses),
        T(test_rename_file),
        T(test_rename_before_settled),
        T(test_rename_folder),
        T(test_move_out),
        T(test_move_in),
        T(test_temporary_then_rename),
        T(test_links),
        T(test_mkdir_then_files),
        T(test_delete),
        T(test_delete_before_settled),
        T(test_top_folder_removed),
        T(test_hidden_and_temporary_ignored),
        T(test_add_dir_arguments),
        T(test_add_dir_from_threads),
        T(test_free_in_callback),
        T(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
