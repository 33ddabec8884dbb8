/* Sparse matmul on the GPU (sparse.cu): pt_cuda_bsr_* (block-sparse, own mma kernel) and
 * pt_cuda_sparse24_* (2:4 through cuSPARSELt, dense fallback) against double-precision
 * references written here from the header's contracts: the weight is pruned on the host by the
 * contract's rule, fresh random inputs, odd sizes (padding paths), row strides, NaN-poisoned
 * outputs, every bias kind, and the argument errors. The 2:4 part skips (with a line saying so)
 * where cuSPARSELt cannot be loaded. */
#include "cuda_test_util.h"

static double eps_of(int32_t dt) { return dt == PT_BF16 ? 1.0 / 256 : dt == PT_F16 ? 1.0 / 2048 : 1e-7; }

/* y [m, n] (row stride ldy elements) against ref = x @ w^T + bias in doubles. tol per element:
 * rounds * eps(y) * (|ref| + |bias|) + 1e-5 * sum |x w| (f32 accumulation). */
static int check_out(const char* what, const float* y, int64_t ldy, const float* x, const float* w, const float* bias, int64_t m,
                     int64_t n, int64_t k, int32_t ydt, int rounds) {
    int bad = 0;
    double worst = 0;
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < n; c++) {
            double s = 0, sa = 0;
            for (int64_t j = 0; j < k; j++) {
                double p = (double)x[r * k + j] * (double)w[c * k + j];
                s += p;
                sa += fabs(p);
            }
            double b = bias ? bias[c] : 0.0;
            s += b;
            double got = y[r * ldy + c];
            double tol = rounds * eps_of(ydt) * (fabs(s) + fabs(b)) + 1e-5 * sa + 1e-6;
            double e = fabs(got - s);
            if (!(e <= tol)) {
                if (bad < 3) printf("  %s: y[%lld, %lld] = %g, expected %g (tol %g)\n", what, (long long)r, (long long)c, got, s, tol);
                bad++;
            }
            if (e / (tol > 0 ? tol : 1) > worst) worst = e / tol;
        }
    EXPECT(bad == 0, "%s: %d of %lld outputs outside tolerance", what, bad, (long long)(m * n));
    return bad;
}

static float* rand_host(int64_t n, int32_t dt, double lo, double hi) {
    float* v = malloc((size_t)(n + 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = round_to((float)pt_test_uniform(lo, hi), dt);
    return v;
}

/* rows x cols device matrix of dtype with a row stride of ld elements (pad filled with NaN) */
static void* upload_strided(pt_cuda_ctx* ctx, const float* v, int64_t rows, int64_t cols, int64_t ld, int32_t dt) {
    float* tmp = malloc((size_t)(rows * ld + 1) * sizeof(float));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < ld; c++) tmp[r * ld + c] = c < cols ? v[r * cols + c] : NAN;
    void* d = upload(ctx, tmp, (size_t)(rows * ld), dt);
    free(tmp);
    return d;
}

static pt_tensor strided_tensor(void* d, int32_t dt, int64_t rows, int64_t cols, int64_t ld) {
    int64_t s[2] = {rows, cols};
    pt_tensor t = dev_tensor(d, dt, 2, s);
    t.stride[0] = ld * (int64_t)(dt == PT_F32 ? 4 : 2);
    return t;
}

/* ---------------------------------------------------------------- block-sparse */

/* w [n, k] with each 64 x 64 block non-zero with probability density (and about a quarter of
 * the elements of a kept block zero); zero_row >= 0 empties that block row. */
static float* make_block_sparse(int64_t n, int64_t k, double density, int64_t zero_row, int32_t dt, int64_t* nnzb) {
    float* w = calloc((size_t)(n * k + 1), sizeof(float));
    int64_t nb = (n + 63) / 64, kb = (k + 63) / 64;
    *nnzb = 0;
    for (int64_t bi = 0; bi < nb; bi++)
        for (int64_t bj = 0; bj < kb; bj++) {
            if (bi == zero_row || pt_test_uniform(0, 1) >= density) continue;
            int any = 0;
            for (int64_t r = bi * 64; r < n && r < bi * 64 + 64; r++)
                for (int64_t c = bj * 64; c < k && c < bj * 64 + 64; c++)
                    if (pt_test_uniform(0, 1) < 0.75) {
                        w[r * k + c] = round_to((float)pt_test_uniform(-1, 1), dt);
                        any |= w[r * k + c] != 0.0f;
                    }
            *nnzb += any;
        }
    return w;
}

static void test_bsr(pt_cuda_ctx* ctx, int32_t dt, int32_t ydt, int64_t m, int64_t n, int64_t k, double density, int bias_kind,
                     int64_t x_pad, int64_t y_pad, int64_t zero_row) {
    char what[160];
    snprintf(what, sizeof what, "bsr %s->%s m=%lld n=%lld k=%lld density=%.2f bias=%d xpad=%lld ypad=%lld", dtname(dt), dtname(ydt),
             (long long)m, (long long)n, (long long)k, density, bias_kind, (long long)x_pad, (long long)y_pad);
    int64_t nnzb_ref = 0;
    float* w = make_block_sparse(n, k, density, zero_row, dt, &nnzb_ref);
    float* x = rand_host(m * k, dt, -1, 1);
    int32_t bdt = bias_kind == 1 ? PT_F32 : dt;
    float* bias = bias_kind ? rand_host(n, bdt, -2, 2) : NULL;
    void* dw = upload(ctx, w, (size_t)(n * k), dt);
    int64_t sw[2] = {n, k};
    pt_tensor tw = dev_tensor(dw, dt, 2, sw);
    pt_cuda_bsr* h = NULL;
    EXPECT_CUDA_OK(pt_cuda_bsr_create(ctx, &tw, &h));
    if (!h) return;
    int64_t nnzb = -1, total = -1;
    EXPECT_CUDA_OK(pt_cuda_bsr_info(h, &nnzb, &total));
    EXPECT(nnzb == nnzb_ref && total == ((n + 63) / 64) * ((k + 63) / 64), "%s: %lld of %lld blocks, expected %lld", what,
           (long long)nnzb, (long long)total, (long long)nnzb_ref);
    const int64_t ldx = k + x_pad, ldy = n + y_pad;
    void* dx = upload_strided(ctx, x, m, k, ldx, dt);
    void* dy = alloc_poisoned(ctx, (size_t)(m * ldy), ydt);
    void* db = bias ? upload(ctx, bias, (size_t)n, bdt) : NULL;
    pt_tensor tx = strided_tensor(dx, dt, m, k, ldx), ty = strided_tensor(dy, ydt, m, n, ldy);
    int64_t sb[1] = {n};
    pt_tensor tb = dev_tensor(db, bdt, 1, sb);
    EXPECT_CUDA_OK(pt_cuda_bsr_matmul(ctx, h, &tx, bias ? &tb : NULL, &ty));
    float* y = malloc((size_t)(m * ldy + 1) * sizeof(float));
    download(ctx, dy, (size_t)(m * ldy), ydt, y);
    check_out(what, y, ldy, x, w, bias, m, n, k, ydt, 1);
    /* the padding columns of y stay untouched (NaN) */
    int touched = 0;
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = n; c < ldy; c++) touched += !isnan(y[r * ldy + c]);
    EXPECT(touched == 0, "%s: %d padding elements of y written", what, touched);
    EXPECT_CUDA_OK(pt_cuda_bsr_destroy(ctx, h));
    pt_cuda_free(ctx, dw);
    pt_cuda_free(ctx, dx);
    pt_cuda_free(ctx, dy);
    pt_cuda_free(ctx, db);
    free(w);
    free(x);
    free(bias);
    free(y);
}

static void test_bsr_errors(pt_cuda_ctx* ctx) {
    float* w = rand_host(64 * 64, PT_BF16, -1, 1);
    void* dw = upload(ctx, w, 64 * 64, PT_BF16);
    void* dx = alloc_poisoned(ctx, 4 * 64, PT_F32);
    int64_t s[2] = {64, 64}, sx[2] = {4, 64}, sy[2] = {4, 63};
    pt_tensor tw = dev_tensor(dw, PT_BF16, 2, s), tw32 = dev_tensor(dw, PT_F32, 2, s);
    pt_cuda_bsr* h = NULL;
    EXPECT(pt_cuda_bsr_create(ctx, &tw32, &h) == PT_ERR_DTYPE && h == NULL, "bsr_create with an f32 weight: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_bsr_create(ctx, &tw, NULL) == PT_ERR_INVALID_ARGUMENT, "bsr_create out NULL");
    EXPECT_CUDA_OK(pt_cuda_bsr_create(ctx, &tw, &h));
    pt_tensor tx = dev_tensor(dx, PT_BF16, 2, sx), txf = dev_tensor(dx, PT_F16, 2, sx), ty = dev_tensor(dx, PT_BF16, 2, sy);
    pt_tensor tyok = dev_tensor(dx, PT_BF16, 2, sx);
    EXPECT(pt_cuda_bsr_matmul(ctx, h, &txf, NULL, &tyok) == PT_ERR_DTYPE, "bsr x f16 vs bf16 weight: %s", pt_cuda_last_error());
    pt_status st = pt_cuda_bsr_matmul(ctx, h, &tx, NULL, &ty);
    EXPECT(st == PT_ERR_SHAPE && strstr(pt_cuda_last_error(), "y"), "bsr y [4, 63]: %d %s", st, pt_cuda_last_error());
    int64_t sb[1] = {65};
    pt_tensor tb = dev_tensor(dx, PT_F32, 1, sb);
    EXPECT(pt_cuda_bsr_matmul(ctx, h, &tx, &tb, &tyok) == PT_ERR_SHAPE, "bsr bias [65]: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_bsr_matmul(ctx, NULL, &tx, NULL, &tyok) == PT_ERR_INVALID_ARGUMENT, "bsr NULL handle");
    EXPECT_CUDA_OK(pt_cuda_bsr_destroy(ctx, h));
    EXPECT_CUDA_OK(pt_cuda_bsr_destroy(ctx, NULL));
    pt_cuda_free(ctx, dw);
    pt_cuda_free(ctx, dx);
    free(w);
}

/* ---------------------------------------------------------------- 2:4 */

/* the contract's pruning: per group of 4 along k keep the 2 largest |w| (ties: lower k) */
static void prune24_host(float* w, int64_t n, int64_t k) {
    for (int64_t r = 0; r < n; r++)
        for (int64_t c0 = 0; c0 < k; c0 += 4) {
            float a[4];
            for (int i = 0; i < 4; i++) a[i] = c0 + i < k ? fabsf(w[r * k + c0 + i]) : 0.0f;
            int keep[4];
            for (int i = 0; i < 4; i++) {
                int beat = 0;
                for (int j = 0; j < 4; j++)
                    if (j != i && (a[j] > a[i] || (a[j] == a[i] && j < i))) beat++;
                keep[i] = beat < 2;
            }
            for (int i = 0; i < 4 && c0 + i < k; i++)
                if (!keep[i]) w[r * k + c0 + i] = 0.0f;
        }
}

static int g_have_sparselt = -1;

static void test_sparse24(pt_cuda_ctx* ctx, int32_t dt, int64_t m, int64_t n, int64_t k, int bias_kind, int64_t x_pad, int64_t y_pad,
                          int pre_pruned) {
    if (!g_have_sparselt) return;
    char what[160];
    snprintf(what, sizeof what, "sparse24 %s m=%lld n=%lld k=%lld bias=%d xpad=%lld ypad=%lld pre=%d", dtname(dt), (long long)m,
             (long long)n, (long long)k, bias_kind, (long long)x_pad, (long long)y_pad, pre_pruned);
    float* w = rand_host(n * k, dt, -1, 1);
    /* plant ties: a few groups with equal magnitudes */
    for (int64_t i = 0; i + 3 < n * k; i += 37) w[i + 1] = -w[i];
    float* wp = malloc((size_t)(n * k + 1) * sizeof(float));
    memcpy(wp, w, (size_t)(n * k) * sizeof(float));
    prune24_host(wp, n, k);
    float* x = rand_host(m * k, dt, -1, 1);
    int32_t bdt = bias_kind == 1 ? PT_F32 : dt;
    float* bias = bias_kind ? rand_host(n, bdt, -2, 2) : NULL;
    void* dw = upload(ctx, pre_pruned ? wp : w, (size_t)(n * k), dt);
    int64_t sw[2] = {n, k};
    pt_tensor tw = dev_tensor(dw, dt, 2, sw);
    pt_cuda_sparse24* h = NULL;
    pt_cuda_sparse24_params p = {pre_pruned ? 0 : 1, -1, 0, 0};
    pt_status st = pt_cuda_sparse24_create(ctx, &tw, &p, &h);
    if (st == PT_ERR_UNSUPPORTED && g_have_sparselt < 0) {
        printf("test_cuda_sparse: 2:4 tests skipped (%s)\n", pt_cuda_last_error());
        EXPECT(strstr(pt_cuda_last_error(), "cuSPARSELt") != NULL, "the message names cuSPARSELt: %s", pt_cuda_last_error());
        g_have_sparselt = 0;
        pt_cuda_free(ctx, dw);
        free(w);
        free(wp);
        free(x);
        free(bias);
        return;
    }
    EXPECT(st == PT_OK, "%s: create: %s", what, pt_cuda_last_error());
    g_have_sparselt = 1;
    if (!h) return;
    /* the pruned weight equals the host's pruning exactly */
    void* dwp = alloc_poisoned(ctx, (size_t)(n * k), dt);
    pt_tensor twp = dev_tensor(dwp, dt, 2, sw);
    EXPECT_CUDA_OK(pt_cuda_sparse24_pruned(ctx, h, &twp));
    float* got_wp = malloc((size_t)(n * k + 1) * sizeof(float));
    download(ctx, dwp, (size_t)(n * k), dt, got_wp);
    int64_t diff = 0;
    for (int64_t i = 0; i < n * k; i++) diff += got_wp[i] != wp[i];
    EXPECT(diff == 0, "%s: %lld pruned weights differ from the contract's pruning", what, (long long)diff);
    const int64_t ldx = k + x_pad, ldy = n + y_pad;
    void* dx = upload_strided(ctx, x, m, k, ldx, dt);
    void* db = bias ? upload(ctx, bias, (size_t)n, bdt) : NULL;
    pt_tensor tx = strided_tensor(dx, dt, m, k, ldx);
    int64_t sb[1] = {n};
    pt_tensor tb = dev_tensor(db, bdt, 1, sb);
    float* y = malloc((size_t)(m * ldy + 1) * sizeof(float));
    for (int mode = 0; mode <= 2; mode++) {
        void* dy = alloc_poisoned(ctx, (size_t)(m * ldy), dt);
        pt_tensor ty = strided_tensor(dy, dt, m, n, ldy);
        char w2[200];
        snprintf(w2, sizeof w2, "%s mode=%d", what, mode);
        st = pt_cuda_sparse24_matmul(ctx, h, &tx, bias ? &tb : NULL, &ty, mode);
        if (mode == 1 && st == PT_ERR_UNSUPPORTED) { /* cuSPARSELt may have no kernel for a tiny M */
            printf("  %s: %s\n", w2, pt_cuda_last_error());
            pt_cuda_free(ctx, dy);
            continue;
        }
        EXPECT(st == PT_OK, "%s: %s", w2, pt_cuda_last_error());
        download(ctx, dy, (size_t)(m * ldy), dt, y);
        /* sparse path: cuSPARSELt rounds the product to y's dtype, the bias is added after */
        check_out(w2, y, ldy, x, wp, bias, m, n, k, dt, bias ? 2 : 1);
        int touched = 0;
        for (int64_t r = 0; r < m; r++)
            for (int64_t c = n; c < ldy; c++) touched += !isnan(y[r * ldy + c]);
        EXPECT(touched == 0, "%s: %d padding elements of y written", w2, touched);
        pt_cuda_free(ctx, dy);
    }
    int32_t path = 0;
    EXPECT_CUDA_OK(pt_cuda_sparse24_path(h, 1, &path));
    EXPECT(path == 2, "path for M=1 is %d, expected 2 (dense)", path);
    EXPECT_CUDA_OK(pt_cuda_sparse24_path(h, 4096, &path));
    EXPECT(path == 1, "path for M=4096 is %d, expected 1 (sparse)", path);
    EXPECT_CUDA_OK(pt_cuda_sparse24_destroy(ctx, h));
    pt_cuda_free(ctx, dw);
    pt_cuda_free(ctx, dwp);
    pt_cuda_free(ctx, dx);
    pt_cuda_free(ctx, db);
    free(w);
    free(wp);
    free(got_wp);
    free(x);
    free(bias);
    free(y);
}

static void test_sparse24_errors(pt_cuda_ctx* ctx) {
    if (g_have_sparselt != 1) return;
    float* w = rand_host(64 * 64, PT_BF16, 0.5, 1); /* no zeros: not 2:4 */
    void* dw = upload(ctx, w, 64 * 64, PT_BF16);
    int64_t s[2] = {64, 64};
    pt_tensor tw = dev_tensor(dw, PT_BF16, 2, s), tw32 = dev_tensor(dw, PT_F32, 2, s);
    pt_cuda_sparse24* h = NULL;
    pt_cuda_sparse24_params p = {0, -1, 0, 0};
    pt_status st = pt_cuda_sparse24_create(ctx, &tw, &p, &h);
    EXPECT(st == PT_ERR_INVALID_ARGUMENT && h == NULL && strstr(pt_cuda_last_error(), "2:4"), "a dense weight with prune=0: %d %s", st,
           pt_cuda_last_error());
    EXPECT(pt_cuda_sparse24_create(ctx, &tw32, NULL, &h) == PT_ERR_DTYPE, "f32 weight: %s", pt_cuda_last_error());
    EXPECT_CUDA_OK(pt_cuda_sparse24_create(ctx, &tw, NULL, &h));
    void* dx = alloc_poisoned(ctx, 8 * 64, PT_F32);
    int64_t sx[2] = {8, 64}, sbad[2] = {8, 60};
    pt_tensor tx = dev_tensor(dx, PT_BF16, 2, sx), txbad = dev_tensor(dx, PT_BF16, 2, sbad), txf = dev_tensor(dx, PT_F16, 2, sx);
    EXPECT(pt_cuda_sparse24_matmul(ctx, h, &txbad, NULL, &tx, 0) == PT_ERR_SHAPE, "x [8, 60]: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_sparse24_matmul(ctx, h, &txf, NULL, &tx, 0) == PT_ERR_DTYPE, "x f16: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_sparse24_matmul(ctx, h, &tx, NULL, &tx, 3) == PT_ERR_INVALID_ARGUMENT, "mode 3: %s", pt_cuda_last_error());
    EXPECT_CUDA_OK(pt_cuda_sparse24_destroy(ctx, h));
    EXPECT_CUDA_OK(pt_cuda_sparse24_destroy(ctx, NULL));
    pt_cuda_free(ctx, dw);
    pt_cuda_free(ctx, dx);
    free(w);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    skip_without_gpu("test_cuda_sparse");
    pt_test_seed(29);
    pt_cuda_ctx* ctx = NULL;
    EXPECT_CUDA_OK(pt_cuda_ctx_create(NULL, &ctx));
    if (!ctx) return pt_test_finish("test_cuda_sparse");

    /* block-sparse: direct and padded x, split (small M) and tiled paths, every output/bias kind */
    test_bsr(ctx, PT_BF16, PT_BF16, 1, 64, 64, 1.0, 0, 0, 0, -1);
    test_bsr(ctx, PT_BF16, PT_F32, 7, 65, 63, 0.7, 1, 3, 5, -1);
    test_bsr(ctx, PT_F16, PT_F16, 130, 200, 129, 0.5, 2, 0, 0, 1);
    test_bsr(ctx, PT_BF16, PT_BF16, 33, 128, 256, 0.5, 1, 8, 1, -1);
    test_bsr(ctx, PT_BF16, PT_BF16, 5, 512, 1024, 0.3, 2, 0, 0, 2);
    test_bsr(ctx, PT_F16, PT_F32, 300, 192, 320, 0.6, 1, 16, 0, -1);
    test_bsr(ctx, PT_BF16, PT_BF16, 257, 320, 512, 0.1, 0, 0, 0, -1);
    test_bsr(ctx, PT_BF16, PT_BF16, 16, 256, 128, 0.0, 1, 0, 0, -1); /* no block at all: y = bias */
    test_bsr_errors(ctx);

    /* 2:4 through cuSPARSELt */
    test_sparse24(ctx, PT_BF16, 128, 256, 512, 0, 0, 0, 0);
    test_sparse24(ctx, PT_BF16, 1, 64, 64, 1, 0, 0, 0);
    test_sparse24(ctx, PT_F16, 7, 65, 63, 2, 1, 3, 0);
    test_sparse24(ctx, PT_BF16, 130, 200, 129, 1, 0, 0, 0);
    test_sparse24(ctx, PT_BF16, 96, 128, 256, 2, 8, 8, 1);
    test_sparse24(ctx, PT_F16, 256, 384, 1024, 1, 0, 0, 0);
    test_sparse24(ctx, PT_BF16, 16, 512, 2048, 0, 0, 0, 1);
    test_sparse24(ctx, PT_BF16, 40, 1024, 1024, 1, 0, 0, 0); /* N, K >= 1024: the algorithm search runs */
    test_sparse24(ctx, PT_F16, 136, 1152, 1280, 2, 0, 8, 0);
    test_sparse24_errors(ctx);

    EXPECT_CUDA_OK(pt_cuda_ctx_destroy(ctx));
    return pt_test_finish("test_cuda_sparse");
}
