/* scripts/pool-bench/ab.c: two thread pools (parallel.c of two trees) alternated in one process:
 * blocks of 2000 two-thread pt_parallel_range jobs (WORK loop iterations per chunk), the first of
 * each pair of blocks alternating; prints each pool's median TSC cycles per job over 41 blocks.
 * Unlike handoff.c (one pool per binary), both run in the same minutes on the same two vCPUs.
 * x86-64 only (rdtsc). Build, with BASE a checkout of the base tree:
 *   F="gcc -O2 -std=gnu11 -c -Inative/src/common -Inative/src -Inative/include"
 *   $F -Dpt_parallel_range=pr_0 -Dpt_parallel_park=pk_0 BASE/native/src/common/parallel.c -o /tmp/pv0.o
 *   $F -Dpt_parallel_range=pr_1 -Dpt_parallel_park=pk_1 native/src/common/parallel.c -o /tmp/pv1.o
 *   gcc -O2 -std=gnu11 -Inative/src/common -Inative/src -Inative/include scripts/pool-bench/ab.c /tmp/pv0.o /tmp/pv1.o -o /tmp/pool-ab -lpthread
 *   /tmp/pool-ab WORK        (session 8: WORK 1000 and 200, under /tmp/rb/quiet.sh) */
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <x86intrin.h>
void pr_0(const pt_ctx*, int64_t, int64_t, pt_range_fn, void*);
void pr_1(const pt_ctx*, int64_t, int64_t, pt_range_fn, void*);
static void (*const prs[2])(const pt_ctx*, int64_t, int64_t, pt_range_fn, void*) = {pr_0, pr_1};
static volatile int64_t sink;
static void fn(int64_t b, int64_t e, void* a) {
    (void)a;
    int64_t s = 0;
    for (int64_t i = b; i < e; i++) s += i;
    sink += s;
}
static int cmpd(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}
int main(int argc, char** argv) {
    pt_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.n_threads = 2;
    const int work = argc > 1 ? atoi(argv[1]) : 1000, R = 41;
    double t[2][41], ratio[41];
    for (int r = -2; r < R; r++)
        for (int j = 0; j < 2; j++) {
            const int v = (r + 2 + j) & 1;
            const uint64_t t0 = __rdtsc();
            for (int i = 0; i < 2000; i++) prs[v](&ctx, 2 * (int64_t)work, 1, fn, NULL);
            if (r >= 0) t[v][r] = (double)(__rdtsc() - t0) / 2000.0;
        }
    for (int r = 0; r < R; r++) ratio[r] = t[0][r] / t[1][r];
    qsort(ratio, R, sizeof(double), cmpd);
    for (int v = 0; v < 2; v++) {
        qsort(t[v], R, sizeof(double), cmpd);
        printf("pool %d: median %.0f TSC cycles per job (p25 %.0f, p75 %.0f)\n", v, t[v][R / 2], t[v][R / 4], t[v][3 * R / 4]);
    }
    printf("pool 0 / pool 1 per block pair: median %.3f (p25 %.3f, p75 %.3f)\n", ratio[R / 2], ratio[R / 4], ratio[3 * R / 4]);
    return 0;
}
