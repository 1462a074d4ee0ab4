/*
 * Worker threads for everything that blocks: decoding, encoding, scanning,
 * image scaling, name resolution. A job's work() runs on a worker thread; its
 * done() runs afterwards on the loop thread, posted back through one ev_async
 * (after libuv's threadpool: work / after_work).
 */
#ifndef IMES_WORKER_H
#define IMES_WORKER_H

#include <ev.h>

struct worker_pool;

typedef void (*worker_work_fn)(void *arg);             /* Thread: worker */
typedef void (*worker_done_fn)(void *arg, int status); /* Thread: loop. status 0 or -ECANCELED */

/* nthreads 0: one per online CPU. Returns NULL on failure. */
struct worker_pool *worker_pool_new(struct ev_loop *loop, int nthreads);

/* Queues a job. done may be NULL. Returns 0 or -ENOMEM / -ESHUTDOWN. */
int worker_submit(struct worker_pool *p, worker_work_fn work, worker_done_fn done, void *arg);

/* Jobs queued or running whose done() has not run yet. */
int worker_pending(const struct worker_pool *p);
int worker_threads(const struct worker_pool *p);

/* Jobs not yet started get done(arg, -ECANCELED) without work(); running jobs
 * finish and get their done(arg, 0); then the threads are joined. */
void worker_pool_free(struct worker_pool **p);

#endif
