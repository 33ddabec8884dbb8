/* AVX-512 flash-attention kernels (compiled with -mavx512f/bw/dq/vl/bf16; chosen at run time).
 *
 * Prefill (pt_fa_tile_avx512): rows (token, head pairs) live in the 16 lanes of a zmm; a
 * sub-tile is up to 4 zmm = 64 rows and an item up to PT_FA_MAX_SUB sub-tiles. Per key tile
 * of 64 keys, staged once as f32 and shared by the sub-tiles:
 *   S[j][rows]  = Σ_d K[j][d] · Qᵀ[d][rows]      broadcast K element × Qᵀ vector (FMA)
 *   online softmax per lane (max, sum, rescale factor: no horizontal reductions)
 *   Oᵀ[dv][rows] = Oᵀ·alpha + Σ_j V[j][dv] · P[j][rows]
 * Register blocks: IC zmm of rows x JB keys (QK) or x DB value dims (PV), 16..24 accumulators.
 * bf16 inputs are widened to f32 and take the same FMA path. Measured and dropped: VDPBF16PS
 * (bf16 pairs) runs at about half the FLOP rate of f32 FMA on the Sapphire Rapids we test on
 * (45-70 vs 120-150 GFLOP/s per core in a throughput loop), and the bf16 prefill through it
 * was ~30% slower than widening. Measured and dropped: one 64-row item per K/V pass (the
 * K/V staging from L3 cost ~13% of the time at S = 2048; sharing it over 4 sub-tiles fixes it).
 *
 * Decode (pt_fd_chunk_avx512): head dims in lanes. For 16 cache rows at a time and each query
 * row: 16 dot products reduced by one 16x16 transpose-add, the online softmax over the 16
 * scores, and acc += Σ p_k V_k with the probabilities held broadcast in registers. K and V
 * are read in place; bf16 is widened in registers (even/odd split, no shuffles). Measured
 * and dropped: staging the 16 rows into an f32 block (a third of the in-cache time), and
 * p_k broadcast from memory in the PV loop (two loads per FMA: load-port bound). */
#include "cpu/flash_attn_x86.h"

#include <math.h>

#define BR PT_FA_BR
#define BC PT_FA_BC



#define UNROLL _Pragma("GCC unroll 32")

AI __m512 ld_bf16x16(const void* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}
AI __m512 ld_bf16x16_m(const void* p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

/* n elements (f32 | bf16) -> f32, zero-filled up to a multiple of 16. */
static void row_to_f32(const char* src, int32_t dt, int64_t n, float* dst) {
    int64_t i = 0;
    if (dt == PT_BF16) {
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, ld_bf16x16(src + 2 * i));
        if (i < n) {
            __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
            _mm512_storeu_ps(dst + i, ld_bf16x16_m(src + 2 * i, m));
            i += 16;
        }
    } else {
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + 4 * i));
        if (i < n) {
            __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
            _mm512_storeu_ps(dst + i, _mm512_maskz_loadu_ps(m, src + 4 * i));
            i += 16;
        }
    }
}

/* ============================================================== prefill micro-kernels */

/* S[j][lanes] = Σ_d K[j][d] * Qt[d][lanes], j < nk rounded up to JB (rows past nk repeat
 * row nk-1; the caller ignores them). K rows: f32 at k0 + j*kss. */
#define DEF_QK_F32(IC, JB)                                                                        \
    static void qk_f32_##IC(const float* Qt, const char* k0, int64_t kss, int64_t nk, int64_t D,  \
                            float* S) {                                                           \
        for (int64_t j = 0; j < nk; j += JB) {                                                    \
            const float* kr[JB];                                                                  \
            UNROLL for (int b = 0; b < JB; b++)                                                   \
                kr[b] = (const float*)(k0 + (j + b < nk ? j + b : nk - 1) * kss);                 \
            __m512 acc[JB][IC];                                                                   \
            UNROLL for (int b = 0; b < JB; b++) UNROLL for (int c = 0; c < IC; c++)               \
                acc[b][c] = _mm512_setzero_ps();                                                  \
            const float* qp = Qt;                                                                 \
            for (int64_t d = 0; d < D; d++, qp += BR) {                                           \
                __m512 q[IC];                                                                     \
                UNROLL for (int c = 0; c < IC; c++) q[c] = _mm512_load_ps(qp + 16 * c);           \
                UNROLL for (int b = 0; b < JB; b++) {                                             \
                    __m512 kb = _mm512_set1_ps(kr[b][d]);                                         \
                    UNROLL for (int c = 0; c < IC; c++) acc[b][c] = _mm512_fmadd_ps(kb, q[c], acc[b][c]); \
                }                                                                                 \
            }                                                                                     \
            UNROLL for (int b = 0; b < JB; b++) UNROLL for (int c = 0; c < IC; c++)               \
                _mm512_store_ps(S + (j + b) * BR + 16 * c, acc[b][c]);                            \
        }                                                                                         \
    }
DEF_QK_F32(1, 8)
DEF_QK_F32(2, 8)
DEF_QK_F32(3, 8)
DEF_QK_F32(4, 6)

/* OT[dv][lanes] = OT[dv][lanes] * alpha + Σ_{j<nk} V[j][dv] * P[j][lanes], V rows f32. */
#define DEF_PV_F32(IC, DB)                                                                        \
    static void pv_f32_##IC(const float* P, const char* v0, int64_t vss, int64_t nk, int64_t Dv,  \
                            const __m512* alpha, float* OT) {                                     \
        int64_t dv = 0;                                                                           \
        for (; dv + DB <= Dv; dv += DB) {                                                         \
            __m512 acc[DB][IC];                                                                   \
            UNROLL for (int b = 0; b < DB; b++) UNROLL for (int c = 0; c < IC; c++)               \
                acc[b][c] = _mm512_setzero_ps();                                                  \
            const char* vr = v0 + dv * 4;                                                         \
            const float* pp = P;                                                                  \
            for (int64_t j = 0; j < nk; j++, vr += vss, pp += BR) {                               \
                __m512 p[IC];                                                                     \
                UNROLL for (int c = 0; c < IC; c++) p[c] = _mm512_load_ps(pp + 16 * c);           \
                UNROLL for (int b = 0; b < DB; b++) {                                             \
                    __m512 vb = _mm512_set1_ps(((const float*)vr)[b]);                            \
                    UNROLL for (int c = 0; c < IC; c++) acc[b][c] = _mm512_fmadd_ps(vb, p[c], acc[b][c]); \
                }                                                                                 \
            }                                                                                     \
            UNROLL for (int b = 0; b < DB; b++) UNROLL for (int c = 0; c < IC; c++) {             \
                float* o = OT + (dv + b) * BR + 16 * c;                                           \
                _mm512_store_ps(o, _mm512_fmadd_ps(_mm512_load_ps(o), alpha[c], acc[b][c]));      \
            }                                                                                     \
        }                                                                                         \
        for (; dv < Dv; dv++) {                                                                   \
            __m512 acc[IC];                                                                       \
            UNROLL for (int c = 0; c < IC; c++) acc[c] = _mm512_setzero_ps();                     \
            for (int64_t j = 0; j < nk; j++) {                                                    \
                __m512 vb = _mm512_set1_ps(((const float*)(v0 + j * vss))[dv]);                   \
                UNROLL for (int c = 0; c < IC; c++)                                               \
                    acc[c] = _mm512_fmadd_ps(vb, _mm512_load_ps(P + j * BR + 16 * c), acc[c]);    \
            }                                                                                     \
            UNROLL for (int c = 0; c < IC; c++) {                                                 \
                float* o = OT + dv * BR + 16 * c;                                                 \
                _mm512_store_ps(o, _mm512_fmadd_ps(_mm512_load_ps(o), alpha[c], acc[c]));         \
            }                                                                                     \
        }                                                                                         \
    }
DEF_PV_F32(1, 16)
DEF_PV_F32(2, 8)
DEF_PV_F32(3, 6)
DEF_PV_F32(4, 6)

typedef void (*qk_f32_fn)(const float*, const char*, int64_t, int64_t, int64_t, float*);
typedef void (*pv_f32_fn)(const float*, const char*, int64_t, int64_t, int64_t, const __m512*, float*);

static const qk_f32_fn QK_F32[4] = {qk_f32_1, qk_f32_2, qk_f32_3, qk_f32_4};
static const pv_f32_fn PV_F32[4] = {pv_f32_1, pv_f32_2, pv_f32_3, pv_f32_4};

static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
static int32_t clamp32(int64_t x) { return x < INT32_MIN ? INT32_MIN : x > INT32_MAX ? INT32_MAX : (int32_t)x; }

bool pt_fa_tile_avx512(const pt_fa_problem* p, const pt_fa_tile* t) {
    enum { NSUB = PT_FA_MAX_SUB };
    const int64_t D = p->D, Dv = p->Dv, nh = t->nh, R = t->nt * t->nh, nsub = (R + BR - 1) / BR;
    const int64_t Ks = (D + 15) / 16 * 16, Vs = (Dv + 15) / 16 * 16 + 16;
    /* scratch: Qt[nsub] | OT[nsub] | S | Kf | Vf. K and V tiles are staged as f32 once per key
     * tile and shared by the sub-tiles. V's padded row stride Vs keeps the 64 rows that PV
     * walks at one column in distinct L1 sets (the source stride, Hkv*Dv elements, is
     * usually a power of two: staging it cut PV time by a third). */
    size_t nq = (size_t)D * BR, no = (size_t)Dv * BR, ns = (size_t)(BC + 8) * BR, nk = (size_t)BC * Ks, nv = (size_t)BC * Vs;
    float* buf = (float*)pt_scratch(0, ((size_t)nsub * (nq + no) + ns + nk + nv + 64) * sizeof(float));
    if (!buf) return false;
    float *Qt0 = buf, *OT0 = Qt0 + nsub * nq, *S = OT0 + nsub * no, *Kf = S + ns, *Vf = Kf + nk;

    float qrow[256];
    memset(Qt0, 0, (size_t)nsub * nq * sizeof(float));
    memset(OT0, 0, (size_t)nsub * no * sizeof(float));
    for (int64_t r = 0; r < R; r++) {
        int64_t tok = r / nh, g = r % nh;
        pt_load_row_f32(t->q + (t->t0 + tok) * p->q_ss + (t->h0 + g) * p->q_sh, p->q_dtype, D, qrow);
        float* qt = Qt0 + (r / BR) * nq + r % BR;
        for (int64_t d = 0; d < D; d++) qt[d * BR] = qrow[d];
    }
    __m512 m[NSUB][4], l[NSUB][4];
    __m512i lo_v[NSUB][4], hi_v[NSUB][4];
    int64_t pmin[NSUB], pmax[NSUB];
    for (int64_t st = 0; st < nsub; st++) {
        int64_t r0 = st * BR, r1 = imin(R, r0 + BR) - 1;
        pmin[st] = t->t0 + r0 / nh + t->p_off;
        pmax[st] = t->t0 + r1 / nh + t->p_off;
        for (int64_t c = 0; c < 4; c++) {
            m[st][c] = _mm512_set1_ps(-INFINITY);
            l[st][c] = _mm512_setzero_ps();
            int32_t lo_a[16], hi_a[16];
            for (int i = 0; i < 16; i++) {
                int64_t r = r0 + c * 16 + i, pos = t->t0 + (r < R ? r / nh : 0) + t->p_off;
                lo_a[i] = clamp32(pt_fa_lo(p->wl, pos));
                hi_a[i] = clamp32(pt_fa_hi(p->wr, pos));
            }
            lo_v[st][c] = _mm512_loadu_si512(lo_a);
            hi_v[st][c] = _mm512_loadu_si512(hi_a);
        }
    }
    const __m512 sc = _mm512_set1_ps(p->scale_log2), ninf = _mm512_set1_ps(-INFINITY);
    int64_t lo = imax(0, pt_fa_lo(p->wl, pmin[0])), hi = imin(t->sk, pt_fa_hi(p->wr, pmax[nsub - 1]));
    uint8_t on[BC];
    for (int64_t j0 = lo; j0 < hi; j0 += BC) {
        int64_t nkk = imin(BC, hi - j0), n_on = nkk;
        if (t->mask) {
            n_on = 0;
            for (int64_t j = 0; j < nkk; j++) n_on += (on[j] = (uint8_t)pt_fa_mask_on(t->mask, p->mask_dtype, p->mask_ss, j0 + j));
            if (n_on == 0) continue;
        }
        const char* k0 = t->k + j0 * p->k_ss;
        const char* v0 = t->v + j0 * p->v_ss;
        for (int64_t j = 0; j < nkk; j++) {
            row_to_f32(k0 + j * p->k_ss, p->kv_dtype, D, Kf + j * Ks);
            row_to_f32(v0 + j * p->v_ss, p->kv_dtype, Dv, Vf + j * Vs);
        }
        /* The next tile's rows go to L2 while this one computes, a slice before each sub-tile
         * (staging stalled on L3 for ~11% of the time at S = 2048; prefetching it all at once
         * just moved the stall into the prefetches: the fill buffers were full). */
        int64_t kb = D * (int64_t)pt_dtype_size(p->kv_dtype), vb = Dv * (int64_t)pt_dtype_size(p->kv_dtype);
        int64_t pf_end = imin(hi, j0 + 2 * BC), pf_step = (BC + nsub - 1) / nsub;
        for (int64_t st = 0; st < nsub; st++) {
            for (int64_t j = j0 + BC + st * pf_step; j < imin(pf_end, j0 + BC + (st + 1) * pf_step); j++) {
                for (int64_t o = 0; o < kb; o += 64) _mm_prefetch(t->k + j * p->k_ss + o, _MM_HINT_T1);
                for (int64_t o = 0; o < vb; o += 64) _mm_prefetch(t->v + j * p->v_ss + o, _MM_HINT_T1);
            }
            /* the part of this key tile that sub-tile st sees */
            int64_t slo = imax(j0, pt_fa_lo(p->wl, pmin[st])), shi = imin(j0 + nkk, pt_fa_hi(p->wr, pmax[st]));
            if (slo >= shi) continue;
            int64_t nk_s = shi - j0; /* keys j0 .. shi-1 (the ones before slo are masked) */
            int64_t IC = (imin(R - st * BR, BR) + 15) / 16;
            int need_mask = n_on < nkk || (p->wr >= 0 && shi - 1 > pmin[st] + p->wr) || (p->wl >= 0 && j0 < pmax[st] - p->wl);
            float *Qt = Qt0 + st * nq, *OT = OT0 + st * no;
            QK_F32[IC - 1](Qt, (const char*)Kf, Ks * 4, nk_s, D, S);
            __m512 alpha[4];
            for (int64_t c = 0; c < IC; c++) {
                __m512 mx = ninf;
                float* col = S + 16 * c;
                if (need_mask) {
                    for (int64_t j = 0; j < nk_s; j++) {
                        __m512 s = _mm512_mul_ps(_mm512_load_ps(col + j * BR), sc);
                        __m512i jj = _mm512_set1_epi32((int32_t)(j0 + j));
                        __mmask16 ok = _mm512_cmpge_epi32_mask(jj, lo_v[st][c]) & _mm512_cmplt_epi32_mask(jj, hi_v[st][c]);
                        if (t->mask && !on[j]) ok = 0;
                        s = _mm512_mask_blend_ps(ok, ninf, s);
                        _mm512_store_ps(col + j * BR, s);
                        mx = _mm512_max_ps(mx, s);
                    }
                } else {
                    for (int64_t j = 0; j < nk_s; j++) {
                        __m512 s = _mm512_mul_ps(_mm512_load_ps(col + j * BR), sc);
                        _mm512_store_ps(col + j * BR, s);
                        mx = _mm512_max_ps(mx, s);
                    }
                }
                __m512 m_new = _mm512_max_ps(m[st][c], mx);
                __m512 m_use = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(m_new, ninf, _CMP_EQ_OQ), m_new, _mm512_setzero_ps());
                alpha[c] = exp2_ps(_mm512_sub_ps(m[st][c], m_use));
                __m512 sum = _mm512_setzero_ps();
                for (int64_t j = 0; j < nk_s; j++) {
                    __m512 e = exp2_ps(_mm512_sub_ps(_mm512_load_ps(col + j * BR), m_use));
                    _mm512_store_ps(col + j * BR, e);
                    sum = _mm512_add_ps(sum, e);
                }
                l[st][c] = _mm512_fmadd_ps(l[st][c], alpha[c], sum);
                m[st][c] = m_new;
            }
            PV_F32[IC - 1](S, (const char*)Vf, Vs * 4, nk_s, Dv, alpha, OT);
        }
    }
    /* out = Oᵀ / l, transposed back to rows */
    float orow[256];
    for (int64_t st = 0; st < nsub; st++) {
        float lf[BR], mf[BR];
        for (int64_t c = 0; c < 4; c++) {
            _mm512_storeu_ps(lf + 16 * c, l[st][c]);
            _mm512_storeu_ps(mf + 16 * c, m[st][c]);
        }
        const float* OT = OT0 + st * no;
        for (int64_t rr = 0; rr < BR && st * BR + rr < R; rr++) {
            int64_t r = st * BR + rr, tok = r / nh, g = r % nh;
            float inv = lf[rr] > 0.0f ? 1.0f / lf[rr] : 0.0f;
            for (int64_t dv = 0; dv < Dv; dv++) orow[dv] = OT[dv * BR + rr] * inv;
            pt_store_row_f32(orow, Dv, p->out_dtype, t->out + (t->t0 + tok) * p->out_ss + (t->h0 + g) * p->out_sh);
            if (t->lse) {
                float v = lf[rr] > 0.0f ? (float)((mf[rr] + log2((double)lf[rr])) * 0.69314718055994530942) : -INFINITY;
                memcpy(t->lse + (t->h0 + g) * p->lse_sh + (t->t0 + tok) * p->lse_ss, &v, 4);
            }
        }
    }
    return true;
}

/* ============================================================== decode */

/* v[k] = Σ lanes of a[k], for k < 16 (a 16x16 transpose folded into adds). */
AI __m512 hsum16(const __m512* a) {
    __m512 x[8], y[4];
    UNROLL for (int i = 0; i < 8; i++)
        x[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    UNROLL for (int i = 0; i < 4; i++) {
        __m512d u = _mm512_castps_pd(x[2 * i]), w = _mm512_castps_pd(x[2 * i + 1]);
        y[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(u, w)), _mm512_castpd_ps(_mm512_unpackhi_pd(u, w)));
    }
    __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
    __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(y[2], y[3], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(y[2], y[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* Decode inner step for a group of RG <= 4 query rows (of one kv head) and 16 cache rows:
 * each K/V chunk is loaded (and, for bf16, widened) once for all RG rows.
 *   scores: a[r][kk] over key quads, one 16x16 transpose-add per quad (lanes 4r + kk), then a
 *           4x4 transpose of 128-bit lanes gives each row its 16 scores in key order;
 *   PV:     acc[r] = acc[r] * alpha[r] + Σ_k p[r][k] V[k], p[r][k] as embedded broadcasts.
 * Chunks: f32 16 wide; bf16 32 wide, split into even (x << 16) and odd (x & 0xffff0000)
 * elements, with q and acc stored as [even 16 | odd 16] per chunk (no shuffles). */
AI void qk_group(const int RG, const float* q, int64_t qstride, const char* const* kr, int64_t nch, int bf16, __mmask32 tail,
                 __m512* S) {
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512 g[4];
    UNROLL for (int kq = 0; kq < 4; kq++) {
        __m512 a[16];
        UNROLL for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
        for (int64_t c = 0; c < nch; c++) {
            int full = c < nch - 1 || tail == (bf16 ? 0xffffffffu : 0xffffu);
            UNROLL for (int kk = 0; kk < 4; kk++) {
                const char* src = kr[4 * kq + kk];
                if (bf16) {
                    __m512i x = full ? _mm512_loadu_si512(src + 64 * c) : _mm512_maskz_loadu_epi16(tail, src + 64 * c);
                    __m512 xe = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)), xo = _mm512_castsi512_ps(_mm512_and_si512(x, hi));
                    UNROLL for (int r = 0; r < RG; r++) {
                        a[4 * r + kk] = _mm512_fmadd_ps(_mm512_loadu_ps(q + r * qstride + 32 * c), xe, a[4 * r + kk]);
                        a[4 * r + kk] = _mm512_fmadd_ps(_mm512_loadu_ps(q + r * qstride + 32 * c + 16), xo, a[4 * r + kk]);
                    }
                } else {
                    __m512 x = full ? _mm512_loadu_ps(src + 64 * c) : _mm512_maskz_loadu_ps((__mmask16)tail, src + 64 * c);
                    UNROLL for (int r = 0; r < RG; r++)
                        a[4 * r + kk] = _mm512_fmadd_ps(_mm512_loadu_ps(q + r * qstride + 16 * c), x, a[4 * r + kk]);
                }
            }
        }
        g[kq] = hsum16(a);
    }
    __m512 t0 = _mm512_shuffle_f32x4(g[0], g[1], _MM_SHUFFLE(1, 0, 1, 0)), t1 = _mm512_shuffle_f32x4(g[0], g[1], _MM_SHUFFLE(3, 2, 3, 2));
    __m512 t2 = _mm512_shuffle_f32x4(g[2], g[3], _MM_SHUFFLE(1, 0, 1, 0)), t3 = _mm512_shuffle_f32x4(g[2], g[3], _MM_SHUFFLE(3, 2, 3, 2));
    S[0] = _mm512_shuffle_f32x4(t0, t2, _MM_SHUFFLE(2, 0, 2, 0));
    S[1] = _mm512_shuffle_f32x4(t0, t2, _MM_SHUFFLE(3, 1, 3, 1));
    S[2] = _mm512_shuffle_f32x4(t1, t3, _MM_SHUFFLE(2, 0, 2, 0));
    S[3] = _mm512_shuffle_f32x4(t1, t3, _MM_SHUFFLE(3, 1, 3, 1));
}

AI void pv_group(const int RG, float* acc, int64_t astride, const float* pb /* [4][16] */, const float* alpha, const char* const* vr,
                 int64_t nch, int bf16, __mmask32 tail) {
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    for (int64_t c = 0; c < nch; c++) {
        int full = c < nch - 1 || tail == (bf16 ? 0xffffffffu : 0xffffu);
        if (bf16) {
            __m512 xe[4], xo[4];
            UNROLL for (int r = 0; r < RG; r++) {
                xe[r] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * astride + 32 * c), _mm512_set1_ps(alpha[r]));
                xo[r] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * astride + 32 * c + 16), _mm512_set1_ps(alpha[r]));
            }
            UNROLL for (int k = 0; k < PT_FD_BK; k++) {
                __m512i x = full ? _mm512_loadu_si512(vr[k] + 64 * c) : _mm512_maskz_loadu_epi16(tail, vr[k] + 64 * c);
                __m512 ve = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)), vo = _mm512_castsi512_ps(_mm512_and_si512(x, hi));
                UNROLL for (int r = 0; r < RG; r++) {
                    xe[r] = _mm512_fmadd_ps(_mm512_set1_ps(pb[16 * r + k]), ve, xe[r]);
                    xo[r] = _mm512_fmadd_ps(_mm512_set1_ps(pb[16 * r + k]), vo, xo[r]);
                }
            }
            UNROLL for (int r = 0; r < RG; r++) {
                _mm512_storeu_ps(acc + r * astride + 32 * c, xe[r]);
                _mm512_storeu_ps(acc + r * astride + 32 * c + 16, xo[r]);
            }
        } else { /* two accumulators per row (even/odd keys): chains of 8 FMAs */
            __m512 x0[4], x1[4];
            UNROLL for (int r = 0; r < RG; r++) {
                x0[r] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * astride + 16 * c), _mm512_set1_ps(alpha[r]));
                x1[r] = _mm512_setzero_ps();
            }
            UNROLL for (int k = 0; k < PT_FD_BK; k += 2) {
                __m512 v0 = full ? _mm512_loadu_ps(vr[k] + 64 * c) : _mm512_maskz_loadu_ps((__mmask16)tail, vr[k] + 64 * c);
                __m512 v1 = full ? _mm512_loadu_ps(vr[k + 1] + 64 * c) : _mm512_maskz_loadu_ps((__mmask16)tail, vr[k + 1] + 64 * c);
                UNROLL for (int r = 0; r < RG; r++) {
                    x0[r] = _mm512_fmadd_ps(_mm512_set1_ps(pb[16 * r + k]), v0, x0[r]);
                    x1[r] = _mm512_fmadd_ps(_mm512_set1_ps(pb[16 * r + k + 1]), v1, x1[r]);
                }
            }
            UNROLL for (int r = 0; r < RG; r++) _mm512_storeu_ps(acc + r * astride + 16 * c, _mm512_add_ps(x0[r], x1[r]));
        }
    }
}

/* One decode block (16 keys from jb, nb valid) for rows r0 .. r0+RG-1. */
AI void fd_block(const int RG, int64_t r0, int64_t jb, const char* const* kr, const char* const* vr, const float* qb, int64_t Dp,
                 float* acc, int64_t Dvp, float* mr, float* lr, const int64_t* lo_r, const int64_t* hi_r, int64_t nd, int64_t nv, int bf16,
                 __mmask32 dtail, __mmask32 vtail) {
    __m512 S[4];
    qk_group(RG, qb + r0 * Dp, Dp, kr, nd, bf16, dtail, S);
    float pbuf[4 * PT_FD_BK] __attribute__((aligned(64)));
    float alpha[4];
    const __m512i jj = _mm512_add_epi32(_mm512_set1_epi32((int32_t)jb), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    int any = 0;
    UNROLL for (int i = 0; i < RG; i++) {
        int64_t r = r0 + i;
        __mmask16 ok = _mm512_cmpge_epi32_mask(jj, _mm512_set1_epi32(clamp32(lo_r[r]))) &
                       _mm512_cmplt_epi32_mask(jj, _mm512_set1_epi32(clamp32(hi_r[r])));
        __m512 s = _mm512_mask_blend_ps(ok, _mm512_set1_ps(-INFINITY), S[i]);
        float mb = ok ? _mm512_reduce_max_ps(s) : -INFINITY;
        if (mb == -INFINITY) { /* nothing visible to this row here */
            _mm512_store_ps(pbuf + 16 * i, _mm512_setzero_ps());
            alpha[i] = 1.0f;
            continue;
        }
        any = 1;
        float m_new = mr[r] > mb ? mr[r] : mb;
        alpha[i] = mr[r] == -INFINITY ? 0.0f : exp2f(mr[r] - m_new);
        __m512 e = exp2_ps(_mm512_sub_ps(s, _mm512_set1_ps(m_new)));
        lr[r] = lr[r] * alpha[i] + _mm512_reduce_add_ps(e);
        mr[r] = m_new;
        _mm512_store_ps(pbuf + 16 * i, e);
    }
    if (any) pv_group(RG, acc + r0 * Dvp, Dvp, pbuf, alpha, vr, nv, bf16, vtail);
}

static bool fd_chunk_v2(const pt_fd_problem* p, const pt_fd_item* it, float* part);

bool pt_fd_chunk_avx512(const pt_fd_problem* p, const pt_fd_item* it, float* part) {
    enum { BK = PT_FD_BK };
    const int64_t D = p->D, Dv = p->Dv, G = p->G, R = G * p->Tq;
    if (R > 256) return pt_fd_chunk_portable(p, it, part); /* > 256 rows per kv head: not a decode shape */
    if (D % 32 == 0 && Dv % 32 == 0 && D <= 256 && Dv <= 256) return fd_chunk_v2(p, it, part);
    const int bf16 = p->kv_dtype == PT_BF16;
    const int64_t w = bf16 ? 32 : 16; /* elements per chunk */
    const int64_t nd = (D + w - 1) / w, nv = (Dv + w - 1) / w, Dp = nd * w, Dvp = nv * w;
    const __mmask32 dtail = D % w ? (__mmask32)((1u << (D % w)) - 1) : (bf16 ? 0xffffffffu : 0xffffu);
    const __mmask32 vtail = Dv % w ? (__mmask32)((1u << (Dv % w)) - 1) : (bf16 ? 0xffffffffu : 0xffffu);
    float* buf = (float*)pt_scratch(0, (size_t)(R * Dp + R * Dvp + 2 * R + Dvp + 64) * sizeof(float));
    if (!buf) return false;
    float *qb = buf, *acc = qb + R * Dp, *mr = acc + R * Dvp, *lr = mr + R, *tmp = lr + R;
    int64_t lo_r[256], hi_r[256];
    int64_t jlo = it->j1, jhi = it->j0;
    float qrow[256 + 32];
    for (int64_t r = 0; r < R; r++) {
        int64_t tok = r / G, g = r % G, pos = it->len - p->Tq + tok;
        pt_load_row_f32(it->q + tok * p->q_st + g * p->q_sh, p->q_dtype, D, qrow);
        for (int64_t d = D; d < Dp; d++) qrow[d] = 0.0f;
        float* q = qb + r * Dp;
        for (int64_t c = 0; c < nd; c++)
            for (int64_t i = 0; i < w; i++) {
                int64_t src = bf16 ? 32 * c + (i < 16 ? 2 * i : 2 * (i - 16) + 1) : 16 * c + i;
                q[w * c + i] = qrow[src] * p->scale_log2;
            }
        memset(acc + r * Dvp, 0, (size_t)Dvp * sizeof(float));
        mr[r] = -INFINITY;
        lr[r] = 0.0f;
        lo_r[r] = imax(it->j0, pt_fa_lo(p->wl, pos));
        hi_r[r] = imin(imin(it->j1, it->len), pt_fa_hi(p->wr, pos));
        if (lo_r[r] < hi_r[r]) { jlo = imin(jlo, lo_r[r]); jhi = imax(jhi, hi_r[r]); }
    }
    jlo = imax(jlo, 0);
    const int64_t kbytes = D * (int64_t)pt_dtype_size(p->kv_dtype), vbytes = Dv * (int64_t)pt_dtype_size(p->kv_dtype);
    /* prefetch distance in blocks: at KV = 128k bf16, one thread, 0 gave 4.5-5 GB/s, 4 gave
     * 5.5-7.6, 16 gave 5.5-7.8 (of ~10 GB/s read bandwidth); the L2 hint made no difference */
    enum { PF = 16 };
    for (int64_t j = jlo; j < jlo + PF * BK && j < jhi; j++) {
        for (int64_t o = 0; o < kbytes; o += 64) _mm_prefetch(it->k + j * p->k_ss + o, _MM_HINT_T0);
        for (int64_t o = 0; o < vbytes; o += 64) _mm_prefetch(it->v + j * p->v_ss + o, _MM_HINT_T0);
    }
    for (int64_t jb = jlo; jb < jhi; jb += BK) {
        int64_t nb = imin(BK, jhi - jb);
        const char *kr[BK], *vr[BK];
        for (int k = 0; k < BK; k++) { /* rows past nb repeat the last one; their scores are masked */
            int64_t j = jb + (k < nb ? k : nb - 1);
            kr[k] = it->k + j * p->k_ss;
            vr[k] = it->v + j * p->v_ss;
        }
        for (int64_t j = jb + PF * BK; j < imin(jhi, jb + (PF + 1) * BK); j++) {
            for (int64_t o = 0; o < kbytes; o += 64) _mm_prefetch(it->k + j * p->k_ss + o, _MM_HINT_T0);
            for (int64_t o = 0; o < vbytes; o += 64) _mm_prefetch(it->v + j * p->v_ss + o, _MM_HINT_T0);
        }
        for (int64_t r0 = 0; r0 < R; r0 += 4) {
            switch (imin(4, R - r0)) {
            case 4: fd_block(4, r0, jb, kr, vr, qb, Dp, acc, Dvp, mr, lr, lo_r, hi_r, nd, nv, bf16, dtail, vtail); break;
            case 3: fd_block(3, r0, jb, kr, vr, qb, Dp, acc, Dvp, mr, lr, lo_r, hi_r, nd, nv, bf16, dtail, vtail); break;
            case 2: fd_block(2, r0, jb, kr, vr, qb, Dp, acc, Dvp, mr, lr, lo_r, hi_r, nd, nv, bf16, dtail, vtail); break;
            default: fd_block(1, r0, jb, kr, vr, qb, Dp, acc, Dvp, mr, lr, lo_r, hi_r, nd, nv, bf16, dtail, vtail); break;
            }
        }
    }
    for (int64_t r = 0; r < R; r++) {
        float* st = part + r * (Dv + 2);
        st[0] = mr[r];
        st[1] = lr[r];
        const float* a = acc + r * Dvp;
        if (bf16) { /* back from [even | odd] chunks */
            for (int64_t c = 0; c < nv; c++)
                for (int64_t i = 0; i < 16; i++) {
                    tmp[32 * c + 2 * i] = a[32 * c + i];
                    tmp[32 * c + 2 * i + 1] = a[32 * c + 16 + i];
                }
            a = tmp;
        }
        memcpy(st + 2, a, (size_t)Dv * 4);
    }
    return true;
}

/* ============================================================== decode, v2 (D, Dv multiples of 32)
 *
 * The same math as above, restructured so that nothing but K/V and the running state moves
 * through memory in the inner loops (version 8 in BENCHMARKS.md):
 *  - QK: per 32-element chunk the q chunk of each of the RG rows is loaded once into registers
 *    and used against KQ = 16 / RG keys (RG = 4: 4 keys, 16 accumulators); one 16x16
 *    transpose-add per RG·KQ = 16 (row, key) dot products, then a 128/256-bit lane shuffle gives
 *    each row its 16 scores in key order. No q reload per key, no spills (<= 28 zmm live).
 *  - steps of 32 keys (two blocks of 16 for QK), one softmax step and one pass of PV per step
 *    (session 5: 1.15x over 16-key steps with the changes below, K/V from DRAM).
 *  - softmax: the masks are skipped for blocks that every row sees whole; the running sum is a
 *    16-lane vector per row (no horizontal add per block); no horizontal max unless a score
 *    exceeds the row's running max, and the output is only rescaled when that max grew (after
 *    the first blocks of a long cache, almost never).
 *  - PV: Dv is walked in passes of NP = 16 / RG vectors whose accumulators stay in registers
 *    for the 32 keys of the step, p broadcast once per (row, key) for the pass.
 *  - K/V rows are software-prefetched a few lines per product step (fd_pfc) rather than in one
 *    burst per block: into L2 PT_FD_PF blocks ahead on AMX hosts (Sapphire Rapids, where it was
 *    measured), into L1 PT_FD_PF_L1 blocks ahead elsewhere (p->pf_l1; see fd_chunk_v2). */

/* The software-prefetch cursor (pt_fd_pfc, flash_attn_x86.h), fed `per` lines at each product
 * step of a block so that the fill buffers see a steady trickle of requests rather than one burst
 * per block (a prefetch to DRAM holds a fill buffer until its line arrives; spread: 1.1x from
 * DRAM, BENCHMARKS.md session 5). One cursor for K and V, rows in turn, in the order the steps
 * take them (until session 7: K during QK, then V during PV; 1.11-1.18x from DRAM). */
typedef struct {
    pt_fd_pfc c;
    int per; /* lines per product step */
    int l1;  /* prefetcht0 (p->pf_l1) */
} fd_pfc;
/* The hook: a counter inline, the prefetches out of line. Inlining pt_fd_prefetch's loops into
 * every hook (and unrolling PV over all 32 keys of a step) made fd_chunk_v2 663 KB of code, far
 * past the L1i and op cache: on Zen 5 the kernel ran front-end bound at a third of the FMA rate
 * (now 94 KB; in L2, one thread: bf16 20 -> 34 GB/s, f32 40 -> 50; from DRAM bf16 15 -> 21). */
static __attribute__((noinline)) void pfc_issue(fd_pfc* c) { pt_fd_prefetch_to(&c->c, 0, c->l1); }
AI void pfc_step(fd_pfc* c) {
    if (c && (c->c.budget += c->per) >= c->c.nl) pfc_issue(c);
}

/* RG rows (padded to RGP = 1, 2 or 4) x 16 keys of scores, key order in lanes of S[r]. */
AI void qk2(const int RG, const float* q, int64_t qs, const char* const* kr, int64_t nch, int bf16, __m512* S, fd_pfc* pk) {
    const int RGP = RG == 3 ? 4 : RG, KQ = 16 / RGP;
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512 g[4];
    UNROLL for (int gq = 0; gq < RGP; gq++) {
        __m512 a[16];
        UNROLL for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
        for (int64_t c = 0; c < nch; c++) {
            pfc_step(pk);
            __m512 q0[4], q1[4];
            UNROLL for (int r = 0; r < RG; r++) {
                q0[r] = _mm512_loadu_ps(q + r * qs + 32 * c);
                q1[r] = _mm512_loadu_ps(q + r * qs + 32 * c + 16);
            }
            UNROLL for (int kk = 0; kk < KQ; kk++) {
                const char* src = kr[gq * KQ + kk];
                __m512 x0, x1;
                if (bf16) {
                    __m512i x = _mm512_loadu_si512(src + 64 * c);
                    x0 = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
                    x1 = _mm512_castsi512_ps(_mm512_and_si512(x, hi));
                } else {
                    x0 = _mm512_loadu_ps(src + 128 * c);
                    x1 = _mm512_loadu_ps(src + 128 * c + 64);
                }
                UNROLL for (int r = 0; r < RG; r++) {
                    a[r * KQ + kk] = _mm512_fmadd_ps(q0[r], x0, a[r * KQ + kk]);
                    a[r * KQ + kk] = _mm512_fmadd_ps(q1[r], x1, a[r * KQ + kk]);
                }
            }
        }
        g[gq] = hsum16(a); /* lane r * KQ + kk */
    }
    if (RGP == 1) {
        S[0] = g[0];
    } else if (RGP == 2) {
        S[0] = _mm512_shuffle_f32x4(g[0], g[1], _MM_SHUFFLE(1, 0, 1, 0));
        S[1] = _mm512_shuffle_f32x4(g[0], g[1], _MM_SHUFFLE(3, 2, 3, 2));
    } else {
        __m512 t0 = _mm512_shuffle_f32x4(g[0], g[1], _MM_SHUFFLE(1, 0, 1, 0)), t1 = _mm512_shuffle_f32x4(g[0], g[1], _MM_SHUFFLE(3, 2, 3, 2));
        __m512 t2 = _mm512_shuffle_f32x4(g[2], g[3], _MM_SHUFFLE(1, 0, 1, 0)), t3 = _mm512_shuffle_f32x4(g[2], g[3], _MM_SHUFFLE(3, 2, 3, 2));
        S[0] = _mm512_shuffle_f32x4(t0, t2, _MM_SHUFFLE(2, 0, 2, 0));
        S[1] = _mm512_shuffle_f32x4(t0, t2, _MM_SHUFFLE(3, 1, 3, 1));
        S[2] = _mm512_shuffle_f32x4(t1, t3, _MM_SHUFFLE(2, 0, 2, 0));
        S[3] = _mm512_shuffle_f32x4(t1, t3, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* acc[r][v0 .. v0+NP) (vectors of 16) = acc * alpha[r] (if rescale) + Σ_k pb[r][k] V[k]. */
AI void pv2_pass(const int RG, const int NP, const int NK, float* acc, int64_t as, int64_t v0, const float* pb, const float* alpha,
                 int rescale, const char* const* vr, int bf16, fd_pfc* pv) {
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512 x[4][16];
    UNROLL for (int r = 0; r < RG; r++) {
        __m512 al = _mm512_set1_ps(alpha[r]);
        UNROLL for (int i = 0; i < NP; i++) {
            x[r][i] = _mm512_loadu_ps(acc + r * as + 16 * (v0 + i));
            if (rescale) x[r][i] = _mm512_mul_ps(x[r][i], al);
        }
    }
    _Pragma("GCC unroll 2") for (int k = 0; k < NK; k++) { /* not unrolled further: code size (pfc_step) */
        pfc_step(pv);
        __m512 p[4];
        UNROLL for (int r = 0; r < RG; r++) p[r] = _mm512_set1_ps(pb[NK * r + k]);
        UNROLL for (int i = 0; i < NP; i += 2) {
            __m512 y0, y1;
            if (bf16) {
                __m512i w = _mm512_loadu_si512(vr[k] + 32 * (v0 + i));
                y0 = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
                y1 = _mm512_castsi512_ps(_mm512_and_si512(w, hi));
            } else {
                y0 = _mm512_loadu_ps(vr[k] + 64 * (v0 + i));
                y1 = _mm512_loadu_ps(vr[k] + 64 * (v0 + i) + 64);
            }
            UNROLL for (int r = 0; r < RG; r++) {
                x[r][i] = _mm512_fmadd_ps(p[r], y0, x[r][i]);
                x[r][i + 1] = _mm512_fmadd_ps(p[r], y1, x[r][i + 1]);
            }
        }
    }
    UNROLL for (int r = 0; r < RG; r++)
        UNROLL for (int i = 0; i < NP; i++) _mm512_storeu_ps(acc + r * as + 16 * (v0 + i), x[r][i]);
}

AI void pv2(const int RG, const int NK, float* acc, int64_t as, int64_t nvv, const float* pb, const float* alpha, int rescale,
            const char* const* vr, int bf16, fd_pfc* pv) {
    const int NP = RG == 1 ? 16 : RG == 2 ? 8 : 4; /* RG * NP <= 16 accumulators */
    int64_t v0 = 0;
    for (; v0 + NP <= nvv; v0 += NP) pv2_pass(RG, NP, NK, acc, as, v0, pb, alpha, rescale, vr, bf16, pv);
    for (; v0 < nvv; v0 += 2) pv2_pass(RG, 2, NK, acc, as, v0, pb, alpha, rescale, vr, bf16, pv);
}

/* One block of NB x 16 keys (from jb) for rows r0 .. r0+RG-1; state m[r], lv[r][16] (sum lanes).
 * NB = 2: one softmax step (max, rescale, exp) and one pass over the accumulators per 32 keys. */
AI void fd2_block(const int RG, const int NB, int64_t r0, int64_t jb, const char* const* kr, const char* const* vr, const float* qb,
                  int64_t Dp, float* acc, int64_t Dvp, float* mr, float* lv, const int64_t* lo_r, const int64_t* hi_r, int full,
                  int64_t nch, int64_t nvv, int bf16, fd_pfc* pk, fd_pfc* pv) {
    const int NK = 16 * NB;
    __m512 S[2][4];
    UNROLL for (int sb = 0; sb < NB; sb++) qk2(RG, qb + r0 * Dp, Dp, kr + 16 * sb, nch, bf16, S[sb], pk);
    float pb[4 * 32] __attribute__((aligned(64)));
    float alpha[4];
    int any = 0, rescale = 0;
    const __m512i jj = _mm512_add_epi32(_mm512_set1_epi32((int32_t)jb), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    UNROLL for (int i = 0; i < RG; i++) {
        int64_t r = r0 + i;
        __m512 s[2];
        UNROLL for (int sb = 0; sb < NB; sb++) {
            s[sb] = S[sb][i];
            if (!full) {
                __m512i j = _mm512_add_epi32(jj, _mm512_set1_epi32(16 * sb));
                __mmask16 ok = _mm512_cmpge_epi32_mask(j, _mm512_set1_epi32(clamp32(lo_r[r]))) &
                               _mm512_cmplt_epi32_mask(j, _mm512_set1_epi32(clamp32(hi_r[r])));
                s[sb] = _mm512_mask_blend_ps(ok, ninf, s[sb]);
            }
        }
        const __m512 mx = NB == 2 ? _mm512_max_ps(s[0], s[1]) : s[0];
        __m512 l = _mm512_loadu_ps(lv + 16 * r);
        alpha[i] = 1.0f;
        /* No horizontal max unless a score exceeds the running max (after the first blocks of a
         * long cache, almost never); masked keys then give exp2(-inf - m) = 0. */
        if (mr[r] == -INFINITY || _mm512_cmp_ps_mask(mx, _mm512_set1_ps(mr[r]), _CMP_GT_OQ)) {
            float mb = _mm512_reduce_max_ps(mx);
            if (mb == -INFINITY) { /* nothing visible to this row here */
                UNROLL for (int sb = 0; sb < NB; sb++) _mm512_store_ps(pb + NK * i + 16 * sb, _mm512_setzero_ps());
                continue;
            }
            alpha[i] = mr[r] == -INFINITY ? 0.0f : exp2f(mr[r] - mb);
            mr[r] = mb;
            l = _mm512_mul_ps(l, _mm512_set1_ps(alpha[i]));
            rescale = 1;
        }
        any = 1;
        const __m512 m = _mm512_set1_ps(mr[r]);
        UNROLL for (int sb = 0; sb < NB; sb++) {
            __m512 e = exp2_ps(_mm512_sub_ps(s[sb], m));
            l = _mm512_add_ps(l, e);
            _mm512_store_ps(pb + NK * i + 16 * sb, e);
        }
        _mm512_storeu_ps(lv + 16 * r, l);
    }
    if (any) pv2(RG, NK, acc + r0 * Dvp, Dvp, nvv, pb, alpha, rescale, vr, bf16, pv);
}

/* software prefetch distance in blocks of 16 rows (even). Measured in BENCHMARKS.md (issue 3,
 * version 8; session 5: 2, 4, 8 and 16 alike with the spread prefetch). */
#ifndef PT_FD_SPLIT /* ranges of at least this many steps of 32 keys run as two halves (0: never) */
#  define PT_FD_SPLIT 16
#endif
#ifndef PT_FD_PF
#  define PT_FD_PF 4
#endif
#ifndef PT_FD_PF_L1 /* the distance with p->pf_l1 (prefetcht0, unsplit) */
#  define PT_FD_PF_L1 2
#endif

static bool fd_chunk_v2(const pt_fd_problem* p, const pt_fd_item* it, float* part) {
    enum { BK = PT_FD_BK };
    const int64_t D = p->D, Dv = p->Dv, G = p->G, R = G * p->Tq;
    const int bf16 = p->kv_dtype == PT_BF16;
    const int64_t nch = D / 32, nvv = Dv / 16, Dp = D, Dvp = Dv;
    float* buf = (float*)pt_scratch(0, (size_t)(R * Dp + R * Dvp + 17 * R + Dvp + 64) * sizeof(float));
    if (!buf) return false;
    float *qb = buf, *acc = qb + R * Dp, *lv = acc + R * Dvp, *mr = lv + 16 * R, *tmp = mr + R;
    int64_t lo_r[256], hi_r[256];
    int64_t jlo = it->j1, jhi = it->j0, lo_all = INT64_MIN, hi_all = INT64_MAX;
    float qrow[256];
    for (int64_t r = 0; r < R; r++) {
        int64_t tok = r / G, g = r % G, pos = it->len - p->Tq + tok;
        pt_load_row_f32(it->q + tok * p->q_st + g * p->q_sh, p->q_dtype, D, qrow);
        float* q = qb + r * Dp;
        for (int64_t c = 0; c < nch; c++)
            for (int64_t i = 0; i < 32; i++) {
                int64_t src = bf16 ? 32 * c + (i < 16 ? 2 * i : 2 * (i - 16) + 1) : 32 * c + i;
                q[32 * c + i] = qrow[src] * p->scale_log2;
            }
        memset(acc + r * Dvp, 0, (size_t)Dvp * sizeof(float));
        memset(lv + 16 * r, 0, 16 * sizeof(float));
        mr[r] = -INFINITY;
        lo_r[r] = imax(it->j0, pt_fa_lo(p->wl, pos));
        hi_r[r] = imin(imin(it->j1, it->len), pt_fa_hi(p->wr, pos));
        if (lo_r[r] < hi_r[r]) { jlo = imin(jlo, lo_r[r]); jhi = imax(jhi, hi_r[r]); }
        lo_all = imax(lo_all, lo_r[r]);
        hi_all = imin(hi_all, hi_r[r]);
    }
    jlo = imax(jlo, 0);
    const int64_t kbytes = D * (int64_t)pt_dtype_size(p->kv_dtype), vbytes = Dv * (int64_t)pt_dtype_size(p->kv_dtype);
    /* Steps of BS = 32 keys (two blocks of 16). On AMX hosts (!p->pf_l1, as measured on Sapphire
     * Rapids) K/V are prefetched into L2 PT_FD_PF blocks of 16 rows ahead (twice that in the
     * cursor's order when split), a few lines per hook of the products (fd_pfc), the top of each
     * step issuing what the hooks left behind, and ranges of at least PT_FD_SPLIT steps run as
     * two halves, step by step in turn (the first half has the odd step; all its steps are full),
     * so that the cursor feeds 4 streams instead of 2; the softmax does not depend on the order
     * of the steps (the split runs only there: test_attention's variant 2 on AMX hosts).
     * p->pf_l1 (hosts without AMX): prefetcht0 PT_FD_PF_L1 blocks ahead, never split. On Zen 5,
     * one thread, K/V from DRAM (scripts/fd-harness, dram 32768 8): L2 hint 4 blocks split f32
     * 18.1 GB/s, bf16 ~21; t0 split 22.2 / 23.1; t0 unsplit 25.6 / 28.7; t0 unsplit 2 blocks
     * 25.9 / 30.0 (8 blocks 23.2 / 28.0; NTA as t0). */
    enum { BS = 2 * BK };
    const int RG0 = (int)imin(4, R), RGP0 = RG0 == 3 ? 4 : RG0, NP0 = RG0 == 1 ? 16 : RG0 == 2 ? 8 : 4;
    const int64_t qk_steps = 2 * RGP0 * nch, pv_steps = BS * ((nvv / NP0) + (nvv % NP0) / 2);
    const int64_t nst = (jhi - jlo + BS - 1) / BS, total = jhi - jlo;
    const int64_t nA = !p->pf_l1 && PT_FD_SPLIT > 0 && nst >= PT_FD_SPLIT ? (nst + 1) / 2 : nst, mid = jlo + nA * BS, nB = nst - nA;
    const int nl = (int)(kbytes / 64 + vbytes / 64);
    fd_pfc pc = {{it->k, it->v, p->k_ss, p->v_ss, kbytes, vbytes, 0, 0, jlo, mid, nB > 0 ? 2 * (jhi - mid) : 0, 0, nl},
                 (int)((BS * nl + qk_steps + pv_steps - 1) / (qk_steps + pv_steps)), p->pf_l1};
    const int64_t pfk = (p->pf_l1 ? PT_FD_PF_L1 : PT_FD_PF) * BK * (nB > 0 ? 2 : 1); /* prefetch distance in rows of the cursor, a multiple of BS */
    pc.c.xe = imin(total, pfk);
    pt_fd_prefetch_to(&pc.c, (int)pc.c.xe * nl, pc.l1); /* the first pfk rows at once */
    for (int64_t st = 0; st < nst; st++) {
        const int64_t jb = st < 2 * nB ? ((st & 1) ? mid : jlo) + (st >> 1) * BS : jlo + (st - nB) * BS;
        const int64_t nb = imin(BS, jhi - jb);
        pc.c.xe = imin(total, st * BS + pfk + BS);
        for (const int64_t due = imin(total, st * BS + pfk); pc.c.x < due;) pt_fd_prefetch_to(&pc.c, nl, pc.l1);
        fd_pfc* pcp = pc.c.x < pc.c.xe ? &pc : NULL;
        const char *kr[BS], *vr[BS];
        for (int k = 0; k < BS; k++) { /* rows past nb repeat the last one; their scores are masked */
            int64_t j = jb + (k < nb ? k : nb - 1);
            kr[k] = it->k + j * p->k_ss;
            vr[k] = it->v + j * p->v_ss;
        }
        int full = nb == BS && jb >= lo_all && jb + BS <= hi_all;
        /* a step of <= 16 keys (a short cache, or the last step) runs one block of 16, not a
         * 32-key step half masked: the masked keys added exact zeros, so the result is the same */
        const int half = nb <= BK;
        for (int64_t r0 = 0; r0 < R; r0 += 4) { /* the first row group carries the prefetches */
            fd_pfc *pk = r0 == 0 ? pcp : NULL, *pv = pk;
/* the dtype a constant in each instance: tested in the inner loops it cost 10% in L2 on Zen 5
 * (bf16 35.0 -> 38.4 GB/s, f32 51.3 -> 57.0; from DRAM 29.5 -> 31.2, 28.1 -> 28.9) */
#define FD2T(RG, NB, BF) fd2_block(RG, NB, r0, jb, kr, vr, qb, Dp, acc, Dvp, mr, lv, lo_r, hi_r, full, nch, nvv, BF, pk, pv)
#define FD2(RG, NB) (bf16 ? FD2T(RG, NB, 1) : FD2T(RG, NB, 0))
            switch (imin(4, R - r0) + 4 * half) {
            case 4: FD2(4, 2); break;
            case 3: FD2(3, 2); break;
            case 2: FD2(2, 2); break;
            case 1: FD2(1, 2); break;
            case 8: FD2(4, 1); break;
            case 7: FD2(3, 1); break;
            case 6: FD2(2, 1); break;
            default: FD2(1, 1); break;
            }
#undef FD2
#undef FD2T
        }
    }
    for (int64_t r = 0; r < R; r++) {
        float* st = part + r * (Dv + 2);
        st[0] = mr[r];
        st[1] = mr[r] == -INFINITY ? 0.0f : _mm512_reduce_add_ps(_mm512_loadu_ps(lv + 16 * r));
        const float* a = acc + r * Dvp;
        if (bf16) { /* back from [even | odd] chunks */
            for (int64_t c = 0; c < Dv / 32; c++)
                for (int64_t i = 0; i < 16; i++) {
                    tmp[32 * c + 2 * i] = a[32 * c + i];
                    tmp[32 * c + 2 * i + 1] = a[32 * c + 16 + i];
                }
            a = tmp;
        }
        memcpy(st + 2, a, (size_t)Dv * 4);
    }
    return true;
}
