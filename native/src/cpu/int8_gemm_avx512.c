/* AVX512-VNNI micro kernel of the int8 GEMM (see int8_gemm.h): 6 rows x 64 columns of s32
 * accumulators (24 zmm), one vpdpbusd per (row, 16 columns, 4 K). */
#include "cpu/int8_gemm.h"
#include <immintrin.h>

static inline __attribute__((always_inline)) void micro_n(int64_t k4, const uint8_t* a, int64_t lda, const int8_t* b,
                                                          int32_t* acc, const int mr) {
    __m512i c[PT_I8_MR][4];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < 4; v++) c[r][v] = _mm512_setzero_si512();
    for (int64_t p = 0; p < k4; p += 4, b += 4 * PT_I8_NB) {
        __m512i b0 = _mm512_loadu_si512((const void*)(b + 0));
        __m512i b1 = _mm512_loadu_si512((const void*)(b + 64));
        __m512i b2 = _mm512_loadu_si512((const void*)(b + 128));
        __m512i b3 = _mm512_loadu_si512((const void*)(b + 192));
        for (int r = 0; r < mr; r++) {
            int32_t q;
            memcpy(&q, a + r * lda + p, 4);
            __m512i x = _mm512_set1_epi32(q);
            c[r][0] = _mm512_dpbusd_epi32(c[r][0], x, b0);
            c[r][1] = _mm512_dpbusd_epi32(c[r][1], x, b1);
            c[r][2] = _mm512_dpbusd_epi32(c[r][2], x, b2);
            c[r][3] = _mm512_dpbusd_epi32(c[r][3], x, b3);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < 4; v++) _mm512_storeu_si512((void*)(acc + r * PT_I8_NB + 16 * v), c[r][v]);
}

void pt_i8_micro_vnni(int64_t k4, const uint8_t* a, int64_t lda, int mr, const int8_t* b, int32_t* acc) {
    switch (mr) {
    case 6: micro_n(k4, a, lda, b, acc, 6); break;
    case 5: micro_n(k4, a, lda, b, acc, 5); break;
    case 4: micro_n(k4, a, lda, b, acc, 4); break;
    case 3: micro_n(k4, a, lda, b, acc, 3); break;
    case 2: micro_n(k4, a, lda, b, acc, 2); break;
    default: micro_n(k4, a, lda, b, acc, 1); break;
    }
}
