/* AVX-512 helpers of the elementwise family: f32/bf16/f16 loads and stores (masked tails),
 * and f32 approximations of exp, erfc, tanh and the activations built on them.
 * Include only from *_avx512.c files (compiled with the AVX-512 flags).
 *
 * Accuracy (measured against double references by native/tests/test_elementwise.c):
 *   exp     Cephes expf polynomial, 2^n applied by vscalefps (gradual underflow, exact
 *           overflow to inf); relative error < 2e-7 on [-87, 88]
 *   erfc    Numerical Recipes' erfcc Chebyshev fit (fractional error < 1.2e-7), its
 *           exp(-z^2) evaluated with z^2 split in hi+lo, so the error stays ~3e-7 even where
 *           erfc is ~1e-40
 *   tanh    Cephes tanhf: odd polynomial below |x| = 0.625, 1 - 2/(exp(2|x|) + 1) above
 * NaN inputs give NaN; +-inf give the mathematical limits. */
#ifndef PT_VECMATH_AVX512_H
#define PT_VECMATH_AVX512_H
#include <immintrin.h>

#include "common/internal.h"

#if defined(_MSC_VER)
#  define PT_AI static __forceinline
#else
#  define PT_AI static inline __attribute__((always_inline))
#endif

PT_AI __mmask16 pt_tail_mask(int64_t rem) { return (__mmask16)(rem >= 16 ? 0xffff : ((1u << rem) - 1u)); }

/* ---- loads: 16 elements at element index i of p (dtype dt: a compile-time constant
 * after inlining), widened to f32 ---- */
PT_AI __m512 pt_ld(const void* p, int dt, int64_t i) {
    if (dt == PT_F32) return _mm512_loadu_ps((const float*)p + i);
    __m256i h = _mm256_loadu_si256((const __m256i*)((const uint16_t*)p + i));
    if (dt == PT_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}
PT_AI __m512 pt_ldm(const void* p, int dt, int64_t i, __mmask16 m) {
    if (dt == PT_F32) return _mm512_maskz_loadu_ps(m, (const float*)p + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t*)p + i);
    if (dt == PT_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* f32 -> bf16 bits (in the low half of each 32-bit lane), round to nearest even, NaN
 * quieted: bit-exact with pt_f32_to_bf16 (and, unlike vcvtneps2bf16, keeps subnormals). */
PT_AI __m512i pt_bf16_bits(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x40));
}
/* v rounded to bf16 and widened back (what a bf16 store followed by a load gives). */
PT_AI __m512 pt_round_bf16(__m512 v) { return _mm512_castsi512_ps(_mm512_slli_epi32(pt_bf16_bits(v), 16)); }

/* f32 -> f16 bits, round to nearest even; NaN becomes sign | 0x7e00 (as pt_f32_to_f16). */
PT_AI __m256i pt_f16_bits(__m512 v) {
    __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    __m256i canon = _mm256_or_si256(_mm256_and_si256(h, _mm256_set1_epi16((short)0x8000)), _mm256_set1_epi16(0x7e00));
    return _mm256_mask_mov_epi16(h, nan, canon);
}

PT_AI void pt_st(void* p, int dt, int64_t i, __m512 v) {
    if (dt == PT_F32) _mm512_storeu_ps((float*)p + i, v);
    else if (dt == PT_BF16) _mm256_storeu_si256((__m256i*)((uint16_t*)p + i), _mm512_cvtepi32_epi16(pt_bf16_bits(v)));
    else _mm256_storeu_si256((__m256i*)((uint16_t*)p + i), pt_f16_bits(v));
}
PT_AI void pt_stm(void* p, int dt, int64_t i, __m512 v, __mmask16 m) {
    if (dt == PT_F32) _mm512_mask_storeu_ps((float*)p + i, m, v);
    else if (dt == PT_BF16) _mm512_mask_cvtepi32_storeu_epi16((uint16_t*)p + i, m, pt_bf16_bits(v));
    else _mm256_mask_storeu_epi16((uint16_t*)p + i, m, pt_f16_bits(v));
}

/* Calls FN(<xdt>, <odt>, args...) with both dtypes as literal constants (f32 | bf16), so
 * the always-inline kernel FN is specialized per combination. */
#define PT_DT2(FN, xdt, odt, ...)                                                 \
    do {                                                                          \
        if ((xdt) == PT_F32) {                                                    \
            if ((odt) == PT_F32) FN(PT_F32, PT_F32, __VA_ARGS__);                 \
            else FN(PT_F32, PT_BF16, __VA_ARGS__);                                \
        } else {                                                                  \
            if ((odt) == PT_F32) FN(PT_BF16, PT_F32, __VA_ARGS__);                \
            else FN(PT_BF16, PT_BF16, __VA_ARGS__);                               \
        }                                                                         \
    } while (0)
#define PT_DT3(FN, adt, bdt, odt, ...)                                            \
    do {                                                                          \
        if ((adt) == PT_F32) {                                                    \
            if ((bdt) == PT_F32) PT_DT2(FN, PT_F32, odt, PT_F32, __VA_ARGS__);    \
            else PT_DT2(FN, PT_F32, odt, PT_BF16, __VA_ARGS__);                   \
        } else {                                                                  \
            if ((bdt) == PT_F32) PT_DT2(FN, PT_BF16, odt, PT_F32, __VA_ARGS__);   \
            else PT_DT2(FN, PT_BF16, odt, PT_BF16, __VA_ARGS__);                  \
        }                                                                         \
    } while (0)

/* ---- horizontal reductions ---- */
PT_AI float pt_hsum(__m512 v) { return _mm512_reduce_add_ps(v); }
PT_AI float pt_hmax(__m512 v) { return _mm512_reduce_max_ps(v); }

/* ---- exp ---- */
/* exp(a + c) for a small correction c (|c| <~ 4), or exp(a) when HAS_C is 0: the range
 * reduction is done on a with Cody-Waite constants, c is added to the reduced argument.
 * Clamped to [-104, 88.8], which already maps to 0 / inf; NaN propagates. */
PT_AI __m512 pt_exp_impl(__m512 a, __m512 c, const int HAS_C) {
    const __m512 lo = _mm512_set1_ps(-104.0f), hi = _mm512_set1_ps(88.8f);
    a = _mm512_min_ps(hi, _mm512_max_ps(lo, a)); /* constants first: NaN in a is kept */
    __m512 t = _mm512_mul_ps(HAS_C ? _mm512_add_ps(a, c) : a, _mm512_set1_ps(1.44269504088896341f));
    __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), a);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    if (HAS_C) r = _mm512_add_ps(r, c);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}
PT_AI __m512 pt_exp_c(__m512 a, __m512 c) { return pt_exp_impl(a, c, 1); }
PT_AI __m512 pt_exp(__m512 x) { return pt_exp_impl(x, x, 0); }

/* erfc(z) for finite 0 <= z <= 22, given z^2 = hi + lo exactly (hi = fl(z^2), lo its rounding
 * error), so exp(-z^2) keeps full relative accuracy deep in the tail. */
PT_AI __m512 pt_erfc_pos(__m512 z, __m512 hi, __m512 lo) {
    const __m512 one = _mm512_set1_ps(1.0f);
    /* t = 1 / (1 + z/2) by rcp14 + one Newton step (relative error ~2^-28; d is in [1, 12]
     * for the z callers pass): cheaper than vdivps, and t only feeds a smooth polynomial */
    __m512 d = _mm512_fmadd_ps(_mm512_set1_ps(0.5f), z, one);
    __m512 t = _mm512_rcp14_ps(d);
    t = _mm512_mul_ps(t, _mm512_fnmadd_ps(d, t, _mm512_set1_ps(2.0f)));
    __m512 p = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
    /* exp(-hi + (p - lo)): hi goes through the exact range reduction */
    return _mm512_mul_ps(t, pt_exp_c(_mm512_sub_ps(_mm512_setzero_ps(), hi), _mm512_sub_ps(p, lo)));
}

/* ---- activations ---- */
PT_AI __m512 pt_gelu_erf(__m512 x) {
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    /* |x| >= 16: erfc(|x|/sqrt2) < 1e-57 is 0 in f32, so clamping changes nothing */
    __m512 ax = _mm512_min_ps(_mm512_set1_ps(16.0f), _mm512_and_ps(x, absmask));
    __m512 z = _mm512_mul_ps(ax, _mm512_set1_ps(0.70710678118654752f));
    __m512 sq = _mm512_mul_ps(ax, ax); /* z^2 = x^2 / 2, split exactly */
    __m512 sqlo = _mm512_fmsub_ps(ax, ax, sq);
    const __m512 half = _mm512_set1_ps(0.5f);
    __m512 e = pt_erfc_pos(z, _mm512_mul_ps(sq, half), _mm512_mul_ps(sqlo, half));
    /* 1 + erf(x/sqrt2) = erfc(-x/sqrt2): 2 - erfc(|z|) for x >= 0, erfc(|z|) below */
    __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
    __m512 w = _mm512_mask_sub_ps(e, pos, _mm512_set1_ps(2.0f), e);
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(half, x), w);
    /* x = -inf: -inf * 0; the limit is -0 */
    __mmask16 ninf = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    return _mm512_mask_mov_ps(y, ninf, _mm512_set1_ps(-0.0f));
}

/* sigmoid(t) without overflow: e = exp(-|t|), 1/(1+e) for t >= 0, e/(1+e) below (so
 * sigmoid(-100) is the subnormal it should be, not 1/inf) */
PT_AI __m512 pt_sigmoid(__m512 t) {
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff)), one = _mm512_set1_ps(1.0f);
    __m512 e = pt_exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_and_ps(t, absmask)));
    __mmask16 neg = _mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_div_ps(_mm512_mask_mov_ps(one, neg, e), _mm512_add_ps(one, e));
}

/* x * sigmoid(t); the x = -inf limit is -0 */
PT_AI __m512 pt_x_sigmoid(__m512 x, __m512 t) {
    __m512 y = _mm512_mul_ps(x, pt_sigmoid(t));
    __mmask16 ninf = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    return _mm512_mask_mov_ps(y, ninf, _mm512_set1_ps(-0.0f));
}

PT_AI __m512 pt_silu(__m512 x) { return pt_x_sigmoid(x, x); }

/* 0.5 x (1 + tanh(u)) = x * sigmoid(2u): no cancellation for negative x */
PT_AI __m512 pt_gelu_tanh(__m512 x) {
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 inner = _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x2, _mm512_set1_ps(1.0f));
    __m512 two_u = _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.5957691216057308f)), inner);
    return pt_x_sigmoid(x, two_u);
}

PT_AI __m512 pt_tanh(__m512 x) {
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    __m512 ax = _mm512_and_ps(x, absmask);
    __m512 sign = _mm512_andnot_ps(absmask, x);
    /* |x| >= 0.625: 1 - 2 / (exp(2|x|) + 1) */
    __m512 e = pt_exp(_mm512_add_ps(ax, ax));
    __m512 big = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                               _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
    big = _mm512_or_ps(big, sign);
    /* |x| < 0.625: x + x z P(z) */
    __m512 z = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    __mmask16 is_small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    return _mm512_mask_mov_ps(big, is_small, small); /* NaN: big is NaN */
}

PT_AI __m512 pt_relu(__m512 x) { return _mm512_max_ps(_mm512_setzero_ps(), x); /* NaN kept */ }

/* act(x) for a pt_activation (PT_ACT_NONE: x). */
PT_AI __m512 pt_act512(__m512 x, int act) {
    switch (act) {
    case PT_ACT_RELU: return pt_relu(x);
    case PT_ACT_GELU_ERF: return pt_gelu_erf(x);
    case PT_ACT_GELU_TANH: return pt_gelu_tanh(x);
    case PT_ACT_SILU: return pt_silu(x);
    default: return x;
    }
}

#endif
