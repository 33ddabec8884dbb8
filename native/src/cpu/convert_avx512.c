/* AVX-512 row kernel of pt_convert (also used by pt_embedding): bit-exact with the
 * portable conversions (pt_f32_to_bf16 / pt_f32_to_f16 / their inverses). */
#include "cpu/elem.h"
#include "cpu/vecmath_avx512.h"

#define CONV_K(XDT, ODT, x, o, n)                                              \
    do {                                                                       \
        int64_t i = 0;                                                         \
        for (; i + 32 <= n; i += 32) {                                         \
            __m512 v0 = pt_ld(x, XDT, i), v1 = pt_ld(x, XDT, i + 16);          \
            pt_st(o, ODT, i, v0);                                              \
            pt_st(o, ODT, i + 16, v1);                                         \
        }                                                                      \
        for (; i < n; i += 16) {                                               \
            __mmask16 m = pt_tail_mask(n - i);                                 \
            pt_stm(o, ODT, i, pt_ldm(x, XDT, i, m), m);                        \
        }                                                                      \
    } while (0)

#define CONV_TO(XDT)                                                           \
    do {                                                                       \
        if (odt == PT_F32) CONV_K(XDT, PT_F32, x, out, n);                     \
        else if (odt == PT_BF16) CONV_K(XDT, PT_BF16, x, out, n);              \
        else CONV_K(XDT, PT_F16, x, out, n);                                   \
    } while (0)

void pt_convert_row_avx512(const void* x, int xdt, void* out, int odt, int64_t n) {
    if (xdt == odt) {
        if (x != out) memmove(out, x, (size_t)n * pt_dtype_size(xdt));
        return;
    }
    if (xdt == PT_F32) CONV_TO(PT_F32);
    else if (xdt == PT_BF16) CONV_TO(PT_BF16);
    else CONV_TO(PT_F16);
}
