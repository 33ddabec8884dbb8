/* pt_add, pt_unary, pt_swiglu, pt_convert against double references: every dtype
 * combination, odd sizes, strided rows, in place, NaN-poisoned outputs, special values,
 * both code paths (AVX-512 and portable), and bad inputs. */
#include "elem_util.h"

static const int64_t COLS[] = {1, 7, 16, 63, 65, 127, 384, 1000};
static const int64_t ROWS[] = {1, 3, 17};

/* ---------------------------------------------------------------- references (double) */

static double ref_unary(int op, double x) {
    switch (op) {
    case PT_UNARY_GELU_ERF:
        if (x == -INFINITY) return 0.0;
        return 0.5 * x * erfc(-x / sqrt(2.0));
    case PT_UNARY_GELU_TANH: {
        if (x == -INFINITY) return 0.0;
        if (x == INFINITY) return x;
        double u = sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
        /* 1 + tanh(u) cancels (even in double) far left: use the identity 1 + tanh(u) = 2 sigmoid(2u) */
        return x > -3.0 ? 0.5 * x * (1.0 + tanh(u)) : x / (1.0 + exp(-2.0 * u));
    }
    case PT_UNARY_SILU:
        if (x == -INFINITY) return 0.0;
        return x < 0 ? x * exp(x) / (1.0 + exp(x)) : x / (1.0 + exp(-x));
    case PT_UNARY_RELU: return x != x ? x : (x < 0 ? 0.0 : x);
    case PT_UNARY_TANH: return tanh(x);
    default: return x < 0 ? exp(x) / (1.0 + exp(x)) : 1.0 / (1.0 + exp(-x));
    }
}
static const char* op_name(int op) {
    static const char* n[] = {"gelu_erf", "gelu_tanh", "silu", "relu", "tanh", "sigmoid"};
    return n[op];
}
/* Tolerance for an f32 result of f at x. silu, sigmoid and tanh feed the exact input to
 * exp, so they are held to 6 ulps flat. The GELUs round an intermediate argument (x/sqrt2,
 * or the cubic u) before an exponential-like function, which legitimately amplifies one
 * rounding by the condition number: 8 ulps x (1 + cond). Subnormal results (below FLT_MIN)
 * get an absolute FLT_MIN: the exponentials there are subnormal too. */
static double unary_tol(int op, double x, double want) {
    const double ulp = 5.9604645e-8, flt_min = 1.1754944e-38;
    if (op != PT_UNARY_GELU_ERF && op != PT_UNARY_GELU_TANH) return 6 * ulp * fabs(want) + flt_min;
    double kappa = 0.0;
    if (x != 0.0 && isfinite(x) && want != 0.0 && isfinite(want)) {
        double h = 1e-7 * fabs(x);
        kappa = fabs((ref_unary(op, x + h) - ref_unary(op, x - h)) / (2 * h) * x / want);
    }
    return 8 * ulp * (1.0 + kappa) * fabs(want) + flt_min;
}

/* ---------------------------------------------------------------- add */

static void check_add(tu_path* p, int64_t rows, int64_t cols, int adt, int bdt, int odt, int bcast, int inplace,
                      int64_t pad) {
    int64_t shape[2] = {rows, cols}, bshape[1] = {cols};
    tbuf a = tb_new(adt, 2, shape, pad), b = bcast ? tb_new(bdt, 1, bshape, 0) : tb_new(bdt, 2, shape, pad + 1);
    tb_rand(&a, -3, 3);
    tb_rand(&b, -3, 3);
    double* want = malloc(sizeof(double) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) want[i] = tb_get(&a, i) + tb_get(&b, bcast ? i % cols : i);
    tbuf o = inplace ? a : tb_new(odt, 2, shape, pad + 2);
    if (!inplace) tb_poison(&o);
    if (inplace) odt = adt;
    EXPECT_OK(pt_add(p->ctx, &a.t, &b.t, &o.t));
    /* the f32 sum is exact to 2^-24 relative; a bf16 output rounds once */
    TU_COMPARE(&o, want, 1e-6, tu_rtol(odt, 1e-7), "%s add %lldx%lld a=%s b=%s out=%s bcast=%d inplace=%d pad=%lld", p->name,
               (long long)rows, (long long)cols, tu_dt(adt), tu_dt(bdt), tu_dt(odt), bcast, inplace, (long long)pad);
    tb_free(&a);
    tb_free(&b);
    if (!inplace) tb_free(&o);
    free(want);
}

static void test_add(tu_path* p) {
    for (size_t r = 0; r < sizeof ROWS / sizeof ROWS[0]; r++)
        for (size_t c = 0; c < sizeof COLS / sizeof COLS[0]; c++)
            for (int k = 0; k < 8; k++)
                check_add(p, ROWS[r], COLS[c], tu_dts[k & 1], tu_dts[(k >> 1) & 1], tu_dts[(k >> 2) & 1], (int)(c & 1),
                          0, (int64_t)(r % 2) * 3);
    check_add(p, 5, 1000, PT_F32, PT_F32, PT_F32, 0, 1, 0); /* out is a */
    check_add(p, 5, 1000, PT_BF16, PT_F32, PT_BF16, 1, 1, 5);
    check_add(p, 97, 1003, PT_F32, PT_BF16, PT_F32, 0, 0, 0); /* big enough to be split over threads */
    check_add(p, 1, 100003, PT_F32, PT_F32, PT_BF16, 0, 0, 0); /* one long row: column blocks */
    check_add(p, 41, 2011, PT_BF16, PT_F32, PT_F32, 1, 0, 3);  /* broadcast with strided rows, threaded */
    /* 3-D with a 1-D bias, out aliasing b (same-shape add): b is written while read */
    int64_t s3[3] = {3, 5, 33};
    tbuf a = tb_new(PT_F32, 3, s3, 1), b = tb_new(PT_F32, 3, s3, 0);
    tb_rand(&a, -1, 1);
    tb_rand(&b, -1, 1);
    double want[3 * 5 * 33];
    for (int64_t i = 0; i < 3 * 5 * 33; i++) want[i] = tb_get(&a, i) + tb_get(&b, i);
    EXPECT_OK(pt_add(p->ctx, &a.t, &b.t, &b.t));
    TU_COMPARE(&b, want, 1e-6, 1e-7, "%s add 3-D out=b", p->name);
    tb_free(&a);
    tb_free(&b);
}

/* ---------------------------------------------------------------- unary */

static void check_unary_values(tu_path* p, int op, int xdt, int odt, const float* v, int64_t n, int64_t pad,
                               const char* what) {
    int64_t cols = n > 100 ? 100 : n, rows = (n + cols - 1) / cols, shape[2] = {rows, cols};
    tbuf x = tb_new(xdt, 2, shape, pad), o = tb_new(odt, 2, shape, pad + 1);
    double* want = malloc(sizeof(double) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) tb_set(&x, i, v[i % n]);
    for (int64_t i = 0; i < rows * cols; i++) want[i] = ref_unary(op, tb_get(&x, i));
    tb_poison(&o);
    EXPECT_OK(pt_unary(p->ctx, op, &x.t, &o.t));
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < rows * cols; i++) {
        double g = tb_get(&o, i), w = want[i], xi = tb_get(&x, i);
        double tol = unary_tol(op, xi, w);
        if (odt == PT_BF16) { /* one more rounding, to the nearest bf16 of the exact value */
            w = tu_round((float)w, PT_BF16);
            tol += 4e-3 * fabs(w);
        }
        if (!tu_close(g, w, tol, 0.0)) {
            if (first < 0) first = i;
            bad++;
        }
    }
    EXPECT(bad == 0, "%s %s %s x=%s out=%s: %lld/%lld off, first x=%.9g got %.9g want %.9g", p->name, op_name(op), what,
           tu_dt(xdt), tu_dt(odt), (long long)bad, (long long)(rows * cols), first >= 0 ? tb_get(&x, first) : 0.0,
           first >= 0 ? tb_get(&o, first) : 0.0, first >= 0 ? want[first] : 0.0);
    EXPECT(tb_pads_intact(&o), "%s %s: wrote outside the tensor", p->name, op_name(op));
    tb_free(&x);
    tb_free(&o);
    free(want);
}

static void test_unary(tu_path* p) {
    /* a dense grid over the interesting range, the far tails, and special values */
    enum { NG = 8001 };
    float* grid = malloc(sizeof(float) * NG);
    for (int i = 0; i < NG; i++) grid[i] = -20.0f + 40.0f * (float)i / (NG - 1);
    float tails[400];
    for (int i = 0; i < 400; i++) tails[i] = (float)((i & 1 ? 1 : -1) * pow(10.0, -38.0 + 76.5 * (i / 2) / 199.0));
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 1e-45f, -1e-45f, 3.4e38f, -3.4e38f, 88.0f,
                             -88.0f, 89.0f, -89.0f, 104.0f, -104.0f, 0.625f, -0.625f, 0.6249999f, 16.0f, -16.0f,
                             15.999f, -15.999f, 1e-8f, -1e-8f, 5.0f, -5.0f, -9.0f, -13.0f, -14.5f, -30.0f};
    float* rnd = malloc(sizeof(float) * 3001);
    for (int i = 0; i < 3001; i++) rnd[i] = (float)pt_test_uniform(-8, 8);
    for (int op = PT_UNARY_GELU_ERF; op <= PT_UNARY_SIGMOID; op++) {
        check_unary_values(p, op, PT_F32, PT_F32, grid, NG, 0, "grid[-20,20]");
        check_unary_values(p, op, PT_F32, PT_F32, tails, 400, 3, "tails");
        check_unary_values(p, op, PT_F32, PT_F32, special, sizeof special / sizeof special[0], 0, "specials");
        for (int k = 0; k < 4; k++)
            for (size_t c = 0; c < sizeof COLS / sizeof COLS[0]; c++)
                check_unary_values(p, op, tu_dts[k & 1], tu_dts[k >> 1], rnd, COLS[c], (int64_t)(c % 3), "random");
        check_unary_values(p, op, PT_BF16, PT_F32, special, sizeof special / sizeof special[0], 0, "specials");
        check_unary_values(p, op, PT_F32, PT_BF16, special, sizeof special / sizeof special[0], 0, "specials");
    }
    /* in place, strided, large enough for threads */
    int64_t shape[2] = {77, 1001};
    tbuf x = tb_new(PT_F32, 2, shape, 7);
    tb_rand(&x, -6, 6);
    double* want = malloc(sizeof(double) * 77 * 1001);
    for (int64_t i = 0; i < 77 * 1001; i++) want[i] = ref_unary(PT_UNARY_GELU_ERF, tb_get(&x, i));
    EXPECT_OK(pt_unary(p->ctx, PT_UNARY_GELU_ERF, &x.t, &x.t));
    TU_COMPARE(&x, want, 1e-30, 2e-6, "%s gelu in place strided 77x1001", p->name);
    tb_free(&x);
    free(want);
    free(grid);
    free(rnd);
}

/* ---------------------------------------------------------------- swiglu */

static void check_swiglu(tu_path* p, int64_t rows, int64_t cols, int gdt, int udt, int odt, int inplace) {
    int64_t shape[2] = {rows, cols};
    tbuf g = tb_new(gdt, 2, shape, 1), u = tb_new(udt, 2, shape, 2);
    tb_rand(&g, -8, 8);
    tb_rand(&u, -2, 2);
    double* want = malloc(sizeof(double) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) want[i] = ref_unary(PT_UNARY_SILU, tb_get(&g, i)) * tb_get(&u, i);
    tbuf o = inplace ? u : tb_new(odt, 2, shape, 0);
    if (!inplace) tb_poison(&o);
    else odt = udt;
    EXPECT_OK(pt_swiglu(p->ctx, &g.t, &u.t, &o.t));
    TU_COMPARE(&o, want, 1e-6, tu_rtol(odt, 1e-6), "%s swiglu %lldx%lld g=%s u=%s out=%s inplace=%d", p->name,
               (long long)rows, (long long)cols, tu_dt(gdt), tu_dt(udt), tu_dt(odt), inplace);
    tb_free(&g);
    tb_free(&u);
    if (!inplace) tb_free(&o);
    free(want);
}

static void test_swiglu(tu_path* p) {
    for (size_t c = 0; c < sizeof COLS / sizeof COLS[0]; c++)
        for (int k = 0; k < 8; k++) check_swiglu(p, 3, COLS[c], tu_dts[k & 1], tu_dts[(k >> 1) & 1], tu_dts[k >> 2], 0);
    check_swiglu(p, 65, 1377, PT_BF16, PT_BF16, PT_BF16, 1);
    check_swiglu(p, 65, 1377, PT_F32, PT_F32, PT_F32, 0);
}

/* ---------------------------------------------------------------- convert */

static void check_convert(tu_path* p, int xdt, int odt, const float* v, int64_t n, int64_t pad) {
    int64_t cols = n > 257 ? 257 : n, rows = (n + cols - 1) / cols, shape[2] = {rows, cols};
    tbuf x = tb_new(xdt, 2, shape, pad), o = tb_new(odt, 2, shape, pad + 1);
    for (int64_t i = 0; i < rows * cols; i++) tb_set(&x, i, v[i % n]);
    double* want = malloc(sizeof(double) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) want[i] = tu_round((float)tb_get(&x, i), odt); /* exact RNE */
    tb_poison(&o);
    EXPECT_OK(pt_convert(p->ctx, &x.t, &o.t));
    TU_COMPARE(&o, want, 0.0, 0.0, "%s convert %s->%s %lldx%lld", p->name, tu_dt(xdt), tu_dt(odt), (long long)rows,
               (long long)cols);
    /* bit patterns: NaN must be the canonical one, signs of zeros kept */
    int64_t badbits = 0;
    for (int64_t i = 0; i < rows * cols && odt != PT_F32; i++) {
        uint16_t got;
        memcpy(&got, tb_at(&o, i), 2);
        float xv = (float)tb_get(&x, i);
        uint16_t w = odt == PT_BF16 ? tu_f32_to_bf16(xv) : tu_f32_to_f16(xv);
        if (got != w) badbits++;
    }
    EXPECT(badbits == 0, "%s convert %s->%s: %lld bit patterns differ from RNE", p->name, tu_dt(xdt), tu_dt(odt),
           (long long)badbits);
    tb_free(&x);
    tb_free(&o);
    free(want);
}

static void test_convert(tu_path* p) {
    /* every f16 and bf16 value, plus f32 values around every rounding boundary */
    enum { N = 65536 };
    float* v = malloc(sizeof(float) * N * 3);
    for (int i = 0; i < N; i++) v[i] = (float)tu_f16_value((uint16_t)i);
    for (int i = 0; i < N; i++) v[N + i] = tu_bf16_to_f32((uint16_t)i);
    for (int i = 0; i < N; i++) { /* halfway points and neighbours in f32 */
        uint32_t u = (uint32_t)pt_test_uniform(0, 4294967296.0);
        u = (u & 0xffff0000u) | ((i & 3) == 0 ? 0x8000u : (i & 3) == 1 ? 0x7fffu : (i & 3) == 2 ? 0x8001u : (u & 0xffffu));
        float f;
        memcpy(&f, &u, 4);
        v[2 * N + i] = f;
    }
    static const int dts[3] = {PT_F32, PT_BF16, PT_F16};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            check_convert(p, dts[a], dts[b], v, 3 * N, 0);
            check_convert(p, dts[a], dts[b], v + 12345, 1000, 3);
            check_convert(p, dts[a], dts[b], v + 777, 7, 1);
        }
    /* f16 rounding boundaries: values halfway between f16 neighbours, and overflow */
    float h[] = {65504.0f, 65519.99f, 65520.0f, 70000.0f, -65520.0f, 5.96046448e-8f, 2.98023224e-8f, 2.98023259e-8f,
                 8.94069672e-8f, 6.09755516e-5f, 6.10351562e-5f, 1.00048828f, 1.00146484f, -0.0f};
    check_convert(p, PT_F32, PT_F16, h, sizeof h / sizeof h[0], 0);
    /* same dtype in place: a no-op */
    int64_t shape[1] = {33};
    tbuf x = tb_new(PT_BF16, 1, shape, 0);
    tb_rand(&x, -5, 5);
    double want[33];
    for (int i = 0; i < 33; i++) want[i] = tb_get(&x, i);
    EXPECT_OK(pt_convert(p->ctx, &x.t, &x.t));
    TU_COMPARE(&x, want, 0.0, 0.0, "%s convert in place", p->name);
    tb_free(&x);
    free(v);
}

/* ---------------------------------------------------------------- bad inputs */

static void expect_fail(pt_status got, pt_status want, const char* what, const char* needle) {
    const char* msg = pt_last_error();
    EXPECT(got == want, "%s: status %d, expected %d (%s)", what, (int)got, (int)want, msg);
    EXPECT(msg[0] != 0 && (!needle || strstr(msg, needle)), "%s: message '%s' should mention '%s'", what, msg,
           needle ? needle : "");
}

static void test_bad_inputs(pt_ctx* ctx) {
    float buf[64], out[64];
    for (int i = 0; i < 64; i++) buf[i] = out[i] = 1.0f;
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s4[1] = {4}, s3[1] = {3};
    pt_tensor a = pt_test_tensor(buf, PT_F32, 2, s23), b = pt_test_tensor(buf, PT_F32, 2, s32),
              o = pt_test_tensor(out, PT_F32, 2, s23), b4 = pt_test_tensor(buf, PT_F32, 1, s4),
              b3 = pt_test_tensor(buf, PT_F32, 1, s3);
    expect_fail(pt_add(ctx, &a, &b, &o), PT_ERR_SHAPE, "add shape mismatch", "shape");
    expect_fail(pt_add(ctx, &a, &b4, &o), PT_ERR_SHAPE, "add bad broadcast", "[3]");
    EXPECT_OK(pt_add(ctx, &a, &b3, &o));
    expect_fail(pt_add(NULL, &a, &a, &o), PT_ERR_INVALID_ARGUMENT, "add NULL ctx", "context");
    expect_fail(pt_add(ctx, &a, NULL, &o), PT_ERR_INVALID_ARGUMENT, "add NULL b", "pt_add b");
    pt_tensor i32 = a;
    i32.dtype = PT_I32;
    expect_fail(pt_add(ctx, &a, &a, &i32), PT_ERR_DTYPE, "add i32 out", "i32");
    pt_tensor f16 = a;
    f16.dtype = PT_F16;
    expect_fail(pt_unary(ctx, PT_UNARY_RELU, &f16, &o), PT_ERR_DTYPE, "unary f16 x", "f16");
    expect_fail(pt_unary(ctx, 99, &a, &o), PT_ERR_INVALID_ARGUMENT, "unary bad op", "99");
    expect_fail(pt_unary(ctx, -1, &a, &o), PT_ERR_INVALID_ARGUMENT, "unary negative op", "-1");
    expect_fail(pt_unary(ctx, PT_UNARY_SILU, &a, &b), PT_ERR_SHAPE, "unary shape", "same shape");
    pt_tensor strided = a;
    strided.stride[1] = 8;
    expect_fail(pt_unary(ctx, PT_UNARY_SILU, &strided, &o), PT_ERR_SHAPE, "unary inner stride", "innermost");
    pt_tensor nodata = a;
    nodata.data = NULL;
    expect_fail(pt_swiglu(ctx, &a, &nodata, &o), PT_ERR_INVALID_ARGUMENT, "swiglu NULL data", "up");
    pt_tensor five = a;
    five.ndim = 5;
    expect_fail(pt_swiglu(ctx, &five, &a, &o), PT_ERR_SHAPE, "swiglu ndim 5", "ndim");
    pt_tensor neg = a;
    neg.shape[0] = -1;
    expect_fail(pt_convert(ctx, &neg, &o), PT_ERR_SHAPE, "convert negative dim", "negative");
    pt_tensor gpu = a;
    gpu.device = PT_DEVICE_CUDA;
    expect_fail(pt_convert(ctx, &gpu, &o), PT_ERR_INVALID_ARGUMENT, "convert cuda tensor", "device");
    pt_tensor half = pt_test_tensor(buf, PT_BF16, 2, s23);
    expect_fail(pt_convert(ctx, &a, &half), PT_ERR_INVALID_ARGUMENT, "convert overlapping dtypes", "overlaps");
    pt_tensor i8 = a;
    i8.dtype = PT_I8;
    expect_fail(pt_convert(ctx, &i8, &o), PT_ERR_DTYPE, "convert i8", "i8");
    /* failures wrote nothing */
    int untouched = 1;
    for (int i = 0; i < 6; i++) untouched &= out[i] == 2.0f || out[i] == 1.0f;
    EXPECT(untouched, "failed calls must not write");
    /* a success clears the previous message */
    EXPECT_OK(pt_add(ctx, &a, &a, &o));
    EXPECT(pt_last_error()[0] == 0, "message cleared after success: '%s'", pt_last_error());
    /* empty tensors are fine */
    int64_t s0[2] = {0, 5};
    pt_tensor e = pt_test_tensor(NULL, PT_F32, 2, s0);
    EXPECT_OK(pt_unary(ctx, PT_UNARY_GELU_ERF, &e, &e));
}

int main(void) {
    pt_test_seed(11);
    tu_path paths[2];
    int np = tu_paths(paths, 2);
    for (int i = 0; i < np; i++) {
        test_add(&paths[i]);
        test_unary(&paths[i]);
        test_swiglu(&paths[i]);
        test_convert(&paths[i]);
    }
    test_bad_inputs(paths[0].ctx);
    for (int i = 0; i < np; i++) pt_ctx_destroy(paths[i].ctx);
    return pt_test_finish("test_elementwise");
}
