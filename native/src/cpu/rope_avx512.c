/* AVX-512 RoPE kernels: a vectorized cos/sin table (angles reduced by pi/2 in double, Cephes
 * float polynomials on [-pi/4, pi/4], same algorithm as pt_sincos_reduced) and the rotation
 * of a head's pairs (NEOX: two contiguous halves; GPTJ: interleaved pairs with an in-lane swap). */
#include "cpu/elem.h"
#include "cpu/vecmath_avx512.h"

#include <math.h>

/* 8 angles in double -> (sin, cos) in f32; returns 0 when an angle is too large for the
 * double reduction (the caller then uses the scalar path). */
static inline int sincos8(__m512d a, __m256* s_out, __m256* c_out) {
    const __m512d two_over_pi = _mm512_set1_pd(0.63661977236758134308);
    __m512d j = _mm512_roundscale_pd(_mm512_mul_pd(a, two_over_pi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d aj = _mm512_abs_pd(j);
    if (_mm512_cmp_pd_mask(aj, _mm512_set1_pd(4503599627370496.0), _CMP_NLT_UQ)) return 0; /* huge, inf, NaN */
    __m512d y = _mm512_fnmadd_pd(j, _mm512_set1_pd(1.5707963267341256), a);
    y = _mm512_fnmadd_pd(j, _mm512_set1_pd(6.077100506506192e-11), y);
    __m256 yf = _mm512_cvtpd_ps(y);
    __m256 z = _mm256_mul_ps(yf, yf);
    __m256 sn = _mm256_fmadd_ps(_mm256_set1_ps(-1.9515295891e-4f), z, _mm256_set1_ps(8.3321608736e-3f));
    sn = _mm256_fmadd_ps(sn, z, _mm256_set1_ps(-1.6666654611e-1f));
    sn = _mm256_fmadd_ps(_mm256_mul_ps(sn, z), yf, yf);
    __m256 cn = _mm256_fmadd_ps(_mm256_set1_ps(2.443315711809948e-5f), z, _mm256_set1_ps(-1.388731625493765e-3f));
    cn = _mm256_fmadd_ps(cn, z, _mm256_set1_ps(4.166664568298827e-2f));
    cn = _mm256_fmadd_ps(_mm256_mul_ps(cn, z), z, _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), z, _mm256_set1_ps(1.0f)));
    __m256i q = _mm512_cvtepi64_epi32(_mm512_cvtpd_epi64(j)); /* |j| < 2^52: exact */
    __mmask8 swap = _mm256_test_epi32_mask(q, _mm256_set1_epi32(1));
    __mmask8 sneg = _mm256_test_epi32_mask(q, _mm256_set1_epi32(2));
    __mmask8 cneg = _mm256_test_epi32_mask(_mm256_add_epi32(q, _mm256_set1_epi32(1)), _mm256_set1_epi32(2));
    __m256 s = _mm256_mask_blend_ps(swap, sn, cn), c = _mm256_mask_blend_ps(swap, cn, sn);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    *s_out = _mm256_mask_xor_ps(s, sneg, s, sign);
    *c_out = _mm256_mask_xor_ps(c, cneg, c, sign);
    return 1;
}

void pt_rope_table_avx512(double pos, const double* freq, int64_t k, int gptj, float* cs) {
    const __m512d p = _mm512_set1_pd(pos);
    int64_t j = 0;
    for (; j < k; j += 8) {
        int64_t m = k - j < 8 ? k - j : 8;
        __mmask8 mk = (__mmask8)((1u << m) - 1u);
        __m256 s, c;
        if (!sincos8(_mm512_mul_pd(p, _mm512_maskz_loadu_pd(mk, freq + j)), &s, &c)) {
            for (int64_t i = j; i < j + m; i++) { /* rare: scalar fallback for this group */
                float ss, cc;
                pt_sincos_reduced(pos * freq[i], &ss, &cc);
                if (gptj) {
                    cs[2 * i] = cs[2 * i + 1] = cc;
                    cs[2 * k + 2 * i] = -ss;
                    cs[2 * k + 2 * i + 1] = ss;
                } else {
                    cs[i] = cc;
                    cs[k + i] = ss;
                }
            }
            continue;
        }
        if (gptj) { /* duplicate per pair: c c, -s s */
            const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
            __m512 c2 = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(c));
            __m512 s2 = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(s));
            s2 = _mm512_mask_xor_ps(s2, 0x5555, s2, _mm512_set1_ps(-0.0f));
            __mmask16 m2 = (__mmask16)((1u << (2 * m)) - 1u);
            _mm512_mask_storeu_ps(cs + 2 * j, m2, c2);
            _mm512_mask_storeu_ps(cs + 2 * k + 2 * j, m2, s2);
        } else {
            _mm256_mask_storeu_ps(cs + j, mk, c);
            _mm256_mask_storeu_ps(cs + k + j, mk, s);
        }
    }
}

PT_AI void neox_impl(const void* x, const int XDT, void* o, const int ODT, const float* cs, int64_t p0, int64_t k,
                     int64_t half) {
    const char* xa = (const char*)x;
    for (int64_t j = 0; j < k; j += 16) {
        __mmask16 m = pt_tail_mask(k - j);
        int64_t i = p0 + j;
        __m512 a = pt_ldm(xa, XDT, i, m), b = pt_ldm(xa, XDT, i + half, m);
        __m512 c = _mm512_maskz_loadu_ps(m, cs + j), s = _mm512_maskz_loadu_ps(m, cs + k + j);
        pt_stm(o, ODT, i, _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)), m);
        pt_stm(o, ODT, i + half, _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s)), m);
    }
}

PT_AI void gptj_impl(const void* x, const int XDT, void* o, const int ODT, const float* cs, int64_t p0, int64_t k) {
    const int64_t n = 2 * k, base = 2 * p0;
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 m = pt_tail_mask(n - j);
        __m512 v = pt_ldm(x, XDT, base + j, m);
        __m512 w = _mm512_permute_ps(v, 0xB1); /* swap within pairs */
        __m512 c = _mm512_maskz_loadu_ps(m, cs + j), s = _mm512_maskz_loadu_ps(m, cs + n + j);
        pt_stm(o, ODT, base + j, _mm512_fmadd_ps(v, c, _mm512_mul_ps(w, s)), m);
    }
}

#define NEOX_K(XDT, ODT) neox_impl(x, XDT, out, ODT, cs, p0, k, half)
#define GPTJ_K(XDT, ODT) gptj_impl(x, XDT, out, ODT, cs, p0, k)
#define PT_DT2_0(FN, xdt, odt)                              \
    do {                                                    \
        if ((xdt) == PT_F32) {                              \
            if ((odt) == PT_F32) FN(PT_F32, PT_F32);        \
            else FN(PT_F32, PT_BF16);                       \
        } else {                                            \
            if ((odt) == PT_F32) FN(PT_BF16, PT_F32);       \
            else FN(PT_BF16, PT_BF16);                      \
        }                                                   \
    } while (0)

void pt_rope_pairs_avx512(const void* x, int xdt, void* out, int odt, const float* cs, int64_t p0, int64_t k,
                          int64_t half, int gptj) {
    if (gptj) PT_DT2_0(GPTJ_K, xdt, odt);
    else PT_DT2_0(NEOX_K, xdt, odt);
}
