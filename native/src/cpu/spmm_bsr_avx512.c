/* AVX-512 (+VNNI) tile kernels of the block-sparse SpMM (see spmm_bsr.h for the layouts).
 *
 * One call: one block row (bn output channels) x 16 * mv rows of x. Channels are taken in
 * chunks of C in {16, 8, 4, 2, 1} and rows in sub-tiles of MV zmm, so that the C x MV
 * accumulators stay in registers (C * MV <= 16): for every kept block and reduction index p
 * of it, MV vectors of xT are loaded once and reused by the chunk's C broadcast weights
 * (f32: vfmadd231ps; int8: one dword of 4 consecutive k per channel, vpdpbusd). */
#include "cpu/spmm_bsr.h"
#include <math.h>
#include "cpu/vecmath_avx512.h"
#include <immintrin.h>

enum { K_F32 = 0, K_BF16 = 1, K_I8 = 2 };

static PT_ALWAYS_INLINE void chunk(const pt_spmm_tile* t, const int kind, const int C, const int MV, int i0,
                                                        int v0) {
    const int bk = t->bk, bn = t->bn;
    const int64_t mp = t->mp;
    if (kind == K_I8) {
        __m512i acc[16][8];
        int32_t* out = (int32_t*)t->out;
        PT_UNROLL(16) for (int i = 0; i < C; i++) PT_UNROLL(8) for (int v = 0; v < MV; v++)
            acc[i][v] = t->accumulate ? _mm512_loadu_si512((const void*)(out + (i0 + i) * t->ldo + 16 * (v0 + v))) : _mm512_setzero_si512();
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
        PT_UNROLL(16) for (int i = 0; i < C; i++) PT_UNROLL(8) for (int v = 0; v < MV; v++)
            _mm512_storeu_si512((void*)(out + (i0 + i) * t->ldo + 16 * (v0 + v)), acc[i][v]);
    } else {
        __m512 acc[16][8];
        float* out = (float*)t->out;
        PT_UNROLL(16) for (int i = 0; i < C; i++) PT_UNROLL(8) for (int v = 0; v < MV; v++)
            acc[i][v] = t->accumulate ? _mm512_loadu_ps(out + (i0 + i) * t->ldo + 16 * (v0 + v)) : _mm512_setzero_ps();
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

#if defined(__GNUC__)
typedef int32_t __attribute__((may_alias, aligned(1))) i32u; /* 4 bytes of x as one dword */
#endif

/* acc += wv (u8) . the dword at x broadcast (s8), with the broadcast folded into vpdpbusd as
 * {1to16} (GCC 12 emits a separate vpbroadcastd and copies the accumulators between registers
 * around the intrinsic: twice the instructions of the inner loop) */
static PT_ALWAYS_INLINE __m512i dpbusd_bcast(__m512i acc, __m512i wv, const int8_t* x) {
#if defined(__GNUC__)
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(wv), "m"(*(const i32u*)x));
    return acc;
#else
    return _mm512_dpbusd_epi32(acc, wv, _mm512_set1_epi32(*(const int32_t*)x));
#endif
}

/* R rows (1..16) of the tile x block rows [nb0, nb1) (see pt_spmm_i8rows). Per 4 k of a block:
 * one load (+ xor) of the 16 channels' weights and R vpdpbusd, one per row, with the row's x
 * dword broadcast from xT (the tile's 16 rows of one quad are one 64-byte line): R independent
 * accumulator chains. */
static PT_ALWAYS_INLINE void i8rows(const pt_spmm_i8rows* a, const int R) {
    const int bk = a->bk, bn = a->bn, g4 = bk >> 2, act = a->act, ydt = a->ydt;
    const int64_t qs = a->mp * 4, ldw = (int64_t)bn * 4;
    /* (locals: y's stores may alias *a, so the fields would be reloaded for every row) */
    const float* sx = a->sx;
    const uint8_t* bad = a->bad;
    char* const* yrow = a->yrow;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int64_t nb = a->nb0; nb < a->nb1; nb++) {
        const int64_t b0 = a->rowptr[nb], b1 = a->rowptr[nb + 1];
        __m512i cv = _mm512_setzero_si512();
        for (int64_t b = b0; b < b1; b++) cv = _mm512_add_epi32(cv, _mm512_loadu_si512((const void*)(a->xsum + a->col[b] * a->mp)));
        int32_t corr[16];
        _mm512_storeu_si512((void*)corr, cv);
        for (int s = 0; s < bn; s += 16) {
            const int64_t n0 = nb * bn + s;
            if (n0 >= a->n) break;
            __m512i acc[16];
            PT_UNROLL(16) for (int r = 0; r < R; r++) acc[r] = _mm512_set1_epi32(-corr[r]);
            for (int64_t b = b0; b < b1; b++) {
                const int8_t* w = a->vals + b * (int64_t)bk * bn + s * 4;
                const int8_t* xg = a->xt + (int64_t)a->col[b] * g4 * qs;
                for (int g = 0; g < g4; g++, w += ldw, xg += qs) {
                    const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512((const void*)w), flip);
                    PT_UNROLL(16) for (int r = 0; r < R; r++) acc[r] = dpbusd_bcast(acc[r], wv, xg + 4 * r);
                }
            }
            /* the epilogue, a row at a time from memory: with the accumulators live across it (the
             * activations' registers), GCC moved every one through a spare register per vpdpbusd */
            __m512i sums[16];
            PT_UNROLL(16) for (int r = 0; r < R; r++) _mm512_storeu_si512((void*)&sums[r], acc[r]);
            const __mmask16 cm = pt_tail_mask(a->n - n0);
            const __m512 sc = _mm512_maskz_loadu_ps(cm, a->scale + n0), bi = _mm512_maskz_loadu_ps(cm, a->bias + n0);
            PT_UNROLL(1) for (int r = 0; r < R; r++) {
                __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512((const void*)&sums[r])), _mm512_mul_ps(_mm512_set1_ps(sx[r]), sc), bi);
                if (bad[r]) v = _mm512_set1_ps(NAN);
                pt_stm(yrow[r], ydt, n0, pt_act512(v, act), cm);
            }
        }
    }
}

void pt_spmm_i8rows_vnni(const pt_spmm_i8rows* a) {
    switch (a->rows) {
#define R_CASE(R) case R: i8rows(a, R); break;
    R_CASE(1) R_CASE(2) R_CASE(3) R_CASE(4) R_CASE(5) R_CASE(6) R_CASE(7) R_CASE(8)
    R_CASE(9) R_CASE(10) R_CASE(11) R_CASE(12) R_CASE(13) R_CASE(14) R_CASE(15)
    default: i8rows(a, 16); break;
#undef R_CASE
    }
}

/* 16 x 16 transpose of 32-bit lanes: r[i] lane j -> r[j] lane i. */
static PT_ALWAYS_INLINE void tr16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) {
        const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int j = 0; j < 4; j++) {
        t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
        t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
        t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
        r[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xdd);
    }
}

/* 64 bytes (16 quads) of 16 rows at a time: one 16 x 16 dword transpose gives each quad's 16
 * rows as one zmm, stored masked to the n rows (the rows after them may be another thread's);
 * the block sums from vpdpbusd against ones. */
void pt_spmm_xt16_i8_avx512(const int8_t* q, int64_t ldq, int n, int64_t kp, uint8_t* xt, int64_t mp, int shift, int32_t* xsum,
                            int32_t bk) {
    const int g4 = bk >> 2;
    const __m512i flip = _mm512_set1_epi8((char)0x80), ones = _mm512_set1_epi8(1);
    __m512i sum = _mm512_setzero_si512();
    int gq = 0;
    int32_t* xs = xsum;
    const __mmask16 rm = pt_tail_mask(n);
    for (int64_t j = 0; j < kp; j += 64) {
        const int64_t rem = kp - j;
        const __mmask64 m = rem >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << rem) - 1);
        __m512 r[16];
        for (int i = 0; i < 16; i++)
            r[i] = i < n ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi8(m, q + i * ldq + j)) : _mm512_setzero_ps();
        tr16(r);
        const int nq = rem >= 64 ? 16 : (int)(rem >> 2);
        for (int c = 0; c < nq; c++) {
            __m512i v = _mm512_castps_si512(r[c]);
            if (xs) {
                sum = _mm512_dpbusd_epi32(sum, ones, v);
                if (++gq == g4) {
                    _mm512_mask_storeu_epi32((void*)xs, rm, _mm512_slli_epi32(sum, 7));
                    xs += mp;
                    gq = 0;
                    sum = _mm512_setzero_si512();
                }
            }
            if (shift) v = _mm512_xor_si512(v, flip);
            _mm512_mask_storeu_epi32((void*)(xt + ((j >> 2) + c) * mp * 4), rm, v);
        }
    }
}

void pt_spmm_epilogue_avx512(const pt_spmm_epi* e) {
    /* rows outer, channels inner: each row of y is written in one run of nc values (y's rows are
     * often a multiple of 4 KiB apart: a column-wise walk would thrash a few cache sets) */
    for (int64_t r0 = 0; r0 < e->mlen; r0 += 16) {
        const int rn = (int)(e->mlen - r0 < 16 ? e->mlen - r0 : 16);
        for (int64_t c0 = 0; c0 < e->nc; c0 += 16) {
            const int64_t cn = e->nc - c0 < 16 ? e->nc - c0 : 16;
            const __mmask16 cm = pt_tail_mask(cn);
            const __m512 bias = _mm512_maskz_loadu_ps(cm, e->bias + c0);
            __m512 scale = _mm512_setzero_ps();
            __m512i cs128 = _mm512_setzero_si512();
            if (e->i8) {
                scale = _mm512_maskz_loadu_ps(cm, e->scale + c0);
                cs128 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(cm, e->colsum + c0), 7);
            }
            __m512 r[16];
            const float* tf = (const float*)e->tile + c0 * e->ldt + r0;
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(tf + i * e->ldt);
            tr16(r);
            for (int j = 0; j < rn; j++) {
                const int64_t m = r0 + j;
                __m512 v;
                if (e->i8) {
                    const __m512i a = _mm512_sub_epi32(_mm512_castps_si512(r[j]), cs128);
                    v = _mm512_mul_ps(_mm512_cvtepi32_ps(a), _mm512_mul_ps(_mm512_set1_ps(e->sx[m]), scale));
                    v = _mm512_add_ps(v, bias);
                    if (e->bad[m]) v = _mm512_set1_ps(NAN);
                } else {
                    v = _mm512_add_ps(r[j], bias);
                }
                v = pt_act512(v, e->act);
                pt_stm(e->y + m * e->ldy, e->ydt, c0, v, cm);
            }
        }
    }
}

/* The row's scale (s = absmax / 127 into *sx, *bad = 1 for a non-finite value) and the
 * multiplier 127 / absmax (0 for an all-zero or non-finite row). |x| as integers: for finite
 * values the integer order is the float order, and every non-finite value (exponent all ones) is
 * above every finite one, so one unsigned max finds both the absmax and whether the row has a
 * non-finite value. */
static inline float row_scale(const float* x, int64_t k, float* sx, uint8_t* bad) {
    __m512i am = _mm512_setzero_si512();
    const __m512i absm = _mm512_set1_epi32(0x7fffffff);
    for (int64_t j = 0; j < k; j += 16) {
        const __mmask16 m = pt_tail_mask(k - j);
        am = _mm512_max_epu32(am, _mm512_and_si512(_mm512_maskz_loadu_epi32(m, x + j), absm));
    }
    const uint32_t ab = (uint32_t)_mm512_reduce_max_epu32(am);
    const int nf = ab >= 0x7f800000u;
    float amax;
    memcpy(&amax, &ab, 4);
    *sx = amax / 127.0f;
    *bad = (uint8_t)nf;
    return amax > 0.0f && !nf ? 127.0f / amax : 0.0f;
}

/* Row quantization of the int8 path (same math as load_row in spmm_bsr.c: s = absmax / 127,
 * q = rne(x * (127 / absmax)) in [-127, 127]; a non-finite value sets *bad = 1, and the row's q
 * and s are then meaningless: its output row is NaN). x has k values; q receives kp >= k
 * (zeros past k). */
void pt_spmm_quant_row_avx512(const float* x, int64_t k, int64_t kp, int8_t* q, float* sx, uint8_t* bad) {
    const float inv = row_scale(x, k, sx, bad);
    /* |x * inv| <= 127 (1 + 2^-23)^2 rounds to <= 127: no clamp needed; vcvtps2dq rounds to
     * nearest even (the default MXCSR mode), as rne() */
    const __m512 vi = _mm512_set1_ps(inv);
    for (int64_t j = 0; j < kp; j += 16) {
        const __mmask16 m = pt_tail_mask(kp - j), mk = pt_tail_mask(k - j > 0 ? k - j : 0);
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + j), vi);
        _mm512_mask_cvtsepi32_storeu_epi8(q + j, m, _mm512_cvtps_epi32(v));
    }
}

/* The same quantization (same s, same q) written straight into the AMX tiled layout: the row's
 * 64-value chunks at dst + c * 1024 for c < kb (zeros past k), one 64-byte store per chunk
 * (saturating packs + one permute; the per-chunk copy of a row-major q cost a libc memcpy per 64
 * bytes). */
void pt_spmm_quant_row_tiled_avx512(const float* x, int64_t k, int64_t kb, int8_t* dst, float* sx, uint8_t* bad) {
    const float inv = row_scale(x, k, sx, bad);
    const __m512 vi = _mm512_set1_ps(inv);
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    for (int64_t c = 0; c < kb; c++) {
        __m512i qi[4];
        for (int u = 0; u < 4; u++) {
            const int64_t j = c * 64 + 16 * u;
            qi[u] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(pt_tail_mask(k - j > 0 ? k - j : 0), x + j), vi));
        }
        const __m512i b = _mm512_packs_epi16(_mm512_packs_epi32(qi[0], qi[1]), _mm512_packs_epi32(qi[2], qi[3]));
        _mm512_storeu_si512((void*)(dst + c * 1024), _mm512_permutexvar_epi32(order, b));
    }
}

/* An already quantized row (s8, k values) into the tiled layout, zeros past k. */
void pt_spmm_copy_row_tiled_avx512(const int8_t* q, int64_t k, int64_t kb, int8_t* dst) {
    for (int64_t c = 0; c < kb; c++) {
        const int64_t rem = k - c * 64;
        const __mmask64 m = rem >= 64 ? ~(__mmask64)0 : rem <= 0 ? (__mmask64)0 : (((__mmask64)1 << rem) - 1);
        _mm512_storeu_si512((void*)(dst + c * 1024), _mm512_maskz_loadu_epi8(m, q + c * 64));
    }
}

/* Few rows (M <= 8), 4x1 blocks: per output channel, 16 kept blocks at a time (int8: their x
 * dwords gathered by block index, one vpdpbusd against the 16 blocks' 64 contiguous weight bytes;
 * f32: 4 blocks = 16 floats gathered, one FMA), so no lane is wasted on absent rows; the sums go
 * to the transposed tile (out[c * ldo + m]) for the common epilogue. */
static PT_ALWAYS_INLINE void rows_4x1(const pt_spmm_rows* a, const int M) {
    for (int64_t nb = a->nb0; nb < a->nb1; nb++) {
        const int64_t b0 = a->rowptr[nb], b1 = a->rowptr[nb + 1];
        if (a->i8) {
            __m512i acc[8];
            for (int m = 0; m < M; m++) acc[m] = _mm512_setzero_si512();
            const int32_t* w = (const int32_t*)a->vals;
            const uint8_t* x = (const uint8_t*)a->x;
            for (int64_t b = b0; b < b1; b += 16) {
                const __mmask16 mk = pt_tail_mask(b1 - b);
                const __m512i idx = _mm512_maskz_loadu_epi32(mk, a->col + b);
                const __m512i wv = _mm512_maskz_loadu_epi32(mk, w + b);
                for (int m = 0; m < M; m++) {
                    const __m512i xv = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mk, idx, x + m * a->ldx, 4);
                    acc[m] = _mm512_dpbusd_epi32(acc[m], xv, wv);
                }
            }
            int32_t* o = (int32_t*)a->out + (nb - a->nb0) * a->ldo;
            for (int m = 0; m < M; m++) o[m] = _mm512_reduce_add_epi32(acc[m]);
        } else {
            __m512 acc[8];
            for (int m = 0; m < M; m++) acc[m] = _mm512_setzero_ps();
            const float* w = (const float*)a->vals;
            const float* x = (const float*)a->x;
            const __m512i rep = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
            const __m512i off = _mm512_set_epi32(3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0);
            for (int64_t b = b0; b < b1; b += 4) {
                const int64_t cnt = b1 - b < 4 ? b1 - b : 4;
                const __mmask16 mk = pt_tail_mask(cnt * 4);
                const __m512i c4 = _mm512_maskz_loadu_epi32(pt_tail_mask(cnt), a->col + b);
                const __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(_mm512_permutexvar_epi32(rep, c4), 2), off);
                const __m512 wv = _mm512_maskz_loadu_ps(mk, w + b * 4);
                for (int m = 0; m < M; m++) {
                    const __m512 xv = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, idx, x + m * a->ldx, 4);
                    acc[m] = _mm512_fmadd_ps(wv, xv, acc[m]);
                }
            }
            float* o = (float*)a->out + (nb - a->nb0) * a->ldo;
            for (int m = 0; m < M; m++) o[m] = _mm512_reduce_add_ps(acc[m]);
        }
    }
}

void pt_spmm_rows_4x1_avx512(const pt_spmm_rows* a) {
    switch (a->m) {
    case 1: rows_4x1(a, 1); break;
    case 2: rows_4x1(a, 2); break;
    case 3: rows_4x1(a, 3); break;
    case 4: rows_4x1(a, 4); break;
    case 5: rows_4x1(a, 5); break;
    case 6: rows_4x1(a, 6); break;
    case 7: rows_4x1(a, 7); break;
    default: rows_4x1(a, 8); break;
    }
}
