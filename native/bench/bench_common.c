/* Helpers shared by the pt-bench ops (bench_common.h). */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int pt_bench_cpu_clock = 0;

double pt_bench_now(void) {
    struct timespec ts;
    clock_gettime(pt_bench_cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double pt_bench_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}

pt_bench_stats pt_bench_summary(const double* v0, int n) {
    double* v = malloc(sizeof(double) * (size_t)n);
    pt_bench_stats s = {0, 0, 0};
    if (!v) return s;
    memcpy(v, v0, sizeof(double) * (size_t)n);
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    s.med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    s.lo = v[0];
    s.hi = v[n - 1];
    free(v);
    return s;
}

float pt_bench_rand(uint64_t* state) {
    uint64_t x = *state;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    *state = x;
    return (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

pt_tensor pt_bench_t2(void* d, int32_t dt, int64_t r, int64_t c) {
    pt_tensor t;
    memset(&t, 0, sizeof t);
    t.data = d; t.dtype = dt; t.ndim = 2; t.shape[0] = r; t.shape[1] = c;
    t.stride[1] = (int64_t)pt_dtype_size(dt); t.stride[0] = c * t.stride[1];
    return t;
}

pt_tensor pt_bench_v(void* d, int64_t n) {
    pt_tensor t;
    memset(&t, 0, sizeof t);
    t.data = d; t.dtype = PT_F32; t.ndim = 1; t.shape[0] = n; t.stride[0] = 4;
    return t;
}

int pt_bench_parse_i64(const char* s, int64_t* out, int max) {
    int n = 0;
    while (*s && n < max) {
        char* e;
        out[n++] = strtoll(s, &e, 10);
        if (e == s) break;
        s = *e == ',' ? e + 1 : e;
    }
    return n;
}

int pt_bench_parse_f64(const char* s, double* out, int max) {
    int n = 0;
    while (*s && n < max) {
        char* e;
        out[n++] = strtod(s, &e);
        if (e == s) break;
        s = *e == ',' ? e + 1 : e;
    }
    return n;
}

#if defined(PT_BENCH_ONEDNN)
static void s8_fail(const char* what) {
    fprintf(stderr, "oneDNN s8 baseline: %s: %s\n", what, pt_last_error());
    exit(1);
}

void pt_bench_dnnl_s8_setup(pt_bench_dnnl_s8* c, pt_ctx* ctx, int64_t m, int64_t n, int64_t k, const int8_t* wq_nk,
                            const float* ws, float* bias, uint64_t* rng) {
    c->ctx = ctx;
    c->x = malloc((size_t)(m * k));
    c->y = malloc(sizeof(float) * (size_t)(m * n));
    if (!c->x || !c->y) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (int64_t i = 0; i < m * k; i++) c->x[i] = (int8_t)(pt_bench_rand(rng) * 127.0f);
    pt_tensor tw = pt_bench_t2((void*)wq_nk, PT_I8, n, k), ts = pt_bench_v((void*)ws, n);
    if (pt_s8_matmul_create(ctx, m, &tw, &ts, &c->p) != PT_OK) s8_fail("create");
    c->tx = pt_bench_t2(c->x, PT_I8, m, k);
    c->tbias = pt_bench_v(bias, n);
    c->ty = pt_bench_t2(c->y, PT_F32, m, n);
}

int pt_bench_dnnl_s8_run(pt_bench_dnnl_s8* c) {
    return pt_s8_matmul_run(c->ctx, c->p, &c->tx, 0.02f, &c->tbias, &c->ty) != PT_OK;
}

void pt_bench_dnnl_s8_destroy(pt_bench_dnnl_s8* c) {
    pt_s8_matmul_destroy(c->p);
    free(c->x);
    free(c->y);
}
#endif
