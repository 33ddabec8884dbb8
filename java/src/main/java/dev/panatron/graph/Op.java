package dev.panatron.graph;

/**
 * The operators of a {@link Graph}. The first group mirrors ONNX operators one to one (same
 * inputs, attributes normalized: constant axes and permutations become attributes); the second
 * group holds the fused operators our kernels implement. {@link RefOps} has a plain Java
 * implementation of every one; {@link Session} binds each to a kernel.
 *
 * <p>Attribute names (all optional unless stated; see the ONNX operator docs for the first group):
 * <ul>
 *   <li>{@code axes} long[] — REDUCE_MEAN, REDUCE_SUM, UNSQUEEZE, SQUEEZE; {@code keepdims} long</li>
 *   <li>{@code axis} long — SOFTMAX (default -1), CONCAT, GATHER (default 0)</li>
 *   <li>{@code perm} long[] — TRANSPOSE</li>
 *   <li>{@code to} DType — CAST</li>
 *   <li>{@code value} TensorData — CONSTANT_OF_SHAPE</li>
 *   <li>{@code alpha}, {@code beta} double, {@code transA}, {@code transB} long — GEMM</li>
 *   <li>{@code epsilon} double — LAYER_NORM</li>
 *   <li>{@code approximate} String "none" | "tanh" — GELU</li>
 *   <li>{@code transB} long, {@code activation} String "none" | "gelu" | "gelu_tanh" | "relu" — LINEAR</li>
 *   <li>{@code num_heads} long (required), {@code scale} double, {@code key_padding} long — ATTENTION</li>
 *   <li>{@code dtype} DType — LINEAR, LAYER_NORM, GELU, ATTENTION: the output dtype (default: the
 *       first input's)</li>
 * </ul>
 */
public enum Op {
    // ---- elementwise, with numpy broadcasting
    ADD, SUB, MUL, DIV, POW, EQUAL, LESS, GREATER, WHERE,
    SQRT, ERF, EXP, TANH, SIGMOID, RELU, NEG, RECIPROCAL, NOT, CAST,
    // ---- reductions over axes
    REDUCE_MEAN, REDUCE_SUM,
    // ---- shapes and layout
    SHAPE, RESHAPE, TRANSPOSE, UNSQUEEZE, SQUEEZE, CONCAT, SLICE, GATHER, EXPAND,
    CONSTANT_OF_SHAPE, RANGE, IDENTITY,
    // ---- products and normalizations
    MATMUL, GEMM, SOFTMAX,
    // ---- fused operators (our kernels)
    /**
     * {@code y = act(x @ w + bias + residual)}; x [..., K], w [K, N] (or [N, K] with transB=1),
     * bias [N] or absent, residual (input 3) [..., N] like y, or absent.
     */
    LINEAR,
    /**
     * LayerNorm over the last dim: x [..., C], gamma [C], beta [C] or absent, residual (input 3)
     * like x or absent: {@code y = LN(x + residual)}; attribute epsilon.
     */
    LAYER_NORM,
    /** GELU; attribute approximate "none" (erf) or "tanh". */
    GELU,
    /**
     * Multi-head attention. q, k, v [B, S, H*D] (heads packed in the last dim); mask (optional) an
     * additive f32 bias broadcastable to [B, H, S_q, S_k], or, with {@code key_padding = 1}, an
     * integer [B, S] attention mask (nonzero = attend; a row that sees no key gives zeros);
     * output [B, S, H*D]. Attributes num_heads (H) and scale (applied to q·k before the mask).
     */
    ATTENTION,
    /**
     * A compressed linear layer (made by {@link Compression}): {@code y = act(x @ Wᵀ + bias +
     * residual)} with W [N, K] held as codes and scales, never as a full-precision copy.
     * Inputs: x [..., K], codes (constant: i8 [N, K] for int8, u8 [N, K/2] two fp4 codes per
     * byte), scales (constant: f32 [N] for int8, f32 [N, K/group] or [N, 1] for fp4), bias [N]
     * or absent, residual like y or absent. Attributes: {@code scheme} "llm_int8" | "w8a8" |
     * "fp4", {@code k} long, {@code activation} as LINEAR, {@code threshold} double (llm_int8),
     * {@code format} String (an {@link dev.panatron.Fp4.Format} name) and {@code group} long (fp4).
     */
    QLINEAR;

    /** The lower-case name used in dumps ("layer_norm"). */
    public String label() { return name().toLowerCase(); }

    /** True for ops whose output is a view of their first input's memory (no data moves). */
    public boolean isView() {
        return this == RESHAPE || this == UNSQUEEZE || this == SQUEEZE || this == IDENTITY;
    }
}
