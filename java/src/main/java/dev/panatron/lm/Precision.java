package dev.panatron.lm;

/**
 * How the linear layers' weights are stored and multiplied. Activations, norms, the KV cache
 * and accumulation stay f32. New weight-only formats (int8, fp4) plug in as further constants
 * with their own {@link Linear} implementation in {@link Linear#create}.
 */
public enum Precision {
    /** f32 weights (zero-copy from an f32 safetensors file). */
    FP32,
    /** bf16 weights (zero-copy from a bf16 file); activations rounded to bf16 at each linear's input. */
    BF16
}
