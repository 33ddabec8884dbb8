/* AVX2 + FMA GEMM backend: a 6 x 16 f32 microkernel (12 ymm accumulators), packers and the
 * fused epilogue. Compiled with -mavx2 -mfma -mf16c; only called when ctx->caps has AVX2 and
 * FMA (and AVX-512 is absent or disabled). bf16 inputs are converted to f32 while packing. */
#include "cpu/gemm.h"

#include <immintrin.h>

#define MR 6
#define NR 16

/* ================================================================ vector math (see gemm_avx512.c) */

static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447504019f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, z, x);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    /* fx in [-126, 127] after the clamp: build 2^fx in the exponent field */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

static inline __m256 x_sigmoid256(__m256 x, __m256 s) {
    __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), s));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline __m256 erfc_pos256(__m256 z) {
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.5f), z, _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(0.17087277f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
    p = _mm256_fnmadd_ps(z, z, p);
    return _mm256_mul_ps(t, exp256(p));
}

static inline __m256 act256(__m256 x, int32_t act) {
    switch (act) {
    case PT_ACT_RELU: return _mm256_max_ps(_mm256_setzero_ps(), x); /* NaN stays NaN */
    case PT_ACT_SILU: return x_sigmoid256(x, x);
    case PT_ACT_GELU_TANH: {
        __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        __m256 y = _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x);
        return x_sigmoid256(x, _mm256_mul_ps(_mm256_set1_ps(2.0f * 0.79788456080286536f), y));
    }
    case PT_ACT_GELU_ERF: {
        __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(-0.70710678118654752f));
        __m256 az = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z);
        __m256 e = erfc_pos256(az);
        __m256 neg = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LT_OQ);
        e = _mm256_blendv_ps(e, _mm256_sub_ps(_mm256_set1_ps(2.0f), e), neg);
        return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), e);
    }
    default: return x;
    }
}

/* ================================================================ epilogue */

static inline __m256i lane_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline __m256 load8(const void* p, int bf16, int64_t off, int n, __m256i m) {
    if (bf16) {
        const uint16_t* s = (const uint16_t*)p + off;
        if (n >= 8) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)s)), 16));
        float t[8] = {0};
        for (int j = 0; j < n; j++) t[j] = pt_bf16_to_f32(s[j]);
        return _mm256_loadu_ps(t);
    }
    return n >= 8 ? _mm256_loadu_ps((const float*)p + off) : _mm256_maskload_ps((const float*)p + off, m);
}

/* RNE with quiet NaN, as pt_f32_to_bf16: 8 values to 8 bf16 in the low 128 bits. */
static inline __m128i cvt_bf16_256(__m256 v) {
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan);
    r = _mm256_srli_epi32(r, 16);
    __m128i lo = _mm256_castsi256_si128(r), hi = _mm256_extracti128_si256(r, 1);
    return _mm_packus_epi32(lo, hi);
}

static inline void finish8(__m256 acc, const pt_gemm_tile_out* o, int64_t r, int64_t j, int n) {
    __m256i m = lane_mask(n);
    __m256 v = o->alpha == 1.0f ? acc : _mm256_mul_ps(acc, _mm256_set1_ps(o->alpha));
    if (o->bias) v = _mm256_add_ps(v, n >= 8 ? _mm256_loadu_ps(o->bias + j) : _mm256_maskload_ps(o->bias + j, m));
    if (o->beta != 0.0f) v = _mm256_fmadd_ps(_mm256_set1_ps(o->beta), load8(o->prev, o->prev_bf16, r * o->ldp + j, n, m), v);
    if (o->act != PT_ACT_NONE) v = act256(v, o->act);
    if (o->out_bf16) {
        uint16_t* d = (uint16_t*)o->out + r * o->ldo + j;
        __m128i h = cvt_bf16_256(v);
        if (n >= 8) _mm_storeu_si128((__m128i*)d, h);
        else {
            uint16_t t[8];
            _mm_storeu_si128((__m128i*)t, h);
            for (int i = 0; i < n; i++) d[i] = t[i];
        }
    } else {
        float* d = (float*)o->out + r * o->ldo + j;
        if (n >= 8) _mm256_storeu_ps(d, v);
        else _mm256_maskstore_ps(d, m, v);
    }
}

/* ================================================================ kernel */

static void micro_f32(int64_t kc, const void* pa_, const void* pb_, int mr, int nr, const pt_gemm_tile_out* o) {
    const float* pa = (const float*)pa_;
    const float* pb = (const float*)pb_;
    __m256 c[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm256_setzero_ps();
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(pb), b1 = _mm256_load_ps(pb + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            __m256 a = _mm256_broadcast_ss(pa + r);
            c[r][0] = _mm256_fmadd_ps(a, b0, c[r][0]);
            c[r][1] = _mm256_fmadd_ps(a, b1, c[r][1]);
        }
        pa += MR;
        pb += NR;
    }
    /* spill once to a buffer: indexing c[] by the runtime mr would keep it in memory (GCC
     * then stores every accumulator on every iteration of the loop above) */
    float buf[MR * NR] __attribute__((aligned(32)));
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        _mm256_store_ps(buf + r * NR, c[r][0]);
        _mm256_store_ps(buf + r * NR + 8, c[r][1]);
    }
    for (int r = 0; r < mr; r++) {
        finish8(_mm256_load_ps(buf + r * NR), o, r, 0, nr);
        if (nr > 8) finish8(_mm256_load_ps(buf + r * NR + 8), o, r, 8, nr - 8);
    }
}

static inline void tr8x8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    u[0] = _mm256_shuffle_ps(t[0], t[2], 0x44); u[1] = _mm256_shuffle_ps(t[0], t[2], 0xee);
    u[2] = _mm256_shuffle_ps(t[1], t[3], 0x44); u[3] = _mm256_shuffle_ps(t[1], t[3], 0xee);
    u[4] = _mm256_shuffle_ps(t[4], t[6], 0x44); u[5] = _mm256_shuffle_ps(t[4], t[6], 0xee);
    u[6] = _mm256_shuffle_ps(t[5], t[7], 0x44); u[7] = _mm256_shuffle_ps(t[5], t[7], 0xee);
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x20);
        r[4 + i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x31);
    }
}

/* rows [0, rows) of 8 floats (the first w valid) from src (row stride ld), transposed */
static inline void load_tr8(const float* src, int64_t ld, int rows, int w, __m256 r[8]) {
    __m256i m = lane_mask(w);
    for (int i = 0; i < 8; i++)
        r[i] = i >= rows ? _mm256_setzero_ps() : w >= 8 ? _mm256_loadu_ps(src + i * ld) : _mm256_maskload_ps(src + i * ld, m);
    tr8x8(r);
}

static void pack_a_f32(const void* src_, int32_t dt, int64_t lda, int64_t mc, int64_t kc, void* dst_) {
    if (dt != PT_F32) { pt_gemm_pack_a_generic(src_, dt, lda, mc, kc, (float*)dst_, MR); return; }
    const float* src = (const float*)src_;
    float* dst = (float*)dst_;
    const __m256i m6 = lane_mask(MR);
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {
        int rows = mc - i0 < MR ? (int)(mc - i0) : MR;
        for (int64_t p0 = 0; p0 < kc; p0 += 8) {
            int w = kc - p0 < 8 ? (int)(kc - p0) : 8;
            __m256 r[8];
            load_tr8(src + i0 * lda + p0, lda, rows, w, r);
            for (int c = 0; c < w; c++) _mm256_maskstore_ps(dst + (p0 + c) * MR, m6, r[c]);
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
            if (w < NR) { pt_gemm_pack_b_generic(src + j0, dt, ldb, tb, kc, w, dst, NR); continue; }
            const float* s = src + j0;
            for (int64_t p = 0; p < kc; p++, s += ldb) {
                _mm256_store_ps(dst + p * NR, _mm256_loadu_ps(s));
                _mm256_store_ps(dst + p * NR + 8, _mm256_loadu_ps(s + 8));
            }
        } else {
            int w0 = w < 8 ? w : 8, w1 = w - w0;
            for (int64_t p0 = 0; p0 < kc; p0 += 8) {
                int h = kc - p0 < 8 ? (int)(kc - p0) : 8;
                __m256 r0[8], r1[8];
                load_tr8(src + j0 * ldb + p0, ldb, w0, h, r0);
                load_tr8(src + (j0 + 8) * ldb + p0, ldb, w1, h, r1);
                for (int c = 0; c < h; c++) {
                    _mm256_store_ps(dst + (p0 + c) * NR, r0[c]);
                    _mm256_store_ps(dst + (p0 + c) * NR + 8, r1[c]);
                }
            }
        }
    }
}

static const pt_gemm_kernel k_f32 = {
    "avx2-f32", MR, NR, 1, 4, 240, 256, 1024, pack_a_f32, pack_b_f32, micro_f32, NULL, NULL, 0, NULL};

const pt_gemm_kernel* pt_gemm_kernel_avx2_f32(void) { return &k_f32; }
