/* pt_flash_attn_fwd, pt_flash_attn_decode and pt_kv_cache_append against a plain
 * double-precision attention softmax(scale * Q Kᵀ + mask) V written here, on the portable
 * and the AVX-512 kernels, f32 and bf16, with NaN-poisoned outputs. */
#include "pt_test.h"

#include <string.h>

#define MAXB 8

static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static float round_bf16(float f) { return from_bf16(to_bf16(f)); }

/* Stores n floats as dtype into dst (element i at byte i * size). */
static void store(void* dst, int32_t dtype, const float* src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (dtype == PT_BF16) ((uint16_t*)dst)[i] = to_bf16(src[i]);
        else ((float*)dst)[i] = src[i];
    }
}
static float load1(const void* base, int32_t dtype, size_t i) {
    return dtype == PT_BF16 ? from_bf16(((const uint16_t*)base)[i]) : ((const float*)base)[i];
}

/* ---------------------------------------------------------------- reference */

/* Sequences: query tokens qo[b] .. qo[b]+sq[b]-1 of q [T, H, D] (token-major), keys
 * ko[b] .. ko[b]+sk[b]-1 of k [Tk, Hkv, D] / v [Tk, Hkv, Dv]. mask: [B][Sk] or NULL. */
typedef struct {
    int64_t B, H, Hkv, D, Dv;
    int64_t qo[MAXB], sq[MAXB], ko[MAXB], sk[MAXB];
    int causal, wl, wr;
    double scale;
    const uint8_t* mask; int64_t mask_stride;
} ref_problem;

static int visible(const ref_problem* r, int64_t b, int64_t i, int64_t j) {
    int64_t p = i + r->sk[b] - r->sq[b];
    if (r->causal && j > p) return 0;
    if (r->wl >= 0 && j < p - r->wl) return 0;
    if (r->wr >= 0 && j > p + r->wr) return 0;
    if (r->mask && !r->mask[b * r->mask_stride + j]) return 0;
    return 1;
}

/* out [T, H, Dv], lse [H][T] (natural log); mode 1: emulate a naive bf16 attention (scores,
 * probabilities and output rounded to bf16, f32 softmax and accumulation) */
static void ref_attention(const ref_problem* r, const float* q, const float* k, const float* v, double* out, double* lse,
                          int64_t T, int bf16_naive) {
    int64_t G = r->H / r->Hkv;
    double* s = malloc(sizeof(double) * 100000);
    float* pb = malloc(sizeof(float) * 100000); /* bf16_naive: the rounded probabilities of a row */
    for (int64_t b = 0; b < r->B; b++)
        for (int64_t h = 0; h < r->H; h++)
            for (int64_t i = 0; i < r->sq[b]; i++) {
                const float* qr = q + ((r->qo[b] + i) * r->H + h) * r->D;
                double mx = -INFINITY;
                for (int64_t j = 0; j < r->sk[b]; j++) {
                    s[j] = -INFINITY;
                    if (!visible(r, b, i, j)) continue;
                    const float* kr = k + ((r->ko[b] + j) * r->Hkv + h / G) * r->D;
                    double acc = 0;
                    if (bf16_naive) {
                        float f = 0;
                        for (int64_t d = 0; d < r->D; d++) f += qr[d] * kr[d];
                        acc = round_bf16(round_bf16(f) * (float)r->scale);
                    } else {
                        for (int64_t d = 0; d < r->D; d++) acc += (double)qr[d] * kr[d];
                        acc *= r->scale;
                    }
                    s[j] = acc;
                    if (acc > mx) mx = acc;
                }
                double sum = 0;
                for (int64_t j = 0; j < r->sk[b]; j++) {
                    s[j] = s[j] == -INFINITY ? 0 : exp(s[j] - mx);
                    sum += s[j];
                }
                double* o = out + ((r->qo[b] + i) * r->H + h) * r->Dv;
                for (int64_t dv = 0; dv < r->Dv; dv++) o[dv] = 0;
                if (lse) lse[h * T + r->qo[b] + i] = sum > 0 ? mx + log(sum) : -INFINITY;
                if (sum == 0) continue;
                if (bf16_naive) {
                    for (int64_t j = 0; j < r->sk[b]; j++) pb[j] = s[j] == 0 ? 0.0f : round_bf16((float)(s[j] / sum)); /* once per key */
                    for (int64_t dv = 0; dv < r->Dv; dv++) {
                        float f = 0;
                        for (int64_t j = 0; j < r->sk[b]; j++) {
                            if (s[j] == 0) continue;
                            f += pb[j] * v[((r->ko[b] + j) * r->Hkv + h / G) * r->Dv + dv];
                        }
                        o[dv] = round_bf16(f);
                    }
                } else {
                    for (int64_t j = 0; j < r->sk[b]; j++) {
                        if (s[j] == 0) continue;
                        const float* vr = v + ((r->ko[b] + j) * r->Hkv + h / G) * r->Dv;
                        const double pj = s[j] / sum;
                        for (int64_t dv = 0; dv < r->Dv; dv++) o[dv] += pj * vr[dv];
                    }
                }
            }
    free(s);
    free(pb);
}

static double max_abs_err(const float* got, const double* want, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d == d)) return INFINITY;
        if (d > e) e = d;
    }
    return e;
}

/* ---------------------------------------------------------------- prefill cases */

typedef struct {
    int64_t B, Sq, Sk, H, Hkv, D, Dv;
    int causal, wl, wr;
    int pad;                 /* 1: key padding mask (random lengths and holes) */
    int packed;              /* 1: varlen with lengths lq/lk */
    int64_t lq[MAXB], lk[MAXB];
    float scale;
    int fused;               /* 1: q, k, v are views into one fused [T, H + 2 Hkv + 1, D] buffer */
    int want_lse;
} fa_case;

static const char* g_ctx_name = "";

static void run_case(pt_ctx* ctx, const fa_case* c, int32_t dtype, int32_t out_dtype) {
    int64_t B = c->B, H = c->H, Hkv = c->Hkv, D = c->D, Dv = c->Dv;
    ref_problem r;
    memset(&r, 0, sizeof r);
    r.B = B; r.H = H; r.Hkv = Hkv; r.D = D; r.Dv = Dv;
    r.causal = c->causal; r.wl = c->wl; r.wr = c->wr;
    r.scale = c->scale != 0 ? c->scale : 1.0 / sqrt((double)D);
    int64_t Tq = 0, Tk = 0;
    for (int64_t b = 0; b < B; b++) {
        r.sq[b] = c->packed ? c->lq[b] : c->Sq;
        r.sk[b] = c->packed ? c->lk[b] : c->Sk;
        r.qo[b] = Tq; r.ko[b] = Tk;
        Tq += r.sq[b]; Tk += r.sk[b];
    }
    size_t es = pt_dtype_size(dtype), eo = pt_dtype_size(out_dtype);
    float* q = malloc(sizeof(float) * (Tq * H * D + 1));
    float* k = malloc(sizeof(float) * (Tk * Hkv * D + 1));
    float* v = malloc(sizeof(float) * (Tk * Hkv * Dv + 1));
    pt_test_fill(q, Tq * H * D, -2.5, 2.5);
    pt_test_fill(k, Tk * Hkv * D, -2.5, 2.5);
    pt_test_fill(v, Tk * Hkv * Dv, -1, 1);
    if (dtype == PT_BF16) {
        for (int64_t i = 0; i < Tq * H * D; i++) q[i] = round_bf16(q[i]);
        for (int64_t i = 0; i < Tk * Hkv * D; i++) k[i] = round_bf16(k[i]);
        for (int64_t i = 0; i < Tk * Hkv * Dv; i++) v[i] = round_bf16(v[i]);
    }
    uint8_t* mask = NULL;
    if (c->pad) {
        mask = malloc((size_t)(B * c->Sk + 1));
        for (int64_t b = 0; b < B; b++) {
            int64_t len = b == 0 ? c->Sk : (int64_t)pt_test_uniform(0, (double)c->Sk + 1);
            for (int64_t j = 0; j < c->Sk; j++) mask[b * c->Sk + j] = j < len && pt_test_uniform(0, 1) > 0.1;
        }
        r.mask = mask;
        r.mask_stride = c->Sk;
    }
    /* device buffers */
    int64_t heads_fused = H + 2 * Hkv + 1;
    void *qb, *kb, *vb, *fusedb = NULL;
    int64_t q_tok, q_head, k_tok, v_tok; /* byte strides */
    if (c->fused) { /* requires Sq == Sk, Dv == D, not packed-cross */
        fusedb = malloc((size_t)(Tq * heads_fused * D) * es);
        pt_test_poison(fusedb, (size_t)(Tq * heads_fused * D) * es);
        for (int64_t t = 0; t < Tq; t++) {
            char* row = (char*)fusedb + (size_t)(t * heads_fused * D) * es;
            store(row, dtype, q + t * H * D, (size_t)(H * D));
            store(row + (size_t)(H * D) * es, dtype, k + t * Hkv * D, (size_t)(Hkv * D));
            store(row + (size_t)((H + Hkv) * D) * es, dtype, v + t * Hkv * D, (size_t)(Hkv * D));
        }
        qb = fusedb;
        kb = (char*)fusedb + (size_t)(H * D) * es;
        vb = (char*)fusedb + (size_t)((H + Hkv) * D) * es;
        q_tok = k_tok = v_tok = heads_fused * D * (int64_t)es;
        q_head = D * (int64_t)es;
    } else {
        qb = malloc((size_t)(Tq * H * D) * es + 1);
        kb = malloc((size_t)(Tk * Hkv * D) * es + 1);
        vb = malloc((size_t)(Tk * Hkv * Dv) * es + 1);
        store(qb, dtype, q, (size_t)(Tq * H * D));
        store(kb, dtype, k, (size_t)(Tk * Hkv * D));
        store(vb, dtype, v, (size_t)(Tk * Hkv * Dv));
        q_tok = H * D * (int64_t)es; q_head = D * (int64_t)es;
        k_tok = Hkv * D * (int64_t)es; v_tok = Hkv * Dv * (int64_t)es;
    }
    /* out rows padded by 3 elements that must stay untouched */
    int64_t orow = Dv + 3;
    size_t out_n = (size_t)(Tq * H * orow);
    void* ob = malloc(out_n * eo + 1);
    pt_test_poison(ob, out_n * eo);
    float* lseb = malloc(sizeof(float) * (size_t)(H * Tq + 1));
    pt_test_poison(lseb, sizeof(float) * (size_t)(H * Tq));

    pt_tensor tq, tk, tv, to, tl, tm, tcq, tck;
    memset(&tq, 0, sizeof tq);
    tq.dtype = dtype; tk = tq; tv = tq; to = tq; to.dtype = out_dtype;
    tq.data = qb; tk.data = kb; tv.data = vb; to.data = ob;
    int32_t cuq[MAXB + 1], cuk[MAXB + 1];
    if (c->packed) {
        tq.ndim = tk.ndim = tv.ndim = to.ndim = 3;
        int64_t qs[3] = {Tq, H, D}, ks[3] = {Tk, Hkv, D}, vs[3] = {Tk, Hkv, Dv}, os[3] = {Tq, H, Dv};
        int64_t qst[3] = {q_tok, q_head, (int64_t)es}, kst[3] = {k_tok, D * (int64_t)es, (int64_t)es},
                vst[3] = {v_tok, Dv * (int64_t)es, (int64_t)es}, ost[3] = {H * orow * (int64_t)eo, orow * (int64_t)eo, (int64_t)eo};
        memcpy(tq.shape, qs, sizeof qs); memcpy(tq.stride, qst, sizeof qst);
        memcpy(tk.shape, ks, sizeof ks); memcpy(tk.stride, kst, sizeof kst);
        memcpy(tv.shape, vs, sizeof vs); memcpy(tv.stride, vst, sizeof vst);
        memcpy(to.shape, os, sizeof os); memcpy(to.stride, ost, sizeof ost);
        for (int64_t b = 0; b <= B; b++) {
            cuq[b] = (int32_t)(b < B ? r.qo[b] : Tq);
            cuk[b] = (int32_t)(b < B ? r.ko[b] : Tk);
        }
        int64_t cs[1] = {B + 1};
        tcq = pt_test_tensor(cuq, PT_I32, 1, cs);
        tck = pt_test_tensor(cuk, PT_I32, 1, cs);
        int64_t ls[2] = {H, Tq};
        tl = pt_test_tensor(lseb, PT_F32, 2, ls);
    } else {
        tq.ndim = tk.ndim = tv.ndim = to.ndim = 4;
        int64_t qs[4] = {B, c->Sq, H, D}, ks[4] = {B, c->Sk, Hkv, D}, vs[4] = {B, c->Sk, Hkv, Dv}, os[4] = {B, c->Sq, H, Dv};
        int64_t qst[4] = {c->Sq * q_tok, q_tok, q_head, (int64_t)es}, kst[4] = {c->Sk * k_tok, k_tok, D * (int64_t)es, (int64_t)es},
                vst[4] = {c->Sk * v_tok, v_tok, Dv * (int64_t)es, (int64_t)es},
                ost[4] = {c->Sq * H * orow * (int64_t)eo, H * orow * (int64_t)eo, orow * (int64_t)eo, (int64_t)eo};
        memcpy(tq.shape, qs, sizeof qs); memcpy(tq.stride, qst, sizeof qst);
        memcpy(tk.shape, ks, sizeof ks); memcpy(tk.stride, kst, sizeof kst);
        memcpy(tv.shape, vs, sizeof vs); memcpy(tv.stride, vst, sizeof vst);
        memcpy(to.shape, os, sizeof os); memcpy(to.stride, ost, sizeof ost);
        /* lse [B, H, Sq] stored at lseb[h * Tq + b * Sq + i] (the reference's [H][T] order) */
        int64_t ls[3] = {B, H, c->Sq};
        tl = pt_test_tensor(lseb, PT_F32, 3, ls);
        tl.stride[0] = c->Sq * 4; tl.stride[1] = Tq * 4; tl.stride[2] = 4;
        if (mask) {
            int64_t ms[2] = {B, c->Sk};
            tm = pt_test_tensor(mask, PT_U8, 2, ms);
        }
    }
    pt_flash_attn_params p;
    memset(&p, 0, sizeof p);
    p.q = &tq; p.k = &tk; p.v = &tv; p.out = &to;
    p.key_padding_mask = mask ? &tm : NULL;
    p.cu_seqlens_q = c->packed ? &tcq : NULL;
    p.cu_seqlens_k = c->packed ? &tck : NULL;
    p.lse = c->want_lse ? &tl : NULL;
    p.scale = c->scale; p.causal = c->causal; p.window_left = c->wl; p.window_right = c->wr;
    EXPECT_OK(pt_flash_attn_fwd(ctx, &p));

    double* want = malloc(sizeof(double) * (size_t)(Tq * H * Dv + 1));
    double* wlse = malloc(sizeof(double) * (size_t)(H * Tq + 1));
    ref_attention(&r, q, k, v, want, wlse, Tq, 0);
    float* got = malloc(sizeof(float) * (size_t)(Tq * H * Dv + 1));
    int untouched = 1;
    for (int64_t t = 0; t < Tq * H; t++) {
        for (int64_t dv = 0; dv < Dv; dv++) got[t * Dv + dv] = load1(ob, out_dtype, (size_t)(t * orow + dv));
        for (int64_t dv = Dv; dv < orow; dv++) {
            float x = load1(ob, out_dtype, (size_t)(t * orow + dv));
            if (x == x) untouched = 0;
        }
    }
    char desc[256];
    snprintf(desc, sizeof desc, "%s %s->%s B=%lld Sq=%lld Sk=%lld H=%lld Hkv=%lld D=%lld Dv=%lld causal=%d wl=%d wr=%d pad=%d packed=%d fused=%d",
             g_ctx_name, dtype == PT_BF16 ? "bf16" : "f32", out_dtype == PT_BF16 ? "bf16" : "f32", (long long)B, (long long)c->Sq,
             (long long)c->Sk, (long long)H, (long long)Hkv, (long long)D, (long long)Dv, c->causal, c->wl, c->wr, c->pad, c->packed,
             c->fused);
    EXPECT(untouched, "%s: wrote into the padding between output rows", desc);
    size_t n = (size_t)(Tq * H * Dv);
    if (dtype == PT_F32 && out_dtype == PT_F32) {
        double e = pt_test_err(got, want, n, 2e-5, 2e-5);
        EXPECT(e <= 1.0, "%s: err %g", desc, e);
    } else {
        double* naive = malloc(sizeof(double) * (n + 1));
        ref_attention(&r, q, k, v, naive, NULL, Tq, 1);
        float* naivef = malloc(sizeof(float) * (n + 1));
        for (size_t i = 0; i < n; i++) naivef[i] = (float)naive[i];
        double e_naive = max_abs_err(naivef, want, n), e = max_abs_err(got, want, n);
        EXPECT(e <= 2 * e_naive + 1e-6, "%s: bf16 err %g > 2 x naive bf16 err %g", desc, e, e_naive);
        free(naive); free(naivef);
    }
    if (c->want_lse) {
        double worst = 0;
        for (int64_t i = 0; i < H * Tq; i++) {
            double w = wlse[i], g = lseb[i];
            double d = (w == -INFINITY) ? (g == -INFINITY ? 0 : INFINITY) : fabs(g - w) / (1e-4 + 1e-5 * fabs(w));
            if (!(d == d)) d = INFINITY;
            if (d > worst) worst = d;
        }
        double lim = dtype == PT_BF16 ? 50 : 1; /* bf16 dot products round q·k */
        EXPECT(worst <= lim, "%s: lse err %g", desc, worst);
    }
    free(q); free(k); free(v); free(mask); free(ob); free(lseb); free(want); free(wlse); free(got);
    if (fusedb) free(fusedb);
    else { free(qb); free(kb); free(vb); }
}

static fa_case mk(int64_t B, int64_t Sq, int64_t Sk, int64_t H, int64_t Hkv, int64_t D, int causal) {
    fa_case c;
    memset(&c, 0, sizeof c);
    c.B = B; c.Sq = Sq; c.Sk = Sk; c.H = H; c.Hkv = Hkv; c.D = D; c.Dv = D;
    c.causal = causal; c.wl = -1; c.wr = -1; c.want_lse = 1;
    return c;
}

static void prefill_cases(pt_ctx* ctx, int32_t dtype, int32_t out_dtype, int full) {
    fa_case c;
    /* S = 1, odd S, S not a multiple of the tile, causal and not, GQA, MQA */
    c = mk(1, 1, 1, 1, 1, 64, 0); run_case(ctx, &c, dtype, out_dtype);
    c = mk(2, 7, 7, 4, 2, 64, 1); run_case(ctx, &c, dtype, out_dtype);
    c = mk(1, 65, 65, 2, 2, 80, 0); run_case(ctx, &c, dtype, out_dtype);
    c = mk(1, 65, 65, 2, 2, 80, 1); run_case(ctx, &c, dtype, out_dtype);
    c = mk(1, 127, 127, 4, 1, 96, 1); run_case(ctx, &c, dtype, out_dtype);
    c = mk(2, 33, 33, 8, 2, 128, 0); run_case(ctx, &c, dtype, out_dtype);
    c = mk(1, 200, 200, 3, 1, 64, 1); run_case(ctx, &c, dtype, out_dtype);     /* G = 3: 21 tokens per tile */
    c = mk(1, 9, 9, 70, 1, 32, 1); run_case(ctx, &c, dtype, out_dtype);        /* G = 70 > 64: two head chunks */
    /* items of 8 sub-tiles (512 rows, AVX-512) or 4 (AMX) sharing each K/V tile, the last item
     * partial; causal (sub-tiles see different key ranges) and a sliding window */
    c = mk(1, 600, 600, 4, 2, 32, 1); run_case(ctx, &c, dtype, out_dtype);
    c = mk(1, 600, 600, 4, 2, 32, 0); c.wl = 100; c.wr = 50; run_case(ctx, &c, dtype, out_dtype);
    /* queries are the last Sq tokens (chunked prefill); Sq > Sk leaves rows with no key */
    c = mk(1, 17, 100, 4, 4, 64, 1); run_case(ctx, &c, dtype, out_dtype);
    c = mk(1, 10, 4, 2, 1, 64, 1); run_case(ctx, &c, dtype, out_dtype);
    c = mk(1, 17, 100, 2, 2, 64, 0); run_case(ctx, &c, dtype, out_dtype);
    /* sliding windows */
    c = mk(1, 150, 150, 2, 1, 64, 1); c.wl = 31; run_case(ctx, &c, dtype, out_dtype);
    c = mk(1, 70, 70, 2, 2, 32, 0); c.wl = 5; c.wr = 9; run_case(ctx, &c, dtype, out_dtype);
    c = mk(1, 130, 130, 2, 2, 64, 0); c.wl = 0; c.wr = 0; run_case(ctx, &c, dtype, out_dtype);
    /* key padding masks */
    c = mk(3, 40, 40, 4, 2, 64, 0); c.pad = 1; run_case(ctx, &c, dtype, out_dtype);
    c = mk(3, 70, 70, 2, 1, 64, 1); c.pad = 1; run_case(ctx, &c, dtype, out_dtype);
    /* packed variable-length batches (self and cross), one empty sequence */
    c = mk(3, 0, 0, 4, 2, 64, 1); c.packed = 1;
    c.lq[0] = 5; c.lq[1] = 0; c.lq[2] = 70; memcpy(c.lk, c.lq, sizeof c.lq); run_case(ctx, &c, dtype, out_dtype);
    c = mk(4, 0, 0, 2, 2, 80, 0); c.packed = 1;
    c.lq[0] = 3; c.lq[1] = 9; c.lq[2] = 1; c.lq[3] = 66; c.lk[0] = 7; c.lk[1] = 1; c.lk[2] = 130; c.lk[3] = 66;
    run_case(ctx, &c, dtype, out_dtype);
    c.causal = 1; c.wl = 20; run_case(ctx, &c, dtype, out_dtype);
    /* custom scale, different value head dim, fused QKV views */
    c = mk(1, 20, 20, 2, 2, 64, 0); c.Dv = 32; c.scale = 0.3f; run_case(ctx, &c, dtype, out_dtype);
    c = mk(2, 45, 45, 4, 2, 64, 1); c.fused = 1; run_case(ctx, &c, dtype, out_dtype);
    c = mk(3, 0, 0, 4, 1, 96, 1); c.packed = 1; c.fused = 1;
    c.lq[0] = 30; c.lq[1] = 1; c.lq[2] = 67; memcpy(c.lk, c.lq, sizeof c.lq); run_case(ctx, &c, dtype, out_dtype);
    /* every head dim we claim (1..256), including odd ones */
    static const int64_t dims[] = {1, 16, 32, 33, 40, 64, 72, 80, 96, 100, 112, 128, 160, 192, 200, 255, 256};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i += pt_test_quick() ? 2 : 1) {
        c = mk(1, 37, 37, 2, 1, dims[i], (int)(i & 1));
        if (i % 3 == 0) c.Dv = dims[(i + 5) % (sizeof dims / sizeof dims[0])];
        run_case(ctx, &c, dtype, out_dtype);
    }
    if (full) { /* several query and key tiles */
        c = mk(1, 300, 300, 4, 2, 128, 1); run_case(ctx, &c, dtype, out_dtype);
        c = mk(1, 260, 260, 2, 2, 128, 0); run_case(ctx, &c, dtype, out_dtype);
    }
}

/* ---------------------------------------------------------------- KV cache + decode */

static void rope_ref(float* x, int64_t D, int64_t rd, int mode, double theta, double pos) {
    for (int64_t i = 0; i < rd / 2; i++) {
        int64_t a = mode == PT_ROPE_GPTJ ? 2 * i : i, b = mode == PT_ROPE_GPTJ ? 2 * i + 1 : i + rd / 2;
        double ang = pos * pow(theta, -2.0 * (double)i / (double)rd);
        double x0 = x[a], x1 = x[b];
        x[a] = (float)(x0 * cos(ang) - x1 * sin(ang));
        x[b] = (float)(x0 * sin(ang) + x1 * cos(ang));
    }
    (void)D;
}

static void test_append(pt_ctx* ctx, int32_t kdt, int32_t cdt, int mode, int64_t rd) {
    int64_t B = 3, T = 5, Hkv = 2, D = 48, Dv = 40, Smax = 20;
    int32_t start[3] = {0, 7, 15};
    float* kn = malloc(sizeof(float) * B * T * Hkv * D);
    float* vn = malloc(sizeof(float) * B * T * Hkv * Dv);
    pt_test_fill(kn, B * T * Hkv * D, -1, 1);
    pt_test_fill(vn, B * T * Hkv * Dv, -1, 1);
    if (kdt == PT_BF16) {
        for (int64_t i = 0; i < B * T * Hkv * D; i++) kn[i] = round_bf16(kn[i]);
        for (int64_t i = 0; i < B * T * Hkv * Dv; i++) vn[i] = round_bf16(vn[i]);
    }
    size_t ek = pt_dtype_size(kdt), ec = pt_dtype_size(cdt);
    void* knb = malloc(B * T * Hkv * D * ek);
    void* vnb = malloc(B * T * Hkv * Dv * ek);
    store(knb, kdt, kn, B * T * Hkv * D);
    store(vnb, kdt, vn, B * T * Hkv * Dv);
    void* kc = malloc(B * Hkv * Smax * D * ec);
    void* vc = malloc(B * Hkv * Smax * Dv * ec);
    pt_test_poison(kc, B * Hkv * Smax * D * ec);
    pt_test_poison(vc, B * Hkv * Smax * Dv * ec);
    int64_t ks[4] = {B, T, Hkv, D}, vs[4] = {B, T, Hkv, Dv}, kcs[4] = {B, Hkv, Smax, D}, vcs[4] = {B, Hkv, Smax, Dv}, ss[1] = {B};
    pt_tensor tkn = pt_test_tensor(knb, kdt, 4, ks), tvn = pt_test_tensor(vnb, kdt, 4, vs);
    pt_tensor tkc = pt_test_tensor(kc, cdt, 4, kcs), tvc = pt_test_tensor(vc, cdt, 4, vcs), tst = pt_test_tensor(start, PT_I32, 1, ss);
    pt_rope_params rp = {mode, (int32_t)rd, 10000.0f, 0.0f, NULL};
    EXPECT_OK(pt_kv_cache_append(ctx, &tkn, &tvn, &tst, &tkc, &tvc, rd ? &rp : NULL));
    double ek_worst = 0, ev_worst = 0;
    int rows_ok = 1;
    float* row = malloc(sizeof(float) * D);
    for (int64_t b = 0; b < B; b++)
        for (int64_t g = 0; g < Hkv; g++)
            for (int64_t s = 0; s < Smax; s++) {
                int64_t t = s - start[b];
                size_t kb = (size_t)(((b * Hkv + g) * Smax + s) * D), vb = (size_t)(((b * Hkv + g) * Smax + s) * Dv);
                if (t < 0 || t >= T) { /* untouched */
                    float x = load1(kc, cdt, kb), y = load1(vc, cdt, vb);
                    if (x == x || y == y) rows_ok = 0;
                    continue;
                }
                memcpy(row, kn + ((b * T + t) * Hkv + g) * D, sizeof(float) * D);
                if (rd) rope_ref(row, D, rd, mode, 10000.0, (double)s);
                for (int64_t d = 0; d < D; d++) {
                    double want = cdt == PT_BF16 ? round_bf16(row[d]) : row[d];
                    double e = fabs(load1(kc, cdt, kb + d) - want);
                    if (!(e == e)) e = INFINITY;
                    if (e > ek_worst) ek_worst = e;
                }
                for (int64_t d = 0; d < Dv; d++) {
                    double want = vn[((b * T + t) * Hkv + g) * Dv + d];
                    double e = fabs(load1(vc, cdt, vb + d) - (cdt == PT_BF16 ? round_bf16((float)want) : want));
                    if (!(e == e)) e = INFINITY;
                    if (e > ev_worst) ev_worst = e;
                }
            }
    double ktol = cdt == PT_BF16 ? 8e-3 : 1e-5; /* bf16: one rounding step of values <= ~1.5 */
    EXPECT(rows_ok, "append wrote rows outside start..start+T");
    EXPECT(ek_worst <= ktol, "append k (mode %d rd %lld, %s->%s) err %g", mode, (long long)rd, kdt == PT_BF16 ? "bf16" : "f32",
           cdt == PT_BF16 ? "bf16" : "f32", ek_worst);
    EXPECT(ev_worst == 0, "append v err %g", ev_worst);
    free(kn); free(vn); free(knb); free(vnb); free(kc); free(vc); free(row);
}

/* Decode: caches filled by pt_kv_cache_append; compared with the reference and with the last
 * Tq rows of pt_flash_attn_fwd on the same K/V. */
static void run_decode(pt_ctx* ctx, int64_t B, const int64_t* lens, int64_t Tq, int64_t H, int64_t Hkv, int64_t D, int64_t Dv,
                       int32_t dtype, int causal, int wl, int splits) {
    int64_t Smax = 0;
    for (int64_t b = 0; b < B; b++) if (lens[b] > Smax) Smax = lens[b];
    Smax += 3;
    size_t es = pt_dtype_size(dtype);
    /* full sequences K/V [B, Smax, Hkv, D] and queries [B, Smax, H, D] */
    float* k = malloc(sizeof(float) * B * Smax * Hkv * D);
    float* v = malloc(sizeof(float) * B * Smax * Hkv * Dv);
    float* q = malloc(sizeof(float) * B * Smax * H * D);
    pt_test_fill(k, B * Smax * Hkv * D, -2.5, 2.5);
    pt_test_fill(v, B * Smax * Hkv * Dv, -1, 1);
    pt_test_fill(q, B * Smax * H * D, -2.5, 2.5);
    if (dtype == PT_BF16) {
        for (int64_t i = 0; i < B * Smax * Hkv * D; i++) k[i] = round_bf16(k[i]);
        for (int64_t i = 0; i < B * Smax * Hkv * Dv; i++) v[i] = round_bf16(v[i]);
        for (int64_t i = 0; i < B * Smax * H * D; i++) q[i] = round_bf16(q[i]);
    }
    void* kb = malloc(B * Smax * Hkv * D * es);
    void* vb = malloc(B * Smax * Hkv * Dv * es);
    void* kc = malloc(B * Hkv * Smax * D * es);
    void* vc = malloc(B * Hkv * Smax * Dv * es);
    store(kb, dtype, k, B * Smax * Hkv * D);
    store(vb, dtype, v, B * Smax * Hkv * Dv);
    pt_test_poison(kc, B * Hkv * Smax * D * es); /* rows past kv_lens stay NaN: must not be read */
    pt_test_poison(vc, B * Hkv * Smax * Dv * es);
    int64_t ks[4] = {B, Smax, Hkv, D}, vs[4] = {B, Smax, Hkv, Dv}, kcs[4] = {B, Hkv, Smax, D}, vcs[4] = {B, Hkv, Smax, Dv}, bs[1] = {B};
    pt_tensor tk = pt_test_tensor(kb, dtype, 4, ks), tv = pt_test_tensor(vb, dtype, 4, vs);
    pt_tensor tkc = pt_test_tensor(kc, dtype, 4, kcs), tvc = pt_test_tensor(vc, dtype, 4, vcs);
    int32_t zeros[MAXB] = {0}, lens32[MAXB];
    for (int64_t b = 0; b < B; b++) lens32[b] = (int32_t)lens[b];
    pt_tensor tz = pt_test_tensor(zeros, PT_I32, 1, bs), tlens = pt_test_tensor(lens32, PT_I32, 1, bs);
    /* append each sequence's first lens[b] tokens: one call per distinct length keeps it simple */
    for (int64_t b = 0; b < B; b++) {
        if (lens[b] == 0) continue;
        pt_tensor a = tk, av = tv, ac = tkc, avc = tvc;
        a.shape[0] = av.shape[0] = ac.shape[0] = avc.shape[0] = 1;
        a.shape[1] = av.shape[1] = lens[b];
        a.data = (char*)kb + b * tk.stride[0]; av.data = (char*)vb + b * tv.stride[0];
        ac.data = (char*)kc + b * tkc.stride[0]; avc.data = (char*)vc + b * tvc.stride[0];
        int64_t one[1] = {1};
        pt_tensor z1 = pt_test_tensor(zeros, PT_I32, 1, one);
        EXPECT_OK(pt_kv_cache_append(ctx, &a, &av, &z1, &ac, &avc, NULL));
    }
    (void)tz;
    /* decode queries: the last Tq tokens of each sequence (positions lens[b]-Tq ..) */
    void* qd = malloc(B * Tq * H * D * es);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < Tq; t++) {
            int64_t pos = lens[b] - Tq + t;
            if (pos < 0) pos = 0;
            store((char*)qd + (size_t)((b * Tq + t) * H * D) * es, dtype, q + (b * Smax + pos) * H * D, (size_t)(H * D));
        }
    int64_t qds[4] = {B, Tq, H, D}, ods[4] = {B, Tq, H, Dv}, ls[3] = {B, H, Tq};
    void* od = malloc(B * Tq * H * Dv * es);
    float* lse = malloc(sizeof(float) * B * H * Tq);
    pt_test_poison(od, B * Tq * H * Dv * es);
    pt_test_poison(lse, sizeof(float) * B * H * Tq);
    pt_tensor tqd = pt_test_tensor(qd, dtype, 4, qds), tod = pt_test_tensor(od, dtype, 4, ods), tl = pt_test_tensor(lse, PT_F32, 3, ls);
    pt_flash_decode_params dp;
    memset(&dp, 0, sizeof dp);
    dp.q = &tqd; dp.k_cache = &tkc; dp.v_cache = &tvc; dp.kv_lens = &tlens; dp.out = &tod; dp.lse = &tl;
    dp.causal = causal; dp.window_left = wl; dp.window_right = -1; dp.num_splits = splits;
    EXPECT_OK(pt_flash_attn_decode(ctx, &dp));

    /* reference: each sequence's last Tq queries against its lens[b] keys */
    ref_problem r;
    memset(&r, 0, sizeof r);
    r.B = B; r.H = H; r.Hkv = Hkv; r.D = D; r.Dv = Dv; r.causal = causal; r.wl = wl; r.wr = -1;
    r.scale = 1.0 / sqrt((double)D);
    float* qq = malloc(sizeof(float) * B * Tq * H * D);
    for (int64_t b = 0; b < B; b++) {
        r.qo[b] = b * Tq; r.sq[b] = Tq; r.ko[b] = b * Smax; r.sk[b] = lens[b];
        for (int64_t t = 0; t < Tq; t++) {
            int64_t pos = lens[b] - Tq + t;
            if (pos < 0) pos = 0;
            memcpy(qq + (b * Tq + t) * H * D, q + (b * Smax + pos) * H * D, sizeof(float) * H * D);
        }
    }
    size_t n = (size_t)(B * Tq * H * Dv);
    double* want = malloc(sizeof(double) * n);
    double* wlse = malloc(sizeof(double) * B * Tq * H);
    ref_attention(&r, qq, k, v, want, wlse, B * Tq, 0);
    float* got = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) got[i] = load1(od, dtype, i);
    char desc[200];
    snprintf(desc, sizeof desc, "decode %s %s B=%lld Tq=%lld H=%lld Hkv=%lld D=%lld Dv=%lld causal=%d wl=%d splits=%d", g_ctx_name,
             dtype == PT_BF16 ? "bf16" : "f32", (long long)B, (long long)Tq, (long long)H, (long long)Hkv, (long long)D, (long long)Dv,
             causal, wl, splits);
    if (dtype == PT_F32) {
        double e = pt_test_err(got, want, n, 2e-5, 2e-5);
        EXPECT(e <= 1.0, "%s: err %g", desc, e);
    } else {
        double* naive = malloc(sizeof(double) * n);
        ref_attention(&r, qq, k, v, naive, NULL, B * Tq, 1);
        float* nf = malloc(sizeof(float) * n);
        for (size_t i = 0; i < n; i++) nf[i] = (float)naive[i];
        double e = max_abs_err(got, want, n), en = max_abs_err(nf, want, n);
        EXPECT(e <= 2 * en + 1e-6, "%s: bf16 err %g > 2 x naive %g", desc, e, en);
        free(naive); free(nf);
    }
    double lw = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < Tq; t++) {
                double w = wlse[h * (B * Tq) + b * Tq + t], g = lse[(b * H + h) * Tq + t];
                double d = w == -INFINITY ? (g == -INFINITY ? 0 : INFINITY) : fabs(g - w) / (1e-4 + 1e-5 * fabs(w));
                if (!(d == d)) d = INFINITY;
                if (d > lw) lw = d;
            }
    EXPECT(lw <= (dtype == PT_BF16 ? 1e3 : 1.0), "%s: lse err %g", desc, lw);

    /* the same rows from prefill over the full K/V (each sequence separately: padded layout) */
    if (causal && dtype == PT_F32) {
        for (int64_t b = 0; b < B; b++) {
            if (lens[b] < Tq) continue;
            int64_t L = lens[b];
            pt_tensor pq, pk = tk, pv = tv, po;
            int64_t qs[4] = {1, L, H, D}, os[4] = {1, L, H, Dv};
            void* qb = malloc(L * H * D * es);
            store(qb, dtype, q + b * Smax * H * D, (size_t)(L * H * D));
            float* ob = malloc(sizeof(float) * L * H * Dv);
            pq = pt_test_tensor(qb, dtype, 4, qs);
            po = pt_test_tensor(ob, PT_F32, 4, os);
            pk.shape[0] = pv.shape[0] = 1; pk.shape[1] = pv.shape[1] = L;
            pk.data = (char*)kb + b * tk.stride[0]; pv.data = (char*)vb + b * tv.stride[0];
            pt_flash_attn_params fp;
            memset(&fp, 0, sizeof fp);
            fp.q = &pq; fp.k = &pk; fp.v = &pv; fp.out = &po; fp.causal = 1; fp.window_left = wl; fp.window_right = -1;
            EXPECT_OK(pt_flash_attn_fwd(ctx, &fp));
            double worst = 0;
            for (int64_t t = 0; t < Tq; t++)
                for (int64_t i = 0; i < H * Dv; i++) {
                    double a = ob[(L - Tq + t) * H * Dv + i], d = got[(b * Tq + t) * H * Dv + i];
                    double e = fabs(a - d);
                    if (!(e == e)) e = INFINITY;
                    if (e > worst) worst = e;
                }
            EXPECT(worst <= 2e-5, "%s: decode differs from the last rows of prefill by %g (b=%lld)", desc, worst, (long long)b);
            free(qb); free(ob);
        }
    }
    free(k); free(v); free(q); free(kb); free(vb); free(kc); free(vc); free(qd); free(od); free(lse); free(qq); free(want); free(wlse);
    free(got);
}

static void decode_cases(pt_ctx* ctx, int32_t dtype) {
    int64_t l1[1] = {1}, l3[3] = {37, 1, 300}, l2[2] = {1000, 513}, l0[2] = {0, 20};
    run_decode(ctx, 1, l1, 1, 2, 1, 64, 64, dtype, 1, -1, 0);
    run_decode(ctx, 3, l3, 1, 8, 2, 128, 128, dtype, 1, -1, 0);
    run_decode(ctx, 3, l3, 3, 8, 2, 128, 128, dtype, 1, -1, 3);
    run_decode(ctx, 3, l3, 2, 4, 4, 80, 80, dtype, 1, -1, 7);
    run_decode(ctx, 2, l2, 1, 4, 1, 96, 96, dtype, 1, -1, 0);
    run_decode(ctx, 2, l2, 4, 8, 1, 64, 48, dtype, 1, 100, 0);   /* MQA, sliding window */
    run_decode(ctx, 2, l2, 3, 4, 1, 64, 64, dtype, 1, 100, 0);   /* G * Tq = 12 (bf16: AMX, scores by gathers), window */
    run_decode(ctx, 1, l2, 1, 8, 2, 128, 128, dtype, 1, 61, 0);  /* G = 4 (AMX: register transpose), window not a block multiple */
    run_decode(ctx, 2, l2, 1, 2, 2, 33, 17, dtype, 1, -1, 5);    /* odd dims */
    run_decode(ctx, 2, l2, 2, 2, 1, 256, 256, dtype, 1, -1, 0);
    run_decode(ctx, 2, l0, 1, 2, 1, 64, 64, dtype, 1, -1, 0);    /* an empty cache: zeros, lse -inf */
    run_decode(ctx, 3, l3, 2, 4, 2, 64, 64, dtype, 0, -1, 0);    /* cross-attention: not causal */
    /* long odd caches, G = 4, D = 128 (the f32 kernel's 32-key steps and spread prefetch over
     * many steps, a window edge inside a step, two row groups with Tq = 2) */
    int64_t l4[1] = {1187};
    if (!pt_test_quick()) run_decode(ctx, 1, l4, 2, 8, 2, 128, 128, dtype, 1, 700, 3);
    /* one item per kv head (num_splits = 1) of 15-33 blocks of 32 keys: ranges of >= 16 blocks
     * run as two halves in turn (the AMX kernel; the AVX-512 kernel only on AMX hosts, without AMX
     * it never splits: scripts/fd-harness/split_check.c checks that route there): 16 blocks even
     * and full, 16 with the second half's last block partial, 17 (the first half has the odd
     * block), 33 with one row in the second half's last block, 15 (not split); then a window edge
     * inside the first half */
    int64_t l5[5] = {512, 511, 543, 1025, 480}, l6[1] = {1025};
    run_decode(ctx, 5, l5, 1, 8, 2, 128, 128, dtype, 1, -1, 1);
    run_decode(ctx, 1, l6, 1, 8, 2, 128, 128, dtype, 1, 600, 1);
    int64_t dims[] = {32, 40, 72, 112, 160, 192};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i += pt_test_quick() ? 2 : 1) run_decode(ctx, 1, l2, 1, 4, 2, dims[i], dims[i], dtype, 1, -1, 0);
}

/* ---------------------------------------------------------------- bad input */

static void bad_inputs(pt_ctx* ctx) {
    float buf[4096];
    memset(buf, 0, sizeof buf);
    float obuf[4096];
    int64_t qs[4] = {1, 4, 4, 8}, ks[4] = {1, 4, 3, 8};
    pt_tensor q = pt_test_tensor(buf, PT_F32, 4, qs), k = pt_test_tensor(buf + 512, PT_F32, 4, qs), v = pt_test_tensor(buf + 1024, PT_F32, 4, qs);
    pt_tensor o = pt_test_tensor(obuf, PT_F32, 4, qs);
    pt_flash_attn_params p;
    memset(&p, 0, sizeof p);
    p.q = &q; p.k = &k; p.v = &v; p.out = &o; p.window_left = -1; p.window_right = -1;
    EXPECT_OK(pt_flash_attn_fwd(ctx, &p));
    pt_tensor k3 = pt_test_tensor(buf + 512, PT_F32, 4, ks), v3 = pt_test_tensor(buf + 1024, PT_F32, 4, ks);
    p.k = &k3; p.v = &v3;
    EXPECT(pt_flash_attn_fwd(ctx, &p) == PT_ERR_SHAPE, "GQA with Hkv not dividing H");
    EXPECT(strstr(pt_last_error(), "multiple") != NULL, "message names GQA: %s", pt_last_error());
    p.k = &k; p.v = &v;
    p.window_left = -2;
    EXPECT(pt_flash_attn_fwd(ctx, &p) == PT_ERR_INVALID_ARGUMENT, "window_left -2");
    p.window_left = -1;
    p.scale = NAN;
    EXPECT(pt_flash_attn_fwd(ctx, &p) == PT_ERR_INVALID_ARGUMENT, "NaN scale");
    p.scale = 0;
    pt_tensor ov = pt_test_tensor(buf + 8, PT_F32, 4, qs);
    p.out = &ov;
    EXPECT(pt_flash_attn_fwd(ctx, &p) == PT_ERR_INVALID_ARGUMENT, "out overlapping q");
    p.out = &o;
    int64_t big[4] = {1, 1, 1, 300};
    pt_tensor qb = pt_test_tensor(buf, PT_F32, 4, big), kb = pt_test_tensor(buf + 1000, PT_F32, 4, big),
              vb = pt_test_tensor(buf + 2000, PT_F32, 4, big), ob = pt_test_tensor(obuf, PT_F32, 4, big);
    pt_flash_attn_params pb = p;
    pb.q = &qb; pb.k = &kb; pb.v = &vb; pb.out = &ob;
    EXPECT(pt_flash_attn_fwd(ctx, &pb) == PT_ERR_SHAPE, "head dim 300");
    pt_tensor qi = q;
    qi.dtype = PT_I32;
    p.q = &qi;
    EXPECT(pt_flash_attn_fwd(ctx, &p) == PT_ERR_DTYPE, "i32 q");
    p.q = &q;
    pt_tensor kbf = k;
    kbf.dtype = PT_BF16;
    for (int i = 0; i < 4; i++) kbf.stride[i] /= 2;
    p.k = &kbf;
    EXPECT(pt_flash_attn_fwd(ctx, &p) == PT_ERR_DTYPE, "k bf16 with v f32");
    p.k = &k;
    uint8_t mask[8] = {1, 1, 1, 1};
    int64_t ms[2] = {1, 3};
    pt_tensor tm = pt_test_tensor(mask, PT_U8, 2, ms);
    p.key_padding_mask = &tm;
    EXPECT(pt_flash_attn_fwd(ctx, &p) == PT_ERR_SHAPE, "mask [1, 3] for Sk = 4");
    p.key_padding_mask = NULL;
    /* packed: cu_seqlens checks */
    int64_t ps[3] = {4, 4, 8};
    pt_tensor pq = pt_test_tensor(buf, PT_F32, 3, ps), pk = pt_test_tensor(buf + 512, PT_F32, 3, ps), pv = pt_test_tensor(buf + 1024, PT_F32, 3, ps),
              po = pt_test_tensor(obuf, PT_F32, 3, ps);
    int32_t cu_bad1[3] = {0, 3, 2}, cu_bad2[3] = {0, 2, 3}, cu_bad3[3] = {1, 2, 4}, cu_ok[3] = {0, 1, 4};
    int64_t cs[1] = {3};
    pt_tensor c1 = pt_test_tensor(cu_bad1, PT_I32, 1, cs), c2 = pt_test_tensor(cu_bad2, PT_I32, 1, cs),
              c3 = pt_test_tensor(cu_bad3, PT_I32, 1, cs), c4 = pt_test_tensor(cu_ok, PT_I32, 1, cs);
    pt_flash_attn_params pp;
    memset(&pp, 0, sizeof pp);
    pp.q = &pq; pp.k = &pk; pp.v = &pv; pp.out = &po; pp.window_left = -1; pp.window_right = -1;
    pp.cu_seqlens_q = &c4;
    EXPECT_OK(pt_flash_attn_fwd(ctx, &pp));
    pp.cu_seqlens_q = &c1;
    EXPECT(pt_flash_attn_fwd(ctx, &pp) == PT_ERR_INVALID_ARGUMENT, "cu_seqlens not monotone");
    EXPECT(strstr(pt_last_error(), "monotone") != NULL, "message: %s", pt_last_error());
    pp.cu_seqlens_q = &c2;
    EXPECT(pt_flash_attn_fwd(ctx, &pp) == PT_ERR_INVALID_ARGUMENT, "cu_seqlens not ending at T");
    pp.cu_seqlens_q = &c3;
    EXPECT(pt_flash_attn_fwd(ctx, &pp) == PT_ERR_INVALID_ARGUMENT, "cu_seqlens[0] != 0");
    pp.cu_seqlens_q = &c4;
    pp.key_padding_mask = &tm;
    EXPECT(pt_flash_attn_fwd(ctx, &pp) == PT_ERR_INVALID_ARGUMENT, "mask with cu_seqlens");
    pp.key_padding_mask = NULL;
    pp.cu_seqlens_q = NULL;
    EXPECT(pt_flash_attn_fwd(ctx, &pp) == PT_ERR_SHAPE, "3-D tensors without cu_seqlens");
    EXPECT(pt_flash_attn_fwd(ctx, NULL) == PT_ERR_INVALID_ARGUMENT, "NULL params");
    EXPECT(pt_flash_attn_fwd(NULL, &p) == PT_ERR_INVALID_ARGUMENT, "NULL ctx");
    p.v = NULL;
    EXPECT(pt_flash_attn_fwd(ctx, &p) == PT_ERR_INVALID_ARGUMENT, "NULL v");
    p.v = &v;

    /* decode */
    int64_t cks[4] = {1, 2, 16, 8}, dqs[4] = {1, 1, 4, 8}, bs[1] = {1};
    pt_tensor kc = pt_test_tensor(buf, PT_F32, 4, cks), vc = pt_test_tensor(buf + 256, PT_F32, 4, cks);
    pt_tensor dq = pt_test_tensor(buf + 512, PT_F32, 4, dqs), dout = pt_test_tensor(obuf, PT_F32, 4, dqs);
    int32_t lens[1] = {17};
    pt_tensor tl = pt_test_tensor(lens, PT_I32, 1, bs);
    pt_flash_decode_params dp;
    memset(&dp, 0, sizeof dp);
    dp.q = &dq; dp.k_cache = &kc; dp.v_cache = &vc; dp.out = &dout; dp.causal = 1; dp.window_left = -1; dp.window_right = -1;
    EXPECT_OK(pt_flash_attn_decode(ctx, &dp));
    dp.kv_lens = &tl;
    EXPECT(pt_flash_attn_decode(ctx, &dp) == PT_ERR_INVALID_ARGUMENT, "kv_lens 17 > S_max 16");
    lens[0] = 16;
    EXPECT_OK(pt_flash_attn_decode(ctx, &dp));
    dp.num_splits = -1;
    EXPECT(pt_flash_attn_decode(ctx, &dp) == PT_ERR_INVALID_ARGUMENT, "num_splits -1");
    dp.num_splits = 0;
    int64_t cks3[4] = {1, 3, 16, 8};
    pt_tensor kc3 = pt_test_tensor(buf, PT_F32, 4, cks3), vc3 = pt_test_tensor(buf + 512, PT_F32, 4, cks3);
    dp.k_cache = &kc3; dp.v_cache = &vc3;
    dp.q = &dq;
    EXPECT(pt_flash_attn_decode(ctx, &dp) != PT_OK, "Hkv 3 with H 4");
    dp.k_cache = &kc; dp.v_cache = &vc;

    /* append */
    int64_t ns[4] = {1, 2, 2, 8}, ss[1] = {1};
    pt_tensor kn = pt_test_tensor(buf + 1024, PT_F32, 4, ns), vn = pt_test_tensor(buf + 1100, PT_F32, 4, ns);
    int32_t st[1] = {15};
    pt_tensor tst = pt_test_tensor(st, PT_I32, 1, ss);
    EXPECT(pt_kv_cache_append(ctx, &kn, &vn, &tst, &kc, &vc, NULL) == PT_ERR_INVALID_ARGUMENT, "append past S_max");
    st[0] = 14;
    EXPECT_OK(pt_kv_cache_append(ctx, &kn, &vn, &tst, &kc, &vc, NULL));
    pt_rope_params rp = {PT_ROPE_NEOX, 7, 10000.0f, 0.0f, NULL};
    EXPECT(pt_kv_cache_append(ctx, &kn, &vn, &tst, &kc, &vc, &rp) == PT_ERR_INVALID_ARGUMENT, "odd rotary_dim");
    EXPECT(pt_kv_cache_append(ctx, &kn, NULL, &tst, &kc, &vc, NULL) == PT_ERR_INVALID_ARGUMENT, "v_new NULL with v_cache");
    EXPECT_OK(pt_kv_cache_append(ctx, &kn, NULL, &tst, &kc, NULL, NULL));
    /* shape failures name both tensors with their shapes (formatted on the failure path only) */
    int64_t ns3[3] = {1, 2, 16}, nsd[4] = {1, 2, 2, 4}, nsh[4] = {1, 2, 3, 8};
    pt_tensor kn3 = pt_test_tensor(buf + 1024, PT_F32, 3, ns3), knd = pt_test_tensor(buf + 1024, PT_F32, 4, nsd);
    pt_tensor vnh = pt_test_tensor(buf + 1100, PT_F32, 4, nsh);
    EXPECT(pt_kv_cache_append(ctx, &kn3, &vn, &tst, &kc, &vc, NULL) == PT_ERR_SHAPE, "3-d k_new");
    EXPECT(strstr(pt_last_error(), "f32[1, 2, 16]") && strstr(pt_last_error(), "f32[1, 2, 16, 8]"), "message: %s", pt_last_error());
    EXPECT(pt_kv_cache_append(ctx, &knd, &vn, &tst, &kc, &vc, NULL) == PT_ERR_SHAPE, "k_new D 4, k_cache D 8");
    EXPECT(strstr(pt_last_error(), "k_cache f32[1, 2, 16, 8] does not fit") && strstr(pt_last_error(), "f32[1, 2, 2, 4]"), "message: %s",
           pt_last_error());
    EXPECT(pt_kv_cache_append(ctx, &kn, &vnh, &tst, &kc, &vc, NULL) == PT_ERR_SHAPE, "v_new Hkv 3");
    EXPECT(strstr(pt_last_error(), "f32[1, 2, 3, 8]") != NULL, "message: %s", pt_last_error());
    /* a dtype failure lists the allowed dtypes (pt_check_dtype formats them on failure only) */
    pt_tensor kni = pt_test_tensor(buf + 1024, PT_I32, 4, ns);
    EXPECT(pt_kv_cache_append(ctx, &kni, &vn, &tst, &kc, &vc, NULL) == PT_ERR_DTYPE, "i32 k_new");
    EXPECT(strstr(pt_last_error(), "k_new: dtype i32 not supported here (expected f32|bf16)") != NULL, "message: %s", pt_last_error());
}

int main(int argc, char** argv) {
    int full = argc > 1 && !strcmp(argv[1], "--full");
    pt_test_seed(3);
    pt_build_info info;
    pt_build_info_get(&info);
    for (int variant = 0; variant < 4; variant++) {
        /* 0: portable (AVX2 and AVX-512 disabled); 1: AVX-512 with AMX off (bf16 widened to f32);
         * 2: everything (bf16 prefill and decode on AMX-BF16 where D and Dv are multiples of 32);
         * 3: AVX2 + FMA (AVX-512 disabled): the AVX2 decode, prefill portable */
        pt_ctx_params cp = {2, 0, 0, 0};
        if (variant == 0) { /* one thread: the work split is common code, tested by the others */
            cp.n_threads = 1;
            cp.disable_caps = PT_CPU_AVX2 | PT_CPU_FMA | PT_CPU_AVX512F | PT_CPU_AVX512_BF16 | PT_CPU_AMX_BF16;
        }
        if (variant == 3) {
            if (!(info.cpu_caps & PT_CPU_AVX2) || !(info.cpu_caps & PT_CPU_FMA)) continue;
            cp.disable_caps = PT_CPU_AVX512F | PT_CPU_AVX512_BF16 | PT_CPU_AMX_BF16;
            g_ctx_name = "avx2";
            pt_ctx* ctx = NULL;
            EXPECT_OK(pt_ctx_create(&cp, &ctx));
            decode_cases(ctx, PT_F32);
            decode_cases(ctx, PT_BF16);
            pt_ctx_destroy(ctx);
            continue;
        }
        if (variant == 1) cp.disable_caps = PT_CPU_AVX512_BF16 | PT_CPU_AMX_BF16;
        if (variant > 0 && !(info.cpu_caps & PT_CPU_AVX512F)) continue;
        if (variant == 2 && !(info.cpu_caps & (PT_CPU_AVX512_BF16 | PT_CPU_AMX_BF16))) continue;
        g_ctx_name = variant == 0 ? "portable" : "avx512";
        pt_ctx* ctx = NULL;
        EXPECT_OK(pt_ctx_create(&cp, &ctx));
        if (variant != 2) prefill_cases(ctx, PT_F32, PT_F32, full || variant == 1);
        prefill_cases(ctx, PT_BF16, PT_BF16, full || variant == 2);
        if (variant == 2 || variant == 0) {
            fa_case c = mk(2, 33, 33, 8, 2, 128, 1);
            run_case(ctx, &c, PT_BF16, PT_F32);
        }
        /* f32 decode in variant 2 too where AMX is: the AVX-512 kernel prefetches into L2 and runs
         * long ranges as two halves there, into L1 unsplit with AMX off (flash_attn.c, pf_l1) */
        if (variant != 2 || (info.cpu_caps & PT_CPU_AMX_BF16)) decode_cases(ctx, PT_F32);
        if (variant != 1) decode_cases(ctx, PT_BF16);
        pt_ctx_destroy(ctx);
    }
    pt_ctx* ctx = NULL;
    EXPECT_OK(pt_ctx_create(NULL, &ctx));
    test_append(ctx, PT_F32, PT_F32, PT_ROPE_NEOX, 0);
    test_append(ctx, PT_F32, PT_F32, PT_ROPE_NEOX, 48);
    test_append(ctx, PT_F32, PT_BF16, PT_ROPE_GPTJ, 48);
    test_append(ctx, PT_BF16, PT_F32, PT_ROPE_NEOX, 16);
    test_append(ctx, PT_BF16, PT_BF16, PT_ROPE_GPTJ, 32);
    bad_inputs(ctx);
    pt_ctx_destroy(ctx);
    return pt_test_finish("test_attention");
}
