/* pt_cuda_layer_norm against a double-precision reference: odd sizes, every dtype, NaN-poisoned
 * outputs, in place, beta absent, and the argument errors. */
#include "cuda_test_util.h"

static void check_case(pt_cuda_ctx* ctx, int32_t dt, int64_t rows, int64_t cols, int with_beta, int in_place, float offset) {
    size_t n = (size_t)(rows * cols);
    float* x = malloc(n * sizeof(float) + 4);
    float* g = malloc(cols * sizeof(float));
    float* b = malloc(cols * sizeof(float));
    float* got = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++) x[i] = round_to(offset + (float)pt_test_uniform(-2, 2), dt);
    for (int64_t j = 0; j < cols; j++) {
        g[j] = (float)pt_test_uniform(0.5, 1.5);
        b[j] = (float)pt_test_uniform(-1, 1);
    }
    void* dx = upload(ctx, x, n, dt);
    void* dg = upload(ctx, g, cols, PT_F32);
    void* db = upload(ctx, b, cols, PT_F32);
    void* dout = in_place ? dx : alloc_poisoned(ctx, n, dt);
    int64_t shape[2] = {rows, cols}, gs[1] = {cols};
    pt_tensor tx = dev_tensor(dx, dt, 2, shape), to = dev_tensor(dout, dt, 2, shape);
    pt_tensor tg = dev_tensor(dg, PT_F32, 1, gs), tb = dev_tensor(db, PT_F32, 1, gs);
    EXPECT_CUDA_OK(pt_cuda_layer_norm(ctx, &tx, &tg, with_beta ? &tb : NULL, 1e-5f, &to));
    download(ctx, dout, n, dt, got);
    double err = 0, ref_norm = 0;
    int nan = 0;
    for (int64_t r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int64_t j = 0; j < cols; j++) mean += x[r * cols + j];
        mean /= (double)cols;
        for (int64_t j = 0; j < cols; j++) var += (x[r * cols + j] - mean) * (x[r * cols + j] - mean);
        var /= (double)cols;
        for (int64_t j = 0; j < cols; j++) {
            double ref = (x[r * cols + j] - mean) / sqrt(var + 1e-5) * g[j] + (with_beta ? b[j] : 0);
            double v = got[r * cols + j];
            if (isnan(v)) nan++;
            err += (v - ref) * (v - ref);
            ref_norm += ref * ref;
        }
    }
    double rel = sqrt(err / (ref_norm > 0 ? ref_norm : 1));
    double tol = dt == PT_F32 ? 1e-5 : dt == PT_F16 ? 2e-3 : 1e-2;
    EXPECT(nan == 0 && rel <= tol, "layer_norm %s rows %lld cols %lld beta %d in_place %d offset %g: rel err %.3g (tol %.1g), %d NaN",
           dtname(dt), (long long)rows, (long long)cols, with_beta, in_place, (double)offset, rel, tol, nan);
    EXPECT_CUDA_OK(pt_cuda_free(ctx, dx));
    if (!in_place) EXPECT_CUDA_OK(pt_cuda_free(ctx, dout));
    EXPECT_CUDA_OK(pt_cuda_free(ctx, dg));
    EXPECT_CUDA_OK(pt_cuda_free(ctx, db));
    free(x), free(g), free(b), free(got);
}

int main(void) {
    skip_without_gpu("test_cuda_norm");
    pt_test_seed(11);
    pt_cuda_ctx* ctx = NULL;
    EXPECT_CUDA_OK(pt_cuda_ctx_create(NULL, &ctx));
    if (!ctx) return pt_test_finish("test_cuda_norm");
    static const int32_t dts[] = {PT_F32, PT_BF16, PT_F16};
    static const int64_t rows[] = {1, 7, 9, 130};
    static const int64_t cols[] = {1, 31, 33, 384, 1025};
    for (int d = 0; d < 3; d++)
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 5; c++) check_case(ctx, dts[d], rows[r], cols[c], (r + c) % 2, 0, 0.f);
    check_case(ctx, PT_BF16, 65, 384, 1, 1, 0.f);    /* in place */
    check_case(ctx, PT_F32, 17, 768, 1, 0, 100.f);   /* large mean: the two-pass variance */

    /* errors name the argument */
    void* d = NULL;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 4096, &d));
    int64_t s2[2] = {4, 8}, s8[1] = {8}, s7[1] = {7};
    pt_tensor x = dev_tensor(d, PT_F32, 2, s2), g = dev_tensor(d, PT_F32, 1, s8), g7 = dev_tensor(d, PT_F32, 1, s7);
    pt_tensor xb = dev_tensor(d, PT_BF16, 2, s2);
    EXPECT(pt_cuda_layer_norm(ctx, &x, &g7, NULL, 1e-5f, &x) == PT_ERR_SHAPE && strstr(pt_cuda_last_error(), "gamma"),
           "gamma length: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_layer_norm(ctx, &x, &g, NULL, 1e-5f, &xb) == PT_ERR_DTYPE && strstr(pt_cuda_last_error(), "out"),
           "out dtype: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_layer_norm(ctx, &x, &g, NULL, -1.f, &x) == PT_ERR_INVALID_ARGUMENT && strstr(pt_cuda_last_error(), "eps"),
           "eps: %s", pt_cuda_last_error());
    pt_tensor host = x;
    host.device = PT_DEVICE_CPU;
    EXPECT(pt_cuda_layer_norm(ctx, &host, &g, NULL, 1e-5f, &x) == PT_ERR_INVALID_ARGUMENT, "host tensor refused");
    EXPECT_CUDA_OK(pt_cuda_free(ctx, d));
    EXPECT_CUDA_OK(pt_cuda_synchronize(ctx));
    EXPECT_CUDA_OK(pt_cuda_ctx_destroy(ctx));
    return pt_test_finish("test_cuda_norm");
}
