/* AVX512-VNNI micro kernel of the int8 GEMM (see int8_gemm.h): 6 rows x 64 columns (two 32-channel halves) of s32
 * accumulators (24 zmm), one vpdpbusd per (row, 16 columns, 4 K). */
#include "cpu/int8_gemm.h"
#include <immintrin.h>

/* y = (c - 128 colsum) * (s * wsc) + bias for 16 columns: the epilogue's dequantization (pt_i8_epilogue_avx512 and
 * the VNNI kernel's own epilogue, pt_i8_micro_vnni_epi) */
static inline __attribute__((always_inline)) __m512 dequant16(__m512i c, const int32_t* colsum, __m512 s, const float* wsc, const float* bias) {
    const __m512i cs = _mm512_slli_epi32(_mm512_loadu_si512((const void*)colsum), 7);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c, cs)), _mm512_mul_ps(s, _mm512_loadu_ps(wsc)), _mm512_loadu_ps(bias));
}

/* The accumulators are 24 named variables, not an array: GCC 12 kept a __m512i c[6][4] array in
 * memory, storing and copying every accumulator on each K step (3x slower than oneDNN's VNNI
 * brgemm at M >= 128 on Zen 5, see the int8 notes of session 9). */
#define I8_ROW_DECL(r) __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = c##r##0, c##r##2 = c##r##0, c##r##3 = c##r##0;
#define I8_ROW_STEP(r)                                                      \
    if (mr > r) {                                                           \
        int32_t q;                                                          \
        memcpy(&q, a + r * lda + p, 4);                                     \
        const __m512i x = _mm512_set1_epi32(q);                             \
        c##r##0 = _mm512_dpbusd_epi32(c##r##0, x, b0);                      \
        c##r##1 = _mm512_dpbusd_epi32(c##r##1, x, b1);                      \
        c##r##2 = _mm512_dpbusd_epi32(c##r##2, x, b2);                      \
        c##r##3 = _mm512_dpbusd_epi32(c##r##3, x, b3);                      \
    }
#define I8_ROW_STORE(r)                                                     \
    if (mr > r) {                                                           \
        _mm512_storeu_si512((void*)(acc + r * PT_I8_NB + 0), c##r##0);      \
        _mm512_storeu_si512((void*)(acc + r * PT_I8_NB + 16), c##r##1);     \
        _mm512_storeu_si512((void*)(acc + r * PT_I8_NB + 32), c##r##2);     \
        _mm512_storeu_si512((void*)(acc + r * PT_I8_NB + 48), c##r##3);     \
    }

/* The epilogue in registers (e != NULL): the 24 sums dequantized in place, then the outlier product
 * one outlier at a time over the whole tile (4 loads of wop and 6 broadcasts per 24 FMAs; the
 * epilogue's order per value, so the same bits), then the masked stores. */
#define I8_ROW_DQ(r)                                                                                   \
    __m512 y##r##0 = _mm512_setzero_ps(), y##r##1 = y##r##0, y##r##2 = y##r##0, y##r##3 = y##r##0;    \
    if (mr > r) {                                                                                      \
        const __m512 s = _mm512_set1_ps(e->sx[r]);                                                     \
        y##r##0 = dequant16(c##r##0, e->colsum + 0, s, e->wsc + 0, e->bias + 0);                       \
        y##r##1 = dequant16(c##r##1, e->colsum + 16, s, e->wsc + 16, e->bias + 16);                    \
        y##r##2 = dequant16(c##r##2, e->colsum + 32, s, e->wsc + 32, e->bias + 32);                    \
        y##r##3 = dequant16(c##r##3, e->colsum + 48, s, e->wsc + 48, e->bias + 48);                    \
    }
#define I8_ROW_OUT(r)                                                                                  \
    if (mr > r) {                                                                                      \
        const __m512 xv = _mm512_set1_ps(e->xo[r * e->no + q]);                                       \
        y##r##0 = _mm512_fmadd_ps(xv, w0, y##r##0);                                                    \
        y##r##1 = _mm512_fmadd_ps(xv, w1, y##r##1);                                                    \
        y##r##2 = _mm512_fmadd_ps(xv, w2, y##r##2);                                                    \
        y##r##3 = _mm512_fmadd_ps(xv, w3, y##r##3);                                                    \
    }
#define I8_ROW_YSTORE(r)                                                                               \
    if (mr > r) {                                                                                      \
        float* o = e->out + r * e->ldo;                                                                \
        _mm512_mask_storeu_ps(o + 0, mk0, y##r##0);                                                    \
        _mm512_mask_storeu_ps(o + 16, mk1, y##r##1);                                                   \
        _mm512_mask_storeu_ps(o + 32, mk2, y##r##2);                                                   \
        _mm512_mask_storeu_ps(o + 48, mk3, y##r##3);                                                   \
    }

static inline __mmask16 cols_mask(int left) { return left >= 16 ? (__mmask16)0xffff : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1); }

static inline __attribute__((always_inline)) void micro_n(int64_t k4, const uint8_t* a, int64_t lda, const int8_t* b,
                                                          int32_t* acc, const pt_i8_epi* e, const int mr) {
    I8_ROW_DECL(0) I8_ROW_DECL(1) I8_ROW_DECL(2) I8_ROW_DECL(3) I8_ROW_DECL(4) I8_ROW_DECL(5)
    const int8_t* b1h = b + ((k4 + 63) & ~(int64_t)63) * PT_I8_NH; /* the second 32-channel half */
    for (int64_t p = 0; p < k4; p += 4, b += 4 * PT_I8_NH, b1h += 4 * PT_I8_NH) {
        const __m512i b0 = _mm512_loadu_si512((const void*)(b + 0));
        const __m512i b1 = _mm512_loadu_si512((const void*)(b + 64));
        const __m512i b2 = _mm512_loadu_si512((const void*)(b1h + 0));
        const __m512i b3 = _mm512_loadu_si512((const void*)(b1h + 64));
        I8_ROW_STEP(0) I8_ROW_STEP(1) I8_ROW_STEP(2) I8_ROW_STEP(3) I8_ROW_STEP(4) I8_ROW_STEP(5)
    }
    if (!e) {
        I8_ROW_STORE(0) I8_ROW_STORE(1) I8_ROW_STORE(2) I8_ROW_STORE(3) I8_ROW_STORE(4) I8_ROW_STORE(5)
        return;
    }
    I8_ROW_DQ(0) I8_ROW_DQ(1) I8_ROW_DQ(2) I8_ROW_DQ(3) I8_ROW_DQ(4) I8_ROW_DQ(5)
    for (int64_t q = 0; q < e->no; q++) {
        const float* w = e->wop + q * PT_I8_NB;
        const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16), w2 = _mm512_loadu_ps(w + 32), w3 = _mm512_loadu_ps(w + 48);
        I8_ROW_OUT(0) I8_ROW_OUT(1) I8_ROW_OUT(2) I8_ROW_OUT(3) I8_ROW_OUT(4) I8_ROW_OUT(5)
    }
    const __mmask16 mk0 = cols_mask(e->nb), mk1 = cols_mask(e->nb - 16), mk2 = cols_mask(e->nb - 32), mk3 = cols_mask(e->nb - 48);
    I8_ROW_YSTORE(0) I8_ROW_YSTORE(1) I8_ROW_YSTORE(2) I8_ROW_YSTORE(3) I8_ROW_YSTORE(4) I8_ROW_YSTORE(5)
}

static inline __attribute__((always_inline)) void micro_mr(int64_t k4, const uint8_t* a, int64_t lda, int mr, const int8_t* b, int32_t* acc,
                                                           const pt_i8_epi* e) {
    switch (mr) {
    case 6: micro_n(k4, a, lda, b, acc, e, 6); break;
    case 5: micro_n(k4, a, lda, b, acc, e, 5); break;
    case 4: micro_n(k4, a, lda, b, acc, e, 4); break;
    case 3: micro_n(k4, a, lda, b, acc, e, 3); break;
    case 2: micro_n(k4, a, lda, b, acc, e, 2); break;
    default: micro_n(k4, a, lda, b, acc, e, 1); break;
    }
}

void pt_i8_micro_vnni(int64_t k4, const uint8_t* a, int64_t lda, int mr, const int8_t* b, int32_t* acc) { micro_mr(k4, a, lda, mr, b, acc, NULL); }

void pt_i8_micro_vnni_epi(int64_t k4, const uint8_t* a, int64_t lda, int mr, const int8_t* b, const pt_i8_epi* e) {
    micro_mr(k4, a, lda, mr, b, NULL, e);
}

/* One activation row: absmax over the kept columns, non-finite detection, then
 * q = rne(x * inv) clamped to [-127, 127], stored as u8 q + 128 (128 in dropped columns), or
 * with s8 != 0 as s8 q (0 in dropped columns). */
void pt_i8_quant_row_avx512(const float* x, const uint8_t* keep, int64_t k, uint8_t* q, float* amax_out, int* nonfinite,
                            int s8) {
    __m512 amax = _mm512_setzero_ps();
    __mmask16 bad = 0;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t j = 0; j < k; j += 16) {
        __mmask16 t = k - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - j)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(t, x + j);
        __mmask16 km = _mm_mask_cmpneq_epi8_mask(t, _mm_maskz_loadu_epi8(t, keep + j), _mm_setzero_si128());
        bad |= _mm512_mask_fpclass_ps_mask(t, v, 0x01 | 0x08 | 0x10 | 0x80);
        amax = _mm512_mask_max_ps(amax, km, amax, _mm512_and_ps(v, absmask));
    }
    float am = _mm512_reduce_max_ps(amax);
    *amax_out = am;
    *nonfinite = bad != 0;
    pt_i8_quantize_row_avx512(x, keep, k, q, am, bad != 0, s8);
}

/* out[r * ldo + j] = (acc[r * ldacc + j] - 128 colsum[j]) * (sx[r] * wsc[j]) + bias[j] + sum_o xo[r][o] wop[o][j]
 * for j < nb (columns past nb are not written). */
void pt_i8_epilogue_avx512(const int32_t* acc, int64_t ldacc, int mr, const int32_t* colsum, const float* sx, const float* wsc, const float* bias,
                           const float* xo, int64_t no, const float* wop, float* out, int64_t ldo, int nb) {
    __mmask16 mk[4];
    for (int v = 0; v < 4; v++) mk[v] = cols_mask(nb - 16 * v);
    for (int r = 0; r < mr; r++) {
        const __m512 s = _mm512_set1_ps(sx[r]);
        float* o = out + r * ldo;
        for (int v = 0; v < 4; v++) {
            __m512 y = dequant16(_mm512_loadu_si512((const void*)(acc + r * ldacc + 16 * v)), colsum + 16 * v, s, wsc + 16 * v, bias + 16 * v);
            for (int64_t q = 0; q < no; q++)
                y = _mm512_fmadd_ps(_mm512_set1_ps(xo[r * no + q]), _mm512_loadu_ps(wop + q * 64 + 16 * v), y);
            _mm512_mask_storeu_ps(o + 16 * v, mk[v], y);
        }
    }
}

/* y[r * ldy + j] += sum_o xo[r * no + o] * wo[o * ldw + j] for r < m, j < n: LLM.int8's f32
 * outlier product added onto oneDNN's s8 matmul result. Four rows at a time share each load of
 * wo (kept in L2: no * n floats). */
/* no <= 4 (0.5% of K = 768 is 4): the 4 x no broadcast x values held in registers across the
 * row (the general loop reloads them for every 16 columns: y may alias xo as far as the compiler
 * knows, and those loads were most of the pass's load-port work) */
static inline __attribute__((always_inline)) void outlier4(const float* xo, const int NO, const float* wo, int64_t ldw, int64_t n, float* y,
                                                         int64_t ldy, const int SET) {
    __m512 xb[4][4];
    for (int q = 0; q < 4; q++)
        for (int o = 0; o < NO; o++) xb[q][o] = _mm512_set1_ps(xo[q * NO + o]);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 t = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
        float* yr = y + j;
        __m512 a[4];
        for (int q = 0; q < 4; q++) a[q] = SET ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(t, yr + q * ldy);
        for (int o = 0; o < NO; o++) {
            const __m512 w = _mm512_maskz_loadu_ps(t, wo + o * ldw + j);
            for (int q = 0; q < 4; q++) a[q] = _mm512_fmadd_ps(xb[q][o], w, a[q]);
        }
        for (int q = 0; q < 4; q++) _mm512_mask_storeu_ps(yr + q * ldy, t, a[q]);
    }
}

static inline __attribute__((always_inline)) void outlier_rows(const float* xo, int64_t no, int64_t m, const float* wo, int64_t ldw, int64_t n, float* y,
                                                             int64_t ldy, const int SET) {
    int64_t r = 0;
    if (no >= 1 && no <= 4) {
        for (; r + 4 <= m; r += 4) {
            const float* x0 = xo + r * no;
            float* yr = y + r * ldy;
            switch (no) {
            case 1: outlier4(x0, 1, wo, ldw, n, yr, ldy, SET); break;
            case 2: outlier4(x0, 2, wo, ldw, n, yr, ldy, SET); break;
            case 3: outlier4(x0, 3, wo, ldw, n, yr, ldy, SET); break;
            default: outlier4(x0, 4, wo, ldw, n, yr, ldy, SET); break;
            }
        }
    }
    for (; r + 4 <= m; r += 4) {
        const float* x0 = xo + r * no;
        for (int64_t j = 0; j < n; j += 16) {
            const __mmask16 t = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
            float* yr = y + r * ldy + j;
            const __m512 z = _mm512_setzero_ps();
            __m512 a0 = SET ? z : _mm512_maskz_loadu_ps(t, yr), a1 = SET ? z : _mm512_maskz_loadu_ps(t, yr + ldy);
            __m512 a2 = SET ? z : _mm512_maskz_loadu_ps(t, yr + 2 * ldy), a3 = SET ? z : _mm512_maskz_loadu_ps(t, yr + 3 * ldy);
            for (int64_t o = 0; o < no; o++) {
                const __m512 w = _mm512_maskz_loadu_ps(t, wo + o * ldw + j);
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(x0[o]), w, a0);
                a1 = _mm512_fmadd_ps(_mm512_set1_ps(x0[no + o]), w, a1);
                a2 = _mm512_fmadd_ps(_mm512_set1_ps(x0[2 * no + o]), w, a2);
                a3 = _mm512_fmadd_ps(_mm512_set1_ps(x0[3 * no + o]), w, a3);
            }
            _mm512_mask_storeu_ps(yr, t, a0);
            _mm512_mask_storeu_ps(yr + ldy, t, a1);
            _mm512_mask_storeu_ps(yr + 2 * ldy, t, a2);
            _mm512_mask_storeu_ps(yr + 3 * ldy, t, a3);
        }
    }
    for (; r < m; r++) {
        const float* x0 = xo + r * no;
        for (int64_t j = 0; j < n; j += 16) {
            const __mmask16 t = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
            __m512 a0 = SET ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(t, y + r * ldy + j);
            for (int64_t o = 0; o < no; o++) a0 = _mm512_fmadd_ps(_mm512_set1_ps(x0[o]), _mm512_maskz_loadu_ps(t, wo + o * ldw + j), a0);
            _mm512_mask_storeu_ps(y + r * ldy + j, t, a0);
        }
    }
}

void pt_i8_outlier_rows_avx512(const float* xo, int64_t no, int64_t m, const float* wo, int64_t ldw, int64_t n, float* y, int64_t ldy) {
    outlier_rows(xo, no, m, wo, ldw, n, y, ldy, 0);
}

/* The same product stored instead of added: y[r * ldy + j] = sum_o xo[r * no + o] * wo[o * ldw + j]
 * (the tensor oneDNN's binary post-op adds; no >= 1). */
void pt_i8_outlier_set_avx512(const float* xo, int64_t no, int64_t m, const float* wo, int64_t ldw, int64_t n, float* y, int64_t ldy) {
    outlier_rows(xo, no, m, wo, ldw, n, y, ldy, 1);
}

/* One pass over an activation row for LLM.int8 (the row quantization then needs no scan of its
 * own): cm[j] = max(cm[j], |x[j]|) for j < k (this worker's column maxima; cm NULL: none); returns in *rmax the
 * largest |x[j]| below thr over ALL columns (entries >= thr lie in outlier columns, which
 * the caller cannot know yet; it corrects rows where an outlier column holds the maximum) and
 * in *nonfinite whether the row has an Inf or NaN. */
void pt_i8_scan_row_avx512(const float* x, int64_t k, float thr, float* cm, float* rmax, int* nonfinite) {
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff)), vthr = _mm512_set1_ps(thr);
    /* four independent maxima: one chain of masked vmaxps (4 cycles each) per 16 values was the
     * bound of this loop (~3 values per cycle); maxps returns its second operand when either is
     * NaN: a NaN is skipped, like the portable column loop (its row becomes NaN in y) */
    __m512 am[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    __mmask16 bad = 0;
    int64_t j = 0;
    for (; j + 64 <= k; j += 64) {
        for (int u = 0; u < 4; u++) {
            const __m512 v = _mm512_and_ps(_mm512_loadu_ps(x + j + 16 * u), absmask);
            bad |= _mm512_fpclass_ps_mask(v, 0x01 | 0x08 | 0x10 | 0x80);
            if (cm) _mm512_storeu_ps(cm + j + 16 * u, _mm512_max_ps(v, _mm512_loadu_ps(cm + j + 16 * u)));
            am[u] = _mm512_mask_max_ps(am[u], _mm512_cmp_ps_mask(v, vthr, _CMP_LT_OQ), am[u], v);
        }
    }
    for (; j < k; j += 16) {
        const __mmask16 t = k - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - j)) - 1);
        const __m512 v = _mm512_and_ps(_mm512_maskz_loadu_ps(t, x + j), absmask);
        bad |= _mm512_mask_fpclass_ps_mask(t, v, 0x01 | 0x08 | 0x10 | 0x80);
        if (cm) _mm512_mask_storeu_ps(cm + j, t, _mm512_max_ps(v, _mm512_maskz_loadu_ps(t, cm + j)));
        am[0] = _mm512_mask_max_ps(am[0], _mm512_mask_cmp_ps_mask(t, v, vthr, _CMP_LT_OQ), am[0], v);
    }
    *rmax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(am[0], am[1]), _mm512_max_ps(am[2], am[3])));
    *nonfinite = bad != 0;
}

/* pt_i8_scan_row_avx512 and the quantization in one visit of the row (the second pass reads it
 * from L1): q = rne(x * 127 / rmax) for |x| < thr, 0 where |x| >= thr (such a column is an
 * outlier column of the call whatever the other rows hold), stored as s8 or u8 q + 128. The
 * caller then zeroes the columns that other rows made outlier columns (and requantizes a row
 * whose maximum lay in one), which gives exactly the q of the two-pass path. */
void pt_i8_scanq_row_avx512(const float* x, int64_t k, float thr, float* cm, uint8_t* q, int s8, float* rmax, int* nonfinite) {
    float am;
    int nf;
    pt_i8_scan_row_avx512(x, k, thr, cm, &am, &nf);
    *rmax = am;
    *nonfinite = nf;
    const float inv = am > 0.0f && !nf ? 127.0f / am : 0.0f;
    const __m512 vinv = _mm512_set1_ps(inv), vthr = _mm512_set1_ps(thr);
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    const __m512i off8 = _mm512_set1_epi8(s8 ? 0 : (char)0x80);
    /* 64 values per store: |x| < thr <= the row's threshold maximum am, so |x * inv| rounds to
     * <= 127 and the saturating packs (s32 -> s16 -> s8) never clamp a kept value; they leave
     * the 16-value groups interleaved by 128-bit lane, which one permute puts back in order */
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    int64_t j = 0;
    for (; j + 64 <= k; j += 64) {
        __m512i qi[4];
        for (int u = 0; u < 4; u++) {
            const __m512 v = _mm512_loadu_ps(x + j + 16 * u);
            const __mmask16 km = _mm512_cmp_ps_mask(_mm512_and_ps(v, absmask), vthr, _CMP_LT_OQ);
            qi[u] = _mm512_maskz_cvtps_epi32(km, _mm512_mul_ps(v, vinv)); /* MXCSR default: round half to even */
        }
        const __m512i b = _mm512_packs_epi16(_mm512_packs_epi32(qi[0], qi[1]), _mm512_packs_epi32(qi[2], qi[3]));
        _mm512_storeu_si512((void*)(q + j), _mm512_xor_si512(_mm512_permutexvar_epi32(order, b), off8));
    }
    const __m512i off = _mm512_set1_epi32(s8 ? 0 : 128);
    for (; j < k; j += 16) {
        const __mmask16 t = k - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - j)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(t, x + j);
        const __mmask16 km = _mm512_mask_cmp_ps_mask(t, _mm512_and_ps(v, absmask), vthr, _CMP_LT_OQ);
        const __m512i qi = _mm512_add_epi32(_mm512_maskz_cvtps_epi32(km, _mm512_mul_ps(v, vinv)), off);
        _mm_mask_storeu_epi8(q + j, t, _mm512_cvtepi32_epi8(qi));
    }
}

/* The quantization of a row whose absmax over the kept columns is known: q = rne(x * 127 / amax)
 * clamped to [-127, 127], as pt_i8_quant_row_avx512's second half. */
void pt_i8_quantize_row_avx512(const float* x, const uint8_t* keep, int64_t k, uint8_t* q, float am, int nonfinite, int s8) {
    const float inv = am > 0.0f && !nonfinite ? 127.0f / am : 0.0f;
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), off = _mm512_set1_epi32(s8 ? 0 : 128);
    for (int64_t j = 0; j < k; j += 16) {
        __mmask16 t = k - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - j)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(t, x + j);
        __mmask16 km = _mm_mask_cmpneq_epi8_mask(t, _mm_maskz_loadu_epi8(t, keep + j), _mm_setzero_si128());
        __m512i qi = _mm512_cvtps_epi32(_mm512_mul_ps(v, vinv)); /* MXCSR default: round half to even */
        qi = _mm512_min_epi32(_mm512_max_epi32(qi, lo), hi);
        qi = _mm512_add_epi32(_mm512_maskz_mov_epi32(km, qi), off);
        _mm_mask_storeu_epi8(q + j, t, _mm512_cvtepi32_epi8(qi));
    }
}

/* 16 channels per vector: their dwords (4 K values each) loaded whole, the wanted byte moved to
 * the top and shifted back down with its sign (one 64-byte load per 16 channels instead of 16
 * scalar byte loads) */
void pt_i8_outlier_wcol_avx512(const int8_t* grp, int64_t half, int sub, const float* scale, int nb, float* dst) {
    const __m128i up = _mm_cvtsi32_si128(24 - 8 * sub);
    for (int q = 0; q < PT_I8_NB / 16 && 16 * q < nb; q++) {
        const int j0 = 16 * q;
        const __mmask16 mk = nb - j0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (nb - j0)) - 1);
        const __m512i v = _mm512_loadu_si512((const void*)(grp + (q >> 1) * half + (q & 1) * 64));
        const __m512i b = _mm512_srai_epi32(_mm512_sll_epi32(v, up), 24);
        _mm512_mask_storeu_ps(dst + j0, mk, _mm512_mul_ps(_mm512_cvtepi32_ps(b), _mm512_maskz_loadu_ps(mk, scale + j0)));
    }
}
