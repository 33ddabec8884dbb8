/* pt_parallel_range: our own thread pool (POSIX), or OpenMP on Windows.
 *
 * Why not OpenMP everywhere: a team barrier waits for every thread of the team, so when the
 * machine is busy and a worker is not scheduled, the calling thread waits for it (spinning, by
 * libgomp's default) even if there is no work left for it: a model's forward pass runs dozens of
 * short parallel regions and each can cost a scheduler time slice. Here the chunks of a job are
 * CLAIMED: the calling thread claims and runs chunks like any worker, and waits only for chunks
 * a worker has actually started. A worker that wakes late finds the job taken and goes back to
 * waiting. When the machine is quiet, workers spin for a short while between jobs (consecutive
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

typedef struct {
    pool* p;
    int index;
    pthread_t thread;
} worker;

/* The fields sit on separate cache lines by who writes them: a worker spinning on `state` must not
 * pull the line back between the caller's stores of a job (a 2-thread job's hand-off took
 * ~0.8 us with everything on one line, session 7). */
struct pool {
    /* state = (job generation << 32) | next chunk to claim; claims are CASes on it, so a
     * worker that saw an older generation can never claim a chunk of a newer job */
    _Alignas(64) _Atomic uint64_t state;
    _Alignas(64) _Atomic int64_t done;   /* chunks finished in the current job */
    /* the current job; written by the caller before it publishes a new generation, read by a
     * worker only after a successful claim (the job cannot finish before that chunk does) */
    _Alignas(64) pt_range_fn fn;
    void* arg;
    int64_t n, chunks;
    int helpers;                 /* workers wanted by this job (chunks - 1) */
    /* rarely written: read by the caller on every job, by the workers while they spin */
    _Alignas(64) _Atomic int sleepers;
    _Atomic int stop;
    _Atomic int park;            /* pt_parallel_park: sleep now instead of spinning */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int nworkers;
    worker workers[MAX_WORKERS];
};

static _Thread_local pool* tl_pool;
static _Thread_local int tl_in_job;    /* inside a chunk (caller or worker): nested calls run serially */
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Runs chunk c of the current job. */
static inline void run_chunk(pool* p, uint32_t c) {
    int64_t begin = p->n * (int64_t)c / p->chunks, end = p->n * ((int64_t)c + 1) / p->chunks;
    if (begin < end) p->fn(begin, end, p->arg);
    atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
}

/* Claims a chunk of generation gen; returns its index, or -1 when the job is taken or over. */
static inline int64_t claim(pool* p, uint32_t gen, int64_t chunks) {
    uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(s >> 32) != gen || (int64_t)(s & 0xffffffffu) >= chunks) return -1;
        if (atomic_compare_exchange_weak_explicit(&p->state, &s, s + 1, memory_order_acq_rel, memory_order_acquire))
            return (int64_t)(s & 0xffffffffu);
    }
}

static void* worker_main(void* argp) {
    worker* w = (worker*)argp;
    pool* p = w->p;
    tl_in_job = 1;
    uint32_t seen = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32);
    for (;;) {
        /* wait for a new generation: spin a while, then sleep */
        uint32_t gen = seen;
        int64_t t0 = now_ns();
        for (int i = 0;; i++) {
            gen = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32);
            if (gen != seen || atomic_load_explicit(&p->stop, memory_order_relaxed)) break;
            cpu_relax();
            if ((i & 63) == 63 && (atomic_load_explicit(&p->park, memory_order_relaxed) || now_ns() - t0 > SPIN_NS)) {
                pthread_mutex_lock(&p->mu);
                atomic_fetch_add(&p->sleepers, 1); /* seq_cst: pairs with the caller's publish + load */
                while ((uint32_t)(atomic_load(&p->state) >> 32) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
                atomic_fetch_sub(&p->sleepers, 1);
                pthread_mutex_unlock(&p->mu);
                t0 = now_ns();
            }
        }
        if (atomic_load_explicit(&p->stop, memory_order_relaxed)) return NULL;
        seen = gen;
        /* the caller writes `chunks`/`helpers` before publishing gen; a stale read only makes
         * this worker try a claim that then fails on the generation check */
        int64_t chunks = p->chunks;
        if (w->index >= p->helpers) continue;
        int64_t c;
        while ((c = claim(p, gen, chunks)) >= 0) run_chunk(p, (uint32_t)c);
    }
}

static void pool_destroy(void* v) {
    pool* p = (pool*)v;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++) pthread_join(p->workers[i].thread, NULL);
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
        atomic_init(&p->state, 0);
        atomic_init(&p->done, 0);
        tl_pool = p;
        pthread_setspecific(g_key, p);
    }
    if (helpers > MAX_WORKERS) helpers = MAX_WORKERS;
    while (p->nworkers < helpers) {
        worker* w = &p->workers[p->nworkers];
        w->p = p;
        w->index = p->nworkers;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) break;
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
    /* publish the job: fields first, then the new generation with chunk 0 unclaimed */
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->chunks = nt;
    p->helpers = (int)nt - 1;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    if (atomic_load_explicit(&p->park, memory_order_relaxed)) atomic_store_explicit(&p->park, 0, memory_order_relaxed);
    uint32_t gen = (uint32_t)(atomic_load_explicit(&p->state, memory_order_relaxed) >> 32) + 1;
    atomic_store(&p->state, (uint64_t)gen << 32); /* seq_cst: pairs with the sleepers' check */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    /* the caller claims chunks too: with no worker around it runs them all */
    tl_in_job = 1;
    int64_t c;
    while ((c = claim(p, gen, nt)) >= 0) run_chunk(p, (uint32_t)c);
    tl_in_job = 0;
    /* every chunk is claimed; wait for those a worker is running */
    int64_t t0 = 0;
    for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < nt; i++) {
        cpu_relax();
        if ((i & 63) == 63) {
            if (!t0) t0 = now_ns();
            else if (now_ns() - t0 > SPIN_NS) sched_yield();
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
