/* SIMD helpers shared by flash_attn_avx512.c and flash_attn_amx.c (both compiled with
 * AVX-512 flags). Not part of the public API. */
#ifndef PT_CPU_FLASH_ATTN_X86_H
#define PT_CPU_FLASH_ATTN_X86_H
#include "cpu/flash_attn.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

/* 2^x for x <= 0; 0 below -100 (no denormals: they would stall the FMAs); NaN -> 0. */
AI __m512 exp2_ps(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-100.0f);
    __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
    __m512 xc = _mm512_max_ps(x, lo);
    __m512 r = _mm512_roundscale_ps(xc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(xc, r); /* [-0.5, 0.5] */
    __m512 p = _mm512_set1_ps(1.5252733804059840e-5f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381609e-4f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(keep, p, r);
}

/* The decode kernels' software-prefetch cursor (flash_attn_avx512.c's fd_chunk_v2 and
 * flash_attn_amx.c's pt_fd_chunk_amx): the K and V lines of an item's rows x < xe into L2
 * (PT_FD_PF_HINT; into L1 with pt_fd_prefetch_to's l1: the AVX-512 kernel without AMX), in
 * the order the kernel takes the rows (pt_fd_row: with the range split in two halves [lo, mid)
 * and [mid, hi), n2 = 2 (hi - mid) > 0, a row of the first half and the same row of the second
 * in turn, then the rest of the first; unsplit, n2 = 0, row lo + x), each row's K lines then its
 * V lines, whole rows against a budget of lines that the kernel's hooks feed (pt_fd_prefetch), so
 * the fill buffers see a steady trickle rather than bursts. A probe of the pattern alone
 * (BENCHMARKS.md, issue 3, session 7): 2 streams switching every few lines 79-84% of the
 * 8-stream read, runs of 128 lines per stream 64-71%, 4 streams (two halves) 89-103%. */
typedef struct {
    const char *k, *v;
    int64_t k_ss, v_ss, kbytes, vbytes;
    int64_t x, xe;       /* the next row in the cursor's order, and the cap */
    int64_t lo, mid, n2; /* the order of the rows */
    int budget, nl;      /* lines owed by the hooks; K + V lines per row */
} pt_fd_pfc;

#ifndef PT_FD_PF_HINT
#  define PT_FD_PF_HINT _MM_HINT_T1
#endif

AI int64_t pt_fd_row(const pt_fd_pfc* c, int64_t x) {
    if (x < c->n2) return ((x & 1) ? c->mid : c->lo) + (x >> 1);
    return c->lo + x - (c->n2 >> 1);
}

/* A hook: n more lines owed; issues whole rows while the budget covers one (nothing is owed past
 * the cap). l1: prefetcht0 (into L1) instead of PT_FD_PF_HINT (the AVX-512 kernel on hosts
 * without AMX; flash_attn_avx512.c). */
AI void pt_fd_prefetch_to(pt_fd_pfc* c, int n, int l1) {
    c->budget += n;
    for (; c->budget >= c->nl && c->x < c->xe; c->budget -= c->nl, c->x++) {
        const int64_t j = pt_fd_row(c, c->x);
        const char *kr = c->k + j * c->k_ss, *vr = c->v + j * c->v_ss;
        if (l1) {
            for (int64_t o = 0; o < c->kbytes; o += 64) _mm_prefetch(kr + o, _MM_HINT_T0);
            for (int64_t o = 0; o < c->vbytes; o += 64) _mm_prefetch(vr + o, _MM_HINT_T0);
        } else {
            for (int64_t o = 0; o < c->kbytes; o += 64) _mm_prefetch(kr + o, PT_FD_PF_HINT);
            for (int64_t o = 0; o < c->vbytes; o += 64) _mm_prefetch(vr + o, PT_FD_PF_HINT);
        }
    }
    if (c->x >= c->xe) c->budget = 0;
}
AI void pt_fd_prefetch(pt_fd_pfc* c, int n) { pt_fd_prefetch_to(c, n, 0); }

#endif
