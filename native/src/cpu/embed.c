/* pt_embedding (gather rows of a table) and pt_mean_pool (masked mean over tokens):
 * validation, drivers and portable kernels. The AVX-512 kernels they use are the convert
 * row kernel (convert_avx512.c) and the accumulate row kernel (embed_avx512.c). */
#include "cpu/elem.h"

#include <math.h>

/* True when every dim of t is densely packed (row-major). */
static bool fully_contiguous(const pt_tensor* t) {
    int64_t s = (int64_t)pt_dtype_size(t->dtype);
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] > 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

/* ---------------------------------------------------------------- embedding */

typedef struct {
    pt_convert_row_fn copy;
    const pt_tensor *table, *out;
    const int32_t* ids;
    pt_rows_t ro;
    int64_t d;
} embed_job;

static void embed_tokens(int64_t t0, int64_t t1, void* arg) {
    const embed_job* j = (const embed_job*)arg;
    for (int64_t t = t0; t < t1; t++) {
        const char* src = (const char*)j->table->data + (int64_t)j->ids[t] * j->table->stride[0];
        j->copy(src, j->table->dtype, pt_rows_at(&j->ro, t), j->out->dtype, j->d);
    }
}

pt_status pt_embedding(pt_ctx* ctx, const pt_tensor* table, const pt_tensor* ids, pt_tensor* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(pt_elem_check(table, "pt_embedding", "table", PT_DT_FLOAT));
    PT_CHECK(pt_elem_check(ids, "pt_embedding", "ids", PT_DT_BIT(PT_I32)));
    PT_CHECK(pt_elem_check(out, "pt_embedding", "out", PT_DT_FLOAT));
    if (table->ndim != 2) return pt_fail(PT_ERR_SHAPE, "pt_embedding: table %s must be [V, D]", pt_desc(table).s);
    if (ids->ndim > 3) return pt_fail(PT_ERR_SHAPE, "pt_embedding: ids %s must have 1..3 dims", pt_desc(ids).s);
    if (!fully_contiguous(ids)) return pt_fail(PT_ERR_SHAPE, "pt_embedding: ids %s must be contiguous", pt_desc(ids).s);
    int64_t V = table->shape[0], D = table->shape[1];
    int shape_ok = out->ndim == ids->ndim + 1 && out->shape[out->ndim - 1] == D;
    for (int i = 0; shape_ok && i < ids->ndim; i++) shape_ok = out->shape[i] == ids->shape[i];
    if (!shape_ok)
        return pt_fail(PT_ERR_SHAPE, "pt_embedding: out %s must be ids' shape %s plus [%lld] (table %s)", pt_desc(out).s,
                       pt_desc(ids).s, (long long)D, pt_desc(table).s);
    int64_t n = pt_numel(ids);
    const int32_t* id = (const int32_t*)ids->data;
    for (int64_t t = 0; t < n; t++) /* all ids are checked before anything is written */
        if (id[t] < 0 || (int64_t)id[t] >= V)
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_embedding: ids[%lld] = %d is out of range [0, %lld) for table %s",
                           (long long)t, id[t], (long long)V, pt_desc(table).s);
    if (n == 0 || D == 0) return PT_OK;
    embed_job j;
    memset(&j, 0, sizeof j);
    j.copy = pt_convert_row_portable;
#if defined(PT_HAVE_X86_KERNELS)
    if (pt_elem_use_avx512(ctx)) j.copy = pt_convert_row_avx512;
#endif
    j.table = table; j.out = out; j.ids = id; j.d = D;
    j.ro = pt_rows_of(out);
    pt_parallel_range(ctx, n, pt_elem_grain_rows(D, 1), embed_tokens, &j);
    return PT_OK;
}

/* ---------------------------------------------------------------- mean pooling */

#define POOL_BLK 1024 /* columns summed at once, in an f32 stack buffer */

static void acc_row_portable(float* acc, const void* x, int xdt, int64_t n) {
    if (xdt == PT_F32) {
        const float* f = (const float*)x;
        for (int64_t j = 0; j < n; j++) acc[j] += f[j];
    } else {
        const uint16_t* h = (const uint16_t*)x;
        for (int64_t j = 0; j < n; j++) acc[j] += pt_bf16_to_f32(h[j]);
    }
}

typedef struct {
    pt_acc_row_fn acc;
    const pt_tensor *x, *out;
    const int32_t* mask;
    pt_rows_t ro;
    int64_t T, D;
    int normalize;
} pool_job;

/* Sum of the kept tokens' columns [c0, c0 + m) of batch entry b into acc. */
static void pool_block(const pool_job* j, int64_t b, int64_t c0, int64_t m, float* acc) {
    for (int64_t c = 0; c < m; c++) acc[c] = 0.0f;
    size_t ex = pt_dtype_size(j->x->dtype);
    for (int64_t t = 0; t < j->T; t++) {
        if (j->mask && j->mask[b * j->T + t] == 0) continue;
        const char* row = (const char*)j->x->data + b * j->x->stride[0] + t * j->x->stride[1] + c0 * (int64_t)ex;
        j->acc(acc, row, j->x->dtype, m);
    }
}

static void pool_rows(int64_t b0, int64_t b1, void* arg) {
    const pool_job* j = (const pool_job*)arg;
    float acc[POOL_BLK];
    size_t eo = pt_dtype_size(j->out->dtype);
    for (int64_t b = b0; b < b1; b++) {
        char* o = pt_rows_at(&j->ro, b);
        int64_t count = j->T;
        if (j->mask) {
            count = 0;
            for (int64_t t = 0; t < j->T; t++) count += j->mask[b * j->T + t] != 0;
        }
        float scale = count > 0 ? (float)(1.0 / (double)count) : 0.0f;
        double nrm2 = 0.0;
        int one_block = j->D <= POOL_BLK, f32_out = j->out->dtype == PT_F32;
        for (int64_t c0 = 0; c0 < j->D; c0 += POOL_BLK) {
            int64_t m = j->D - c0 < POOL_BLK ? j->D - c0 : POOL_BLK;
            if (count > 0) pool_block(j, b, c0, m, acc);
            else for (int64_t c = 0; c < m; c++) acc[c] = 0.0f;
            for (int64_t c = 0; c < m; c++) {
                acc[c] *= scale;
                nrm2 += (double)acc[c] * acc[c];
            }
            if (j->normalize && one_block) { /* acc holds the whole row: finish here */
                float inv = (float)(1.0 / fmax(sqrt(nrm2), 1e-12));
                for (int64_t c = 0; c < m; c++) acc[c] *= inv;
            }
            if (!j->normalize || one_block || f32_out) pt_store_row_f32(acc, m, j->out->dtype, o + c0 * (int64_t)eo);
        }
        if (j->normalize && !one_block) {
            float inv = (float)(1.0 / fmax(sqrt(nrm2), 1e-12));
            if (f32_out) {
                float* of = (float*)o;
                for (int64_t c = 0; c < j->D; c++) of[c] *= inv;
            } else { /* bf16 out, several blocks: sum again rather than round twice */
                for (int64_t c0 = 0; c0 < j->D; c0 += POOL_BLK) {
                    int64_t m = j->D - c0 < POOL_BLK ? j->D - c0 : POOL_BLK;
                    if (count > 0) pool_block(j, b, c0, m, acc);
                    else for (int64_t c = 0; c < m; c++) acc[c] = 0.0f;
                    for (int64_t c = 0; c < m; c++) acc[c] = acc[c] * scale * inv;
                    pt_store_row_f32(acc, m, j->out->dtype, o + c0 * (int64_t)eo);
                }
            }
        }
    }
}

pt_status pt_mean_pool(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* mask, int32_t normalize, pt_tensor* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(pt_elem_check(x, "pt_mean_pool", "x", PT_DT_DATA));
    PT_CHECK(pt_elem_check(out, "pt_mean_pool", "out", PT_DT_DATA));
    if (x->ndim != 3) return pt_fail(PT_ERR_SHAPE, "pt_mean_pool: x %s must be [B, T, D]", pt_desc(x).s);
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    if (out->ndim != 2 || out->shape[0] != B || out->shape[1] != D)
        return pt_fail(PT_ERR_SHAPE, "pt_mean_pool: out %s must be [%lld, %lld] for x %s", pt_desc(out).s, (long long)B,
                       (long long)D, pt_desc(x).s);
    if (mask) {
        PT_CHECK(pt_elem_check(mask, "pt_mean_pool", "mask", PT_DT_BIT(PT_I32)));
        if (mask->ndim != 2 || mask->shape[0] != B || mask->shape[1] != T)
            return pt_fail(PT_ERR_SHAPE, "pt_mean_pool: mask %s must be i32[%lld, %lld] for x %s", pt_desc(mask).s,
                           (long long)B, (long long)T, pt_desc(x).s);
        if (!fully_contiguous(mask)) return pt_fail(PT_ERR_SHAPE, "pt_mean_pool: mask %s must be contiguous", pt_desc(mask).s);
    }
    if (B == 0 || D == 0) return PT_OK;
    pool_job j;
    memset(&j, 0, sizeof j);
    j.acc = acc_row_portable;
#if defined(PT_HAVE_X86_KERNELS)
    if (pt_elem_use_avx512(ctx)) j.acc = pt_acc_row_avx512;
#endif
    j.x = x; j.out = out;
    j.mask = mask ? (const int32_t*)mask->data : NULL;
    j.ro = pt_rows_of(out);
    j.T = T; j.D = D;
    j.normalize = normalize != 0;
    pt_parallel_range(ctx, B, pt_elem_grain_rows(T * D, 1), pool_rows, &j);
    return PT_OK;
}
