/* pt_cuda_flash_attn_fwd / _decode against a double-precision reference: causal and not,
 * GQA, Sq != Sk (bottom-right causal, rows that see no key), strided (PyTorch [B,H,S,D])
 * inputs, varlen packed batches, every head dim, bf16 and f16, poisoned outputs.
 * Error rule (FlashAttention's): max |ours - exact| <= 2 * max |same-precision - exact|
 * + 1e-3, where the same-precision reference rounds S, P and O to the storage dtype as a
 * plain bf16/f16 implementation would. */
#include "cuda_test_util.h"

static int g_sm90;

typedef struct {
    double err, err_same;
    int nan;
} errs;

/* One (sequence, head): q [sq][D], k/v [sk][D] with row strides; out [sq][D] from the GPU. */
static void ref_head(const float* q, int64_t qs, const float* k, int64_t ks, const float* v, int64_t vs, int sq, int sk,
                     int D, double scale, int causal, int32_t dt, const float* got, int64_t gs, const float* lse_got,
                     errs* e, double* lse_err) {
    double* s = malloc(sizeof(double) * (sk > 0 ? sk : 1));
    double* sp = malloc(sizeof(double) * (sk > 0 ? sk : 1));
    for (int i = 0; i < sq; i++) {
        int lim = causal ? i + (sk - sq) : sk - 1; /* last visible key */
        if (lim > sk - 1) lim = sk - 1;
        double mx = -INFINITY, mxp = -INFINITY;
        for (int j = 0; j <= lim; j++) {
            double d = 0;
            for (int c = 0; c < D; c++) d += (double)q[i * qs + c] * k[j * ks + c];
            s[j] = d * scale;
            sp[j] = (double)round_to((float)d, dt) * scale;
            if (s[j] > mx) mx = s[j];
            if (sp[j] > mxp) mxp = sp[j];
        }
        double l = 0, lp = 0;
        for (int j = 0; j <= lim; j++) {
            s[j] = exp(s[j] - mx);
            l += s[j];
            sp[j] = exp(sp[j] - mxp);
            lp += sp[j];
        }
        for (int j = 0; j <= lim; j++) sp[j] = round_to((float)(sp[j] / lp), dt);
        for (int c = 0; c < D; c++) {
            double o = 0, op = 0;
            for (int j = 0; j <= lim; j++) {
                o += s[j] * v[j * vs + c];
                op += sp[j] * v[j * vs + c];
            }
            o = lim >= 0 ? o / l : 0.0;
            op = lim >= 0 ? (double)round_to((float)op, dt) : 0.0;
            double g = got[i * gs + c];
            if (!(g == g)) e->nan = 1;
            if (fabs(g - o) > e->err) e->err = fabs(g - o);
            if (fabs(op - o) > e->err_same) e->err_same = fabs(op - o);
        }
        if (lse_got) {
            double want = lim >= 0 ? mx + log(l) : -INFINITY;
            double gl = lse_got[i];
            double d = (isinf(want) && isinf(gl) && want < 0 && gl < 0) ? 0 : fabs(gl - want);
            if (!(d == d)) d = INFINITY;
            if (d > *lse_err) *lse_err = d;
        }
    }
    free(s);
    free(sp);
}

/* Fixed-length batch. layout_bhsd: q/k/v/out stored as [B, H, S, D] (PyTorch) and passed as
 * strided [B, S, H, D] views. */
static void run_fwd(pt_cuda_ctx* ctx, int B, int sq, int sk, int hq, int hkv, int D, int causal, int32_t dt, int layout_bhsd,
                    int variant) {
    size_t nq = (size_t)B * sq * hq * D, nk = (size_t)B * sk * hkv * D;
    float *q = malloc(4 * nq), *k = malloc(4 * nk), *v = malloc(4 * nk), *got = malloc(4 * nq);
    float* lse = malloc(4 * (size_t)B * hq * sq + 4);
    pt_test_fill(q, nq, -2, 2);
    pt_test_fill(k, nk, -2, 2);
    pt_test_fill(v, nk, -1, 1);
    for (size_t i = 0; i < nq; i++) q[i] = round_to(q[i], dt);
    for (size_t i = 0; i < nk; i++) k[i] = round_to(k[i], dt), v[i] = round_to(v[i], dt);
    void *dq = upload(ctx, q, nq, dt), *dk = upload(ctx, k, nk, dt), *dv = upload(ctx, v, nk, dt);
    void* dout = alloc_poisoned(ctx, nq, dt);
    void* dlse = alloc_poisoned(ctx, (size_t)B * hq * sq, PT_F32);
    /* element strides of [b][s][h][d] in either storage order */
    int64_t es = 2;
    pt_tensor tq, tk, tv, to;
    int64_t sh_q[4] = {B, sq, hq, D}, sh_k[4] = {B, sk, hkv, D};
    tq = dev_tensor(dq, dt, 4, sh_q);
    to = dev_tensor(dout, dt, 4, sh_q);
    tk = dev_tensor(dk, dt, 4, sh_k);
    tv = dev_tensor(dv, dt, 4, sh_k);
    if (layout_bhsd) {
        int64_t qst[4] = {(int64_t)hq * sq * D * es, D * es, (int64_t)sq * D * es, es};
        int64_t kst[4] = {(int64_t)hkv * sk * D * es, D * es, (int64_t)sk * D * es, es};
        memcpy(tq.stride, qst, sizeof qst);
        memcpy(to.stride, qst, sizeof qst);
        memcpy(tk.stride, kst, sizeof kst);
        memcpy(tv.stride, kst, sizeof kst);
    }
    int64_t sh_l[3] = {B, hq, sq};
    pt_tensor tl = dev_tensor(dlse, PT_F32, 3, sh_l);
    pt_cuda_attn_params p;
    memset(&p, 0, sizeof p);
    p.causal = causal;
    p.variant = variant;
    EXPECT_CUDA_OK(pt_cuda_flash_attn_fwd(ctx, &tq, &tk, &tv, &to, &tl, &p));
    download(ctx, dout, nq, dt, got);
    download(ctx, dlse, (size_t)B * hq * sq, PT_F32, lse);
    errs e = {0, 0, 0};
    double lse_err = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < hq; h++) {
            int hk = h / (hq / hkv);
            /* offsets and row strides (elements) in the host arrays */
            int64_t q_off, q_rs, k_off, k_rs;
            if (layout_bhsd) {
                q_off = ((int64_t)b * hq + h) * sq * D; q_rs = D;
                k_off = ((int64_t)b * hkv + hk) * sk * D; k_rs = D;
            } else {
                q_off = (int64_t)b * sq * hq * D + (int64_t)h * D; q_rs = (int64_t)hq * D;
                k_off = (int64_t)b * sk * hkv * D + (int64_t)hk * D; k_rs = (int64_t)hkv * D;
            }
            ref_head(q + q_off, q_rs, k + k_off, k_rs, v + k_off, k_rs, sq, sk, D, 1.0 / sqrt((double)D), causal, dt,
                     got + q_off, q_rs, lse + ((int64_t)b * hq + h) * sq, &e, &lse_err);
        }
    double tol = 2 * e.err_same + 1e-3;
    EXPECT(!e.nan && e.err <= tol && lse_err < 2e-3,
           "fwd B=%d sq=%d sk=%d hq=%d hkv=%d D=%d causal=%d %s bhsd=%d variant=%d: err %.3g tol %.3g (same-precision %.3g) lse err %.3g nan=%d",
           B, sq, sk, hq, hkv, D, causal, dtname(dt), layout_bhsd, variant, e.err, tol, e.err_same, lse_err, e.nan);
    pt_cuda_free(ctx, dq); pt_cuda_free(ctx, dk); pt_cuda_free(ctx, dv); pt_cuda_free(ctx, dout); pt_cuda_free(ctx, dlse);
    free(q); free(k); free(v); free(got); free(lse);
}

static void run_varlen(pt_cuda_ctx* ctx, int n, const int* lq, const int* lk, int hq, int hkv, int D, int causal, int32_t dt) {
    int cq[16] = {0}, ck[16] = {0}, maxq = 0, maxk = 0;
    for (int i = 0; i < n; i++) {
        cq[i + 1] = cq[i] + lq[i];
        ck[i + 1] = ck[i] + lk[i];
        if (lq[i] > maxq) maxq = lq[i];
        if (lk[i] > maxk) maxk = lk[i];
    }
    int tq = cq[n], tk = ck[n];
    size_t nq = (size_t)tq * hq * D, nk = (size_t)tk * hkv * D;
    float *q = malloc(4 * nq + 4), *k = malloc(4 * nk + 4), *v = malloc(4 * nk + 4), *got = malloc(4 * nq + 4);
    float* lse = malloc(4 * (size_t)hq * tq + 4);
    pt_test_fill(q, nq, -2, 2);
    pt_test_fill(k, nk, -2, 2);
    pt_test_fill(v, nk, -1, 1);
    for (size_t i = 0; i < nq; i++) q[i] = round_to(q[i], dt);
    for (size_t i = 0; i < nk; i++) k[i] = round_to(k[i], dt), v[i] = round_to(v[i], dt);
    void *dq = upload(ctx, q, nq, dt), *dk = upload(ctx, k, nk, dt), *dv = upload(ctx, v, nk, dt);
    void* dout = alloc_poisoned(ctx, nq, dt);
    void* dlse = alloc_poisoned(ctx, (size_t)hq * tq, PT_F32);
    void *dcq = NULL, *dck = NULL;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, sizeof cq, &dcq));
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, sizeof ck, &dck));
    EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, dcq, cq, sizeof cq));
    EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, dck, ck, sizeof ck));
    int64_t shq[3] = {tq, hq, D}, shk[3] = {tk, hkv, D}, shl[2] = {hq, tq};
    pt_tensor Tq = dev_tensor(dq, dt, 3, shq), Tk = dev_tensor(dk, dt, 3, shk), Tv = dev_tensor(dv, dt, 3, shk),
              To = dev_tensor(dout, dt, 3, shq), Tl = dev_tensor(dlse, PT_F32, 2, shl);
    pt_cuda_attn_params p;
    memset(&p, 0, sizeof p);
    p.causal = causal;
    p.cu_seqlens_q = dcq;
    p.cu_seqlens_k = dck;
    p.batch = n;
    p.max_seqlen_q = maxq;
    p.max_seqlen_k = maxk;
    EXPECT_CUDA_OK(pt_cuda_flash_attn_fwd(ctx, &Tq, &Tk, &Tv, &To, &Tl, &p));
    download(ctx, dout, nq, dt, got);
    download(ctx, dlse, (size_t)hq * tq, PT_F32, lse);
    errs e = {0, 0, 0};
    double lse_err = 0;
    float* lrow = malloc(4 * (size_t)maxq + 4);
    for (int b = 0; b < n; b++)
        for (int h = 0; h < hq; h++) {
            int hk = h / (hq / hkv);
            for (int i = 0; i < lq[b]; i++) lrow[i] = lse[(int64_t)h * tq + cq[b] + i];
            int64_t qo = (int64_t)cq[b] * hq * D + (int64_t)h * D, ko = (int64_t)ck[b] * hkv * D + (int64_t)hk * D;
            ref_head(q + qo, (int64_t)hq * D, k + ko, (int64_t)hkv * D, v + ko, (int64_t)hkv * D, lq[b], lk[b], D,
                     1.0 / sqrt((double)D), causal, dt, got + qo, (int64_t)hq * D, lrow, &e, &lse_err);
        }
    double tol = 2 * e.err_same + 1e-3;
    EXPECT(!e.nan && e.err <= tol && lse_err < 2e-3, "varlen n=%d hq=%d hkv=%d D=%d causal=%d %s: err %.3g tol %.3g lse err %.3g nan=%d",
           n, hq, hkv, D, causal, dtname(dt), e.err, tol, lse_err, e.nan);
    pt_cuda_free(ctx, dq); pt_cuda_free(ctx, dk); pt_cuda_free(ctx, dv); pt_cuda_free(ctx, dout); pt_cuda_free(ctx, dlse);
    pt_cuda_free(ctx, dcq); pt_cuda_free(ctx, dck);
    free(q); free(k); free(v); free(got); free(lse); free(lrow);
}

static void run_decode(pt_cuda_ctx* ctx, int B, int hq, int hkv, int smax, const int* lens, int D, int32_t dt, int splits) {
    size_t nq = (size_t)B * hq * D, nk = (size_t)B * hkv * smax * D;
    float *q = malloc(4 * nq), *k = malloc(4 * nk), *v = malloc(4 * nk), *got = malloc(4 * nq);
    pt_test_fill(q, nq, -2, 2);
    pt_test_fill(k, nk, -2, 2);
    pt_test_fill(v, nk, -1, 1);
    for (size_t i = 0; i < nq; i++) q[i] = round_to(q[i], dt);
    for (size_t i = 0; i < nk; i++) k[i] = round_to(k[i], dt), v[i] = round_to(v[i], dt);
    void *dq = upload(ctx, q, nq, dt), *dk = upload(ctx, k, nk, dt), *dv = upload(ctx, v, nk, dt);
    void* dout = alloc_poisoned(ctx, nq, dt);
    void* dlen = NULL;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 4 * (size_t)B, &dlen));
    EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, dlen, lens, 4 * (size_t)B));
    int64_t shq[3] = {B, hq, D}, shk[4] = {B, hkv, smax, D}, shl[1] = {B};
    pt_tensor Tq = dev_tensor(dq, dt, 3, shq), Tk = dev_tensor(dk, dt, 4, shk), Tv = dev_tensor(dv, dt, 4, shk),
              To = dev_tensor(dout, dt, 3, shq), Tl = dev_tensor(dlen, PT_I32, 1, shl);
    pt_cuda_attn_params p;
    memset(&p, 0, sizeof p);
    p.num_splits = splits;
    EXPECT_CUDA_OK(pt_cuda_flash_attn_decode(ctx, &Tq, &Tk, &Tv, &Tl, &To, &p));
    download(ctx, dout, nq, dt, got);
    errs e = {0, 0, 0};
    double lse_err = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < hq; h++) {
            int hk = h / (hq / hkv);
            int64_t qo = ((int64_t)b * hq + h) * D, ko = ((int64_t)b * hkv + hk) * smax * D;
            ref_head(q + qo, D, k + ko, D, v + ko, D, 1, lens[b], D, 1.0 / sqrt((double)D), 0, dt, got + qo, D, NULL, &e, &lse_err);
        }
    double tol = 2 * e.err_same + 1e-3;
    EXPECT(!e.nan && e.err <= tol, "decode B=%d hq=%d hkv=%d smax=%d D=%d %s splits=%d: err %.3g tol %.3g nan=%d", B, hq, hkv,
           smax, D, dtname(dt), splits, e.err, tol, e.nan);
    pt_cuda_free(ctx, dq); pt_cuda_free(ctx, dk); pt_cuda_free(ctx, dv); pt_cuda_free(ctx, dout); pt_cuda_free(ctx, dlen);
    free(q); free(k); free(v); free(got);
}

int main(void) {
    skip_without_gpu("test_cuda_attn");
    pt_cuda_device_info info;
    EXPECT_CUDA_OK(pt_cuda_device_info_get(0, &info));
    g_sm90 = info.cc_major == 9 && info.cc_minor == 0; /* the wgmma kernels exist there */
    pt_test_seed(3);
    pt_cuda_ctx* ctx = NULL;
    EXPECT_CUDA_OK(pt_cuda_ctx_create(NULL, &ctx));
    if (!ctx) return pt_test_finish("test_cuda_attn");
    static const int dims[] = {64, 80, 96, 128, 256};
    for (int di = 0; di < 5; di++) {
        int D = dims[di];
        for (int causal = 0; causal <= 1; causal++) {
            run_fwd(ctx, 2, 65, 65, 4, 2, D, causal, PT_BF16, 0, 0);
            run_fwd(ctx, 1, 127, 200, 2, 1, D, causal, PT_F16, 1, 0);  /* Sq < Sk, PyTorch layout */
            run_fwd(ctx, 1, 77, 33, 3, 3, D, causal, PT_BF16, 0, 0);   /* Sq > Sk: early rows see nothing */
        }
        run_fwd(ctx, 3, 1, 63, 2, 2, D, 0, PT_BF16, 0, 0);
        run_fwd(ctx, 1, 7, 1, 1, 1, D, 1, PT_F16, 0, 0);
        run_fwd(ctx, 2, 200, 131, 2, 1, D, 1, PT_BF16, 1, 4); /* mma.sync kernel, every head dim */
        if ((D == 64 || D == 128 || D == 256) && g_sm90) {
            if (D != 256) { /* the cp.async wgmma kernel (not built for 256) */
                run_fwd(ctx, 2, 300, 333, 4, 2, D, 1, PT_F16, 0, 5);
                run_fwd(ctx, 1, 257, 257, 2, 2, D, 0, PT_BF16, 1, 5);
            }
            run_fwd(ctx, 2, 500, 389, 2, 1, D, 1, PT_BF16, 0, 6); /* TMA kernel with ping-pong */
        }
    }
    /* the other kernels also run where the default is another: mma.sync 4, and on sm_90a the
     * cp.async wgmma kernel 5 and the TMA kernel with ping-pong 6 (7, without, is the default) */
    for (int variant = 4; variant <= (g_sm90 ? 6 : 4); variant++) {
        run_fwd(ctx, 1, 300, 300, 2, 1, 128, 1, PT_BF16, 1, variant);
        run_fwd(ctx, 2, 129, 250, 2, 2, 128, 0, PT_BF16, 0, variant);
    }
    run_fwd(ctx, 1, 1024, 1024, 2, 2, 128, 1, PT_BF16, 1, 0);
    {
        int lq[3] = {17, 64, 1}, lk[3] = {17, 100, 30};
        for (int causal = 0; causal <= 1; causal++) {
            run_varlen(ctx, 3, lq, lk, 4, 2, 128, causal, PT_BF16);
            run_varlen(ctx, 3, lq, lk, 2, 1, 64, causal, PT_F16);
        }
        int lq2[2] = {130, 5}, lk2[2] = {130, 5};
        run_varlen(ctx, 2, lq2, lk2, 2, 2, 96, 1, PT_BF16);
    }
    {
        int lens[3] = {1, 150, 300};
        for (int di = 0; di < 5; di++) {
            run_decode(ctx, 3, 8, 2, 300, lens, dims[di], PT_BF16, 0);
            run_decode(ctx, 3, 4, 4, 300, lens, dims[di], PT_F16, 1);
        }
        run_decode(ctx, 3, 8, 8, 300, lens, 128, PT_BF16, 7);
        int big[1] = {5000};
        run_decode(ctx, 1, 4, 1, 5003, big, 128, PT_BF16, 0);
    }

    /* bad input */
    void* d = NULL;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 1 << 16, &d));
    int64_t s72[4] = {1, 8, 2, 72}, s64[4] = {1, 8, 2, 64}, s64b[4] = {1, 8, 3, 64};
    pt_tensor t72 = dev_tensor(d, PT_BF16, 4, s72), t64 = dev_tensor(d, PT_BF16, 4, s64), t64b = dev_tensor(d, PT_BF16, 4, s64b);
    EXPECT(pt_cuda_flash_attn_fwd(ctx, &t72, &t72, &t72, &t72, NULL, NULL) == PT_ERR_UNSUPPORTED, "head dim 72");
    EXPECT(strstr(pt_cuda_last_error(), "72") != NULL, "message: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_flash_attn_fwd(ctx, &t64b, &t64, &t64, &t64b, NULL, NULL) == PT_ERR_SHAPE, "3 heads over 2 kv heads");
    pt_tensor tf32 = dev_tensor(d, PT_F32, 4, s64);
    EXPECT(pt_cuda_flash_attn_fwd(ctx, &tf32, &tf32, &tf32, &tf32, NULL, NULL) == PT_ERR_DTYPE, "f32 refused");
    pt_tensor host = t64;
    host.device = PT_DEVICE_CPU;
    EXPECT(pt_cuda_flash_attn_fwd(ctx, &host, &t64, &t64, &t64, NULL, NULL) == PT_ERR_INVALID_ARGUMENT, "host tensor refused");
    pt_cuda_free(ctx, d);
    EXPECT_CUDA_OK(pt_cuda_synchronize(ctx));
    pt_cuda_ctx_destroy(ctx);
    return pt_test_finish("test_cuda_attn");
}
