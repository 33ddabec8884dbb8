/* pt-bench --op int8: LLM.int8 and W8A8 (pt_matmul_int8) against oneDNN's s8 matmul and the
 * f32 dense matmul (pt_matmul through oneDNN), in the same run, interleaved.
 *
 *   pt-bench --op int8 [--m 16,128,512] [--kn 768x3072,3072x768,768x768] [--outliers F]
 *            [--threads T] [--reps R] [--min-ms MS] [--clock wall|cpu] [--json]
 *
 * --clock cpu times with the process CPU clock: on a loaded machine, run it with --threads 1
 * and OMP_NUM_THREADS=1 (oneDNN then runs on the calling thread too) to ignore preemption.
 *
 * Shapes: y[M,N] = x[M,K] @ W[N,K]^T + bias (BERT-base: K,N in {768, 3072}). --outliers F
 * (default 0.005) plants F*K outlier feature columns (|x| in [8, 16] in every 4th row).
 * llm.int8_own: the same on a context without oneDNN (our AMX kernel for the int8 GEMM).
 * Ours: activation quantization + outlier detection per call, as a model would run it; the
 * weight quantized and packed once (pt_pack_int8_weight).
 * oneDNN s8: src s8 [M,K] already quantized (its quantization is NOT timed: a lower bound for
 * its cost), weights s8 in oneDNN's preferred (prepacked) layout, f32 dst with src/weight
 * scales and bias. Each repeat times enough calls to last --min-ms; the methods are
 * interleaved, rotating which goes first; GOP/s = 2MNK / time, median (min, max) over
 * repeats, and per-repeat ratios. Built without oneDNN, the s8 column is absent. */
#include "bench_common.h"

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t qrng = 0x9e3779b97f4a7c15ull;

enum { M_LLM, M_W8A8, M_DNNL_S8, M_F32, M_LLM_OWN, NMETH };
static const char* MNAME[NMETH] = {"llm.int8", "w8a8", "onednn_s8", "f32_dense", "llm.int8_own"};

typedef struct {
    pt_ctx* ctx;
    pt_ctx* own; /* use_onednn = 0: our AMX kernel for the int8 GEMM too */
    pt_tensor x, wq, ws, w, bias, y;
    pt_int8_matmul_params llm, w8;
    pt_matmul_params mp;
#if defined(PT_BENCH_ONEDNN)
    pt_bench_dnnl_s8 dn;
#endif
} qcase;

static int run_once(qcase* c, int meth) {
    switch (meth) {
    case M_LLM: return pt_matmul_int8(c->ctx, &c->x, &c->wq, &c->ws, NULL, &c->bias, &c->y, &c->llm);
    case M_LLM_OWN: return pt_matmul_int8(c->own, &c->x, &c->wq, &c->ws, NULL, &c->bias, &c->y, &c->llm);
    case M_W8A8: return pt_matmul_int8(c->ctx, &c->x, &c->wq, &c->ws, NULL, &c->bias, &c->y, &c->w8);
    case M_F32: return pt_matmul(c->ctx, &c->x, &c->w, &c->bias, &c->y, &c->mp);
#if defined(PT_BENCH_ONEDNN)
    case M_DNNL_S8:
        return pt_bench_dnnl_s8_run(&c->dn);
#endif
    default: return 1;
    }
}

static double time_it(qcase* c, int meth, double min_s) {
    int iters = 0;
    double t0 = pt_bench_now(), t;
    do {
        if (run_once(c, meth) != 0) { fprintf(stderr, "%s failed: %s\n", MNAME[meth], pt_last_error()); exit(1); }
        iters++;
        t = pt_bench_now() - t0;
    } while (t < min_s);
    return t / iters;
}


int pt_bench_quant(int argc, char** argv);
int pt_bench_quant(int argc, char** argv) {
    int64_t ms[8] = {16, 128, 512}, kn[8][2] = {{768, 3072}, {3072, 768}, {768, 768}};
    int nm = 3, nkn = 3, threads = 2, reps = 7, json = 0;
    double outl = 0.005, min_ms = 20;
    for (int i = 1; i < argc; i++) {
        const char* v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(argv[i], "--m")) nm = pt_bench_parse_i64(v, ms, 8), i++;
        else if (!strcmp(argv[i], "--kn")) {
            nkn = 0;
            for (const char* s = v; *s && nkn < 8;) {
                char* e;
                kn[nkn][0] = strtoll(s, &e, 10);
                kn[nkn][1] = *e == 'x' ? strtoll(e + 1, &e, 10) : kn[nkn][0];
                nkn++;
                s = *e == ',' ? e + 1 : e;
                if (!*e) break;
            }
            i++;
        } else if (!strcmp(argv[i], "--outliers")) outl = atof(v), i++;
        else if (!strcmp(argv[i], "--threads")) threads = atoi(v), i++;
        else if (!strcmp(argv[i], "--reps")) reps = atoi(v), i++;
        else if (!strcmp(argv[i], "--min-ms")) min_ms = atof(v), i++;
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--clock")) pt_bench_cpu_clock = !strcmp(v, "cpu"), i++;
        else if (!strcmp(argv[i], "--op")) i++;
        else { fprintf(stderr, "pt-bench --op int8: unknown option %s\n", argv[i]); return 2; }
    }
    if (reps < 1 || reps > 99) reps = 7;
    pt_ctx_params cp = {threads, 0, 1, 0};
    pt_ctx_params cpo = {threads, 0, 0, 0};
    pt_ctx *ctx, *own;
    if (pt_ctx_create(&cp, &ctx) != PT_OK || pt_ctx_create(&cpo, &own) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
#if defined(PT_BENCH_ONEDNN)
    const int have_dnnl = 1;
#else
    const int have_dnnl = 0;
#endif
    if (!json)
        printf("# int8 GEMM, %d threads, median (min, max) of %d repeats; GOP/s = 2MNK/t; outlier columns %.2f%%\n"
               "%-5s %-5s %-5s %4s %-26s %-26s %-26s %-26s %-22s %-22s %-22s %-26s %-22s\n",
               threads, reps, 100 * outl, "M", "K", "N", "nO", "llm.int8", "w8a8", "onednn_s8", "f32_dense", "llm/s8", "llm/f32",
               "w8a8/s8", "llm.int8_own", "own/s8");
    else printf("[\n");
    int first = 1;
    for (int a = 0; a < nm; a++)
        for (int b = 0; b < nkn; b++) {
            int64_t m = ms[a], k = kn[b][0], n = kn[b][1];
            qcase c;
            memset(&c, 0, sizeof c);
            c.ctx = ctx;
            c.own = own;
            float* x = malloc(4 * (size_t)(m * k));
            float* w = malloc(4 * (size_t)(n * k));
            int8_t* wq = malloc((size_t)(n * k));
            float* ws = malloc(4 * (size_t)n);
            float* bias = malloc(4 * (size_t)n);
            float* y = malloc(4 * (size_t)(m * n));
            for (int64_t i = 0; i < m * k; i++) x[i] = 2.0f * pt_bench_rand(&qrng);
            for (int64_t i = 0; i < n * k; i++) w[i] = 0.1f * pt_bench_rand(&qrng);
            for (int64_t i = 0; i < n; i++) bias[i] = pt_bench_rand(&qrng);
            int nO = (int)(outl * (double)k + 0.5);
            for (int o = 0; o < nO; o++) {
                int64_t col = (int64_t)((pt_bench_rand(&qrng) + 1.0f) * 0.5f * (float)(k - 1));
                for (int64_t r = 0; r < m; r += 4) x[r * k + col] = 8.0f + 8.0f * (pt_bench_rand(&qrng) + 1.0f) * 0.5f;
            }
            c.x = pt_bench_t2(x, PT_F32, m, k); c.w = pt_bench_t2(w, PT_F32, n, k); c.wq = pt_bench_t2(wq, PT_I8, n, k);
            c.ws = pt_bench_v(ws, n); c.bias = pt_bench_v(bias, n); c.y = pt_bench_t2(y, PT_F32, m, n);
            if (pt_quantize_int8_weight(ctx, &c.w, &c.wq, &c.ws) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
            /* the weight is quantized and packed once, like oneDNN's reordered weight */
            int64_t pbytes = pt_int8_packed_bytes(n, k);
            /* 64-byte aligned, as a model's weights (malloc + offset: mingw has no aligned_alloc) */
            int8_t* packed_raw = malloc((size_t)pbytes + 64);
            if (!packed_raw) { fprintf(stderr, "out of memory (packed weight, %lld bytes)\n", (long long)pbytes); return 1; }
            int8_t* packed = (int8_t*)(((uintptr_t)packed_raw + 63) & ~(uintptr_t)63);
            pt_tensor tp;
            memset(&tp, 0, sizeof tp);
            tp.data = packed; tp.dtype = PT_I8; tp.ndim = 1; tp.shape[0] = pbytes; tp.stride[0] = 1;
            if (pt_pack_int8_weight(ctx, &c.wq, &tp) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
            c.llm = (pt_int8_matmul_params){PT_INT8_LLM, PT_ACT_NONE, 6.0f, 0, &tp};
            c.w8 = (pt_int8_matmul_params){PT_INT8_W8A8, PT_ACT_NONE, 6.0f, 0, &tp};
            c.mp = (pt_matmul_params){1, PT_ACT_NONE, 1.0f, 0.0f};
#if defined(PT_BENCH_ONEDNN)
            pt_bench_dnnl_s8_setup(&c.dn, ctx, m, n, k, wq, ws, bias, &qrng);
#endif
            double gop = 2.0 * (double)m * (double)n * (double)k * 1e-9;
            double g[NMETH][100], r_s8[100], r_f32[100], r_w8[100], r_own[100];
            for (int meth = 0; meth < NMETH; meth++)
                if (meth != M_DNNL_S8 || have_dnnl) time_it(&c, meth, min_ms * 1e-3 * 0.5); /* warm-up */
            for (int rep = 0; rep < reps; rep++) {
                double t[NMETH] = {0};
                for (int o = 0; o < NMETH; o++) {
                    int meth = (o + rep) % NMETH;
                    if (meth == M_DNNL_S8 && !have_dnnl) continue;
                    t[meth] = time_it(&c, meth, min_ms * 1e-3);
                    g[meth][rep] = gop / t[meth];
                }
                r_s8[rep] = have_dnnl ? t[M_DNNL_S8] / t[M_LLM] : 0;
                r_w8[rep] = have_dnnl ? t[M_DNNL_S8] / t[M_W8A8] : 0;
                r_f32[rep] = t[M_F32] / t[M_LLM];
                r_own[rep] = have_dnnl ? t[M_DNNL_S8] / t[M_LLM_OWN] : 0;
            }
            pt_bench_stats s[NMETH], rs8 = pt_bench_summary(r_s8, reps), rf = pt_bench_summary(r_f32, reps), rw = pt_bench_summary(r_w8, reps), ro = pt_bench_summary(r_own, reps);
            for (int meth = 0; meth < NMETH; meth++) s[meth] = have_dnnl || meth != M_DNNL_S8 ? pt_bench_summary(g[meth], reps) : (pt_bench_stats){0, 0, 0};
            if (json) {
                printf("%s  {\"op\": \"int8\", \"m\": %lld, \"k\": %lld, \"n\": %lld, \"outlier_cols\": %d", first ? "" : ",\n", (long long)m,
                       (long long)k, (long long)n, nO);
                for (int meth = 0; meth < NMETH; meth++)
                    printf(", \"%s_gops\": [%.2f, %.2f, %.2f]", MNAME[meth], s[meth].med, s[meth].lo, s[meth].hi);
                printf(", \"llm_over_s8\": [%.3f, %.3f, %.3f], \"llm_over_f32\": [%.3f, %.3f, %.3f], \"w8a8_over_s8\": [%.3f, %.3f, %.3f], \"own_over_s8\": [%.3f, %.3f, %.3f]}",
                       rs8.med, rs8.lo, rs8.hi, rf.med, rf.lo, rf.hi, rw.med, rw.lo, rw.hi, ro.med, ro.lo, ro.hi);
                first = 0;
            } else {
                char col[NMETH][40], rc[4][40];
                for (int meth = 0; meth < NMETH; meth++)
                    snprintf(col[meth], 40, "%.1f (%.1f, %.1f)", s[meth].med, s[meth].lo, s[meth].hi);
                snprintf(rc[0], 40, "%.2f (%.2f, %.2f)", rs8.med, rs8.lo, rs8.hi);
                snprintf(rc[1], 40, "%.2f (%.2f, %.2f)", rf.med, rf.lo, rf.hi);
                snprintf(rc[2], 40, "%.2f (%.2f, %.2f)", rw.med, rw.lo, rw.hi);
                snprintf(rc[3], 40, "%.2f (%.2f, %.2f)", ro.med, ro.lo, ro.hi);
                printf("%-5lld %-5lld %-5lld %4d %-26s %-26s %-26s %-26s %-22s %-22s %-22s %-26s %-22s\n", (long long)m, (long long)k,
                       (long long)n, nO, col[0], col[1], col[2], col[3], rc[0], rc[1], rc[2], col[4], rc[3]);
            }
            fflush(stdout);
#if defined(PT_BENCH_ONEDNN)
            pt_bench_dnnl_s8_destroy(&c.dn);
#endif
            free(packed_raw); free(x); free(w); free(wq); free(ws); free(bias); free(y);
        }
    if (json) printf("\n]\n");
    pt_ctx_destroy(ctx);
    pt_ctx_destroy(own);
    return 0;
}
