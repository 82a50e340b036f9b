/* A small worker pool: workers take the next dump index; the main thread
 * prints result k as soon as it is done, so output keeps argument order and
 * at most a window of results waits in memory. */
#include "jobs.h"

#include <stdlib.h>

#ifdef _WIN32
#include <windows.h>
typedef HANDLE thread_t;
typedef CRITICAL_SECTION mutex_t;
typedef CONDITION_VARIABLE cond_t;
#define mutex_init(m) InitializeCriticalSection(m)
#define mutex_lock(m) EnterCriticalSection(m)
#define mutex_unlock(m) LeaveCriticalSection(m)
#define mutex_destroy(m) DeleteCriticalSection(m)
#define cond_init(c) InitializeConditionVariable(c)
#define cond_wait(c, m) SleepConditionVariableCS(c, m, INFINITE)
#define cond_broadcast(c) WakeAllConditionVariable(c)
#define cond_destroy(c) ((void)0)
#else
#include <pthread.h>
typedef pthread_t thread_t;
typedef pthread_mutex_t mutex_t;
typedef pthread_cond_t cond_t;
#define mutex_init(m) pthread_mutex_init(m, NULL)
#define mutex_lock(m) pthread_mutex_lock(m)
#define mutex_unlock(m) pthread_mutex_unlock(m)
#define mutex_destroy(m) pthread_mutex_destroy(m)
#define cond_init(c) pthread_cond_init(c, NULL)
#define cond_wait(c, m) pthread_cond_wait(c, m)
#define cond_broadcast(c) pthread_cond_broadcast(c)
#define cond_destroy(c) pthread_cond_destroy(c)
#endif

typedef struct pool_state {
    const options *o;
    result *results;
    char *done;
    int n, next, printed, window;
    mutex_t lock;
    cond_t changed;
} pool_state;

static void work(pool_state *p)
{
    for (;;) {
        mutex_lock(&p->lock);
        /* Don't run too far ahead of the printer: memory stays bounded. */
        while (p->next < p->n && p->next >= p->printed + p->window)
            cond_wait(&p->changed, &p->lock);
        int i = p->next < p->n ? p->next++ : -1;
        mutex_unlock(&p->lock);
        if (i < 0)
            return;
        analyse(p->o, &p->results[i]);
        mutex_lock(&p->lock);
        p->done[i] = 1;
        cond_broadcast(&p->changed);
        mutex_unlock(&p->lock);
    }
}

#ifdef _WIN32
static DWORD WINAPI worker(LPVOID arg)
{
    work(arg);
    return 0;
}
#else
static void *worker(void *arg)
{
    work(arg);
    return NULL;
}
#endif

int run_jobs(const options *o, const char **paths, int npaths, int jobs, void (*emit)(const options *, result *))
{
    if (jobs <= 1 || npaths <= 1) {
        /* One at a time: print and release each dump before the next. */
        int worst = 0;
        for (int i = 0; i < npaths; i++) {
            result r = {.path = paths[i]};
            analyse(o, &r);
            emit(o, &r);
            if ((int)r.status > worst)
                worst = (int)r.status;
        }
        return worst;
    }
    pool_state p = {.o = o, .n = npaths, .window = 2 * jobs};
    p.results = calloc((size_t)npaths, sizeof *p.results);
    p.done = calloc((size_t)npaths, 1);
    if (!p.results || !p.done) {
        free(p.results);
        free(p.done);
        return DL_ECORRUPT;
    }
    for (int i = 0; i < npaths; i++)
        p.results[i].path = paths[i];
    mutex_init(&p.lock);
    cond_init(&p.changed);
    int nthreads = jobs < npaths ? jobs : npaths;
    if (nthreads < 1)
        nthreads = 1;
    thread_t *t = nthreads > 1 ? calloc((size_t)nthreads, sizeof *t) : NULL;
    int started = 0;
    for (; t && started < nthreads; started++) {
#ifdef _WIN32
        if (!(t[started] = CreateThread(NULL, 0, worker, &p, 0, NULL)))
            break;
#else
        if (pthread_create(&t[started], NULL, worker, &p))
            break;
#endif
    }
    if (!started) {
        p.window = npaths; /* no thread could start: this one does the work */
        work(&p);
    }
    int worst = 0;
    for (int i = 0; i < npaths; i++) {
        mutex_lock(&p.lock);
        while (!p.done[i])
            cond_wait(&p.changed, &p.lock);
        mutex_unlock(&p.lock);
        emit(o, &p.results[i]);
        if ((int)p.results[i].status > worst)
            worst = (int)p.results[i].status;
        mutex_lock(&p.lock);
        p.printed = i + 1;
        cond_broadcast(&p.changed);
        mutex_unlock(&p.lock);
    }
    for (int i = 0; i < started; i++) {
#ifdef _WIN32
        WaitForSingleObject(t[i], INFINITE);
        CloseHandle(t[i]);
#else
        pthread_join(t[i], NULL);
#endif
    }
    free(t);
    cond_destroy(&p.changed);
    mutex_destroy(&p.lock);
    free(p.results);
    free(p.done);
    return worst;
}
