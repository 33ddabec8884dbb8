package dev.panatron;

import java.util.Locale;

/**
 * How a model's linear layers are stored and multiplied, for encoders ({@link Embedder},
 * {@code graph.Compression}) and decoder LMs ({@code lm.DecoderModel}, the lm_head included)
 * alike. Token embeddings stay as loaded; activations, norms, the KV cache and accumulation
 * stay f32. Encoders take the finer options (int8 mode and threshold, FP4 format, group and
 * search, sparsity) from {@code graph.Compression.Options}.
 */
public enum Precision {
    /** f32 weights (zero-copy from an f32 safetensors file). */
    FP32,
    /** bf16 weights (zero-copy from a bf16 file); activations rounded to bf16 at each linear's input. */
    BF16,
    /**
     * LLM.int8 ({@link QuantKernels#matmulInt8}): int8 weights with one absmax scale
     * per output channel, prepacked once; per token, feature columns with some |x| >= 6 are
     * multiplied in f32 against the dequantized weight, the rest quantized row-wise to int8.
     */
    INT8,
    /**
     * FP4 weight-only ({@link Fp4#matmul}): E2M1 codes with one bf16 absmax scale
     * per group of 64 weights along K (32 when K is not a multiple of 64, one per channel when
     * not of 32, as bitsandbytes' default block of 64); activations stay f32.
     */
    FP4;

    /**
     * Parses {@code fp32}, {@code f32}, {@code bf16}, {@code int8} or {@code fp4} (any case).
     *
     * @throws IllegalArgumentException for any other name
     */
    public static Precision parse(String s) {
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "fp32", "f32" -> FP32;
            case "bf16" -> BF16;
            case "int8" -> INT8;
            case "fp4" -> FP4;
            default -> throw new IllegalArgumentException("precision '" + s + "': expected fp32, bf16, int8 or fp4");
        };
    }
}
