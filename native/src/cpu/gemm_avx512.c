/* AVX-512 GEMM backends: an f32 FMA microkernel (12 x 32, 24 zmm accumulators) and a bf16
 * one on AVX512-BF16 (vdpbf16ps, K packed in pairs), with their packers (16x16 in-register
 * transposes) and the fused epilogue (alpha, bias, beta * prev, activation, f32/bf16 store).
 * Compiled with -mavx512f/bw/dq/vl/bf16; only called when ctx->caps has AVX512F (and
 * AVX512_BF16 for the bf16 kernel). */
#include "cpu/gemm.h"

#include "cpu/gemm_avx512_inl.h"

#define MR 12
#define NR 32
#ifndef PT_GEMM_PF
#  define PT_GEMM_PF 32
#endif
#ifndef PT_GEMM_PF2
#  define PT_GEMM_PF2 256
#endif

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

/* ================================================================ small M (GEMV-like)
 * For M <= 8 packing B buys no reuse: B is read once, in place. trans_b=0 ([K, N]): each
 * block of columns keeps M x NV zmm accumulators over all of K (B rows prefetched ahead);
 * trans_b=1 ([N, K]): dot products of A rows with JB rows of B at once, reduced into a
 * 64-column tile that then goes through the common epilogue. bf16 is widened on load. */

#define SM_MAX 8
#define SM_COLS 64
#define PF_ROWS 12

/* A rows as f32: in place for f32, converted into scratch slot 0 for bf16. */
static const float* small_a(const pt_gemm_problem* g, int64_t b, int64_t* lda) {
    const size_t ea = pt_dtype_size(g->a_dtype);
    const char* A = (const char*)g->a + (size_t)(b * g->batch_a) * ea;
    if (g->a_dtype == PT_F32) { *lda = g->lda; return (const float*)A; }
    int64_t ld = (g->k + 15) / 16 * 16;
    float* s = (float*)pt_scratch(0, (size_t)(g->m * ld) * 4 + 64);
    if (!s) return NULL;
    for (int64_t i = 0; i < g->m; i++) pt_load_row_f32(A + (size_t)(i * g->lda) * ea, g->a_dtype, g->k, s + i * ld);
    *lda = ld;
    return s;
}

static inline __attribute__((always_inline)) void nn_block(const int M, const int NV, const float* a, int64_t lda,
                                                           const void* B, int bbf, int64_t ldb, int64_t k, int64_t j0, int w,
                                                           const pt_gemm_tile_out* o) {
    __m512 acc[SM_MAX][8];
    __mmask16 mk[8];
    const size_t eb = bbf ? 2 : 4;
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) mk[v] = w > 16 * v ? mask_lo(w - 16 * v) : 0;
#pragma GCC unroll 8
    for (int i = 0; i < M; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
    for (int64_t p = 0; p < k; p++) {
        __m512 bv[8];
        if (p + PF_ROWS < k) {
            const char* pf = (const char*)B + (size_t)((p + PF_ROWS) * ldb + j0) * eb;
#pragma GCC unroll 8
            for (int v = 0; v < NV; v += (bbf ? 2 : 1)) _mm_prefetch(pf + (size_t)v * 64, _MM_HINT_T0);
        }
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) bv[v] = load16(B, bbf, p * ldb + j0 + 16 * v, mk[v]);
#pragma GCC unroll 8
        for (int i = 0; i < M; i++) {
            __m512 av = _mm512_set1_ps(a[i * lda + p]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            if (mk[v]) finish16(acc[i][v], o, i, 16 * v, mk[v]);
}

/* JB rows of B [N, K] at once, dotted with the M rows of A. The rows come from up to JB
 * different places (row[jj]): at M = 1 and 2 they are taken from SEG segments of the thread's
 * columns, SEG * 4 KiB and more apart, so the core runs JB independent read streams rather than
 * one; the hardware prefetchers then keep more lines in flight (a short, adjacent-row block is
 * one stream to them). Each stream prefetches pf_ahead elements on: its next row, or with
 * segments at most 2 KiB on (a segment's rows are contiguous; at K = 3072 a whole row ahead
 * put 8 x 12 KiB of prefetched lines in flight, more than L1 holds: 1.06x at N = 768,
 * K = 3072 in a paused-machine A/B, medians of 5 x 15 calls; the same at K = 768).
 * Sums go to tmp[i * ldt + pos[jj]] for jj < jn. */
static inline __attribute__((always_inline)) void nt_block(const int M, const int JB, const float* a, int64_t lda,
                                                           const void* B, int bbf, int64_t k, const int64_t* row,
                                                           int64_t pf_ahead, const int* pos, int jn, float* tmp, int ldt) {
    __m512 acc[SM_MAX][8];
#pragma GCC unroll 8
    for (int i = 0; i < M; i++)
#pragma GCC unroll 8
        for (int jj = 0; jj < JB; jj++) acc[i][jj] = _mm512_setzero_ps();
    for (int64_t p0 = 0; p0 < k; p0 += 16) {
        __mmask16 m = k - p0 >= 16 ? (__mmask16)0xffff : mask_lo((int)(k - p0));
        __m512 bv[8];
        /* the same position of each stream's next row (a row is K elements; the rows of a
         * Linear weight [N, K] are contiguous, so this is where the stream goes next) */
#pragma GCC unroll 8
        for (int jj = 0; jj < JB; jj++) _mm_prefetch((const char*)B + (size_t)(row[jj] + pf_ahead + p0) * (bbf ? 2 : 4), _MM_HINT_T0);
#pragma GCC unroll 8
        for (int jj = 0; jj < JB; jj++) bv[jj] = load16(B, bbf, row[jj] + p0, m);
#pragma GCC unroll 8
        for (int i = 0; i < M; i++) {
            __m512 av = _mm512_maskz_loadu_ps(m, a + i * lda + p0);
#pragma GCC unroll 8
            for (int jj = 0; jj < JB; jj++) acc[i][jj] = _mm512_fmadd_ps(av, bv[jj], acc[i][jj]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; i++)
#pragma GCC unroll 8
        for (int jj = 0; jj < JB; jj++)
            if (jj < jn) tmp[i * ldt + pos[jj]] = _mm512_reduce_add_ps(acc[i][jj]);
}

int pt_gemm_small_avx512(const pt_gemm_problem* g, int64_t b, int64_t n0, int64_t n1) {
    int64_t lda;
    const float* a = small_a(g, b, &lda);
    if (!a) return -1;
    const int bbf = g->a_dtype == PT_BF16;
    const size_t eb = bbf ? 2 : 4, ec = pt_dtype_size(g->c_dtype);
    const void* B = (const char*)g->b + (size_t)(b * g->batch_b) * eb;
    char* C = (char*)g->c + (size_t)(b * g->batch_c) * ec;
    const int64_t k = g->k, ldb = g->ldb;
    const int M = (int)g->m;
    pt_gemm_tile_out o;
    o.alpha = g->alpha; o.beta = g->beta; o.act = g->activation;
    o.ldp = o.ldo = g->ldc;
    o.prev_bf16 = o.out_bf16 = g->c_dtype == PT_BF16;
    if (!g->trans_b) {
        const int nv = M <= 2 ? 8 : M <= 4 ? 4 : 2;
        for (int64_t j0 = n0; j0 < n1; j0 += 16 * nv) {
            int w = n1 - j0 < 16 * nv ? (int)(n1 - j0) : 16 * nv;
            o.bias = g->bias ? g->bias + j0 : NULL;
            o.prev = o.out = C + (size_t)j0 * ec;
            switch (M) {
            case 1: nn_block(1, 8, a, lda, B, bbf, ldb, k, j0, w, &o); break;
            case 2: nn_block(2, 8, a, lda, B, bbf, ldb, k, j0, w, &o); break;
            case 3: nn_block(3, 4, a, lda, B, bbf, ldb, k, j0, w, &o); break;
            case 4: nn_block(4, 4, a, lda, B, bbf, ldb, k, j0, w, &o); break;
            case 5: nn_block(5, 2, a, lda, B, bbf, ldb, k, j0, w, &o); break;
            case 6: nn_block(6, 2, a, lda, B, bbf, ldb, k, j0, w, &o); break;
            case 7: nn_block(7, 2, a, lda, B, bbf, ldb, k, j0, w, &o); break;
            default: nn_block(8, 2, a, lda, B, bbf, ldb, k, j0, w, &o); break;
            }
        }
    } else {
        /* SEG segments of [n0, n1), each walked in 64-column tiles in lockstep; a step takes
         * JB / SEG rows from each (SEG = 1 above M = 2, where the A rows give enough work per
         * B load and the tile is narrow) */
        const int jb = M <= 2 ? 8 : M <= 4 ? 4 : 2;
        const int seg = M <= 2 ? 8 : 1, per = jb / seg;
        float tmp[8 * SM_MAX * SM_COLS] __attribute__((aligned(64)));
        const int ldt = seg * SM_COLS;
        const int64_t slen = ((n1 - n0 + seg - 1) / seg + SM_COLS - 1) / SM_COLS * SM_COLS;
        const int64_t pfa = seg > 1 && per * ldb > 2048 / (int64_t)eb ? 2048 / (int64_t)eb : per * ldb;
        for (int64_t t0 = 0; t0 < slen; t0 += SM_COLS) {
            int w[8];
            int wmax = 0;
            for (int s = 0; s < seg; s++) {
                int64_t left = n1 - (n0 + s * slen + t0);
                w[s] = left <= 0 ? 0 : left < SM_COLS ? (int)left : SM_COLS;
                if (w[s] > wmax) wmax = w[s];
            }
            for (int jt = 0; jt < wmax; jt += per) {
                int64_t row[8];
                int pos[8], jn = 0;
                for (int s = 0; s < seg; s++)
                    for (int r = 0; r < per; r++)
                        if (jt + r < w[s]) { row[jn] = (n0 + s * slen + t0 + jt + r) * ldb; pos[jn] = s * SM_COLS + jt + r; jn++; }
                for (int jj = jn; jj < jb; jj++) row[jj] = row[jn - 1]; /* padding rows: read again, never stored */
                switch (M) {
                case 1: nt_block(1, 8, a, lda, B, bbf, k, row, pfa, pos, jn, tmp, ldt); break;
                case 2: nt_block(2, 8, a, lda, B, bbf, k, row, pfa, pos, jn, tmp, ldt); break;
                case 3: nt_block(3, 4, a, lda, B, bbf, k, row, pfa, pos, jn, tmp, ldt); break;
                case 4: nt_block(4, 4, a, lda, B, bbf, k, row, pfa, pos, jn, tmp, ldt); break;
                case 5: nt_block(5, 2, a, lda, B, bbf, k, row, pfa, pos, jn, tmp, ldt); break;
                case 6: nt_block(6, 2, a, lda, B, bbf, k, row, pfa, pos, jn, tmp, ldt); break;
                case 7: nt_block(7, 2, a, lda, B, bbf, k, row, pfa, pos, jn, tmp, ldt); break;
                default: nt_block(8, 2, a, lda, B, bbf, k, row, pfa, pos, jn, tmp, ldt); break;
                }
            }
            for (int s = 0; s < seg; s++) {
                if (w[s] <= 0) continue;
                const int64_t j0 = n0 + s * slen + t0;
                o.bias = g->bias ? g->bias + j0 : NULL;
                o.prev = o.out = C + (size_t)j0 * ec;
                pt_gemm_store_tile_avx512(tmp + s * SM_COLS, ldt, M, w[s], &o);
            }
        }
    }
    return 0;
}

/* ================================================================ f32 kernel */

/* R of the MR rows of a packed A panel (R >= mr): a tail tile of 4 or 8 rows (M = 16 is
 * 12 + 4) does not pay for the 12-row tile's padding. */
static inline __attribute__((always_inline)) void micro_f32_rows(const int R, int64_t kc, const float* pa, const float* pb, int mr,
                                                                 int nr, const pt_gemm_tile_out* o) {
    __m512 c[MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(pb), b1 = _mm512_load_ps(pb + 16);
#if PT_GEMM_PF
        _mm_prefetch((const char*)(pb + PT_GEMM_PF * NR), _MM_HINT_T0);
        _mm_prefetch((const char*)(pb + PT_GEMM_PF * NR + 16), _MM_HINT_T0);
#endif
#pragma GCC unroll 12
        for (int r = 0; r < R; r++) {
            __m512 a = _mm512_set1_ps(pa[r]);
            c[r][0] = _mm512_fmadd_ps(a, b0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(a, b1, c[r][1]);
        }
        pa += MR;
        pb += NR;
    }
    STORE_TILE(c, mr, nr, o);
}

static void micro_f32(int64_t kc, const void* pa, const void* pb, int mr, int nr, const pt_gemm_tile_out* o) {
    if (mr > 8) micro_f32_rows(MR, kc, (const float*)pa, (const float*)pb, mr, nr, o);
    else if (mr > 4) micro_f32_rows(8, kc, (const float*)pa, (const float*)pb, mr, nr, o);
    else micro_f32_rows(4, kc, (const float*)pa, (const float*)pb, mr, nr, o);
}

/* f32 packers; bf16 sources (a bf16 GEMM where vdpbf16ps is slow or absent) are widened to
 * f32 on the way. */
static void pack_a_f32(const void* src_, int32_t dt, int64_t lda, int64_t mc, int64_t kc, void* dst_) {
    const int bf = dt == PT_BF16;
    const float* src = (const float*)src_;
    const uint16_t* srch = (const uint16_t*)src_;
    float* dst = (float*)dst_;
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {
        int rows = mc - i0 < MR ? (int)(mc - i0) : MR;
        for (int64_t p0 = 0; p0 < kc; p0 += 16) {
            int w = kc - p0 < 16 ? (int)(kc - p0) : 16;
            __m512 r[16];
            if (bf) load_tr32_bf16(srch + i0 * lda + p0, lda, rows, mask_lo(w), r);
            else load_tr32(src + i0 * lda + p0, lda, rows, mask_lo(w), r);
            for (int c = 0; c < w; c++) _mm512_mask_storeu_ps(dst + (p0 + c) * MR, (__mmask16)((1u << MR) - 1u), r[c]);
        }
    }
}

static void pack_b_f32(const void* src_, int32_t dt, int64_t ldb, int tb, int64_t kc, int64_t nc, void* dst_) {
    const int bf = dt == PT_BF16;
    const float* src = (const float*)src_;
    const uint16_t* srch = (const uint16_t*)src_;
    float* dst = (float*)dst_;
    for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kc) {
        int w = nc - j0 < NR ? (int)(nc - j0) : NR;
        if (!tb) {
            __mmask16 m0 = mask_lo(w), m1 = mask_hi(w);
            for (int64_t p = 0; p < kc; p++) {
                _mm512_store_ps(dst + p * NR, load16(src_, bf, p * ldb + j0, m0));
                _mm512_store_ps(dst + p * NR + 16, load16(src_, bf, p * ldb + j0 + 16, m1));
            }
        } else {
            int w0 = w < 16 ? w : 16, w1 = w - w0;
            for (int64_t p0 = 0; p0 < kc; p0 += 16) {
                int h = kc - p0 < 16 ? (int)(kc - p0) : 16;
                __m512 r0[16], r1[16];
                if (bf) {
                    load_tr32_bf16(srch + j0 * ldb + p0, ldb, w0, mask_lo(h), r0);
                    load_tr32_bf16(srch + (j0 + 16) * ldb + p0, ldb, w1, mask_lo(h), r1);
                } else {
                    load_tr32(src + j0 * ldb + p0, ldb, w0, mask_lo(h), r0);
                    load_tr32(src + (j0 + 16) * ldb + p0, ldb, w1, mask_lo(h), r1);
                }
                for (int c = 0; c < h; c++) {
                    _mm512_store_ps(dst + (p0 + c) * NR, r0[c]);
                    _mm512_store_ps(dst + (p0 + c) * NR + 16, r1[c]);
                }
            }
        }
    }
}

static const pt_gemm_kernel k_f32 = {
    "avx512-f32", MR, NR, 1, 4, 480, 512, 1024, pack_a_f32, pack_b_f32, micro_f32, NULL, NULL, SM_MAX, pt_gemm_small_avx512};

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

/* bf16 rows; f32 rows (an f32 activation against a bf16-packed weight) are rounded to bf16
 * (nearest even) through a 16 x 32 staging block first. */
static void pack_a_bf16(const void* src_, int32_t dt, int64_t lda, int64_t mc, int64_t kc, void* dst_) {
    const uint16_t* src = (const uint16_t*)src_;
    const float* srcf = (const float*)src_;
    int32_t* dst = (int32_t*)dst_;
    const int64_t kq = (kc + 1) / 2;
    uint16_t stage[16 * 32] __attribute__((aligned(64)));
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kq) {
        int rows = mc - i0 < MR ? (int)(mc - i0) : MR;
        for (int64_t p0 = 0; p0 < kc; p0 += 32) {
            int64_t w = kc - p0 < 32 ? kc - p0 : 32;
            int wq = (int)((w + 1) / 2);
            __m512 r[16];
            if (dt == PT_F32) {
                __mmask16 m0 = mask_lo((int)(w < 16 ? w : 16)), m1 = w > 16 ? mask_lo((int)(w - 16)) : 0;
                for (int i = 0; i < rows; i++) {
                    const float* s = srcf + (i0 + i) * lda + p0;
                    __m512 lo = _mm512_maskz_loadu_ps(m0, s), hi = _mm512_maskz_loadu_ps(m1, s + 16);
                    _mm512_store_si512(stage + i * 32, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
                }
                load_tr16x2(stage, 32, rows, mask32(w), r);
            } else {
                load_tr16x2(src + i0 * lda + p0, lda, rows, mask32(w), r);
            }
            for (int c = 0; c < wq; c++)
                _mm512_mask_storeu_epi32(dst + (p0 / 2 + c) * MR, (__mmask16)((1u << MR) - 1u), _mm512_castps_si512(r[c]));
        }
    }
}

static void pack_b_bf16(const void* src, int32_t dt, int64_t ldb, int tb, int64_t kc, int64_t nc, void* dst) {
    pt_pack_b_bf16_pairs((const uint16_t*)src, ldb, tb, kc, nc, (int32_t*)dst, (kc + 1) / 2);
}

static const pt_gemm_kernel k_bf16 = {
    "avx512bf16", MR, NR, 2, 2, 480, 512, 1024, pack_a_bf16, pack_b_bf16, micro_bf16, NULL, NULL, SM_MAX, pt_gemm_small_avx512};

const pt_gemm_kernel* pt_gemm_kernel_avx512_bf16(void) { return &k_bf16; }
