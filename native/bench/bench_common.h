/* Helpers shared by the pt-bench ops: clock, median/min/max, a small RNG, 2-D tensor views,
 * comma-separated list parsing, and oneDNN's s8 matmul as the int8 baseline. */
#ifndef PT_BENCH_COMMON_H
#define PT_BENCH_COMMON_H

#include "panatron/panatron.h"

#include <stdint.h>

/* 1: pt_bench_now reads the process CPU clock (--clock cpu), else the monotonic wall clock. */
extern int pt_bench_cpu_clock;
double pt_bench_now(void);
/* Process CPU time in seconds (all threads), whatever --clock says. */
double pt_bench_cpu_s(void);

typedef struct { double med, lo, hi; } pt_bench_stats;
/* Median, min and max of v[0..n) (n >= 1; v is left as it was). */
pt_bench_stats pt_bench_summary(const double* v, int n);

/* xorshift64: uniform in [-1, 1). */
float pt_bench_rand(uint64_t* state);

/* Row-major contiguous views: [r, c] of dtype dt, and an f32 vector [n]. */
pt_tensor pt_bench_t2(void* d, int32_t dt, int64_t r, int64_t c);
pt_tensor pt_bench_v(void* d, int64_t n);

/* "a,b,c" -> out[0..max); returns how many were read. */
int pt_bench_parse_i64(const char* s, int64_t* out, int max);
int pt_bench_parse_f64(const char* s, double* out, int max);

#if defined(PT_BENCH_ONEDNN)
/* oneDNN's s8 matmul through pt_s8_matmul_* (the library's baseline API), y[M,N] f32 =
 * (sx * x[M,K] s8) . (ws[n] * W[N,K]^T s8) + bias[N] on ctx's threads, the weight reordered
 * once into oneDNN's preferred layout, x already quantized (random, drawn from rng): its
 * quantization is not timed. Exits with a message when oneDNN fails. */
typedef struct {
    pt_ctx* ctx;
    pt_s8_matmul* p;
    int8_t* x;
    float* y;
    pt_tensor tx, tbias, ty;
} pt_bench_dnnl_s8;
void pt_bench_dnnl_s8_setup(pt_bench_dnnl_s8* c, pt_ctx* ctx, int64_t m, int64_t n, int64_t k, const int8_t* wq_nk,
                            const float* ws, float* bias, uint64_t* rng);
int pt_bench_dnnl_s8_run(pt_bench_dnnl_s8* c); /* 0 on success */
void pt_bench_dnnl_s8_destroy(pt_bench_dnnl_s8* c);
#endif

#endif
