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
    enum { NSUB = PT_FA_MAX_SUB_AMX };
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

/* ============================================================== decode (AMX-BF16)
 *
 * One item = one kv head, its R = G·Tq <= 16 query rows, a chunk of the cache (flash_attn.h).
 * Blocks of 32 keys:
 *   Sᵀ[keys][rows] = K[keys][D] · Qᵀ[D][rows]   A = 16 cache rows read in place (tileloadd with
 *                                                the cache row stride), B = Qᵀ in pairs (built
 *                                                once per item), C = 16 x R scores
 *   softmax per row over the 32 scores (gathered from the Sᵀ tile: keys in lanes), P in bf16
 *   O[rows][dv]    = O·alpha + P[rows][32 keys] · V   A = P, B = two cache rows interleaved by
 *                                                vpunpck{l,h}wd (the dv order this leaves is kept
 *                                                in O and undone once at the end)
 * So per cache row the vector units only interleave V (2 shuffles + 2 stores per 64 bytes) and
 * the tile unit does all multiply-adds: 8 B of K/V per ~1 vector op instead of ~8 B per FMA.
 * Rounding as in the prefill: q, k, v bf16; P rounded to bf16 for P·V, the row sums use the
 * unrounded P; accumulation f32. Rows past the valid range repeat the last valid row (their
 * scores are masked, their P is 0): a NaN-poisoned cache tail is never read. */

static void fd_tile_config(int R) {
    tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) { c.rows[t] = 16; c.colsb[t] = 64; } /* tmm1, tmm7: K rows (A) or V pairs (B) */
    c.colsb[0] = c.colsb[3] = (uint16_t)(4 * R);                    /* Sᵀ, keys 0-15 and 16-31 */
    c.colsb[2] = (uint16_t)(4 * R);                                  /* Qᵀ pairs */
    c.rows[4] = c.rows[5] = (uint8_t)R;                              /* O, two dv tiles */
    c.rows[6] = (uint8_t)R;                                          /* P */
    _tile_loadconfig(&c);
}

/* Software prefetch into L2 (pt_fd_pfc) of every line of K and V, PT_FD_AMX_PF blocks of 32
 * rows ahead, from one cursor that walks the rows in order and is fed at hooks spread over the
 * whole block: each QK chunk, each softmax row, each V-interleave row pair, each P·V tile pair
 * (fd_pf). The hooks' counts split a block's lines roughly in proportion to the time each part
 * takes (in-cache profile, D = Dv = 128, R = 4: QK ~31%, P·V ~30%, V interleave ~19%, softmax
 * ~15%); the top of each block issues what they left behind, and they stop at the end of the
 * block pf ahead. Issuing the same prefetches during the V interleave only (until session 6)
 * left the memory idle for most of the block: the even spread reads 1.15-1.3x faster from DRAM
 * (BENCHMARKS.md, issue 3, session 6). Distances of 3-16 blocks measured alike; earlier
 * (version 13): every line rather than every 2nd / 4th line 1.25x; NTA at 2 blocks 0.58x. */
#ifndef PT_FD_AMX_PF
#  define PT_FD_AMX_PF 4
#endif
/* ranges of at least this many blocks run as two halves in turn (0: never; see pt_fd_chunk_amx) */
#ifndef PT_FD_AMX_SPLIT
#  define PT_FD_AMX_SPLIT 16
#endif

/* The prefetch cursor (pt_fd_pfc) and the lines each hook adds: QK (one per chunk of 32 dims),
 * softmax (per row), V interleave (per row pair) and P·V (per pair of dv tiles, one call every
 * 2nd block). */
typedef struct {
    pt_fd_pfc c;
    int nqk, nsm, nvil, npv;
} fd_pfc;

AI void fd_pf(fd_pfc* pc, int n) { pt_fd_prefetch(&pc->c, n); }

/* R = 4: the 16 x 4 score tile at st (lane 4 * key + row, 4 zmm) -> sr[row][h] = the row's 16
 * scores in key order. Two-source permutes pick keys 0-7 / 8-15 of two rows at a time, then
 * 128-bit shuffles join the halves (8 shuffles instead of 4 gathers). */
AI void st4_rows(const float* st, __m512 (*sr)[2], int h) {
    const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i i23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    __m512 z0 = _mm512_load_ps(st), z1 = _mm512_load_ps(st + 16), z2 = _mm512_load_ps(st + 32), z3 = _mm512_load_ps(st + 48);
    __m512 ab01 = _mm512_permutex2var_ps(z0, i01, z1), ab23 = _mm512_permutex2var_ps(z0, i23, z1);
    __m512 cd01 = _mm512_permutex2var_ps(z2, i01, z3), cd23 = _mm512_permutex2var_ps(z2, i23, z3);
    sr[0][h] = _mm512_shuffle_f32x4(ab01, cd01, _MM_SHUFFLE(1, 0, 1, 0));
    sr[1][h] = _mm512_shuffle_f32x4(ab01, cd01, _MM_SHUFFLE(3, 2, 3, 2));
    sr[2][h] = _mm512_shuffle_f32x4(ab23, cd23, _MM_SHUFFLE(1, 0, 1, 0));
    sr[3][h] = _mm512_shuffle_f32x4(ab23, cd23, _MM_SHUFFLE(3, 2, 3, 2));
}

/* V rows jb .. jb+31 interleaved in pairs into vb: tile t = 2c (+1) holds dv 32c + {0-3, 8-11,
 * 16-19, 24-27} (+4); rows past the valid ones repeat the last valid row (their P is 0). */
AI void fd_amx_vil(const pt_fd_problem* p, const pt_fd_item* it, int64_t jb, int64_t jhi, char* vb, fd_pfc* pc) {
    const int64_t nb = imin(32, jhi - jb), nc = p->Dv / 32;
    for (int64_t i = 0; i < 16; i++) {
        fd_pf(pc, pc->nvil);
        int64_t k0 = 2 * i < nb ? 2 * i : nb - 1, k1 = 2 * i + 1 < nb ? 2 * i + 1 : nb - 1;
        const char *v0 = it->v + (jb + k0) * p->v_ss, *v1 = it->v + (jb + k1) * p->v_ss;
        for (int64_t c = 0; c < nc; c++) {
            __m512i a = _mm512_loadu_si512(v0 + 64 * c), b = _mm512_loadu_si512(v1 + 64 * c);
            _mm512_store_si512((__m512i*)(vb + ((2 * c) * 16 + i) * 64), _mm512_unpacklo_epi16(a, b));
            _mm512_store_si512((__m512i*)(vb + ((2 * c + 1) * 16 + i) * 64), _mm512_unpackhi_epi16(a, b));
        }
    }
}

/* O[R][Dv] += P0 · V0 (+ P1 · V1) for the dv tile pair t, t + 1: P [R][32] bf16, V interleaved by
 * fd_amx_vil. */
AI void fd_amx_pv1(float* O, int64_t Dv, int64_t t, const uint16_t* p0, const char* v0, const uint16_t* p1, const char* v1) {
    TILE_LOAD(4, O + 16 * t, Dv * 4);
    TILE_LOAD(5, O + 16 * t + 16, Dv * 4);
    TILE_LOAD(6, p0, 64);
    TILE_LOAD(1, v0 + t * 1024, 64);
    TILE_LOAD(7, v0 + t * 1024 + 1024, 64);
    _tile_dpbf16ps(4, 6, 1);
    _tile_dpbf16ps(5, 6, 7);
    if (p1) {
        TILE_LOAD(6, p1, 64);
        TILE_LOAD(1, v1 + t * 1024, 64);
        TILE_LOAD(7, v1 + t * 1024 + 1024, 64);
        _tile_dpbf16ps(4, 6, 1);
        _tile_dpbf16ps(5, 6, 7);
    }
    TILE_STORE(4, O + 16 * t, Dv * 4);
    TILE_STORE(5, O + 16 * t + 16, Dv * 4);
}

/* O[R][Dv] += P0 · V0 (+ P1 · V1), all dv tile pairs (nvt is even; two C tiles in flight). */
AI void fd_amx_pv(float* O, int64_t Dv, const uint16_t* p0, const char* v0, const uint16_t* p1, const char* v1, fd_pfc* pc) {
    for (int64_t t = 0; t < Dv / 16; t += 2) {
        fd_amx_pv1(O, Dv, t, p0, v0, p1, v1);
        fd_pf(pc, pc->npv);
    }
}

/* Sᵀ of the 32 keys from jb (nb = min(32, jhi - jb) valid; rows past nb repeat the last valid
 * one, staged in Ks) into st [32][R]: two independent accumulation chains (keys 0-15, 16-31).
 * With p0 (a deferred pair of blocks: P0, V0, P1, V1), their O += P·V tile pairs (fd_amx_pv1)
 * run between the chunks, each chunk followed by its share: from DRAM 1.04-1.07x the P·V run
 * as one piece after the V interleave (BENCHMARKS.md, issue 3, session 6, h/attn2); the same
 * in cache. */
AI void fd_amx_qk(const pt_fd_problem* p, const pt_fd_item* it, int64_t jb, int64_t jhi, const uint32_t* QT, int64_t R, int64_t nch,
                  uint16_t* Ks, float* st, fd_pfc* pc, float* O, const uint16_t* p0, const char* v0, const uint16_t* p1, const char* v1) {
    const int64_t nb = imin(32, jhi - jb), kbytes = p->D * 2, np = p0 ? p->Dv / 32 : 0;
    const char* kb = it->k + jb * p->k_ss;
    int64_t kstride = p->k_ss, t = 0;
    if (nb < 32) {
        for (int64_t k = 0; k < 32; k++) memcpy(Ks + k * p->D, it->k + (jb + (k < nb ? k : nb - 1)) * p->k_ss, (size_t)kbytes);
        kb = (const char*)Ks;
        kstride = kbytes;
    }
    _tile_zero(0);
    _tile_zero(3);
    for (int64_t c = 0; c < nch; c++) {
        TILE_LOAD(2, QT + c * 16 * R, 4 * R);
        TILE_LOAD(1, kb + 64 * c, kstride);
        TILE_LOAD(7, kb + 16 * kstride + 64 * c, kstride);
        _tile_dpbf16ps(0, 1, 2);
        _tile_dpbf16ps(3, 7, 2);
        fd_pf(pc, pc->nqk);
        for (const int64_t te = (c + 1) * np / nch; t < te; t++) { fd_amx_pv1(O, p->Dv, 2 * t, p0, v0, p1, v1); fd_pf(pc, pc->npv); }
    }
    for (; t < np; t++) { fd_amx_pv1(O, p->Dv, 2 * t, p0, v0, p1, v1); fd_pf(pc, pc->npv); }
    TILE_STORE(0, st, 4 * R);
    TILE_STORE(3, st + 16 * R, 4 * R);
}

bool pt_fd_chunk_amx(const pt_fd_problem* p, const pt_fd_item* it, float* part) {
    enum { BK = 32 };
    const int64_t D = p->D, Dv = p->Dv, G = p->G, R = G * p->Tq, nch = D / 32, nvt = Dv / 16;
    /* scratch: QT [nch][16][R] u32 | ST [2][32][R] f32 | P [2][R][32] bf16 | Vb [3][nvt][16][16] u32 |
     * Ks [32][D] bf16 | O [R][Dv] f32 | lv [R][16] f32 | m [R] | tmp [Dv] */
    size_t bytes = (size_t)(nch * 16 * R * 4 + 2 * 32 * R * 4 + 2 * R * 64 + 3 * nvt * 1024 + 32 * D * 2 + R * Dv * 4 + R * 64 + R * 4 + Dv * 4 + 8 * 64);
    char* buf = (char*)pt_scratch(0, bytes);
    if (!buf) return false;
#define FD_ALIGN(x) ((char*)(((uintptr_t)(x) + 63) & ~(uintptr_t)63))
    uint32_t* QT = (uint32_t*)FD_ALIGN(buf);
    float* ST2 = (float*)FD_ALIGN(QT + nch * 16 * R);
    uint16_t* P2 = (uint16_t*)FD_ALIGN(ST2 + 2 * 32 * R);
    char* Vb3 = FD_ALIGN(P2 + 2 * R * 32);
    uint16_t* Ks = (uint16_t*)FD_ALIGN(Vb3 + 3 * nvt * 1024);
    float* O = (float*)FD_ALIGN(Ks + 32 * D);
    float* lv = (float*)FD_ALIGN(O + R * Dv);
    float* mr = lv + 16 * R;
    float* tmp = mr + R;
#undef FD_ALIGN
    int64_t lo_r[16], hi_r[16];
    int64_t jlo = it->j1, jhi = it->j0, lo_all = INT64_MIN, hi_all = INT64_MAX;
    for (int64_t r = 0; r < R; r++) {
        int64_t tok = r / G, g = r % G, pos = it->len - p->Tq + tok;
        const uint16_t* q = (const uint16_t*)(it->q + tok * p->q_st + g * p->q_sh);
        for (int64_t c = 0; c < nch; c++)
            for (int64_t i = 0; i < 16; i++) {
                uint32_t lo, hi;
                lo = q[32 * c + 2 * i];
                hi = q[32 * c + 2 * i + 1];
                QT[(c * 16 + i) * R + r] = lo | hi << 16;
            }
        memset(O + r * Dv, 0, (size_t)Dv * 4);
        memset(lv + 16 * r, 0, 64);
        mr[r] = -INFINITY;
        lo_r[r] = imax(it->j0, pt_fa_lo(p->wl, pos));
        hi_r[r] = imin(imin(it->j1, it->len), pt_fa_hi(p->wr, pos));
        if (lo_r[r] < hi_r[r]) { jlo = imin(jlo, lo_r[r]); jhi = imax(jhi, hi_r[r]); }
        lo_all = imax(lo_all, lo_r[r]);
        hi_all = imin(hi_all, hi_r[r]);
    }
    jlo = imax(jlo, 0);
    fd_tile_config((int)R);
    const __m512 sc = _mm512_set1_ps(p->scale_log2), ninf = _mm512_set1_ps(-INFINITY);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i gidx = _mm512_mullo_epi32(iota, _mm512_set1_epi32((int)R));
    const int64_t kbytes = D * 2, vbytes = Dv * 2;
    /* Long ranges run as two halves, block by block in turn (A0 B0 A1 B1 ...; the first half has
     * the odd block; all its blocks are full), so that the prefetch cursor, walking both halves
     * row by row in turn, feeds 4 streams (K and V of each half) instead of 2: a probe of that
     * pattern alone read at 89-103% of the 8-stream read against 79-89% for 2 streams, and
     * alternating the halves block by block (128 lines per stream) is no better than 2 streams
     * (BENCHMARKS.md, issue 3, session 7). The softmax does not depend on the order of blocks. */
    const int64_t nblk = (jhi - jlo + BK - 1) / BK;
    const int64_t nA = PT_FD_AMX_SPLIT > 0 && nblk >= PT_FD_AMX_SPLIT ? (nblk + 1) / 2 : nblk, mid = jlo + nA * BK;
    const int64_t nB = nblk - nA, n2 = nB > 0 ? 2 * (jhi - mid) : 0;
    /* prefetch distance in blocks of the cursor's order: twice PT_FD_AMX_PF when split, i.e. the
     * same distance within each half (harness, split: 8 blocks 1.05x 4 blocks) */
    const int64_t pf = PT_FD_AMX_PF * (nB > 0 ? 2 : 1);
    fd_pfc pc = {{it->k, it->v, p->k_ss, p->v_ss, kbytes, vbytes, 0, imin(jhi - jlo, pf * BK), jlo, mid, n2, 0, (int)((kbytes + 63) / 64 + (vbytes + 63) / 64)}, 0, 0, 0, 0};
    const int lines = (int)(BK * pc.c.nl); /* per block */
    pc.nqk = (31 * lines + 100 * (int)nch - 1) / (100 * (int)nch);
    pc.nsm = (15 * lines + 100 * (int)R - 1) / (100 * (int)R);
    pc.nvil = (19 * lines + 1599) / 1600;
    pc.npv = (30 * lines * 4 + 100 * (int)nvt - 1) / (100 * (int)nvt);
    fd_pf(&pc, (int)imin(pf * BK, jhi - jlo) * pc.c.nl); /* the first pf blocks at once */
    /* Software pipeline: block jb's softmax runs while the tile unit computes the scores of block
     * jb + 32, and V of jb + 32 is interleaved before its P·V (so no tile load waits on vector
     * stores just made). P·V takes two blocks at a time and is deferred to the next block, where
     * its tile pairs run between the QK chunks (fd_amx_qk with p0). */
    /* first row of block b in the order taken: A0 B0 A1 B1 ... (then the first half's last block) */
#define FD_BSTART(b) ((b) < 2 * nB ? (((b) & 1) ? mid : jlo) + ((b) >> 1) * BK : jlo + ((b) - nB) * BK)
    if (jlo < jhi) {
        fd_amx_qk(p, it, jlo, jhi, QT, R, nch, Ks, ST2, &pc, NULL, NULL, NULL, NULL, NULL);
        fd_amx_vil(p, it, jlo, jhi, Vb3, &pc);
    }
    int64_t pend = -1; /* a block whose P·V is still to do */
    int64_t d0 = -1, d1 = -1; /* a deferred pair, done with the next block's QK */
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t jb = FD_BSTART(blk), jn = FD_BSTART(blk + 1); /* this block's and the next one's first row */
        const int64_t nb = imin(BK, jhi - jb);
        /* the rows up to pf blocks ahead (in the cursor's order) that the hooks of earlier blocks did not reach */
        pc.c.xe = imin(jhi - jlo, (blk + pf + 1) * BK);
        for (const int64_t due = imin(jhi - jlo, (blk + pf) * BK); pc.c.x < due;) fd_pf(&pc, pc.c.nl);
        const float* ST = ST2 + (blk & 1) * 32 * R;
        uint16_t* P = P2 + (blk & 1) * R * 32;
        const int next = blk + 1 < nblk;
        if (d0 >= 0) {
            if (next) fd_amx_qk(p, it, jn, jhi, QT, R, nch, Ks, ST2 + ((blk + 1) & 1) * 32 * R, &pc, O, P2 + (d0 & 1) * R * 32, Vb3 + (d0 % 3) * nvt * 1024, P2 + (d1 & 1) * R * 32, Vb3 + (d1 % 3) * nvt * 1024);
            else fd_amx_pv(O, Dv, P2 + (d0 & 1) * R * 32, Vb3 + (d0 % 3) * nvt * 1024, P2 + (d1 & 1) * R * 32, Vb3 + (d1 % 3) * nvt * 1024, &pc);
            d0 = -1;
        } else if (next) fd_amx_qk(p, it, jn, jhi, QT, R, nch, Ks, ST2 + ((blk + 1) & 1) * 32 * R, &pc, NULL, NULL, NULL, NULL, NULL);
        /* softmax, rows of 32 keys */
        const int full = nb == BK && jb >= lo_all && jb + BK <= hi_all;
        int any = 0, rescale = 0;
        float alpha[16];
        __m512 sr[16][2]; /* row r's scores, keys 0-15 and 16-31 in lanes */
        if (R == 4) /* the Llama GQA shape: a register transpose instead of 8 gathers */
            for (int h = 0; h < 2; h++) st4_rows(ST + 64 * h, sr, h);
        else
            for (int64_t r = 0; r < R; r++) {
                sr[r][0] = _mm512_i32gather_ps(gidx, ST + r, 4);
                sr[r][1] = _mm512_i32gather_ps(gidx, ST + 16 * R + r, 4);
            }
        for (int64_t r = 0; r < R; r++) {
            fd_pf(&pc, pc.nsm);
            __m512 s0 = _mm512_mul_ps(sr[r][0], sc);
            __m512 s1 = _mm512_mul_ps(sr[r][1], sc);
            if (!full) {
                __m512i j0 = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(jb - lo_r[r])), iota);
                int32_t span = (int32_t)imax(0, imin(hi_r[r], jb + BK) - lo_r[r]);
                /* key jb + i visible iff lo_r <= jb + i < hi_r (and i < nb: hi_r <= jhi covers it) */
                __m512i j1 = _mm512_add_epi32(j0, _mm512_set1_epi32(16));
                __mmask16 ok0 = _mm512_cmpge_epi32_mask(j0, _mm512_setzero_si512()) & _mm512_cmplt_epi32_mask(j0, _mm512_set1_epi32(span));
                __mmask16 ok1 = _mm512_cmpge_epi32_mask(j1, _mm512_setzero_si512()) & _mm512_cmplt_epi32_mask(j1, _mm512_set1_epi32(span));
                s0 = _mm512_mask_blend_ps(ok0, ninf, s0);
                s1 = _mm512_mask_blend_ps(ok1, ninf, s1);
            }
            __m512 mx = _mm512_max_ps(s0, s1), m = _mm512_set1_ps(mr[r]);
            __m512 l = _mm512_load_ps(lv + 16 * r);
            alpha[r] = 1.0f;
            /* No horizontal max unless a score exceeds the running max (after the first blocks
             * of a long cache, almost never): then exp2(s - m) <= 1 as before, masked keys give 0. */
            if (mr[r] == -INFINITY || _mm512_cmp_ps_mask(mx, m, _CMP_GT_OQ)) {
                float mb = _mm512_reduce_max_ps(mx);
                if (mb == -INFINITY) {
                    _mm512_store_si512((__m512i*)(P + 32 * r), _mm512_setzero_si512());
                    continue;
                }
                alpha[r] = mr[r] == -INFINITY ? 0.0f : exp2f(mr[r] - mb);
                mr[r] = mb;
                l = _mm512_mul_ps(l, _mm512_set1_ps(alpha[r]));
                rescale = 1;
                m = _mm512_set1_ps(mb);
            }
            any = 1;
            __m512 e0 = exp2_ps(_mm512_sub_ps(s0, m)), e1 = exp2_ps(_mm512_sub_ps(s1, m));
            _mm512_store_ps(lv + 16 * r, _mm512_add_ps(l, _mm512_add_ps(e0, e1)));
            _mm512_store_si512((__m512i*)(P + 32 * r), (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
        }
        if (next) fd_amx_vil(p, it, jn, jhi, Vb3 + ((blk + 1) % 3) * nvt * 1024, &pc);
        if (!any) { /* nothing visible here: settle a pending block before its P buffer is reused */
            if (pend >= 0) { fd_amx_pv(O, Dv, P2 + (pend & 1) * R * 32, Vb3 + (pend % 3) * nvt * 1024, NULL, NULL, &pc); pend = -1; }
            continue;
        }
        /* P·V runs every second block with the P and V of two blocks (two products per O tile
         * load and store), deferred to the next block's QK (d0, d1: their P and V buffers are
         * reused only after it); a row max that grew in the second block first settles the
         * pending one (a deferred pair is already done: it runs before the softmax) */
        if (rescale) {
            if (pend >= 0) { fd_amx_pv(O, Dv, P2 + (pend & 1) * R * 32, Vb3 + (pend % 3) * nvt * 1024, NULL, NULL, &pc); pend = -1; }
            for (int64_t r = 0; r < R; r++)
                if (alpha[r] != 1.0f) {
                    __m512 a = _mm512_set1_ps(alpha[r]);
                    for (int64_t t = 0; t < nvt; t++) _mm512_store_ps(O + r * Dv + 16 * t, _mm512_mul_ps(_mm512_load_ps(O + r * Dv + 16 * t), a));
                }
        }
        if (pend >= 0) {
            d0 = pend; d1 = blk; /* with the next block's QK */
            pend = -1;
        } else {
            pend = blk;
        }
    }
    if (d0 >= 0) fd_amx_pv(O, Dv, P2 + (d0 & 1) * R * 32, Vb3 + (d0 % 3) * nvt * 1024, P2 + (d1 & 1) * R * 32, Vb3 + (d1 % 3) * nvt * 1024, &pc);
    if (pend >= 0) fd_amx_pv(O, Dv, P2 + (pend & 1) * R * 32, Vb3 + (pend % 3) * nvt * 1024, NULL, NULL, &pc);
#undef FD_BSTART
    _tile_release();
    for (int64_t r = 0; r < R; r++) {
        float* st = part + r * (Dv + 2);
        st[0] = mr[r];
        st[1] = mr[r] == -INFINITY ? 0.0f : _mm512_reduce_add_ps(_mm512_load_ps(lv + 16 * r));
        const float* o = O + r * Dv;
        for (int64_t t = 0; t < nvt; t++) /* undo the interleave order */
            for (int64_t n = 0; n < 16; n++) tmp[32 * (t / 2) + 8 * (n / 4) + 4 * (t % 2) + n % 4] = o[16 * t + n];
        memcpy(st + 2, tmp, (size_t)Dv * 4);
    }
    return true;
}
