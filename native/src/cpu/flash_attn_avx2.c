/* AVX2 + FMA flash-attention decode chunk (compiled with -mavx2 -mfma; chosen at run time on
 * x86-64 CPUs without AVX-512, or with PT_CPU_AVX512F in pt_ctx_params.disable_caps).
 *
 * The layout of the AVX-512 decode (flash_attn_avx512.c, "decode v2") on 8-lane registers:
 * blocks of 8 cache rows; for RG <= 4 query rows of the kv head at a time, the K chunk of a
 * row is loaded (bf16: widened by an even/odd split, q stored in the same order) once for the
 * RG rows, RG·KQ = 8 dot products reduced by one 8x8 transpose-add; the online softmax keeps a
 * vector of row sums and rescales the output only when a row's maximum grows; P·V walks Dv in
 * passes whose accumulators stay in registers for the 8 keys. AVX2 has 16 vector registers:
 * q is read as a memory operand of the FMAs. D and Dv must be multiples of 16 (up to 256);
 * other head dims go to the portable kernel. */
#include "cpu/flash_attn.h"

#include <immintrin.h>
#include <math.h>

#define AI static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 32")

static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* 2^x for x <= 0; 0 below -100 and for NaN (a masked score minus a -inf max). */
AI __m256 exp2_ps8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-100.0f);
    __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
    __m256 xc = _mm256_max_ps(x, lo);
    __m256 r = _mm256_round_ps(xc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(xc, r);
    __m256 p = _mm256_set1_ps(1.5252733804059840e-5f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.5403530393381609e-4f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146428443e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291076284772e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504108664821580e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650695910071e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718055994531e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(r), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
}

AI float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}
AI float hsum8(__m256 v) {
    __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* lane i = Σ lanes of a[i] */
AI __m256 tsum8(const __m256* a) {
    __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
    __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
    __m256 x = _mm256_hadd_ps(h01, h23), y = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(x, y, 0x20), _mm256_permute2f128_ps(x, y, 0x31));
}

/* scores of RG rows x 8 keys into s[r][8] (unscaled: q is pre-scaled) */
AI void qk8(const int RG, const float* q, int64_t qs, const char* const* kr, int64_t nch, int bf16, float* s) {
    const int RGP = RG == 3 ? 4 : RG, KQ = 8 / RGP;
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    float g[4 * 8] __attribute__((aligned(32)));
    UNROLL for (int gq = 0; gq < RGP; gq++) {
        __m256 a[8];
        UNROLL for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
        for (int64_t c = 0; c < nch; c++) { /* chunks of 16 elements */
            UNROLL for (int kk = 0; kk < KQ; kk++) {
                const char* src = kr[gq * KQ + kk];
                __m256 x0, x1;
                if (bf16) {
                    __m256i x = _mm256_loadu_si256((const __m256i*)(src + 32 * c));
                    x0 = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
                    x1 = _mm256_castsi256_ps(_mm256_and_si256(x, hi));
                } else {
                    x0 = _mm256_loadu_ps((const float*)(src + 64 * c));
                    x1 = _mm256_loadu_ps((const float*)(src + 64 * c + 32));
                }
                UNROLL for (int r = 0; r < RG; r++) {
                    a[r * KQ + kk] = _mm256_fmadd_ps(_mm256_loadu_ps(q + r * qs + 16 * c), x0, a[r * KQ + kk]);
                    a[r * KQ + kk] = _mm256_fmadd_ps(_mm256_loadu_ps(q + r * qs + 16 * c + 8), x1, a[r * KQ + kk]);
                }
            }
        }
        _mm256_store_ps(g + 8 * gq, tsum8(a)); /* lane r * KQ + kk: key gq * KQ + kk of row r */
    }
    UNROLL for (int r = 0; r < RG; r++)
        UNROLL for (int k = 0; k < 8; k++) s[8 * r + k] = g[8 * (k / KQ) + r * KQ + k % KQ];
}

AI void pv8_pass(const int RG, const int NP, float* acc, int64_t as, int64_t v0, const float* pb, const float* alpha, int rescale,
                 const char* const* vr, int bf16) {
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256 x[4][8];
    UNROLL for (int r = 0; r < RG; r++) {
        __m256 al = _mm256_set1_ps(alpha[r]);
        UNROLL for (int i = 0; i < NP; i++) {
            x[r][i] = _mm256_loadu_ps(acc + r * as + 8 * (v0 + i));
            if (rescale) x[r][i] = _mm256_mul_ps(x[r][i], al);
        }
    }
    UNROLL for (int k = 0; k < 8; k++) {
        UNROLL for (int i = 0; i < NP; i += 2) {
            __m256 y0, y1;
            if (bf16) {
                __m256i w = _mm256_loadu_si256((const __m256i*)(vr[k] + 16 * (v0 + i)));
                y0 = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
                y1 = _mm256_castsi256_ps(_mm256_and_si256(w, hi));
            } else {
                y0 = _mm256_loadu_ps((const float*)(vr[k] + 32 * (v0 + i)));
                y1 = _mm256_loadu_ps((const float*)(vr[k] + 32 * (v0 + i) + 32));
            }
            UNROLL for (int r = 0; r < RG; r++) {
                __m256 p = _mm256_broadcast_ss(pb + 8 * r + k);
                x[r][i] = _mm256_fmadd_ps(p, y0, x[r][i]);
                x[r][i + 1] = _mm256_fmadd_ps(p, y1, x[r][i + 1]);
            }
        }
    }
    UNROLL for (int r = 0; r < RG; r++)
        UNROLL for (int i = 0; i < NP; i++) _mm256_storeu_ps(acc + r * as + 8 * (v0 + i), x[r][i]);
}

AI void pv8(const int RG, float* acc, int64_t as, int64_t nvv, const float* pb, const float* alpha, int rescale, const char* const* vr,
            int bf16) {
    const int NP = RG == 1 ? 8 : RG == 2 ? 4 : 2; /* RG * NP <= 8 accumulators */
    int64_t v0 = 0;
    for (; v0 + NP <= nvv; v0 += NP) pv8_pass(RG, NP, acc, as, v0, pb, alpha, rescale, vr, bf16);
    for (; v0 < nvv; v0 += 2) pv8_pass(RG, 2, acc, as, v0, pb, alpha, rescale, vr, bf16);
}

AI void fd8_block(const int RG, int64_t r0, int64_t jb, const char* const* kr, const char* const* vr, const float* qb, int64_t D,
                  float* acc, int64_t Dv, float* mr, float* lv, const int64_t* lo_r, const int64_t* hi_r, int full, int64_t nch,
                  int64_t nvv, int bf16) {
    float s[4 * 8] __attribute__((aligned(32)));
    qk8(RG, qb + r0 * D, D, kr, nch, bf16, s);
    float pb[4 * 8] __attribute__((aligned(32)));
    float alpha[4];
    int any = 0, rescale = 0;
    UNROLL for (int i = 0; i < RG; i++) {
        int64_t r = r0 + i;
        if (!full)
            for (int k = 0; k < 8; k++)
                if (jb + k < lo_r[r] || jb + k >= hi_r[r]) s[8 * i + k] = -INFINITY;
        __m256 sv = _mm256_load_ps(s + 8 * i);
        float mb = hmax8(sv);
        alpha[i] = 1.0f;
        if (mb == -INFINITY) {
            _mm256_store_ps(pb + 8 * i, _mm256_setzero_ps());
            continue;
        }
        any = 1;
        __m256 l = _mm256_loadu_ps(lv + 8 * r);
        if (mb > mr[r]) {
            alpha[i] = mr[r] == -INFINITY ? 0.0f : exp2f(mr[r] - mb);
            mr[r] = mb;
            l = _mm256_mul_ps(l, _mm256_set1_ps(alpha[i]));
            rescale = 1;
        }
        __m256 e = exp2_ps8(_mm256_sub_ps(sv, _mm256_set1_ps(mr[r])));
        _mm256_storeu_ps(lv + 8 * r, _mm256_add_ps(l, e));
        _mm256_store_ps(pb + 8 * i, e);
    }
    if (any) pv8(RG, acc + r0 * Dv, Dv, nvv, pb, alpha, rescale, vr, bf16);
}

bool pt_fd_chunk_avx2(const pt_fd_problem* p, const pt_fd_item* it, float* part) {
    enum { BK = 8 };
    const int64_t D = p->D, Dv = p->Dv, G = p->G, R = G * p->Tq;
    if (R > 256 || D % 16 != 0 || Dv % 16 != 0 || D > 256 || Dv > 256) return pt_fd_chunk_portable(p, it, part);
    const int bf16 = p->kv_dtype == PT_BF16;
    const int64_t nch = D / 16, nvv = Dv / 8;
    float* buf = (float*)pt_scratch(0, (size_t)(R * D + R * Dv + 9 * R + Dv + 16) * sizeof(float));
    if (!buf) return false;
    float *qb = buf, *acc = qb + R * D, *lv = acc + R * Dv, *mr = lv + 8 * R, *tmp = mr + R;
    int64_t lo_r[256], hi_r[256];
    int64_t jlo = it->j1, jhi = it->j0, lo_all = INT64_MIN, hi_all = INT64_MAX;
    float qrow[256];
    for (int64_t r = 0; r < R; r++) {
        int64_t tok = r / G, g = r % G, pos = it->len - p->Tq + tok;
        pt_load_row_f32(it->q + tok * p->q_st + g * p->q_sh, p->q_dtype, D, qrow);
        float* q = qb + r * D;
        for (int64_t c = 0; c < nch; c++)
            for (int64_t i = 0; i < 16; i++) {
                int64_t src = bf16 ? 16 * c + (i < 8 ? 2 * i : 2 * (i - 8) + 1) : 16 * c + i;
                q[16 * c + i] = qrow[src] * p->scale_log2;
            }
        memset(acc + r * Dv, 0, (size_t)Dv * sizeof(float));
        memset(lv + 8 * r, 0, 8 * sizeof(float));
        mr[r] = -INFINITY;
        lo_r[r] = imax(it->j0, pt_fa_lo(p->wl, pos));
        hi_r[r] = imin(imin(it->j1, it->len), pt_fa_hi(p->wr, pos));
        if (lo_r[r] < hi_r[r]) { jlo = imin(jlo, lo_r[r]); jhi = imax(jhi, hi_r[r]); }
        lo_all = imax(lo_all, lo_r[r]);
        hi_all = imin(hi_all, hi_r[r]);
    }
    jlo = imax(jlo, 0);
    const int64_t kbytes = D * (int64_t)pt_dtype_size(p->kv_dtype), vbytes = Dv * (int64_t)pt_dtype_size(p->kv_dtype);
    enum { PF = 8 }; /* blocks of 8 rows ahead, into L2 */
    for (int64_t jb = jlo; jb < jhi; jb += BK) {
        int64_t nb = imin(BK, jhi - jb);
        const char *kr[BK], *vr[BK];
        for (int k = 0; k < BK; k++) { /* rows past nb repeat the last one; their scores are masked */
            int64_t j = jb + (k < nb ? k : nb - 1);
            kr[k] = it->k + j * p->k_ss;
            vr[k] = it->v + j * p->v_ss;
        }
        for (int64_t j = jb + PF * BK; j < imin(jhi, jb + (PF + 1) * BK); j++) {
            for (int64_t o = 0; o < kbytes; o += 64) _mm_prefetch(it->k + j * p->k_ss + o, _MM_HINT_T1);
            for (int64_t o = 0; o < vbytes; o += 64) _mm_prefetch(it->v + j * p->v_ss + o, _MM_HINT_T1);
        }
        int full = nb == BK && jb >= lo_all && jb + BK <= hi_all;
        for (int64_t r0 = 0; r0 < R; r0 += 4) {
            switch (imin(4, R - r0)) {
            case 4: fd8_block(4, r0, jb, kr, vr, qb, D, acc, Dv, mr, lv, lo_r, hi_r, full, nch, nvv, bf16); break;
            case 3: fd8_block(3, r0, jb, kr, vr, qb, D, acc, Dv, mr, lv, lo_r, hi_r, full, nch, nvv, bf16); break;
            case 2: fd8_block(2, r0, jb, kr, vr, qb, D, acc, Dv, mr, lv, lo_r, hi_r, full, nch, nvv, bf16); break;
            default: fd8_block(1, r0, jb, kr, vr, qb, D, acc, Dv, mr, lv, lo_r, hi_r, full, nch, nvv, bf16); break;
            }
        }
    }
    for (int64_t r = 0; r < R; r++) {
        float* st = part + r * (Dv + 2);
        st[0] = mr[r];
        st[1] = mr[r] == -INFINITY ? 0.0f : hsum8(_mm256_loadu_ps(lv + 8 * r));
        const float* a = acc + r * Dv;
        if (bf16) { /* back from [even 8 | odd 8] chunks */
            for (int64_t c = 0; c < Dv / 16; c++)
                for (int64_t i = 0; i < 8; i++) {
                    tmp[16 * c + 2 * i] = a[16 * c + i];
                    tmp[16 * c + 2 * i + 1] = a[16 * c + 8 + i];
                }
            a = tmp;
        }
        memcpy(st + 2, a, (size_t)Dv * 4);
    }
    return true;
}
