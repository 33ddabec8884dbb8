/* AVX-512 row kernel of pt_softmax: max pass, exp+sum pass (exp(fma(scale, x, -max)), so
 * the shift is exact before the exponential), scale pass. */
#include "cpu/elem.h"
#include "cpu/vecmath_avx512.h"

PT_AI void softmax_impl(const void* x, const int XDT, float scale, void* out, const int ODT, int64_t n, float* buf) {
    const __m512 s = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    __m512 m0 = ninf, m1 = ninf;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_mul_ps(s, pt_ld(x, XDT, i)), b = _mm512_mul_ps(s, pt_ld(x, XDT, i + 16));
        m0 = _mm512_max_ps(m0, a);
        m1 = _mm512_max_ps(m1, b);
    }
    for (; i < n; i += 16) {
        __mmask16 k = pt_tail_mask(n - i);
        __m512 a = _mm512_mul_ps(s, pt_ldm(x, XDT, i, k));
        m0 = _mm512_mask_max_ps(m0, k, m0, a);
    }
    float mx = pt_hmax(_mm512_max_ps(m0, m1)); /* a NaN anywhere reaches every output through the sum */
    const __m512 nm = _mm512_set1_ps(-mx);
    float* e = ODT == PT_F32 ? (float*)out : buf;
    __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
    for (i = 0; i + 32 <= n; i += 32) {
        __m512 a = pt_exp(_mm512_fmadd_ps(s, pt_ld(x, XDT, i), nm));
        __m512 b = pt_exp(_mm512_fmadd_ps(s, pt_ld(x, XDT, i + 16), nm));
        sum0 = _mm512_add_ps(sum0, a);
        sum1 = _mm512_add_ps(sum1, b);
        if (e) {
            _mm512_storeu_ps(e + i, a);
            _mm512_storeu_ps(e + i + 16, b);
        }
    }
    for (; i < n; i += 16) {
        __mmask16 k = pt_tail_mask(n - i);
        __m512 a = _mm512_maskz_mov_ps(k, pt_exp(_mm512_fmadd_ps(s, pt_ldm(x, XDT, i, k), nm)));
        sum0 = _mm512_add_ps(sum0, a);
        if (e) _mm512_mask_storeu_ps(e + i, k, a);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / pt_hsum(_mm512_add_ps(sum0, sum1)));
    for (i = 0; i < n; i += 16) {
        __mmask16 k = pt_tail_mask(n - i);
        __m512 a = e ? _mm512_maskz_loadu_ps(k, e + i) : pt_exp(_mm512_fmadd_ps(s, pt_ldm(x, XDT, i, k), nm));
        if (k == 0xffff) pt_st(out, ODT, i, _mm512_mul_ps(a, inv));
        else pt_stm(out, ODT, i, _mm512_mul_ps(a, inv), k);
    }
}

#define SOFTMAX_K(XDT, ODT, x, s, o, n, buf) softmax_impl(x, XDT, s, o, ODT, n, buf)

void pt_softmax_row_avx512(const void* x, int xdt, float scale, void* out, int odt, int64_t n, float* buf) {
    PT_DT2(SOFTMAX_K, xdt, odt, x, scale, out, n, buf);
}
