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

/* ==== int8 and block-sparse GEMM (issue 5) ==== */

/*
 * Per-output-channel (absmax) int8 quantization of a Linear weight, done once at load time:
 *   w      [N, K]  f32 | bf16, innermost contiguous
 *   wq     [N, K]  i8 (out), innermost contiguous: wq[n,k] = rne(w[n,k] * (127 / absmax_n))
 *   scale  [N]     f32 (out): absmax_n / 127 (0 for an all-zero row)
 * A non-finite weight is PT_ERR_INVALID_ARGUMENT (naming its index).
 */
PT_API pt_status pt_quantize_int8_weight(pt_ctx* ctx, const pt_tensor* w, pt_tensor* wq,
                                         pt_tensor* scale);

typedef enum pt_int8_mode {
    PT_INT8_LLM = 0,          /* LLM.int8: outlier feature columns in f32, the rest int8 */
    PT_INT8_W8A8 = 1,         /* every column quantized, no decomposition */
    PT_INT8_WEIGHT_ONLY = 2   /* W8A32: x stays f32, the weight is dequantized block-wise */
} pt_int8_mode;

typedef struct pt_int8_matmul_params {
    int32_t mode;         /* pt_int8_mode */
    int32_t activation;   /* pt_activation applied after the bias */
    float   threshold;    /* LLM: column j is an outlier when some |x[m,j]| >= threshold;
                           * 0 is read as 6.0; must be > 0 */
    int32_t reserved;
    const pt_tensor* w_packed; /* NULL, or wq packed by pt_pack_int8_weight (skips the
                                * per-call packing of the weight; wq must still be given) */
} pt_int8_matmul_params;

/* Bytes of the packed form of an int8 weight [N, K] (pt_pack_int8_weight). */
PT_API int64_t pt_int8_packed_bytes(int64_t n, int64_t k);

/*
 * Packs wq [N, K] i8 once for pt_matmul_int8 (blocks of 64 channels in the VNNI/AMX dot-product
 * layout, K padded to 64, with their column sums):
 *   packed  1-D i8 of pt_int8_packed_bytes(N, K) elements, contiguous
 */
PT_API pt_status pt_pack_int8_weight(pt_ctx* ctx, const pt_tensor* wq, pt_tensor* packed);

/*
 * y = act(x @ W^T + bias), W given as wq (int8) with per-channel scales w_scale:
 *   x          [M, K]  f32 | bf16, innermost contiguous, any row stride
 *   wq         [N, K]  i8, innermost contiguous (pt_quantize_int8_weight)
 *   w_scale    [N]     f32
 *   w_outlier  [N, K]  f32 | bf16 or NULL: the full-precision weight the LLM mode uses for
 *                      the outlier columns; NULL: the dequantized wq (wq * w_scale)
 *   bias       [N]     f32 or NULL
 *   y          [M, N]  f32 | bf16, innermost contiguous
 * LLM / W8A8 math (exactly what the tests' reference computes): O = outlier columns of this
 * call (LLM only; empty for W8A8); per row s_m = max_{j not in O} |x[m,j]| / 127 and
 * xq[m,j] = rne(x[m,j] * (127 / (127 s_m))) (f32 product), 0 for j in O;
 *   y[m,n] = act(s_m * w_scale[n] * sum_j xq[m,j] wq[n,j] + sum_{j in O} x[m,j] Wo[n,j] + bias[n])
 * with the integer sum exact (s32; AVX512-VNNI u8 x s8 with a +128 shift and a column-sum
 * correction, portable C elsewhere). A non-finite x value makes its output row NaN.
 * WEIGHT_ONLY: y = act(sum_j x[m,j] (wq[n,j] w_scale[n]) + bias) in f32.
 * params may be NULL (LLM, threshold 6.0, no activation).
 */
PT_API pt_status pt_matmul_int8(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* wq,
                                const pt_tensor* w_scale, const pt_tensor* w_outlier,
                                const pt_tensor* bias, pt_tensor* y,
                                const pt_int8_matmul_params* params);

/*
 * Plain oneDNN s8 matmul: the BASELINE the int8 benchmarks compare against (panatron bench
 * kernels, JMH), not a kernel of ours. No outlier decomposition, no activation quantization:
 * oneDNN's s8 x s8 -> s32 matmul with f32 scales, the weight reordered once (at create) into
 * oneDNN's preferred layout for m rows.
 * pt_s8_matmul_create:
 *   m        rows per call, >= 1
 *   wq       [N, K]  i8, innermost contiguous (pt_quantize_int8_weight); copied
 *   w_scale  [N]     f32; copied
 *   *out receives the handle (free it with pt_s8_matmul_destroy). PT_ERR_UNSUPPORTED when the
 *   library was built without oneDNN or ctx has it disabled (use_onednn = 0).
 * pt_s8_matmul_run: y[i, n] = x_scale * w_scale[n] * sum_k x[i, k] wq[n, k] + bias[n]
 *   x     [m, K]  i8, contiguous
 *   bias  [N] f32 or NULL
 *   y     [m, N]  f32, contiguous
 *   x_scale finite. Runs on ctx's threads; one handle must not run on two threads at once.
 */
typedef struct pt_s8_matmul pt_s8_matmul;
PT_API pt_status pt_s8_matmul_create(pt_ctx* ctx, int64_t m, const pt_tensor* wq, const pt_tensor* w_scale,
                                     pt_s8_matmul** out);
PT_API pt_status pt_s8_matmul_run(pt_ctx* ctx, pt_s8_matmul* p, const pt_tensor* x, float x_scale,
                                  const pt_tensor* bias, pt_tensor* y);
/* Frees the handle; NULL is accepted. */
PT_API pt_status pt_s8_matmul_destroy(pt_s8_matmul* p);

/*
 * Prepacked right-hand operands (constant weights): packed once into the layout our GEMM
 * kernel reads, so pt_matmul_packed skips packing B on every call (what a model's linear
 * layers want: the packing is about 8/M of a call's work, half of it at M = 16).
 */
typedef struct pt_packed_matrix pt_packed_matrix;

/*
 * Packs b for pt_matmul_packed:
 *   b      [K, N] (trans_b=0) or [N, K] (trans_b=1, PyTorch Linear layout), f32 | bf16,
 *          innermost contiguous, any row stride; read only during this call
 *   dtype  PT_F32 or PT_BF16: the precision of the products. PT_BF16 rounds b to bf16 (to
 *          nearest even) and runs on AMX-BF16 / AVX512-BF16 where the CPU has them (else on
 *          the f32 kernel, with b's values rounded to bf16: the same results up to rounding
 *          of the sums)
 * The kernel is chosen from ctx's CPU features now (ctx->caps); the handle must later be used
 * with a context that has those features. *out receives a handle owning its copy (about
 * K * N * sizeof(dtype) bytes, padded to the kernel's blocks); free it with
 * pt_packed_matrix_destroy.
 */
PT_API pt_status pt_matmul_pack(pt_ctx* ctx, const pt_tensor* b, int32_t trans_b, int32_t dtype,
                                pt_packed_matrix** out);

/* Frees a packed matrix; NULL is accepted. */
PT_API pt_status pt_packed_matrix_destroy(pt_packed_matrix* p);

/* Shape and size of a packed matrix: K, N, the products' dtype, and bytes held (any out
 * pointer may be NULL). */
PT_API pt_status pt_packed_matrix_info(const pt_packed_matrix* p, int64_t* k, int64_t* n,
                                       int32_t* dtype, int64_t* bytes);

/*
 * c = act(alpha * (a @ B) + bias + beta * c), B packed by pt_matmul_pack (its trans_b is
 * the packing's; params->trans_b is ignored):
 *   a     [M, K] or [B, M, K]  f32 | bf16 (either, whatever the packed dtype: a bf16 packing
 *         rounds a's rows to bf16 while packing them; an f32 one widens bf16 rows)
 *   bias  [N] f32 or NULL
 *   c     [M, N] or [B, M, N] (a's rank)  f32 | bf16, innermost contiguous
 * Our kernels run it whether or not ctx uses oneDNN; threads as pt_matmul. A context without
 * the CPU features the packing chose gives PT_ERR_UNSUPPORTED. params may be NULL.
 */
PT_API pt_status pt_matmul_packed(pt_ctx* ctx, const pt_tensor* a, const pt_packed_matrix* b,
                                  const pt_tensor* bias, pt_tensor* c, const pt_matmul_params* params);

/* ------------------------------------------------------------------------------------------
 * Elementwise, normalization and the rest of a transformer block.
 *
 * Common contract of this section (each op states its exceptions):
 *  - x/out of any rank (1..4); the innermost dim must be contiguous, outer dims may have any
 *    byte strides (e.g. a [T, H, D] view of a fused QKV projection).
 *  - f32 and bf16 are accepted for every data tensor, independently (x may be bf16 and out
 *    f32, or the reverse); compute is f32; stores round to nearest even. Parameter vectors
 *    (gamma, beta) are f32.
 *  - out may alias an input EXACTLY (same data, dtype and strides: in-place); any other
 *    overlap between an input and an output gives unspecified results.
 *  - NaN in an input gives NaN in the outputs it reaches (a row, for row-wise ops); nothing
 *    is clamped or flushed.
 *  - Work is split over rows (and column blocks for elementwise ops) on ctx's threads; calls
 *    on tiny tensors stay on the calling thread. Empty tensors are a no-op.
 *  - On AVX-512 CPUs a vectorized path is used (polynomial exp/erfc/tanh: a few ulps, times
 *    the function's condition number for the GELUs, whose far-left tails are ill-conditioned
 *    in f32); elsewhere, or with PT_CPU_AVX512F in pt_ctx_params.disable_caps, plain C with
 *    libm. Both paths are tested against the same double references and tolerances.
 * ---------------------------------------------------------------------------------------- */

/*
 * out = a + b
 *   a, out  same shape, f32 | bf16
 *   b       a's shape (residual add), or 1-D [cols of a] broadcast over a's rows (bias add);
 *           f32 | bf16
 * out may alias a or b.
 */
PT_API pt_status pt_add(pt_ctx* ctx, const pt_tensor* a, const pt_tensor* b, pt_tensor* out);

typedef enum pt_unary_op {
    PT_UNARY_GELU_ERF = 0,    /* x/2 * (1 + erf(x/sqrt 2))   (computed as x/2 * erfc(-x/sqrt 2)) */
    PT_UNARY_GELU_TANH = 1,   /* x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    PT_UNARY_SILU = 2,        /* x * sigmoid(x) */
    PT_UNARY_RELU = 3,        /* max(x, 0); NaN stays NaN */
    PT_UNARY_TANH = 4,        /* tanh(x) (e.g. BERT's pooler) */
    PT_UNARY_SIGMOID = 5      /* 1 / (1 + exp(-x)) */
} pt_unary_op;

/*
 * out = f(x), elementwise; x, out same shape. op: pt_unary_op.
 * Limits: gelu(-inf) = silu(-inf) = -0, gelu(+inf) = silu(+inf) = +inf.
 */
PT_API pt_status pt_unary(pt_ctx* ctx, int32_t op, const pt_tensor* x, pt_tensor* out);

/* SwiGLU: out[r, j] = silu(gate[r, j]) * up[r, j]; gate, up, out same shape (out may alias
 * gate or up). */
PT_API pt_status pt_swiglu(pt_ctx* ctx, const pt_tensor* gate, const pt_tensor* up, pt_tensor* out);

/*
 * Softmax along the last dim: out = softmax(scale * x), computed stably as
 * exp(scale*x - max) / sum. scale must be finite; 0 is read as 1; negative is allowed.
 *   x, out  same shape [..., cols]
 * A row holding NaN, or whose maximum is +inf, or that is all -inf, becomes NaN (as PyTorch).
 */
PT_API pt_status pt_softmax(pt_ctx* ctx, const pt_tensor* x, float scale, pt_tensor* out);

/*
 * LayerNorm over the last dim: out = (x - mean) / sqrt(var + eps) * gamma + beta.
 *   x, out  same shape [..., cols]
 *   gamma   [cols] f32;  beta [cols] f32 or NULL (no shift)
 *   eps     finite, >= 0 (e.g. 1e-5; BERT uses 1e-12)
 * Variance is the biased one (divides by cols), computed in two passes (mean first).
 */
PT_API pt_status pt_layer_norm(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* gamma,
                               const pt_tensor* beta, float eps, pt_tensor* out);

/*
 * Residual add fused with LayerNorm, one pass over memory less than pt_add + pt_layer_norm:
 *   s = x + residual;  out = layer_norm(s) (as pt_layer_norm);  sum_out = s (if not NULL)
 *   x, residual, out, sum_out  same shape [..., cols]; f32 | bf16 each
 * sum_out may alias x or residual (the pre-LN residual stream updated in place); out may
 * alias x or residual too. When sum_out is given, the norm is taken of the values as stored
 * in it (a bf16 sum_out rounds first, as a bf16 PyTorch model does); otherwise of the f32 sum.
 * Post-LN blocks (BERT): out = LN(attn_out + residual), sum_out NULL.
 */
PT_API pt_status pt_add_layer_norm(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* residual,
                                   const pt_tensor* gamma, const pt_tensor* beta, float eps,
                                   pt_tensor* out, pt_tensor* sum_out);

/*
 * RMSNorm over the last dim: out = x / sqrt(mean(x^2) + eps) * gamma.
 *   x, out  same shape [..., cols];  gamma [cols] f32;  eps >= 0
 * (Gemma's (1 + w) convention: pass gamma = 1 + w.)
 */
PT_API pt_status pt_rms_norm(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* gamma,
                             float eps, pt_tensor* out);

/*
 * Residual add fused with RMSNorm (Llama-style pre-norm blocks):
 *   s = x + residual;  out = rms_norm(s);  sum_out = s (if not NULL)
 * Shapes, dtypes and aliasing as pt_add_layer_norm.
 */
PT_API pt_status pt_add_rms_norm(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* residual,
                                 const pt_tensor* gamma, float eps, pt_tensor* out,
                                 pt_tensor* sum_out);

typedef enum pt_rope_mode {
    PT_ROPE_NEOX = 0,   /* rotate halves: (x[i], x[i + r/2]) — Llama/GPT-NeoX/HF default */
    PT_ROPE_GPTJ = 1    /* rotate adjacent pairs: (x[2i], x[2i+1]) */
} pt_rope_mode;

typedef struct pt_rope_params {
    int32_t mode;          /* pt_rope_mode */
    int32_t rotary_dim;    /* r: dims rotated from the start of each head, even, <= D; 0 = D */
    float   theta;         /* base, e.g. 10000; > 0 unless inv_freq is given */
    float   freq_scale;    /* positions are multiplied by this (linear scaling); 0 = 1 */
    const float* inv_freq; /* optional [r/2] table overriding theta (llama3/YaRN scaling) */
} pt_rope_params;

/*
 * Rotary position embedding, applied per head.
 *   x, out     [T, H, D] or [B, T, H, D] (H heads of head dim D), f32 | bf16, innermost
 *              contiguous, outer dims strided (a Q or K view of a fused QKV output works)
 *   positions  i32, contiguous: [T] (shared by every batch entry) or [B, T] for 4-D x
 * Pair i (0 <= i < r/2) of each head is rotated by the angle
 *   pos * freq_scale * inv_freq[i],   inv_freq[i] = theta^(-2i / r) unless given,
 * NEOX pairs (x[i], x[i + r/2]), GPTJ pairs (x[2i], x[2i+1]):
 *   (a, b) -> (a cos - b sin, b cos + a sin).
 * Dims r..D-1 pass through unchanged. Angles are computed in double precision, so large
 * positions keep full f32 accuracy. params must not be NULL.
 */
PT_API pt_status pt_rope(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* positions,
                         const pt_rope_params* params, pt_tensor* out);

/*
 * Embedding gather: out[..., :] = table[ids[...], :].
 *   table  [V, D] f32 | bf16 | f16, innermost contiguous (row stride free)
 *   ids    [T] or [B, T] (rank 1..3) i32, contiguous; each in [0, V), else
 *          PT_ERR_INVALID_ARGUMENT naming the first bad position, and NOTHING is written
 *   out    ids' shape + [D], f32 | bf16 | f16 (converted from table's dtype)
 */
PT_API pt_status pt_embedding(pt_ctx* ctx, const pt_tensor* table, const pt_tensor* ids,
                              pt_tensor* out);

/*
 * Masked mean pooling over tokens (sentence embeddings):
 *   out[b, :] = sum_t m[b,t] x[b, t, :] / sum_t m[b,t],  m = (mask != 0), or 1 when mask NULL
 *   x     [B, T, D] f32 | bf16
 *   mask  [B, T] i32 contiguous (attention mask: 1 keep, 0 padding), or NULL
 *   out   [B, D] f32 | bf16
 * A row with no kept token gives zeros. normalize != 0: each out row is then divided by
 * max(||row||_2, 1e-12) (sentence-transformers' Normalize).
 */
PT_API pt_status pt_mean_pool(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* mask,
                              int32_t normalize, pt_tensor* out);

/*
 * Dtype conversion, elementwise between any two of f32, f16, bf16 (round to nearest even;
 * NaN stays NaN, overflow to f16 gives inf, f16/bf16 subnormals are kept). x, out same
 * shape. out may alias x only when both have the same dtype (then it is a no-op copy).
 */
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
    int32_t variant;          /* 0 = automatic kernel choice (others: benchmarking only; decode:
                                 1 register loads, 2 / 3 cp.async with 3 / 4 stages, + 8 the
                                 combine kernel without programmatic dependent launch) */
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

/*
 * Decode attention against a paged KV cache (vLLM / FlashInfer style): sequences own
 * fixed-size blocks of a shared pool through a block table; otherwise as
 * pt_cuda_flash_attn_decode (same kernels, the row address goes through the table).
 *   q           [B, Hq, D]  bf16 | f16, innermost contiguous
 *   k_pool      [num_blocks, Hkv, block_size, D] same dtype, innermost contiguous, any outer
 *               strides (16-byte multiples): the vLLM layout [num_blocks, block_size, Hkv, D]
 *               is passed as its transpose(1, 2) view. block_size: a power of two, 1 .. 4096.
 *   v_pool      like k_pool (same shape; its own strides)
 *   block_table [B, max_blocks] i32 device, innermost contiguous: key j of sequence b is row
 *               j % block_size of block block_table[b, j / block_size]. Blocks may repeat
 *               across sequences (shared prefixes) and need not be in order.
 *   seqlens_k   [B] i32 device: keys of each sequence (values above the capacity
 *               max_blocks * block_size are clamped to it; <= 0 gives a zero row)
 *   out         [B, Hq, D] same dtype as q.
 *   params->max_seqlen_k: a host bound of seqlens_k (0: the capacity; larger than the capacity
 *   is refused). A block id outside 0 .. num_blocks-1 among the first seqlens_k[b] keys is an
 *   error the GPU cannot report: sequence b's output rows become NaN.
 */
PT_API pt_status pt_cuda_flash_attn_decode_paged(pt_cuda_ctx* ctx, const pt_tensor* q,
                                                 const pt_tensor* k_pool, const pt_tensor* v_pool,
                                                 const pt_tensor* block_table,
                                                 const pt_tensor* seqlens_k, pt_tensor* out,
                                                 const pt_cuda_attn_params* params);

/*
 * LayerNorm over the last dim on the GPU: out = (x - mean) / sqrt(var + eps) * gamma + beta,
 * statistics in f32 (biased variance, two passes as pt_layer_norm).
 *   x, out  same shape [..., cols], same dtype f32 | f16 | bf16, both contiguous; out may alias x
 *   gamma   [cols] f32;  beta [cols] f32 or NULL (no shift)
 *   eps     finite, >= 0
 */
PT_API pt_status pt_cuda_layer_norm(pt_cuda_ctx* ctx, const pt_tensor* x, const pt_tensor* gamma,
                                    const pt_tensor* beta, float eps, pt_tensor* out);

/* ---- CUDA: quantized matmul (issue 7) ---- */

/*
 * Row quantization on the GPU (the activation side of LLM.int8 / W8A8; also a per-channel
 * weight quantizer: pt_quantize_int8_weight's formula):
 *   x         [M, K]  f32 | f16 | bf16, innermost contiguous, any row stride
 *   xq        [M, K]  i8 (out), innermost contiguous
 *   scale     [M]     f32 (out): s_m = absmax_m / 127 over the row's non-outlier columns;
 *                     NaN for a row holding a non-finite value (its xq row is 0)
 *   outliers  [K]     i32 (out) or NULL. Given: column j is an outlier when some
 *                     |x[m, j]| >= threshold (threshold > 0): outliers[j] = 1, xq[:, j] = 0 and
 *                     the column is left out of the row scales; else 0. NULL: no decomposition
 *                     (threshold ignored).
 * xq[m, j] = rne(x[m, j] * (127 / absmax_m)) in f32, clamped to [-127, 127] (pt_matmul_int8's
 * quantizer, bit for bit).
 */
PT_API pt_status pt_cuda_quantize_rows(pt_cuda_ctx* ctx, const pt_tensor* x, float threshold, pt_tensor* xq,
                                       pt_tensor* scale, pt_tensor* outliers);

/*
 * s8 x s8 GEMM on the int8 tensor cores (cuBLASLt IMMA; a portable tiled kernel where cuBLASLt
 * has no algorithm for the shape, e.g. K or a row stride not a multiple of 4):
 *   a        [M, K]  i8, innermost contiguous, any row stride
 *   b        [N, K]  i8 (the Linear weight layout: c = a @ b^T), innermost contiguous
 *   c        [M, N]  i32: the exact sums (a_scale, b_scale, bias NULL, activation NONE), or
 *                    f32 | f16 | bf16: c = act(sum * (a_scale[m] * b_scale[n]) + bias[n])
 *   a_scale  [M] f32 or NULL (1);  b_scale [N] f32 or NULL (1);  bias [N] f32 or NULL
 *   activation  pt_activation
 * The float outputs go through an s32 scratch [M, N] and one epilogue pass.
 */
PT_API pt_status pt_cuda_matmul_s8(pt_cuda_ctx* ctx, const pt_tensor* a, const pt_tensor* b,
                                   const pt_tensor* a_scale, const pt_tensor* b_scale,
                                   const pt_tensor* bias, pt_tensor* c, int32_t activation);

/*
 * pt_matmul_int8 on the GPU, modes PT_INT8_LLM (outlier decomposition) and PT_INT8_W8A8, with
 * the same math: y = act(s_m * w_scale[n] * sum_j xq[m,j] wq[n,j]
 *                        + sum_{j in O} x[m,j] Wo[n,j] + bias[n])
 *   x          [M, K]  f32 | f16 | bf16, innermost contiguous, any row stride
 *   wq         [N, K]  i8 (pt_quantize_int8_weight / pt_cuda_quantize_rows), w_scale [N] f32
 *   w_outlier  [N, K]  f32 | bf16 or NULL (the dequantized wq)
 *   bias       [N]     f32 or NULL
 *   y          [M, N]  f32 | f16 | bf16, innermost contiguous
 * Steps: column absmax -> outlier list (LLM), row quantization, the outlier product as an f32
 * GEMM [M, |O|] x [|O|, N] (tf32 only where the context allows it), the s8 GEMM
 * (pt_cuda_matmul_s8's), one epilogue. LLM mode copies the outlier count to the host (one
 * stream synchronization per call). A row with a non-finite x value comes out NaN.
 * params may be NULL (LLM, threshold 6.0); params->w_packed must be NULL; WEIGHT_ONLY is
 * PT_ERR_UNSUPPORTED here.
 */
PT_API pt_status pt_cuda_matmul_int8(pt_cuda_ctx* ctx, const pt_tensor* x, const pt_tensor* wq,
                                     const pt_tensor* w_scale, const pt_tensor* w_outlier,
                                     const pt_tensor* bias, pt_tensor* y,
                                     const pt_int8_matmul_params* params);

/*
 * FP4 matmul on the GPU (W4A16 / W4A32, and W4A4 emulated), pt_fp4_matmul's semantics and layout:
 *   y[m, n] = bias[n] + sum_k xq[m, k] * level[codes[n, k]] * scale(n, k)
 *   x       [M, K]  f32 | f16 | bf16, innermost contiguous, any row stride
 *   codes   [N, K]  PT_U4 on the device (two codes per byte, element 2i in the low nibble),
 *                   rows contiguous, any row stride >= K/2 bytes (16-byte aligned rows are
 *                   read in place; others are copied to an aligned scratch per call)
 *   scales  [N, K/G] f32 | bf16 (group G = params->group in {32, 64, 128}), or [N, 1] (group 0)
 *   bias    [N] f32 or NULL
 *   y       [M, N]  f32 or x's dtype, innermost contiguous
 * params->format: any pt_fp4_format. The weight is never materialized in full precision.
 * Weight-only (w4a4 = 0): xq = x. M <= 4 (and f32 x, per 4 rows): a GEMV that reads each code
 * byte once (16-byte loads) and decodes in registers through a shared-memory table (per byte
 * for E2M1/E1M2/E3M0, per nibble for NF4), f32 accumulation. M > 4 with f16/bf16 x: a
 * tensor-core GEMM (mma m16n8k16, f32 accumulation) that decodes each codes tile in shared
 * memory to x's dtype, i.e. level * scale rounded to 16 bits, as a dense 16-bit GEMM would.
 * W4A4 (w4a4 = 1, act_format, act_clip, act_shift as in pt_fp4_matmul_params): xq of the CPU
 * contract (f32 math, the same nearest-level ties) is written in x's dtype to a scratch [M, K],
 * then the kernels above run on it ("emulated": no FP4 tensor cores on sm_80/sm_90). act_shift:
 * NULL or a contiguous i32 [K] on the device (its range is not checked on the device).
 */
struct pt_fp4_matmul_params; /* defined in the FP4 section below */
PT_API pt_status pt_cuda_fp4_matmul(pt_cuda_ctx* ctx, const pt_tensor* x, const pt_tensor* codes,
                                    const pt_tensor* scales, const pt_tensor* bias, pt_tensor* y,
                                    const struct pt_fp4_matmul_params* params);

/* ---- CUDA: decoder ops (issue 7: GPT-2 / Llama decoding on the GPU) ----
 *
 * The pieces of a decoder forward pass besides the GEMMs (pt_cuda_matmul) and attention
 * (pt_cuda_flash_attn_fwd / _decode). Layout used by dev.panatron.cuda.CudaDecoder: residual
 * stream x [T, H] f32, everything fed to a GEMM bf16, KV caches [B, Hkv, S_max, D] bf16 (the
 * layout pt_cuda_flash_attn_decode reads). Values a decode step needs (token ids, positions,
 * cache lengths) live in device memory, so one captured step (pt_cuda_graph_*) replays as is:
 * pt_cuda_rope_kv_append raises the lengths and pt_cuda_argmax writes the next ids and
 * advances the positions. Errors the GPU cannot report (an id or position out of range) give
 * NaN rows or skipped writes as stated per op.
 */

/*
 * out[t, :] = table[ids[t], :] (+ pos_table[pos[t], :]) in f32.
 *   table     [V, H] bf16 | f32, contiguous;  ids [T] i32 device, contiguous
 *   pos_table [P, H] table's dtype, or NULL (then pos must be NULL); pos [T] i32 device
 *   out       [T, H] f32, contiguous
 * An id outside 0..V-1 or a position outside 0..P-1 gives a NaN row.
 */
PT_API pt_status pt_cuda_embedding(pt_cuda_ctx* ctx, const pt_tensor* table, const pt_tensor* ids,
                                   const pt_tensor* pos_table, const pt_tensor* pos, pt_tensor* out);

/*
 * Residual add fused with the next norm: x += delta (when delta is not NULL), then
 * out = norm(x) * gamma (+ beta), statistics in f32 over the last dim.
 *   x      [R, H] f32 contiguous (updated in place when delta is given)
 *   delta  [R, H] bf16 contiguous, or NULL
 *   gamma  [H] f32;  beta [H] f32 or NULL (LayerNorm only)
 *   mode   0: LayerNorm (mean, biased variance, two passes); 1: RMSNorm (x * rsqrt(mean(x^2) + eps))
 *   out    [R, H] bf16 | f32 contiguous; must not overlap x
 */
PT_API pt_status pt_cuda_add_norm(pt_cuda_ctx* ctx, pt_tensor* x, const pt_tensor* delta, const pt_tensor* gamma,
                                  const pt_tensor* beta, int32_t mode, float eps, pt_tensor* out);

/*
 * RoPE and KV-cache append for the fused projection output of T rows:
 *   qkv       [T, (q_heads + 2 Hkv) * D] bf16, innermost contiguous, any row stride; a row is
 *             [q heads | k heads | v heads]. Row t belongs to sequence b = t / (T / B) (T a
 *             multiple of B: B rows of one token each for decode, one sequence's T tokens when
 *             the caches are a [1, ...] view of it).
 *   pos       [T] i32 device: the position of each row.
 *   inv_freq  [D/2] f32 or NULL (no rotation, GPT-2): q is rotated in place inside qkv and k is
 *             rotated on its way into the cache, NeoX / HF rotate_half layout (pairs i, i + D/2),
 *             angle = pos * inv_freq[i] in f32 (any rope scaling is in inv_freq).
 *   k_cache, v_cache [B, Hkv, S_max, D] bf16, innermost contiguous: row pos[t] of sequence b
 *             receives k and v. A position outside 0..S_max-1 is not written.
 *   seqlens   [B] i32 device or NULL: seqlens[b] = max(seqlens[b], pos[t] + 1).
 */
PT_API pt_status pt_cuda_rope_kv_append(pt_cuda_ctx* ctx, pt_tensor* qkv, const pt_tensor* pos,
                                        const pt_tensor* inv_freq, int32_t q_heads, pt_tensor* k_cache,
                                        pt_tensor* v_cache, pt_tensor* seqlens);

/*
 * pt_cuda_rope_kv_append into a paged cache (the layout pt_cuda_flash_attn_decode_paged reads):
 *   qkv, pos, inv_freq, q_heads, seqlens as pt_cuda_rope_kv_append; B = block_table's rows.
 *   k_pool, v_pool [num_blocks, Hkv, block_size, D] bf16, innermost contiguous, any outer
 *             strides; block_size a power of two, 1 .. 4096.
 *   block_table [B, max_blocks] i32 device, innermost contiguous: row pos[t] of sequence b goes
 *             to row pos[t] % block_size of block block_table[b, pos[t] / block_size]. A position
 *             outside 0 .. max_blocks * block_size - 1, or one whose block id is outside
 *             0 .. num_blocks-1, is not written (and does not raise seqlens).
 */
PT_API pt_status pt_cuda_rope_kv_append_paged(pt_cuda_ctx* ctx, pt_tensor* qkv, const pt_tensor* pos,
                                              const pt_tensor* inv_freq, int32_t q_heads,
                                              pt_tensor* k_pool, pt_tensor* v_pool,
                                              const pt_tensor* block_table, pt_tensor* seqlens);

/*
 * SwiGLU on a fused gate|up projection: out[t, j] = silu(g) * u with g = gate_up[t, j],
 * u = gate_up[t, I + j], in f32, rounded once.
 *   gate_up [T, 2I] bf16, out [T, I] bf16; innermost contiguous, any row strides; T <= 65535
 */
PT_API pt_status pt_cuda_swiglu(pt_cuda_ctx* ctx, const pt_tensor* gate_up, pt_tensor* out);

/*
 * Greedy sampling on the device: ids[b] = the first index of the largest value of logits row b
 * (NaN never wins; a row of NaN gives 0). When pos is not NULL, pos[b] += 1 (so a captured
 * decode step feeds itself: the next replay embeds ids at the next position).
 *   logits [B, V] f32, innermost contiguous, any row stride;  ids, pos [B] i32 device
 */
PT_API pt_status pt_cuda_argmax(pt_cuda_ctx* ctx, const pt_tensor* logits, pt_tensor* ids, pt_tensor* pos);

/*
 * Linear layer for a few rows (decode): out = act(x @ w^T + bias), a memory-bound kernel (one
 * warp per output channel, f32 sums); for more rows use pt_cuda_matmul (cuBLASLt).
 *   x    [M, K] bf16, innermost contiguous, 1 <= M <= 8, data and row stride 16-byte aligned
 *   w    [N, K] bf16 contiguous (the Linear layout), K a multiple of 8, 16-byte aligned
 *   bias [N] bf16 | f32, or NULL;  out [M, N] bf16 | f32, innermost contiguous
 *   activation PT_ACT_NONE or PT_ACT_GELU_TANH (0.5 y (1 + tanh(sqrt(2/pi) (y + 0.044715 y^3))))
 */
PT_API pt_status pt_cuda_gemv(pt_cuda_ctx* ctx, const pt_tensor* x, const pt_tensor* w, const pt_tensor* bias,
                              pt_tensor* out, int32_t activation);

/*
 * pt_cuda_gemv with a residual add: resid += x @ w^T + bias (resid [M, N] f32 contiguous rows, the
 * decoder's residual stream; x, w, bias as pt_cuda_gemv).
 */
PT_API pt_status pt_cuda_gemv_residual(pt_cuda_ctx* ctx, const pt_tensor* x, const pt_tensor* w, const pt_tensor* bias,
                                       pt_tensor* resid);

/*
 * Norm fused into the following Linear (decode): out = act(norm(x) @ w^T + bias) with
 * norm(x) = (x - mean) * rsqrt(var + eps) * gamma + beta (mode 0, LayerNorm, two-pass statistics)
 * or x * rsqrt(mean(x^2) + eps) * gamma (mode 1, RMSNorm), all in f32 (the normalized row is
 * never rounded to bf16); every block recomputes the row statistics.
 *   x     [M, K] f32, 1 <= M <= 8, 16-byte aligned rows;  gamma [K] f32, beta [K] f32 or NULL
 *         (LayerNorm only), both 16-byte aligned;  w, bias, out, activation as pt_cuda_gemv.
 */
PT_API pt_status pt_cuda_norm_gemv(pt_cuda_ctx* ctx, const pt_tensor* x, int32_t mode, const pt_tensor* gamma,
                                   const pt_tensor* beta, float eps, const pt_tensor* w, const pt_tensor* bias,
                                   pt_tensor* out, int32_t activation);

/*
 * CUDA graphs of the context's stream. pt_cuda_graph_begin starts capturing (nothing runs until
 * a launch); every op enqueued on the context until pt_cuda_graph_end is recorded; end
 * instantiates the graph and returns it in *graph. pt_cuda_graph_launch replays it on the
 * stream (kernels read their inputs from device memory at replay time, with the pointers and
 * host arguments of the capture). Scratch blocks ops free during the capture stay reserved for
 * the graph until pt_cuda_graph_destroy (which waits for the stream). Host copies
 * (pt_cuda_memcpy_*) and synchronization are not allowed while capturing. After a failed op,
 * still call pt_cuda_graph_end (it reports the capture as failed) to leave capture mode.
 */
PT_API pt_status pt_cuda_graph_begin(pt_cuda_ctx* ctx);
PT_API pt_status pt_cuda_graph_end(pt_cuda_ctx* ctx, void** graph);
PT_API pt_status pt_cuda_graph_launch(pt_cuda_ctx* ctx, void* graph);
/* NULL is accepted. */
PT_API pt_status pt_cuda_graph_destroy(pt_cuda_ctx* ctx, void* graph);

/* ---- CUDA: sparse matmul (issue 7 item 6) ---- */

/*
 * 2:4 structured sparsity through cuSPARSELt (loaded at run time like cuBLASLt: from
 * $PANATRON_CUSPARSELT, else libcusparseLt.so.0; absent -> PT_ERR_UNSUPPORTED). The handle owns
 * the pruned weight (dense, for the fallback), its compressed form and the matmul plans (one
 * per row count M and layout, made on first use); free it with pt_cuda_sparse24_destroy.
 *   w  [N, K]  bf16 | f16 on the device (the Linear weight layout), innermost contiguous, any
 *              row stride. params->prune = 1: each group of 4 consecutive elements of a row
 *              (k = 4i .. 4i+3; a last partial group counts its missing elements as zeros)
 *              keeps its 2 largest |w| (ties: the lower k) and zeroes the others. prune = 0:
 *              w must already be 2:4 (at most 2 non-zeros per group), else PT_ERR_INVALID_ARGUMENT.
 * Internally N and K are zero-padded to multiples of 128 and M to a multiple of 8 (odd sizes
 * work: x or y then goes through a padded scratch per call).
 */
typedef struct pt_cuda_sparse24 pt_cuda_sparse24;
typedef struct pt_cuda_sparse24_params {
    int32_t prune;       /* 1: magnitude-prune w to 2:4 (as above); 0: w is 2:4 already */
    int32_t dense_max_m; /* calls with M <= this run the dense fallback (cuBLASLt on the pruned
                            weight); -1: the default rule (PT_CUDA_SPARSE24_DENSE_MAX_M) */
    int32_t no_search;   /* 0 (default): for bf16 weights with N and K >= 1024,
                            cusparseLtMatmulSearch picks the algorithm on the first call of each
                            new plan (runs the matmul several times and synchronizes; skipped while
                            the stream is being captured); f16 weights always use the default
                            algorithm (the search crashed with f16 in cuSPARSELt 0.8.1).
                            1: cuSPARSELt's default algorithm (measured 2.2x slower at 8192^3 bf16
                            on an H100) */
    int32_t reserved;
} pt_cuda_sparse24_params;
/* Measured on an H100 (BENCHMARKS.md, "Sparse matmul on the GPU"): at and below this many
 * rows the dense GEMM on the pruned weight is as fast or faster than cuSPARSELt. */
#define PT_CUDA_SPARSE24_DENSE_MAX_M 128
PT_API pt_status pt_cuda_sparse24_create(pt_cuda_ctx* ctx, const pt_tensor* w, const pt_cuda_sparse24_params* params,
                                         pt_cuda_sparse24** out);
/*
 * y = x @ w_pruned^T (+ bias), f32 accumulation:
 *   x     [M, K]  the weight's dtype, innermost contiguous, any row stride
 *   bias  [N]     f32 or the weight's dtype, or NULL (added in f32 after the product)
 *   y     [M, N]  the weight's dtype, innermost contiguous, any row stride
 *   mode  0: automatic (dense fallback for M <= dense_max_m, and where cuSPARSELt has no plan
 *         for the shape), 1: always cuSPARSELt, 2: always the dense fallback.
 * The first sparse call for a new M makes its plan (cudaMalloc of the workspace, the algorithm
 * search): make it before capturing a CUDA graph that contains the call.
 */
PT_API pt_status pt_cuda_sparse24_matmul(pt_cuda_ctx* ctx, pt_cuda_sparse24* h, const pt_tensor* x,
                                         const pt_tensor* bias, pt_tensor* y, int32_t mode);
/* Copies the pruned weight [N, K] (the weight's dtype, innermost contiguous) into w_out. */
PT_API pt_status pt_cuda_sparse24_pruned(pt_cuda_ctx* ctx, pt_cuda_sparse24* h, pt_tensor* w_out);
/* Which path pt_cuda_sparse24_matmul's automatic mode takes for m rows: 1 sparse, 2 dense. */
PT_API pt_status pt_cuda_sparse24_path(pt_cuda_sparse24* h, int64_t m, int32_t* out);
/* Frees the handle (waits for the context's stream first); NULL is accepted. */
PT_API pt_status pt_cuda_sparse24_destroy(pt_cuda_ctx* ctx, pt_cuda_sparse24* h);

/*
 * Block-sparse SpMM, own kernel (mma.sync bf16/f16 tensor cores, f32 accumulation): the
 * weight in BSR form with 64 x 64 blocks; all-zero blocks are skipped.
 *   w  [N, K]  bf16 | f16 on the device (Linear layout), innermost contiguous, any row stride.
 *      pt_cuda_bsr_create stores its non-zero 64 x 64 blocks (block (i, j) covers rows
 *      64i .. 64i+63 and columns 64j .. 64j+63, zero-padded at the edges); it copies the
 *      block map to the host once (one stream synchronization).
 * y = x @ w^T (+ bias):
 *   x     [M, K]  the weight's dtype, innermost contiguous, any row stride (rows of 16-byte
 *                 multiples at a 16-byte aligned address are read in place; others through a
 *                 padded scratch per call)
 *   bias  [N]     f32 or the weight's dtype, or NULL
 *   y     [M, N]  the weight's dtype or f32, innermost contiguous, any row stride
 */
typedef struct pt_cuda_bsr pt_cuda_bsr;
PT_API pt_status pt_cuda_bsr_create(pt_cuda_ctx* ctx, const pt_tensor* w, pt_cuda_bsr** out);
PT_API pt_status pt_cuda_bsr_matmul(pt_cuda_ctx* ctx, pt_cuda_bsr* h, const pt_tensor* x, const pt_tensor* bias,
                                    pt_tensor* y);
/* Non-zero blocks and all blocks of the (padded) weight. */
PT_API pt_status pt_cuda_bsr_info(pt_cuda_bsr* h, int64_t* nnz_blocks, int64_t* total_blocks);
/* Frees the handle (waits for the context's stream first); NULL is accepted. */
PT_API pt_status pt_cuda_bsr_destroy(pt_cuda_ctx* ctx, pt_cuda_bsr* h);

/* ==== block-sparse (issue 5) ==== */

/*
 * Block-sparse weights in BSR form (the Intel sparse-accelerator paper: weights pruned in
 * constant blocks, multiplied by an SpMM kernel on AVX-512 / VNNI).
 *
 * Orientation: the layer computes y[M, N] = x[M, K] . W with W LOGICALLY [K, N], exactly as
 * pt_matmul: the dense weight handed to the pruning functions is w [K, N] (trans_b = 0) or
 * [N, K] (trans_b = 1, PyTorch Linear layout). A block is block_k consecutive reduction indices
 * times block_n consecutive output channels; the block grid is KB x NB with
 * KB = ceil(K / block_k), NB = ceil(N / block_n) (edge blocks are partial: K and N need not be
 * multiples of the block). Block (kb, nb) has index kb * NB + nb.
 *
 * Block shapes (block_k x block_n): 4x1 (VNNI: 4 consecutive int8 of one output channel form
 * one 32-bit broadcast of vpdpbusd), 1x4, 16x1, and the AMX-tile shapes 64x16 (int8: one AMX
 * B tile of 16 channels x 64 K in VNNI order, 1 KiB) and 32x16 (bf16: one AMX-BF16 B tile,
 * 16 channels x 32 K, 1 KiB). Any 1 <= block_k <= 64, 1 <= block_n <= 64 is accepted; the
 * fast paths are tuned for these.
 *
 * Block norm = the L2 norm of the block's elements of w (in f64, reported as f32).
 *
 * The BSR weight is one self-describing, position-independent byte buffer (64-byte aligned
 * when its start is) in a layout private to the library: a header, per N-block-row offsets,
 * the kept blocks' K-block indices, their values (f32, bf16 or s8, in the kernel's order) and,
 * for int8, the per-output-channel scales. Build it with the two-call pattern of
 * pt_bsr_from_dense; inspect it with pt_bsr_info; densify it with pt_bsr_to_dense.
 */

/* Which blocks pt_bsr_from_dense keeps. */
typedef enum pt_bsr_select {
    PT_BSR_SPARSITY = 0,    /* per layer: prune round(sparsity * KB * NB) blocks (half away from
                             * zero), those of smallest norm; among equal norms the one with the
                             * larger index is pruned first */
    PT_BSR_THRESHOLD = 1,   /* global pruning: keep the blocks whose norm >= threshold (a value
                             * chosen over pt_bsr_block_norms of every layer) */
    PT_BSR_MASK = 2         /* keep the blocks whose mask[kb, nb] != 0 */
} pt_bsr_select;

typedef struct pt_bsr_params {
    int32_t block_k;        /* 1..64 */
    int32_t block_n;        /* 1..64 */
    int32_t dtype;          /* stored values: PT_F32, PT_BF16 (rne) or PT_I8 (per-channel absmax) */
    int32_t select;         /* pt_bsr_select */
    int32_t trans_b;        /* 0: w is [K, N]; 1: w is [N, K] */
    int32_t reserved;
    double sparsity;        /* PT_BSR_SPARSITY: in [0, 1] */
    double threshold;       /* PT_BSR_THRESHOLD: >= 0 */
    const pt_tensor* mask;  /* PT_BSR_MASK: [KB, NB] u8, innermost contiguous */
} pt_bsr_params;

/*
 * Block norms of a dense weight:
 *   w      [K, N] (trans_b = 0) or [N, K] (trans_b = 1), f32 | bf16, innermost contiguous
 *   norms  [KB, NB] f32 (out), innermost contiguous
 * A non-finite weight is PT_ERR_INVALID_ARGUMENT (naming its index).
 */
PT_API pt_status pt_bsr_block_norms(pt_ctx* ctx, const pt_tensor* w, int32_t trans_b, int32_t block_k,
                                    int32_t block_n, pt_tensor* norms);

/*
 * Prunes w per params and writes its BSR form (two calls):
 *   out == NULL: *bytes receives the size the buffer needs (capacity is ignored);
 *   out != NULL: writes the buffer (capacity >= that size, else PT_ERR_INVALID_ARGUMENT) and
 *                sets *bytes to the bytes written.
 * w as in pt_bsr_block_norms. Values kept are w's own (PT_F32), rounded to bf16 (PT_BF16),
 * or quantized per output channel n (PT_I8): scale_n = absmax over the KEPT elements of channel
 * n / 127 (0 when none), q = rne(w * (127 / absmax_n)) in [-127, 127] (f32 product, as
 * pt_quantize_int8_weight). Pruned blocks are exactly zero. A block kept by the selection is
 * stored even if all its elements are zero.
 */
PT_API pt_status pt_bsr_from_dense(pt_ctx* ctx, const pt_tensor* w, const pt_bsr_params* params, void* out,
                                   int64_t capacity, int64_t* bytes);

typedef struct pt_bsr_info {
    int64_t k, n;            /* logical W [K, N] */
    int32_t block_k, block_n;
    int32_t dtype;           /* PT_F32 | PT_BF16 | PT_I8 */
    int32_t reserved;
    int64_t kept_blocks;     /* stored blocks */
    int64_t total_blocks;    /* KB * NB */
    int64_t bytes;           /* the whole buffer */
    int64_t value_bytes;     /* of the stored values (+ scales), without indices and header */
} pt_bsr_info;

/* Reads the header of a BSR buffer of `bytes` bytes and validates the buffer: magic, version,
 * sizes, and (O(kept blocks)) its indices and int8 scales — call it once on a buffer loaded from
 * a file before handing it to pt_spmm_bsr, which checks only the header. */
PT_API pt_status pt_bsr_info_get(const void* bsr, int64_t bytes, pt_bsr_info* out);

/*
 * Densifies a BSR weight: out [K, N] f32 (innermost contiguous) = the values the SpMM uses
 * (f32, widened bf16, or q * scale_n for int8), zeros where pruned. For tests and reports.
 */
PT_API pt_status pt_bsr_to_dense(pt_ctx* ctx, const void* bsr, int64_t bytes, pt_tensor* out);

/*
 * y = act(x . W + bias) with W in BSR form:
 *   x     [..., K]  f32 | bf16 (rank 1..4, innermost contiguous, any outer strides)
 *   bsr   a buffer from pt_bsr_from_dense, bsr_bytes its size
 *   bias  [N] f32 or NULL
 *   y     [..., N]  f32 | bf16, the outer dims of x; must not overlap x
 *   activation  pt_activation (the pt_matmul epilogue, fused)
 * f32 / bf16 weights: y[m, n] = act(sum_k x[m, k] W[k, n] + bias[n]), f32 products and sums
 * (bf16 x and bf16 weights are widened to f32).
 * int8 weights (W8A8, as pt_matmul_int8's W8A8 mode): per row s_m = max_k |x[m, k]| / 127,
 * xq = rne(x * (127 / (127 s_m))) (f32 product) in [-127, 127], and
 *   y[m, n] = act(s_m * scale_n * sum_k xq[m, k] q[k, n] + bias[n])
 * with the integer sum exact (s32; AVX512-VNNI u8 x s8 with a +128 shift undone by the
 * channels' column sums). A non-finite x value makes its output row NaN.
 * Parallel over groups of output channels (AMX: over 64-row panels of x, split by channels when
 * there are few); AMX-INT8 kernels for int8 64x16 and 64x32 blocks (s8 x s8, no shift), AVX-512
 * (+VNNI) kernels for the other shapes where the CPU has them, portable C elsewhere.
 */
PT_API pt_status pt_spmm_bsr(pt_ctx* ctx, const pt_tensor* x, const void* bsr, int64_t bsr_bytes,
                             const pt_tensor* bias, pt_tensor* y, int32_t activation);

/*
 * pt_spmm_bsr with activations already quantized (int8 BSR weights only):
 *   xq       [..., K]  i8 (rank 1..4, innermost contiguous), any values in [-128, 127]
 *   x_scale  [M]       f32, M = the product of xq's outer dims: row m of xq stands for
 *                      x_scale[m] * xq[m, :]
 *   bsr, bias, y, activation as in pt_spmm_bsr (y [..., N] with xq's outer dims)
 * y[m, n] = act(x_scale[m] * scale_n * sum_k xq[m, k] q[k, n] + bias[n]), the integer sum exact
 * (s32). A non-finite x_scale[m] makes output row m NaN. For a caller whose previous op
 * already produced int8 rows (and for comparing with an int8 GEMM handed int8 x).
 */
PT_API pt_status pt_spmm_bsr_s8(pt_ctx* ctx, const pt_tensor* xq, const pt_tensor* x_scale, const void* bsr,
                                int64_t bsr_bytes, const pt_tensor* bias, pt_tensor* y, int32_t activation);

/* ==== FP4 (issue 5) ==== */

/*
 * 4-bit weight formats (LLM-FP4 and bitsandbytes). A code is 4 bits; packed codes are PT_U4
 * tensors (two per byte, element 2i in the low nibble). A code c decodes to
 *     value = level[format][c] * scale
 * where scale is the code's group (or row) scale. The 16 levels of each format:
 *   E2M1 (OCP MX FP4, bias 1): c = s<<3 | e<<1 | m;  e=0: m*0.5;  e>0: (1 + m/2) * 2^(e-1)
 *        ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}
 *   E1M2 (bias 1):             c = s<<3 | e<<2 | m;  e=0: m*0.25; e=1: 1 + m/4
 *        ±{0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75}
 *   E3M0 (bias 3):             c = s<<3 | e;          e=0: 0;      e>0: 2^(e-3)
 *        ±{0, 0.25, 0.5, 1, 2, 4, 8, 16}
 *   NF4 (bitsandbytes' normal float, code order as bitsandbytes' lookup table): the 16
 *        quantiles of N(0,1) normalized to [-1, 1], code 7 = 0, code 0 = -1, code 15 = 1.
 * (For the FP splits, code 8 is -0.) The exponent bias is only a convention: the scale
 * absorbs it. Quantization is round-to-nearest onto the scaled levels after clipping to
 * ±clip*absmax (ties go to the level of smaller magnitude).
 */
typedef enum pt_fp4_format {
    PT_FP4_E2M1 = 0,
    PT_FP4_E1M2 = 1,
    PT_FP4_E3M0 = 2,
    PT_FP4_NF4 = 3
} pt_fp4_format;

/* Writes the 16 levels of `format` (code order) to out[0..15]. */
PT_API pt_status pt_fp4_levels(int32_t format, float* out);

/*
 * Quantization parameters (and the layout contract every FP4 op shares):
 *   w      [N, K]      the weight in PyTorch Linear layout (y = x @ wᵀ); K even
 *   codes  [N, K]      PT_U4, rows contiguous (any row stride in bytes >= K/2)
 *   scales [N, K/G]    f32 | bf16, one scale per group of G consecutive elements of a row
 *                      (group = G in {32, 64, 128}, K % G == 0), or
 *          [N, 1]      per-channel (group = 0): one scale per row
 * scale = clip * absmax(group) / max|level|, stored in the scales' dtype; the codes are
 * chosen against the STORED (rounded) scale, so decoding reproduces the quantizer's values.
 * An all-zero group gets scale 0 (every code decodes to 0).
 */
typedef struct pt_fp4_quant_params {
    int32_t format;               /* pt_fp4_format */
    int32_t group;                /* 0: per channel; else 32, 64 or 128 */
    float clip;                   /* in (0, 1]; 0 is read as 1 (no clipping) */
    int32_t reserved;
    const pt_tensor* act_shift;   /* NULL, or [K] i32: W4A4 fold — quantizes w[n,k] * 2^shift[k] */
} pt_fp4_quant_params;

/* codes, scales = quantize(w). w f32 | bf16 [N, K], innermost contiguous. */
PT_API pt_status pt_fp4_quantize(pt_ctx* ctx, const pt_tensor* w, const pt_fp4_quant_params* params,
                                 pt_tensor* codes, pt_tensor* scales);

/* out[n, k] = level[codes[n, k]] * scale(n, k); out f32 | bf16 [N, K]. For tests and
 * conversions only: the matmul never materializes this. */
PT_API pt_status pt_fp4_dequantize(pt_ctx* ctx, const pt_tensor* codes, const pt_tensor* scales,
                                   int32_t format, int32_t group, pt_tensor* out);

/*
 * FP4 matmul, W4A32/W4A16 (weight-only) or W4A4:
 *   y[m, n] = bias[n] + sum_k xq[m, k] * level[codes[n, k]] * scale(n, k)
 *   x      [M, K]  f32 | bf16, innermost contiguous, any row stride
 *   codes, scales  as in pt_fp4_quant_params (format and group given here)
 *   bias   [N] f32 or NULL
 *   y      [M, N]  f32 | bf16, innermost contiguous; must not overlap the inputs
 * Weight-only (w4a4 = 0): xq = x. The weight is decoded in registers (a 16-entry LUT
 * permute per nibble, AVX-512; the portable build does it with a table); for M = 1 each
 * weight byte is read once (GEMV, parallel over N), for M > 1 a [K-panel x 16 rows] tile is
 * decoded into L1 and reused across all M rows. Accumulation f32.
 * W4A16: the weight-only GEMV (M = 1) of E2M1, E1M2 and E3M0 takes x in 16 bits, quantized
 * once per call; the products are exact, the sums f32 (or exact int32 within a group), the
 * group scale applied to each group's partial sum:
 *  - where ctx has PT_CPU_AVX512_VNNI: 16-bit fixed point with one power-of-two scale per block
 *    of 8 elements (k = 8b .. 8b+7): xq = rint(x * 2^-e) * 2^e with e such that the block's
 *    max|x| * 2^-e lies in [16320, 32639], so |xq - x| <= 2^(e-1) <= 2^-15 * max|x of the block|
 *    (finer than bf16's 2^-9 |x| for every element within 2^6 of its block's largest); the
 *    integer levels (2x E2M1, 4x E1M2 / E3M0) multiply it on vpdpbusd. An x holding a NaN or an
 *    infinity takes the next kernel below instead;
 *  - else where ctx has PT_CPU_AVX512_BF16: xq = bf16(x) (round to nearest even), vdpbf16ps.
 * Weight-only kernels on GPUs and llama.cpp-style CPU kernels use 16-bit activations the same
 * way; NF4, M > 1, W4A4 and contexts with both caps in disable_caps keep x in f32.
 * W4A4 (w4a4 = 1, LLM-FP4): per token m, the activations are divided by the per-channel
 * power of two 2^act_shift[k] (the shift the weights absorbed through
 * pt_fp4_quant_params.act_shift), then quantized to act_format with one scale per token
 *   a_m = act_clip * max_k |x[m,k] * 2^-shift[k]| / max|level|,
 *   xq[m,k] = a_m * level_act[rtn(x[m,k] * 2^-shift[k] / a_m)]
 * and multiplied with the decoded weight (dequantize-and-FMA in f32, not an integer path).
 */
typedef struct pt_fp4_matmul_params {
    int32_t format;               /* weight format, pt_fp4_format */
    int32_t group;                /* 0: per channel; else 32, 64, 128 */
    int32_t w4a4;                 /* 0: weight-only; 1: quantize activations too */
    int32_t act_format;           /* W4A4: the activations' format */
    float act_clip;               /* W4A4: in (0, 1]; 0 is read as 1 */
    int32_t reserved;
    const pt_tensor* act_shift;   /* W4A4: [K] i32 or NULL (no shift) */
} pt_fp4_matmul_params;

PT_API pt_status pt_fp4_matmul(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* codes,
                               const pt_tensor* scales, const pt_tensor* bias, pt_tensor* y,
                               const pt_fp4_matmul_params* params);

/*
 * LLM-FP4's search: for a weight w [N, K] f32 and calibration inputs x [M, K] f32, tries every
 * format in `formats` (bit i set = pt_fp4_format i; 0 means E1M2 | E2M1 | E3M0) and every clip
 * in clips[0 .. n_clips-1] (each in (0, 1]; n_clips 0 means {1.0}), quantizes w with `group`,
 * and keeps the pair with the least output error
 *   mse = mean over (m, n) of (x @ wᵀ - x @ dequant(wq)ᵀ)²
 * (ties: the earlier format, then the earlier clip). Workspace: N*K/2 + N*K/G*4 + 2*M*N*4 bytes.
 */
typedef struct pt_fp4_search_params {
    int32_t group;
    uint32_t formats;
    int32_t n_clips;
    int32_t reserved;
    const float* clips;
} pt_fp4_search_params;

typedef struct pt_fp4_search_result {
    int32_t format;
    float clip;
    double mse;           /* of the best pair */
    double ref_power;     /* mean of (x @ wᵀ)², to turn mse into a relative error */
} pt_fp4_search_result;

PT_API pt_status pt_fp4_search(pt_ctx* ctx, const pt_tensor* w, const pt_tensor* x,
                               const pt_fp4_search_params* params, pt_fp4_search_result* out);

/* ==== attention (issue 3) ==== */

/*
 * Flash attention on the CPU (FlashAttention-2 tiling, flash-decoding split-KV), never
 * materializing the [Sq, Sk] score matrix.
 *
 *   out = softmax(scale * Q Kᵀ + mask) V        per batch element and query head
 *
 * Layouts (the ones HF models produce right after the QKV projection, so no transposes):
 *   q    [B, Sq, H,   D]   f32 | bf16
 *   k    [B, Sk, Hkv, D]   f32 | bf16 (k and v share one dtype; q may differ)
 *   v    [B, Sk, Hkv, Dv]
 *   out  [B, Sq, H,   Dv]  f32 | bf16
 * Only the innermost dim (D, Dv) must be contiguous; the three outer dims may have any
 * byte strides (views into a fused QKV buffer work, and so does a KV cache
 * [B, Hkv, S_max, D] passed to prefill as a permuted view [B, Sk, Hkv, D]).
 * 1 <= D, Dv <= 256, any value (odd ones included; multiples of 16 avoid masked tails).
 * GQA/MQA: Hkv divides H, query head h reads kv head h / (H / Hkv). Accumulation is f32
 * throughout. bf16 q, k, v with D and Dv multiples of 32 run on AMX-BF16 where the CPU has
 * it (the probabilities are rounded to bf16 for the P·V product, as FlashAttention does on
 * GPUs); other bf16 inputs are widened to f32 (AVX-512 FMA, or the portable kernel).
 *
 * Variable-length packed batches (no padding tokens computed): pass cu_seqlens_q [B+1] i32
 * (0 = cu[0] <= cu[1] <= ... <= cu[B] = Tq) and give q [Tq, H, D], out [Tq, H, Dv]; keys
 * likewise with cu_seqlens_k and k [Tk, Hkv, D], v [Tk, Hkv, Dv] (cu_seqlens_k NULL: the same
 * offsets as the queries, i.e. self-attention). Sequence b is rows cu[b] .. cu[b+1]-1.
 *
 * Positions and masks. Query row i of a sequence with sq queries and sk keys sits at
 * position p(i) = i + sk - sq (bottom-right alignment, as FlashAttention-2: the queries are
 * the last sq tokens of the sequence, which is what chunked prefill against a cache needs).
 * Key j is visible to row i when all of these hold:
 *   causal:        j <= p(i)
 *   window_left:   j >= p(i) - window_left    (when window_left  >= 0; -1 = unbounded)
 *   window_right:  j <= p(i) + window_right   (when window_right >= 0; -1 = unbounded)
 *   key padding:   key_padding_mask[b, j] != 0 (when given; [B, Sk] u8 | i32 | i64, the HF
 *                  attention_mask; only with the padded layout)
 * A Mistral-style sliding window of W tokens is causal=1, window_left=W-1. A query row that
 * sees no key at all gets out = 0 and lse = -inf.
 *
 * lse (optional, f32): the natural-log sum of exp(scale * q·k) over the visible keys, per
 * row: [B, H, Sq] (padded layout) or [H, Tq] (packed), any strides, innermost contiguous.
 * scale: 0 means 1/sqrt(D); otherwise any finite value.
 *
 * Work and memory: parallel over (batch, kv head, query tile) with dynamic scheduling (heavy
 * causal tiles first); the G = H/Hkv query heads of a kv head share each pass over K and V.
 * Key tiles wholly outside the causal/window band are skipped, not masked. Workspace is
 * bounded by the tile sizes, never O(S^2) and never O(S): per thread at most
 *   (4*Br*(D + Dv) + Bc*(Br + Dp + Dvp + 16)) * 4 bytes,   Br = Bc = 64,
 * Dp, Dvp = D, Dv rounded up to 16: 340 KiB at D = Dv = 128, 660 KiB at D = Dv = 256 (the
 * portable kernel needs less), plus 8*(B+1) bytes on the calling thread for packed batches.
 */
typedef struct pt_flash_attn_params {
    const pt_tensor* q;                /* [B, Sq, H, D] or packed [Tq, H, D] */
    const pt_tensor* k;                /* [B, Sk, Hkv, D] or packed [Tk, Hkv, D] */
    const pt_tensor* v;                /* [B, Sk, Hkv, Dv] or packed [Tk, Hkv, Dv] */
    pt_tensor* out;                    /* [B, Sq, H, Dv] or packed [Tq, H, Dv] */
    const pt_tensor* key_padding_mask; /* [B, Sk] u8|i32|i64, nonzero = attend; NULL: none */
    const pt_tensor* cu_seqlens_q;     /* [B+1] i32; NULL: padded layout */
    const pt_tensor* cu_seqlens_k;     /* [B+1] i32; NULL: same as cu_seqlens_q */
    pt_tensor* lse;                    /* [B, H, Sq] or [H, Tq] f32; NULL: not wanted */
    float scale;                       /* 0: 1/sqrt(D) */
    int32_t causal;                    /* 1: key j visible to row i only when j <= p(i) */
    int32_t window_left;               /* -1: unbounded; else >= 0 */
    int32_t window_right;              /* -1: unbounded; else >= 0 */
} pt_flash_attn_params;

/* Prefill / encoder attention, as described above. out must not overlap q, k or v. */
PT_API pt_status pt_flash_attn_fwd(pt_ctx* ctx, const pt_flash_attn_params* params);

/*
 * KV cache layout used by decode (and written by pt_kv_cache_append):
 *   k_cache [B, Hkv, S_max, D],  v_cache [B, Hkv, S_max, Dv],  f32 | bf16
 * so that one head's keys are S_max consecutive rows and decode streams them. Rows must be
 * contiguous (innermost stride = element size); the outer strides are free, so a
 * [B, S_max, Hkv, D] buffer passed as a permuted view works too (slower: rows are strided).
 * Row s of batch b holds the token at position s. kv_lens[b] counts the valid rows.
 *
 * Decode: Tq (1 .. a few) new query tokens per sequence against the cache.
 *   q       [B, Tq, H, D]  f32 | bf16     (the new tokens, already in the cache)
 *   kv_lens [B] i32, each in [0, S_max];  NULL: every sequence has S_max valid rows
 *   out     [B, Tq, H, Dv] f32 | bf16
 *   lse     [B, H, Tq] f32 or NULL
 * Query t of sequence b sits at position kv_lens[b] - Tq + t; causal / window_left /
 * window_right / scale mean what they mean for pt_flash_attn_fwd (causal=1 is what a
 * decoder wants; causal=0 with no window is cross-attention against an encoder cache).
 * The G = H/Hkv query heads that share a kv head, times the Tq tokens, are processed
 * together, so each K/V row is read from memory once per call. Each head's KV length is
 * split into chunks processed in parallel (flash-decoding) and the partial (max, sum, acc)
 * are merged by log-sum-exp. num_splits: 0 chooses (about 4 chunks per thread, each of
 * >= 256 rows); n > 0 splits each head's visible KV range into n chunks (of >= 16 rows).
 * Kernels: bf16 q and cache with D, Dv multiples of 32 (<= 256) and G*Tq <= 16 run both
 * products on AMX-BF16 where the CPU has it (P rounded to bf16 for P·V, as in prefill);
 * otherwise AVX-512 or AVX2 FMA (bf16 widened to f32), else portable C.
 * Workspace, independent of S_max: per thread at most 4*R*(Dp + Dvp + 65) + 68*(Dp + Dvp) + 512
 * bytes with R = G*Tq <= 256 rows and Dp, Dvp the head dims rounded up to 32; on the calling thread the
 * partials, (chunks in total) * R * (Dv + 2) * 4 bytes, where the chunks in total are at most
 * B*Hkv + 4*threads (auto: chunks of >= 256 rows) or B*Hkv*num_splits, plus 8*(4B+1) bytes.
 */
typedef struct pt_flash_decode_params {
    const pt_tensor* q;                /* [B, Tq, H, D] */
    const pt_tensor* k_cache;          /* [B, Hkv, S_max, D] */
    const pt_tensor* v_cache;          /* [B, Hkv, S_max, Dv] */
    const pt_tensor* kv_lens;          /* [B] i32 or NULL */
    pt_tensor* out;                    /* [B, Tq, H, Dv] */
    pt_tensor* lse;                    /* [B, H, Tq] f32 or NULL */
    float scale;                       /* 0: 1/sqrt(D) */
    int32_t causal;
    int32_t window_left;               /* -1: unbounded */
    int32_t window_right;              /* -1: unbounded */
    int32_t num_splits;                /* 0: auto; n > 0: at most n chunks per head */
    int32_t reserved;
} pt_flash_decode_params;

/* Decode attention against a KV cache, as described above. */
PT_API pt_status pt_flash_attn_decode(pt_ctx* ctx, const pt_flash_decode_params* params);

/*
 * Appends T new tokens per sequence to the KV cache:
 *   k_cache[b, g, start[b] + t, :] = rope(k_new[b, t, g, :], position start[b] + t)
 *   v_cache[b, g, start[b] + t, :] = v_new[b, t, g, :]
 *   k_new [B, T, Hkv, D], v_new [B, T, Hkv, Dv]   f32 | bf16 (any outer strides)
 *   start [B] i32: the first cache row written for each sequence (its current length);
 *         start[b] + T <= S_max, else PT_ERR_INVALID_ARGUMENT and nothing is written
 *   k_cache, v_cache as above, f32 | bf16 (converted on the way in, round to nearest even)
 *   rope  NULL: k is copied as is; otherwise the rotary embedding of pt_rope (same
 *         parameters, same angles) is applied to k at position start[b] + t, in f32.
 * Either of k_new/k_cache or v_new/v_cache may be NULL (both of a pair) to append only the
 * other. The cache length bookkeeping (start + T) is the caller's.
 */
PT_API pt_status pt_kv_cache_append(pt_ctx* ctx, const pt_tensor* k_new, const pt_tensor* v_new,
                                    const pt_tensor* start, pt_tensor* k_cache, pt_tensor* v_cache,
                                    const pt_rope_params* rope);

/* ==== memory streaming probe (benchmarks, issue 6) ==== */

/*
 * Streams `bytes` bytes on ctx's threads (the range cut into 1 MiB pieces that the threads
 * claim, as kernels share work), so that a benchmark can measure, in its own process and next
 * to the kernels it compares, the bandwidth bounds of a memory-bound kernel:
 *   mode 0 (read):  sums src[0 .. bytes) as 64-bit words, the sum (mod 2^64) to *checksum: a pure
 *                   streaming read, the bound of a kernel that only reads (a decode step's weights)
 *   mode 1 (copy):  dst[0 .. bytes) = src[0 .. bytes) (memcpy per piece; bytes read + written),
 *                   *checksum (may be NULL) gets 0
 * src (and dst for mode 1) must not be NULL and must not overlap; bytes >= 0, a multiple of 8
 * for mode 0. Timing is the caller's.
 */
PT_API pt_status pt_memory_stream(pt_ctx* ctx, int32_t mode, const void* src, void* dst, int64_t bytes, uint64_t* checksum);

/* ==== end ==== */

#ifdef __cplusplus
}
#endif

#endif /* PANATRON_H */
