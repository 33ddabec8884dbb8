/* scripts/pool-bench/stress.c: checks pt_parallel_range's contract (every item of [0, n) run
 * exactly once, in chunks of at least one item, nested calls serial) under contexts of 2..8
 * threads, pauses that put the workers to sleep, pt_parallel_park and a pool that grows.
 * Build: gcc -O2 -std=gnu11 -Inative/src -Inative/include scripts/pool-bench/stress.c -o /tmp/pool-stress -lpthread
 * Run: /tmp/pool-stress [ROUNDS]   (prints "ok" or the first failure, exit status 1) */
#include "common/parallel.c"
#include <stdio.h>

static _Atomic int hits[4096];
static _Atomic int nested_bad;
static pt_ctx g_ctx;

static void inner(int64_t b, int64_t e, void* a) { (void)a; (void)b; (void)e; }
static void body(int64_t b, int64_t e, void* a) {
    int nest = *(int*)a;
    if (b >= e) atomic_fetch_add(&nested_bad, 1);
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&hits[i], 1);
    if (nest) {
        /* a nested call must run serially on this thread */
        pool* before = tl_pool;
        pt_parallel_range(&g_ctx, 100, 1, inner, NULL);
        if (tl_pool != before) atomic_fetch_add(&nested_bad, 1);
    }
}

int main(int argc, char** argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 200000;
    uint64_t r = 88172645463325252ull;
    memset(&g_ctx, 0, sizeof g_ctx);
    for (int it = 0; it < rounds; it++) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        pt_ctx ctx = g_ctx;
        ctx.n_threads = 1 + (int)(r % 8);
        g_ctx.n_threads = ctx.n_threads;
        int64_t n = 1 + (int64_t)((r >> 8) % 4096);
        int64_t grain = 1 + (int64_t)((r >> 24) % 64);
        int nest = (int)((r >> 40) % 16 == 0);
        for (int64_t i = 0; i < n; i++) atomic_store(&hits[i], 0);
        if ((r >> 44) % 64 == 0) pt_parallel_park();
        if ((r >> 50) % 512 == 0) { struct timespec ts = {0, 300000}; nanosleep(&ts, NULL); } /* workers fall asleep */
        pt_parallel_range(&ctx, n, grain, body, &nest);
        for (int64_t i = 0; i < n; i++)
            if (atomic_load(&hits[i]) != 1) {
                printf("FAIL round %d: threads %d n %lld grain %lld: item %lld run %d times\n", it, ctx.n_threads, (long long)n,
                       (long long)grain, (long long)i, atomic_load(&hits[i]));
                return 1;
            }
        if (atomic_load(&nested_bad)) { printf("FAIL round %d: an empty chunk or a nested call that used the pool\n", it); return 1; }
    }
    printf("ok (%d rounds)\n", rounds);
    return 0;
}
