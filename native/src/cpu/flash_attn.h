/* Internal description of flash-attention work shared by the dispatcher (flash_attn.c) and
 * its kernels (flash_attn.c portable, flash_attn_avx512.c). Not part of the public API.
 *
 * Prefill work item: one batch element, one kv head, a group of the query heads sharing it
 * and a tile of query tokens. Its "rows" are the (token, head) pairs, token-major: row
 * r = t * nh + g is token t0 + t and query head h0 + g. Up to PT_FA_MAX_SUB sub-tiles of
 * PT_FA_BR rows per item (one sub-tile for the portable kernel), so the G query heads of a kv
 * head, and up to 256 rows in all, share one pass over K and V.
 * Kernels keep rows in SIMD lanes ("queries in lanes"): the online-softmax statistics are
 * per lane and never need a horizontal reduction. */
#ifndef PT_CPU_FLASH_ATTN_H
#define PT_CPU_FLASH_ATTN_H
#include "common/internal.h"

#define PT_FA_BR 64 /* rows (token, head pairs) per prefill sub-tile (the portable item) */
/* Sub-tiles per AVX-512 item: K/V tiles are staged once for them all, so K/V is read from
 * L3/DRAM once per 512 rows (f32, D = Dv = 128: workspace 8 x 64 KiB of Qᵀ and Oᵀ + ~90 KiB of
 * score and K/V tiles = ~600 KiB per thread, L2-resident on the CPUs we target). The AMX kernel
 * keeps 4 (bf16 tiles are half the size and its products run ~2.5x faster, so its K/V reuse
 * is not the limit). */
#define PT_FA_MAX_SUB 8
#define PT_FA_MAX_SUB_AMX 4
#define PT_FA_BC 64 /* keys per key tile */
#define PT_FD_BK 16 /* keys per decode block */

typedef struct pt_fa_problem {
    int64_t D, Dv;
    int32_t q_dtype, kv_dtype, out_dtype, mask_dtype;
    float scale_log2;         /* scale * log2(e): scores live in the log2 domain */
    int64_t wl, wr;           /* window left/right, -1 = unbounded (causal folded into wr) */
    /* byte strides */
    int64_t q_ss, q_sh, k_ss, v_ss, out_ss, out_sh, lse_ss, lse_sh, mask_ss;
} pt_fa_problem;

typedef struct pt_fa_tile {
    int64_t h0, nh;           /* query heads h0 .. h0+nh-1 (absolute) */
    int64_t t0, nt;           /* query tokens t0 .. t0+nt-1 of this sequence */
    int64_t p_off;            /* position of token t = t + p_off (= sk - sq) */
    int64_t sk;               /* keys in this sequence */
    const char* q;            /* token 0, head 0 of this sequence */
    const char* k;            /* key 0 of this sequence, this kv head */
    const char* v;
    char* out;                /* token 0, head 0 of this sequence */
    char* lse;                /* token 0, head 0 of this sequence, or NULL */
    const char* mask;         /* key 0 of this sequence, or NULL */
} pt_fa_tile;

/* Returns false only when scratch memory could not be had. */
typedef bool (*pt_fa_tile_fn)(const pt_fa_problem* p, const pt_fa_tile* t);
PT_HIDDEN bool pt_fa_tile_portable(const pt_fa_problem* p, const pt_fa_tile* t);
#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
PT_HIDDEN bool pt_fa_tile_avx512(const pt_fa_problem* p, const pt_fa_tile* t);
/* bf16 q, k, v with D and Dv multiples of 32, on CPUs with AMX-BF16 */
PT_HIDDEN bool pt_fa_tile_amx(const pt_fa_problem* p, const pt_fa_tile* t);
#endif

/* Decode work item: one batch element, one kv head, all G*Tq rows (token-major,
 * r = t * G + g), and a chunk [j0, j1) of the visible key range. It writes its partial
 * softmax state per row into part[r * (Dv + 2)]: m (log2 domain), l, acc[Dv] (unnormalized). */
typedef struct pt_fd_problem {
    int64_t D, Dv, G, Tq;
    int32_t q_dtype, kv_dtype;
    float scale_log2;
    int64_t wl, wr;
    int64_t q_st, q_sh, k_ss, v_ss;   /* byte strides: q token, q head, cache row */
    int32_t pf_l1;                    /* AVX-512 decode: prefetch K/V into L1, near (hosts without AMX) */
} pt_fd_problem;

typedef struct pt_fd_item {
    const char* q;            /* token 0, head kvh*G of this sequence */
    const char* k;            /* cache row 0 of this sequence and kv head */
    const char* v;
    int64_t len;              /* valid cache rows */
    int64_t j0, j1;           /* key chunk */
} pt_fd_item;

typedef bool (*pt_fd_chunk_fn)(const pt_fd_problem* p, const pt_fd_item* it, float* part);
PT_HIDDEN bool pt_fd_chunk_portable(const pt_fd_problem* p, const pt_fd_item* it, float* part);
#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
PT_HIDDEN bool pt_fd_chunk_avx512(const pt_fd_problem* p, const pt_fd_item* it, float* part);
/* bf16 q and cache, D and Dv multiples of 32 up to 256, G * Tq <= 16, on CPUs with AMX-BF16 */
PT_HIDDEN bool pt_fd_chunk_amx(const pt_fd_problem* p, const pt_fd_item* it, float* part);
/* AVX2 + FMA (D, Dv multiples of 16; other dims go to the portable kernel) */
PT_HIDDEN bool pt_fd_chunk_avx2(const pt_fd_problem* p, const pt_fd_item* it, float* part);
#endif

/* ---- helpers shared by the kernels ---- */

/* The visible key range [lo, hi) of a row at position pos, before clipping to [0, sk). */
static inline int64_t pt_fa_lo(int64_t wl, int64_t pos) { return wl >= 0 ? pos - wl : INT64_MIN / 2; }
static inline int64_t pt_fa_hi(int64_t wr, int64_t pos) { return wr >= 0 ? pos + wr + 1 : INT64_MAX / 2; }

/* Nonzero when key j of a padding mask (u8 | i32 | i64) lets the key be attended. */
static inline int pt_fa_mask_on(const char* mask, int32_t dtype, int64_t ss, int64_t j) {
    const char* p = mask + j * ss;
    switch (dtype) {
    case PT_U8: return *(const uint8_t*)p != 0;
    case PT_I32: { int32_t x; memcpy(&x, p, 4); return x != 0; }
    default: { int64_t x; memcpy(&x, p, 8); return x != 0; }
    }
}

static inline float pt_fa_ld(const char* row, int32_t dtype, int64_t i) {
    if (dtype == PT_BF16) {
        uint16_t h;
        memcpy(&h, row + 2 * i, 2);
        return pt_bf16_to_f32(h);
    }
    float f;
    memcpy(&f, row + 4 * i, 4);
    return f;
}

#endif
