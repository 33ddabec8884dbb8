/* FP4 kernels on AVX-512: the GEMV (M = 1) decodes nibbles in registers with a 16-entry LUT
 * permute (vpermps uses only the low 4 bits of each index, so a zero-extended byte indexes
 * its low nibble as is), and the GEMM body of fp4_gemm_inl.h compiled for zmm. */
#include "cpu/fp4.h"

#include <immintrin.h>

#define FP4_GEMM_NAME fp4_gemm_avx512
#include "cpu/fp4_gemm_inl.h"

/* Four rows at a time: x (deinterleaved per 32-chunk: 16 evens then 16 odds) is loaded
 * once per chunk for the four rows; each row's 16 code bytes become two index vectors. */
/* The scale of row n, group g: f32 scales are read straight from memory so that the
 * compiler folds the broadcast into the multiply (vmulps zmm, zmm, m32{1to16}), keeping
 * port 5 free for the permutes; bf16 scales go through the generic reader. */
#define SCALE(n, g) (sbf ? pt_fp4_scale(p, (n), (g)) : ((const float*)p->scales)[(n) * p->lds + (g)])

static inline __attribute__((always_inline)) void gemv_rows_t(const pt_fp4_problem* p, int64_t n0, int64_t n1, const int sbf) {
    const int64_t K = p->k, G = p->group, K32 = K & ~(int64_t)31;
    const __m512 lut = _mm512_loadu_ps(p->lut);
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        const uint8_t* c0 = p->codes + n * p->ldw;
        const uint8_t* c1 = c0 + p->ldw;
        const uint8_t* c2 = c1 + p->ldw;
        const uint8_t* c3 = c2 + p->ldw;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps(), b2 = _mm512_setzero_ps(), b3 = _mm512_setzero_ps();
        float tail[4] = {0, 0, 0, 0};
        for (int64_t k0 = 0; k0 < K; k0 += G) {
            const int64_t g = k0 / G;
            const float s0 = SCALE(n, g), s1 = SCALE(n + 1, g);
            const float s2 = SCALE(n + 2, g), s3 = SCALE(n + 3, g);
            const __m512 l0 = _mm512_mul_ps(lut, _mm512_set1_ps(s0)), l1 = _mm512_mul_ps(lut, _mm512_set1_ps(s1));
            const __m512 l2 = _mm512_mul_ps(lut, _mm512_set1_ps(s2)), l3 = _mm512_mul_ps(lut, _mm512_set1_ps(s3));
            const int64_t kend = k0 + G < K32 ? k0 + G : K32;
            for (int64_t k = k0; k < kend; k += 32) {
                const int64_t kb = k >> 1;
                if ((k & 127) == 0) {
                    _mm_prefetch((const char*)(c0 + kb + 1024), _MM_HINT_T0);
                    _mm_prefetch((const char*)(c1 + kb + 1024), _MM_HINT_T0);
                    _mm_prefetch((const char*)(c2 + kb + 1024), _MM_HINT_T0);
                    _mm_prefetch((const char*)(c3 + kb + 1024), _MM_HINT_T0);
                }
                const __m512 xe = _mm512_loadu_ps(p->xd + k), xo = _mm512_loadu_ps(p->xd + k + 16);
                __m512i v;
                v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(c0 + kb)));
                a0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, l0), xe, a0);
                b0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), l0), xo, b0);
                v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(c1 + kb)));
                a1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, l1), xe, a1);
                b1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), l1), xo, b1);
                v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(c2 + kb)));
                a2 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, l2), xe, a2);
                b2 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), l2), xo, b2);
                v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(c3 + kb)));
                a3 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, l3), xe, a3);
                b3 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), l3), xo, b3);
            }
            if (kend < k0 + G) { /* per-channel only: the K % 32 tail, in natural order */
                const float ss[4] = {s0, s1, s2, s3};
                const uint8_t* cc[4] = {c0, c1, c2, c3};
                for (int r = 0; r < 4; r++)
                    for (int64_t k = K32; k < K; k += 2) {
                        uint8_t b = cc[r][k >> 1];
                        tail[r] += p->x[k] * (p->lut[b & 15] * ss[r]) + p->x[k + 1] * (p->lut[b >> 4] * ss[r]);
                    }
            }
        }
        const float bi0 = p->bias ? p->bias[n] : 0.0f, bi1 = p->bias ? p->bias[n + 1] : 0.0f;
        const float bi2 = p->bias ? p->bias[n + 2] : 0.0f, bi3 = p->bias ? p->bias[n + 3] : 0.0f;
        pt_fp4_store_y(p, 0, n, _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)) + tail[0] + bi0);
        pt_fp4_store_y(p, 0, n + 1, _mm512_reduce_add_ps(_mm512_add_ps(a1, b1)) + tail[1] + bi1);
        pt_fp4_store_y(p, 0, n + 2, _mm512_reduce_add_ps(_mm512_add_ps(a2, b2)) + tail[2] + bi2);
        pt_fp4_store_y(p, 0, n + 3, _mm512_reduce_add_ps(_mm512_add_ps(a3, b3)) + tail[3] + bi3);
    }
    for (; n < n1; n++) {
        const uint8_t* c0 = p->codes + n * p->ldw;
        __m512 a0 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps();
        float tail = 0.0f;
        for (int64_t k0 = 0; k0 < K; k0 += G) {
            const float s0 = SCALE(n, k0 / G);
            const __m512 l0 = _mm512_mul_ps(lut, _mm512_set1_ps(s0));
            const int64_t kend = k0 + G < K32 ? k0 + G : K32;
            for (int64_t k = k0; k < kend; k += 32) {
                const __m512 xe = _mm512_loadu_ps(p->xd + k), xo = _mm512_loadu_ps(p->xd + k + 16);
                __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(c0 + (k >> 1))));
                a0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, l0), xe, a0);
                b0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), l0), xo, b0);
            }
            if (kend < k0 + G)
                for (int64_t k = K32; k < K; k += 2) {
                    uint8_t b = c0[k >> 1];
                    tail += p->x[k] * (p->lut[b & 15] * s0) + p->x[k + 1] * (p->lut[b >> 4] * s0);
                }
        }
        pt_fp4_store_y(p, 0, n, _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)) + tail + (p->bias ? p->bias[n] : 0.0f));
    }
}

static void gemv_rows_f32s(const pt_fp4_problem* p, int64_t n0, int64_t n1) { gemv_rows_t(p, n0, n1, 0); }
static void gemv_rows_bf16s(const pt_fp4_problem* p, int64_t n0, int64_t n1) { gemv_rows_t(p, n0, n1, 1); }

void pt_fp4_rows_avx512(const pt_fp4_problem* p, int64_t n0, int64_t n1) {
    if (p->m == 1 && p->xd) (p->scale_bf16 ? gemv_rows_bf16s : gemv_rows_f32s)(p, n0, n1);
    else fp4_gemm_avx512(p, n0, n1);
}
