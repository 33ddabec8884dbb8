/* FP4 kernels: the problem description shared by the portable and the AVX-512 backends. */
#ifndef PT_FP4_H
#define PT_FP4_H

#include "common/internal.h"

typedef struct pt_fp4_problem {
    int64_t m, n, k;
    int64_t group;            /* elements per scale along K (K for per-channel) */
    const float* x;           /* [M, K] f32, row stride ldx (elements) */
    int64_t ldx;
    const float* xd;          /* AVX-512 only: x [M, K] (row stride K) with each 32-chunk deinterleaved (evens, odds) */
    const uint16_t* xb;       /* AVX512_BF16 GEMV only (M = 1): x rounded to bf16, per 128-chunk c of K (zero-padded
                               * to a multiple of 128) in nibble order: xb[128c + 32r + j] = bf16(x[128c + 4j + r]) */
    const void* xv;           /* AVX512_VNNI GEMV only (M = 1): x in 16-bit fixed point, per 128-chunk one
                               * PT_FP4_XV_BYTES block written by pt_fp4_vnni_quant (layout in fp4_avx512.c) */
    int32_t bf16_ok;          /* the bf16-activation GEMV may be used: weight-only and levels exact in bf16 (not NF4) */
    const uint8_t* codes;     /* [N, K/2] bytes, row stride ldw (bytes) */
    int64_t ldw;
    const void* scales;       /* [N, K/group] f32 | bf16, row stride lds (elements) */
    int64_t lds;
    int32_t scale_bf16;
    int32_t y_bf16;
    const float* bias;        /* [N] or NULL */
    void* y;                  /* [M, N], row stride ldy (elements) */
    int64_t ldy;
    float lut[16];
    uint16_t lutb[32];        /* lut as bf16, twice (vpermw indexes with 5 bits) */
    uint8_t lutv[16];         /* VNNI GEMV: level * mult + offset, u8 (see pt_fp4_vnni_prep) */
    int32_t vnni_mult, vnni_off; /* VNNI GEMV: mult and offset of lutv */
    int32_t vbmi;             /* VNNI GEMV: the CPU has AVX512_VBMI (vpermb looks the levels up without masking) */
    int64_t pf_bytes;         /* bf16 / VNNI GEMV: how far ahead of the rows being read each row stream prefetches,
                               * in bytes of codes (rounded up to whole passes), and the first rows are prefetched
                               * before the first pass; 0: one pass ahead, no prologue (see gemv_pf_rows) */
} pt_fp4_problem;

static inline float pt_fp4_scale(const pt_fp4_problem* p, int64_t n, int64_t g) {
    int64_t i = n * p->lds + g;
    return p->scale_bf16 ? pt_bf16_to_f32(((const uint16_t*)p->scales)[i]) : ((const float*)p->scales)[i];
}

static inline void pt_fp4_store_y(const pt_fp4_problem* p, int64_t m, int64_t n, float v) {
    int64_t i = m * p->ldy + n;
    if (p->y_bf16) ((uint16_t*)p->y)[i] = pt_f32_to_bf16(v);
    else ((float*)p->y)[i] = v;
}

/* Computes output columns [n0, n1) for all M rows. */
PT_HIDDEN void pt_fp4_rows_generic(const pt_fp4_problem* p, int64_t n0, int64_t n1);
#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
PT_HIDDEN void pt_fp4_rows_avx512(const pt_fp4_problem* p, int64_t n0, int64_t n1);
/* The bf16 / VNNI GEMV (p->xv or p->xb set, p->pf_bytes not 0) of rows [n0, n1): prefetches the
 * codes and scales of the rows its first passes read, which no pass prefetches (a call's other
 * work, such as quantizing x, then overlaps their DRAM latency). */
PT_HIDDEN void pt_fp4_gemv_prefetch(const pt_fp4_problem* p, int64_t n0, int64_t n1);
/* Bytes per 128-chunk of K of the VNNI GEMV's x (pt_fp4_problem.xv). */
#define PT_FP4_XV_BYTES 384
/* The VNNI GEMV (M = 1, weight-only, E2M1 / E1M2 / E3M0): sets p->lutv and returns 1 where the
 * format is one of the three and x [K] holds no NaN and no infinity; else returns 0 (the caller
 * then takes another kernel, which propagates them). */
PT_HIDDEN int pt_fp4_vnni_prep(pt_fp4_problem* p, int32_t format);
/* Quantizes p->x [K] into buf (PT_FP4_XV_BYTES per 128-chunk, 64-byte aligned) in the layout of
 * pt_fp4_problem.xv (after pt_fp4_vnni_prep returned 1). */
PT_HIDDEN void pt_fp4_vnni_quant(const pt_fp4_problem* p, void* buf);
#endif

#endif
