/* A harness for the AMX decode chunk kernel (pt_fd_chunk_amx) outside the library: up to 4
 * variants of flash_attn_amx.c (compiled by run.sh with their symbols renamed fd_v0..fd_v3) run
 * alternately on one bf16 problem, G = 4 query rows per kv head, D = Dv = 128, Tq = 1, 1 thread.
 *   mode cache: one head of N keys (keep N * 512 B within L2), no flush: the in-cache rate.
 *   mode dram:  NH heads of N keys, each call preceded by an 8-stream read of 256 MiB (which also
 *               flushes the L3): K/V from DRAM, reported next to that read's bandwidth.
 * Variants may also be copies of flash_attn_avx512.c (its pt_fd_chunk_avx512; FD_F32=1: f32 q and
 * K/V, only for those).
 * Prints K/V GB/s per variant: best, median (min..max) of the repeats. Not part of the build or
 * the tests (BENCHMARKS.md, issue 3, session 6). The AVX-512 kernel prefetches as on hosts
 * without AMX (p.pf_l1) unless FD_PF_L2=1. */
#define _GNU_SOURCE
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <immintrin.h>
#include "cpu/flash_attn.h"

void* pt_scratch(int slot, size_t bytes);
void pt_store_row_f32(const float* src, int64_t n, int32_t dtype, void* dst);
void* pt_scratch(int slot, size_t bytes) {
    static void* s[4];
    static size_t n[4];
    if (bytes > n[slot]) {
        free(s[slot]);
        s[slot] = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
        n[slot] = bytes;
    }
    return s[slot];
}
void pt_store_row_f32(const float* src, int64_t n, int32_t dtype, void* dst) { (void)dtype; memcpy(dst, src, (size_t)n * 4); }
/* what flash_attn_avx512.c needs besides (its decode kernel as a variant) */
size_t pt_dtype_size(int32_t dtype) { return dtype == 0 ? 4 : 2; }
void pt_load_row_f32(const void* src, int32_t dtype, int64_t n, float* dst) {
    for (int64_t i = 0; i < n; i++) {
        if (dtype == 0) { dst[i] = ((const float*)src)[i]; continue; }
        uint32_t u = (uint32_t)((const uint16_t*)src)[i] << 16;
        memcpy(dst + i, &u, 4);
    }
}
bool pt_fd_chunk_portable(const pt_fd_problem* p, const pt_fd_item* it, float* part) { (void)p; (void)it; (void)part; return false; }

typedef bool (*fn_t)(const pt_fd_problem*, const pt_fd_item*, float*);
bool fd_v0(const pt_fd_problem*, const pt_fd_item*, float*);
bool fd_v1(const pt_fd_problem*, const pt_fd_item*, float*);
bool fd_v2(const pt_fd_problem*, const pt_fd_item*, float*);
bool fd_v3(const pt_fd_problem*, const pt_fd_item*, float*);
#ifndef NVAR
#  define NVAR 4
#endif
#if NVAR < 4
bool fd_v3(const pt_fd_problem* p, const pt_fd_item* i, float* o) { return fd_v0(p, i, o); }
#endif
#if NVAR < 3
bool fd_v2(const pt_fd_problem* p, const pt_fd_item* i, float* o) { return fd_v0(p, i, o); }
#endif
#if NVAR < 2
bool fd_v1(const pt_fd_problem* p, const pt_fd_item* i, float* o) { return fd_v0(p, i, o); }
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
static uint16_t bf(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)(u >> 16);
}
static volatile double sink;
static double read8(const char* b, size_t bytes) { /* 8 streams side by side, as pt-bench's read */
    double t0 = now();
    size_t seg = bytes / 8;
    __m512i acc = _mm512_setzero_si512();
    for (size_t o = 0; o < seg; o += 64)
        for (int s = 0; s < 8; s++) acc = _mm512_add_epi64(acc, _mm512_load_si512(b + s * seg + o));
    double t = now() - t0;
    sink += (double)_mm512_reduce_add_epi64(acc);
    return bytes / t * 1e-9;
}
static void sort(double* a, int n) {
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (a[j] < a[i]) { double x = a[i]; a[i] = a[j]; a[j] = x; }
}

int main(int argc, char** argv) {
    if (argc < 6) { fprintf(stderr, "usage: %s NVAR cache|dram N NH REPS\n", argv[0]); return 2; }
    syscall(SYS_arch_prctl, 0x1023, 18); /* ARCH_REQ_XCOMP_PERM, XTILEDATA */
    int nv = atoi(argv[1]), dram = !strcmp(argv[2], "dram"), NH = atoi(argv[4]), reps = atoi(argv[5]);
    int64_t N = atoll(argv[3]);
    if (reps > 1000000) reps = 1000000;
    fn_t fns[4] = {fd_v0, fd_v1, fd_v2, fd_v3};
    enum { D = 128, G = 4 };
    /* FD_F32=1: f32 q and K/V (only for variants of flash_attn_avx512.c) */
    const int f32 = getenv("FD_F32") && atoi(getenv("FD_F32"));
    const size_t es = f32 ? 4 : 2;
    size_t kvb = (size_t)NH * (size_t)N * D * es;
    uint16_t *K = aligned_alloc(4096, kvb), *V = aligned_alloc(4096, kvb), *Q = aligned_alloc(64, G * D * es);
    srand(1);
    for (size_t i = 0; i < kvb / es; i++) {
        float a = rand() / (float)RAND_MAX - 0.5f, b = rand() / (float)RAND_MAX - 0.5f;
        if (f32) { ((float*)K)[i] = a; ((float*)V)[i] = b; } else { K[i] = bf(a); V[i] = bf(b); }
    }
    for (int i = 0; i < G * D; i++) {
        float a = rand() / (float)RAND_MAX - 0.5f;
        if (f32) ((float*)Q)[i] = a; else Q[i] = bf(a);
    }
    /* FD_IL=1: odd variants read a copy of K/V with each row's K and V lines adjacent (row j of
     * head h at (h * N + j) * 2D elements, its V after its K): one stream per item instead of 2. */
    const int il = getenv("FD_IL") && atoi(getenv("FD_IL"));
    uint16_t* KV = NULL;
    if (il) {
        KV = aligned_alloc(4096, 2 * kvb);
        for (size_t r = 0; r < (size_t)NH * N; r++) {
            memcpy(KV + r * 2 * D, K + r * D, D * 2);
            memcpy(KV + r * 2 * D + D, V + r * D, D * 2);
        }
    }
    size_t fb = (size_t)256 << 20;
    char* F = NULL;
    if (dram) { F = aligned_alloc(4096, fb); memset(F, 1, fb); }
    pt_fd_problem p;
    memset(&p, 0, sizeof p);
    p.D = D; p.Dv = D; p.G = G; p.Tq = 1; p.q_dtype = p.kv_dtype = f32 ? 0 : 2; /* PT_F32 : PT_BF16 */
    p.scale_log2 = 1.4426950f / sqrtf((float)D);
    p.pf_l1 = !(getenv("FD_PF_L2") && atoi(getenv("FD_PF_L2"))); /* FD_PF_L2=1: the AMX hosts' prefetch */
    p.wl = -1; p.wr = 0; p.q_st = G * D * es; p.q_sh = D * es; p.k_ss = D * es; p.v_ss = D * es;
    float* part = aligned_alloc(64, G * (D + 2) * 4 * 2);
    float ref[G * (D + 2)];
    double* gb = calloc((size_t)reps * 4, sizeof(double));
    double* rd = calloc((size_t)reps, sizeof(double));
    for (int r = 0; r < reps; r++)
        for (int v = 0; v < nv; v++) {
            if (dram) rd[r] = read8(F, fb);
            double t0 = now();
            pt_fd_problem pv = p;
            if (il && (v & 1)) pv.k_ss = pv.v_ss = 4 * D;
            for (int h = 0; h < NH; h++) {
                pt_fd_item it = {(const char*)Q, (const char*)K + (size_t)h * N * D * es, (const char*)V + (size_t)h * N * D * es, N, 0, N};
                if (il && (v & 1)) { it.k = (const char*)(KV + (size_t)h * N * 2 * D); it.v = it.k + 2 * D; }
                fns[v](&pv, &it, part);
            }
            gb[v * reps + r] = 2.0 * kvb / (now() - t0) * 1e-9;
            if (r == 0 && v == 0) memcpy(ref, part, sizeof ref);
            if (r == 0 && v > 0) {
                double e = 0;
                for (int i = 0; i < G * (D + 2); i++) e = fmax(e, fabs(ref[i] - part[i]));
                if (e > 1e-3) printf("variant %d differs from variant 0 by %g\n", v, e);
            }
        }
    if (dram) sort(rd, reps);
    for (int v = 0; v < nv; v++) {
        double* g = gb + v * reps;
        sort(g, reps);
        printf("v%d: best %.2f GB/s  median %.2f (%.2f..%.2f)", v, g[reps - 1], g[reps / 2], g[0], g[reps - 1]);
        if (dram) printf("  = %.0f%% of the 8-stream read (median %.2f GB/s)", 100 * g[reps / 2] / rd[reps / 2], rd[reps / 2]);
        printf("\n");
    }
    return 0;
}
