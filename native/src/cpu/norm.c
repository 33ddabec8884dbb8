/* pt_layer_norm, pt_rms_norm and their residual-add fusions: validation, the row driver
 * and the portable row kernel. The AVX-512 row kernel lives in norm_avx512.c.
 *
 * Row kernel contract (pt_norm_row_fn): normalizes v = x (+ r when r is not NULL) over n
 * columns: LayerNorm with a two-pass mean/variance, or RMSNorm. Reading element j of x/r
 * happens before writing element j of out, so out may alias x or r exactly. */
#include "cpu/elem.h"

#include <math.h>

#define PBLK 256
#define PT_NORM_SCRATCH_COLS 16384

/* f32 values of v[i0 .. i0+m) (x + r), in buf or pointing into x when no work is needed. */
static const float* load_v(const void* x, int xdt, const void* r, int rdt, int64_t i0, int64_t m, float* buf,
                           float* tmp) {
    if (!r && xdt == PT_F32) return (const float*)x + i0;
    pt_load_row_f32((const char*)x + i0 * pt_dtype_size(xdt), xdt, m, buf);
    if (r) {
        pt_load_row_f32((const char*)r + i0 * pt_dtype_size(rdt), rdt, m, tmp);
        for (int64_t j = 0; j < m; j++) buf[j] += tmp[j];
    }
    return buf;
}

static void norm_row_portable(const void* x, int xdt, const void* r, int rdt, const float* gamma, const float* beta,
                              float eps, int rms, void* out, int odt, int64_t n) {
    float buf[PBLK], tmp[PBLK], acc[8];
    size_t eo = pt_dtype_size(odt);
    float mean = 0.0f;
    if (!rms) {
        for (int k = 0; k < 8; k++) acc[k] = 0.0f;
        for (int64_t i0 = 0; i0 < n; i0 += PBLK) {
            int64_t m = n - i0 < PBLK ? n - i0 : PBLK, j = 0;
            const float* v = load_v(x, xdt, r, rdt, i0, m, buf, tmp);
            for (; j + 8 <= m; j += 8)
                for (int k = 0; k < 8; k++) acc[k] += v[j + k];
            for (; j < m; j++) acc[j & 7] += v[j];
        }
        mean = (float)(((double)acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7]) / (double)n);
    }
    for (int k = 0; k < 8; k++) acc[k] = 0.0f;
    for (int64_t i0 = 0; i0 < n; i0 += PBLK) {
        int64_t m = n - i0 < PBLK ? n - i0 : PBLK, j = 0;
        const float* v = load_v(x, xdt, r, rdt, i0, m, buf, tmp);
        for (; j + 8 <= m; j += 8)
            for (int k = 0; k < 8; k++) {
                float d = v[j + k] - mean;
                acc[k] += d * d;
            }
        for (; j < m; j++) {
            float d = v[j] - mean;
            acc[j & 7] += d * d;
        }
    }
    double ss = (double)acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
    float rstd = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i0 = 0; i0 < n; i0 += PBLK) {
        int64_t m = n - i0 < PBLK ? n - i0 : PBLK;
        const float* v = load_v(x, xdt, r, rdt, i0, m, buf, tmp);
        float* y = buf; /* v may be buf itself: element-wise in place is fine */
        const float* g = gamma + i0;
        if (beta) {
            const float* b = beta + i0;
            for (int64_t j = 0; j < m; j++) y[j] = (v[j] - mean) * rstd * g[j] + b[j];
        } else {
            for (int64_t j = 0; j < m; j++) y[j] = (v[j] - mean) * rstd * g[j];
        }
        pt_store_row_f32(y, m, odt, (char*)out + i0 * eo);
    }
}

/* ---------------------------------------------------------------- driver */

typedef struct {
    pt_norm_row_fn norm;
    pt_add_row_fn add;
    pt_rows_t rx, rr, ro, rs;
    int xdt, rdt, odt, sdt;
    const float *gamma, *beta;
    float eps;
    int rms;
    int64_t cols;
} norm_job;

static void norm_rows(int64_t r0, int64_t r1, void* arg) {
    const norm_job* j = (const norm_job*)arg;
    /* fused add without sum_out: for rows up to PT_NORM_SCRATCH_COLS the f32 sum goes to a
     * cache-resident scratch row, so the three norm passes read one stream instead of
     * re-adding two. Longer rows (which would not stay in L1/L2 anyway), or a failed scratch
     * allocation, use the norm kernel that re-adds x + r in each pass: same values. */
    float* buf = j->rr.t && !j->rs.t && j->cols <= PT_NORM_SCRATCH_COLS ? (float*)pt_scratch(0, (size_t)j->cols * 4) : NULL;
    for (int64_t i = r0; i < r1; i++) {
        const char* x = pt_rows_at(&j->rx, i);
        const char* r = pt_rows_at(&j->rr, i);
        char* o = pt_rows_at(&j->ro, i);
        char* s = pt_rows_at(&j->rs, i);
        if (s) { /* the sum is stored first; the norm reads it back as stored */
            j->add(x, j->xdt, r, j->rdt, s, j->sdt, j->cols);
            j->norm(s, j->sdt, NULL, 0, j->gamma, j->beta, j->eps, j->rms, o, j->odt, j->cols);
        } else if (buf) {
            j->add(x, j->xdt, r, j->rdt, buf, PT_F32, j->cols);
            j->norm(buf, PT_F32, NULL, 0, j->gamma, j->beta, j->eps, j->rms, o, j->odt, j->cols);
        } else {
            j->norm(x, j->xdt, r, j->rdt, j->gamma, j->beta, j->eps, j->rms, o, j->odt, j->cols);
        }
    }
}

static pt_status check_param(const pt_tensor* p, const char* op, const char* arg, int64_t cols) {
    PT_CHECK(pt_elem_check(p, op, arg, PT_DT_BIT(PT_F32)));
    if (p->ndim != 1 || p->shape[0] != cols)
        return pt_fail(PT_ERR_SHAPE, "%s %s must be f32[%lld] (the last dim of x), got %s", op, arg, (long long)cols,
                       pt_desc(p).s);
    return PT_OK;
}

/* name: "pt_layer_norm" etc. residual/sum_out may be NULL; beta may be NULL. */
static pt_status norm_common(const char* name, pt_ctx* ctx, const pt_tensor* x, const pt_tensor* residual,
                             const pt_tensor* gamma, const pt_tensor* beta, float eps, pt_tensor* out,
                             pt_tensor* sum_out, int rms) {
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(pt_elem_check(x, name, "x", PT_DT_DATA));
    PT_CHECK(pt_elem_check(out, name, "out", PT_DT_DATA));
    PT_CHECK(pt_elem_same_shape(name, x, "x", out, "out"));
    if (residual) {
        PT_CHECK(pt_elem_check(residual, name, "residual", PT_DT_DATA));
        PT_CHECK(pt_elem_same_shape(name, x, "x", residual, "residual"));
    }
    if (sum_out) {
        PT_CHECK(pt_elem_check(sum_out, name, "sum_out", PT_DT_DATA));
        PT_CHECK(pt_elem_same_shape(name, x, "x", sum_out, "sum_out"));
    }
    int64_t cols = pt_cols(x);
    PT_CHECK(check_param(gamma, name, "gamma", cols));
    if (beta) PT_CHECK(check_param(beta, name, "beta", cols));
    if (!(eps >= 0.0f) || isinf(eps))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: eps must be finite and >= 0, got %g", name, (double)eps);
    if (pt_numel(x) == 0) return PT_OK;

    norm_job j;
    memset(&j, 0, sizeof j);
    j.norm = norm_row_portable;
    j.add = pt_add_row_portable;
#if defined(PT_HAVE_X86_KERNELS)
    if (pt_elem_use_avx512(ctx)) {
        j.norm = pt_norm_row_avx512;
        j.add = pt_add_row_avx512;
    }
#endif
    j.rx = pt_rows_of(x); j.rr = pt_rows_of(residual); j.ro = pt_rows_of(out); j.rs = pt_rows_of(sum_out);
    j.xdt = x->dtype; j.rdt = residual ? residual->dtype : PT_F32; j.odt = out->dtype;
    j.sdt = sum_out ? sum_out->dtype : PT_F32;
    j.gamma = (const float*)gamma->data;
    j.beta = beta ? (const float*)beta->data : NULL;
    j.eps = eps;
    j.rms = rms;
    j.cols = cols;
    pt_parallel_range(ctx, pt_rows(x), pt_elem_grain_rows(cols, residual ? 3 : 2), norm_rows, &j);
    return PT_OK;
}

pt_status pt_layer_norm(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* gamma, const pt_tensor* beta, float eps,
                        pt_tensor* out) {
    pt_clear_error();
    return norm_common("pt_layer_norm", ctx, x, NULL, gamma, beta, eps, out, NULL, 0);
}

pt_status pt_rms_norm(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* gamma, float eps, pt_tensor* out) {
    pt_clear_error();
    return norm_common("pt_rms_norm", ctx, x, NULL, gamma, NULL, eps, out, NULL, 1);
}

pt_status pt_add_layer_norm(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* residual, const pt_tensor* gamma,
                            const pt_tensor* beta, float eps, pt_tensor* out, pt_tensor* sum_out) {
    pt_clear_error();
    if (!residual) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_add_layer_norm: residual is NULL");
    return norm_common("pt_add_layer_norm", ctx, x, residual, gamma, beta, eps, out, sum_out, 0);
}

pt_status pt_add_rms_norm(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* residual, const pt_tensor* gamma,
                          float eps, pt_tensor* out, pt_tensor* sum_out) {
    pt_clear_error();
    if (!residual) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_add_rms_norm: residual is NULL");
    return norm_common("pt_add_rms_norm", ctx, x, residual, gamma, NULL, eps, out, sum_out, 1);
}
