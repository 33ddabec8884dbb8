/* pt_layer_norm, pt_rms_norm, pt_add_layer_norm, pt_add_rms_norm and pt_softmax against
 * double references: dtype combinations, odd sizes, strided rows, in place, NaN-poisoned
 * outputs, special rows, both code paths, bad inputs. */
#include "elem_util.h"

static const int64_t COLS[] = {1, 7, 16, 63, 65, 127, 384, 1000, 4099};
static const int64_t ROWS[] = {1, 3, 16};

/* ---------------------------------------------------------------- norms */

/* v: rows x cols input values (already the sum x + residual when fused) */
static void ref_norm(const double* v, int64_t rows, int64_t cols, const float* g, const float* b, double eps, int rms,
                     double* out) {
    for (int64_t r = 0; r < rows; r++) {
        const double* x = v + r * cols;
        double mean = 0, var = 0;
        if (!rms) {
            for (int64_t j = 0; j < cols; j++) mean += x[j];
            mean /= (double)cols;
        }
        for (int64_t j = 0; j < cols; j++) var += (x[j] - mean) * (x[j] - mean);
        var /= (double)cols;
        double rs = 1.0 / sqrt(var + eps);
        for (int64_t j = 0; j < cols; j++) out[r * cols + j] = (x[j] - mean) * rs * g[j] + (b ? b[j] : 0.0);
    }
}

/* mode: 0 plain, 1 fused without sum_out, 2 fused with sum_out, 3 fused with sum_out = residual
 * (in place residual stream), 4 plain in place (out = x) */
static void check_norm(tu_path* p, int64_t rows, int64_t cols, int xdt, int rdt, int odt, int sdt, int rms, int mode,
                       int with_beta, double offset) {
    int64_t shape[2] = {rows, cols}, gshape[1] = {cols};
    int64_t n = rows * cols;
    tbuf x = tb_new(xdt, 2, shape, 2), res = tb_new(rdt, 2, shape, 1), g = tb_new(PT_F32, 1, gshape, 0),
         bt = tb_new(PT_F32, 1, gshape, 0);
    tb_rand(&x, offset - 2, offset + 2); /* an offset makes the mean large vs the spread */
    tb_rand(&res, -1, 1);
    tb_rand(&g, 0.5, 1.5);
    tb_rand(&bt, -1, 1);
    double* v = malloc(sizeof(double) * (size_t)n);
    double* want = malloc(sizeof(double) * (size_t)n);
    double* want_sum = malloc(sizeof(double) * (size_t)n);
    int fused = mode >= 1 && mode <= 3;
    if (mode == 3) sdt = rdt;
    for (int64_t i = 0; i < n; i++) {
        double s = tb_get(&x, i) + (fused ? tb_get(&res, i) : 0.0);
        want_sum[i] = s;
        /* with sum_out, the norm reads the sum as stored (rounded to sdt) */
        v[i] = (mode == 2 || mode == 3) ? tu_round((float)s, sdt) : s;
    }
    if (rms) with_beta = 0; /* RMSNorm has no shift */
    ref_norm(v, rows, cols, (const float*)g.mem, with_beta ? (const float*)bt.mem : NULL, 1e-5, rms, want);
    tbuf o, so;
    memset(&so, 0, sizeof so);
    if (mode == 4) {
        o = x;
        odt = xdt;
    } else {
        o = tb_new(odt, 2, shape, 3);
        tb_poison(&o);
    }
    if (mode == 2) {
        so = tb_new(sdt, 2, shape, 0);
        tb_poison(&so);
    }
    pt_tensor* beta = with_beta ? &bt.t : NULL;
    pt_tensor* sum_out = mode == 2 ? &so.t : mode == 3 ? &res.t : NULL;
    if (rms) {
        if (fused) EXPECT_OK(pt_add_rms_norm(p->ctx, &x.t, &res.t, &g.t, 1e-5f, &o.t, sum_out));
        else EXPECT_OK(pt_rms_norm(p->ctx, &x.t, &g.t, 1e-5f, &o.t));
    } else {
        if (fused) EXPECT_OK(pt_add_layer_norm(p->ctx, &x.t, &res.t, &g.t, beta, 1e-5f, &o.t, sum_out));
        else EXPECT_OK(pt_layer_norm(p->ctx, &x.t, &g.t, beta, 1e-5f, &o.t));
    }
    /* f32: the mean of `cols` values and a centered variance, both with f32 partial sums */
    double rtol = tu_rtol(odt, 2e-6 + 2e-8 * sqrt((double)cols) * (1 + fabs(offset)));
    TU_COMPARE(&o, want, 2e-5 * (1 + fabs(offset) / 4), rtol, "%s %s %lldx%lld x=%s r=%s out=%s sum=%s mode=%d beta=%d off=%g",
               p->name, rms ? "rms_norm" : "layer_norm", (long long)rows, (long long)cols, tu_dt(xdt), tu_dt(rdt),
               tu_dt(odt), tu_dt(sdt), mode, with_beta, offset);
    if (mode == 2 || mode == 3) {
        tbuf* s = mode == 2 ? &so : &res;
        TU_COMPARE(s, want_sum, 1e-6, tu_rtol(sdt, 1e-7), "%s sum_out mode=%d", p->name, mode);
    }
    tb_free(&x);
    tb_free(&res);
    tb_free(&g);
    tb_free(&bt);
    if (mode != 4) tb_free(&o);
    if (mode == 2) tb_free(&so);
    free(v);
    free(want);
    free(want_sum);
}

static void test_norms(tu_path* p) {
    for (int rms = 0; rms <= 1; rms++)
        for (size_t r = 0; r < sizeof ROWS / sizeof ROWS[0]; r++)
            for (size_t c = 0; c < sizeof COLS / sizeof COLS[0]; c++) {
                for (int k = 0; k < 4; k++) /* x dtype x out dtype, plain */
                    check_norm(p, ROWS[r], COLS[c], tu_dts[k & 1], PT_F32, tu_dts[k >> 1], PT_F32, rms, 0, (int)(c & 1), 0.0);
                for (int k = 0; k < 8; k++) /* fused: x, residual, out dtypes */
                    check_norm(p, ROWS[r], COLS[c], tu_dts[k & 1], tu_dts[(k >> 1) & 1], tu_dts[k >> 2], PT_F32, rms,
                               1 + (int)((k + c) % 3), (int)(c & 1), 0.0);
            }
    for (int rms = 0; rms <= 1; rms++) {
        check_norm(p, 5, 384, PT_F32, PT_F32, PT_F32, PT_BF16, rms, 2, 1, 0.0);   /* bf16 sum_out */
        check_norm(p, 5, 384, PT_BF16, PT_F32, PT_F32, PT_F32, rms, 4, 1, 0.0);   /* in place bf16 */
        check_norm(p, 5, 1000, PT_F32, PT_F32, PT_F32, PT_F32, rms, 4, 0, 0.0);   /* in place f32 */
        check_norm(p, 7, 768, PT_F32, PT_F32, PT_F32, PT_F32, rms, 0, 1, 100.0);  /* large mean */
        check_norm(p, 129, 384, PT_F32, PT_F32, PT_BF16, PT_F32, rms, 0, 1, 0.0); /* threaded */
        check_norm(p, 129, 384, PT_BF16, PT_BF16, PT_F32, PT_F32, rms, 3, 1, 0.0);
        /* rows longer than the fused kernel's scratch row: it re-adds x + r in each pass */
        check_norm(p, 3, 16411, PT_F32, PT_BF16, PT_F32, PT_F32, rms, 1, 1, 0.0);
        check_norm(p, 2, 20000, PT_BF16, PT_F32, PT_BF16, PT_F32, rms, 1, 0, 3.0);
    }
}

static void test_norm_special(tu_path* p) {
    /* a constant row (variance 0: out = beta), a row with NaN, a row with inf */
    int64_t shape[2] = {4, 33}, gs[1] = {33};
    tbuf x = tb_new(PT_F32, 2, shape, 0), o = tb_new(PT_F32, 2, shape, 0), g = tb_new(PT_F32, 1, gs, 0),
         b = tb_new(PT_F32, 1, gs, 0);
    tb_rand(&g, 0.5, 1.5);
    tb_rand(&b, -1, 1);
    for (int j = 0; j < 33; j++) {
        tb_set(&x, j, 3.25f);
        tb_set(&x, 33 + j, j == 5 ? NAN : (float)j);
        tb_set(&x, 66 + j, j == 7 ? INFINITY : (float)j);
        tb_set(&x, 99 + j, (float)j * 1e-3f);
    }
    tb_poison(&o);
    EXPECT_OK(pt_layer_norm(p->ctx, &x.t, &g.t, &b.t, 1e-5f, &o.t));
    int ok_const = 1, nan_row = 1, inf_row = 1;
    for (int j = 0; j < 33; j++) {
        ok_const &= fabs(tb_get(&o, j) - tb_get(&b, j)) < 1e-6;
        nan_row &= tb_get(&o, 33 + j) != tb_get(&o, 33 + j);
        inf_row &= tb_get(&o, 66 + j) != tb_get(&o, 66 + j);
    }
    EXPECT(ok_const, "%s layer_norm of a constant row must be beta", p->name);
    EXPECT(nan_row, "%s layer_norm: a NaN makes its row NaN", p->name);
    EXPECT(inf_row, "%s layer_norm: an inf makes its row NaN (inf - inf)", p->name);
    /* eps = 0 on a tiny-variance row still finite */
    EXPECT_OK(pt_rms_norm(p->ctx, &x.t, &g.t, 0.0f, &o.t));
    EXPECT(isfinite(tb_get(&o, 99 + 3)), "%s rms_norm eps=0 finite", p->name);
    tb_free(&x);
    tb_free(&o);
    tb_free(&g);
    tb_free(&b);
}

/* ---------------------------------------------------------------- softmax */

static void check_softmax(tu_path* p, int64_t rows, int64_t cols, int xdt, int odt, float scale, int inplace,
                          double spread) {
    int64_t shape[2] = {rows, cols}, n = rows * cols;
    tbuf x = tb_new(xdt, 2, shape, 1);
    tb_rand(&x, -spread, spread);
    double* want = malloc(sizeof(double) * (size_t)n);
    double s = scale == 0.0f ? 1.0 : scale;
    for (int64_t r = 0; r < rows; r++) {
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < cols; j++) m = fmax(m, s * tb_get(&x, r * cols + j));
        for (int64_t j = 0; j < cols; j++) sum += exp(s * tb_get(&x, r * cols + j) - m);
        for (int64_t j = 0; j < cols; j++) want[r * cols + j] = exp(s * tb_get(&x, r * cols + j) - m) / sum;
    }
    tbuf o = inplace ? x : tb_new(odt, 2, shape, 2);
    if (inplace) odt = xdt;
    else tb_poison(&o);
    EXPECT_OK(pt_softmax(p->ctx, &x.t, scale, &o.t));
    TU_COMPARE(&o, want, 1e-9, tu_rtol(odt, 3e-6 + 1e-7 * spread * fabs(s)), "%s softmax %lldx%lld x=%s out=%s scale=%g inplace=%d",
               p->name, (long long)rows, (long long)cols, tu_dt(xdt), tu_dt(odt), (double)scale, inplace);
    tb_free(&x);
    if (!inplace) tb_free(&o);
    free(want);
}

static void test_softmax(tu_path* p) {
    for (size_t r = 0; r < sizeof ROWS / sizeof ROWS[0]; r++)
        for (size_t c = 0; c < sizeof COLS / sizeof COLS[0]; c++)
            for (int k = 0; k < 4; k++) check_softmax(p, ROWS[r], COLS[c], tu_dts[k & 1], tu_dts[k >> 1], 0.125f, 0, 8.0);
    check_softmax(p, 9, 500, PT_F32, PT_F32, 0.0f, 1, 30.0);     /* scale 0 = 1, in place, wide logits */
    check_softmax(p, 9, 500, PT_BF16, PT_BF16, -2.0f, 1, 5.0);   /* negative scale, in place bf16 */
    check_softmax(p, 200, 257, PT_F32, PT_BF16, 1.0f, 0, 80.0);  /* threaded, logits up to 80 */
    check_softmax(p, 2, 32771, PT_F32, PT_F32, 1.0f, 0, 20.0);   /* long rows (a vocabulary) */

    /* special rows: -inf entries (masked), all -inf (NaN as PyTorch), a NaN, +inf */
    int64_t shape[2] = {4, 19};
    tbuf x = tb_new(PT_F32, 2, shape, 0), o = tb_new(PT_F32, 2, shape, 0);
    for (int j = 0; j < 19; j++) {
        tb_set(&x, j, j % 3 == 0 ? -INFINITY : (float)j * 0.1f);
        tb_set(&x, 19 + j, -INFINITY);
        tb_set(&x, 38 + j, j == 11 ? NAN : 1.0f);
        tb_set(&x, 57 + j, j == 2 ? INFINITY : 1.0f);
    }
    tb_poison(&o);
    EXPECT_OK(pt_softmax(p->ctx, &x.t, 1.0f, &o.t));
    double sum = 0;
    int masked_zero = 1, nan1 = 1, nan2 = 1, nan3 = 1;
    for (int j = 0; j < 19; j++) {
        sum += tb_get(&o, j);
        if (j % 3 == 0) masked_zero &= tb_get(&o, j) == 0.0;
        nan1 &= tb_get(&o, 19 + j) != tb_get(&o, 19 + j);
        nan2 &= tb_get(&o, 38 + j) != tb_get(&o, 38 + j);
        nan3 &= tb_get(&o, 57 + j) != tb_get(&o, 57 + j);
    }
    EXPECT(fabs(sum - 1.0) < 1e-6 && masked_zero, "%s softmax with -inf entries: sum %g, masked zero %d", p->name, sum,
           masked_zero);
    EXPECT(nan1 && nan2 && nan3, "%s softmax rows all -inf / NaN / +inf must be NaN (%d %d %d)", p->name, nan1, nan2, nan3);
    tb_free(&x);
    tb_free(&o);
}

/* ---------------------------------------------------------------- bad inputs */

static void expect_fail(pt_status got, pt_status want, const char* what, const char* needle) {
    const char* msg = pt_last_error();
    EXPECT(got == want, "%s: status %d, expected %d (%s)", what, (int)got, (int)want, msg);
    EXPECT(msg[0] != 0 && (!needle || strstr(msg, needle)), "%s: message '%s' should mention '%s'", what, msg,
           needle ? needle : "");
}

static void test_bad_inputs(pt_ctx* ctx) {
    float buf[64] = {0}, out[64], gb[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    for (int i = 0; i < 64; i++) out[i] = 7.0f;
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s4[1] = {4}, s13[2] = {1, 3};
    pt_tensor x = pt_test_tensor(buf, PT_F32, 2, s23), o = pt_test_tensor(out, PT_F32, 2, s23),
              g = pt_test_tensor(gb, PT_F32, 1, s3), g4 = pt_test_tensor(gb, PT_F32, 1, s4),
              g2d = pt_test_tensor(gb, PT_F32, 2, s13), gbf = pt_test_tensor(gb, PT_BF16, 1, s3);
    expect_fail(pt_layer_norm(ctx, &x, &g4, NULL, 1e-5f, &o), PT_ERR_SHAPE, "ln gamma size", "gamma");
    expect_fail(pt_layer_norm(ctx, &x, &g2d, NULL, 1e-5f, &o), PT_ERR_SHAPE, "ln gamma 2-D", "gamma");
    expect_fail(pt_layer_norm(ctx, &x, &gbf, NULL, 1e-5f, &o), PT_ERR_DTYPE, "ln gamma bf16", "gamma");
    expect_fail(pt_layer_norm(ctx, &x, &g, &g4, 1e-5f, &o), PT_ERR_SHAPE, "ln beta size", "beta");
    expect_fail(pt_layer_norm(ctx, &x, NULL, NULL, 1e-5f, &o), PT_ERR_INVALID_ARGUMENT, "ln NULL gamma", "gamma");
    expect_fail(pt_layer_norm(ctx, &x, &g, NULL, -1.0f, &o), PT_ERR_INVALID_ARGUMENT, "ln negative eps", "eps");
    expect_fail(pt_layer_norm(ctx, &x, &g, NULL, NAN, &o), PT_ERR_INVALID_ARGUMENT, "ln NaN eps", "eps");
    expect_fail(pt_rms_norm(ctx, &x, &g, INFINITY, &o), PT_ERR_INVALID_ARGUMENT, "rms inf eps", "eps");
    pt_tensor o2 = pt_test_tensor(out, PT_F32, 2, s13);
    expect_fail(pt_rms_norm(ctx, &x, &g, 1e-5f, &o2), PT_ERR_SHAPE, "rms out shape", "same shape");
    expect_fail(pt_add_layer_norm(ctx, &x, NULL, &g, NULL, 1e-5f, &o, NULL), PT_ERR_INVALID_ARGUMENT, "add_ln NULL residual",
                "residual");
    expect_fail(pt_add_layer_norm(ctx, &x, &o2, &g, NULL, 1e-5f, &o, NULL), PT_ERR_SHAPE, "add_ln residual shape",
                "residual");
    expect_fail(pt_add_rms_norm(ctx, &x, &x, &g, 1e-5f, &o, &o2), PT_ERR_SHAPE, "add_rms sum_out shape", "sum_out");
    pt_tensor xi = x;
    xi.dtype = PT_I32;
    expect_fail(pt_add_rms_norm(ctx, &x, &xi, &g, 1e-5f, &o, NULL), PT_ERR_DTYPE, "add_rms residual i32", "residual");
    expect_fail(pt_softmax(ctx, &x, NAN, &o), PT_ERR_INVALID_ARGUMENT, "softmax NaN scale", "scale");
    expect_fail(pt_softmax(ctx, &x, 1.0f, &o2), PT_ERR_SHAPE, "softmax shape", "same shape");
    expect_fail(pt_softmax(NULL, &x, 1.0f, &o), PT_ERR_INVALID_ARGUMENT, "softmax NULL ctx", "context");
    int untouched = 1;
    for (int i = 0; i < 6; i++) untouched &= out[i] == 7.0f;
    EXPECT(untouched, "failed calls must not write");
}

int main(void) {
    pt_test_seed(12);
    tu_path paths[2];
    int np = tu_paths(paths, 2);
    for (int i = 0; i < np; i++) {
        test_norms(&paths[i]);
        test_norm_special(&paths[i]);
        test_softmax(&paths[i]);
    }
    test_bad_inputs(paths[0].ctx);
    for (int i = 0; i < np; i++) pt_ctx_destroy(paths[i].ctx);
    return pt_test_finish("test_norm");
}
