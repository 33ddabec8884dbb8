/* Inline helpers shared by the AVX-512 and AMX GEMM files (both compiled with AVX-512 flags):
 * 16x16 32-bit transposes for packing, masks, and the bf16 pair packer of B. */
#ifndef PT_CPU_GEMM_AVX512_INL_H
#define PT_CPU_GEMM_AVX512_INL_H
#include "cpu/gemm.h"

#include <immintrin.h>

static inline __mmask16 mask_lo(int nr) { return nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1u); }

/* ================================================================ 16x16 transpose */

static inline void tr16x16(__m512 r[16]) {
    __m512 a[16], b[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m512d a0 = _mm512_castps_pd(a[4 * g]), a1 = _mm512_castps_pd(a[4 * g + 1]);
        __m512d a2 = _mm512_castps_pd(a[4 * g + 2]), a3 = _mm512_castps_pd(a[4 * g + 3]);
        b[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        b[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        b[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        b[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    /* b[4g + c] lane q = column 4q + c of rows 4g..4g+3 */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512 dlo = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x44), dhi = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xee);
        __m512 elo = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x44), ehi = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xee);
        r[c] = _mm512_shuffle_f32x4(dlo, elo, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(dlo, elo, 0xdd);
        r[8 + c] = _mm512_shuffle_f32x4(dhi, ehi, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(dhi, ehi, 0xdd);
    }
}

/* Loads `rows` rows of 16 32-bit lanes (mask m) from src (row stride ld in 4-byte units),
 * zeroing the rest, transposes, and returns the columns in r. */
static inline void load_tr32(const float* src, int64_t ld, int rows, __mmask16 m, __m512 r[16]) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(m, src + i * ld) : _mm512_setzero_ps();
    tr16x16(r);
}
/* Same for bf16 rows widened to f32: 16 bf16 per row (mask m). */
static inline void load_tr32_bf16(const uint16_t* src, int64_t ld, int rows, __mmask16 m, __m512 r[16]) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        r[i] = i < rows ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, src + i * ld)), 16))
                        : _mm512_setzero_ps();
    tr16x16(r);
}
/* Same for bf16 rows: 32 bf16 = 16 pairs (mask m32 over the bf16 elements). */
static inline void load_tr16x2(const uint16_t* src, int64_t ld, int rows, __mmask32 m32, __m512 r[16]) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        r[i] = i < rows ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(m32, src + i * ld)) : _mm512_setzero_ps();
    tr16x16(r);
}

static inline __mmask32 mask32(int64_t n) { return n >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << n) - 1u); }

/* Packs the kc x nc block of op(B) (bf16; src at B[p0, j0], or B[j0, p0] when tb) into
 * panels of NR = 32 columns: per K pair q, 32 dwords (b[2q][j], b[2q+1][j]); each panel holds
 * kq_pad pairs (zeros past the end of K) and missing columns are zero. */
static inline void pt_pack_b_bf16_pairs(const uint16_t* src, int64_t ldb, int tb, int64_t kc, int64_t nc, int32_t* dst,
                                        int64_t kq_pad) {
    enum { NR = 32 };
    const int64_t kq = (kc + 1) / 2;
    for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kq_pad) {
        int w = nc - j0 < NR ? (int)(nc - j0) : NR;
        if (!tb) {
            /* interleave rows 2q and 2q+1 element-wise: (b[2q][j], b[2q+1][j]) */
            const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                                39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
            const __m512i hi = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24,
                                                55, 23, 54, 22, 53, 21, 52, 20, 51, 19, 50, 18, 49, 17, 48, 16);
            __mmask32 m = mask32(w);
            for (int64_t q = 0; q < kq; q++) {
                const uint16_t* s = src + 2 * q * ldb + j0;
                __m512i r0 = _mm512_maskz_loadu_epi16(m, s);
                __m512i r1 = 2 * q + 1 < kc ? _mm512_maskz_loadu_epi16(m, s + ldb) : _mm512_setzero_si512();
                _mm512_store_si512(dst + q * NR, _mm512_permutex2var_epi16(r0, lo, r1));
                _mm512_store_si512(dst + q * NR + 16, _mm512_permutex2var_epi16(r0, hi, r1));
            }
        } else {
            int w0 = w < 16 ? w : 16, w1 = w - w0;
            for (int64_t p0 = 0; p0 < kc; p0 += 32) {
                int64_t h = kc - p0 < 32 ? kc - p0 : 32;
                int hq = (int)((h + 1) / 2);
                __m512 r0[16], r1[16];
                load_tr16x2(src + j0 * ldb + p0, ldb, w0, mask32(h), r0);
                load_tr16x2(src + (j0 + 16) * ldb + p0, ldb, w1, mask32(h), r1);
                for (int c = 0; c < hq; c++) {
                    _mm512_store_si512(dst + (p0 / 2 + c) * NR, _mm512_castps_si512(r0[c]));
                    _mm512_store_si512(dst + (p0 / 2 + c) * NR + 16, _mm512_castps_si512(r1[c]));
                }
            }
        }
        for (int64_t q = kq; q < kq_pad; q++) {
            _mm512_store_si512(dst + q * NR, _mm512_setzero_si512());
            _mm512_store_si512(dst + q * NR + 16, _mm512_setzero_si512());
        }
    }
}

#endif
