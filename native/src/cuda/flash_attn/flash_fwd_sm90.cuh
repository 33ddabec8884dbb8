/*
 * FlashAttention forward for Hopper (sm_90a): wgmma tensor-core instructions, the
 * FlashAttention-3 data path without its warp specialization (yet).
 *
 * A CTA has NWG warpgroups (128 threads each); warpgroup w owns query rows
 * m0 + 64w .. m0 + 64w + 63 (wgmma's M = 64). Q, K and V tiles sit in shared memory in the
 * canonical 128-byte-swizzled layout that wgmma reads through matrix descriptors: a tile of
 * R rows x D columns is stored as D/64 column blocks of R x 64 elements (128 bytes a row),
 * 16-byte chunk c of row r at chunk position c ^ (r % 8). cp.async writes it (every thread
 * takes part), then fence.proxy.async makes it visible to the tensor cores.
 *   S = Q K^T : wgmma SS, A = Q (K-major), B = K tile (K-major), M=64, N=BN, K=D
 *   O += P V  : wgmma RS, A = P from registers (converted from S's accumulator layout),
 *               B = V tile read MN-major (transposed descriptor), N = D, K = BN
 * Loads run one block ahead (K 2 stages, V 3); the tensor cores overlap the softmax (see
 * the pipeline comment in the kernel).
 */
#pragma once

#include <string.h>

#include <type_traits>

#include <cuda.h> /* CUtensorMap (the type only; the driver is reached at run time) */

#include "flash_fwd_kernel.cuh"
#include "wgmma.cuh"

namespace ptfa3 {

using ptfa::cp_async16;
using ptfa::cp_async_commit;
using ptfa::cp_async_wait;
using ptfa::smem_u32;

/* byte offset of 16-byte chunk `c` (0 .. D/8-1) of row `r` in a swizzled R x D tile */
template <int R>
__device__ __forceinline__ uint32_t swz(int r, int c) {
    return (uint32_t)((c >> 3) * (R * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

/* Per-thread addressing of tile loads, computed once: thread `tid` always copies chunk
 * c = tid % C of rows r0 + k * (NT / C) (NT % C == 0), so the swizzled shared-memory offsets
 * of its chunks are fixed (r % 8 does not change when NT / C is a multiple of 8). */
template <int D, int R, int NT>
struct tile_loader {
    static constexpr int C = D / 8, STEP = NT / C, ITERS = R / STEP;
    static_assert(NT % C == 0 && STEP % 8 == 0 && R % STEP == 0, "loader shape");
    int r0, c;
    uint32_t soff;
    __device__ __forceinline__ explicit tile_loader(int tid) {
        r0 = tid / C;
        c = tid - r0 * C;
        soff = swz<R>(r0, c);
    }
    template <typename T>
    __device__ __forceinline__ void load(uint32_t sm, const T* g, int64_t ld, int row0, int limit) const {
        const T* src = g + (int64_t)(row0 + r0) * ld + c * 8;
#pragma unroll
        for (int k = 0; k < ITERS; k++) {
            bool ok = row0 + r0 + k * STEP < limit;
            cp_async16(sm + soff + k * STEP * 128, ok ? src + (int64_t)k * STEP * ld : g, ok);
        }
    }
};

using ptfa::ex2;

/* Keeps the compiler from moving reads/writes of wgmma accumulators across a wait. */
template <int N>
__device__ __forceinline__ void fence_regs(float* r) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void fence_regs(uint32_t* r) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+r"(r[i])::"memory");
}

/* ---- mbarriers and the tensor-memory-access (TMA) engine (warp-specialized variant) ---- */
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    asm volatile(
        "{\n.reg .pred done;\nWAIT_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra WAIT_%=;\n}\n" ::"r"(bar), "r"(parity) : "memory");
}
/* 4-D tile (d, row, head, batch) of a tensor map into shared memory, completing on `bar` */
__device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2, int c3, uint32_t bar) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n"
        ::"r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar) : "memory");
}
__device__ __forceinline__ void named_bar_sync(int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void named_bar_arrive(int id, int n) { asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }

/* wgmma matrix descriptor: start address, leading / stride byte offsets, 128B swizzle */
__device__ __forceinline__ uint64_t desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)((lbo & 0x3FFFF) >> 4) << 16) |
           ((uint64_t)((sbo & 0x3FFFF) >> 4) << 32) | (1ull << 62);
}

template <typename T> struct wg;
template <> struct wg<__nv_bfloat16> {
    template <int N> static __device__ __forceinline__ void ss(float* d, uint64_t a, uint64_t b, int sc) {
        if constexpr (N == 64) ptwg::ss_m64n64k16_bf16(d, a, b, sc);
        else if constexpr (N == 128) ptwg::ss_m64n128k16_bf16(d, a, b, sc);
        else ptwg::ss_m64n256k16_bf16(d, a, b, sc);
    }
    template <int N> static __device__ __forceinline__ void rs(float* d, const uint32_t* a, uint64_t b, int sc) {
        if constexpr (N == 64) ptwg::rs_m64n64k16_bf16_tb(d, a, b, sc);
        else if constexpr (N == 128) ptwg::rs_m64n128k16_bf16_tb(d, a, b, sc);
        else ptwg::rs_m64n256k16_bf16_tb(d, a, b, sc);
    }
};
template <> struct wg<__half> {
    template <int N> static __device__ __forceinline__ void ss(float* d, uint64_t a, uint64_t b, int sc) {
        if constexpr (N == 64) ptwg::ss_m64n64k16_f16(d, a, b, sc);
        else if constexpr (N == 128) ptwg::ss_m64n128k16_f16(d, a, b, sc);
        else ptwg::ss_m64n256k16_f16(d, a, b, sc);
    }
    template <int N> static __device__ __forceinline__ void rs(float* d, const uint32_t* a, uint64_t b, int sc) {
        if constexpr (N == 64) ptwg::rs_m64n64k16_f16_tb(d, a, b, sc);
        else if constexpr (N == 128) ptwg::rs_m64n128k16_f16_tb(d, a, b, sc);
        else ptwg::rs_m64n256k16_f16_tb(d, a, b, sc);
    }
};

/* WS: TMA + mbarriers. Thread 0 issues TMA loads of Q/K/V tiles (the engine writes the
 * swizzled layout itself, one instruction per 64-column block) and the warpgroups meet only
 * at mbarriers: full[stage] (data landed) and empty[stage] (every warp is done with it).
 * Without CTA-wide barriers in the loop the two warpgroups can drift apart, so that one's
 * softmax runs under the other's GEMMs. (A separate producer warp would cap the consumers
 * at 168 registers: 9 warps put 3 on one scheduler; setmaxnreg would be the way around.)
 * Not WS: every thread copies with cp.async, two CTA barriers per block. */
template <typename T, int D, int BN, int NWG, bool CAUSAL, bool WS>
__global__ void __launch_bounds__(NWG * 128, 1)
    flash_fwd_sm90_kernel(const pt_cu_fwd_params p, const __grid_constant__ CUtensorMap tmq,
                          const __grid_constant__ CUtensorMap tmk, const __grid_constant__ CUtensorMap tmv) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int BM = 64 * NWG;
    constexpr int NT = NWG * 128;
    constexpr int NS = BN / 8;  /* n8 blocks of S */
    constexpr int NO = D / 8;   /* n8 blocks of O */
    constexpr uint32_t Q_BYTES = BM * D * 2, KV_BYTES = BN * D * 2;

    extern __shared__ __align__(1024) unsigned char smem_raw[];
    /* 1024-byte alignment of every tile: the swizzle pattern repeats every 8 rows of 128 B */
    const uint32_t base = (smem_u32(smem_raw) + 1023) & ~1023u;
    const uint32_t sQ = base, sK = sQ + Q_BYTES, sV = sK + 2 * KV_BYTES; /* K: 2 stages, V: 3 */
    /* WS mbarriers: full_q, full_k[2], full_v[3], empty_k[2], empty_v[3] */
    const uint32_t bars = sV + 3 * KV_BYTES;
    const uint32_t full_q = bars, full_k = bars + 8, full_v = bars + 24, empty_k = bars + 48, empty_v = bars + 64;

    const int tid = threadIdx.x, wgi = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    const int m_block = CAUSAL ? (int)gridDim.x - 1 - (int)blockIdx.x : (int)blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z;
    const int hk = h / p.h_ratio;

    int q_start = 0, k_start = 0, sq = p.sq, sk = p.sk;
    if (p.cu_q) {
        q_start = p.cu_q[b];
        sq = p.cu_q[b + 1] - q_start;
        k_start = p.cu_k[b];
        sk = p.cu_k[b + 1] - k_start;
    }
    const int m0 = m_block * BM;
    if (m0 >= sq) return;

    const T* gq = reinterpret_cast<const T*>(p.q) + (p.cu_q ? (int64_t)q_start * p.q_row : (int64_t)b * p.q_batch) + (int64_t)h * p.q_head;
    const T* gk = reinterpret_cast<const T*>(p.k) + (p.cu_q ? (int64_t)k_start * p.k_row : (int64_t)b * p.k_batch) + (int64_t)hk * p.k_head;
    const T* gv = reinterpret_cast<const T*>(p.v) + (p.cu_q ? (int64_t)k_start * p.v_row : (int64_t)b * p.v_batch) + (int64_t)hk * p.v_head;
    T* go = reinterpret_cast<T*>(p.o) + (p.cu_q ? (int64_t)q_start * p.o_row : (int64_t)b * p.o_batch) + (int64_t)h * p.o_head;

    const int diag = sk - sq;
    int n_blocks = (sk + BN - 1) / BN;
    if (CAUSAL) {
        int last_key = m0 + BM - 1 + diag;
        int nb = last_key < 0 ? 0 : (last_key / BN) + 1;
        n_blocks = nb < n_blocks ? nb : n_blocks;
    }

    float o[NO * 4];
#pragma unroll
    for (int i = 0; i < NO * 4; i++) o[i] = 0.f;
    float row_m[2] = {-CUDART_INF_F, -CUDART_INF_F}, row_l[2] = {0.f, 0.f};

    const tile_loader<D, BM, NT> ldq(tid);
    const tile_loader<D, BN, NT> ldkv(tid);
    constexpr int CONSUMER_WARPS = NWG * 4;
    const int qrow = p.cu_q ? q_start + m0 : m0, krow = p.cu_q ? k_start : 0, bb = p.cu_q ? 0 : b;
    auto produce_k = [&](int j) {
        const int ks = j & 1;
        if (j >= 2) mbar_wait(empty_k + 8 * ks, ((j >> 1) - 1) & 1);
        mbar_expect_tx(full_k + 8 * ks, KV_BYTES);
#pragma unroll
        for (int cb = 0; cb < D / 64; cb++)
            tma_load(sK + ks * KV_BYTES + cb * BN * 128, &tmk, cb * 64, krow + j * BN, hk, bb, full_k + 8 * ks);
    };
    auto produce_v = [&](int j) {
        const int vs = j % 3;
        if (j >= 3) mbar_wait(empty_v + 8 * vs, ((j / 3) - 1) & 1);
        mbar_expect_tx(full_v + 8 * vs, KV_BYTES);
#pragma unroll
        for (int cb = 0; cb < D / 64; cb++)
            tma_load(sV + vs * KV_BYTES + cb * BN * 128, &tmv, cb * 64, krow + j * BN, hk, bb, full_v + 8 * vs);
    };
    if constexpr (WS) {
        if (tid == 0) {
            mbar_init(full_q, 1);
            for (int i = 0; i < 2; i++) mbar_init(full_k + 8 * i, 1), mbar_init(empty_k + 8 * i, CONSUMER_WARPS);
            for (int i = 0; i < 3; i++) mbar_init(full_v + 8 * i, 1), mbar_init(empty_v + 8 * i, CONSUMER_WARPS);
            asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        }
        __syncthreads();
        if (tid == 0) {
            mbar_expect_tx(full_q, Q_BYTES);
#pragma unroll
            for (int cb = 0; cb < D / 64; cb++) tma_load(sQ + cb * BM * 128, &tmq, cb * 64, qrow, h, bb, full_q);
            for (int j = 0; j < 2 && j < n_blocks; j++) {
                produce_k(j);
                produce_v(j);
            }
        }
        __syncwarp();
    } else {
        ldq.load(sQ, gq, p.q_row, m0, sq);
        if (n_blocks > 0) {
            ldkv.load(sK, gk, p.k_row, 0, sk);
            ldkv.load(sV, gv, p.v_row, 0, sk);
        }
        cp_async_commit(); /* group 0: Q and block 0 */
        if (n_blocks > 1) {
            ldkv.load(sK + KV_BYTES, gk, p.k_row, BN, sk);
            ldkv.load(sV + KV_BYTES, gv, p.v_row, BN, sk);
        }
        cp_async_commit(); /* group 1: block 1 (group j holds block j from here on) */
    }
    /* consumer warps: one arrival per warp on an empty barrier once its reads are retired */
    auto release = [&](uint32_t bar) {
        __syncwarp();
        if (lane == 0) mbar_arrive(bar);
    };

    /* this warpgroup's Q rows: 64 rows from row 64*wgi of each column block */
    const uint32_t sQw = sQ + wgi * 64 * 128;
    const int row_lo = m0 + wgi * 64 + warp * 16 + g; /* rows row_lo and row_lo + 8 */

    auto issue_s = [&](float* s, uint32_t kb) {
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const uint32_t qa = sQw + (kk >> 2) * (BM * 128) + (kk & 3) * 32;
            const uint32_t ka = kb + (kk >> 2) * (BN * 128) + (kk & 3) * 32;
            wg<T>::template ss<BN>(s, desc(qa, 16, 1024), desc(ka, 16, 1024), kk > 0);
        }
    };
    auto issue_pv = [&](const uint32_t (*pa)[4], uint32_t vb) {
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            /* keys 16kk .. 16kk+15: two 8-row groups (SBO = 1024 B); D/64 column blocks (LBO) */
            const uint32_t va = vb + kk * 16 * 128;
            wg<T>::template rs<D>(o, pa[kk], desc(va, BN * 128, 1024), 1);
        }
    };
    /* mask + online softmax of block j's scores; P into pa; returns the rescale factors */
    auto softmax = [&](float* s, int j, float* corr) {
        const int n0 = j * BN;
        const bool need_mask = n0 + BN > sk || (CAUSAL && n0 + BN - 1 > m0 + diag);
        if (need_mask) {
#pragma unroll
            for (int n = 0; n < NS; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int key = n0 + n * 8 + 2 * t + (e & 1);
                    int row = row_lo + (e >> 1) * 8;
                    bool off = key >= sk || (CAUSAL && key > row + diag);
                    if (off) s[n * 4 + e] = -CUDART_INF_F;
                }
        }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float mx = -CUDART_INF_F;
#pragma unroll
            for (int n = 0; n < NS; n++) mx = fmaxf(mx, fmaxf(s[n * 4 + 2 * r], s[n * 4 + 2 * r + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            float m_new = fmaxf(row_m[r], mx * p.scale_log2);
            float m_use = m_new == -CUDART_INF_F ? 0.f : m_new;
            corr[r] = ex2(row_m[r] - m_use);
            row_m[r] = m_new;
            float sum = 0.f;
#pragma unroll
            for (int n = 0; n < NS; n++) {
                float p0 = ex2(fmaf(s[n * 4 + 2 * r], p.scale_log2, -m_use));
                float p1 = ex2(fmaf(s[n * 4 + 2 * r + 1], p.scale_log2, -m_use));
                s[n * 4 + 2 * r] = p0;
                s[n * 4 + 2 * r + 1] = p1;
                sum += p0 + p1;
            }
            row_l[r] = row_l[r] * corr[r] + sum;
        }
    };
    /* P (bf16/f16) in the A-operand layout, straight from the S accumulator layout */
    auto pack_p = [&](const float* s, uint32_t (*pa)[4]) {
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            pa[kk][0] = ptfa::dt<T>::pack(s[(2 * kk) * 4 + 0], s[(2 * kk) * 4 + 1]);
            pa[kk][1] = ptfa::dt<T>::pack(s[(2 * kk) * 4 + 2], s[(2 * kk) * 4 + 3]);
            pa[kk][2] = ptfa::dt<T>::pack(s[(2 * kk + 1) * 4 + 0], s[(2 * kk + 1) * 4 + 1]);
            pa[kk][3] = ptfa::dt<T>::pack(s[(2 * kk + 1) * 4 + 2], s[(2 * kk + 1) * 4 + 3]);
        }
    };
    auto rescale_o = [&](const float* corr) {
#pragma unroll
        for (int d = 0; d < NO; d++) {
            o[d * 4 + 0] *= corr[0];
            o[d * 4 + 1] *= corr[0];
            o[d * 4 + 2] *= corr[1];
            o[d * 4 + 3] *= corr[1];
        }
    };

    /*
     * Software pipeline (FlashAttention-3's intra-warpgroup overlap): in step j the tensor
     * cores run S_j = Q K_j^T and O += P_{j-1} V_{j-1} while this warpgroup computes the
     * softmax of S_j. K has 2 stages, V 3 (V_{j-1} is still read while V_{j+1} loads).
     */
    float s[NS * 4];
    uint32_t pa[BN / 16][4];
    float corr[2];
    if constexpr (WS) mbar_wait(full_q, 0); /* also when n_blocks == 0: no copy may outlive the CTA */
    if (n_blocks > 0) {
        if constexpr (WS) {
            mbar_wait(full_k, 0);
        } else {
            cp_async_wait<1>();
            ptwg::fence_proxy_async();
            __syncthreads();
        }
        ptwg::fence();
        issue_s(s, sK);
        ptwg::commit();
        ptwg::wait<0>();
        fence_regs<NS * 4>(s);
        if constexpr (WS) release(empty_k);
        softmax(s, 0, corr);
        pack_p(s, pa);
    }
    if (WS && NWG == 2 && p.pingpong && wgi == 1 && n_blocks > 1) named_bar_arrive(1, NT); /* warpgroup 0 goes first */
    for (int j = 1; j < n_blocks; j++) {
        if constexpr (WS) {
            if (tid == 0 && j + 1 < n_blocks) { /* K_{j-1} and V_{j-2} were released in step j-1 */
                produce_k(j + 1);
                produce_v(j + 1);
            }
            __syncwarp();
            mbar_wait(full_k + 8 * (j & 1), (j >> 1) & 1);
            mbar_wait(full_v + 8 * ((j - 1) % 3), ((j - 1) / 3) & 1);
        } else {
            __syncthreads(); /* K_{j-1} and V_{j-2} are no longer read: their buffers may refill */
            if (j + 1 < n_blocks) {
                ldkv.load(sK + ((j + 1) & 1) * KV_BYTES, gk, p.k_row, (j + 1) * BN, sk);
                ldkv.load(sV + ((j + 1) % 3) * KV_BYTES, gv, p.v_row, (j + 1) * BN, sk);
            }
            cp_async_commit();  /* group j + 1 (possibly empty) */
            cp_async_wait<1>(); /* group j: K_j, V_j have landed (this thread's part) */
            ptwg::fence_proxy_async();
            __syncthreads();
        }
        fence_regs<NS * 4>(s);
        fence_regs<NO * 4>(o);
        /* ping-pong (FA3): the warpgroups take turns issuing their GEMMs, so one's softmax
         * runs while the other's GEMMs occupy the tensor cores (named barriers 1 + wg) */
        const bool pp = WS && NWG == 2 && p.pingpong;
        if (pp) named_bar_sync(1 + wgi, NT);
        ptwg::fence();
        issue_s(s, sK + (j & 1) * KV_BYTES);
        ptwg::commit();
        issue_pv(pa, sV + ((j - 1) % 3) * KV_BYTES);
        ptwg::commit();
        if (pp && !(wgi == 1 && j == n_blocks - 1)) named_bar_arrive(1 + (wgi ^ 1), NT); /* the other's turn */
        ptwg::wait<1>(); /* S_j done; P_{j-1} V_{j-1} may still run: touch neither O nor P */
        fence_regs<NS * 4>(s);
        if constexpr (WS) release(empty_k + 8 * (j & 1));
        softmax(s, j, corr);
        ptwg::wait<0>();
        fence_regs<NO * 4>(o);
        if constexpr (WS) release(empty_v + 8 * ((j - 1) % 3));
        fence_regs<BN / 4>(&pa[0][0]);
        rescale_o(corr);
        pack_p(s, pa);
    }
    if (n_blocks > 0) {
        if constexpr (WS) mbar_wait(full_v + 8 * ((n_blocks - 1) % 3), ((n_blocks - 1) / 3) & 1);
        ptwg::fence();
        issue_pv(pa, sV + ((n_blocks - 1) % 3) * KV_BYTES);
        ptwg::commit();
        ptwg::wait<0>();
        fence_regs<NO * 4>(o);
    }

    /* ---- epilogue: normalize, stage rows in shared memory (Q's space), 16-byte stores ---- */
    if constexpr (WS) {
        __syncthreads(); /* the other warpgroup may still read its Q rows next to ours */
    } else {
        cp_async_wait<0>();
        __syncthreads();
    }
    T* stage = reinterpret_cast<T*>(smem_raw + (sQ - smem_u32(smem_raw)));
    constexpr int SP = D + 8; /* padded staging rows */
    static_assert(64 * NWG * SP * 2 <= Q_BYTES + 5 * KV_BYTES, "staging fits");
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float l = row_l[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        float inv = l > 0.f ? 1.f / l : 0.f;
        int lrow = wgi * 64 + warp * 16 + g + r * 8;
        T* srow = stage + lrow * SP;
#pragma unroll
        for (int d = 0; d < NO; d++)
            *reinterpret_cast<uint32_t*>(srow + d * 8 + 2 * t) = ptfa::dt<T>::pack(o[d * 4 + 2 * r] * inv, o[d * 4 + 2 * r + 1] * inv);
        if (p.lse && t == 0 && m0 + lrow < sq) {
            float lse = l > 0.f ? row_m[r] * 0.69314718055994531f + logf(l) : -CUDART_INF_F;
            int64_t idx = (int64_t)h * p.lse_head + (p.cu_q ? (int64_t)(q_start + m0 + lrow) : (int64_t)b * p.lse_batch + m0 + lrow);
            p.lse[idx] = lse;
        }
    }
    __syncwarp();
    constexpr int C = D / 8;
#pragma unroll
    for (int i = lane; i < 16 * C; i += 32) {
        int r = i / C, c = i - r * C;
        int lrow = wgi * 64 + warp * 16 + r;
        if (m0 + lrow < sq)
            *reinterpret_cast<uint4*>(go + (int64_t)(m0 + lrow) * p.o_row + c * 8) = *reinterpret_cast<const uint4*>(stage + lrow * SP + c * 8);
    }
#else
    __trap(); /* built without sm_90a code: the host never launches this */
#endif
}

/* Tensor maps for the TMA engine: 4-D (d, row, head, batch), boxes of 64 x rows (128 B
 * wide, the 128-byte swizzle). cuTensorMapEncodeTiled is found through the runtime's driver
 * entry point, so nothing links against libcuda. */
typedef CUresult (*encode_fn)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                              const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                              CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
inline encode_fn get_encode() {
    static encode_fn fn = nullptr;
    static bool tried = false;
    if (!tried) {
        tried = true;
        cudaDriverEntryPointQueryResult q;
        void* f = nullptr;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) == cudaSuccess &&
            q == cudaDriverEntryPointSuccess)
            fn = (encode_fn)f;
        cudaGetLastError();
    }
    return fn;
}

template <typename T>
inline bool make_map(CUtensorMap* m, const void* base, int D, int64_t rows, int64_t heads, int64_t batch, int64_t row_st,
                     int64_t head_st, int64_t batch_st, int box_rows) {
    encode_fn enc = get_encode();
    if (!enc) return false;
    if (rows < 1) rows = 1;
    /* a dim of size 1 has no stride of its own (0 in the params): pack it after the previous */
    int64_t s1 = row_st > 0 ? row_st : D, s2 = head_st > 0 ? head_st : s1 * rows, s3 = batch_st > 0 ? batch_st : s2 * heads;
    cuuint64_t dims[4] = {(cuuint64_t)D, (cuuint64_t)rows, (cuuint64_t)heads, (cuuint64_t)batch};
    cuuint64_t strides[3] = {(cuuint64_t)s1 * 2, (cuuint64_t)s2 * 2, (cuuint64_t)s3 * 2};
    cuuint32_t box[4] = {64, (cuuint32_t)box_rows, 1, 1}, es[4] = {1, 1, 1, 1};
    CUtensorMapDataType dt = sizeof(T) == 2 && std::is_same<T, __half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
    return enc(m, dt, 4, const_cast<void*>(base), dims, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <typename T, int D, int BN, int NWG, bool WS>
cudaError_t launch_fwd_sm90(const pt_cu_fwd_params& p, bool causal, cudaStream_t stream, int* supported) {
    constexpr size_t smem = (size_t)(64 * NWG + 5 * BN) * D * 2 + 1024 + 128; /* + alignment + mbarriers */
    dim3 grid((p.sq + 64 * NWG - 1) / (64 * NWG), p.hq, p.batch);
    CUtensorMap mq, mk, mv;
    memset(&mq, 0, sizeof mq);
    memset(&mk, 0, sizeof mk);
    memset(&mv, 0, sizeof mv);
    if (WS) {
        /* varlen: one "batch" of all packed rows; rows are addressed from cu_seqlens */
        const bool vl = p.cu_q != nullptr;
        int64_t tq = vl ? (int64_t)p.total_q : p.sq, tk = vl ? (int64_t)p.total_k : p.sk, nb = vl ? 1 : p.batch;
        bool ok = make_map<T>(&mq, p.q, D, tq, p.hq, nb, p.q_row, p.q_head, p.q_batch, 64 * NWG) &&
                  make_map<T>(&mk, p.k, D, tk, p.hkv, nb, p.k_row, p.k_head, p.k_batch, BN) &&
                  make_map<T>(&mv, p.v, D, tk, p.hkv, nb, p.v_row, p.v_head, p.v_batch, BN);
        if (!ok) {
            *supported = 0;
            return cudaSuccess;
        }
    }
    const int threads = NWG * 128;
    if (causal) {
        auto kern = flash_fwd_sm90_kernel<T, D, BN, NWG, true, WS>;
        cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
        kern<<<grid, threads, smem, stream>>>(p, mq, mk, mv);
    } else {
        auto kern = flash_fwd_sm90_kernel<T, D, BN, NWG, false, WS>;
        cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
        kern<<<grid, threads, smem, stream>>>(p, mq, mk, mv);
    }
    return cudaGetLastError();
}

}  // namespace ptfa3
