/* AMX-INT8 micro kernel of the int8 GEMM (see int8_gemm.h): up to 32 rows x 64 columns, as two
 * passes of 32 x 32 (C in tmm0..3, s32 16x16 each; A rows 0-15 / 16-31 in tmm4/5; B 16-column
 * halves in tmm6/7), TDPBUSD (u8 x s8) over K in steps of 64. Each VNNI-packed 32-channel half
 * ([k64/4][32][4]) is already AMX's B layout: a 16-column slice is a tile with a 128-byte stride.
 * Needs A with 32 readable rows (the driver pads) and K padded to 64 (zero in B). */
#include "cpu/int8_gemm.h"
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

void pt_i8_amx_begin(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

void pt_i8_amx_end(void) { _tile_release(); }

void pt_i8_micro_amx(int64_t k64, const uint8_t* a, int64_t lda, int mr, const int8_t* b, int32_t* acc) {
    const int64_t nkb = k64 / 64;
    for (int h = 0; h < 2; h++) {
        const int8_t* bh = b + h * k64 * PT_I8_NH;
        _tile_zero(0);
        _tile_zero(1);
        if (mr > 16) {
            _tile_zero(2);
            _tile_zero(3);
        }
        for (int64_t kb = 0; kb < nkb; kb++) {
            const uint8_t* pa = a + kb * 64;
            const int8_t* pb = bh + kb * 16 * 4 * PT_I8_NH;
            TILE_LOAD(4, pa, lda);
            TILE_LOAD(6, pb, 4 * PT_I8_NH);
            TILE_LOAD(7, pb + 64, 4 * PT_I8_NH);
            _tile_dpbusd(0, 4, 6);
            _tile_dpbusd(1, 4, 7);
            if (mr > 16) {
                TILE_LOAD(5, pa + 16 * lda, lda);
                _tile_dpbusd(2, 5, 6);
                _tile_dpbusd(3, 5, 7);
            }
        }
        int32_t* c = acc + h * 32;
        TILE_STORE(0, c, PT_I8_NB * 4);
        TILE_STORE(1, c + 16, PT_I8_NB * 4);
        if (mr > 16) {
            TILE_STORE(2, c + 16 * PT_I8_NB, PT_I8_NB * 4);
            TILE_STORE(3, c + 16 * PT_I8_NB + 16, PT_I8_NB * 4);
        }
    }
}
#endif
