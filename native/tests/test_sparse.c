/* Block-sparse weights (issue 5): pt_bsr_block_norms, pt_bsr_from_dense (per-layer sparsity,
 * threshold and mask selection), pt_bsr_to_dense and pt_spmm_bsr against a double-precision
 * reference written plainly here: the block norms, the set of kept blocks (exactly the largest
 * norms), the stored values (f32, bf16 rne, per-channel int8 of the kept elements), and
 * y = act(x . W + bias) on the densified pruned weight (int8: the same quantized math with the
 * exact integer sums). Odd sizes, every block shape and dtype, both weight orientations,
 * f32/bf16 activations and outputs, epilogues, NaN-poisoned outputs, the AMX, AVX-512/VNNI and
 * portable paths, pt_spmm_bsr_s8 (already quantized rows) and bad arguments. */
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
static double act_ref(double v, int act) {
    switch (act) {
    case PT_ACT_RELU: return v > 0 ? v : 0;
    case PT_ACT_GELU_ERF: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    case PT_ACT_GELU_TANH: return 0.5 * v * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
    case PT_ACT_SILU: return v / (1.0 + exp(-v));
    default: return v;
    }
}
/* round half to even of an f32 value (what the library's f32 trick does) */
static float rne_f(float v) { return (float)nearbyint((double)v); }

typedef struct { const char* name; uint32_t disable; int threads; } config;
static const config CONFIGS[] = {
    {"default (AVX-512 / VNNI where present)", 0, 2},
    {"portable", PT_CPU_AVX512F | PT_CPU_AVX512_VNNI | PT_CPU_AVX2 | PT_CPU_AMX_INT8 | PT_CPU_AMX_BF16, 2},
    {"default, 1 thread", 0, 1},
};

/* when set, run_case keeps exactly these blocks (u8 [KB][NB], PT_BSR_MASK) instead of a sparsity */
static const uint8_t* case_mask;

/* w_logical(k, n) of a weight stored [K, N] or [N, K] */
static float wl(const float* w, int tb, int64_t k, int64_t n, int64_t K, int64_t N) { return tb ? w[n * K + k] : w[k * N + n]; }

static int run_case(pt_ctx* ctx, const char* cname, int64_t m, int64_t K, int64_t N, int bk, int bn, int dtype, double sparsity, int tb,
                    int xbf, int ybf, int bias_on, int act) {
    int fails0 = pt_test_failures;
    const int64_t KB = (K + bk - 1) / bk, NB = (N + bn - 1) / bn, total = KB * NB;
    float* w = malloc(sizeof(float) * (size_t)(K * N + 1));
    uint16_t* wb = malloc(2 * (size_t)(K * N + 1));
    float* x = malloc(sizeof(float) * (size_t)(m * K + 1));
    uint16_t* xb = malloc(2 * (size_t)(m * K + 1));
    float* bias = malloc(sizeof(float) * (size_t)N);
    float* y = malloc(4 * (size_t)(m * N + 1));
    float* yf = malloc(4 * (size_t)(m * N + 1));
    double* ref = malloc(sizeof(double) * (size_t)(m * N + 1));
    double* nrm = malloc(sizeof(double) * (size_t)(total + 1));
    float* gotn = malloc(sizeof(float) * (size_t)(total + 1));
    uint8_t* keep = calloc((size_t)(total + 1), 1);
    float* dense = malloc(sizeof(float) * (size_t)(K * N + 1));
    double* wref = calloc((size_t)(K * N + 1), sizeof(double)); /* logical [K][N] of the values the kernel uses */
    pt_test_fill(w, (size_t)(K * N), -0.5, 0.5);
    pt_test_fill(x, (size_t)(m * K), -1.0, 1.0);
    pt_test_fill(bias, (size_t)N, -1.0, 1.0);
    for (int64_t i = 0; i < K * N; i++) wb[i] = bf16(w[i]);
    if (dtype == PT_BF16 || 1) { /* the test's weight is the bf16-exact one when w is passed as bf16 */ }
    const int wbf = (K * N) % 2; /* pass w as bf16 in about half the cases */
    if (wbf)
        for (int64_t i = 0; i < K * N; i++) w[i] = from_bf16(wb[i]);
    for (int64_t i = 0; i < m * K; i++) {
        xb[i] = bf16(x[i]);
        if (xbf) x[i] = from_bf16(xb[i]);
    }
    int64_t wshape[2] = {tb ? N : K, tb ? K : N};
    pt_tensor tw = pt_test_tensor(wbf ? (void*)wb : (void*)w, wbf ? PT_BF16 : PT_F32, 2, wshape);

    /* 1. norms */
    for (int64_t kb = 0; kb < KB; kb++)
        for (int64_t nb = 0; nb < NB; nb++) {
            double s = 0;
            for (int64_t k = kb * bk; k < K && k < (kb + 1) * bk; k++)
                for (int64_t n = nb * bn; n < N && n < (nb + 1) * bn; n++) s += (double)wl(w, tb, k, n, K, N) * wl(w, tb, k, n, K, N);
            nrm[kb * NB + nb] = sqrt(s);
        }
    int64_t nshape[2] = {KB, NB};
    pt_tensor tn = pt_test_tensor(gotn, PT_F32, 2, nshape);
    pt_test_poison(gotn, sizeof(float) * (size_t)total);
    EXPECT_OK(pt_bsr_block_norms(ctx, &tw, tb, bk, bn, &tn));
    double nerr = 0;
    for (int64_t i = 0; i < total; i++) {
        double e = fabs(gotn[i] - nrm[i]) / (1e-30 + nrm[i]);
        if (!(e <= nerr)) nerr = e;
    }
    EXPECT(nerr < 1e-6, "norms rel err %g (K=%lld N=%lld %dx%d)", nerr, (long long)K, (long long)N, bk, bn);

    /* 2. expected kept set: the n_keep largest norms, ties to the smaller index (or the mask) */
    int64_t prune = (int64_t)floor(sparsity * (double)total + 0.5), nkeep = total - prune;
    if (case_mask) {
        nkeep = 0;
        for (int64_t i = 0; i < total; i++) nkeep += keep[i] = case_mask[i] != 0;
    } else {
        for (int64_t c = 0; c < nkeep; c++) {
            int64_t best = -1;
            for (int64_t i = 0; i < total; i++)
                if (!keep[i] && (best < 0 || nrm[i] > nrm[best])) best = i;
            if (best >= 0) keep[best] = 1;
        }
    }
    pt_bsr_params bp;
    memset(&bp, 0, sizeof bp);
    bp.block_k = bk;
    bp.block_n = bn;
    bp.dtype = dtype;
    bp.select = PT_BSR_SPARSITY;
    bp.trans_b = tb;
    bp.sparsity = sparsity;
    int64_t mshape[2] = {KB, NB};
    pt_tensor tmask = pt_test_tensor((void*)case_mask, PT_U8, 2, mshape);
    if (case_mask) {
        bp.select = PT_BSR_MASK;
        bp.mask = &tmask;
    }
    int64_t bytes = -1;
    EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bp, NULL, 0, &bytes));
    void* bsr = malloc((size_t)(bytes > 0 ? bytes : 64)); /* the kernels need no alignment */
    int64_t wrote = -1;
    EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bp, bsr, bytes, &wrote));
    EXPECT(wrote == bytes, "wrote %lld of %lld", (long long)wrote, (long long)bytes);
    pt_bsr_info info;
    EXPECT_OK(pt_bsr_info_get(bsr, bytes, &info));
    EXPECT(info.k == K && info.n == N && info.block_k == bk && info.block_n == bn && info.dtype == dtype && info.kept_blocks == nkeep &&
               info.total_blocks == total && info.bytes == bytes,
           "info k %lld n %lld kept %lld/%lld (want %lld/%lld)", (long long)info.k, (long long)info.n, (long long)info.kept_blocks,
           (long long)info.total_blocks, (long long)nkeep, (long long)total);

    /* 3. stored values: the kept elements as the dtype stores them */
    for (int64_t n = 0; n < N; n++) {
        float amax = 0;
        for (int64_t k = 0; k < K; k++)
            if (keep[(k / bk) * NB + n / bn]) amax = fmaxf(amax, fabsf(wl(w, tb, k, n, K, N)));
        float inv = amax > 0 ? 127.0f / amax : 0.0f;
        for (int64_t k = 0; k < K; k++) {
            if (!keep[(k / bk) * NB + n / bn]) continue;
            float v = wl(w, tb, k, n, K, N);
            double s;
            if (dtype == PT_F32) s = v;
            else if (dtype == PT_BF16) s = from_bf16(bf16(v));
            else {
                float q = rne_f(v * inv);
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                s = (double)q * (double)(amax / 127.0f); /* q, then the channel scale (exact product in double) */
            }
            wref[k * N + n] = s;
        }
    }
    int64_t dshape[2] = {K, N};
    pt_tensor td = pt_test_tensor(dense, PT_F32, 2, dshape);
    pt_test_poison(dense, sizeof(float) * (size_t)(K * N));
    EXPECT_OK(pt_bsr_to_dense(ctx, bsr, bytes, &td));
    double derr = pt_test_err(dense, wref, (size_t)(K * N), 1e-7, 1e-6);
    EXPECT(derr <= 1, "densified err %g (dtype %d)", derr, dtype);

    /* 4. SpMM reference */
    for (int64_t i = 0; i < m; i++) {
        const float* xr = x + i * K;
        if (dtype == PT_I8) {
            float amax = 0;
            for (int64_t k = 0; k < K; k++) amax = fmaxf(amax, fabsf(xr[k]));
            float inv = amax > 0 ? 127.0f / amax : 0.0f;
            float sx = amax / 127.0f;
            for (int64_t n = 0; n < N; n++) {
                /* integer sum of xq * q, q recovered from the reference weight */
                float wam = 0;
                for (int64_t k = 0; k < K; k++)
                    if (keep[(k / bk) * NB + n / bn]) wam = fmaxf(wam, fabsf(wl(w, tb, k, n, K, N)));
                float winv = wam > 0 ? 127.0f / wam : 0.0f;
                int64_t acc = 0;
                for (int64_t k = 0; k < K; k++) {
                    if (!keep[(k / bk) * NB + n / bn]) continue;
                    float q = rne_f(wl(w, tb, k, n, K, N) * winv);
                    q = q > 127 ? 127 : q < -127 ? -127 : q;
                    float xq = rne_f(xr[k] * inv);
                    xq = xq > 127 ? 127 : xq < -127 ? -127 : xq;
                    acc += (int64_t)q * (int64_t)xq;
                }
                double v = (double)acc * (double)sx * (double)(wam / 127.0f) + (bias_on ? bias[n] : 0.0);
                ref[i * N + n] = act_ref(v, act);
            }
        } else {
            for (int64_t n = 0; n < N; n++) {
                double s = bias_on ? bias[n] : 0.0;
                for (int64_t k = 0; k < K; k++) s += (double)xr[k] * wref[k * N + n];
                ref[i * N + n] = act_ref(s, act);
            }
        }
    }
    int64_t xs[2] = {m, K}, ys[2] = {m, N}, bs[1] = {N};
    pt_tensor tx = pt_test_tensor(xbf ? (void*)xb : (void*)x, xbf ? PT_BF16 : PT_F32, 2, xs);
    pt_tensor ty = pt_test_tensor(y, ybf ? PT_BF16 : PT_F32, 2, ys);
    pt_tensor tbias = pt_test_tensor(bias, PT_F32, 1, bs);
    pt_test_poison(y, 4 * (size_t)(m * N));
    EXPECT_OK(pt_spmm_bsr(ctx, &tx, bsr, bytes, bias_on ? &tbias : NULL, &ty, act));
    for (int64_t i = 0; i < m * N; i++) yf[i] = ybf ? from_bf16(((uint16_t*)y)[i]) : y[i];
    double rt = ybf ? 8e-3 : dtype == PT_I8 ? 2e-5 : 2e-5;
    double at = ybf ? 8e-3 : 2e-5 * sqrt((double)K + 1);
    double err = pt_test_err(yf, ref, (size_t)(m * N), at, rt);
    EXPECT(err <= 1, "[%s] spmm err %g: m=%lld K=%lld N=%lld block %dx%d dtype %d s=%.2f tb=%d xbf=%d ybf=%d bias=%d act=%d", cname, err,
           (long long)m, (long long)K, (long long)N, bk, bn, dtype, sparsity, tb, xbf, ybf, bias_on, act);

    /* 4b. int8: the same product from already quantized rows (pt_spmm_bsr_s8): xq and x_scale
     * as the reference quantizes x, the same expected y; a non-finite scale makes its row NaN */
    if (dtype == PT_I8) {
        int8_t* xq = malloc((size_t)(m * K + 1));
        float* xsc = malloc(sizeof(float) * (size_t)(m + 1));
        for (int64_t i = 0; i < m; i++) {
            float amax = 0;
            for (int64_t k = 0; k < K; k++) amax = fmaxf(amax, fabsf(x[i * K + k]));
            const float inv = amax > 0 ? 127.0f / amax : 0.0f;
            xsc[i] = amax / 127.0f;
            for (int64_t k = 0; k < K; k++) {
                float q = rne_f(x[i * K + k] * inv);
                xq[i * K + k] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
            }
        }
        int64_t ss[1] = {m};
        pt_tensor txq = pt_test_tensor(xq, PT_I8, 2, xs), tsc = pt_test_tensor(xsc, PT_F32, 1, ss);
        pt_test_poison(y, 4 * (size_t)(m * N));
        EXPECT_OK(pt_spmm_bsr_s8(ctx, &txq, &tsc, bsr, bytes, bias_on ? &tbias : NULL, &ty, act));
        for (int64_t i = 0; i < m * N; i++) yf[i] = ybf ? from_bf16(((uint16_t*)y)[i]) : y[i];
        double e8 = pt_test_err(yf, ref, (size_t)(m * N), at, rt);
        EXPECT(e8 <= 1, "[%s] spmm_s8 err %g: m=%lld K=%lld N=%lld block %dx%d s=%.2f", cname, e8, (long long)m, (long long)K, (long long)N, bk,
               bn, sparsity);
        /* the same rows ldx = K + 64 bytes apart, the gaps filled with 127s (the kernels must
         * take xq's row stride and stop at K) */
        {
            const int64_t ldx = K + 64;
            int8_t* xp = malloc((size_t)(m * ldx));
            memset(xp, 127, (size_t)(m * ldx));
            for (int64_t i = 0; i < m; i++) memcpy(xp + i * ldx, xq + i * K, (size_t)K);
            pt_tensor txp = pt_test_tensor(xp, PT_I8, 2, xs);
            txp.stride[0] = ldx;
            pt_test_poison(y, 4 * (size_t)(m * N));
            EXPECT_OK(pt_spmm_bsr_s8(ctx, &txp, &tsc, bsr, bytes, bias_on ? &tbias : NULL, &ty, act));
            for (int64_t i = 0; i < m * N; i++) yf[i] = ybf ? from_bf16(((uint16_t*)y)[i]) : y[i];
            double ep = pt_test_err(yf, ref, (size_t)(m * N), at, rt);
            EXPECT(ep <= 1, "[%s] spmm_s8 strided xq err %g: m=%lld K=%lld N=%lld block %dx%d s=%.2f", cname, ep, (long long)m, (long long)K,
                   (long long)N, bk, bn, sparsity);
            free(xp);
        }
        /* f32 y with rows N + 24 floats apart, the gaps holding a sentinel: the AMX path at
         * M >= 256 keeps its s32 sums in y itself (whole C tiles inside a row's N channels);
         * y must come out right and nothing between the rows may change */
        if (!ybf) {
            const int64_t ldy = N + 24;
            float* yp = malloc(4 * (size_t)(m * ldy));
            for (int64_t i = 0; i < m * ldy; i++) yp[i] = 12345.0f;
            for (int64_t i = 0; i < m; i++) pt_test_poison(yp + i * ldy, 4 * (size_t)N);
            pt_tensor typ = pt_test_tensor(yp, PT_F32, 2, ys);
            typ.stride[0] = 4 * ldy;
            EXPECT_OK(pt_spmm_bsr_s8(ctx, &txq, &tsc, bsr, bytes, bias_on ? &tbias : NULL, &typ, act));
            int gaps = 1;
            for (int64_t i = 0; i < m; i++) {
                memcpy(yf + i * N, yp + i * ldy, 4 * (size_t)N);
                for (int64_t j = N; j < ldy; j++) gaps &= yp[i * ldy + j] == 12345.0f;
            }
            double ey = pt_test_err(yf, ref, (size_t)(m * N), at, rt);
            EXPECT(ey <= 1, "[%s] spmm_s8 padded y err %g: m=%lld K=%lld N=%lld block %dx%d s=%.2f", cname, ey, (long long)m, (long long)K,
                   (long long)N, bk, bn, sparsity);
            EXPECT(gaps, "[%s] spmm_s8 wrote between y's rows: m=%lld K=%lld N=%lld block %dx%d", cname, (long long)m, (long long)K,
                   (long long)N, bk, bn);
            free(yp);
        }
        if (m > 1) {
            xsc[m - 1] = INFINITY;
            pt_test_poison(y, 4 * (size_t)(m * N));
            EXPECT_OK(pt_spmm_bsr_s8(ctx, &txq, &tsc, bsr, bytes, bias_on ? &tbias : NULL, &ty, act));
            int rownan = 1;
            for (int64_t n = 0; n < N; n++) rownan &= isnan(ybf ? from_bf16(((uint16_t*)y)[(m - 1) * N + n]) : y[(m - 1) * N + n]);
            EXPECT(rownan, "spmm_s8: an infinite x_scale must make its y row NaN");
        }
        free(xq);
        free(xsc);
    }

    /* 5. int8: a non-finite x makes its row NaN, the other rows unchanged */
    if (dtype == PT_I8 && m > 1 && !xbf) {
        x[K / 2] = NAN;
        pt_test_poison(y, 4 * (size_t)(m * N));
        EXPECT_OK(pt_spmm_bsr(ctx, &tx, bsr, bytes, bias_on ? &tbias : NULL, &ty, act));
        int rownan = 1;
        for (int64_t n = 0; n < N; n++) rownan &= isnan(ybf ? from_bf16(((uint16_t*)y)[n]) : y[n]);
        EXPECT(rownan, "int8: a NaN in x row 0 must make y row 0 NaN");
        for (int64_t i = N; i < m * N; i++) yf[i] = ybf ? from_bf16(((uint16_t*)y)[i]) : y[i];
        double e2 = pt_test_err(yf + N, ref + N, (size_t)((m - 1) * N), at, rt);
        EXPECT(e2 <= 1, "int8: rows after a NaN row err %g", e2);
    }
    free(bsr);
    free(w); free(wb); free(x); free(xb); free(bias); free(y); free(yf); free(ref); free(nrm); free(gotn); free(keep); free(dense); free(wref);
    return pt_test_failures == fails0;
}

static void test_selection_modes(pt_ctx* ctx) {
    /* threshold and mask select exactly the blocks they name */
    const int64_t K = 37, N = 22;
    const int bk = 4, bn = 1;
    const int64_t KB = 10, NB = 22;
    float* w = malloc(sizeof(float) * K * N);
    pt_test_fill(w, (size_t)(K * N), -1, 1);
    int64_t ws[2] = {K, N}, ns[2] = {KB, NB};
    pt_tensor tw = pt_test_tensor(w, PT_F32, 2, ws);
    float norms[10 * 22];
    pt_tensor tn = pt_test_tensor(norms, PT_F32, 2, ns);
    EXPECT_OK(pt_bsr_block_norms(ctx, &tw, 0, bk, bn, &tn));
    double thr = norms[17];
    int64_t want = 0;
    for (int i = 0; i < KB * NB; i++) want += (double)norms[i] >= thr;
    pt_bsr_params bp = {bk, bn, PT_F32, PT_BSR_THRESHOLD, 0, 0, 0.0, thr, NULL};
    int64_t bytes = 0;
    EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bp, NULL, 0, &bytes));
    void* buf = malloc((size_t)bytes);
    EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bp, buf, bytes, &bytes));
    pt_bsr_info info;
    EXPECT_OK(pt_bsr_info_get(buf, bytes, &info));
    EXPECT(info.kept_blocks == want, "threshold kept %lld, want %lld", (long long)info.kept_blocks, (long long)want);
    free(buf);
    uint8_t mask[10 * 22];
    int64_t wantm = 0;
    for (int i = 0; i < KB * NB; i++) { mask[i] = (uint8_t)(i % 3 == 0 ? 0 : 1 + i % 7); wantm += mask[i] != 0; }
    pt_tensor tm = pt_test_tensor(mask, PT_U8, 2, ns);
    bp.select = PT_BSR_MASK;
    bp.mask = &tm;
    EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bp, NULL, 0, &bytes));
    buf = malloc((size_t)bytes);
    EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bp, buf, bytes, &bytes));
    float dense[37 * 22];
    int64_t ds[2] = {K, N};
    pt_tensor td = pt_test_tensor(dense, PT_F32, 2, ds);
    EXPECT_OK(pt_bsr_to_dense(ctx, buf, bytes, &td));
    int ok = 1;
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++) ok &= dense[k * N + n] == (mask[(k / bk) * NB + n] ? w[k * N + n] : 0.0f);
    EXPECT(ok, "mask selection densifies to the masked weight");
    EXPECT_OK(pt_bsr_info_get(buf, bytes, &info));
    EXPECT(info.kept_blocks == wantm, "mask kept %lld want %lld", (long long)info.kept_blocks, (long long)wantm);
    free(buf);
    free(w);
}

static void test_bad_inputs(pt_ctx* ctx) {
    float w[8 * 6], x[3 * 8], y[3 * 6], b[6];
    pt_test_fill(w, 48, -1, 1);
    pt_test_fill(x, 24, -1, 1);
    int64_t ws[2] = {8, 6}, xs[2] = {3, 8}, ys[2] = {3, 6}, bs[1] = {6}, bad[2] = {3, 7};
    pt_tensor tw = pt_test_tensor(w, PT_F32, 2, ws), tx = pt_test_tensor(x, PT_F32, 2, xs), ty = pt_test_tensor(y, PT_F32, 2, ys);
    pt_tensor tb = pt_test_tensor(b, PT_F32, 1, bs);
    pt_bsr_params bp = {4, 1, PT_F32, PT_BSR_SPARSITY, 0, 0, 0.5, 0.0, NULL};
    int64_t bytes = 0;
    bp.block_k = 0;
    EXPECT(pt_bsr_from_dense(ctx, &tw, &bp, NULL, 0, &bytes) == PT_ERR_INVALID_ARGUMENT, "block_k 0");
    EXPECT(strstr(pt_last_error(), "block") != NULL, "message names the block: %s", pt_last_error());
    bp.block_k = 4;
    bp.sparsity = 1.5;
    EXPECT(pt_bsr_from_dense(ctx, &tw, &bp, NULL, 0, &bytes) == PT_ERR_INVALID_ARGUMENT, "sparsity 1.5");
    bp.sparsity = NAN;
    EXPECT(pt_bsr_from_dense(ctx, &tw, &bp, NULL, 0, &bytes) == PT_ERR_INVALID_ARGUMENT, "sparsity NaN");
    bp.sparsity = 0.5;
    bp.dtype = PT_F16;
    EXPECT(pt_bsr_from_dense(ctx, &tw, &bp, NULL, 0, &bytes) == PT_ERR_DTYPE, "f16 values");
    bp.dtype = PT_F32;
    bp.select = 7;
    EXPECT(pt_bsr_from_dense(ctx, &tw, &bp, NULL, 0, &bytes) == PT_ERR_INVALID_ARGUMENT, "select 7");
    bp.select = PT_BSR_MASK;
    EXPECT(pt_bsr_from_dense(ctx, &tw, &bp, NULL, 0, &bytes) == PT_ERR_INVALID_ARGUMENT, "mask NULL");
    bp.select = PT_BSR_SPARSITY;
    EXPECT(pt_bsr_from_dense(ctx, &tw, NULL, NULL, 0, &bytes) == PT_ERR_INVALID_ARGUMENT, "params NULL");
    EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bp, NULL, 0, &bytes));
    char* buf = malloc((size_t)bytes + 64);
    EXPECT(pt_bsr_from_dense(ctx, &tw, &bp, buf, bytes - 1, &bytes) == PT_ERR_INVALID_ARGUMENT, "capacity too small");
    EXPECT(strstr(pt_last_error(), "capacity") != NULL, "message names capacity: %s", pt_last_error());
    EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bp, buf, bytes, &bytes));
    EXPECT(pt_spmm_bsr(ctx, &tx, buf, bytes, &tb, &ty, 99) == PT_ERR_INVALID_ARGUMENT, "activation 99");
    EXPECT(pt_spmm_bsr(ctx, &tx, buf, bytes - 8, &tb, &ty, 0) == PT_ERR_INVALID_ARGUMENT, "wrong bytes");
    EXPECT(pt_spmm_bsr(ctx, &tx, NULL, bytes, &tb, &ty, 0) == PT_ERR_INVALID_ARGUMENT, "NULL bsr");
    pt_tensor ty2 = pt_test_tensor(y, PT_F32, 2, bad);
    EXPECT(pt_spmm_bsr(ctx, &tx, buf, bytes, &tb, &ty2, 0) == PT_ERR_SHAPE, "y [3,7]");
    pt_tensor tx2 = pt_test_tensor(x, PT_F32, 2, bad);
    EXPECT(pt_spmm_bsr(ctx, &tx2, buf, bytes, &tb, &ty, 0) == PT_ERR_SHAPE, "x K=7");
    EXPECT(strstr(pt_last_error(), "K=7") != NULL, "message names K: %s", pt_last_error());
    pt_tensor tb2 = pt_test_tensor(b, PT_F32, 1, (int64_t[]){5});
    EXPECT(pt_spmm_bsr(ctx, &tx, buf, bytes, &tb2, &ty, 0) == PT_ERR_SHAPE, "bias [5]");
    pt_tensor txi = pt_test_tensor(x, PT_I32, 2, xs);
    EXPECT(pt_spmm_bsr(ctx, &txi, buf, bytes, &tb, &ty, 0) == PT_ERR_DTYPE, "x i32");
    {
        /* pt_spmm_bsr_s8: int8 BSR only, xq i8, x_scale f32 [M] */
        int8_t xq8[3 * 8] = {0};
        float sc[3] = {1, 1, 1};
        pt_tensor txq = pt_test_tensor(xq8, PT_I8, 2, xs), tsc = pt_test_tensor(sc, PT_F32, 1, (int64_t[]){3});
        EXPECT(pt_spmm_bsr_s8(ctx, &txq, &tsc, buf, bytes, &tb, &ty, 0) == PT_ERR_DTYPE, "s8 x with an f32 BSR");
        EXPECT(strstr(pt_last_error(), "int8") != NULL, "message names int8: %s", pt_last_error());
        pt_bsr_params bq = {4, 1, PT_I8, PT_BSR_SPARSITY, 0, 0, 0.5, 0.0, NULL};
        int64_t qbytes = 0;
        EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bq, NULL, 0, &qbytes));
        char* qbuf = malloc((size_t)qbytes);
        EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bq, qbuf, qbytes, &qbytes));
        EXPECT_OK(pt_spmm_bsr_s8(ctx, &txq, &tsc, qbuf, qbytes, &tb, &ty, 0));
        EXPECT(pt_spmm_bsr_s8(ctx, &tx, &tsc, qbuf, qbytes, &tb, &ty, 0) == PT_ERR_DTYPE, "s8 entry with f32 x");
        pt_tensor tsc2 = pt_test_tensor(sc, PT_F32, 1, (int64_t[]){2});
        EXPECT(pt_spmm_bsr_s8(ctx, &txq, &tsc2, qbuf, qbytes, &tb, &ty, 0) == PT_ERR_SHAPE, "x_scale [2] for 3 rows");
        EXPECT(strstr(pt_last_error(), "x_scale") != NULL, "message names x_scale: %s", pt_last_error());
        EXPECT(pt_spmm_bsr_s8(ctx, &txq, NULL, qbuf, qbytes, &tb, &ty, 0) == PT_ERR_INVALID_ARGUMENT, "x_scale NULL");
        free(qbuf);
    }
    {
        char* bad = malloc((size_t)bytes);
        memcpy(bad, buf, (size_t)bytes);
        memset(bad + 192, 0xff, (size_t)(bytes - 192)); /* indices past the header: garbage */
        pt_bsr_info bi;
        EXPECT(pt_bsr_info_get(bad, bytes, &bi) == PT_ERR_INVALID_ARGUMENT, "corrupted indices are caught by pt_bsr_info_get");
        EXPECT_OK(pt_bsr_info_get(buf, bytes, &bi));
        free(bad);
    }
    buf[0] ^= 0x55;
    EXPECT(pt_spmm_bsr(ctx, &tx, buf, bytes, &tb, &ty, 0) == PT_ERR_INVALID_ARGUMENT, "bad magic");
    float nn[2] = {0, 0};
    pt_tensor tn = pt_test_tensor(nn, PT_F32, 2, (int64_t[]){1, 2});
    EXPECT(pt_bsr_block_norms(ctx, &tw, 0, 4, 1, &tn) == PT_ERR_SHAPE, "norms shape");
    w[13] = INFINITY;
    float nr[2 * 6];
    pt_tensor tn2 = pt_test_tensor(nr, PT_F32, 2, (int64_t[]){2, 6});
    EXPECT(pt_bsr_block_norms(ctx, &tw, 0, 4, 1, &tn2) == PT_ERR_INVALID_ARGUMENT, "non-finite weight");
    EXPECT(strstr(pt_last_error(), "w[2, 1]") != NULL, "message names the index: %s", pt_last_error());
    free(buf);
}

/* The AMX shapes (64x16, 64x32 int8 blocks): M across the 64-row panels and 16-row sub-panels
 * (1, 7, 16, 17, 65, 130, 200), K and N not multiples of the block, and masks with empty block
 * rows (channels with no kept block: y = act(bias)) and empty K-block columns, so work splits
 * and chunks start and end on empty rows; also a random 80% pattern. */
static void test_amx_shapes(pt_ctx* ctx, const char* cname, int big) {
    static const int64_t MS[] = {1, 7, 16, 17, 65, 130, 200};
    static const int BN[] = {16, 32};
    for (size_t b = 0; b < 2; b++)
        for (size_t i = 0; i < sizeof MS / sizeof MS[0]; i++) {
            const int bn = BN[b];
            const int64_t K = 200 + 37 * (int64_t)i, N = 3 * bn * 6 + 5 + (int64_t)b, KB = (K + 63) / 64, NB = (N + bn - 1) / bn;
            uint8_t* mask = malloc((size_t)(KB * NB));
            for (int64_t kb = 0; kb < KB; kb++)
                for (int64_t nb = 0; nb < NB; nb++)
                    mask[kb * NB + nb] = (uint8_t)(kb != 1 && nb % 5 != 2 && nb != 0 && ((kb * 7 + nb * 3 + (int64_t)i) % 3 != 0));
            case_mask = mask;
            run_case(ctx, cname, MS[i], K, N, 64, bn, PT_I8, 0.0, (int)(i & 1), (int)(i % 3 == 1), (int)(i % 4 == 3), (int)(i % 2 == 0),
                     i % 3 == 0 ? PT_ACT_GELU_ERF : i % 3 == 1 ? PT_ACT_NONE : PT_ACT_RELU);
            case_mask = NULL;
            free(mask);
            run_case(ctx, cname, MS[i], K, N, 64, bn, PT_I8, 0.8, (int)((i + 1) & 1), 0, 0, 1, PT_ACT_GELU_TANH);
        }
    /* M a multiple of 16 and K of 64 (as the benchmark's shapes: whole 16-row sub-panels and K
     * blocks, no padding), masks with empty block rows (no tile work there) and 90% patterns */
    static const int64_t MK[][2] = {{16, 64}, {64, 128}, {80, 256}, {128, 192}, {48, 384}, {32, 320}};
    for (size_t b = 0; b < 2; b++)
        for (size_t i = 0; i < sizeof MK / sizeof MK[0]; i++) {
            const int bn = BN[b];
            const int64_t M = MK[i][0], K = MK[i][1], N = 2 * bn * 5 + 3 + 4 * (int64_t)b, KB = K / 64, NB = (N + bn - 1) / bn;
            uint8_t* mask = malloc((size_t)(KB * NB));
            for (int64_t kb = 0; kb < KB; kb++)
                for (int64_t nb = 0; nb < NB; nb++)
                    mask[kb * NB + nb] = (uint8_t)(nb % 4 != 1 && ((kb * 5 + nb * 3 + (int64_t)i) % 3 != 0));
            case_mask = mask;
            run_case(ctx, cname, M, K, N, 64, bn, PT_I8, 0.0, (int)(i & 1), 0, (int)(i % 3 == 2), (int)(i % 2 == 0),
                     i % 3 == 0 ? PT_ACT_RELU : i % 3 == 1 ? PT_ACT_NONE : PT_ACT_SILU);
            case_mask = NULL;
            free(mask);
            run_case(ctx, cname, M, K, N, 64, bn, PT_I8, 0.9, (int)((i + 1) & 1), 0, 0, 1, PT_ACT_NONE);
        }
    /* M >= 256 (f32 y: the sums kept in y itself, chunks of up to 2048 channels): N past one
     * chunk and not a multiple of the block (the partial last block row, always kept, takes the
     * scratch: a C tile of it in y would write past channel N, into the padded-y gaps), empty
     * block rows, M = 260 (its last panel of 4 rows takes the scratch), bias + GELU, bf16 y; only
     * where big (the configs that may take AMX: the portable kernels have no such path) */
    static const int64_t BIG[][4] = {{260, 64, 2101, 16}, {256, 128, 2119, 32}};
    for (size_t i = 0; big && i < sizeof BIG / sizeof BIG[0]; i++) {
        const int64_t M = BIG[i][0], K = BIG[i][1], N = BIG[i][2], bn = BIG[i][3], KB = (K + 63) / 64, NB = (N + bn - 1) / bn;
        uint8_t* mask = malloc((size_t)(KB * NB));
        for (int64_t kb = 0; kb < KB; kb++)
            for (int64_t nb = 0; nb < NB; nb++)
                mask[kb * NB + nb] = (uint8_t)(nb == NB - 1 || (nb % 7 != 3 && nb != 64 && (kb * 5 + nb * 3 + (int64_t)i) % 4 == 0));
        case_mask = mask;
        run_case(ctx, cname, M, K, N, 64, (int)bn, PT_I8, 0.0, (int)(i & 1), 0, 0, 1, i == 1 ? PT_ACT_NONE : PT_ACT_GELU_ERF);
        case_mask = NULL;
        free(mask);
    }
    if (big) run_case(ctx, cname, 256, 64, 300, 64, 16, PT_I8, 0.8, 0, 0, 1, 1, PT_ACT_GELU_TANH);
}

/* int8 blocks with block_n a multiple of 16 (the VNNI row kernel where there is no AMX): block_n
 * of 16..64 taken in 16-channel slices, the last block row ending inside a slice (N % 16 != 0)
 * or on a slice edge, block_k of 4..64 (12: K blocks of 3 quads, whose sums cross the 16-quad
 * chunks of the transposition), rows 1..16 per tile with tails, empty block rows. */
static void test_vnni_rows(pt_ctx* ctx, const char* cname) {
    static const int BL[][2] = {{4, 16}, {12, 32}, {8, 48}, {64, 64}, {16, 16}};
    static const int64_t MS[] = {1, 5, 16, 47}; /* 47: tiles of 16, 16 and 15 rows */
    for (size_t b = 0; b < sizeof BL / sizeof BL[0]; b++)
        for (size_t i = 0; i < sizeof MS / sizeof MS[0]; i++) {
            const int bk = BL[b][0], bn = BL[b][1];
            const int64_t K = 7 * bk + (i & 1 ? 0 : 3), N = 3 * bn + (i % 3 == 0 ? 16 : 5 + 11 * (int64_t)i);
            const int64_t KB = (K + bk - 1) / bk, NB = (N + bn - 1) / bn;
            uint8_t* mask = malloc((size_t)(KB * NB));
            for (int64_t kb = 0; kb < KB; kb++)
                for (int64_t nb = 0; nb < NB; nb++) mask[kb * NB + nb] = (uint8_t)(nb != 1 && (kb + nb + (int64_t)i) % 3 != 0);
            case_mask = mask;
            run_case(ctx, cname, MS[i], K, N, bk, bn, PT_I8, 0.0, (int)(i & 1), (int)(b % 2), (int)(i == 2), (int)(i != 1),
                     i == 3 ? PT_ACT_GELU_ERF : i == 0 ? PT_ACT_SILU : PT_ACT_NONE);
            case_mask = NULL;
            free(mask);
        }
}

/* y rows not evenly spaced (3-D y [B][T][N] whose batch stride leaves a gap after each T x N
 * slab): no fast path may assume one row stride; every fast path but AMX (which is not chosen
 * for such a y) then finishes rows through their own pointers (the VNNI row kernel: a pointer
 * per row; the transposed paths: the portable epilogue). xq over the whole s8 range (-128
 * included, which no quantization of run_case makes), through pt_spmm_bsr_s8. The reference:
 * the densified weight (pt_bsr_to_dense, checked by run_case) in double; the gaps must not
 * change. Blocks 64x16 / 8x32 (the row kernel without AMX, 64x16 also where AMX is), 4x1 /
 * 16x4 (transposed VNNI), f32 and bf16 y. */
static void test_y_rows_apart(pt_ctx* ctx, const char* cname) {
    static const int BL[][2] = {{64, 16}, {8, 32}, {4, 1}, {16, 4}};
    enum { B = 3, T = 7, M = B * T, K = 100, N = 83, GAP = 40 };
    const int64_t ybs = T * N + GAP; /* y's batch stride in elements */
    float* w = malloc(sizeof(float) * K * N);
    float* dense = malloc(sizeof(float) * K * N);
    int8_t* xq = malloc(M * K);
    float xsc[M], bias[N];
    double* ref = malloc(sizeof(double) * M * N);
    float* y = malloc(4 * (size_t)(B * ybs));
    float* yf = malloc(4 * M * N);
    for (size_t b = 0; b < sizeof BL / sizeof BL[0]; b++) {
        const int bk = BL[b][0], bn = BL[b][1];
        pt_test_fill(w, K * N, -0.5, 0.5);
        pt_test_fill(bias, N, -1.0, 1.0);
        pt_test_fill(xsc, M, 0.001, 0.01);
        for (int64_t i = 0; i < M * K; i++) xq[i] = (int8_t)(int)floor(pt_test_uniform(-128.0, 128.0));
        for (int64_t i = 0; i < K; i++) xq[5 * K + i] = -128; /* a row of -128 only */
        int64_t ws[2] = {K, N};
        pt_tensor tw = pt_test_tensor(w, PT_F32, 2, ws), td = pt_test_tensor(dense, PT_F32, 2, ws);
        pt_bsr_params bp;
        memset(&bp, 0, sizeof bp);
        bp.block_k = bk;
        bp.block_n = bn;
        bp.dtype = PT_I8;
        bp.select = PT_BSR_SPARSITY;
        bp.sparsity = 0.5;
        int64_t bytes = 0;
        EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bp, NULL, 0, &bytes));
        void* bsr = malloc((size_t)bytes);
        EXPECT_OK(pt_bsr_from_dense(ctx, &tw, &bp, bsr, bytes, &bytes));
        EXPECT_OK(pt_bsr_to_dense(ctx, bsr, bytes, &td));
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++) s += (double)xq[m * K + k] * dense[k * N + n];
                ref[m * N + n] = s * xsc[m] + bias[n];
            }
        int64_t xs3[3] = {B, T, K}, ys3[3] = {B, T, N}, ss[1] = {M}, bs[1] = {N};
        pt_tensor tx = pt_test_tensor(xq, PT_I8, 3, xs3), tsc = pt_test_tensor(xsc, PT_F32, 1, ss), tb = pt_test_tensor(bias, PT_F32, 1, bs);
        for (int ybf = 0; ybf < 2; ybf++) {
            const size_t es = ybf ? 2 : 4;
            pt_tensor ty = pt_test_tensor(y, ybf ? PT_BF16 : PT_F32, 3, ys3);
            ty.stride[0] = ybs * (int64_t)es;
            memset(y, 0x5a, 4 * (size_t)(B * ybs));
            for (int bb = 0; bb < B; bb++) pt_test_poison((char*)y + bb * ybs * es, (size_t)(T * N) * es);
            EXPECT_OK(pt_spmm_bsr_s8(ctx, &tx, &tsc, bsr, bytes, &tb, &ty, PT_ACT_NONE));
            int gaps = 1;
            for (int bb = 0; bb < B; bb++) {
                const char* slab = (const char*)y + bb * ybs * es;
                for (int64_t i = 0; i < T * N; i++)
                    yf[bb * T * N + i] = ybf ? from_bf16(((const uint16_t*)slab)[i]) : ((const float*)slab)[i];
                for (size_t i = (size_t)(T * N) * es; i < (size_t)ybs * es; i++) gaps &= slab[i] == 0x5a;
            }
            const double err = pt_test_err(yf, ref, M * N, ybf ? 8e-3 : 2e-5 * sqrt(K + 1.0), ybf ? 8e-3 : 2e-5);
            EXPECT(err <= 1 && gaps, "[%s] y rows apart: block %dx%d ybf %d err %g, gaps untouched %d", cname, bk, bn, ybf, err, gaps);
        }
        free(bsr);
    }
    free(w);
    free(dense);
    free(xq);
    free(ref);
    free(y);
    free(yf);
}

int main(void) {
    pt_test_seed(0x5b5e5a);
    static const int64_t SIZES[][3] = {{1, 1, 1}, {7, 63, 65}, {65, 127, 63}, {127, 65, 7}, {16, 130, 48}, {1, 256, 129}, {130, 96, 33}, {3, 65, 40}};
    static const int BLOCKS[][2] = {{4, 1}, {1, 4}, {16, 1}, {64, 16}, {32, 16}, {3, 5}, {8, 4}, {64, 32}};
    static const double SP[] = {0.0, 0.5, 0.9, 1.0};
    static const int DT[] = {PT_F32, PT_BF16, PT_I8};
    static const int ACTS[] = {PT_ACT_NONE, PT_ACT_GELU_ERF, PT_ACT_GELU_TANH, PT_ACT_RELU};
    /* without AVX-512 every config runs the portable kernels: once is enough (and keeps the
     * emulated cross-build runs short) */
    const size_t nconf = (pt_cpu_caps() & PT_CPU_AVX512F) ? sizeof CONFIGS / sizeof CONFIGS[0] : 1;
    for (size_t c = 0; c < nconf; c++) {
        if (pt_test_same_dispatch(CONFIGS[c].name, CONFIGS[c].disable, CONFIGS[c].threads, 1)) continue;
        pt_ctx_params cp = {CONFIGS[c].threads, CONFIGS[c].disable, 1, 0};
        pt_ctx* ctx = NULL;
        EXPECT_OK(pt_ctx_create(&cp, &ctx));
        int iter = 0;
        for (size_t s = 0; s < sizeof SIZES / sizeof SIZES[0]; s++)
            for (size_t b = 0; b < sizeof BLOCKS / sizeof BLOCKS[0]; b++)
                for (size_t d = 0; d < 3; d++) {
                    iter++;
                    const double sp = SP[(s + b + d) % 4];
                    const int tb = (int)((s + d) & 1), xbf = (int)((b + c) % 3 == 0), ybf = (int)((s + b + d) % 5 == 0);
                    const int act = ACTS[(s * 7 + b * 3 + d) % 4], bias_on = (int)((b + d) % 2 == 0 || s == 0);
                    run_case(ctx, CONFIGS[c].name, SIZES[s][0], SIZES[s][1], SIZES[s][2], BLOCKS[b][0], BLOCKS[b][1], DT[d], sp, tb, xbf,
                             ybf, bias_on, act);
                }
        /* a BERT-ish shape at the sparsities of the benchmark, int8 4x1 and 64x16 */
        run_case(ctx, CONFIGS[c].name, 33, 768, 96, 4, 1, PT_I8, 0.9, 1, 0, 0, 1, PT_ACT_GELU_ERF);
        run_case(ctx, CONFIGS[c].name, 33, 768, 96, 64, 16, PT_I8, 0.7, 1, 0, 0, 1, PT_ACT_NONE);
        run_case(ctx, CONFIGS[c].name, 129, 192, 80, 4, 1, PT_F32, 0.5, 0, 0, 0, 1, PT_ACT_GELU_TANH);
        test_amx_shapes(ctx, CONFIGS[c].name, !(CONFIGS[c].disable & PT_CPU_AMX_INT8)); /* (the M >= 256 cases: AMX configs only) */
        test_vnni_rows(ctx, CONFIGS[c].name);
        test_y_rows_apart(ctx, CONFIGS[c].name);
        if (c == 0) {
            test_selection_modes(ctx);
            test_bad_inputs(ctx);
        }
        (void)iter;
        EXPECT_OK(pt_ctx_destroy(ctx));
    }
    return pt_test_finish("test_sparse");
}
