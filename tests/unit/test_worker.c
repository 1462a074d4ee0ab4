/*
 * Worker pool, tested the libuv way: jobs count, the loop runs, counts are
 * asserted. work() must run off the loop thread and done() on it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core/worker.h"

static pthread_t loop_thread;
static atomic_int worked;
static int done_ok, done_cancelled, off_loop;

static void work(void *arg)
{
    if (!pthread_equal(pthread_self(), loop_thread))
        off_loop++; /* racy count is fine: only checked to be > 0 */
    usleep(1000);
    atomic_fetch_add(&worked, 1);
}

static void done(void *arg, int status)
{
    assert_true(pthread_equal(pthread_self(), loop_thread));
    if (status == 0)
        done_ok++;
    else if (status == -ECANCELED)
        done_cancelled++;
}

static void test_jobs_complete_on_loop(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    loop_thread = pthread_self();
    atomic_store(&worked, 0);
    done_ok = done_cancelled = off_loop = 0;
    struct worker_pool *p = worker_pool_new(loop, 3);
    assert_non_null(p);
    assert_int_equal(worker_threads(p), 3);
    for (int i = 0; i < 100; i++)
        assert_int_equal(worker_submit(p, work, done, NULL), 0);
    assert_int_equal(worker_pending(p), 100);
    /* The loop stays alive exactly while jobs are pending. */
    ev_run(loop, 0);
    assert_int_equal(atomic_load(&worked), 100);
    assert_int_equal(done_ok, 100);
    assert_int_equal(worker_pending(p), 0);
    assert_true(off_loop > 0);
    worker_pool_free(&p);
    assert_null(p);
    ev_loop_destroy(loop);
}

static void slow_work(void *arg)
{
    usleep(20000);
    atomic_fetch_add(&worked, 1);
}

static void test_free_cancels_queued_jobs(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    loop_thread = pthread_self();
    atomic_store(&worked, 0);
    done_ok = done_cancelled = 0;
    struct worker_pool *p = worker_pool_new(loop, 1);
    for (int i = 0; i < 10; i++)
        worker_submit(p, slow_work, done, NULL);
    usleep(5000); /* let the single thread take the first job */
    worker_pool_free(&p);
    /* every job got exactly one done(): finished ones 0, the rest cancelled */
    assert_int_equal(done_ok + done_cancelled, 10);
    assert_int_equal(done_ok, atomic_load(&worked));
    assert_true(done_cancelled > 0);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_complete_on_loop),
        cmocka_unit_test(test_free_cancels_queued_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
