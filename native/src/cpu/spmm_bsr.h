/* Internal interface of the block-sparse SpMM (spmm_bsr.c, spmm_bsr_avx512.c).
 *
 * Fast path layout ("transposed" formulation, after the Intel sparse accelerator): the
 * activations are transposed once per call so that one zmm holds 16 rows m of one reduction
 * index k (f32: xT [Kp][Mp] f32; int8: xT [Kp/4][Mp][4] u8 = q + 128, VNNI's u8 operand; the
 * int8 row kernel, pt_spmm_i8rows: the same layout as s8 q).
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
    int32_t accumulate;  /* 0: start from zero; 1: add to what out holds */
    void* out;
    int64_t ldo;
} pt_spmm_tile;

/* The epilogue of one transposed tile: rows m0 .. m0 + mlen - 1 of channels n0 .. n0 + nc - 1,
 * acc at tile[c * ldt + (m - m0)] (f32, or s32 for int8: (acc - 128 colsum) * sx[m] * scale[n]),
 * + bias, activation, stored to y rows (ldy bytes apart) as f32 or bf16. tile must have
 * ceil(nc / 16) * 16 readable rows of ldt >= ceil(mlen / 16) * 16 elements. */
typedef struct pt_spmm_epi {
    const void* tile;
    int64_t ldt;
    int32_t i8, act;
    int64_t mlen, nc;
    const float* bias;     /* [nc], never NULL (zeros) */
    const float* scale;    /* int8: [nc] */
    const int32_t* colsum; /* int8: [nc] */
    const float* sx;       /* int8: [mlen] */
    const uint8_t* bad;    /* int8: [mlen] */
    char* y;               /* row m0, channel n0 */
    int64_t ldy;           /* bytes */
    int32_t ydt;
} pt_spmm_epi;

/* AMX-INT8, 64x16 or 64x32 blocks (spmm_bsr_amx.c): one work item, rows [0, mlen) (mlen <= 64) of
 * a panel x block rows [nb0, nb1), computed in chunks of ldacc channels and finished into y. */
#define PT_SPMM_AMX_MAXCHUNK 2048 /* channels per chunk in y: 64 x 2048 x 4 = 512 KiB of y, a quarter of L2 */
typedef struct pt_spmm_amx {
    const int64_t* rowptr;
    const int32_t* col;
    const int8_t* vals;
    int32_t bn;              /* 16 or 32 */
    int32_t act, ydt;
    int64_t kb;              /* K blocks */
    const int8_t* xt;        /* the panel's tiled s8 x: [sub-panel][kb][16 rows][64 k] */
    int64_t mlen;
    int64_t nb0, nb1;
    int64_t n;               /* N (the last block row may be partial) */
    int32_t* acc;            /* scratch s32 [64][ldacc] */
    int64_t ldacc;           /* channels per chunk, a multiple of bn */
    const float* scale;      /* [N] per-channel weight scale */
    const float* bias;       /* [N], zeros when the call has none */
    const float* sx;         /* the panel's row scales */
    const uint8_t* bad;      /* the panel's rows with a non-finite x */
    char* y;                 /* y's row of the panel's first row (channel 0) */
    int64_t ldy;             /* bytes between y rows */
    int32_t yacc;            /* 1 (f32 y, mlen % 16 == 0, ldy % 4 == 0): the chunks of whole block rows keep
                              * their s32 sums in y itself (ldy / 4 apart), the epilogue rewrites them in place */
    int64_t ychunk;          /* yacc: channels per such chunk, a multiple of 32, <= PT_SPMM_AMX_MAXCHUNK */
} pt_spmm_amx;

/* Few rows (1..8; the driver uses it for M <= 4), 4x1 blocks, f32 or int8 (x row-major: f32, or u8 = q + 128), block rows
 * [nb0, nb1) (one channel each); sums to out[(nb - nb0) * ldo + m] (f32 / s32, transposed). */
typedef struct pt_spmm_rows {
    const int32_t* col;
    const void* vals;
    const int64_t* rowptr;
    int64_t nb0, nb1;
    const void* x;
    int64_t ldx;        /* elements (bytes for int8) */
    int32_t m, i8;
    void* out;
    int64_t ldo;
} pt_spmm_rows;

/* int8 blocks with bn % 16 == 0 on AVX512-VNNI (no AMX): the row formulation. x's 4-k dwords
 * (s8 as quantized, in the xT layout [Kp/4][Mp][4]) are the broadcast s8 operand of vpdpbusd,
 * taken straight from memory ({1to16}); the weights, 16 channels x 4 k per zmm (the [bk/4][bn][4]
 * block order), are the u8 operand as w + 128 (w ^ 0x80). Each accumulator is then one row x 16
 * channels, already in y's order: no transposed tile, no transpose in the epilogue, no
 * accumulator leaving registers. The +128 is undone with the rows' block sums:
 * acc = sum x (w + 128) - sum over kept blocks b of xsum[col[b]][m], xsum = 128 * (sum of x over the block).
 * One call: rows [0, rows) (rows <= 16) of a 16-row tile x block rows [nb0, nb1), finished into y. */
typedef struct pt_spmm_i8rows {
    const int64_t* rowptr;
    const int32_t* col;
    const int8_t* vals;
    int32_t bk, bn;
    int64_t nb0, nb1;
    int64_t n;               /* N (the last block row may be partial) */
    const int8_t* xt;        /* xT (s8) at the tile's first row */
    int64_t mp;              /* rows of xT and xsum */
    const int32_t* xsum;     /* xsum [KB][mp] at the tile's first row */
    int32_t rows;            /* 1..16 */
    int32_t act, ydt;
    const float* sx;         /* the tile's row scales */
    const uint8_t* bad;      /* the tile's rows with a non-finite x (their y row: NaN) */
    const float* scale;      /* [N] per-channel weight scale */
    const float* bias;       /* [N], zeros when the call has none */
    char* const* yrow;       /* [rows]: y's rows (channel 0) */
} pt_spmm_i8rows;

#if defined(PT_HAVE_X86_KERNELS)
PT_HIDDEN void pt_spmm_rows_4x1_avx512(const pt_spmm_rows* a);
PT_HIDDEN void pt_spmm_quant_row_tiled_avx512(const float* x, int64_t k, int64_t kb, int8_t* dst, float* sx, uint8_t* bad);
PT_HIDDEN void pt_spmm_copy_row_tiled_avx512(const int8_t* q, int64_t k, int64_t kb, int8_t* dst);
PT_HIDDEN void pt_spmm_quant_row_avx512(const float* x, int64_t k, int64_t kp, int8_t* q, float* sx, uint8_t* bad);
PT_HIDDEN int pt_spmm_amx_compiled(void);
PT_HIDDEN void pt_spmm_amx_begin(void);
PT_HIDDEN void pt_spmm_amx_end(void);
PT_HIDDEN void pt_spmm_amx_item(const pt_spmm_amx* a);
PT_HIDDEN void pt_spmm_epilogue_avx512(const pt_spmm_epi* e);
PT_HIDDEN void pt_spmm_tile_f32_avx512(const pt_spmm_tile* t);   /* f32 weights, f32 xT */
PT_HIDDEN void pt_spmm_tile_bf16_avx512(const pt_spmm_tile* t);  /* bf16 weights, f32 xT */
PT_HIDDEN void pt_spmm_tile_i8_vnni(const pt_spmm_tile* t);      /* s8 weights, u8 xT, bk % 4 == 0 */
PT_HIDDEN void pt_spmm_i8rows_vnni(const pt_spmm_i8rows* a);     /* bk % 4 == 0, bn % 16 == 0 */
/* Rows r0 .. r0 + n - 1 (n <= 16; row i at q + i * ldq, kp values, kp % 4 == 0) into xT at xt (their
 * first row; quads mp rows apart), as u8 = q + 128 (shift) or s8; with xsum (at row r0, [kp / bk][mp]),
 * 128 * each row's sum over each K block of bk. */
PT_HIDDEN void pt_spmm_xt16_i8_avx512(const int8_t* q, int64_t ldq, int n, int64_t kp, uint8_t* xt, int64_t mp, int shift,
                                      int32_t* xsum, int32_t bk);
#endif
#endif
