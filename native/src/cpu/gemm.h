/* Internal GEMM problem description shared by the dispatcher and its backends.
 *
 * Our own GEMM is BLIS-style: a driver (gemm.c) blocks the problem into KC x NC panels of B
 * and MC x KC blocks of A, packs both into thread-local scratch, and calls a register-blocked
 * microkernel on MR x NR tiles. A backend (gemm_avx512.c, gemm_avx2.c, gemm_amx.c, or the
 * portable one in gemm.c) supplies a pt_gemm_kernel: its tile sizes, its packing routines and
 * its microkernel. The microkernel finishes each tile through pt_gemm_tile_out (the fused
 * epilogue: alpha, bias, beta * previous value, activation, f32 or bf16 store). */
#ifndef PT_CPU_GEMM_H
#define PT_CPU_GEMM_H
#include "common/internal.h"

/* C[b] = act(alpha * A[b] @ op(B[b]) + bias + beta * C[b]); strides in ELEMENTS.
 * A: m x k, row stride lda.  B: k x n with row stride ldb, or (trans_b) n x k with row
 * stride ldb.  C: m x n, row stride ldc.  batch_x: element stride between batches (0 for
 * B means broadcast). a and b share a_dtype (f32|bf16); c_dtype f32|bf16; bias f32. */
typedef struct pt_gemm_problem {
    int64_t m, n, k, batch;
    int32_t a_dtype, c_dtype;
    const void* a;
    const void* b;
    const float* bias;
    void* c;
    int64_t lda, ldb, ldc, batch_a, batch_b, batch_c;
    int32_t trans_b, activation;
    float alpha, beta;
    const struct pt_packed_matrix* packed; /* B prepacked (then b is unused), or NULL */
} pt_gemm_problem;

/* A prepacked B (pt_matmul_pack): for each K block of kc rows (the driver's KC for this k and
 * kernel), the ceil(n / NR) panels of all columns as the kernel's pack_b writes them, blocks
 * block_bytes apart. */
struct pt_packed_matrix {
    const struct pt_gemm_kernel* kr;
    int64_t k, n, kc, block_bytes;
    int32_t dtype, trans_b;
    uint32_t caps;            /* ctx caps the kernel needs */
    size_t bytes;
    void* data;               /* 64-byte aligned */
};

/* How a microkernel finishes one MR x NR tile (element strides):
 *   out[r][j] = act(alpha * acc[r][j] + bias[j] + beta * prev[r][j])
 * bias == NULL: no bias; beta == 0: prev is not read (it may hold NaN); act PT_ACT_*.
 * prev/out are f32 or bf16 (prev_bf16/out_bf16), and may be the same memory. The driver
 * uses this both for the final epilogue and to accumulate partial sums over K blocks. */
typedef struct pt_gemm_tile_out {
    float alpha, beta;
    const float* bias;        /* at the tile's first column, or NULL */
    const void* prev;         /* at the tile's first element */
    void* out;
    int64_t ldp, ldo;
    int32_t prev_bf16, out_bf16;
    int32_t act;
} pt_gemm_tile_out;

/* Packs rows [0, mc) x cols [0, kc) of A (src at A[i0, p0], row stride lda elements, dtype
 * src_dtype) into ceil(mc / MR) panels, zero-padding missing rows (and K up to kpack). */
typedef void (*pt_gemm_pack_a_fn)(const void* src, int32_t src_dtype, int64_t lda, int64_t mc,
                                  int64_t kc, void* dst);
/* Packs the kc x nc block of op(B) (src at B[p0, j0], or B[j0, p0] when trans_b) into
 * ceil(nc / NR) panels, zero-padding missing columns. */
typedef void (*pt_gemm_pack_b_fn)(const void* src, int32_t src_dtype, int64_t ldb, int trans_b,
                                  int64_t kc, int64_t nc, void* dst);
/* One tile: acc = packed A panel (MR x kc) @ packed B panel (kc x NR); stores the valid
 * mr x nr corner through `o`. */
typedef void (*pt_gemm_micro_fn)(int64_t kc, const void* pa, const void* pb, int mr, int nr,
                                 const pt_gemm_tile_out* o);

typedef struct pt_gemm_kernel {
    const char* name;
    int32_t mr, nr;           /* register tile */
    int32_t kpack;            /* K elements packed together (2 for bf16 pairs, 32 for AMX) */
    int32_t pack_size;        /* bytes of one packed element (4 f32, 2 bf16) */
    int64_t mc, kc, nc;       /* cache blocking (mc multiple of mr, nc of nr, kc of kpack) */
    pt_gemm_pack_a_fn pack_a;
    pt_gemm_pack_b_fn pack_b;
    pt_gemm_micro_fn micro;
    /* Optional: called once per thread before/after its tiles (AMX tile config). */
    void (*thread_begin)(void);
    void (*thread_end)(void);
    /* Optional: a direct kernel for M <= small_m_max (GEMV-like shapes, where packing B buys
     * no reuse): computes every row of C[b][:, n0:n1] with the full epilogue, reading A and B
     * in place. Returns 0, or -1 when its scratch could not be allocated. */
    int32_t small_m_max;
    int (*small)(const pt_gemm_problem* g, int64_t b, int64_t n0, int64_t n1);
} pt_gemm_kernel;

PT_HIDDEN pt_status pt_matmul_onednn(pt_ctx* ctx, const pt_gemm_problem* g);
/* Our own kernels: picks the backend from ctx->caps and runs the blocked driver. */
PT_HIDDEN pt_status pt_matmul_own(pt_ctx* ctx, const pt_gemm_problem* g);
/* The backend pt_matmul_own uses for this problem (from ctx->caps and the dtype). */
PT_HIDDEN const pt_gemm_kernel* pt_gemm_pick(const pt_ctx* ctx, const pt_gemm_problem* g);
/* Applies the activation in place over n floats (scalar libm; the reference semantics). */
PT_HIDDEN void pt_apply_activation(float* x, int64_t n, int32_t act);

/* Backends. Each returns NULL when compiled out. */
PT_HIDDEN const pt_gemm_kernel* pt_gemm_kernel_portable_f32(void);
#if defined(PT_HAVE_X86_KERNELS)
PT_HIDDEN const pt_gemm_kernel* pt_gemm_kernel_avx512_f32(void);
PT_HIDDEN const pt_gemm_kernel* pt_gemm_kernel_avx512_bf16(void);
PT_HIDDEN const pt_gemm_kernel* pt_gemm_kernel_avx2_f32(void);
PT_HIDDEN const pt_gemm_kernel* pt_gemm_kernel_amx_bf16(void);
/* The AVX-512 tile epilogue (gemm_avx512.c), shared with the AMX kernel: stores an
 * mr x nr f32 tile held in memory (row stride ld floats) through `o`. */
PT_HIDDEN void pt_gemm_store_tile_avx512(const float* acc, int64_t ld, int mr, int nr,
                                         const pt_gemm_tile_out* o);
/* The AVX-512 small-M kernel (f32 or bf16 inputs; AVX512F only), shared with the AMX backend. */
PT_HIDDEN int pt_gemm_small_avx512(const pt_gemm_problem* g, int64_t b, int64_t n0, int64_t n1);
#endif

/* Portable packers (any MR/NR; f32 or bf16 source, f32 destination), used by every backend
 * for the cases it does not specialize. */
PT_HIDDEN void pt_gemm_pack_a_generic(const void* src, int32_t src_dtype, int64_t lda, int64_t mc,
                                      int64_t kc, float* dst, int mr);
PT_HIDDEN void pt_gemm_pack_b_generic(const void* src, int32_t src_dtype, int64_t ldb, int trans_b,
                                      int64_t kc, int64_t nc, float* dst, int nr);
#endif
