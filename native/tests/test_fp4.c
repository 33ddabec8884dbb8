/* FP4: levels, quantize/dequantize round trips, the weight-only and W4A4 matmul against a
 * double-precision reference of the same quantized math (codes decoded with their scales in
 * double), the format/clipping search on data built for a known winner, and bad inputs.
 * Every kernel runs on AVX-512 (when present) and on the portable path, 1 and 2 threads. The
 * weight-only GEMV (M = 1, not NF4) on AVX512_VNNI quantizes x to 16-bit integers with a
 * power-of-two scale per 8-element block, on AVX512_BF16 (VNNI disabled) it rounds x to bf16
 * (W4A16); each reference does the same to x (written here independently), and the VNNI GEMV is
 * also held to the bound that x's quantization step gives against the unquantized x. Configs
 * with VNNI, then VNNI and BF16 disabled keep the bf16 and the f32-activation kernels tested. */
#include "pt_test.h"

#include <string.h>

typedef struct { const char* name; int32_t threads; uint32_t disable; } config;
static const config CONFIGS[] = {
    {"avx512, 2 threads", 2, 0},
    {"portable, 2 threads", 2, PT_CPU_AVX512F | PT_CPU_AVX2},
    {"avx512, 1 thread", 1, 0},
    {"avx512 VNNI GEMV with vpshufb (AVX512_FP16 off: no vpermb), 2 threads", 2, PT_CPU_AVX512_FP16},
    {"avx512 bf16 GEMV (AVX512_VNNI off), 2 threads", 2, PT_CPU_AVX512_VNNI},
    {"avx512 f32 activations (AVX512_VNNI and AVX512_BF16 off), 2 threads", 2, PT_CPU_AVX512_VNNI | PT_CPU_AVX512_BF16},
};
static uint32_t g_caps; /* the caps the library dispatches on */
#define NCONFIGS (int)(sizeof CONFIGS / sizeof CONFIGS[0])
static const char* FMT[4] = {"E2M1", "E1M2", "E3M0", "NF4"};

static float bf16r(float f) { /* round to bf16 and back (RNE) */
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}
static float from_bf16(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static uint16_t to_bf16(float f) { float r = bf16r(f); uint32_t u; memcpy(&u, &r, 4); return (uint16_t)(u >> 16); }

/* The VNNI GEMV's x: per block of 8 elements (8L..8L+7), the power of two 2^e with
 * max|x| * 2^-e in [16320, 32639] (the largest that keeps xq = 256 xh + xl with signed bytes
 * xh, xl), xq = rint(x * 2^-e); out[k] = xq * 2^e, step[k] = 2^e. */
static void vnni_x(const float* x, int64_t k, float* out, double* step) {
    for (int64_t b = 0; b < k; b += 8) {
        const int64_t e8 = b + 8 < k ? b + 8 : k;
        double amax = 0;
        for (int64_t j = b; j < e8; j++) amax = fabs(x[j]) > amax ? fabs(x[j]) : amax;
        int ex = 0;
        (void)frexp(amax, &ex); /* amax = f * 2^ex, f in [0.5, 1) */
        int e = ex - 15;        /* amax * 2^-e in [16384, 32768) */
        if (ldexp(amax, -e) > 32639.0) e++;
        for (int64_t j = b; j < e8; j++) {
            const double q = amax > 0 ? rint(ldexp((double)x[j], -e)) : 0.0;
            EXPECT(fabs(q) <= 32639.0, "vnni_x: |xq| = %g > 32639 at %lld", q, (long long)j);
            out[j] = (float)ldexp(q, e);
            step[j] = amax > 0 ? ldexp(1.0, e) : 0.0;
        }
    }
}

static pt_tensor t2(void* d, int32_t dt, int64_t a, int64_t b) {
    int64_t s[2] = {a, b};
    pt_tensor t = pt_test_tensor(d, dt, 2, s);
    if (dt == PT_U4) { t.stride[1] = 1; t.stride[0] = b / 2; } /* packed: row stride in bytes */
    return t;
}
static pt_tensor t1(void* d, int32_t dt, int64_t a) {
    int64_t s[1] = {a};
    return pt_test_tensor(d, dt, 1, s);
}
static int code_at(const uint8_t* c, int64_t ldw, int64_t n, int64_t k) {
    uint8_t b = c[n * ldw + k / 2];
    return (k & 1) ? b >> 4 : b & 15;
}
static double scale_at(const void* s, int bf, int64_t ng, int64_t n, int64_t g) {
    return bf ? (double)from_bf16(((const uint16_t*)s)[n * ng + g]) : (double)((const float*)s)[n * ng + g];
}

static void levels(void) {
    float lv[16];
    static const float e2m1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
    static const float e1m2[8] = {0, 0.25f, 0.5f, 0.75f, 1, 1.25f, 1.5f, 1.75f};
    static const float e3m0[8] = {0, 0.25f, 0.5f, 1, 2, 4, 8, 16};
    const float* want[3] = {e2m1, e1m2, e3m0};
    for (int f = 0; f < 3; f++) {
        EXPECT_OK(pt_fp4_levels(f, lv));
        for (int c = 0; c < 8; c++) {
            EXPECT(lv[c] == want[f][c] && lv[c + 8] == -want[f][c], "%s code %d: %g / %g", FMT[f], c, lv[c], lv[c + 8]);
        }
    }
    EXPECT_OK(pt_fp4_levels(PT_FP4_NF4, lv));
    EXPECT(lv[0] == -1.0f && lv[7] == 0.0f && lv[15] == 1.0f && fabsf(lv[8] - 0.0795803f) < 1e-6f, "NF4 levels");
    for (int c = 1; c < 16; c++) EXPECT(lv[c] > lv[c - 1], "NF4 levels increase at %d", c);
    EXPECT(pt_fp4_levels(4, lv) == PT_ERR_INVALID_ARGUMENT, "format 4 refused");
}

/* Quantizes random w and checks scales, nearest-level codes and the error bound. */
static void round_trip(pt_ctx* ctx, int fmt, int group, int scale_bf, float clip, int64_t n, int64_t k) {
    int64_t g = group ? group : k, ng = k / g;
    float* w = malloc(sizeof(float) * n * k);
    uint8_t* codes = malloc(n * k / 2);
    void* sc = malloc(4 * n * ng);
    float* deq = malloc(sizeof(float) * n * k);
    pt_test_fill(w, n * k, -2.0, 2.0);
    for (int64_t i = 0; i < n * k; i += 17) w[i] *= 8.0f; /* outliers */
    pt_test_poison(codes, n * k / 2);
    pt_test_poison(sc, 4 * n * ng);
    pt_test_poison(deq, 4 * n * k);
    pt_tensor tw = t2(w, PT_F32, n, k), tc = t2(codes, PT_U4, n, k), ts = t2(sc, scale_bf ? PT_BF16 : PT_F32, n, ng);
    pt_tensor td = t2(deq, PT_F32, n, k);
    pt_fp4_quant_params qp = {fmt, group, clip, 0, NULL};
    EXPECT_OK(pt_fp4_quantize(ctx, &tw, &qp, &tc, &ts));
    EXPECT_OK(pt_fp4_dequantize(ctx, &tc, &ts, fmt, group, &td));
    float lv[16];
    pt_fp4_levels(fmt, lv);
    double maxl = 0, gap = 0;
    float sorted[16];
    memcpy(sorted, lv, sizeof sorted);
    for (int i = 0; i < 16; i++) for (int j = i + 1; j < 16; j++) if (sorted[j] < sorted[i]) { float t = sorted[i]; sorted[i] = sorted[j]; sorted[j] = t; }
    for (int i = 0; i < 16; i++) maxl = fabs(lv[i]) > maxl ? fabs(lv[i]) : maxl;
    for (int i = 1; i < 16; i++) gap = sorted[i] - sorted[i - 1] > gap ? sorted[i] - sorted[i - 1] : gap;
    int bad_scale = 0, bad_code = 0, bad_err = 0, bad_deq = 0;
    for (int64_t r = 0; r < n; r++)
        for (int64_t gi = 0; gi < ng; gi++) {
            double amax = 0;
            for (int64_t j = gi * g; j < (gi + 1) * g; j++) amax = fabs(w[r * k + j]) > amax ? fabs(w[r * k + j]) : amax;
            double s = scale_at(sc, scale_bf, ng, r, gi);
            double want = clip * amax / maxl;
            if (fabs(s - want) > (scale_bf ? 4e-3 : 1e-6) * want) bad_scale++;
            for (int64_t j = gi * g; j < (gi + 1) * g; j++) {
                int c = code_at(codes, k / 2, r, j);
                double v = w[r * k + j] / s, d = fabs(v - lv[c]);
                for (int c2 = 0; c2 < 16; c2++)
                    if (fabs(v - lv[c2]) < d - 1e-5 * (1 + fabs(v))) bad_code++;
                double deq_want = (double)lv[c] * s;
                if (fabs(deq[r * k + j] - deq_want) > 1e-6 * fabs(deq_want) + 1e-30) bad_deq++;
                /* |w - deq| <= half the widest gap (inside the range) or the clipped excess */
                double clipped = fabs(w[r * k + j]) > maxl * s ? fabs(w[r * k + j]) - maxl * s : 0;
                if (fabs(w[r * k + j] - deq_want) > (gap / 2) * s * (1 + 1e-5) + clipped + 1e-6 * s) bad_err++;
            }
        }
    EXPECT(!bad_scale && !bad_code && !bad_err && !bad_deq, "%s group %d %s scales clip %g [%lld, %lld]: %d bad scales, %d codes not nearest, %d errors out of bound, %d bad dequant",
           FMT[fmt], group, scale_bf ? "bf16" : "f32", clip, (long long)n, (long long)k, bad_scale, bad_code, bad_err, bad_deq);
    free(w); free(codes); free(sc); free(deq);
}

typedef struct { int64_t n, k; int group; } shape;
static const shape SHAPES[] = {{33, 64, 32}, {65, 192, 64}, {7, 256, 128}, {17, 70, 0}, {130, 770, 0}, {1, 2, 0}, {9, 384, 32},
                               {63, 480, 32}, {127, 896, 64}, {5, 1152, 128}, {3, 254, 0}, {5, 130, 0}, {3, 640, 128},
                               {203, 768, 64}, {37, 1280, 64}, {8, 128, 32}, {41, 1024, 32}, {66, 96, 32}};
/* the M = 1 GEMV: K <= 1024 reads two rows of each of 4 stretches per pass, else one (uneven ends,
 * leftover rows); SHAPES run on one thread (too little work), these on two: M = 1 only; odd N
 * (each thread's rows end in partial passes), K with a partial 128-chunk (992 = 7 * 128 + 96 with
 * groups, 770 per channel), G = 128; the prefetch distance (pt_fp4_problem.pf_bytes, rows ahead
 * from the row length) and the prologue over stretches shorter than it (13 x 768, 11 x 258 per
 * channel: rows of 129 bytes, 12 rows ahead) and at K > 1024 (45 x 1536: 2 rows ahead); the VNNI
 * GEMV's runs of passes (87 x 768 per channel: 8 passes prefetching, 2 not, then a pass of 7 rows) */
static const shape GEMV2[] = {{701, 768, 64}, {1029, 512, 32}, {131, 4096, 128}, {1001, 992, 32}, {2047, 770, 0}, {1537, 768, 128},
                              {13, 768, 32}, {11, 258, 0}, {45, 1536, 64}, {87, 768, 0}};
#define NSHAPES (int)(sizeof SHAPES / sizeof SHAPES[0])

/* One matmul case: weight-only (w4a4 = 0) or W4A4; compares with the double reference. */
static void matmul_case(pt_ctx* ctx, const config* cf, int fmt, shape sh, int64_t m, int x_bf, int y_bf, int s_bf, int with_bias,
                        int w4a4, int act_fmt, int planted) {
    const char* cfg = cf->name;
    const uint32_t need = PT_CPU_AVX512F | PT_CPU_AVX512_BF16, needv = PT_CPU_AVX512F | PT_CPU_AVX512_VNNI;
    const int gemv = m == 1 && !w4a4 && fmt != PT_FP4_NF4 && sh.k > 0;
    /* the VNNI GEMV: x in 16-bit fixed point per 8-element block; else the W4A16 GEMV: x rounded to bf16 (RNE) */
    const int vnni = (g_caps & ~cf->disable & needv) == needv && gemv;
    const int w4a16 = !vnni && (g_caps & ~cf->disable & need) == need && gemv;
    const int64_t n = sh.n, k = sh.k, g = sh.group ? sh.group : k, ng = k / g;
    float* w = malloc(sizeof(float) * n * k);
    float* x = malloc(sizeof(float) * m * k);
    uint16_t* xb = malloc(2 * m * k);
    float* bias = malloc(sizeof(float) * n);
    uint8_t* codes = malloc(n * k / 2);
    void* sc = malloc(4 * n * ng);
    void* y = malloc(4 * m * n);
    float* yf = malloc(sizeof(float) * m * n);
    double* ref = malloc(sizeof(double) * m * n);
    double* sumabs = malloc(sizeof(double) * m * n);
    int32_t* shift = malloc(sizeof(int32_t) * k);
    pt_test_fill(w, n * k, -1.0, 1.0);
    pt_test_fill(x, m * k, -1.0, 1.0);
    pt_test_fill(bias, n, -1.0, 1.0);
    if (planted) /* large-magnitude entries, an all-zero block, a block of tiny values */
        for (int64_t r = 0; r < m; r++) {
            for (int64_t j = 5; j < k; j += 37) x[r * k + j] *= 1000.0f;
            for (int64_t j = 8; j < 16 && j < k; j++) x[r * k + j] = 0.0f;
            for (int64_t j = 16; j < 24 && j < k; j++) x[r * k + j] *= 1e-30f;
        }
    for (int64_t j = 0; j < k; j++) shift[j] = 0;
    if (w4a4) /* planted outlier channels, absorbed by a power of two */
        for (int64_t j = 3; j < k; j += 11) {
            shift[j] = (int32_t)(j % 3) + 1;
            for (int64_t r = 0; r < m; r++) x[r * k + j] *= (float)(1 << shift[j]);
        }
    for (int64_t i = 0; i < m * k; i++) { xb[i] = to_bf16(x[i]); if (x_bf) x[i] = from_bf16(xb[i]); }
    pt_tensor tw = t2(w, PT_F32, n, k), tc = t2(codes, PT_U4, n, k), ts = t2(sc, s_bf ? PT_BF16 : PT_F32, n, ng);
    pt_tensor tsh = t1(shift, PT_I32, k);
    pt_fp4_quant_params qp = {fmt, sh.group, 1.0f, 0, w4a4 ? &tsh : NULL};
    EXPECT_OK(pt_fp4_quantize(ctx, &tw, &qp, &tc, &ts));
    float lv[16], la[16];
    pt_fp4_levels(fmt, lv);
    pt_fp4_levels(act_fmt, la);
    /* the activations the kernel multiplies (W4A4: quantized per token, mirrored in float) */
    float* xq = malloc(sizeof(float) * m * k);
    double* step = malloc(sizeof(double) * k);
    double* qbound = malloc(sizeof(double) * n);
    double* ref_x = malloc(sizeof(double) * n);
    if (vnni) vnni_x(x, k, xq, step);
    for (int64_t r = 0; r < m && !vnni; r++) {
        if (!w4a4) {
            for (int64_t j = 0; j < k; j++) xq[r * k + j] = w4a16 ? bf16r(x[r * k + j]) : x[r * k + j];
            continue;
        }
        float amax = 0, maxl = 0;
        for (int i = 0; i < 16; i++) maxl = fabsf(la[i]) > maxl ? fabsf(la[i]) : maxl;
        for (int64_t j = 0; j < k; j++) { float v = ldexpf(x[r * k + j], -shift[j]); xq[r * k + j] = v; amax = fabsf(v) > amax ? fabsf(v) : amax; }
        float a = amax * (1.0f / maxl);
        for (int64_t j = 0; j < k; j++) {
            float v = xq[r * k + j] / a;
            int best = 0;
            for (int c = 1; c < 16; c++) {
                float d = fabsf(v - la[c]), bd = fabsf(v - la[best]);
                if (d < bd || (d == bd && fabsf(la[c]) < fabsf(la[best]))) best = c;
            }
            xq[r * k + j] = a > 0 ? a * la[best] : 0.0f;
        }
    }
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < n; c++) {
            double s = with_bias ? bias[c] : 0.0, sa = fabs(s);
            for (int64_t j = 0; j < k; j++) {
                double t = (double)xq[r * k + j] * ((double)lv[code_at(codes, k / 2, c, j)] * scale_at(sc, s_bf, ng, c, j / g));
                s += t; sa += fabs(t);
            }
            ref[r * n + c] = s; sumabs[r * n + c] = sa;
            if (vnni) { /* against the unquantized x: |x - xq| <= step / 2 per element */
                double sx = with_bias ? bias[c] : 0.0, qb = 0.0;
                for (int64_t j = 0; j < k; j++) {
                    const double wv = (double)lv[code_at(codes, k / 2, c, j)] * scale_at(sc, s_bf, ng, c, j / g);
                    sx += (double)x[j] * wv;
                    qb += fabs(wv) * step[j] / 2;
                }
                ref_x[c] = sx; qbound[c] = qb;
            }
        }
    pt_test_poison(y, 4 * m * n);
    pt_tensor tx = t2(x_bf ? (void*)xb : (void*)x, x_bf ? PT_BF16 : PT_F32, m, k), ty = t2(y, y_bf ? PT_BF16 : PT_F32, m, n);
    pt_tensor tb = t1(bias, PT_F32, n);
    pt_fp4_matmul_params mp = {fmt, sh.group, w4a4, act_fmt, 1.0f, 0, w4a4 ? &tsh : NULL};
    EXPECT_OK(pt_fp4_matmul(ctx, &tx, &tc, &ts, with_bias ? &tb : NULL, &ty, &mp));
    double worst = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < m * n; i++) {
        yf[i] = y_bf ? from_bf16(((uint16_t*)y)[i]) : ((float*)y)[i];
        /* W4A16: the bf16 x level products are exact in f32; each f32 lane adds two of them per
         * vdpbf16ps (<= 2 roundings), K/32 times, then a group-scale FMA per 128-chunk and a
         * 16-lane tree: at most (2 K/32 + K/128 + 8) roundings of 2^-24 relative to sum|terms| */
        /* VNNI: the integer lane sums are exact; per 128-chunk f32(t) and the FMA round, then the
         * 16-lane tree, the per-channel scale and the bias: (2 K/128 + 8) roundings */
        double tol = (w4a16 ? (2.0 * ((k + 31) / 32) + (k + 127) / 128 + 8) * 0x1p-24
                      : vnni ? (2.0 * ((k + 127) / 128) + 8) * 0x1p-24
                             : 2e-6) * sumabs[i] + 1e-6 + (y_bf ? 4e-3 * fabs(ref[i]) : 0);
        double e = fabs(yf[i] - ref[i]) / tol;
        if (!(e <= worst)) { worst = isnan(e) ? INFINITY : e; wi = i; }
    }
    if (vnni)
        for (int64_t i = 0; i < n; i++) {
            const double tol = qbound[i] + (2.0 * ((k + 127) / 128) + 8) * 0x1p-24 * sumabs[i] + 1e-6 + (y_bf ? 4e-3 * fabs(ref_x[i]) : 0);
            EXPECT(fabs(yf[i] - ref_x[i]) <= tol, "[%s, VNNI] %s N=%lld K=%lld group %d planted %d: y[%lld] = %.9g, exact-x reference %.9g, "
                   "bound from x's quantization step %.3g", cfg, FMT[fmt], (long long)n, (long long)k, sh.group, planted, (long long)i, yf[i],
                   ref_x[i], tol);
        }
    EXPECT(worst <= 1.0, "[%s%s] %s%s%s M=%lld N=%lld K=%lld group %d x %s y %s scales %s bias %d: y[%lld] = %g, want %g (err %.2f tol)",
           cfg, vnni ? ", VNNI" : w4a16 ? ", W4A16" : "", w4a4 ? "W4A4 act " : "", w4a4 ? FMT[act_fmt] : "", FMT[fmt], (long long)m, (long long)n, (long long)k, sh.group,
           x_bf ? "bf16" : "f32", y_bf ? "bf16" : "f32", s_bf ? "bf16" : "f32", with_bias, (long long)wi, yf[wi], ref[wi], worst);
    free(w); free(x); free(xb); free(bias); free(codes); free(sc); free(y); free(yf); free(ref); free(sumabs); free(shift); free(xq);
    free(step); free(qbound); free(ref_x);
}

static void run_config(const config* c) {
    if (pt_test_same_dispatch(c->name, c->disable, c->threads, 0)) return;
    pt_ctx_params cp = {c->threads, c->disable, 0, 0};
    pt_ctx* ctx = NULL;
    EXPECT_OK(pt_ctx_create(&cp, &ctx));
    if (!ctx) return;
    static const int64_t MS[3] = {1, 7, 65};
    /* AVX512_FP16 off changes only the VNNI GEMV's level lookup (vpshufb for vpermb): M = 1 only */
    const int gemv_only = c->disable == PT_CPU_AVX512_FP16, nm = gemv_only ? 1 : 3;
    int variant = 0;
    for (int f = 0; f < 4; f++)
        for (int s = 0; s < NSHAPES; s++)
            for (int mi = 0; mi < nm; mi++, variant++) {
                int xb = variant % 3 == 1, yb = variant % 5 == 2, sb = variant % 2, bias = variant % 4 != 3;
                matmul_case(ctx, c, f, SHAPES[s], MS[mi], xb, yb, sb, bias, 0, 0, variant % 7 == 3 || (mi == 0 && s % 3 == 1));
            }
    for (int s = 0; s < (int)(sizeof GEMV2 / sizeof GEMV2[0]); s++) /* one format each (E2M1, E1M2, E3M0) */
        matmul_case(ctx, c, s % 3, GEMV2[s], 1, 0, s == 1, s % 2, s != 2, 0, 0, 0);
    /* a NaN or an infinity in x reaches y on every path (the VNNI GEMV hands such an x to another kernel) */
    {
        const int64_t n = 5, k = 130;
        float w[5 * 130], x[130], y[5], sc[5];
        uint8_t codes[5 * 65];
        pt_test_fill(w, n * k, -1, 1);
        pt_tensor tw = t2(w, PT_F32, n, k), tc = t2(codes, PT_U4, n, k), ts = t2(sc, PT_F32, n, 1), tx = t2(x, PT_F32, 1, k), ty = t2(y, PT_F32, 1, n);
        pt_fp4_quant_params qp = {PT_FP4_E2M1, 0, 1.0f, 0, NULL};
        EXPECT_OK(pt_fp4_quantize(ctx, &tw, &qp, &tc, &ts));
        pt_fp4_matmul_params mp = {PT_FP4_E2M1, 0, 0, 0, 0.0f, 0, NULL};
        for (int kind = 0; kind < 2; kind++) {
            pt_test_fill(x, k, -1, 1);
            x[129] = kind ? INFINITY : NAN;
            memset(y, 0, sizeof y);
            EXPECT_OK(pt_fp4_matmul(ctx, &tx, &tc, &ts, NULL, &ty, &mp));
            for (int64_t i = 0; i < n; i++)
                EXPECT(kind ? !isfinite(y[i]) || code_at(codes, k / 2, i, 129) == 0 || code_at(codes, k / 2, i, 129) == 8 : isnan(y[i]),
                       "[%s] x[129] = %s: y[%lld] = %g", c->name, kind ? "inf" : "NaN", (long long)i, y[i]);
        }
    }
    /* W4A4 (activations E2M1 and the others), a few shapes */
    for (int f = 0; f < (gemv_only ? 0 : 3); f++)
        for (int s = 0; s < NSHAPES; s += 2)
            for (int mi = 0; mi < 3; mi++) matmul_case(ctx, c, f, SHAPES[s], MS[mi], 0, 0, 0, 1, 1, (f + s) % 3, 0);
    pt_ctx_destroy(ctx);
}

/* Weights built from one format's grid (every row holding the format's largest level) are
 * represented exactly by that format at clip 1: the search must pick it. */
static void search(pt_ctx* ctx) {
    const int64_t n = 24, k = 128, m = 16;
    float* w = malloc(sizeof(float) * n * k);
    float* x = malloc(sizeof(float) * m * k);
    pt_test_fill(x, m * k, -1.0, 1.0);
    const float clips[3] = {0.8f, 1.0f, 0.9f};
    for (int target = 0; target < 3; target++) {
        float lv[16];
        pt_fp4_levels(target, lv);
        for (int64_t r = 0; r < n; r++) {
            float s = ldexpf(1.0f, (int)(r % 5) - 2);
            for (int64_t j = 0; j < k; j++) {
                int c = (int)(pt_test_uniform(0, 16));
                if (c > 15) c = 15;
                w[r * k + j] = lv[c] * s;
            }
            w[r * k + r % k] = lv[7] * s; /* the largest level (code 7 is +max for the FP splits) */
        }
        pt_tensor tw = t2(w, PT_F32, n, k), tx = t2(x, PT_F32, m, k);
        pt_fp4_search_params sp = {0, 0, 3, 0, clips};
        pt_fp4_search_result res;
        memset(&res, 0, sizeof res);
        EXPECT_OK(pt_fp4_search(ctx, &tw, &tx, &sp, &res));
        EXPECT(res.format == target && res.clip == 1.0f && res.mse <= 1e-10 * res.ref_power,
               "search on %s-grid weights picked %s clip %g (mse %g, power %g)", FMT[target], res.format >= 0 && res.format < 4 ? FMT[res.format] : "?",
               res.clip, res.mse, res.ref_power);
    }
    /* Heavy-tailed weights, several formats and clips: the search must return the argmin of
     * the output MSE computed here independently (dequantized weight, double products). */
    for (int64_t i = 0; i < n * k; i++) {
        double u1 = pt_test_uniform(1e-9, 1), u2 = pt_test_uniform(0, 1);
        double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
        w[i] = (float)(z * z * z);
    }
    {
        const int64_t group = 32, ng = k / group;
        pt_tensor tw = t2(w, PT_F32, n, k), tx = t2(x, PT_F32, m, k);
        const float cl[4] = {1.0f, 0.8f, 0.6f, 0.4f};
        pt_fp4_search_params sp = {(int32_t)group, 0xf, 4, 0, cl};
        pt_fp4_search_result res;
        EXPECT_OK(pt_fp4_search(ctx, &tw, &tx, &sp, &res));
        uint8_t* codes = malloc(n * k / 2);
        float* sc = malloc(sizeof(float) * n * ng);
        float* deq = malloc(sizeof(float) * n * k);
        double best = INFINITY;
        int bf = -1;
        float bc = 0;
        for (int f = 0; f < 4; f++)
            for (int c = 0; c < 4; c++) {
                pt_tensor tc = t2(codes, PT_U4, n, k), ts = t2(sc, PT_F32, n, ng), td = t2(deq, PT_F32, n, k);
                pt_fp4_quant_params qp = {f, (int32_t)group, cl[c], 0, NULL};
                EXPECT_OK(pt_fp4_quantize(ctx, &tw, &qp, &tc, &ts));
                EXPECT_OK(pt_fp4_dequantize(ctx, &tc, &ts, f, (int32_t)group, &td));
                double e = 0;
                for (int64_t r = 0; r < m; r++)
                    for (int64_t o = 0; o < n; o++) {
                        double a = 0, b = 0;
                        for (int64_t j = 0; j < k; j++) { a += (double)x[r * k + j] * w[o * k + j]; b += (double)x[r * k + j] * deq[o * k + j]; }
                        e += (a - b) * (a - b);
                    }
                e /= (double)(m * n);
                if (e < best * (1 - 1e-4)) { best = e; bf = f; bc = cl[c]; }
            }
        EXPECT(res.format == bf && res.clip == bc && fabs(res.mse - best) <= 1e-3 * best,
               "heavy-tailed weights: search chose %d clip %g mse %g; independent argmin %d clip %g mse %g", res.format, res.clip, res.mse,
               bf, bc, best);
        free(codes); free(sc); free(deq);
    }
    free(w); free(x);
}

static void expect_fail(pt_status got, pt_status want, const char* needle, const char* what) {
    EXPECT(got == want && strstr(pt_last_error(), needle) != NULL, "%s: status %d (want %d), message \"%s\" lacks \"%s\"", what, (int)got,
           (int)want, pt_last_error(), needle);
}

static void bad_inputs(pt_ctx* ctx) {
    float w[8 * 64], x[3 * 64], y[3 * 8], sc[8 * 2];
    uint8_t codes[8 * 32];
    pt_test_fill(w, 8 * 64, -1, 1);
    pt_test_fill(x, 3 * 64, -1, 1);
    pt_tensor tw = t2(w, PT_F32, 8, 64), tc = t2(codes, PT_U4, 8, 64), ts = t2(sc, PT_F32, 8, 2);
    pt_tensor tx = t2(x, PT_F32, 3, 64), ty = t2(y, PT_F32, 3, 8);
    pt_fp4_quant_params qp = {PT_FP4_E2M1, 32, 1.0f, 0, NULL};
    EXPECT_OK(pt_fp4_quantize(ctx, &tw, &qp, &tc, &ts));
    pt_fp4_matmul_params mp = {PT_FP4_E2M1, 32, 0, 0, 0, 0, NULL};
    EXPECT_OK(pt_fp4_matmul(ctx, &tx, &tc, &ts, NULL, &ty, &mp));
    /* K = 48 with group 32 */
    pt_tensor tc48 = t2(codes, PT_U4, 8, 48), tw48 = t2(w, PT_F32, 8, 48);
    expect_fail(pt_fp4_quantize(ctx, &tw48, &qp, &tc48, &ts), PT_ERR_SHAPE, "not a multiple of the group size 32", "K 48 group 32");
    /* odd K */
    pt_tensor tc63 = t2(codes, PT_U4, 8, 63);
    mp.group = 0;
    pt_tensor ts1 = t2(sc, PT_F32, 8, 1);
    expect_fail(pt_fp4_matmul(ctx, &tx, &tc63, &ts1, NULL, &ty, &mp), PT_ERR_SHAPE, "must be even", "odd K");
    mp.group = 32;
    /* scales shape */
    pt_tensor ts3 = t2(sc, PT_F32, 8, 3);
    expect_fail(pt_fp4_matmul(ctx, &tx, &tc, &ts3, NULL, &ty, &mp), PT_ERR_SHAPE, "expected [8, 2]", "scales shape");
    /* dtypes */
    pt_tensor tcu8 = t2(codes, PT_U8, 8, 32);
    expect_fail(pt_fp4_matmul(ctx, &tx, &tcu8, &ts, NULL, &ty, &mp), PT_ERR_DTYPE, "codes: dtype u8", "codes u8");
    pt_tensor tsi = t2(sc, PT_I32, 8, 2);
    expect_fail(pt_fp4_matmul(ctx, &tx, &tc, &tsi, NULL, &ty, &mp), PT_ERR_DTYPE, "scales: dtype i32", "scales i32");
    pt_tensor txi = t2(x, PT_I8, 3, 64);
    expect_fail(pt_fp4_matmul(ctx, &txi, &tc, &ts, NULL, &ty, &mp), PT_ERR_DTYPE, "x: dtype i8", "x i8");
    /* shapes of x / y / bias */
    pt_tensor tx2 = t2(x, PT_F32, 3, 62);
    expect_fail(pt_fp4_matmul(ctx, &tx2, &tc, &ts, NULL, &ty, &mp), PT_ERR_SHAPE, "K = 64", "x K");
    pt_tensor ty2 = t2(y, PT_F32, 3, 7);
    expect_fail(pt_fp4_matmul(ctx, &tx, &tc, &ts, NULL, &ty2, &mp), PT_ERR_SHAPE, "[M, N] = [3, 8]", "y shape");
    pt_tensor tb = t1(y, PT_F32, 9);
    expect_fail(pt_fp4_matmul(ctx, &tx, &tc, &ts, &tb, &ty, &mp), PT_ERR_SHAPE, "bias must be f32[8]", "bias");
    /* parameters */
    mp.group = 48;
    expect_fail(pt_fp4_matmul(ctx, &tx, &tc, &ts, NULL, &ty, &mp), PT_ERR_INVALID_ARGUMENT, "group 48", "group 48");
    mp.group = 32; mp.format = 9;
    expect_fail(pt_fp4_matmul(ctx, &tx, &tc, &ts, NULL, &ty, &mp), PT_ERR_INVALID_ARGUMENT, "unknown format 9", "format 9");
    mp.format = 0;
    expect_fail(pt_fp4_matmul(ctx, &tx, &tc, &ts, NULL, &ty, NULL), PT_ERR_INVALID_ARGUMENT, "params is NULL", "NULL params");
    qp.clip = 1.5f;
    expect_fail(pt_fp4_quantize(ctx, &tw, &qp, &tc, &ts), PT_ERR_INVALID_ARGUMENT, "clip 1.5", "clip 1.5");
    qp.clip = 1.0f;
    int32_t sh[64] = {0};
    sh[5] = 100;
    pt_tensor tsh = t1(sh, PT_I32, 64);
    qp.act_shift = &tsh;
    expect_fail(pt_fp4_quantize(ctx, &tw, &qp, &tc, &ts), PT_ERR_INVALID_ARGUMENT, "act_shift[5] = 100", "shift 100");
    pt_tensor tsh2 = t1(sh, PT_I32, 63);
    mp.w4a4 = 1; mp.act_shift = &tsh2;
    expect_fail(pt_fp4_matmul(ctx, &tx, &tc, &ts, NULL, &ty, &mp), PT_ERR_SHAPE, "act_shift must be i32[64]", "shift shape");
}

int main(void) {
    pt_test_seed(5);
    pt_build_info bi;
    EXPECT_OK(pt_build_info_get(&bi));
    g_caps = bi.used_caps;
    levels();
    pt_ctx* ctx = NULL;
    pt_ctx_params cp = {2, 0, 1, 0};
    EXPECT_OK(pt_ctx_create(&cp, &ctx));
    for (int f = 0; f < 4; f++)
        for (int gi = 0; gi < 4; gi++) {
            static const int G[4] = {0, 32, 64, 128};
            round_trip(ctx, f, G[gi], gi & 1, 1.0f, 13, 256);
            round_trip(ctx, f, G[gi], (gi + 1) & 1, 0.7f, 5, 128);
        }
    round_trip(ctx, PT_FP4_E2M1, 0, 0, 1.0f, 3, 70);
    for (int i = 0; i < NCONFIGS; i++) run_config(&CONFIGS[i]);
    search(ctx);
    bad_inputs(ctx);
    pt_ctx_destroy(ctx);
    return pt_test_finish("test_fp4");
}
