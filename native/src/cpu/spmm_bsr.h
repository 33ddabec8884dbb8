/* Internal interface of the block-sparse SpMM (spmm_bsr.c, spmm_bsr_avx512.c).
 *
 * Fast path layout ("transposed" formulation, after the Intel sparse accelerator): the
 * activations are transposed once per call so that one zmm holds 16 rows m of one reduction
 * index k (f32: xT [Kp][Mp] f32; int8: xT [Kp/4][Mp][4] u8 = q + 128, VNNI's u8 operand).
 * For each kept block (kb, nb) and each of its weights w[p][i] the kernel broadcasts the
 * weight (int8: 4 consecutive k of a channel as one dword) and FMAs (vpdpbusd) it against
 * the x vectors of rows m0 .. m0 + 16 MV, accumulating outT[channel][m] in registers.
 * Kp = KB * block_k (x's padding rows are zero), Mp = M rounded up to 16. */
#ifndef PT_CPU_SPMM_BSR_H
#define PT_CPU_SPMM_BSR_H
#include "common/internal.h"

/* One block row's work for a tile of 16 * mv rows starting at m0 (mv in 1..8).
 *   rowptr-range [b0, b1) of col[] / blocks, block values at vals (block b at b * bk * bn
 *   elements; f32 or bf16 [bk][bn], int8 [bk/4][bn][4]);
 *   out: [bn][ldo] (f32 or s32), the tile's m0 at column 0. */
typedef struct pt_spmm_tile {
    const int32_t* col;
    const void* vals;
    int64_t b0, b1;
    int32_t bk, bn;
    const void* xt;      /* xT base */
    int64_t mp;          /* padded rows of xT */
    int64_t m0;
    int32_t mv;
    int32_t pad_;
    void* out;
    int64_t ldo;
} pt_spmm_tile;

#if defined(PT_HAVE_X86_KERNELS)
PT_HIDDEN void pt_spmm_tile_f32_avx512(const pt_spmm_tile* t);   /* f32 weights, f32 xT */
PT_HIDDEN void pt_spmm_tile_bf16_avx512(const pt_spmm_tile* t);  /* bf16 weights, f32 xT */
PT_HIDDEN void pt_spmm_tile_i8_vnni(const pt_spmm_tile* t);      /* s8 weights, u8 xT, bk % 4 == 0 */
#endif
#endif
