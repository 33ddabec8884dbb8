/* pt_cuda_matmul: dense GEMM through cuBLASLt (loaded at run time), fused epilogues. */
#include "cublaslt.cuh"
#include "cuda_common.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <dlfcn.h>
#include <stdlib.h>

namespace ptlt {

static api g_api;
static int g_state = 0; /* 0 untried, 1 loaded, -1 failed */
static char g_why[512];
static std::mutex g_mu;

const api* load() {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_state == 0) {
        const char* names[] = {getenv("PANATRON_CUBLASLT"), "libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
        void* h = nullptr;
        for (const char* n : names)
            if (n && *n && (h = dlopen(n, RTLD_NOW | RTLD_LOCAL))) break;
        if (!h) {
            const char* e = dlerror();
            snprintf(g_why, sizeof g_why, "cuBLASLt not found (tried $PANATRON_CUBLASLT, libcublasLt.so.13/.12): %s", e ? e : "");
            g_state = -1;
        } else {
            bool ok = true;
#define PT_SYM(field, name)                                                       \
    do {                                                                          \
        *(void**)&g_api.field = dlsym(h, name);                                   \
        if (!g_api.field) { ok = false; snprintf(g_why, sizeof g_why, "cuBLASLt lacks %s", name); } \
    } while (0)
            PT_SYM(Create, "cublasLtCreate");
            PT_SYM(Destroy, "cublasLtDestroy");
            PT_SYM(GetStatusString, "cublasLtGetStatusString");
            PT_SYM(GetVersion, "cublasLtGetVersion");
            PT_SYM(MatmulDescCreate, "cublasLtMatmulDescCreate");
            PT_SYM(MatmulDescDestroy, "cublasLtMatmulDescDestroy");
            PT_SYM(MatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
            PT_SYM(MatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
            PT_SYM(MatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
            PT_SYM(MatrixLayoutSetAttribute, "cublasLtMatrixLayoutSetAttribute");
            PT_SYM(MatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
            PT_SYM(MatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
            PT_SYM(MatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
            PT_SYM(MatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
            PT_SYM(Matmul, "cublasLtMatmul");
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

}  // namespace ptlt

/* ---------------------------------------------------------------- plan cache */

/* A matmul plan: descriptors and the heuristic's algorithm for one problem (shapes, strides,
 * dtypes, epilogue, pointer alignments). Decoding runs the same few GEMMs every token; the
 * heuristic query costs 10-30 us of host time, the cached plan nothing. */
struct lt_plan {
    int64_t key[24];
    uint64_t stamp = 0;
    bool used = false, bias_converted = false;
    ptlt::desc_t op = nullptr;
    ptlt::layout_t la = nullptr, lb = nullptr, lc = nullptr;
    ptlt::algo_t algo;
};
struct pt_lt_cache {
    static constexpr int N = 32;
    lt_plan plans[N];
    uint64_t clock = 0;
};

static void plan_free(const ptlt::api* L, lt_plan& pl) {
    if (pl.op) L->MatmulDescDestroy(pl.op);
    if (pl.la) L->MatrixLayoutDestroy(pl.la);
    if (pl.lb) L->MatrixLayoutDestroy(pl.lb);
    if (pl.lc) L->MatrixLayoutDestroy(pl.lc);
    pl = lt_plan();
}

void pt_cublaslt_release(pt_cuda_ctx* ctx) {
    if (ptlt::g_state != 1) return;
    if (ctx->lt_cache) {
        pt_lt_cache* c = (pt_lt_cache*)ctx->lt_cache;
        for (auto& pl : c->plans)
            if (pl.used) plan_free(&ptlt::g_api, pl);
        delete c;
        ctx->lt_cache = nullptr;
    }
    if (ctx->lt_handle) ptlt::g_api.Destroy(ctx->lt_handle);
    ctx->lt_handle = nullptr;
}

static int64_t ptr_align(const void* p) {
    uintptr_t a = (uintptr_t)p;
    int64_t al = 256;
    while (al > 1 && (a % (uintptr_t)al) != 0) al >>= 1;
    return al;
}

/* ---------------------------------------------------------------- epilogue kernels */

template <typename T> __device__ __forceinline__ float to_f(T x);
template <> __device__ __forceinline__ float to_f<float>(float x) { return x; }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }
template <> __device__ __forceinline__ float to_f<__half>(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }

/* c[b, r, j] = act(c[b, r, j]) for the activations cuBLASLt has no epilogue for. */
template <typename T>
__global__ void act_kernel(T* c, int64_t batch, int64_t rows, int64_t cols, int64_t ldc, int64_t sc, int act) {
    int64_t n = batch * rows * cols;
    /* dense c (the usual case): no index arithmetic. The strided path's three 64-bit divisions
     * per element (emulated, ~100 instructions each) made this pass compute-bound: ~0.25 ms
     * for a [16384, 1536] bf16 c on an H100, 6x its memory time. */
    const bool dense = ldc == cols && (batch <= 1 || sc == rows * cols);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        T* p;
        if (dense) {
            p = c + i;
        } else {
            int64_t j = i % cols, r = (i / cols) % rows, b = i / (cols * rows);
            p = c + b * sc + r * ldc + j;
        }
        float x = to_f<T>(*p);
        float y = act == PT_ACT_GELU_ERF ? 0.5f * x * (1.0f + erff(x * 0.70710678118654752f))
                : act == PT_ACT_SILU     ? x / (1.0f + expf(-x))
                : act == PT_ACT_GELU_TANH ? 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)))
                : act == PT_ACT_RELU     ? fmaxf(x, 0.0f) : x;
        *p = from_f<T>(y);
    }
}

template <typename T>
__global__ void convert_kernel(const float* src, T* dst, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = from_f<T>(src[i]);
}

/* ---------------------------------------------------------------- pt_cuda_matmul */

static int lt_dtype(int32_t dt) { return dt == PT_F32 ? ptlt::R_32F : dt == PT_F16 ? ptlt::R_16F : ptlt::R_16BF; }

static pt_status lt_fail(const ptlt::api* L, ptlt::status_t s, const char* what) {
    return pt_fail(PT_ERR_BACKEND, "pt_cuda_matmul: %s failed: cuBLASLt status %d (%s)", what, s, L->GetStatusString(s));
}


#define LT_TRY(call, what)                                   \
    do {                                                     \
        ptlt::status_t s_ = (call);                          \
        if (s_ != ptlt::SUCCESS) return lt_fail(L, s_, what); \
    } while (0)

extern "C" PT_API pt_status pt_cuda_matmul(pt_cuda_ctx* ctx, const pt_tensor* a, const pt_tensor* b,
                                           const pt_tensor* bias, pt_tensor* c, const pt_matmul_params* params) {
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_matmul"));
    static const int32_t in_dt[] = {PT_F32, PT_F16, PT_BF16};
    PT_CHECK(pt_cuda_check_tensor(a, "pt_cuda_matmul a", 2, 3, 3, in_dt));
    PT_CHECK(pt_cuda_check_tensor(b, "pt_cuda_matmul b", 2, 3, 3, in_dt));
    PT_CHECK(pt_cuda_check_tensor(c, "pt_cuda_matmul c", 2, 3, 3, in_dt));
    pt_matmul_params p = {0, PT_ACT_NONE, 1.0f, 0.0f};
    if (params) p = *params;
    if (p.alpha == 0.0f) p.alpha = 1.0f;
    if (p.activation < PT_ACT_NONE || p.activation > PT_ACT_SILU)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_matmul: unknown activation %d", p.activation);
    if (b->dtype != a->dtype)
        return pt_fail(PT_ERR_DTYPE, "pt_cuda_matmul: a is %s but b is %s (must match)", pt_dtype_name(a->dtype), pt_dtype_name(b->dtype));
    if (c->dtype != a->dtype && c->dtype != PT_F32)
        return pt_fail(PT_ERR_DTYPE, "pt_cuda_matmul: c is %s; with %s inputs it must be %s or f32",
                       pt_dtype_name(c->dtype), pt_dtype_name(a->dtype), pt_dtype_name(a->dtype));
    if (c->ndim != a->ndim)
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_matmul: ranks a=%d c=%d must match", a->ndim, c->ndim);
    int ba = a->ndim == 3, bb = b->ndim == 3;
    int64_t batch = ba ? a->shape[0] : 1;
    int64_t m = a->shape[ba], k = a->shape[ba + 1];
    int64_t bk = p.trans_b ? b->shape[bb + 1] : b->shape[bb], n = p.trans_b ? b->shape[bb] : b->shape[bb + 1];
    char da[96], db[96], dc[96];
    pt_describe(a, da, sizeof da);
    pt_describe(b, db, sizeof db);
    pt_describe(c, dc, sizeof dc);
    if (bk != k)
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_matmul: a %s and b %s (trans_b=%d) disagree on K (%lld vs %lld)", da, db,
                       p.trans_b, (long long)k, (long long)bk);
    if (bb && (!ba || b->shape[0] != batch))
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_matmul: b %s is batched but a %s has %s", db, da, ba ? "another batch" : "none");
    if (c->shape[ba] != m || c->shape[ba + 1] != n || (ba && c->shape[0] != batch))
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_matmul: c %s, expected [%s%lld, %lld] for a %s and b %s", dc,
                       ba ? "B, " : "", (long long)m, (long long)n, da, db);
    if (bias) {
        static const int32_t bias_dt[] = {PT_F32, PT_F16, PT_BF16};
        PT_CHECK(pt_cuda_check_tensor(bias, "pt_cuda_matmul bias", 1, 1, 3, bias_dt));
        if (bias->shape[0] != n)
            return pt_fail(PT_ERR_SHAPE, "pt_cuda_matmul: bias has %lld elements, expected N = %lld", (long long)bias->shape[0], (long long)n);
        if (bias->dtype != PT_F32 && bias->dtype != c->dtype)
            return pt_fail(PT_ERR_DTYPE, "pt_cuda_matmul: bias is %s; it must be f32 or c's dtype %s",
                           pt_dtype_name(bias->dtype), pt_dtype_name(c->dtype));
    }
    if (m == 0 || n == 0 || batch == 0) return PT_OK;
    size_t es = pt_dtype_size(a->dtype), cs = pt_dtype_size(c->dtype);
    /* row strides in bytes; a single row may carry any stride (it is never used) */
    int64_t lda = m > 1 ? a->stride[ba] : k * (int64_t)es;
    int64_t ldb = (p.trans_b ? n : k) > 1 ? b->stride[bb] : (p.trans_b ? k : n) * (int64_t)es;
    int64_t ldc = m > 1 ? c->stride[ba] : n * (int64_t)cs;
    if (lda % (int64_t)es || ldb % (int64_t)es || ldc % (int64_t)cs)
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_matmul: row strides must be whole elements (a %s, b %s, c %s)", da, db, dc);
    lda /= (int64_t)es;
    ldb /= (int64_t)es;
    ldc /= (int64_t)cs;
    if (lda < k || ldb < (p.trans_b ? k : n) || ldc < n)
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_matmul: a row stride < K, b row stride too small, or c row stride < N");
    int64_t sa = ba ? a->stride[0] / (int64_t)es : 0, sb = bb ? b->stride[0] / (int64_t)es : 0,
            sc = ba ? c->stride[0] / (int64_t)cs : 0;
    /* A 2-D b over a 3-D a with packed batches: fold the batch into M (one larger GEMM). */
    if (ba && !bb && sa == m * lda && sc == m * ldc) {
        m *= batch;
        batch = 1;
    }
    if (k == 0) {
        /* no product: c = act(bias + beta c); simplest through a zero-K GEMM is not portable */
        return pt_fail(PT_ERR_UNSUPPORTED, "pt_cuda_matmul: K = 0 is not supported");
    }

    const ptlt::api* L = ptlt::load();
    if (!L) return PT_ERR_UNSUPPORTED;
    std::lock_guard<std::mutex> lock(ctx->lt_mu); /* the plans are shared objects */
    if (!ctx->lt_handle) LT_TRY(L->Create(&ctx->lt_handle), "cublasLtCreate");
    if (!ctx->lt_cache) {
        ctx->lt_cache = new (std::nothrow) pt_lt_cache();
        if (!ctx->lt_cache) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_cuda_matmul: out of host memory");
    }
    pt_lt_cache* cache = (pt_lt_cache*)ctx->lt_cache;
    int compute = a->dtype == PT_F32 ? (ctx->allow_tf32 ? ptlt::COMPUTE_32F_FAST_TF32 : ptlt::COMPUTE_32F) : ptlt::COMPUTE_32F;
    int fused_act = p.activation == PT_ACT_RELU || p.activation == PT_ACT_GELU_TANH;
    int32_t epi = p.activation == PT_ACT_RELU ? ptlt::EPI_RELU : p.activation == PT_ACT_GELU_TANH ? ptlt::EPI_GELU : ptlt::EPI_DEFAULT;
    if (bias) epi = epi == ptlt::EPI_DEFAULT ? ptlt::EPI_BIAS : epi | ptlt::EPI_BIAS;
    const int64_t al_a = ptr_align(a->data), al_b = ptr_align(b->data), al_c = ptr_align(c->data);
    const int64_t key[24] = {a->dtype, c->dtype, bias ? bias->dtype : -1, p.trans_b, epi, compute, m, n, k, lda, ldb, ldc,
                             batch, sa, sb, sc, al_a, al_b, al_c, (int64_t)ctx->workspace_bytes, 0, 0, 0, 0};
    lt_plan* plan = nullptr;
    for (auto& pl : cache->plans)
        if (pl.used && memcmp(pl.key, key, sizeof key) == 0) {
            plan = &pl;
            break;
        }
    if (!plan) {
        lt_plan* victim = &cache->plans[0];
        for (auto& pl : cache->plans) {
            if (!pl.used) { victim = &pl; break; }
            if (pl.stamp < victim->stamp) victim = &pl;
        }
        if (victim->used) plan_free(L, *victim);
        lt_plan fresh;
        memcpy(fresh.key, key, sizeof key);
        /* descriptors are freed on any failure below */
        struct guard {
            const ptlt::api* L;
            lt_plan* pl;
            ~guard() { if (pl) plan_free(L, *pl); }
        } gd{L, &fresh};
        LT_TRY(L->MatmulDescCreate(&fresh.op, compute, ptlt::R_32F), "cublasLtMatmulDescCreate");
        /* row-major C[M,N] = A[M,K] op(B) is column-major C^T[N,M] = op(B)^T A^T: Lt's A is our b */
        int32_t ta = p.trans_b ? ptlt::OP_T : ptlt::OP_N, tb = ptlt::OP_N;
        LT_TRY(L->MatmulDescSetAttribute(fresh.op, ptlt::DESC_TRANSA, &ta, sizeof ta), "set TRANSA");
        LT_TRY(L->MatmulDescSetAttribute(fresh.op, ptlt::DESC_TRANSB, &tb, sizeof tb), "set TRANSB");
        LT_TRY(L->MatmulDescSetAttribute(fresh.op, ptlt::DESC_EPILOGUE, &epi, sizeof epi), "set EPILOGUE");
        if (bias && bias->dtype != c->dtype) {
            int32_t bt = lt_dtype(bias->dtype);
            LT_TRY(L->MatmulDescSetAttribute(fresh.op, ptlt::DESC_BIAS_DATA_TYPE, &bt, sizeof bt), "set BIAS_DATA_TYPE");
        }
        int dt = lt_dtype(a->dtype), ct = lt_dtype(c->dtype);
        LT_TRY(L->MatrixLayoutCreate(&fresh.la, dt, p.trans_b ? k : n, p.trans_b ? n : k, ldb), "layout(b)");
        LT_TRY(L->MatrixLayoutCreate(&fresh.lb, dt, k, m, lda), "layout(a)");
        LT_TRY(L->MatrixLayoutCreate(&fresh.lc, ct, n, m, ldc), "layout(c)");
        if (batch > 1) {
            int32_t bc = (int32_t)batch;
            LT_TRY(L->MatrixLayoutSetAttribute(fresh.la, ptlt::LAYOUT_BATCH_COUNT, &bc, sizeof bc), "batch(b)");
            LT_TRY(L->MatrixLayoutSetAttribute(fresh.lb, ptlt::LAYOUT_BATCH_COUNT, &bc, sizeof bc), "batch(a)");
            LT_TRY(L->MatrixLayoutSetAttribute(fresh.lc, ptlt::LAYOUT_BATCH_COUNT, &bc, sizeof bc), "batch(c)");
            LT_TRY(L->MatrixLayoutSetAttribute(fresh.la, ptlt::LAYOUT_STRIDED_BATCH_OFFSET, &sb, sizeof sb), "stride(b)");
            LT_TRY(L->MatrixLayoutSetAttribute(fresh.lb, ptlt::LAYOUT_STRIDED_BATCH_OFFSET, &sa, sizeof sa), "stride(a)");
            LT_TRY(L->MatrixLayoutSetAttribute(fresh.lc, ptlt::LAYOUT_STRIDED_BATCH_OFFSET, &sc, sizeof sc), "stride(c)");
        }
        ptlt::pref_t pref = nullptr;
        LT_TRY(L->MatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
        struct pref_guard {
            const ptlt::api* L;
            ptlt::pref_t p;
            ~pref_guard() { L->MatmulPreferenceDestroy(p); }
        } pg{L, pref};
        uint64_t ws = ctx->workspace_bytes;
        uint32_t aa = (uint32_t)al_b, ab = (uint32_t)al_a, ac = (uint32_t)al_c; /* Lt's A is our b */
        LT_TRY(L->MatmulPreferenceSetAttribute(pref, ptlt::PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), "set workspace");
        LT_TRY(L->MatmulPreferenceSetAttribute(pref, ptlt::PREF_MIN_ALIGNMENT_A, &aa, sizeof aa), "set alignment A");
        LT_TRY(L->MatmulPreferenceSetAttribute(pref, ptlt::PREF_MIN_ALIGNMENT_B, &ab, sizeof ab), "set alignment B");
        LT_TRY(L->MatmulPreferenceSetAttribute(pref, ptlt::PREF_MIN_ALIGNMENT_C, &ac, sizeof ac), "set alignment C");
        LT_TRY(L->MatmulPreferenceSetAttribute(pref, ptlt::PREF_MIN_ALIGNMENT_D, &ac, sizeof ac), "set alignment D");
        ptlt::heuristic_t heur[1];
        int found = 0;
        ptlt::status_t hs = L->MatmulAlgoGetHeuristic(ctx->lt_handle, fresh.op, fresh.la, fresh.lb, fresh.lc, fresh.lc, pref, 1, heur, &found);
        if ((hs != ptlt::SUCCESS || found == 0) && bias && bias->dtype != c->dtype) {
            /* this cuBLASLt takes no f32 bias with a 16-bit output: convert the bias to c's dtype per call */
            int32_t bt = ct;
            LT_TRY(L->MatmulDescSetAttribute(fresh.op, ptlt::DESC_BIAS_DATA_TYPE, &bt, sizeof bt), "set BIAS_DATA_TYPE");
            fresh.bias_converted = true;
            hs = L->MatmulAlgoGetHeuristic(ctx->lt_handle, fresh.op, fresh.la, fresh.lb, fresh.lc, fresh.lc, pref, 1, heur, &found);
        }
        if (hs != ptlt::SUCCESS) return lt_fail(L, hs, "cublasLtMatmulAlgoGetHeuristic");
        if (found == 0)
            return pt_fail(PT_ERR_UNSUPPORTED, "pt_cuda_matmul: cuBLASLt has no algorithm for a %s, b %s, c %s (trans_b=%d, epilogue %d)",
                           da, db, dc, p.trans_b, epi);
        fresh.algo = heur[0].algo;
        fresh.used = true;
        *victim = fresh;
        gd.pl = nullptr; /* owned by the cache now */
        plan = victim;
    }
    plan->stamp = ++cache->clock;
    void* bias_tmp = nullptr;
    if (bias) {
        const void* bias_ptr = bias->data;
        if (plan->bias_converted) {
            PT_CHECK(pt_cuda_alloc_internal(ctx, (size_t)n * cs, &bias_tmp));
            int blocks = (int)((n + 255) / 256);
            if (c->dtype == PT_BF16)
                convert_kernel<__nv_bfloat16><<<blocks, 256, 0, ctx->stream>>>((const float*)bias->data, (__nv_bfloat16*)bias_tmp, n);
            else
                convert_kernel<__half><<<blocks, 256, 0, ctx->stream>>>((const float*)bias->data, (__half*)bias_tmp, n);
            cudaError_t e = cudaGetLastError();
            if (e != cudaSuccess) {
                pt_cuda_free_internal(ctx, bias_tmp);
                return pt_cuda_fail(e, "pt_cuda_matmul: bias conversion launch");
            }
            bias_ptr = bias_tmp;
        }
        ptlt::status_t st = L->MatmulDescSetAttribute(plan->op, ptlt::DESC_BIAS_POINTER, &bias_ptr, sizeof bias_ptr);
        if (st != ptlt::SUCCESS) {
            pt_cuda_free_internal(ctx, bias_tmp);
            return lt_fail(L, st, "set BIAS_POINTER");
        }
    }
    float alpha = p.alpha, beta = p.beta;
    ptlt::status_t ms = L->Matmul(ctx->lt_handle, plan->op, &alpha, b->data, plan->la, a->data, plan->lb, &beta, c->data, plan->lc,
                                  c->data, plan->lc, &plan->algo, ctx->workspace, ctx->workspace_bytes, ctx->stream);
    pt_cuda_free_internal(ctx, bias_tmp); /* stream-ordered reuse */
    if (ms != ptlt::SUCCESS) return lt_fail(L, ms, "cublasLtMatmul");
    if (p.activation != PT_ACT_NONE && !fused_act) {
        int64_t total = batch * m * n;
        int blocks = (int)((total + 255) / 256 < 65535 * 8 ? (total + 255) / 256 : 65535 * 8);
        if (c->dtype == PT_F32)
            act_kernel<float><<<blocks, 256, 0, ctx->stream>>>((float*)c->data, batch, m, n, ldc, sc, p.activation);
        else if (c->dtype == PT_BF16)
            act_kernel<__nv_bfloat16><<<blocks, 256, 0, ctx->stream>>>((__nv_bfloat16*)c->data, batch, m, n, ldc, sc, p.activation);
        else
            act_kernel<__half><<<blocks, 256, 0, ctx->stream>>>((__half*)c->data, batch, m, n, ldc, sc, p.activation);
        PT_CUDA_LAUNCH_CHECK("pt_cuda_matmul: activation kernel launch");
    }
    return PT_OK;
}
