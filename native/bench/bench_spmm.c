/* pt-bench --op spmm: block-sparse SpMM (pt_spmm_bsr, f32 and int8 BSR weights) against the dense
 * f32 matmul (pt_matmul: oneDNN when present) and oneDNN's dense s8 matmul, same shapes, same
 * run, interleaved.
 *
 *   pt-bench --op spmm [--m 1,16,128] [--kn 768x3072,3072x768] [--sparsity 0.5,0.7,0.9]
 *            [--block 4x1] [--threads T] [--reps R] [--min-ms MS] [--clock wall|cpu] [--json]
 *
 * y[M,N] = x[M,K] . W + bias, W pruned from a random [N,K] (PyTorch layout) weight by block
 * magnitude to each sparsity, block_k x block_n = --block. Ours: f32 BSR (x f32) and int8 BSR
 * (W8A8: x quantized per row inside every call, as a model runs it). Baselines: dense f32
 * pt_matmul (trans_b = 1; oneDNN), and oneDNN's s8 matmul with x ALREADY quantized (its
 * quantization not timed: a lower bound of its cost) and weights prepacked. Last column: the int8
 * BSR handed x already quantized too (pt_spmm_bsr_s8; rows quantized once before timing, as the
 * s8 baseline's), so that ratio compares the same work. Each repeat times
 * every method for --min-ms, rotating the order; GOP/s counts the DENSE work 2MNK / t (an
 * "effective" rate, so ratios are speedups); median (min, max) over repeats of per-repeat
 * ratios. The Intel paper's ideal is ~1 / (1 - s) times a kernel efficiency factor. */
#include "bench_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t srng = 0x2545f4914f6cdd1dull;

#define MAXS 4
typedef struct {
    pt_ctx* ctx;
    pt_tensor x, w, bias, y;
    pt_matmul_params mp;
    void* bsr[MAXS][2];      /* [sparsity][f32, int8] */
    int64_t bytes[MAXS][2];
    int nsp;
    pt_tensor xq, xsc;       /* x quantized per row (s8) and its row scales, for pt_spmm_bsr_s8 */
#if defined(PT_BENCH_ONEDNN)
    pt_bench_dnnl_s8 dn;
#endif
} scase;

/* meth 0: dense f32, 1: dense oneDNN s8, 2 + 2*si + {0: f32 BSR, 1: int8 BSR}, 2 + 2*nsp + si: int8
 * BSR with s8 x */
static int run1(scase* c, int meth) {
    if (meth == 0) return pt_matmul(c->ctx, &c->x, &c->w, &c->bias, &c->y, &c->mp);
    if (meth == 1) {
#if defined(PT_BENCH_ONEDNN)
        return pt_bench_dnnl_s8_run(&c->dn);
#else
        return 1;
#endif
    }
    if (meth >= 2 + 2 * c->nsp) {
        const int si = meth - 2 - 2 * c->nsp;
        return pt_spmm_bsr_s8(c->ctx, &c->xq, &c->xsc, c->bsr[si][1], c->bytes[si][1], &c->bias, &c->y, PT_ACT_NONE);
    }
    int si = (meth - 2) / 2, d = (meth - 2) % 2;
    return pt_spmm_bsr(c->ctx, &c->x, c->bsr[si][d], c->bytes[si][d], &c->bias, &c->y, PT_ACT_NONE);
}
static double time1(scase* c, int meth, double min_s) {
    int it = 0;
    double t0 = pt_bench_now(), t;
    do {
        if (run1(c, meth) != 0) { fprintf(stderr, "method %d failed: %s\n", meth, pt_last_error()); exit(1); }
        it++;
        t = pt_bench_now() - t0;
    } while (t < min_s);
    return t / it;
}

#if defined(PT_BENCH_ONEDNN)
/* oneDNN's dense s8 matmul on a random [N,K] int8 weight, per-channel scales 0.001. */
static void dnnl_s8_setup(scase* c, pt_ctx* ctx, int64_t m, int64_t n, int64_t k, float* bias) {
    int8_t* wq = malloc((size_t)(n * k));
    float* ws = malloc(4 * (size_t)n);
    if (!wq || !ws) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (int64_t i = 0; i < n * k; i++) wq[i] = (int8_t)(pt_bench_rand(&srng) * 127.0f);
    for (int64_t i = 0; i < n; i++) ws[i] = 0.001f;
    pt_bench_dnnl_s8_setup(&c->dn, ctx, m, n, k, wq, ws, bias, &srng);
    free(wq);
    free(ws);
}
#endif

int pt_bench_spmm(int argc, char** argv);
int pt_bench_spmm(int argc, char** argv) {
    int64_t ms[8] = {1, 16, 128}, kn[8][2] = {{768, 3072}, {3072, 768}};
    double sps[MAXS] = {0.5, 0.7, 0.9};
    int nm = 3, nkn = 2, nsp = 3, threads = 2, reps = 7, json = 0, bk = 4, bn = 1;
    double min_ms = 20;
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
        } else if (!strcmp(argv[i], "--sparsity")) nsp = pt_bench_parse_f64(v, sps, MAXS), i++;
        else if (!strcmp(argv[i], "--block")) {
            if (sscanf(v, "%dx%d", &bk, &bn) != 2) { fprintf(stderr, "--block wants KxN (e.g. 4x1)\n"); return 2; }
            i++;
        } else if (!strcmp(argv[i], "--threads")) threads = atoi(v), i++;
        else if (!strcmp(argv[i], "--reps")) reps = atoi(v), i++;
        else if (!strcmp(argv[i], "--min-ms")) min_ms = atof(v), i++;
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--clock")) pt_bench_cpu_clock = !strcmp(v, "cpu"), i++;
        else if (!strcmp(argv[i], "--op")) i++;
        else { fprintf(stderr, "pt-bench --op spmm: unknown option %s\n", argv[i]); return 2; }
    }
    if (reps < 1 || reps > 99) reps = 7;
#if defined(PT_BENCH_ONEDNN)
    const int have_dnnl = 1;
#else
    const int have_dnnl = 0;
#endif
    pt_ctx_params cp = {threads, 0, 1, 0};
    pt_ctx* ctx;
    if (pt_ctx_create(&cp, &ctx) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
    if (!json)
        printf("# block-sparse SpMM, block %dx%d (K x N), %d threads, median (min, max) of %d repeats; effective GOP/s = 2MNK/t\n"
               "%-4s %-5s %-5s %-5s %-20s %-20s %-20s %-20s %-20s %-20s %-20s %-20s\n",
               bk, bn, threads, reps, "M", "K", "N", "s", "dense_f32", "dense_s8(onednn)", "bsr_f32", "bsr_i8", "f32/dense_f32",
               "i8/dense_s8", "i8/dense_f32", "i8x/dense_s8");
    else printf("[\n");
    int first = 1;
    for (int a = 0; a < nm; a++)
        for (int b = 0; b < nkn; b++) {
            const int64_t m = ms[a], k = kn[b][0], n = kn[b][1];
            scase c;
            memset(&c, 0, sizeof c);
            c.ctx = ctx;
            float* x = malloc(4 * (size_t)(m * k));
            float* w = malloc(4 * (size_t)(n * k));
            float* bias = malloc(4 * (size_t)n);
            float* y = malloc(4 * (size_t)(m * n));
            for (int64_t i = 0; i < m * k; i++) x[i] = pt_bench_rand(&srng);
            for (int64_t i = 0; i < n * k; i++) w[i] = 0.1f * pt_bench_rand(&srng);
            for (int64_t i = 0; i < n; i++) bias[i] = pt_bench_rand(&srng);
            c.x = pt_bench_t2(x, PT_F32, m, k); c.w = pt_bench_t2(w, PT_F32, n, k); c.bias = pt_bench_v(bias, n); c.y = pt_bench_t2(y, PT_F32, m, n);
            c.mp = (pt_matmul_params){1, PT_ACT_NONE, 1.0f, 0.0f};
            c.nsp = nsp;
            int8_t* xq = malloc((size_t)(m * k));
            float* xsc = malloc(4 * (size_t)m);
            for (int64_t i = 0; i < m; i++) { /* per-row absmax, as pt_spmm_bsr quantizes in the call */
                float amax = 0.0f;
                for (int64_t j = 0; j < k; j++) amax = fabsf(x[i * k + j]) > amax ? fabsf(x[i * k + j]) : amax;
                const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
                xsc[i] = amax / 127.0f;
                for (int64_t j = 0; j < k; j++) xq[i * k + j] = (int8_t)lrintf(x[i * k + j] * inv);
            }
            c.xq = pt_bench_t2(xq, PT_I8, m, k);
            c.xsc = pt_bench_v(xsc, m);
            for (int si = 0; si < nsp; si++)
                for (int d = 0; d < 2; d++) {
                    pt_bsr_params bp = {bk, bn, d ? PT_I8 : PT_F32, PT_BSR_SPARSITY, 1, 0, sps[si], 0.0, NULL};
                    if (pt_bsr_from_dense(ctx, &c.w, &bp, NULL, 0, &c.bytes[si][d]) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
                    c.bsr[si][d] = malloc((size_t)c.bytes[si][d] + 64);
                    if (pt_bsr_from_dense(ctx, &c.w, &bp, c.bsr[si][d], c.bytes[si][d], &c.bytes[si][d]) != PT_OK) {
                        fprintf(stderr, "%s\n", pt_last_error());
                        return 1;
                    }
                }
#if defined(PT_BENCH_ONEDNN)
            dnnl_s8_setup(&c, ctx, m, n, k, bias);
#endif
            const int nmeth = 2 + 3 * nsp;
            const double gop = 2.0 * (double)m * (double)n * (double)k * 1e-9;
            static double g[2 + 3 * MAXS][100], rf[MAXS][100], ri[MAXS][100], rif[MAXS][100], rq[MAXS][100];
            for (int meth = 0; meth < nmeth; meth++)
                if (meth != 1 || have_dnnl) time1(&c, meth, min_ms * 1e-3 * 0.5);
            for (int rep = 0; rep < reps; rep++) {
                double t[2 + 3 * MAXS] = {0};
                for (int o = 0; o < nmeth; o++) {
                    int meth = (o + rep) % nmeth;
                    if (meth == 1 && !have_dnnl) continue;
                    t[meth] = time1(&c, meth, min_ms * 1e-3);
                    g[meth][rep] = gop / t[meth];
                }
                for (int si = 0; si < nsp; si++) {
                    rf[si][rep] = t[0] / t[2 + 2 * si];
                    ri[si][rep] = have_dnnl ? t[1] / t[3 + 2 * si] : 0;
                    rif[si][rep] = t[0] / t[3 + 2 * si];
                    rq[si][rep] = have_dnnl ? t[1] / t[2 + 2 * nsp + si] : 0;
                }
            }
            pt_bench_stats d32 = pt_bench_summary(g[0], reps), ds8 = have_dnnl ? pt_bench_summary(g[1], reps) : (pt_bench_stats){0, 0, 0};
            for (int si = 0; si < nsp; si++) {
                pt_bench_stats sf = pt_bench_summary(g[2 + 2 * si], reps), sq = pt_bench_summary(g[3 + 2 * si], reps);
                pt_bench_stats a1 = pt_bench_summary(rf[si], reps), a2 = pt_bench_summary(ri[si], reps), a3 = pt_bench_summary(rif[si], reps);
                pt_bench_stats a4 = pt_bench_summary(rq[si], reps);
                if (json) {
                    printf("%s  {\"op\": \"spmm\", \"m\": %lld, \"k\": %lld, \"n\": %lld, \"sparsity\": %.2f, \"block\": \"%dx%d\", "
                           "\"dense_f32_gops\": [%.2f, %.2f, %.2f], \"dense_s8_gops\": [%.2f, %.2f, %.2f], \"bsr_f32_gops\": [%.2f, %.2f, %.2f], "
                           "\"bsr_i8_gops\": [%.2f, %.2f, %.2f], \"f32_over_dense_f32\": [%.3f, %.3f, %.3f], \"i8_over_dense_s8\": [%.3f, %.3f, %.3f], "
                           "\"i8_over_dense_f32\": [%.3f, %.3f, %.3f], \"i8x_over_dense_s8\": [%.3f, %.3f, %.3f]}",
                           first ? "" : ",\n", (long long)m, (long long)k, (long long)n, sps[si], bk, bn, d32.med, d32.lo, d32.hi, ds8.med, ds8.lo,
                           ds8.hi, sf.med, sf.lo, sf.hi, sq.med, sq.lo, sq.hi, a1.med, a1.lo, a1.hi, a2.med, a2.lo, a2.hi, a3.med, a3.lo, a3.hi, a4.med, a4.lo, a4.hi);
                    first = 0;
                } else {
                    char c0[40], c1[40], c2[40], c3[40], c4[40], c5[40], c6[40], c7[40];
                    snprintf(c0, 40, "%.1f (%.1f,%.1f)", d32.med, d32.lo, d32.hi);
                    snprintf(c1, 40, "%.1f (%.1f,%.1f)", ds8.med, ds8.lo, ds8.hi);
                    snprintf(c2, 40, "%.1f (%.1f,%.1f)", sf.med, sf.lo, sf.hi);
                    snprintf(c3, 40, "%.1f (%.1f,%.1f)", sq.med, sq.lo, sq.hi);
                    snprintf(c4, 40, "%.2f (%.2f,%.2f)", a1.med, a1.lo, a1.hi);
                    snprintf(c5, 40, "%.2f (%.2f,%.2f)", a2.med, a2.lo, a2.hi);
                    snprintf(c6, 40, "%.2f (%.2f,%.2f)", a3.med, a3.lo, a3.hi);
                    snprintf(c7, 40, "%.2f (%.2f,%.2f)", a4.med, a4.lo, a4.hi);
                    printf("%-4lld %-5lld %-5lld %-5.2f %-20s %-20s %-20s %-20s %-20s %-20s %-20s %-20s\n", (long long)m, (long long)k,
                           (long long)n, sps[si], c0, c1, c2, c3, c4, c5, c6, c7);
                }
            }
            fflush(stdout);
#if defined(PT_BENCH_ONEDNN)
            pt_bench_dnnl_s8_destroy(&c.dn);
#endif
            for (int si = 0; si < nsp; si++) { free(c.bsr[si][0]); free(c.bsr[si][1]); }
            free(x); free(w); free(bias); free(y); free(xq); free(xsc);
        }
    if (json) printf("\n]\n");
    pt_ctx_destroy(ctx);
    return 0;
}
