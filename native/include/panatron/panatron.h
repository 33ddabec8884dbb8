/*
 * panatron.h — the one public C header of the Panatron kernel library.
 *
 * Conventions (read these once; every declaration below follows them):
 *  - C ABI, `pt_` prefix, `pt_<noun>_<verb>` names. Enums only ever grow at the end.
 *  - Every call returns a pt_status (PT_OK == 0). On failure, pt_last_error() returns a
 *    message for the calling thread that names what was wrong (shape, dtype, argument).
 *    The library never aborts, exits, asserts or prints: it lives inside a JVM.
 *  - Kernels take the context first. A pt_ctx holds the thread count and the oneDNN
 *    engine; it may be shared by several threads at once (kernels keep their scratch in
 *    thread-local buffers, never in the context).
 *  - Tensors are described by pt_tensor: shape[] and stride[] in ROW-MAJOR order
 *    (shape[0] outermost, shape[ndim-1] innermost — the order Java's Tensor.shape() uses,
 *    so nothing is reversed at the FFI boundary), strides in BYTES. Unused trailing
 *    entries (i >= ndim) are ignored. Most kernels require the innermost dim to be
 *    contiguous (stride == element size); each op states what it accepts.
 *  - "rows" of a tensor = product of all dims but the last; "cols" = the last dim.
 *  - Computation is in f32 for every storage dtype unless an op says otherwise.
 *
 * Generated bindings: bindings/ holds the Java FFM bindings made from this file by
 * bindings/generate.py (libclang); `./mvnw -pl bindings -Pregenerate` rewrites them.
 */
#ifndef PANATRON_H
#define PANATRON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  if defined(PANATRON_BUILD)
#    define PT_API __declspec(dllexport)
#  else
#    define PT_API __declspec(dllimport)
#  endif
#else
#  define PT_API __attribute__((visibility("default")))
#endif

/* ABI version: bumped on any incompatible change. Java refuses a library whose major differs. */
#define PT_VERSION_MAJOR 0
#define PT_VERSION_MINOR 1
#define PT_VERSION_PATCH 0

/* ------------------------------------------------------------------------------------------
 * Status and errors
 * ---------------------------------------------------------------------------------------- */

typedef enum pt_status {
    PT_OK = 0,
    PT_ERR_INVALID_ARGUMENT = 1,  /* null pointer, bad enum value, bad parameter value */
    PT_ERR_SHAPE = 2,             /* shapes/ranks that do not fit the op's contract */
    PT_ERR_DTYPE = 3,             /* a dtype the op does not support for this argument */
    PT_ERR_OUT_OF_MEMORY = 4,
    PT_ERR_UNSUPPORTED = 5,       /* valid request this build or CPU cannot serve */
    PT_ERR_BACKEND = 6,           /* oneDNN / CUDA / cuBLAS reported an error */
    PT_ERR_INTERNAL = 7
} pt_status;

/* The message of the last failed call on this thread ("" if none). Valid until the next
 * failing call on the same thread. Never NULL. */
PT_API const char* pt_last_error(void);

/* Packed version: major << 16 | minor << 8 | patch. */
PT_API uint32_t pt_version(void);

/* ------------------------------------------------------------------------------------------
 * CPU capabilities (probed once, from CPUID / OS support on x86, HWCAP on ARM)
 * ---------------------------------------------------------------------------------------- */

typedef enum pt_cpu_cap {
    PT_CPU_AVX2 = 1 << 0,
    PT_CPU_FMA = 1 << 1,
    PT_CPU_AVX512F = 1 << 2,       /* with BW, DQ, VL: the set our AVX-512 code assumes */
    PT_CPU_AVX512_VNNI = 1 << 3,
    PT_CPU_AVX512_BF16 = 1 << 4,
    PT_CPU_AVX512_FP16 = 1 << 5,
    PT_CPU_AMX_INT8 = 1 << 6,      /* only set when the OS granted the AMX tile state */
    PT_CPU_AMX_BF16 = 1 << 7,
    PT_CPU_NEON = 1 << 8,
    PT_CPU_F16C = 1 << 9
} pt_cpu_cap;

/* Bitwise OR of pt_cpu_cap flags the running CPU (and OS) supports. */
PT_API uint32_t pt_cpu_caps(void);

/* Optional-component information. onednn_version: packed like pt_version(), 0 when the
 * library was built without oneDNN. */
typedef struct pt_build_info {
    uint32_t version;
    uint32_t onednn_version;
    uint32_t cpu_caps;      /* pt_cpu_caps() */
    uint32_t used_caps;     /* the subset the kernels actually dispatch on (after overrides) */
    int32_t  default_threads;
    int32_t  reserved[3];
} pt_build_info;

PT_API pt_status pt_build_info_get(pt_build_info* out);

/* ------------------------------------------------------------------------------------------
 * Tensors
 * ---------------------------------------------------------------------------------------- */

typedef enum pt_dtype {
    PT_F32 = 0,
    PT_F16 = 1,
    PT_BF16 = 2,
    PT_I8 = 3,
    PT_U8 = 4,
    PT_I32 = 5,
    PT_U4 = 6,     /* packed 4-bit codes, two per byte, element 2i in the low nibble */
    PT_I64 = 7
} pt_dtype;

typedef enum pt_device {
    PT_DEVICE_CPU = 0,
    PT_DEVICE_CUDA = 1
} pt_device;

#define PT_MAX_DIMS 4

/* A strided view of memory owned by the caller. For PT_U4 the innermost dim must be even
 * and contiguous, and stride[] of the outer dims counts bytes of packed data. */
typedef struct pt_tensor {
    void*   data;
    int32_t dtype;                 /* pt_dtype */
    int32_t device;                /* pt_device */
    int32_t ndim;                  /* 1..PT_MAX_DIMS */
    int32_t reserved;
    int64_t shape[PT_MAX_DIMS];    /* row-major: shape[0] outermost */
    int64_t stride[PT_MAX_DIMS];   /* bytes */
} pt_tensor;

/* Bytes of one element (PT_U4: 0, use pt_dtype_bits). */
PT_API size_t pt_dtype_size(int32_t dtype);

/* ------------------------------------------------------------------------------------------
 * Context
 * ---------------------------------------------------------------------------------------- */

typedef struct pt_ctx pt_ctx;

typedef struct pt_ctx_params {
    int32_t  n_threads;      /* <= 0: the number of online cores */
    uint32_t disable_caps;   /* pt_cpu_cap flags the kernels must not use (testing, A/B) */
    int32_t  use_onednn;     /* 1: use oneDNN where present (default), 0: own kernels only */
    int32_t  reserved;
} pt_ctx_params;

/* Creates a context. params may be NULL (defaults). *out receives the handle. */
PT_API pt_status pt_ctx_create(const pt_ctx_params* params, pt_ctx** out);
/* Destroys a context; NULL is accepted. */
PT_API pt_status pt_ctx_destroy(pt_ctx* ctx);
PT_API pt_status pt_ctx_threads(const pt_ctx* ctx, int32_t* out);

/* ------------------------------------------------------------------------------------------
 * Dense GEMM
 * ---------------------------------------------------------------------------------------- */

typedef enum pt_activation {
    PT_ACT_NONE = 0,
    PT_ACT_RELU = 1,
    PT_ACT_GELU_ERF = 2,
    PT_ACT_GELU_TANH = 3,
    PT_ACT_SILU = 4
} pt_activation;

typedef struct pt_matmul_params {
    int32_t trans_b;      /* 0: b is [K, N]; 1: b is [N, K] (PyTorch Linear weight layout) */
    int32_t activation;   /* pt_activation applied after alpha, bias and beta */
    float   alpha;        /* c = act(alpha * a@b + bias + beta * c); 0 is read as 1 */
    float   beta;         /* 0: c is write-only (may hold NaN) */
} pt_matmul_params;

/*
 * c = act(alpha * (a @ op(b)) + bias + beta * c)
 *   a    [M, K]  or [B, M, K]        f32 | bf16, innermost contiguous, any row stride
 *   b    [K, N]  (trans_b=0) or [N, K] (trans_b=1), optionally with a leading [B] or
 *        broadcast (2-D b with 3-D a); same dtype as a
 *   bias [N]  f32 or NULL
 *   c    [M, N]  or [B, M, N]        f32 (or bf16 when a is bf16), innermost contiguous
 * f32: oneDNN when present and enabled, else our AVX-512/AVX2/portable packed kernel.
 * bf16: f32 accumulation (AMX-BF16 / AVX512-BF16 through oneDNN, or our kernel).
 * params may be NULL (trans_b=0, no activation, alpha=1, beta=0).
 */
PT_API pt_status pt_matmul(pt_ctx* ctx, const pt_tensor* a, const pt_tensor* b,
                           const pt_tensor* bias, pt_tensor* c, const pt_matmul_params* params);

/* ------------------------------------------------------------------------------------------
 * Elementwise, normalization and the rest of a transformer block.
 * x/out of any rank (<= 4), innermost dim contiguous; outer dims may be strided.
 * Unless stated, f32 and bf16 are accepted for x and out (independently), compute is f32,
 * and out may alias x exactly (in-place).
 * ---------------------------------------------------------------------------------------- */

/*
 * out = a + b, where b is broadcast over the rows of a when b is 1-D [cols] (bias add), or
 * has a's shape (residual add). a, b, out: f32 | bf16.
 */
PT_API pt_status pt_add(pt_ctx* ctx, const pt_tensor* a, const pt_tensor* b, pt_tensor* out);

typedef enum pt_unary_op {
    PT_UNARY_GELU_ERF = 0,    /* x/2 * (1 + erf(x/sqrt 2)) */
    PT_UNARY_GELU_TANH = 1,   /* x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    PT_UNARY_SILU = 2,        /* x * sigmoid(x) */
    PT_UNARY_RELU = 3
} pt_unary_op;

/* out = f(x), elementwise; x, out same shape. */
PT_API pt_status pt_unary(pt_ctx* ctx, int32_t op, const pt_tensor* x, pt_tensor* out);

/* SwiGLU: out[r, j] = silu(gate[r, j]) * up[r, j]; gate, up, out same shape. */
PT_API pt_status pt_swiglu(pt_ctx* ctx, const pt_tensor* gate, const pt_tensor* up, pt_tensor* out);

/* Softmax along the last dim: out = softmax(scale * x). scale 0 is read as 1. */
PT_API pt_status pt_softmax(pt_ctx* ctx, const pt_tensor* x, float scale, pt_tensor* out);

/*
 * LayerNorm over the last dim: out = (x - mean) / sqrt(var + eps) * gamma + beta.
 * gamma, beta: [cols] f32 (beta may be NULL). Variance is the biased one (as PyTorch).
 */
PT_API pt_status pt_layer_norm(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* gamma,
                               const pt_tensor* beta, float eps, pt_tensor* out);

/* RMSNorm over the last dim: out = x / sqrt(mean(x^2) + eps) * gamma; gamma [cols] f32. */
PT_API pt_status pt_rms_norm(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* gamma,
                             float eps, pt_tensor* out);

typedef enum pt_rope_mode {
    PT_ROPE_NEOX = 0,   /* rotate halves: (x[i], x[i + d/2]) — Llama/GPT-NeoX/HF default */
    PT_ROPE_GPTJ = 1    /* rotate adjacent pairs: (x[2i], x[2i+1]) */
} pt_rope_mode;

typedef struct pt_rope_params {
    int32_t mode;          /* pt_rope_mode */
    int32_t rotary_dim;    /* dims rotated from the start of each head; 0 = head dim */
    float   theta;         /* base, e.g. 10000 */
    float   freq_scale;    /* positions are multiplied by this (linear scaling); 0 = 1 */
    const float* inv_freq; /* optional [rotary_dim/2] table overriding theta (llama3 scaling) */
} pt_rope_params;

/*
 * Rotary position embedding, applied per head.
 *   x, out   [T, H, D]  (T tokens, H heads, D head dim), f32 | bf16, innermost contiguous
 *   positions [T] i32: the position of each token
 * Angle for pair i: pos * freq_scale * theta^(-2i / rotary_dim) (or inv_freq[i]).
 */
PT_API pt_status pt_rope(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* positions,
                         const pt_rope_params* params, pt_tensor* out);

/*
 * Embedding gather: out[t, :] = table[ids[t], :].
 *   table [V, D] f32 | bf16;  ids [T] i32 (each in [0, V), else PT_ERR_INVALID_ARGUMENT and
 *   nothing is written);  out [T, D] f32 | bf16.
 */
PT_API pt_status pt_embedding(pt_ctx* ctx, const pt_tensor* table, const pt_tensor* ids,
                              pt_tensor* out);

/* Dtype conversion, elementwise between any two of f32, f16, bf16 (round to nearest even). */
PT_API pt_status pt_convert(pt_ctx* ctx, const pt_tensor* x, pt_tensor* out);

/* ==== CUDA (issue 7) ==== */
/*
 * The CUDA backend lives in a separate shared library, libpanatron_cuda (CMake option
 * PANATRON_CUDA=ON). It does not need libpanatron or oneDNN; load it only where an NVIDIA
 * driver is present (pt_cuda_device_count reports 0 devices, with PT_OK, where none is).
 * Its own errors are read with pt_cuda_last_error() (same thread-local rules as
 * pt_last_error(), a separate buffer since the two libraries are loaded independently).
 *
 * Device tensors are pt_tensor with device == PT_DEVICE_CUDA and data a device pointer
 * (from pt_cuda_malloc or any cudaMalloc'd memory of the context's device). All ops are
 * enqueued on the context's stream and return before the GPU has finished (asynchronous);
 * pt_cuda_synchronize waits. Launch and CUDA errors detected at enqueue time are returned
 * as PT_ERR_BACKEND with the CUDA error name; asynchronous faults surface at the next
 * synchronizing call (pt_cuda_synchronize, pt_cuda_memcpy_d2h).
 * A pt_cuda_ctx may be used from several host threads, but calls are serialized on its
 * one stream; use one context per stream for concurrency.
 */

/* Properties of one CUDA device. */
typedef struct pt_cuda_device_info {
    char     name[256];
    int32_t  device;              /* ordinal */
    int32_t  cc_major, cc_minor;  /* compute capability, e.g. 9.0 for H100 */
    int32_t  sm_count;            /* streaming multiprocessors */
    int64_t  total_mem;           /* bytes of device memory */
    int64_t  free_mem;            /* bytes free at the time of the call */
    int32_t  l2_bytes;
    int32_t  smem_per_block_optin;/* max dynamic shared memory one block can opt into */
    int32_t  mem_bus_width;       /* bits */
    int32_t  driver_version;      /* e.g. 13000 */
    int32_t  runtime_version;     /* the CUDA runtime this library was built with */
    int32_t  reserved[3];
} pt_cuda_device_info;

/* The last error message of a libpanatron_cuda call on this thread ("" if none). */
PT_API const char* pt_cuda_last_error(void);

/* Number of CUDA devices; 0 (and PT_OK) where no driver or no device is present. */
PT_API pt_status pt_cuda_device_count(int32_t* out);

/* Fills *out for device ordinal `device` (0 .. count-1). */
PT_API pt_status pt_cuda_device_info_get(int32_t device, pt_cuda_device_info* out);

typedef struct pt_cuda_ctx pt_cuda_ctx;

typedef struct pt_cuda_ctx_params {
    int32_t device;            /* device ordinal */
    int32_t allow_tf32;        /* 1: f32 matmuls may round inputs to tf32 (tensor cores) */
    int64_t workspace_bytes;   /* cuBLASLt workspace; 0: 32 MiB */
    void*   stream;            /* a cudaStream_t to enqueue on; NULL: the context creates its own */
} pt_cuda_ctx_params;

/* Creates a context on a device: stream, cuBLASLt handle (loaded on first use), workspace,
 * caching allocator and pinned staging buffers. params may be NULL (device 0, defaults). */
PT_API pt_status pt_cuda_ctx_create(const pt_cuda_ctx_params* params, pt_cuda_ctx** out);
/* Waits for the stream, frees everything the context owns (cached device blocks included;
 * blocks still handed out by pt_cuda_malloc are freed too). NULL is accepted. */
PT_API pt_status pt_cuda_ctx_destroy(pt_cuda_ctx* ctx);
/* The cudaStream_t the context enqueues on. */
PT_API pt_status pt_cuda_ctx_stream(pt_cuda_ctx* ctx, void** out);
/* Blocks until all work enqueued on the context's stream has finished; reports faults. */
PT_API pt_status pt_cuda_synchronize(pt_cuda_ctx* ctx);

/* Device memory from the context's caching allocator (256-byte aligned). Freed blocks go
 * back to the cache and are reused in stream order, so a block freed after enqueuing work
 * that reads it may be handed out again to later work on the same stream. bytes 0 gives
 * NULL and PT_OK. */
PT_API pt_status pt_cuda_malloc(pt_cuda_ctx* ctx, size_t bytes, void** out);
/* Returns a block from pt_cuda_malloc to the cache; NULL is accepted. */
PT_API pt_status pt_cuda_free(pt_cuda_ctx* ctx, void* ptr);
/* Releases cached (unused) blocks to the driver after waiting for the stream. */
PT_API pt_status pt_cuda_empty_cache(pt_cuda_ctx* ctx);
/* Bytes handed out and bytes held in the cache (either pointer may be NULL). */
PT_API pt_status pt_cuda_memory_stats(pt_cuda_ctx* ctx, int64_t* in_use, int64_t* cached);

/* Host -> device copy of `bytes`. Pageable host memory goes through pinned staging buffers
 * (double-buffered); returns once `src` may be reused (the copy itself may still run). */
PT_API pt_status pt_cuda_memcpy_h2d(pt_cuda_ctx* ctx, void* dst, const void* src, size_t bytes);
/* Device -> host copy; waits for the stream first, so earlier work is visible in `dst`. */
PT_API pt_status pt_cuda_memcpy_d2h(pt_cuda_ctx* ctx, void* dst, const void* src, size_t bytes);
/* Device -> device copy, enqueued on the stream. */
PT_API pt_status pt_cuda_memcpy_d2d(pt_cuda_ctx* ctx, void* dst, const void* src, size_t bytes);
/* Sets `bytes` of device memory to the byte `value`, enqueued (tests poison with 0xff). */
PT_API pt_status pt_cuda_memset(pt_cuda_ctx* ctx, void* dst, int32_t value, size_t bytes);

/* Timing events (cudaEvent_t, opaque here). Record enqueues on the context's stream;
 * elapsed waits for `end` to complete and gives the milliseconds between the two records. */
PT_API pt_status pt_cuda_event_create(pt_cuda_ctx* ctx, void** out);
PT_API pt_status pt_cuda_event_record(pt_cuda_ctx* ctx, void* event);
PT_API pt_status pt_cuda_event_elapsed_ms(pt_cuda_ctx* ctx, void* start, void* end, float* out_ms);
/* NULL is accepted. */
PT_API pt_status pt_cuda_event_destroy(pt_cuda_ctx* ctx, void* event);

/*
 * c = act(alpha * (a @ op(b)) + bias + beta * c) on the GPU, through cuBLASLt.
 *   a    [M, K] or [B, M, K]        f32 | f16 | bf16, innermost contiguous, any row stride
 *   b    [K, N] (trans_b=0) or [N, K] (trans_b=1, the Linear weight layout), optionally
 *        with a leading [B]; a 2-D b is broadcast over a 3-D a's batch. Same dtype as a.
 *   bias [N] or NULL: f32, or the dtype of c
 *   c    [M, N] or [B, M, N]: f32 for f32 inputs; f16/bf16 inputs give c of their own dtype
 *        or f32. Innermost contiguous. Batched (3-D) tensors need uniform batch strides.
 * Accumulation is f32 (f16/bf16 on tensor cores; f32 exact unless the context allows tf32).
 * Epilogues: bias, ReLU and GELU(tanh) are fused in cuBLASLt; GELU(erf) and SiLU run as a
 * second pass over c. params may be NULL (trans_b=0, no activation, alpha=1, beta=0).
 */
PT_API pt_status pt_cuda_matmul(pt_cuda_ctx* ctx, const pt_tensor* a, const pt_tensor* b,
                                const pt_tensor* bias, pt_tensor* c, const pt_matmul_params* params);

typedef struct pt_cuda_attn_params {
    float   scale;            /* softmax scale; 0: 1/sqrt(D) */
    int32_t causal;           /* 1: query i (of Sq) sees keys j <= i + (Sk - Sq) (bottom-right
                                 aligned, as FlashAttention 2.1+; equal to top-left when Sq == Sk) */
    const int32_t* cu_seqlens_q; /* varlen: device [B+1] i32 prefix sums of query lengths, or NULL */
    const int32_t* cu_seqlens_k; /* varlen: device [B+1] i32 prefix sums of key lengths, or NULL */
    int32_t batch;            /* varlen: number of sequences (cu_seqlens hold batch + 1 entries) */
    int32_t max_seqlen_q;     /* varlen: upper bound of the query lengths (host value) */
    int32_t max_seqlen_k;     /* varlen: upper bound of the key lengths (host value); decode: 0 = S_max */
    int32_t num_splits;       /* decode: KV splits; 0 = chosen from the SM count */
    int32_t variant;          /* 0 = automatic kernel choice (others: benchmarking only) */
    int32_t reserved;
} pt_cuda_attn_params;

/*
 * Flash attention forward (prefill), FlashAttention-2 tiling on tensor cores (mma.sync):
 * out = softmax(scale * q k^T [causal mask]) v, never materializing S x S.
 *   q    [B, Sq, Hq, D]  bf16 | f16; any strides but the innermost (contiguous). A PyTorch
 *        [B, H, S, D] tensor is passed as its transpose(1, 2) view (strides swapped).
 *   k, v [B, Sk, Hkv, D] same dtype; Hq % Hkv == 0 (GQA/MQA: query head h reads kv head
 *        h / (Hq / Hkv)).
 *   out  [B, Sq, Hq, D]  same dtype as q; innermost contiguous.
 *   lse  [B, Hq, Sq] f32 contiguous, or NULL: log-sum-exp of the scaled scores per row
 *        (natural log; -inf for a row that sees no key, whose output is 0).
 *   D in {64, 80, 96, 128, 256}.
 * Varlen (packed batches, params->cu_seqlens_q/k non-NULL): q [Tq, Hq, D], k/v [Tk, Hkv, D],
 * out [Tq, Hq, D], lse [Hq, Tq]; sequence b < params->batch owns rows
 * cu_seqlens[b] .. cu_seqlens[b+1]-1; max_seqlen_q/k bound the lengths (the grid is sized
 * from them; a larger length is an error the kernel cannot report, so pass true bounds).
 */
PT_API pt_status pt_cuda_flash_attn_fwd(pt_cuda_ctx* ctx, const pt_tensor* q, const pt_tensor* k,
                                        const pt_tensor* v, pt_tensor* out, pt_tensor* lse,
                                        const pt_cuda_attn_params* params);

/*
 * Decode attention against a KV cache (flash-decoding: the KV length is split across
 * blocks, each writes a partial softmax, a second kernel combines them by log-sum-exp).
 *   q        [B, Hq, D]             bf16 | f16, innermost contiguous (one new token per sequence)
 *   k_cache  [B, Hkv, S_max, D]     same dtype, innermost contiguous, any outer strides
 *   v_cache  [B, Hkv, S_max, D]
 *   seqlens_k [B] i32 device: keys valid in each sequence's cache (1 .. S_max), the new
 *            token's included; the query sees all of them (no mask needed).
 *   out      [B, Hq, D]  same dtype as q.
 *   D in {64, 80, 96, 128, 256}. Scratch for the partial results comes from the context's
 *   allocator.
 */
PT_API pt_status pt_cuda_flash_attn_decode(pt_cuda_ctx* ctx, const pt_tensor* q,
                                           const pt_tensor* k_cache, const pt_tensor* v_cache,
                                           const pt_tensor* seqlens_k, pt_tensor* out,
                                           const pt_cuda_attn_params* params);

/* ==== attention (issue 3) ==== */

/* ==== end ==== */

#ifdef __cplusplus
}
#endif

#endif /* PANATRON_H */
