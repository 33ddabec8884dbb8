/* pt_s8_matmul_* (plain oneDNN s8 matmul, the int8 benchmarks' baseline) against a plain
 * double-precision reference: y[i, n] = x_scale * w_scale[n] * sum_k x[i, k] wq[n, k] + bias[n].
 * Random int8 inputs, odd sizes, NaN-poisoned outputs, bad arguments, and PT_ERR_UNSUPPORTED
 * without oneDNN (a build without it, or a context with use_onednn = 0). */
#include "pt_test.h"

#include <string.h>

static int8_t rand_s8(void) {
    int v = (int)floor(pt_test_uniform(-127.0, 128.0));
    return (int8_t)(v > 127 ? 127 : v);
}

static void run_case(pt_ctx* ctx, int64_t m, int64_t k, int64_t n, int with_bias) {
    int8_t* x = malloc((size_t)(m * k));
    int8_t* wq = malloc((size_t)(n * k));
    float* ws = malloc((size_t)n * sizeof(float));
    float* bias = malloc((size_t)n * sizeof(float));
    float* y = malloc((size_t)(m * n) * sizeof(float));
    double* want = malloc((size_t)(m * n) * sizeof(double));
    for (int64_t i = 0; i < m * k; i++) x[i] = rand_s8();
    for (int64_t i = 0; i < n * k; i++) wq[i] = rand_s8();
    for (int64_t i = 0; i < n; i++) ws[i] = (float)pt_test_uniform(0.001, 0.02);
    for (int64_t i = 0; i < n; i++) bias[i] = (float)pt_test_uniform(-1, 1);
    const float xs = (float)pt_test_uniform(0.001, 0.05);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            long long acc = 0;
            for (int64_t t = 0; t < k; t++) acc += (long long)x[i * k + t] * (long long)wq[j * k + t];
            want[i * n + j] = (double)xs * (double)ws[j] * (double)acc + (with_bias ? (double)bias[j] : 0.0);
        }
    int64_t wsh[2] = {n, k}, ssh[1] = {n}, xsh[2] = {m, k}, ysh[2] = {m, n};
    pt_tensor tw = pt_test_tensor(wq, PT_I8, 2, wsh), ts = pt_test_tensor(ws, PT_F32, 1, ssh);
    pt_tensor tx = pt_test_tensor(x, PT_I8, 2, xsh), ty = pt_test_tensor(y, PT_F32, 2, ysh), tb = pt_test_tensor(bias, PT_F32, 1, ssh);
    pt_s8_matmul* h = NULL;
    EXPECT_OK(pt_s8_matmul_create(ctx, m, &tw, &ts, &h));
    /* the handle copied what it needs */
    memset(wq, 0, (size_t)(n * k));
    ws[0] = 1e9f;
    for (int rep = 0; rep < 2 && h; rep++) {
        pt_test_poison(y, (size_t)(m * n) * sizeof(float));
        EXPECT_OK(pt_s8_matmul_run(ctx, h, &tx, xs, with_bias ? &tb : NULL, &ty));
        /* s32 sums are exact; the f32 scaling and oneDNN's order of the scale products round */
        double e = pt_test_err(y, want, (size_t)(m * n), 1e-4, 1e-5);
        EXPECT(e <= 1, "m=%lld k=%lld n=%lld bias=%d rep %d: error %.3g of tolerance", (long long)m, (long long)k, (long long)n, with_bias,
               rep, e);
    }
    pt_s8_matmul_destroy(h);
    free(x); free(wq); free(ws); free(bias); free(y); free(want);
}

static void bad_args(pt_ctx* ctx) {
    int8_t wq[6 * 5] = {0}, x[3 * 5] = {0};
    float ws[6] = {0}, y[3 * 6];
    int64_t wsh[2] = {6, 5}, ssh[1] = {6}, s5[1] = {5}, xsh[2] = {3, 5}, ysh[2] = {3, 6}, xbad[2] = {3, 4};
    pt_tensor tw = pt_test_tensor(wq, PT_I8, 2, wsh), ts = pt_test_tensor(ws, PT_F32, 1, ssh), ts5 = pt_test_tensor(ws, PT_F32, 1, s5);
    pt_tensor twf = pt_test_tensor(ws, PT_F32, 2, wsh);
    pt_s8_matmul* h = (pt_s8_matmul*)&h;
    EXPECT(pt_s8_matmul_create(ctx, 0, &tw, &ts, &h) == PT_ERR_INVALID_ARGUMENT && h == NULL, "m = 0");
    EXPECT(strstr(pt_last_error(), "m must be >= 1") != NULL, "message: %s", pt_last_error());
    EXPECT(pt_s8_matmul_create(ctx, 3, &twf, &ts, &h) == PT_ERR_DTYPE, "f32 wq");
    EXPECT(strstr(pt_last_error(), "wq") != NULL, "message: %s", pt_last_error());
    EXPECT(pt_s8_matmul_create(ctx, 3, &tw, &ts5, &h) == PT_ERR_SHAPE, "w_scale [5] for N=6");
    EXPECT(strstr(pt_last_error(), "w_scale") != NULL, "message: %s", pt_last_error());
    EXPECT(pt_s8_matmul_create(NULL, 3, &tw, &ts, &h) == PT_ERR_INVALID_ARGUMENT, "NULL ctx");
    EXPECT(pt_s8_matmul_create(ctx, 3, &tw, &ts, NULL) == PT_ERR_INVALID_ARGUMENT, "NULL out");
    EXPECT(pt_s8_matmul_run(ctx, NULL, NULL, 1.0f, NULL, NULL) == PT_ERR_INVALID_ARGUMENT, "NULL handle");
    EXPECT_OK(pt_s8_matmul_destroy(NULL));
    pt_build_info bi;
    pt_build_info_get(&bi);
    pt_status st = pt_s8_matmul_create(ctx, 3, &tw, &ts, &h);
    if (bi.onednn_version == 0) {
        EXPECT(st == PT_ERR_UNSUPPORTED && strstr(pt_last_error(), "oneDNN") != NULL, "without oneDNN: %d %s", (int)st, pt_last_error());
        return;
    }
    EXPECT_OK(st);
    pt_tensor tx = pt_test_tensor(x, PT_I8, 2, xsh), ty = pt_test_tensor(y, PT_F32, 2, ysh);
    pt_tensor txb = pt_test_tensor(x, PT_I8, 2, xbad), tyi = pt_test_tensor(y, PT_I8, 2, ysh);
    EXPECT(pt_s8_matmul_run(ctx, h, &txb, 1.0f, NULL, &ty) == PT_ERR_SHAPE && strstr(pt_last_error(), "x must be") != NULL,
           "x [3, 4] for K=5: %s", pt_last_error());
    EXPECT(pt_s8_matmul_run(ctx, h, &tx, 1.0f, NULL, &tyi) == PT_ERR_DTYPE, "i8 y");
    EXPECT(pt_s8_matmul_run(ctx, h, &tx, NAN, NULL, &ty) == PT_ERR_INVALID_ARGUMENT, "NaN x_scale");
    EXPECT(pt_s8_matmul_run(ctx, h, &tx, 1.0f, &ts5, &ty) == PT_ERR_SHAPE, "bias [5] for N=6");
    EXPECT_OK(pt_s8_matmul_run(ctx, h, &tx, 1.0f, NULL, &ty));
    pt_s8_matmul_destroy(h);
    /* a context with oneDNN disabled has no baseline */
    pt_ctx_params cp = {2, 0, 0, 0};
    pt_ctx* own = NULL;
    EXPECT_OK(pt_ctx_create(&cp, &own));
    h = NULL;
    EXPECT(pt_s8_matmul_create(own, 3, &tw, &ts, &h) == PT_ERR_UNSUPPORTED && h == NULL, "use_onednn = 0: %s", pt_last_error());
    pt_ctx_destroy(own);
}

int main(void) {
    pt_test_seed(0x58);
    pt_ctx_params cp = {2, 0, 1, 0};
    pt_ctx* ctx = NULL;
    EXPECT_OK(pt_ctx_create(&cp, &ctx));
    pt_build_info bi;
    pt_build_info_get(&bi);
    if (bi.onednn_version != 0) {
        static const int64_t MS[] = {1, 7, 64};
        static const int64_t KN[][2] = {{5, 3}, {67, 131}, {130, 65}};
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) run_case(ctx, MS[a], KN[b][0], KN[b][1], (a + b) % 2);
    }
    bad_args(ctx);
    pt_ctx_destroy(ctx);
    return pt_test_finish("test_s8_onednn");
}
