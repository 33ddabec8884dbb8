/* pt_matmul against a double-precision reference, on odd sizes, with and without oneDNN. */
#include "pt_test.h"

static void ref(const float* a, const float* b, const float* bias, int64_t m, int64_t n, int64_t k, int tb, double* c) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t p = 0; p < k; p++) s += (double)a[i * k + p] * (tb ? b[j * k + p] : b[p * n + j]);
            c[i * n + j] = s + (bias ? bias[j] : 0.0);
        }
}

static void run(pt_ctx* ctx, int64_t m, int64_t n, int64_t k, int tb, int with_bias) {
    float* a = malloc(sizeof(float) * m * k);
    float* b = malloc(sizeof(float) * n * k);
    float* bias = malloc(sizeof(float) * n);
    float* c = malloc(sizeof(float) * m * n);
    double* want = malloc(sizeof(double) * m * n);
    pt_test_fill(a, m * k, -1, 1);
    pt_test_fill(b, n * k, -1, 1);
    pt_test_fill(bias, n, -1, 1);
    pt_test_poison(c, sizeof(float) * m * n);
    int64_t as[2] = {m, k}, bs[2] = {tb ? n : k, tb ? k : n}, cs[2] = {m, n}, biass[1] = {n};
    pt_tensor ta = pt_test_tensor(a, PT_F32, 2, as), tb_ = pt_test_tensor(b, PT_F32, 2, bs),
              tc = pt_test_tensor(c, PT_F32, 2, cs), tbias = pt_test_tensor(bias, PT_F32, 1, biass);
    pt_matmul_params p = {tb, PT_ACT_NONE, 1.0f, 0.0f};
    EXPECT_OK(pt_matmul(ctx, &ta, &tb_, with_bias ? &tbias : NULL, &tc, &p));
    ref(a, b, with_bias ? bias : NULL, m, n, k, tb, want);
    double e = pt_test_err(c, want, m * n, 1e-5, 1e-5 * (double)k);
    EXPECT(e <= 1.0, "m=%lld n=%lld k=%lld trans_b=%d bias=%d err=%g", (long long)m, (long long)n, (long long)k, tb, with_bias, e);
    free(a); free(b); free(bias); free(c); free(want);
}

int main(void) {
    pt_test_seed(1);
    static const int64_t sizes[][3] = {{1, 1, 1}, {7, 5, 3}, {63, 65, 127}, {128, 96, 64}, {1, 768, 384}, {33, 17, 257}};
    for (int onednn = 0; onednn <= 1; onednn++) {
        pt_ctx_params params = {2, 0, onednn, 0};
        pt_ctx* ctx = NULL;
        EXPECT_OK(pt_ctx_create(&params, &ctx));
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int tb = 0; tb <= 1; tb++) run(ctx, sizes[s][0], sizes[s][1], sizes[s][2], tb, (int)(s & 1));
        pt_ctx_destroy(ctx);
    }
    /* bad input: a clear status and message */
    pt_ctx* ctx = NULL;
    EXPECT_OK(pt_ctx_create(NULL, &ctx));
    float x[6] = {0};
    int64_t s23[2] = {2, 3}, s22[2] = {2, 2};
    pt_tensor a = pt_test_tensor(x, PT_F32, 2, s23), b = pt_test_tensor(x, PT_F32, 2, s22), c = pt_test_tensor(x, PT_F32, 2, s22);
    EXPECT(pt_matmul(ctx, &a, &b, NULL, &c, NULL) == PT_ERR_SHAPE, "K mismatch must be a shape error");
    EXPECT(pt_last_error()[0] != 0, "message expected");
    EXPECT(pt_matmul(NULL, &a, &b, NULL, &c, NULL) == PT_ERR_INVALID_ARGUMENT, "NULL ctx");
    pt_ctx_destroy(ctx);
    return pt_test_finish("test_gemm");
}
