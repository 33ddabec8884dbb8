/* Paged KV cache on the GPU: pt_cuda_flash_attn_decode_paged against a double-precision
 * reference and against the contiguous pt_cuda_flash_attn_decode on the same keys (equal bit for
 * bit: same kernel, same split), random non-monotonic block tables, blocks shared between
 * sequences (a common prefix), odd lengths (1, 7, 1000), GQA and MHA, both decode variants,
 * the vLLM [num_blocks, block_size, Hkv, D] layout as a strided view, a bad block id (NaN rows
 * for that sequence only); pt_cuda_rope_kv_append_paged against a plain RoPE reference and the
 * contiguous append; bad arguments. Outputs poisoned with NaN before every call. */
#include "cuda_test_util.h"

/* attention of one query row over n keys given as row pointers; max |got - exact| and the
 * same-precision reference's error (rounding P and O as a plain 16-bit kernel would) */
static void ref_decode(const float* q, const float* const* krow, const float* const* vrow, int n, int D, int32_t dt,
                       const float* got, double* err, double* err_same, int* nan) {
    double* s = malloc(sizeof(double) * (n > 0 ? n : 1));
    double* sp = malloc(sizeof(double) * (n > 0 ? n : 1));
    double mx = -INFINITY, mxp = -INFINITY, scale = 1.0 / sqrt((double)D);
    for (int j = 0; j < n; j++) {
        double d = 0;
        for (int c = 0; c < D; c++) d += (double)q[c] * krow[j][c];
        s[j] = d * scale;
        sp[j] = (double)round_to((float)d, dt) * scale;
        if (s[j] > mx) mx = s[j];
        if (sp[j] > mxp) mxp = sp[j];
    }
    double l = 0, lp = 0;
    for (int j = 0; j < n; j++) {
        s[j] = exp(s[j] - mx);
        l += s[j];
        sp[j] = exp(sp[j] - mxp);
        lp += sp[j];
    }
    for (int j = 0; j < n; j++) sp[j] = round_to((float)(sp[j] / lp), dt);
    for (int c = 0; c < D; c++) {
        double o = 0, op = 0;
        for (int j = 0; j < n; j++) {
            o += s[j] * vrow[j][c];
            op += sp[j] * vrow[j][c];
        }
        o = n > 0 ? o / l : 0.0;
        op = n > 0 ? (double)round_to((float)op, dt) : 0.0;
        double g = got[c];
        if (!(g == g)) *nan = 1;
        if (fabs(g - o) > *err) *err = fabs(g - o);
        if (fabs(op - o) > *err_same) *err_same = fabs(op - o);
    }
    free(s);
    free(sp);
}

/* shuffled 0..n-1 */
static void perm(int* x, int n) {
    for (int i = 0; i < n; i++) x[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)pt_test_uniform(0, i + 1);
        if (j > i) j = i;
        int t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

/* vllm_layout: the pool is stored [NB, bs, Hkv, D] and passed as its transpose(1, 2) view.
 * shared: sequences b > 0 take sequence 0's first blocks as their own first blocks.
 * bad_seq >= 0: that sequence's last used table entry points outside the pool. */
static void run_paged(pt_cuda_ctx* ctx, int B, int hq, int hkv, int bs, const int* lens, int D, int32_t dt, int variant,
                      int vllm_layout, int shared, int bad_seq) {
    int maxlen = 1;
    for (int b = 0; b < B; b++) maxlen = lens[b] > maxlen ? lens[b] : maxlen;
    const int mb = (maxlen + bs - 1) / bs + 1; /* one spare table column */
    const int nb = B * mb + 3;                 /* unused blocks in the pool too */
    const int cap = mb * bs;
    size_t nq = (size_t)B * hq * D, np = (size_t)nb * hkv * bs * D;
    float *q = malloc(4 * nq), *kp = malloc(4 * np), *vp = malloc(4 * np), *got = malloc(4 * nq), *got_c = malloc(4 * nq);
    pt_test_fill(q, nq, -2, 2);
    pt_test_fill(kp, np, -2, 2);
    pt_test_fill(vp, np, -1, 1);
    for (size_t i = 0; i < nq; i++) q[i] = round_to(q[i], dt);
    for (size_t i = 0; i < np; i++) kp[i] = round_to(kp[i], dt), vp[i] = round_to(vp[i], dt);
    int* ids = malloc(sizeof(int) * nb);
    perm(ids, nb);
    int32_t* table = malloc(sizeof(int32_t) * B * mb);
    for (int i = 0; i < B * mb; i++) table[i] = ids[i];
    if (shared)
        for (int b = 1; b < B; b++)
            for (int j = 0; j < mb / 2; j++) table[b * mb + j] = table[j];
    if (bad_seq >= 0) table[bad_seq * mb + (lens[bad_seq] - 1) / bs] = (bad_seq & 1) ? nb : -5;
    /* element offset of (block, head, row) in the pool as stored */
#define POOL_AT(blk, h, r) (vllm_layout ? ((((int64_t)(blk) * bs + (r)) * hkv + (h)) * D) : ((((int64_t)(blk) * hkv + (h)) * bs + (r)) * D))
    void *dq = upload(ctx, q, nq, dt), *dk = upload(ctx, kp, np, dt), *dv = upload(ctx, vp, np, dt);
    void* dout = alloc_poisoned(ctx, nq, dt);
    void *dlen = NULL, *dbt = NULL;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 4 * (size_t)B, &dlen));
    EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, dlen, lens, 4 * (size_t)B));
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 4 * (size_t)B * mb, &dbt));
    EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, dbt, table, 4 * (size_t)B * mb));
    int64_t shq[3] = {B, hq, D}, shp[4] = {nb, hkv, bs, D}, shl[1] = {B}, shbt[2] = {B, mb};
    pt_tensor Tq = dev_tensor(dq, dt, 3, shq), Tk = dev_tensor(dk, dt, 4, shp), Tv = dev_tensor(dv, dt, 4, shp),
              To = dev_tensor(dout, dt, 3, shq), Tl = dev_tensor(dlen, PT_I32, 1, shl), Tbt = dev_tensor(dbt, PT_I32, 2, shbt);
    if (vllm_layout) { /* strides of [NB, bs, Hkv, D] seen as [NB, Hkv, bs, D] */
        for (pt_tensor* t = &Tk; t; t = (t == &Tk ? &Tv : NULL)) {
            t->stride[0] = (int64_t)bs * hkv * D * 2;
            t->stride[1] = (int64_t)D * 2;
            t->stride[2] = (int64_t)hkv * D * 2;
        }
    }
    pt_cuda_attn_params p;
    memset(&p, 0, sizeof p);
    p.variant = variant;
    EXPECT_CUDA_OK(pt_cuda_flash_attn_decode_paged(ctx, &Tq, &Tk, &Tv, &Tbt, &Tl, &To, &p));
    download(ctx, dout, nq, dt, got);

    double err = 0, err_same = 0;
    int nan = 0;
    const float** kr = malloc(sizeof(float*) * (maxlen + 1));
    const float** vr = malloc(sizeof(float*) * (maxlen + 1));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < hq; h++) {
            int hk = h / (hq / hkv);
            const float* gb = got + ((int64_t)b * hq + h) * D;
            if (b == bad_seq) {
                int all_nan = 1;
                for (int c = 0; c < D; c++) all_nan &= !(gb[c] == gb[c]);
                EXPECT(all_nan, "paged decode: a bad block id in sequence %d must give NaN rows (head %d)", b, h);
                continue;
            }
            for (int j = 0; j < lens[b]; j++) {
                int blk = table[b * mb + j / bs];
                kr[j] = kp + POOL_AT(blk, hk, j % bs);
                vr[j] = vp + POOL_AT(blk, hk, j % bs);
            }
            ref_decode(q + ((int64_t)b * hq + h) * D, kr, vr, lens[b], D, dt, gb, &err, &err_same, &nan);
        }
    double tol = 2 * err_same + 1e-3;
    EXPECT(!nan && err <= tol, "paged decode B=%d hq=%d hkv=%d bs=%d D=%d %s variant=%d vllm=%d shared=%d: err %.3g tol %.3g nan=%d", B, hq,
           hkv, bs, D, dtname(dt), variant, vllm_layout, shared, err, tol, nan);

    /* the contiguous path over the same keys: [B, Hkv, cap, D] gathered through the table */
    if (bad_seq < 0) {
        size_t nc = (size_t)B * hkv * cap * D;
        float *kc = calloc(nc, 4), *vc = calloc(nc, 4);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < hkv; h++)
                for (int j = 0; j < lens[b]; j++) {
                    int blk = table[b * mb + j / bs];
                    memcpy(kc + (((int64_t)b * hkv + h) * cap + j) * D, kp + POOL_AT(blk, h, j % bs), 4 * (size_t)D);
                    memcpy(vc + (((int64_t)b * hkv + h) * cap + j) * D, vp + POOL_AT(blk, h, j % bs), 4 * (size_t)D);
                }
        void *dkc = upload(ctx, kc, nc, dt), *dvc = upload(ctx, vc, nc, dt);
        int64_t shc[4] = {B, hkv, cap, D};
        pt_tensor Tkc = dev_tensor(dkc, dt, 4, shc), Tvc = dev_tensor(dvc, dt, 4, shc);
        EXPECT_CUDA_OK(pt_cuda_memset(ctx, dout, 0xff, nq * 2));
        EXPECT_CUDA_OK(pt_cuda_flash_attn_decode(ctx, &Tq, &Tkc, &Tvc, &Tl, &To, &p));
        download(ctx, dout, nq, dt, got_c);
        int same = memcmp(got, got_c, 4 * nq) == 0;
        EXPECT(same, "paged decode B=%d hq=%d hkv=%d bs=%d D=%d variant=%d: differs from the contiguous decode on the same keys", B, hq, hkv,
               bs, D, variant);
        pt_cuda_free(ctx, dkc);
        pt_cuda_free(ctx, dvc);
        free(kc);
        free(vc);
    }
#undef POOL_AT
    pt_cuda_free(ctx, dq); pt_cuda_free(ctx, dk); pt_cuda_free(ctx, dv); pt_cuda_free(ctx, dout);
    pt_cuda_free(ctx, dlen); pt_cuda_free(ctx, dbt);
    free(q); free(kp); free(vp); free(got); free(got_c); free(ids); free(table); free(kr); free(vr);
}

/* pt_cuda_rope_kv_append_paged: B sequences, one new row each at pos[b] (one out of range),
 * RoPE reference in double; the contiguous append on a [B, Hkv, cap, D] cache must write the
 * same values and rotate q the same way. */
static void run_append(pt_cuda_ctx* ctx, int B, int hq, int hkv, int D, int bs, int rope) {
    const int mb = 5, nb = B * mb + 2, cap = mb * bs;
    const int W = (hq + 2 * hkv) * D;
    float* qkv = malloc(4 * (size_t)B * W);
    pt_test_fill(qkv, (size_t)B * W, -2, 2);
    for (int i = 0; i < B * W; i++) qkv[i] = round_to(qkv[i], PT_BF16);
    int32_t* pos = malloc(4 * (size_t)B);
    for (int b = 0; b < B; b++) pos[b] = (int32_t)pt_test_uniform(0, cap);
    for (int b = 0; b < B; b++) if (pos[b] >= cap) pos[b] = cap - 1;
    if (B > 1) pos[B - 1] = cap + 3; /* out of range: not written */
    int32_t* lens0 = malloc(4 * (size_t)B);
    for (int b = 0; b < B; b++) lens0[b] = 1;
    int* ids = malloc(sizeof(int) * nb);
    perm(ids, nb);
    float* inv = malloc(4 * (size_t)(D / 2));
    for (int i = 0; i < D / 2; i++) inv[i] = (float)pow(10000.0, -2.0 * i / D);
    size_t np = (size_t)nb * hkv * bs * D, nc = (size_t)B * hkv * cap * D;
    void *dqkv = upload(ctx, qkv, (size_t)B * W, PT_BF16), *dqkv2 = upload(ctx, qkv, (size_t)B * W, PT_BF16);
    void *dkp = alloc_poisoned(ctx, np, PT_BF16), *dvp = alloc_poisoned(ctx, np, PT_BF16);
    void *dkc = alloc_poisoned(ctx, nc, PT_BF16), *dvc = alloc_poisoned(ctx, nc, PT_BF16);
    void *dpos = NULL, *dbt = NULL, *dl = NULL, *dl2 = NULL, *dinv = upload(ctx, inv, (size_t)D / 2, PT_F32);
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 4 * (size_t)B, &dpos));
    EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, dpos, pos, 4 * (size_t)B));
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 4 * (size_t)B * mb, &dbt));
    EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, dbt, ids, 4 * (size_t)B * mb));
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 4 * (size_t)B, &dl));
    EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, dl, lens0, 4 * (size_t)B));
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 4 * (size_t)B, &dl2));
    EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, dl2, lens0, 4 * (size_t)B));
    int64_t sqkv[2] = {B, W}, sp[4] = {nb, hkv, bs, D}, sc[4] = {B, hkv, cap, D}, sb[1] = {B}, sbt[2] = {B, mb}, sf[1] = {D / 2};
    pt_tensor Tqkv = dev_tensor(dqkv, PT_BF16, 2, sqkv), Tqkv2 = dev_tensor(dqkv2, PT_BF16, 2, sqkv);
    pt_tensor Tkp = dev_tensor(dkp, PT_BF16, 4, sp), Tvp = dev_tensor(dvp, PT_BF16, 4, sp);
    pt_tensor Tkc = dev_tensor(dkc, PT_BF16, 4, sc), Tvc = dev_tensor(dvc, PT_BF16, 4, sc);
    pt_tensor Tpos = dev_tensor(dpos, PT_I32, 1, sb), Tbt = dev_tensor(dbt, PT_I32, 2, sbt), Tl = dev_tensor(dl, PT_I32, 1, sb),
              Tl2 = dev_tensor(dl2, PT_I32, 1, sb), Tinv = dev_tensor(dinv, PT_F32, 1, sf);
    EXPECT_CUDA_OK(pt_cuda_rope_kv_append_paged(ctx, &Tqkv, &Tpos, rope ? &Tinv : NULL, hq, &Tkp, &Tvp, &Tbt, &Tl));
    EXPECT_CUDA_OK(pt_cuda_rope_kv_append(ctx, &Tqkv2, &Tpos, rope ? &Tinv : NULL, hq, &Tkc, &Tvc, &Tl2));
    float *kp = malloc(4 * np), *vp = malloc(4 * np), *kc = malloc(4 * nc), *vc = malloc(4 * nc);
    float *q1 = malloc(4 * (size_t)B * W), *q2 = malloc(4 * (size_t)B * W);
    download(ctx, dkp, np, PT_BF16, kp);
    download(ctx, dvp, np, PT_BF16, vp);
    download(ctx, dkc, nc, PT_BF16, kc);
    download(ctx, dvc, nc, PT_BF16, vc);
    download(ctx, dqkv, (size_t)B * W, PT_BF16, q1);
    download(ctx, dqkv2, (size_t)B * W, PT_BF16, q2);
    int32_t l1[64], l2[64];
    EXPECT_CUDA_OK(pt_cuda_memcpy_d2h(ctx, l1, dl, 4 * (size_t)B));
    EXPECT_CUDA_OK(pt_cuda_memcpy_d2h(ctx, l2, dl2, 4 * (size_t)B));
    EXPECT(memcmp(q1, q2, 4 * (size_t)B * W) == 0, "paged append: q rotated unlike the contiguous append");
    double err = 0;
    int written = 0, bad = 0;
    const int half = D / 2;
    for (int b = 0; b < B; b++) {
        int in = pos[b] >= 0 && pos[b] < cap;
        EXPECT(l1[b] == (in ? (pos[b] + 1 > 1 ? pos[b] + 1 : 1) : 1) && l1[b] == l2[b], "paged append: seqlens[%d] = %d (contiguous %d), pos %d", b,
               l1[b], l2[b], pos[b]);
        if (!in) continue;
        int blk = ids[b * mb + pos[b] / bs], r = pos[b] % bs;
        for (int h = 0; h < hkv; h++) {
            const float* x = qkv + (int64_t)b * W + (int64_t)(hq + h) * D;
            const float* xv = qkv + (int64_t)b * W + (int64_t)(hq + hkv + h) * D;
            const float* gk = kp + (((int64_t)blk * hkv + h) * bs + r) * D;
            const float* gv = vp + (((int64_t)blk * hkv + h) * bs + r) * D;
            const float* ck = kc + (((int64_t)b * hkv + h) * cap + pos[b]) * D;
            const float* cv = vc + (((int64_t)b * hkv + h) * cap + pos[b]) * D;
            for (int j = 0; j < D; j++) {
                double want;
                int i = j < half ? j : j - half;
                double ang = rope ? (double)pos[b] * inv[i] : 0.0;
                if (j < half) want = x[j] * cos(ang) - x[j + half] * sin(ang);
                else want = x[j] * cos(ang) + x[j - half] * sin(ang);
                double e = fabs(gk[j] - want) / (fabs(want) + 1.0);
                if (!(e <= err)) err = e == e ? e : INFINITY;
                if (gk[j] != ck[j] || gv[j] != cv[j] || gv[j] != xv[j]) bad = 1;
            }
            written++;
        }
    }
    EXPECT(err <= 1.6e-2 && !bad, "paged append Hq=%d Hkv=%d D=%d bs=%d rope=%d: rel err %.3g (tol 1.6e-2), differs from contiguous %d", hq,
           hkv, D, bs, rope, err, bad);
    /* nothing else in the pool was written: exactly written * D non-NaN K values */
    size_t finite = 0;
    for (size_t i = 0; i < np; i++) finite += kp[i] == kp[i];
    EXPECT(finite == (size_t)written * D, "paged append: %zu K values written, expected %d rows of %d", finite, written, D);
    pt_cuda_free(ctx, dqkv); pt_cuda_free(ctx, dqkv2); pt_cuda_free(ctx, dkp); pt_cuda_free(ctx, dvp); pt_cuda_free(ctx, dkc);
    pt_cuda_free(ctx, dvc); pt_cuda_free(ctx, dpos); pt_cuda_free(ctx, dbt); pt_cuda_free(ctx, dl); pt_cuda_free(ctx, dl2);
    pt_cuda_free(ctx, dinv);
    free(qkv); free(pos); free(lens0); free(ids); free(inv); free(kp); free(vp); free(kc); free(vc); free(q1); free(q2);
}

static void bad_args(pt_cuda_ctx* ctx) {
    void* d = NULL;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 1 << 20, &d));
    int64_t sq[3] = {2, 8, 128}, sp[4] = {10, 2, 16, 128}, sp12[4] = {10, 2, 12, 128}, sbt[2] = {2, 4}, sl[1] = {2}, sbt3[2] = {3, 4};
    pt_tensor q = dev_tensor(d, PT_BF16, 3, sq), pool = dev_tensor(d, PT_BF16, 4, sp), pool12 = dev_tensor(d, PT_BF16, 4, sp12);
    pt_tensor bt = dev_tensor(d, PT_I32, 2, sbt), bt3 = dev_tensor(d, PT_I32, 2, sbt3), lens = dev_tensor(d, PT_I32, 1, sl);
    pt_tensor btf = dev_tensor(d, PT_F32, 2, sbt);
    EXPECT(pt_cuda_flash_attn_decode_paged(ctx, &q, &pool12, &pool12, &bt, &lens, &q, NULL) == PT_ERR_SHAPE, "block size 12");
    EXPECT(strstr(pt_cuda_last_error(), "block size 12") != NULL, "message: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_flash_attn_decode_paged(ctx, &q, &pool, &pool, &bt3, &lens, &q, NULL) == PT_ERR_SHAPE, "block_table rows != B");
    EXPECT(strstr(pt_cuda_last_error(), "block_table") != NULL, "message: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_flash_attn_decode_paged(ctx, &q, &pool, &pool, &btf, &lens, &q, NULL) == PT_ERR_DTYPE, "f32 block_table");
    EXPECT(strstr(pt_cuda_last_error(), "block_table") != NULL, "message: %s", pt_cuda_last_error());
    pt_cuda_attn_params p;
    memset(&p, 0, sizeof p);
    p.max_seqlen_k = 65; /* capacity 4 x 16 = 64 */
    EXPECT(pt_cuda_flash_attn_decode_paged(ctx, &q, &pool, &pool, &bt, &lens, &q, &p) == PT_ERR_INVALID_ARGUMENT, "max_seqlen_k > capacity");
    EXPECT(strstr(pt_cuda_last_error(), "capacity") != NULL, "message: %s", pt_cuda_last_error());
    p.max_seqlen_k = 0;
    p.variant = 5;
    EXPECT(pt_cuda_flash_attn_decode_paged(ctx, &q, &pool, &pool, &bt, &lens, &q, &p) == PT_ERR_INVALID_ARGUMENT, "variant 5");
    pt_tensor qf = dev_tensor(d, PT_F16, 3, sq);
    EXPECT(pt_cuda_flash_attn_decode_paged(ctx, &qf, &pool, &pool, &bt, &lens, &qf, NULL) == PT_ERR_DTYPE, "f16 q, bf16 pool");
    EXPECT(strstr(pt_cuda_last_error(), "k_pool") != NULL, "message: %s", pt_cuda_last_error());
    int64_t s3[3] = {2, 3, 128};
    pt_tensor q3 = dev_tensor(d, PT_BF16, 3, s3);
    EXPECT(pt_cuda_flash_attn_decode_paged(ctx, &q3, &pool, &pool, &bt, &lens, &q3, NULL) == PT_ERR_SHAPE, "3 heads over 2");
    /* append */
    int64_t sqkv[2] = {2, 12 * 128}, spos[1] = {2};
    pt_tensor qkv = dev_tensor(d, PT_BF16, 2, sqkv), pos = dev_tensor(d, PT_I32, 1, spos);
    EXPECT(pt_cuda_rope_kv_append_paged(ctx, &qkv, &pos, NULL, 8, &pool12, &pool12, &bt, NULL) == PT_ERR_SHAPE, "append: block size 12");
    EXPECT(strstr(pt_cuda_last_error(), "block size 12") != NULL, "message: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_rope_kv_append_paged(ctx, &qkv, &pos, NULL, 8, &pool, &pool, &btf, NULL) == PT_ERR_DTYPE, "append: f32 block_table");
    EXPECT(pt_cuda_rope_kv_append_paged(ctx, &qkv, &pos, NULL, 7, &pool, &pool, &bt, NULL) == PT_ERR_SHAPE, "append: q_heads 7");
    EXPECT(pt_cuda_rope_kv_append_paged(ctx, &qkv, &pos, NULL, 8, &pool, &pool, &bt3, NULL) == PT_ERR_SHAPE, "append: 2 rows, 3 sequences");
    pt_cuda_free(ctx, d);
}

int main(void) {
    skip_without_gpu("test_cuda_paged");
    pt_test_seed(11);
    pt_cuda_ctx* ctx = NULL;
    EXPECT_CUDA_OK(pt_cuda_ctx_create(NULL, &ctx));
    if (!ctx) return pt_test_finish("test_cuda_paged");
    static const int lens3[3] = {1, 7, 1000};
    static const int dims[] = {64, 80, 96, 128, 256};
    for (int variant = 1; variant <= 12; variant += variant == 4 ? 5 : 1) { /* 1 2 3 4, 9 .. 12 (no PDL) */
        run_paged(ctx, 3, 8, 2, 16, lens3, 128, PT_BF16, variant, 0, 0, -1);  /* GQA 4 */
        run_paged(ctx, 3, 4, 4, 32, lens3, 128, PT_F16, variant, 0, 1, -1);   /* MHA, shared prefix */
        run_paged(ctx, 3, 16, 2, 64, lens3, 64, PT_BF16, variant, 1, 1, -1);  /* GQA 8, vLLM layout */
        run_paged(ctx, 3, 6, 2, 1, lens3, 96, PT_BF16, variant, 0, 0, -1);    /* block size 1, G 3 */
        run_paged(ctx, 3, 8, 4, 256, lens3, 256, PT_F16, variant, 1, 0, -1);  /* G 2, D 256 */
        run_paged(ctx, 3, 8, 2, 16, lens3, 128, PT_BF16, variant, 0, 1, 1);   /* bad id in sequence 1 */
    }
    for (int di = 0; di < 5; di++) run_paged(ctx, 3, 8, 2, 16, lens3, dims[di], PT_BF16, 0, di & 1, di & 1, -1);
    {
        int lens[2] = {5000, 4099};
        run_paged(ctx, 2, 32, 8, 128, lens, 128, PT_BF16, 0, 0, 1, -1);
    }
    run_append(ctx, 3, 8, 2, 128, 16, 1);
    run_append(ctx, 4, 4, 4, 64, 1, 0);
    run_append(ctx, 2, 32, 8, 128, 256, 1);
    bad_args(ctx);
    EXPECT_CUDA_OK(pt_cuda_synchronize(ctx));
    pt_cuda_ctx_destroy(ctx);
    return pt_test_finish("test_cuda_paged");
}
