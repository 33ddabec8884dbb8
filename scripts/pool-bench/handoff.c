/* scripts/pool-bench/handoff.c: ns per 2-thread pt_parallel_range job (the pool hand-off), a scratch driver
 * that includes parallel.c itself. Build: gcc -O2 -std=gnu11 -Inative/src -Inative/include
 * scripts/pool-bench/handoff.c -o /tmp/handoff -lpthread; run: /tmp/handoff WORK (iterations per chunk).
 * A/B: build it from two trees and alternate the binaries (BENCHMARKS.md, issue 6, session 7, lead). */
#include "common/parallel.c"
#include <stdio.h>
static volatile int64_t sink;
static void fn(int64_t b, int64_t e, void* a) { (void)a; int64_t s = 0; for (int64_t i = b; i < e; i++) s += i; sink += s; }
static int cmp(const void* a, const void* b) { double x = *(const double*)a, y = *(const double*)b; return x < y ? -1 : x > y; }
int main(int argc, char** argv) {
    pt_ctx ctx; memset(&ctx, 0, sizeof ctx); ctx.n_threads = 2;
    int work = argc > 1 ? atoi(argv[1]) : 1000; /* iterations per chunk */
    double med[15];
    for (int r = 0; r < 15; r++) {
        int64_t t0 = now_ns();
        int calls = 20000;
        for (int i = 0; i < calls; i++) pt_parallel_range(&ctx, 2 * work, 1, fn, NULL);
        med[r] = (now_ns() - t0) / (double)calls;
    }
    qsort(med, 15, sizeof(double), cmp);
    printf("work %d: ns per call median %.0f (min %.0f max %.0f)\n", work, med[7], med[0], med[14]);
    pt_ctx c1 = ctx; c1.n_threads = 1;
    int64_t t0 = now_ns(); for (int i = 0; i < 20000; i++) pt_parallel_range(&c1, 2 * work, 1, fn, NULL);
    printf("1 thread: %.0f ns per call\n", (now_ns() - t0) / 20000.0);
    return 0;
}
