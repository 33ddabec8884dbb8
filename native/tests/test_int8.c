/* pt_quantize_int8_weight and pt_matmul_int8 (LLM.int8, W8A8, weight-only) against a
 * double-precision reference of the SAME quantized math, written plainly here: the weight and
 * activation quantization (absmax, round half to even of the f32 product), the exact integer
 * dot products, the f32 outlier columns and the dequantizing outer product of the scales.
 * Random inputs with planted outlier columns, odd sizes, NaN-poisoned outputs, the AMX, VNNI
 * and portable micro kernels, and bad arguments. */
#include "pt_test.h"

#include <string.h>

static uint16_t bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t r = u >> 16, rest = u & 0xffffu;
    if (rest > 0x8000u || (rest == 0x8000u && (r & 1u))) r++;
    return (uint16_t)r;
}
static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static double gelu(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }

typedef struct { const char* name; uint32_t disable; int threads; int onednn; } config;
/* default: with AMX and oneDNN, the packed-weight cases with M >= 64 run oneDNN's s8 matmul (our quantization
 * and epilogue around it); "own AMX" the same cases on our AMX kernel */
static const config CONFIGS[] = {
    {"default (AMX-INT8; oneDNN s8 for M >= 64 where present)", 0, 2, 1},
    {"own AMX kernel (no oneDNN)", 0, 2, 0},
    {"AVX512-VNNI", PT_CPU_AMX_INT8, 2, 1},
    {"portable", PT_CPU_AVX512F | PT_CPU_AVX512_VNNI | PT_CPU_AVX2, 2, 1},
    {"default, 1 thread", 0, 1, 1},
};

/* x [m,k] f32 with `nout` planted outlier columns (values up to +-20 in some rows; the third
 * only in the last third of the rows, so that one row chunk of a parallel scan does not see it); in the
 * rows between, the first outlier column holds the row's largest value below the threshold
 * (+-5.5), which must not count in that row's absmax */
static void make_x(float* x, int64_t m, int64_t k, int nout, int64_t* cols) {
    pt_test_fill(x, (size_t)(m * k), -2.0, 2.0);
    for (int o = 0; o < nout; o++) {
        int64_t c = (int64_t)pt_test_uniform(0, (double)k);
        if (c >= k) c = k - 1;
        cols[o] = c;
        for (int64_t r = 0; r < m; r++)
            if (r % 3 == 0 && (o != 2 || r >= 2 * m / 3)) /* the third column only in the last third of the rows */
                x[r * k + c] = (float)((r & 1 ? -1 : 1) * pt_test_uniform(6.5, 20.0));
            else if (o == 0 && r % 3 == 1) x[r * k + c] = r & 2 ? -5.5f : 5.5f;
    }
}

static double act_ref(int act, double v) {
    switch (act) {
    case PT_ACT_RELU: return v > 0 ? v : 0;
    case PT_ACT_GELU_ERF: return gelu(v);
    case PT_ACT_GELU_TANH: return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    case PT_ACT_SILU: return v / (1.0 + exp(-v));
    default: return v;
    }
}

/* pack: the weight packed once (pt_pack_int8_weight; with AMX and oneDNN, M >= 64 then runs
 * oneDNN's s8 matmul); ypad: y rows ypad elements longer than N (the padding must stay NaN) */
static int g_nout = 3; /* outlier columns make_x plants when K >= 16 (<= 40) */

static void run_case_ex(pt_ctx* ctx, const char* cname, int64_t m, int64_t k, int64_t n, int mode, int xbf, int ybf, int use_wo,
                        int bias_on, int act, int pack, int64_t ypad) {
    float* w = malloc(sizeof(float) * (size_t)(n * k));
    float* x = malloc(sizeof(float) * (size_t)(m * k));
    uint16_t* xb = malloc(2 * (size_t)(m * k));
    int8_t* wq = malloc((size_t)(n * k));
    float* ws = malloc(sizeof(float) * (size_t)n);
    float* bias = malloc(sizeof(float) * (size_t)n);
    float* y = malloc(4 * (size_t)(m * (n + ypad)));
    float* yf = malloc(4 * (size_t)(m * n));
    double* ref = malloc(sizeof(double) * (size_t)(m * n));
    int64_t planted[40];
    pt_test_fill(w, (size_t)(n * k), -0.5, 0.5);
    if (n > 2) for (int64_t p = 0; p < k; p++) w[1 * k + p] = 0.0f; /* an all-zero channel */
    pt_test_fill(bias, (size_t)n, -1.0, 1.0);
    make_x(x, m, k, k >= 16 ? g_nout : 1, planted);
    /* packed cases: a NaN in row 1 must make exactly that row NaN */
    const int nan_row = pack && m >= 3 && mode != PT_INT8_WEIGHT_ONLY;
    if (nan_row) x[1 * k + k / 3] = NAN;
    for (int64_t i = 0; i < m * k; i++) { xb[i] = bf16(x[i]); if (xbf) x[i] = from_bf16(xb[i]); }

    int64_t sw[2] = {n, k}, sx[2] = {m, k}, sy[2] = {m, n}, sn[1] = {n};
    pt_tensor tw = pt_test_tensor(w, PT_F32, 2, sw), twq = pt_test_tensor(wq, PT_I8, 2, sw), tws = pt_test_tensor(ws, PT_F32, 1, sn);
    pt_tensor tb = pt_test_tensor(bias, PT_F32, 1, sn);
    pt_tensor tx = xbf ? pt_test_tensor(xb, PT_BF16, 2, sx) : pt_test_tensor(x, PT_F32, 2, sx);
    pt_tensor ty = pt_test_tensor(y, ybf ? PT_BF16 : PT_F32, 2, sy);
    ty.stride[0] = (n + ypad) * (ybf ? 2 : 4);
    EXPECT_OK(pt_quantize_int8_weight(ctx, &tw, &twq, &tws));
    /* the weight quantization itself */
    int wbad = 0;
    for (int64_t i = 0; i < n; i++) {
        float amax = 0.0f;
        for (int64_t p = 0; p < k; p++) amax = fabsf(w[i * k + p]) > amax ? fabsf(w[i * k + p]) : amax;
        float inv = amax > 0 ? 127.0f / amax : 0.0f;
        if (ws[i] != amax / 127.0f) wbad++;
        for (int64_t p = 0; p < k; p++) {
            float pr = w[i * k + p] * inv;
            if (wq[i * k + p] != (int8_t)nearbyint((double)pr)) wbad++;
        }
    }
    EXPECT(wbad == 0, "%s: weight quantization differs in %d places (N=%lld K=%lld)", cname, wbad, (long long)n, (long long)k);

    /* reference */
    unsigned char* outl = calloc((size_t)k, 1);
    long long* qx = malloc(sizeof(long long) * (size_t)k); /* a reference row of x, quantized */
    int nO = 0;
    if (mode == PT_INT8_LLM)
        for (int64_t j = 0; j < k; j++) {
            for (int64_t r = 0; r < m; r++)
                if (fabsf(x[r * k + j]) >= 6.0f) { outl[j] = 1; nO++; break; }
        }
    for (int64_t r = 0; r < m; r++) {
        const float* xr = x + r * k;
        float amax = 0.0f;
        for (int64_t j = 0; j < k; j++) if (!outl[j] && fabsf(xr[j]) > amax) amax = fabsf(xr[j]);
        float inv = amax > 0 ? 127.0f / amax : 0.0f;
        double sxm = (double)(amax / 127.0f);
        for (int64_t j = 0; j < k; j++) { /* once per row; a non-finite x (the NaN row, whose reference is not compared) as 0: its cast is UB */
            const double q = nearbyint((double)(xr[j] * inv));
            qx[j] = outl[j] || !isfinite(q) ? 0 : (long long)q;
        }
        for (int64_t c = 0; c < n; c++) {
            double v;
            if (mode == PT_INT8_WEIGHT_ONLY) {
                v = 0;
                for (int64_t j = 0; j < k; j++) v += (double)xr[j] * (double)wq[c * k + j] * (double)ws[c];
            } else {
                long long acc = 0;
                double o = 0;
                for (int64_t j = 0; j < k; j++) {
                    if (outl[j]) {
                        double wo = use_wo ? (double)w[c * k + j] : (double)wq[c * k + j] * (double)ws[c];
                        o += (double)xr[j] * wo;
                    } else {
                        acc += qx[j] * wq[c * k + j];
                    }
                }
                v = (double)acc * sxm * (double)ws[c] + o;
            }
            if (bias_on) v += bias[c];
            ref[r * n + c] = act_ref(act, v);
        }
    }
    pt_test_poison(y, 4 * (size_t)(m * (n + ypad)));
    pt_int8_matmul_params prm = {mode, act, 0.0f, 0, NULL};
    int64_t pb = pt_int8_packed_bytes(n, k);
    int8_t* packed = malloc((size_t)pb);
    pt_tensor tp = pt_test_tensor(packed, PT_I8, 1, &pb);
    if (pack) {
        EXPECT_OK(pt_pack_int8_weight(ctx, &twq, &tp));
        prm.w_packed = &tp;
    }
    pt_tensor two = tw;
    EXPECT_OK(pt_matmul_int8(ctx, &tx, &twq, &tws, use_wo ? &two : NULL, bias_on ? &tb : NULL, &ty, &prm));
    int pad_bad = 0;
    for (int64_t r = 0; r < m; r++) {
        for (int64_t c = 0; c < n; c++)
            yf[r * n + c] = ybf ? from_bf16(((uint16_t*)y)[r * (n + ypad) + c]) : y[r * (n + ypad) + c];
        for (int64_t c = n; c < n + ypad; c++) {
            float v = ybf ? from_bf16(((uint16_t*)y)[r * (n + ypad) + c]) : y[r * (n + ypad) + c];
            pad_bad += v == v;
        }
    }
    EXPECT(pad_bad == 0, "%s: M=%lld K=%lld N=%lld: %d values written past N in y's row padding", cname, (long long)m, (long long)k,
           (long long)n, pad_bad);
    if (nan_row) {
        int nan_bad = 0;
        for (int64_t c = 0; c < n; c++) {
            nan_bad += yf[1 * n + c] == yf[1 * n + c];
            yf[1 * n + c] = 0.0f;
            ref[1 * n + c] = 0.0;
        }
        EXPECT(nan_bad == 0, "%s: M=%lld K=%lld N=%lld: %d values of the NaN row 1 are not NaN", cname, (long long)m, (long long)k,
               (long long)n, nan_bad);
    }
    double tol = ybf ? 8e-3 : 2e-5;
    double err = pt_test_err(yf, ref, (size_t)(m * n), tol * 4, tol);
    EXPECT(err <= 1.0, "%s: mode %d M=%lld K=%lld N=%lld xbf=%d ybf=%d wo=%d bias=%d act=%d pack=%d ypad=%lld outliers=%d: err %.3g", cname,
           mode, (long long)m, (long long)k, (long long)n, xbf, ybf, use_wo, bias_on, act, pack, (long long)ypad, nO, err);
    free(packed); free(outl); free(qx); free(w); free(x); free(xb); free(wq); free(ws); free(bias); free(y); free(yf); free(ref);
}

static void run_case(pt_ctx* ctx, const char* cname, int64_t m, int64_t k, int64_t n, int mode, int xbf, int ybf, int use_wo,
                     int bias_on, int act) {
    run_case_ex(ctx, cname, m, k, n, mode, xbf, ybf, use_wo, bias_on, act, bias_on, 0); /* half the cases on a packed weight */
}

/* LLM.int8 with outlier columns on a packed weight: odd M on both sides of the oneDNN route's
 * M >= 64 (oneDNN's s8 matmul, then our pass adding the f32 outlier product and applying the
 * activation, over ~2 MB column chunks of y: M=300 N=2000 makes two), with and without bias,
 * every activation, w_outlier or the dequantized weight, strided y. */
static void packed_llm_cases(pt_ctx* ctx, const char* cname) {
    static const int64_t MS[] = {1, 7, 65, 300};
    static const int ACTS[] = {PT_ACT_NONE, PT_ACT_RELU, PT_ACT_GELU_ERF, PT_ACT_GELU_TANH, PT_ACT_SILU};
    for (int i = 0; i < 4; i++) {
        const int64_t m = MS[i], n = m == 300 ? 2000 : 131 + 64 * i;
        run_case_ex(ctx, cname, m, 200 + i, n, PT_INT8_LLM, 0, 0, i & 1, 1, ACTS[i % 5], 1, 0);
        run_case_ex(ctx, cname, m, 67, n, PT_INT8_LLM, 0, 0, !(i & 1), 0, ACTS[(i + 2) % 5], 1, 5);
        run_case_ex(ctx, cname, m, 130, 70, PT_INT8_LLM, i & 1, 0, 0, i & 1, ACTS[(i + 4) % 5], 1, 3);
    }
}

/* The decomposition must matter: with planted outliers LLM.int8 is closer to the exact f32
 * product than plain W8A8. */
static void outliers_matter(pt_ctx* ctx) {
    const int64_t m = 33, k = 257, n = 41;
    float* w = malloc(4 * n * k); float* x = malloc(4 * m * k); int8_t* wq = malloc(n * k); float* ws = malloc(4 * n);
    float* y1 = malloc(4 * m * n); float* y2 = malloc(4 * m * n);
    int64_t cols[4];
    pt_test_fill(w, (size_t)(n * k), -0.5, 0.5);
    make_x(x, m, k, 2, cols);
    for (int64_t r = 0; r < m; r++) x[r * k + cols[0]] = 60.0f; /* a strong outlier feature */
    int64_t sw[2] = {n, k}, sx[2] = {m, k}, sy[2] = {m, n}, sn[1] = {n};
    pt_tensor tw = pt_test_tensor(w, PT_F32, 2, sw), twq = pt_test_tensor(wq, PT_I8, 2, sw), tws = pt_test_tensor(ws, PT_F32, 1, sn);
    pt_tensor tx = pt_test_tensor(x, PT_F32, 2, sx), t1 = pt_test_tensor(y1, PT_F32, 2, sy), t2 = pt_test_tensor(y2, PT_F32, 2, sy);
    EXPECT_OK(pt_quantize_int8_weight(ctx, &tw, &twq, &tws));
    pt_int8_matmul_params llm = {PT_INT8_LLM, 0, 6.0f, 0, NULL}, w8 = {PT_INT8_W8A8, 0, 0.0f, 0, NULL};
    EXPECT_OK(pt_matmul_int8(ctx, &tx, &twq, &tws, &tw, NULL, &t1, &llm));
    EXPECT_OK(pt_matmul_int8(ctx, &tx, &twq, &tws, &tw, NULL, &t2, &w8));
    double e1 = 0, e2 = 0;
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < n; c++) {
            double t = 0;
            for (int64_t j = 0; j < k; j++) t += (double)x[r * k + j] * w[c * k + j];
            e1 += fabs(y1[r * n + c] - t);
            e2 += fabs(y2[r * n + c] - t);
        }
    EXPECT(e1 * 3 < e2, "LLM.int8 error %.4g should be well below plain W8A8's %.4g with outliers", e1, e2);
    /* a NaN in x makes only its row NaN */
    x[5 * k + 7] = NAN;
    EXPECT_OK(pt_matmul_int8(ctx, &tx, &twq, &tws, NULL, NULL, &t1, &llm));
    int nan_ok = 1;
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < n; c++) nan_ok &= (r == 5) == (y1[r * n + c] != y1[r * n + c]);
    EXPECT(nan_ok, "a NaN in x row 5 must make exactly row 5 NaN");
    free(w); free(x); free(wq); free(ws); free(y1); free(y2);
}

/* The VNNI kernel's epilogue in registers (pt_i8_micro_vnni_epi, y f32) against the s32 tile and
 * pt_i8_epilogue_avx512 (the portable micro kernel: AVX-512 without VNNI), AMX off in both: the same
 * integer sums and the same FMA order per value, so y must be the same bits (the tolerance of
 * run_case_ex would not see an FMA split into a multiply and an add). Every tile height (M = 47:
 * 7 x 6 + 5; 1; 7; 128: 21 x 6 + 2; 4; 3), a partial last block (N = 131, 770, 70), outlier columns
 * (w_outlier, the dequantized weight, 29 of them), bias, GELU, a NaN row, padded y rows. */
static void fused_epilogue_bits(void) {
    static const int64_t S[][3] = {{47, 200, 131}, {1, 130, 70}, {7, 67, 64}, {128, 768, 770}, {4, 96, 200}, {3, 256, 65}};
    pt_ctx_params pv = {2, PT_CPU_AMX_INT8, 0, 0}, pn = {2, PT_CPU_AMX_INT8 | PT_CPU_AVX512_VNNI, 0, 0};
    pt_ctx *cv = NULL, *cn = NULL;
    EXPECT_OK(pt_ctx_create(&pv, &cv));
    EXPECT_OK(pt_ctx_create(&pn, &cn));
    for (int s = 0; s < 6; s++)
        for (int v = 0; v < 3; v++) {
            const int64_t m = S[s][0], k = S[s][1], n = S[s][2], ypad = 3;
            const int mode = v == 2 ? PT_INT8_W8A8 : PT_INT8_LLM;
            float* w = malloc(4 * (size_t)(n * k));
            float* x = malloc(4 * (size_t)(m * k));
            int8_t* wq = malloc((size_t)(n * k));
            float* ws = malloc(4 * (size_t)n);
            float* bias = malloc(4 * (size_t)n);
            float* y1 = malloc(4 * (size_t)(m * (n + ypad)));
            float* y2 = malloc(4 * (size_t)(m * (n + ypad)));
            int64_t cols[40];
            pt_test_fill(w, (size_t)(n * k), -0.5, 0.5);
            pt_test_fill(bias, (size_t)n, -1.0, 1.0);
            g_nout = s == 0 && v == 1 ? 29 : 3;
            make_x(x, m, k, g_nout, cols);
            g_nout = 3;
            if (m >= 3) x[2 * k + k / 2] = NAN;
            int64_t sw[2] = {n, k}, sx[2] = {m, k}, sy[2] = {m, n}, sn[1] = {n};
            pt_tensor tw = pt_test_tensor(w, PT_F32, 2, sw), twq = pt_test_tensor(wq, PT_I8, 2, sw), tws = pt_test_tensor(ws, PT_F32, 1, sn);
            pt_tensor tx = pt_test_tensor(x, PT_F32, 2, sx), tb = pt_test_tensor(bias, PT_F32, 1, sn);
            pt_tensor t1 = pt_test_tensor(y1, PT_F32, 2, sy), t2 = pt_test_tensor(y2, PT_F32, 2, sy);
            t1.stride[0] = t2.stride[0] = (n + ypad) * 4;
            EXPECT_OK(pt_quantize_int8_weight(cv, &tw, &twq, &tws));
            pt_test_poison(y1, 4 * (size_t)(m * (n + ypad)));
            pt_test_poison(y2, 4 * (size_t)(m * (n + ypad)));
            pt_int8_matmul_params prm = {mode, PT_ACT_GELU_ERF, 0.0f, 0, NULL};
            EXPECT_OK(pt_matmul_int8(cv, &tx, &twq, &tws, v == 0 ? &tw : NULL, &tb, &t1, &prm));
            EXPECT_OK(pt_matmul_int8(cn, &tx, &twq, &tws, v == 0 ? &tw : NULL, &tb, &t2, &prm));
            int64_t diff = 0;
            for (int64_t i = 0; i < m * (n + ypad); i++) diff += memcmp(&y1[i], &y2[i], 4) != 0;
            EXPECT(diff == 0, "VNNI epilogue in registers vs s32 tile + AVX-512 epilogue: M=%lld K=%lld N=%lld mode %d wo=%d: %lld values differ",
                   (long long)m, (long long)k, (long long)n, mode, v == 0, (long long)diff);
            free(w); free(x); free(wq); free(ws); free(bias); free(y1); free(y2);
        }
    pt_ctx_destroy(cv);
    pt_ctx_destroy(cn);
}

static void bad_args(pt_ctx* ctx) {
    float w[12] = {0}, x[8] = {0}, y[6], s[3];
    int8_t q[12];
    int64_t sw[2] = {3, 4}, sx[2] = {2, 4}, sx5[2] = {2, 5}, sy[2] = {2, 3}, sn[1] = {3}, sn2[1] = {2};
    pt_tensor tw = pt_test_tensor(w, PT_F32, 2, sw), tq = pt_test_tensor(q, PT_I8, 2, sw), ts = pt_test_tensor(s, PT_F32, 1, sn);
    pt_tensor tx = pt_test_tensor(x, PT_F32, 2, sx), ty = pt_test_tensor(y, PT_F32, 2, sy);
    EXPECT_OK(pt_quantize_int8_weight(ctx, &tw, &tq, &ts));
    pt_tensor bx = pt_test_tensor(x, PT_F32, 2, sx5);
    EXPECT(pt_matmul_int8(ctx, &bx, &tq, &ts, NULL, NULL, &ty, NULL) == PT_ERR_SHAPE && strstr(pt_last_error(), "K=5"), "K mismatch: %s",
           pt_last_error());
    EXPECT(pt_matmul_int8(ctx, &tx, &tw, &ts, NULL, NULL, &ty, NULL) == PT_ERR_DTYPE && strstr(pt_last_error(), "wq"), "f32 wq: %s",
           pt_last_error());
    pt_tensor bs = pt_test_tensor(s, PT_F32, 1, sn2);
    EXPECT(pt_matmul_int8(ctx, &tx, &tq, &bs, NULL, NULL, &ty, NULL) == PT_ERR_SHAPE && strstr(pt_last_error(), "w_scale"), "scale: %s",
           pt_last_error());
    pt_int8_matmul_params p = {7, 0, 0, 0, NULL};
    EXPECT(pt_matmul_int8(ctx, &tx, &tq, &ts, NULL, NULL, &ty, &p) == PT_ERR_INVALID_ARGUMENT && strstr(pt_last_error(), "mode"),
           "mode: %s", pt_last_error());
    pt_int8_matmul_params p2 = {0, 0, -1.0f, 0, NULL};
    int8_t pk[8];
    int64_t s8[1] = {8};
    pt_tensor tpk = pt_test_tensor(pk, PT_I8, 1, s8);
    EXPECT(pt_pack_int8_weight(ctx, &tq, &tpk) == PT_ERR_SHAPE && strstr(pt_last_error(), "pt_int8_packed_bytes"), "packed size: %s",
           pt_last_error());
    pt_int8_matmul_params p3 = {0, 0, 0.0f, 0, &tpk};
    EXPECT(pt_matmul_int8(ctx, &tx, &tq, &ts, NULL, NULL, &ty, &p3) == PT_ERR_SHAPE && strstr(pt_last_error(), "w_packed"), "w_packed: %s",
           pt_last_error());
    EXPECT(pt_matmul_int8(ctx, &tx, &tq, &ts, NULL, NULL, &ty, &p2) == PT_ERR_INVALID_ARGUMENT && strstr(pt_last_error(), "threshold"),
           "threshold: %s", pt_last_error());
    pt_tensor by = pt_test_tensor(y, PT_F32, 2, sx);
    EXPECT(pt_matmul_int8(ctx, &tx, &tq, &ts, NULL, NULL, &by, NULL) == PT_ERR_SHAPE && strstr(pt_last_error(), "y"), "y: %s",
           pt_last_error());
    w[5] = INFINITY;
    EXPECT(pt_quantize_int8_weight(ctx, &tw, &tq, &ts) == PT_ERR_INVALID_ARGUMENT && strstr(pt_last_error(), "w[1, 1]"),
           "inf weight: %s", pt_last_error());
    EXPECT(pt_matmul_int8(ctx, NULL, &tq, &ts, NULL, NULL, &ty, NULL) != PT_OK, "null x");
}

int main(void) {
    pt_test_seed(0x1b8);
    static const int64_t MS[] = {1, 7, 63, 129};
    static const int64_t KN[][2] = {{5, 3}, {67, 131}, {130, 70}, {301, 65}};
    for (size_t c = 0; c < sizeof CONFIGS / sizeof CONFIGS[0]; c++) {
        if (pt_test_same_dispatch(CONFIGS[c].name, CONFIGS[c].disable, CONFIGS[c].threads, CONFIGS[c].onednn)) continue;
        pt_ctx_params cp = {CONFIGS[c].threads, CONFIGS[c].disable, CONFIGS[c].onednn, 0};
        pt_ctx* ctx = NULL;
        EXPECT_OK(pt_ctx_create(&cp, &ctx));
        int i = 0;
        for (size_t a = 0; a < 4; a++)
            for (size_t b = 0; b < 4; b++, i++) {
                int mode = i % 3;
                run_case(ctx, CONFIGS[c].name, MS[a], KN[b][0], KN[b][1], mode, i % 4 == 1, i % 5 == 2, i % 2, i % 3 != 1,
                         i % 4 == 3 ? PT_ACT_GELU_ERF : PT_ACT_NONE);
                if (mode != PT_INT8_LLM) /* every size also in LLM mode */
                    run_case(ctx, CONFIGS[c].name, MS[a], KN[b][0], KN[b][1], PT_INT8_LLM, 0, 0, i % 2, 1, PT_ACT_NONE);
            }
        /* large M: W8A8 through oneDNN (bf16 x/y, GELU); LLM with outlier columns on our kernel */
        run_case(ctx, CONFIGS[c].name, 520, 77, 700, PT_INT8_LLM, 0, 0, 0, 1, PT_ACT_NONE);
        run_case(ctx, CONFIGS[c].name, 300, 200, 333, PT_INT8_W8A8, 1, 1, 1, 1, PT_ACT_GELU_ERF);
        run_case(ctx, CONFIGS[c].name, 70, 1000, 130, PT_INT8_LLM, 0, 0, 1, 1, PT_ACT_GELU_ERF);
        run_case(ctx, CONFIGS[c].name, 64, 64, 64, PT_INT8_LLM, 0, 1, 0, 1, PT_ACT_NONE); /* bf16 y with outliers */
        packed_llm_cases(ctx, CONFIGS[c].name);
        if (c <= 1) /* M*K and M*N over PT_I8_PAR_MIN (2^18): the scan, the quantization and the outlier pass on both threads */
            run_case_ex(ctx, CONFIGS[c].name, 301, 880, 900, PT_INT8_LLM, 0, 0, 0, 1, PT_ACT_GELU_TANH, 1, 0);
        /* x f32 on a packed weight: the rows quantized in the same visit of x as the scan, W8A8 on
         * oneDNN (M >= 64) and on our kernel; LLM with more outlier columns (33 planted) than that
         * path's early buffer holds (16 + K / 32), the general path then */
        run_case_ex(ctx, CONFIGS[c].name, 65, 99, 131, PT_INT8_W8A8, 0, 0, 0, 1, PT_ACT_RELU, 1, 0);
        run_case_ex(ctx, CONFIGS[c].name, 9, 99, 131, PT_INT8_W8A8, 0, 0, 0, 1, PT_ACT_NONE, 1, 0);
        g_nout = 33;
        run_case_ex(ctx, CONFIGS[c].name, 67, 129, 70, PT_INT8_LLM, 0, 0, 0, 1, PT_ACT_NONE, 1, 0);
        run_case_ex(ctx, CONFIGS[c].name, 67, 129, 70, PT_INT8_LLM, 0, 1, 1, 1, PT_ACT_SILU, 1, 0);
        g_nout = 3;
        /* LLM on a packed weight, y dense f32, 64+ rows per thread, small N*K: the rows split among
         * the threads, each part's outlier product added by oneDNN's binary post-op before the
         * activation (dnn_rows): uneven parts (129 rows), GELU, no bias, w_outlier, 29 outlier
         * columns (the general loop of the product), and the same shapes with padded y rows (the
         * columns split instead) */
        run_case_ex(ctx, CONFIGS[c].name, 128, 400, 640, PT_INT8_LLM, 0, 0, 0, 1, PT_ACT_GELU_TANH, 1, 0);
        run_case_ex(ctx, CONFIGS[c].name, 129, 333, 257, PT_INT8_LLM, 0, 0, 1, 0, PT_ACT_GELU_ERF, 1, 0);
        run_case_ex(ctx, CONFIGS[c].name, 129, 333, 257, PT_INT8_LLM, 0, 0, 1, 0, PT_ACT_GELU_ERF, 1, 3);
        g_nout = 29;
        run_case_ex(ctx, CONFIGS[c].name, 150, 200, 130, PT_INT8_LLM, 0, 0, 0, 1, PT_ACT_SILU, 1, 0);
        g_nout = 3;
        /* BERT-base-like shapes on our VNNI kernel where there is no AMX (every M): M=128 K=768 is over
         * 2^14 elements of x, so the scan runs on both threads (one row chunk without the third planted
         * outlier column); M=127 (21 tiles of 6 rows and one of 1), N=770 (a 2-channel last block),
         * GELU, bias, the NaN row, LLM and W8A8 */
        run_case_ex(ctx, CONFIGS[c].name, 128, 768, 770, PT_INT8_LLM, 0, 0, 0, 1, PT_ACT_GELU_ERF, 1, 0);
        run_case_ex(ctx, CONFIGS[c].name, 127, 768, 770, PT_INT8_W8A8, 0, 0, 0, 1, PT_ACT_GELU_ERF, 1, 0);
        outliers_matter(ctx);
        if (c == 0) bad_args(ctx);
        pt_ctx_destroy(ctx);
    }
    fused_epilogue_bits();
    return pt_test_finish("test_int8");
}
