/* pt_flash_attn_fwd / pt_flash_attn_decode: argument checks, work split, dispatch, the
 * log-sum-exp merge of decode partials, and the portable kernels (any CPU). The SIMD kernels
 * (prefill: AVX-512, AMX-BF16; decode: AVX2, AVX-512, AMX-BF16) are in flash_attn_avx2.c,
 * flash_attn_avx512.c and flash_attn_amx.c; all follow the layout described in flash_attn.h. */
#include "cpu/flash_attn.h"

#include <math.h>
#include <stdlib.h>

#if defined(_MSC_VER) && !defined(__clang__)
static void store_flag(volatile int32_t* p) { _InterlockedExchange((volatile long*)p, 1); }
#else
static void store_flag(volatile int32_t* p) { __atomic_store_n(p, 1, __ATOMIC_RELAXED); }
#endif

#define LN2 0.69314718055994530942
#define LOG2E 1.44269504088896340736

static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* ============================================================== portable prefill tile */

bool pt_fa_tile_portable(const pt_fa_problem* p, const pt_fa_tile* t) {
    enum { BR = PT_FA_BR, BC = PT_FA_BC };
    const int64_t D = p->D, Dv = p->Dv, nh = t->nh, R = t->nt * t->nh;
    size_t n = (size_t)(D * BR + BC * BR + Dv * BR + 4 * BR + BC * D + BC * Dv + BC);
    float* buf = (float*)pt_scratch(0, n * sizeof(float));
    if (!buf) return false;
    float *Qt = buf, *S = Qt + D * BR, *OT = S + BC * BR, *m = OT + Dv * BR, *l = m + BR;
    float *Kf = l + BR, *Vf = Kf + BC * D, *on = Vf + BC * Dv;
    int64_t lo_rows[BR], hi_rows[BR];
    for (int64_t r = 0; r < R; r++) {
        int64_t tok = r / nh, g = r % nh;
        const char* row = t->q + (t->t0 + tok) * p->q_ss + (t->h0 + g) * p->q_sh;
        for (int64_t d = 0; d < D; d++) Qt[d * BR + r] = pt_fa_ld(row, p->q_dtype, d);
        int64_t pos = t->t0 + tok + t->p_off;
        lo_rows[r] = imax(0, pt_fa_lo(p->wl, pos));
        hi_rows[r] = imin(t->sk, pt_fa_hi(p->wr, pos));
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    for (int64_t i = 0; i < Dv * BR; i++) OT[i] = 0.0f;
    int64_t p_min = t->t0 + t->p_off, p_max = t->t0 + t->nt - 1 + t->p_off;
    int64_t lo = imax(0, pt_fa_lo(p->wl, p_min)), hi = imin(t->sk, pt_fa_hi(p->wr, p_max));
    for (int64_t j0 = lo; j0 < hi; j0 += BC) {
        int64_t nk = imin(BC, hi - j0), n_on = nk;
        if (t->mask) {
            n_on = 0;
            for (int64_t j = 0; j < nk; j++) n_on += (on[j] = (float)pt_fa_mask_on(t->mask, p->mask_dtype, p->mask_ss, j0 + j));
            if (n_on == 0) continue;
        }
        int need_mask = n_on < nk || (p->wr >= 0 && j0 + nk - 1 > p_min + p->wr) || (p->wl >= 0 && j0 < p_max - p->wl);
        for (int64_t j = 0; j < nk; j++) {
            pt_load_row_f32(t->k + (j0 + j) * p->k_ss, p->kv_dtype, D, Kf + j * D);
            pt_load_row_f32(t->v + (j0 + j) * p->v_ss, p->kv_dtype, Dv, Vf + j * Dv);
        }
        for (int64_t j = 0; j < nk; j++) {
            float* s = S + j * BR;
            for (int64_t r = 0; r < R; r++) s[r] = 0.0f;
            for (int64_t d = 0; d < D; d++) {
                float kv = Kf[j * D + d];
                const float* q = Qt + d * BR;
                for (int64_t r = 0; r < R; r++) s[r] += kv * q[r];
            }
            for (int64_t r = 0; r < R; r++) s[r] *= p->scale_log2;
            if (need_mask) {
                int64_t jj = j0 + j;
                for (int64_t r = 0; r < R; r++)
                    if ((t->mask && on[j] == 0.0f) || jj < lo_rows[r] || jj >= hi_rows[r]) s[r] = -INFINITY;
            }
        }
        for (int64_t r = 0; r < R; r++) {
            float mx = -INFINITY;
            for (int64_t j = 0; j < nk; j++) mx = fmaxf(mx, S[j * BR + r]);
            float m_new = fmaxf(m[r], mx), m_use = m_new == -INFINITY ? 0.0f : m_new;
            float alpha = exp2f(m[r] - m_use), sum = 0.0f;
            for (int64_t j = 0; j < nk; j++) {
                float e = exp2f(S[j * BR + r] - m_use);
                S[j * BR + r] = e;
                sum += e;
            }
            l[r] = l[r] * alpha + sum;
            m[r] = m_new;
            for (int64_t dv = 0; dv < Dv; dv++) OT[dv * BR + r] *= alpha;
        }
        for (int64_t j = 0; j < nk; j++) {
            const float* pj = S + j * BR;
            for (int64_t dv = 0; dv < Dv; dv++) {
                float vv = Vf[j * Dv + dv];
                float* o = OT + dv * BR;
                for (int64_t r = 0; r < R; r++) o[r] += vv * pj[r];
            }
        }
    }
    float* orow = Vf; /* reuse: one output row */
    for (int64_t r = 0; r < R; r++) {
        int64_t tok = r / nh, g = r % nh;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        for (int64_t dv = 0; dv < Dv; dv++) orow[dv] = OT[dv * BR + r] * inv;
        pt_store_row_f32(orow, Dv, p->out_dtype, t->out + (t->t0 + tok) * p->out_ss + (t->h0 + g) * p->out_sh);
        if (t->lse) {
            float v = l[r] > 0.0f ? (float)((m[r] + log2((double)l[r])) * LN2) : -INFINITY;
            memcpy(t->lse + (t->h0 + g) * p->lse_sh + (t->t0 + tok) * p->lse_ss, &v, 4);
        }
    }
    return true;
}

/* ============================================================== portable decode chunk */

bool pt_fd_chunk_portable(const pt_fd_problem* p, const pt_fd_item* it, float* part) {
    const int64_t D = p->D, Dv = p->Dv, G = p->G, R = p->G * p->Tq;
    float* buf = (float*)pt_scratch(0, (size_t)(D + D + Dv) * sizeof(float));
    if (!buf) return false;
    float *qf = buf, *kf = qf + D, *vf = kf + D;
    for (int64_t r = 0; r < R; r++) {
        int64_t tok = r / G, g = r % G, pos = it->len - p->Tq + tok;
        const char* qrow = it->q + tok * p->q_st + g * p->q_sh;
        for (int64_t d = 0; d < D; d++) qf[d] = pt_fa_ld(qrow, p->q_dtype, d) * p->scale_log2;
        int64_t lo = imax(it->j0, pt_fa_lo(p->wl, pos)), hi = imin(imin(it->j1, it->len), pt_fa_hi(p->wr, pos));
        float* st = part + r * (Dv + 2);
        float m = -INFINITY, l = 0.0f, *acc = st + 2;
        for (int64_t dv = 0; dv < Dv; dv++) acc[dv] = 0.0f;
        for (int64_t j = imax(lo, 0); j < hi; j++) {
            pt_load_row_f32(it->k + j * p->k_ss, p->kv_dtype, D, kf);
            float s = 0.0f;
            for (int64_t d = 0; d < D; d++) s += qf[d] * kf[d];
            if (s > m) {
                float alpha = exp2f(m - s);
                for (int64_t dv = 0; dv < Dv; dv++) acc[dv] *= alpha;
                l *= alpha;
                m = s;
            }
            float e = exp2f(s - m);
            l += e;
            pt_load_row_f32(it->v + j * p->v_ss, p->kv_dtype, Dv, vf);
            for (int64_t dv = 0; dv < Dv; dv++) acc[dv] += e * vf[dv];
        }
        st[0] = m;
        st[1] = l;
    }
    return true;
}

/* ============================================================== checks */

static pt_status check_i32_vec(const pt_tensor* t, const char* what, int64_t n) {
    PT_CHECK(pt_check_dtype(t, what, 1, PT_I32));
    if (t->ndim != 1 || t->shape[0] != n) {
        char d[96];
        pt_describe(t, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "%s: expected i32[%lld], got %s", what, (long long)n, d);
    }
    return PT_OK;
}

/* Byte span [lo, hi) of a tensor's elements (0, 0 when empty). */
static void span(const pt_tensor* t, uintptr_t* lo, uintptr_t* hi) {
    if (pt_numel(t) == 0) { *lo = *hi = 0; return; }
    uintptr_t a = (uintptr_t)t->data, e = a + pt_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) e += (uintptr_t)((t->shape[i] - 1) * t->stride[i]);
    *lo = a; *hi = e;
}

static pt_status check_no_overlap(const pt_tensor* out, const char* on, const pt_tensor* in, const char* in_name, const char* op) {
    uintptr_t a0, a1, b0, b1;
    span(out, &a0, &a1);
    span(in, &b0, &b1);
    if (a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: %s overlaps %s in memory (outputs must not alias inputs)", op, on, in_name);
    return PT_OK;
}

static pt_status check_common(const char* op, float scale, int32_t wl, int32_t wr) {
    if (!(scale == scale) || scale == INFINITY || scale == -INFINITY)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: scale %g is not finite", op, (double)scale);
    if (wl < -1) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: window_left %d (expected -1 = unbounded, or >= 0)", op, wl);
    if (wr < -1) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: window_right %d (expected -1 = unbounded, or >= 0)", op, wr);
    return PT_OK;
}

static pt_status check_head_dims(const char* op, int64_t D, int64_t Dv, int64_t H, int64_t Hkv) {
    if (D < 1 || D > 256) return pt_fail(PT_ERR_SHAPE, "%s: head dim D = %lld outside 1..256", op, (long long)D);
    if (Dv < 1 || Dv > 256) return pt_fail(PT_ERR_SHAPE, "%s: value head dim Dv = %lld outside 1..256", op, (long long)Dv);
    if (Hkv < 1 && H > 0) return pt_fail(PT_ERR_SHAPE, "%s: %lld query heads but no kv heads", op, (long long)H);
    if (Hkv > 0 && H % Hkv != 0)
        return pt_fail(PT_ERR_SHAPE, "%s: query heads H = %lld not a multiple of kv heads Hkv = %lld (GQA needs Hkv | H)", op,
                       (long long)H, (long long)Hkv);
    return PT_OK;
}

static float default_scale(float scale, int64_t D) { return scale != 0.0f ? scale : (float)(1.0 / sqrt((double)D)); }

static bool have_avx512(const pt_ctx* ctx) {
#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
    return (ctx->caps & PT_CPU_AVX512F) != 0;
#else
    (void)ctx;
    return false;
#endif
}

/* ============================================================== prefill */

typedef struct {
    const pt_fa_problem* p;
    pt_fa_tile_fn fn;
    int64_t n_items, tt, hc, nhc, G, Hkv, tiles_total, B;
    const int64_t* tile_prefix;   /* [B+1] (packed layout) or NULL: every sequence has tps tiles */
    int64_t tps, Sq, Sk;
    const int32_t *cu_q, *cu_k;
    const char *q, *k, *v, *mask;
    char *out, *lse;
    int64_t q_sb, k_sb, v_sb, k_sh, v_sh, out_sb, lse_sb, mask_sb;
    volatile int64_t next;
    volatile int32_t failed;
} fa_run;

static void fa_worker(int64_t begin, int64_t end, void* arg) {
    (void)begin; (void)end;
    fa_run* run = (fa_run*)arg;
    const pt_fa_problem* p = run->p;
    for (;;) {
        int64_t n = pt_fetch_add(&run->next, 1);
        if (n >= run->n_items) break;
        int64_t per_tile = run->Hkv * run->nhc;
        int64_t tg = run->tiles_total - 1 - n / per_tile, rem = n % per_tile;
        int64_t kvh = rem / run->nhc, hci = rem % run->nhc, b, tile;
        if (run->tile_prefix) {
            int64_t lo = 0, hi = run->B; /* last b with prefix[b] <= tg */
            while (hi - lo > 1) {
                int64_t mid = (lo + hi) / 2;
                if (run->tile_prefix[mid] <= tg) lo = mid; else hi = mid;
            }
            b = lo;
            tile = tg - run->tile_prefix[b];
        } else {
            b = tg / run->tps;
            tile = tg % run->tps;
        }
        int64_t sq, sk, qo, ko;
        if (run->cu_q) {
            qo = run->cu_q[b]; sq = run->cu_q[b + 1] - qo;
            ko = run->cu_k[b]; sk = run->cu_k[b + 1] - ko;
        } else {
            qo = ko = 0; sq = run->Sq; sk = run->Sk;
        }
        pt_fa_tile t;
        t.h0 = kvh * run->G + hci * run->hc;
        t.nh = imin(run->hc, run->G - hci * run->hc);
        t.t0 = tile * run->tt;
        t.nt = imin(run->tt, sq - t.t0);
        if (t.nt <= 0) continue;
        t.p_off = sk - sq;
        t.sk = sk;
        t.q = run->q + b * run->q_sb + qo * p->q_ss;
        t.k = run->k + b * run->k_sb + ko * p->k_ss + kvh * run->k_sh;
        t.v = run->v + b * run->v_sb + ko * p->v_ss + kvh * run->v_sh;
        t.out = run->out + b * run->out_sb + qo * p->out_ss;
        t.lse = run->lse ? run->lse + b * run->lse_sb + qo * p->lse_ss : NULL;
        t.mask = run->mask ? run->mask + b * run->mask_sb : NULL;
        if (!run->fn(p, &t)) store_flag(&run->failed);
    }
}

/* The descriptions of q, k, v and out (dq, dk, dv, dout) are made only when an error message
 * needs them: snprintf four times per call was ~2 us of every decode step's attention call. */
#define DESCRIBED(fail)                                                                                          \
    (pt_describe(q, dq, sizeof dq), pt_describe(k, dk, sizeof dk), pt_describe(v, dv, sizeof dv),                \
     pt_describe(o, dout, sizeof dout), (fail))

pt_status pt_flash_attn_fwd(pt_ctx* ctx, const pt_flash_attn_params* params) {
    static const char* op = "pt_flash_attn_fwd";
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (!params) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: params is NULL", op);
    const pt_flash_attn_params* P = params;
    PT_CHECK(pt_check_dtype(P->q, "pt_flash_attn_fwd q", 2, PT_F32, PT_BF16));
    PT_CHECK(pt_check_dtype(P->k, "pt_flash_attn_fwd k", 2, PT_F32, PT_BF16));
    PT_CHECK(pt_check_dtype(P->v, "pt_flash_attn_fwd v", 2, PT_F32, PT_BF16));
    PT_CHECK(pt_check_dtype(P->out, "pt_flash_attn_fwd out", 2, PT_F32, PT_BF16));
    PT_CHECK(check_common(op, P->scale, P->window_left, P->window_right));
    const pt_tensor *q = P->q, *k = P->k, *v = P->v, *o = P->out;
    if (v->dtype != k->dtype)
        return pt_fail(PT_ERR_DTYPE, "%s: k is %s but v is %s (k and v must share a dtype)", op, pt_dtype_name(k->dtype),
                       pt_dtype_name(v->dtype));
    char dq[96], dk[96], dv[96], dout[96];
    int packed = P->cu_seqlens_q != NULL;
    if (!packed && P->cu_seqlens_k)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: cu_seqlens_k given without cu_seqlens_q (packed batches need both, or cu_seqlens_q alone)", op);
    int nd = packed ? 3 : 4, o1 = packed ? 0 : 1; /* o1: index of the sequence dim */
    if (q->ndim != nd || k->ndim != nd || v->ndim != nd || o->ndim != nd)
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: %s layout needs %d-D q, k, v, out (%s); got q %s, k %s, v %s, out %s", op,
                                 packed ? "packed (cu_seqlens)" : "padded", nd, packed ? "[T, H, D]" : "[B, S, H, D]", dq, dk, dv, dout));
    int64_t H = q->shape[o1 + 1], D = q->shape[o1 + 2], Hkv = k->shape[o1 + 1], Dv = v->shape[o1 + 2];
    int64_t Sq = q->shape[o1], Sk = k->shape[o1], B;
    if (k->shape[o1 + 2] != D)
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: q %s and k %s have different head dims (%lld vs %lld)", op, dq, dk, (long long)D,
                       (long long)k->shape[o1 + 2]));
    if (v->shape[o1] != Sk || v->shape[o1 + 1] != Hkv)
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: v %s must match k %s in %s and kv heads", op, dv, dk, packed ? "tokens" : "sequence length"));
    if (o->shape[o1] != Sq || o->shape[o1 + 1] != H || o->shape[o1 + 2] != Dv)
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: out %s must be [%s%lld, %lld, %lld] for q %s and v %s", op, dout, packed ? "" : "B, ",
                       (long long)Sq, (long long)H, (long long)Dv, dq, dv));
    if (!packed) {
        B = q->shape[0];
        if (k->shape[0] != B || v->shape[0] != B || o->shape[0] != B)
            return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: batch sizes differ: q %s, k %s, v %s, out %s", op, dq, dk, dv, dout));
    } else {
        B = P->cu_seqlens_q->ndim == 1 ? P->cu_seqlens_q->shape[0] - 1 : -1;
        if (B < 0) return pt_fail(PT_ERR_SHAPE, "%s: cu_seqlens_q must be 1-D [B+1] with B >= 0", op);
    }
    PT_CHECK(check_head_dims(op, D, Dv, H, Hkv));
    const int32_t *cu_q = NULL, *cu_k = NULL;
    if (packed) {
        PT_CHECK(check_i32_vec(P->cu_seqlens_q, "pt_flash_attn_fwd cu_seqlens_q", B + 1));
        const pt_tensor* ck = P->cu_seqlens_k ? P->cu_seqlens_k : P->cu_seqlens_q;
        PT_CHECK(check_i32_vec(ck, "pt_flash_attn_fwd cu_seqlens_k", B + 1));
        cu_q = (const int32_t*)P->cu_seqlens_q->data;
        cu_k = (const int32_t*)ck->data;
        const int32_t* cs[2] = {cu_q, cu_k};
        const char* names[2] = {"cu_seqlens_q", "cu_seqlens_k"};
        int64_t tot[2] = {Sq, Sk};
        for (int w = 0; w < 2; w++) {
            if (cs[w][0] != 0) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: %s[0] = %d, must be 0", op, names[w], cs[w][0]);
            for (int64_t b = 0; b < B; b++)
                if (cs[w][b + 1] < cs[w][b])
                    return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: %s is not monotone: [%lld] = %d > [%lld] = %d", op, names[w],
                                   (long long)b, cs[w][b], (long long)b + 1, cs[w][b + 1]);
            if (cs[w][B] != tot[w])
                return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: %s[%lld] = %d must equal the %s tokens (%lld)", op, names[w], (long long)B,
                               cs[w][B], w ? "key" : "query", (long long)tot[w]);
        }
        if (P->key_padding_mask)
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: key_padding_mask cannot be combined with cu_seqlens (packed batches have no padding)", op);
    }
    const pt_tensor* mask = P->key_padding_mask;
    if (mask) {
        PT_CHECK(pt_check_dtype(mask, "pt_flash_attn_fwd key_padding_mask", 3, PT_U8, PT_I32, PT_I64));
        if (mask->ndim != 2 || mask->shape[0] != B || mask->shape[1] != Sk) {
            char dm[96];
            pt_describe(mask, dm, sizeof dm);
            return pt_fail(PT_ERR_SHAPE, "%s: key_padding_mask %s must be [B, Sk] = [%lld, %lld]", op, dm, (long long)B, (long long)Sk);
        }
    }
    if (P->lse) {
        PT_CHECK(pt_check_dtype(P->lse, "pt_flash_attn_fwd lse", 1, PT_F32));
        const pt_tensor* L = P->lse;
        int ok = packed ? (L->ndim == 2 && L->shape[0] == H && L->shape[1] == Sq)
                        : (L->ndim == 3 && L->shape[0] == B && L->shape[1] == H && L->shape[2] == Sq);
        if (!ok) {
            char dl[96];
            pt_describe(L, dl, sizeof dl);
            return pt_fail(PT_ERR_SHAPE, "%s: lse %s must be %s = [%s%lld, %lld]", op, dl, packed ? "[H, T]" : "[B, H, Sq]",
                           packed ? "" : "B, ", (long long)H, (long long)Sq);
        }
        PT_CHECK(check_no_overlap(P->lse, "lse", q, "q", op));
        PT_CHECK(check_no_overlap(P->lse, "lse", k, "k", op));
        PT_CHECK(check_no_overlap(P->lse, "lse", v, "v", op));
        PT_CHECK(check_no_overlap(P->lse, "lse", o, "out", op));
    }
    PT_CHECK(check_no_overlap(o, "out", q, "q", op));
    PT_CHECK(check_no_overlap(o, "out", k, "k", op));
    PT_CHECK(check_no_overlap(o, "out", v, "v", op));
    if (B == 0 || Sq == 0 || H == 0) return PT_OK;

    pt_fa_problem pr;
    memset(&pr, 0, sizeof pr);
    pr.D = D; pr.Dv = Dv;
    pr.q_dtype = q->dtype; pr.kv_dtype = k->dtype; pr.out_dtype = o->dtype; pr.mask_dtype = mask ? mask->dtype : 0;
    pr.scale_log2 = (float)(default_scale(P->scale, D) * LOG2E);
    pr.wl = P->window_left;
    pr.wr = P->causal ? (P->window_right >= 0 ? imin(P->window_right, 0) : 0) : P->window_right;
    pr.q_ss = q->stride[o1]; pr.q_sh = q->stride[o1 + 1];
    pr.k_ss = k->stride[o1]; pr.v_ss = v->stride[o1];
    pr.out_ss = o->stride[o1]; pr.out_sh = o->stride[o1 + 1];
    if (P->lse) {
        pr.lse_sh = P->lse->stride[packed ? 0 : 1];
        pr.lse_ss = P->lse->stride[packed ? 1 : 2];
    }
    pr.mask_ss = mask ? mask->stride[1] : 0;
    bool avx512 = have_avx512(ctx);
    (void)avx512; /* x86 builds only */

    fa_run run;
    memset(&run, 0, sizeof run);
    run.p = &pr;
    run.fn = pt_fa_tile_portable;
#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
    if (avx512) run.fn = pt_fa_tile_avx512;
    if (avx512 && (ctx->caps & PT_CPU_AMX_BF16) && q->dtype == PT_BF16 && k->dtype == PT_BF16 && D % 32 == 0 && Dv % 32 == 0)
        run.fn = pt_fa_tile_amx;
#endif
    run.G = H / Hkv;
    run.Hkv = Hkv;
    run.hc = imin(run.G, PT_FA_BR);
    run.nhc = cdiv(run.G, run.hc);
    run.B = B; run.Sq = Sq; run.Sk = Sk;
    /* Rows per item: PT_FA_BR sub-tiles, as many (<= PT_FA_MAX_SUB) as keep >= 4 items per
     * thread. Bigger items read K/V from memory fewer times. */
    int64_t nsub = run.fn == pt_fa_tile_portable ? 1 : PT_FA_MAX_SUB;
#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
    if (run.fn == pt_fa_tile_amx) nsub = PT_FA_MAX_SUB_AMX;
#endif
    for (; nsub > 1; nsub /= 2) {
        int64_t tt = nsub * PT_FA_BR / run.hc, tiles = 0;
        if (packed) for (int64_t b = 0; b < B; b++) tiles += cdiv(cu_q[b + 1] - cu_q[b], tt);
        else tiles = B * cdiv(Sq, tt);
        if (tiles * Hkv * run.nhc >= 4 * (int64_t)ctx->n_threads) break;
    }
    run.tt = nsub * PT_FA_BR / run.hc;
    run.cu_q = cu_q; run.cu_k = cu_k;
    run.q = (const char*)q->data; run.k = (const char*)k->data; run.v = (const char*)v->data;
    run.out = (char*)o->data; run.lse = P->lse ? (char*)P->lse->data : NULL;
    run.mask = mask ? (const char*)mask->data : NULL;
    run.k_sh = k->stride[o1 + 1]; run.v_sh = v->stride[o1 + 1];
    if (!packed) {
        run.q_sb = q->stride[0]; run.k_sb = k->stride[0]; run.v_sb = v->stride[0]; run.out_sb = o->stride[0];
        run.lse_sb = P->lse ? P->lse->stride[0] : 0;
        run.mask_sb = mask ? mask->stride[0] : 0;
        run.tps = cdiv(Sq, run.tt);
        run.tiles_total = B * run.tps;
    } else {
        int64_t* pre = (int64_t*)pt_scratch(3, (size_t)(B + 1) * sizeof(int64_t));
        if (!pre) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: cannot allocate %lld bytes of tile index", op, (long long)(B + 1) * 8);
        pre[0] = 0;
        for (int64_t b = 0; b < B; b++) pre[b + 1] = pre[b] + cdiv(cu_q[b + 1] - cu_q[b], run.tt);
        run.tile_prefix = pre;
        run.tiles_total = pre[B];
    }
    run.n_items = run.tiles_total * Hkv * run.nhc;
    if (run.n_items == 0) return PT_OK;
    pt_parallel_range(ctx, imin(run.n_items, ctx->n_threads), 1, fa_worker, &run);
    if (run.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: a worker could not allocate its tile workspace", op);
    return PT_OK;
}

/* ============================================================== decode */

typedef struct {
    const pt_fd_problem* p;
    pt_fd_chunk_fn fn;
    const int64_t *item_prefix, *nsplit, *klo, *lens;   /* [B+1], [B], [B], [B] */
    int64_t B, Hkv, R, n_items;
    int direct;   /* every head's key range is one chunk: each worker writes out its items itself */
    const char *q, *k, *v;
    int64_t q_sb, k_sb, k_sh, v_sb, v_sh;
    float* part;
    /* merge */
    char *out, *lse;
    int64_t out_sb, out_st, out_sh, lse_sb, lse_sh, lse_st;
    int32_t out_dtype;
    volatile int64_t next;
    volatile int32_t failed;
} fd_run;

static void fd_item(const fd_run* run, int64_t n, int64_t* b_out, int64_t* kvh_out, int64_t* s_out) {
    int64_t lo = 0, hi = run->B;
    while (hi - lo > 1) {
        int64_t mid = (lo + hi) / 2;
        if (run->item_prefix[mid] <= n) lo = mid; else hi = mid;
    }
    int64_t rem = n - run->item_prefix[lo], ns = run->nsplit[lo];
    *b_out = lo; *kvh_out = rem / ns; *s_out = rem % ns;
}

static void fd_merge_one(const fd_run* run, int64_t bh, float* o);

static void fd_worker(int64_t begin, int64_t end, void* arg) {
    (void)begin; (void)end;
    fd_run* run = (fd_run*)arg;
    const pt_fd_problem* p = run->p;
    /* one chunk per head (run->direct): each item's merge is its own (the same arithmetic), done here */
    float* o = run->direct ? (float*)pt_scratch(1, (size_t)p->Dv * sizeof(float)) : NULL;
    if (run->direct && !o) { store_flag(&run->failed); return; }
    for (;;) {
        int64_t n = pt_fetch_add(&run->next, 1);
        if (n >= run->n_items) break;
        int64_t b, kvh, s;
        fd_item(run, n, &b, &kvh, &s);
        int64_t lo = run->klo[b], len = run->lens[b], ns = run->nsplit[b];
        int64_t chunk = (cdiv(len - lo, ns) + PT_FD_BK - 1) / PT_FD_BK * PT_FD_BK;
        pt_fd_item it;
        it.q = run->q + b * run->q_sb + kvh * p->G * p->q_sh;
        it.k = run->k + b * run->k_sb + kvh * run->k_sh;
        it.v = run->v + b * run->v_sb + kvh * run->v_sh;
        it.len = len;
        it.j0 = imin(len, lo + s * chunk);
        it.j1 = imin(len, it.j0 + chunk);
        if (!run->fn(p, &it, run->part + n * run->R * (p->Dv + 2))) store_flag(&run->failed);
        else if (o) fd_merge_one(run, n, o);
    }
}

/* Merges the partials of (b, kv head) bh by log-sum-exp and writes out and lse; o: Dv floats. */
static void fd_merge_one(const fd_run* run, int64_t bh, float* o) {
    const pt_fd_problem* p = run->p;
    const int64_t Dv = p->Dv, R = run->R, st = Dv + 2;
    int64_t b = bh / run->Hkv, kvh = bh % run->Hkv, ns = run->nsplit[b];
    int64_t first = run->item_prefix[b] + kvh * ns;
    for (int64_t r = 0; r < R; r++) {
        int64_t tok = r / p->G, h = kvh * p->G + r % p->G;
        float M = -INFINITY;
        for (int64_t s = 0; s < ns; s++) M = fmaxf(M, run->part[((first + s) * R + r) * st]);
        for (int64_t dv = 0; dv < Dv; dv++) o[dv] = 0.0f;
        float L = 0.0f;
        if (M != -INFINITY) {
            for (int64_t s = 0; s < ns; s++) {
                const float* pp = run->part + ((first + s) * R + r) * st;
                if (pp[1] == 0.0f) continue;
                float w = exp2f(pp[0] - M);
                L += w * pp[1];
                for (int64_t dv = 0; dv < Dv; dv++) o[dv] += w * pp[2 + dv];
            }
        }
        float inv = L > 0.0f ? 1.0f / L : 0.0f;
        for (int64_t dv = 0; dv < Dv; dv++) o[dv] *= inv;
        pt_store_row_f32(o, Dv, run->out_dtype, run->out + b * run->out_sb + tok * run->out_st + h * run->out_sh);
        if (run->lse) {
            float lv = L > 0.0f ? (float)((M + log2((double)L)) * LN2) : -INFINITY;
            memcpy(run->lse + b * run->lse_sb + h * run->lse_sh + tok * run->lse_st, &lv, 4);
        }
    }
}

static void fd_merge(int64_t begin, int64_t end, void* arg) {
    fd_run* run = (fd_run*)arg;
    float* o = (float*)pt_scratch(0, (size_t)run->p->Dv * sizeof(float));
    if (!o) { store_flag(&run->failed); return; }
    for (int64_t bh = begin; bh < end; bh++) fd_merge_one(run, bh, o);
}

pt_status pt_flash_attn_decode(pt_ctx* ctx, const pt_flash_decode_params* params) {
    static const char* op = "pt_flash_attn_decode";
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (!params) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: params is NULL", op);
    const pt_flash_decode_params* P = params;
    PT_CHECK(pt_check_dtype(P->q, "pt_flash_attn_decode q", 2, PT_F32, PT_BF16));
    PT_CHECK(pt_check_dtype(P->k_cache, "pt_flash_attn_decode k_cache", 2, PT_F32, PT_BF16));
    PT_CHECK(pt_check_dtype(P->v_cache, "pt_flash_attn_decode v_cache", 2, PT_F32, PT_BF16));
    PT_CHECK(pt_check_dtype(P->out, "pt_flash_attn_decode out", 2, PT_F32, PT_BF16));
    PT_CHECK(check_common(op, P->scale, P->window_left, P->window_right));
    if (P->num_splits < 0) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: num_splits %d must be >= 0 (0 = auto)", op, P->num_splits);
    const pt_tensor *q = P->q, *k = P->k_cache, *v = P->v_cache, *o = P->out;
    if (v->dtype != k->dtype)
        return pt_fail(PT_ERR_DTYPE, "%s: k_cache is %s but v_cache is %s (must share a dtype)", op, pt_dtype_name(k->dtype),
                       pt_dtype_name(v->dtype));
    char dq[96], dk[96], dv[96], dout[96];
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || o->ndim != 4)
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: needs q [B, Tq, H, D], k_cache [B, Hkv, S_max, D], v_cache [B, Hkv, S_max, Dv], out [B, Tq, H, Dv]; got q %s, k_cache %s, v_cache %s, out %s",
                       op, dq, dk, dv, dout));
    int64_t B = q->shape[0], Tq = q->shape[1], H = q->shape[2], D = q->shape[3];
    int64_t Hkv = k->shape[1], Smax = k->shape[2], Dv = v->shape[3];
    if (k->shape[0] != B || v->shape[0] != B || o->shape[0] != B)
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: batch sizes differ: q %s, k_cache %s, v_cache %s, out %s", op, dq, dk, dv, dout));
    if (k->shape[3] != D)
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: q %s and k_cache %s have different head dims", op, dq, dk));
    if (v->shape[1] != Hkv || v->shape[2] != Smax)
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: v_cache %s must match k_cache %s in kv heads and S_max", op, dv, dk));
    if (o->shape[1] != Tq || o->shape[2] != H || o->shape[3] != Dv)
        return DESCRIBED(pt_fail(PT_ERR_SHAPE, "%s: out %s must be [B, Tq, H, Dv] = [%lld, %lld, %lld, %lld]", op, dout, (long long)B,
                       (long long)Tq, (long long)H, (long long)Dv));
    PT_CHECK(check_head_dims(op, D, Dv, H, Hkv));
    const int32_t* lens32 = NULL;
    if (P->kv_lens) {
        PT_CHECK(check_i32_vec(P->kv_lens, "pt_flash_attn_decode kv_lens", B));
        lens32 = (const int32_t*)P->kv_lens->data;
        for (int64_t b = 0; b < B; b++)
            if (lens32[b] < 0 || lens32[b] > Smax)
                return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: kv_lens[%lld] = %d outside [0, S_max = %lld]", op, (long long)b, lens32[b],
                               (long long)Smax);
    }
    if (P->lse) {
        PT_CHECK(pt_check_dtype(P->lse, "pt_flash_attn_decode lse", 1, PT_F32));
        const pt_tensor* L = P->lse;
        if (L->ndim != 3 || L->shape[0] != B || L->shape[1] != H || L->shape[2] != Tq) {
            char dl[96];
            pt_describe(L, dl, sizeof dl);
            return pt_fail(PT_ERR_SHAPE, "%s: lse %s must be [B, H, Tq] = [%lld, %lld, %lld]", op, dl, (long long)B, (long long)H,
                           (long long)Tq);
        }
        PT_CHECK(check_no_overlap(P->lse, "lse", q, "q", op));
        PT_CHECK(check_no_overlap(P->lse, "lse", k, "k_cache", op));
        PT_CHECK(check_no_overlap(P->lse, "lse", v, "v_cache", op));
        PT_CHECK(check_no_overlap(P->lse, "lse", o, "out", op));
    }
    PT_CHECK(check_no_overlap(o, "out", q, "q", op));
    PT_CHECK(check_no_overlap(o, "out", k, "k_cache", op));
    PT_CHECK(check_no_overlap(o, "out", v, "v_cache", op));
    if (B == 0 || Tq == 0 || H == 0) return PT_OK;

    pt_fd_problem pr;
    memset(&pr, 0, sizeof pr);
    pr.D = D; pr.Dv = Dv; pr.G = H / Hkv; pr.Tq = Tq;
    pr.q_dtype = q->dtype; pr.kv_dtype = k->dtype;
    pr.scale_log2 = (float)(default_scale(P->scale, D) * LOG2E);
    pr.wl = P->window_left;
    pr.wr = P->causal ? (P->window_right >= 0 ? imin(P->window_right, 0) : 0) : P->window_right;
    pr.q_st = q->stride[1]; pr.q_sh = q->stride[2];
    pr.k_ss = k->stride[2]; pr.v_ss = v->stride[2];
    /* the AVX-512 kernel's prefetch: as measured on Sapphire Rapids where AMX is (into L2, far,
     * split ranges), into L1 and near elsewhere (Zen 5: 1.4x from DRAM; flash_attn_avx512.c) */
    pr.pf_l1 = !(ctx->caps & PT_CPU_AMX_BF16);

    /* Split each head's visible key range [klo, len) into chunks. */
    int64_t R = pr.G * Tq;
    int64_t* meta = (int64_t*)pt_scratch(3, (size_t)(4 * B + 1) * sizeof(int64_t));
    if (!meta) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: cannot allocate the split index", op);
    int64_t *prefix = meta, *nsplit = prefix + B + 1, *klo = nsplit + B, *lens = klo + B;
    int64_t total = 0;
    for (int64_t b = 0; b < B; b++) {
        lens[b] = lens32 ? lens32[b] : Smax;
        klo[b] = imax(0, imin(lens[b], pt_fa_lo(pr.wl, lens[b] - Tq)));
        total += (lens[b] - klo[b]) * Hkv;
    }
    int64_t T = ctx->n_threads, chunk = 0;
    if (P->num_splits == 0) chunk = imax(256, cdiv(total, 4 * T));
    prefix[0] = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t n = lens[b] - klo[b], ns;
        if (P->num_splits == 0) ns = imax(1, cdiv(n, chunk));
        else ns = imax(1, imin(P->num_splits, cdiv(n, PT_FD_BK)));
        nsplit[b] = ns;
        prefix[b + 1] = prefix[b] + Hkv * ns;
    }
    int64_t n_items = prefix[B];
    size_t part_bytes = (size_t)n_items * (size_t)R * (size_t)(Dv + 2) * sizeof(float);
    /* slot 2: slot 3 holds the index above, slot 0/1 belong to the workers. */
    float* part = (float*)pt_scratch(2, part_bytes);
    if (!part) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: cannot allocate %llu bytes of partial results", op, (unsigned long long)part_bytes);

    fd_run run;
    memset(&run, 0, sizeof run);
    run.p = &pr;
    run.fn = pt_fd_chunk_portable;
#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
    if (!have_avx512(ctx) && (ctx->caps & PT_CPU_AVX2) && (ctx->caps & PT_CPU_FMA)) run.fn = pt_fd_chunk_avx2;
    if (have_avx512(ctx)) run.fn = pt_fd_chunk_avx512;
    /* bf16: AMX wherever it takes the shape (G·Tq <= 16, dims multiples of 32), else the AVX-512
     * kernel widening bf16 to f32 for FMA. A VDPBF16PS decode kernel (both products on bf16
     * pairs; git history, session 4) ran at 0.6-0.9x of AMX and 0.85-0.95x of the widening kernel
     * with K/V from DRAM, ~1.0x of the latter in cache (BENCHMARKS.md, issue 3): not kept. */
    if (have_avx512(ctx) && (ctx->caps & PT_CPU_AMX_BF16) && q->dtype == PT_BF16 && k->dtype == PT_BF16 && D % 32 == 0 &&
        Dv % 32 == 0 && D <= 256 && Dv <= 256 && R <= 16)
        run.fn = pt_fd_chunk_amx;
#endif
    run.item_prefix = prefix; run.nsplit = nsplit; run.klo = klo; run.lens = lens;
    run.B = B; run.Hkv = Hkv; run.R = R; run.n_items = n_items;
    run.q = (const char*)q->data; run.k = (const char*)k->data; run.v = (const char*)v->data;
    run.q_sb = q->stride[0]; run.k_sb = k->stride[0]; run.k_sh = k->stride[1]; run.v_sb = v->stride[0]; run.v_sh = v->stride[1];
    run.part = part;
    run.out = (char*)o->data; run.out_sb = o->stride[0]; run.out_st = o->stride[1]; run.out_sh = o->stride[2];
    run.out_dtype = o->dtype;
    if (P->lse) {
        run.lse = (char*)P->lse->data;
        run.lse_sb = P->lse->stride[0]; run.lse_sh = P->lse->stride[1]; run.lse_st = P->lse->stride[2];
    }
    run.direct = n_items == B * Hkv; /* nsplit[b] == 1 for every b: item n is (b, kv head) n */
    pt_parallel_range(ctx, imin(n_items, ctx->n_threads), 1, fd_worker, &run);
    if (run.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: a worker could not allocate its workspace", op);
    if (!run.direct) pt_parallel_range(ctx, B * Hkv, imax(1, 64 / imax(1, R)), fd_merge, &run);
    if (run.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: the merge could not allocate its workspace", op);
    return PT_OK;
}
