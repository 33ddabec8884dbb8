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
#define DN(call) do { if ((call) != dnnl_success) { fprintf(stderr, "oneDNN: %s failed\n", #call); exit(1); } } while (0)
void pt_bench_dnnl_s8_setup(pt_bench_dnnl_s8* c, int64_t m, int64_t n, int64_t k, const int8_t* wq_nk, const float* ws,
                            float* bias, uint64_t* rng) {
    DN(dnnl_engine_create(&c->eng, dnnl_cpu, 0));
    DN(dnnl_stream_create(&c->strm, c->eng, dnnl_stream_default_flags));
    dnnl_dims_t sd = {m, k}, wd = {k, n}, dd = {m, n}, bd = {1, n}, ssd = {1}, wsd = {n};
    dnnl_memory_desc_t smd, wmd_any, wmd_plain, dmd, bmd, sc1, scn;
    DN(dnnl_memory_desc_create_with_tag(&smd, 2, sd, dnnl_s8, dnnl_ab));
    DN(dnnl_memory_desc_create_with_tag(&wmd_any, 2, wd, dnnl_s8, dnnl_format_tag_any));
    DN(dnnl_memory_desc_create_with_tag(&wmd_plain, 2, wd, dnnl_s8, dnnl_ba)); /* W^T of [N,K] row-major */
    DN(dnnl_memory_desc_create_with_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab));
    DN(dnnl_memory_desc_create_with_tag(&bmd, 2, bd, dnnl_f32, dnnl_ab));
    DN(dnnl_memory_desc_create_with_tag(&sc1, 1, ssd, dnnl_f32, dnnl_a));
    DN(dnnl_memory_desc_create_with_tag(&scn, 1, wsd, dnnl_f32, dnnl_a));
    dnnl_primitive_attr_t attr;
    DN(dnnl_primitive_attr_create(&attr));
    DN(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_SRC, 0));
    DN(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_WEIGHTS, 1 << 1));
    dnnl_primitive_desc_t pd;
    DN(dnnl_matmul_primitive_desc_create(&pd, c->eng, smd, wmd_any, bmd, dmd, attr));
    const_dnnl_memory_desc_t wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const char* impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    fprintf(stderr, "# oneDNN s8 matmul impl (M=%lld): %s\n", (long long)m, impl ? impl : "?");
    DN(dnnl_primitive_create(&c->prim, pd));
    /* weights: reorder the plain [N,K] int8 once into oneDNN's layout (load-time cost) */
    dnnl_memory_t wplain, wpacked, src, dst, bm, s1, sn;
    DN(dnnl_memory_create(&wplain, wmd_plain, c->eng, (void*)wq_nk));
    DN(dnnl_memory_create(&wpacked, wmd, c->eng, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t rp;
    DN(dnnl_reorder_primitive_desc_create(&rpd, wmd_plain, c->eng, wmd, c->eng, NULL));
    DN(dnnl_primitive_create(&rp, rpd));
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, wplain}, {DNNL_ARG_TO, wpacked}};
    DN(dnnl_primitive_execute(rp, c->strm, 2, ra));
    DN(dnnl_stream_wait(c->strm));
    int8_t* xs = malloc((size_t)(m * k));
    if (!xs) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (int64_t i = 0; i < m * k; i++) xs[i] = (int8_t)(pt_bench_rand(rng) * 127.0f);
    static float one = 0.02f;
    DN(dnnl_memory_create(&src, smd, c->eng, xs));
    DN(dnnl_memory_create(&dst, dmd, c->eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&bm, bmd, c->eng, bias));
    DN(dnnl_memory_create(&s1, sc1, c->eng, &one));
    DN(dnnl_memory_create(&sn, scn, c->eng, (void*)ws));
    int a = 0;
    c->args[a++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src};
    c->args[a++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wpacked};
    c->args[a++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bm};
    c->args[a++] = (dnnl_exec_arg_t){DNNL_ARG_DST, dst};
    c->args[a++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, s1};
    c->args[a++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, sn};
    c->nargs = a;
    dnnl_primitive_attr_destroy(attr);
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_primitive_destroy(rp);
    dnnl_memory_destroy(wplain);
    /* xs stays referenced by the src memory for the run (freed at exit) */
}

int pt_bench_dnnl_s8_run(pt_bench_dnnl_s8* c) {
    if (dnnl_primitive_execute(c->prim, c->strm, c->nargs, c->args) != dnnl_success) return 1;
    return dnnl_stream_wait(c->strm) != dnnl_success;
}

void pt_bench_dnnl_s8_destroy(pt_bench_dnnl_s8* c) {
    for (int i = 0; i < c->nargs; i++) dnnl_memory_destroy(c->args[i].memory);
    dnnl_primitive_destroy(c->prim);
    dnnl_stream_destroy(c->strm);
    dnnl_engine_destroy(c->eng);
}
#endif
