/* pt-bench: the native benchmark harness.
 *
 *   pt-bench [--op matmul] [--dtype f32|bf16] [--m M --n N --k K] [--threads T]
 *            [--reps R] [--warmup W] [--json]
 *            [--trans-b 0|1] [--cdtype f32|bf16] [--disable-caps MASK] [--min-ms MS]
 *            [--clock wall|cpu]
 *   pt-bench --op copy [--bytes N] [--threads T] [--reps R] [--json]
 *
 * matmul: runs the op through our own kernels (a context with use_onednn=0) and through
 * oneDNN (use_onednn=1, when built in), both contexts alive at once, interleaving the two in
 * every repeat (alternating which goes first) so that noise from other processes hits both.
 * Each repeat times enough calls to last --min-ms (default 20 ms). Prints GFLOP/s as the
 * median (min, max) of R repeats, and the ratio ours/oneDNN as the median (min, max) of the
 * per-repeat ratios. --clock cpu times with the calling thread's CPU clock instead of the
 * wall clock: with --threads 1 that ignores time lost to other processes (a loaded machine).
 *
 * copy: memory copy bandwidth (a memcpy of --bytes, default 256 MiB, split over --threads),
 * counted as bytes read + bytes written: the streaming ceiling for memory-bound kernels. */
#include "panatron/panatron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if !defined(_WIN32)
#  include <pthread.h>
#  define PT_BENCH_PTHREADS 1
#endif

#if defined(_WIN32)
#  include <windows.h>
static double now_s(void) {
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
}
#else
/* --clock cpu: this thread's CPU time, blind to preemption by other processes (only
 * meaningful with --threads 1, where the whole call runs on the calling thread) */
static int g_cpu_clock = 0;
static double now_s(void) {
    struct timespec ts;
    clock_gettime(g_cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#endif

static int cmp_d(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}

typedef struct { double median, lo, hi; } stats;

static stats stats_of(double* v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    stats s = {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[0], v[n - 1]};
    return s;
}

static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static pt_tensor tensor2(void* data, int32_t dtype, int64_t r, int64_t c) {
    pt_tensor t;
    memset(&t, 0, sizeof t);
    size_t es = pt_dtype_size(dtype);
    t.data = data; t.dtype = dtype; t.ndim = 2;
    t.shape[0] = r; t.shape[1] = c; t.stride[0] = (int64_t)(c * (int64_t)es); t.stride[1] = (int64_t)es;
    return t;
}

typedef struct {
    pt_ctx* ctx;
    pt_tensor a, b, c;
    pt_matmul_params p;
    pt_packed_matrix* packed; /* --packed: b packed once, pt_matmul_packed per call */
    int iters;
} mm_runner;

int pt_bench_attn(int argc, char** argv); /* bench_attn.c: --op attn | attn-decode */
int pt_bench_quant(int argc, char** argv); /* bench_quant.c: --op int8 */
int pt_bench_fp4(int argc, char** argv);  /* bench_fp4.c: --op fp4 */
int pt_bench_spmm(int argc, char** argv); /* bench_spmm.c: --op spmm */

/* Seconds per call, over r->iters calls; < 0 on failure. */
static double time_calls(mm_runner* r) {
    double t0 = now_s();
    for (int i = 0; i < r->iters; i++)
        if ((r->packed ? pt_matmul_packed(r->ctx, &r->a, r->packed, NULL, &r->c, &r->p)
                       : pt_matmul(r->ctx, &r->a, &r->b, NULL, &r->c, &r->p)) != PT_OK) {
            fprintf(stderr, "pt_matmul: %s\n", pt_last_error());
            return -1;
        }
    return (now_s() - t0) / r->iters;
}

static int bench_matmul(const char* dt, int64_t m, int64_t n, int64_t k, int threads, int reps, int warmup, int json,
                        int trans_b, const char* cdt, uint32_t disable, double min_ms, const char* packed) {
    int32_t dtype = !strcmp(dt, "bf16") ? PT_BF16 : PT_F32;
    int32_t cdtype = dtype == PT_BF16 && cdt && !strcmp(cdt, "bf16") ? PT_BF16 : PT_F32;
    size_t es = pt_dtype_size(dtype);
    void* a = malloc((size_t)(m * k) * es);
    void* b = malloc((size_t)(k * n) * es);
    void* c = malloc((size_t)(m * n) * 4);
    if (!a || !b || !c) { fprintf(stderr, "out of memory\n"); return 1; }
    for (int64_t i = 0; i < m * k; i++) {
        float v = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        if (dtype == PT_BF16) ((uint16_t*)a)[i] = to_bf16(v); else ((float*)a)[i] = v;
    }
    for (int64_t i = 0; i < k * n; i++) {
        float v = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        if (dtype == PT_BF16) ((uint16_t*)b)[i] = to_bf16(v); else ((float*)b)[i] = v;
    }
    pt_build_info info;
    pt_build_info_get(&info);
    int have_dnnl = info.onednn_version != 0, nres = have_dnnl ? 2 : 1;
    const char* names[2] = {"panatron", "onednn"};
    mm_runner run[2];
    for (int w = 0; w < nres; w++) {
        pt_ctx_params p = {threads, w == 0 ? disable : 0, w, 0};
        if (pt_ctx_create(&p, &run[w].ctx) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
        run[w].a = tensor2(a, dtype, m, k);
        run[w].b = trans_b ? tensor2(b, dtype, n, k) : tensor2(b, dtype, k, n);
        run[w].c = tensor2(c, cdtype, m, n);
        run[w].p.trans_b = trans_b; run[w].p.activation = PT_ACT_NONE; run[w].p.alpha = 1.0f; run[w].p.beta = 0.0f;
        run[w].packed = NULL;
        if (w == 0 && packed && pt_matmul_pack(run[w].ctx, &run[w].b, trans_b, !strcmp(packed, "bf16") ? PT_BF16 : PT_F32,
                                               &run[w].packed) != PT_OK) {
            fprintf(stderr, "pt_matmul_pack: %s\n", pt_last_error());
            return 1;
        }
        run[w].iters = 1;
        double t = 0;
        for (int i = 0; i < (warmup > 0 ? warmup : 1); i++)
            if ((t = time_calls(&run[w])) < 0) return 1;
        int it = (int)(min_ms * 1e-3 / (t > 1e-9 ? t : 1e-9));
        run[w].iters = it < 1 ? 1 : it > 100000 ? 100000 : it;
    }
    /* both sides time the same number of calls per repeat */
    if (nres == 2) {
        int it = run[0].iters > run[1].iters ? run[0].iters : run[1].iters;
        run[0].iters = run[1].iters = it;
    }
    double* g[2] = {malloc(sizeof(double) * (size_t)reps), malloc(sizeof(double) * (size_t)reps)};
    double* ratio = malloc(sizeof(double) * (size_t)reps);
    const double flop = 2.0 * (double)m * (double)n * (double)k;
    for (int r = 0; r < reps; r++) {
        double t[2] = {0, 0};
        for (int s = 0; s < nres; s++) {
            int w = nres == 2 ? (s + r) % 2 : 0; /* alternate who goes first */
            if ((t[w] = time_calls(&run[w])) < 0) return 1;
        }
        for (int w = 0; w < nres; w++) g[w][r] = flop / t[w] * 1e-9;
        if (nres == 2) ratio[r] = t[1] / t[0];
    }
    stats st[2], rs = {0, 0, 0};
    for (int w = 0; w < nres; w++) st[w] = stats_of(g[w], reps);
    if (nres == 2) rs = stats_of(ratio, reps);
    if (json) {
        printf("{\"op\":\"matmul\",\"dtype\":\"%s\",\"cdtype\":\"%s\",\"m\":%lld,\"n\":%lld,\"k\":%lld,\"trans_b\":%d,\"threads\":%d,\"reps\":%d,\"iters\":%d",
               dt, cdtype == PT_BF16 ? "bf16" : "f32", (long long)m, (long long)n, (long long)k, trans_b, threads, reps, run[0].iters);
        for (int w = 0; w < nres; w++)
            printf(",\"%s_gflops\":%.3f,\"%s_gflops_min\":%.3f,\"%s_gflops_max\":%.3f,\"%s_us\":%.3f", names[w], st[w].median, names[w],
                   st[w].lo, names[w], st[w].hi, names[w], flop / st[w].median * 1e-3);
        if (nres == 2) printf(",\"ratio\":%.3f,\"ratio_min\":%.3f,\"ratio_max\":%.3f", rs.median, rs.lo, rs.hi);
        printf("}\n");
    } else {
        printf("matmul %s->%s %lldx%lldx%lld trans_b=%d threads=%d reps=%d (x%d calls)%s%s\n", dt, cdtype == PT_BF16 ? "bf16" : "f32",
               (long long)m, (long long)n, (long long)k, trans_b, threads, reps, run[0].iters, packed ? "; panatron: b prepacked as " : "",
               packed ? packed : "");
        for (int w = 0; w < nres; w++)
            printf("  %-9s %8.2f GFLOP/s (min %.2f, max %.2f)  %.3f us/call\n", names[w], st[w].median, st[w].lo, st[w].hi,
                   flop / st[w].median * 1e-3);
        if (nres == 2) printf("  ratio panatron/onednn: %.3f (min %.3f, max %.3f)\n", rs.median, rs.lo, rs.hi);
    }
    for (int w = 0; w < nres; w++) {
        pt_packed_matrix_destroy(run[w].packed);
        pt_ctx_destroy(run[w].ctx);
    }
    free(a); free(b); free(c); free(g[0]); free(g[1]); free(ratio);
    return 0;
}

/* ---- copy bandwidth ---- */
typedef struct { char* dst; const char* src; size_t n; } copy_part;

#if PT_BENCH_PTHREADS
static void* copy_main(void* p) {
    copy_part* c = (copy_part*)p;
    memcpy(c->dst, c->src, c->n);
    return NULL;
}
#endif

static void copy_once(char* dst, const char* src, size_t bytes, int threads) {
#if PT_BENCH_PTHREADS
    if (threads > 1) {
        pthread_t th[64];
        copy_part parts[64];
        int joined[64] = {0};
        if (threads > 64) threads = 64;
        size_t chunk = (bytes / (size_t)threads + 63) & ~(size_t)63;
        int nparts = 0;
        for (int t = 0; t < threads && chunk * (size_t)t < bytes; t++, nparts++) {
            size_t o = chunk * (size_t)t;
            parts[t].dst = dst + o; parts[t].src = src + o; parts[t].n = bytes - o < chunk ? bytes - o : chunk;
        }
        for (int t = 1; t < nparts; t++)
            if (pthread_create(&th[t], NULL, copy_main, &parts[t]) == 0) joined[t] = 1;
            else memcpy(parts[t].dst, parts[t].src, parts[t].n);
        memcpy(parts[0].dst, parts[0].src, parts[0].n);
        for (int t = 1; t < nparts; t++)
            if (joined[t]) pthread_join(th[t], NULL);
        return;
    }
#endif
    (void)threads;
    memcpy(dst, src, bytes);
}

static int bench_copy(size_t bytes, int threads, int reps, int json) {
    if (threads <= 0) {
        pt_build_info info;
        pt_build_info_get(&info);
        threads = info.default_threads;
    }
    char* src = malloc(bytes);
    char* dst = malloc(bytes);
    if (!src || !dst) { fprintf(stderr, "cannot allocate 2 x %zu bytes\n", bytes); return 1; }
    memset(src, 1, bytes);
    memset(dst, 2, bytes);
    copy_once(dst, src, bytes, threads); /* warm up: pages faulted in */
    double* gbs = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        copy_once(dst, src, bytes, threads);
        gbs[r] = 2.0 * (double)bytes / (now_s() - t0) * 1e-9;
    }
    stats s = stats_of(gbs, reps);
    if (json)
        printf("{\"op\":\"copy\",\"bytes\":%zu,\"threads\":%d,\"reps\":%d,\"gbps\":%.2f,\"gbps_min\":%.2f,\"gbps_max\":%.2f}\n", bytes,
               threads, reps, s.median, s.lo, s.hi);
    else
        printf("copy %zu bytes threads=%d reps=%d\n  %.2f GB/s read+write (min %.2f, max %.2f)\n", bytes, threads, reps, s.median,
               s.lo, s.hi);
    free(src); free(dst); free(gbs);
    return 0;
}

int main(int argc, char** argv) {
    for (int i = 1; i + 1 < argc; i++) /* --op attn | attn-decode: bench_attn.c parses its own options */
        if (!strcmp(argv[i], "--op") && !strncmp(argv[i + 1], "attn", 4)) return pt_bench_attn(argc, argv);
    for (int i = 1; i + 1 < argc; i++) /* --op int8: bench_quant.c */
        if (!strcmp(argv[i], "--op") && !strcmp(argv[i + 1], "int8")) return pt_bench_quant(argc, argv);
    for (int i = 1; i + 1 < argc; i++) /* --op fp4: bench_fp4.c */
        if (!strcmp(argv[i], "--op") && !strcmp(argv[i + 1], "fp4")) return pt_bench_fp4(argc, argv);
    for (int i = 1; i + 1 < argc; i++) /* --op spmm: bench_spmm.c */
        if (!strcmp(argv[i], "--op") && !strcmp(argv[i + 1], "spmm")) return pt_bench_spmm(argc, argv);
    const char* op = "matmul";
    const char* dt = "f32";
    const char* cdt = "f32";
    const char* packed = NULL;
    int64_t m = 512, n = 512, k = 512;
    long long bytes = 256ll << 20;
    int threads = 0, reps = 30, warmup = 5, json = 0, trans_b = 0;
    unsigned long disable = 0;
    double min_ms = 20;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        const char* v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("pt-bench [--op matmul|copy] [--dtype f32|bf16] [--cdtype f32|bf16] [--m M --n N --k K] [--trans-b 0|1]\n"
                   "         [--packed f32|bf16 (ours: b prepacked, pt_matmul_packed)] [--threads T] [--reps R] [--warmup W] [--min-ms MS] [--disable-caps MASK] [--clock wall|cpu]\n"
                   "         [--bytes N] [--json]\n");
            return 0;
        }
        if (!v) { fprintf(stderr, "missing value for %s\n", a); return 2; }
        if (!strcmp(a, "--op")) op = v;
        else if (!strcmp(a, "--dtype")) dt = v;
        else if (!strcmp(a, "--cdtype")) cdt = v;
        else if (!strcmp(a, "--packed")) packed = v;
        else if (!strcmp(a, "--m")) m = atoll(v);
        else if (!strcmp(a, "--n")) n = atoll(v);
        else if (!strcmp(a, "--k")) k = atoll(v);
        else if (!strcmp(a, "--trans-b")) trans_b = atoi(v) != 0;
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--min-ms")) min_ms = atof(v);
        else if (!strcmp(a, "--disable-caps")) disable = strtoul(v, NULL, 0);
        else if (!strcmp(a, "--bytes")) bytes = atoll(v);
        else if (!strcmp(a, "--clock")) {
#if !defined(_WIN32)
            g_cpu_clock = !strcmp(v, "cpu");
#endif
        }
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
        i++;
    }
    if (reps < 1) reps = 1;
    if (!strcmp(op, "copy")) {
        if (bytes <= 0) { fprintf(stderr, "--bytes must be positive\n"); return 2; }
        return bench_copy((size_t)bytes, threads, reps, json);
    }
    if (strcmp(op, "matmul") != 0) { fprintf(stderr, "unknown op %s (known: matmul, copy)\n", op); return 2; }
    if (strcmp(dt, "f32") && strcmp(dt, "bf16")) { fprintf(stderr, "unknown dtype %s (f32, bf16)\n", dt); return 2; }
    if (m <= 0 || n <= 0 || k <= 0) { fprintf(stderr, "--m --n --k must be positive\n"); return 2; }
    if (packed && strcmp(packed, "f32") && strcmp(packed, "bf16")) { fprintf(stderr, "unknown --packed %s (f32, bf16)\n", packed); return 2; }
    return bench_matmul(dt, m, n, k, threads, reps, warmup, json, trans_b, cdt, (uint32_t)disable, min_ms, packed);
}
