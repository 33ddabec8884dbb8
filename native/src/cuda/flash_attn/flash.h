/* Parameters shared by the flash-attention kernels and their launchers (internal). */
#ifndef PT_FLASH_H
#define PT_FLASH_H

#include <cuda_runtime.h>
#include <stdint.h>

struct pt_cu_fwd_params {
    const void* q;
    const void* k;
    const void* v;
    void* o;
    float* lse;                    /* NULL: not written */
    /* strides in elements */
    int64_t q_batch, q_row, q_head;
    int64_t k_batch, k_row, k_head;
    int64_t v_batch, v_row, v_head;
    int64_t o_batch, o_row, o_head;
    int64_t lse_batch, lse_head;   /* lse index: h*lse_head + (varlen ? q_start + i : b*lse_batch + i) */
    const int32_t* cu_q;           /* varlen prefix sums, or NULL */
    const int32_t* cu_k;
    int32_t batch, hq, hkv, h_ratio;
    int32_t sq, sk;                /* per-sequence lengths (max bounds for varlen) */
    int32_t total_q, total_k;      /* varlen: packed rows of q and k/v */
    int32_t pingpong;              /* sm90 TMA kernel: warpgroups alternate their GEMMs */
    float scale;                   /* softmax scale */
    float scale_log2;              /* scale * log2(e) */
};

struct pt_cu_decode_params {
    const void* q;                 /* [B, Hq, D] */
    const void* k;                 /* [B, Hkv, S_max, D] */
    const void* v;
    void* o;                       /* [B, Hq, D] */
    const int32_t* seqlens;        /* [B] */
    float* part_o;                 /* [B, Hq, splits, D] f32 partial outputs (normalized) */
    float* part_lse;               /* [B, Hq, splits] */
    int64_t q_batch, q_head;       /* elements */
    int64_t k_batch, k_head, k_row;
    int64_t v_batch, v_head, v_row;
    int64_t o_batch, o_head;
    int32_t batch, hq, hkv, h_ratio, s_max, splits;
    int32_t keys_per_split;        /* multiple of the block's key step */
    float scale_log2;
    /* paged KV (block_table != NULL): k/v are pools [num_blocks, Hkv, bs, D]; key j of sequence b
     * is row (j & (bs-1)) of physical block block_table[b * bt_batch + (j >> log2_bs)];
     * k_batch/v_batch are then the strides of one physical block, k_row/v_row of one row in it */
    const int32_t* block_table;
    int64_t bt_batch;
    int32_t log2_bs, num_blocks;
    int32_t variant;               /* 1: register loads, 2/3: cp.async, 3/4 stages, 4: tensor cores (0 is resolved on the host) */
    int32_t pdl;                   /* 1: launch the combine kernel as a programmatic dependent (sm_90+) */
};

/* Launchers: one translation unit per (head dim, dtype); variant selects a tile shape
 * (0 = default). Return the launch error. is_bf16: 1 bf16, 0 f16. */
/* variant: 0 auto (on compute capability 9.0 for D 64/128 the sm_90a wgmma kernel with TMA
 * loads, else the mma.sync kernel); 4 mma.sync kernel; 5 wgmma kernel with cp.async loads;
 * 6 wgmma + TMA with the warpgroup ping-pong; 7 wgmma + TMA (what auto picks); 5-7 exist only
 * on sm_90a. 1-3 were tile alternatives of the mma.sync kernel (gen_fwd.py).
 * arch: 10 * major + minor of the device. */
cudaError_t pt_flash_fwd_launch(const pt_cu_fwd_params& p, int head_dim, int is_bf16, int causal, int variant,
                                int arch, cudaStream_t stream, int* supported);
cudaError_t pt_flash_decode_launch(const pt_cu_decode_params& p, int head_dim, int is_bf16, cudaStream_t stream,
                                   int* supported);
/* decode helpers (flash_decode.cu): keys per block step; heads per block for a group size;
 * blocks of the chosen kernel one SM holds at once (variant 1, 2 or 3) */
int pt_flash_decode_key_step(int head_dim);
int pt_flash_decode_heads_per_block(int h_ratio);
int pt_flash_decode_blocks_per_sm(int head_dim, int is_bf16, int h_ratio, int variant);
int pt_flash_decode_has_mma(int head_dim, int h_ratio); /* variant 4 (tensor cores) exists */

#endif
