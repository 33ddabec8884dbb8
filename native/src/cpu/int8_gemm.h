/* Internal interface of the int8 GEMM family (int8_gemm.c, int8_gemm_avx512.c).
 *
 * Packed operands shared by every backend:
 *   A: activation rows quantized to u8 = s8 + 128, row stride lda bytes, K padded to k4 (a
 *      multiple of 4) with any value.
 *   B: one block of PT_I8_NB = 64 output channels as two halves of PT_I8_NH = 32, each
 *      [k64 / 4][32][4] s8 (VNNI's 4-way dot layout; K padded to 64 in every block, so the
 *      second half starts k64 * 32 bytes in); channels and K past the end are zero.
 * A micro kernel computes acc[r][j] = sum_k A[r][k] * B[k][j] (u8 x s8 -> s32) for r < mr
 * rows (mr <= PT_I8_MR) and all 64 columns of the block; the caller subtracts
 * 128 * colsum(B) to undo the u8 shift. */
#ifndef PT_CPU_INT8_GEMM_H
#define PT_CPU_INT8_GEMM_H
#include "common/internal.h"

#define PT_I8_NB 64
#define PT_I8_NH 32     /* channels of a half block */
#define PT_I8_MR 6      /* VNNI and portable tile rows */
#define PT_I8_MR_MAX 32 /* AMX tile rows */

typedef void (*pt_i8_micro_fn)(int64_t k4, const uint8_t* a, int64_t lda, int mr, const int8_t* b,
                               int32_t* acc /* [mr][64] */);

PT_HIDDEN void pt_i8_micro_portable(int64_t k4, const uint8_t* a, int64_t lda, int mr, const int8_t* b, int32_t* acc);
#if defined(PT_HAVE_X86_KERNELS)
/* The f32 epilogue's operands (see pt_i8_epilogue_avx512) for rows [0, mr) of a tile */
typedef struct {
    const int32_t* colsum;
    const float *sx, *wsc, *bias, *xo;
    int64_t no;
    const float* wop;
    float* out;
    int64_t ldo;
    int nb;
} pt_i8_epi;
/* The VNNI micro kernel finishing its tile itself: pt_i8_epilogue_avx512's result from the sums in
 * registers (no s32 tile in memory; the outlier product register-blocked over the 6 x 64 tile) */
PT_HIDDEN void pt_i8_micro_vnni_epi(int64_t k4, const uint8_t* a, int64_t lda, int mr, const int8_t* b, const pt_i8_epi* e);
/* AMX: K padded to 64 (k argument = k64), A with 32 readable rows; begin/end per thread */
PT_HIDDEN void pt_i8_micro_amx(int64_t k64, const uint8_t* a, int64_t lda, int mr, const int8_t* b, int32_t* acc);
PT_HIDDEN void pt_i8_amx_begin(void);
PT_HIDDEN void pt_i8_amx_end(void);
PT_HIDDEN void pt_i8_quant_row_avx512(const float* x, const uint8_t* keep, int64_t k, uint8_t* q, float* amax_out,
                                      int* nonfinite, int s8);
PT_HIDDEN void pt_i8_epilogue_avx512(const int32_t* acc, int64_t ldacc, int mr, const int32_t* colsum, const float* sx, const float* wsc,
                                     const float* bias, const float* xo, int64_t no, const float* wop, float* out, int64_t ldo,
                                     int nb);
PT_HIDDEN void pt_i8_scan_row_avx512(const float* x, int64_t k, float thr, float* cm, float* rmax, int* nonfinite);
PT_HIDDEN void pt_i8_scanq_row_avx512(const float* x, int64_t k, float thr, float* cm, uint8_t* q, int s8, float* rmax, int* nonfinite);
PT_HIDDEN void pt_i8_quantize_row_avx512(const float* x, const uint8_t* keep, int64_t k, uint8_t* q, float am, int nonfinite, int s8);
PT_HIDDEN void pt_i8_outlier_rows_avx512(const float* xo, int64_t no, int64_t m, const float* wo, int64_t ldw, int64_t n, float* y, int64_t ldy);
/* One outlier column's weights from a packed block, dequantized: dst[j] = b[j][col] * scale[j]
 * for the block's channels j < nb (stores only those), where grp = block + (col / 4) * 4 * PT_I8_NH
 * (the column's 4-K group in the first half), half = the bytes of a 32-channel half, sub = col % 4 */
PT_HIDDEN void pt_i8_outlier_wcol_avx512(const int8_t* grp, int64_t half, int sub, const float* scale, int nb, float* dst);
PT_HIDDEN void pt_i8_outlier_set_avx512(const float* xo, int64_t no, int64_t m, const float* wo, int64_t ldw, int64_t n, float* y, int64_t ldy);
PT_HIDDEN void pt_i8_micro_vnni(int64_t k4, const uint8_t* a, int64_t lda, int mr, const int8_t* b, int32_t* acc);
#endif
#endif
