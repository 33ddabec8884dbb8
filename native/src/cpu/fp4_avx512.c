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

static void gemv_rows_f32s(const pt_fp4_problem* p, int64_t n0, int64_t n1) { gemv_rows_t(p, n0, n1, 0); }
static void gemv_rows_bf16s(const pt_fp4_problem* p, int64_t n0, int64_t n1) { gemv_rows_t(p, n0, n1, 1); }

void pt_fp4_rows_avx512(const pt_fp4_problem* p, int64_t n0, int64_t n1) {
    if (p->k == 0) pt_fp4_rows_generic(p, n0, n1); /* y = bias; the kernels below read a first scale */
    else if (p->m == 1 && p->xd) (p->scale_bf16 ? gemv_rows_bf16s : gemv_rows_f32s)(p, n0, n1);
    else if (p->xd) gemm_regs(p, n0, n1);
    else fp4_gemm_avx512(p, n0, n1);
}
