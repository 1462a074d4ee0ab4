/*
 * Worker pool: a fixed set of pthreads take jobs from one queue; finished jobs
 * go onto a done list and one ev_async wakes the loop, which runs every done()
 * callback in order of completion. The loop thread never waits on a worker.
 */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct job {
    worker_work_fn work;
    worker_done_fn done;
    void *arg;
    int status;
    struct job *next;
};

struct worker_pool {
    struct ev_loop *loop;
    ev_async async;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *queue_head, *queue_tail; /* waiting to run */
    struct job *done_head, *done_tail;   /* waiting for done() on the loop */
    int pending;                         /* loop thread only */
    int stopping;
    int nthreads;
    pthread_t *threads;
};

static void push(struct job **head, struct job **tail, struct job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

/* Thread: worker */
static void *worker_main(void *arg)
{
    struct worker_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->queue_head && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        if (!p->queue_head)
            break; /* stopping and nothing left that was already taken */
        struct job *j = p->queue_head;
        p->queue_head = j->next;
        if (!p->queue_head)
            p->queue_tail = NULL;
        pthread_mutex_unlock(&p->lock);

        j->work(j->arg);
        j->status = 0;

        pthread_mutex_lock(&p->lock);
        push(&p->done_head, &p->done_tail, j);
        ev_async_send(p->loop, &p->async);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void run_done(struct worker_pool *p)
{
    pthread_mutex_lock(&p->lock);
    struct job *j = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    while (j) {
        struct job *next = j->next;
        if (--p->pending == 0)
            ev_unref(p->loop);
        if (j->done)
            j->done(j->arg, j->status);
        free(j);
        j = next;
    }
}

static void async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    run_done(w->data);
}

struct worker_pool *worker_pool_new(struct ev_loop *loop, int nthreads)
{
    if (nthreads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (int)n : 2;
    }
    struct worker_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->loop = loop;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->threads = calloc((size_t)nthreads, sizeof(*p->threads));
    if (!p->threads)
        goto fail_threads;
    ev_async_init(&p->async, async_cb);
    p->async.data = p;
    ev_async_start(loop, &p->async);
    /* The async watcher keeps the loop alive only while jobs are pending
     * (as libuv's work requests do): unref now, ref for the first job. */
    ev_unref(loop);
    for (int i = 0; i < nthreads; i++) {
        int err = pthread_create(&p->threads[i], NULL, worker_main, p);
        if (err) {
            LOG(E_ERROR, L_WORKER, "cannot start worker thread %d: %s", i, strerror(err));
            break;
        }
        p->nthreads++;
    }
    if (p->nthreads == 0)
        goto fail_start;
    LOG(E_DEBUG, L_WORKER, "%d worker threads", p->nthreads);
    return p;

fail_start:
    ev_ref(loop);
    ev_async_stop(loop, &p->async);
    free(p->threads);
fail_threads:
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
    return NULL;
}

int worker_submit(struct worker_pool *p, worker_work_fn work, worker_done_fn done, void *arg)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->work = work;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        free(j);
        return -ESHUTDOWN;
    }
    push(&p->queue_head, &p->queue_tail, j);
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (p->pending++ == 0)
        ev_ref(p->loop);
    return 0;
}

int worker_pending(const struct worker_pool *p)
{
    return p->pending;
}

int worker_threads(const struct worker_pool *p)
{
    return p->nthreads;
}

void worker_pool_free(struct worker_pool **pp)
{
    struct worker_pool *p = *pp;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    struct job *cancelled = p->queue_head;
    p->queue_head = p->queue_tail = NULL;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    run_done(p); /* jobs that finished meanwhile */
    while (cancelled) {
        struct job *next = cancelled->next;
        if (--p->pending == 0)
            ev_unref(p->loop);
        if (cancelled->done)
            cancelled->done(cancelled->arg, -ECANCELED);
        free(cancelled);
        cancelled = next;
    }
    ev_ref(p->loop);
    ev_async_stop(p->loop, &p->async);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
    *pp = NULL;
}
