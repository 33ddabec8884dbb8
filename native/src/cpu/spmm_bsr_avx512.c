/* AVX-512 (+VNNI) tile kernels of the block-sparse SpMM (see spmm_bsr.h for the layouts).
 *
 * One call: one block row (bn output channels) x 16 * mv rows of x. Channels are taken in
 * chunks of C in {16, 8, 4, 2, 1} and rows in sub-tiles of MV zmm, so that the C x MV
 * accumulators stay in registers (C * MV <= 16): for every kept block and reduction index p
 * of it, MV vectors of xT are loaded once and reused by the chunk's C broadcast weights
 * (f32: vfmadd231ps; int8: one dword of 4 consecutive k per channel, vpdpbusd). */
#include "cpu/spmm_bsr.h"
#include <immintrin.h>

enum { K_F32 = 0, K_BF16 = 1, K_I8 = 2 };

static inline __attribute__((always_inline)) void chunk(const pt_spmm_tile* t, const int kind, const int C, const int MV, int i0,
                                                        int v0) {
    const int bk = t->bk, bn = t->bn;
    const int64_t mp = t->mp;
    if (kind == K_I8) {
        __m512i acc[16][8];
        PT_UNROLL(16) for (int i = 0; i < C; i++) PT_UNROLL(8) for (int v = 0; v < MV; v++) acc[i][v] = _mm512_setzero_si512();
        const int g4 = bk >> 2;
        const int8_t* vals = (const int8_t*)t->vals;
        const uint8_t* xt = (const uint8_t*)t->xt + (t->m0 + 16 * v0) * 4;
        for (int64_t b = t->b0; b < t->b1; b++) {
            const int32_t* w = (const int32_t*)(vals + b * (int64_t)bk * bn) + i0;
            const uint8_t* xb = xt + (int64_t)t->col[b] * g4 * mp * 4;
            for (int g = 0; g < g4; g++) {
                __m512i xv[8];
                PT_UNROLL(8) for (int v = 0; v < MV; v++) xv[v] = _mm512_loadu_si512((const void*)(xb + (g * mp + 16 * v) * 4));
                PT_UNROLL(16) for (int i = 0; i < C; i++) {
                    const __m512i wb = _mm512_set1_epi32(w[g * bn + i]);
                    PT_UNROLL(8) for (int v = 0; v < MV; v++) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], xv[v], wb);
                }
            }
        }
        int32_t* out = (int32_t*)t->out;
        PT_UNROLL(16) for (int i = 0; i < C; i++) PT_UNROLL(8) for (int v = 0; v < MV; v++)
            _mm512_storeu_si512((void*)(out + (i0 + i) * t->ldo + 16 * (v0 + v)), acc[i][v]);
    } else {
        __m512 acc[16][8];
        PT_UNROLL(16) for (int i = 0; i < C; i++) PT_UNROLL(8) for (int v = 0; v < MV; v++) acc[i][v] = _mm512_setzero_ps();
        const float* xt = (const float*)t->xt + t->m0 + 16 * v0;
        for (int64_t b = t->b0; b < t->b1; b++) {
            const float* xb = xt + (int64_t)t->col[b] * bk * mp;
            const float* wf = (const float*)t->vals + b * (int64_t)bk * bn + i0;
            const uint16_t* wh = (const uint16_t*)t->vals + b * (int64_t)bk * bn + i0;
            for (int p = 0; p < bk; p++) {
                __m512 xv[8];
                PT_UNROLL(8) for (int v = 0; v < MV; v++) xv[v] = _mm512_loadu_ps(xb + p * mp + 16 * v);
                PT_UNROLL(16) for (int i = 0; i < C; i++) {
                    __m512 wb;
                    if (kind == K_F32) {
                        wb = _mm512_set1_ps(wf[p * bn + i]);
                    } else {
                        const uint32_t u = (uint32_t)wh[p * bn + i] << 16;
                        wb = _mm512_castsi512_ps(_mm512_set1_epi32((int32_t)u));
                    }
                    PT_UNROLL(8) for (int v = 0; v < MV; v++) acc[i][v] = _mm512_fmadd_ps(wb, xv[v], acc[i][v]);
                }
            }
        }
        float* out = (float*)t->out;
        PT_UNROLL(16) for (int i = 0; i < C; i++) PT_UNROLL(8) for (int v = 0; v < MV; v++)
            _mm512_storeu_ps(out + (i0 + i) * t->ldo + 16 * (v0 + v), acc[i][v]);
    }
}

/* the largest MV for a chunk of C channels */
static int mv_max(int c) { return c >= 16 ? 1 : c >= 8 ? 2 : c >= 4 ? 4 : 8; }

#define MV_CASES(KIND, C)                                   \
    switch (mv) {                                           \
    case 8: chunk(t, KIND, C, 8, i0, v0); break;            \
    case 7: chunk(t, KIND, C, 7, i0, v0); break;            \
    case 6: chunk(t, KIND, C, 6, i0, v0); break;            \
    case 5: chunk(t, KIND, C, 5, i0, v0); break;            \
    case 4: chunk(t, KIND, C, 4, i0, v0); break;            \
    case 3: chunk(t, KIND, C, 3, i0, v0); break;            \
    case 2: chunk(t, KIND, C, 2, i0, v0); break;            \
    default: chunk(t, KIND, C, 1, i0, v0); break;           \
    }

#define DEF_TILE(NAME, KIND)                                                          \
    void NAME(const pt_spmm_tile* t) {                                                \
        for (int i0 = 0; i0 < t->bn;) {                                               \
            const int rem = t->bn - i0;                                               \
            const int c = rem >= 16 ? 16 : rem >= 8 ? 8 : rem >= 4 ? 4 : rem >= 2 ? 2 : 1; \
            const int mvm = mv_max(c);                                                \
            for (int v0 = 0; v0 < t->mv; v0 += mvm) {                                 \
                const int mv = t->mv - v0 < mvm ? t->mv - v0 : mvm;                   \
                switch (c) {                                                          \
                case 16: chunk(t, KIND, 16, 1, i0, v0); break;                        \
                case 8: if (mv == 2) chunk(t, KIND, 8, 2, i0, v0); else chunk(t, KIND, 8, 1, i0, v0); break; \
                case 4: switch (mv) {                                                 \
                        case 4: chunk(t, KIND, 4, 4, i0, v0); break;                  \
                        case 3: chunk(t, KIND, 4, 3, i0, v0); break;                  \
                        case 2: chunk(t, KIND, 4, 2, i0, v0); break;                  \
                        default: chunk(t, KIND, 4, 1, i0, v0); break;                 \
                        } break;                                                      \
                case 2: MV_CASES(KIND, 2) break;                                      \
                default: MV_CASES(KIND, 1) break;                                     \
                }                                                                     \
            }                                                                         \
            i0 += c;                                                                  \
        }                                                                             \
    }

DEF_TILE(pt_spmm_tile_f32_avx512, K_F32)
DEF_TILE(pt_spmm_tile_bf16_avx512, K_BF16)
DEF_TILE(pt_spmm_tile_i8_vnni, K_I8)
