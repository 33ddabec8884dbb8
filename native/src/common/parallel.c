/* pt_parallel_range: our own thread pool (POSIX), or OpenMP on Windows.
 *
 * Why not OpenMP everywhere: a team barrier waits for every thread of the team, so when the
 * machine is busy and a worker is not scheduled, the calling thread waits for it (spinning, by
 * libgomp's default) even if there is no work left for it: a model's forward pass runs dozens of
 * short parallel regions and each can cost a scheduler time slice. Here the chunks of a job are
 * CLAIMED: the calling thread runs the first chunk, then takes every chunk no worker has claimed
 * yet, and waits only for chunks a worker has actually started. A worker that wakes late finds
 * its chunk taken and goes back to waiting. When the machine is quiet, workers spin for a short while between jobs (consecutive
 * kernel calls of a model), then sleep on a condition variable.
 *
 * Pools are per calling thread (as OpenMP's teams are): each thread that calls a kernel gets
 * its own workers, created on first use and grown as contexts with more threads appear; they
 * are stopped and joined when the calling thread exits. A kernel called from inside a job (a
 * nested call) runs serially. */
#include "internal.h"

#if defined(_WIN32)

#if defined(_OPENMP)
#  include <omp.h>
#endif

void pt_parallel_range(const pt_ctx* ctx, int64_t n, int64_t grain, pt_range_fn fn, void* arg) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t nt = ctx ? ctx->n_threads : 1;
    int64_t max_chunks = (n + grain - 1) / grain;
    if (nt > max_chunks) nt = max_chunks;
    if (nt <= 1) {
        fn(0, n, arg);
        return;
    }
#if defined(_OPENMP)
#  pragma omp parallel num_threads((int)nt)
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t begin = n * t / T, end = n * (t + 1) / T;
        if (begin < end) fn(begin, end, arg);
    }
#else
    fn(0, n, arg);
#endif
}

void pt_parallel_park(void) {}

#else /* POSIX: the claiming pool */

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define MAX_WORKERS 255
/* how long a worker spins for the next job before sleeping, and how long the caller spins
 * for a started chunk before yielding its time slice */
#define SPIN_NS 100000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct pool pool;

/* A worker's slot: its own cache line, holding the state it spins on and the chunk the caller
 * hands it. slot = (job generation << 2) | st, st one of: */
enum { SLOT_DONE = 0, SLOT_POSTED = 1, SLOT_RUNNING = 2, SLOT_STOLEN = 3 };
/* The caller writes the chunk and then the slot (POSTED); the worker claims it by a CAS
 * POSTED -> RUNNING on its own line and stores DONE there when the chunk is over. The caller,
 * after its own chunk, takes every chunk still POSTED (CAS -> STOLEN: a worker that wakes late
 * finds it taken) and waits for the RUNNING ones. A 2-thread job thus moves the slot line
 * between the two cores about three times (post, claim, done) and touches no line shared by
 * all workers; the caller starts its own chunk right after the post, with no atomic RMW before
 * it (session 8: the shared claim counter and done counter took ~0.6-0.8 us per 2-thread job). */
typedef struct {
    _Alignas(64) _Atomic uint64_t slot;
    /* the chunk: written by the caller before it posts, read by the worker after its claim */
    pt_range_fn fn;
    void* arg;
    int64_t begin, end;
    _Atomic int sleeping;        /* the worker is (about to be) asleep on the pool's cv */
    uint64_t gen0;               /* the generation before the worker's first job */
    pool* p;
} worker;

struct pool {
    /* rarely written: read by the workers while they spin */
    _Alignas(64) _Atomic int stop;
    _Atomic int park;            /* pt_parallel_park: sleep now instead of spinning */
    _Alignas(64) pthread_mutex_t mu;
    pthread_cond_t cv;
    /* the caller's own */
    _Alignas(64) uint64_t gen;   /* the last job's generation */
    int nworkers;
    pthread_t threads[MAX_WORKERS];
    worker workers[MAX_WORKERS];
};

static _Thread_local pool* tl_pool;
static _Thread_local int tl_in_job;    /* inside a chunk (caller or worker): nested calls run serially */
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void* worker_main(void* argp) {
    worker* w = (worker*)argp;
    pool* p = w->p;
    tl_in_job = 1;
    uint64_t seen = w->gen0; /* not the slot: the first job may be posted already */
    for (;;) {
        /* wait for a new generation in the slot: spin a while, then sleep */
        uint64_t s;
        int64_t t0 = now_ns();
        for (int i = 0;; i++) {
            s = atomic_load_explicit(&w->slot, memory_order_acquire);
            if ((s >> 2) != seen) break;
            cpu_relax();
            if ((i & 63) == 63) {
                if (atomic_load_explicit(&p->stop, memory_order_relaxed)) return NULL;
                if (atomic_load_explicit(&p->park, memory_order_relaxed) || now_ns() - t0 > SPIN_NS) {
                    pthread_mutex_lock(&p->mu);
                    atomic_store(&w->sleeping, 1); /* the caller's relaxed check may miss it: see pt_parallel_range */
                    while ((atomic_load(&w->slot) >> 2) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
                    atomic_store(&w->sleeping, 0);
                    pthread_mutex_unlock(&p->mu);
                    if (atomic_load_explicit(&p->stop, memory_order_relaxed)) return NULL;
                    t0 = now_ns();
                }
            }
        }
        seen = s >> 2;
        if ((s & 3) != SLOT_POSTED) continue; /* taken by the caller meanwhile */
        if (!atomic_compare_exchange_strong_explicit(&w->slot, &s, (s & ~(uint64_t)3) | SLOT_RUNNING, memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        w->fn(w->begin, w->end, w->arg);
        atomic_store_explicit(&w->slot, seen << 2 | SLOT_DONE, memory_order_release);
    }
}

static void pool_destroy(void* v) {
    pool* p = (pool*)v;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void make_key(void) { pthread_key_create(&g_key, pool_destroy); }

/* This thread's pool with at least `helpers` workers (fewer if threads cannot be made). */
static pool* get_pool(int helpers) {
    pool* p = tl_pool;
    if (!p) {
        pthread_once(&g_once, make_key);
        if (posix_memalign((void**)&p, 64, sizeof *p) != 0) return NULL;
        memset(p, 0, sizeof *p);
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->cv, NULL);
        tl_pool = p;
        pthread_setspecific(g_key, p);
    }
    if (helpers > MAX_WORKERS) helpers = MAX_WORKERS;
    while (p->nworkers < helpers) {
        worker* w = &p->workers[p->nworkers];
        w->p = p;
        w->gen0 = p->gen;
        atomic_init(&w->slot, p->gen << 2 | SLOT_DONE);
        atomic_init(&w->sleeping, 0);
        if (pthread_create(&p->threads[p->nworkers], NULL, worker_main, w) != 0) break;
        p->nworkers++;
    }
    return p;
}

void pt_parallel_range(const pt_ctx* ctx, int64_t n, int64_t grain, pt_range_fn fn, void* arg) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t nt = ctx ? ctx->n_threads : 1;
    int64_t max_chunks = (n + grain - 1) / grain;
    if (nt > max_chunks) nt = max_chunks;
    pool* p = nt > 1 && !tl_in_job ? get_pool((int)(nt - 1)) : NULL;
    if (!p || p->nworkers == 0) {
        fn(0, n, arg);
        return;
    }
    if (nt > p->nworkers + 1) nt = p->nworkers + 1;
    const uint64_t gen = ++p->gen;
    if (atomic_load_explicit(&p->park, memory_order_relaxed)) atomic_store_explicit(&p->park, 0, memory_order_relaxed);
    /* post chunk c (1..nt-1) to worker c-1; the caller runs chunk 0 */
    int wake = 0;
    for (int c = 1; c < nt; c++) {
        worker* w = &p->workers[c - 1];
        w->fn = fn;
        w->arg = arg;
        w->begin = n * c / nt;
        w->end = n * (c + 1) / nt;
        atomic_store_explicit(&w->slot, gen << 2 | SLOT_POSTED, memory_order_release);
        wake |= atomic_load_explicit(&w->sleeping, memory_order_relaxed);
    }
    if (wake) { /* the worker reads its slot under the mutex before it waits: it sees the post or gets the broadcast */
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    tl_in_job = 1;
    fn(0, n / nt, arg);
    /* take the chunks no worker has claimed yet (a worker late, or one that went to sleep after
     * the relaxed check above: it is woken at a later job, whose check sees `sleeping`) */
    for (int c = 1; c < nt; c++) {
        worker* w = &p->workers[c - 1];
        uint64_t s = gen << 2 | SLOT_POSTED;
        if (atomic_load_explicit(&w->slot, memory_order_relaxed) == s &&
            atomic_compare_exchange_strong_explicit(&w->slot, &s, gen << 2 | SLOT_STOLEN, memory_order_relaxed,
                                                    memory_order_relaxed))
            fn(n * c / nt, n * (c + 1) / nt, arg);
    }
    tl_in_job = 0;
    /* wait for the chunks the workers run */
    for (int c = 1; c < nt; c++) {
        worker* w = &p->workers[c - 1];
        int64_t t0 = 0;
        for (int i = 0; atomic_load_explicit(&w->slot, memory_order_acquire) == (gen << 2 | SLOT_RUNNING); i++) {
            cpu_relax();
            if ((i & 63) == 63) {
                if (!t0) t0 = now_ns();
                else if (now_ns() - t0 > SPIN_NS) sched_yield();
            }
        }
    }
}

/* The calling thread's workers sleep now instead of spinning for the next job: before handing
 * the cores to another runtime's threads (oneDNN's OpenMP team), which would otherwise wait for
 * a spinning worker's time slice on a machine with as many cores as threads. */
void pt_parallel_park(void) {
    pool* p = tl_pool;
    if (p) atomic_store_explicit(&p->park, 1, memory_order_relaxed);
}

#endif
