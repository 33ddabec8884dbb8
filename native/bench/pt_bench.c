/* pt-bench: the native benchmark harness.
 *
 *   pt-bench [--op matmul] [--dtype f32|bf16] [--m M --n N --k K] [--threads T]
 *            [--reps R] [--warmup W] [--json]
 *
 * Runs the op through our own kernels and through oneDNN (when built in) in the same run,
 * interleaving the two, and prints GFLOP/s as the median (and min/max) of R repeats. */
#include "panatron/panatron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}

static pt_tensor tensor2(void* data, int32_t dtype, int64_t r, int64_t c) {
    pt_tensor t;
    memset(&t, 0, sizeof t);
    size_t es = pt_dtype_size(dtype);
    t.data = data; t.dtype = dtype; t.ndim = 2;
    t.shape[0] = r; t.shape[1] = c; t.stride[0] = (int64_t)(c * es); t.stride[1] = (int64_t)es;
    return t;
}

typedef struct { const char* name; double median, lo, hi; } result;

static int run_matmul(pt_ctx* ctx, int32_t dtype, int64_t m, int64_t n, int64_t k, int reps, int warmup, result* r) {
    size_t es = pt_dtype_size(dtype);
    void* a = malloc(m * k * es);
    void* b = malloc(k * n * es);
    float* c = malloc(m * n * 4);
    for (int64_t i = 0; i < m * k; i++) {
        float v = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        if (dtype == PT_BF16) { uint32_t u; memcpy(&u, &v, 4); ((uint16_t*)a)[i] = (uint16_t)(u >> 16); } else ((float*)a)[i] = v;
    }
    for (int64_t i = 0; i < k * n; i++) {
        float v = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        if (dtype == PT_BF16) { uint32_t u; memcpy(&u, &v, 4); ((uint16_t*)b)[i] = (uint16_t)(u >> 16); } else ((float*)b)[i] = v;
    }
    pt_tensor ta = tensor2(a, dtype, m, k), tb = tensor2(b, dtype, k, n), tc = tensor2(c, PT_F32, m, n);
    double* t = malloc(sizeof(double) * reps);
    for (int i = 0; i < warmup; i++)
        if (pt_matmul(ctx, &ta, &tb, NULL, &tc, NULL) != PT_OK) { fprintf(stderr, "pt_matmul: %s\n", pt_last_error()); return 1; }
    for (int i = 0; i < reps; i++) {
        double t0 = now_s();
        pt_matmul(ctx, &ta, &tb, NULL, &tc, NULL);
        t[i] = now_s() - t0;
    }
    qsort(t, reps, sizeof(double), cmp_d);
    double flop = 2.0 * m * n * k;
    r->median = flop / t[reps / 2] * 1e-9;
    r->lo = flop / t[reps - 1] * 1e-9;
    r->hi = flop / t[0] * 1e-9;
    free(a); free(b); free(c); free(t);
    return 0;
}

int main(int argc, char** argv) {
    const char* op = "matmul";
    const char* dt = "f32";
    int64_t m = 512, n = 512, k = 512;
    int threads = 0, reps = 30, warmup = 5, json = 0;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        const char* v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!v) { fprintf(stderr, "missing value for %s\n", a); return 2; }
        if (!strcmp(a, "--op")) op = v;
        else if (!strcmp(a, "--dtype")) dt = v;
        else if (!strcmp(a, "--m")) m = atoll(v);
        else if (!strcmp(a, "--n")) n = atoll(v);
        else if (!strcmp(a, "--k")) k = atoll(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
        i++;
    }
    if (strcmp(op, "matmul") != 0) { fprintf(stderr, "unknown op %s (known: matmul)\n", op); return 2; }
    int32_t dtype = !strcmp(dt, "bf16") ? PT_BF16 : PT_F32;
    if (reps < 1) reps = 1;
    pt_build_info info;
    pt_build_info_get(&info);
    result res[2] = {{"panatron", 0, 0, 0}, {"onednn", 0, 0, 0}};
    int have_dnnl = info.onednn_version != 0, nres = have_dnnl ? 2 : 1;
    for (int which = 0; which < nres; which++) {
        pt_ctx_params p = {threads, 0, which, 0};
        pt_ctx* ctx;
        if (pt_ctx_create(&p, &ctx) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
        if (run_matmul(ctx, dtype, m, n, k, reps, warmup, &res[which])) return 1;
        pt_ctx_destroy(ctx);
    }
    if (json) {
        printf("{\"op\":\"%s\",\"dtype\":\"%s\",\"m\":%lld,\"n\":%lld,\"k\":%lld,\"threads\":%d,\"reps\":%d", op, dt,
               (long long)m, (long long)n, (long long)k, threads, reps);
        for (int i = 0; i < nres; i++)
            printf(",\"%s_gflops\":%.2f,\"%s_gflops_min\":%.2f,\"%s_gflops_max\":%.2f", res[i].name, res[i].median,
                   res[i].name, res[i].lo, res[i].name, res[i].hi);
        if (nres == 2) printf(",\"ratio\":%.3f", res[0].median / res[1].median);
        printf("}\n");
    } else {
        printf("%s %s %lldx%lldx%lld threads=%d reps=%d\n", op, dt, (long long)m, (long long)n, (long long)k, threads, reps);
        for (int i = 0; i < nres; i++)
            printf("  %-9s %8.2f GFLOP/s (min %.2f, max %.2f)\n", res[i].name, res[i].median, res[i].lo, res[i].hi);
        if (nres == 2) printf("  ratio panatron/onednn: %.3f\n", res[0].median / res[1].median);
    }
    return 0;
}
