/* pt-bench --op fp4: FP4 weight-only matmul (pt_fp4_matmul) against f32 dense through oneDNN
 * and through our own f32 kernel (pt_matmul with oneDNN off), in the same run, interleaved.
 *
 *   pt-bench --op fp4 [--m M] [--n N --k K | default: 768x768, 768x3072, 3072x768, 4096x4096]
 *            [--group 0|32|64|128] [--format e2m1|e1m2|e3m0|nf4] [--threads T] [--reps R]
 *            [--scales f32|bf16] [--cold-mib MiB] [--clock wall|cpu] [--weight-align 64|16] [--json]
 *   pt-bench --op fp4 --ports      (x86-64: the throughput of the GEMV's instructions, see fp4_ports)
 *
 * y = x @ Wᵀ, W [N, K]. Decode reads every weight from DRAM (a model's weights do not stay in
 * cache between tokens), so each method cycles through enough copies of its weight to cover
 * --cold-mib (default 256 MiB, above the last-level cache (105 MiB here)): one timed repeat = one call on each
 * copy, time per call = repeat time / copies. Repeats rotate the order of the methods: fp4 (the
 * default dispatch: on AVX512_VNNI the VNNI GEMV at M = 1, x in 16-bit fixed point), fp4-bf16
 * (the same call with AVX512_VNNI disabled: the W4A16 GEMV on AVX512_BF16), fp4-f32act (VNNI
 * and BF16 disabled: the f32-activation AVX-512 kernel), f32 oneDNN, f32 own.
 * Reported: median (min, max) microseconds per call, GB/s of weight bytes read (FP4: N*K/2
 * codes + the scales; f32: 4*N*K), and the speed-up of FP4 over each f32 baseline. Compare the
 * GB/s with `pt-bench --op copy` (read + write bytes) measured in the same session. */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a 2-D view; U4 (packed codes): row stride K/2 bytes */
static pt_tensor mk(void* d, int32_t dt, int64_t a, int64_t b) {
    pt_tensor t = pt_bench_t2(d, dt, a, b);
    if (dt == PT_U4) { t.stride[1] = 1; t.stride[0] = b / 2; }
    return t;
}

enum { FP4 = 0, FP4B = 1, FP4A = 2, DNN = 3, OWN = 4, NMETH = 5 };
static const char* MNAME[NMETH] = {"fp4", "fp4-bf16", "fp4-f32act", "f32-onednn", "f32-own"};

static int sdt = PT_F32; /* --scales f32|bf16 */
/* --weight-align 64|16: every weight copy (codes, scales, f32 weights) starts 64-byte aligned, as
 * Tensor.allocate gives a model's weights, or 16 bytes past that, as malloc gives a large block
 * (mmap, a 16-byte header): then every 64-byte code load of the FP4 GEMV spans two cache lines
 * (the figures before session 6 were taken that way). raw: the malloc'd block, for free. */
static int walign = 64;
static void* walloc(size_t bytes, void** raw) {
    *raw = malloc(bytes + 128);
    if (!*raw) return NULL;
    return (void*)((((uintptr_t)*raw + 63) & ~(uintptr_t)63) + (walign == 64 ? 0 : 16));
}
static int run_shape(pt_ctx* own, pt_ctx* bf16a, pt_ctx* f32a, pt_ctx* dnn, int64_t m, int64_t n, int64_t k, int group, int fmt, int reps, double cold_mib,
                     int json) {
    if (k % 2 || (group && k % group)) { fprintf(stderr, "K=%lld must be even and a multiple of --group %d\n", (long long)k, group); return 2; }
    const int64_t ng = group ? k / group : 1;
    const double fp4_bytes = (double)n * k / 2 + (sdt == PT_BF16 ? 2.0 : 4.0) * n * ng, f32_bytes = 4.0 * n * k;
    int copies[NMETH];
    copies[FP4] = copies[FP4B] = copies[FP4A] = (int)(cold_mib * 1048576.0 / fp4_bytes) + 1;
    copies[DNN] = copies[OWN] = (int)(cold_mib * 1048576.0 / f32_bytes) + 1;
    float* w = malloc(sizeof(float) * n * k);
    float* x = malloc(sizeof(float) * m * k);
    float* y = malloc(sizeof(float) * m * n);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < n * k; i++) w[i] = pt_bench_rand(&rng);
    for (int64_t i = 0; i < m * k; i++) x[i] = pt_bench_rand(&rng);
    uint8_t** codes = malloc(sizeof(void*) * copies[FP4]);
    float** scales = malloc(sizeof(void*) * copies[FP4]);
    float** wf = malloc(sizeof(void*) * copies[DNN]);
    void** raw = malloc(sizeof(void*) * (2 * (size_t)copies[FP4] + (size_t)copies[DNN]));
    pt_tensor tw = mk(w, PT_F32, n, k);
    pt_fp4_quant_params qp = {fmt, group, 1.0f, 0, NULL};
    for (int c = 0; c < copies[FP4]; c++) {
        codes[c] = walloc(n * k / 2, &raw[2 * c]); scales[c] = walloc(4 * n * ng, &raw[2 * c + 1]);
        if (!codes[c] || !scales[c]) { fprintf(stderr, "out of memory\n"); return 1; }
        pt_tensor tc = mk(codes[c], PT_U4, n, k), ts = mk(scales[c], sdt, n, ng);
        if (c == 0) {
            if (pt_fp4_quantize(own, &tw, &qp, &tc, &ts) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
        } else {
            memcpy(codes[c], codes[0], n * k / 2); memcpy(scales[c], scales[0], (sdt == PT_BF16 ? 2 : 4) * n * ng);
        }
    }
    for (int c = 0; c < copies[DNN]; c++) {
        wf[c] = walloc(sizeof(float) * n * k, &raw[2 * copies[FP4] + c]);
        if (!wf[c]) { fprintf(stderr, "out of memory\n"); return 1; }
        memcpy(wf[c], w, sizeof(float) * n * k);
    }
    pt_tensor tx = mk(x, PT_F32, m, k), ty = mk(y, PT_F32, m, n);
    pt_fp4_matmul_params fp = {fmt, group, 0, 0, 0.0f, 0, NULL};
    pt_matmul_params mp = {1, PT_ACT_NONE, 1.0f, 0.0f};
    double* t[NMETH];
    for (int i = 0; i < NMETH; i++) t[i] = malloc(sizeof(double) * reps);
    for (int r = -2; r < reps; r++) { /* two warm-up rounds */
        for (int j = 0; j < NMETH; j++) {
            int meth = (r + 2 * NMETH + j) % NMETH;
            double t0 = pt_bench_now();
            for (int c = 0; c < copies[meth]; c++) {
                pt_status st;
                if (meth == FP4 || meth == FP4B || meth == FP4A) {
                    pt_tensor tc = mk(codes[c], PT_U4, n, k), ts = mk(scales[c], sdt, n, ng);
                    st = pt_fp4_matmul(meth == FP4 ? own : meth == FP4B ? bf16a : f32a, &tx, &tc, &ts, NULL, &ty, &fp);
                } else {
                    pt_tensor tb = mk(wf[c], PT_F32, n, k);
                    st = pt_matmul(meth == DNN ? dnn : own, &tx, &tb, NULL, &ty, &mp);
                }
                if (st != PT_OK) { fprintf(stderr, "%s: %s\n", MNAME[meth], pt_last_error()); return 1; }
            }
            double dt = (pt_bench_now() - t0) / copies[meth];
            if (r >= 0) t[meth][r] = dt;
        }
    }
    double med[NMETH], lo[NMETH], hi[NMETH];
    for (int i = 0; i < NMETH; i++) {
        pt_bench_stats st = pt_bench_summary(t[i], reps);
        med[i] = st.med; lo[i] = st.lo; hi[i] = st.hi;
    }
    const double bytes[NMETH] = {fp4_bytes, fp4_bytes, fp4_bytes, f32_bytes, f32_bytes};
    if (json) {
        printf("{\"op\":\"fp4\",\"m\":%lld,\"n\":%lld,\"k\":%lld,\"group\":%d,\"format\":%d,\"reps\":%d,\"weight_offset\":%d", (long long)m,
               (long long)n, (long long)k, group, fmt, reps, walign == 64 ? 0 : 16);
        for (int i = 0; i < NMETH; i++)
            printf(",\"%s_us\":%.3f,\"%s_us_min\":%.3f,\"%s_us_max\":%.3f,\"%s_gbps\":%.2f", MNAME[i], med[i] * 1e6, MNAME[i],
                   lo[i] * 1e6, MNAME[i], hi[i] * 1e6, MNAME[i], bytes[i] / med[i] * 1e-9);
        printf(",\"speedup_vs_onednn\":%.2f,\"speedup_vs_own\":%.2f,\"speedup_vs_fp4_bf16\":%.2f,\"speedup_vs_fp4_f32act\":%.2f}\n",
               med[DNN] / med[FP4], med[OWN] / med[FP4], med[FP4B] / med[FP4], med[FP4A] / med[FP4]);
    } else {
        printf("fp4 M=%lld N=%lld K=%lld group=%d format=%d reps=%d (weights cold: %d / %d copies, %s)\n", (long long)m, (long long)n,
               (long long)k, group, fmt, reps, copies[FP4], copies[DNN], walign == 64 ? "64-byte aligned" : "64-byte aligned + 16");
        for (int i = 0; i < NMETH; i++)
            printf("  %-11s %9.1f us (min %9.1f, max %9.1f)  %6.2f GB/s of weights\n", MNAME[i], med[i] * 1e6, lo[i] * 1e6, hi[i] * 1e6,
                   bytes[i] / med[i] * 1e-9);
        printf("  speed-up of fp4: %.2fx vs f32 oneDNN, %.2fx vs f32 own, %.2fx vs fp4-bf16, %.2fx vs fp4 with f32 activations (ratios of "
               "medians)\n", med[DNN] / med[FP4], med[OWN] / med[FP4], med[FP4B] / med[FP4], med[FP4A] / med[FP4]);
    }
    for (int c = 0; c < 2 * copies[FP4] + copies[DNN]; c++) free(raw[c]);
    free(raw);
    for (int i = 0; i < NMETH; i++) free(t[i]);
    free(codes); free(scales); free(wf); free(w); free(x); free(y);
    return 0;
}

/* --ports: throughput of the instructions of the W4A16 GEMV (fp4_avx512.c) and of their pairs, in
 * core cycles per loop iteration (8 independent dependency chains per instruction kind, so
 * latency does not bound them). Cycles are derived from the process CPU time and a chain of
 * dependent 64-bit imul (3 cycles each on Intel cores since Sandy Bridge), measured first in the
 * same process; each figure is the minimum of 5 runs. Two instructions that share an execution
 * port add up when paired; on separate ports the pair costs the larger of the two. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PORTS_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16,avx512vbmi,fma"), noinline))
#define PN 20000000L
#define P_DP(r) r = _mm512_dpbf16_ps(r, bz, bz); __asm__ volatile("" : "+v"(r));
#define P_FMA(r) r = _mm512_fmadd_ps(r, fz, fz); __asm__ volatile("" : "+v"(r));
#define P_PERMW(r) r = _mm512_permutexvar_epi16(r, lz); __asm__ volatile("" : "+v"(r));
#define P_PERMPS(r) r = _mm512_permutexvar_ps(iz, r); __asm__ volatile("" : "+v"(r));
#define P_SHIFT(r) r = _mm512_srli_epi16(r, 1); __asm__ volatile("" : "+v"(r));
#define P_MSHIFT(r) r = _mm512_multishift_epi64_epi8(lz, r); __asm__ volatile("" : "+v"(r));
#define P8(M, a) M(a##0) M(a##1) M(a##2) M(a##3) M(a##4) M(a##5) M(a##6) M(a##7)
#define PORTS_CASE(NAME, BODY)                                                                   \
    {                                                                                            \
        double best = 1e30;                                                                      \
        for (int rep = 0; rep < 5; rep++) {                                                      \
            const double t0 = pt_bench_now();                                                    \
            for (long i = 0; i < PN; i++) { BODY }                                               \
            const double c = (pt_bench_now() - t0) * hz / PN;                                    \
            best = c < best ? c : best;                                                          \
        }                                                                                        \
        printf("  %-36s %6.2f cycles per iteration\n", NAME, best);                              \
    }
PORTS_TARGET static void fp4_ports(void) {
    pt_bench_cpu_clock = 1;
    long v = 3;
    double t0 = pt_bench_now();
    for (long i = 0; i < PN; i++) __asm__ volatile("imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0" : "+r"(v));
    const double hz = 12.0 * PN / (pt_bench_now() - t0);
    printf("fp4 ports: %.2f GHz (imul chain), 8 independent chains per kind, min of 5 runs\n", hz * 1e-9);
    const __m512bh bz = (__m512bh)_mm512_set1_epi16(0x3f80);
    const __m512 fz = _mm512_set1_ps(0.5f);
    const __m512i lz = _mm512_set1_epi16(7), iz = _mm512_set1_epi32(3);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    __m512 f0 = _mm512_set1_ps(1.0f), f1 = f0, f2 = f0, f3 = f0, f4 = f0, f5 = f0, f6 = f0, f7 = f0;
    __m512i w0 = _mm512_set1_epi16(3), w1 = w0, w2 = w0, w3 = w0, w4 = w0, w5 = w0, w6 = w0, w7 = w0;
    __m512i s0 = w0, s1 = w0, s2 = w0, s3 = w0, s4 = w0, s5 = w0, s6 = w0, s7 = w0;
    PORTS_CASE("8 vdpbf16ps", P8(P_DP, a))
    PORTS_CASE("8 vfmadd231ps", P8(P_FMA, f))
    PORTS_CASE("8 vpermw", P8(P_PERMW, w))
    PORTS_CASE("8 vpermps", P8(P_PERMPS, f))
    PORTS_CASE("8 vpsrlw", P8(P_SHIFT, s))
    PORTS_CASE("8 vpmultishiftqb", P8(P_MSHIFT, s))
    PORTS_CASE("8 vdpbf16ps + 8 vpermw", P8(P_DP, a) P8(P_PERMW, w))
    PORTS_CASE("8 vdpbf16ps + 8 vpsrlw", P8(P_DP, a) P8(P_SHIFT, s))
    PORTS_CASE("8 vdpbf16ps + 8 vpmultishiftqb", P8(P_DP, a) P8(P_MSHIFT, s))
    PORTS_CASE("8 vdpbf16ps + 8 vfmadd231ps", P8(P_DP, a) P8(P_FMA, f))
    PORTS_CASE("8 vpermw + 8 vpsrlw", P8(P_PERMW, w) P8(P_SHIFT, s))
    PORTS_CASE("8 vpermw + 8 vpmultishiftqb", P8(P_PERMW, w) P8(P_MSHIFT, s))
    PORTS_CASE("8 vpermw + 8 vfmadd231ps", P8(P_PERMW, w) P8(P_FMA, f))
    PORTS_CASE("8 vpsrlw + 8 vpmultishiftqb", P8(P_SHIFT, w) P8(P_MSHIFT, s))
    /* keep the chains alive */
    volatile float sink = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))));
    sink += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(f0, f1), _mm512_add_ps(f2, f3)),
                                               _mm512_add_ps(_mm512_add_ps(f4, f5), _mm512_add_ps(f6, f7))));
    __m512i t = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(w0, w1), _mm512_add_epi32(w2, w3)),
                                 _mm512_add_epi32(_mm512_add_epi32(w4, w5), _mm512_add_epi32(w6, w7)));
    t = _mm512_add_epi32(t, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3)),
                                             _mm512_add_epi32(_mm512_add_epi32(s4, s5), _mm512_add_epi32(s6, s7))));
    sink += (float)_mm512_reduce_add_epi32(t);
    (void)sink;
}
static int fp4_ports_run(void) {
    pt_build_info bi;
    const uint32_t need = PT_CPU_AVX512F | PT_CPU_AVX512_BF16;
    if (pt_build_info_get(&bi) != PT_OK || (bi.used_caps & need) != need) {
        fprintf(stderr, "--ports needs AVX512F and AVX512_BF16\n");
        return 2;
    }
    fp4_ports();
    return 0;
}
#else
static int fp4_ports_run(void) { fprintf(stderr, "--ports: x86-64 (GCC or Clang) only\n"); return 2; }
#endif

int pt_bench_fp4(int argc, char** argv) {
    int64_t m = 1, n = 0, k = 0;
    int group = 32, fmt = PT_FP4_E2M1, threads = 0, reps = 15, json = 0;
    double cold = 256;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        const char* v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--ports")) return fp4_ports_run();
        if (!v) { fprintf(stderr, "missing value for %s\n", a); return 2; }
        if (!strcmp(a, "--op")) {}
        else if (!strcmp(a, "--m")) m = atoll(v);
        else if (!strcmp(a, "--n")) n = atoll(v);
        else if (!strcmp(a, "--k")) k = atoll(v);
        else if (!strcmp(a, "--group")) group = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--cold-mib")) cold = atof(v);
        else if (!strcmp(a, "--scales")) sdt = !strcmp(v, "bf16") ? PT_BF16 : PT_F32;
        else if (!strcmp(a, "--weight-align")) {
            walign = atoi(v);
            if (walign != 64 && walign != 16) { fprintf(stderr, "--weight-align must be 64 or 16\n"); return 2; }
        }
        else if (!strcmp(a, "--clock")) pt_bench_cpu_clock = !strcmp(v, "cpu");
        else if (!strcmp(a, "--format")) {
            if (!strcmp(v, "e2m1")) fmt = PT_FP4_E2M1;
            else if (!strcmp(v, "e1m2")) fmt = PT_FP4_E1M2;
            else if (!strcmp(v, "e3m0")) fmt = PT_FP4_E3M0;
            else if (!strcmp(v, "nf4")) fmt = PT_FP4_NF4;
            else { fprintf(stderr, "unknown format %s (e2m1, e1m2, e3m0, nf4)\n", v); return 2; }
        } else { fprintf(stderr, "unknown option %s for --op fp4\n", a); return 2; }
        i++;
    }
    if (reps < 1) reps = 1;
    if (m < 1) { fprintf(stderr, "--m must be positive\n"); return 2; }
    pt_ctx_params po = {threads, 0, 0, 0}, pb = {threads, PT_CPU_AVX512_VNNI, 0, 0},
                  pa = {threads, PT_CPU_AVX512_VNNI | PT_CPU_AVX512_BF16, 0, 0}, pd = {threads, 0, 1, 0};
    pt_ctx *own = NULL, *bf16a = NULL, *f32a = NULL, *dnn = NULL;
    if (pt_ctx_create(&po, &own) != PT_OK || pt_ctx_create(&pb, &bf16a) != PT_OK || pt_ctx_create(&pa, &f32a) != PT_OK ||
        pt_ctx_create(&pd, &dnn) != PT_OK) {
        fprintf(stderr, "%s\n", pt_last_error());
        return 1;
    }
    static const int64_t SHAPES[4][2] = {{768, 768}, {768, 3072}, {3072, 768}, {4096, 4096}}; /* N, K */
    int rc = 0;
    if (n > 0 && k > 0) rc = run_shape(own, bf16a, f32a, dnn, m, n, k, group, fmt, reps, cold, json);
    else
        for (int s = 0; s < 4 && !rc; s++) rc = run_shape(own, bf16a, f32a, dnn, m, SHAPES[s][0], SHAPES[s][1], group, fmt, reps, cold, json);
    pt_ctx_destroy(own);
    pt_ctx_destroy(bf16a);
    pt_ctx_destroy(f32a);
    pt_ctx_destroy(dnn);
    return rc;
}
