/* AVX-512 GEMM backends: an f32 FMA microkernel (12 x 32, 24 zmm accumulators) and a bf16
 * one on AVX512-BF16 (vdpbf16ps, K packed in pairs), with their packers (16x16 in-register
 * transposes) and the fused epilogue (alpha, bias, beta * prev, activation, f32/bf16 store).
 * Compiled with -mavx512f/bw/dq/vl/bf16; only called when ctx->caps has AVX512F (and
 * AVX512_BF16 for the bf16 kernel). */
#include "cpu/gemm.h"

#include "cpu/gemm_avx512_inl.h"

#define MR 12
#define NR 32

/* ================================================================ vector math
 * exp: Cephes expf (range reduction by ln 2, degree-6 polynomial), ~1 ulp on [-87, 88].
 * GELU(erf) uses erfc from Numerical Recipes' erfcc (fractional error < 1.2e-7 everywhere),
 * so 0.5 x erfc(-x/sqrt 2) keeps its relative accuracy on the negative tail. GELU(tanh) and
 * SiLU are written as x * sigmoid(.), which has no cancellation. */

static inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3365447504019f));
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 z = _mm512_mul_ps(x, x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, z, x);
    y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, fx);
}

/* x / (1 + exp(-s)) */
static inline __m512 x_sigmoid512(__m512 x, __m512 s) {
    __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), s));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* erfc(z) for z >= 0 (Numerical Recipes erfcc) */
static inline __m512 erfc_pos512(__m512 z) {
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.5f), z, _mm512_set1_ps(1.0f)));
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
    p = _mm512_fnmadd_ps(z, z, p);
    return _mm512_mul_ps(t, exp512(p));
}

static inline __m512 act512(__m512 x, int32_t act) {
    switch (act) {
    case PT_ACT_RELU: return _mm512_max_ps(_mm512_setzero_ps(), x); /* NaN stays NaN */
    case PT_ACT_SILU: return x_sigmoid512(x, x);
    case PT_ACT_GELU_TANH: {
        __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
        __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x);
        return x_sigmoid512(x, _mm512_mul_ps(_mm512_set1_ps(2.0f * 0.79788456080286536f), y));
    }
    case PT_ACT_GELU_ERF: {
        __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(-0.70710678118654752f));
        __m512 e = erfc_pos512(_mm512_abs_ps(z));
        __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
        e = _mm512_mask_sub_ps(e, neg, _mm512_set1_ps(2.0f), e);
        return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), e);
    }
    default: return x;
    }
}

/* f32 -> bf16, round to nearest even, NaN kept quiet (as pt_f32_to_bf16); AVX512F+BW only. */
static inline __m256i cvt_bf16_512(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x400000));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

static inline __m512 load16(const void* p, int bf16, int64_t off, __mmask16 m) {
    if (bf16) {
        __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t*)p + off);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_maskz_loadu_ps(m, (const float*)p + off);
}

/* The epilogue of 16 columns [j, j+16) (mask m) of tile row r. */
static inline void finish16(__m512 acc, const pt_gemm_tile_out* o, int64_t r, int64_t j, __mmask16 m) {
    __m512 v = o->alpha == 1.0f ? acc : _mm512_mul_ps(acc, _mm512_set1_ps(o->alpha));
    if (o->bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, o->bias + j));
    if (o->beta != 0.0f) v = _mm512_fmadd_ps(_mm512_set1_ps(o->beta), load16(o->prev, o->prev_bf16, r * o->ldp + j, m), v);
    if (o->act != PT_ACT_NONE) v = act512(v, o->act);
    if (o->out_bf16) _mm256_mask_storeu_epi16((uint16_t*)o->out + r * o->ldo + j, m, cvt_bf16_512(v));
    else _mm512_mask_storeu_ps((float*)o->out + r * o->ldo + j, m, v);
}

static inline __mmask16 mask_hi(int nr) { return nr <= 16 ? (__mmask16)0 : mask_lo(nr - 16); }

void pt_gemm_store_tile_avx512(const float* acc, int64_t ld, int mr, int nr, const pt_gemm_tile_out* o) {
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j += 16) {
            __mmask16 m = mask_lo(nr - j);
            finish16(_mm512_maskz_loadu_ps(m, acc + r * ld + j), o, r, j, m);
        }
}

/* Stores the register tile c[MR][2] (mr x nr valid). */
#define STORE_TILE(c, mr, nr, o)                                                      \
    do {                                                                              \
        __mmask16 m0_ = mask_lo(nr), m1_ = mask_hi(nr);                               \
        for (int r_ = 0; r_ < (mr); r_++) {                                           \
            finish16(c[r_][0], o, r_, 0, m0_);                                        \
            if (m1_) finish16(c[r_][1], o, r_, 16, m1_);                              \
        }                                                                             \
    } while (0)

/* ================================================================ f32 kernel */

static void micro_f32(int64_t kc, const void* pa_, const void* pb_, int mr, int nr, const pt_gemm_tile_out* o) {
    const float* pa = (const float*)pa_;
    const float* pb = (const float*)pb_;
    __m512 c[MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(pb), b1 = _mm512_load_ps(pb + 16);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m512 a = _mm512_set1_ps(pa[r]);
            c[r][0] = _mm512_fmadd_ps(a, b0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(a, b1, c[r][1]);
        }
        pa += MR;
        pb += NR;
    }
    STORE_TILE(c, mr, nr, o);
}

static void pack_a_f32(const void* src_, int32_t dt, int64_t lda, int64_t mc, int64_t kc, void* dst_) {
    if (dt != PT_F32) { pt_gemm_pack_a_generic(src_, dt, lda, mc, kc, (float*)dst_, MR); return; }
    const float* src = (const float*)src_;
    float* dst = (float*)dst_;
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {
        int rows = mc - i0 < MR ? (int)(mc - i0) : MR;
        for (int64_t p0 = 0; p0 < kc; p0 += 16) {
            int w = kc - p0 < 16 ? (int)(kc - p0) : 16;
            __m512 r[16];
            load_tr32(src + i0 * lda + p0, lda, rows, mask_lo(w), r);
            for (int c = 0; c < w; c++) _mm512_mask_storeu_ps(dst + (p0 + c) * MR, (__mmask16)((1u << MR) - 1u), r[c]);
        }
    }
}

static void pack_b_f32(const void* src_, int32_t dt, int64_t ldb, int tb, int64_t kc, int64_t nc, void* dst_) {
    if (dt != PT_F32) { pt_gemm_pack_b_generic(src_, dt, ldb, tb, kc, nc, (float*)dst_, NR); return; }
    const float* src = (const float*)src_;
    float* dst = (float*)dst_;
    for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kc) {
        int w = nc - j0 < NR ? (int)(nc - j0) : NR;
        if (!tb) {
            __mmask16 m0 = mask_lo(w), m1 = mask_hi(w);
            const float* s = src + j0;
            for (int64_t p = 0; p < kc; p++, s += ldb) {
                _mm512_store_ps(dst + p * NR, _mm512_maskz_loadu_ps(m0, s));
                _mm512_store_ps(dst + p * NR + 16, _mm512_maskz_loadu_ps(m1, s + 16));
            }
        } else {
            int w0 = w < 16 ? w : 16, w1 = w - w0;
            for (int64_t p0 = 0; p0 < kc; p0 += 16) {
                int h = kc - p0 < 16 ? (int)(kc - p0) : 16;
                __m512 r0[16], r1[16];
                load_tr32(src + j0 * ldb + p0, ldb, w0, mask_lo(h), r0);
                load_tr32(src + (j0 + 16) * ldb + p0, ldb, w1, mask_lo(h), r1);
                for (int c = 0; c < h; c++) {
                    _mm512_store_ps(dst + (p0 + c) * NR, r0[c]);
                    _mm512_store_ps(dst + (p0 + c) * NR + 16, r1[c]);
                }
            }
        }
    }
}

static const pt_gemm_kernel k_f32 = {
    "avx512-f32", MR, NR, 1, 4, 480, 256, 1024, pack_a_f32, pack_b_f32, micro_f32, NULL, NULL};

const pt_gemm_kernel* pt_gemm_kernel_avx512_f32(void) { return &k_f32; }

/* ================================================================ bf16 kernel (AVX512-BF16)
 * Packed A: per K pair q, MR dwords (a[r][2q], a[r][2q+1]); packed B: per K pair, NR dwords
 * (b[2q][j], b[2q+1][j]). vdpbf16ps adds both products into f32 accumulators. */

static void micro_bf16(int64_t kc, const void* pa_, const void* pb_, int mr, int nr, const pt_gemm_tile_out* o) {
    const int32_t* pa = (const int32_t*)pa_;
    const __m512i* pb = (const __m512i*)pb_;
    __m512 c[MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    const int64_t kq = (kc + 1) / 2;
    for (int64_t q = 0; q < kq; q++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(pb), b1 = (__m512bh)_mm512_load_si512(pb + 1);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32(pa[r]);
            c[r][0] = _mm512_dpbf16_ps(c[r][0], a, b0);
            c[r][1] = _mm512_dpbf16_ps(c[r][1], a, b1);
        }
        pa += MR;
        pb += 2;
    }
    STORE_TILE(c, mr, nr, o);
}

static void pack_a_bf16(const void* src_, int32_t dt, int64_t lda, int64_t mc, int64_t kc, void* dst_) {
    const uint16_t* src = (const uint16_t*)src_;
    int32_t* dst = (int32_t*)dst_;
    const int64_t kq = (kc + 1) / 2;
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kq) {
        int rows = mc - i0 < MR ? (int)(mc - i0) : MR;
        for (int64_t p0 = 0; p0 < kc; p0 += 32) {
            int64_t w = kc - p0 < 32 ? kc - p0 : 32;
            int wq = (int)((w + 1) / 2);
            __m512 r[16];
            load_tr16x2(src + i0 * lda + p0, lda, rows, mask32(w), r);
            for (int c = 0; c < wq; c++)
                _mm512_mask_storeu_epi32(dst + (p0 / 2 + c) * MR, (__mmask16)((1u << MR) - 1u), _mm512_castps_si512(r[c]));
        }
    }
}

static void pack_b_bf16(const void* src, int32_t dt, int64_t ldb, int tb, int64_t kc, int64_t nc, void* dst) {
    pt_pack_b_bf16_pairs((const uint16_t*)src, ldb, tb, kc, nc, (int32_t*)dst, (kc + 1) / 2);
}

static const pt_gemm_kernel k_bf16 = {
    "avx512bf16", MR, NR, 2, 2, 480, 512, 1024, pack_a_bf16, pack_b_bf16, micro_bf16, NULL, NULL};

const pt_gemm_kernel* pt_gemm_kernel_avx512_bf16(void) { return &k_bf16; }
