/* pt_kv_cache_append: writes new K/V rows into the [B, Hkv, S_max, D] cache, converting the
 * dtype and optionally applying the rotary embedding to K (angles in double precision). */
#include "common/internal.h"

#include <math.h>

typedef struct {
    const pt_tensor *kn, *vn, *kc, *vc;
    const int32_t* start;
    int64_t T, Hkv, D, Dv;
    const pt_rope_params* rope;
    int64_t rd;               /* rotary dims */
    volatile int32_t failed;
} append_run;

static void rotate(float* x, int64_t rd, int32_t mode, const float* cs, const float* sn) {
    int64_t half = rd / 2;
    for (int64_t i = 0; i < half; i++) {
        int64_t a = mode == PT_ROPE_GPTJ ? 2 * i : i, b = mode == PT_ROPE_GPTJ ? 2 * i + 1 : i + half;
        float x0 = x[a], x1 = x[b];
        x[a] = x0 * cs[i] - x1 * sn[i];
        x[b] = x0 * sn[i] + x1 * cs[i];
    }
}

static void append_rows(int64_t begin, int64_t end, void* arg) {
    append_run* r = (append_run*)arg;
    int64_t D = r->D, Dv = r->Dv, half = r->rd / 2;
    float* buf = (float*)pt_scratch(0, (size_t)(D + Dv + 2 * half + 2) * sizeof(float));
    if (!buf) {
        r->failed = 1;
        return;
    }
    float *row = buf, *cs = row + (D > Dv ? D : Dv), *sn = cs + half + 1;
    for (int64_t bt = begin; bt < end; bt++) {
        int64_t b = bt / r->T, t = bt % r->T, pos = (int64_t)r->start[b] + t;
        if (r->kn && r->rope) {
            const pt_rope_params* p = r->rope;
            double fs = p->freq_scale != 0.0f ? p->freq_scale : 1.0;
            for (int64_t i = 0; i < half; i++) {
                double inv = p->inv_freq ? (double)p->inv_freq[i] : pow((double)p->theta, -2.0 * (double)i / (double)r->rd);
                double ang = (double)pos * fs * inv;
                cs[i] = (float)cos(ang);
                sn[i] = (float)sin(ang);
            }
        }
        for (int64_t g = 0; g < r->Hkv; g++) {
            if (r->kn) {
                const char* src = (const char*)r->kn->data + b * r->kn->stride[0] + t * r->kn->stride[1] + g * r->kn->stride[2];
                char* dst = (char*)r->kc->data + b * r->kc->stride[0] + g * r->kc->stride[1] + pos * r->kc->stride[2];
                pt_load_row_f32(src, r->kn->dtype, D, row);
                if (r->rope) rotate(row, r->rd, r->rope->mode, cs, sn);
                pt_store_row_f32(row, D, r->kc->dtype, dst);
            }
            if (r->vn) {
                const char* src = (const char*)r->vn->data + b * r->vn->stride[0] + t * r->vn->stride[1] + g * r->vn->stride[2];
                char* dst = (char*)r->vc->data + b * r->vc->stride[0] + g * r->vc->stride[1] + pos * r->vc->stride[2];
                pt_load_row_f32(src, r->vn->dtype, Dv, row);
                pt_store_row_f32(row, Dv, r->vc->dtype, dst);
            }
        }
    }
}

static pt_status check_pair(const pt_tensor* nw, const char* nn, const pt_tensor* c, const char* cn, int64_t* B, int64_t* T,
                            int64_t* Hkv, int64_t* D) {
    static const char* op = "pt_kv_cache_append";
    /* the descriptions are formatted on the failure paths only (snprintf per call was most of
     * a decode step's append) */
    char a[96], b[96];
#define DESCRIBED(fail) (pt_describe(nw, a, sizeof a), pt_describe(c, b, sizeof b), (fail))
    if (!nw != !c) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: %s and %s must both be given or both be NULL", op, nn, cn);
    if (!nw) return PT_OK;
    PT_CHECK(pt_check_dtype(nw, nn, 2, PT_F32, PT_BF16));
    PT_CHECK(pt_check_dtype(c, cn, 2, PT_F32, PT_BF16));
    if (nw->ndim != 4 || c->ndim != 4)
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: %s %s must be [B, T, Hkv, D] and %s %s [B, Hkv, S_max, D]", op, nn, a, cn, b));
    if (c->shape[0] != nw->shape[0] || c->shape[1] != nw->shape[2] || c->shape[3] != nw->shape[3])
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: %s %s does not fit %s %s (expected [B, Hkv, S_max, D] = [%lld, %lld, S_max, %lld])",
                                 op, cn, b, nn, a, (long long)nw->shape[0], (long long)nw->shape[2], (long long)nw->shape[3]));
    if (*B >= 0 && (nw->shape[0] != *B || nw->shape[1] != *T || nw->shape[2] != *Hkv))
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: k_new and v_new differ in B, T or Hkv (v_new is %s)", op, a));
#undef DESCRIBED
    *B = nw->shape[0];
    *T = nw->shape[1];
    *Hkv = nw->shape[2];
    *D = nw->shape[3];
    uintptr_t n0 = (uintptr_t)nw->data, c0 = (uintptr_t)c->data;
    uintptr_t n1 = n0 + (uintptr_t)pt_dtype_size(nw->dtype), c1 = c0 + (uintptr_t)pt_dtype_size(c->dtype);
    for (int i = 0; i < 4; i++) {
        n1 += (uintptr_t)((nw->shape[i] > 0 ? nw->shape[i] - 1 : 0) * nw->stride[i]);
        c1 += (uintptr_t)((c->shape[i] > 0 ? c->shape[i] - 1 : 0) * c->stride[i]);
    }
    if (pt_numel(nw) > 0 && pt_numel(c) > 0 && n0 < c1 && c0 < n1)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: %s overlaps %s in memory", op, nn, cn);
    return PT_OK;
}

pt_status pt_kv_cache_append(pt_ctx* ctx, const pt_tensor* k_new, const pt_tensor* v_new, const pt_tensor* start,
                             pt_tensor* k_cache, pt_tensor* v_cache, const pt_rope_params* rope) {
    static const char* op = "pt_kv_cache_append";
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (!k_new && !v_new) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: neither k_new nor v_new given", op);
    int64_t B = -1, T = -1, Hkv = -1, D = 0, Dv = 0;
    PT_CHECK(check_pair(k_new, "pt_kv_cache_append k_new", k_cache, "k_cache", &B, &T, &Hkv, &D));
    PT_CHECK(check_pair(v_new, "pt_kv_cache_append v_new", v_cache, "v_cache", &B, &T, &Hkv, &Dv));
    if (k_cache && v_cache && k_cache->shape[2] != v_cache->shape[2])
        return pt_fail(PT_ERR_SHAPE, "%s: k_cache has S_max %lld but v_cache %lld", op, (long long)k_cache->shape[2],
                       (long long)v_cache->shape[2]);
    int64_t Smax = k_cache ? k_cache->shape[2] : v_cache->shape[2];
    PT_CHECK(pt_check_dtype(start, "pt_kv_cache_append start", 1, PT_I32));
    if (start->ndim != 1 || start->shape[0] != B) {
        char d[96];
        pt_describe(start, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "%s: start %s must be i32[B] = [%lld]", op, d, (long long)B);
    }
    const int32_t* st = (const int32_t*)start->data;
    for (int64_t b = 0; b < B; b++)
        if (st[b] < 0 || (int64_t)st[b] + T > Smax)
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: start[%lld] = %d with T = %lld new tokens does not fit S_max = %lld", op,
                           (long long)b, st[b], (long long)T, (long long)Smax);
    int64_t rd = 0;
    if (rope && k_new) {
        if (rope->mode != PT_ROPE_NEOX && rope->mode != PT_ROPE_GPTJ)
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: unknown rope mode %d", op, rope->mode);
        rd = rope->rotary_dim != 0 ? rope->rotary_dim : D;
        if (rd < 2 || rd > D || rd % 2 != 0)
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: rope rotary_dim %lld must be even and in 2..D = %lld", op, (long long)rd, (long long)D);
        if (!rope->inv_freq && !(rope->theta > 0.0f))
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: rope theta %g must be > 0 (or give inv_freq)", op, (double)rope->theta);
        if (!(rope->freq_scale == rope->freq_scale) || isinf(rope->freq_scale))
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: rope freq_scale %g is not finite", op, (double)rope->freq_scale);
    }
    if (B == 0 || T == 0 || Hkv == 0) return PT_OK;
    append_run r;
    memset(&r, 0, sizeof r);
    r.kn = k_new; r.vn = v_new; r.kc = k_cache; r.vc = v_cache; r.start = st;
    r.T = T; r.Hkv = Hkv; r.D = D; r.Dv = Dv;
    r.rope = k_new ? rope : NULL;
    r.rd = rd;
    pt_parallel_range(ctx, B * T, 16, append_rows, &r);
    if (r.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: scratch allocation failed", op);
    return PT_OK;
}
