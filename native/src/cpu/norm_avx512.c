/* AVX-512 row kernel of LayerNorm / RMSNorm (optionally of x + r). Three passes over the
 * row (sum, centered sum of squares, normalize) with 4 x 16 f32 accumulators; the row is
 * L1/L2-resident after the first pass, so memory traffic is one read per input and one write. */
#include "cpu/elem.h"
#include "cpu/vecmath_avx512.h"

#include <math.h>

PT_AI __m512 ldv(const void* x, int xdt, const void* r, int rdt, int64_t i) {
    __m512 v = pt_ld(x, xdt, i);
    if (rdt >= 0) v = _mm512_add_ps(v, pt_ld(r, rdt, i));
    return v;
}
PT_AI __m512 ldvm(const void* x, int xdt, const void* r, int rdt, int64_t i, __mmask16 m) {
    __m512 v = pt_ldm(x, xdt, i, m);
    if (rdt >= 0) v = _mm512_add_ps(v, pt_ldm(r, rdt, i, m));
    return v;
}

PT_AI void norm_impl(const void* x, const int XDT, const void* r, const int RDT, const float* g, const float* b,
                     float eps, const int RMS, void* o, const int ODT, int64_t n) {
    const __m512 zero = _mm512_setzero_ps();
    float mean = 0.0f;
    int64_t i;
    if (!RMS) {
        __m512 s0 = zero, s1 = zero, s2 = zero, s3 = zero;
        for (i = 0; i + 64 <= n; i += 64) {
            s0 = _mm512_add_ps(s0, ldv(x, XDT, r, RDT, i));
            s1 = _mm512_add_ps(s1, ldv(x, XDT, r, RDT, i + 16));
            s2 = _mm512_add_ps(s2, ldv(x, XDT, r, RDT, i + 32));
            s3 = _mm512_add_ps(s3, ldv(x, XDT, r, RDT, i + 48));
        }
        for (; i + 16 <= n; i += 16) s0 = _mm512_add_ps(s0, ldv(x, XDT, r, RDT, i));
        if (i < n) s1 = _mm512_add_ps(s1, ldvm(x, XDT, r, RDT, i, pt_tail_mask(n - i)));
        mean = pt_hsum(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3))) / (float)n;
    }
    const __m512 mv = _mm512_set1_ps(mean);
    __m512 q0 = zero, q1 = zero, q2 = zero, q3 = zero, d;
    for (i = 0; i + 64 <= n; i += 64) {
        d = _mm512_sub_ps(ldv(x, XDT, r, RDT, i), mv);
        q0 = _mm512_fmadd_ps(d, d, q0);
        d = _mm512_sub_ps(ldv(x, XDT, r, RDT, i + 16), mv);
        q1 = _mm512_fmadd_ps(d, d, q1);
        d = _mm512_sub_ps(ldv(x, XDT, r, RDT, i + 32), mv);
        q2 = _mm512_fmadd_ps(d, d, q2);
        d = _mm512_sub_ps(ldv(x, XDT, r, RDT, i + 48), mv);
        q3 = _mm512_fmadd_ps(d, d, q3);
    }
    for (; i + 16 <= n; i += 16) {
        d = _mm512_sub_ps(ldv(x, XDT, r, RDT, i), mv);
        q0 = _mm512_fmadd_ps(d, d, q0);
    }
    if (i < n) {
        __mmask16 m = pt_tail_mask(n - i);
        d = _mm512_maskz_sub_ps(m, ldvm(x, XDT, r, RDT, i, m), mv);
        q1 = _mm512_fmadd_ps(d, d, q1);
    }
    double ss = pt_hsum(_mm512_add_ps(_mm512_add_ps(q0, q1), _mm512_add_ps(q2, q3)));
    const __m512 rs = _mm512_set1_ps((float)(1.0 / sqrt(ss / (double)n + (double)eps)));
    if (b) {
        for (i = 0; i + 16 <= n; i += 16) {
            __m512 y = _mm512_mul_ps(_mm512_sub_ps(ldv(x, XDT, r, RDT, i), mv), rs);
            pt_st(o, ODT, i, _mm512_fmadd_ps(y, _mm512_loadu_ps(g + i), _mm512_loadu_ps(b + i)));
        }
        if (i < n) {
            __mmask16 m = pt_tail_mask(n - i);
            __m512 y = _mm512_mul_ps(_mm512_sub_ps(ldvm(x, XDT, r, RDT, i, m), mv), rs);
            pt_stm(o, ODT, i, _mm512_fmadd_ps(y, _mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, b + i)), m);
        }
    } else {
        for (i = 0; i + 16 <= n; i += 16) {
            __m512 y = _mm512_mul_ps(_mm512_sub_ps(ldv(x, XDT, r, RDT, i), mv), rs);
            pt_st(o, ODT, i, _mm512_mul_ps(y, _mm512_loadu_ps(g + i)));
        }
        if (i < n) {
            __mmask16 m = pt_tail_mask(n - i);
            __m512 y = _mm512_mul_ps(_mm512_sub_ps(ldvm(x, XDT, r, RDT, i, m), mv), rs);
            pt_stm(o, ODT, i, _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, g + i)), m);
        }
    }
}

/* Specializations: x dtype x r dtype (none/f32/bf16) x out dtype x {LayerNorm, RMSNorm}. */
#define NORM_O(XDT, RDT, RMS)                                                               \
    do {                                                                                    \
        if (odt == PT_F32) norm_impl(x, XDT, r, RDT, gamma, beta, eps, RMS, out, PT_F32, n); \
        else norm_impl(x, XDT, r, RDT, gamma, beta, eps, RMS, out, PT_BF16, n);             \
    } while (0)
#define NORM_R(XDT, RMS)                                                                    \
    do {                                                                                    \
        if (!r) NORM_O(XDT, -1, RMS);                                                       \
        else if (rdt == PT_F32) NORM_O(XDT, PT_F32, RMS);                                   \
        else NORM_O(XDT, PT_BF16, RMS);                                                     \
    } while (0)
#define NORM_X(RMS)                                                                         \
    do {                                                                                    \
        if (xdt == PT_F32) NORM_R(PT_F32, RMS);                                             \
        else NORM_R(PT_BF16, RMS);                                                          \
    } while (0)

void pt_norm_row_avx512(const void* x, int xdt, const void* r, int rdt, const float* gamma, const float* beta,
                        float eps, int rms, void* out, int odt, int64_t n) {
    if (rms) NORM_X(1);
    else NORM_X(0);
}
