/* Internal GEMM problem description shared by the dispatcher and its backends. */
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
} pt_gemm_problem;

PT_HIDDEN pt_status pt_matmul_onednn(pt_ctx* ctx, const pt_gemm_problem* g);
/* Our own kernels: portable packed f32/bf16 (gemm.c), AVX-512 microkernels when present. */
PT_HIDDEN pt_status pt_matmul_own(pt_ctx* ctx, const pt_gemm_problem* g);
/* Applies the activation in place over n floats. */
PT_HIDDEN void pt_apply_activation(float* x, int64_t n, int32_t act);
#endif
