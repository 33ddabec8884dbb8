/* Quantized matmul on the GPU (issue 7, items 4 and 5):
 *  - int8: row quantization (absmax, optional LLM.int8 outlier columns), s8 x s8 GEMM on the
 *    int8 tensor cores through cuBLASLt (IMMA; a portable tiled kernel where cuBLASLt offers no
 *    algorithm, e.g. K not a multiple of 4), a dequantizing epilogue (row x column scales, the
 *    outlier product, bias, activation), and the whole LLM.int8 / W8A8 linear with
 *    pt_matmul_int8's semantics.
 *  - FP4 weight-only (W4A16/W4A32): a GEMV for M <= 4 that streams the packed codes once with
 *    16-byte loads and decodes them in registers through a per-lane shared-memory table, and for
 *    M > 4 (16-bit x) a tensor-core GEMM (mma.sync m16n8k16) that decodes each codes tile in
 *    shared memory: no dense copy of the weight. W4A4 emulated (LLM-FP4 on GPUs without FP4
 *    tensor cores): the activations are quantized to xq in x's dtype, then the same kernels.
 *    Same code/scale layout as the CPU (pt_fp4_*).
 * Notes and measurements: NOTES.md ("Quantized matmul"). */
#include "cublaslt.cuh"
#include "cuda_common.cuh"
#include "cuda_elem.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

namespace ptq {
/* cuBLASLt values for the int8 path (cudaDataType_t / cublasComputeType_t); checked against
 * cublasLt.h in cublaslt_check.cu. */
constexpr int R_8I = 3, R_32I = 10, COMPUTE_32I = 72;
}

namespace {

__device__ __forceinline__ float act_f(float x, int act) {
    return act == PT_ACT_GELU_ERF    ? 0.5f * x * (1.0f + erff(x * 0.70710678118654752f))
         : act == PT_ACT_SILU        ? x / (1.0f + expf(-x))
         : act == PT_ACT_GELU_TANH   ? 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)))
         : act == PT_ACT_RELU        ? fmaxf(x, 0.0f) : x;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ---------------------------------------------------------------- int8: quantization */

/* colmax[j] = max over rows of |x[m, j]| as ordered int bits (non-negative floats order as
 * ints; NaN is skipped as in the CPU kernel). Block (32 columns x 8 row groups). */
template <typename T>
__global__ void colmax_kernel(const T* x, int64_t ldx, int64_t m, int64_t k, int64_t rows_per_block, int* colmax) {
    int64_t j = (int64_t)blockIdx.x * 32 + threadIdx.x;
    if (j >= k) return;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_block, r1 = r0 + rows_per_block < m ? r0 + rows_per_block : m;
    float mx = 0.0f;
    for (int64_t r = r0 + threadIdx.y; r < r1; r += blockDim.y) {
        float v = fabsf(ldf(x + r * ldx + j));
        mx = v > mx ? v : mx; /* NaN never wins */
    }
    if (mx > 0.0f) atomicMax(colmax + j, __float_as_int(mx));
}

/* One block of 1024: flags[j] = colmax[j] >= thr, ocols = the flagged indices in order, *count. */
__global__ void outlier_list_kernel(const int* colmax, int64_t k, float thr, int32_t* flags, int32_t* ocols, int32_t* count) {
    __shared__ int warp_tot[32];
    __shared__ int base;
    if (threadIdx.x == 0) base = 0;
    __syncthreads();
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    for (int64_t j0 = 0; j0 < k; j0 += 1024) {
        int64_t j = j0 + threadIdx.x;
        int f = j < k && __int_as_float(colmax[j]) >= thr;
        if (j < k && flags) flags[j] = f;
        unsigned bal = __ballot_sync(0xffffffffu, f);
        if (lane == 0) warp_tot[wid] = __popc(bal);
        __syncthreads();
        int off = base;
        for (int w = 0; w < wid; w++) off += warp_tot[w];
        off += __popc(bal & ((1u << lane) - 1u));
        if (f) ocols[off] = (int32_t)j;
        __syncthreads();
        if (threadIdx.x == 0) {
            int t = 0;
            for (int w = 0; w < 32; w++) t += warp_tot[w];
            base += t;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) *count = base;
}

/* One block per row: s_m = absmax over kept columns / 127 (NaN when the row holds a non-finite
 * value anywhere), q = rne(x * (127 / absmax)) clamped to +-127, 0 in outlier columns. */
template <typename T>
__global__ void __launch_bounds__(256) quant_rows_kernel(const T* x, int64_t ldx, int64_t k, const int32_t* flags,
                                                         int8_t* q, int64_t ldq, float* scale) {
    const int64_t r = blockIdx.x;
    const T* xr = x + r * ldx;
    float amax = 0.0f;
    int bad = 0;
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
        float v = ldf(xr + j);
        bad |= !isfinite(v);
        float a = (flags && flags[j]) ? 0.0f : fabsf(v);
        amax = a > amax ? a : amax;
    }
    __shared__ float s_max[8];
    __shared__ int s_bad[8];
    for (int o = 16; o > 0; o >>= 1) {
        float t = __shfl_xor_sync(0xffffffffu, amax, o);
        amax = t > amax ? t : amax;
        bad |= __shfl_xor_sync(0xffffffffu, bad, o);
    }
    if ((threadIdx.x & 31) == 0) { s_max[threadIdx.x >> 5] = amax; s_bad[threadIdx.x >> 5] = bad; }
    __syncthreads();
    amax = 0.0f;
    bad = 0;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) { amax = s_max[w] > amax ? s_max[w] : amax; bad |= s_bad[w]; }
    const float inv = amax > 0.0f && !bad ? 127.0f / amax : 0.0f;
    if (threadIdx.x == 0) scale[r] = bad ? __int_as_float(0x7fc00000) : amax / 127.0f;
    int8_t* qr = q + r * ldq;
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
        float v = (flags && flags[j]) ? 0.0f : rintf(ldf(xr + j) * inv);
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        qr[j] = (int8_t)(int)v;
    }
}

/* xo[m, o] = x[m, ocols[o]] (f32); wo[n, o] = w_outlier[n, ocols[o]] or wq[n, ocols[o]] * ws[n]. */
template <typename T>
__global__ void gather_x_kernel(const T* x, int64_t ldx, int64_t m, const int32_t* ocols, int64_t no, float* xo) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < m * no; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / no, o = i % no;
        xo[i] = ldf(x + r * ldx + ocols[o]);
    }
}
template <typename T>
__global__ void gather_w_kernel(const T* w, int64_t ldw, const int8_t* wq, int64_t ldwq, const float* ws, int64_t n,
                                const int32_t* ocols, int64_t no, float* wo) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n * no; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / no, o = i % no;
        wo[i] = w ? ldf(w + r * ldw + ocols[o]) : (float)wq[r * ldwq + ocols[o]] * ws[r];
    }
}

/* ---------------------------------------------------------------- int8: GEMM */

/* c[m, n] = sum_k a[m, k] b[n, k], exact in s32. The fallback where cuBLASLt has no IMMA
 * algorithm (or is absent): 32x32 tiles, 8 rows of threads with 4 outputs each. */
__global__ void __launch_bounds__(256) s8_gemm_tiled(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int32_t* c,
                                                     int64_t ldc, int64_t m, int64_t n, int64_t k) {
    __shared__ int as[32][33], bs[32][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t row0 = (int64_t)blockIdx.y * 32, col0 = (int64_t)blockIdx.x * 32;
    int acc[4] = {0, 0, 0, 0};
    for (int64_t k0 = 0; k0 < k; k0 += 32) {
        for (int i = ty; i < 32; i += 8) {
            as[i][tx] = (row0 + i < m && k0 + tx < k) ? a[(row0 + i) * lda + k0 + tx] : 0;
            bs[i][tx] = (col0 + i < n && k0 + tx < k) ? b[(col0 + i) * ldb + k0 + tx] : 0;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < 32; kk++) {
            int bv = bs[tx][kk];
#pragma unroll
            for (int r = 0; r < 4; r++) acc[r] += as[ty + 8 * r][kk] * bv;
        }
        __syncthreads();
    }
    for (int r = 0; r < 4; r++) {
        int64_t row = row0 + ty + 8 * r, col = col0 + tx;
        if (row < m && col < n) c[row * ldc + col] = acc[r];
    }
}

/* y[m, n] = act(acc * (as[m] * bs[n]) + bias[n] + outl[m, n]); NULL scales are 1. */
template <typename YT>
__global__ void s8_epilogue_kernel(const int32_t* acc, int64_t ldacc, const float* as, const float* bs, const float* bias,
                                   const float* outl, int64_t ldo, YT* y, int64_t ldy, int64_t m, int64_t n, int act) {
    int64_t col = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= n) return;
    const float sn = bs ? bs[col] : 1.0f, bn = bias ? bias[col] : 0.0f;
    for (int64_t row = blockIdx.y; row < m; row += gridDim.y) {
        float v = (float)acc[row * ldacc + col] * ((as ? as[row] : 1.0f) * sn) + bn;
        if (outl) v += outl[row * ldo + col];
        v = act_f(v, act);
        if (as && isnan(as[row])) v = __int_as_float(0x7fc00000); /* a non-finite x row: NaN whatever the activation */
        stf(y + row * ldy + col, v);
    }
}

/* ---------------------------------------------------------------- FP4 */

struct fp4_lv {
    float v[16];
};

constexpr int GEMV_WARPS = 4; /* per block */
constexpr int GEMV_R = 4;     /* weight rows per warp: each x load feeds R rows */

__device__ __forceinline__ uint4 ldg_nc16(const void* p) {
    uint4 r;
    asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
}

/* 8 consecutive x values (16-byte aligned) as f32 */
template <typename XT> __device__ __forceinline__ void load_x8(const XT* p, float* o);
template <> __device__ __forceinline__ void load_x8<float>(const float* p, float* o) {
    float4 a = __ldg((const float4*)p), b = __ldg((const float4*)p + 1);
    o[0] = a.x; o[1] = a.y; o[2] = a.z; o[3] = a.w; o[4] = b.x; o[5] = b.y; o[6] = b.z; o[7] = b.w;
}
template <> __device__ __forceinline__ void load_x8<__nv_bfloat16>(const __nv_bfloat16* p, float* o) {
    uint4 u = __ldg((const uint4*)p);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        o[2 * i] = __uint_as_float(w[i] << 16);
        o[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}
template <> __device__ __forceinline__ void load_x8<__half>(const __half* p, float* o) {
    uint4 u = __ldg((const uint4*)p);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        __half2 h = *reinterpret_cast<const __half2*>(&w[i]);
        float2 f = __half22float2(h);
        o[2 * i] = f.x;
        o[2 * i + 1] = f.y;
    }
}

/* Decodes the 8 codes of one word (code j in bits 4j..4j+3) to f32 through the lane's column of
 * the table. PAIR: 256 entries of two bf16 (one per byte: both nibbles at once; formats whose
 * levels are exact in bf16); else 16 f32 entries (one per nibble; NF4). Entry e of lane l lives
 * at lut[e * 32 + l]: every lane reads its own bank, whatever the codes. */
template <bool PAIR>
__device__ __forceinline__ void decode8(uint32_t w, const uint32_t* lut_lane, float* o) {
    if (PAIR) {
#pragma unroll
        for (int b = 0; b < 4; b++) {
            uint32_t u = lut_lane[((w >> (8 * b)) & 0xffu) << 5];
            o[2 * b] = __uint_as_float(u << 16);
            o[2 * b + 1] = __uint_as_float(u & 0xffff0000u);
        }
    } else {
#pragma unroll
        for (int j = 0; j < 8; j++) o[j] = __uint_as_float(lut_lane[((w >> (4 * j)) & 0xfu) << 5]);
    }
}

/* y[m, n] = bias[n] + sum_k x[m, k] level[code(n, k)] scale(n, k) for M <= MM rows of x.
 * Each warp owns R consecutive weight rows; lane l reads 16-byte chunks l, l+32, ... of each
 * row (32 codes = one group for G = 32, inside one group for G = 64/128), so a warp streams
 * 512 contiguous bytes per row and step. Codes and x rows are 16-byte aligned (the host copies
 * them otherwise). The next chunk's codes are loaded before the current one is decoded. */
template <typename XT, typename ST, int MM, bool PAIR>
__global__ void __launch_bounds__(GEMV_WARPS * 32) fp4_gemv_kernel(const XT* __restrict__ x, int64_t ldx, int m,
                                                                  const uint8_t* __restrict__ codes, int64_t ldq,
                                                                  const ST* __restrict__ scales, int64_t lds, int group,
                                                                  const float* __restrict__ bias, void* y, int ydt,
                                                                  int64_t ldy, int64_t n, int64_t k, fp4_lv lv) {
    __shared__ uint32_t lut[PAIR ? 256 * 32 : 16 * 32];
    for (int i = threadIdx.x; i < (PAIR ? 256 * 32 : 16 * 32); i += blockDim.x) {
        const int e = i >> 5;
        if (PAIR) {
            uint32_t lo = __bfloat16_as_ushort(__float2bfloat16_rn(lv.v[e & 15]));
            uint32_t hi = __bfloat16_as_ushort(__float2bfloat16_rn(lv.v[e >> 4]));
            lut[i] = lo | (hi << 16);
        } else {
            lut[i] = __float_as_uint(lv.v[e]);
        }
    }
    __syncthreads();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t n0 = ((int64_t)blockIdx.x * GEMV_WARPS + warp) * GEMV_R;
    if (n0 >= n) return;
    const int nr = n - n0 < GEMV_R ? (int)(n - n0) : GEMV_R;
    const uint32_t* L = lut + lane;
    const uint8_t* crow[GEMV_R];
    const ST* srow[GEMV_R];
#pragma unroll
    for (int r = 0; r < GEMV_R; r++) {
        int64_t row = n0 + (r < nr ? r : 0);
        crow[r] = codes + row * ldq;
        srow[r] = scales + row * lds;
    }
    const XT* xrow[MM];
#pragma unroll
    for (int mm = 0; mm < MM; mm++) xrow[mm] = x + (int64_t)(mm < m ? mm : 0) * ldx;
    float acc[GEMV_R][MM];
#pragma unroll
    for (int r = 0; r < GEMV_R; r++)
#pragma unroll
        for (int mm = 0; mm < MM; mm++) acc[r][mm] = 0.0f;
    const int64_t nchunk = k >> 5;
    int64_t c = lane;
    uint4 q[GEMV_R];
    if (c < nchunk) {
#pragma unroll
        for (int r = 0; r < GEMV_R; r++) q[r] = ldg_nc16(crow[r] + c * 16);
    }
    while (c < nchunk) {
        const int64_t cn = c + 32;
        uint4 qn[GEMV_R];
        if (cn < nchunk) {
#pragma unroll
            for (int r = 0; r < GEMV_R; r++) qn[r] = ldg_nc16(crow[r] + cn * 16);
        }
        float s[GEMV_R];
        if (group) {
#pragma unroll
            for (int r = 0; r < GEMV_R; r++) s[r] = ldf(srow[r] + (c * 32) / group);
        }
        float part[GEMV_R][MM];
#pragma unroll
        for (int r = 0; r < GEMV_R; r++)
#pragma unroll
            for (int mm = 0; mm < MM; mm++) part[r][mm] = 0.0f;
#pragma unroll
        for (int wi = 0; wi < 4; wi++) {
            float xv[MM][8];
#pragma unroll
            for (int mm = 0; mm < MM; mm++) load_x8<XT>(xrow[mm] + c * 32 + wi * 8, xv[mm]);
#pragma unroll
            for (int r = 0; r < GEMV_R; r++) {
                const uint32_t w = wi == 0 ? q[r].x : wi == 1 ? q[r].y : wi == 2 ? q[r].z : q[r].w;
                float wv[8];
                decode8<PAIR>(w, L, wv);
#pragma unroll
                for (int mm = 0; mm < MM; mm++)
#pragma unroll
                    for (int j = 0; j < 8; j++) part[r][mm] = fmaf(xv[mm][j], wv[j], part[r][mm]);
            }
        }
#pragma unroll
        for (int r = 0; r < GEMV_R; r++)
#pragma unroll
            for (int mm = 0; mm < MM; mm++) acc[r][mm] = group ? fmaf(part[r][mm], s[r], acc[r][mm]) : acc[r][mm] + part[r][mm];
#pragma unroll
        for (int r = 0; r < GEMV_R; r++) q[r] = qn[r];
        c = cn;
    }
    /* tail: K % 32 codes (per-channel scales only: a group size divides K), one byte per lane */
    const int64_t kt = nchunk * 32, tail_bytes = (k - kt) >> 1;
    if (lane < tail_bytes) {
#pragma unroll
        for (int r = 0; r < GEMV_R; r++) {
            const uint32_t byte = crow[r][kt / 2 + lane];
            float lo, hi;
            if (PAIR) {
                const uint32_t u = L[byte << 5];
                lo = __uint_as_float(u << 16);
                hi = __uint_as_float(u & 0xffff0000u);
            } else {
                lo = __uint_as_float(L[(byte & 15u) << 5]);
                hi = __uint_as_float(L[(byte >> 4) << 5]);
            }
#pragma unroll
            for (int mm = 0; mm < MM; mm++)
                acc[r][mm] += ldf(xrow[mm] + kt + 2 * lane) * lo + ldf(xrow[mm] + kt + 2 * lane + 1) * hi;
        }
    }
#pragma unroll
    for (int r = 0; r < GEMV_R; r++) {
        const float sr = group ? 1.0f : ldf(srow[r]);
        const float b = bias ? bias[n0 + (r < nr ? r : 0)] : 0.0f;
#pragma unroll
        for (int mm = 0; mm < MM; mm++) {
            float v = warp_sum(acc[r][mm]);
            if (lane == 0 && r < nr && mm < m) {
                v = v * sr + b;
                const int64_t off = (int64_t)mm * ldy + n0 + r;
                if (ydt == PT_F32) ((float*)y)[off] = v;
                else if (ydt == PT_BF16) ((__nv_bfloat16*)y)[off] = __float2bfloat16_rn(v);
                else ((__half*)y)[off] = __float2half_rn(v);
            }
        }
    }
}

/* ---- M > 4: tensor-core GEMM that decodes the codes tile in shared memory (no dense weight).
 * CTA tile BM x BN (x rows x weight rows), K step 64; warps WM x WN, each (BM/WM) x (BN/WN)
 * built from mma.sync m16n8k16 (bf16 or f16 in, f32 accumulate). Per K step every thread loads
 * x as 16-byte vectors and one 16-byte chunk of codes (32 codes of one row, inside one group),
 * both for the next step before the current one is multiplied; the chunk is decoded through a
 * 16-entry level table in shared memory to XT(level * scale) (the rounding the old dense path
 * applied) and stored to the W tile. Ragged M, N and K (K % 64, and K % 32 for group 0) are
 * zero-filled. */
constexpr int TC_BK = 64, TC_PAD = 8;

template <typename XT> struct mma_op;
template <> struct mma_op<__nv_bfloat16> {
    __device__ __forceinline__ static void run(float* c, const uint32_t* a, const uint32_t* b) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
    __device__ __forceinline__ static uint16_t cvt(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }
};
template <> struct mma_op<__half> {
    __device__ __forceinline__ static void run(float* c, const uint32_t* a, const uint32_t* b) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
    __device__ __forceinline__ static uint16_t cvt(float v) { return __half_as_ushort(__float2half_rn(v)); }
};

__device__ __forceinline__ void ldsm_x4(uint32_t* r, const void* p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
__device__ __forceinline__ void ldsm_x2(uint32_t* r, const void* p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
}

template <typename XT, typename ST, int BM, int BN, int WM, int WN>
__global__ void __launch_bounds__(WM * WN * 32, BM * BN >= 128 * 128 ? 2 : 1) fp4_tc_gemm_kernel(const XT* __restrict__ x, int64_t ldx, int64_t m,
                                                                  const uint8_t* __restrict__ codes, int64_t ldq,
                                                                  const ST* __restrict__ scales, int64_t lds, int group,
                                                                  const float* __restrict__ bias, void* y, int ydt, int64_t ldy,
                                                                  int64_t n, int64_t k, int64_t kc, float* __restrict__ part,
                                                                  fp4_lv lv) {
    constexpr int NT = WM * WN * 32, LDS = TC_BK + TC_PAD;
    constexpr int XV = BM * (TC_BK / 8) / NT; /* x 16-byte vectors per thread and step */
    constexpr int CV = BN * 2 / NT;           /* code chunks (32 codes) per thread and step */
    static_assert(XV >= 1 && CV >= 1 && BM * (TC_BK / 8) % NT == 0 && BN * 2 % NT == 0, "tile / threads");
    constexpr int TM = BM / WM / 16, TN = BN / WN / 8;
    __shared__ __align__(16) uint16_t xs[BM * LDS];
    __shared__ __align__(16) uint16_t ws[BN * LDS];
    __shared__ float lut[16];
#pragma unroll
    for (int i = 0; i < 16; i++) /* constant indices: lv stays in the parameter space */
        if (threadIdx.x == i) lut[i] = lv.v[i];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp / WN, wn = warp % WN;
    const int64_t m0 = (int64_t)blockIdx.y * BM, n0 = (int64_t)blockIdx.x * BN;
    const bool vec_k = group != 0 || (k % 32) == 0; /* whole 32-code chunks */
    /* split K: this CTA's slice [kb, ke) (kc a multiple of 128); partial sums to part (f32 [M, N]) */
    const int64_t kb = (int64_t)blockIdx.z * kc, ke = kb + kc < k ? kb + kc : k;

    uint4 xr[XV], cr[CV];
    float sr[CV];
    auto load = [&](int64_t k0) {
#pragma unroll
        for (int i = 0; i < XV; i++) {
            const int v = tid + i * NT, r = v / (TC_BK / 8), c = (v % (TC_BK / 8)) * 8;
            const int64_t gm = m0 + r, gk = k0 + c;
            if (gm < m && gk + 8 <= ke) {
                xr[i] = __ldg((const uint4*)(x + gm * ldx + gk));
            } else {
                uint16_t t[8];
#pragma unroll
                for (int j = 0; j < 8; j++) t[j] = gm < m && gk + j < ke ? reinterpret_cast<const uint16_t*>(x + gm * ldx)[gk + j] : 0;
                xr[i] = make_uint4(t[0] | (uint32_t)t[1] << 16, t[2] | (uint32_t)t[3] << 16, t[4] | (uint32_t)t[5] << 16,
                                   t[6] | (uint32_t)t[7] << 16);
            }
        }
#pragma unroll
        for (int i = 0; i < CV; i++) {
            const int v = tid + i * NT, r = v >> 1, h = v & 1;
            const int64_t gn = n0 + r, gk = k0 + h * 32;
            if (gn < n && gk + 32 <= ke && vec_k) {
                cr[i] = ldg_nc16(codes + gn * ldq + gk / 2);
            } else {
                uint32_t t[4] = {0, 0, 0, 0};
#pragma unroll
                for (int b = 0; b < 16; b++)
                    if (gn < n && gk + 2 * b < ke) t[b >> 2] |= (uint32_t)codes[gn * ldq + gk / 2 + b] << (8 * (b & 3));
                cr[i] = make_uint4(t[0], t[1], t[2], t[3]);
            }
            sr[i] = gn < n && gk < ke ? ldf(scales + gn * lds + (group ? gk / group : 0)) : 0.0f;
        }
    };
    auto store = [&]() {
#pragma unroll
        for (int i = 0; i < XV; i++) {
            const int v = tid + i * NT, r = v / (TC_BK / 8), c = (v % (TC_BK / 8)) * 8;
            *(uint4*)(xs + r * LDS + c) = xr[i];
        }
#pragma unroll
        for (int i = 0; i < CV; i++) {
            const int v = tid + i * NT, r = v >> 1, h = v & 1;
            const uint32_t w[4] = {cr[i].x, cr[i].y, cr[i].z, cr[i].w};
            const float s = sr[i];
#pragma unroll
            for (int q = 0; q < 4; q++) {
                uint32_t o[4];
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const uint32_t byte = (w[q] >> (8 * j)) & 0xffu;
                    o[j] = (uint32_t)mma_op<XT>::cvt(lut[byte & 15u] * s) | (uint32_t)mma_op<XT>::cvt(lut[byte >> 4] * s) << 16;
                }
                *(uint4*)(ws + r * LDS + h * 32 + q * 8) = make_uint4(o[0], o[1], o[2], o[3]);
            }
        }
    };

    float acc[TM][TN][4];
#pragma unroll
    for (int a = 0; a < TM; a++)
#pragma unroll
        for (int b = 0; b < TN; b++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[a][b][c] = 0.0f;
    __syncthreads(); /* lut */
    load(kb);
    for (int64_t k0 = kb; k0 < ke; k0 += TC_BK) {
        store();
        __syncthreads();
        if (k0 + TC_BK < ke) load(k0 + TC_BK);
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            uint32_t af[TM][4], bf[TN][2];
#pragma unroll
            for (int a = 0; a < TM; a++)
                ldsm_x4(af[a], xs + (wm * (BM / WM) + a * 16 + (lane & 15)) * LDS + kk + (lane >> 4) * 8);
#pragma unroll
            for (int b = 0; b < TN; b++) ldsm_x2(bf[b], ws + (wn * (BN / WN) + b * 8 + (lane & 7)) * LDS + kk + ((lane >> 3) & 1) * 8);
#pragma unroll
            for (int a = 0; a < TM; a++)
#pragma unroll
                for (int b = 0; b < TN; b++) mma_op<XT>::run(acc[a][b], af[a], bf[b]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int a = 0; a < TM; a++)
#pragma unroll
        for (int b = 0; b < TN; b++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int64_t gm = m0 + wm * (BM / WM) + a * 16 + (lane >> 2) + (c >> 1) * 8;
                const int64_t gn = n0 + wn * (BN / WN) + b * 8 + (lane & 3) * 2 + (c & 1);
                if (gm < m && gn < n && part) {
                    atomicAdd(part + gm * n + gn, acc[a][b][c]);
                } else if (gm < m && gn < n) {
                    const float v = acc[a][b][c] + (bias ? bias[gn] : 0.0f);
                    const int64_t off = gm * ldy + gn;
                    if (ydt == PT_F32) ((float*)y)[off] = v;
                    else if (ydt == PT_BF16) ((__nv_bfloat16*)y)[off] = __float2bfloat16_rn(v);
                    else ((__half*)y)[off] = __float2half_rn(v);
                }
            }
}

/* split-K epilogue: y = part + bias in y's dtype */
__global__ void fp4_splitk_out_kernel(const float* __restrict__ part, const float* __restrict__ bias, void* y, int ydt, int64_t ldy,
                                      int64_t m, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m * n) return;
    const int64_t r = i / n, c = i - r * n;
    const float v = part[i] + (bias ? bias[c] : 0.0f);
    const int64_t off = r * ldy + c;
    if (ydt == PT_F32) ((float*)y)[off] = v;
    else if (ydt == PT_BF16) ((__nv_bfloat16*)y)[off] = __float2bfloat16_rn(v);
    else ((__half*)y)[off] = __float2half_rn(v);
}

/* W4A4: xq[m, :] = XT(a_m * level[nearest(v / a_m)]), v = x * 2^-shift[k], a_m = clip * max|v| /
 * max|level| (pt_fp4_matmul's quantize_acts, f32, the same nearest-level ties). One block per row. */
template <typename XT>
__global__ void __launch_bounds__(256) fp4_act_quant_kernel(const XT* __restrict__ x, int64_t ldx, int64_t k,
                                                            const int32_t* __restrict__ shift, float clip, float inv_max,
                                                            XT* __restrict__ xq, int64_t ldxq, fp4_lv lv) {
    const int64_t r = blockIdx.x;
    const XT* xr = x + r * ldx;
    float amax = 0.0f;
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
        const float v = shift ? ldexpf(ldf(xr + j), -shift[j]) : ldf(xr + j);
        amax = fabsf(v) > amax ? fabsf(v) : amax;
    }
    __shared__ float s_max[8];
    for (int o = 16; o > 0; o >>= 1) {
        const float t = __shfl_xor_sync(0xffffffffu, amax, o);
        amax = t > amax ? t : amax;
    }
    if ((threadIdx.x & 31) == 0) s_max[threadIdx.x >> 5] = amax;
    __syncthreads();
    amax = 0.0f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) amax = s_max[w] > amax ? s_max[w] : amax;
    const float a = __fmul_rn(__fmul_rn(clip, amax), inv_max);
    const bool ok = a > 0.0f && isfinite(a);
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
        float q = 0.0f;
        if (ok) {
            const float v = shift ? ldexpf(ldf(xr + j), -shift[j]) : ldf(xr + j);
            const float t = __fdiv_rn(v, a);
            int best = 0;
            float bd = fabsf(t - lv.v[0]), ab = fabsf(lv.v[0]);
#pragma unroll
            for (int c = 1; c < 16; c++) {
                const float d = fabsf(t - lv.v[c]), av = fabsf(lv.v[c]);
                const bool better = (d < bd) | ((d == bd) & (av < ab));
                best = better ? c : best;
                bd = better ? d : bd;
                ab = better ? av : ab;
            }
            float lvb = lv.v[0];
#pragma unroll
            for (int c = 1; c < 16; c++) lvb = best == c ? lv.v[c] : lvb;
            q = __fmul_rn(a, lvb);
        }
        stf(xq + r * ldxq + j, q);
    }
}

}  // namespace

/* ---------------------------------------------------------------- host: helpers */

static void fp4_levels_host(int32_t f, float* out) {
    static const float nf4[16] = {
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
    if (f == PT_FP4_NF4) {
        memcpy(out, nf4, sizeof nf4);
        return;
    }
    for (int c = 0; c < 16; c++) {
        int s = c >> 3, mag = c & 7;
        float v;
        if (f == PT_FP4_E2M1) {
            int e = mag >> 1, m = mag & 1;
            v = e == 0 ? 0.5f * m : (1.0f + 0.5f * m) * ldexpf(1.0f, e - 1);
        } else if (f == PT_FP4_E1M2) {
            int e = mag >> 2, m = mag & 3;
            v = e == 0 ? 0.25f * m : 1.0f + 0.25f * m;
        } else {
            v = mag == 0 ? 0.0f : ldexpf(1.0f, mag - 3);
        }
        out[c] = s ? -v : v;
    }
}

static int64_t row_stride_elems(const pt_tensor* t, int64_t cols) {
    /* a single row may carry any stride (never used) */
    return t->shape[0] > 1 ? t->stride[0] / (int64_t)pt_dtype_size(t->dtype) : cols;
}

static pt_status check_row_stride(const pt_tensor* t, const char* what, const char* fn) {
    size_t es = pt_dtype_size(t->dtype);
    if (t->shape[0] > 1 && (t->stride[0] % (int64_t)es != 0 || t->stride[0] / (int64_t)es < t->shape[1])) {
        char d[96];
        pt_describe(t, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "%s: %s %s has row stride %lld bytes (must be whole elements, >= its row)", fn, what, d,
                       (long long)t->stride[0]);
    }
    return PT_OK;
}

struct scratch_guard {
    pt_cuda_ctx* ctx;
    void* p[16] = {};
    int n = 0;
    ~scratch_guard() {
        for (int i = 0; i < n; i++) pt_cuda_free_internal(ctx, p[i]);
    }
    pt_status get(size_t bytes, void** out) {
        if (n == 16) return pt_fail(PT_ERR_INTERNAL, "quant.cu: more than 16 scratch blocks in one call");
        void* q = nullptr;
        PT_CHECK(pt_cuda_alloc_internal(ctx, bytes ? bytes : 16, &q));
        p[n++] = q;
        *out = q;
        return PT_OK;
    }
};

static int blocks_for(int64_t total, int threads) {
    int64_t b = (total + threads - 1) / threads;
    return (int)(b < 65535 * 16 ? (b > 0 ? b : 1) : 65535 * 16);
}

/* ---------------------------------------------------------------- host: int8 GEMM (s32) */

namespace {
struct s8_plan {
    int64_t key[12];
    bool used = false;
    uint64_t stamp = 0;
    ptlt::desc_t op = nullptr;
    ptlt::layout_t la = nullptr, lb = nullptr, lc = nullptr;
    ptlt::algo_t algo;
};
/* Plans are independent of the handle (descriptors and the heuristic's algorithm for one
 * device kind and problem); shared by all contexts, never freed (a few KB). */
std::mutex g_s8_mu;
s8_plan g_s8_plans[16];
uint64_t g_s8_clock = 0;

int64_t ptr_align(const void* p) {
    uintptr_t a = (uintptr_t)p;
    int64_t al = 256;
    while (al > 1 && (a % (uintptr_t)al) != 0) al >>= 1;
    return al;
}
}  // namespace

/* c[m, n] = sum_k a[m, k] b[n, k] in s32: cuBLASLt IMMA when it offers an algorithm (TN in its
 * column-major terms: Lt's A is our b, transposed), else the tiled kernel. *used_lt tells which. */
static pt_status s8_gemm(pt_cuda_ctx* ctx, const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int32_t* c, int64_t ldc,
                         int64_t m, int64_t n, int64_t k, int* used_lt, const char* fn) {
    if (used_lt) *used_lt = 0;
    if (m == 0 || n == 0) return PT_OK;
    const char* force = getenv("PANATRON_CUDA_S8_FALLBACK");
    const ptlt::api* L = (force && *force == '1') || k == 0 ? nullptr : ptlt::load();
    if (L) {
        std::lock_guard<std::mutex> lock(ctx->lt_mu);
        ptlt::status_t st = ptlt::SUCCESS;
        if (!ctx->lt_handle) st = L->Create(&ctx->lt_handle);
        if (st == ptlt::SUCCESS) {
            const int64_t key[12] = {ctx->cc_major * 10 + ctx->cc_minor, m, n, k, lda, ldb, ldc, ptr_align(a), ptr_align(b),
                                     ptr_align(c), (int64_t)ctx->workspace_bytes, 1};
            std::lock_guard<std::mutex> plock(g_s8_mu);
            s8_plan* plan = nullptr;
            for (auto& pl : g_s8_plans)
                if (pl.used && memcmp(pl.key, key, sizeof key) == 0) { plan = &pl; break; }
            bool ok = plan != nullptr;
            if (!plan) {
                s8_plan* victim = &g_s8_plans[0];
                for (auto& pl : g_s8_plans) {
                    if (!pl.used) { victim = &pl; break; }
                    if (pl.stamp < victim->stamp) victim = &pl;
                }
                if (victim->used) {
                    L->MatmulDescDestroy(victim->op);
                    L->MatrixLayoutDestroy(victim->la);
                    L->MatrixLayoutDestroy(victim->lb);
                    L->MatrixLayoutDestroy(victim->lc);
                    *victim = s8_plan();
                }
                s8_plan f;
                memcpy(f.key, key, sizeof key);
                int32_t ta = ptlt::OP_T, tb = ptlt::OP_N;
                ok = L->MatmulDescCreate(&f.op, ptq::COMPUTE_32I, ptq::R_32I) == ptlt::SUCCESS &&
                     L->MatmulDescSetAttribute(f.op, ptlt::DESC_TRANSA, &ta, sizeof ta) == ptlt::SUCCESS &&
                     L->MatmulDescSetAttribute(f.op, ptlt::DESC_TRANSB, &tb, sizeof tb) == ptlt::SUCCESS &&
                     L->MatrixLayoutCreate(&f.la, ptq::R_8I, k, n, ldb) == ptlt::SUCCESS &&
                     L->MatrixLayoutCreate(&f.lb, ptq::R_8I, k, m, lda) == ptlt::SUCCESS &&
                     L->MatrixLayoutCreate(&f.lc, ptq::R_32I, n, m, ldc) == ptlt::SUCCESS;
                ptlt::pref_t pref = nullptr;
                if (ok) ok = L->MatmulPreferenceCreate(&pref) == ptlt::SUCCESS;
                if (ok) {
                    uint64_t ws = ctx->workspace_bytes;
                    uint32_t aa = (uint32_t)key[8], ab = (uint32_t)key[7], ac = (uint32_t)key[9];
                    L->MatmulPreferenceSetAttribute(pref, ptlt::PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
                    L->MatmulPreferenceSetAttribute(pref, ptlt::PREF_MIN_ALIGNMENT_A, &aa, sizeof aa);
                    L->MatmulPreferenceSetAttribute(pref, ptlt::PREF_MIN_ALIGNMENT_B, &ab, sizeof ab);
                    L->MatmulPreferenceSetAttribute(pref, ptlt::PREF_MIN_ALIGNMENT_C, &ac, sizeof ac);
                    L->MatmulPreferenceSetAttribute(pref, ptlt::PREF_MIN_ALIGNMENT_D, &ac, sizeof ac);
                    ptlt::heuristic_t heur[1];
                    int found = 0;
                    ok = L->MatmulAlgoGetHeuristic(ctx->lt_handle, f.op, f.la, f.lb, f.lc, f.lc, pref, 1, heur, &found) ==
                             ptlt::SUCCESS && found > 0;
                    if (ok) f.algo = heur[0].algo;
                    L->MatmulPreferenceDestroy(pref);
                }
                if (ok) {
                    f.used = true;
                    *victim = f;
                    plan = victim;
                } else {
                    if (f.op) L->MatmulDescDestroy(f.op);
                    if (f.la) L->MatrixLayoutDestroy(f.la);
                    if (f.lb) L->MatrixLayoutDestroy(f.lb);
                    if (f.lc) L->MatrixLayoutDestroy(f.lc);
                }
            }
            if (ok) {
                plan->stamp = ++g_s8_clock;
                int32_t alpha = 1, beta = 0;
                ptlt::status_t ms = L->Matmul(ctx->lt_handle, plan->op, &alpha, b, plan->la, a, plan->lb, &beta, c, plan->lc, c,
                                              plan->lc, &plan->algo, ctx->workspace, ctx->workspace_bytes, ctx->stream);
                if (ms != ptlt::SUCCESS)
                    return pt_fail(PT_ERR_BACKEND, "%s: cublasLtMatmul (int8) failed: status %d (%s)", fn, ms, L->GetStatusString(ms));
                if (used_lt) *used_lt = 1;
                return PT_OK;
            }
        }
    }
    pt_clear_error(); /* cuBLASLt absent or without an algorithm: the portable kernel */
    dim3 grid((unsigned)((n + 31) / 32), (unsigned)((m + 31) / 32)), block(32, 8);
    if (grid.y > 65535) return pt_fail(PT_ERR_UNSUPPORTED, "%s: M = %lld too large for the fallback kernel", fn, (long long)m);
    s8_gemm_tiled<<<grid, block, 0, ctx->stream>>>(a, lda, b, ldb, c, ldc, m, n, k);
    PT_CUDA_LAUNCH_CHECK("s8 GEMM kernel launch");
    return PT_OK;
}

template <typename YT>
static void launch_s8_epilogue(pt_cuda_ctx* ctx, const int32_t* acc, int64_t ldacc, const float* as, const float* bs,
                               const float* bias, const float* outl, int64_t ldo, void* y, int64_t ldy, int64_t m, int64_t n,
                               int act) {
    dim3 grid((unsigned)((n + 255) / 256), (unsigned)(m < 65535 ? m : 65535));
    s8_epilogue_kernel<YT><<<grid, 256, 0, ctx->stream>>>(acc, ldacc, as, bs, bias, outl, ldo, (YT*)y, ldy, m, n, act);
}

static void s8_epilogue(pt_cuda_ctx* ctx, int32_t ydt, const int32_t* acc, int64_t ldacc, const float* as, const float* bs,
                        const float* bias, const float* outl, int64_t ldo, void* y, int64_t ldy, int64_t m, int64_t n, int act) {
    if (ydt == PT_F32) launch_s8_epilogue<float>(ctx, acc, ldacc, as, bs, bias, outl, ldo, y, ldy, m, n, act);
    else if (ydt == PT_BF16) launch_s8_epilogue<__nv_bfloat16>(ctx, acc, ldacc, as, bs, bias, outl, ldo, y, ldy, m, n, act);
    else launch_s8_epilogue<__half>(ctx, acc, ldacc, as, bs, bias, outl, ldo, y, ldy, m, n, act);
}

static pt_status check_vec(const pt_tensor* t, const char* what, int64_t len, const char* fn) {
    (void)fn;
    static const int32_t f32[] = {PT_F32};
    PT_CHECK(pt_cuda_check_tensor(t, what, 1, 1, 1, f32));
    if (t->shape[0] != len)
        return pt_fail(PT_ERR_SHAPE, "%s has %lld elements, expected %lld", what, (long long)t->shape[0], (long long)len);
    return PT_OK;
}

/* ---------------------------------------------------------------- public: int8 */

template <typename T>
static void launch_quant(pt_cuda_ctx* ctx, const void* x, int64_t ldx, int64_t m, int64_t k, const int32_t* flags, int8_t* q,
                         int64_t ldq, float* scale) {
    quant_rows_kernel<T><<<(unsigned)m, 256, 0, ctx->stream>>>((const T*)x, ldx, k, flags, q, ldq, scale);
}
static void quant_dispatch(pt_cuda_ctx* ctx, int32_t dt, const void* x, int64_t ldx, int64_t m, int64_t k, const int32_t* flags,
                           int8_t* q, int64_t ldq, float* scale) {
    if (dt == PT_F32) launch_quant<float>(ctx, x, ldx, m, k, flags, q, ldq, scale);
    else if (dt == PT_BF16) launch_quant<__nv_bfloat16>(ctx, x, ldx, m, k, flags, q, ldq, scale);
    else launch_quant<__half>(ctx, x, ldx, m, k, flags, q, ldq, scale);
}

template <typename T>
static void launch_colmax(pt_cuda_ctx* ctx, const void* x, int64_t ldx, int64_t m, int64_t k, int* colmax) {
    int64_t gy = (m + 63) / 64;
    gy = gy > 64 ? 64 : gy;
    int64_t rpb = (m + gy - 1) / gy;
    dim3 grid((unsigned)((k + 31) / 32), (unsigned)gy), block(32, 8);
    colmax_kernel<T><<<grid, block, 0, ctx->stream>>>((const T*)x, ldx, m, k, rpb, colmax);
}

/* Column flags (and list) of the outliers: colmax >= thr. ocols and count are device buffers. */
static pt_status find_outliers(pt_cuda_ctx* ctx, int32_t dt, const void* x, int64_t ldx, int64_t m, int64_t k, float thr,
                               int32_t* flags, int32_t* ocols, int32_t* count, int* colmax) {
    PT_CUDA_TRY(cudaMemsetAsync(colmax, 0, (size_t)k * sizeof(int), ctx->stream), "outlier scan: cudaMemsetAsync");
    if (m > 0) {
        if (dt == PT_F32) launch_colmax<float>(ctx, x, ldx, m, k, colmax);
        else if (dt == PT_BF16) launch_colmax<__nv_bfloat16>(ctx, x, ldx, m, k, colmax);
        else launch_colmax<__half>(ctx, x, ldx, m, k, colmax);
        PT_CUDA_LAUNCH_CHECK("column absmax kernel launch");
    }
    outlier_list_kernel<<<1, 1024, 0, ctx->stream>>>(colmax, k, thr, flags, ocols, count);
    PT_CUDA_LAUNCH_CHECK("outlier list kernel launch");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_quantize_rows(pt_cuda_ctx* ctx, const pt_tensor* x, float threshold, pt_tensor* xq,
                                                  pt_tensor* scale, pt_tensor* outliers) {
    pt_clear_error();
    static const char* fn = "pt_cuda_quantize_rows";
    PT_CHECK(pt_cuda_enter(ctx, fn));
    static const int32_t xdt[] = {PT_F32, PT_F16, PT_BF16}, i8[] = {PT_I8}, i32[] = {PT_I32};
    PT_CHECK(pt_cuda_check_tensor(x, "pt_cuda_quantize_rows x", 2, 2, 3, xdt));
    PT_CHECK(pt_cuda_check_tensor(xq, "pt_cuda_quantize_rows xq", 2, 2, 1, i8));
    PT_CHECK(check_row_stride(x, "x", fn));
    PT_CHECK(check_row_stride(xq, "xq", fn));
    const int64_t m = x->shape[0], k = x->shape[1];
    char dx[96], dq[96];
    pt_describe(x, dx, sizeof dx);
    pt_describe(xq, dq, sizeof dq);
    if (xq->shape[0] != m || xq->shape[1] != k)
        return pt_fail(PT_ERR_SHAPE, "%s: xq %s must have x's shape %s", fn, dq, dx);
    PT_CHECK(check_vec(scale, "pt_cuda_quantize_rows scale", m, fn));
    if (outliers) {
        PT_CHECK(pt_cuda_check_tensor(outliers, "pt_cuda_quantize_rows outliers", 1, 1, 1, i32));
        if (outliers->shape[0] != k)
            return pt_fail(PT_ERR_SHAPE, "%s: outliers has %lld elements, expected K = %lld", fn, (long long)outliers->shape[0],
                           (long long)k);
        if (!(threshold > 0.0f))
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: threshold must be > 0 when outliers are asked for, got %g", fn,
                           (double)threshold);
    }
    if (m == 0 && !outliers) return PT_OK;
    scratch_guard sg{ctx};
    int32_t* flags = nullptr;
    if (outliers && k > 0) {
        void *cm, *oc, *cnt;
        PT_CHECK(sg.get((size_t)k * 4, &cm));
        PT_CHECK(sg.get((size_t)k * 4, &oc));
        PT_CHECK(sg.get(16, &cnt));
        flags = (int32_t*)outliers->data;
        PT_CHECK(find_outliers(ctx, x->dtype, x->data, row_stride_elems(x, k), m, k, threshold, flags, (int32_t*)oc,
                               (int32_t*)cnt, (int*)cm));
    }
    if (m == 0) return PT_OK;
    quant_dispatch(ctx, x->dtype, x->data, row_stride_elems(x, k), m, k, flags, (int8_t*)xq->data, row_stride_elems(xq, k),
                   (float*)scale->data);
    PT_CUDA_LAUNCH_CHECK("pt_cuda_quantize_rows: kernel launch");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_matmul_s8(pt_cuda_ctx* ctx, const pt_tensor* a, const pt_tensor* b, const pt_tensor* a_scale,
                                              const pt_tensor* b_scale, const pt_tensor* bias, pt_tensor* c, int32_t activation) {
    pt_clear_error();
    static const char* fn = "pt_cuda_matmul_s8";
    PT_CHECK(pt_cuda_enter(ctx, fn));
    static const int32_t i8[] = {PT_I8}, cdt[] = {PT_I32, PT_F32, PT_F16, PT_BF16};
    PT_CHECK(pt_cuda_check_tensor(a, "pt_cuda_matmul_s8 a", 2, 2, 1, i8));
    PT_CHECK(pt_cuda_check_tensor(b, "pt_cuda_matmul_s8 b", 2, 2, 1, i8));
    PT_CHECK(pt_cuda_check_tensor(c, "pt_cuda_matmul_s8 c", 2, 2, 4, cdt));
    PT_CHECK(check_row_stride(a, "a", fn));
    PT_CHECK(check_row_stride(b, "b", fn));
    PT_CHECK(check_row_stride(c, "c", fn));
    const int64_t m = a->shape[0], k = a->shape[1], n = b->shape[0];
    char da[96], db[96], dc[96];
    pt_describe(a, da, sizeof da);
    pt_describe(b, db, sizeof db);
    pt_describe(c, dc, sizeof dc);
    if (b->shape[1] != k)
        return pt_fail(PT_ERR_SHAPE, "%s: a %s and b %s disagree on K (b is [N, K], the Linear layout)", fn, da, db);
    if (c->shape[0] != m || c->shape[1] != n)
        return pt_fail(PT_ERR_SHAPE, "%s: c %s, expected [%lld, %lld] for a %s and b %s", fn, dc, (long long)m, (long long)n, da, db);
    if (activation < PT_ACT_NONE || activation > PT_ACT_SILU)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: unknown activation %d", fn, activation);
    if (c->dtype == PT_I32 && (a_scale || b_scale || bias || activation != PT_ACT_NONE))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: an i32 c takes the raw sums: a_scale, b_scale and bias must be NULL and activation NONE", fn);
    if (a_scale) PT_CHECK(check_vec(a_scale, "pt_cuda_matmul_s8 a_scale", m, fn));
    if (b_scale) PT_CHECK(check_vec(b_scale, "pt_cuda_matmul_s8 b_scale", n, fn));
    if (bias) PT_CHECK(check_vec(bias, "pt_cuda_matmul_s8 bias", n, fn));
    if (m == 0 || n == 0) return PT_OK;
    const int64_t lda = row_stride_elems(a, k), ldb = row_stride_elems(b, k), ldc = row_stride_elems(c, n);
    if (c->dtype == PT_I32) return s8_gemm(ctx, (const int8_t*)a->data, lda, (const int8_t*)b->data, ldb, (int32_t*)c->data, ldc, m, n, k, nullptr, fn);
    scratch_guard sg{ctx};
    void* acc;
    PT_CHECK(sg.get((size_t)m * (size_t)n * 4, &acc));
    PT_CHECK(s8_gemm(ctx, (const int8_t*)a->data, lda, (const int8_t*)b->data, ldb, (int32_t*)acc, n, m, n, k, nullptr, fn));
    s8_epilogue(ctx, c->dtype, (const int32_t*)acc, n, a_scale ? (const float*)a_scale->data : nullptr,
                b_scale ? (const float*)b_scale->data : nullptr, bias ? (const float*)bias->data : nullptr, nullptr, 0, c->data, ldc,
                m, n, activation);
    PT_CUDA_LAUNCH_CHECK("pt_cuda_matmul_s8: epilogue launch");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_matmul_int8(pt_cuda_ctx* ctx, const pt_tensor* x, const pt_tensor* wq, const pt_tensor* w_scale,
                                                const pt_tensor* w_outlier, const pt_tensor* bias, pt_tensor* y,
                                                const pt_int8_matmul_params* params) {
    pt_clear_error();
    static const char* fn = "pt_cuda_matmul_int8";
    PT_CHECK(pt_cuda_enter(ctx, fn));
    pt_int8_matmul_params p = {PT_INT8_LLM, PT_ACT_NONE, 6.0f, 0, nullptr};
    if (params) p = *params;
    if (p.threshold == 0.0f) p.threshold = 6.0f;
    if (p.mode != PT_INT8_LLM && p.mode != PT_INT8_W8A8) {
        if (p.mode == PT_INT8_WEIGHT_ONLY)
            return pt_fail(PT_ERR_UNSUPPORTED, "%s: mode WEIGHT_ONLY is CPU-only (on the GPU use W8A8 or dequantize and pt_cuda_matmul)", fn);
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: unknown mode %d (0 LLM, 1 W8A8)", fn, p.mode);
    }
    if (p.activation < PT_ACT_NONE || p.activation > PT_ACT_SILU)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: unknown activation %d", fn, p.activation);
    if (!(p.threshold > 0.0f))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: threshold must be > 0 (0 means 6.0), got %g", fn, (double)p.threshold);
    if (p.w_packed)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: w_packed is the CPU's VNNI packing; pass NULL on the GPU", fn);
    static const int32_t xdt[] = {PT_F32, PT_F16, PT_BF16}, i8[] = {PT_I8}, wdt[] = {PT_F32, PT_BF16};
    PT_CHECK(pt_cuda_check_tensor(x, "pt_cuda_matmul_int8 x", 2, 2, 3, xdt));
    PT_CHECK(pt_cuda_check_tensor(wq, "pt_cuda_matmul_int8 wq", 2, 2, 1, i8));
    PT_CHECK(pt_cuda_check_tensor(y, "pt_cuda_matmul_int8 y", 2, 2, 3, xdt));
    PT_CHECK(check_row_stride(x, "x", fn));
    PT_CHECK(check_row_stride(wq, "wq", fn));
    PT_CHECK(check_row_stride(y, "y", fn));
    const int64_t m = x->shape[0], k = x->shape[1], n = wq->shape[0];
    char dx[96], dw[96], dy[96];
    pt_describe(x, dx, sizeof dx);
    pt_describe(wq, dw, sizeof dw);
    pt_describe(y, dy, sizeof dy);
    if (wq->shape[1] != k) return pt_fail(PT_ERR_SHAPE, "%s: x %s and wq %s disagree on K (wq is [N, K])", fn, dx, dw);
    if (y->shape[0] != m || y->shape[1] != n)
        return pt_fail(PT_ERR_SHAPE, "%s: y %s, expected [%lld, %lld] for x %s and wq %s", fn, dy, (long long)m, (long long)n, dx, dw);
    PT_CHECK(check_vec(w_scale, "pt_cuda_matmul_int8 w_scale", n, fn));
    if (bias) PT_CHECK(check_vec(bias, "pt_cuda_matmul_int8 bias", n, fn));
    if (w_outlier) {
        PT_CHECK(pt_cuda_check_tensor(w_outlier, "pt_cuda_matmul_int8 w_outlier", 2, 2, 2, wdt));
        PT_CHECK(check_row_stride(w_outlier, "w_outlier", fn));
        if (w_outlier->shape[0] != n || w_outlier->shape[1] != k) {
            char d[96];
            pt_describe(w_outlier, d, sizeof d);
            return pt_fail(PT_ERR_SHAPE, "%s: w_outlier %s must be [N=%lld, K=%lld] like wq", fn, d, (long long)n, (long long)k);
        }
    }
    if (m == 0 || n == 0) return PT_OK;
    const int64_t ldx = row_stride_elems(x, k), ldw = row_stride_elems(wq, k), ldy = row_stride_elems(y, n);
    scratch_guard sg{ctx};
    int32_t* flags = nullptr;
    int32_t no = 0;
    int32_t* ocols = nullptr;
    if (p.mode == PT_INT8_LLM && k > 0) {
        void *cm, *fl, *oc, *cnt;
        PT_CHECK(sg.get((size_t)k * 4, &cm));
        PT_CHECK(sg.get((size_t)k * 4, &fl));
        PT_CHECK(sg.get((size_t)k * 4, &oc));
        PT_CHECK(sg.get(16, &cnt));
        flags = (int32_t*)fl;
        ocols = (int32_t*)oc;
        PT_CHECK(find_outliers(ctx, x->dtype, x->data, ldx, m, k, p.threshold, flags, ocols, (int32_t*)cnt, (int*)cm));
        /* the host needs the count to size the outlier GEMM: one small synchronizing copy */
        PT_CUDA_TRY(cudaMemcpyAsync(&no, cnt, sizeof no, cudaMemcpyDeviceToHost, ctx->stream), "pt_cuda_matmul_int8: outlier count copy");
        PT_CUDA_TRY(cudaStreamSynchronize(ctx->stream), "pt_cuda_matmul_int8: outlier count");
    }
    /* 1. quantized rows (K padded to 16 bytes per row for the tensor-core GEMM's alignment) */
    const int64_t ldq = (k + 15) / 16 * 16;
    void *xq, *sx, *acc;
    PT_CHECK(sg.get((size_t)m * (size_t)ldq, &xq));
    PT_CHECK(sg.get((size_t)m * 4, &sx));
    quant_dispatch(ctx, x->dtype, x->data, ldx, m, k, flags, (int8_t*)xq, ldq, (float*)sx);
    PT_CUDA_LAUNCH_CHECK("pt_cuda_matmul_int8: quantization launch");
    /* 2. outlier product in f32: xo [M, no] @ wo [N, no]^T */
    float* outl = nullptr;
    if (no > 0) {
        void *xo, *wo, *ol;
        PT_CHECK(sg.get((size_t)m * (size_t)no * 4, &xo));
        PT_CHECK(sg.get((size_t)n * (size_t)no * 4, &wo));
        PT_CHECK(sg.get((size_t)m * (size_t)n * 4, &ol));
        if (x->dtype == PT_F32) gather_x_kernel<float><<<blocks_for(m * no, 256), 256, 0, ctx->stream>>>((const float*)x->data, ldx, m, ocols, no, (float*)xo);
        else if (x->dtype == PT_BF16) gather_x_kernel<__nv_bfloat16><<<blocks_for(m * no, 256), 256, 0, ctx->stream>>>((const __nv_bfloat16*)x->data, ldx, m, ocols, no, (float*)xo);
        else gather_x_kernel<__half><<<blocks_for(m * no, 256), 256, 0, ctx->stream>>>((const __half*)x->data, ldx, m, ocols, no, (float*)xo);
        PT_CUDA_LAUNCH_CHECK("pt_cuda_matmul_int8: outlier gather launch");
        const int64_t ldo = w_outlier ? row_stride_elems(w_outlier, k) : 0;
        if (w_outlier && w_outlier->dtype == PT_BF16)
            gather_w_kernel<__nv_bfloat16><<<blocks_for(n * no, 256), 256, 0, ctx->stream>>>(
                (const __nv_bfloat16*)w_outlier->data, ldo, (const int8_t*)wq->data, ldw, (const float*)w_scale->data, n, ocols, no, (float*)wo);
        else
            gather_w_kernel<float><<<blocks_for(n * no, 256), 256, 0, ctx->stream>>>(
                w_outlier ? (const float*)w_outlier->data : nullptr, ldo, (const int8_t*)wq->data, ldw, (const float*)w_scale->data, n,
                ocols, no, (float*)wo);
        PT_CUDA_LAUNCH_CHECK("pt_cuda_matmul_int8: outlier weight gather launch");
        int64_t sxo[2] = {m, no}, swo[2] = {n, no}, sol[2] = {m, n};
        pt_tensor txo = {}, two = {}, tol = {};
        txo.data = xo; txo.dtype = PT_F32; txo.device = PT_DEVICE_CUDA; txo.ndim = 2;
        two = txo; two.data = wo; tol = txo; tol.data = ol;
        for (int i = 0; i < 2; i++) { txo.shape[i] = sxo[i]; two.shape[i] = swo[i]; tol.shape[i] = sol[i]; }
        txo.stride[1] = two.stride[1] = tol.stride[1] = 4;
        txo.stride[0] = no * 4; two.stride[0] = no * 4; tol.stride[0] = n * 4;
        pt_matmul_params mp = {1, PT_ACT_NONE, 1.0f, 0.0f};
        pt_status st = pt_cuda_matmul(ctx, &txo, &two, nullptr, &tol, &mp);
        if (st != PT_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", pt_cuda_last_error());
            return pt_fail(st, "%s: outlier GEMM (%d columns): %s", fn, no, why);
        }
        outl = (float*)ol;
    }
    /* 3. int8 GEMM, 4. epilogue */
    PT_CHECK(sg.get((size_t)m * (size_t)n * 4, &acc));
    PT_CHECK(s8_gemm(ctx, (const int8_t*)xq, ldq, (const int8_t*)wq->data, ldw, (int32_t*)acc, n, m, n, k, nullptr, fn));
    s8_epilogue(ctx, y->dtype, (const int32_t*)acc, n, (const float*)sx, (const float*)w_scale->data,
                bias ? (const float*)bias->data : nullptr, outl, n, y->data, ldy, m, n, p.activation);
    PT_CUDA_LAUNCH_CHECK("pt_cuda_matmul_int8: epilogue launch");
    return PT_OK;
}

/* ---------------------------------------------------------------- public: FP4 */

template <typename XT, typename ST, int MM, bool PAIR>
static void launch_gemv_t(pt_cuda_ctx* ctx, const void* x, int64_t ldx, int m, const uint8_t* codes, int64_t ldq, const void* sc,
                          int64_t lds, int group, const float* bias, void* y, int ydt, int64_t ldy, int64_t n, int64_t k,
                          const fp4_lv& lv) {
    const int64_t rows_per_block = GEMV_WARPS * GEMV_R;
    fp4_gemv_kernel<XT, ST, MM, PAIR><<<(unsigned)((n + rows_per_block - 1) / rows_per_block), GEMV_WARPS * 32, 0, ctx->stream>>>(
        (const XT*)x, ldx, m, codes, ldq, (const ST*)sc, lds, group, bias, y, ydt, ldy, n, k, lv);
}
template <typename XT, typename ST>
static void launch_gemv_x(pt_cuda_ctx* ctx, bool pair, const void* x, int64_t ldx, int m, const uint8_t* codes, int64_t ldq,
                          const void* sc, int64_t lds, int group, const float* bias, void* y, int ydt, int64_t ldy, int64_t n, int64_t k,
                          const fp4_lv& lv) {
    if (m == 1) {
        if (pair) launch_gemv_t<XT, ST, 1, true>(ctx, x, ldx, m, codes, ldq, sc, lds, group, bias, y, ydt, ldy, n, k, lv);
        else launch_gemv_t<XT, ST, 1, false>(ctx, x, ldx, m, codes, ldq, sc, lds, group, bias, y, ydt, ldy, n, k, lv);
    } else {
        if (pair) launch_gemv_t<XT, ST, 4, true>(ctx, x, ldx, m, codes, ldq, sc, lds, group, bias, y, ydt, ldy, n, k, lv);
        else launch_gemv_t<XT, ST, 4, false>(ctx, x, ldx, m, codes, ldq, sc, lds, group, bias, y, ydt, ldy, n, k, lv);
    }
}

template <typename XT, typename ST, int BM, int BN, int WM, int WN>
static pt_status launch_tc_t(pt_cuda_ctx* ctx, scratch_guard& sg, const void* x, int64_t ldx, int64_t m, const uint8_t* codes, int64_t ldq,
                             const void* sc, int64_t lds, int group, const float* bias, void* y, int ydt, int64_t ldy, int64_t n, int64_t k,
                             const fp4_lv& lv) {
    const int64_t gx = (n + BN - 1) / BN, gy = (m + BM - 1) / BM;
    /* split K while the grid is short of ~4 CTAs per SM (small M: the codes stream needs warps
     * in flight); slices of a multiple of 128 (whole groups, whole K steps), at least 512 long */
    int64_t splits = 1;
    const int64_t want = 4 * (int64_t)(ctx->sm_count > 0 ? ctx->sm_count : 132);
    while (gx * gy * splits * 2 <= want && k / (splits * 2) >= 512) splits *= 2;
    const int64_t kc = splits > 1 ? ((k + splits - 1) / splits + 127) / 128 * 128 : k;
    splits = (k + kc - 1) / kc;
    float* part = nullptr;
    if (splits > 1) {
        void* pp;
        PT_CHECK(sg.get((size_t)m * (size_t)n * 4, &pp));
        PT_CUDA_TRY(cudaMemsetAsync(pp, 0, (size_t)m * (size_t)n * 4, ctx->stream), "pt_cuda_fp4_matmul: split-K clear");
        part = (float*)pp;
    }
    const dim3 grid((unsigned)gx, (unsigned)gy, (unsigned)splits);
    fp4_tc_gemm_kernel<XT, ST, BM, BN, WM, WN><<<grid, WM * WN * 32, 0, ctx->stream>>>((const XT*)x, ldx, m, codes, ldq, (const ST*)sc, lds,
                                                                                      group, bias, y, ydt, ldy, n, k, kc, part, lv);
    if (part)
        fp4_splitk_out_kernel<<<(unsigned)((m * n + 255) / 256), 256, 0, ctx->stream>>>(part, bias, y, ydt, ldy, m, n);
    return PT_OK;
}
/* tile by M: small M keeps more CTAs along N (the codes stream), large M reuses each decoded tile more */
template <typename XT, typename ST>
static pt_status launch_tc_x(pt_cuda_ctx* ctx, scratch_guard& sg, const void* x, int64_t ldx, int64_t m, const uint8_t* codes, int64_t ldq,
                             const void* sc, int64_t lds, int group, const float* bias, void* y, int ydt, int64_t ldy, int64_t n, int64_t k,
                             const fp4_lv& lv) {
    if (m <= 32) return launch_tc_t<XT, ST, 32, 64, 1, 4>(ctx, sg, x, ldx, m, codes, ldq, sc, lds, group, bias, y, ydt, ldy, n, k, lv);
    if (m <= 128) return launch_tc_t<XT, ST, 64, 128, 2, 4>(ctx, sg, x, ldx, m, codes, ldq, sc, lds, group, bias, y, ydt, ldy, n, k, lv);
    return launch_tc_t<XT, ST, 128, 128, 2, 4>(ctx, sg, x, ldx, m, codes, ldq, sc, lds, group, bias, y, ydt, ldy, n, k, lv);
}

/* Largest M served by the register-decoding GEMV; larger M runs the tensor-core GEMM (16-bit x)
 * or the GEMV per 4 rows (f32 x). */
static const int FP4_GEMV_MAX_M = 4;

extern "C" PT_API pt_status pt_cuda_fp4_matmul(pt_cuda_ctx* ctx, const pt_tensor* x, const pt_tensor* codes, const pt_tensor* scales,
                                               const pt_tensor* bias, pt_tensor* y, const struct pt_fp4_matmul_params* params) {
    pt_clear_error();
    static const char* fn = "pt_cuda_fp4_matmul";
    PT_CHECK(pt_cuda_enter(ctx, fn));
    if (!params) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: params is NULL (format and group are needed)", fn);
    const pt_fp4_matmul_params p = *params;
    if (p.format < PT_FP4_E2M1 || p.format > PT_FP4_NF4)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: unknown format %d (expected 0..3: E2M1, E1M2, E3M0, NF4)", fn, p.format);
    if (p.group != 0 && p.group != 32 && p.group != 64 && p.group != 128)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: group %d must be 0 (per channel), 32, 64 or 128", fn, p.group);
    if (p.w4a4 != 0 && p.w4a4 != 1) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: w4a4 must be 0 or 1, got %d", fn, p.w4a4);
    const float act_clip = p.act_clip == 0.0f ? 1.0f : p.act_clip;
    if (p.w4a4) {
        if (p.act_format < PT_FP4_E2M1 || p.act_format > PT_FP4_NF4)
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: unknown act_format %d (expected 0..3: E2M1, E1M2, E3M0, NF4)", fn, p.act_format);
        if (!(act_clip > 0.0f && act_clip <= 1.0f))
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: act_clip %g must be in (0, 1]", fn, (double)p.act_clip);
    }
    static const int32_t xdt[] = {PT_F32, PT_F16, PT_BF16}, sdt[] = {PT_F32, PT_BF16};
    PT_CHECK(pt_cuda_check_tensor(x, "pt_cuda_fp4_matmul x", 2, 2, 3, xdt));
    PT_CHECK(pt_cuda_check_tensor(y, "pt_cuda_fp4_matmul y", 2, 2, 3, xdt));
    PT_CHECK(pt_cuda_check_tensor(scales, "pt_cuda_fp4_matmul scales", 2, 2, 2, sdt));
    PT_CHECK(check_row_stride(x, "x", fn));
    PT_CHECK(check_row_stride(y, "y", fn));
    /* codes: PT_U4 [N, K] on the device, K even, rows contiguous */
    if (!codes) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: codes is NULL", fn);
    char dx[96], dq[96], ds[96], dy[96];
    pt_describe(x, dx, sizeof dx);
    pt_describe(codes, dq, sizeof dq);
    pt_describe(scales, ds, sizeof ds);
    pt_describe(y, dy, sizeof dy);
    if (codes->device != PT_DEVICE_CUDA || codes->dtype != PT_U4 || codes->ndim != 2)
        return pt_fail(PT_ERR_DTYPE, "%s: codes %s must be a 2-D u4 tensor on the CUDA device (dtype %s, device %d)", fn, dq,
                       pt_dtype_name(codes->dtype), codes->device);
    const int64_t m = x->shape[0], k = x->shape[1], n = codes->shape[0];
    if (codes->shape[1] != k || (k & 1))
        return pt_fail(PT_ERR_SHAPE, "%s: codes %s must be [N, K] with x's K = %lld, and K even", fn, dq, (long long)k);
    if (codes->shape[0] < 0 || (n > 0 && k > 0 && !codes->data)) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: codes data is NULL", fn);
    if (codes->stride[1] != 0 && codes->stride[1] != 1) return pt_fail(PT_ERR_SHAPE, "%s: codes %s rows must be contiguous", fn, dq);
    const int64_t ldq = n > 1 ? codes->stride[0] : k / 2;
    if (ldq < k / 2) return pt_fail(PT_ERR_SHAPE, "%s: codes %s row stride %lld bytes < K/2", fn, dq, (long long)ldq);
    if (p.group && k % p.group)
        return pt_fail(PT_ERR_SHAPE, "%s: K = %lld is not a multiple of the group %d", fn, (long long)k, p.group);
    const int64_t ng = p.group ? k / p.group : 1;
    if (scales->shape[0] != n || scales->shape[1] != ng)
        return pt_fail(PT_ERR_SHAPE, "%s: scales %s, expected [N=%lld, %lld] for group %d", fn, ds, (long long)n, (long long)ng, p.group);
    PT_CHECK(check_row_stride(scales, "scales", fn));
    if (y->shape[0] != m || y->shape[1] != n)
        return pt_fail(PT_ERR_SHAPE, "%s: y %s, expected [%lld, %lld] for x %s and codes %s", fn, dy, (long long)m, (long long)n, dx, dq);
    if (y->dtype != x->dtype && y->dtype != PT_F32)
        return pt_fail(PT_ERR_DTYPE, "%s: y is %s; with %s x it must be %s or f32", fn, pt_dtype_name(y->dtype), pt_dtype_name(x->dtype),
                       pt_dtype_name(x->dtype));
    if (bias) PT_CHECK(check_vec(bias, "pt_cuda_fp4_matmul bias", n, fn));
    if (m == 0 || n == 0) return PT_OK;
    if (k == 0) return pt_fail(PT_ERR_UNSUPPORTED, "%s: K = 0 is not supported", fn);
    fp4_lv lv;
    fp4_levels_host(p.format, lv.v);
    const int64_t ldx = row_stride_elems(x, k), lds = row_stride_elems(scales, ng), ldy = row_stride_elems(y, n);
    scratch_guard sg{ctx};
    /* GEMV: codes and x rows must be 16-byte aligned for the vector loads; copy them otherwise */
    const uint8_t* cq = (const uint8_t*)codes->data;
    int64_t ldq_use = ldq;
    if ((uintptr_t)cq % 16 || (n > 1 && ldq % 16)) {
        void* c2;
        ldq_use = (k / 2 + 15) / 16 * 16;
        PT_CHECK(sg.get((size_t)n * (size_t)ldq_use, &c2));
        PT_CUDA_TRY(cudaMemcpy2DAsync(c2, (size_t)ldq_use, cq, (size_t)ldq, (size_t)(k / 2), (size_t)n, cudaMemcpyDeviceToDevice, ctx->stream),
                    "pt_cuda_fp4_matmul: aligned copy of the codes");
        cq = (const uint8_t*)c2;
    }
    const size_t xes = pt_dtype_size(x->dtype);
    const void* xp = x->data;
    int64_t ldx_use = ldx;
    if (!p.w4a4 && ((uintptr_t)xp % 16 || (m > 1 && (ldx * (int64_t)xes) % 16))) { /* W4A4 writes an aligned xq */
        void* x2;
        ldx_use = (k * (int64_t)xes + 15) / 16 * 16 / (int64_t)xes;
        PT_CHECK(sg.get((size_t)m * (size_t)ldx_use * xes, &x2));
        PT_CUDA_TRY(cudaMemcpy2DAsync(x2, (size_t)(ldx_use * (int64_t)xes), xp, (size_t)(ldx * (int64_t)xes), (size_t)(k * (int64_t)xes),
                                      (size_t)m, cudaMemcpyDeviceToDevice, ctx->stream),
                    "pt_cuda_fp4_matmul: aligned copy of x");
        xp = x2;
    }
    if (p.w4a4) {
        /* W4A4, emulated: xq [M, K] in x's dtype, then the weight-only kernels on xq */
        const int32_t* sh = nullptr;
        if (p.act_shift) {
            const pt_tensor* t = p.act_shift;
            if (t->device != PT_DEVICE_CUDA || t->dtype != PT_I32 || t->ndim != 1 || t->shape[0] != k || (k > 1 && t->stride[0] != 4) ||
                !t->data)
                return pt_fail(PT_ERR_SHAPE, "%s: act_shift must be a contiguous i32[%lld] (K) on the CUDA device (dtype %s, ndim %d, device %d)",
                               fn, (long long)k, pt_dtype_name(t->dtype), t->ndim, t->device);
            sh = (const int32_t*)t->data;
        }
        fp4_lv alv;
        fp4_levels_host(p.act_format, alv.v);
        float mx = 0.0f;
        for (int i = 0; i < 16; i++) mx = fabsf(alv.v[i]) > mx ? fabsf(alv.v[i]) : mx;
        const float inv_max = 1.0f / mx;
        void* xq;
        const int64_t ldxq = (k * (int64_t)xes + 15) / 16 * 16 / (int64_t)xes;
        PT_CHECK(sg.get((size_t)m * (size_t)ldxq * xes, &xq));
#define PT_AQ(XT) fp4_act_quant_kernel<XT><<<(unsigned)m, 256, 0, ctx->stream>>>((const XT*)x->data, ldx, k, sh, act_clip, inv_max, (XT*)xq, ldxq, alv)
        if (x->dtype == PT_F32) PT_AQ(float);
        else if (x->dtype == PT_BF16) PT_AQ(__nv_bfloat16);
        else PT_AQ(__half);
#undef PT_AQ
        PT_CUDA_LAUNCH_CHECK("pt_cuda_fp4_matmul: W4A4 activation quantization launch");
        xp = xq;
        ldx_use = ldxq;
    }
    const float* bp = bias ? (const float*)bias->data : nullptr;
    if (m > FP4_GEMV_MAX_M && x->dtype != PT_F32) {
#define PT_TC(XT, ST) PT_CHECK((launch_tc_x<XT, ST>(ctx, sg, xp, ldx_use, m, cq, ldq_use, scales->data, lds, p.group, bp, y->data, y->dtype, ldy, n, k, lv)))
        if (scales->dtype == PT_F32) {
            if (x->dtype == PT_BF16) PT_TC(__nv_bfloat16, float);
            else PT_TC(__half, float);
        } else {
            if (x->dtype == PT_BF16) PT_TC(__nv_bfloat16, __nv_bfloat16);
            else PT_TC(__half, __nv_bfloat16);
        }
#undef PT_TC
        PT_CUDA_LAUNCH_CHECK("pt_cuda_fp4_matmul: tensor-core GEMM launch");
        return PT_OK;
    }
    const bool pair = p.format != PT_FP4_NF4; /* E2M1 / E1M2 / E3M0 levels are exact in bf16 */
    /* GEMV; f32 x with M > 4 runs it per 4 rows (each pass re-reads the codes) */
    const size_t yes = pt_dtype_size(y->dtype);
    for (int64_t r0 = 0; r0 < m; r0 += FP4_GEMV_MAX_M) {
        const int mr = (int)(m - r0 < FP4_GEMV_MAX_M ? m - r0 : FP4_GEMV_MAX_M);
        const void* xr = (const char*)xp + (size_t)(r0 * ldx_use) * xes;
        void* yr = (char*)y->data + (size_t)(r0 * ldy) * yes;
#define PT_GEMV(XT, ST) launch_gemv_x<XT, ST>(ctx, pair, xr, ldx_use, mr, cq, ldq_use, scales->data, lds, p.group, bp, yr, y->dtype, ldy, n, k, lv)
        if (scales->dtype == PT_F32) {
            if (x->dtype == PT_F32) PT_GEMV(float, float);
            else if (x->dtype == PT_BF16) PT_GEMV(__nv_bfloat16, float);
            else PT_GEMV(__half, float);
        } else {
            if (x->dtype == PT_F32) PT_GEMV(float, __nv_bfloat16);
            else if (x->dtype == PT_BF16) PT_GEMV(__nv_bfloat16, __nv_bfloat16);
            else PT_GEMV(__half, __nv_bfloat16);
        }
#undef PT_GEMV
        PT_CUDA_LAUNCH_CHECK("pt_cuda_fp4_matmul: GEMV launch");
    }
    return PT_OK;
}
