/*
 * Decode attention (one query token per sequence) against a KV cache [B, Hkv, S_max, D]:
 * flash-decoding. The KV length is split over gridDim.x blocks; in a block, groups of
 * TPK threads (TPK * 8 >= D) each own one key at a time, every thread holding 8 elements
 * (16 bytes) of q, of the current K and V rows, and of its running output. Each thread
 * keeps U keys' K and V loads in flight before using them (memory-level parallelism is
 * what a memory-bound kernel needs). A block's groups merge their partial softmaxes in
 * shared memory; with several splits, a second kernel merges the splits by log-sum-exp.
 * Everything is memory-bound: the floor is the K and V bytes over the copy bandwidth.
 * Variants (host: decode_variant in flash_attn.cu): 1 the above; 2 / 3 the same with the K/V
 * loads through 3 / 4 thread-private cp.async stages; 4 GQA on tensor cores (decode_mma_kernel).
 * Paged KV: every kernel reads a row through the block table when p.block_table is set.
 * The combine kernel is a programmatic dependent launch on sm_90 (griddepcontrol).
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math_constants.h>
#include <stdint.h>
#include <string.h>

#include "flash.h"
#include "flash_fwd_kernel.cuh" /* ptfa:: mma / ldmatrix / cp.async helpers */

namespace ptfd {

template <typename T> __device__ __forceinline__ void unpack8(const uint4& u, float* f);
template <> __device__ __forceinline__ void unpack8<__nv_bfloat16>(const uint4& u, float* f) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 x = __bfloat1622float2(h[i]);
        f[2 * i] = x.x;
        f[2 * i + 1] = x.y;
    }
}
template <> __device__ __forceinline__ void unpack8<__half>(const uint4& u, float* f) {
    const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 x = __half22float2(h[i]);
        f[2 * i] = x.x;
        f[2 * i + 1] = x.y;
    }
}
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }

__device__ __forceinline__ uint4 ld_stream(const void* p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
}

constexpr int NWARPS = 4;
constexpr int NT = NWARPS * 32;
constexpr int U = 4;      /* keys per group in flight (register variant; 2 when G = 8) */
/* cp.async variants: ST stages per thread (ST - 1 iterations in flight ahead of the one computed);
 * variant 2: 3 stages (48 KiB for G <= 4, D 128: 4 blocks per SM), variant 3: 4 stages */

template <int D> struct shape {
    static constexpr int CH = D / 8;                                         /* 16-byte chunks per row */
    static constexpr int TPK = CH <= 8 ? 8 : CH <= 16 ? 16 : 32;             /* threads per key */
    static constexpr int NG = NWARPS * 32 / TPK;                             /* key groups per block */
};
template <int G> struct keys_in_flight { static constexpr int value = G >= 8 ? 2 : U; };

/* dynamic shared memory of one block: the merge buffers, and for the cp.async variant its
 * thread-private stages (a thread reads back only the slots it filled itself, so the pipeline
 * needs no barrier; the merge reuses the space after one) */
template <int D, int G, int ST> constexpr int smem_bytes() {
    constexpr int merge = G * shape<D>::NG * D * 4;
    constexpr int pipe = ST * keys_in_flight<G>::value * 2 * NT * 16;
    return merge > pipe ? merge : pipe;
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }
/* 16 bytes global -> shared; n = 0 writes zeros and reads nothing */
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int n) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* Element offset of key `kid`'s row from the (batch, head) base (contiguous) or the head base
 * (paged: through the block table). Returns false for a physical block outside the pool. */
__device__ __forceinline__ bool row_offsets(const pt_cu_decode_params& p, const int32_t* bt, int kid, int64_t& ko, int64_t& vo) {
    if (bt == nullptr) {
        ko = (int64_t)kid * p.k_row;
        vo = (int64_t)kid * p.v_row;
        return true;
    }
    const int phys = __ldg(bt + (kid >> p.log2_bs));
    const int r = kid & ((1 << p.log2_bs) - 1);
    ko = (int64_t)phys * p.k_batch + (int64_t)r * p.k_row;
    vo = (int64_t)phys * p.v_batch + (int64_t)r * p.v_row;
    return (unsigned)phys < (unsigned)p.num_blocks;
}

/* G query heads that share one KV head are served by one block: each K/V row is read once
 * for all of them (GQA). PIPE: K/V come through STAGES cp.async stages in shared memory (loads
 * of the next iterations stay in flight while one is computed); else straight into registers,
 * U keys per group before use. */
template <typename T, int D, int G, int ST>
__global__ void __launch_bounds__(NT) decode_kernel(const pt_cu_decode_params p) {
    constexpr bool PIPE = ST > 0;
    constexpr int STAGES = ST > 0 ? ST : 1;
    using S = shape<D>;
    constexpr int TPK = S::TPK, NG = S::NG;
    constexpr int U = keys_in_flight<G>::value;
    constexpr int STEP = NG * U;
    extern __shared__ uint4 dsm[];
    __shared__ float sm_m[G][NG], sm_l[G][NG];
    float(*sm_acc)[NG][D] = reinterpret_cast<float(*)[NG][D]>(dsm);

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    /* the combine kernel (launched as a programmatic dependent) may start its blocks now: they
     * wait in griddepcontrol.wait for this grid's completion, the launch latency is overlapped */
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
    const int chunks = p.h_ratio / G;
    const int split = blockIdx.x, hk = blockIdx.y / chunks, b = blockIdx.z;
    const int h0 = hk * p.h_ratio + (blockIdx.y % chunks) * G; /* first query head of this block */
    const int tid = threadIdx.x, grp = tid / TPK, sub = tid % TPK;
    const bool active = sub < S::CH;

    const int32_t* bt = p.block_table ? p.block_table + (int64_t)b * p.bt_batch : nullptr;
    int L = p.seqlens[b];
    L = L < 0 ? 0 : L > p.s_max ? p.s_max : L;
    const int k0 = split * p.keys_per_split;
    const int k1 = min(L, k0 + p.keys_per_split);

    float q[G][8];
#pragma unroll
    for (int gi = 0; gi < G; gi++) {
        const T* gq = reinterpret_cast<const T*>(p.q) + (int64_t)b * p.q_batch + (int64_t)(h0 + gi) * p.q_head;
        uint4 u = active ? *reinterpret_cast<const uint4*>(gq + sub * 8) : make_uint4(0, 0, 0, 0);
        unpack8<T>(u, q[gi]);
#pragma unroll
        for (int i = 0; i < 8; i++) q[gi][i] *= p.scale_log2;
    }
    const int64_t kbase = bt ? (int64_t)hk * p.k_head : (int64_t)b * p.k_batch + (int64_t)hk * p.k_head;
    const int64_t vbase = bt ? (int64_t)hk * p.v_head : (int64_t)b * p.v_batch + (int64_t)hk * p.v_head;
    const T* gk = reinterpret_cast<const T*>(p.k) + kbase + sub * 8;
    const T* gv = reinterpret_cast<const T*>(p.v) + vbase + sub * 8;
    bool bad = false; /* a block id outside the pool: the output becomes NaN */

    float m[G], l[G], acc[G][8];
#pragma unroll
    for (int gi = 0; gi < G; gi++) {
        m[gi] = -CUDART_INF_F;
        l[gi] = 0.f;
#pragma unroll
        for (int i = 0; i < 8; i++) acc[gi][i] = 0.f;
    }

    const int iters = k1 > k0 ? (k1 - k0 + STEP - 1) / STEP : 0;
    /* slot (stage, u, kv) of this thread in the cp.async variant */
    auto slot = [&](int stage, int u, int kv) -> uint4* { return dsm + (((stage * U + u) * 2 + kv) * NT + tid); };
    auto issue = [&](int it) {
        const int stage = it % STAGES;
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int kid = k0 + it * STEP + grp + u * NG;
            int64_t ko = 0, vo = 0;
            bool ok = active && kid < k1;
            if (ok && !row_offsets(p, bt, kid, ko, vo)) {
                bad = true;
                ok = false;
            }
            cp_async16(smem_u32(slot(stage, u, 0)), ok ? gk + ko : gk, ok ? 16 : 0);
            cp_async16(smem_u32(slot(stage, u, 1)), ok ? gv + vo : gv, ok ? 16 : 0);
        }
        cp_async_commit();
    };
    if (PIPE) {
#pragma unroll
        for (int s = 0; s < STAGES - 1; s++) {
            if (s < iters) issue(s);
            else cp_async_commit();
        }
    }

    /* the loop bound is uniform over the block, so the shuffles below see every lane */
    for (int it = 0; it < iters; it++) {
        const int key = k0 + it * STEP + grp;
        uint4 kr[U], vr[U];
        if (PIPE) {
            if (it + STAGES - 1 < iters) issue(it + STAGES - 1);
            else cp_async_commit();
            cp_async_wait<STAGES - 1>();
#pragma unroll
            for (int u = 0; u < U; u++) {
                kr[u] = *slot(it % STAGES, u, 0);
                vr[u] = *slot(it % STAGES, u, 1);
            }
        } else {
#pragma unroll
            for (int u = 0; u < U; u++) {
                int kid = key + u * NG;
                int64_t ko = 0, vo = 0;
                bool ok = active && kid < k1;
                if (ok && !row_offsets(p, bt, kid, ko, vo)) {
                    bad = true;
                    ok = false;
                }
                kr[u] = ok ? ld_stream(gk + ko) : make_uint4(0, 0, 0, 0);
                vr[u] = ok ? ld_stream(gv + vo) : make_uint4(0, 0, 0, 0);
            }
        }
        float s[G][U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            float kf[8];
            unpack8<T>(kr[u], kf);
#pragma unroll
            for (int gi = 0; gi < G; gi++) {
                float d = 0.f;
#pragma unroll
                for (int i = 0; i < 8; i++) d = fmaf(q[gi][i], kf[i], d);
                s[gi][u] = d;
            }
        }
        /* reduce the G*U partial dots over the TPK lanes of each group */
#pragma unroll
        for (int off = TPK / 2; off > 0; off >>= 1)
#pragma unroll
            for (int gi = 0; gi < G; gi++)
#pragma unroll
                for (int u = 0; u < U; u++) s[gi][u] += __shfl_xor_sync(0xffffffffu, s[gi][u], off);
        float vf[U][8];
#pragma unroll
        for (int u = 0; u < U; u++) unpack8<T>(vr[u], vf[u]);
#pragma unroll
        for (int gi = 0; gi < G; gi++) {
            float mx = -CUDART_INF_F;
#pragma unroll
            for (int u = 0; u < U; u++) {
                if (key + u * NG >= k1) s[gi][u] = -CUDART_INF_F;
                mx = fmaxf(mx, s[gi][u]);
            }
            float m_new = fmaxf(m[gi], mx);
            float m_use = m_new == -CUDART_INF_F ? 0.f : m_new; /* no valid key yet: keep zeros */
            float corr = exp2f(m[gi] - m_use);
            m[gi] = m_new;
            l[gi] *= corr;
#pragma unroll
            for (int i = 0; i < 8; i++) acc[gi][i] *= corr;
#pragma unroll
            for (int u = 0; u < U; u++) {
                float pu = exp2f(s[gi][u] - m_use);
                l[gi] += pu;
#pragma unroll
                for (int i = 0; i < 8; i++) acc[gi][i] = fmaf(pu, vf[u][i], acc[gi][i]);
            }
        }
    }
    if (PIPE) cp_async_wait<0>();
    /* every thread is done with its stages before the merge buffers overwrite them */
    const bool any_bad = __syncthreads_or(bad) != 0;

    /* merge the block's groups */
#pragma unroll
    for (int gi = 0; gi < G; gi++) {
        if (sub == 0) {
            sm_m[gi][grp] = m[gi];
            sm_l[gi][grp] = l[gi];
        }
        if (active) {
#pragma unroll
            for (int i = 0; i < 8; i++) sm_acc[gi][grp][sub * 8 + i] = acc[gi][i];
        }
    }
    __syncthreads();
    for (int x = tid; x < G * D; x += NT) {
        const int gi = x / D, d = x - gi * D, h = h0 + gi;
        float M = -CUDART_INF_F;
#pragma unroll
        for (int g2 = 0; g2 < NG; g2++) M = fmaxf(M, sm_m[gi][g2]);
        const float Muse = M == -CUDART_INF_F ? 0.f : M;
        float lsum = 0.f, o = 0.f;
#pragma unroll
        for (int g2 = 0; g2 < NG; g2++) {
            float w = exp2f(sm_m[gi][g2] - Muse);
            lsum += sm_l[gi][g2] * w;
            o += sm_acc[gi][g2][d] * w;
        }
        o = any_bad ? CUDART_NAN_F : lsum > 0.f ? o / lsum : 0.f;
        if (p.splits == 1) {
            T* go = reinterpret_cast<T*>(p.o) + (int64_t)b * p.o_batch + (int64_t)h * p.o_head;
            go[d] = from_f<T>(o);
        } else {
            p.part_o[(((int64_t)b * p.hq + h) * p.splits + split) * D + d] = o;
            if (d == 0)
                p.part_lse[((int64_t)b * p.hq + h) * p.splits + split] =
                    any_bad ? CUDART_NAN_F : lsum > 0.f ? M + log2f(lsum) : -CUDART_INF_F;
        }
    }
}

/* Variant 4, GQA on tensor cores (D 64 / 128, G 2..8 heads per KV head): each warp streams its own
 * tiles of 16 keys through MST cp.async stages in its own slice of shared memory (swizzled 16-byte
 * chunks, so ldmatrix rows fall in distinct banks), then S[16 x 16] = Q K^T and O += P V by
 * mma.sync m16n8k16 with the G query heads as rows 0..G-1 of the A operand (rows G..15 zero).
 * Per 16 keys a warp issues 32 mma and 16 ldmatrix instead of the G x 16 x (dot + shuffle
 * reduction + exp + FMA) of the CUDA-core kernels: the per-key work of G heads, what held GQA
 * below the MHA streaming rate, mostly leaves the FP32 pipes. */
constexpr int MW = 4;  /* warps per block */
constexpr int MST = 3; /* stages per warp */
template <int D> constexpr int mma_smem_bytes() { return MW * MST * 2 * 16 * D * 2; }

template <typename T, int D, int G>
__global__ void __launch_bounds__(MW * 32) decode_mma_kernel(const pt_cu_decode_params p) {
    constexpr int CH = D / 8;   /* 16-byte chunks per row */
    constexpr int NT8 = D / 8;  /* n-tiles of the output (8 columns each) */
    constexpr int KK = D / 16;  /* k-steps of Q K^T */
    extern __shared__ uint4 dsm[];
    __shared__ float sm_m[G][MW], sm_l[G][MW];
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
    const int chunks = p.h_ratio / G;
    const int split = blockIdx.x, hk = blockIdx.y / chunks, b = blockIdx.z;
    const int h0 = hk * p.h_ratio + (blockIdx.y % chunks) * G;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int g = lane / 4, q4 = lane % 4; /* this thread's row (query head) in the fragments */

    const int32_t* bt = p.block_table ? p.block_table + (int64_t)b * p.bt_batch : nullptr;
    int L = p.seqlens[b];
    L = L < 0 ? 0 : L > p.s_max ? p.s_max : L;
    const int k0 = split * p.keys_per_split;
    const int k1 = min(L, k0 + p.keys_per_split);
    const int tiles = k1 > k0 ? (k1 - k0 + 15) / 16 : 0;
    const int my_tiles = tiles > warp ? (tiles - warp + MW - 1) / MW : 0; /* tiles warp, warp + MW, ... */

    /* Q as the A operand: a0a1 = Q[g][16kk + 2q4 ..], a4a5 = Q[g][16kk + 8 + 2q4 ..]; rows >= G zero */
    uint32_t qa[KK][2];
    {
        const T* gq = reinterpret_cast<const T*>(p.q) + (int64_t)b * p.q_batch + (int64_t)(h0 + (g < G ? g : 0)) * p.q_head;
#pragma unroll
        for (int kk = 0; kk < KK; kk++) {
            qa[kk][0] = g < G ? *reinterpret_cast<const uint32_t*>(gq + 16 * kk + 2 * q4) : 0u;
            qa[kk][1] = g < G ? *reinterpret_cast<const uint32_t*>(gq + 16 * kk + 8 + 2 * q4) : 0u;
        }
    }
    const int64_t kbase = bt ? (int64_t)hk * p.k_head : (int64_t)b * p.k_batch + (int64_t)hk * p.k_head;
    const int64_t vbase = bt ? (int64_t)hk * p.v_head : (int64_t)b * p.v_batch + (int64_t)hk * p.v_head;
    const T* gk = reinterpret_cast<const T*>(p.k) + kbase;
    const T* gv = reinterpret_cast<const T*>(p.v) + vbase;
    bool bad = false;

    uint4* wsm = dsm + warp * MST * 2 * 16 * CH; /* this warp's stages: [stage][kv][row 16][CH] */
    /* block size >= 16: a tile (16 keys from a multiple of 16: keys_per_split is a multiple of the
     * key step) lies in one block, so one table lookup serves it; smaller blocks look up per row */
    const bool per_tile = bt != nullptr && p.log2_bs >= 4;
    auto issue = [&](int t) {                    /* the warp's t-th tile into stage t % MST */
        const int stage = t % MST;
        const int key0 = k0 + (t * MW + warp) * 16;
        int64_t tk = 0, tv = 0;
        bool tile_ok = true;
        if (per_tile && key0 < k1) {
            const int phys = __ldg(bt + (key0 >> p.log2_bs));
            const int r0 = key0 & ((1 << p.log2_bs) - 1);
            tk = (int64_t)phys * p.k_batch + (int64_t)r0 * p.k_row;
            tv = (int64_t)phys * p.v_batch + (int64_t)r0 * p.v_row;
            tile_ok = (unsigned)phys < (unsigned)p.num_blocks;
        }
#pragma unroll
        for (int i = 0; i < 2 * 16 * CH / 32; i++) {
            const int idx = i * 32 + lane;
            const int kv = idx / (16 * CH), rem = idx % (16 * CH), row = rem / CH, c = rem % CH;
            const int kid = key0 + row;
            int64_t ko = 0, vo = 0;
            bool ok = kid < k1;
            if (ok && per_tile) {
                ko = tk + (int64_t)row * p.k_row;
                vo = tv + (int64_t)row * p.v_row;
                if (!tile_ok) {
                    bad = true;
                    ok = false;
                }
            } else if (ok && !row_offsets(p, bt, kid, ko, vo)) {
                bad = true;
                ok = false;
            }
            const T* src = kv == 0 ? gk + ko + c * 8 : gv + vo + c * 8;
            uint4* dst = wsm + ((stage * 2 + kv) * 16 + row) * CH + (c ^ (row & 7));
            cp_async16(smem_u32(dst), ok ? src : gk, ok ? 16 : 0);
        }
        cp_async_commit();
    };
#pragma unroll
    for (int s = 0; s < MST - 1; s++) {
        if (s < my_tiles) issue(s);
        else cp_async_commit();
    }

    float o[NT8][4];
#pragma unroll
    for (int n = 0; n < NT8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m_run = -CUDART_INF_F, l_run = 0.f;

    for (int t = 0; t < my_tiles; t++) {
        __syncwarp(); /* every lane is done reading the stage the next issue overwrites */
        if (t + MST - 1 < my_tiles) issue(t + MST - 1);
        else cp_async_commit();
        cp_async_wait<MST - 1>();
        __syncwarp(); /* the tile's chunks written by every lane are visible */
        const uint4* ks = wsm + ((t % MST) * 2 + 0) * 16 * CH;
        const uint4* vs = wsm + ((t % MST) * 2 + 1) * 16 * CH;
        /* S = Q K^T: two n-tiles of 8 keys */
        float sc[2][4];
#pragma unroll
        for (int j = 0; j < 2; j++) {
            sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
#pragma unroll
            for (int kp = 0; kp < KK / 2; kp++) {
                const int row = 8 * j + (lane % 8), c = 4 * kp + lane / 8;
                uint32_t b0, b1, b2, b3;
                ptfa::ldsm_x4(smem_u32(ks + row * CH + (c ^ (row & 7))), b0, b1, b2, b3);
                const uint32_t a0[4] = {qa[2 * kp][0], 0u, qa[2 * kp][1], 0u};
                const uint32_t a1[4] = {qa[2 * kp + 1][0], 0u, qa[2 * kp + 1][1], 0u};
                ptfa::dt<T>::mma(sc[j], a0, b0, b1);
                ptfa::dt<T>::mma(sc[j], a1, b2, b3);
            }
        }
        /* online softmax on row g (c0, c1 of each n-tile; c2, c3 are the zero rows 8..15) */
        const int key0 = k0 + (t * MW + warp) * 16;
        float sv[4];
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int kid = key0 + 8 * j + 2 * q4 + e;
                sv[2 * j + e] = kid < k1 ? sc[j][e] * p.scale_log2 : -CUDART_INF_F;
            }
        float mx = fmaxf(fmaxf(sv[0], sv[1]), fmaxf(sv[2], sv[3]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m_run, mx);
        const float m_use = m_new == -CUDART_INF_F ? 0.f : m_new;
        const float corr = exp2f(m_run - m_use);
        m_run = m_new;
        float pv[4];
#pragma unroll
        for (int i = 0; i < 4; i++) pv[i] = g < G ? exp2f(sv[i] - m_use) : 0.f;
        l_run = l_run * corr + (pv[0] + pv[1]) + (pv[2] + pv[3]);
#pragma unroll
        for (int n = 0; n < NT8; n++) {
            o[n][0] *= corr;
            o[n][1] *= corr;
        }
        const uint32_t pa[4] = {ptfa::dt<T>::pack(pv[0], pv[1]), 0u, ptfa::dt<T>::pack(pv[2], pv[3]), 0u};
        /* O += P V: V rows are keys (k), columns d (n) -> ldmatrix.trans */
#pragma unroll
        for (int cp = 0; cp < NT8 / 2; cp++) {
            const int mi = lane / 8, row = (mi & 1) * 8 + (lane % 8), c = 2 * cp + (mi >> 1);
            uint32_t b0, b1, b2, b3;
            ptfa::ldsm_x4_t(smem_u32(vs + row * CH + (c ^ (row & 7))), b0, b1, b2, b3);
            ptfa::dt<T>::mma(o[2 * cp], pa, b0, b1);
            ptfa::dt<T>::mma(o[2 * cp + 1], pa, b2, b3);
        }
    }
    cp_async_wait<0>();
    l_run += __shfl_xor_sync(0xffffffffu, l_run, 1);
    l_run += __shfl_xor_sync(0xffffffffu, l_run, 2);
    const bool any_bad = __syncthreads_or(bad) != 0; /* all warps left their stages */

    float(*sm_acc)[MW][D] = reinterpret_cast<float(*)[MW][D]>(dsm);
    if (g < G) {
        if (q4 == 0) {
            sm_m[g][warp] = m_run;
            sm_l[g][warp] = l_run;
        }
#pragma unroll
        for (int n = 0; n < NT8; n++) {
            sm_acc[g][warp][8 * n + 2 * q4] = o[n][0];
            sm_acc[g][warp][8 * n + 2 * q4 + 1] = o[n][1];
        }
    }
    __syncthreads();
    for (int x = tid; x < G * D; x += MW * 32) {
        const int gi = x / D, d = x - gi * D, h = h0 + gi;
        float M = -CUDART_INF_F;
#pragma unroll
        for (int w = 0; w < MW; w++) M = fmaxf(M, sm_m[gi][w]);
        const float Muse = M == -CUDART_INF_F ? 0.f : M;
        float lsum = 0.f, ov = 0.f;
#pragma unroll
        for (int w = 0; w < MW; w++) {
            float wt = exp2f(sm_m[gi][w] - Muse);
            lsum += sm_l[gi][w] * wt;
            ov += sm_acc[gi][w][d] * wt;
        }
        ov = any_bad ? CUDART_NAN_F : lsum > 0.f ? ov / lsum : 0.f;
        if (p.splits == 1) {
            T* go = reinterpret_cast<T*>(p.o) + (int64_t)b * p.o_batch + (int64_t)h * p.o_head;
            go[d] = from_f<T>(ov);
        } else {
            p.part_o[(((int64_t)b * p.hq + h) * p.splits + split) * D + d] = ov;
            if (d == 0)
                p.part_lse[((int64_t)b * p.hq + h) * p.splits + split] =
                    any_bad ? CUDART_NAN_F : lsum > 0.f ? M + log2f(lsum) : -CUDART_INF_F;
        }
    }
}

template <typename T, int D, int G> cudaError_t prepare_mma() {
    static cudaError_t done =
        cudaFuncSetAttribute(decode_mma_kernel<T, D, G>, cudaFuncAttributeMaxDynamicSharedMemorySize, mma_smem_bytes<D>());
    return done;
}

/* Merges the splits of one (batch, head): weights 2^(lse_s - max) computed once into
 * shared memory, then every thread sums its output element over the splits. */
constexpr int MAX_SPLITS = 1024;
template <typename T, int D>
__global__ void combine_kernel(const pt_cu_decode_params p) {
    __shared__ float w[MAX_SPLITS];
    __shared__ float red[32];
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory"); /* the decode grid's results are visible */
#endif
    const int h = blockIdx.x, b = blockIdx.y, tid = threadIdx.x, nt = blockDim.x;
    const float* lse = p.part_lse + ((int64_t)b * p.hq + h) * p.splits;
    float M = -CUDART_INF_F;
    for (int s = tid; s < p.splits; s += nt) M = fmaxf(M, lse[s]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
    if ((tid & 31) == 0) red[tid >> 5] = M;
    __syncthreads();
    M = -CUDART_INF_F;
    for (int i = 0; i < nt / 32; i++) M = fmaxf(M, red[i]);
    const float Muse = M == -CUDART_INF_F ? 0.f : M;
    __syncthreads();
    float sum = 0.f;
    for (int s = tid; s < p.splits; s += nt) {
        float x = exp2f(lse[s] - Muse);
        w[s] = x;
        sum += x;
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if ((tid & 31) == 0) red[tid >> 5] = sum;
    __syncthreads();
    sum = 0.f;
    for (int i = 0; i < nt / 32; i++) sum += red[i];
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    const float* po = p.part_o + ((int64_t)b * p.hq + h) * p.splits * D;
    T* go = reinterpret_cast<T*>(p.o) + (int64_t)b * p.o_batch + (int64_t)h * p.o_head;
    /* 16 partial rows in flight per thread (they sit in L2: latency, not bandwidth, bounds this) */
    for (int d = tid; d < D; d += nt) {
        float o0 = 0.f, o1 = 0.f;
        int s = 0;
        for (; s + 16 <= p.splits; s += 16) {
            float x[16];
#pragma unroll
            for (int i = 0; i < 16; i++) x[i] = po[(int64_t)(s + i) * D + d];
#pragma unroll
            for (int i = 0; i < 16; i += 2) {
                o0 = fmaf(w[s + i], x[i], o0);
                o1 = fmaf(w[s + i + 1], x[i + 1], o1);
            }
        }
        for (; s < p.splits; s++) o0 = fmaf(w[s], po[(int64_t)s * D + d], o0);
        go[d] = from_f<T>((o0 + o1) * inv);
    }
}

/* kernels above 48 KiB of shared memory (dynamic + the static sm_m/sm_l) need the opt-in,
 * once per instantiation (before the occupancy query and the first launch) */
template <typename T, int D, int G, int ST> cudaError_t prepare() {
    constexpr int bytes = smem_bytes<D, G, ST>();
    if (bytes + 2 * G * shape<D>::NG * 4 <= 48 * 1024) return cudaSuccess;
    static cudaError_t done = cudaFuncSetAttribute(decode_kernel<T, D, G, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    return done;
}

template <typename T, int D, int G, int ST> cudaError_t launch_g(const pt_cu_decode_params& p, dim3 grid, cudaStream_t stream) {
    cudaError_t e = prepare<T, D, G, ST>();
    if (e != cudaSuccess) return e;
    decode_kernel<T, D, G, ST><<<grid, NT, smem_bytes<D, G, ST>(), stream>>>(p);
    return cudaGetLastError();
}
template <typename T, int D, int G> cudaError_t launch_v(const pt_cu_decode_params& p, dim3 grid, cudaStream_t stream) {
    if constexpr ((D == 64 || D == 128) && G >= 2) {
        if (p.variant == 4) {
            cudaError_t e = prepare_mma<T, D, G>();
            if (e != cudaSuccess) return e;
            decode_mma_kernel<T, D, G><<<grid, MW * 32, mma_smem_bytes<D>(), stream>>>(p);
            return cudaGetLastError();
        }
    }
    switch (p.variant) {
    case 2: return launch_g<T, D, G, 3>(p, grid, stream);
    case 3: return launch_g<T, D, G, 4>(p, grid, stream);
    default: return launch_g<T, D, G, 0>(p, grid, stream);
    }
}

template <typename T, int D>
cudaError_t launch(const pt_cu_decode_params& p, cudaStream_t stream) {
    /* heads per block: the largest of 8, 4, 2, 1 dividing the group size */
    const int G = p.h_ratio % 8 == 0 ? 8 : p.h_ratio % 4 == 0 ? 4 : p.h_ratio % 2 == 0 ? 2 : 1;
    dim3 grid(p.splits, p.hkv * (p.h_ratio / G), p.batch);
    cudaError_t e;
    switch (G) {
    case 8: e = launch_v<T, D, 8>(p, grid, stream); break;
    case 4: e = launch_v<T, D, 4>(p, grid, stream); break;
    case 2: e = launch_v<T, D, 2>(p, grid, stream); break;
    default: e = launch_v<T, D, 1>(p, grid, stream); break;
    }
    if (e != cudaSuccess || p.splits == 1) return e;
    dim3 g2(p.hq, p.batch);
    const unsigned nt = D < 128 ? 64 : 128;
    if (p.pdl) { /* programmatic dependent launch (sm_90): see griddepcontrol in both kernels */
        cudaLaunchConfig_t cfg;
        memset(&cfg, 0, sizeof cfg);
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.gridDim = g2;
        cfg.blockDim = dim3(nt);
        cfg.dynamicSmemBytes = 0;
        cfg.stream = stream;
        cfg.attrs = attr;
        cfg.numAttrs = 1;
        return cudaLaunchKernelEx(&cfg, combine_kernel<T, D>, p);
    }
    combine_kernel<T, D><<<g2, nt, 0, stream>>>(p);
    return cudaGetLastError();
}

}  // namespace ptfd

/* Blocks of the decode kernel one SM holds at once (registers and shared memory), for
 * sizing the grid to exactly one wave. */
template <typename T, int D, int G, int ST> static int resident_g() {
    int n = 0;
    cudaError_t e = ptfd::prepare<T, D, G, ST>();
    if (e == cudaSuccess)
        e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, ptfd::decode_kernel<T, D, G, ST>, ptfd::NT, ptfd::smem_bytes<D, G, ST>());
    if (e != cudaSuccess) {
        cudaGetLastError();
        return 4;
    }
    return n > 0 ? n : 1;
}
template <typename T, int D, int G> static int resident_v(int variant) {
    if constexpr ((D == 64 || D == 128) && G >= 2) {
        if (variant == 4) {
            int n = 0;
            cudaError_t e = ptfd::prepare_mma<T, D, G>();
            if (e == cudaSuccess)
                e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, ptfd::decode_mma_kernel<T, D, G>, ptfd::MW * 32,
                                                                  ptfd::mma_smem_bytes<D>());
            if (e != cudaSuccess) {
                cudaGetLastError();
                return 2;
            }
            return n > 0 ? n : 1;
        }
    }
    return variant == 2 ? resident_g<T, D, G, 3>() : variant == 3 ? resident_g<T, D, G, 4>() : resident_g<T, D, G, 0>();
}
template <typename T, int D>
static int resident(int G, int variant) {
    switch (G) {
    case 8: return resident_v<T, D, 8>(variant);
    case 4: return resident_v<T, D, 4>(variant);
    case 2: return resident_v<T, D, 2>(variant);
    default: return resident_v<T, D, 1>(variant);
    }
}
int pt_flash_decode_blocks_per_sm(int head_dim, int is_bf16, int h_ratio, int variant) {
    int G = h_ratio % 8 == 0 ? 8 : h_ratio % 4 == 0 ? 4 : h_ratio % 2 == 0 ? 2 : 1;
#define PT_RES(D) \
    case D: return is_bf16 ? resident<__nv_bfloat16, D>(G, variant) : resident<__half, D>(G, variant);
    switch (head_dim) {
        PT_RES(64)
        PT_RES(80)
        PT_RES(96)
        PT_RES(128)
        PT_RES(256)
    default: return 4;
    }
#undef PT_RES
}

/* whether variant 4 (tensor cores) exists for a head dim and group size */
int pt_flash_decode_has_mma(int head_dim, int h_ratio) { return (head_dim == 64 || head_dim == 128) && h_ratio % 2 == 0; }

/* heads served by one block for a group size (decode_kernel's G) */
int pt_flash_decode_heads_per_block(int h_ratio) { return h_ratio % 8 == 0 ? 8 : h_ratio % 4 == 0 ? 4 : h_ratio % 2 == 0 ? 2 : 1; }

int pt_flash_decode_key_step(int head_dim) {
    switch (head_dim) {
    case 64: return ptfd::shape<64>::NG * ptfd::U;
    case 80: return ptfd::shape<80>::NG * ptfd::U;
    case 96: return ptfd::shape<96>::NG * ptfd::U;
    case 128: return ptfd::shape<128>::NG * ptfd::U;
    default: return ptfd::shape<256>::NG * ptfd::U;
    }
}

cudaError_t pt_flash_decode_launch(const pt_cu_decode_params& p, int head_dim, int is_bf16, cudaStream_t stream,
                                   int* supported) {
    *supported = 1;
#define PT_DEC(D)                                                                              \
    case D:                                                                                    \
        return is_bf16 ? ptfd::launch<__nv_bfloat16, D>(p, stream) : ptfd::launch<__half, D>(p, stream);
    switch (head_dim) {
        PT_DEC(64)
        PT_DEC(80)
        PT_DEC(96)
        PT_DEC(128)
        PT_DEC(256)
    default:
        *supported = 0;
        return cudaSuccess;
    }
#undef PT_DEC
}
