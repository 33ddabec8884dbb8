/* AVX-512 accumulate row kernel of pt_mean_pool: acc[j] += x[j], x f32 | bf16. */
#include "cpu/elem.h"
#include "cpu/vecmath_avx512.h"

PT_AI void acc_impl(float* acc, const void* x, const int XDT, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(acc + i, _mm512_add_ps(_mm512_loadu_ps(acc + i), pt_ld(x, XDT, i)));
    if (i < n) {
        __mmask16 m = pt_tail_mask(n - i);
        _mm512_mask_storeu_ps(acc + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, acc + i), pt_ldm(x, XDT, i, m)));
    }
}

void pt_acc_row_avx512(float* acc, const void* x, int xdt, int64_t n) {
    if (xdt == PT_F32) acc_impl(acc, x, PT_F32, n);
    else acc_impl(acc, x, PT_BF16, n);
}
