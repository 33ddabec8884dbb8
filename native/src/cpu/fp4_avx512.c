/* FP4 kernels on AVX-512: the GEMV (M = 1) decodes nibbles in registers with a 16-entry LUT
 * permute (vpermps uses only the low 4 bits of each index, so a zero-extended byte indexes
 * its low nibble as is), the W4A16 GEMV on AVX512_BF16 (vpermw to bf16 levels, vdpbf16ps; see
 * gemv_bf16_t), the GEMV on AVX512_VNNI (x in 16-bit fixed point, vpshufb or, where the CPU
 * has VBMI, vpermb to u8 levels, vpdpbusd; see gemv_vnni_t), and the GEMM body of
 * fp4_gemm_inl.h compiled for zmm. */
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
        /* the next four rows (or these again on the last pass) are prefetched one pass ahead, at
         * the same offsets as the codes and scales being read now: a pass of four rows takes long
         * enough to hide DRAM latency, and the rows of a pass are separate streams that the
         * hardware prefetcher picks up late */
        const int64_t pn = n + 8 <= n1 ? 4 : 0;
        const uint8_t* pc = c0 + pn * p->ldw;
        const char* ps = (const char*)p->scales + (n + pn) * p->lds * (sbf ? 2 : 4);
        const int64_t psr = p->lds * (sbf ? 2 : 4);
        /* groups (32, 64, 128) divide K: a new group where k & (G - 1) == 0; per channel
         * (G == K) the scaled LUTs are made once and K may end in a tail */
        const int perch = G >= K;
        const int64_t gmask = perch ? 0 : G - 1;
        float s0 = SCALE(n, 0), s1 = SCALE(n + 1, 0), s2 = SCALE(n + 2, 0), s3 = SCALE(n + 3, 0);
        __m512 l0 = _mm512_mul_ps(lut, _mm512_set1_ps(s0)), l1 = _mm512_mul_ps(lut, _mm512_set1_ps(s1));
        __m512 l2 = _mm512_mul_ps(lut, _mm512_set1_ps(s2)), l3 = _mm512_mul_ps(lut, _mm512_set1_ps(s3));
        for (int64_t k = 0; k < K32; k += 32) {
            const int64_t kb = k >> 1;
            if (!perch && k > 0 && (k & gmask) == 0) {
                const int64_t g = k / G;
                l0 = _mm512_mul_ps(lut, _mm512_set1_ps(SCALE(n, g)));
                l1 = _mm512_mul_ps(lut, _mm512_set1_ps(SCALE(n + 1, g)));
                l2 = _mm512_mul_ps(lut, _mm512_set1_ps(SCALE(n + 2, g)));
                l3 = _mm512_mul_ps(lut, _mm512_set1_ps(SCALE(n + 3, g)));
            }
            if ((k & 127) == 0) {
                _mm_prefetch((const char*)(pc + kb), _MM_HINT_T0);
                _mm_prefetch((const char*)(pc + p->ldw + kb), _MM_HINT_T0);
                _mm_prefetch((const char*)(pc + 2 * p->ldw + kb), _MM_HINT_T0);
                _mm_prefetch((const char*)(pc + 3 * p->ldw + kb), _MM_HINT_T0);
                if ((k & 511) == 0 && !perch) {
                    const int64_t so = (k / G) * (sbf ? 2 : 4);
                    _mm_prefetch(ps + so, _MM_HINT_T0);
                    _mm_prefetch(ps + psr + so, _MM_HINT_T0);
                    _mm_prefetch(ps + 2 * psr + so, _MM_HINT_T0);
                    _mm_prefetch(ps + 3 * psr + so, _MM_HINT_T0);
                }
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
        if (K32 < K) { /* per-channel only: the K % 32 tail, in natural order */
            const float ss[4] = {s0, s1, s2, s3};
            const uint8_t* cc[4] = {c0, c1, c2, c3};
            for (int r = 0; r < 4; r++)
                for (int64_t k = K32; k < K; k += 2) {
                    uint8_t b = cc[r][k >> 1];
                    tail[r] += p->x[k] * (p->lut[b & 15] * ss[r]) + p->x[k + 1] * (p->lut[b >> 4] * ss[r]);
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

/* GEMM (M > 1) with the weight decoded in registers, never to memory: an MR x NR block of y
 * (up to 4 rows of x, 3 output channels) accumulates along K in 12 zmm; each 32-chunk of codes
 * of a channel is decoded once (1 vpmovzxbd, 2 vpermps against the channel's scaled LUT) and
 * serves MR rows of x, which are pre-deinterleaved per 32-chunk (xd, like the GEMV's x).
 * Loop order: row panels of 4 outer (their x stays in L1/L2), this worker's channels inner
 * (their codes stay in L2), full K inside; a horizontal sum per output at the end. */
#define GMR 4
#define GNR 3
static inline __attribute__((always_inline)) void gemm_tile_t(const pt_fp4_problem* p, int64_t m0, const int mr, int64_t n,
                                                              const int nr, const int sbf) {
    const int64_t K = p->k, G = p->group, K32 = K & ~(int64_t)31, ldxd = p->k;
    const __m512 lut = _mm512_loadu_ps(p->lut);
    __m512 acc[GMR][GNR];
    float tail[GMR][GNR];
    const uint8_t* c[GNR];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) { acc[i][j] = _mm512_setzero_ps(); tail[i][j] = 0.0f; }
    for (int j = 0; j < nr; j++) c[j] = p->codes + (n + j) * p->ldw;
    const float* xr = p->xd + m0 * ldxd;
    /* groups (32, 64, 128) divide K, so K32 == K and a group starts where k & (G - 1) == 0;
     * per channel (G == K) the scaled LUTs are made once and K may end in a tail */
    const int perch = G >= K;
    const int64_t gmask = perch ? 0 : G - 1;
    __m512 l[GNR];
    float sc[GNR];
    for (int j = 0; j < nr; j++) {
        sc[j] = SCALE(n + j, 0);
        l[j] = _mm512_mul_ps(lut, _mm512_set1_ps(sc[j]));
    }
    for (int64_t k = 0; k < K32; k += 32) {
        if (!perch && k > 0 && (k & gmask) == 0)
            for (int j = 0; j < nr; j++) l[j] = _mm512_mul_ps(lut, _mm512_set1_ps(SCALE(n + j, k / G)));
        __m512 we[GNR], wo[GNR];
        for (int j = 0; j < nr; j++) {
            const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(c[j] + (k >> 1))));
            we[j] = _mm512_permutexvar_ps(v, l[j]);
            wo[j] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), l[j]);
        }
        for (int i = 0; i < mr; i++) {
            const __m512 xe = _mm512_loadu_ps(xr + i * ldxd + k), xo = _mm512_loadu_ps(xr + i * ldxd + k + 16);
            for (int j = 0; j < nr; j++) {
                acc[i][j] = _mm512_fmadd_ps(we[j], xe, acc[i][j]);
                acc[i][j] = _mm512_fmadd_ps(wo[j], xo, acc[i][j]);
            }
        }
    }
    if (K32 < K) /* per-channel only: the K % 32 tail, in natural order */
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++)
                for (int64_t k = K32; k < K; k += 2) {
                    const uint8_t b = c[j][k >> 1];
                    const float* x = p->x + (m0 + i) * p->ldx;
                    tail[i][j] += x[k] * (p->lut[b & 15] * sc[j]) + x[k + 1] * (p->lut[b >> 4] * sc[j]);
                }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++)
            pt_fp4_store_y(p, m0 + i, n + j, _mm512_reduce_add_ps(acc[i][j]) + tail[i][j] + (p->bias ? p->bias[n + j] : 0.0f));
}

#define GEMM_TILE_FN(MR, NR, SBF) \
    static void gemm_tile_##MR##_##NR##_##SBF(const pt_fp4_problem* p, int64_t m0, int64_t n) { gemm_tile_t(p, m0, MR, n, NR, SBF); }
#define GEMM_TILE_ROW(SBF) \
    GEMM_TILE_FN(1, 1, SBF) GEMM_TILE_FN(1, 2, SBF) GEMM_TILE_FN(1, 3, SBF) GEMM_TILE_FN(2, 1, SBF) GEMM_TILE_FN(2, 2, SBF) \
    GEMM_TILE_FN(2, 3, SBF) GEMM_TILE_FN(3, 1, SBF) GEMM_TILE_FN(3, 2, SBF) GEMM_TILE_FN(3, 3, SBF) GEMM_TILE_FN(4, 1, SBF) \
    GEMM_TILE_FN(4, 2, SBF) GEMM_TILE_FN(4, 3, SBF)
GEMM_TILE_ROW(0)
GEMM_TILE_ROW(1)
typedef void (*gemm_tile_fn)(const pt_fp4_problem*, int64_t, int64_t);
static const gemm_tile_fn GEMM_TILES[2][GMR][GNR] = {
    {{gemm_tile_1_1_0, gemm_tile_1_2_0, gemm_tile_1_3_0}, {gemm_tile_2_1_0, gemm_tile_2_2_0, gemm_tile_2_3_0},
     {gemm_tile_3_1_0, gemm_tile_3_2_0, gemm_tile_3_3_0}, {gemm_tile_4_1_0, gemm_tile_4_2_0, gemm_tile_4_3_0}},
    {{gemm_tile_1_1_1, gemm_tile_1_2_1, gemm_tile_1_3_1}, {gemm_tile_2_1_1, gemm_tile_2_2_1, gemm_tile_2_3_1},
     {gemm_tile_3_1_1, gemm_tile_3_2_1, gemm_tile_3_3_1}, {gemm_tile_4_1_1, gemm_tile_4_2_1, gemm_tile_4_3_1}}};

static void gemm_regs(const pt_fp4_problem* p, int64_t n0, int64_t n1) {
    const gemm_tile_fn(*t)[GNR] = GEMM_TILES[p->scale_bf16 ? 1 : 0];
    for (int64_t m0 = 0; m0 < p->m; m0 += GMR) {
        const int mr = (int)(p->m - m0 < GMR ? p->m - m0 : GMR);
        for (int64_t n = n0; n < n1; n += GNR) {
            const int nr = (int)(n1 - n < GNR ? n1 - n : GNR);
            t[mr - 1][nr - 1](p, m0, n);
        }
    }
}


/* ---- W4A16 GEMV on AVX512_BF16 (M = 1, weight-only, the FP formats) ----
 * x is rounded to bf16 once per call (p->xb, see fp4.h). A 128-element chunk of a row is 64
 * code bytes, one zmm load; its 16-bit lane j holds the codes of elements 4j..4j+3 (nibble r =
 * element 4j + r). vpermw looks the 16 levels up (bf16: exact for E2M1, E1M2, E3M0) with the
 * low 5 bits of each lane (the table is stored twice), so the lane itself, >> 4, >> 8 and >> 12
 * index the levels of elements 4j, 4j+1, 4j+2, 4j+3 with no masking; xb holds x in that order.
 * vdpbf16ps multiplies lane pairs (exact products) and accumulates in f32: f32 lane i of a
 * chunk's dot covers elements 128c + 8i .. 8i+7, all of group (128c + 8i) / G. The chunk's
 * 128/G group scales are expanded to the 16 lanes by one permute and applied with one FMA per
 * two dot vectors; per channel, the row's sum is scaled at the end. Per 128 weights and row:
 * 1 load, 3 shifts, 4 vpermw, 4 vdpbf16ps, 1 scale permute, 2 FMA (against 12 permutes,
 * 4 shifts, 8 FMA for the f32 kernel above). Rows go 4 per pass, x from registers. */
#define GBR 4
static inline int load_u32(const char* p) { int v; memcpy(&v, p, 4); return v; }
static inline uint16_t load_u16(const char* p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline long long load_u64(const char* p) { long long v; memcpy(&v, p, 8); return v; }
typedef struct {
    __m512 acc[GBR], acc2[GBR];
} gbf_acc;

/* The group scales of one 128-chunk ch of a row (srow: the row's scales), expanded to the 16
 * f32 lanes (lane i: elements 8i..8i+7 of the chunk, one group for G >= 32); gsel as in
 * gemv_bf16_t (1, 2, 3; not 0). tail: the last, partial chunk, its sm scales read with a mask. */
static inline __attribute__((always_inline)) __m512 chunk_scales(const char* srow, int64_t ch, const int sbf, const int gsel,
                                                                 const int tail, const __mmask16 sm, const __m512i sidx32,
                                                                 const __m512i sidx16) {
    const int spc = gsel == 1 ? 4 : gsel == 2 ? 2 : 1;
    if (sbf && !tail) { /* a broadcast load, then one vpshufb moves scale i's two bytes to the high half of its lanes */
        if (gsel == 3) return _mm512_castsi512_ps(_mm512_set1_epi32((int)((uint32_t)load_u16(srow + ch * 2) << 16)));
        const __m512i b = spc == 4 ? _mm512_set1_epi64(load_u64(srow + ch * 8)) : _mm512_set1_epi32(load_u32(srow + ch * 4));
        const __m512i ctl = spc == 4 ? _mm512_set_epi32(0x0706FFFF, 0x0706FFFF, 0x0706FFFF, 0x0706FFFF, 0x0504FFFF, 0x0504FFFF, 0x0504FFFF,
                                                        0x0504FFFF, 0x0302FFFF, 0x0302FFFF, 0x0302FFFF, 0x0302FFFF, 0x0100FFFF, 0x0100FFFF,
                                                        0x0100FFFF, 0x0100FFFF)
                                     : _mm512_set_epi32(0x0302FFFF, 0x0302FFFF, 0x0302FFFF, 0x0302FFFF, 0x0302FFFF, 0x0302FFFF, 0x0302FFFF,
                                                        0x0302FFFF, 0x0100FFFF, 0x0100FFFF, 0x0100FFFF, 0x0100FFFF, 0x0100FFFF, 0x0100FFFF,
                                                        0x0100FFFF, 0x0100FFFF);
        return _mm512_castsi512_ps(_mm512_shuffle_epi8(b, ctl));
    }
    if (sbf) {
        const __m128i s16 = tail ? _mm_maskz_loadu_epi16((__mmask8)sm, (const void*)(srow + ch * spc * 2))
                                 : (spc == 4 ? _mm_loadl_epi64((const __m128i*)(srow + ch * 8))
                                             : _mm_cvtsi32_si128(spc == 2 ? load_u32(srow + ch * 4) : (int)load_u16(srow + ch * 2)));
        return _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(0xAAAAAAAAu, sidx16, _mm512_castsi128_si512(s16)));
    }
    if (gsel == 3) return _mm512_set1_ps(*(const float*)(srow + ch * 4));
    const __m128 s32 = tail ? _mm_maskz_loadu_ps((__mmask8)sm, (const float*)(srow + ch * spc * 4))
                            : (spc == 4 ? _mm_loadu_ps((const float*)(srow + ch * 16))
                                        : _mm_castpd_ps(_mm_load_sd((const double*)(srow + ch * 8))));
    return _mm512_permutexvar_ps(sidx32, _mm512_castps128_ps512(s32));
}

/* One 128-chunk ch of R rows (tail: the last, partial chunk, read with masks). */
static inline __attribute__((always_inline)) void gbf_chunk(const pt_fp4_problem* p, const uint8_t* const* c, const char* const* srow,
                                                            gbf_acc* a, int64_t ch, const int R, const int sbf, const int gsel,
                                                            const int tail, const __mmask64 cm, const __mmask16 sm, const __m512i lut,
                                                            const __m512i sidx32, const __m512i sidx16, int64_t pfo, int64_t pfs) {
    const int spc = gsel == 1 ? 4 : gsel == 2 ? 2 : 1;
    const int64_t es = sbf ? 2 : 4;
    const __m512 zero = _mm512_setzero_ps();
    const uint16_t* xc = p->xb + ch * 128;
    const __m512i x0 = _mm512_loadu_si512((const void*)xc), x1 = _mm512_loadu_si512((const void*)(xc + 32));
    const __m512i x2 = _mm512_loadu_si512((const void*)(xc + 64)), x3 = _mm512_loadu_si512((const void*)(xc + 96));
    for (int r = 0; r < R; r++) {
        if (!tail) {
            _mm_prefetch((const char*)(c[r] + pfo + ch * 64), _MM_HINT_T0);
            if (gsel && (ch & 3) == 0) _mm_prefetch(srow[r] + pfs + ch * spc * es, _MM_HINT_T0);
        }
        const __m512i v = tail ? _mm512_maskz_loadu_epi8(cm, (const void*)(c[r] + ch * 64)) : _mm512_loadu_si512((const void*)(c[r] + ch * 64));
        const __m512i w0 = _mm512_permutexvar_epi16(v, lut);
        const __m512i w1 = _mm512_permutexvar_epi16(_mm512_srli_epi16(v, 4), lut);
        const __m512i w2 = _mm512_permutexvar_epi16(_mm512_srli_epi16(v, 8), lut);
        const __m512i w3 = _mm512_permutexvar_epi16(_mm512_srli_epi16(v, 12), lut);
        if (gsel == 0) {
            a->acc[r] = _mm512_dpbf16_ps(a->acc[r], (__m512bh)w0, (__m512bh)x0);
            a->acc2[r] = _mm512_dpbf16_ps(a->acc2[r], (__m512bh)w1, (__m512bh)x1);
            a->acc[r] = _mm512_dpbf16_ps(a->acc[r], (__m512bh)w2, (__m512bh)x2);
            a->acc2[r] = _mm512_dpbf16_ps(a->acc2[r], (__m512bh)w3, (__m512bh)x3);
        } else {
            __m512 ta = _mm512_dpbf16_ps(zero, (__m512bh)w0, (__m512bh)x0);
            __m512 tb = _mm512_dpbf16_ps(zero, (__m512bh)w1, (__m512bh)x1);
            ta = _mm512_dpbf16_ps(ta, (__m512bh)w2, (__m512bh)x2);
            tb = _mm512_dpbf16_ps(tb, (__m512bh)w3, (__m512bh)x3);
            const __m512 sv = chunk_scales(srow[r], ch, sbf, gsel, tail, sm, sidx32, sidx16);
            a->acc[r] = _mm512_fmadd_ps(ta, sv, a->acc[r]);
            a->acc2[r] = _mm512_fmadd_ps(tb, sv, a->acc2[r]);
        }
    }
}

/* gsel: 0 per channel (one scale per row), 1: G = 32, 2: G = 64, 3: G = 128 */
static inline __attribute__((always_inline)) void gemv_bf16_t(const pt_fp4_problem* p, const int64_t* rows, const int R, const int sbf,
                                                              const int gsel, int64_t pr) {
    const int64_t K = p->k, nfull = K >> 7, tailb = (K & 127) >> 1;
    const __m512i lut = _mm512_loadu_si512((const void*)p->lutb);
    const int spc = gsel == 1 ? 4 : gsel == 2 ? 2 : 1; /* scales per full chunk */
    const __m512i sidx32 = gsel == 1   ? _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0)
                           : gsel == 2 ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
                                       : _mm512_setzero_si512();
    const __m512i sidx16 = _mm512_slli_epi32(sidx32, 16); /* bf16 scale s -> f32 lane bits s << 16 */
    const uint8_t* c[GBR];
    const char* srow[GBR];
    gbf_acc a;
    const int64_t es = sbf ? 2 : 4;
    for (int r = 0; r < R; r++) {
        c[r] = p->codes + rows[r] * p->ldw;
        srow[r] = (const char*)p->scales + rows[r] * p->lds * es;
        a.acc[r] = _mm512_setzero_ps();
        a.acc2[r] = _mm512_setzero_ps();
    }
    /* pr: the rows (0 or gemv_pf_rows) from each row of this pass to a later pass's, whose codes and
     * scales are prefetched at the offsets read now */
    const int64_t pfo = pr * p->ldw, pfs = pr * p->lds * es;
    for (int64_t ch = 0; ch < nfull; ch++)
        gbf_chunk(p, c, srow, &a, ch, R, sbf, gsel, 0, 0, 0, lut, sidx32, sidx16, pfo, pfs);
    if (tailb) {
        const int nsc = (int)((2 * tailb + ((128 / spc) - 1)) / (128 / spc));
        gbf_chunk(p, c, srow, &a, nfull, R, sbf, gsel, 1, ((__mmask64)1 << tailb) - 1, (__mmask16)((1u << nsc) - 1), lut, sidx32,
                  sidx16, pfo, pfs);
    }
    for (int r = 0; r < R; r++) {
        float v = _mm512_reduce_add_ps(_mm512_add_ps(a.acc[r], a.acc2[r]));
        if (gsel == 0) v *= pt_fp4_scale(p, rows[r], 0);
        pt_fp4_store_y(p, 0, rows[r], v + (p->bias ? p->bias[rows[r]] : 0.0f));
    }
}

#define GBF_FN(R, SBF, GS) \
    static void gbf_##R##_##SBF##_##GS(const pt_fp4_problem* p, const int64_t* rows, int64_t pr) { gemv_bf16_t(p, rows, R, SBF, GS, pr); }
#define GBF_ROW(SBF) GBF_FN(4, SBF, 0) GBF_FN(4, SBF, 1) GBF_FN(4, SBF, 2) GBF_FN(4, SBF, 3) \
                     GBF_FN(1, SBF, 0) GBF_FN(1, SBF, 1) GBF_FN(1, SBF, 2) GBF_FN(1, SBF, 3)
GBF_ROW(0)
GBF_ROW(1)
typedef void (*gbf_fn)(const pt_fp4_problem*, const int64_t*, int64_t); /* problem, the pass's rows, rows to the next pass's (prefetch) */
static const gbf_fn GBF[2][2][4] = {
    {{gbf_1_0_0, gbf_1_0_1, gbf_1_0_2, gbf_1_0_3}, {gbf_4_0_0, gbf_4_0_1, gbf_4_0_2, gbf_4_0_3}},
    {{gbf_1_1_0, gbf_1_1_1, gbf_1_1_2, gbf_1_1_3}, {gbf_4_1_0, gbf_4_1_1, gbf_4_1_2, gbf_4_1_3}}};

/* ---- VNNI GEMV on AVX512_VNNI (M = 1, weight-only, E2M1 / E1M2 / E3M0) ----
 * The levels of these formats times mult (2 for E2M1, 4 for E1M2 and E3M0) are integers:
 * 0..12, 0..7 and 0..64 with a sign; shifted by off (12, 7, 64) they are u8 in [0, 2 off],
 * looked up with one vpshufb (p->lutv, 16 entries per 128-bit lane). x is quantized once per
 * call and thread (pt_fp4_vnni_quant) to 16-bit integers with one power-of-two scale per 8-element block
 * (elements 8L..8L+7, aligned to multiples of 8 of K):
 *   x[k] ~ xq[k] * 2^e,  e chosen so that max|x| of the block scales into [16320, 32639],
 * xq = rint(x * 2^-e) (the scaling is exact): |xq 2^e - x| <= 2^(e-1) <= 2^-15 max|x of the
 * block|, finer than bf16's 2^-9 |x| for every element within 2^6 of its block's largest.
 * xq splits into two signed bytes xq = 256 xh + xl (xh = (xq + 128) >> 8 in [-128, 127], xl in
 * [-128, 127]), stored per 128-chunk in the order vpdpbusd reads them against the 64 code bytes
 * of the chunk: byte 4L + j of the even (odd) vectors holds element 8L + 2j (+1), the low (high)
 * nibble of code byte 4L + j. Per chunk and row:
 *   h = dpbusd(0, w_lo, xh_even) + dpbusd(w_hi, xh_odd)
 *   t = (h << 8) + ct + dpbusd(w_lo, xl_even) + dpbusd(w_hi, xl_odd)   (ct = -off * sum of xq over lane L)
 *     = sum over the lane's 8 elements of (level * mult) * xq            exactly, in int32
 *   acc += f32(t) * (2^e / mult) * group scale                           (per channel: scale at the end)
 * int32 range: one vpdpbusd adds 4 products of <= 128 * 128 = 2^14, so |h| <= 2^17, |ct| <=
 * 64 * 8 * 32768 = 2^24 and |t| <= 2^25 + 2^24 + 2^17: no overflow. The only roundings are f32(t)
 * (|t| may exceed 2^24), the scale product and the f32 accumulation.
 * Per 128 weights and row: 1 load, 1 shift, 2 and, 2 vpshufb, 4 vpdpbusd, 1 shift, 1 add, 1 cvt,
 * 1 mul, 1 FMA and the scale expansion (1 vpermps or vpshufb): 14 vector uops, against 4 vdpbf16ps
 * (~2 cycles each), 4 vpermw (2 uops each), 3 shifts, 2 FMA and the scale for gemv_bf16_t.
 * With VBMI (p->vbmi) two vpermb replace the 2 and + 2 vpshufb (2 uops fewer). K <= 1024 takes 8 rows
 * per pass (gvn_stretches), longer rows 4 (gemv_stretches). */
typedef struct {
    int8_t xh[2][64]; /* [0]: even elements, [1]: odd; byte 4L + j: element 8L + 2j (+ 1) of the chunk */
    int8_t xl[2][64];
    int32_t ct[16];   /* -off * (sum of xq over lane L's 8 elements) */
    float xs[16];     /* 2^e_L / mult */
} fp4_xv;
_Static_assert(sizeof(fp4_xv) == PT_FP4_XV_BYTES, "PT_FP4_XV_BYTES");

/* The quantization of one 128-chunk of x, in registers (pt_fp4_vnni_quant). The 8 vectors of 16
 * elements are regrouped so that 128-bit lane q of xa[i] / xb[i] holds the first / last 4 elements
 * of block 4i + q: the block maxima then take one max tree for the chunk (lane 4q + i of the tree's
 * result: block 4i + q), the exponents are computed once per chunk, and packs_epi32(qa, qb) gives
 * each block's 8 values in order in one 128-bit lane, whose bytes one vpshufb sorts into the 4
 * dwords (h even, h odd, l even, l odd) that vpdpbusd reads; two levels of vpermt2d gather each
 * kind's dwords of the 16 blocks. The values are those of the plain per-block formula (see fp4_xv). */
static inline __attribute__((always_inline)) void vnni_prep_chunk(const float* x, int64_t rem, fp4_xv* o, const __m512i offv,
                                                                  const float mult) {
    __m512 xa[4], xb[4];
    for (int i = 0; i < 4; i++) {
        __m512 v[2];
        for (int j = 0; j < 2; j++) {
            const int64_t r = rem - 32 * i - 16 * j;
            const __mmask16 km = r >= 16 ? (__mmask16)0xFFFF : r > 0 ? (__mmask16)((1u << r) - 1) : 0;
            v[j] = _mm512_maskz_loadu_ps(km, x + (r > 0 ? 32 * i + 16 * j : 0));
        }
        xa[i] = _mm512_shuffle_f32x4(v[0], v[1], 0x88); /* lanes: v0.q0, v0.q2, v1.q0, v1.q2 */
        xb[i] = _mm512_shuffle_f32x4(v[0], v[1], 0xDD); /* lanes: v0.q1, v0.q3, v1.q1, v1.q3 */
    }
    __m512 w[4];
    for (int i = 0; i < 4; i++) w[i] = _mm512_max_ps(_mm512_abs_ps(xa[i]), _mm512_abs_ps(xb[i])); /* lane q: block 4i + q */
    const __m512 c = _mm512_max_ps(_mm512_unpacklo_ps(w[0], w[1]), _mm512_unpackhi_ps(w[0], w[1]));
    const __m512 d = _mm512_max_ps(_mm512_unpacklo_ps(w[2], w[3]), _mm512_unpackhi_ps(w[2], w[3]));
    const __m512 m = _mm512_max_ps(_mm512_shuffle_ps(c, d, 0x44), _mm512_shuffle_ps(c, d, 0xEE)); /* lane 4q + i: max|x| of block 4i + q */
    /* m = mant * 2^E, mant in [1, 2): scale by 2^(14 - E), or 2^(13 - E) where mant * 2^14 > 32639 */
    __m512 s = _mm512_sub_ps(_mm512_set1_ps(14.0f), _mm512_getexp_ps(m));
    s = _mm512_mask_sub_ps(s, _mm512_cmp_ps_mask(_mm512_getmant_ps(m, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero), _mm512_set1_ps(32639.0f / 16384.0f),
                                                 _CMP_GT_OQ),
                           s, _mm512_set1_ps(1.0f));
    s = _mm512_mask_mov_ps(s, _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_EQ_OQ), _mm512_setzero_ps());
    /* bytes of a block's 8 values x16 (lane q of packs): after (x16 + 128) ^ 0x0080 the low byte of
     * each 16-bit lane is xl and the high byte xh (x16 = 256 xh + xl, |x16| <= 32639) */
    const __m512i sel = _mm512_broadcast_i32x4(_mm_setr_epi8(1, 5, 9, 13, 3, 7, 11, 15, 0, 4, 8, 12, 2, 6, 10, 14));
    const __m512i b80 = _mm512_set1_epi16(0x80);
    __m512i pk[4];
    for (int i = 0; i < 4; i++) {
        const __m512 si = _mm512_permutexvar_ps(_mm512_set_epi32(12 + i, 12 + i, 12 + i, 12 + i, 8 + i, 8 + i, 8 + i, 8 + i, 4 + i, 4 + i, 4 + i,
                                                                 4 + i, i, i, i, i),
                                                s);
        const __m512i qa = _mm512_cvt_roundps_epi32(_mm512_scalef_ps(xa[i], si), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512i qb = _mm512_cvt_roundps_epi32(_mm512_scalef_ps(xb[i], si), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512i x16 = _mm512_packs_epi32(qa, qb);
        pk[i] = _mm512_shuffle_epi8(_mm512_xor_si512(_mm512_add_epi16(x16, b80), b80), sel); /* lane q dword k: kind k of block 4i + q */
    }
    /* kind k of block 4i + q is dword 4q + k of pk[i]: level 1 keeps kinds 0, 1 (lo) or 2, 3 (hi) of pk[i], pk[i + 1] at
     * 8 (k & 1) + 4 (i & 1) + q; level 2 takes kind k of all 16 blocks */
    const __m512i i1l = _mm512_set_epi32(29, 25, 21, 17, 13, 9, 5, 1, 28, 24, 20, 16, 12, 8, 4, 0);
    const __m512i i1h = _mm512_add_epi32(i1l, _mm512_set1_epi32(2));
    const __m512i i2e = _mm512_set_epi32(23, 22, 21, 20, 19, 18, 17, 16, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i i2o = _mm512_add_epi32(i2e, _mm512_set1_epi32(8));
    const __m512i l01 = _mm512_permutex2var_epi32(pk[0], i1l, pk[1]), h01 = _mm512_permutex2var_epi32(pk[0], i1h, pk[1]);
    const __m512i l23 = _mm512_permutex2var_epi32(pk[2], i1l, pk[3]), h23 = _mm512_permutex2var_epi32(pk[2], i1h, pk[3]);
    const __m512i he = _mm512_permutex2var_epi32(l01, i2e, l23), ho = _mm512_permutex2var_epi32(l01, i2o, l23);
    const __m512i le = _mm512_permutex2var_epi32(h01, i2e, h23), lo = _mm512_permutex2var_epi32(h01, i2o, h23);
    _mm512_store_si512(o->xh[0], he);
    _mm512_store_si512(o->xh[1], ho);
    _mm512_store_si512(o->xl[0], le);
    _mm512_store_si512(o->xl[1], lo);
    const __m512i z = _mm512_setzero_si512();
    const __m512i sh = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, offv, he), offv, ho);
    const __m512i sl = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, offv, le), offv, lo);
    _mm512_store_si512(o->ct, _mm512_sub_epi32(z, _mm512_add_epi32(_mm512_slli_epi32(sh, 8), sl)));
    /* block L = 4i + q sits at lane 4q + i of s */
    const __m512 sn = _mm512_permutexvar_ps(_mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0), s);
    _mm512_store_ps(o->xs, _mm512_scalef_ps(_mm512_set1_ps(1.0f / mult), _mm512_sub_ps(_mm512_setzero_ps(), sn)));
}

int pt_fp4_vnni_prep(pt_fp4_problem* p, int32_t format) {
    int mult, off;
    if (format == PT_FP4_E2M1) { mult = 2; off = 12; }
    else if (format == PT_FP4_E1M2) { mult = 4; off = 7; }
    else if (format == PT_FP4_E3M0) { mult = 4; off = 64; }
    else return 0;
    for (int c = 0; c < 16; c++) {
        const float v = p->lut[c] * (float)mult + (float)off;
        if (!(v >= 0.0f && v <= 255.0f && v == (float)(int)v)) return 0; /* not the levels this kernel assumes */
        p->lutv[c] = (uint8_t)v;
    }
    p->vnni_mult = mult;
    p->vnni_off = off;
    /* x * 0 is NaN exactly where x is a NaN or an infinity */
    const int64_t K = p->k;
    __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
        a = _mm512_fmadd_ps(_mm512_loadu_ps(p->x + k), _mm512_setzero_ps(), a);
        b = _mm512_fmadd_ps(_mm512_loadu_ps(p->x + k + 16), _mm512_setzero_ps(), b);
    }
    for (; k < K; k += 16) {
        const __mmask16 km = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(km, p->x + k), _mm512_setzero_ps(), a);
    }
    a = _mm512_add_ps(a, b);
    return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) ? 0 : 1;
}

void pt_fp4_vnni_quant(const pt_fp4_problem* p, void* buf) {
    const int64_t K = p->k, nch = (K + 127) >> 7;
    fp4_xv* xv = (fp4_xv*)buf;
    const __m512i offv = _mm512_set1_epi8((char)p->vnni_off);
    for (int64_t c = 0; c < nch; c++) vnni_prep_chunk(p->x + c * 128, K - c * 128, xv + c, offv, (float)p->vnni_mult);
}

/* vpermb (AVX512_VBMI; dst byte i = table byte idx[i] & 63) as inline assembly: this file is not
 * compiled for VBMI (Cascade Lake and Cooper Lake have VNNI without it), so the callers run it only
 * where p->vbmi says the CPU has it. */
static inline __attribute__((always_inline)) __m512i vpermb(__m512i idx, __m512i table) {
    __m512i r;
    __asm__("vpermb %2, %1, %0" : "=v"(r) : "v"(idx), "v"(table));
    return r;
}

/* One 128-chunk ch of R rows (tail: the last, partial chunk, read with masks). */
static inline __attribute__((always_inline)) void gvn_chunk(const pt_fp4_problem* p, const uint8_t* const* c, const char* const* srow,
                                                            __m512* acc, int64_t ch, const int R, const int sbf, const int gsel,
                                                            const int tail, const __mmask64 cm, const __mmask16 sm, const __m512i lut,
                                                            const __m512i sidx32, const __m512i sidx16, int64_t pfo, int64_t pfs,
                                                            const int vb, const int pairs, const int64_t ldo, const int64_t lso) {
    const int spc = gsel == 1 ? 4 : gsel == 2 ? 2 : 1;
    const int64_t es = sbf ? 2 : 4;
    const fp4_xv* xc = (const fp4_xv*)p->xv + ch;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i he = _mm512_loadu_si512(xc->xh[0]), ho = _mm512_loadu_si512(xc->xh[1]);
    const __m512i le = _mm512_loadu_si512(xc->xl[0]), lo = _mm512_loadu_si512(xc->xl[1]);
    const __m512i ctv = _mm512_loadu_si512(xc->ct), zero = _mm512_setzero_si512();
    const __m512 xs = _mm512_loadu_ps(xc->xs);
    for (int r = 0; r < R; r++) {
        /* pairs: c and srow hold the first row of each pair, the second is ldo / lso bytes further */
        const uint8_t* cr = pairs ? c[r >> 1] + ((r & 1) ? ldo : 0) : c[r];
        const char* sr = pairs ? srow[r >> 1] + ((r & 1) ? lso : 0) : srow[r];
        if (!tail) {
            _mm_prefetch((const char*)(cr + pfo + ch * 64), _MM_HINT_T0);
            if (gsel && (ch & 3) == 0) _mm_prefetch(sr + pfs + ch * spc * es, _MM_HINT_T0);
        }
        const __m512i v = tail ? _mm512_maskz_loadu_epi8(cm, (const void*)(cr + ch * 64)) : _mm512_loadu_si512((const void*)(cr + ch * 64));
        __m512i wl, wh;
        if (vb) { /* vpermb indexes with 6 bits: lut holds the 16 levels 4 times, so no mask is needed */
            wl = vpermb(v, lut);
            wh = vpermb(_mm512_srli_epi16(v, 4), lut);
        } else {
            wl = _mm512_shuffle_epi8(lut, _mm512_and_si512(v, m4));
            wh = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
        }
        __m512i h = _mm512_dpbusd_epi32(zero, wl, he); /* from a zeroing idiom: no register copy */
        h = _mm512_dpbusd_epi32(h, wh, ho);
        __m512i t = _mm512_add_epi32(_mm512_slli_epi32(h, 8), ctv);
        t = _mm512_dpbusd_epi32(t, wl, le);
        t = _mm512_dpbusd_epi32(t, wh, lo);
        const __m512 f = _mm512_cvtepi32_ps(t);
        if (gsel == 0) acc[r] = _mm512_fmadd_ps(f, xs, acc[r]);
        else acc[r] = _mm512_fmadd_ps(f, _mm512_mul_ps(chunk_scales(sr, ch, sbf, gsel, tail, sm, sidx32, sidx16), xs), acc[r]);
    }
}

#define GVR 8 /* the most rows per pass of the VNNI GEMV: two adjacent rows of each of GBR stretches */
/* gsel: 0 per channel, 1: G = 32, 2: G = 64, 3: G = 128 (as gemv_bf16_t). npass passes (R = 1: 1):
 * pass q reads rows[r] + 2 q (R = 8: two adjacent rows of each stretch per pass) or rows[r] + q
 * (R = 4), so that a pass's setup (row pointers, constants) is made once per call rather than once
 * per pass: at K = 768 a pass is only 48 chunk-rows. */
static inline __attribute__((always_inline)) void gemv_vnni_t(const pt_fp4_problem* p, const int64_t* rows, const int R, const int sbf,
                                                              const int gsel, int64_t pr, const int vb, const int64_t npass) {
    const int64_t K = p->k, nfull = K >> 7, tailb = (K & 127) >> 1;
    const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)p->lutv));
    const int spc = gsel == 1 ? 4 : gsel == 2 ? 2 : 1;
    const __m512i sidx32 = gsel == 1   ? _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0)
                           : gsel == 2 ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
                                       : _mm512_setzero_si512();
    const __m512i sidx16 = _mm512_slli_epi32(sidx32, 16);
    const uint8_t* c[GVR];
    const char* srow[GVR];
    __m512 acc[GVR];
    const int64_t es = sbf ? 2 : 4;
    /* R = 8: rows[2s + 1] == rows[2s] + 1 (gvn_stretches), so 4 pointers to the first row of each
     * pair and the row strides address all 8 rows: 16 row pointers would not fit in the general
     * registers (the compiler kept them in vector registers, a vpextrq per row and chunk) */
    const int pairs = R == 8;
    const int64_t pd = pairs ? rows[1] - rows[0] : 1; /* rows from the first row of a pair to the second */
    const int64_t adv = pairs ? 2 : 1;                /* rows from a pass's row to the next pass's */
    for (int r = 0; r < R; r++)
        if (!pairs || (r & 1) == 0) {
            c[pairs ? r >> 1 : r] = p->codes + rows[r] * p->ldw;
            srow[pairs ? r >> 1 : r] = (const char*)p->scales + rows[r] * p->lds * es;
        }
    /* pr: the rows (0 or gemv_pf_rows) from each row of this pass to the row of a later pass in its
     * stretch, whose codes and scales are prefetched at the offsets read now */
    const int64_t pfo = pr * p->ldw, pfs = pr * p->lds * es;
    for (int64_t q = 0; q < npass; q++) {
        for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
        for (int64_t ch = 0; ch < nfull; ch++) {
            int64_t ldo = pd * p->ldw, lso = pd * p->lds * es;
            if (pairs) __asm__ volatile("" : "+r"(ldo), "+r"(lso)); /* opaque per chunk: not hoisted into 4 more pointers */
            gvn_chunk(p, c, srow, acc, ch, R, sbf, gsel, 0, 0, 0, lut, sidx32, sidx16, pfo, pfs, vb, pairs, ldo, lso);
        }
        if (tailb) {
            const int nsc = (int)((2 * tailb + ((128 / spc) - 1)) / (128 / spc));
            gvn_chunk(p, c, srow, acc, nfull, R, sbf, gsel, 1, ((__mmask64)1 << tailb) - 1, (__mmask16)((1u << nsc) - 1), lut, sidx32, sidx16,
                      pfo, pfs, vb, pairs, pd * p->ldw, pd * p->lds * es);
        }
        float v[GVR];
        if (R == 4 || R == 8) { /* four row sums at once: halves added, then two hadd levels and the two 128-bit halves */
            for (int r0 = 0; r0 < R; r0 += 4) {
                __m256 h[4];
                for (int r = 0; r < 4; r++) h[r] = _mm256_add_ps(_mm512_castps512_ps256(acc[r0 + r]), _mm512_extractf32x8_ps(acc[r0 + r], 1));
                const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
                _mm_storeu_ps(v + r0, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
            }
        } else {
            for (int r = 0; r < R; r++) v[r] = _mm512_reduce_add_ps(acc[r]);
        }
        for (int r = 0; r < R; r++) {
            const int64_t n = rows[r] + adv * q;
            if (gsel == 0) v[r] *= pt_fp4_scale(p, n, 0);
            pt_fp4_store_y(p, 0, n, v[r] + (p->bias ? p->bias[n] : 0.0f));
        }
        for (int j = 0; j < (pairs ? R / 2 : R); j++) {
            c[j] += adv * p->ldw;
            srow[j] += adv * p->lds * es;
        }
    }
}

#define GVN_FN(R, SBF, GS, VB)                                                                          \
    static void gvn_##R##_##SBF##_##GS##_##VB(const pt_fp4_problem* p, const int64_t* rows, int64_t pr) { \
        gemv_vnni_t(p, rows, R, SBF, GS, pr, VB, 1);                                                   \
    }
/* noipa: the single 4-row passes (gvn_4_*, GVN4_FN) call the batched kernel with npass = 1 rather than
 * a second copy of it (52 KB of code); with noinline only, GCC still cloned it for npass = 1. The batched
 * kernels' object code is the same as without the attribute (objdump, GCC 12). */
#if defined(__clang__)
#  define GVN_NOIPA __attribute__((noinline))
#else
#  define GVN_NOIPA __attribute__((noipa))
#endif
#define GVNP_FN(R, SBF, GS, VB)                                                                                           \
    static GVN_NOIPA void gvnp_##R##_##SBF##_##GS##_##VB(const pt_fp4_problem* p, const int64_t* rows, int64_t pr, \
                                                                        int64_t npass) {                                  \
        gemv_vnni_t(p, rows, R, SBF, GS, pr, VB, npass);                                                                 \
    }
#define GVN4_FN(SBF, GS, VB) \
    static void gvn_4_##SBF##_##GS##_##VB(const pt_fp4_problem* p, const int64_t* rows, int64_t pr) { gvnp_4_##SBF##_##GS##_##VB(p, rows, pr, 1); }
#define GVN_ROW(SBF, VB) GVN_FN(1, SBF, 0, VB) GVN_FN(1, SBF, 1, VB) GVN_FN(1, SBF, 2, VB) GVN_FN(1, SBF, 3, VB) \
                         GVNP_FN(8, SBF, 0, VB) GVNP_FN(8, SBF, 1, VB) GVNP_FN(8, SBF, 2, VB) GVNP_FN(8, SBF, 3, VB) \
                         GVNP_FN(4, SBF, 0, VB) GVNP_FN(4, SBF, 1, VB) GVNP_FN(4, SBF, 2, VB) GVNP_FN(4, SBF, 3, VB) \
                         GVN4_FN(SBF, 0, VB) GVN4_FN(SBF, 1, VB) GVN4_FN(SBF, 2, VB) GVN4_FN(SBF, 3, VB)
GVN_ROW(0, 0)
GVN_ROW(1, 0)
GVN_ROW(0, 1)
GVN_ROW(1, 1)
static const gbf_fn GVN[2][2][4] = {
    {{gvn_1_0_0_0, gvn_1_0_1_0, gvn_1_0_2_0, gvn_1_0_3_0}, {gvn_4_0_0_0, gvn_4_0_1_0, gvn_4_0_2_0, gvn_4_0_3_0}},
    {{gvn_1_1_0_0, gvn_1_1_1_0, gvn_1_1_2_0, gvn_1_1_3_0}, {gvn_4_1_0_0, gvn_4_1_1_0, gvn_4_1_2_0, gvn_4_1_3_0}}};
static const gbf_fn GVNB[2][2][4] = {
    {{gvn_1_0_0_1, gvn_1_0_1_1, gvn_1_0_2_1, gvn_1_0_3_1}, {gvn_4_0_0_1, gvn_4_0_1_1, gvn_4_0_2_1, gvn_4_0_3_1}},
    {{gvn_1_1_0_1, gvn_1_1_1_1, gvn_1_1_2_1, gvn_1_1_3_1}, {gvn_4_1_0_1, gvn_4_1_1_1, gvn_4_1_2_1, gvn_4_1_3_1}}};
typedef void (*gvnp_fn)(const pt_fp4_problem*, const int64_t*, int64_t, int64_t); /* gbf_fn and the passes */
/* [vbmi][scale bf16][gsel]: 8 rows (two of each stretch) and 4 rows (one of each) per pass */
static const gvnp_fn GVN8[2][2][4] = {{{gvnp_8_0_0_0, gvnp_8_0_1_0, gvnp_8_0_2_0, gvnp_8_0_3_0}, {gvnp_8_1_0_0, gvnp_8_1_1_0, gvnp_8_1_2_0, gvnp_8_1_3_0}},
                                      {{gvnp_8_0_0_1, gvnp_8_0_1_1, gvnp_8_0_2_1, gvnp_8_0_3_1}, {gvnp_8_1_0_1, gvnp_8_1_1_1, gvnp_8_1_2_1, gvnp_8_1_3_1}}};
static const gvnp_fn GVN4[2][2][4] = {{{gvnp_4_0_0_0, gvnp_4_0_1_0, gvnp_4_0_2_0, gvnp_4_0_3_0}, {gvnp_4_1_0_0, gvnp_4_1_1_0, gvnp_4_1_2_0, gvnp_4_1_3_0}},
                                      {{gvnp_4_0_0_1, gvnp_4_0_1_1, gvnp_4_0_2_1, gvnp_4_0_3_1}, {gvnp_4_1_0_1, gvnp_4_1_1_1, gvnp_4_1_2_1, gvnp_4_1_3_1}}};

/* The rows ahead (a multiple of the step, the rows per stretch of a pass) that each stretch's pass
 * prefetches: p->pf_bytes of codes rounded up to whole passes, or one pass where pf_bytes is 0.
 * One pass was short on Zen 5 at K = 768 (a pass of 8 rows takes ~90 ns there, DRAM latency is
 * longer): the loads waited on DRAM instead of overlapping the decode. */
static int64_t gemv_pf_rows(const pt_fp4_problem* p, int64_t step) {
    const int64_t per = step * (p->k / 2);
    return p->pf_bytes ? step * ((p->pf_bytes + per - 1) / per) : step;
}

/* The rows per stretch of a GEMV pass: 2 (gvn_stretches), 1 (gemv_stretches), 0: not such a GEMV. */
static int gemv_step(const pt_fp4_problem* p) {
    if (p->k == 0 || p->m != 1) return 0;
    if (p->xv) return p->k <= 1024 ? 2 : 1;
    return p->xb ? 1 : 0;
}

/* The length of each of the GBR stretches that rows [n0, n1) are cut into (a multiple of the step;
 * the last stretch may be shorter). */
static int64_t stretch_len(int64_t n0, int64_t n1, int64_t step) {
    const int64_t L = (n1 - n0 + GBR - 1) / GBR;
    return (L + step - 1) / step * step;
}

/* The full passes of a stretch walk (nf passes, each advancing the R rows by step) to the batched
 * kernel f in two runs, so that it sets up once per run: the first prefetching d rows ahead (the
 * passes whose rows d ahead exist in every stretch), then the rest without. rows: the first pass's
 * rows (advanced to the second run's). */
static void full_passes(const pt_fp4_problem* p, gvnp_fn f, int64_t* rows, int R, int64_t step, int64_t nf, int64_t d) {
    const int64_t nd = nf > d / step ? nf - d / step : 0;
    if (nd) f(p, rows, d, nd);
    if (nf > nd) {
        for (int r = 0; r < R; r++) rows[r] += step * nd;
        f(p, rows, 0, nf - nd);
    }
}

void pt_fp4_gemv_prefetch(const pt_fp4_problem* p, int64_t n0, int64_t n1) {
    const int step = gemv_step(p);
    if (!step || !p->pf_bytes) return;
    const int64_t L = stretch_len(n0, n1, step), d = gemv_pf_rows(p, step);
    const int64_t es = p->scale_bf16 ? 2 : 4, sb = (p->group >= p->k ? 1 : p->k / p->group) * es;
    for (int64_t j = 0; j < d && j < L; j++)
        for (int s = 0; s < GBR && n0 + s * L + j < n1; s++) {
            const int64_t r = n0 + s * L + j;
            const char* c = (const char*)p->codes + r * p->ldw;
            const char* sc = (const char*)p->scales + r * p->lds * es;
            for (uintptr_t a = (uintptr_t)c & ~(uintptr_t)63; a < (uintptr_t)c + p->k / 2; a += 64) _mm_prefetch((const char*)a, _MM_HINT_T0);
            for (uintptr_t a = (uintptr_t)sc & ~(uintptr_t)63; a < (uintptr_t)sc + sb; a += 64) _mm_prefetch((const char*)a, _MM_HINT_T0);
        }
}

/* The rows [n0, n1) of the GEMV (bf16 or VNNI kernels) in GBR stretches read side by side: a
 * pass takes one row from each, so the codes are GBR streams (each prefetching gemv_pf_rows ahead)
 * rather than one run of adjacent short rows; a core keeps more lines in flight over several
 * streams (see the f32 GEMV in gemm_avx512.c). Rows past a stretch's end go one at a time. */
static void gemv_stretches(const pt_fp4_problem* p, int64_t n0, int64_t n1, const gbf_fn (*tab)[2][4], const gvnp_fn (*runs)[4]) {
    const int gsel = p->group >= p->k ? 0 : p->group == 32 ? 1 : p->group == 64 ? 2 : 3;
    const int sb = p->scale_bf16 ? 1 : 0;
    const int64_t L = stretch_len(n0, n1, 1);
    const int64_t d = gemv_pf_rows(p, 1);
    /* runs (the VNNI kernels): the passes while the last stretch, of l3 rows, has one left */
    const int64_t l3 = n1 - n0 - (GBR - 1) * L, nf = runs && l3 > 0 ? l3 : 0;
    int64_t rows[GBR];
    for (int s = 0; s < GBR; s++) rows[s] = n0 + s * L;
    if (nf) full_passes(p, runs[sb][gsel], rows, GBR, 1, nf, d);
    for (int64_t i = nf; i < L; i++) {
        int nr = 0;
        for (int s = 0; s < GBR; s++)
            if (n0 + s * L + i < n1) rows[nr++] = n0 + s * L + i;
        if (nr == GBR) tab[sb][1][gsel](p, rows, i + d < L && n0 + (GBR - 1) * L + i + d < n1 ? d : 0);
        else
            for (int r = 0; r < nr; r++) tab[sb][0][gsel](p, rows + r, 0);
    }
}

/* The VNNI GEMV's rows [n0, n1) for K <= 1024 in GBR stretches of L rows (L even), read side by
 * side: a pass takes two adjacent rows from each (GVR rows: the x vectors, the pass's setup and
 * the row sums serve twice the rows of a GBR pass), so the codes are still GBR sequential streams,
 * each prefetching the rows gemv_pf_rows ahead. Rows left over (stretch ends) go four or one
 * at a time. Short rows are where a pass's fixed cost counts: at K = 768 this is 7..16% faster
 * than gemv_stretches (1 thread, cold weights); at K >= 3072 it was 15..20% slower (two rows of
 * a stretch 1.5 KiB or more apart are two streams), so longer rows keep gemv_stretches. The full
 * passes go to the kernel in two runs (prefetching, then not), so that it sets up once per run:
 * 0.84x the time per call at 768x768 with the weights in L2 (Zen 5, 1 thread). */
static void gvn_stretches(const pt_fp4_problem* p, int64_t n0, int64_t n1) {
    const int gsel = p->group >= p->k ? 0 : p->group == 32 ? 1 : p->group == 64 ? 2 : 3;
    const int sb = p->scale_bf16 ? 1 : 0, vb = p->vbmi ? 1 : 0;
    const gbf_fn(*t4)[2][4] = vb ? GVNB : GVN;
    const gvnp_fn f8 = GVN8[vb][sb][gsel];
    const int64_t L = stretch_len(n0, n1, 2);
    const int64_t d = gemv_pf_rows(p, 2);
    /* passes of GVR rows while the last (shortest) stretch, of l3 rows, has two left */
    const int64_t l3 = n1 - n0 - (GBR - 1) * L, nf = l3 > 0 ? l3 / 2 : 0;
    int64_t rows[GVR];
    for (int s = 0; s < GBR; s++)
        for (int j = 0; j < 2; j++) rows[2 * s + j] = n0 + s * L + j;
    if (nf) full_passes(p, f8, rows, GVR, 2, nf, d);
    for (int64_t i = 2 * nf; i < L; i += 2) {
        int nr = 0;
        for (int s = 0; s < GBR; s++)
            for (int j = 0; j < 2; j++) {
                const int64_t r = n0 + s * L + i + j;
                if (r < n1) rows[nr++] = r;
            }
        int r = 0;
        for (; r + 4 <= nr; r += 4) t4[sb][1][gsel](p, rows + r, 0);
        for (; r < nr; r++) t4[sb][0][gsel](p, rows + r, 0);
    }
}

static void gemv_rows_f32s(const pt_fp4_problem* p, int64_t n0, int64_t n1) { gemv_rows_t(p, n0, n1, 0); }
static void gemv_rows_bf16s(const pt_fp4_problem* p, int64_t n0, int64_t n1) { gemv_rows_t(p, n0, n1, 1); }

void pt_fp4_rows_avx512(const pt_fp4_problem* p, int64_t n0, int64_t n1) {
    const int step = gemv_step(p);
    if (p->k == 0) pt_fp4_rows_generic(p, n0, n1); /* y = bias; the kernels below read a first scale */
    else if (step == 2) gvn_stretches(p, n0, n1);
    else if (step == 1) gemv_stretches(p, n0, n1, !p->xv ? GBF : p->vbmi ? GVNB : GVN, p->xv ? GVN4[p->vbmi ? 1 : 0] : NULL);
    else if (p->m == 1 && p->xd) (p->scale_bf16 ? gemv_rows_bf16s : gemv_rows_f32s)(p, n0, n1);
    else if (p->xd) gemm_regs(p, n0, n1);
    else fp4_gemm_avx512(p, n0, n1);
}
