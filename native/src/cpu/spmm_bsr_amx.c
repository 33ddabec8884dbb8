/* AMX-INT8 kernel of the block-sparse SpMM for 64x16 blocks (block_k = 64, block_n = 16): one kept
 * block is exactly one AMX B tile (16 rows of [16 channels][4 k], stored in that VNNI order by
 * pt_bsr_from_dense), the activations are s8 rows (row-major [Mp][Kp]) read straight as A tiles
 * (16 rows x 64 k), and TDPBSSD (s8 x s8 -> s32) accumulates a 16 x 16 C tile per 16 rows of x.
 * Up to 4 C tiles (64 rows) per pass over a block row's kept blocks, so each B tile is loaded once
 * per 64 rows. The C tiles are stored row-major ([m][channel], s32) for the epilogue. */
#include "cpu/spmm_bsr.h"
#include <immintrin.h>

#if defined(__AMX_TILE__) && defined(__AMX_INT8__)

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

void pt_spmm_amx_i8_row(const pt_spmm_amx* a) {
    const int8_t* vals = (const int8_t*)a->vals;
    for (int64_t s0 = 0; s0 < a->nsub; s0 += 4) {
        const int64_t ns = a->nsub - s0 < 4 ? a->nsub - s0 : 4;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        const int8_t* xs = a->x + s0 * 16 * a->ldx;
        for (int64_t b = a->b0; b < a->b1; b++) {
            const int8_t* pb = vals + b * 1024;
            const int8_t* pa = xs + (int64_t)a->col[b] * 64;
            TILE_LOAD(6, pb, 64);
            TILE_LOAD(4, pa, a->ldx);
            _tile_dpbssd(0, 4, 6);
            if (ns > 1) {
                TILE_LOAD(5, pa + 16 * a->ldx, a->ldx);
                _tile_dpbssd(1, 5, 6);
            }
            if (ns > 2) {
                TILE_LOAD(4, pa + 32 * a->ldx, a->ldx);
                _tile_dpbssd(2, 4, 6);
            }
            if (ns > 3) {
                TILE_LOAD(5, pa + 48 * a->ldx, a->ldx);
                _tile_dpbssd(3, 5, 6);
            }
        }
        int32_t* o = a->out + s0 * 16 * a->ldo;
        TILE_STORE(0, o, a->ldo * 4);
        if (ns > 1) TILE_STORE(1, o + 16 * a->ldo, a->ldo * 4);
        if (ns > 2) TILE_STORE(2, o + 32 * a->ldo, a->ldo * 4);
        if (ns > 3) TILE_STORE(3, o + 48 * a->ldo, a->ldo * 4);
    }
}

#else
int pt_spmm_amx_compiled(void) { return 0; }
void pt_spmm_amx_begin(void) {}
void pt_spmm_amx_end(void) {}
void pt_spmm_amx_i8_row(const pt_spmm_amx* a) { (void)a; }
#endif
