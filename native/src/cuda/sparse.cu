/* Sparse matmul on the GPU (issue 7 item 6), y = x @ w^T (+ bias), the Linear layout:
 *  - 2:4 structured sparsity through cuSPARSELt (dlopen'ed, cusparselt.cuh): the weight is
 *    pruned and compressed once into a pt_cuda_sparse24 handle that also caches the matmul
 *    plans; calls with few rows (decode shapes) go to a dense cuBLASLt GEMM on the pruned
 *    weight, where cuSPARSELt loses (rule: M <= dense_max_m, measured in BENCHMARKS.md).
 *  - block-sparse SpMM with our own kernel: the weight's non-zero 64 x 64 blocks (BSR), an
 *    mma.sync m16n8k16 tile of 128 x 64 outputs per CTA that walks only the non-zero blocks of
 *    its block row (cp.async 3-stage pipeline, XOR-swizzled shared memory, ldmatrix), f32
 *    accumulation, bias epilogue; split over the block list (f32 atomics into a scratch) when
 *    M is small so that decode shapes fill the GPU.
 * Handle-owned memory comes from cudaMalloc (not the context's cache): the caller frees the
 * handle explicitly, possibly after the context's cache was emptied. */
#include "cusparselt.cuh"
#include "cuda_common.cuh"
#include "cuda_elem.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <dlfcn.h>
#include <stdlib.h>

#include <atomic>
#include <type_traits>

/* ---------------------------------------------------------------- cuSPARSELt loader */

namespace ptsl {

static api g_api;
static int g_state = 0; /* 0 untried, 1 loaded, -1 failed */
static char g_why[512];
static std::mutex g_mu;

const api* load() {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_state == 0) {
        const char* names[] = {getenv("PANATRON_CUSPARSELT"), "libcusparseLt.so.0", "libcusparseLt.so"};
        void* h = nullptr;
        for (const char* n : names)
            if (n && *n && (h = dlopen(n, RTLD_NOW | RTLD_LOCAL))) break;
        if (!h) {
            const char* e = dlerror();
            snprintf(g_why, sizeof g_why,
                     "cuSPARSELt not found (tried $PANATRON_CUSPARSELT, libcusparseLt.so.0; pip package "
                     "nvidia-cusparselt-cu13 ships it): %s", e ? e : "");
            g_state = -1;
        } else {
            bool ok = true;
#define PT_SYM(field, name)                                                                        \
    do {                                                                                           \
        *(void**)&g_api.field = dlsym(h, name);                                                    \
        if (!g_api.field) { ok = false; snprintf(g_why, sizeof g_why, "cuSPARSELt lacks %s", name); } \
    } while (0)
            PT_SYM(Init, "cusparseLtInit");
            PT_SYM(Destroy, "cusparseLtDestroy");
            PT_SYM(GetErrorString, "cusparseLtGetErrorString");
            PT_SYM(GetProperty, "cusparseLtGetProperty");
            PT_SYM(DenseDescriptorInit, "cusparseLtDenseDescriptorInit");
            PT_SYM(StructuredDescriptorInit, "cusparseLtStructuredDescriptorInit");
            PT_SYM(MatDescriptorDestroy, "cusparseLtMatDescriptorDestroy");
            PT_SYM(MatmulDescriptorInit, "cusparseLtMatmulDescriptorInit");
            PT_SYM(MatmulAlgSelectionInit, "cusparseLtMatmulAlgSelectionInit");
            PT_SYM(MatmulAlgSelectionDestroy, "cusparseLtMatmulAlgSelectionDestroy");
            PT_SYM(MatmulAlgGetAttribute, "cusparseLtMatmulAlgGetAttribute");
            PT_SYM(MatmulGetWorkspace, "cusparseLtMatmulGetWorkspace");
            PT_SYM(MatmulPlanInit, "cusparseLtMatmulPlanInit");
            PT_SYM(MatmulPlanDestroy, "cusparseLtMatmulPlanDestroy");
            PT_SYM(Matmul, "cusparseLtMatmul");
            PT_SYM(MatmulSearch, "cusparseLtMatmulSearch");
            PT_SYM(SpMMACompressedSize2, "cusparseLtSpMMACompressedSize2");
            PT_SYM(SpMMACompress2, "cusparseLtSpMMACompress2");
            PT_SYM(SpMMAPruneCheck2, "cusparseLtSpMMAPruneCheck2");
#undef PT_SYM
            g_state = ok ? 1 : -1;
        }
    }
    if (g_state < 0) {
        pt_fail(PT_ERR_UNSUPPORTED, "%s", g_why);
        return nullptr;
    }
    return &g_api;
}

}  // namespace ptsl

namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
int grid_for(int64_t n) {
    int64_t b = (n + 255) / 256;
    return (int)(b < 65535 * 16 ? (b > 0 ? b : 1) : 65535 * 16);
}

/* ---------------------------------------------------------------- common kernels */

/* wp [np, kp] (contiguous) = w [n, k] (row stride ldw elements) zero-padded; prune: each group
 * of 4 along k keeps its 2 largest |w| (ties: lower k). bad (prune = 0): groups with > 2
 * non-zeros are counted. One thread per group of 4. */
template <typename T>
__global__ void prune24_kernel(const T* w, int64_t ldw, int64_t n, int64_t k, T* wp, int64_t np, int64_t kp, int prune,
                               int* bad) {
    const int64_t groups = np * (kp / 4);
    for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = g / (kp / 4), c0 = (g % (kp / 4)) * 4;
        float v[4], a[4];
        int nz = 0;
        for (int i = 0; i < 4; i++) {
            v[i] = (r < n && c0 + i < k) ? ldf(w + r * ldw + c0 + i) : 0.0f;
            a[i] = fabsf(v[i]);
            if (isnan(v[i])) a[i] = __int_as_float(0x7f800000); /* NaN kept (visible downstream) */
            nz += v[i] != 0.0f || isnan(v[i]);
        }
        if (prune) {
            /* rank of element i: how many others beat it (larger, or equal at a lower index) */
            for (int i = 0; i < 4; i++) {
                int beat = 0;
                for (int j = 0; j < 4; j++)
                    if (j != i && (a[j] > a[i] || (a[j] == a[i] && j < i))) beat++;
                if (beat >= 2) v[i] = 0.0f;
            }
        } else if (nz > 2) {
            atomicAdd(bad, 1);
        }
        for (int i = 0; i < 4; i++) stf(wp + r * kp + c0 + i, v[i]);
    }
}

/* dst [mp, kp] (contiguous) = src [m, k] (row stride lds elements), zero-padded rows and columns */
template <typename T>
__global__ void pad_kernel(const T* src, int64_t lds, int64_t m, int64_t k, T* dst, int64_t mp, int64_t kp) {
    const int64_t total = mp * kp;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / kp, c = i % kp;
        dst[i] = r < m && c < k ? src[r * lds + c] : T(0.0f);
    }
}

/* bias kinds: 0 none, 1 f32, 2 bf16, 3 f16 */
__device__ __forceinline__ float bias_at(const void* b, int kind, int64_t c) {
    return kind == 1 ? ((const float*)b)[c]
         : kind == 2 ? __bfloat162float(((const __nv_bfloat16*)b)[c])
         : kind == 3 ? __half2float(((const __half*)b)[c]) : 0.0f;
}
int bias_kind(const pt_tensor* b) { return !b ? 0 : b->dtype == PT_F32 ? 1 : b->dtype == PT_BF16 ? 2 : 3; }

/* y[r, c] = src[r, c] + bias[c]; src may alias y (same type). */
template <typename ST, typename YT>
__global__ void finish_kernel(const ST* src, int64_t lds, YT* y, int64_t ldy, int64_t m, int64_t n, const void* bias, int bkind) {
    const int64_t total = m * n;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / n, c = i % n;
        float v = ldf(src + r * lds + c);
        if (bkind) v += bias_at(bias, bkind, c);
        stf(y + r * ldy + c, v);
    }
}

/* ---------------------------------------------------------------- BSR kernels */

constexpr int BS = 64;      /* block edge */
/* Tile configurations of the SpMM kernel: BM_ output rows per CTA, WM_ x WN_ warps over the
 * BM_ x 64 tile, STG_ pipeline stages. Large M: 256 rows (x tile reuse: each 64 x 64 weight
 * block feeds 256 rows, less L2 traffic per MMA); decode shapes: 32 rows, 4 warps (less work on
 * the zero-filled rows, more CTAs per SM). */
template <int BM_, int WM_, int WN_, int STG_>
struct bsr_cfg {
    static constexpr int BM = BM_, WM = WM_, WN = WN_, STG = STG_, THREADS = 32 * WM_ * WN_;
    static constexpr int MI = BM_ / WM_ / 16, NI = BS / WN_ / 8;
    static constexpr int SX = BM_ * BS, SW = BS * BS; /* elements per stage */
    static constexpr int SMEM = STG_ * (SX + SW) * 2;
    static_assert(MI >= 1 && NI >= 2 && NI % 2 == 0, "warp tile");
};
using cfg_big = bsr_cfg<256, 4, 2, 3>;
using cfg_mid = bsr_cfg<128, 4, 2, 3>;
using cfg_small = bsr_cfg<32, 1, 4, 4>;

/* flags[bn * kb + bk] = 1 when block (bn, bk) of w [n, k] holds a non-zero (NaN counts) */
template <typename T>
__global__ void block_flags_kernel(const T* w, int64_t ldw, int64_t n, int64_t k, int64_t kb, int* flags) {
    const int64_t bn = blockIdx.y, bk = blockIdx.x;
    int any = 0;
    for (int i = threadIdx.x; i < BS * BS; i += blockDim.x) {
        int64_t r = bn * BS + i / BS, c = bk * BS + i % BS;
        if (r < n && c < k) {
            float v = ldf(w + r * ldw + c);
            any |= v != 0.0f || isnan(v);
        }
    }
    any = __syncthreads_or(any);
    if (threadIdx.x == 0) flags[bn * kb + bk] = any;
}

/* blocks[p] (64 x 64, [n][k]) = block (brow[p], bcol[p]) of w, zero-padded */
template <typename T>
__global__ void block_pack_kernel(const T* w, int64_t ldw, int64_t n, int64_t k, const int* brow, const int* bcol, T* blocks) {
    const int64_t p = blockIdx.x;
    const int64_t r0 = (int64_t)brow[p] * BS, c0 = (int64_t)bcol[p] * BS;
    for (int i = threadIdx.x; i < BS * BS; i += blockDim.x) {
        int64_t r = r0 + i / BS, c = c0 + i % BS;
        blocks[p * BS * BS + i] = (r < n && c < k) ? w[r * ldw + c] : T(0.0f);
    }
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
template <bool BF16>
__device__ __forceinline__ void mma16816(float* d, const uint32_t* a, const uint32_t* b) {
    if (BF16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
/* byte offset of element (r, c) in a [rows][64] 16-bit tile whose 16-byte chunks are XOR-swizzled by row */
__device__ __forceinline__ uint32_t swz(int r, int c) { return (uint32_t)(r * 128 + ((((c >> 3) ^ (r & 7))) << 4) + ((c & 7) << 1)); }

/* One CTA: rows m0 .. m0+BM-1 of y, the 64 columns of block row blockIdx.x; z-slice blockIdx.z
 * of that block row's non-zero blocks. x: 16-byte aligned rows (ldx % 8 == 0), columns >= kx
 * (kx % 8 == 0) read as zero. partial != NULL: f32 atomics into partial [m, n] (no bias). */
template <typename CFG, typename T, typename YT>
__global__ void __launch_bounds__(CFG::THREADS) bsr_mma_kernel(const T* __restrict__ x, int64_t ldx, int64_t m, int64_t kx,
                                                              const T* __restrict__ blocks, const int* __restrict__ row_ptr,
                                                              const int* __restrict__ col_idx, const void* bias, int bkind, YT* y,
                                                              int64_t ldy, int64_t n, float* partial) {
    constexpr bool BF16 = !std::is_same<T, __half>::value;
    constexpr int BMc = CFG::BM, STG = CFG::STG, T_ = CFG::THREADS, MI = CFG::MI, NI = CFG::NI;
    constexpr int WTM = BMc / CFG::WM, WTN = BS / CFG::WN; /* warp tile */
    extern __shared__ __align__(128) unsigned char smem[];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp % CFG::WM, wn = warp / CFG::WM;
    const int64_t m0 = (int64_t)blockIdx.y * BMc, n0 = (int64_t)blockIdx.x * BS;
    const int p_begin = row_ptr[blockIdx.x], p_end_all = row_ptr[blockIdx.x + 1];
    const int per = (p_end_all - p_begin + gridDim.z - 1) / gridDim.z;
    const int pb = p_begin + per * blockIdx.z, pe = min(pb + per, p_end_all);
    const int nblk = pe > pb ? pe - pb : 0;
    const uint32_t sbase = smem_u32(smem);
    auto sx = [&](int s) { return sbase + (uint32_t)s * (CFG::SX + CFG::SW) * 2; };
    auto sw = [&](int s) { return sx(s) + CFG::SX * 2; };

    auto load = [&](int it, int s) {
        const int p = pb + it;
        const int64_t kc0 = (int64_t)col_idx[p] * BS;
        static_assert((BMc * 8) % T_ == 0 && (BS * 8) % T_ == 0, "whole chunks per thread");
#pragma unroll
        for (int i = 0; i < BMc * 8 / T_; i++) {
            int c = tid + i * T_, r = c >> 3, cc = c & 7;
            int64_t gm = m0 + r, gk = kc0 + cc * 8;
            bool ok = gm < m && gk < kx;
            cp_async16(sx(s) + swz(r, cc * 8), ok ? (const void*)(x + gm * ldx + gk) : (const void*)x, ok ? 16 : 0);
        }
        const T* wb = blocks + (int64_t)p * BS * BS;
#pragma unroll
        for (int i = 0; i < BS * 8 / T_; i++) {
            int c = tid + i * T_, r = c >> 3, cc = c & 7;
            cp_async16(sw(s) + swz(r, cc * 8), wb + r * BS + cc * 8, 16);
        }
    };

    float acc[MI][NI][4];
#pragma unroll
    for (int a = 0; a < MI; a++)
#pragma unroll
        for (int b = 0; b < NI; b++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[a][b][c] = 0.0f;

#pragma unroll
    for (int s = 0; s < STG - 1; s++) {
        if (s < nblk) load(s, s);
        cp_commit();
    }
    for (int it = 0; it < nblk; it++) {
        cp_wait<STG - 2>();
        __syncthreads();
        if (it + STG - 1 < nblk) load(it + STG - 1, (it + STG - 1) % STG);
        cp_commit();
        const int s = it % STG;
#pragma unroll
        for (int kk = 0; kk < BS / 16; kk++) {
            uint32_t af[MI][4], bf[NI][2];
#pragma unroll
            for (int mi = 0; mi < MI; mi++) {
                int r = wm * WTM + mi * 16 + (lane & 15), c = kk * 16 + (lane >> 4) * 8;
                ldsm_x4(sx(s) + swz(r, c), af[mi][0], af[mi][1], af[mi][2], af[mi][3]);
            }
#pragma unroll
            for (int nj = 0; nj < NI / 2; nj++) {
                int r = wn * WTN + nj * 16 + (lane & 7) + (lane >> 4) * 8, c = kk * 16 + ((lane >> 3) & 1) * 8;
                ldsm_x4(sw(s) + swz(r, c), bf[nj * 2][0], bf[nj * 2][1], bf[nj * 2 + 1][0], bf[nj * 2 + 1][1]);
            }
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
#pragma unroll
                for (int ni = 0; ni < NI; ni++) mma16816<BF16>(acc[mi][ni], af[mi], bf[ni]);
        }
    }
    cp_wait<0>();

    /* epilogue */
#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int ni = 0; ni < NI; ni++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                int64_t row = m0 + wm * WTM + mi * 16 + (lane >> 2) + h * 8;
                if (row >= m) continue;
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    int64_t col = n0 + wn * WTN + ni * 8 + (lane & 3) * 2 + e;
                    if (col >= n) continue;
                    float v = acc[mi][ni][h * 2 + e];
                    if (partial) {
                        if (nblk) atomicAdd(partial + row * n + col, v);
                    } else {
                        if (bkind) v += bias_at(bias, bkind, col);
                        stf(y + row * ldy + col, v);
                    }
                }
            }
}

/* ---------------------------------------------------------------- helpers */

pt_status check_2d(const pt_tensor* t, const char* what, int32_t dtype) {
    const int32_t dts[] = {dtype};
    return pt_cuda_check_tensor(t, what, 2, 2, 1, dts);
}

/* row stride of a 2-D tensor in elements (a single row: its width) */
int64_t ld_of(const pt_tensor* t) {
    size_t es = pt_dtype_size(t->dtype);
    return t->shape[0] > 1 ? t->stride[0] / (int64_t)es : t->shape[1];
}

pt_status check_ld(const pt_tensor* t, const char* what) {
    size_t es = pt_dtype_size(t->dtype);
    if (t->shape[0] > 1 && (t->stride[0] % (int64_t)es != 0 || t->stride[0] / (int64_t)es < t->shape[1])) {
        char d[96];
        pt_describe(t, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "%s %s: row stride must be a whole number of elements >= the row width", what, d);
    }
    return PT_OK;
}

pt_status check_bias(const pt_tensor* bias, const char* fn, int64_t n, int32_t dtype) {
    if (!bias) return PT_OK;
    char what[96];
    snprintf(what, sizeof what, "%s bias", fn);
    const int32_t dts[] = {PT_F32, dtype};
    PT_CHECK(pt_cuda_check_tensor(bias, what, 1, 1, 2, dts));
    if (bias->shape[0] != n)
        return pt_fail(PT_ERR_SHAPE, "%s: bias has %lld elements, expected N = %lld", fn, (long long)bias->shape[0], (long long)n);
    return PT_OK;
}

bool aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }

/* x [M, K] and y [M, N] (dtypes checked by the caller) against a weight [N, K]: row strides,
 * K, and y's shape; then bias [N]. */
pt_status check_xy(const char* fn, const pt_tensor* x, const pt_tensor* y, const pt_tensor* bias, int64_t n, int64_t k,
                   int32_t dtype) {
    char what[96];
    snprintf(what, sizeof what, "%s x", fn);
    PT_CHECK(check_ld(x, what));
    snprintf(what, sizeof what, "%s y", fn);
    PT_CHECK(check_ld(y, what));
    char dx[96], dy[96];
    pt_describe(x, dx, sizeof dx);
    pt_describe(y, dy, sizeof dy);
    if (x->shape[1] != k)
        return pt_fail(PT_ERR_SHAPE, "%s: x %s has K = %lld, the weight [%lld, %lld] has K = %lld", fn, dx, (long long)x->shape[1],
                       (long long)n, (long long)k, (long long)k);
    if (y->shape[0] != x->shape[0] || y->shape[1] != n)
        return pt_fail(PT_ERR_SHAPE, "%s: y %s, expected [%lld, %lld]", fn, dy, (long long)x->shape[0], (long long)n);
    return check_bias(bias, fn, n, dtype);
}

}  // namespace

/* ================================================================ 2:4 through cuSPARSELt */

struct sl_plan {
    bool used = false;
    int64_t m = 0, ldb = 0, ldd = 0;
    uint64_t stamp = 0;
    ptsl::mat_t mb, mc;
    ptsl::mmdesc_t mm;
    ptsl::algsel_t alg;
    ptsl::plan_t plan;
    void* ws = nullptr;
    size_t ws_bytes = 0;
    bool searched = false;
    bool failed = false; /* cuSPARSELt has no plan for this shape: the automatic mode goes dense */
};

struct pt_cuda_sparse24 {
    int device = 0;
    int32_t dtype = 0;
    int64_t n = 0, k = 0, np = 0, kp = 0;
    int32_t dense_max_m = PT_CUDA_SPARSE24_DENSE_MAX_M;
    int32_t search = 0;
    void* wp = nullptr;          /* pruned weight [np, kp], zero-padded (the dense fallback's b) */
    void* wc = nullptr;          /* compressed weight (cuSPARSELt) */
    ptsl::handle_t lt;
    bool lt_ok = false, ma_ok = false;
    ptsl::mat_t ma;
    std::mutex mu;
    static constexpr int NPLANS = 16;
    sl_plan plans[NPLANS];
    uint64_t clock = 0;
};

static pt_status sl_fail(const ptsl::api* L, ptsl::status_t s, const char* fn, const char* what) {
    return pt_fail(PT_ERR_BACKEND, "%s: %s failed: cuSPARSELt status %d (%s)", fn, what, s, L->GetErrorString(s));
}
#define SL_TRY(call, what)                                            \
    do {                                                              \
        ptsl::status_t s_ = (call);                                   \
        if (s_ != ptsl::SUCCESS) return sl_fail(L, s_, FN, what);     \
    } while (0)

static void sl_plan_free(const ptsl::api* L, sl_plan& p) {
    if (!p.used) return;
    if (!p.failed) {
        L->MatmulPlanDestroy(&p.plan);
        L->MatmulAlgSelectionDestroy(&p.alg);
        L->MatDescriptorDestroy(&p.mb);
        L->MatDescriptorDestroy(&p.mc);
    }
    if (p.ws) cudaFree(p.ws);
    p = sl_plan();
}

static void sparse24_free(pt_cuda_sparse24* h) {
    const ptsl::api* L = ptsl::g_state == 1 ? &ptsl::g_api : nullptr;
    if (L) {
        for (auto& p : h->plans) sl_plan_free(L, p);
        if (h->ma_ok) L->MatDescriptorDestroy(&h->ma);
        if (h->lt_ok) L->Destroy(&h->lt);
    }
    if (h->wp) cudaFree(h->wp);
    if (h->wc) cudaFree(h->wc);
    delete h;
}

extern "C" PT_API pt_status pt_cuda_sparse24_create(pt_cuda_ctx* ctx, const pt_tensor* w, const pt_cuda_sparse24_params* params,
                                                    pt_cuda_sparse24** out) {
    static const char* FN = "pt_cuda_sparse24_create";
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: out is NULL", FN);
    *out = nullptr;
    PT_CHECK(pt_cuda_enter(ctx, FN));
    static const int32_t dts[] = {PT_BF16, PT_F16};
    PT_CHECK(pt_cuda_check_tensor(w, "pt_cuda_sparse24_create w", 2, 2, 2, dts));
    PT_CHECK(check_ld(w, "pt_cuda_sparse24_create w"));
    pt_cuda_sparse24_params p = {1, -1, 0, 0};
    if (params) p = *params;
    if (p.prune != 0 && p.prune != 1) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: params->prune is %d (0 or 1)", FN, p.prune);
    if (p.dense_max_m < -1) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: params->dense_max_m is %d (>= -1)", FN, p.dense_max_m);
    const int64_t n = w->shape[0], k = w->shape[1];
    if (n == 0 || k == 0) {
        char d[96];
        pt_describe(w, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "%s: w %s is empty", FN, d);
    }
    if (ctx->cc_major < 8)
        return pt_fail(PT_ERR_UNSUPPORTED, "%s: 2:4 sparse tensor cores need compute capability 8.0+, this GPU is %d.%d", FN,
                       ctx->cc_major, ctx->cc_minor);
    const ptsl::api* L = ptsl::load();
    if (!L) return PT_ERR_UNSUPPORTED;

    pt_cuda_sparse24* h = new (std::nothrow) pt_cuda_sparse24();
    if (!h) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: out of host memory", FN);
    struct guard {
        pt_cuda_sparse24* h;
        ~guard() { if (h) sparse24_free(h); }
    } g{h};
    h->device = ctx->device;
    h->dtype = w->dtype;
    h->n = n;
    h->k = k;
    /* cuSPARSELt's sm90 kernels read whole 128-deep K tiles of the compressed weight: with K
     * < 128 a searched configuration read past it (compute-sanitizer, cuSPARSELt 0.8.1) */
    h->np = round_up(n, 128);
    h->kp = round_up(k, 128);
    h->dense_max_m = p.dense_max_m < 0 ? PT_CUDA_SPARSE24_DENSE_MAX_M : p.dense_max_m;
    h->search = !p.no_search;
    const size_t es = 2;
    PT_CUDA_TRY(cudaMalloc(&h->wp, (size_t)(h->np * h->kp) * es), "pt_cuda_sparse24_create: cudaMalloc (pruned weight)");
    int* bad = nullptr;
    PT_CHECK(pt_cuda_alloc_internal(ctx, sizeof(int), (void**)&bad));
    struct bad_guard {
        pt_cuda_ctx* c;
        int* b;
        ~bad_guard() { pt_cuda_free_internal(c, b); }
    } bg{ctx, bad};
    PT_CUDA_TRY(cudaMemsetAsync(bad, 0, sizeof(int), ctx->stream), FN);
    const int64_t ldw = ld_of(w), groups = h->np * (h->kp / 4);
    if (w->dtype == PT_BF16)
        prune24_kernel<__nv_bfloat16><<<grid_for(groups), 256, 0, ctx->stream>>>((const __nv_bfloat16*)w->data, ldw, n, k,
                                                                                 (__nv_bfloat16*)h->wp, h->np, h->kp, p.prune, bad);
    else
        prune24_kernel<__half><<<grid_for(groups), 256, 0, ctx->stream>>>((const __half*)w->data, ldw, n, k, (__half*)h->wp, h->np,
                                                                          h->kp, p.prune, bad);
    PT_CUDA_LAUNCH_CHECK("pt_cuda_sparse24_create: prune kernel launch");
    if (!p.prune) {
        int nbad = 0;
        PT_CUDA_TRY(cudaMemcpyAsync(&nbad, bad, sizeof nbad, cudaMemcpyDeviceToHost, ctx->stream), FN);
        PT_CUDA_TRY(cudaStreamSynchronize(ctx->stream), FN);
        if (nbad) {
            char d[96];
            pt_describe(w, d, sizeof d);
            return pt_fail(PT_ERR_INVALID_ARGUMENT,
                           "%s: w %s is not 2:4 sparse (%d groups of 4 along K hold more than 2 non-zeros); pass params->prune = 1",
                           FN, d, nbad);
        }
    }

    SL_TRY(L->Init(&h->lt), "cusparseLtInit");
    h->lt_ok = true;
    const int dt = w->dtype == PT_BF16 ? ptsl::R_16BF : ptsl::R_16F;
    /* column-major view: A = w^T stored as [kp x np] with ld kp, used as op(A) = A^T ([np x kp]) */
    SL_TRY(L->StructuredDescriptorInit(&h->lt, &h->ma, h->kp, h->np, h->kp, 16, dt, ptsl::ORDER_COL, ptsl::SPARSITY_50),
           "cusparseLtStructuredDescriptorInit");
    h->ma_ok = true;
    size_t csize = 0, cbuf = 0;
    SL_TRY(L->SpMMACompressedSize2(&h->lt, &h->ma, &csize, &cbuf), "cusparseLtSpMMACompressedSize2");
    PT_CUDA_TRY(cudaMalloc(&h->wc, csize), "pt_cuda_sparse24_create: cudaMalloc (compressed weight)");
    void* cb = nullptr;
    if (cbuf) PT_CHECK(pt_cuda_alloc_internal(ctx, cbuf, &cb));
    ptsl::status_t cs = L->SpMMACompress2(&h->lt, &h->ma, 1, ptsl::OP_T, h->wp, h->wc, cb, ctx->stream);
    pt_cuda_free_internal(ctx, cb);
    if (cs != ptsl::SUCCESS) return sl_fail(L, cs, FN, "cusparseLtSpMMACompress2");
    PT_CUDA_LAUNCH_CHECK("pt_cuda_sparse24_create: compress");
    g.h = nullptr;
    *out = h;
    return PT_OK;
}

/* The plan for (m, ldb, ldd), made on first use; NULL with *failed set when cuSPARSELt has none. */
static pt_status sparse24_plan(pt_cuda_ctx* ctx, pt_cuda_sparse24* h, const ptsl::api* L, int64_t m, int64_t ldb, int64_t ldd,
                               sl_plan** out) {
    static const char* FN = "pt_cuda_sparse24_matmul";
    *out = nullptr;
    sl_plan* victim = &h->plans[0];
    for (auto& p : h->plans) {
        if (p.used && p.m == m && p.ldb == ldb && p.ldd == ldd) {
            p.stamp = ++h->clock;
            *out = &p;
            return PT_OK;
        }
    }
    for (auto& p : h->plans) {
        if (!p.used) { victim = &p; break; }
        if (p.stamp < victim->stamp) victim = &p;
    }
    if (victim->used) {
        cudaStreamSynchronize(ctx->stream); /* its workspace may still be in use */
        sl_plan_free(L, *victim);
    }
    sl_plan& p = *victim;
    p.used = true;
    p.m = m;
    p.ldb = ldb;
    p.ldd = ldd;
    p.stamp = ++h->clock;
    *out = &p;
    const int dt = h->dtype == PT_BF16 ? ptsl::R_16BF : ptsl::R_16F;
    /* B = x^T as [kp x m] column-major (ld = x's row stride); D = y^T as [np x m] (ld = y's) */
    ptsl::status_t s = L->DenseDescriptorInit(&h->lt, &p.mb, h->kp, m, ldb, 16, dt, ptsl::ORDER_COL);
    if (s == ptsl::SUCCESS) {
        s = L->DenseDescriptorInit(&h->lt, &p.mc, h->np, m, ldd, 16, dt, ptsl::ORDER_COL);
        if (s != ptsl::SUCCESS) L->MatDescriptorDestroy(&p.mb);
    }
    if (s == ptsl::SUCCESS) {
        s = L->MatmulDescriptorInit(&h->lt, &p.mm, ptsl::OP_T, ptsl::OP_N, &h->ma, &p.mb, &p.mc, &p.mc, ptsl::COMPUTE_32F);
        if (s == ptsl::SUCCESS) s = L->MatmulAlgSelectionInit(&h->lt, &p.alg, &p.mm, ptsl::ALG_DEFAULT);
        if (s == ptsl::SUCCESS) {
            s = L->MatmulPlanInit(&h->lt, &p.plan, &p.mm, &p.alg);
            if (s != ptsl::SUCCESS) L->MatmulAlgSelectionDestroy(&p.alg);
        }
        if (s != ptsl::SUCCESS) {
            L->MatDescriptorDestroy(&p.mb);
            L->MatDescriptorDestroy(&p.mc);
        }
    }
    if (s != ptsl::SUCCESS) {
        p.failed = true;
        return pt_fail(PT_ERR_UNSUPPORTED, "%s: cuSPARSELt has no plan for M = %lld, N = %lld, K = %lld (status %d: %s)", FN,
                       (long long)m, (long long)h->n, (long long)h->k, s, L->GetErrorString(s));
    }
    SL_TRY(L->MatmulGetWorkspace(&h->lt, &p.plan, &p.ws_bytes), "cusparseLtMatmulGetWorkspace");
    if (p.ws_bytes) PT_CUDA_TRY(cudaMalloc(&p.ws, p.ws_bytes), "pt_cuda_sparse24_matmul: cudaMalloc (workspace)");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_sparse24_path(pt_cuda_sparse24* h, int64_t m, int32_t* out) {
    pt_clear_error();
    if (!h || !out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_sparse24_path: handle or out is NULL");
    *out = m <= h->dense_max_m ? 2 : 1;
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_sparse24_matmul(pt_cuda_ctx* ctx, pt_cuda_sparse24* h, const pt_tensor* x,
                                                    const pt_tensor* bias, pt_tensor* y, int32_t mode) {
    static const char* FN = "pt_cuda_sparse24_matmul";
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, FN));
    if (!h) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: handle is NULL", FN);
    if (h->device != ctx->device)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: the handle belongs to device %d, the context to %d", FN, h->device, ctx->device);
    if (mode < 0 || mode > 2) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: mode is %d (0 auto, 1 sparse, 2 dense)", FN, mode);
    PT_CHECK(check_2d(x, "pt_cuda_sparse24_matmul x", h->dtype));
    PT_CHECK(check_2d(y, "pt_cuda_sparse24_matmul y", h->dtype));
    PT_CHECK(check_xy(FN, x, y, bias, h->n, h->k, h->dtype));
    const int64_t m = x->shape[0];
    if (m == 0) return PT_OK;
    if (mode == 0 && m <= h->dense_max_m) mode = 2;

    const ptsl::api* L = ptsl::load();
    if (!L) return PT_ERR_UNSUPPORTED;
    sl_plan* plan = nullptr;
    const size_t es = 2;
    const int64_t ldx = ld_of(x), ldy = ld_of(y);
    /* cuSPARSELt runs M in multiples of 8 (it has no kernel for other counts): M is padded.
     * x and y are used in place when no padding is needed and rows are 16-byte aligned. */
    const int64_t mp = round_up(m, 8);
    const bool x_direct = mp == m && h->kp == h->k && ldx % 8 == 0 && aligned16(x->data);
    const bool y_direct = mp == m && h->np == h->n && ldy % 8 == 0 && aligned16(y->data);
    const int64_t ldb = x_direct ? ldx : h->kp, ldd = y_direct ? ldy : h->np;
    std::lock_guard<std::mutex> lock(h->mu);
    if (mode != 2) {
        pt_status st = sparse24_plan(ctx, h, L, mp, ldb, ldd, &plan);
        if (st != PT_OK) {
            if (mode == 1 || !plan || !plan->failed) return st;
            pt_clear_error();
            mode = 2; /* automatic: no cuSPARSELt plan for this shape */
        } else if (plan->failed) {
            if (mode == 1) {
                char dx[96], dy[96];
                pt_describe(x, dx, sizeof dx);
                pt_describe(y, dy, sizeof dy);
                return pt_fail(PT_ERR_UNSUPPORTED, "%s: cuSPARSELt has no plan for x %s, y %s", FN, dx, dy);
            }
            mode = 2;
        }
    }
    if (mode == 2) {
        pt_tensor wv = *x;
        wv.data = h->wp;
        wv.ndim = 2;
        wv.shape[0] = h->n;
        wv.shape[1] = h->k;
        wv.stride[0] = h->kp * (int64_t)es;
        wv.stride[1] = (int64_t)es;
        pt_matmul_params mp_ = {1, PT_ACT_NONE, 1.0f, 0.0f};
        return pt_cuda_matmul(ctx, x, &wv, bias, y, &mp_);
    }

    void *xs = nullptr, *ys = nullptr;
    struct scratch_guard {
        pt_cuda_ctx* c;
        void** a;
        void** b;
        ~scratch_guard() { pt_cuda_free_internal(c, *a); pt_cuda_free_internal(c, *b); }
    } sg{ctx, &xs, &ys};
    const void* xb = x->data;
    void* yd = y->data;
    if (!x_direct) {
        PT_CHECK(pt_cuda_alloc_internal(ctx, (size_t)(mp * h->kp) * es, &xs));
        if (h->dtype == PT_BF16)
            pad_kernel<__nv_bfloat16><<<grid_for(mp * h->kp), 256, 0, ctx->stream>>>((const __nv_bfloat16*)x->data, ldx, m, h->k,
                                                                                   (__nv_bfloat16*)xs, mp, h->kp);
        else
            pad_kernel<__half><<<grid_for(mp * h->kp), 256, 0, ctx->stream>>>((const __half*)x->data, ldx, m, h->k, (__half*)xs, mp,
                                                                            h->kp);
        PT_CUDA_LAUNCH_CHECK("pt_cuda_sparse24_matmul: pad kernel launch");
        xb = xs;
    }
    if (!y_direct) {
        PT_CHECK(pt_cuda_alloc_internal(ctx, (size_t)(mp * h->np) * es, &ys));
        yd = ys;
    }
    float alpha = 1.0f, beta = 0.0f;
    cudaStream_t st = ctx->stream;
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(ctx->stream, &cap);
    /* The search synchronizes (not while capturing) and only pays on large weights; on small
     * ones some configurations it tries read out of bounds (seen at K = 64). bf16 only: with f16
     * weights cuSPARSELt 0.8.1's search hit an illegal instruction on an H100 (N = 1152,
     * K = 1280, M = 136; and K = 64), which poisons the context; f16 runs the default algorithm. */
    if (h->search && !plan->searched && cap == cudaStreamCaptureStatusNone && h->kp >= 1024 && h->np >= 1024 &&
        h->dtype == PT_BF16) {
        ptsl::status_t ss = L->MatmulSearch(&h->lt, &plan->plan, &alpha, h->wc, xb, &beta, yd, yd, plan->ws, &st, 1);
        if (ss != ptsl::SUCCESS) return sl_fail(L, ss, FN, "cusparseLtMatmulSearch");
        plan->searched = true;
    }
    ptsl::status_t s = L->Matmul(&h->lt, &plan->plan, &alpha, h->wc, xb, &beta, yd, yd, plan->ws, &st, 1);
    if (s != ptsl::SUCCESS) return sl_fail(L, s, FN, "cusparseLtMatmul");
    if (!y_direct || bias) {
        const int bf = bias_kind(bias);
        const void* bp = bias ? bias->data : nullptr;
        if (h->dtype == PT_BF16)
            finish_kernel<__nv_bfloat16, __nv_bfloat16><<<grid_for(m * h->n), 256, 0, ctx->stream>>>(
                (const __nv_bfloat16*)yd, ldd, (__nv_bfloat16*)y->data, ldy, m, h->n, bp, bf);
        else
            finish_kernel<__half, __half><<<grid_for(m * h->n), 256, 0, ctx->stream>>>((const __half*)yd, ldd, (__half*)y->data, ldy,
                                                                                     m, h->n, bp, bf);
        PT_CUDA_LAUNCH_CHECK("pt_cuda_sparse24_matmul: epilogue kernel launch");
    }
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_sparse24_pruned(pt_cuda_ctx* ctx, pt_cuda_sparse24* h, pt_tensor* w_out) {
    static const char* FN = "pt_cuda_sparse24_pruned";
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, FN));
    if (!h) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: handle is NULL", FN);
    PT_CHECK(check_2d(w_out, "pt_cuda_sparse24_pruned w_out", h->dtype));
    PT_CHECK(check_ld(w_out, "pt_cuda_sparse24_pruned w_out"));
    if (w_out->shape[0] != h->n || w_out->shape[1] != h->k) {
        char d[96];
        pt_describe(w_out, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "%s: w_out %s, expected [%lld, %lld]", FN, d, (long long)h->n, (long long)h->k);
    }
    PT_CUDA_TRY(cudaMemcpy2DAsync(w_out->data, (size_t)ld_of(w_out) * 2, h->wp, (size_t)h->kp * 2, (size_t)h->k * 2, (size_t)h->n,
                                  cudaMemcpyDeviceToDevice, ctx->stream),
                "pt_cuda_sparse24_pruned: cudaMemcpy2DAsync");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_sparse24_destroy(pt_cuda_ctx* ctx, pt_cuda_sparse24* h) {
    pt_clear_error();
    if (!h) return PT_OK;
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_sparse24_destroy"));
    cudaStreamSynchronize(ctx->stream);
    sparse24_free(h);
    return PT_OK;
}

/* ================================================================ block-sparse (BSR) */

struct pt_cuda_bsr {
    int device = 0;
    int32_t dtype = 0;
    int64_t n = 0, k = 0, nb = 0, kb = 0, nnzb = 0;
    void* blocks = nullptr; /* [nnzb][64][64] */
    int* row_ptr = nullptr; /* [nb + 1] */
    int* col_idx = nullptr; /* [nnzb] */
};

static void bsr_free(pt_cuda_bsr* h) {
    if (h->blocks) cudaFree(h->blocks);
    if (h->row_ptr) cudaFree(h->row_ptr);
    if (h->col_idx) cudaFree(h->col_idx);
    delete h;
}

extern "C" PT_API pt_status pt_cuda_bsr_create(pt_cuda_ctx* ctx, const pt_tensor* w, pt_cuda_bsr** out) {
    static const char* FN = "pt_cuda_bsr_create";
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: out is NULL", FN);
    *out = nullptr;
    PT_CHECK(pt_cuda_enter(ctx, FN));
    static const int32_t dts[] = {PT_BF16, PT_F16};
    PT_CHECK(pt_cuda_check_tensor(w, "pt_cuda_bsr_create w", 2, 2, 2, dts));
    PT_CHECK(check_ld(w, "pt_cuda_bsr_create w"));
    const int64_t n = w->shape[0], k = w->shape[1];
    if (n == 0 || k == 0) {
        char d[96];
        pt_describe(w, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "%s: w %s is empty", FN, d);
    }
    if (ctx->cc_major < 8)
        return pt_fail(PT_ERR_UNSUPPORTED, "%s: the bf16/f16 mma kernel needs compute capability 8.0+, this GPU is %d.%d", FN,
                       ctx->cc_major, ctx->cc_minor);
    pt_cuda_bsr* h = new (std::nothrow) pt_cuda_bsr();
    if (!h) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: out of host memory", FN);
    struct guard {
        pt_cuda_bsr* h;
        ~guard() { if (h) bsr_free(h); }
    } g{h};
    h->device = ctx->device;
    h->dtype = w->dtype;
    h->n = n;
    h->k = k;
    h->nb = (n + BS - 1) / BS;
    h->kb = (k + BS - 1) / BS;
    const int64_t ldw = ld_of(w), total = h->nb * h->kb;
    if (total > (int64_t)1 << 30 || h->nb > 65535)
        return pt_fail(PT_ERR_SHAPE, "%s: w [%lld, %lld] has too many blocks (at most 65535 block rows, 2^30 blocks)", FN,
                       (long long)n, (long long)k);
    int* dflags = nullptr;
    PT_CHECK(pt_cuda_alloc_internal(ctx, (size_t)total * sizeof(int), (void**)&dflags));
    std::vector<int> flags((size_t)total);
    dim3 grid((unsigned)h->kb, (unsigned)h->nb);
    if (w->dtype == PT_BF16)
        block_flags_kernel<__nv_bfloat16><<<grid, 256, 0, ctx->stream>>>((const __nv_bfloat16*)w->data, ldw, n, k, h->kb, dflags);
    else
        block_flags_kernel<__half><<<grid, 256, 0, ctx->stream>>>((const __half*)w->data, ldw, n, k, h->kb, dflags);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpyAsync(flags.data(), dflags, (size_t)total * sizeof(int), cudaMemcpyDeviceToHost, ctx->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(ctx->stream);
    pt_cuda_free_internal(ctx, dflags);
    if (e != cudaSuccess) return pt_cuda_fail(e, "pt_cuda_bsr_create: block map");
    std::vector<int> row_ptr((size_t)h->nb + 1), brow, bcol;
    for (int64_t i = 0; i < h->nb; i++) {
        row_ptr[(size_t)i] = (int)brow.size();
        for (int64_t j = 0; j < h->kb; j++)
            if (flags[(size_t)(i * h->kb + j)]) {
                brow.push_back((int)i);
                bcol.push_back((int)j);
            }
    }
    row_ptr[(size_t)h->nb] = (int)brow.size();
    h->nnzb = (int64_t)brow.size();
    PT_CUDA_TRY(cudaMalloc(&h->row_ptr, row_ptr.size() * sizeof(int)), "pt_cuda_bsr_create: cudaMalloc");
    PT_CUDA_TRY(cudaMemcpy(h->row_ptr, row_ptr.data(), row_ptr.size() * sizeof(int), cudaMemcpyHostToDevice), FN);
    if (h->nnzb) {
        PT_CUDA_TRY(cudaMalloc(&h->col_idx, (size_t)h->nnzb * sizeof(int)), "pt_cuda_bsr_create: cudaMalloc");
        PT_CUDA_TRY(cudaMalloc(&h->blocks, (size_t)h->nnzb * BS * BS * 2), "pt_cuda_bsr_create: cudaMalloc (blocks)");
        int* dbrow = nullptr;
        PT_CHECK(pt_cuda_alloc_internal(ctx, (size_t)h->nnzb * sizeof(int), (void**)&dbrow));
        e = cudaMemcpyAsync(dbrow, brow.data(), (size_t)h->nnzb * sizeof(int), cudaMemcpyHostToDevice, ctx->stream);
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(h->col_idx, bcol.data(), (size_t)h->nnzb * sizeof(int), cudaMemcpyHostToDevice, ctx->stream);
        if (e == cudaSuccess) {
            if (w->dtype == PT_BF16)
                block_pack_kernel<__nv_bfloat16><<<(unsigned)h->nnzb, 256, 0, ctx->stream>>>(
                    (const __nv_bfloat16*)w->data, ldw, n, k, dbrow, h->col_idx, (__nv_bfloat16*)h->blocks);
            else
                block_pack_kernel<__half><<<(unsigned)h->nnzb, 256, 0, ctx->stream>>>((const __half*)w->data, ldw, n, k, dbrow,
                                                                                     h->col_idx, (__half*)h->blocks);
            e = cudaGetLastError();
        }
        /* the host vectors die here: wait for their copies */
        if (e == cudaSuccess) e = cudaStreamSynchronize(ctx->stream);
        pt_cuda_free_internal(ctx, dbrow);
        if (e != cudaSuccess) return pt_cuda_fail(e, "pt_cuda_bsr_create: packing the blocks");
    }
    g.h = nullptr;
    *out = h;
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_bsr_info(pt_cuda_bsr* h, int64_t* nnz_blocks, int64_t* total_blocks) {
    pt_clear_error();
    if (!h) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_bsr_info: handle is NULL");
    if (nnz_blocks) *nnz_blocks = h->nnzb;
    if (total_blocks) *total_blocks = h->nb * h->kb;
    return PT_OK;
}

template <typename CFG, typename T>
static pt_status bsr_launch_cfg(pt_cuda_ctx* ctx, pt_cuda_bsr* h, const T* x, int64_t ldx, int64_t m, int64_t kx, const pt_tensor* bias,
                                const pt_tensor* y, int64_t ldy, int64_t min_ctas) {
    static std::atomic<uint64_t> attr_done{0}; /* per device (first 32) and T: the smem opt-in was set */
    auto kern_y = bsr_mma_kernel<CFG, T, T>;
    auto kern_f = bsr_mma_kernel<CFG, T, float>;
    const int bit = (ctx->device & 31) * 2 + (int)std::is_same<T, __half>::value;
    if (ctx->device >= 32 || !(attr_done.load() >> bit & 1)) {
        PT_CUDA_TRY(cudaFuncSetAttribute(kern_y, cudaFuncAttributeMaxDynamicSharedMemorySize, CFG::SMEM), "pt_cuda_bsr_matmul: smem attribute");
        PT_CUDA_TRY(cudaFuncSetAttribute(kern_f, cudaFuncAttributeMaxDynamicSharedMemorySize, CFG::SMEM), "pt_cuda_bsr_matmul: smem attribute");
        attr_done.fetch_or((uint64_t)1 << bit);
    }
    const int64_t mt = (m + CFG::BM - 1) / CFG::BM;
    if (mt > 65535) return pt_fail(PT_ERR_SHAPE, "pt_cuda_bsr_matmul: M = %lld is too large (at most %d)", (long long)m, 65535 * CFG::BM);
    /* split each block row's list (f32 atomics) while the grid is below min_ctas and each
     * slice keeps >= 4 blocks on average (decode shapes) */
    int64_t z = 1;
    const int64_t ctas = h->nb * mt, avg = h->nb ? (h->nnzb + h->nb - 1) / h->nb : 0;
    while (ctas * z < min_ctas && z * 8 <= avg * 2 && z < 64) z *= 2;
    const void* bp = bias ? bias->data : nullptr;
    const int bk = bias_kind(bias);
    const bool yf = y->dtype == PT_F32;
    dim3 grid((unsigned)h->nb, (unsigned)mt, (unsigned)z);
    if (z == 1) {
        if (yf)
            kern_f<<<grid, CFG::THREADS, CFG::SMEM, ctx->stream>>>(x, ldx, m, kx, (const T*)h->blocks, h->row_ptr, h->col_idx, bp, bk,
                                                                   (float*)y->data, ldy, h->n, nullptr);
        else
            kern_y<<<grid, CFG::THREADS, CFG::SMEM, ctx->stream>>>(x, ldx, m, kx, (const T*)h->blocks, h->row_ptr, h->col_idx, bp, bk,
                                                                   (T*)y->data, ldy, h->n, nullptr);
        PT_CUDA_LAUNCH_CHECK("pt_cuda_bsr_matmul: kernel launch");
        return PT_OK;
    }
    float* part = nullptr;
    PT_CHECK(pt_cuda_alloc_internal(ctx, (size_t)(m * h->n) * sizeof(float), (void**)&part));
    cudaError_t e = cudaMemsetAsync(part, 0, (size_t)(m * h->n) * sizeof(float), ctx->stream);
    if (e == cudaSuccess) {
        kern_f<<<grid, CFG::THREADS, CFG::SMEM, ctx->stream>>>(x, ldx, m, kx, (const T*)h->blocks, h->row_ptr, h->col_idx, nullptr, 0,
                                                               nullptr, 0, h->n, part);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) {
        if (yf)
            finish_kernel<float, float><<<grid_for(m * h->n), 256, 0, ctx->stream>>>(part, h->n, (float*)y->data, ldy, m, h->n, bp, bk);
        else
            finish_kernel<float, T><<<grid_for(m * h->n), 256, 0, ctx->stream>>>(part, h->n, (T*)y->data, ldy, m, h->n, bp, bk);
        e = cudaGetLastError();
    }
    pt_cuda_free_internal(ctx, part);
    if (e != cudaSuccess) return pt_cuda_fail(e, "pt_cuda_bsr_matmul: split kernels");
    return PT_OK;
}

/* Tile choice: M <= 32 the small tile (split to ~6 CTAs per SM), else 128 rows (split to 2 CTAs
 * per SM). The 256-row tile (one CTA per SM: 120 KiB of shared memory) measured 1.37x slower
 * than 128 rows at 8192^3 (50% blocks) on an H100: occupancy beats the lower L2 traffic.
 * Override for benchmarking and tests: $PANATRON_BSR_TILE = 32 | 128 | 256. */
template <typename T>
static pt_status bsr_launch(pt_cuda_ctx* ctx, pt_cuda_bsr* h, const T* x, int64_t ldx, int64_t m, int64_t kx, const pt_tensor* bias,
                            const pt_tensor* y, int64_t ldy) {
    static const int forced = [] { const char* e = getenv("PANATRON_BSR_TILE"); return e ? atoi(e) : 0; }();
    const int64_t sms = ctx->sm_count > 0 ? ctx->sm_count : 1;
    int tile = m <= 32 ? 32 : 128;
    if (forced == 32 || forced == 128 || forced == 256) tile = forced;
    if (tile == 32) return bsr_launch_cfg<cfg_small, T>(ctx, h, x, ldx, m, kx, bias, y, ldy, 6 * sms);
    if (tile == 256) return bsr_launch_cfg<cfg_big, T>(ctx, h, x, ldx, m, kx, bias, y, ldy, 0);
    return bsr_launch_cfg<cfg_mid, T>(ctx, h, x, ldx, m, kx, bias, y, ldy, 2 * sms);
}

extern "C" PT_API pt_status pt_cuda_bsr_matmul(pt_cuda_ctx* ctx, pt_cuda_bsr* h, const pt_tensor* x, const pt_tensor* bias,
                                               pt_tensor* y) {
    static const char* FN = "pt_cuda_bsr_matmul";
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, FN));
    if (!h) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: handle is NULL", FN);
    if (h->device != ctx->device)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: the handle belongs to device %d, the context to %d", FN, h->device, ctx->device);
    PT_CHECK(check_2d(x, "pt_cuda_bsr_matmul x", h->dtype));
    const int32_t ydt[] = {h->dtype, PT_F32};
    PT_CHECK(pt_cuda_check_tensor(y, "pt_cuda_bsr_matmul y", 2, 2, 2, ydt));
    PT_CHECK(check_xy(FN, x, y, bias, h->n, h->k, h->dtype));
    const int64_t m = x->shape[0];
    if (m == 0) return PT_OK;
    const int64_t ldx = ld_of(x), ldy = ld_of(y);
    const bool direct = h->k % 8 == 0 && ldx % 8 == 0 && aligned16(x->data);
    const void* xb = x->data;
    int64_t ldb = ldx, kx = h->k;
    void* xs = nullptr;
    if (!direct) {
        const int64_t kp = h->kb * BS;
        PT_CHECK(pt_cuda_alloc_internal(ctx, (size_t)(m * kp) * 2, &xs));
        if (h->dtype == PT_BF16)
            pad_kernel<__nv_bfloat16><<<grid_for(m * kp), 256, 0, ctx->stream>>>((const __nv_bfloat16*)x->data, ldx, m, h->k,
                                                                               (__nv_bfloat16*)xs, m, kp);
        else
            pad_kernel<__half><<<grid_for(m * kp), 256, 0, ctx->stream>>>((const __half*)x->data, ldx, m, h->k, (__half*)xs, m, kp);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) {
            pt_cuda_free_internal(ctx, xs);
            return pt_cuda_fail(e, "pt_cuda_bsr_matmul: pad kernel launch");
        }
        xb = xs;
        ldb = kp;
        kx = kp;
    }
    pt_status st = h->dtype == PT_BF16 ? bsr_launch<__nv_bfloat16>(ctx, h, (const __nv_bfloat16*)xb, ldb, m, kx, bias, y, ldy)
                                       : bsr_launch<__half>(ctx, h, (const __half*)xb, ldb, m, kx, bias, y, ldy);
    pt_cuda_free_internal(ctx, xs); /* stream-ordered reuse */
    return st;
}

extern "C" PT_API pt_status pt_cuda_bsr_destroy(pt_cuda_ctx* ctx, pt_cuda_bsr* h) {
    pt_clear_error();
    if (!h) return PT_OK;
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_bsr_destroy"));
    cudaStreamSynchronize(ctx->stream);
    bsr_free(h);
    return PT_OK;
}
