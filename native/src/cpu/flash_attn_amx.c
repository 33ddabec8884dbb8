/* AMX-BF16 flash-attention prefill tile (bf16 q, k, v; D and Dv multiples of 32; chosen at
 * run time when the CPU and OS grant AMX). Same items and sub-tiles as the AVX-512 kernel
 * (flash_attn.h), but the two products run on the tile unit and rows sit in tile rows:
 *
 *   S[rows][keys]  = Q[rows][D] · Kᵀ          A = Q rows (packed once per item),
 *                                             B = K pair-transposed per key tile (16x16
 *                                                 32-bit transposes, shared by the sub-tiles)
 *   online softmax per row (64 keys = 4 zmm; row max/sum are horizontal reductions), P in bf16
 *   O[rows][dv]   = O·alpha + P[rows][keys] · V   A = P rows, B = V rows interleaved in pairs
 *
 * 2x2 register blocking of C tiles: tmm0-3 accumulate, tmm4-5 hold A, tmm6-7 hold B.
 * Rounding: q, k, v are bf16 already; P is rounded to bf16 for the second product (as GPU
 * FlashAttention does); the row sums use the unrounded P; accumulation is f32. */
#include "cpu/flash_attn_x86.h"

#include <math.h>

#define BR PT_FA_BR
#define BC PT_FA_BC

#if defined(__GNUC__)
/* GCC's _tile_loadd has no "memory" clobber (the compiler may sink the stores that pack its
 * operand past it) and passes the stride as long, 32 bits on Windows (invalid index register
 * with mingw). These wrappers fix both. */
#  define TILE_LOAD(t, base, stride)                                                              \
    __asm__ volatile("{tileloadd\t(%0,%1,1), %%tmm" #t "|tileloadd\t%%tmm" #t ", [%0+%1*1]}"    \
                     ::"r"((const void*)(base)), "r"((long long)(stride)) : "memory")
#  define TILE_STORE(t, base, stride)                                                             \
    __asm__ volatile("{tilestored\t%%tmm" #t ", (%0,%1,1)|tilestored\t[%0+%1*1], %%tmm" #t "}" \
                     ::"r"((void*)(base)), "r"((long long)(stride)) : "memory")
#else
#  define TILE_LOAD(t, base, stride) _tile_loadd(t, base, stride)
#  define TILE_STORE(t, base, stride) _tile_stored(t, base, stride)
#endif

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static void tile_config(void) {
    tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.colsb[i] = 64;
        c.rows[i] = 16;
    }
    _tile_loadconfig(&c);
}

/* In-register 16x16 transpose of 32-bit elements: r[j][i] <- r[i][j]. */
AI void transpose16(__m512i* r) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) { /* u[g + c]: lane L = column 4L + c of rows g..g+3 */
        u[g + 0] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
        u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
        u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
        u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i a = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), b = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
        __m512i cc = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88), d = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_i32x4(a, cc, 0x88);
        r[8 + c] = _mm512_shuffle_i32x4(a, cc, 0xdd);
        r[4 + c] = _mm512_shuffle_i32x4(b, d, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(b, d, 0xdd);
    }
}

static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

bool pt_fa_tile_amx(const pt_fa_problem* p, const pt_fa_tile* t) {
    enum { NSUB = PT_FA_MAX_SUB };
    const int64_t D = p->D, Dv = p->Dv, nh = t->nh, R = t->nt * t->nh, nsub = (R + BR - 1) / BR;
    const int64_t ndb = D / 32, ndv = Dv / 16;
    /* scratch (u16 / f32 / u32 units, all 64-byte multiples): Qp[nsub][64][D] bf16 | O[nsub][64][Dv]
     * | S[64][64] | P[64][64] bf16 | Kt[ndb][4][16][16] u32 | Vp[2][ndv][16][16] u32 | m, l, alpha */
    size_t bq = (size_t)nsub * BR * D * 2, bo = (size_t)nsub * BR * Dv * 4, bs = (size_t)BR * BC * 4, bp = (size_t)BR * BC * 2;
    size_t bk = (size_t)ndb * 4 * 256 * 4, bv = (size_t)2 * ndv * 256 * 4, bm = (size_t)(2 * nsub * BR + BR) * 4;
    char* buf = (char*)pt_scratch(0, bq + bo + bs + bp + bk + bv + bm + 256);
    if (!buf) return false;
    uint16_t* Qp = (uint16_t*)buf;
    float* O = (float*)(buf + bq);
    float* S = (float*)(buf + bq + bo);
    uint16_t* P = (uint16_t*)(buf + bq + bo + bs);
    uint32_t* Kt = (uint32_t*)(buf + bq + bo + bs + bp);
    uint32_t* Vp = (uint32_t*)(buf + bq + bo + bs + bp + bk);
    float *m = (float*)(buf + bq + bo + bs + bp + bk + bv), *l = m + nsub * BR, *alpha = l + nsub * BR;

    memset(Qp, 0, bq);
    memset(O, 0, bo);
    for (int64_t r = 0; r < R; r++) {
        int64_t tok = r / nh, g = r % nh;
        memcpy(Qp + r * D, t->q + (t->t0 + tok) * p->q_ss + (t->h0 + g) * p->q_sh, (size_t)D * 2);
    }
    int64_t pmin[NSUB], pmax[NSUB];
    for (int64_t st = 0; st < nsub; st++) {
        int64_t r0 = st * BR, r1 = imin(R, r0 + BR) - 1;
        pmin[st] = t->t0 + r0 / nh + t->p_off;
        pmax[st] = t->t0 + r1 / nh + t->p_off;
    }
    for (int64_t i = 0; i < nsub * BR; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    tile_config();
    const __m512 sc = _mm512_set1_ps(p->scale_log2), ninf = _mm512_set1_ps(-INFINITY);
    const __m512i ilo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                         39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i ihi = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24,
                                         55, 23, 54, 22, 53, 21, 52, 20, 51, 19, 50, 18, 49, 17, 48, 16);
    int64_t lo = imax(0, pt_fa_lo(p->wl, pmin[0])), hi = imin(t->sk, pt_fa_hi(p->wr, pmax[nsub - 1]));
    for (int64_t j0 = lo; j0 < hi; j0 += BC) {
        int64_t nk = imin(BC, hi - j0);
        uint64_t pad = nk == 64 ? ~0ull : (1ull << nk) - 1;
        if (t->mask) {
            pad = 0;
            for (int64_t j = 0; j < nk; j++) pad |= (uint64_t)pt_fa_mask_on(t->mask, p->mask_dtype, p->mask_ss, j0 + j) << j;
            if (!pad) continue;
        }
        const char* k0 = t->k + j0 * p->k_ss;
        const char* v0 = t->v + j0 * p->v_ss;
        /* Kᵀ in pairs: Kt[db][kb] row pp = (K[16kb + n][32db + 2pp], ...+1) for n = 0..15 */
        int64_t nkb = ((nk + 15) / 16 + 1) / 2 * 2;
        for (int64_t kb = 0; kb < nkb; kb++)
            for (int64_t db = 0; db < ndb; db++) {
                __m512i r[16];
                for (int n = 0; n < 16; n++) {
                    int64_t j = kb * 16 + n;
                    r[n] = j < nk ? _mm512_loadu_si512(k0 + j * p->k_ss + 64 * db) : _mm512_setzero_si512();
                }
                transpose16(r);
                uint32_t* dst = Kt + (db * 4 + kb) * 256;
                for (int pp = 0; pp < 16; pp++) _mm512_store_si512(dst + 16 * pp, r[pp]);
            }
        /* V in pairs: Vp[kb2][dvb] row pp = (V[32kb2 + 2pp][16dvb + n], V[32kb2 + 2pp + 1][16dvb + n]) */
        int64_t nkb2 = (nk + 31) / 32;
        for (int64_t kb2 = 0; kb2 < nkb2; kb2++)
            for (int pp = 0; pp < 16; pp++) {
                int64_t ja = kb2 * 32 + 2 * pp, jb = ja + 1;
                for (int64_t dv = 0; dv < Dv; dv += 32) {
                    __m512i x = ja < nk ? _mm512_loadu_si512(v0 + ja * p->v_ss + 2 * dv) : _mm512_setzero_si512();
                    __m512i y = jb < nk ? _mm512_loadu_si512(v0 + jb * p->v_ss + 2 * dv) : _mm512_setzero_si512();
                    int64_t dvb = dv / 16;
                    _mm512_store_si512(Vp + ((kb2 * ndv + dvb) * 16 + pp) * 16, _mm512_permutex2var_epi16(x, ilo, y));
                    _mm512_store_si512(Vp + ((kb2 * ndv + dvb + 1) * 16 + pp) * 16, _mm512_permutex2var_epi16(x, ihi, y));
                }
            }
        for (int64_t st = 0; st < nsub; st++) {
            int64_t slo = imax(j0, pt_fa_lo(p->wl, pmin[st])), shi = imin(j0 + nk, pt_fa_hi(p->wr, pmax[st]));
            if (slo >= shi) continue;
            int64_t nk_s = shi - j0, Rs = imin(R - st * BR, BR);
            int64_t nrb = ((Rs + 15) / 16 + 1) / 2 * 2, nkb_s = ((nk_s + 15) / 16 + 1) / 2 * 2;
            const uint16_t* Q = Qp + st * BR * D;
            float *Os = O + st * BR * Dv, *ms = m + st * BR, *ls = l + st * BR;
            /* S = Q Kᵀ */
            for (int64_t rb = 0; rb < nrb; rb += 2)
                for (int64_t kb = 0; kb < nkb_s; kb += 2) {
                    _tile_zero(0);
                    _tile_zero(1);
                    _tile_zero(2);
                    _tile_zero(3);
                    for (int64_t db = 0; db < ndb; db++) {
                        TILE_LOAD(4, Q + rb * 16 * D + 32 * db, D * 2);
                        TILE_LOAD(5, Q + (rb + 1) * 16 * D + 32 * db, D * 2);
                        TILE_LOAD(6, Kt + (db * 4 + kb) * 256, 64);
                        TILE_LOAD(7, Kt + (db * 4 + kb + 1) * 256, 64);
                        _tile_dpbf16ps(0, 4, 6);
                        _tile_dpbf16ps(1, 4, 7);
                        _tile_dpbf16ps(2, 5, 6);
                        _tile_dpbf16ps(3, 5, 7);
                    }
                    TILE_STORE(0, S + rb * 16 * BC + kb * 16, BC * 4);
                    TILE_STORE(1, S + rb * 16 * BC + (kb + 1) * 16, BC * 4);
                    TILE_STORE(2, S + (rb + 1) * 16 * BC + kb * 16, BC * 4);
                    TILE_STORE(3, S + (rb + 1) * 16 * BC + (kb + 1) * 16, BC * 4);
                }
            /* online softmax per row, P in bf16; the rescale factors and sums are finished 16
             * rows at a time (a scalar exp2f per row was 6% of the time) */
            float* mold = alpha; /* the old maxima, turned into alphas below */
            float rsum[BR] __attribute__((aligned(64)));
            for (int64_t r = 0; r < nrb * 16; r++) {
                uint16_t* prow = P + r * BC;
                mold[r] = ms[r];
                rsum[r] = 0.0f;
                uint64_t bits = 0;
                if (r < Rs) {
                    int64_t pos = t->t0 + (st * BR + r) / nh + t->p_off;
                    int64_t a = imax(pt_fa_lo(p->wl, pos) - j0, 0), b = imin(pt_fa_hi(p->wr, pos) - j0, nk_s);
                    if (a < b) bits = (b >= 64 ? ~0ull : (1ull << b) - 1) & ~((1ull << a) - 1) & pad;
                }
                if (!bits) {
                    _mm512_storeu_si512(prow, _mm512_setzero_si512());
                    _mm512_storeu_si512(prow + 32, _mm512_setzero_si512());
                    continue;
                }
                __m512 sv[4];
                __m512 mx = ninf;
                for (int q4 = 0; q4 < 4; q4++) {
                    __mmask16 k = (__mmask16)(bits >> (16 * q4));
                    sv[q4] = _mm512_mask_blend_ps(k, ninf, _mm512_mul_ps(_mm512_loadu_ps(S + r * BC + 16 * q4), sc));
                    mx = _mm512_max_ps(mx, sv[q4]);
                }
                float mb = _mm512_reduce_max_ps(mx);
                float m_new = ms[r] > mb ? ms[r] : mb;
                __m512 mv = _mm512_set1_ps(m_new), sum = _mm512_setzero_ps();
                for (int q4 = 0; q4 < 4; q4++) {
                    sv[q4] = exp2_ps(_mm512_sub_ps(sv[q4], mv));
                    sum = _mm512_add_ps(sum, sv[q4]);
                }
                rsum[r] = _mm512_reduce_add_ps(sum);
                ms[r] = m_new;
                _mm512_storeu_si512(prow, (__m512i)_mm512_cvtne2ps_pbh(sv[1], sv[0]));
                _mm512_storeu_si512(prow + 32, (__m512i)_mm512_cvtne2ps_pbh(sv[3], sv[2]));
            }
            for (int64_t r = 0; r < nrb * 16; r += 16) {
                __m512 mo = _mm512_loadu_ps(mold + r), mn = _mm512_loadu_ps(ms + r);
                /* unchanged max: 1; first keys of a row (old max -inf): 0 (its O row is 0) */
                __m512 al = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(mo, mn, _CMP_EQ_OQ), exp2_ps(_mm512_sub_ps(mo, mn)), _mm512_set1_ps(1.0f));
                _mm512_storeu_ps(alpha + r, al);
                _mm512_storeu_ps(ls + r, _mm512_fmadd_ps(_mm512_loadu_ps(ls + r), al, _mm512_load_ps(rsum + r)));
            }
            for (int64_t r = 0; r < Rs; r++) {
                if (alpha[r] == 1.0f) continue;
                __m512 av = _mm512_set1_ps(alpha[r]);
                float* orow = Os + r * Dv;
                for (int64_t c = 0; c < Dv; c += 16) _mm512_storeu_ps(orow + c, _mm512_mul_ps(_mm512_loadu_ps(orow + c), av));
            }
            /* O += P V */
            int64_t nkb2_s = (nk_s + 31) / 32;
            for (int64_t rb = 0; rb < nrb; rb += 2)
                for (int64_t dvb = 0; dvb < ndv; dvb += 2) {
                    TILE_LOAD(0, Os + rb * 16 * Dv + dvb * 16, Dv * 4);
                    TILE_LOAD(1, Os + rb * 16 * Dv + (dvb + 1) * 16, Dv * 4);
                    TILE_LOAD(2, Os + (rb + 1) * 16 * Dv + dvb * 16, Dv * 4);
                    TILE_LOAD(3, Os + (rb + 1) * 16 * Dv + (dvb + 1) * 16, Dv * 4);
                    for (int64_t kb2 = 0; kb2 < nkb2_s; kb2++) {
                        TILE_LOAD(4, P + rb * 16 * BC + 32 * kb2, BC * 2);
                        TILE_LOAD(5, P + (rb + 1) * 16 * BC + 32 * kb2, BC * 2);
                        TILE_LOAD(6, Vp + (kb2 * ndv + dvb) * 256, 64);
                        TILE_LOAD(7, Vp + (kb2 * ndv + dvb + 1) * 256, 64);
                        _tile_dpbf16ps(0, 4, 6);
                        _tile_dpbf16ps(1, 4, 7);
                        _tile_dpbf16ps(2, 5, 6);
                        _tile_dpbf16ps(3, 5, 7);
                    }
                    TILE_STORE(0, Os + rb * 16 * Dv + dvb * 16, Dv * 4);
                    TILE_STORE(1, Os + rb * 16 * Dv + (dvb + 1) * 16, Dv * 4);
                    TILE_STORE(2, Os + (rb + 1) * 16 * Dv + dvb * 16, Dv * 4);
                    TILE_STORE(3, Os + (rb + 1) * 16 * Dv + (dvb + 1) * 16, Dv * 4);
                }
        }
    }
    _tile_release();
    float orow[256];
    for (int64_t r = 0; r < R; r++) {
        int64_t tok = r / nh, g = r % nh;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        const float* o = O + r * Dv; /* sub-tiles are consecutive blocks of 64 rows */
        for (int64_t dv = 0; dv < Dv; dv++) orow[dv] = o[dv] * inv;
        pt_store_row_f32(orow, Dv, p->out_dtype, t->out + (t->t0 + tok) * p->out_ss + (t->h0 + g) * p->out_sh);
        if (t->lse) {
            float v = l[r] > 0.0f ? (float)((m[r] + log2((double)l[r])) * 0.69314718055994530942) : -INFINITY;
            memcpy(t->lse + (t->h0 + g) * p->lse_sh + (t->t0 + tok) * p->lse_ss, &v, 4);
        }
    }
    return true;
}
