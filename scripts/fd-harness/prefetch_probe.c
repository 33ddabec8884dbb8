/* A probe of overlap between a memory stream and compute (issue 3, session 6), not part of the build:
 * two streams (K, V) of 64 MiB read line by line with W FMAs per 128 bytes, no / t0 / t1 software
 * prefetch D bytes ahead (argv[1], default 4096), or t1 prefetches issued in clumps of 4/16/64 lines
 * per stream; each from DRAM (after an 8-stream read of 256 MiB, also reported) and with 256 KiB
 * in L2 (best of 20), next to the no-overlap model 1 / (1/read + 1/in-L2).
 * Build: gcc -O3 -mavx512f -mfma scripts/fd-harness/prefetch_probe.c -o /tmp/pp && /tmp/pp 4096 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
#include "probe_common.h"
static double read8(const char* b, size_t bytes) { return read8_1(b, bytes); }
/* W: FMAs per line (8 independent chains); HINT 0: none, 1: t0, 2: t1; D: distance in bytes */
static char ring[16384] __attribute__((aligned(64)));
#define KERN(NAME, W, HINT) KERNS(NAME, W, HINT, 0)
#define KERNS(NAME, W, HINT, ST) \
static double NAME(const char* k, const char* v, size_t n, size_t D) { \
    __m512 a[8]; for (int i = 0; i < 8; i++) a[i] = _mm512_set1_ps(i); double t0 = now(); \
    for (size_t o = 0; o < n; o += 64) { \
        if (HINT == 1) { __asm__ volatile("prefetcht0 %0" :: "m"(k[o + D])); __asm__ volatile("prefetcht0 %0" :: "m"(v[o + D])); } \
        if (HINT == 2) { __asm__ volatile("prefetcht1 %0" :: "m"(k[o + D])); __asm__ volatile("prefetcht1 %0" :: "m"(v[o + D])); } \
        if (HINT >= 3 && (o & (64 * HINT - 1)) == 0) for (int q = 0; q < HINT; q++) { __asm__ volatile("prefetcht1 %0" :: "m"(k[o + D + 64 * q])); __asm__ volatile("prefetcht1 %0" :: "m"(v[o + D + 64 * q])); } \
        __m512 x = _mm512_load_ps((const float*)(k + o)), y = _mm512_load_ps((const float*)(v + o)); \
        __asm__ volatile("" :: "v"(x), "v"(y)); if (ST) { _mm512_store_ps((float*)(ring + (o & 8191)), _mm512_add_ps(x, y)); if (ST > 1) _mm512_store_ps((float*)(ring + 8192 + (o & 8191)), _mm512_sub_ps(x, y)); } for (int w = 0; w < W; w++) a[w & 7] = _mm512_fmadd_ps(a[w & 7], (w & 1) ? x : y, y); \
    } \
    double t = now() - t0; __m512 s = a[0]; for (int i = 1; i < 8; i++) s = _mm512_add_ps(s, a[i]); sink += _mm512_reduce_add_ps(s); return 2.0 * n / t * 1e-9; }
KERN(k0n, 0, 0) KERN(k0t0, 0, 1) KERN(k0t1, 0, 2)
KERN(k16n, 4, 0) KERN(k16t0, 4, 1) KERN(k16t1, 4, 2)
KERN(k32n, 8, 0) KERN(k32t0, 8, 1) KERN(k32t1, 8, 2)
KERNS(k64n, 8, 4, 0) KERNS(k64t0, 8, 16, 0) KERNS(k64t1, 8, 64, 0)
typedef double (*kf)(const char*, const char*, size_t, size_t);
int main(int argc, char** argv) {
    size_t n = (size_t)64 << 20, fb = (size_t)256 << 20;
    char *k = aligned_alloc(4096, n + (1 << 20)), *v = aligned_alloc(4096, n + (1 << 20)), *F = aligned_alloc(4096, fb);
    memset(k, 0, n + (1 << 20)); memset(v, 0, n + (1 << 20)); memset(F, 1, fb);
    kf fs[12] = {k0n, k0t0, k0t1, k16n, k16t0, k16t1, k32n, k32t0, k32t1, k64n, k64t0, k64t1};
    const char* nm[12] = {"W0 none", "W0 t0", "W0 t1", "W4 none", "W4 t0", "W4 t1", "W8 none", "W8 t0", "W8 t1", "W8 clump4", "W8 clump16", "W8 clump64"};
    size_t D = argc > 1 ? atol(argv[1]) : 4096;
    for (int f = 0; f < 12; f++) {
        double rd = read8(F, fb); double dr = fs[f](k, v, n, D);
        double c = 0; for (int r = 0; r < 20; r++) { double x = fs[f](k, v, 256 << 10, D); if (x > c) c = x; }
        printf("%-9s dram %6.2f GB/s (read8 %5.2f) = %3.0f%%   in-L2 %6.2f   sum-model %5.2f\n", nm[f], dr, rd, 100 * dr / rd, c, 1 / (1 / rd + 1 / c));
    }
}
