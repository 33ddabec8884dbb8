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

#endif
