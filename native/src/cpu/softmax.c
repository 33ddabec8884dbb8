/* pt_softmax: validation, the row driver and the portable row kernel (plain C + libm);
 * the AVX-512 row kernel lives in softmax_avx512.c.
 *
 * Row kernel contract (pt_softmax_row_fn): three passes: m = max(scale * x); e = exp(scale*x - m)
 * with its sum, kept in out when out is f32 (else in the f32 scratch buf, or recomputed when
 * buf is NULL); out = e / sum. */
#include "cpu/elem.h"

#include <math.h>

#define PBLK 256

static void softmax_row_portable(const void* x, int xdt, float scale, void* out, int odt, int64_t n, float* buf) {
    float f[PBLK];
    size_t ex = pt_dtype_size(xdt), eo = pt_dtype_size(odt);
    float m = -INFINITY;
    for (int64_t i0 = 0; i0 < n; i0 += PBLK) {
        int64_t k = n - i0 < PBLK ? n - i0 : PBLK;
        pt_load_row_f32((const char*)x + i0 * ex, xdt, k, f);
        for (int64_t j = 0; j < k; j++) {
            float v = scale * f[j];
            if (v > m) m = v;
        }
    }
    /* a NaN (skipped by the max) reaches every output through the sum */
    float* e = odt == PT_F32 ? (float*)out : buf;
    double sum = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += PBLK) {
        int64_t k = n - i0 < PBLK ? n - i0 : PBLK;
        pt_load_row_f32((const char*)x + i0 * ex, xdt, k, f);
        for (int64_t j = 0; j < k; j++) {
            f[j] = expf((float)((double)scale * f[j] - (double)m));
            sum += f[j];
        }
        if (e) memcpy(e + i0, f, (size_t)k * 4);
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i0 = 0; i0 < n; i0 += PBLK) {
        int64_t k = n - i0 < PBLK ? n - i0 : PBLK;
        if (e) {
            memcpy(f, e + i0, (size_t)k * 4);
        } else { /* no scratch: recompute exp */
            pt_load_row_f32((const char*)x + i0 * ex, xdt, k, f);
            for (int64_t j = 0; j < k; j++) f[j] = expf((float)((double)scale * f[j] - (double)m));
        }
        for (int64_t j = 0; j < k; j++) f[j] *= inv;
        pt_store_row_f32(f, k, odt, (char*)out + i0 * eo);
    }
}

typedef struct {
    pt_softmax_row_fn row;
    pt_rows_t rx, ro;
    int xdt, odt;
    float scale;
    int64_t cols;
} softmax_job;

static void softmax_rows(int64_t r0, int64_t r1, void* arg) {
    const softmax_job* j = (const softmax_job*)arg;
    float* buf = j->odt == PT_F32 ? NULL : (float*)pt_scratch(0, (size_t)j->cols * 4);
    for (int64_t i = r0; i < r1; i++)
        j->row(pt_rows_at(&j->rx, i), j->xdt, j->scale, pt_rows_at(&j->ro, i), j->odt, j->cols, buf);
}

pt_status pt_softmax(pt_ctx* ctx, const pt_tensor* x, float scale, pt_tensor* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(pt_elem_check(x, "pt_softmax", "x", PT_DT_DATA));
    PT_CHECK(pt_elem_check(out, "pt_softmax", "out", PT_DT_DATA));
    PT_CHECK(pt_elem_same_shape("pt_softmax", x, "x", out, "out"));
    if (scale != scale || isinf(scale))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_softmax: scale must be finite, got %g", (double)scale);
    if (scale == 0.0f) scale = 1.0f;
    if (pt_numel(x) == 0) return PT_OK;
    softmax_job j;
    memset(&j, 0, sizeof j);
    j.row = softmax_row_portable;
#if defined(PT_HAVE_X86_KERNELS)
    if (pt_elem_use_avx512(ctx)) j.row = pt_softmax_row_avx512;
#endif
    j.rx = pt_rows_of(x); j.ro = pt_rows_of(out);
    j.xdt = x->dtype; j.odt = out->dtype;
    j.scale = scale;
    j.cols = pt_cols(x);
    pt_parallel_range(ctx, pt_rows(x), pt_elem_grain_rows(j.cols, 4), softmax_rows, &j);
    return PT_OK;
}
