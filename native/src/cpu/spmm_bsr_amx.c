/* AMX-INT8 kernel of the block-sparse SpMM for 64x16 and 64x32 int8 blocks (block_k = 64). One
 * kept 64x16 block is exactly one AMX B tile (16 rows of [16 channels][4 k], the VNNI order
 * pt_bsr_from_dense stores); a 64x32 block is two B tiles side by side (row stride 128 bytes) that
 * share one A tile. The activations come pre-quantized (s8) in a tiled layout, one 1 KiB A tile
 * (16 rows x 64 k, row stride 64) per (16-row sub-panel, K block), so every A tile is one
 * contiguous KiB; TDPBSSD (s8 x s8 -> s32) accumulates 16 x 16 C tiles.
 *
 * One work item = a panel of up to 64 rows x a range of block rows. The block rows are taken in
 * chunks of 256 channels: for each block row, its C tiles (4 sub-panels of 16 rows for 64x16
 * blocks, so each B tile is loaded once per 64 rows; 2 x 2 for 64x32, so each A tile serves two
 * B tiles and each B tile two A tiles) run over the block row's kept blocks and are stored into a
 * row-major s32 chunk [64][256]; then the epilogue turns each row of the chunk into a contiguous
 * run of 256 channels of y (dequantization sx[m] * scale[n], bias, activation, f32/bf16). A
 * block row without kept blocks (~28% of them at K = 768, 90% sparsity) costs no tile work: no
 * tilezero / tilestored, and the epilogue takes its sums as 0 (y = act(bias)).
 * Writing y in long row runs panel by panel is what makes the stores cheap: y is the largest
 * stream at large M, and a column-strip order (all M for 256 channels, then the next strip)
 * writes it at about half the rate.
 * With yacc (large M, f32 y) a chunk of up to 2048 channels of whole block rows keeps its s32
 * sums in y itself: the C tiles are stored into y's f32 slots (an s32 and an f32 are both 4
 * bytes), then the epilogue rewrites each slot in place while the chunk (<= 512 KiB) is in L2.
 * y's lines then come in (read for ownership) during the tile products, which wait on their
 * own latency chains anyway, instead of during the epilogue's stores; the epilogue's stores hit
 * lines already owned. The partial last block row (N % bn != 0) takes the scratch (its C tile
 * would write past channel N). */
#include "cpu/spmm_bsr.h"
#include <immintrin.h>

#if defined(__AMX_TILE__) && defined(__AMX_INT8__)
#include <math.h>
#include "cpu/vecmath_avx512.h"

#define TILE_LOAD(t, base, stride) \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t : : "r"(base), "r"((int64_t)(stride)) : "memory")
#define TILE_STORE(t, base, stride) \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" : : "r"(base), "r"((int64_t)(stride)) : "memory")

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

int pt_spmm_amx_compiled(void) { return 1; }

void pt_spmm_amx_begin(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

void pt_spmm_amx_end(void) { _tile_release(); }

/* 64x16 blocks, one block row x NS (1..2) sub-panels of 16 rows into C tiles C0 (and C1), A tile
 * TA, B tile TB. Consecutive block rows alternate between two such tile sets ({0, 1, 4, 6} and
 * {2, 3, 5, 7}): tiles are not renamed, so with one set the next block row's tilezero would wait
 * for this one's tilestored, which waits for its last TDPBSSD (~50 cycles of latency for ~1.2
 * TDPBSSD per C tile at K = 768, 90%); with two sets one block row's stores overlap the next
 * one's products. */
#define ROW16(C0, C1, TA, TB, NS, b0, b1, vals, col, xt, xs, out, ldo)            \
    do {                                                                           \
        if ((b0) == (b1)) break; /* no kept block: the epilogue writes act(bias) */ \
        _tile_zero(C0);                                                            \
        if ((NS) > 1) _tile_zero(C1);                                              \
        for (int64_t b_ = (b0); b_ < (b1); b_++) {                                 \
            const int8_t* pa_ = (xt) + (int64_t)(col)[b_] * 1024;                  \
            TILE_LOAD(TB, (vals) + b_ * 1024, 64);                                 \
            TILE_LOAD(TA, pa_, 64);                                                \
            _tile_dpbssd(C0, TA, TB);                                              \
            if ((NS) > 1) {                                                        \
                TILE_LOAD(TA, pa_ + (xs), 64);                                     \
                _tile_dpbssd(C1, TA, TB);                                          \
            }                                                                      \
        }                                                                          \
        TILE_STORE(C0, (out), (ldo) * 4);                                          \
        if ((NS) > 1) TILE_STORE(C1, (out) + 16 * (ldo), (ldo) * 4);               \
    } while (0)

static PT_ALWAYS_INLINE void rows16(const pt_spmm_amx* a, int64_t c0, int64_t c1, const int8_t* xt, int64_t xs, int32_t* out,
                                    int64_t ldo, const int NS) {
    const int8_t* vals = a->vals;
    const int32_t* col = a->col;
    int64_t nb = c0;
    for (; nb + 1 < c1; nb += 2) {
        int32_t* o = out + (nb - c0) * 16;
        ROW16(0, 1, 4, 6, NS, a->rowptr[nb], a->rowptr[nb + 1], vals, col, xt, xs, o, ldo);
        ROW16(2, 3, 5, 7, NS, a->rowptr[nb + 1], a->rowptr[nb + 2], vals, col, xt, xs, o + 16, ldo);
    }
    if (nb < c1) ROW16(0, 1, 4, 6, NS, a->rowptr[nb], a->rowptr[nb + 1], vals, col, xt, xs, out + (nb - c0) * 16, ldo);
}

/* 64x32 blocks, NS (1..2) sub-panels of 16 rows: per block row, C tile 2s + t (sub-panel s,
 * channel half t), A tiles 4/5, B tiles 6/7 (all eight tiles: no second set to alternate with;
 * each A tile serves two B tiles instead). */
static PT_ALWAYS_INLINE void rows32(const pt_spmm_amx* a, int64_t c0, int64_t c1, const int8_t* xt, int64_t xs, int32_t* out,
                                    int64_t ldo, const int NS) {
    const int64_t st = ldo * 4, r16 = 16 * ldo;
    for (int64_t nb = c0; nb < c1; nb++) {
        int32_t* o = out + (nb - c0) * 32;
        if (a->rowptr[nb] == a->rowptr[nb + 1]) continue; /* no kept block: the epilogue writes act(bias) */
        _tile_zero(0);
        _tile_zero(1);
        if (NS > 1) {
            _tile_zero(2);
            _tile_zero(3);
        }
        for (int64_t b = a->rowptr[nb]; b < a->rowptr[nb + 1]; b++) {
            const int8_t* pa = xt + (int64_t)a->col[b] * 1024;
            const int8_t* pb = a->vals + b * 2048;
            TILE_LOAD(4, pa, 64);
            TILE_LOAD(6, pb, 128);
            TILE_LOAD(7, pb + 64, 128);
            _tile_dpbssd(0, 4, 6);
            _tile_dpbssd(1, 4, 7);
            if (NS > 1) {
                TILE_LOAD(5, pa + xs, 64);
                _tile_dpbssd(2, 5, 6);
                _tile_dpbssd(3, 5, 7);
            }
        }
        TILE_STORE(0, o, st);
        TILE_STORE(1, o + 16, st);
        if (NS > 1) {
            TILE_STORE(2, o + r16, st);
            TILE_STORE(3, o + r16 + 16, st);
        }
    }
}

/* One row of a chunk: y[c] = act(acc[c] * (sx * scale[c]) + bias[c]) for c < nc; NaN when the
 * row of x had a non-finite value. Bit j of live clear: channels 16 j .. 16 j + 15 belong to a
 * block row without kept blocks, whose C tiles were not computed: acc taken as 0 there. */
static PT_ALWAYS_INLINE void epi_row(const int32_t* acc, const float* scale, const float* bias, float sx, int bad, int64_t nc, char* y,
                                     const int ydt, const int act, const uint32_t* live) {
    if (bad) {
        const __m512 nan = _mm512_set1_ps(NAN);
        for (int64_t c = 0; c < nc; c += 16) pt_stm(y, ydt, c, nan, pt_tail_mask(nc - c));
        return;
    }
    const __m512 s = _mm512_set1_ps(sx);
    int64_t c = 0;
    for (; c + 16 <= nc; c += 16) {
        const __m512 a = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32((__mmask16)(0u - ((live[c >> 9] >> ((c >> 4) & 31)) & 1u)), acc + c));
        __m512 v = _mm512_fmadd_ps(a, _mm512_mul_ps(s, _mm512_loadu_ps(scale + c)), _mm512_loadu_ps(bias + c));
        pt_stm(y, ydt, c, pt_act512(v, act), 0xffff);
    }
    if (c < nc) {
        const __mmask16 m = pt_tail_mask(nc - c);
        const __m512 a = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32((__mmask16)(m & (0u - ((live[c >> 9] >> ((c >> 4) & 31)) & 1u))), acc + c));
        __m512 v = _mm512_fmadd_ps(a, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, scale + c)), _mm512_maskz_loadu_ps(m, bias + c));
        pt_stm(y, ydt, c, pt_act512(v, act), m);
    }
}

static PT_ALWAYS_INLINE void epi_chunk(const pt_spmm_amx* a, const int32_t* acc, int64_t ld, int64_t n0, int64_t nc, const int ydt,
                                       const int act) {
    const int64_t es = ydt == PT_F32 ? 4 : 2;
    uint32_t live[PT_SPMM_AMX_MAXCHUNK / 512] = {0}; /* the chunk's 16-channel groups with kept blocks (n0 is a multiple of bn) */
    for (int64_t j = 0; j * 16 < nc; j++) {
        const int64_t nb = (n0 + 16 * j) / a->bn;
        live[j >> 5] |= (uint32_t)(a->rowptr[nb] != a->rowptr[nb + 1]) << (j & 31);
    }
    for (int64_t r = 0; r < a->mlen; r++)
        epi_row(acc + r * ld, a->scale + n0, a->bias + n0, a->sx[r], a->bad[r], nc, a->y + r * a->ldy + n0 * es, ydt, act, live);
}

void pt_spmm_amx_item(const pt_spmm_amx* a) {
    const int64_t xs = a->kb * 1024; /* bytes between the A tiles of consecutive 16-row sub-panels */
    const int64_t nsub = (a->mlen + 15) / 16;
    for (int64_t c0 = a->nb0, c1; c0 < a->nb1; c0 = c1) {
        /* in y: the C tiles stored as s32 straight into y's f32 slots (whole tiles inside y's
         * rows), then the epilogue rewrites them in place while they are in L1/L2 */
        const int iny = a->yacc && (c0 + 1) * a->bn <= a->n;
        const int64_t cbr = (iny ? a->ychunk : a->ldacc) / a->bn; /* block rows per chunk */
        c1 = c0 + cbr < a->nb1 ? c0 + cbr : a->nb1;
        if (iny && c1 * a->bn > a->n) c1 = a->n / a->bn; /* the partial last block row: a scratch chunk of its own */
        const int64_t n0 = c0 * a->bn, n1 = c1 * a->bn < a->n ? c1 * a->bn : a->n;
        const int64_t nc = n1 - n0;
        int32_t* acc = iny ? (int32_t*)(a->y + n0 * 4) : a->acc;
        const int64_t ld = iny ? a->ldy / 4 : a->ldacc;
        for (int64_t s = 0; s < nsub; s += 2) {
            const int8_t* xt = a->xt + s * xs;
            int32_t* out = acc + s * 16 * ld;
            const int two = nsub - s >= 2;
            if (a->bn == 16) {
                if (two) rows16(a, c0, c1, xt, xs, out, ld, 2);
                else rows16(a, c0, c1, xt, xs, out, ld, 1);
            } else {
                if (two) rows32(a, c0, c1, xt, xs, out, ld, 2);
                else rows32(a, c0, c1, xt, xs, out, ld, 1);
            }
        }
        if (a->ydt == PT_F32) {
            switch (a->act) {
            case PT_ACT_NONE: epi_chunk(a, acc, ld, n0, nc, PT_F32, PT_ACT_NONE); break;
            case PT_ACT_RELU: epi_chunk(a, acc, ld, n0, nc, PT_F32, PT_ACT_RELU); break;
            case PT_ACT_GELU_ERF: epi_chunk(a, acc, ld, n0, nc, PT_F32, PT_ACT_GELU_ERF); break;
            case PT_ACT_GELU_TANH: epi_chunk(a, acc, ld, n0, nc, PT_F32, PT_ACT_GELU_TANH); break;
            default: epi_chunk(a, acc, ld, n0, nc, PT_F32, PT_ACT_SILU); break;
            }
        } else {
            epi_chunk(a, acc, ld, n0, nc, PT_BF16, a->act);
        }
    }
}

#else
int pt_spmm_amx_compiled(void) { return 0; }
void pt_spmm_amx_begin(void) {}
void pt_spmm_amx_end(void) {}
void pt_spmm_amx_item(const pt_spmm_amx* a) { (void)a; }
#endif
