/* pt_add, pt_unary, pt_swiglu: validation, the parallel driver over (row, column block)
 * items, and the portable row kernels (plain C + libm). The AVX-512 row kernels live in
 * elementwise_avx512.c. */
#include "cpu/elem.h"

#include <math.h>
#include <stdio.h>

/* ---------------------------------------------------------------- shared helpers */

int64_t pt_elem_span(const pt_tensor* t) {
    if (pt_numel(t) == 0) return 0;
    int64_t span = (int64_t)pt_dtype_size(t->dtype) * t->shape[t->ndim - 1];
    for (int i = 0; i < t->ndim - 1; i++) span += (t->shape[i] - 1) * t->stride[i];
    return span;
}

bool pt_elem_bad_overlap(const pt_tensor* a, const pt_tensor* b) {
    int64_t sa = pt_elem_span(a), sb = pt_elem_span(b);
    if (sa == 0 || sb == 0) return false;
    const char *pa = (const char*)a->data, *pb = (const char*)b->data;
    if (pa + sa <= pb || pb + sb <= pa) return false;
    if (pa != pb || a->dtype != b->dtype || a->ndim != b->ndim) return true;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i] || (a->shape[i] > 1 && a->stride[i] != b->stride[i])) return true;
    return false;
}

pt_status pt_elem_check(const pt_tensor* t, const char* op, const char* arg, uint32_t dtypes) {
    if (PT_LIKELY(t && t->ndim >= 1 && t->ndim <= PT_MAX_DIMS && t->device == PT_DEVICE_CPU && t->dtype >= 0 &&
                  t->dtype < 32 && ((dtypes >> t->dtype) & 1u))) {
        bool ok = true, empty = false;
        for (int i = 0; i < t->ndim; i++) {
            ok &= t->shape[i] >= 0;
            empty |= t->shape[i] == 0;
        }
        ok &= t->data != NULL || empty;
        ok &= t->shape[t->ndim - 1] <= 1 || t->stride[t->ndim - 1] == (int64_t)pt_dtype_size(t->dtype);
        if (PT_LIKELY(ok)) return PT_OK;
    }
    /* slow path: the common checks produce the messages */
    char what[96];
    snprintf(what, sizeof what, "%s %s", op, arg);
    PT_CHECK(pt_check_tensor(t, what));
    if (t->dtype < 0 || t->dtype >= 32 || !((dtypes >> t->dtype) & 1u)) {
        char allowed[96] = "";
        size_t k = 0;
        for (int d = 0; d < 32; d++) {
            if (!((dtypes >> d) & 1u)) continue;
            int w = snprintf(allowed + k, sizeof allowed - k, k ? "|%s" : "%s", pt_dtype_name(d));
            if (w > 0 && k + (size_t)w < sizeof allowed) k += (size_t)w;
        }
        return pt_fail(PT_ERR_DTYPE, "%s: dtype %s not supported here (expected %s)", what, pt_dtype_name(t->dtype), allowed);
    }
    return pt_check_inner_contiguous(t, what);
}

pt_status pt_elem_same_shape(const char* op, const pt_tensor* a, const char* an, const pt_tensor* b, const char* bn) {
    bool same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (PT_LIKELY(same)) return PT_OK;
    return pt_fail(PT_ERR_SHAPE, "%s %s %s and %s %s must have the same shape", op, an, pt_desc(a).s, bn, pt_desc(b).s);
}

/* True when the rows of t are packed back to back (the whole tensor is one dense run). */
static bool packed(const pt_tensor* t) {
    int64_t rs;
    if (!pt_rows_uniform(t, &rs)) return false;
    return pt_rows(t) <= 1 || rs == (int64_t)pt_dtype_size(t->dtype) * pt_cols(t);
}

#define PBLK 256 /* portable kernels convert through f32 stack buffers of this many elements */

/* ---------------------------------------------------------------- portable row kernels */

void pt_add_row_portable(const void* a, int adt, const void* b, int bdt, void* out, int odt, int64_t n) {
    if (adt == PT_F32 && bdt == PT_F32 && odt == PT_F32) {
        const float* x = (const float*)a;
        const float* y = (const float*)b;
        float* o = (float*)out;
        for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i];
        return;
    }
    float fa[PBLK], fb[PBLK];
    size_t ea = pt_dtype_size(adt), eb = pt_dtype_size(bdt), eo = pt_dtype_size(odt);
    for (int64_t i0 = 0; i0 < n; i0 += PBLK) {
        int64_t m = n - i0 < PBLK ? n - i0 : PBLK;
        pt_load_row_f32((const char*)a + i0 * ea, adt, m, fa);
        pt_load_row_f32((const char*)b + i0 * eb, bdt, m, fb);
        for (int64_t j = 0; j < m; j++) fa[j] += fb[j];
        pt_store_row_f32(fa, m, odt, (char*)out + i0 * eo);
    }
}

static inline float gelu_erf_s(float x) {
    if (x == -INFINITY) return -0.0f;
    /* 1 + erf(z) = erfc(-z): no cancellation. Far left, erfcf of a rounded f32 argument
     * would lose ~2 z^2 ulps, so the tail (values below 5e-3) goes through double. */
    if (x < -3.0f) return (float)(0.5 * (double)x * erfc(-(double)x * 0.70710678118654752));
    return 0.5f * x * erfcf(-x * 0.70710678118654752f);
}
/* sigmoid(t) without overflow (t < 0: e^t / (1 + e^t)) */
static inline float sigmoid_s(float t) {
    float e = expf(-fabsf(t));
    return (t < 0.0f ? e : 1.0f) / (1.0f + e);
}
static inline float x_sigmoid_s(float x, float t) {
    if (x == -INFINITY) return -0.0f;
    return x * sigmoid_s(t);
}
static inline float gelu_tanh_s(float x) {
    return x_sigmoid_s(x, 1.5957691216057308f * x * (1.0f + 0.044715f * x * x)); /* x sigmoid(2u) */
}

static void unary_f32(int op, float* v, int64_t m) {
    switch (op) {
    case PT_UNARY_GELU_ERF: for (int64_t j = 0; j < m; j++) v[j] = gelu_erf_s(v[j]); break;
    case PT_UNARY_GELU_TANH: for (int64_t j = 0; j < m; j++) v[j] = gelu_tanh_s(v[j]); break;
    case PT_UNARY_SILU: for (int64_t j = 0; j < m; j++) v[j] = x_sigmoid_s(v[j], v[j]); break;
    case PT_UNARY_RELU: for (int64_t j = 0; j < m; j++) v[j] = v[j] < 0.0f ? 0.0f : v[j]; break; /* NaN kept */
    case PT_UNARY_TANH: for (int64_t j = 0; j < m; j++) v[j] = tanhf(v[j]); break;
    case PT_UNARY_SIGMOID: for (int64_t j = 0; j < m; j++) v[j] = sigmoid_s(v[j]); break;
    default: break;
    }
}

static void unary_row_portable(int op, const void* x, int xdt, void* out, int odt, int64_t n) {
    float f[PBLK];
    size_t ex = pt_dtype_size(xdt), eo = pt_dtype_size(odt);
    for (int64_t i0 = 0; i0 < n; i0 += PBLK) {
        int64_t m = n - i0 < PBLK ? n - i0 : PBLK;
        pt_load_row_f32((const char*)x + i0 * ex, xdt, m, f);
        unary_f32(op, f, m);
        pt_store_row_f32(f, m, odt, (char*)out + i0 * eo);
    }
}

static void swiglu_row_portable(const void* g, int gdt, const void* u, int udt, void* out, int odt, int64_t n) {
    float fg[PBLK], fu[PBLK];
    size_t eg = pt_dtype_size(gdt), eu = pt_dtype_size(udt), eo = pt_dtype_size(odt);
    for (int64_t i0 = 0; i0 < n; i0 += PBLK) {
        int64_t m = n - i0 < PBLK ? n - i0 : PBLK;
        pt_load_row_f32((const char*)g + i0 * eg, gdt, m, fg);
        pt_load_row_f32((const char*)u + i0 * eu, udt, m, fu);
        for (int64_t j = 0; j < m; j++) fg[j] = x_sigmoid_s(fg[j], fg[j]) * fu[j];
        pt_store_row_f32(fg, m, odt, (char*)out + i0 * eo);
    }
}

/* ---------------------------------------------------------------- driver */

static void ew_items(int64_t i0, int64_t i1, void* arg) {
    const pt_elem_job* j = (const pt_elem_job*)arg;
    for (int64_t i = i0; i < i1; i++) {
        int64_t r = i / j->nblk, c0 = (i % j->nblk) * j->blk;
        int64_t m = j->cols - c0 < j->blk ? j->cols - c0 : j->blk;
        const char* a = pt_rows_at(&j->ra, r) + c0 * j->ea;
        char* o = pt_rows_at(&j->ro, r) + c0 * j->eo;
        switch (j->kind) {
        case PT_EW_ADD: {
            const char* b = (j->bcast ? (const char*)j->rb.base : pt_rows_at(&j->rb, r)) + c0 * j->eb;
            j->add(a, j->adt, b, j->bdt, o, j->odt, m);
            break;
        }
        case PT_EW_UNARY: j->unary(j->op, a, j->adt, o, j->odt, m); break;
        case PT_EW_SWIGLU: j->swiglu(a, j->adt, pt_rows_at(&j->rb, r) + c0 * j->eb, j->bdt, o, j->odt, m); break;
        default: j->convert(a, j->adt, o, j->odt, m); break;
        }
    }
}

void pt_elem_run(pt_ctx* ctx, pt_elem_job* j, const pt_tensor* a, const pt_tensor* b, pt_tensor* out, int64_t weight) {
    int64_t rows = pt_rows(out), cols = pt_cols(out);
    if (rows == 0 || cols == 0) return;
    j->adt = a->dtype; j->odt = out->dtype; j->bdt = b ? b->dtype : PT_F32;
    j->ea = pt_dtype_size(a->dtype); j->eo = pt_dtype_size(out->dtype); j->eb = b ? pt_dtype_size(b->dtype) : 0;
    j->ra = pt_rows_of(a); j->ro = pt_rows_of(out); j->rb = pt_rows_of(b);
    if (!j->bcast && packed(a) && packed(out) && (!b || packed(b))) { /* one dense run */
        cols = rows * cols;
        rows = 1;
        j->ra.uniform = j->ro.uniform = j->rb.uniform = true;
    }
    j->cols = cols;
    j->blk = cols > PT_ELEM_BLOCK ? PT_ELEM_BLOCK : cols;
    j->nblk = (cols + j->blk - 1) / j->blk;
    int64_t grain = j->nblk > 1 ? pt_elem_grain_rows(j->blk, weight) : pt_elem_grain_rows(cols, weight);
    pt_parallel_range(ctx, rows * j->nblk, grain, ew_items, j);
}


/* ---------------------------------------------------------------- public entry points */

pt_status pt_add(pt_ctx* ctx, const pt_tensor* a, const pt_tensor* b, pt_tensor* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(pt_elem_check(a, "pt_add", "a", PT_DT_DATA));
    PT_CHECK(pt_elem_check(b, "pt_add", "b", PT_DT_DATA));
    PT_CHECK(pt_elem_check(out, "pt_add", "out", PT_DT_DATA));
    PT_CHECK(pt_elem_same_shape("pt_add", a, "a", out, "out"));
    pt_elem_job j = {0};
    j.kind = PT_EW_ADD;
    if (b->ndim == 1 && a->ndim > 1) {
        if (b->shape[0] != pt_cols(a))
            return pt_fail(PT_ERR_SHAPE, "pt_add: b %s must have a's shape %s or be [%lld] (broadcast over rows)",
                           pt_desc(b).s, pt_desc(a).s, (long long)pt_cols(a));
        j.bcast = 1;
    } else {
        PT_CHECK(pt_elem_same_shape("pt_add", a, "a", b, "b"));
    }
    j.add = pt_add_row_portable;
#if defined(PT_HAVE_X86_KERNELS)
    if (pt_elem_use_avx512(ctx)) j.add = pt_add_row_avx512;
#endif
    pt_elem_run(ctx, &j, a, b, out, 1);
    return PT_OK;
}

pt_status pt_unary(pt_ctx* ctx, int32_t op, const pt_tensor* x, pt_tensor* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (op < PT_UNARY_GELU_ERF || op > PT_UNARY_SIGMOID)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_unary: unknown op %d (expected 0..%d, pt_unary_op)", op, PT_UNARY_SIGMOID);
    PT_CHECK(pt_elem_check(x, "pt_unary", "x", PT_DT_DATA));
    PT_CHECK(pt_elem_check(out, "pt_unary", "out", PT_DT_DATA));
    PT_CHECK(pt_elem_same_shape("pt_unary", x, "x", out, "out"));
    pt_elem_job j = {0};
    j.kind = PT_EW_UNARY;
    j.op = op;
    j.unary = unary_row_portable;
#if defined(PT_HAVE_X86_KERNELS)
    if (pt_elem_use_avx512(ctx)) j.unary = pt_unary_row_avx512;
#endif
    pt_elem_run(ctx, &j, x, NULL, out, op == PT_UNARY_RELU ? 1 : 4);
    return PT_OK;
}

pt_status pt_swiglu(pt_ctx* ctx, const pt_tensor* gate, const pt_tensor* up, pt_tensor* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(pt_elem_check(gate, "pt_swiglu", "gate", PT_DT_DATA));
    PT_CHECK(pt_elem_check(up, "pt_swiglu", "up", PT_DT_DATA));
    PT_CHECK(pt_elem_check(out, "pt_swiglu", "out", PT_DT_DATA));
    PT_CHECK(pt_elem_same_shape("pt_swiglu", gate, "gate", up, "up"));
    PT_CHECK(pt_elem_same_shape("pt_swiglu", gate, "gate", out, "out"));
    pt_elem_job j = {0};
    j.kind = PT_EW_SWIGLU;
    j.swiglu = swiglu_row_portable;
#if defined(PT_HAVE_X86_KERNELS)
    if (pt_elem_use_avx512(ctx)) j.swiglu = pt_swiglu_row_avx512;
#endif
    pt_elem_run(ctx, &j, gate, up, out, 4);
    return PT_OK;
}
