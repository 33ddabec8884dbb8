/* Internal helpers shared by every backend file. Not part of the public API. */
#ifndef PT_INTERNAL_H
#define PT_INTERNAL_H

#include "panatron/panatron.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#  if defined(_WIN32) || defined(__CYGWIN__)
#    define PT_HIDDEN /* PE/COFF: only PT_API (dllexport) symbols leave the DLL anyway */
#  else
#    define PT_HIDDEN __attribute__((visibility("hidden")))
#  endif
#  define PT_LIKELY(x) __builtin_expect(!!(x), 1)
#  define PT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#  define PT_RESTRICT __restrict__
#else
#  define PT_HIDDEN
#  define PT_LIKELY(x) (x)
#  define PT_UNLIKELY(x) (x)
#  define PT_RESTRICT __restrict
#endif

/* Portable spellings of the GNU C extensions kernels use, so that MSVC compiles them too:
 *   _Alignas(64) float buf[64];       (C11; not __attribute__((aligned(64))) after the name)
 *   static PT_ALWAYS_INLINE void f(void);
 *   PT_UNROLL(8) for (...)            (#pragma GCC unroll 8 / clang's #pragma unroll; else nothing) */
#if defined(__GNUC__)
#  define PT_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#  define PT_ALWAYS_INLINE __forceinline
#else
#  define PT_ALWAYS_INLINE inline
#endif
#if defined(__GNUC__) && !defined(__clang__)
#  define PT_PRAGMA_(x) _Pragma(#x)
#  define PT_UNROLL(n) PT_PRAGMA_(GCC unroll n)
#elif defined(__clang__)
#  define PT_PRAGMA_(x) _Pragma(#x)
#  define PT_UNROLL(n) PT_PRAGMA_(unroll n)
#else
#  define PT_UNROLL(n)
#endif

#if defined(__x86_64__) || defined(_M_X64)
#  define PT_X86 1
#else
#  define PT_X86 0
#endif

/* Records a formatted message as this thread's last error and returns `status`. */
PT_HIDDEN pt_status pt_fail(pt_status status, const char* fmt, ...)
#if defined(__MINGW32__)
    __attribute__((format(gnu_printf, 2, 3))) /* C99 printf: __USE_MINGW_ANSI_STDIO */
#elif defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Clears this thread's last error (every public entry point starts with this). */
PT_HIDDEN void pt_clear_error(void);

#define PT_CHECK(expr)                                  \
    do {                                                \
        pt_status pt_check_status_ = (expr);            \
        if (pt_check_status_ != PT_OK) return pt_check_status_; \
    } while (0)

struct pt_ctx {
    int32_t n_threads;
    uint32_t caps;          /* cpu caps minus disabled ones */
    int32_t use_onednn;
    void* onednn;           /* struct pt_onednn*, NULL when absent or disabled */
};

/* ---- tensor checks: each returns PT_OK or records a message naming `what` ---- */
PT_HIDDEN const char* pt_dtype_name(int32_t dtype);
PT_HIDDEN pt_status pt_check_tensor(const pt_tensor* t, const char* what);
/* t is valid, dtype is one of the `n` listed, innermost dim contiguous */
PT_HIDDEN pt_status pt_check_dtype(const pt_tensor* t, const char* what, int n, ...);
PT_HIDDEN pt_status pt_check_inner_contiguous(const pt_tensor* t, const char* what);
PT_HIDDEN pt_status pt_check_same_shape(const pt_tensor* a, const char* an,
                                        const pt_tensor* b, const char* bn);
PT_HIDDEN int64_t pt_numel(const pt_tensor* t);
PT_HIDDEN int64_t pt_rows(const pt_tensor* t);  /* product of all dims but the last */
static inline int64_t pt_cols(const pt_tensor* t) { return t->shape[t->ndim - 1]; }
/* Address of row r (rows enumerated in row-major order over the outer dims). */
PT_HIDDEN char* pt_row_ptr(const pt_tensor* t, int64_t r);
/* True when all outer dims are packed so rows are evenly spaced by `row_stride` bytes. */
PT_HIDDEN bool pt_rows_uniform(const pt_tensor* t, int64_t* row_stride);
PT_HIDDEN pt_status pt_check_ctx(const pt_ctx* ctx);
PT_HIDDEN pt_status pt_describe(const pt_tensor* t, char* buf, size_t n);

/* ---- numeric conversions ---- */
static inline float pt_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t pt_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                          /* RNE */
    return (uint16_t)(u >> 16);
}
PT_HIDDEN float pt_f16_to_f32(uint16_t h);
PT_HIDDEN uint16_t pt_f32_to_f16(float f);

/* Loads/stores one row of `n` elements of dtype f32|bf16|f16 to/from f32. */
PT_HIDDEN void pt_load_row_f32(const void* src, int32_t dtype, int64_t n, float* dst);
PT_HIDDEN void pt_store_row_f32(const float* src, int64_t n, int32_t dtype, void* dst);

/* ---- thread-local scratch: grows, never shrinks; freed at thread exit ---- */
/* Returns a 64-byte-aligned buffer of at least `bytes`, or NULL. Slot 0..4 are independent. */
PT_HIDDEN void* pt_scratch(int slot, size_t bytes);

/* ---- long-lived weight memory (weights_alloc.c) ----
 * 64-byte-aligned blocks for data read again and again (prepacked weights). On Linux they are
 * carved from 2 MiB-aligned slabs that ask for transparent huge pages (madvise), so streaming
 * a model's weights crosses no 4 KiB page boundaries (TLB misses, and the hardware prefetcher
 * stopping at each page); elsewhere plain aligned allocations. Thread-safe. */
PT_HIDDEN void* pt_weight_alloc(size_t bytes);
PT_HIDDEN void pt_weight_free(void* p);

/* ---- parallelism ---- */
/* Runs fn(i, arg) for i in [0, n) on up to ctx->n_threads threads (OpenMP when built with
 * it, else serially). fn must not fail; per-item errors are collected by the caller. */
typedef void (*pt_range_fn)(int64_t begin, int64_t end, void* arg);
/* Splits [0, n) into contiguous chunks (at least `grain` items each) over the threads. */
PT_HIDDEN void pt_parallel_range(const pt_ctx* ctx, int64_t n, int64_t grain, pt_range_fn fn, void* arg);
/* The calling thread's pool workers sleep now rather than spin for the next job (before a call
 * into oneDNN, whose OpenMP threads need the cores). */
PT_HIDDEN void pt_parallel_park(void);
/* Dynamic work split: run pt_parallel_range(ctx, min(items, threads), 1, worker, arg) and let
 * each worker take item indices from a shared counter (0 before the call) with pt_fetch_add until
 * they run out. Relaxed order is enough: each index is handed out once, and the items' results
 * reach the caller through pt_parallel_range's join. */
#if defined(_MSC_VER) && !defined(__clang__)
#  include <intrin.h>
static inline int64_t pt_fetch_add(volatile int64_t* p, int64_t v) { return _InterlockedExchangeAdd64((volatile long long*)p, v); }
#else
static inline int64_t pt_fetch_add(volatile int64_t* p, int64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
#endif

/* ---- oneDNN (gemm_onednn.c); all return PT_ERR_UNSUPPORTED when built without it ---- */
PT_HIDDEN pt_status pt_onednn_init(pt_ctx* ctx);
PT_HIDDEN void pt_onednn_free(pt_ctx* ctx);
PT_HIDDEN uint32_t pt_onednn_version(void);
/* int8 GEMM through oneDNN's s8 matmul (gemm_onednn.c): y = act(sx[m] ws[n] (a . b) + bias);
 * a s8 [m, k] row stride lda; b pt_pack_int8_weight's blocks (oneDNN's
 * BA16a32b4a); sx [m], ws [n], bias [n] contiguous f32; y f32|bf16, row stride ldy elements.
 * PT_ERR_UNSUPPORTED (no message) when oneDNN is absent or has no fast kernel for it. */
typedef struct pt_onednn_s8_problem {
    int64_t m, n, k, lda, ldy;
    int32_t y_dtype, activation;
    const int8_t* a;
    const int8_t* b;
    const float* sx;
    const float* ws;
    const float* bias;
    void* y;
    int32_t threads;          /* oneDNN's threads for this call: 0 = ctx->n_threads; 1 = on the calling thread
                               * (from a worker of ours: pt_matmul_int8 splits the columns among them) */
    const float* add;         /* NULL, or f32 [m, n] (row stride ldadd elements) added after the scales and bias,
                               * before the activation (oneDNN's binary post-op: LLM.int8's outlier product) */
    int64_t ldadd;
} pt_onednn_s8_problem;
PT_HIDDEN pt_status pt_matmul_onednn_s8(pt_ctx* ctx, const pt_onednn_s8_problem* q);

#endif
