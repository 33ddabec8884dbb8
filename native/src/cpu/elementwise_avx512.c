/* AVX-512 row kernels of pt_add, pt_unary, pt_swiglu. Each kernel is an always-inline body
 * specialized per dtype combination (PT_DT2/PT_DT3) so the loop has no dtype branches. */
#include "cpu/elem.h"
#include "cpu/vecmath_avx512.h"

#define ADD_BODY(ADT, BDT, ODT, a, b, o, n)                                                 \
    do {                                                                                    \
        int64_t i = 0;                                                                      \
        for (; i + 32 <= n; i += 32) {                                                      \
            __m512 v0 = _mm512_add_ps(pt_ld(a, ADT, i), pt_ld(b, BDT, i));                  \
            __m512 v1 = _mm512_add_ps(pt_ld(a, ADT, i + 16), pt_ld(b, BDT, i + 16));        \
            pt_st(o, ODT, i, v0);                                                           \
            pt_st(o, ODT, i + 16, v1);                                                      \
        }                                                                                   \
        for (; i < n; i += 16) {                                                            \
            __mmask16 m = pt_tail_mask(n - i);                                              \
            pt_stm(o, ODT, i, _mm512_add_ps(pt_ldm(a, ADT, i, m), pt_ldm(b, BDT, i, m)), m); \
        }                                                                                   \
    } while (0)

/* PT_DT3 passes (adt, odt, bdt) in that order: see the macro. */
#define ADD_K(ADT, ODT, BDT, a, b, o, n) ADD_BODY(ADT, BDT, ODT, a, b, o, n)

void pt_add_row_avx512(const void* a, int adt, const void* b, int bdt, void* out, int odt, int64_t n) {
    PT_DT3(ADD_K, adt, bdt, odt, a, b, out, n);
}

PT_AI __m512 apply_op(int op, __m512 v) {
    switch (op) {
    case PT_UNARY_GELU_ERF: return pt_gelu_erf(v);
    case PT_UNARY_GELU_TANH: return pt_gelu_tanh(v);
    case PT_UNARY_SILU: return pt_silu(v);
    case PT_UNARY_RELU: return pt_relu(v);
    case PT_UNARY_TANH: return pt_tanh(v);
    default: return pt_sigmoid(v);
    }
}

/* two vectors per iteration: the transcendental bodies are long dependency chains */
#define UNARY_K(XDT, ODT, OP, x, o, n)                                               \
    do {                                                                             \
        int64_t i = 0;                                                               \
        for (; i + 32 <= n; i += 32) {                                               \
            __m512 v0 = apply_op(OP, pt_ld(x, XDT, i));                              \
            __m512 v1 = apply_op(OP, pt_ld(x, XDT, i + 16));                         \
            pt_st(o, ODT, i, v0);                                                    \
            pt_st(o, ODT, i + 16, v1);                                               \
        }                                                                            \
        for (; i + 16 <= n; i += 16) pt_st(o, ODT, i, apply_op(OP, pt_ld(x, XDT, i))); \
        if (i < n) {                                                                 \
            __mmask16 m = pt_tail_mask(n - i);                                       \
            pt_stm(o, ODT, i, apply_op(OP, pt_ldm(x, XDT, i, m)), m);                \
        }                                                                            \
    } while (0)

#define UNARY_CASE(OP) \
    case OP: PT_DT2(UNARY_K, xdt, odt, OP, x, out, n); break

void pt_unary_row_avx512(int op, const void* x, int xdt, void* out, int odt, int64_t n) {
    switch (op) {
        UNARY_CASE(PT_UNARY_GELU_ERF);
        UNARY_CASE(PT_UNARY_GELU_TANH);
        UNARY_CASE(PT_UNARY_SILU);
        UNARY_CASE(PT_UNARY_RELU);
        UNARY_CASE(PT_UNARY_TANH);
        UNARY_CASE(PT_UNARY_SIGMOID);
    default: break;
    }
}

#define SWIGLU_K(GDT, ODT, UDT, g, u, o, n)                                                 \
    do {                                                                                    \
        int64_t i = 0;                                                                      \
        for (; i + 16 <= n; i += 16)                                                        \
            pt_st(o, ODT, i, _mm512_mul_ps(pt_silu(pt_ld(g, GDT, i)), pt_ld(u, UDT, i)));   \
        if (i < n) {                                                                        \
            __mmask16 m = pt_tail_mask(n - i);                                              \
            pt_stm(o, ODT, i, _mm512_mul_ps(pt_silu(pt_ldm(g, GDT, i, m)), pt_ldm(u, UDT, i, m)), m); \
        }                                                                                   \
    } while (0)

void pt_swiglu_row_avx512(const void* g, int gdt, const void* u, int udt, void* out, int odt, int64_t n) {
    PT_DT3(SWIGLU_K, gdt, udt, odt, g, u, out, n);
}
