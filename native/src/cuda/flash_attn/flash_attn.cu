/* pt_cuda_flash_attn_fwd / pt_cuda_flash_attn_decode: argument checks, then dispatch on
 * head dim and dtype to the per-instantiation launchers. */
#include <math.h>
#include <stdio.h>

#include "../cuda_common.cuh"
#include "flash.h"

#define PT_FWD_DECL(D)                                                                                            \
    cudaError_t pt_flash_fwd_hdim##D##_bf16(const pt_cu_fwd_params&, bool, int, int, cudaStream_t, int*);    \
    cudaError_t pt_flash_fwd_hdim##D##_f16(const pt_cu_fwd_params&, bool, int, int, cudaStream_t, int*);
PT_FWD_DECL(64)
PT_FWD_DECL(80)
PT_FWD_DECL(96)
PT_FWD_DECL(128)
PT_FWD_DECL(256)

cudaError_t pt_flash_fwd_launch(const pt_cu_fwd_params& p, int head_dim, int is_bf16, int causal, int variant,
                                int arch, cudaStream_t s, int* supported) {
    bool c = causal != 0;
#define PT_FWD_CASE(D) \
    case D: return is_bf16 ? pt_flash_fwd_hdim##D##_bf16(p, c, variant, arch, s, supported) : pt_flash_fwd_hdim##D##_f16(p, c, variant, arch, s, supported);
    switch (head_dim) {
        PT_FWD_CASE(64)
        PT_FWD_CASE(80)
        PT_FWD_CASE(96)
        PT_FWD_CASE(128)
        PT_FWD_CASE(256)
    default: *supported = 0; return cudaSuccess;
    }
#undef PT_FWD_CASE
}

static bool head_dim_ok(int64_t d) { return d == 64 || d == 80 || d == 96 || d == 128 || d == 256; }

/* All of a tensor's strides (but the innermost) and its base address must be 16-byte
 * multiples: the kernels move 16-byte chunks. */
static pt_status check_aligned16(const pt_tensor* t, const char* what) {
    if (((uintptr_t)t->data & 15) != 0)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: data pointer %p is not 16-byte aligned", what, t->data);
    for (int i = 0; i < t->ndim - 1; i++)
        if (t->shape[i] > 1 && t->stride[i] % 16 != 0)
            return pt_fail(PT_ERR_SHAPE, "%s: stride[%d] = %lld bytes is not a multiple of 16", what, i, (long long)t->stride[i]);
    return PT_OK;
}

static int64_t el(const pt_tensor* t, int i) { return t->shape[i] > 1 ? t->stride[i] / (int64_t)pt_dtype_size(t->dtype) : 0; }

extern "C" PT_API pt_status pt_cuda_flash_attn_fwd(pt_cuda_ctx* ctx, const pt_tensor* q, const pt_tensor* k,
                                                   const pt_tensor* v, pt_tensor* out, pt_tensor* lse,
                                                   const pt_cuda_attn_params* params) {
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_flash_attn_fwd"));
    pt_cuda_attn_params pp;
    memset(&pp, 0, sizeof pp);
    if (params) pp = *params;
    const bool varlen = pp.cu_seqlens_q != nullptr || pp.cu_seqlens_k != nullptr;
    const int nd = varlen ? 3 : 4;
    static const int32_t dts[] = {PT_BF16, PT_F16};
    PT_CHECK(pt_cuda_check_tensor(q, "pt_cuda_flash_attn_fwd q", nd, nd, 2, dts));
    PT_CHECK(pt_cuda_check_tensor(k, "pt_cuda_flash_attn_fwd k", nd, nd, 2, dts));
    PT_CHECK(pt_cuda_check_tensor(v, "pt_cuda_flash_attn_fwd v", nd, nd, 2, dts));
    PT_CHECK(pt_cuda_check_tensor(out, "pt_cuda_flash_attn_fwd out", nd, nd, 2, dts));
    char dq[96], dk[96], dv[96], dout[96];
    pt_describe(q, dq, sizeof dq);
    pt_describe(k, dk, sizeof dk);
    pt_describe(v, dv, sizeof dv);
    pt_describe(out, dout, sizeof dout);
    if (k->dtype != q->dtype || v->dtype != q->dtype || out->dtype != q->dtype)
        return pt_fail(PT_ERR_DTYPE, "pt_cuda_flash_attn_fwd: q %s, k %s, v %s, out %s must share one dtype", dq, dk, dv, dout);
    const int o = varlen ? 0 : 1; /* index of the sequence dim */
    const int64_t D = q->shape[nd - 1], hq = q->shape[nd - 2], hkv = k->shape[nd - 2];
    if (!head_dim_ok(D))
        return pt_fail(PT_ERR_UNSUPPORTED, "pt_cuda_flash_attn_fwd: head dim %lld of q %s (supported: 64, 80, 96, 128, 256)", (long long)D, dq);
    bool shapes_ok = k->shape[nd - 1] == D && v->shape[nd - 1] == D && out->shape[nd - 1] == D &&
                     v->shape[nd - 2] == hkv && out->shape[nd - 2] == hq && v->shape[o] == k->shape[o] &&
                     out->shape[o] == q->shape[o] && (varlen || (k->shape[0] == q->shape[0] && v->shape[0] == q->shape[0] &&
                                                                out->shape[0] == q->shape[0]));
    if (!shapes_ok)
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_flash_attn_fwd: expected q/out [%sSq, Hq, D] and k/v [%sSk, Hkv, D], got q %s, k %s, v %s, out %s",
                       varlen ? "" : "B, ", varlen ? "" : "B, ", dq, dk, dv, dout);
    if (hkv <= 0 || hq % hkv != 0)
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_flash_attn_fwd: Hq = %lld is not a multiple of Hkv = %lld (q %s, k %s)",
                       (long long)hq, (long long)hkv, dq, dk);
    PT_CHECK(check_aligned16(q, "pt_cuda_flash_attn_fwd q"));
    PT_CHECK(check_aligned16(k, "pt_cuda_flash_attn_fwd k"));
    PT_CHECK(check_aligned16(v, "pt_cuda_flash_attn_fwd v"));
    PT_CHECK(check_aligned16(out, "pt_cuda_flash_attn_fwd out"));
    int64_t batch, sq, sk;
    if (varlen) {
        if (!pp.cu_seqlens_q || !pp.cu_seqlens_k)
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_flash_attn_fwd: varlen needs both cu_seqlens_q and cu_seqlens_k");
        if (pp.batch <= 0 || pp.max_seqlen_q < 0 || pp.max_seqlen_k < 0)
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_flash_attn_fwd: varlen needs batch > 0 (got %d) and max_seqlen_q/k >= 0 (got %d, %d)",
                           pp.batch, pp.max_seqlen_q, pp.max_seqlen_k);
        if (pp.max_seqlen_q > q->shape[0] || pp.max_seqlen_k > k->shape[0])
            return pt_fail(PT_ERR_SHAPE, "pt_cuda_flash_attn_fwd: max_seqlen_q/k (%d, %d) exceed the packed lengths of q %s / k %s",
                           pp.max_seqlen_q, pp.max_seqlen_k, dq, dk);
        batch = pp.batch;
        sq = pp.max_seqlen_q;
        sk = pp.max_seqlen_k;
    } else {
        batch = q->shape[0];
        sq = q->shape[1];
        sk = k->shape[1];
    }
    if (sq > INT32_MAX / 2 || sk > INT32_MAX / 2 || hq > 65535 || batch > 65535)
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_flash_attn_fwd: sizes too large (q %s, k %s)", dq, dk);
    if (lse) {
        static const int32_t f32[] = {PT_F32};
        PT_CHECK(pt_cuda_check_tensor(lse, "pt_cuda_flash_attn_fwd lse", varlen ? 2 : 3, varlen ? 2 : 3, 1, f32));
        bool ok = varlen ? (lse->shape[0] == hq && lse->shape[1] == q->shape[0])
                         : (lse->shape[0] == batch && lse->shape[1] == hq && lse->shape[2] == sq);
        if (ok && varlen) ok = lse->shape[1] <= 1 || lse->stride[0] == lse->shape[1] * 4;
        if (ok && !varlen) ok = (lse->stride[1] == sq * 4 || hq <= 1) && (lse->stride[0] == hq * sq * 4 || batch <= 1);
        if (!ok) {
            char dl[96];
            pt_describe(lse, dl, sizeof dl);
            return pt_fail(PT_ERR_SHAPE, "pt_cuda_flash_attn_fwd: lse %s must be contiguous %s for q %s", dl,
                           varlen ? "[Hq, Tq]" : "[B, Hq, Sq]", dq);
        }
    }
    if (batch == 0 || sq == 0 || hq == 0) return PT_OK;
    if (pp.scale < 0 || isnan(pp.scale) || isinf(pp.scale))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_flash_attn_fwd: scale %g is not a finite value >= 0", (double)pp.scale);

    pt_cu_fwd_params p;
    memset(&p, 0, sizeof p);
    p.q = q->data;
    p.k = k->data;
    p.v = v->data;
    p.o = out->data;
    p.lse = lse ? (float*)lse->data : nullptr;
    p.q_batch = varlen ? 0 : el(q, 0);
    p.q_row = el(q, o);
    p.q_head = el(q, o + 1);
    p.k_batch = varlen ? 0 : el(k, 0);
    p.k_row = el(k, o);
    p.k_head = el(k, o + 1);
    p.v_batch = varlen ? 0 : el(v, 0);
    p.v_row = el(v, o);
    p.v_head = el(v, o + 1);
    p.o_batch = varlen ? 0 : el(out, 0);
    p.o_row = el(out, o);
    p.o_head = el(out, o + 1);
    p.lse_batch = varlen ? 0 : hq * sq;
    p.lse_head = varlen ? q->shape[0] : sq;
    p.cu_q = pp.cu_seqlens_q;
    p.cu_k = pp.cu_seqlens_k;
    p.batch = (int32_t)batch;
    p.hq = (int32_t)hq;
    p.hkv = (int32_t)hkv;
    p.h_ratio = (int32_t)(hq / hkv);
    p.sq = (int32_t)sq;
    p.sk = (int32_t)sk;
    p.pingpong = pp.variant == 6; /* measured no gain (NOTES.md): off unless asked for */
    p.total_q = (int32_t)q->shape[0];
    p.total_k = (int32_t)k->shape[0];
    p.scale = pp.scale > 0 ? pp.scale : (float)(1.0 / sqrt((double)D));
    p.scale_log2 = p.scale * 1.4426950408889634f;
    int supported = 0;
    cudaError_t e = pt_flash_fwd_launch(p, (int)D, q->dtype == PT_BF16, pp.causal != 0, pp.variant,
                                        ctx->cc_major * 10 + ctx->cc_minor, ctx->stream, &supported);
    if (!supported)
        return pt_fail(PT_ERR_UNSUPPORTED, "pt_cuda_flash_attn_fwd: no kernel for head dim %lld, variant %d on compute capability %d.%d",
                       (long long)D, pp.variant, ctx->cc_major, ctx->cc_minor);
    if (e != cudaSuccess) return pt_cuda_fail(e, "pt_cuda_flash_attn_fwd: kernel launch");
    return PT_OK;
}

/* Decode variant: 1 register loads (U keys per group in flight), 2 / 3 cp.async with 3 / 4 stages
 * in shared memory, 4 tensor cores (GQA, D 64/128, even group size). Auto (0), by the H100
 * measurements of NOTES.md (session 4): MHA the register kernel (97% of copy bandwidth, 8 blocks
 * per SM); GQA the tensor-core kernel where it exists (81-93% of copy against 74-90% for the
 * CUDA-core kernels, whose G x per-key FP32 work bounds them), else the 3-stage kernel. */
static int decode_variant(int requested, int64_t h_ratio, int64_t D) {
    requested &= 7;
    if (requested == 4 && !pt_flash_decode_has_mma((int)D, (int)h_ratio)) requested = 0; /* not built: auto */
    if (requested >= 1 && requested <= 4) return requested;
    if (h_ratio == 1) return 1;
    return pt_flash_decode_has_mma((int)D, (int)h_ratio) ? 4 : 2;
}

/* Shared by the contiguous and the paged decode: shapes of q/out/seqlens checked by the caller;
 * kv_len is the keys one sequence can hold (S_max, or max_blocks * block_size). */
static pt_status decode_run(pt_cuda_ctx* ctx, const char* fn, const pt_tensor* q, const pt_tensor* k, const pt_tensor* v,
                            const pt_tensor* seqlens_k, pt_tensor* out, const pt_cuda_attn_params& pp, int64_t hkv,
                            int64_t kv_len, const int32_t* block_table, int64_t bt_batch, int log2_bs, int64_t num_blocks) {
    const int64_t B = q->shape[0], hq = q->shape[1], D = q->shape[2];
    const int variant = decode_variant(pp.variant, hq / hkv, D);
    const int64_t max_len = pp.max_seqlen_k > 0 && pp.max_seqlen_k < kv_len ? pp.max_seqlen_k : (kv_len > 0 ? kv_len : 1);
    const int64_t step = pt_flash_decode_key_step((int)D);
    int64_t max_splits = (max_len + step - 1) / step;
    int64_t splits = pp.num_splits;
    if (splits == 0) {
        int64_t blocks = B * hq / pt_flash_decode_heads_per_block((int)(hq / hkv));
        /* one full wave: as many blocks as the SMs hold at once (a second, part-empty wave
         * cost 15% on B8 Hkv8 KV4k; see NOTES.md) */
        int64_t target = (int64_t)ctx->sm_count * pt_flash_decode_blocks_per_sm((int)D, q->dtype == PT_BF16, (int)(hq / hkv), variant);
        splits = target / blocks > 0 ? target / blocks : 1;
    }
    if (splits > max_splits) splits = max_splits;
    if (splits < 1) splits = 1;
    if (splits > 1024) splits = 1024; /* combine_kernel's MAX_SPLITS */
    int64_t kps = (max_len + splits - 1) / splits;
    kps = (kps + step - 1) / step * step;
    splits = (max_len + kps - 1) / kps;

    pt_cu_decode_params p;
    memset(&p, 0, sizeof p);
    p.q = q->data;
    p.k = k->data;
    p.v = v->data;
    p.o = out->data;
    p.seqlens = (const int32_t*)seqlens_k->data;
    p.q_batch = el(q, 0);
    p.q_head = el(q, 1);
    p.k_batch = el(k, 0);
    p.k_head = el(k, 1);
    p.k_row = el(k, 2);
    p.v_batch = el(v, 0);
    p.v_head = el(v, 1);
    p.v_row = el(v, 2);
    p.o_batch = el(out, 0);
    p.o_head = el(out, 1);
    p.batch = (int32_t)B;
    p.hq = (int32_t)hq;
    p.hkv = (int32_t)hkv;
    p.h_ratio = (int32_t)(hq / hkv);
    p.s_max = (int32_t)(pp.max_seqlen_k > 0 && pp.max_seqlen_k < kv_len ? pp.max_seqlen_k : kv_len);
    p.splits = (int32_t)splits;
    p.keys_per_split = (int32_t)kps;
    p.block_table = block_table;
    p.bt_batch = bt_batch;
    p.log2_bs = log2_bs;
    p.num_blocks = (int32_t)num_blocks;
    p.variant = variant;
    p.pdl = ctx->cc_major >= 9 && (pp.variant & 8) == 0; /* variant + 8: no programmatic dependent launch */
    float scale = pp.scale > 0 ? pp.scale : (float)(1.0 / sqrt((double)D));
    p.scale_log2 = scale * 1.4426950408889634f;
    void* scratch = nullptr;
    if (splits > 1) {
        size_t n_o = (size_t)(B * hq * splits * D), n_l = (size_t)(B * hq * splits);
        PT_CHECK(pt_cuda_alloc_internal(ctx, (n_o + n_l) * sizeof(float), &scratch));
        p.part_o = (float*)scratch;
        p.part_lse = (float*)scratch + n_o;
    }
    int supported = 0;
    cudaError_t e = pt_flash_decode_launch(p, (int)D, q->dtype == PT_BF16, ctx->stream, &supported);
    pt_cuda_free_internal(ctx, scratch); /* stream-ordered: later work on this stream may reuse it */
    if (!supported) return pt_fail(PT_ERR_UNSUPPORTED, "%s: no kernel for head dim %lld", fn, (long long)D);
    if (e != cudaSuccess) {
        char what[96];
        snprintf(what, sizeof what, "%s: kernel launch", fn);
        return pt_cuda_fail(e, what);
    }
    return PT_OK;
}

/* Checks of q, out, seqlens_k and the params common to both decode entry points. */
static pt_status decode_check_common(const char* fn, const pt_tensor* q, const pt_tensor* out, const pt_tensor* seqlens_k,
                                     const pt_cuda_attn_params& pp) {
    static const int32_t dts[] = {PT_BF16, PT_F16};
    static const int32_t i32[] = {PT_I32};
    char what[96];
    snprintf(what, sizeof what, "%s q", fn);
    PT_CHECK(pt_cuda_check_tensor(q, what, 3, 3, 2, dts));
    snprintf(what, sizeof what, "%s out", fn);
    PT_CHECK(pt_cuda_check_tensor(out, what, 3, 3, 2, dts));
    snprintf(what, sizeof what, "%s seqlens_k", fn);
    PT_CHECK(pt_cuda_check_tensor(seqlens_k, what, 1, 1, 1, i32));
    if (pp.num_splits < 0 || pp.max_seqlen_k < 0)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: num_splits %d and max_seqlen_k %d must be >= 0", fn, pp.num_splits, pp.max_seqlen_k);
    if (pp.scale < 0 || isnan(pp.scale) || isinf(pp.scale))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: scale %g is not a finite value >= 0", fn, (double)pp.scale);
    if (pp.variant < 0 || pp.variant > 12 || (pp.variant & 7) > 4)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: variant %d must be 0 (auto), 1, 2, 3 or 4 (+ 8: no programmatic dependent launch)", fn,
                       pp.variant);
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_flash_attn_decode(pt_cuda_ctx* ctx, const pt_tensor* q, const pt_tensor* k_cache,
                                                      const pt_tensor* v_cache, const pt_tensor* seqlens_k, pt_tensor* out,
                                                      const pt_cuda_attn_params* params) {
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_flash_attn_decode"));
    pt_cuda_attn_params pp;
    memset(&pp, 0, sizeof pp);
    if (params) pp = *params;
    static const int32_t dts[] = {PT_BF16, PT_F16};
    PT_CHECK(decode_check_common("pt_cuda_flash_attn_decode", q, out, seqlens_k, pp));
    PT_CHECK(pt_cuda_check_tensor(k_cache, "pt_cuda_flash_attn_decode k_cache", 4, 4, 2, dts));
    PT_CHECK(pt_cuda_check_tensor(v_cache, "pt_cuda_flash_attn_decode v_cache", 4, 4, 2, dts));
    char dq[96], dk[96], dv[96], dout[96];
    pt_describe(q, dq, sizeof dq);
    pt_describe(k_cache, dk, sizeof dk);
    pt_describe(v_cache, dv, sizeof dv);
    pt_describe(out, dout, sizeof dout);
    if (k_cache->dtype != q->dtype || v_cache->dtype != q->dtype || out->dtype != q->dtype)
        return pt_fail(PT_ERR_DTYPE, "pt_cuda_flash_attn_decode: q %s, k_cache %s, v_cache %s, out %s must share one dtype", dq, dk, dv, dout);
    const int64_t B = q->shape[0], hq = q->shape[1], D = q->shape[2];
    const int64_t hkv = k_cache->shape[1], smax = k_cache->shape[2];
    if (!head_dim_ok(D))
        return pt_fail(PT_ERR_UNSUPPORTED, "pt_cuda_flash_attn_decode: head dim %lld of q %s (supported: 64, 80, 96, 128, 256)", (long long)D, dq);
    bool ok = k_cache->shape[0] == B && k_cache->shape[3] == D && v_cache->shape[0] == B && v_cache->shape[1] == hkv &&
              v_cache->shape[2] == smax && v_cache->shape[3] == D && out->shape[0] == B && out->shape[1] == hq &&
              out->shape[2] == D && seqlens_k->shape[0] == B;
    if (!ok) {
        char ds[96];
        pt_describe(seqlens_k, ds, sizeof ds);
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_flash_attn_decode: expected q/out [B, Hq, D], k/v_cache [B, Hkv, S_max, D], seqlens_k [B]; "
                       "got q %s, k_cache %s, v_cache %s, out %s, seqlens_k %s", dq, dk, dv, dout, ds);
    }
    if (hkv <= 0 || hq % hkv != 0)
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_flash_attn_decode: Hq = %lld is not a multiple of Hkv = %lld", (long long)hq, (long long)hkv);
    PT_CHECK(check_aligned16(q, "pt_cuda_flash_attn_decode q"));
    PT_CHECK(check_aligned16(k_cache, "pt_cuda_flash_attn_decode k_cache"));
    PT_CHECK(check_aligned16(v_cache, "pt_cuda_flash_attn_decode v_cache"));
    if (((uintptr_t)out->data & 3) != 0)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_flash_attn_decode: out data is not 4-byte aligned");
    if (B > 65535 || hq > 65535 || smax > INT32_MAX / 2)
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_flash_attn_decode: sizes too large (q %s, k_cache %s)", dq, dk);
    if (B == 0 || hq == 0) return PT_OK;
    return decode_run(ctx, "pt_cuda_flash_attn_decode", q, k_cache, v_cache, seqlens_k, out, pp, hkv, smax, nullptr, 0, 0, 0);
}

extern "C" PT_API pt_status pt_cuda_flash_attn_decode_paged(pt_cuda_ctx* ctx, const pt_tensor* q, const pt_tensor* k_pool,
                                                            const pt_tensor* v_pool, const pt_tensor* block_table,
                                                            const pt_tensor* seqlens_k, pt_tensor* out,
                                                            const pt_cuda_attn_params* params) {
    pt_clear_error();
    const char* fn = "pt_cuda_flash_attn_decode_paged";
    PT_CHECK(pt_cuda_enter(ctx, fn));
    pt_cuda_attn_params pp;
    memset(&pp, 0, sizeof pp);
    if (params) pp = *params;
    static const int32_t dts[] = {PT_BF16, PT_F16};
    static const int32_t i32[] = {PT_I32};
    PT_CHECK(decode_check_common(fn, q, out, seqlens_k, pp));
    PT_CHECK(pt_cuda_check_tensor(k_pool, "pt_cuda_flash_attn_decode_paged k_pool", 4, 4, 2, dts));
    PT_CHECK(pt_cuda_check_tensor(v_pool, "pt_cuda_flash_attn_decode_paged v_pool", 4, 4, 2, dts));
    PT_CHECK(pt_cuda_check_tensor(block_table, "pt_cuda_flash_attn_decode_paged block_table", 2, 2, 1, i32));
    char dq[96], dk[96], dv[96], dout[96], dbt[96], ds[96];
    pt_describe(q, dq, sizeof dq);
    pt_describe(k_pool, dk, sizeof dk);
    pt_describe(v_pool, dv, sizeof dv);
    pt_describe(out, dout, sizeof dout);
    pt_describe(block_table, dbt, sizeof dbt);
    pt_describe(seqlens_k, ds, sizeof ds);
    if (k_pool->dtype != q->dtype || v_pool->dtype != q->dtype || out->dtype != q->dtype)
        return pt_fail(PT_ERR_DTYPE, "%s: q %s, k_pool %s, v_pool %s, out %s must share one dtype", fn, dq, dk, dv, dout);
    const int64_t B = q->shape[0], hq = q->shape[1], D = q->shape[2];
    const int64_t nblocks = k_pool->shape[0], hkv = k_pool->shape[1], bs = k_pool->shape[2];
    const int64_t max_blocks = block_table->shape[1];
    if (!head_dim_ok(D))
        return pt_fail(PT_ERR_UNSUPPORTED, "%s: head dim %lld of q %s (supported: 64, 80, 96, 128, 256)", fn, (long long)D, dq);
    bool ok = k_pool->shape[3] == D && v_pool->shape[0] == nblocks && v_pool->shape[1] == hkv && v_pool->shape[2] == bs &&
              v_pool->shape[3] == D && out->shape[0] == B && out->shape[1] == hq && out->shape[2] == D &&
              seqlens_k->shape[0] == B && block_table->shape[0] == B;
    if (!ok)
        return pt_fail(PT_ERR_SHAPE, "%s: expected q/out [B, Hq, D], k/v_pool [num_blocks, Hkv, block_size, D], block_table "
                       "[B, max_blocks], seqlens_k [B]; got q %s, k_pool %s, v_pool %s, block_table %s, out %s, seqlens_k %s",
                       fn, dq, dk, dv, dbt, dout, ds);
    if (hkv <= 0 || hq % hkv != 0)
        return pt_fail(PT_ERR_SHAPE, "%s: Hq = %lld of q %s is not a multiple of Hkv = %lld of k_pool %s", fn, (long long)hq, dq,
                       (long long)hkv, dk);
    if (bs < 1 || bs > 4096 || (bs & (bs - 1)) != 0)
        return pt_fail(PT_ERR_SHAPE, "%s: block size %lld (dim 2 of k_pool %s) must be a power of two in 1..4096", fn, (long long)bs, dk);
    if (nblocks < 1 || nblocks > INT32_MAX)
        return pt_fail(PT_ERR_SHAPE, "%s: k_pool %s must hold 1 .. 2^31-1 blocks", fn, dk);
    if (max_blocks < 1 || max_blocks * bs > INT32_MAX / 2)
        return pt_fail(PT_ERR_SHAPE, "%s: block_table %s: max_blocks x block_size %lld must be in 1 .. 2^30 keys", fn, dbt,
                       (long long)bs);
    if (block_table->shape[1] > 1 && block_table->stride[1] != 4)
        return pt_fail(PT_ERR_SHAPE, "%s: block_table %s must be innermost contiguous", fn, dbt);
    if (block_table->shape[0] > 1 && block_table->stride[0] % 4 != 0)
        return pt_fail(PT_ERR_SHAPE, "%s: block_table %s row stride must be a multiple of 4 bytes", fn, dbt);
    const int64_t capacity = max_blocks * bs;
    if (pp.max_seqlen_k > capacity)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: max_seqlen_k %d exceeds the capacity max_blocks x block_size = %lld x %lld of block_table %s",
                       fn, pp.max_seqlen_k, (long long)max_blocks, (long long)bs, dbt);
    PT_CHECK(check_aligned16(q, "pt_cuda_flash_attn_decode_paged q"));
    PT_CHECK(check_aligned16(k_pool, "pt_cuda_flash_attn_decode_paged k_pool"));
    PT_CHECK(check_aligned16(v_pool, "pt_cuda_flash_attn_decode_paged v_pool"));
    if (((uintptr_t)out->data & 3) != 0) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: out %s data is not 4-byte aligned", fn, dout);
    if (B > 65535 || hq > 65535) return pt_fail(PT_ERR_SHAPE, "%s: sizes too large (q %s)", fn, dq);
    if (B == 0 || hq == 0) return PT_OK;
    int log2_bs = 0;
    while ((1LL << log2_bs) < bs) log2_bs++;
    return decode_run(ctx, fn, q, k_pool, v_pool, seqlens_k, out, pp, hkv, capacity, (const int32_t*)block_table->data,
                      block_table->shape[0] > 1 ? block_table->stride[0] / 4 : 0, log2_bs, nblocks);
}
