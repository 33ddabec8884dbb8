/* AMX-BF16 GEMM backend: a 32 x 32 microkernel on 2 x 2 C tiles (tmm0..3, f32 16x16 each),
 * two A tiles (tmm4, 5: 16 rows x 32 bf16) and two B tiles (tmm6, 7: 16 K pairs x 16 columns).
 * The epilogue goes through the AVX-512 tile store. Compiled with -mamx-tile -mamx-bf16 (and
 * the AVX-512 flags); only called when ctx->caps has AMX_BF16 and AVX512F, which cpu.c sets
 * only after Linux granted this process the AMX tile state.
 *
 * Packed A: per K block of 32, the panel's 32 rows of 32 bf16 (2 KiB, tiles at stride 64 B).
 * Packed B: per K pair, 32 dwords (b[2q][j], b[2q+1][j]) (the AVX512-BF16 layout), so a K
 * block of 32 is 16 rows of 128 B: B tiles are its two 64-byte column halves. */
#include "cpu/gemm_avx512_inl.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__)

#define MR 32
#define NR 32
#define KB 32

/* Tile loads/stores in our own asm: GCC 12's _tile_loadd/_tile_stored pass the stride as a
 * `long`, which is 32 bits on Windows (LLP64) and makes an invalid address there. */
#define TILE_LOAD(t, base, stride) \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t : : "r"(base), "r"((int64_t)(stride)) : "memory")
#define TILE_STORE(t, base, stride) \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" : : "r"(base), "r"((int64_t)(stride)) : "memory")

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static void amx_begin(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    /* not _tile_loadconfig: GCC 12's version declares an 8-byte memory operand, so the
     * compiler drops the stores of the rest of cfg as dead */
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

static void amx_end(void) { _tile_release(); }

static void micro_amx(int64_t kc, const void* pa_, const void* pb_, int mr, int nr, const pt_gemm_tile_out* o) {
    const char* pa = (const char*)pa_;
    const char* pb = (const char*)pb_;
    const int64_t nkb = (kc + KB - 1) / KB;
    float acc[MR * NR] __attribute__((aligned(64)));
    if (mr <= 16) { /* a short tail tile (M = 16, GEMV-like shapes): the upper C tiles only */
        _tile_zero(0);
        _tile_zero(1);
        for (int64_t b = 0; b < nkb; b++, pa += 2048, pb += 2048) {
            TILE_LOAD(4, pa, 64);
            TILE_LOAD(6, pb, 128);
            TILE_LOAD(7, pb + 64, 128);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
        }
        TILE_STORE(0, acc, NR * 4);
        TILE_STORE(1, acc + 16, NR * 4);
        pt_gemm_store_tile_avx512(acc, NR, mr, nr, o);
        return;
    }
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t b = 0; b < nkb; b++, pa += 2048, pb += 2048) {
        TILE_LOAD(4, pa, 64);
        TILE_LOAD(6, pb, 128);
        TILE_LOAD(7, pb + 64, 128);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        TILE_LOAD(5, pa + 1024, 64);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    TILE_STORE(0, acc, NR * 4);
    TILE_STORE(1, acc + 16, NR * 4);
    TILE_STORE(2, acc + 16 * NR, NR * 4);
    TILE_STORE(3, acc + 16 * NR + 16, NR * 4);
    pt_gemm_store_tile_avx512(acc, NR, mr, nr, o);
}

/* bf16 rows are copied; f32 rows (an f32 activation against a bf16-packed weight) are
 * rounded to bf16 (nearest even) on the way. */
static void pack_a_amx(const void* src_, int32_t dt, int64_t lda, int64_t mc, int64_t kc, void* dst_) {
    const uint16_t* src = (const uint16_t*)src_;
    const float* srcf = (const float*)src_;
    uint16_t* dst = (uint16_t*)dst_;
    const int64_t nkb = (kc + KB - 1) / KB;
    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
        int rows = mc - i0 < MR ? (int)(mc - i0) : MR;
        for (int64_t b = 0; b < nkb; b++, dst += MR * KB) {
            int64_t w = kc - b * KB;
            int r = 0;
            if (dt == PT_F32) {
                __mmask16 m0 = mask_lo((int)(w < 16 ? w : 16)), m1 = w > 16 ? mask_lo((int)(w - 16)) : 0;
                const float* s = srcf + i0 * lda + b * KB;
                for (; r < rows; r++) {
                    __m512 lo = _mm512_maskz_loadu_ps(m0, s + r * lda), hi = _mm512_maskz_loadu_ps(m1, s + r * lda + 16);
                    _mm512_store_si512(dst + r * KB, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
                }
            } else {
                __mmask32 m = mask32(w);
                const uint16_t* s = src + i0 * lda + b * KB;
                for (; r < rows; r++) _mm512_store_si512(dst + r * KB, _mm512_maskz_loadu_epi16(m, s + r * lda));
            }
            for (; r < MR; r++) _mm512_store_si512(dst + r * KB, _mm512_setzero_si512());
        }
    }
}

static void pack_b_amx(const void* src, int32_t dt, int64_t ldb, int tb, int64_t kc, int64_t nc, void* dst) {
    pt_pack_b_bf16_pairs((const uint16_t*)src, ldb, tb, kc, nc, (int32_t*)dst, (kc + KB - 1) / KB * KB / 2);
}

static const pt_gemm_kernel k_amx = {
    "amx-bf16", MR, NR, KB, 2, 256, 512, 1024, pack_a_amx, pack_b_amx, micro_amx, amx_begin, amx_end, 8, pt_gemm_small_avx512};

const pt_gemm_kernel* pt_gemm_kernel_amx_bf16(void) { return &k_amx; }

#else
const pt_gemm_kernel* pt_gemm_kernel_amx_bf16(void) { return NULL; }
#endif
