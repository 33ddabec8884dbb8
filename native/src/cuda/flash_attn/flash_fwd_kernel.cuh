/*
 * FlashAttention-2 forward on tensor cores (mma.sync m16n8k16, bf16/f16 in, f32 accumulate).
 *
 * A CTA owns BM query rows of one (batch, head); NWARPS warps each own MT = BM/(16 NWARPS)
 * m16 row tiles (MT = 2 lets every K/V fragment read from shared memory feed two MMAs).
 * K and V tiles of BN keys are double-buffered in shared memory through cp.async: the load
 * of block j+1 runs while block j is computed. Rows are padded by 16 bytes (DP = D + 8) so
 * that the 8 row addresses of an ldmatrix fall in distinct banks for every head dim.
 * S = Q K^T stays in registers; the online softmax (exp2, scale folded) rescales O; P is
 * converted in registers from the S accumulator layout to the A-operand layout of P V.
 * Causal: KV blocks right of the diagonal are skipped, only blocks crossing it are masked;
 * heavy row blocks are scheduled first.
 */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math_constants.h>
#include <stdint.h>

#include "flash.h"

namespace ptfa {

template <typename T> struct dt;
template <> struct dt<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t*>(&v);
    }
    static __device__ __forceinline__ void mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
};
template <> struct dt<__half> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t*>(&v);
    }
    static __device__ __forceinline__ void mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
};

/* 2^x on the special-function unit, denormal results flushed (arguments here are <= 0) */
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool pred) {
    int n = pred ? 16 : 0; /* 0: zero-fill, nothing read */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}

/* Copies `rows` rows of D elements (row stride `ld` elements in global memory) starting at
 * global row `row0` into shared memory rows of DP elements; rows >= `limit` are zero-filled. */
template <int D, int DP, int ROWS, int NT, typename T>
__device__ __forceinline__ void load_tile(T* sm, const T* g, int64_t ld, int row0, int limit, int tid) {
    constexpr int C = D / 8; /* 16-byte chunks per row */
#pragma unroll
    for (int i = tid; i < ROWS * C; i += NT) {
        int r = i / C, c = i - r * C;
        bool ok = row0 + r < limit;
        const T* src = ok ? g + (int64_t)(row0 + r) * ld + c * 8 : g;
        cp_async16(smem_u32(sm + r * DP + c * 8), src, ok);
    }
}

template <typename T, int D, int BM, int BN, int NWARPS, bool CAUSAL, int MINB>
__global__ void __launch_bounds__(NWARPS * 32, MINB) flash_fwd_kernel(const pt_cu_fwd_params p) {
    constexpr int NT = NWARPS * 32;
    constexpr int DP = D + 8;
    constexpr int MT = BM / (16 * NWARPS); /* m16 tiles per warp */
    constexpr int NTILE = BN / 8;          /* n8 tiles of S per m tile */
    constexpr int DTILE = D / 8;           /* n8 tiles of O per m tile */
    static_assert(MT >= 1 && MT * 16 * NWARPS == BM, "BM must be a multiple of 16 * NWARPS");
    static_assert(D % 16 == 0 && BN % 16 == 0, "tile shapes");

    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* sQ = reinterpret_cast<T*>(smem_raw);
    T* sK = sQ + BM * DP;       /* 2 stages */
    T* sV = sK + 2 * BN * DP;   /* 2 stages */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
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

    const int diag = sk - sq; /* causal: row i sees keys j <= i + diag */
    int n_blocks = (sk + BN - 1) / BN;
    if (CAUSAL) {
        int last_key = m0 + BM - 1 + diag; /* the last key any row of this block sees */
        int nb = last_key < 0 ? 0 : (last_key / BN) + 1;
        n_blocks = nb < n_blocks ? nb : n_blocks;
    }

    float o[MT][DTILE][4];
    float row_m[MT][2], row_l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int d = 0; d < DTILE; d++) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.f;
        row_m[mt][0] = row_m[mt][1] = -CUDART_INF_F;
        row_l[mt][0] = row_l[mt][1] = 0.f;
    }

    load_tile<D, DP, BM, NT>(sQ, gq, p.q_row, m0, sq, tid);
    cp_async_commit();
    if (n_blocks > 0) {
        load_tile<D, DP, BN, NT>(sK, gk, p.k_row, 0, sk, tid);
        load_tile<D, DP, BN, NT>(sV, gv, p.v_row, 0, sk, tid);
    }
    cp_async_commit();

    /* ldmatrix lane offsets (elements) */
    const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_col = (lane >> 4) * 8;      /* Q (A operand) */
    const int k_row = (lane & 7) + ((lane >> 4) << 3), k_col = ((lane >> 3) & 1) * 8;   /* K (B operand) */
    const int v_row = (lane & 7) + ((lane >> 3) & 1) * 8, v_col = (lane >> 4) * 8;     /* V (B, transposed) */
    const uint32_t sQ_warp = smem_u32(sQ + (warp * MT * 16 + a_row) * DP + a_col);

    for (int j = 0; j < n_blocks; j++) {
        const int buf = j & 1;
        if (j + 1 < n_blocks) {
            load_tile<D, DP, BN, NT>(sK + (buf ^ 1) * BN * DP, gk, p.k_row, (j + 1) * BN, sk, tid);
            load_tile<D, DP, BN, NT>(sV + (buf ^ 1) * BN * DP, gv, p.v_row, (j + 1) * BN, sk, tid);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();

        const T* kb = sK + buf * BN * DP;
        const T* vb = sV + buf * BN * DP;
        const uint32_t sK_lane = smem_u32(kb + k_row * DP + k_col);
        const uint32_t sV_lane = smem_u32(vb + v_row * DP + v_col);

        /* ---- S = Q K^T ---- */
        float s[MT][NTILE][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int n = 0; n < NTILE; n++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                ldsm_x4(sQ_warp + (uint32_t)((mt * 16 * DP + kk * 16) * sizeof(T)), qa[mt][0], qa[mt][1], qa[mt][2], qa[mt][3]);
#pragma unroll
            for (int n2 = 0; n2 < NTILE / 2; n2++) {
                uint32_t b0, b1, b2, b3;
                ldsm_x4(sK_lane + (uint32_t)((n2 * 16 * DP + kk * 16) * sizeof(T)), b0, b1, b2, b3);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    dt<T>::mma(s[mt][2 * n2], qa[mt], b0, b1);
                    dt<T>::mma(s[mt][2 * n2 + 1], qa[mt], b2, b3);
                }
            }
        }

        /* ---- mask: keys past the end, and (causal) right of the diagonal ---- */
        const int n0 = j * BN;
        const bool need_mask = n0 + BN > sk || (CAUSAL && n0 + BN - 1 > m0 + diag);
        if (need_mask) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int n = 0; n < NTILE; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int key = n0 + n * 8 + 2 * t + (e & 1);
                        int row = m0 + (warp * MT + mt) * 16 + g + (e >> 1) * 8;
                        bool off = key >= sk || (CAUSAL && key > row + diag);
                        if (off) s[mt][n][e] = -CUDART_INF_F;
                    }
        }

        /* ---- online softmax ---- */
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = -CUDART_INF_F;
#pragma unroll
                for (int n = 0; n < NTILE; n++) mx = fmaxf(mx, fmaxf(s[mt][n][2 * r], s[mt][n][2 * r + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                float m_new = fmaxf(row_m[mt][r], mx * p.scale_log2);
                float m_use = m_new == -CUDART_INF_F ? 0.f : m_new;
                float corr = ex2(row_m[mt][r] - m_use);
                row_m[mt][r] = m_new;
                float sum = 0.f;
#pragma unroll
                for (int n = 0; n < NTILE; n++) {
                    float p0 = ex2(fmaf(s[mt][n][2 * r], p.scale_log2, -m_use));
                    float p1 = ex2(fmaf(s[mt][n][2 * r + 1], p.scale_log2, -m_use));
                    s[mt][n][2 * r] = p0;
                    s[mt][n][2 * r + 1] = p1;
                    sum += p0 + p1;
                }
                row_l[mt][r] = row_l[mt][r] * corr + sum;
#pragma unroll
                for (int d = 0; d < DTILE; d++) {
                    o[mt][d][2 * r] *= corr;
                    o[mt][d][2 * r + 1] *= corr;
                }
            }

        /* ---- O += P V ---- */
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t pa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                pa[mt][0] = dt<T>::pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                pa[mt][1] = dt<T>::pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                pa[mt][2] = dt<T>::pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                pa[mt][3] = dt<T>::pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
#pragma unroll
            for (int d2 = 0; d2 < D / 16; d2++) {
                uint32_t b0, b1, b2, b3;
                ldsm_x4_t(sV_lane + (uint32_t)((kk * 16 * DP + d2 * 16) * sizeof(T)), b0, b1, b2, b3);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    dt<T>::mma(o[mt][2 * d2], pa[mt], b0, b1);
                    dt<T>::mma(o[mt][2 * d2 + 1], pa[mt], b2, b3);
                }
            }
        }
        __syncthreads(); /* every warp is done with this stage before it is refilled */
    }

    /* ---- epilogue: normalize, stage through shared memory, 16-byte stores ---- */
    cp_async_wait<0>();
    __syncthreads();
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float l = row_l[mt][r];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            float inv = l > 0.f ? 1.f / l : 0.f;
            int lrow = (warp * MT + mt) * 16 + g + r * 8;
            T* srow = sQ + lrow * DP;
#pragma unroll
            for (int d = 0; d < DTILE; d++)
                *reinterpret_cast<uint32_t*>(srow + d * 8 + 2 * t) = dt<T>::pack(o[mt][d][2 * r] * inv, o[mt][d][2 * r + 1] * inv);
            if (p.lse && t == 0 && m0 + lrow < sq) {
                float lse = l > 0.f ? row_m[mt][r] * 0.69314718055994531f + logf(l) : -CUDART_INF_F;
                int64_t idx = (int64_t)h * p.lse_head + (p.cu_q ? (int64_t)(q_start + m0 + lrow) : (int64_t)b * p.lse_batch + m0 + lrow);
                p.lse[idx] = lse;
            }
        }
    __syncwarp();
    constexpr int C = D / 8;
#pragma unroll
    for (int i = lane; i < MT * 16 * C; i += 32) {
        int r = i / C, c = i - r * C;
        int lrow = warp * MT * 16 + r;
        if (m0 + lrow < sq)
            *reinterpret_cast<uint4*>(go + (int64_t)(m0 + lrow) * p.o_row + c * 8) = *reinterpret_cast<const uint4*>(sQ + lrow * DP + c * 8);
    }
}

template <typename T, int D, int BM, int BN, int NWARPS, int MINB>
cudaError_t launch_fwd(const pt_cu_fwd_params& p, bool causal, cudaStream_t stream) {
    constexpr size_t smem = (size_t)(BM + 4 * BN) * (D + 8) * sizeof(T);
    dim3 grid((p.sq + BM - 1) / BM, p.hq, p.batch);
    if (causal) {
        auto kern = flash_fwd_kernel<T, D, BM, BN, NWARPS, true, MINB>;
        cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
        kern<<<grid, NWARPS * 32, smem, stream>>>(p);
    } else {
        auto kern = flash_fwd_kernel<T, D, BM, BN, NWARPS, false, MINB>;
        cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
        kern<<<grid, NWARPS * 32, smem, stream>>>(p);
    }
    return cudaGetLastError();
}

}  // namespace ptfa
